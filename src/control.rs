//! Carries out the operator's [`Command`]s: the one place that turns a
//! console key press or an API call into an inventory write or a lease
//! release, and reports the outcome as events (one machine's change as a
//! small event, a whole new snapshot as the full list).

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::bmc::BmcHandle;
use crate::bmc::actor::{MAX_QUEUED_JOBS, Plan};
use crate::dhcp::server::DhcpServer;
use crate::event::{Bus, Command, EventKind, GroupInfo, KnownMachine};
use crate::ident::Mac;
use crate::inventory::rules::{RuleHit, RuleMode, expand};
use crate::inventory::watch::Reload;
use crate::inventory::{Adoption, Inventory, InventoryService, Machine, Published, WriteError};

/// The highest `{n}` tried for a rule's hostname pattern.
const MAX_PATTERN_NUMBER: usize = 100_000;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("this pxedeck hands out no leases (DHCP is off or proxy)")]
    NoLeaseServer,
    #[error("no lease on {0}")]
    NoLease(Ipv4Addr),
    #[error(
        "{ip} is leased to {holder} now: adopt with another address, or release that lease first"
    )]
    AddressHeld { ip: Ipv4Addr, holder: Mac },
    #[error("releasing {ip}: {source}")]
    Release {
        ip: Ipv4Addr,
        source: std::io::Error,
    },
    #[error("no machines named")]
    NoMachines,
    #[error("{count} machines named; at most {max} at once")]
    TooManyMachines { count: usize, max: usize },
    #[error("no machine named {0}")]
    NoSuchMachine(String),
    #[error("{0} has no bmc: in the inventory")]
    NoBmc(String),
    #[error("this pxedeck drives no BMCs")]
    NoBmcActor,
    #[error("{0}")]
    BmcQueueFull(String),
    #[error("{mac} is {hostname} in the inventory: only unknown machines can be forgotten")]
    Known { mac: Mac, hostname: String },
    #[error("the rule at {0} is no longer an auto rule of the inventory")]
    RuleGone(String),
    #[error("no free hostname for pattern {0}")]
    NoFreeName(String),
}

/// The kind of a [`CommandError`], for callers that answer with a status
/// (the API) without knowing every error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request itself is wrong: a rule broken, a name taken.
    Invalid,
    /// It names something that does not exist.
    NotFound,
    /// Fine in itself, but the current state prevents it (the tree on disk
    /// is broken, a file appeared meanwhile, no DHCP server).
    Conflict,
    /// pxedeck failed (disk I/O): retrying may work.
    Internal,
}

impl CommandError {
    pub fn failure(&self) -> Failure {
        match self {
            CommandError::Write(w) => match w {
                WriteError::Adoption(_)
                | WriteError::Invalid(_)
                | WriteError::TooLong { .. }
                | WriteError::NothingToChange
                | WriteError::NoSuchGroup(_) => Failure::Invalid,
                WriteError::NoSuchMachine(_) => Failure::NotFound,
                WriteError::FileExists(_)
                | WriteError::TreeBroken(_)
                | WriteError::Uneditable(_)
                | WriteError::NothingToUndo
                | WriteError::ChangedSince(_) => Failure::Conflict,
                WriteError::Io { .. } => Failure::Internal,
            },
            CommandError::NoLeaseServer | CommandError::AddressHeld { .. } => Failure::Conflict,
            CommandError::NoLease(_) | CommandError::NoSuchMachine(_) => Failure::NotFound,
            CommandError::Release { .. } => Failure::Internal,
            CommandError::NoMachines
            | CommandError::TooManyMachines { .. }
            | CommandError::NoBmc(_) => Failure::Invalid,
            CommandError::NoBmcActor | CommandError::BmcQueueFull(_) => Failure::Conflict,
            CommandError::Known { .. } | CommandError::NoFreeName(_) => Failure::Invalid,
            CommandError::RuleGone(_) => Failure::Conflict,
        }
    }
}

