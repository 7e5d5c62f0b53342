//! HTTP: the `Range` header and the request path as the file route reads
//! them. Record 0 is a `Range` value (with the file size in its control
//! byte's high bits as a power of two, 2^(ctrl>>2)), parsed by `wanted`;
//! record 1 is a request path, percent-decoded and looked up in a boot
//! root that holds files, a folder, a link inside and links leading out.
//! A panic, a span outside the file, or a lookup answering with a file
//! outside the root is a crash.

mod frames;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pxedeck::bootfs::BootFs;
use pxedeck::http::{Wanted, percent_decode, wanted};

struct Root {
    real: PathBuf,
    fs: BootFs,
}

fn root() -> &'static Root {
    static ROOT: OnceLock<Root> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = frames::scratch("http");
        let boot = dir.join("boot");
        let outside = dir.join("secret");
        std::fs::create_dir_all(boot.join("ubuntu")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(boot.join("ipxe.efi"), b"loader").unwrap();
        std::fs::write(boot.join("ubuntu/vmlinuz"), b"kernel").unwrap();
        std::fs::write(outside.join("shadow"), b"secret").unwrap();
        std::os::unix::fs::symlink("ubuntu/vmlinuz", boot.join("kernel")).unwrap();
        std::os::unix::fs::symlink(&outside, boot.join("out")).unwrap();
        std::os::unix::fs::symlink("../secret/shadow", boot.join("shadow")).unwrap();
        let real = boot.canonicalize().unwrap();
        Root {
            fs: BootFs::new([real.clone()]),
            real,
        }
    })
}

fn range(ctrl: u8, header: &[u8]) {
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let size = 1u64.checked_shl(u32::from(ctrl >> 2)).unwrap_or(u64::MAX) - 1;
    match wanted(Some(header), size) {
        Wanted::Part(span) => assert!(
            span.start < span.end && span.end <= size,
            "{header:?} on {size} bytes gave {span:?}"
        ),
        Wanted::Whole | Wanted::Unsatisfiable => {}
    }
}

fn path(request: &[u8], root: &Root) {
    let Ok(request) = std::str::from_utf8(request) else {
        return;
    };
    let Some(decoded) = percent_decode(request) else {
        return;
    };
    if let Ok(rel) = BootFs::normalise(&decoded) {
        assert!(
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{decoded:?} normalised to {rel:?}"
        );
    }
    // As the route does: the path without its leading slashes.
    if let Ok(found) = root.fs.find(decoded.trim_start_matches('/')) {
        assert!(
            found.path.starts_with(&root.real) && Path::new(&found.path).is_file(),
            "{decoded:?} served {}",
            found.path.display()
        );
    }
}

fn run(input: &[u8]) {
    let root = root();
    let mut records = frames::records(input);
    if let Some((ctrl, header)) = records.next() {
        range(ctrl, header);
    }
    if let Some((_, request)) = records.next() {
        path(request, root);
    }
}

fn main() {
    root();
    afl::fuzz!(|data: &[u8]| run(data));
}
