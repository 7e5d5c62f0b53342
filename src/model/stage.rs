//! Where each machine is in a mass boot: the stage it reached (DHCP →
//! loader → script → kernel → initrd → config → done), since when, whether
//! it is stuck there, and the counts and throughput of the whole rack.
//!
//! A stage is entered by the event that starts it: a firmware DISCOVER
//! starts a boot, the first download before the script is the loader, the
//! script, the first download after the script is the kernel (every script
//! pxedeck renders fetches the kernel first), any later one an initrd, a
//! config fetch, the done callback. A machine is *stuck* when it has been
//! idle in a stage (no transfer running, nothing new) for longer than that
//! stage's timeout. Stuck is decided at a time the caller passes, never by
//! reading a clock: the fold stays pure and `attach` agrees with the server.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Model;
use super::machines::{MachineRow, MachineState};
use crate::clock::Millis;

/// Done timestamps kept for the done-per-minute rate; a rack finishing
/// faster than this per minute reads as "at least this many".
pub const DONE_TIMES_KEPT: usize = 4096;
/// The window of the throughput rate.
pub const RATE_WINDOW_MS: Millis = 60_000;

/// A step of a network boot, in the order a machine goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Dhcp,
    Loader,
    Script,
    Kernel,
    Initrd,
    Config,
    Done,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Dhcp,
        Stage::Loader,
        Stage::Script,
        Stage::Kernel,
        Stage::Initrd,
        Stage::Config,
        Stage::Done,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Dhcp => "DHCP",
            Stage::Loader => "loader",
            Stage::Script => "script",
            Stage::Kernel => "kernel",
            Stage::Initrd => "initrd",
            Stage::Config => "config",
            Stage::Done => "done",
        }
    }

    /// What a machine in this stage asks for next, for "no … after …".
    fn next_request(self) -> &'static str {
        match self {
            Stage::Dhcp => "loader request",
            Stage::Loader => "script request",
            Stage::Script => "kernel request",
            Stage::Kernel => "initrd request",
            Stage::Initrd => "config request",
            Stage::Config => "done callback",
            Stage::Done => "request",
        }
    }

    /// The stage's words after "after": "the script", "DHCP".
    fn after(self) -> &'static str {
        match self {
            Stage::Dhcp => "DHCP",
            Stage::Loader => "the loader",
            Stage::Script => "the script",
            Stage::Kernel => "the kernel",
            Stage::Initrd => "the initrd",
            Stage::Config => "the config",
            Stage::Done => "done",
        }
    }
}

/// How long a machine may sit idle in each stage before it is stuck.
/// Set from the config file's `stuck_after` (see docs/operating.md); the
/// defaults leave room for slow firmware and a real installer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageTimeouts {
    pub dhcp: Millis,
    pub loader: Millis,
    pub script: Millis,
    pub kernel: Millis,
    pub initrd: Millis,
    /// From the config fetch to the done callback: the whole install.
    pub config: Millis,
}

impl Default for StageTimeouts {
    fn default() -> Self {
        const MIN: Millis = 60_000;
        StageTimeouts {
            dhcp: 2 * MIN,
            loader: 2 * MIN,
            script: 3 * MIN,
            kernel: 3 * MIN,
            initrd: 3 * MIN,
            config: 45 * MIN,
        }
    }
}

impl StageTimeouts {
    /// The timeout of a stage; `None` for done (a machine there is not
    /// waiting for anything).
    pub fn of(&self, stage: Stage) -> Option<Millis> {
        match stage {
            Stage::Dhcp => Some(self.dhcp),
            Stage::Loader => Some(self.loader),
            Stage::Script => Some(self.script),
            Stage::Kernel => Some(self.kernel),
            Stage::Initrd => Some(self.initrd),
            Stage::Config => Some(self.config),
            Stage::Done => None,
        }
    }

    /// Sets a stage's timeout by its config name; false for a name that
    /// is no stage with a timeout.
    pub fn set(&mut self, name: &str, after: Duration) -> bool {
        let ms = after.as_millis().min(u128::from(u64::MAX)) as Millis;
        let slot = match name {
            "dhcp" => &mut self.dhcp,
            "loader" => &mut self.loader,
            "script" => &mut self.script,
            "kernel" => &mut self.kernel,
            "initrd" => &mut self.initrd,
            "config" => &mut self.config,
            _ => return false,
        };
        *slot = ms;
        true
    }
}

