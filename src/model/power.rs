//! Machines' power as their BMCs report it, and the outcome of the last
//! BMC action, folded into their rows (the console's Power column and
//! detail line).

use serde::{Deserialize, Serialize};

use super::Model;
use crate::bmc::PowerState;
use crate::clock::Millis;
use crate::event::Level;

/// What the console shows of a machine's BMC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerView {
    /// The last state read; None while the BMC does not answer.
    pub state: Option<PowerState>,
    /// Why the last read failed (auth, timeout, TLS…).
    pub error: Option<String>,
    /// When the state (or error) was last reported.
    pub at: Millis,
    /// The last action and how it ended: `power cycle: done`.
    pub last_action: Option<String>,
}

impl PowerView {
    fn new(at: Millis) -> PowerView {
        PowerView {
            state: None,
            error: None,
            at,
            last_action: None,
        }
    }
}

impl Model {
    fn power_views(&mut self, at: Millis, hostname: &str) -> impl Iterator<Item = &mut PowerView> {
        self.machines
            .iter_mut()
            .filter(move |m| m.hostname.as_deref() == Some(hostname))
            .map(move |m| m.power.get_or_insert_with(|| PowerView::new(at)))
    }

    pub(super) fn bmc_power(
        &mut self,
        at: Millis,
        hostname: &str,
        state: Option<PowerState>,
        error: Option<&str>,
    ) {
        for view in self.power_views(at, hostname) {
            view.state = state;
            view.error = error.map(str::to_string);
            view.at = at;
        }
    }

    pub(super) fn bmc_action(
        &mut self,
        at: Millis,
        hostname: &str,
        action: &str,
        ok: bool,
        message: &str,
    ) {
        let line = format!("{action}: {message}");
        for view in self.power_views(at, hostname) {
            view.last_action = Some(line.clone());
        }
        if ok {
            self.log(at, Level::Info, "bmc", format!("{hostname}: {line}"));
        } else {
            self.counters.errors += 1;
            self.log(at, Level::Error, "bmc", format!("{hostname}: {line}"));
        }
    }
}