pub struct Control {
    inventory: Arc<InventoryService>,
    dhcp: Option<Arc<DhcpServer>>,
    bus: Bus,
    bmc: Option<BmcHandle>,
    /// What `auto` rules adopted and had refused (`crate::auto_adopt`).
    auto_adopt: Arc<crate::auto_adopt::AutoAdoptStats>,
    /// One done callback's write on the blocking pool at a time (see
    /// [`Control::set_install_off_thread`]).
    done_writes: tokio::sync::Semaphore,
}

impl Control {
    pub fn new(
        inventory: Arc<InventoryService>,
        dhcp: Option<Arc<DhcpServer>>,
        bus: Bus,
    ) -> Control {
        Control {
            inventory,
            dhcp,
            bus,
            bmc: None,
            auto_adopt: Arc::default(),
            done_writes: tokio::sync::Semaphore::new(1),
        }
    }

    /// The auto-adopter's counters, for `/metrics`.
    pub fn auto_adopt_stats(&self) -> &Arc<crate::auto_adopt::AutoAdoptStats> {
        &self.auto_adopt
    }

    /// Hands BMC actions to the actor that owns them.
    pub fn with_bmc(mut self, bmc: BmcHandle) -> Control {
        self.bmc = Some(bmc);
        self
    }

    pub fn inventory(&self) -> &Arc<InventoryService> {
        &self.inventory
    }

    /// The BMC actor's counters, for `/metrics`.
    pub fn bmc_stats(&self) -> Option<&crate::bmc::BmcStats> {
        self.bmc.as_ref().map(|b| &*b.stats)
    }

    /// Runs one command (blocking file I/O: call it from a blocking task).
    /// Success and failure both become events; the message says what
    /// happened in words an operator reads.
    pub fn run(&self, command: &Command) -> Result<String, CommandError> {
        let outcome = self.dispatch(command);
        if let Err(error) = &outcome {
            self.bus.emit(EventKind::CommandFailed {
                command: command_name(command).into(),
                error: error.to_string(),
            });
        }
        outcome
    }

    /// [`Self::run`] with the error in words, for the console, which shows
    /// them and needs nothing else.
    pub fn execute(&self, command: Command) -> Result<String, String> {
        self.run(&command).map_err(|e| e.to_string())
    }

    fn dispatch(&self, command: &Command) -> Result<String, CommandError> {
        match command {
            Command::Adopt { machines } => {
                self.refuse_held_addresses(machines)?;
                let paths = self.inventory.adopt(machines)?;
                for (a, path) in machines.iter().zip(&paths) {
                    self.bus.emit(EventKind::InventoryWritten {
                        hostname: a.hostname.clone(),
                        path: path.display().to_string(),
                        change: format!("adopted as {} ({})", a.hostname, a.profile),
                    });
                }
                self.publish(&Published::Whole);
                Ok(format!("adopted {} machine(s)", paths.len()))
            }
            Command::SetInstall { hostname, install } => {
                self.set_install(hostname, *install)?;
                Ok(format!("{hostname}: install {install}"))
            }
            Command::ReleaseLease { ip } => {
                let dhcp = self.dhcp.as_ref().ok_or(CommandError::NoLeaseServer)?;
                match dhcp.release(*ip) {
                    Ok(true) => Ok(format!("released {ip}")),
                    Ok(false) => Err(CommandError::NoLease(*ip)),
                    Err(source) => Err(CommandError::Release { ip: *ip, source }),
                }
            }
            Command::Forget { mac } => {
                if let Some(m) = self.inventory.shared().load().by_mac(mac) {
                    return Err(CommandError::Known {
                        mac: *mac,
                        hostname: m.hostname.clone(),
                    });
                }
                self.bus.emit(EventKind::MachineForgotten { mac: *mac });
                Ok(format!("forgot {mac}"))
            }
            Command::Edit { hostname, edit } => {
                if let Some(ip) = edit.ip
                    && let Some(m) = self.inventory.shared().load().by_hostname(hostname)
                {
                    self.refuse_held_address(ip, &m.macs)?;
                }
                let written = self.inventory.edit(hostname, edit)?;
                if written.published == Published::Nothing {
                    return Ok(format!("{hostname}: nothing changed"));
                }
                let change = edit_words(edit);
                self.bus.emit(EventKind::InventoryWritten {
                    hostname: hostname.clone(),
                    path: written.path.display().to_string(),
                    change: change.clone(),
                });
                self.publish(&written.published);
                Ok(format!("{hostname}: {change}"))
            }
            Command::UndoAdoption => {
                let undone = self.inventory.undo_last_adoption()?;
                for (h, path) in undone.hostnames.iter().zip(&undone.paths) {
                    self.bus.emit(EventKind::InventoryWritten {
                        hostname: h.clone(),
                        path: path.display().to_string(),
                        change: "adoption undone (file removed)".into(),
                    });
                }
                self.publish(&Published::Whole);
                Ok(format!(
                    "undid the adoption of {}",
                    undone.hostnames.join(", ")
                ))
            }
            Command::ReloadInventory => match self.inventory.reload_on_request() {
                Some(reload) => {
                    self.report_reload(reload);
                    Ok("inventory reloaded".into())
                }
                None => Ok("inventory unchanged".into()),
            },
            Command::Power { hostnames, action } => {
                let (bmc, hostnames) = self.bmc_machines(hostnames)?;
                for h in &hostnames {
                    bmc.submit(h, Plan::Action(*action))
                        .map_err(CommandError::BmcQueueFull)?;
                }
                Ok(format!(
                    "{} queued for {} machine(s)",
                    action.label(),
                    hostnames.len()
                ))
            }
            Command::Reinstall { hostnames } => {
                let (bmc, hostnames) = self.bmc_machines(hostnames)?;
                // The flag first: a machine that boots from the network
                // must find its installer waiting, never its local disk.
                for h in &hostnames {
                    self.set_install(h, true)?;
                    bmc.submit(h, Plan::Reinstall)
                        .map_err(CommandError::BmcQueueFull)?;
                }
                Ok(format!(
                    "reinstall queued for {} machine(s): install: true, boot once from network, power cycle",
                    hostnames.len()
                ))
            }
        }
    }

