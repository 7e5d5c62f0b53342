//! Sampling a flooding machine's history: its repeatable events are
//! recorded at most [`REPEATS_PER_SECOND`] a second, the rest counted.

use std::collections::HashMap;

use crate::event::EventKind;

/// A machine's repeatable events recorded per second of event time; past
/// it they are counted, not written.
pub const REPEATS_PER_SECOND: u32 = 32;

/// How often the count of events left out is said.
const FLOOD_REPORT_EVERY_MS: u64 = 60_000;

/// Per owner, the repeatable events of the current second.
#[derive(Default)]
pub(super) struct Flood {
    seconds: HashMap<String, (u64, u32)>,
    /// Left out since the last report, and when that was (wall clock).
    skipped: u64,
    reported_at: u64,
}

impl Flood {
    /// May this event of `owner`'s, at `at` (ms), be recorded?
    pub(super) fn admit(&mut self, owner: &str, kind: &EventKind, at: u64) -> bool {
        use EventKind as E;
        let repeatable = matches!(
            kind,
            E::DhcpSeen(_)
                | E::DhcpReplied { .. }
                | E::ScriptServed { .. }
                | E::ConfigServed { .. }
        );
        if !repeatable {
            return true;
        }
        let second = at / 1000;
        if let Some((s, n)) = self.seconds.get_mut(owner) {
            // Events reach the bus slightly out of order across threads:
            // only a later second starts the count afresh.
            if second > *s {
                (*s, *n) = (second, 0);
            }
            *n += 1;
            if *n > REPEATS_PER_SECOND {
                self.skipped += 1;
                return false;
            }
            return true;
        }
        if self.seconds.len() >= super::TRANSFERS_REMEMBERED {
            self.seconds.clear();
        }
        self.seconds.insert(owner.to_string(), (second, 1));
        true
    }

    /// The count to say now, if one is due (once a minute at most).
    pub(super) fn report(&mut self, now: u64) -> Option<u64> {
        if self.skipped == 0 || now < self.reported_at + FLOOD_REPORT_EVERY_MS {
            return None;
        }
        self.reported_at = now;
        self.take_skipped()
    }

    /// The count not yet said, said now (at stop, whenever it is due).
    pub(super) fn take_skipped(&mut self) -> Option<u64> {
        Some(std::mem::take(&mut self.skipped)).filter(|&n| n > 0)
    }
}

impl Flood {
    /// Owners whose current second is counted.
    #[cfg(test)]
    pub(super) fn owners(&self) -> usize {
        self.seconds.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_served() -> EventKind {
        EventKind::ConfigServed {
            client: "10.0.0.5".parse().unwrap(),
            hostname: "n1".into(),
            name: "user-data".into(),
        }
    }

    #[test]
    fn the_owners_counted_stay_within_the_cap() {
        let mut f = Flood::default();
        let cap = crate::history::TRANSFERS_REMEMBERED;
        for n in 0..cap + 10_000 {
            assert!(f.admit(&format!("owner-{n}"), &config_served(), 1_000));
            assert!(f.owners() <= cap);
        }
        // An owner new since the map started over is held to the limit.
        for _ in 0..REPEATS_PER_SECOND {
            f.admit("flooder", &config_served(), 2_000);
        }
        assert!(!f.admit("flooder", &config_served(), 2_000));
        assert_eq!(f.take_skipped(), Some(1));
        assert_eq!(f.take_skipped(), None);
    }
}
