//! The files pxedeck serves (over TFTP and HTTP), and the rules that keep
//! every request inside its roots.
//!
//! A request path is normalised (`\` → `/`), must not contain `..`, and is
//! looked up in each root in turn (the boot root first, then the iPXE
//! binaries Debian's `ipxe` package installs). What it finds must be a
//! regular file whose real path (symlinks resolved) stays inside that root.

use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

/// Where Debian's `ipxe` package installs its boot loaders.
pub const IPXE_DIR: &str = "/usr/lib/ipxe";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("file not found")]
    NotFound,
    #[error("access violation: {0}")]
    Denied(&'static str),
}

#[derive(Debug, Clone)]
pub struct BootFs {
    /// Roots in priority order.
    roots: Vec<Root>,
    /// Single packaged files served under a name of their own, looked up
    /// after the roots (the signed shim and GRUB: Debian names them
    /// `*.efi.signed`, firmware and shim ask for `*.efi`).
    files: Vec<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone)]
struct Root {
    /// Canonicalised where it exists.
    path: PathBuf,
    /// Whether a symlink may lead out of this root. Only for the directory
    /// the distribution's package owns: Debian ships
    /// `/usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi`, and only root can change
    /// what is there. Operator-managed roots stay confined.
    packaged: bool,
}

impl Root {
    fn new(path: PathBuf, packaged: bool) -> Root {
        Root {
            path: path.canonicalize().unwrap_or(path),
            packaged,
        }
    }
}

/// A file found under one of the roots.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub metadata: Metadata,
}

impl BootFs {
    /// Confined roots, searched in order.
    pub fn new(roots: impl IntoIterator<Item = PathBuf>) -> BootFs {
        BootFs {
            roots: roots.into_iter().map(|r| Root::new(r, false)).collect(),
            files: Vec::new(),
        }
    }

    /// Serves the packaged file `path` as `name` (a plain name at the top
    /// of the tree) where no root has a file of that name. Like the
    /// packaged root, its symlinks are followed: the operator configured it.
    pub fn and_file(mut self, name: &str, path: &Path) -> BootFs {
        self.files.push((PathBuf::from(name), path.to_path_buf()));
        self
    }

    /// Adds a packaged loader directory below the other roots; its own
    /// symlinks are followed wherever they point.
    pub fn and_packaged(mut self, dir: PathBuf) -> BootFs {
        self.roots.push(Root::new(dir, true));
        self
    }

    /// The default roots: `boot_root` overlaid on the iPXE binaries, unless
    /// a TFTP root is configured, which then stands alone.
    pub fn for_tftp(boot_root: &Path, configured: Option<&Path>) -> BootFs {
        match configured {
            Some(root) => BootFs::new([root.to_path_buf()]),
            None => BootFs::with_loaders(boot_root),
        }
    }

    /// The boot root overlaid on the iPXE binaries (what HTTP serves).
    pub fn with_loaders(boot_root: &Path) -> BootFs {
        BootFs::new([boot_root.to_path_buf()]).and_packaged(PathBuf::from(IPXE_DIR))
    }

