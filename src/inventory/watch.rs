//! Reloading the inventory when its files change.
//!
//! A recursive watch on the root sees editor save-by-rename and `git pull`
//! alike; events are debounced so a pull that touches 200 files causes one
//! reload, which the [`InventoryService`] makes. A tree with problems never
//! replaces the served snapshot: the last good one keeps serving and the
//! problems are reported. Events that only report pxedeck's own writes (it
//! has published them already) cause no load at all: a mass boot's
//! hundreds of done callbacks must not each re-read the tree.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::service::InventoryService;
pub use super::service::Reload;

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// How long file events must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Whether a path is inside a `.git` folder (the repository itself).
fn in_git_dir(path: &std::path::Path) -> bool {
    path.components().any(|c| c.as_os_str() == ".git")
}

/// Watches `root` and calls `on_change` after each reload that changed
/// something. The callback runs on the watcher's thread.
pub fn watch(
    service: Arc<InventoryService>,
    on_change: impl Fn(Reload) + Send + 'static,
) -> notify::Result<Watcher> {
    let root = service.root().to_path_buf();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let relevant = match result {
            Ok(events) => {
                // Git's own files (a commit pxedeck made, a fetch) are not
                // the inventory; a pull also changes the files it checks
                // out, and those count.
                let changes: Vec<_> = events
                    .iter()
                    .filter(|e| !e.kind.is_access())
                    .filter(|e| e.paths.is_empty() || !e.paths.iter().all(|p| in_git_dir(p)))
                    .collect();
                // A rescan names no paths: it could be anything.
                let unnamed = changes.iter().any(|e| e.paths.is_empty());
                let paths: Vec<PathBuf> = changes
                    .iter()
                    .flat_map(|e| e.paths.iter().cloned())
                    .collect();
                !changes.is_empty() && (unnamed || service.must_reload(&paths))
            }
            Err(_) => true, // the watch lost events: reload to be safe
        };
        if relevant && let Some(change) = service.reload() {
            on_change(change);
        }
    })?;
    debouncer.watch(&root, RecursiveMode::Recursive)?;
    Ok(Watcher {
        _debouncer: debouncer,
    })
}
