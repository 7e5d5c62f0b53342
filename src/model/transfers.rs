//! Transfers: live downloads by id, the recent finished ones, and the fold
//! of their start, sampled progress and end into rows and machine steps.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::machines::MachineState;
use super::stage::Entered;
use super::timeline::{self, StepKind};
use super::{Model, RECENT_TRANSFERS};
use crate::clock::Millis;
use crate::event::{Level, Protocol};
use crate::ident::Mac;

/// Where a transfer is: running, or how and when it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    Running,
    Done { at: Millis },
    Failed { at: Millis, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRow {
    pub id: u64,
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub mac: Option<Mac>,
    pub path: String,
    pub size: Option<u64>,
    pub bytes: u64,
    pub started: Millis,
    pub state: TransferState,
    pub blksize: Option<u16>,
    pub windowsize: Option<u16>,
}

impl TransferRow {
    /// Progress 0.0–1.0 when the size is known.
    pub fn fraction(&self) -> Option<f64> {
        self.size
            .filter(|&s| s > 0)
            .map(|s| (self.bytes as f64 / s as f64).min(1.0))
    }

    /// When it ended, if it has.
    pub fn finished(&self) -> Option<Millis> {
        match self.state {
            TransferState::Running => None,
            TransferState::Done { at } | TransferState::Failed { at, .. } => Some(at),
        }
    }

    /// Why it failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        match &self.state {
            TransferState::Failed { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// How a transfer ended, as the fold needs it.
enum End {
    Done { millis: u64 },
    Failed { reason: String },
}

impl Model {
    /// A new live transfer; its machine (named, or found by the client's
    /// address) is now loading.
    pub(super) fn transfer_started(&mut self, at: Millis, mut row: TransferRow) {
        row.mac = row.mac.or_else(|| self.mac_of_ip(row.client.ip()));
        let (id, mac) = (row.id, row.mac);
        let step = StepKind::Transfer {
            id,
            protocol: row.protocol,
            path: row.path.clone(),
        };
        self.transfers.insert(id, row);
        if let Some(mac) = mac {
            let machine = self.row(mac);
            machine.transfer = Some(id);
            machine.state = MachineState::Loading;
            machine.last_seen = Some(at);
            machine.advance(at, Entered::Transfer);
            machine.step(at, step, false);
        }
    }

    pub(super) fn progress(&mut self, samples: &[(u64, u64)]) {
        for (id, bytes) in samples {
            if let Some(t) = self.transfers.get_mut(id) {
                t.bytes = t.bytes.max(*bytes);
            }
        }
    }

    pub(super) fn transfer_done(&mut self, at: Millis, id: u64, bytes: u64, millis: u64) {
        self.counters.transfers_done += 1;
        self.counters.bytes_served += bytes;
        self.finish_transfer(at, id, bytes, End::Done { millis });
    }

    pub(super) fn transfer_failed(
        &mut self,
        at: Millis,
        id: u64,
        bytes: u64,
        reason: &str,
        probe: bool,
    ) {
        self.counters.bytes_served += bytes;
        if probe {
            self.counters.probes += 1;
            self.forget_size_probe(at, id);
            return;
        }
        self.counters.transfers_failed += 1;
        let reason = reason.to_string();
        self.finish_transfer(at, id, bytes, End::Failed { reason });
    }

    /// A size probe is normal firmware behaviour: the transfer is dropped
    /// (not listed as recent) and its step reworded.
    fn forget_size_probe(&mut self, at: Millis, id: u64) {
        let Some(mac) = self.transfers.remove(&id).and_then(|t| t.mac) else {
            return;
        };
        let Some(machine) = self.existing_row(mac) else {
            return;
        };
        if machine.transfer == Some(id) {
            machine.transfer = None;
        }
        timeline::mark_size_probe(&mut machine.timeline, at, id);
    }

    fn finish_transfer(&mut self, at: Millis, id: u64, bytes: u64, end: End) {
        let Some(mut t) = self.transfers.remove(&id) else {
            return;
        };
        t.bytes = bytes;
        let (took, failure) = match &end {
            End::Done { millis } => (*millis, None),
            End::Failed { reason } => (at.saturating_sub(t.started), Some(reason)),
        };
        if let Some(machine) = t.mac.and_then(|mac| self.existing_row(mac)) {
            if machine.transfer == Some(id) {
                machine.transfer = None;
            }
            machine.touch(at);
            if let Some(step) = timeline::transfer_step(&mut machine.timeline, id) {
                step.millis = Some(took);
                step.failed = failure.is_some();
            }
            if let Some(reason) = failure {
                machine.state = MachineState::Failed;
                machine.last_error = Some(format!("{}: {reason}", t.path));
            }
        }
        if let Some(reason) = failure {
            // The Log view lists failures with the rest of what happened.
            let who = t
                .mac
                .and_then(|mac| self.machine(&mac))
                .and_then(|m| m.hostname.clone())
                .or_else(|| t.mac.map(|m| m.to_string()))
                .unwrap_or_else(|| t.client.ip().to_string());
            let line = format!("{who}: {} {} failed: {reason}", t.protocol.name(), t.path);
            let target = match t.protocol {
                Protocol::Tftp => "tftp",
                Protocol::Http => "http",
            };
            self.log(at, Level::Warn, target, line);
        }
        t.state = match end {
            End::Done { .. } => TransferState::Done { at },
            End::Failed { reason } => TransferState::Failed { at, reason },
        };
        if self.recent.len() == RECENT_TRANSFERS {
            self.recent.pop_front();
        }
        self.recent.push_back(t);
    }
}
