//! Pipelined group commit of lease changes.
//!
//! A socket loop decides a batch under the lease lock, appends its changes
//! to the journal (a `write`, no sync) and registers the batch here with a
//! ticket. One thread syncs: it takes every batch registered so far, runs a
//! single `fdatasync` without the lease lock, and tells each batch its fate.
//! While that sync runs the loops go on receiving and deciding, so the next
//! sync covers everything that arrived during this one: the group grows
//! with the backlog, and replies that need nothing durable (offers, NAKs,
//! proxy answers) never wait for the disk. A sync starts no sooner than
//! [`GATHER`] after the one before it started: under load, fewer and
//! larger syncs for at most that much more latency; after a quiet spell a
//! batch is synced at once.
//!
//! When a sync fails every batch not yet durable is undone, newest first
//! ([`LeaseTable::roll_back`](super::leases::LeaseTable::roll_back)), and
//! told so: its ACKs never leave and its bindings are never shown.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
        Committer::gathering(leases, GATHER)
    }

    /// As [`Committer::start`], with syncs at least `gather` apart.
    pub fn gathering(leases: Leases, gather: Duration) -> Committer {
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
            .spawn(move || sync_loop(&for_thread, gather))
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

/// A sync starts no sooner than this after the one before it started.
/// Syncing back to back made one `fdatasync` per one or two batches
/// (4,500 a second at 8,000 exchanges/s, 18 % of a core); at most one a
/// millisecond lets each cover several, for at most a millisecond more
/// on an ACK. A batch after a quiet millisecond is synced at once.
pub const GATHER: Duration = Duration::from_millis(1);

fn sync_loop(shared: &Shared, gather: Duration) {
    // When the last sync started.
    let mut last: Option<Instant> = None;
    loop {
        {
            let mut queue = lock(&shared.queue);
            while queue.waiting.is_empty() && !queue.stop {
                queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.waiting.is_empty() {
                return; // stopped, nothing left to sync
            }
        }
        if let Some(rest) = last.and_then(|started| gather.checked_sub(started.elapsed())) {
            std::thread::sleep(rest);
        }
        let taken: Vec<(u64, Notify)> = {
            let mut queue = lock(&shared.queue);
            if queue.waiting.is_empty() {
                // Stopped, or a compaction made them durable meanwhile.
                if queue.stop {
                    return;
                }
                continue;
            }
            queue.waiting.drain(..).collect()
        };
        last = Some(Instant::now());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::handler::Persist;
    use crate::dhcp::store::{Appended, LeaseJournal, Syncer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    /// A journal whose syncs take no time and are counted.
    struct Counted(Arc<AtomicUsize>);

    impl LeaseJournal for Counted {
        fn append(&mut self, _: &[Persist], _: &LeaseTable) -> std::io::Result<Appended> {
            Ok(Appended::Written)
        }

        fn syncer(&self) -> std::io::Result<Syncer> {
            let syncs = self.0.clone();
            Ok(Box::new(move || {
                syncs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }))
        }
    }

    fn register(c: &Committer, told: &mpsc::Sender<(u64, Fate)>) {
        let mut held = c.leases();
        let ticket = held.next_ticket();
        let told = told.clone();
        c.register(
            &mut held,
            ticket,
            Box::new(move |t, f| drop(told.send((t, f)))),
        );
    }

    fn committer(gather: Duration) -> (Committer, Arc<AtomicUsize>) {
        let syncs = Arc::new(AtomicUsize::new(0));
        let leases = Leases::new(LeaseTable::default(), Box::new(Counted(syncs.clone())));
        (Committer::gathering(leases, gather), syncs)
    }

    #[test]
    fn a_batch_after_a_quiet_spell_is_synced_at_once() {
        // Syncs 60 s apart: a first batch that waited for that would not
        // be told within the 10 s allowed.
        let (c, _) = committer(Duration::from_secs(60));
        let (tx, rx) = mpsc::channel();
        register(&c, &tx);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            (1, Fate::Durable)
        );
    }

    #[test]
    fn a_busy_stream_is_synced_at_most_once_a_gather() {
        let (c, syncs) = committer(GATHER);
        let (tx, rx) = mpsc::channel();
        // Batches as fast as they can be registered, for 20 ms. Syncs
        // that take no time would otherwise run once per batch or two.
        let started = Instant::now();
        let mut registered = 0;
        while started.elapsed() < Duration::from_millis(20) {
            register(&c, &tx);
            registered += 1;
        }
        for _ in 0..registered {
            let (_, fate) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(fate, Fate::Durable);
        }
        let elapsed = started.elapsed();
        let made = syncs.load(Ordering::Relaxed) as u128;
        // Each sync starts a gather after the one before it, whatever
        // the machine's speed: the first at once, then one per gather.
        assert!(
            made <= elapsed.as_micros() / GATHER.as_micros() + 1,
            "{made} syncs in {elapsed:?} for {registered} batches"
        )
    }
}
