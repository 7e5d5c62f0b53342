//! `done_on_next_boot`: for installers that never call back and fetch no
//! config, the boot after the installer counts as the done callback.
//!
//! The HTTP side remembers when each such machine was last handed its
//! installer script. When the same machine asks for its boot script again
//! at least [`MIN_INSTALL`] later, the installer has run and rebooted it:
//! the install is marked done (`install: false`, as `/done` does) and that
//! very request is answered with the local-disk script. A request sooner
//! than that (iPXE failing a download and rebooting at once) is a retry of
//! the installer, not a finished install.
//!
//! In memory only: after a restart of pxedeck the next boot of a machine
//! that was mid-install is served its installer again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Millis;

/// A boot script asked for sooner than this after the installer is a
/// retry, not the boot after an install.
pub const MIN_INSTALL: Millis = 60_000;
/// The most machines remembered at once (the inventory's file cap);
/// past it, entries older than a day are dropped first, then no new one
/// is taken (that machine then waits for its callback like any other).
pub const MAX_REMEMBERED: usize = 100_000;
const DAY: Millis = 24 * 3600 * 1000;

#[derive(Debug)]
pub struct NextBoot {
    /// [`MIN_INSTALL`] but in tests.
    min: Millis,
    served: Mutex<HashMap<String, Millis>>,
}

impl Default for NextBoot {
    fn default() -> NextBoot {
        NextBoot::with_min(MIN_INSTALL)
    }
}

impl NextBoot {
    /// With another least time between installer and next boot (tests).
    pub fn with_min(min: Millis) -> NextBoot {
        NextBoot {
            min,
            served: Mutex::default(),
        }
    }

    /// `hostname` (with `done_on_next_boot`) is about to be served its
    /// installer at `now`. True when this is the boot after an earlier
    /// installer: the install is done, and the machine is served its disk.
    pub fn install_requested(&self, hostname: &str, now: Millis) -> bool {
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        match served.get(hostname) {
            Some(&at) if now.saturating_sub(at) >= self.min => {
                served.remove(hostname);
                true
            }
            Some(_) => {
                served.insert(hostname.to_string(), now);
                false
            }
            None => {
                if served.len() >= MAX_REMEMBERED {
                    served.retain(|_, at| now.saturating_sub(*at) < DAY);
                }
                if served.len() < MAX_REMEMBERED {
                    served.insert(hostname.to_string(), now);
                }
                false
            }
        }
    }

    pub fn len(&self) -> usize {
        self.served.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_after_the_installer_is_done_and_a_quick_retry_is_not() {
        let n = NextBoot::default();
        assert!(!n.install_requested("w1", 1_000), "first: the installer");
        assert!(!n.install_requested("w1", 5_000), "a retry 4 s later");
        assert!(
            !n.install_requested("w1", 5_000 + MIN_INSTALL - 1),
            "measured from the retry"
        );
        let last = 5_000 + MIN_INSTALL - 1;
        assert!(
            !n.install_requested("w1", last + MIN_INSTALL - 1),
            "each retry starts the clock again"
        );
        let last = last + MIN_INSTALL - 1;
        assert!(n.install_requested("w1", last + MIN_INSTALL), "done");
        assert!(n.is_empty(), "forgotten once done");
        assert!(
            !n.install_requested("w1", 10 * MIN_INSTALL),
            "a new install"
        );
    }

    #[test]
    fn it_remembers_at_most_its_cap_and_old_entries_give_way() {
        let n = NextBoot::default();
        for i in 0..MAX_REMEMBERED + 50 {
            n.install_requested(&format!("m{i}"), 0);
        }
        assert_eq!(n.len(), MAX_REMEMBERED, "never past the cap");
        // A day later the old entries go to make room.
        assert!(!n.install_requested("new", DAY + 1));
        assert_eq!(n.len(), 1);
    }
}