    /// The actor and the named machines, each in the inventory with a
    /// `bmc:`, each once; all checked before anything is done.
    fn bmc_machines(
        &self,
        hostnames: &[String],
    ) -> Result<(&BmcHandle, Vec<String>), CommandError> {
        let bmc = self.bmc.as_ref().ok_or(CommandError::NoBmcActor)?;
        let mut unique: Vec<String> = Vec::new();
        for h in hostnames {
            if !unique.contains(h) {
                unique.push(h.clone());
            }
            if unique.len() > MAX_QUEUED_JOBS {
                return Err(CommandError::TooManyMachines {
                    count: hostnames.len(),
                    max: MAX_QUEUED_JOBS,
                });
            }
        }
        if unique.is_empty() {
            return Err(CommandError::NoMachines);
        }
        let snapshot = self.inventory.shared().load();
        for h in &unique {
            match snapshot.by_hostname(h) {
                None => return Err(CommandError::NoSuchMachine(h.clone())),
                Some(m) if m.bmc.is_none() => return Err(CommandError::NoBmc(h.clone())),
                Some(_) => {}
            }
        }
        Ok((bmc, unique))
    }

    /// Adopts an unknown machine an `auto` rule matched, through the
    /// writer (validated, atomic, committed), named by the first free
    /// hostname of the rule's pattern. `Ok(None)` when the machine is in
    /// the inventory already (an earlier sighting adopted it). The rule
    /// must still be in the snapshot: a reload may have removed it.
    pub fn auto_adopt(
        &self,
        mac: Mac,
        uuid: Option<crate::ident::Uuid>,
        hit: &RuleHit,
        facts: crate::boot::identity::Facts,
    ) -> Result<Option<String>, CommandError> {
        let snapshot = self.inventory.shared().load();
        if snapshot.lookup(&mac, uuid.as_ref()).is_some() {
            return Ok(None);
        }
        if !snapshot
            .rules
            .iter()
            .any(|r| r.hit == *hit && r.hit.mode == RuleMode::Auto)
        {
            return Err(CommandError::RuleGone(hit.rule.clone()));
        }
        let hostname = (1..=MAX_PATTERN_NUMBER)
            .map(|n| expand(&hit.hostname, n))
            .find(|h| {
                snapshot.by_hostname(h).is_none()
                    && snapshot.by_hostname(&h.to_ascii_lowercase()).is_none()
            })
            .ok_or_else(|| CommandError::NoFreeName(hit.hostname.clone()))?;
        drop(snapshot);
        let adoption = Adoption {
            macs: vec![mac],
            uuid,
            hostname: hostname.clone(),
            group: hit.group.clone(),
            profile: hit.profile.clone(),
            ip: None,
            install: hit.install,
            // Empty when adopted at its first DHCP packet, before iPXE
            // reported anything.
            facts,
            ..Default::default()
        };
        let path = self.inventory.adopt_by_rule(&adoption, &hit.rule)?;
        self.bus.emit(EventKind::InventoryWritten {
            hostname: hostname.clone(),
            path: path.display().to_string(),
            change: format!(
                "auto-adopted {mac} by rule {} as {hostname} ({}, install: {})",
                hit.rule, hit.profile, hit.install
            ),
        });
        self.publish(&Published::Whole);
        Ok(Some(hostname))
    }

