//! The one task that owns BMC work.
//!
//! Jobs come from [`crate::control::Control`] (console keys, API routes)
//! through a bounded queue that never blocks the sender; a full queue is
//! refused at once. The actor also reads every BMC's power state each
//! `bmc.poll_interval`. At most `bmc.max_concurrent` calls run at once
//! (polls and actions share the permits), each on a blocking thread with
//! the driver's timeout, and one machine's calls run one at a time (a poll
//! is skipped while an action on that machine runs). Outcomes are events:
//! [`EventKind::BmcPower`] when a machine's power or reachability changes,
//! [`EventKind::BmcAction`] after each action.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{BmcError, BmcSpec, Limits, PowerAction, PowerState, perform};
use crate::config::BmcConfig;
use crate::counters::Counts;
use crate::event::{Bus, EventKind};
use crate::inventory::SharedInventory;

/// Jobs waiting for the actor at most: a reinstall of every machine of a
/// large site fits, a runaway client does not.
pub const MAX_QUEUED_JOBS: usize = 4096;

crate::reasons! {
    /// How a BMC call ended, for `/metrics`.
    pub enum CallOutcome {
        Ok => "ok",
        Password => "password",
        Auth => "auth",
        Timeout => "timeout",
        Unreachable => "unreachable",
        Tls => "tls",
        Refused => "refused",
        Unsupported => "unsupported",
        Tool => "tool",
    }
}

impl CallOutcome {
    fn of(result: &Result<Option<PowerState>, BmcError>) -> CallOutcome {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(BmcError::Password(_)) => CallOutcome::Password,
            Err(BmcError::Auth(_)) => CallOutcome::Auth,
            Err(BmcError::Timeout(_)) => CallOutcome::Timeout,
            Err(BmcError::Unreachable(_)) => CallOutcome::Unreachable,
            Err(BmcError::Tls(_)) => CallOutcome::Tls,
            Err(BmcError::Refused(_)) => CallOutcome::Refused,
            Err(BmcError::Unsupported(_)) => CallOutcome::Unsupported,
            Err(BmcError::Tool(_)) => CallOutcome::Tool,
        }
    }
}

/// Exact counts for `/metrics`, bumped by the actor.
#[derive(Default)]
pub struct BmcStats {
    pub polls: Counts<CallOutcome>,
    pub actions: Counts<CallOutcome>,
    /// BMCs whose last poll answered / did not.
    pub reachable: AtomicU64,
    pub unreachable: AtomicU64,
    /// Jobs refused because the queue was full.
    pub refused: AtomicU64,
}

/// What a job does to one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Action(PowerAction),
    /// Boot once from the network, then power cycle (on when off). The
    /// inventory's `install: true` was written before the job was queued.
    Reinstall,
}

impl Plan {
    fn label(self) -> &'static str {
        match self {
            Plan::Action(a) => a.label(),
            Plan::Reinstall => "reinstall",
        }
    }
}

#[derive(Debug)]
struct Job {
    hostname: String,
    plan: Plan,
}

/// The sending side, held by `Control`.
#[derive(Clone)]
pub struct BmcHandle {
    tx: mpsc::Sender<Job>,
    pub stats: Arc<BmcStats>,
}

impl BmcHandle {
    /// Queues a job without waiting. Err when the queue is full.
    pub fn submit(&self, hostname: &str, plan: Plan) -> Result<(), String> {
        self.tx
            .try_send(Job {
                hostname: hostname.to_string(),
                plan,
            })
            .map_err(|_| {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                format!("the BMC queue is full ({MAX_QUEUED_JOBS} jobs waiting); try again later")
            })
    }
}

/// What the actor remembers of a machine's BMC.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    power: Option<PowerState>,
    error: Option<String>,
}

