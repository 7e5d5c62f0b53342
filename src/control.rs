//! Carries out the operator's [`Command`]s: the one place that turns a
//! console key press or an API call into an inventory write or a lease
//! release, and reports the outcome as events.

use std::sync::Arc;
use std::sync::Mutex;

use crate::dhcp::server::DhcpServer;
use crate::event::{Bus, Command, EventKind, GroupInfo, KnownMachine};
use crate::inventory::watch::{Reload, Reloader};
use crate::inventory::{Inventory, Writer};

pub struct Control {
    writer: Writer,
    reloader: Mutex<Reloader>,
    dhcp: Option<Arc<DhcpServer>>,
    bus: Bus,
}

impl Control {
    pub fn new(
        writer: Writer,
        reloader: Reloader,
        dhcp: Option<Arc<DhcpServer>>,
        bus: Bus,
    ) -> Control {
        Control {
            writer,
            reloader: Mutex::new(reloader),
            dhcp,
            bus,
        }
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Runs one command (blocking file I/O: call it from a blocking task).
    /// Success and failure both become events; the message says what
    /// happened in words an operator reads.
    pub fn execute(&self, command: Command) -> Result<String, String> {
        let outcome = self.run(&command);
        match &outcome {
            Ok(_) => {}
            Err(error) => self.bus.emit(EventKind::CommandFailed {
                command: command_name(&command).into(),
                error: error.clone(),
            }),
        }
        outcome
    }

    fn run(&self, command: &Command) -> Result<String, String> {
        match command {
            Command::Adopt { machines } => {
                let paths = self.writer.adopt(machines).map_err(|e| e.to_string())?;
                for (a, path) in machines.iter().zip(&paths) {
                    self.bus.emit(EventKind::InventoryWritten {
                        hostname: a.hostname.clone(),
                        path: path.display().to_string(),
                        change: format!("adopted as {} ({})", a.hostname, a.profile),
                    });
                }
                self.announce();
                Ok(format!("adopted {} machine(s)", paths.len()))
            }
            Command::SetInstall { hostname, install } => {
                self.set_install(hostname, *install)?;
                Ok(format!("{hostname}: install {install}"))
            }
            Command::ReleaseLease { ip } => {
                let dhcp = self
                    .dhcp
                    .as_ref()
                    .ok_or("this pxedeck hands out no leases (DHCP is off or proxy)")?;
                match dhcp.release(*ip) {
                    Ok(true) => Ok(format!("released {ip}")),
                    Ok(false) => Err(format!("no lease on {ip}")),
                    Err(e) => Err(format!("releasing {ip}: {e}")),
                }
            }
            Command::ReloadInventory => {
                let result = self
                    .reloader
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .reload();
                match result {
                    Some(reload) => {
                        self.report_reload(reload);
                        Ok("inventory reloaded".into())
                    }
                    None => Ok("inventory unchanged".into()),
                }
            }
        }
    }

    /// Flips `install` in the machine's file (the install-done callback
    /// and the console's toggle both come here).
    pub fn set_install(&self, hostname: &str, install: bool) -> Result<(), String> {
        let path = self
            .writer
            .set_install(hostname, install)
            .map_err(|e| e.to_string())?;
        self.bus.emit(EventKind::InventoryWritten {
            hostname: hostname.into(),
            path: path.display().to_string(),
            change: format!("install: {install}"),
        });
        self.announce();
        Ok(())
    }

    /// Tells every consumer about the served snapshot.
    pub fn announce(&self) {
        self.bus
            .emit(inventory_event(&self.writer.shared().load_full()));
    }

    /// Turns a watcher reload into events.
    pub fn report_reload(&self, reload: Reload) {
        match reload {
            Reload::Reloaded { .. } => self.announce(),
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
    }
}

/// The event that carries an inventory snapshot to the console.
pub fn inventory_event(inv: &Inventory) -> EventKind {
    EventKind::InventoryReloaded {
        machines: inv
            .machines
            .iter()
            .map(|m| KnownMachine {
                hostname: m.hostname.clone(),
                group: m.group.clone(),
                macs: m.macs.clone(),
                ip: m.ip,
                profile: m.profile.clone(),
                install: m.install,
            })
            .collect(),
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
                GroupInfo {
                    name: g.clone(),
                    hostname_pattern: pattern,
                    profile: member.and_then(|m| m.profile.clone()),
                }
            })
            .collect(),
    }
}