    /// An adoption may not give a machine a static address that another
    /// MAC holds a lease on: the two would answer for one address, and the
    /// holder could read the new machine's configs from it.
    fn refuse_held_addresses(&self, machines: &[Adoption]) -> Result<(), CommandError> {
        for a in machines {
            if let Some(ip) = a.ip {
                self.refuse_held_address(ip, &a.macs)?;
            }
        }
        Ok(())
    }

    /// A fixed address for the machine of `macs` may not be one another
    /// MAC holds a lease on.
    fn refuse_held_address(&self, ip: Ipv4Addr, macs: &[Mac]) -> Result<(), CommandError> {
        if let Some(dhcp) = &self.dhcp
            && let Some(lease) = dhcp.bound_lease_at(ip)
            && !macs.contains(&lease.mac)
        {
            return Err(CommandError::AddressHeld {
                ip,
                holder: lease.mac,
            });
        }
        Ok(())
    }

    /// Flips `install` in the machine's file (the install-done callback
    /// and the console's toggle both come here).
    pub fn set_install(&self, hostname: &str, install: bool) -> Result<(), CommandError> {
        let written = self.inventory.set_install(hostname, install)?;
        self.bus.emit(EventKind::InventoryWritten {
            hostname: hostname.into(),
            path: written.path.display().to_string(),
            change: format!("install: {install}"),
        });
        self.publish(&written.published);
        Ok(())
    }

    /// [`Control::set_install`] on the blocking pool, for the done
    /// callbacks, one at a time. The writer takes one write at a time
    /// anyway; a mass boot's burst of callbacks waiting for it on the pool
    /// held a thread each (75 threads in the 500-machine bench, each with
    /// its own allocator cache). Waiting here costs a task, not a thread.
    pub async fn set_install_off_thread(
        self: &Arc<Self>,
        hostname: String,
        install: bool,
    ) -> Result<Result<(), CommandError>, tokio::task::JoinError> {
        // Never closed, so acquiring only waits.
        let _turn = self.done_writes.acquire().await;
        let control = self.clone();
        tokio::task::spawn_blocking(move || control.set_install(&hostname, install)).await
    }

    /// Tells every consumer what changed in the served snapshot: one
    /// machine when only one did (a mass boot's done callbacks), else the
    /// whole inventory.
    fn publish(&self, published: &Published) {
        let snapshot = self.inventory.shared().load();
        match published {
            Published::Nothing => {}
            Published::Machine(hostname) => match snapshot.by_hostname(hostname) {
                Some(m) => self.bus.emit(EventKind::InventoryMachineChanged {
                    machine: known_machine(m),
                }),
                None => self.bus.emit(inventory_event(&snapshot)),
            },
            Published::Whole => self.bus.emit(inventory_event(&snapshot)),
        }
    }