pub struct BmcActor {
    inventory: SharedInventory,
    bus: Bus,
    settings: BmcConfig,
    stats: Arc<BmcStats>,
    rx: mpsc::Receiver<Job>,
    permits: Arc<Semaphore>,
    /// One lock per machine: its calls run one at a time.
    machines: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl BmcActor {
    pub fn new(inventory: SharedInventory, bus: Bus, settings: BmcConfig) -> (BmcActor, BmcHandle) {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_JOBS);
        let stats = Arc::new(BmcStats::default());
        let actor = BmcActor {
            inventory,
            bus,
            permits: Arc::new(Semaphore::new(settings.max_concurrent)),
            settings,
            stats: stats.clone(),
            rx,
            machines: Default::default(),
            seen: Default::default(),
        };
        (actor, BmcHandle { tx, stats })
    }

    /// Runs until cancelled: jobs as they come, the poll on its interval.
    pub async fn run(mut self, cancel: CancellationToken) {
        let poll = self.settings.poll_interval;
        let mut tick = tokio::time::interval(if poll.is_zero() {
            Duration::from_secs(3600)
        } else {
            poll
        });
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick(), if !poll.is_zero() => self.poll_all(&mut tasks),
                job = self.rx.recv() => match job {
                    Some(job) => {
                        let work = self.worker();
                        tasks.spawn(async move { work.job(job).await });
                    }
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tasks.abort_all();
    }

    fn poll_all(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let snapshot = self.inventory.load();
        let mut with_bmc = 0;
        for m in &snapshot.machines {
            if m.bmc.is_some() {
                with_bmc += 1;
                let work = self.worker();
                let hostname = m.hostname.clone();
                tasks.spawn(async move { work.poll(hostname).await });
            }
        }
        // Forget machines that left the inventory (or lost their bmc:).
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|h, _| snapshot.by_hostname(h).is_some_and(|m| m.bmc.is_some()));
        let mut locks = self.machines.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|h, _| snapshot.by_hostname(h).is_some());
        debug_assert!(seen.len() <= with_bmc);
    }

    fn worker(&self) -> Worker {
        Worker {
            inventory: self.inventory.clone(),
            bus: self.bus.clone(),
            limits: Limits {
                timeout: self.settings.timeout,
            },
            stats: self.stats.clone(),
            permits: self.permits.clone(),
            machines: self.machines.clone(),
            seen: self.seen.clone(),
        }
    }
}

/// The state a status call read (both drivers always return one).
fn state_of(read: Option<PowerState>) -> Result<PowerState, BmcError> {
    read.ok_or_else(|| BmcError::Tool("the status call returned no power state".into()))
}

