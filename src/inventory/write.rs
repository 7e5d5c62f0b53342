//! Writing inventory files: the text of an adopted machine's file, the
//! atomic write, the record of what was written (so the watcher can tell
//! pxedeck's own writes from everyone else's), and patching a snapshot for
//! an `install` flip without loading the tree.
//!
//! Only [`super::InventoryService`] calls these; it decides when a write
//! may happen and publishes the result.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::edit;
use super::load::{file_hash, fingerprint_of};
use super::validate::AdoptionError;
use super::{Inventory, Problem};
use crate::boot::identity::Facts;
use crate::ident::{Mac, Uuid};
use crate::yaml::{self, Value};

/// What an operator chose for an unknown machine.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// A serial number or asset tag to know the machine by (import of a
    /// purchase order, `pxedeck import`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// What the machine reported about its hardware, kept in its file.
    #[serde(default, skip_serializing_if = "Facts::is_empty")]
    pub facts: Facts,
}

/// The longest profile or group name an edit may carry (the API's body,
/// a dialog's field): longer is refused before anything is looked up.
pub const MAX_EDIT_NAME: usize = 128;

/// What an operator changes in a known machine's file; `None` leaves it
/// as it is. Every change goes through the writer's validation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MachineEdit {
    /// Another profile (one the inventory has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// A fixed address for the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<bool>,
    /// Another group (a folder the inventory has; "" for the root): the
    /// file moves there, its text unchanged but for the edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl MachineEdit {
    pub fn is_empty(&self) -> bool {
        self == &MachineEdit::default()
    }
}

/// Why a change to the inventory was not made. Nothing was written unless
/// the error is [`WriteError::Io`] during the write itself.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The adoption breaks a rule or collides with a known machine.
    #[error(transparent)]
    Adoption(#[from] AdoptionError),
    /// The file an adoption would create is on disk already (not yet in the
    /// snapshot: someone else is writing it).
    #[error("{} already exists", .0.display())]
    FileExists(PathBuf),
    #[error("no machine named `{0}` in the inventory")]
    NoSuchMachine(String),
    /// The change itself would add these problems.
    #[error("the change would break the inventory: {}", join(.0))]
    Invalid(Vec<Problem>),
    /// The tree on disk has problems of its own; only an `install` change
    /// is still applied then.
    #[error("the inventory has errors; fix them first: {}", join(.0))]
    TreeBroken(Vec<Problem>),
    /// The machine's file cannot be edited (not a map, odd YAML).
    #[error("{0}")]
    Uneditable(String),
    /// An edit names a profile or group longer than [`MAX_EDIT_NAME`].
    #[error("{what} is {len} characters long; at most {MAX_EDIT_NAME}")]
    TooLong { what: &'static str, len: usize },
    /// An edit changes nothing.
    #[error("nothing to change")]
    NothingToChange,
    #[error("no group named `{0}` in the inventory")]
    NoSuchGroup(String),
    /// Undo with no adoption to undo (none since pxedeck started, or the
    /// last one undone already).
    #[error("no adoption to undo (pxedeck remembers the last one since it started)")]
    NothingToUndo,
    /// Undo of an adoption whose file was changed (or removed) since.
    #[error(
        "not undone: {} changed since it was adopted; edit or remove it by hand",
        .0.display()
    )]
    ChangedSince(PathBuf),
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

/// The files pxedeck wrote and what it wrote into them, so the watcher
/// can tell its own changes (already published) from everyone else's.
#[derive(Debug, Default)]
pub(super) struct OwnWrites(Mutex<HashMap<PathBuf, Option<u64>>>);

/// The suffix of the writer's temp files (`.<name>.pxedeck-tmp`).
const TEMP_SUFFIX: &str = ".pxedeck-tmp";

fn content_hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl OwnWrites {
    /// Writes one file atomically, remembering it as pxedeck's own.
    pub(super) fn write(&self, path: &Path, text: &str) -> Result<(), WriteError> {
        // Recorded first: the watcher may look before this returns.
        self.lock()
            .insert(path.to_path_buf(), Some(content_hash(text)));
        write_atomic(path, text)
    }

    /// Removes one file (a move's old place, an undone adoption),
    /// remembering that pxedeck removed it.
    pub(super) fn remove(&self, path: &Path) -> Result<(), WriteError> {
        self.lock().insert(path.to_path_buf(), None);
        remove_synced(path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Option<u64>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether changes to these paths are all pxedeck's own: files that
    /// still hold exactly what it wrote, and its temp files, now renamed
    /// away. Anything else (an edit, a new or deleted file, a folder) is
    /// not, and the tree must be loaded again.
    pub(super) fn explain(&self, paths: &[PathBuf]) -> bool {
        let written = self.lock();
        paths.iter().all(|path| {
            let temp = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(TEMP_SUFFIX));
            if temp {
                return !path.exists();
            }
            match written.get(path) {
                Some(Some(hash)) => {
                    fs::read_to_string(path).is_ok_and(|text| content_hash(&text) == *hash)
                }
                Some(None) => !path.exists(),
                None => false,
            }
        })
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
    if let Some(s) = &a.serial {
        out += &format!("serial: {}\n", edit::quoted(s));
    }
    if let Some(t) = &a.asset {
        out += &format!("asset: {}\n", edit::quoted(t));
    }
    out += &format!("profile: {}\n", edit::quoted(&a.profile));
    if let Some(ip) = a.ip {
        out += &format!("ip: {ip}\n");
    }
    out += &format!("install: {}\n", a.install);
    if !a.facts.is_empty() {
        out += "# What it reported when adopted (SMBIOS, NIC); for people, not for pxedeck.\n";
        out += "facts:\n";
        for (k, v) in a.facts.ordered() {
            out += &format!("  {k}: {}\n", edit::quoted(v));
        }
    }
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

/// Removes a file and syncs its folder, so the removal survives a crash.
pub fn remove_synced(path: &Path) -> Result<(), WriteError> {
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| WriteError::Io { path, source }
    };
    fs::remove_file(path).map_err(io(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

impl Inventory {
    /// A copy of this snapshot in which `hostname` takes its install flag
    /// from `other` (used to apply that flag while the tree on disk has
    /// unrelated errors). Values and origins stay those of this snapshot.
    pub(super) fn with_machine_from(&self, other: &Inventory, hostname: &str) -> Inventory {
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
    pub(super) fn with_install_edited(
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