    /// Turns a watcher reload into events.
    pub fn report_reload(&self, reload: Reload) {
        match reload {
            Reload::Reloaded { .. } => self.publish(&Published::Whole),
            Reload::Failed(problems) => self.bus.emit(EventKind::InventoryError { problems }),
        }
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Adopt { .. } => "adopt",
        Command::SetInstall { .. } => "set install",
        Command::ReleaseLease { .. } => "release lease",
        Command::ReloadInventory => "reload inventory",
        Command::Power { .. } => "power",
        Command::Reinstall { .. } => "reinstall",
        Command::Forget { .. } => "forget",
        Command::Edit { .. } => "edit",
        Command::UndoAdoption => "undo adoption",
    }
}

/// `profile talos-worker, install true, moved to k8s-prod`.
fn edit_words(edit: &crate::inventory::MachineEdit) -> String {
    let mut said = Vec::new();
    if let Some(p) = &edit.profile {
        said.push(format!("profile {p}"));
    }
    if let Some(ip) = edit.ip {
        said.push(format!("ip {ip}"));
    }
    if let Some(i) = edit.install {
        said.push(format!("install {i}"));
    }
    if let Some(g) = &edit.group {
        said.push(format!("moved to {}", if g.is_empty() { "/" } else { g }));
    }
    said.join(", ")
}

/// The event that carries an inventory snapshot to the console.
pub fn inventory_event(inv: &Inventory) -> EventKind {
    EventKind::InventoryReloaded {
        machines: inv.machines.iter().map(known_machine).collect(),
        profiles: inv.profiles.keys().cloned().collect(),
        groups: inv.groups.clone(),
        group_info: inv
            .groups
            .iter()
            .map(|g| {
                // The group's defaults as its machines inherit them; an
                // empty group falls back to its name as the pattern stem.
                let member = inv.machines.iter().find(|m| &m.group == g);
                let pattern = member
                    .and_then(|m| m.values.path("adopt.hostname_pattern"))
                    .and_then(|n| n.as_str())
                    .map(str::to_string);
                let adopt_install = member
                    .and_then(|m| m.values.path("adopt.install"))
                    .is_some_and(|n| matches!(n.value, crate::yaml::Value::Bool(true)));
                GroupInfo {
                    name: g.clone(),
                    hostname_pattern: pattern,
                    profile: member.and_then(|m| m.profile.clone()),
                    adopt_install,
                }
            })
            .collect(),
    }
}

/// A machine as the console needs to know it.
fn known_machine(m: &Machine) -> KnownMachine {
    KnownMachine {
        hostname: m.hostname.clone(),
        group: m.group.clone(),
        macs: m.macs.clone(),
        ip: m.ip,
        profile: m.profile.clone(),
        install: m.install,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::model::Model;

    fn known(hostname: &str, mac: &str, install: bool) -> KnownMachine {
        KnownMachine {
            hostname: hostname.into(),
            group: "rack1".into(),
            macs: vec![mac.parse().unwrap()],
            ip: None,
            profile: Some("p".into()),
            install,
        }
    }

    #[test]
    fn a_machine_change_relabels_its_row_and_keeps_the_rest() {
        let mut model = Model::default();
        let whole = EventKind::InventoryReloaded {
            machines: vec![
                known("a", "52:54:00:00:00:01", true),
                known("b", "52:54:00:00:00:02", true),
            ],
            profiles: vec!["p".into()],
            groups: vec!["rack1".into()],
            group_info: vec![],
        };
        model.apply(&Event { at: 1, kind: whole });
        let problems = vec![crate::inventory::Problem {
            file: "c.yaml".into(),
            line: Some(1),
            message: "broken".into(),
        }];
        model.apply(&Event {
            at: 2,
            kind: EventKind::InventoryError {
                problems: problems.clone(),
            },
        });
        model.apply(&Event {
            at: 3,
            kind: EventKind::InventoryMachineChanged {
                machine: known("a", "52:54:00:00:00:01", false),
            },
        });
        let install = |mac: &str| model.machine(&mac.parse().unwrap()).unwrap().install;
        assert_eq!(install("52:54:00:00:00:01"), Some(false));
        assert_eq!(install("52:54:00:00:00:02"), Some(true));
        assert_eq!(model.machines.len(), 2);
        assert_eq!(model.inventory.machines, 2);
        assert_eq!(model.inventory.problems, problems, "still broken on disk");
    }
}
