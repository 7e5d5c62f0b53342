//! Machine rows: who each MAC is, where it is in its boot, and the fold of
//! the events a machine's own boot produces (DHCP, scripts, configs, done).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::Model;
use super::stage::{Entered, Stage};
use super::timeline::{self, DhcpStage, Step, StepKind};
use crate::boot::arch::Firmware;
use crate::boot::decide::Chain;
use crate::boot::grub::Stage as GrubStage;
use crate::boot::identity::Facts;
use crate::boot::{BootDecision, ScriptKind};
use crate::clock::Millis;
use crate::dhcp::{DhcpReply, RelayAgentSeen};
use crate::event::DhcpSeen;
use crate::ident::{Mac, Uuid};
use crate::inventory::rules::RuleHit;

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
    /// Option 82 from the relay: which switch port and relay.
    #[serde(default)]
    pub relay_agent: Option<RelayAgentSeen>,
    /// The server address whose interface heard it last (direct
    /// requests): its segment, with several interfaces.
    #[serde(default)]
    pub interface: Option<Ipv4Addr>,
    pub ip: Option<Ipv4Addr>,
    /// The inventory's fixed address for it, whatever lease it holds.
    #[serde(default)]
    pub fixed_ip: Option<Ipv4Addr>,
    pub state: MachineState,
    pub last_seen: Option<Millis>,
    /// The transfer running now, if any (id into `Model::transfers`).
    pub transfer: Option<u64>,
    pub last_error: Option<String>,
    /// The chain its last boot script came over (iPXE, shim/GRUB).
    pub chain: Option<Chain>,
    pub timeline: VecDeque<Step>,
    /// Its power as its BMC reports it; None for machines without a BMC
    /// (or not polled yet).
    #[serde(default)]
    pub power: Option<super::power::PowerView>,
    /// The boot stage reached, once the machine has started one.
    #[serde(default)]
    pub stage: Option<Stage>,
    /// When it entered that stage.
    #[serde(default)]
    pub stage_since: Millis,
    /// Its last sign of life: what stuck detection measures from.
    #[serde(default)]
    pub idle_since: Millis,
    /// The rule (`adopt.rules`) this unknown machine matched when last
    /// seen: the adoption the console proposes.
    #[serde(default)]
    pub proposal: Option<RuleHit>,
    /// The rule its reported facts matched (vendor, product): it outranks
    /// what DHCP alone matched, on every sighting until facts say otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts_rule: Option<RuleHit>,
    /// What its iPXE reported about its hardware (SMBIOS, NIC, platform).
    #[serde(default)]
    pub facts: Facts,
}

impl MachineRow {
    pub(super) fn new(mac: Mac) -> MachineRow {
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
            relay_agent: None,
            interface: None,
            ip: None,
            fixed_ip: None,
            state: MachineState::Known,
            last_seen: None,
            transfer: None,
            last_error: None,
            chain: None,
            timeline: VecDeque::new(),
            power: None,
            stage: None,
            stage_since: 0,
            idle_since: 0,
            proposal: None,
            facts_rule: None,
            facts: Facts::default(),
        }
    }

    /// Not in the inventory: the console makes these stand out.
    pub fn is_unknown(&self) -> bool {
        self.hostname.is_none()
    }

    pub(super) fn step(&mut self, at: Millis, kind: StepKind, failed: bool) {
        timeline::record(&mut self.timeline, at, kind, failed);
    }
}

/// What a DHCP decision means for the State column, given the state now.
fn state_after_dhcp(decision: &BootDecision, now: MachineState) -> MachineState {
    match (decision, now) {
        // Later stages are not undone by a renewing client.
        (_, MachineState::Loading | MachineState::Installing | MachineState::Installed) => now,
        (BootDecision::Hold, _) => MachineState::Held,
        (BootDecision::Ignore | BootDecision::NotPxe, _) => MachineState::Discovered,
        (BootDecision::Local, _) => MachineState::Local,
        (BootDecision::Install { .. } | BootDecision::Discover { .. }, _) => MachineState::Booting,
    }
}

fn state_after_script(kind: ScriptKind) -> MachineState {
    match kind {
        ScriptKind::Hold => MachineState::Held,
        ScriptKind::Local => MachineState::Local,
        ScriptKind::Error => MachineState::Failed,
        ScriptKind::Install | ScriptKind::Discover | ScriptKind::Menu => MachineState::Booting,
    }
}

