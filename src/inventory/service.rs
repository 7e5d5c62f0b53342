//! The one owner of the served inventory snapshot: it loads, patches,
//! validates, writes and publishes, all under one lock, and nothing else
//! stores into the snapshot.
//!
//! Every change is validated before anything touches the disk: the tree is
//! loaded with the changed files overlaid in memory and the change refused
//! if it adds a problem. Files are then written atomically and the new
//! snapshot published at once, so a machine in the hold loop sees its
//! adoption on its next poll, without waiting for the file watcher.
//!
//! The done callback's `install: false` is the one write a mass boot makes
//! hundreds of times, so it skips the whole-tree load: when the file on disk
//! is the one the snapshot was loaded from, the edited file is parsed alone
//! and the snapshot patched. The service also remembers what it wrote, so
//! the watcher loads nothing for those files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arc_swap::ArcSwap;

use super::edit::{self, Scalar};
use super::load::{LoadOptions, load, load_with_changes, load_with_overlay};
use super::validate::check_adoption;
use super::write::{
    Adoption, MAX_EDIT_NAME, MachineEdit, OwnWrites, WriteError, machine_file_text,
};
use super::{Inventory, Problem};

/// The snapshot every server reads lock-free. Only [`InventoryService`]
/// stores into it.
pub type SharedInventory = Arc<ArcSwap<Inventory>>;

/// What a reload found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    /// A new snapshot is being served.
    Reloaded { machines: usize, profiles: usize },
    /// The tree has problems; the last good snapshot keeps serving.
    Failed(Vec<Problem>),
}

/// How much of the served snapshot a write changed, so consumers refresh
/// only that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The file already said so: nothing was written.
    Nothing,
    /// One machine changed and nothing else did.
    Machine(String),
    /// A new snapshot of the whole tree.
    Whole,
}

/// A write that happened: the file and what it changed in the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub path: PathBuf,
    pub published: Published,
}

/// Told of every write the service made, once it is on disk, with a
/// one-line message saying what changed (the git recorder commits it).
/// Called under the service's lock: it must queue, never block.
pub trait WriteRecorder: Send + Sync {
    fn record(&self, paths: Vec<PathBuf>, message: String);
}

pub struct InventoryService {
    root: PathBuf,
    opts: LoadOptions,
    shared: SharedInventory,
    own: OwnWrites,
    /// The one lock: validation, write and publish see the same tree, and a
    /// reload never interleaves with a write.
    reloads: Mutex<ReloadState>,
    loads: Arc<AtomicU64>,
    recorder: OnceLock<Arc<dyn WriteRecorder>>,
}

/// What the last reload saw, so the same tree is reported once.
struct ReloadState {
    last_seen: Option<u64>,
    failing: bool,
    /// The last adoption's files (relative) and the text written into
    /// each, while it may still be undone.
    last_adoption: Option<LastAdoption>,
}

/// What undoing the last adoption takes away.
struct LastAdoption {
    files: Vec<(PathBuf, String)>,
    hostnames: Vec<String>,
}

/// What an undo removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Undone {
    pub hostnames: Vec<String>,
    pub paths: Vec<PathBuf>,
}

impl InventoryService {
    /// Serves `first` (a good load of `root`, or an empty inventory while
    /// the tree has problems).
    pub fn new(root: &Path, opts: LoadOptions, first: Inventory) -> InventoryService {
        let last_seen = Some(first.fingerprint);
        InventoryService {
            root: root.to_path_buf(),
            opts,
            shared: Arc::new(ArcSwap::from_pointee(first)),
            own: OwnWrites::default(),
            reloads: Mutex::new(ReloadState {
                last_seen,
                failing: false,
                last_adoption: None,
            }),
            loads: Arc::default(),
            recorder: OnceLock::new(),
        }
    }

    /// Sets who hears of each write (once; later calls are ignored).
    pub fn set_recorder(&self, recorder: Arc<dyn WriteRecorder>) {
        let _ = self.recorder.set(recorder);
    }

    fn record(&self, paths: Vec<PathBuf>, message: String) {
        if let Some(r) = self.recorder.get() {
            r.record(paths, message);
        }
    }

