//! The running model behind the API, and the progress sampler.
//!
//! [`LiveModel`] folds the bus into a [`Model`] and re-publishes every event
//! *after* folding it, under the same lock. A subscriber that takes a
//! snapshot and subscribes in one critical section therefore sees every
//! event exactly once: those before the snapshot are in it, those after
//! arrive on its channel. That is what lets `pxedeck attach` rebuild the
//! same state as the embedded console.
//!
//! The API's snapshot is serialised once per model generation and shared
//! (every event-stream client and `/api/v1/state` at that generation get
//! the same bytes), and event-stream clients are counted against a cap.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::event::{Bus, Event, EventKind, Paced};
use crate::model::Model;
use crate::progress::ProgressTable;

/// Events folded per lock hold at most.
const MAX_BATCH: usize = 1024;

pub struct LiveModel {
    model: Mutex<Model>,
    folded: broadcast::Sender<Arc<Event>>,
    /// The last snapshot serialised, while anyone still holds it.
    shared: Mutex<Option<(u64, Weak<Vec<u8>>)>>,
    pub subscribers: Subscribers,
}

impl Default for LiveModel {
    fn default() -> Self {
        LiveModel::new(Model::default())
    }
}

/// What an SSE snapshot event starts and ends with. The shared snapshot is
/// kept framed, so the stream sends it as it is (no copy per client).
const SNAPSHOT_PREFIX: &[u8] = b"event: snapshot\ndata: ";
const SNAPSHOT_SUFFIX: &[u8] = b"\n\n";

/// The model as JSON, serialised once and shared by reference count.
#[derive(Clone)]
pub struct SharedSnapshot {
    framed: Bytes,
}

impl SharedSnapshot {
    /// The SSE `snapshot` event: `event: snapshot`, the JSON, a blank line.
    pub fn sse_event(&self) -> Bytes {
        self.framed.clone()
    }

    /// The JSON alone (`/api/v1/state`), a view into the same bytes.
    pub fn json(&self) -> Bytes {
        self.framed
            .slice(SNAPSHOT_PREFIX.len()..self.framed.len() - SNAPSHOT_SUFFIX.len())
    }
}

