//! Telling systemd how `serve` is doing (`Type=notify`): ready once every
//! socket is bound, reloading while SIGHUP is handled, stopping on the way
//! out, and a watchdog ping at half the unit's `WatchdogSec=`.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) every call does nothing. A
//! failed notification is logged once per kind and never stops serving.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(target: "pxedeck", "cannot notify systemd: {e}");
    }
}

/// Every socket is bound and serving.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload (SIGHUP) begins; systemd ≥ 253 wants the monotonic time with it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// How often to ping: half the watchdog interval systemd asked for
/// (`WATCHDOG_USEC`, for this pid), or None when there is no watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// Pings the watchdog until cancelled. It runs on the main runtime, so a
/// runtime wedged by blocking work stops the pings and systemd restarts
/// the service.
pub async fn watchdog(every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => send(&[NotifyState::Watchdog]),
            _ = cancel.cancelled() => return,
        }
    }
}
