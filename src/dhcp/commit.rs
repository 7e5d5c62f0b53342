//! Pipelined group commit of lease changes.
//!
//! A socket loop decides a batch under the lease lock, appends its changes
//! to the journal (a `write`, no sync) and registers the batch here with a
//! ticket. One thread syncs: it takes every batch registered so far, runs a
//! single `fdatasync` without the lease lock, and tells each batch its fate.
//! While that sync runs the loops go on receiving and deciding, so the next
//! sync covers everything that arrived during this one: the group grows
//! with the backlog, and replies that need nothing durable (offers, NAKs,
//! proxy answers) never wait for the disk.
//!
//! When a sync fails every batch not yet durable is undone, newest first
//! ([`LeaseTable::roll_back`](super::leases::LeaseTable::roll_back)), and
//! told so: its ACKs never leave and its bindings are never shown.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::leases::LeaseTable;
use super::store::LeaseJournal;

/// What became of a registered batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// On disk: its replies may leave.
    Durable,
    /// The journal could not be synced; the batch was undone.
    Failed(String),
}

/// Told a batch's fate, once, on the sync thread.
pub type Notify = Box<dyn FnOnce(u64, Fate) + Send>;

/// The lease table and the journal that keeps it, under one lock.
pub struct Leases {
    pub table: LeaseTable,
    pub journal: Box<dyn LeaseJournal>,
    /// The last ticket handed out; tickets grow by one per batch.
    ticket: u64,
}

impl Leases {
    pub fn new(table: LeaseTable, journal: Box<dyn LeaseJournal>) -> Leases {
        Leases {
            table,
            journal,
            ticket: 0,
        }
    }

    /// The ticket of the next batch to decide.
    pub fn next_ticket(&mut self) -> u64 {
        self.ticket += 1;
        self.ticket
    }
}

#[derive(Default)]
struct Queue {
    /// Batches written and waiting for a sync, oldest first.
    waiting: VecDeque<(u64, Notify)>,
    /// Every batch up to this ticket is durable (a compaction synced it),
    /// whatever an older sync in flight reports.
    durable_through: u64,
    stop: bool,
}

struct Shared {
    leases: Mutex<Leases>,
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// Owns the lease lock and the sync thread; dropping it stops the thread.
pub struct Committer {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Committer {
    pub fn start(leases: Leases) -> Committer {
        let shared = Arc::new(Shared {
            leases: Mutex::new(leases),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let for_thread = shared.clone();
        // A thread, not a task: fdatasync blocks for milliseconds, and the
        // runtime's workers are for packets.
        std::thread::Builder::new()
            .name("lease-sync".into())
            .spawn(move || sync_loop(&for_thread))
            .expect("spawn the lease sync thread");
        Committer { shared }
    }

    /// The lease table and journal. Register a batch while still holding
    /// it, so that batches are registered in the order they were decided.
    pub fn leases(&self) -> MutexGuard<'_, Leases> {
        lock(&self.shared.leases)
    }

    /// Registers the batch `ticket`, already appended to the journal and
    /// sealed in the table; `notify` hears when it is durable or undone.
    /// Call with the lease lock held (the guard proves it).
    pub fn register(&self, _held: &mut Leases, ticket: u64, notify: Notify) {
        let mut queue = lock(&self.shared.queue);
        queue.waiting.push_back((ticket, notify));
        self.shared.wake.notify_one();
    }

    /// Everything decided up to `ticket` is durable already (the append
    /// compacted the journal into a synced snapshot): keeps those batches
    /// and tells every waiting one at once.
    pub fn durable_now(&self, held: &mut Leases, ticket: u64) {
        held.table.keep_through(ticket);
        let done: Vec<_> = {
            let mut queue = lock(&self.shared.queue);
            queue.durable_through = queue.durable_through.max(ticket);
            queue.waiting.drain(..).collect()
        };
        for (t, notify) in done {
            notify(t, Fate::Durable);
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_one();
    }
}

fn sync_loop(shared: &Shared) {
    loop {
        let taken: Vec<(u64, Notify)> = {
            let mut queue = lock(&shared.queue);
            while queue.waiting.is_empty() && !queue.stop {
                queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.waiting.is_empty() {
                return;
            }
            queue.waiting.drain(..).collect()
        };
        let Some(&(through, _)) = taken.last() else {
            continue;
        };
        // Every batch taken was written before it was registered, so one
        // sync of the file as it is now covers them all.
        let syncer = lock(&shared.leases).journal.syncer();
        let result = syncer.and_then(|sync| sync());
        let mut leases = lock(&shared.leases);
        match result {
            Ok(()) => {
                leases.table.keep_through(through);
                drop(leases);
                for (t, notify) in taken {
                    notify(t, Fate::Durable);
                }
            }
            Err(e) => {
                let why = e.to_string();
                leases.table.roll_back();
                // Batches registered since were decided on top of these and
                // were undone with them.
                let (later, durable_through) = {
                    let mut queue = lock(&shared.queue);
                    (
                        queue.waiting.drain(..).collect::<Vec<_>>(),
                        queue.durable_through,
                    )
                };
                drop(leases);
                for (t, notify) in taken.into_iter().chain(later) {
                    let fate = if t <= durable_through {
                        Fate::Durable
                    } else {
                        Fate::Failed(why.clone())
                    };
                    notify(t, fate);
                }
            }
        }
    }
}
