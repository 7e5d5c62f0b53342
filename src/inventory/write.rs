//! The one writer of inventory files.
//!
//! Every change is validated before anything touches the disk: the writer
//! loads the whole tree with the changed files overlaid in memory and refuses
//! the change if it adds a problem. Files are then written atomically (temp
//! file in the same folder, fsync, rename, fsync the folder), and the new
//! snapshot is published at once — so a machine in the hold loop sees its
//! adoption on its next poll, without waiting for the file watcher.
//!
//! The done callback's `install: false` is the one write a mass boot makes
//! hundreds of times, so it skips the whole-tree load: when the file on
//! disk is the one the snapshot was loaded from, the edited file is parsed
//! alone and the snapshot patched. The writer also remembers what it wrote,
//! so the watcher does not load the tree again for those files.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::edit::{self, Scalar};
use super::load::{LoadOptions, file_hash, fingerprint_of, load, load_with_overlay};
use super::{Inventory, Problem, valid_group, valid_hostname};
use crate::ident::{Mac, Uuid};
use crate::yaml::{self, Value};

/// What an operator chose for an unknown machine.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adoption {
    pub macs: Vec<Mac>,
    #[serde(default)]
    pub uuid: Option<Uuid>,
    pub hostname: String,
    /// Folder below the inventory root; "" for the root.
    #[serde(default)]
    pub group: String,
    pub profile: String,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub install: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Refused(String),
    #[error("no machine named `{0}` in the inventory")]
    NoSuchMachine(String),
    #[error("the change would break the inventory: {}", join(.0))]
    Invalid(Vec<Problem>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The snapshot every server reads, swapped whole on change.
pub type SharedInventory = Arc<ArcSwap<Inventory>>;

pub struct Writer {
    root: PathBuf,
    opts: LoadOptions,
    shared: SharedInventory,
    own: Arc<OwnWrites>,
    /// One change at a time: validation and write must see the same tree.
    lock: Mutex<()>,
}

/// The files the writer wrote and what it wrote into them, so the watcher
/// can tell its own changes (already published) from everyone else's.
#[derive(Debug, Default)]
pub struct OwnWrites(Mutex<HashMap<PathBuf, u64>>);

/// The suffix of the writer's temp files (`.<name>.pxedeck-tmp`).
const TEMP_SUFFIX: &str = ".pxedeck-tmp";

fn content_hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl OwnWrites {
    fn record(&self, path: &Path, text: &str) {
        self.lock().insert(path.to_path_buf(), content_hash(text));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether changes to these paths are all the writer's own: files that
    /// still hold exactly what it wrote, and its temp files, now renamed
    /// away. Anything else (an edit, a new or deleted file, a folder) is
    /// not, and the tree must be loaded again.
    pub fn explain(&self, paths: &[PathBuf]) -> bool {
        let written = self.lock();
        paths.iter().all(|path| {
            let temp = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(TEMP_SUFFIX));
            if temp {
                return !path.exists();
            }
            written.get(path).is_some_and(|&hash| {
                fs::read_to_string(path).is_ok_and(|text| content_hash(&text) == hash)
            })
        })
    }
}

impl Writer {
    pub fn new(root: &Path, opts: LoadOptions, shared: SharedInventory) -> Writer {
        Writer {
            root: root.to_path_buf(),
            opts,
            shared,
            own: Arc::default(),
            lock: Mutex::new(()),
        }
    }

    pub fn shared(&self) -> &SharedInventory {
        &self.shared
    }

    /// What this writer has written, for the watcher.
    pub fn own_writes(&self) -> Arc<OwnWrites> {
        self.own.clone()
    }

    /// Writes one file atomically, remembering it as the writer's own.
    fn write(&self, path: &Path, text: &str) -> Result<(), WriteError> {
        // Recorded first: the watcher may look before this returns.
        self.own.record(path, text);
        write_atomic(path, text)
    }

    /// Creates one machine file per adoption, all or nothing.
    pub fn adopt(&self, adoptions: &[Adoption]) -> Result<Vec<PathBuf>, WriteError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.shared.load();
        let mut overlay = BTreeMap::new();
        for a in adoptions {
            let rel = self.check_adoption(a, &current, &overlay)?;
            overlay.insert(rel, machine_file_text(a));
        }
        let changed: Vec<PathBuf> = overlay.keys().cloned().collect();
        self.commit(overlay, None)?;
        Ok(changed)
    }

    /// Sets `install` on a machine: `false` after an install finished (so a
    /// reinstall loop cannot happen), `true` to reimage on next boot.
    pub fn set_install(&self, hostname: &str, install: bool) -> Result<PathBuf, WriteError> {
        self.update(hostname, &[("install", Scalar::Bool(install))])
    }

    /// Changes top-level keys of a machine's file, keeping the rest of it
    /// byte-for-byte.
    pub fn update(
        &self,
        hostname: &str,
        changes: &[(&str, Scalar)],
    ) -> Result<PathBuf, WriteError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.shared.load();
        let machine = current
            .by_hostname(hostname)
            .ok_or_else(|| WriteError::NoSuchMachine(hostname.into()))?;
        let rel = current.file(machine.file).to_path_buf();
        let path = self.root.join(&rel);
        let text = fs::read_to_string(&path).map_err(|source| WriteError::Io {
            path: path.clone(),
            source,
        })?;
        let edited = edit::set_top_level(&text, changes).map_err(WriteError::Refused)?;
        if edited == text {
            return Ok(path);
        }
        let install_only = changes.iter().all(|(k, _)| *k == "install");
        if install_only
            && let Some(patched) = current.with_install_edited(hostname, &rel, &text, &edited)
        {
            self.write(&path, &edited)?;
            self.shared.store(Arc::new(patched));
            return Ok(path);
        }
        let mut overlay = BTreeMap::new();
        overlay.insert(rel, edited);
        self.commit(overlay, install_only.then_some(hostname))?;
        Ok(path)
    }

    fn check_adoption(
        &self,
        a: &Adoption,
        current: &Inventory,
        pending: &BTreeMap<PathBuf, String>,
    ) -> Result<PathBuf, WriteError> {
        let refuse = |m: String| Err(WriteError::Refused(m));
        if !valid_hostname(&a.hostname) {
            return refuse(format!(
                "`{}` is not a valid hostname (letters, digits, hyphens; at most 63)",
                a.hostname
            ));
        }
        if !valid_group(&a.group) {
            return refuse(format!("`{}` is not a valid group folder", a.group));
        }
        if a.macs.is_empty() && a.uuid.is_none() {
            return refuse("an adopted machine needs a MAC or UUID".into());
        }
        if let Some(m) = current.by_hostname(&a.hostname) {
            return refuse(format!(
                "hostname {} is taken ({})",
                a.hostname,
                current.file(m.file).display()
            ));
        }
        for mac in &a.macs {
            if let Some(m) = current.by_mac(mac) {
                return refuse(format!("MAC {mac} already belongs to {}", m.hostname));
            }
        }
        if let Some(m) = a.uuid.and_then(|u| current.by_uuid(&u)) {
            return refuse(format!("UUID already belongs to {}", m.hostname));
        }
        if let Some(ip) = a.ip
            && let Some(m) = current.by_ip(ip)
        {
            return refuse(format!("IP {ip} already belongs to {}", m.hostname));
        }
        if !current.profiles.contains_key(&a.profile) {
            return refuse(format!("no profile named `{}`", a.profile));
        }
        let rel = Path::new(&a.group).join(format!("{}.yaml", a.hostname));
        if self.root.join(&rel).exists() || pending.contains_key(&rel) {
            return refuse(format!("{} already exists", rel.display()));
        }
        Ok(rel)
    }

    /// Validates the overlay against the whole tree, writes it, publishes.
    ///
    /// A change is refused when it adds a problem. When the tree on disk was
    /// already broken elsewhere, the served snapshot stays the last good one;
    /// only an `install` flag change is still applied to it, because "don't
    /// reinstall this machine again" must never wait for someone's typo.
    fn commit(
        &self,
        overlay: BTreeMap<PathBuf, String>,
        install_of: Option<&str>,
    ) -> Result<(), WriteError> {
        let before = load(&self.root, &self.opts).problems;
        let after = load_with_overlay(&self.root, &self.opts, &overlay);
        let new: Vec<Problem> = after
            .problems
            .iter()
            .filter(|p| !before.contains(p))
            .cloned()
            .collect();
        if !new.is_empty() {
            return Err(WriteError::Invalid(new));
        }
        if !after.is_ok() && install_of.is_none() {
            return Err(WriteError::Refused(format!(
                "the inventory has errors; fix them first: {}",
                join(&after.problems)
            )));
        }
        for (rel, text) in &overlay {
            self.write(&self.root.join(rel), text)?;
        }
        if after.is_ok() {
            self.shared.store(Arc::new(after.inventory));
        } else if let Some(hostname) = install_of {
            let patched = self
                .shared
                .load()
                .with_machine_from(&after.inventory, hostname);
            self.shared.store(Arc::new(patched));
        }
        Ok(())
    }
}

