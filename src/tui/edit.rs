//! The edit dialog: a known machine's profile, group, fixed IP and install
//! flag, chosen from what the inventory has and checked against what the
//! console knows before the writer checks it again on disk. Only what
//! changed is sent.

use std::net::Ipv4Addr;

use crossterm::event::KeyEvent;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::keymap::Intent;
use crate::event::Command;
use crate::inventory::MachineEdit;
use crate::model::{MachineRow, Model};

/// The most characters the IP field takes; an address needs 15.
pub const MAX_IP_TEXT: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditField {
    Profile,
    Group,
    Ip,
    Install,
}

const FIELDS: [EditField; 4] = [
    EditField::Profile,
    EditField::Group,
    EditField::Ip,
    EditField::Install,
];

#[derive(Debug, Clone)]
pub struct EditDialog {
    pub hostname: String,
    pub field: EditField,
    pub profiles: Vec<String>,
    pub profile: usize,
    pub groups: Vec<String>,
    pub group: usize,
    pub ip: Input,
    pub install: bool,
    /// What the machine has now, to send only what changed.
    was: (Option<String>, String, Option<Ipv4Addr>, bool),
    pub error: Option<String>,
}

/// What a key did to the dialog.
pub enum EditOutcome {
    Continue,
    Cancel,
    Submit(Command),
}

impl EditDialog {
    /// The dialog for a machine of the inventory; None for an unknown one.
    pub fn new(model: &Model, m: &MachineRow) -> Option<EditDialog> {
        let hostname = m.hostname.clone()?;
        let install = m.install?;
        let mut profiles = model.inventory.profiles.clone();
        if let Some(p) = &m.profile
            && !profiles.contains(p)
        {
            profiles.push(p.clone());
        }
        if profiles.is_empty() {
            profiles.push(String::new());
        }
        let group_now = m.group.clone().unwrap_or_default();
        let mut groups = model.inventory.group_names();
        if !groups.contains(&group_now) {
            groups.insert(0, group_now.clone());
        }
        let profile = m
            .profile
            .as_ref()
            .and_then(|p| profiles.iter().position(|x| x == p))
            .unwrap_or(0);
        let group = groups.iter().position(|g| *g == group_now).unwrap_or(0);
        let ip = m.fixed_ip;
        Some(EditDialog {
            hostname,
            field: EditField::Profile,
            profile,
            profiles,
            group,
            groups,
            ip: Input::default().with_value(ip.map(|i| i.to_string()).unwrap_or_default()),
            install,
            was: (m.profile.clone(), group_now, m.fixed_ip, install),
            error: None,
        })
    }

    pub fn profile_name(&self) -> &str {
        &self.profiles[self.profile]
    }

    pub fn group_name(&self) -> &str {
        &self.groups[self.group]
    }

    /// One key, as the keymap resolved it (`None`: text for the field).
    pub fn on_key(&mut self, intent: Option<Intent>, key: KeyEvent, model: &Model) -> EditOutcome {
        let cycle = |i: usize, n: usize, fwd: bool| if fwd { (i + 1) % n } else { (i + n - 1) % n };
        match intent {
            Some(Intent::Cancel) => return EditOutcome::Cancel,
            Some(Intent::Submit) => {
                return match self.command(model) {
                    Ok(c) => EditOutcome::Submit(c),
                    Err(e) => {
                        self.error = Some(e);
                        EditOutcome::Continue
                    }
                };
            }
            Some(Intent::NextField | Intent::PrevField) => {
                let i = FIELDS.iter().position(|f| *f == self.field).unwrap_or(0);
                let fwd = intent == Some(Intent::NextField);
                self.field = FIELDS[cycle(i, FIELDS.len(), fwd)];
            }
            Some(Intent::ChoosePrev | Intent::ChooseNext) if self.field != EditField::Ip => {
                let fwd = intent == Some(Intent::ChooseNext);
                match self.field {
                    EditField::Profile => {
                        self.profile = cycle(self.profile, self.profiles.len(), fwd)
                    }
                    EditField::Group => self.group = cycle(self.group, self.groups.len(), fwd),
                    EditField::Install => self.install = !self.install,
                    EditField::Ip => {}
                }
            }
            _ if self.field == EditField::Ip => {
                let before = self.ip.clone();
                self.ip.handle_event(&crossterm::event::Event::Key(key));
                if self.ip.value().chars().count() > MAX_IP_TEXT {
                    self.ip = before;
                    self.error = Some(format!(
                        "an IPv4 address has at most {MAX_IP_TEXT} characters"
                    ));
                    return EditOutcome::Continue;
                }
            }
            _ => {}
        }
        if self.error.is_some() {
            self.error = self.command(model).err();
        }
        EditOutcome::Continue
    }

    /// The command for what changed, checked against what the console
    /// knows (the writer checks again on disk).
    pub fn command(&self, model: &Model) -> Result<Command, String> {
        let (profile, group, ip, install) = &self.was;
        let new_ip = match self.ip.value().trim() {
            "" => None,
            text => Some(
                text.parse::<Ipv4Addr>()
                    .map_err(|_| format!("{text:?} is not an IPv4 address"))?,
            ),
        };
        let mut edit = MachineEdit::default();
        if profile.as_deref() != Some(self.profile_name()) && !self.profile_name().is_empty() {
            edit.profile = Some(self.profile_name().to_string());
        }
        if group != self.group_name() {
            edit.group = Some(self.group_name().to_string());
        }
        match new_ip {
            Some(a) if Some(a) != *ip => {
                if let Some(other) = model.machines.iter().find(|m| {
                    m.hostname.as_deref() != Some(self.hostname.as_str())
                        && (m.ip == Some(a) || m.fixed_ip == Some(a))
                }) {
                    let who = other.hostname.clone().unwrap_or(other.mac.to_string());
                    return Err(format!("{a} is {who}'s address"));
                }
                edit.ip = Some(a);
            }
            None if ip.is_some() => {
                return Err("removing a fixed address is done in the file; enter one".into());
            }
            _ => {}
        }
        if self.install != *install {
            edit.install = Some(self.install);
        }
        if edit.is_empty() {
            return Err("nothing changed".into());
        }
        Ok(Command::Edit {
            hostname: self.hostname.clone(),
            edit,
        })
    }
}