/// A machine idle in a stage past its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stuck {
    pub stage: Stage,
    /// How long it has been idle there.
    pub idle: Millis,
}

impl Stuck {
    /// "no kernel request 3m after the script".
    pub fn describe(&self, age: impl Fn(Millis) -> String) -> String {
        format!(
            "no {} {} after {}",
            self.stage.next_request(),
            age(self.idle),
            self.stage.after()
        )
    }
}

/// How many machines are in each stage and condition, and how fast the
/// rack finishes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    /// Machines in each stage, in [`Stage::ALL`] order (failed and stuck
    /// ones included where they stopped).
    pub stages: [usize; 7],
    pub failed: usize,
    pub stuck: usize,
    pub held: usize,
    /// Machines that reached done in the last minute.
    pub done_per_minute: usize,
}

impl Overview {
    pub fn in_stage(&self, stage: Stage) -> usize {
        self.stages[stage as usize]
    }
}

/// The stage an event moves a machine to, if it moves it.
pub(super) enum Entered {
    /// A firmware (not iPXE, not an installer) asked for an address.
    FirmwareDhcp,
    Transfer,
    Script,
    LocalBoot,
    Config,
    Done,
}

impl MachineRow {
    /// Moves the machine along its boot. `idle_since` moves with every
    /// sign of life, the stage only when a new one starts.
    pub(super) fn advance(&mut self, at: Millis, entered: Entered) {
        let next = match (entered, self.stage) {
            // An installer's own DHCP (after the kernel) is not a new boot.
            (Entered::FirmwareDhcp, Some(Stage::Kernel | Stage::Initrd | Stage::Config)) => None,
            (Entered::FirmwareDhcp, Some(Stage::Dhcp)) => None,
            (Entered::FirmwareDhcp, _) => Some(Stage::Dhcp),
            (Entered::Transfer, None | Some(Stage::Dhcp | Stage::Done)) => Some(Stage::Loader),
            (Entered::Transfer, Some(Stage::Script)) => Some(Stage::Kernel),
            (Entered::Transfer, Some(Stage::Kernel)) => Some(Stage::Initrd),
            (Entered::Transfer, Some(_)) => None,
            (Entered::Script, _) => Some(Stage::Script),
            (Entered::LocalBoot | Entered::Done, _) => Some(Stage::Done),
            (Entered::Config, _) => Some(Stage::Config),
        };
        if let Some(stage) = next
            && self.stage != Some(stage)
        {
            self.stage = Some(stage);
            self.stage_since = at;
        }
        self.idle_since = self.idle_since.max(at);
    }

    /// A sign of life that starts no stage (a transfer ending, a poll).
    pub(super) fn touch(&mut self, at: Millis) {
        self.idle_since = self.idle_since.max(at);
    }

    /// Whether the machine is stuck at `now`: idle in a stage with a
    /// timeout for longer than it, with no transfer running. Failed, held
    /// and ignored machines are not stuck: they are where they are for a
    /// reason the console already shows.
    pub fn stuck(&self, now: Millis, timeouts: &StageTimeouts) -> Option<Stuck> {
        let stage = self.stage?;
        if self.transfer.is_some()
            || matches!(
                self.state,
                MachineState::Failed
                    | MachineState::Held
                    | MachineState::Discovered
                    | MachineState::Known
            )
        {
            return None;
        }
        let limit = timeouts.of(stage)?;
        let idle = now.saturating_sub(self.idle_since);
        (idle > limit).then_some(Stuck { stage, idle })
    }
}

impl Model {
    pub(super) fn note_done(&mut self, at: Millis) {
        if self.done_times.len() == DONE_TIMES_KEPT {
            self.done_times.pop_front();
        }
        self.done_times.push_back(at);
    }

    /// The stuck machine behind `mac`'s row, at `now`.
    pub fn stuck_at(&self, row: &MachineRow, now: Millis) -> Option<Stuck> {
        row.stuck(now, &self.stage_timeouts)
    }

