//! The state the console shows, as a pure fold over events.
//!
//! `Model::apply` does no I/O and reads no clock: the event's own timestamp is
//! the only time it knows. The embedded console, `pxedeck attach` and the
//! tests all build the same `Model` from the same events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::boot::arch::Firmware;
use crate::boot::{BootDecision, ScriptKind};
use crate::clock::Millis;
use crate::dhcp::{DhcpMessage, DhcpReply};
use crate::event::{Event, EventKind, GroupInfo, KnownMachine, Level, Protocol, ServerInfo};
use crate::ident::{Mac, Uuid};
use crate::inventory::Problem;

/// Where a machine is in its boot, as the console's State column shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    /// Known to the inventory, not seen since pxedeck started.
    Known,
    /// Seen, unknown, policy `ignore`: shown, not booted.
    Discovered,
    /// Unknown and waiting in the hold loop for adoption.
    Held,
    /// Getting DHCP / its script.
    Booting,
    /// Downloading boot loader, kernel or initrd.
    Loading,
    /// Its installer has fetched a config.
    Installing,
    /// The installer called back: done.
    Installed,
    /// Told to boot its local disk.
    Local,
    /// The last step failed.
    Failed,
}

impl MachineState {
    pub fn label(self) -> &'static str {
        match self {
            MachineState::Known => "known",
            MachineState::Discovered => "discovered",
            MachineState::Held => "held",
            MachineState::Booting => "booting",
            MachineState::Loading => "loading",
            MachineState::Installing => "installing",
            MachineState::Installed => "installed",
            MachineState::Local => "local",
            MachineState::Failed => "failed",
        }
    }
}

/// One step in a machine's boot timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub at: Millis,
    pub what: String,
    /// How long the step took, once it finished.
    pub millis: Option<u64>,
    /// Identical consecutive steps (a ROM re-sending DISCOVER) fold into one.
    pub repeats: u32,
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRow {
    pub mac: Mac,
    pub hostname: Option<String>,
    pub group: Option<String>,
    pub profile: Option<String>,
    pub install: Option<bool>,
    pub firmware: Option<Firmware>,
    pub ipxe: bool,
    pub vendor_class: Option<String>,
    pub uuid: Option<Uuid>,
    pub relay: Option<Ipv4Addr>,
    pub ip: Option<Ipv4Addr>,
    pub state: MachineState,
    pub last_seen: Option<Millis>,
    /// The transfer running now, if any (id into `Model::transfers`).
    pub transfer: Option<u64>,
    pub last_error: Option<String>,
    pub timeline: VecDeque<Step>,
}

impl MachineRow {
    fn new(mac: Mac) -> MachineRow {
        MachineRow {
            mac,
            hostname: None,
            group: None,
            profile: None,
            install: None,
            firmware: None,
            ipxe: false,
            vendor_class: None,
            uuid: None,
            relay: None,
            ip: None,
            state: MachineState::Known,
            last_seen: None,
            transfer: None,
            last_error: None,
            timeline: VecDeque::new(),
        }
    }

    /// Not in the inventory: the console makes these stand out.
    pub fn is_unknown(&self) -> bool {
        self.hostname.is_none()
    }