/// What one job or poll needs; cheap to clone into a task.
struct Worker {
    inventory: SharedInventory,
    bus: Bus,
    limits: Limits,
    stats: Arc<BmcStats>,
    permits: Arc<Semaphore>,
    machines: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl Worker {
    fn spec(&self, hostname: &str) -> Option<BmcSpec> {
        self.inventory.load().by_hostname(hostname)?.bmc.clone()
    }

    fn lock_of(&self, hostname: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.machines.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(hostname.to_string()).or_default().clone()
    }

    /// One driver call on a blocking thread, within a permit. The driver
    /// has its own timeout; this one is the backstop for a call that
    /// hangs past it (the thread is left to finish, its answer dropped).
    async fn call(
        &self,
        spec: BmcSpec,
        action: PowerAction,
    ) -> Result<Option<PowerState>, BmcError> {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return Err(BmcError::Tool("pxedeck is stopping".into()));
        };
        let limits = self.limits;
        // A cycle reads the state first: two calls.
        let backstop = limits.timeout * 3;
        let work = tokio::task::spawn_blocking(move || perform(&spec, action, limits));
        match tokio::time::timeout(backstop, work).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(BmcError::Tool(format!("BMC task failed: {e}"))),
            Err(_) => Err(BmcError::Timeout(backstop)),
        }
    }

    async fn poll(self, hostname: String) {
        let lock = self.lock_of(&hostname);
        // An action on this machine is running: it reports the state.
        let Ok(_guard) = lock.try_lock() else { return };
        let Some(spec) = self.spec(&hostname) else {
            return;
        };
        let result = self.call(spec, PowerAction::Status).await;
        self.stats.polls.bump(CallOutcome::of(&result));
        self.record(&hostname, result.and_then(state_of), true);
    }

    async fn job(self, job: Job) {
        let lock = self.lock_of(&job.hostname);
        let _guard = lock.lock().await;
        let Some(spec) = self.spec(&job.hostname) else {
            self.bus.emit(EventKind::BmcAction {
                hostname: job.hostname.clone(),
                action: job.plan.label().into(),
                ok: false,
                message: "no bmc: in the inventory".into(),
            });
            return;
        };
        let steps: Vec<PowerAction> = match job.plan {
            Plan::Action(a) => vec![a],
            Plan::Reinstall => vec![PowerAction::PxeOnce, PowerAction::Cycle],
        };
        let mut outcome = Ok(None);
        for step in steps {
            outcome = self.call(spec.clone(), step).await;
            self.stats.actions.bump(CallOutcome::of(&outcome));
            if outcome.is_err() {
                break;
            }
        }
        let message = match &outcome {
            Ok(_) => "done".to_string(),
            Err(e) => e.to_string(),
        };
        self.bus.emit(EventKind::BmcAction {
            hostname: job.hostname.clone(),
            action: job.plan.label().into(),
            ok: outcome.is_ok(),
            message,
        });
        // Read the state now rather than at the next poll, so the console
        // shows the change (BMCs that change power later are caught by the
        // poll).
        let status = match outcome {
            Ok(Some(state)) if job.plan == Plan::Action(PowerAction::Status) => Ok(Some(state)),
            // The BMC did not answer or let us in: asking again now would
            // only wait as long again.
            Err(
                e @ (BmcError::Password(_)
                | BmcError::Auth(_)
                | BmcError::Tls(_)
                | BmcError::Timeout(_)
                | BmcError::Unreachable(_)),
            ) => Err(e),
            _ => self.call(spec, PowerAction::Status).await,
        };
        self.record(&job.hostname, status.and_then(state_of), false);
    }

    /// Remembers a machine's state and tells the bus when it changed.
    fn record(&self, hostname: &str, result: Result<PowerState, BmcError>, from_poll: bool) {
        let now = match &result {
            Ok(p) => Seen {
                power: Some(*p),
                error: None,
            },
            Err(e) => Seen {
                power: None,
                error: Some(e.to_string()),
            },
        };
        let changed = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let before = seen.insert(hostname.to_string(), now.clone());
            let reachable = seen.values().filter(|s| s.error.is_none()).count() as u64;
            self.stats.reachable.store(reachable, Ordering::Relaxed);
            self.stats
                .unreachable
                .store(seen.len() as u64 - reachable, Ordering::Relaxed);
            before.as_ref() != Some(&now)
        };
        if changed || !from_poll {
            self.bus.emit(EventKind::BmcPower {
                hostname: hostname.to_string(),
                power: now.power,
                error: now.error,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_at_once_and_counts() {
        let inventory: SharedInventory = Arc::new(arc_swap::ArcSwap::from_pointee(
            crate::inventory::Inventory::default(),
        ));
        let settings = BmcConfig {
            poll_interval: Duration::ZERO,
            max_concurrent: 1,
            timeout: Duration::from_secs(1),
        };
        // The actor never runs: nothing drains the queue.
        let (_actor, handle) = BmcActor::new(inventory, Bus::new(16), settings);
        for i in 0..MAX_QUEUED_JOBS {
            handle
                .submit(&format!("m{i}"), Plan::Action(PowerAction::Status))
                .unwrap();
        }
        let refused = handle.submit("one-more", Plan::Reinstall).unwrap_err();
        assert!(refused.contains("queue is full"), "{refused}");
        assert_eq!(handle.stats.refused.load(Ordering::Relaxed), 1);
    }
}