/// The text of a new machine file. MACs and UUIDs are quoted so YAML 1.1
/// tools (Ansible, PyYAML) read them as strings too.
pub fn machine_file_text(a: &Adoption) -> String {
    let mut out = format!(
        "# Adopted in pxedeck on {}.\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    match a.macs.as_slice() {
        [] => {}
        [one] => out += &format!("mac: {}\n", edit::quoted(&one.to_string())),
        many => {
            out += "mac:\n";
            for m in many {
                out += &format!("  - {}\n", edit::quoted(&m.to_string()));
            }
        }
    }
    if let Some(u) = a.uuid {
        out += &format!("uuid: {}\n", edit::quoted(&u.to_string()));
    }
    out += &format!("profile: {}\n", edit::quoted(&a.profile));
    if let Some(ip) = a.ip {
        out += &format!("ip: {ip}\n");
    }
    out += &format!("install: {}\n", a.install);
    out
}

/// Writes `text` to `path` so that a reader (or a crash) sees either the old
/// file or the new one, never a mix: temp file in the same folder, fsync,
/// rename over, fsync the folder. The temp name starts with a dot, which
/// the loader skips, so a temp file left by a crash is never loaded.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), WriteError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}{TEMP_SUFFIX}"));
    let _ = fs::remove_file(&tmp); // a leftover from a crash
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

