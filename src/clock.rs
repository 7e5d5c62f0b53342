//! Wall-clock time as the rest of the crate passes it around.
//!
//! Everything that decides by time (lease expiry, timelines, stuck
//! detection) takes a [`Millis`] argument instead of reading the clock, so
//! tests need no sleeping; only the socket shells call [`now_millis`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: serialisable, comparable, injectable.
pub type Millis = u64;

pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
