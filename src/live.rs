//! The running model behind the API, and the progress sampler.
//!
//! [`LiveModel`] folds the bus into a [`Model`] and re-publishes every event
//! *after* folding it, under the same lock. A subscriber that takes a
//! snapshot and subscribes in one critical section therefore sees every
//! event exactly once: those before the snapshot are in it, those after
//! arrive on its channel. That is what lets `pxedeck attach` rebuild the
//! same state as the embedded console.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::event::{Bus, Event, EventKind};
use crate::model::Model;
use crate::progress::ProgressTable;

/// How long the fold waits after a batch before looking again. Far below
/// what anyone sees (the console draws at most every 50 ms), far above the
/// gap between events under load.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Events folded per lock hold at most.
const MAX_BATCH: usize = 1024;

pub struct LiveModel {
    model: Mutex<Model>,
    folded: broadcast::Sender<Arc<Event>>,
}

impl Default for LiveModel {
    fn default() -> Self {
        LiveModel {
            model: Mutex::new(Model::default()),
            folded: broadcast::channel(16 * 1024).0,
        }
    }
}

impl LiveModel {
    pub fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the model and a channel of every event folded after it.
    pub fn snapshot_and_subscribe(&self) -> (Model, broadcast::Receiver<Arc<Event>>) {
        let guard = self.lock();
        (guard.clone(), self.folded.subscribe())
    }

    /// Folds a batch under one lock: under load the task wakes once for
    /// many events instead of once per event. Gives the lock back after
    /// `MAX_BATCH` so readers (the API, a new console) never wait long.
    fn fold(&self, first: Arc<Event>, rx: &mut broadcast::Receiver<Arc<Event>>, bus: &Bus) {
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
        let mut rx = bus.subscribe();
        async move {
            loop {
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = cancel.cancelled() => return,
                };
                match received {
                    Ok(event) => {
                        self.fold(event, &mut rx, &bus);
                        // Under load, let events queue for a moment: one
                        // wake-up per batch instead of one per event keeps
                        // the emitters' threads off the futex. Idle, this
                        // costs nothing.
                        tokio::time::sleep(BATCH_WINDOW).await;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => bus.note_lagged(n),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
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
}