    pub fn roots(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|r| r.path.as_path())
    }

    /// Normalises a request path into a relative path with no `..`.
    pub fn normalise(request: &str) -> Result<PathBuf, FsError> {
        let cleaned = request.replace('\\', "/");
        if cleaned.contains('\0') {
            return Err(FsError::Denied("bad file name"));
        }
        let mut rel = PathBuf::new();
        for part in Path::new(&cleaned).components() {
            match part {
                Component::Normal(p) => rel.push(p),
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir => return Err(FsError::Denied("`..` in path")),
                Component::Prefix(_) => return Err(FsError::Denied("bad path")),
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(FsError::Denied("no file named"));
        }
        Ok(rel)
    }

    /// Finds a request in the roots.
    ///
    /// An absolute request is served when it names a file inside a root
    /// (`/srv/boot/ipxe.efi`) or, like tftpd-hpa's `-s`, when it exists
    /// relative to a root (`/ipxe.efi`); any other absolute path is an access
    /// violation, not a "not found", so probing the host is visible as such.
    pub fn find(&self, request: &str) -> Result<Found, FsError> {
        let absolute = request.starts_with('/') || request.starts_with('\\');
        let mut rel = Self::normalise(request)?;
        if absolute {
            let full = Path::new("/").join(&rel);
            if let Some(inside) = self.roots().find_map(|r| full.strip_prefix(r).ok()) {
                rel = inside.to_path_buf();
            }
        }
        for root in &self.roots {
            let candidate = root.path.join(&rel);
            if std::fs::symlink_metadata(&candidate).is_err() {
                continue;
            }
            let real = candidate.canonicalize().map_err(|_| FsError::NotFound)?;
            if !root.packaged && !real.starts_with(&root.path) {
                return Err(FsError::Denied("path leaves the root"));
            }
            let metadata = std::fs::metadata(&real).map_err(|_| FsError::NotFound)?;
            if !metadata.is_file() {
                return Err(FsError::Denied("not a regular file"));
            }
            return Ok(Found {
                path: real,
                metadata,
            });
        }
        if let Some((_, path)) = self.files.iter().find(|(name, _)| *name == rel) {
            let metadata = std::fs::metadata(path).map_err(|_| FsError::NotFound)?;
            if !metadata.is_file() {
                return Err(FsError::Denied("not a regular file"));
            }
            let path = path.canonicalize().map_err(|_| FsError::NotFound)?;
            return Ok(Found { path, metadata });
        }
        if absolute {
            return Err(FsError::Denied("absolute path outside the root"));
        }
        Err(FsError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, tempfile::TempDir, BootFs) {
        let boot = tempfile::tempdir().unwrap();
        let ipxe = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(boot.path().join("ubuntu")).unwrap();
        std::fs::write(boot.path().join("ubuntu/vmlinuz"), b"kernel").unwrap();
        std::fs::write(boot.path().join("ipxe.efi"), b"custom").unwrap();
        std::fs::write(ipxe.path().join("ipxe.efi"), b"debian").unwrap();
        std::fs::write(ipxe.path().join("undionly.kpxe"), b"debian bios").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", boot.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("ubuntu/vmlinuz", boot.path().join("inside-link")).unwrap();
        // As Debian ships it: ipxe.efi → /boot/ipxe.efi.
        let elsewhere = boot.path().join("ubuntu/snp.efi");
        std::fs::write(&elsewhere, b"debian snp").unwrap();
        std::os::unix::fs::symlink(&elsewhere, ipxe.path().join("snponly.efi")).unwrap();
        let fs = BootFs::new([boot.path().to_path_buf()]).and_packaged(ipxe.path().to_path_buf());
        (boot, ipxe, fs)
    }

    fn read(fs: &BootFs, req: &str) -> Result<String, FsError> {
        fs.find(req)
            .map(|f| std::fs::read_to_string(f.path).unwrap())
    }

    #[test]
    fn lookups_overlay_roots_in_order() {
        let (_b, _i, fs) = fixture();
        assert_eq!(
            read(&fs, "ipxe.efi").unwrap(),
            "custom",
            "the boot root wins"
        );
        assert_eq!(
            read(&fs, "undionly.kpxe").unwrap(),
            "debian bios",
            "falls through to the iPXE dir"
        );
        assert_eq!(
            read(&fs, "ubuntu\\vmlinuz").unwrap(),
            "kernel",
            "backslashes normalised"
        );
        assert_eq!(read(&fs, "./ubuntu//vmlinuz").unwrap(), "kernel");
        assert_eq!(
            read(&fs, "/ubuntu/vmlinuz").unwrap(),
            "kernel",
            "root-relative absolute path"
        );
        assert_eq!(
            read(&fs, "inside-link").unwrap(),
            "kernel",
            "symlinks inside the root are fine"
        );
        assert_eq!(
            read(&fs, "snponly.efi").unwrap(),
            "debian snp",
            "the packaged loader dir's own links are followed"
        );
    }

    #[test]
    fn escapes_are_access_violations() {
        let (boot, _i, fs) = fixture();
        assert_eq!(
            read(&fs, "../etc/passwd"),
            Err(FsError::Denied("`..` in path"))
        );
        assert_eq!(
            read(&fs, "ubuntu/../../x"),
            Err(FsError::Denied("`..` in path"))
        );
        assert_eq!(
            read(&fs, "..\\..\\etc\\passwd"),
            Err(FsError::Denied("`..` in path"))
        );
        assert_eq!(
            read(&fs, "/etc/passwd"),
            Err(FsError::Denied("absolute path outside the root"))
        );
        assert_eq!(
            read(&fs, "escape"),
            Err(FsError::Denied("path leaves the root"))
        );
        assert_eq!(
            read(&fs, "ubuntu"),
            Err(FsError::Denied("not a regular file"))
        );
        assert_eq!(read(&fs, "/"), Err(FsError::Denied("no file named")));
        assert_eq!(read(&fs, "missing.efi"), Err(FsError::NotFound));
        let full = format!(
            "{}/ubuntu/vmlinuz",
            boot.path().canonicalize().unwrap().display()
        );
        assert_eq!(
            read(&fs, &full).unwrap(),
            "kernel",
            "an absolute path inside the root"
        );
    }

    #[test]
    fn devices_are_refused() {
        let fs = BootFs::new([PathBuf::from("/dev")]);
        assert_eq!(
            fs.find("null").unwrap_err(),
            FsError::Denied("not a regular file")
        );
    }

    #[test]
    fn a_named_file_is_served_under_its_name_below_the_roots() {
        let (boot, _i, fs) = fixture();
        let pkg = tempfile::tempdir().unwrap();
        let signed = pkg.path().join("shimx64.efi.signed");
        std::fs::write(&signed, b"signed shim").unwrap();
        let fs = fs
            .and_file("shimx64.efi", &signed)
            .and_file("grubx64.efi", &pkg.path().join("absent.efi.signed"))
            .and_file("ipxe.efi", &signed);
        assert_eq!(read(&fs, "shimx64.efi").unwrap(), "signed shim");
        assert_eq!(
            read(&fs, "/shimx64.efi").unwrap(),
            "signed shim",
            "as shim asks"
        );
        assert_eq!(read(&fs, "\\shimx64.efi").unwrap(), "signed shim");
        assert_eq!(
            read(&fs, "grubx64.efi"),
            Err(FsError::NotFound),
            "not installed"
        );
        assert_eq!(
            read(&fs, "ipxe.efi").unwrap(),
            "custom",
            "a root's file wins"
        );
        assert_eq!(
            read(&fs, "x/shimx64.efi"),
            Err(FsError::NotFound),
            "only the top"
        );
        assert!(
            read(&fs, "shimx64.efi.signed").is_err(),
            "nor the package's name"
        );
        drop(boot);
    }
}
