//! Live byte counts of running transfers, shared by TFTP and HTTP.
//!
//! A transfer bumps its own atomic as the client acknowledges data; the
//! console samples the whole table on its tick. No event per block.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct ProgressTable {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<AtomicU64>>>,
}

/// A registered transfer; unregisters itself when dropped.
pub struct Handle {
    pub id: u64,
    bytes: Arc<AtomicU64>,
    table: Arc<ProgressTable>,
}

impl Handle {
    pub fn set(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn add(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

impl ProgressTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicU64>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new transfer with a fresh id.
    pub fn register(self: &Arc<Self>) -> Handle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = Arc::new(AtomicU64::new(0));
        self.lock().insert(id, bytes.clone());
        Handle {
            id,
            bytes,
            table: self.clone(),
        }
    }

    /// (id, bytes) of every live transfer.
    pub fn sample(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self
            .lock()
            .iter()
            .map(|(&id, b)| (id, b.load(Ordering::Relaxed)))
            .collect();
        v.sort_unstable();
        v
    }

    pub fn active(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_register_report_and_unregister() {
        let t = Arc::new(ProgressTable::default());
        let a = t.register();
        let b = t.register();
        a.set(100);
        b.add(7);
        b.add(3);
        assert_eq!(t.sample(), vec![(a.id, 100), (b.id, 10)]);
        drop(a);
        assert_eq!(t.active(), 1);
    }
}