impl Model {
    /// Rebuilds the MAC → row index: the one place it is built.
    pub(super) fn index_machines(&mut self) {
        self.by_mac = self
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.mac, i))
            .collect();
    }

    pub fn machine(&self, mac: &Mac) -> Option<&MachineRow> {
        self.by_mac.get(mac).map(|&i| &self.machines[i])
    }

    /// The machine's row, created on first sight (within the cap on
    /// unknown rows: making room may drop the oldest idle ones).
    pub(super) fn row(&mut self, mac: Mac) -> &mut MachineRow {
        if !self.by_mac.contains_key(&mac) {
            self.before_new_row();
            self.by_mac.insert(mac, self.machines.len());
            self.machines.push(MachineRow::new(mac));
        }
        let i = self.by_mac[&mac];
        &mut self.machines[i]
    }

    /// The machine's row if it has one: for news about a machine that
    /// must not bring back a row the cap dropped (a lease running out,
    /// the end of a transfer).
    pub(super) fn existing_row(&mut self, mac: Mac) -> Option<&mut MachineRow> {
        self.by_mac.get(&mac).map(|&i| &mut self.machines[i])
    }

    /// Whether a script request naming `mac` may list it. A `?mac=` in a
    /// URL is anyone's to make up, so it alone never adds a row: the MAC
    /// must already be listed (seen by DHCP, in the inventory), hold a
    /// lease, or be named by the inventory (`hostname`). With DHCP off
    /// there are no DHCP sightings or leases to go by, so the script is
    /// all there is and the cap on unknown rows is the bound.
    fn may_list_for_script(&self, mac: &Mac, hostname: Option<&str>) -> bool {
        self.by_mac.contains_key(mac)
            || self.lease_of.contains_key(mac)
            || hostname.is_some()
            || self
                .server
                .as_ref()
                .is_some_and(|s| s.dhcp_mode == crate::config::DhcpMode::Off)
    }

    /// The machine behind a client address: its lease, else the address
    /// the inventory or an earlier reply gave it.
    pub(super) fn mac_of_ip(&self, ip: IpAddr) -> Option<Mac> {
        let IpAddr::V4(v4) = ip else {
            return None;
        };
        self.leases.get(&v4).map(|l| l.mac).or_else(|| {
            self.machines
                .iter()
                .find(|m| m.ip == Some(v4))
                .map(|m| m.mac)
        })
    }

    fn mac_of_hostname(&self, hostname: &str) -> Option<Mac> {
        self.machines
            .iter()
            .find(|m| m.hostname.as_deref() == Some(hostname))
            .map(|m| m.mac)
    }

    /// An operator forgot an unknown machine: its row goes (a machine in
    /// the inventory keeps its row). It comes back if it asks again.
    pub(super) fn forget(&mut self, at: Millis, mac: Mac) {
        let Some(&i) = self.by_mac.get(&mac) else {
            return;
        };
        if !self.machines[i].is_unknown() {
            return;
        }
        self.machines.remove(i);
        self.index_machines();
        let line = format!("forgot unknown machine {mac}");
        self.log(at, crate::event::Level::Info, "command", line);
    }

    pub(super) fn dhcp_seen(&mut self, at: Millis, seen: &DhcpSeen) {
        *self.counters.dhcp_in.entry(seen.message).or_default() += 1;
        let row = self.row(seen.mac);
        row.last_seen = Some(at);
        row.firmware = seen.firmware.or(row.firmware);
        row.ipxe = seen.ipxe;
        row.vendor_class = seen.vendor_class.clone().or(row.vendor_class.take());
        row.uuid = seen.uuid.or(row.uuid);
        row.relay = seen.relay;
        row.relay_agent = seen.relay_agent.clone();
        row.interface = seen.interface;
        if seen.hostname.is_some() {
            row.hostname = seen.hostname.clone();
        }
        row.proposal = if row.is_unknown() {
            row.facts_rule.clone().or_else(|| seen.rule.clone())
        } else {
            None
        };
        let stage = DhcpStage::new(seen.firmware, seen.ipxe);
        row.step(
            at,
            StepKind::DhcpSeen {
                stage,
                message: seen.message,
            },
            false,
        );
        row.state = state_after_dhcp(&seen.decision, row.state);
        // A firmware's DISCOVER starts a boot; iPXE's and an installer's
        // DHCP happen inside one.
        if seen.message == crate::dhcp::DhcpMessage::Discover
            && !seen.ipxe
            && seen.firmware.is_some()
        {
            row.advance(at, Entered::FirmwareDhcp);
        } else {
            row.touch(at);
        }
    }

    pub(super) fn dhcp_replied(
        &mut self,
        at: Millis,
        mac: Mac,
        reply: DhcpReply,
        ip: Option<Ipv4Addr>,
        boot_file: Option<&str>,
    ) {
        *self.counters.dhcp_out.entry(reply).or_default() += 1;
        let row = self.row(mac);
        if let Some(ip) = ip {
            row.ip = Some(ip);
        }
        let kind = StepKind::DhcpReplied {
            reply,
            boot_file: boot_file.map(str::to_string),
        };
        row.step(at, kind, reply == DhcpReply::Nak);
    }

    pub(super) fn script_served(
        &mut self,
        at: Millis,
        mac: Option<Mac>,
        client: IpAddr,
        hostname: Option<&str>,
        (kind, chain): (ScriptKind, Chain),
        profile: Option<&str>,
    ) {
        self.counters.scripts += 1;
        let Some(mac) = mac.or_else(|| self.mac_of_ip(client)) else {
            return;
        };
        if !self.may_list_for_script(&mac, hostname) {
            return;
        }
        let row = self.row(mac);
        row.last_seen = Some(at);
        if let Some(hostname) = hostname {
            row.hostname = Some(hostname.to_string());
        }
        if let Some(profile) = profile {
            row.profile = Some(profile.to_string());
        }
        row.state = state_after_script(kind);
        row.chain = Some(chain);
        match kind {
            ScriptKind::Install | ScriptKind::Discover | ScriptKind::Menu => {
                row.advance(at, Entered::Script)
            }
            ScriptKind::Local => row.advance(at, Entered::LocalBoot),
            ScriptKind::Hold | ScriptKind::Error => row.touch(at),
        }
        let step = StepKind::Script {
            kind,
            profile: profile.map(str::to_string),
            chain,
        };
        row.step(at, step, kind == ScriptKind::Error);
    }

    /// A loader said a boot step failed (GRUB refusing an unsigned kernel).
    pub(super) fn boot_failed(
        &mut self,
        at: Millis,
        mac: Mac,
        hostname: Option<&str>,
        stage: GrubStage,
        reason: &str,
    ) {
        if !self.may_list_for_script(&mac, hostname) {
            return;
        }
        let row = self.row(mac);
        row.last_seen = Some(at);
        row.state = MachineState::Failed;
        row.last_error = Some(reason.to_string());
        row.step(at, StepKind::BootFailed { stage }, true);
    }

    pub(super) fn config_served(&mut self, at: Millis, client: IpAddr, hostname: &str, name: &str) {
        self.counters.configs += 1;
        let Some(mac) = self
            .mac_of_ip(client)
            .or_else(|| self.mac_of_hostname(hostname))
        else {
            return;
        };
        let row = self.row(mac);
        row.state = MachineState::Installing;
        row.advance(at, Entered::Config);
        row.hostname.get_or_insert_with(|| hostname.to_string());
        row.step(at, StepKind::Config { name: name.into() }, false);
    }

    /// Facts come with a script request, before or after the machine is
    /// known; a MAC the model would not list for its script gets no row
    /// for its facts either (the same bound on unknown rows).
    pub(super) fn facts_reported(
        &mut self,
        at: Millis,
        mac: Mac,
        facts: &Facts,
        rule: Option<&RuleHit>,
    ) {
        if !self.may_list_for_script(&mac, None) {
            return;
        }
        let row = self.row(mac);
        row.last_seen = Some(at);
        row.facts = facts.clone();
        // Matched with the vendor and product DHCP could not know: the
        // better-informed answer, kept over DHCP's on later sightings. No
        // match leaves DHCP's proposal alone.
        row.facts_rule = rule.filter(|_| row.is_unknown()).cloned();
        if let Some(rule) = &row.facts_rule {
            row.proposal = Some(rule.clone());
        }
    }

    pub(super) fn install_done(&mut self, at: Millis, hostname: &str, mac: Option<Mac>) {
        self.counters.installs_done += 1;
        let Some(mac) = mac.or_else(|| self.mac_of_hostname(hostname)) else {
            return;
        };
        let row = self.row(mac);
        row.state = MachineState::Installed;
        row.install = Some(false);
        row.advance(at, Entered::Done);
        row.step(at, StepKind::InstallDone, false);
        self.note_done(at);
    }
}
