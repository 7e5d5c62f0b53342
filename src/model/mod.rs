//! The state the console shows, as a pure fold over events: `apply` routes
//! each event to the fold of its area (machines, timeline, transfers,
//! leases, inventory, log, alerts), one file each; `bound` keeps the
//! machines nobody vetted within a cap.
//!
//! The model stores state, not display text: steps and alerts are typed and
//! worded only when shown. `Model::apply` does no I/O and reads no clock:
//! the event's own timestamp is the only time it knows. The embedded
//! console, `pxedeck attach` and the tests all build the same `Model` from
//! the same events.

mod alerts;
mod bound;
mod inventory;
mod leases;
mod log;
mod machines;
mod power;
mod stage;
mod timeline;
mod transfers;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use alerts::{
    Alert, FAILURE_WINDOW_MS, FAILURES_ALERT, POOL_NEARLY_FULL_MIN_SIZE, POOL_NEARLY_FULL_PERCENT,
    ROGUE_QUIET_MS, ROGUE_SERVERS_KEPT, RogueServer,
};
pub use bound::UnknownBound;
pub use inventory::InventoryStatus;
pub use leases::{LeaseKind, LeaseRow, LeaseState};
pub use log::{LOG_LINES, LogLine};
pub use machines::{MachineRow, MachineState};
pub use power::PowerView;
pub use stage::{DONE_TIMES_KEPT, Overview, RATE_WINDOW_MS, Stage, StageTimeouts, Stuck};
pub use timeline::{DhcpStage, Step, StepKind, TIMELINE_LEN};
pub use transfers::{TransferRow, TransferState};

use crate::clock::Millis;
use crate::dhcp::{DhcpMessage, DhcpReply};
use crate::event::{Event, EventKind, ServerInfo};
use crate::ident::Mac;

/// Finished transfers kept for the Transfers view.
pub const RECENT_TRANSFERS: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub dhcp_in: BTreeMap<DhcpMessage, u64>,
    pub dhcp_out: BTreeMap<DhcpReply, u64>,
    pub transfers_done: u64,
    pub transfers_failed: u64,
    pub probes: u64,
    pub bytes_served: u64,
    pub scripts: u64,
    pub configs: u64,
    pub denied: u64,
    pub installs_done: u64,
    pub inventory_reloads: u64,
    /// Error-level log lines and failed commands.
    pub errors: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Model {
    /// Machines seen or known, in order of first appearance.
    pub machines: Vec<MachineRow>,
    #[serde(skip)]
    by_mac: HashMap<Mac, usize>,
    /// The cap on unknown rows and how many it dropped (in the snapshot,
    /// so `attach` folds under the server's cap).
    #[serde(default)]
    pub unknown: UnknownBound,
    /// The row count at which the cap must be looked at again.
    #[serde(skip)]
    row_limit: usize,
    pub leases: BTreeMap<Ipv4Addr, LeaseRow>,
    /// Each MAC's lease address: a rebind moves a MAC without scanning
    /// every lease (a mass boot binds thousands per second).
    #[serde(skip)]
    lease_of: HashMap<Mac, Ipv4Addr>,
    /// Live transfers by id.
    pub transfers: BTreeMap<u64, TransferRow>,
    /// Finished transfers, newest last.
    pub recent: VecDeque<TransferRow>,
    pub counters: Counters,
    pub log: VecDeque<LogLine>,
    pub inventory: InventoryStatus,
    pub rogue_servers: BTreeMap<Ipv4Addr, RogueServer>,
    /// Pools (by subnet) that found no free address since they last gave
    /// one out.
    pub exhausted_pools: Vec<String>,
    /// Where the services listen (from the `Started` event).
    pub server: Option<ServerInfo>,
    /// How long a machine may sit in each stage before it is stuck (from
    /// the config; in the snapshot, so `attach` judges alike).
    #[serde(default)]
    pub stage_timeouts: StageTimeouts,
    /// When installs finished, newest last (bounded): the done rate.
    #[serde(default)]
    pub done_times: VecDeque<Millis>,
    /// Auto-adoptions refused since start (an `auto` rule matched past the
    /// bound per minute, or the write was refused), and when the last was.
    #[serde(default)]
    pub auto_refused: u64,
    #[serde(default)]
    pub auto_refused_at: Option<Millis>,
    /// Bumped on every change: the console redraws when it moves.
    pub generation: u64,
    /// Time of the newest event folded in.
    pub now: Millis,
}

