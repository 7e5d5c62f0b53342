//! Reloading the inventory when its files change.
//!
//! A recursive watch on the root sees editor save-by-rename and `git pull`
//! alike; events are debounced so a pull that touches 200 files causes one
//! reload. A tree with problems never replaces the served snapshot: the last
//! good one keeps serving and the problems are reported. Reloads whose files
//! are byte-identical to what is served (the writer's own writes) are
//! silent, and events that only report the writer's own files (it has
//! published them already) cause no load at all: a mass boot's hundreds of
//! done callbacks must not each re-read the tree.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::write::{OwnWrites, SharedInventory};
use super::{LoadOptions, Problem, load};

/// What a reload found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    /// A new snapshot is being served.
    Reloaded { machines: usize, profiles: usize },
    /// The tree has problems; the last good snapshot keeps serving.
    Failed(Vec<Problem>),
}

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// How long file events must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Decides what a fresh load means for the served snapshot. Kept apart from
/// the notify plumbing so it can be tested directly.
pub struct Reloader {
    root: PathBuf,
    opts: LoadOptions,
    shared: SharedInventory,
    last_seen: Option<u64>,
    failing: bool,
    own: Option<Arc<OwnWrites>>,
    loads: Arc<std::sync::atomic::AtomicU64>,
}

impl Reloader {
    pub fn new(root: &Path, opts: LoadOptions, shared: SharedInventory) -> Reloader {
        let last_seen = Some(shared.load().fingerprint);
        Reloader {
            root: root.to_path_buf(),
            opts,
            shared,
            last_seen,
            failing: false,
            own: None,
            loads: Arc::default(),
        }
    }

    /// Skips change events that only report what this writer wrote.
    pub fn ignoring(mut self, own: Arc<OwnWrites>) -> Reloader {
        self.own = Some(own);
        self
    }

    /// Counts the tree loads this reloader makes (tests check that the
    /// writer's own files cause none).
    pub fn load_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.loads.clone()
    }

    /// Whether changes to `paths` call for a load: not when they are all
    /// the writer's own.
    fn must_load(&self, paths: &[PathBuf]) -> bool {
        !self.own.as_ref().is_some_and(|own| own.explain(paths))
    }

    /// Loads the tree; returns what changed, or None when nothing did.
    pub fn reload(&mut self) -> Option<Reload> {
        self.loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let loaded = load(&self.root, &self.opts);
        let fp = loaded.inventory.fingerprint;
        if self.last_seen == Some(fp) && !(self.failing && loaded.is_ok()) {
            return None;
        }
        self.last_seen = Some(fp);
        if !loaded.is_ok() {
            self.failing = true;
            return Some(Reload::Failed(loaded.problems));
        }
        let recovering = std::mem::replace(&mut self.failing, false);
        if fp == self.shared.load().fingerprint && !recovering {
            return None; // the writer already published exactly this
        }
        let (machines, profiles) = (
            loaded.inventory.machines.len(),
            loaded.inventory.profiles.len(),
        );
        self.shared.store(Arc::new(loaded.inventory));
        Some(Reload::Reloaded { machines, profiles })
    }
}

/// Watches `root` and calls `on_change` after each reload that changed
/// something. The callback runs on the watcher's thread.
pub fn watch(
    mut reloader: Reloader,
    on_change: impl Fn(Reload) + Send + 'static,
) -> notify::Result<Watcher> {
    let root = reloader.root.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let relevant = match result {
            Ok(events) => {
                let changes: Vec<_> = events.iter().filter(|e| !e.kind.is_access()).collect();
                // A rescan names no paths: it could be anything.
                let unnamed = changes.iter().any(|e| e.paths.is_empty());
                let paths: Vec<PathBuf> = changes
                    .iter()
                    .flat_map(|e| e.paths.iter().cloned())
                    .collect();
                !changes.is_empty() && (unnamed || reloader.must_load(&paths))
            }
            Err(_) => true, // the watch lost events: reload to be safe
        };
        if relevant && let Some(change) = reloader.reload() {
            on_change(change);
        }
    })?;
    debouncer.watch(&root, RecursiveMode::Recursive)?;
    Ok(Watcher {
        _debouncer: debouncer,
    })
}
