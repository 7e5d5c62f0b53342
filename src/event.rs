//! The two event enums that everything else is wired with, and the bus.
//!
//! Boot services emit [`Event`]s; the console, the API's event stream and the
//! metrics fold them (see [`crate::model`]). The operator's actions travel
//! the other way as [`Command`]s to the one inventory writer. Both cross the
//! API as JSON, so `pxedeck attach` sees exactly what the embedded console
//! sees.
//!
//! Per-block transfer progress is *not* an event: servers bump atomics that
//! the console samples on its tick and folds in as one [`EventKind::Progress`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::bmc::{PowerAction, PowerState};
use crate::boot::ScriptKind;
use crate::boot::decide::Chain;
use crate::boot::grub::Stage;
use crate::clock::{Millis, now_millis};
use crate::config::{DhcpMode, UnknownPolicy};
use crate::dhcp::{DhcpReply, LeaseEnd};
pub use crate::dhcp::{DhcpSeen, RelayAgentSeen};
use crate::ident::Mac;
use crate::inventory::{Adoption, MachineEdit, Problem};

mod display;
mod paced;

pub use display::Subsystem;
pub use paced::Paced;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Millis,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tftp => "TFTP",
            Protocol::Http => "HTTP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tftp,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

/// A machine as the inventory knows it: what the console needs to list
/// known-but-unseen machines and to label seen ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownMachine {
    pub hostname: String,
    pub group: String,
    pub macs: Vec<Mac>,
    pub ip: Option<Ipv4Addr>,
    pub profile: Option<String>,
    pub install: bool,
}

/// Where pxedeck serves, for the console's header and adopt dialog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub address: Ipv4Addr,
    pub dhcp_mode: DhcpMode,
    pub dhcp: Option<SocketAddr>,
    pub proxy: Option<SocketAddr>,
    pub tftp: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
    pub pools: Vec<PoolInfo>,
    pub unknown_policy: UnknownPolicy,
    /// The listed interfaces (`interfaces:`); empty with one.
    #[serde(default)]
    pub interfaces: Vec<InterfaceInfo>,
}

/// One listed interface, as the console names a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    pub name: Option<String>,
    pub address: Ipv4Addr,
    pub mode: DhcpMode,
}

impl InterfaceInfo {
    /// `eth2 10.61.2.1`, or the address alone when it has no name.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} {}", self.address),
            None => self.address.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub subnet: String,
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

/// What adopting into a group means: its naming pattern and profile (from
/// the group's `_defaults.yaml`, as its machines see them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub hostname_pattern: Option<String>,
    pub profile: Option<String>,
    /// Whether adopting into the group boots the installer at once
    /// (`adopt.install`); absent means false.
    #[serde(default)]
    pub adopt_install: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The services are up (first event of a run).
    Started(ServerInfo),
    DhcpSeen(DhcpSeen),
    DhcpReplied {
        mac: Mac,
        reply: DhcpReply,
        /// The address given; under proxyDHCP, the address the client says
        /// it holds from the other server (ciaddr or option 50), if any.
        ip: Option<Ipv4Addr>,
        boot_file: Option<String>,
        /// Answered as proxyDHCP: no address given, and `ip` (if any) is
        /// the other server's.
        proxy: bool,
    },
    LeaseBound {
        mac: Mac,
        ip: Ipv4Addr,
        hostname: Option<String>,
        expires: Millis,
        fixed: bool,
    },
    LeaseEnded {
        mac: Mac,
        ip: Ipv4Addr,
        why: LeaseEnd,
    },
    PoolExhausted {
        subnet: String,
        mac: Mac,
    },
    /// Another DHCP server answered on the provisioning segment.
    RogueDhcp {
        server: Ipv4Addr,
        offered: Option<Ipv4Addr>,
        mac: Option<Mac>,
    },
    TransferStarted {
        id: u64,
        protocol: Protocol,
        client: SocketAddr,
        mac: Option<Mac>,
        path: String,
        size: Option<u64>,
        blksize: Option<u16>,
        windowsize: Option<u16>,
    },
    /// Sampled byte counts of live transfers: (id, bytes so far).
    Progress {
        samples: Vec<(u64, u64)>,
    },
    TransferDone {
        id: u64,
        bytes: u64,
        millis: u64,
    },
    TransferFailed {
        id: u64,
        bytes: u64,
        reason: String,
        /// A firmware size probe (RRQ with tsize, aborted after the OACK):
        /// normal, not a failure.
        probe: bool,
    },
    /// A boot script served: iPXE's over HTTP, or a machine's GRUB config
    /// over TFTP (`chain` says which).
    ScriptServed {
        client: IpAddr,
        mac: Option<Mac>,
        hostname: Option<String>,
        kind: ScriptKind,
        profile: Option<String>,
        #[serde(default)]
        chain: Chain,
    },
    /// What a machine's iPXE reported about its hardware with its identity
    /// (SMBIOS, NIC, platform; bounded by `boot::identity`).
    FactsReported {
        mac: Mac,
        facts: crate::boot::identity::Facts,
        /// The rule (`adopt.rules`) an unknown machine matches now that
        /// its vendor and product are known, with what DHCP saw of it.
        #[serde(default)]
        rule: Option<crate::inventory::rules::RuleHit>,
    },
    /// A loader reported a boot step it could not take (GRUB fetching its
    /// failure report: `boot::grub::Request::Failed`).
    BootFailed {
        mac: Mac,
        hostname: Option<String>,
        stage: Stage,
        reason: String,
    },
    ConfigServed {
        client: IpAddr,
        hostname: String,
        name: String,
    },
    AccessDenied {
        client: IpAddr,
        path: String,
        reason: String,
    },
    InstallDone {
        hostname: String,
        mac: Option<Mac>,
    },
    InventoryReloaded {
        machines: Vec<KnownMachine>,
        profiles: Vec<String>,
        groups: Vec<String>,
        #[serde(default)]
        group_info: Vec<GroupInfo>,
    },
    /// One machine's entry changed and nothing else in the inventory did
    /// (a done callback, an install toggle): consumers refresh that one.
    InventoryMachineChanged {
        machine: KnownMachine,
    },
    InventoryError {
        problems: Vec<Problem>,
    },
    InventoryWritten {
        hostname: String,
        path: String,
        change: String,
    },
    CommandFailed {
        command: String,
        error: String,
    },
    /// A machine's power as its BMC reported it, or why it could not
    /// (sent when either changes, and after every action).
    BmcPower {
        hostname: String,
        power: Option<PowerState>,
        error: Option<String>,
    },
    /// A BMC action finished (power on, cycle, boot once from network,
    /// reinstall…).
    BmcAction {
        hostname: String,
        action: String,
        ok: bool,
        message: String,
    },
    /// An operator forgot an unknown machine: consumers drop its row.
    MachineForgotten {
        mac: Mac,
    },
    /// An `auto` rule matched, but the machine was not adopted: past the
    /// bound on auto-adoptions per minute, or the write was refused. Sent
    /// at most once a second; `refused` counts every refusal since start.
    AutoAdoptRefused {
        mac: Mac,
        rule: String,
        reason: String,
        refused: u64,
    },
    Log {
        level: Level,
        target: String,
        message: String,
    },
    /// Where the inventory's git work tree stands (after each commit, a
    /// reload, and every little while).
    GitStatus(GitState),
}