impl Model {
    /// Rebuilds the indexes a deserialised snapshot lacks.
    pub fn reindex(&mut self) {
        self.index_machines();
        self.index_leases();
        self.row_limit = 0;
    }

    /// Folds one event into the model.
    pub fn apply(&mut self, event: &Event) {
        let at = event.at;
        self.now = self.now.max(at);
        self.generation += 1;
        match &event.kind {
            EventKind::Started(info) => self.started(at, info),
            EventKind::DhcpSeen(seen) => self.dhcp_seen(at, seen),
            EventKind::DhcpReplied {
                mac,
                reply,
                ip,
                boot_file,
                proxy,
            } => {
                if *reply == DhcpReply::Offer
                    && !*proxy
                    && let Some(ip) = ip
                {
                    self.lease_offered(at, *mac, *ip);
                }
                self.dhcp_replied(at, *mac, *reply, *ip, boot_file.as_deref())
            }
            EventKind::LeaseBound {
                mac,
                ip,
                hostname,
                expires,
                fixed,
            } => self.lease_bound(LeaseRow {
                ip: *ip,
                mac: *mac,
                hostname: hostname.clone(),
                fixed: *fixed,
                expires: *expires,
                kind: LeaseKind::Bound,
                since: at,
            }),
            EventKind::LeaseEnded { mac, ip, why } => self.lease_ended(at, *mac, *ip, *why),
            EventKind::PoolExhausted { subnet, mac } => self.pool_exhausted(at, subnet, *mac),
            EventKind::RogueDhcp {
                server, offered, ..
            } => self.rogue_dhcp(at, *server, *offered),
            EventKind::TransferStarted {
                id,
                protocol,
                client,
                mac,
                path,
                size,
                blksize,
                windowsize,
            } => self.transfer_started(
                at,
                TransferRow {
                    id: *id,
                    protocol: *protocol,
                    client: *client,
                    mac: *mac,
                    path: path.clone(),
                    size: *size,
                    bytes: 0,
                    started: at,
                    state: TransferState::Running,
                    blksize: *blksize,
                    windowsize: *windowsize,
                },
            ),
            EventKind::Progress { samples } => self.progress(samples),
            EventKind::TransferDone { id, bytes, millis } => {
                self.transfer_done(at, *id, *bytes, *millis)
            }
            EventKind::TransferFailed {
                id,
                bytes,
                reason,
                probe,
            } => self.transfer_failed(at, *id, *bytes, reason, *probe),
            EventKind::ScriptServed {
                client,
                mac,
                hostname,
                kind,
                profile,
                chain,
            } => self.script_served(
                at,
                *mac,
                *client,
                hostname.as_deref(),
                (*kind, *chain),
                profile.as_deref(),
            ),
            EventKind::FactsReported { mac, facts, rule } => {
                self.facts_reported(at, *mac, facts, rule.as_ref())
            }
            EventKind::BootFailed {
                mac,
                hostname,
                stage,
                reason,
            } => self.boot_failed(at, *mac, hostname.as_deref(), *stage, reason),
            EventKind::ConfigServed {
                client,
                hostname,
                name,
            } => self.config_served(at, *client, hostname, name),
            EventKind::AccessDenied {
                client,
                path,
                reason,
            } => self.access_denied(at, *client, path, reason),
            EventKind::InstallDone { hostname, mac } => self.install_done(at, hostname, *mac),
            EventKind::InventoryReloaded {
                machines,
                profiles,
                groups,
                group_info,
            } => self.inventory_reloaded(at, machines, profiles, groups, group_info),
            EventKind::InventoryMachineChanged { machine } => self.machine_changed(at, machine),
            EventKind::InventoryError { problems } => self.inventory_error(at, problems),
            EventKind::InventoryWritten {
                hostname,
                path,
                change,
            } => self.inventory_written(at, hostname, path, change),
            EventKind::CommandFailed { command, error } => self.command_failed(at, command, error),
            EventKind::BmcPower {
                hostname,
                power,
                error,
            } => self.bmc_power(at, hostname, *power, error.as_deref()),
            EventKind::BmcAction {
                hostname,
                action,
                ok,
                message,
            } => self.bmc_action(at, hostname, action, *ok, message),
            EventKind::MachineForgotten { mac } => self.forget(at, *mac),
            EventKind::AutoAdoptRefused {
                mac,
                rule,
                reason,
                refused,
            } => self.auto_adopt_refused(at, *mac, rule, reason, *refused),
            EventKind::Log {
                level,
                target,
                message,
            } => self.log_record(at, *level, target, message),
            EventKind::GitStatus(git) => self.inventory.git = Some(git.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
