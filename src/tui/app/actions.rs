//! The keys that open a dialog or ask first: edit, adopt, a BMC action,
//! the install flag. Each checks what it acts on and says why not.

use super::{Action, App, Confirmation, Modal};
use crate::bmc::PowerAction;
use crate::event::Command;
use crate::tui::adopt::AdoptDialog;
use crate::tui::edit::EditDialog;

impl App {
    /// Opens the edit dialog on the target machine (the one refused last,
    /// as it was typed, if it is the same machine).
    pub(super) fn open_edit(&mut self) {
        let Some(m) = self.target() else {
            return;
        };
        if m.is_unknown() {
            self.set_status(
                "adopt an unknown machine first (a); edit is for the inventory's",
                true,
            );
            return;
        }
        let hostname = m.hostname.clone();
        let fresh = EditDialog::new(&self.model, m);
        let parked = self
            .edit_sent
            .take_if(|d| Some(&d.hostname) == hostname.as_ref() && d.error.is_some());
        let dialog = parked.or(fresh);
        match dialog {
            Some(d) => self.modal = Modal::Edit(d),
            None => self.set_status("only machines in the inventory can be edited", true),
        }
    }

    pub(super) fn open_adopt(&mut self) -> Vec<Action> {
        let machines: Vec<_> = if self.marked.is_empty() || self.detail.is_some() {
            match self.target() {
                Some(m) if m.is_unknown() => vec![(m.mac, m.uuid)],
                Some(m) => {
                    let name = m.hostname.clone().unwrap_or_default();
                    self.set_status(format!("{name} is already in the inventory"), true);
                    return vec![];
                }
                None => return vec![],
            }
        } else {
            self.marked
                .iter()
                .filter_map(|mac| self.model.machine(mac))
                .filter(|m| m.is_unknown())
                .map(|m| (m.mac, m.uuid))
                .collect()
        };
        if machines.is_empty() {
            return vec![];
        }
        self.modal = Modal::Adopt(AdoptDialog::new(&self.model, machines));
        vec![]
    }

    /// Asks before a BMC action (`None`: reinstall) on the marked machines
    /// of the inventory, else the selected one, naming how many.
    pub(super) fn ask_bmc(&mut self, action: Option<PowerAction>) {
        let hostnames: Vec<String> = if self.marked.is_empty() || self.detail.is_some() {
            self.target()
                .and_then(|m| m.hostname.clone())
                .into_iter()
                .collect()
        } else {
            self.marked
                .iter()
                .filter_map(|mac| self.model.machine(mac))
                .filter_map(|m| m.hostname.clone())
                .collect()
        };
        if hostnames.is_empty() {
            self.set_status("select a machine of the inventory (one with a bmc:)", true);
            return;
        }
        let what = action.map_or(
            "reinstall (install true, boot once from network, power cycle)",
            PowerAction::label,
        );
        let names = match hostnames.as_slice() {
            [one] => one.clone(),
            [a, b] => format!("{a}, {b}"),
            [a, b, ..] => format!("{a}, {b}, …"),
            [] => String::new(),
        };
        let question = format!("{what}: {} machine(s) ({names})? y/n", hostnames.len());
        let command = match action {
            Some(action) => Command::Power { hostnames, action },
            None => Command::Reinstall { hostnames },
        };
        self.modal = Modal::Confirm(Confirmation {
            question,
            command,
            note: "sent to the BMCs…".into(),
            clears_marks: true,
        });
    }

    pub(super) fn toggle_install(&mut self) -> Vec<Action> {
        let Some(m) = self.target() else {
            return vec![];
        };
        let (Some(hostname), Some(install)) = (m.hostname.clone(), m.install) else {
            self.set_status("only machines in the inventory have an install flag", true);
            return vec![];
        };
        let note = format!("{hostname}: install {}…", !install);
        let question = if install {
            format!("{hostname}: cancel the reinstall (install: false)? y/n")
        } else {
            format!("{hostname}: REIMAGE on its next network boot (install: true)? y/n")
        };
        self.modal = Modal::Confirm(Confirmation {
            question,
            command: Command::SetInstall {
                hostname,
                install: !install,
            },
            note,
            clears_marks: false,
        });
        vec![]
    }
}