/// The inventory's git work tree, as the Inventory view shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitState {
    /// The branch checked out; None on a detached HEAD.
    pub branch: Option<String>,
    /// The branch's upstream (`origin/main`), if it tracks one.
    pub upstream: Option<String>,
    /// Files changed but not committed (git's own count, untracked too).
    pub uncommitted: usize,
    /// Commits on the branch not on its upstream, and the other way.
    pub ahead: u32,
    pub behind: u32,
    /// The last commit pxedeck made: short hash and subject.
    pub last_commit: Option<String>,
    /// The last push or commit failure, cleared by the next success.
    pub error: Option<String>,
}

/// What the operator asks for, from the console or the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    Adopt {
        machines: Vec<Adoption>,
    },
    SetInstall {
        hostname: String,
        install: bool,
    },
    ReleaseLease {
        ip: Ipv4Addr,
    },
    ReloadInventory,
    /// A BMC action on each machine named (by hostname).
    Power {
        hostnames: Vec<String>,
        action: PowerAction,
    },
    /// `install: true` through the writer, then boot once from the network
    /// and power cycle, for each machine named.
    Reinstall {
        hostnames: Vec<String>,
    },
    /// Drop an unknown machine's row from every console (it comes back if
    /// it asks again); refused for a machine in the inventory.
    Forget {
        mac: Mac,
    },
    /// Change a known machine through the writer: profile, fixed IP,
    /// install, group (the file moves). Absent fields stay as they are.
    Edit {
        hostname: String,
        #[serde(flatten)]
        edit: MachineEdit,
    },
    /// Remove the files of the last adoption, while each is unchanged.
    UndoAdoption,
}

/// Fan-out of events to every consumer (console, API stream, metrics).
///
/// Backed by a bounded broadcast channel: sending never blocks a boot
/// service. A consumer that falls behind loses the oldest events and learns
/// how many (it then resynchronises from a snapshot); the bus counts them.
#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Event>>,
    lagged: Arc<AtomicU64>,
}

impl Bus {
    pub fn new(capacity: usize) -> Bus {
        Bus {
            tx: broadcast::channel(capacity).0,
            lagged: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Stamps and sends an event. Never blocks; with no consumer it is
    /// simply dropped.
    pub fn emit(&self, kind: EventKind) {
        let _ = self.tx.send(Arc::new(Event {
            at: now_millis(),
            kind,
        }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Records events a consumer missed (from `RecvError::Lagged`).
    pub fn note_lagged(&self, n: u64) {
        self.lagged.fetch_add(n, Ordering::Relaxed);
    }

    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new(16 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_tagged_json() {
        let e = Event {
            at: 1_700_000_000_000,
            kind: EventKind::LeaseBound {
                mac: "52:54:00:00:00:01".parse().unwrap(),
                ip: "10.99.0.100".parse().unwrap(),
                hostname: Some("dev-01".into()),
                expires: 1_700_000_120_000,
                fixed: false,
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"type\":\"lease_bound\""), "{json}");
        assert!(json.contains("\"mac\":\"52:54:00:00:00:01\""), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    #[test]
    fn commands_round_trip() {
        let c = Command::SetInstall {
            hostname: "dev-01".into(),
            install: false,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"command":"set_install","hostname":"dev-01","install":false}"#
        );
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), c);
    }

    #[tokio::test]
    async fn a_slow_consumer_never_blocks_the_sender() {
        let bus = Bus::new(4);
        let mut rx = bus.subscribe();
        for _ in 0..100 {
            bus.emit(EventKind::Log {
                level: Level::Info,
                target: "t".into(),
                message: "m".into(),
            });
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => bus.note_lagged(n),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(bus.lagged(), 96);
    }
}