    /// The snapshot handle for readers.
    pub fn shared(&self) -> &SharedInventory {
        &self.shared
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Counts the tree loads reloads make (tests check that pxedeck's own
    /// writes cause none).
    pub fn load_counter(&self) -> Arc<AtomicU64> {
        self.loads.clone()
    }

    fn lock(&self) -> MutexGuard<'_, ReloadState> {
        self.reloads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether file changes at `paths` call for a reload: not when they are
    /// all pxedeck's own writes, which are published already.
    pub fn must_reload(&self, paths: &[PathBuf]) -> bool {
        !self.own.explain(paths)
    }

    /// Loads the tree after a change on disk; returns what changed, or None
    /// when nothing did. A broken tree is reported once until it changes.
    pub fn reload(&self) -> Option<Reload> {
        self.reload_as(false)
    }

    /// As [`Self::reload`], for an operator who asked: a tree that is still
    /// broken is reported again.
    pub fn reload_on_request(&self) -> Option<Reload> {
        self.reload_as(true)
    }

    fn reload_as(&self, asked: bool) -> Option<Reload> {
        let mut state = self.lock();
        self.loads.fetch_add(1, Ordering::Relaxed);
        let loaded = load(&self.root, &self.opts);
        let fp = loaded.inventory.fingerprint;
        let seen = state.last_seen == Some(fp) && !(state.failing && loaded.is_ok());
        // An operator who asks about a broken tree hears about it again.
        let tell_again = asked && !loaded.is_ok();
        if seen && !tell_again {
            return None;
        }
        state.last_seen = Some(fp);
        if !loaded.is_ok() {
            state.failing = true;
            return Some(Reload::Failed(loaded.problems));
        }
        let recovering = std::mem::replace(&mut state.failing, false);
        if fp == self.shared.load().fingerprint && !recovering {
            return None; // already published exactly this
        }
        let (machines, profiles) = (
            loaded.inventory.machines.len(),
            loaded.inventory.profiles.len(),
        );
        self.shared.store(Arc::new(loaded.inventory));
        Some(Reload::Reloaded { machines, profiles })
    }

    /// Creates one machine file per adoption, all or nothing.
    pub fn adopt(&self, adoptions: &[Adoption]) -> Result<Vec<PathBuf>, WriteError> {
        self.adopt_saying(adoptions, adoption_message(adoptions))
    }

    /// Adopts one machine an `auto` rule matched; the commit names the
    /// rule (`auto-adopt dev-05 into k8s-dev by rule k8s-dev/_defaults.yaml:9`).
    pub fn adopt_by_rule(&self, adoption: &Adoption, rule: &str) -> Result<PathBuf, WriteError> {
        let message = format!(
            "auto-adopt {} into {} by rule {rule} ({}{})",
            adoption.hostname,
            if adoption.group.is_empty() {
                "/"
            } else {
                &adoption.group
            },
            adoption.profile,
            if adoption.install { ", to install" } else { "" }
        );
        let mut paths = self.adopt_saying(std::slice::from_ref(adoption), message)?;
        paths
            .pop()
            .ok_or_else(|| WriteError::Uneditable("nothing was written".into()))
    }

    fn adopt_saying(
        &self,
        adoptions: &[Adoption],
        message: String,
    ) -> Result<Vec<PathBuf>, WriteError> {
        let mut guard = self.lock();
        let current = self.shared.load();
        let mut overlay = BTreeMap::new();
        for a in adoptions {
            check_adoption(a, &**current)?;
            let rel = Path::new(&a.group).join(format!("{}.yaml", a.hostname));
            if self.root.join(&rel).exists() || overlay.contains_key(&rel) {
                return Err(WriteError::FileExists(rel));
            }
            overlay.insert(rel, machine_file_text(a));
        }
        let changed: Vec<PathBuf> = overlay.keys().cloned().collect();
        let files: Vec<(PathBuf, String)> = overlay
            .iter()
            .map(|(rel, text)| (rel.clone(), text.clone()))
            .collect();
        self.commit(overlay, None)?;
        guard.last_adoption = Some(LastAdoption {
            files,
            hostnames: adoptions.iter().map(|a| a.hostname.clone()).collect(),
        });
        self.record(
            changed.iter().map(|rel| self.root.join(rel)).collect(),
            message,
        );
        Ok(changed)
    }

    /// Sets `install` on a machine: `false` after an install finished (so a
    /// reinstall loop cannot happen), `true` to reimage on next boot.
    pub fn set_install(&self, hostname: &str, install: bool) -> Result<Written, WriteError> {
        self.update(hostname, &[("install", Scalar::Bool(install))])
    }

    /// Changes top-level keys of a machine's file, keeping the rest of it
    /// byte-for-byte.
    pub fn update(
        &self,
        hostname: &str,
        changes: &[(&str, Scalar)],
    ) -> Result<Written, WriteError> {
        let _guard = self.lock();
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
        let edited = edit::set_top_level(&text, changes).map_err(WriteError::Uneditable)?;
        if edited == text {
            return Ok(Written {
                path,
                published: Published::Nothing,
            });
        }
        let install_only = changes.iter().all(|(k, _)| *k == "install");
        if install_only
            && let Some(patched) = current.with_install_edited(hostname, &rel, &text, &edited)
        {
            self.own.write(&path, &edited)?;
            self.shared.store(Arc::new(patched));
            self.record(vec![path.clone()], change_message(hostname, changes));
            return Ok(Written {
                path,
                published: Published::Machine(hostname.into()),
            });
        }
        let mut overlay = BTreeMap::new();
        overlay.insert(rel, edited);
        let published = self.commit(overlay, install_only.then_some(hostname))?;
        self.record(vec![path.clone()], change_message(hostname, changes));
        Ok(Written { path, published })
    }

    /// Removes the files of the last adoption, all of them or none, while
    /// each still holds exactly what the adoption wrote; refused when one
    /// changed (or went) since, and when there is nothing to undo.
    pub fn undo_last_adoption(&self) -> Result<Undone, WriteError> {
        let mut guard = self.lock();
        let last = guard
            .last_adoption
            .as_ref()
            .ok_or(WriteError::NothingToUndo)?;
        for (rel, written) in &last.files {
            match fs::read_to_string(self.root.join(rel)) {
                Ok(text) if text == *written => {}
                _ => return Err(WriteError::ChangedSince(rel.clone())),
            }
        }
        let removed: BTreeSet<PathBuf> = last.files.iter().map(|(rel, _)| rel.clone()).collect();
        let hostnames = last.hostnames.clone();
        self.commit_changes(BTreeMap::new(), &removed)?;
        guard.last_adoption = None;
        let paths: Vec<PathBuf> = removed.iter().map(|rel| self.root.join(rel)).collect();
        let message = match hostnames.as_slice() {
            [one] => format!("undo the adoption of {one}"),
            [first, .., last] => format!(
                "undo the adoption of {} machines: {first} … {last}",
                hostnames.len()
            ),
            [] => "undo an adoption".into(),
        };
        self.record(paths.clone(), message);
        Ok(Undone { hostnames, paths })
    }

    /// Edits a known machine: profile, fixed IP and install in its file
    /// (the rest of it byte-for-byte), and a move to another group (the
    /// file goes to that folder). Validated as a whole before anything is
    /// written; one git commit for all of it.
    pub fn edit(&self, hostname: &str, edit: &MachineEdit) -> Result<Written, WriteError> {
        for (what, value) in [("profile", &edit.profile), ("group", &edit.group)] {
            if let Some(v) = value
                && v.chars().count() > MAX_EDIT_NAME
            {
                return Err(WriteError::TooLong {
                    what,
                    len: v.chars().count(),
                });
            }
        }
        if edit.is_empty() {
            return Err(WriteError::NothingToChange);
        }
        let _guard = self.lock();
        let current = self.shared.load();
        let machine = current
            .by_hostname(hostname)
            .ok_or_else(|| WriteError::NoSuchMachine(hostname.into()))?;
        let rel = current.file(machine.file).to_path_buf();
        let moved_to = match &edit.group {
            Some(g) if *g != machine.group => {
                if !g.is_empty() && !current.groups.contains(g) {
                    return Err(WriteError::NoSuchGroup(g.clone()));
                }
                let name = rel.file_name().map(PathBuf::from).unwrap_or_default();
                let to = Path::new(g).join(name);
                if self.root.join(&to).exists() {
                    return Err(WriteError::FileExists(to));
                }
                Some(to)
            }
            _ => None,
        };
        let mut changes: Vec<(&str, Scalar)> = Vec::new();
        if let Some(p) = &edit.profile {
            changes.push(("profile", Scalar::Str(p.clone())));
        }
        if let Some(ip) = edit.ip {
            changes.push(("ip", Scalar::Str(ip.to_string())));
        }
        if let Some(i) = edit.install {
            changes.push(("install", Scalar::Bool(i)));
        }
        let path = self.root.join(&rel);
        let text = fs::read_to_string(&path).map_err(|source| WriteError::Io {
            path: path.clone(),
            source,
        })?;
        let edited = if changes.is_empty() {
            text.clone()
        } else {
            edit::set_top_level(&text, &changes).map_err(WriteError::Uneditable)?
        };
        let mut said: Vec<String> = Vec::new();
        if moved_to.is_some() {
            let shown = |g: &str| {
                if g.is_empty() {
                    "/".to_string()
                } else {
                    g.to_string()
                }
            };
            said.push(format!(
                "move from {} to {}",
                shown(&machine.group),
                shown(edit.group.as_deref().unwrap_or(""))
            ));
        }
        if edited != text {
            said.push(changes_said(&changes));
        }
        if said.is_empty() {
            return Ok(Written {
                path,
                published: Published::Nothing,
            });
        }
        let mut overlay = BTreeMap::new();
        let mut removed = BTreeSet::new();
        let (target, paths) = match &moved_to {
            Some(to) => {
                overlay.insert(to.clone(), edited);
                removed.insert(rel.clone());
                (self.root.join(to), vec![path.clone(), self.root.join(to)])
            }
            None => {
                overlay.insert(rel.clone(), edited);
                (path.clone(), vec![path.clone()])
            }
        };
        let published = self.commit_changes(overlay, &removed)?;
        self.record(paths, format!("{hostname}: {}", said.join("; ")));
        Ok(Written {
            path: target,
            published,
        })
    }

    /// The problems of a changed tree that the tree on disk does not have:
    /// only those refuse a change. The tree is loaded again just to tell
    /// them apart, which the usual clean result never needs (a load is
    /// ~40 µs per machine).
    fn added_problems(&self, after: &[Problem]) -> Vec<Problem> {
        if after.is_empty() {
            return Vec::new();
        }
        let before = load(&self.root, &self.opts).problems;
        after
            .iter()
            .filter(|p| !before.contains(p))
            .cloned()
            .collect()
    }

    /// Validates the overlay and removals against the whole tree, writes
    /// the one and removes the other, publishes the whole snapshot. The
    /// caller holds the lock. Refused when the change adds a problem or
    /// the tree is broken.
    fn commit_changes(
        &self,
        overlay: BTreeMap<PathBuf, String>,
        removed: &BTreeSet<PathBuf>,
    ) -> Result<Published, WriteError> {
        let after = load_with_changes(&self.root, &self.opts, &overlay, removed);
        let new = self.added_problems(&after.problems);
        if !new.is_empty() {
            return Err(WriteError::Invalid(new));
        }
        if !after.is_ok() {
            return Err(WriteError::TreeBroken(after.problems));
        }
        // Written first, removed after: a crash between the two leaves a
        // machine twice (a problem the loader names), never lost.
        for (rel, text) in &overlay {
            self.own.write(&self.root.join(rel), text)?;
        }
        for rel in removed {
            self.own.remove(&self.root.join(rel))?;
        }
        self.shared.store(Arc::new(after.inventory));
        Ok(Published::Whole)
    }

    /// Validates the overlay against the whole tree, writes it, publishes.
    /// The caller holds the lock.
    ///
    /// A change is refused when it adds a problem. When the tree on disk was
    /// already broken elsewhere, the served snapshot stays the last good one;
    /// only an `install` flag change is still applied to it, because "don't
    /// reinstall this machine again" must never wait for someone's typo.
    fn commit(
        &self,
        overlay: BTreeMap<PathBuf, String>,
        install_of: Option<&str>,
    ) -> Result<Published, WriteError> {
        let after = load_with_overlay(&self.root, &self.opts, &overlay);
        let new = self.added_problems(&after.problems);
        if !new.is_empty() {
            return Err(WriteError::Invalid(new));
        }
        if !after.is_ok() && install_of.is_none() {
            return Err(WriteError::TreeBroken(after.problems));
        }
        for (rel, text) in &overlay {
            self.own.write(&self.root.join(rel), text)?;
        }
        match install_of {
            Some(hostname) if !after.is_ok() => {
                let patched = self
                    .shared
                    .load()
                    .with_machine_from(&after.inventory, hostname);
                self.shared.store(Arc::new(patched));
                Ok(Published::Machine(hostname.into()))
            }
            _ => {
                self.shared.store(Arc::new(after.inventory));
                Ok(Published::Whole)
            }
        }
    }
}

/// `adopt dev-04 into k8s-dev (ubuntu-2404)`, or for a bulk adoption
/// `adopt 40 machines into rack1: worker-01 … worker-40`.
fn adoption_message(adoptions: &[Adoption]) -> String {
    let group = |g: &str| {
        if g.is_empty() {
            "/".to_string()
        } else {
            g.to_string()
        }
    };
    match adoptions {
        [one] => format!(
            "adopt {} into {} ({}{})",
            one.hostname,
            group(&one.group),
            one.profile,
            if one.install { ", to install" } else { "" }
        ),
        [first, .., last] => {
            let mut groups: Vec<String> = adoptions.iter().map(|a| group(&a.group)).collect();
            groups.dedup();
            format!(
                "adopt {} machines into {}: {} … {}",
                adoptions.len(),
                groups.join(", "),
                first.hostname,
                last.hostname
            )
        }
        [] => "adopt nothing".into(),
    }
}

/// `dev-01: install: false`, `dev-01: profile: talos, ip: 10.0.0.5`.
fn change_message(hostname: &str, changes: &[(&str, Scalar)]) -> String {
    format!("{hostname}: {}", changes_said(changes))
}

/// `profile: talos, ip: 10.0.0.5`.
fn changes_said(changes: &[(&str, Scalar)]) -> String {
    let said: Vec<String> = changes
        .iter()
        .map(|(key, value)| match value {
            Scalar::Bool(b) => format!("{key}: {b}"),
            Scalar::Str(s) => format!("{key}: {s}"),
        })
        .collect();
    said.join(", ")
}