    /// The counts per stage and condition at `now`.
    pub fn overview(&self, now: Millis) -> Overview {
        let mut o = Overview::default();
        for m in &self.machines {
            if let Some(stage) = m.stage {
                o.stages[stage as usize] += 1;
            }
            match m.state {
                MachineState::Failed => o.failed += 1,
                MachineState::Held => o.held += 1,
                _ if self.stuck_at(m, now).is_some() => o.stuck += 1,
                _ => {}
            }
        }
        o.done_per_minute = done_within(&self.done_times, now, RATE_WINDOW_MS);
        o
    }

    /// Stuck machines at `now`, as (hostname or MAC, why), for the alert.
    pub fn stuck_machines(&self, now: Millis) -> Vec<(&MachineRow, Stuck)> {
        self.machines
            .iter()
            .filter_map(|m| self.stuck_at(m, now).map(|s| (m, s)))
            .collect()
    }
}

fn done_within(times: &VecDeque<Millis>, now: Millis, window: Millis) -> usize {
    times
        .iter()
        .rev()
        .take_while(|&&t| now.saturating_sub(t) < window)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::Mac;

    fn row() -> MachineRow {
        MachineRow::new("52:54:00:00:00:01".parse::<Mac>().unwrap())
    }

    #[test]
    fn a_boot_walks_the_stages_in_order() {
        let mut m = row();
        let steps = [
            (Entered::FirmwareDhcp, Stage::Dhcp),
            (Entered::Transfer, Stage::Loader),
            (Entered::FirmwareDhcp, Stage::Dhcp),
            (Entered::Transfer, Stage::Loader),
            (Entered::Script, Stage::Script),
            (Entered::Transfer, Stage::Kernel),
            (Entered::Transfer, Stage::Initrd),
            (Entered::Transfer, Stage::Initrd),
            // The installer's DHCP is no new boot.
            (Entered::FirmwareDhcp, Stage::Initrd),
            (Entered::Config, Stage::Config),
            (Entered::Done, Stage::Done),
            // The next boot starts over.
            (Entered::FirmwareDhcp, Stage::Dhcp),
        ];
        for (at, (entered, want)) in steps.into_iter().enumerate() {
            m.advance(at as Millis * 10, entered);
            assert_eq!(m.stage, Some(want), "step {at}");
        }
    }

    #[test]
    fn idle_past_the_stage_timeout_is_stuck_and_says_where() {
        let t = StageTimeouts::default();
        let mut m = row();
        m.state = MachineState::Booting;
        m.advance(1_000, Entered::Script);
        assert_eq!(m.stuck(1_000 + t.script, &t), None, "at the limit: not yet");
        let s = m.stuck(1_000 + t.script + 1, &t).expect("stuck");
        assert_eq!(s.stage, Stage::Script);
        let words = s.describe(|ms| format!("{}m", ms / 60_000));
        assert_eq!(words, "no kernel request 3m after the script");
        // A running transfer, a failure or the hold loop is no stall.
        m.transfer = Some(1);
        assert_eq!(m.stuck(u64::MAX, &t), None);
        m.transfer = None;
        m.state = MachineState::Failed;
        assert_eq!(m.stuck(u64::MAX, &t), None);
        m.state = MachineState::Booting;
        // Done waits for nothing.
        m.advance(2_000, Entered::Done);
        assert_eq!(m.stuck(u64::MAX, &t), None);
    }

    #[test]
    fn timeouts_are_set_by_name_and_refuse_unknown_names() {
        let mut t = StageTimeouts::default();
        assert!(t.set("kernel", Duration::from_secs(30)));
        assert_eq!(t.kernel, 30_000);
        assert!(!t.set("done", Duration::from_secs(1)));
        assert!(!t.set("bogus", Duration::from_secs(1)));
    }

    #[test]
    fn the_done_rate_counts_the_last_minute_and_stays_bounded() {
        let mut model = Model::default();
        for i in 0..(DONE_TIMES_KEPT as u64 + 10) {
            model.note_done(i);
        }
        assert_eq!(model.done_times.len(), DONE_TIMES_KEPT);
        let now = DONE_TIMES_KEPT as u64 + 10;
        assert_eq!(
            done_within(&model.done_times, now + RATE_WINDOW_MS, RATE_WINDOW_MS),
            0
        );
        let mut times = VecDeque::new();
        times.extend([1_000, 50_000, 70_000, 100_000]);
        assert_eq!(done_within(&times, 100_000, RATE_WINDOW_MS), 3);
    }
}