    fn step(&mut self, at: Millis, what: String, failed: bool) {
        if let Some(last) = self.timeline.back_mut()
            && last.what == what
            && last.failed == failed
        {
            last.repeats += 1;
            last.at = at;
            return;
        }
        if self.timeline.len() == TIMELINE_LEN {
            self.timeline.pop_front();
        }
        self.timeline.push_back(Step {
            at,
            what,
            millis: None,
            repeats: 1,
            failed,
        });
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRow {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub hostname: Option<String>,
    pub fixed: bool,
    pub expires: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRow {
    pub id: u64,
    pub protocol: Protocol,
    pub client: std::net::SocketAddr,
    pub mac: Option<Mac>,
    pub path: String,
    pub size: Option<u64>,
    pub bytes: u64,
    pub started: Millis,
    pub finished: Option<Millis>,
    pub outcome: Option<Result<(), String>>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: Millis,
    pub level: Level,
    pub target: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alert {
    RogueDhcp { server: Ipv4Addr, count: u64 },
    PoolExhausted { subnet: String },
    InventoryErrors { count: usize },
}

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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InventoryStatus {
    pub machines: usize,
    pub profiles: Vec<String>,
    pub groups: Vec<String>,
    pub last_reload: Option<Millis>,
    pub problems: Vec<Problem>,
    pub group_info: Vec<GroupInfo>,
}

/// Finished transfers kept for the Transfers view.
pub const RECENT_TRANSFERS: usize = 200;
pub const LOG_LINES: usize = 2000;
pub const TIMELINE_LEN: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Model {
    /// Machines seen or known, in order of first appearance.
    pub machines: Vec<MachineRow>,
    #[serde(skip)]
    by_mac: HashMap<Mac, usize>,
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
    pub rogue_servers: BTreeMap<Ipv4Addr, u64>,
    pub exhausted_pools: Vec<String>,
    /// Where the services listen (from the `Started` event).
    pub server: Option<ServerInfo>,
    /// Bumped on every change: the console redraws when it moves.
    pub generation: u64,
    /// Time of the newest event folded in.
    pub now: Millis,
}

impl Model {
    /// Rebuilds the indexes a deserialised snapshot lacks.
    pub fn reindex(&mut self) {
        self.by_mac = self
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.mac, i))
            .collect();
        self.lease_of = self.leases.values().map(|l| (l.mac, l.ip)).collect();
    }

    pub fn machine(&self, mac: &Mac) -> Option<&MachineRow> {
        self.by_mac.get(mac).map(|&i| &self.machines[i])
    }

    fn row(&mut self, mac: Mac) -> &mut MachineRow {
        let i = *self.by_mac.entry(mac).or_insert_with(|| {
            self.machines.push(MachineRow::new(mac));
            self.machines.len() - 1
        });
        &mut self.machines[i]
    }

    fn mac_of_ip(&self, ip: std::net::IpAddr) -> Option<Mac> {
        let std::net::IpAddr::V4(v4) = ip else {
            return None;
        };
        self.leases.get(&v4).map(|l| l.mac).or_else(|| {
            self.machines
                .iter()
                .find(|m| m.ip == Some(v4))
                .map(|m| m.mac)
        })
    }

    pub fn alerts(&self) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .rogue_servers
            .iter()
            .map(|(&server, &count)| Alert::RogueDhcp { server, count })
            .collect();
        out.extend(
            self.exhausted_pools
                .iter()
                .map(|s| Alert::PoolExhausted { subnet: s.clone() }),
        );
        if !self.inventory.problems.is_empty() {
            out.push(Alert::InventoryErrors {
                count: self.inventory.problems.len(),
            });
        }
        out
    }

    fn log(&mut self, at: Millis, level: Level, target: &str, message: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(LogLine {
            at,
            level,
            target: target.into(),
            message,
        });
    }

    /// Folds one event into the model.
    pub fn apply(&mut self, event: &Event) {
        let at = event.at;
        self.now = self.now.max(at);
        self.generation += 1;
        match &event.kind {
            EventKind::Started(info) => {
                self.server = Some(info.clone());
                self.log(at, Level::Info, "pxedeck", "boot services started".into());
            }
            EventKind::DhcpSeen(seen) => {
                *self.counters.dhcp_in.entry(seen.message).or_default() += 1;
                let row = self.row(seen.mac);
                row.last_seen = Some(at);
                row.firmware = seen.firmware.or(row.firmware);
                row.ipxe = seen.ipxe;
                row.vendor_class = seen.vendor_class.clone().or(row.vendor_class.take());
                row.uuid = seen.uuid.or(row.uuid);
                row.relay = seen.relay;
                if seen.hostname.is_some() {
                    row.hostname = seen.hostname.clone();
                }
                let stage = if seen.ipxe {
                    "iPXE"
                } else {
                    seen.firmware.map_or("DHCP", Firmware::label)
                };
                row.step(at, format!("{stage} {}", seen.message.name()), false);
                row.state = match (&seen.decision, row.state) {
                    // Later stages are not undone by a renewing client.
                    (
                        _,
                        MachineState::Loading | MachineState::Installing | MachineState::Installed,
                    ) => row.state,
                    (BootDecision::Hold, _) => MachineState::Held,
                    (BootDecision::Ignore | BootDecision::NotPxe, _) => MachineState::Discovered,
                    (BootDecision::Local, _) => MachineState::Local,
                    (BootDecision::Install { .. } | BootDecision::Discover { .. }, _) => {
                        MachineState::Booting
                    }
                };
            }
            EventKind::DhcpReplied {
                mac,
                reply,
                ip,
                boot_file,
                proxy: _,
            } => {
                *self.counters.dhcp_out.entry(*reply).or_default() += 1;
                let row = self.row(*mac);
                if let Some(ip) = ip {
                    row.ip = Some(*ip);
                }
                let what = match boot_file {
                    Some(f) => format!("{} → {f}", reply.name()),
                    None => reply.name().to_string(),
                };
                row.step(at, what, *reply == DhcpReply::Nak);
            }
            EventKind::LeaseBound {
                mac,
                ip,
                hostname,
                expires,
                fixed,
            } => {
                if let Some(old) = self.lease_of.insert(*mac, *ip)
                    && old != *ip
                    && self.leases.get(&old).is_some_and(|l| l.mac == *mac)
                {
                    self.leases.remove(&old);
                }
                self.leases.insert(
                    *ip,
                    LeaseRow {
                        ip: *ip,
                        mac: *mac,
                        hostname: hostname.clone(),
                        fixed: *fixed,
                        expires: *expires,
                    },
                );
                self.row(*mac).ip = Some(*ip);
            }
            EventKind::LeaseEnded { mac, ip, why } => {
                if self.leases.get(ip).is_some_and(|l| l.mac == *mac) {
                    self.leases.remove(ip);
                    self.lease_of.remove(mac);
                }
                self.row(*mac)
                    .step(at, format!("lease {ip} {why:?}").to_lowercase(), false);
            }
            EventKind::PoolExhausted { subnet, mac } => {
                if !self.exhausted_pools.contains(subnet) {
                    self.exhausted_pools.push(subnet.clone());
                }
                let row = self.row(*mac);
                row.step(at, format!("no free address in {subnet}"), true);
                row.last_error = Some(format!("pool {subnet} exhausted"));
            }
            EventKind::RogueDhcp {
                server, offered, ..
            } => {
                let count = self.rogue_servers.entry(*server).or_default();
                *count += 1;
                if *count == 1 {
                    let what = offered.map_or(String::new(), |o| format!(" offering {o}"));
                    self.log(
                        at,
                        Level::Warn,
                        "dhcp",
                        format!("another DHCP server {server} answered{what}"),
                    );
                }
            }
            EventKind::TransferStarted {
                id,
                protocol,
                client,
                mac,
                path,
                size,
                blksize,
                windowsize,
            } => {
                let mac = mac.or_else(|| self.mac_of_ip(client.ip()));
                self.transfers.insert(
                    *id,
                    TransferRow {
                        id: *id,
                        protocol: *protocol,
                        client: *client,
                        mac,
                        path: path.clone(),
                        size: *size,
                        bytes: 0,
                        started: at,
                        finished: None,
                        outcome: None,
                        blksize: *blksize,
                        windowsize: *windowsize,
                    },
                );
                if let Some(mac) = mac {
                    let row = self.row(mac);
                    row.transfer = Some(*id);
                    row.state = MachineState::Loading;
                    row.last_seen = Some(at);
                    row.step(at, format!("{} {path}", protocol.name()), false);
                }
            }
            EventKind::Progress { samples } => {
                for (id, bytes) in samples {
                    if let Some(t) = self.transfers.get_mut(id) {
                        t.bytes = t.bytes.max(*bytes);
                    }
                }
            }
            EventKind::TransferDone { id, bytes, millis } => {
                self.counters.transfers_done += 1;
                self.counters.bytes_served += bytes;
                self.finish_transfer(at, *id, *bytes, Ok(()), Some(*millis));
            }
            EventKind::TransferFailed {
                id,
                bytes,
                reason,
                probe,
            } => {
                self.counters.bytes_served += bytes;
                if *probe {
                    self.counters.probes += 1;
                    // A size probe is normal firmware behaviour: forget it.
                    if let Some(t) = self.transfers.remove(id)
                        && let Some(mac) = t.mac
                    {
                        let row = self.row(mac);
                        if row.transfer == Some(*id) {
                            row.transfer = None;
                        }
                        row.timeline.pop_back();
                        row.step(at, format!("TFTP size probe {}", t.path), false);
                    }
                    return;
                }
                self.counters.transfers_failed += 1;
                self.finish_transfer(at, *id, *bytes, Err(reason.clone()), None);
            }
            EventKind::ScriptServed {
                client,
                mac,
                hostname,
                kind,
                profile,
            } => {
                self.counters.scripts += 1;
                let Some(mac) = mac.or_else(|| self.mac_of_ip(*client)) else {
                    return;
                };
                let row = self.row(mac);
                row.last_seen = Some(at);
                if hostname.is_some() {
                    row.hostname = hostname.clone();
                }
                if profile.is_some() {
                    row.profile = profile.clone();
                }
                let failed = *kind == ScriptKind::Error;
                row.state = match kind {
                    ScriptKind::Hold => MachineState::Held,
                    ScriptKind::Local => MachineState::Local,
                    ScriptKind::Error => MachineState::Failed,
                    ScriptKind::Install | ScriptKind::Discover | ScriptKind::Menu => {
                        MachineState::Booting
                    }
                };
                let what = match profile {
                    Some(p) => format!("script {} ({p})", kind.name()),
                    None => format!("script {}", kind.name()),
                };
                row.step(at, what, failed);
            }
            EventKind::ConfigServed {
                client,
                hostname,
                name,
            } => {
                self.counters.configs += 1;
                let by_name = || {
                    self.machines
                        .iter()
                        .find(|m| m.hostname.as_deref() == Some(hostname))
                        .map(|m| m.mac)
                };
                if let Some(mac) = self.mac_of_ip(*client).or_else(by_name) {
                    let row = self.row(mac);
                    row.state = MachineState::Installing;
                    row.hostname.get_or_insert_with(|| hostname.clone());
                    row.step(at, format!("config {name}"), false);
                }
            }
            EventKind::AccessDenied {
                client,
                path,
                reason,
            } => {
                self.counters.denied += 1;
                self.log(
                    at,
                    Level::Warn,
                    "http",
                    format!("denied {path} to {client}: {reason}"),
                );
            }
            EventKind::InstallDone { hostname, mac } => {
                self.counters.installs_done += 1;
                let mac = mac.or_else(|| {
                    self.machines
                        .iter()
                        .find(|m| m.hostname.as_deref() == Some(hostname))
                        .map(|m| m.mac)
                });
                if let Some(mac) = mac {
                    let row = self.row(mac);
                    row.state = MachineState::Installed;
                    row.install = Some(false);
                    row.step(at, "install done".into(), false);
                }
            }
            EventKind::InventoryReloaded {
                machines,
                profiles,
                groups,
                group_info,
            } => {
                self.counters.inventory_reloads += 1;
                self.apply_inventory(machines);
                self.inventory = InventoryStatus {
                    machines: machines.len(),
                    profiles: profiles.clone(),
                    groups: groups.clone(),
                    last_reload: Some(at),
                    problems: Vec::new(),
                    group_info: group_info.clone(),
                };
            }
            EventKind::InventoryMachineChanged { machine } => {
                self.apply_machine_change(at, machine)
            }
            EventKind::InventoryError { problems } => {
                self.inventory.problems = problems.clone();
                for p in problems {
                    self.log(at, Level::Error, "inventory", p.to_string());
                }
            }
            EventKind::InventoryWritten {
                hostname,
                path,
                change,
            } => {
                self.log(
                    at,
                    Level::Info,
                    "inventory",
                    format!("{hostname}: {change} ({path})"),
                );
            }
            EventKind::CommandFailed { command, error } => {
                self.counters.errors += 1;
                self.log(at, Level::Error, "command", format!("{command}: {error}"));
            }
            EventKind::Log {
                level,
                target,
                message,
            } => {
                if *level == Level::Error {
                    self.counters.errors += 1;
                }
                self.log(at, *level, target, message.clone());
            }
        }
    }

    fn finish_transfer(
        &mut self,
        at: Millis,
        id: u64,
        bytes: u64,
        outcome: Result<(), String>,
        millis: Option<u64>,
    ) {
        let Some(mut t) = self.transfers.remove(&id) else {
            return;
        };
        t.bytes = bytes;
        t.finished = Some(at);
        t.outcome = Some(outcome.clone());
        if let Some(mac) = t.mac {
            let row = self.row(mac);
            if row.transfer == Some(id) {
                row.transfer = None;
            }
            if let Some(step) = row
                .timeline
                .iter_mut()
                .rev()
                .find(|s| s.what.ends_with(&t.path))
            {
                step.millis = Some(millis.unwrap_or(at.saturating_sub(t.started)));
                step.failed = outcome.is_err();
            }
            if let Err(reason) = &outcome {
                row.state = MachineState::Failed;
                row.last_error = Some(format!("{}: {reason}", t.path));
            }
        }
        if self.recent.len() == RECENT_TRANSFERS {
            self.recent.pop_front();
        }
        self.recent.push_back(t);
    }

    /// Labels rows with inventory names, adds known-but-unseen machines, and
    /// drops rows of machines that left the inventory and were never seen.
    fn apply_inventory(&mut self, known: &[KnownMachine]) {
        let mut listed: HashMap<Mac, &KnownMachine> = HashMap::new();
        for k in known {
            for mac in &k.macs {
                listed.insert(*mac, k);
            }
        }
        for row in &mut self.machines {
            match listed.get(&row.mac) {
                Some(k) => {
                    row.hostname = Some(k.hostname.clone());
                    row.group = Some(k.group.clone());
                    row.profile = k.profile.clone();
                    row.install = Some(k.install);
                    if row.ip.is_none() {
                        row.ip = k.ip;
                    }
                }
                None => {
                    row.hostname = None;
                    row.group = None;
                    row.profile = None;
                    row.install = None;
                }
            }
        }
        self.machines
            .retain(|r| r.hostname.is_some() || r.last_seen.is_some());
        for k in known {
            if let Some(&mac) = k.macs.first()
                && !self.machines.iter().any(|r| k.macs.contains(&r.mac))
            {
                let mut row = MachineRow::new(mac);
                row.hostname = Some(k.hostname.clone());
                row.group = Some(k.group.clone());
                row.profile = k.profile.clone();
                row.install = Some(k.install);
                row.ip = k.ip;
                self.machines.push(row);
            }
        }
        self.by_mac = self
            .machines
            .iter()
            .enumerate()
            .map(|(i, r)| (r.mac, i))
            .collect();
    }
}

/// The inventory's one-machine change (kept apart for the model split).
impl Model {
    /// Relabels the rows of one machine whose inventory entry changed; the
    /// rest of the inventory, and its problems, stay as they are.
    fn apply_machine_change(&mut self, at: Millis, known: &KnownMachine) {
        self.counters.inventory_reloads += 1;
        self.inventory.last_reload = Some(at);
        let mut listed = false;
        for row in &mut self.machines {
            if known.macs.contains(&row.mac) {
                listed = true;
                row.hostname = Some(known.hostname.clone());
                row.group = Some(known.group.clone());
                row.profile = known.profile.clone();
                row.install = Some(known.install);
                if row.ip.is_none() {
                    row.ip = known.ip;
                }
            }
        }
        if !listed && let Some(&mac) = known.macs.first() {
            let row = self.row(mac);
            row.hostname = Some(known.hostname.clone());
            row.group = Some(known.group.clone());
            row.profile = known.profile.clone();
            row.install = Some(known.install);
            row.ip = known.ip;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::LeaseEnd;
    use crate::event::DhcpSeen;

    const MAC: &str = "52:54:00:00:00:01";

    fn mac() -> Mac {
        MAC.parse().unwrap()
    }

    fn ev(at: Millis, kind: EventKind) -> Event {
        Event { at, kind }
    }

    fn seen(message: DhcpMessage, decision: BootDecision) -> EventKind {
        EventKind::DhcpSeen(DhcpSeen {
            mac: mac(),
            xid: 7,
            message,
            firmware: Some(Firmware::UefiX64),
            ipxe: false,
            vendor_class: Some("PXEClient:Arch:00007:UNDI:003016".into()),
            uuid: None,
            relay: None,
            hostname: None,
            decision,
        })
    }

    fn known(hostname: &str, install: bool) -> EventKind {
        EventKind::InventoryReloaded {
            machines: vec![KnownMachine {
                hostname: hostname.into(),
                group: "k8s-dev".into(),
                macs: vec![mac()],
                ip: Some("10.99.0.21".parse().unwrap()),
                profile: Some("ubuntu-2404".into()),
                install,
            }],
            profiles: vec!["ubuntu-2404".into()],
            groups: vec!["k8s-dev".into()],
            group_info: vec![],
        }
    }

    fn started(at: Millis, id: u64, path: &str, size: u64) -> Event {
        ev(
            at,
            EventKind::TransferStarted {
                id,
                protocol: Protocol::Tftp,
                client: "10.99.0.100:2070".parse().unwrap(),
                mac: None,
                path: path.into(),
                size: Some(size),
                blksize: Some(1468),
                windowsize: None,
            },
        )
    }

    fn lease(at: Millis) -> Event {
        ev(
            at,
            EventKind::LeaseBound {
                mac: mac(),
                ip: "10.99.0.100".parse().unwrap(),
                hostname: None,
                expires: at + 120_000,
                fixed: false,
            },
        )
    }

    #[test]
    fn a_rebind_moves_the_macs_lease() {
        let bound = |ip: &str, m: Mac| {
            ev(
                1,
                EventKind::LeaseBound {
                    mac: m,
                    ip: ip.parse().unwrap(),
                    hostname: None,
                    expires: 10,
                    fixed: false,
                },
            )
        };
        let other: Mac = "52:54:00:00:00:02".parse().unwrap();
        let mut model = Model::default();
        model.apply(&bound("10.99.0.100", mac()));
        model.apply(&bound("10.99.0.101", mac()));
        // The old address went to another MAC in between: it stays theirs.
        model.apply(&bound("10.99.0.101", other));
        model.apply(&bound("10.99.0.102", mac()));
        let held: Vec<(String, Mac)> = model
            .leases
            .values()
            .map(|l| (l.ip.to_string(), l.mac))
            .collect();
        assert_eq!(
            held,
            vec![("10.99.0.101".into(), other), ("10.99.0.102".into(), mac())]
        );
    }

    #[test]
    fn an_unknown_machine_appears_on_its_first_discover_and_stands_out() {
        let mut m = Model::default();
        m.apply(&ev(1000, seen(DhcpMessage::Discover, BootDecision::Hold)));
        let row = m.machine(&mac()).unwrap();
        assert!(row.is_unknown());
        assert_eq!(row.state, MachineState::Held);
        assert_eq!(row.firmware, Some(Firmware::UefiX64));
        assert_eq!(row.timeline[0].what, "UEFI DISCOVER");
        assert_eq!(m.counters.dhcp_in[&DhcpMessage::Discover], 1);
    }

    #[test]
    fn a_rom_resending_discover_is_one_step_with_a_count() {
        let mut m = Model::default();
        for t in 0..3 {
            m.apply(&ev(
                1000 + t * 1000,
                seen(DhcpMessage::Discover, BootDecision::Ignore),
            ));
        }
        let row = m.machine(&mac()).unwrap();
        assert_eq!(row.timeline.len(), 1);
        assert_eq!((row.timeline[0].repeats, row.timeline[0].at), (3, 3000));
        assert_eq!(row.state, MachineState::Discovered);
    }

    #[test]
    fn inventory_labels_seen_machines_and_lists_unseen_ones() {
        let mut m = Model::default();
        m.apply(&ev(1, known("dev-01", true)));
        let row = m.machine(&mac()).unwrap();
        assert_eq!(
            (row.state, row.hostname.as_deref()),
            (MachineState::Known, Some("dev-01"))
        );
        assert_eq!(m.inventory.machines, 1);
        // Removed from the inventory and never seen: the row goes away.
        m.apply(&ev(
            2,
            EventKind::InventoryReloaded {
                machines: vec![],
                profiles: vec![],
                groups: vec![],
                group_info: vec![],
            },
        ));
        assert!(m.machines.is_empty());
        // Seen, then adopted: the same row gains its name.
        m.apply(&ev(3, seen(DhcpMessage::Discover, BootDecision::Hold)));
        m.apply(&ev(4, known("dev-09", true)));
        assert_eq!(m.machines.len(), 1);
        assert_eq!(m.machines[0].hostname.as_deref(), Some("dev-09"));
    }

    #[test]
    fn a_full_boot_walks_through_the_states() {
        let mut m = Model::default();
        m.apply(&ev(0, known("dev-01", true)));
        m.apply(&ev(
            1000,
            seen(
                DhcpMessage::Discover,
                BootDecision::Install {
                    profile: "ubuntu-2404".into(),
                },
            ),
        ));
        assert_eq!(m.machine(&mac()).unwrap().state, MachineState::Booting);
        m.apply(&lease(1100));
        m.apply(&started(1200, 1, "ipxe.efi", 1_000_000));
        assert_eq!(
            m.machine(&mac()).unwrap().state,
            MachineState::Loading,
            "client IP resolved through the lease"
        );
        m.apply(&ev(
            1300,
            EventKind::Progress {
                samples: vec![(1, 400_000)],
            },
        ));
        assert_eq!(m.transfers[&1].fraction(), Some(0.4));
        m.apply(&ev(
            1700,
            EventKind::TransferDone {
                id: 1,
                bytes: 1_000_000,
                millis: 500,
            },
        ));
        assert!(m.transfers.is_empty());
        assert_eq!(m.recent.back().unwrap().outcome, Some(Ok(())));
        let client = "10.99.0.100".parse().unwrap();
        m.apply(&ev(
            2000,
            EventKind::ScriptServed {
                client,
                mac: None,
                hostname: Some("dev-01".into()),
                kind: ScriptKind::Install,
                profile: Some("ubuntu-2404".into()),
            },
        ));
        m.apply(&ev(
            9000,
            EventKind::ConfigServed {
                client,
                hostname: "dev-01".into(),
                name: "user-data".into(),
            },
        ));
        assert_eq!(m.machine(&mac()).unwrap().state, MachineState::Installing);
        m.apply(&ev(
            60_000,
            EventKind::InstallDone {
                hostname: "dev-01".into(),
                mac: None,
            },
        ));
        let row = m.machine(&mac()).unwrap();
        assert_eq!(
            (row.state, row.install),
            (MachineState::Installed, Some(false))
        );
        let steps: Vec<&str> = row.timeline.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(
            steps,
            [
                "UEFI DISCOVER",
                "TFTP ipxe.efi",
                "script install (ubuntu-2404)",
                "config user-data",
                "install done"
            ]
        );
        assert_eq!(row.timeline[1].millis, Some(500));
        assert_eq!(
            (m.counters.transfers_done, m.counters.bytes_served),
            (1, 1_000_000)
        );
    }

    #[test]
    fn a_failed_transfer_marks_the_machine_failed_with_the_reason() {
        let mut m = Model::default();
        m.apply(&lease(0));
        m.apply(&started(10, 5, "undionly.kpxe", 100));
        m.apply(&ev(
            20,
            EventKind::TransferFailed {
                id: 5,
                bytes: 10,
                reason: "timed out after 5 tries".into(),
                probe: false,
            },
        ));
        let row = m.machine(&mac()).unwrap();
        assert_eq!(row.state, MachineState::Failed);
        assert_eq!(
            row.last_error.as_deref(),
            Some("undionly.kpxe: timed out after 5 tries")
        );
        assert!(row.timeline.back().unwrap().failed);
        assert_eq!(m.counters.transfers_failed, 1);
    }

    #[test]
    fn a_size_probe_is_not_a_failure() {
        let mut m = Model::default();
        m.apply(&lease(0));
        m.apply(&started(10, 5, "undionly.kpxe", 100));
        m.apply(&ev(
            20,
            EventKind::TransferFailed {
                id: 5,
                bytes: 0,
                reason: "client aborted after OACK".into(),
                probe: true,
            },
        ));
        let row = m.machine(&mac()).unwrap();
        assert_ne!(row.state, MachineState::Failed);
        assert_eq!(
            row.timeline.back().unwrap().what,
            "TFTP size probe undionly.kpxe"
        );
        assert_eq!((m.counters.transfers_failed, m.counters.probes), (0, 1));
        assert!(m.recent.is_empty());
    }

    #[test]
    fn leases_follow_bind_and_end() {
        let mut m = Model::default();
        m.apply(&lease(0));
        assert_eq!(m.leases.len(), 1);
        m.apply(&ev(
            5,
            EventKind::LeaseEnded {
                mac: mac(),
                ip: "10.99.0.100".parse().unwrap(),
                why: LeaseEnd::Released,
            },
        ));
        assert!(m.leases.is_empty());
    }

    #[test]
    fn alerts_for_rogue_servers_exhausted_pools_and_inventory_errors() {
        let mut m = Model::default();
        for _ in 0..3 {
            m.apply(&ev(
                1,
                EventKind::RogueDhcp {
                    server: "10.99.0.254".parse().unwrap(),
                    offered: None,
                    mac: None,
                },
            ));
        }
        m.apply(&ev(
            2,
            EventKind::PoolExhausted {
                subnet: "10.99.0.0/24".into(),
                mac: mac(),
            },
        ));
        m.apply(&ev(
            3,
            EventKind::InventoryError {
                problems: vec![Problem {
                    file: "a.yaml".into(),
                    line: Some(2),
                    message: "x".into(),
                }],
            },
        ));
        assert_eq!(
            m.alerts(),
            vec![
                Alert::RogueDhcp {
                    server: "10.99.0.254".parse().unwrap(),
                    count: 3
                },
                Alert::PoolExhausted {
                    subnet: "10.99.0.0/24".into()
                },
                Alert::InventoryErrors { count: 1 },
            ]
        );
        assert_eq!(
            m.log.iter().filter(|l| l.target == "dhcp").count(),
            1,
            "a rogue server is logged once"
        );
        m.apply(&ev(4, known("a", false)));
        assert!(
            m.inventory.problems.is_empty(),
            "a good reload clears the errors"
        );
    }

    #[test]
    fn the_log_is_a_bounded_ring() {
        let mut m = Model::default();
        for i in 0..(LOG_LINES as u64 + 10) {
            m.apply(&ev(
                i,
                EventKind::Log {
                    level: Level::Info,
                    target: "t".into(),
                    message: format!("{i}"),
                },
            ));
        }
        assert_eq!(m.log.len(), LOG_LINES);
        assert_eq!(m.log.front().unwrap().message, "10");
        assert_eq!(m.generation, LOG_LINES as u64 + 10);
    }
}