/// Lets `Bytes` borrow a buffer the cache can still find (by `Weak`).
struct SharedBuf(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl LiveModel {
    /// A live model starting from `model` (its cap on unknown rows is the
    /// one the fold keeps).
    pub fn new(model: Model) -> LiveModel {
        LiveModel {
            model: Mutex::new(model),
            folded: broadcast::channel(16 * 1024).0,
            shared: Mutex::new(None),
            subscribers: Subscribers::default(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the model and a channel of every event folded after it.
    pub fn snapshot_and_subscribe(&self) -> (Model, broadcast::Receiver<Arc<Event>>) {
        let guard = self.lock();
        (guard.clone(), self.folded.subscribe())
    }

    /// The model as shared JSON and a channel of every event folded after
    /// it: what the event stream sends, without a copy of the model per
    /// client.
    pub fn shared_snapshot_and_subscribe(
        &self,
    ) -> serde_json::Result<(SharedSnapshot, broadcast::Receiver<Arc<Event>>)> {
        let guard = self.lock();
        let snapshot = self.shared_snapshot_of(&guard)?;
        Ok((snapshot, self.folded.subscribe()))
    }

    /// The model as shared JSON (`/api/v1/state`).
    pub fn shared_snapshot(&self) -> serde_json::Result<SharedSnapshot> {
        let guard = self.lock();
        self.shared_snapshot_of(&guard)
    }

    /// Serialises the model unless a snapshot of this generation is still
    /// held by someone. Runs under the model lock: the snapshot must be
    /// of exactly the state the caller subscribes after, and writing it
    /// straight from the model costs no copy of the model.
    fn shared_snapshot_of(&self, model: &Model) -> serde_json::Result<SharedSnapshot> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let held = shared
            .as_ref()
            .filter(|(generation, _)| *generation == model.generation)
            .and_then(|(_, weak)| weak.upgrade());
        let buf = match held {
            Some(buf) => buf,
            None => {
                let mut out = Vec::with_capacity(64 * 1024);
                out.extend_from_slice(SNAPSHOT_PREFIX);
                serde_json::to_writer(&mut out, model)?;
                out.extend_from_slice(SNAPSHOT_SUFFIX);
                out.shrink_to_fit();
                let buf = Arc::new(out);
                *shared = Some((model.generation, Arc::downgrade(&buf)));
                buf
            }
        };
        Ok(SharedSnapshot {
            framed: Bytes::from_owner(SharedBuf(buf)),
        })
    }

    /// Folds a batch under one lock: under load the task wakes once for
    /// many events instead of once per event. Gives the lock back after
    /// `MAX_BATCH` so readers (the API, a new console) never wait long.
    fn fold(&self, first: Arc<Event>, rx: &mut Paced<Arc<Event>>, bus: &Bus) {
        let mut guard = self.lock();
        let mut event = first;
        for n in 1.. {
            guard.apply(&event);
            let _ = self.folded.send(event);
            if n == MAX_BATCH {
                return;
            }
            event = match rx.try_recv() {
                Ok(e) => e,
                Err(broadcast::error::TryRecvError::Lagged(k)) => {
                    bus.note_lagged(k);
                    return;
                }
                Err(_) => return,
            };
        }
    }

    /// Folds the bus until cancelled. A lag (the model fell more than the
    /// bus's capacity behind) is counted on the bus; what was lost is lost
    /// for counters, and machine rows heal with their next event.
    ///
    /// Subscribes *before* it returns the future: every event emitted after
    /// this call is folded, however late the task first runs (no
    /// `yield_now` and hope).
    pub fn run(
        self: Arc<Self>,
        bus: Bus,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Under load, events queue for a moment (`Paced`): one wake-up
        // and one lock hold per batch instead of per event keeps the
        // emitters' threads off the futex.
        let mut rx = Paced::new(bus.subscribe());
        async move {
            loop {
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = cancel.cancelled() => return,
                };
                match received {
                    Ok(event) => self.fold(event, &mut rx, &bus),
                    Err(broadcast::error::RecvError::Lagged(n)) => bus.note_lagged(n),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

/// Event-stream clients connected now, against a cap, and those refused.
#[derive(Default)]
pub struct Subscribers {
    active: Arc<AtomicUsize>,
    refused: AtomicU64,
}

/// One event-stream client's place; dropping it (the stream ends or the
/// client goes) frees it.
pub struct SubscriberSlot {
    active: Arc<AtomicUsize>,
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscribers {
    /// A place for one more client, unless `cap` are connected (then the
    /// refusal is counted).
    pub fn join(&self, cap: usize) -> Option<SubscriberSlot> {
        let joined = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            });
        match joined {
            Ok(_) => Some(SubscriberSlot {
                active: self.active.clone(),
            }),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// How often live transfers' byte counts are sampled onto the bus.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Emits one [`EventKind::Progress`] per tick while transfers run; nothing
/// when idle.
pub async fn sample_progress(progress: Arc<ProgressTable>, bus: Bus, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let samples = progress.sample();
        if !samples.is_empty() && samples != last {
            bus.emit(EventKind::Progress {
                samples: samples.clone(),
            });
        }
        last = samples;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;

    #[tokio::test(flavor = "current_thread")]
    async fn events_emitted_before_the_fold_task_first_runs_are_folded() {
        let bus = Bus::new(64);
        let live = Arc::new(LiveModel::default());
        let cancel = CancellationToken::new();
        let fold = live.clone().run(bus.clone(), cancel.clone());
        // Emitted before the task is even spawned, let alone polled.
        bus.emit(EventKind::Log {
            level: Level::Info,
            target: "t".into(),
            message: "early".into(),
        });
        let task = tokio::spawn(fold);
        for _ in 0..100 {
            if !live.lock().log.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            live.lock().log.back().map(|l| l.message.as_str()),
            Some("early")
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[test]
    fn a_snapshot_is_serialised_once_per_generation_while_it_is_held() {
        let live = LiveModel::default();
        let (a, _rx) = live.shared_snapshot_and_subscribe().unwrap();
        let b = live.shared_snapshot().unwrap();
        assert_eq!(a.sse_event().as_ptr(), b.sse_event().as_ptr(), "shared");
        assert!(a.sse_event().starts_with(b"event: snapshot\ndata: {"));
        let json: Model = serde_json::from_slice(&b.json()).unwrap();
        assert_eq!(json.generation, 0);
        live.lock().apply(&Event {
            at: 1,
            kind: EventKind::Log {
                level: Level::Info,
                target: "t".into(),
                message: "m".into(),
            },
        });
        let c = live.shared_snapshot().unwrap();
        assert_ne!(c.json(), b.json(), "a new generation is serialised anew");
        drop((a, b, c));
        // Nobody holds it: the cache keeps no bytes alive.
        assert!(
            live.shared
                .lock()
                .unwrap()
                .as_ref()
                .unwrap()
                .1
                .upgrade()
                .is_none()
        );
    }

    #[test]
    fn subscribers_over_the_cap_are_refused_and_counted() {
        let subs = Subscribers::default();
        let first = subs.join(2).unwrap();
        let _second = subs.join(2).unwrap();
        assert!(subs.join(2).is_none());
        assert_eq!((subs.active(), subs.refused()), (2, 1));
        drop(first);
        assert!(subs.join(2).is_some());
    }
}