impl Inventory {
    /// A copy of this snapshot in which `hostname` takes its install flag
    /// from `other` (used to apply that flag while the tree on disk has
    /// unrelated errors). Values and origins stay those of this snapshot.
    fn with_machine_from(&self, other: &Inventory, hostname: &str) -> Inventory {
        let mut out = self.clone();
        if let (Some(i), Some(new)) = (
            out.machines.iter().position(|m| m.hostname == hostname),
            other.by_hostname(hostname),
        ) {
            out.machines[i].install = new.install;
        }
        out
    }

    /// This snapshot with `hostname`'s file edited from `before` to
    /// `after`, a change of its `install` flag alone, without loading the
    /// tree. None when that is not safe to do and the tree must be loaded:
    /// the file on disk is not the one this snapshot was loaded from, the
    /// edit does not parse to a flag, or the flag turns on for a machine
    /// with nothing to install (a problem validation reports).
    fn with_install_edited(
        &self,
        hostname: &str,
        rel: &Path,
        before: &str,
        after: &str,
    ) -> Option<Inventory> {
        let i = self.machines.iter().position(|m| m.hostname == hostname)?;
        let file = self.machines[i].file;
        let slot = file as usize;
        if self.file_hashes.get(slot) != Some(&file_hash(rel, before)) {
            return None;
        }
        let entry = yaml::parse(after, file).ok()?.entry("install")?.clone();
        let Value::Bool(install) = entry.node.value else {
            return None;
        };
        if install && self.machines[i].boot.is_none() {
            return None;
        }
        let mut out = self.clone();
        let machine = &mut out.machines[i];
        machine.install = install;
        if let Value::Map(values) = &mut machine.values.value {
            match values.iter_mut().find(|e| e.key == "install") {
                Some(e) => *e = entry,
                None => values.push(entry),
            }
        }
        out.file_hashes[slot] = file_hash(rel, after);
        out.fingerprint = fingerprint_of(&out.file_hashes);
        Some(out)
    }
}
