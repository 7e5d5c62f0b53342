//! The adopt dialog: choosing profile, hostname (or a name pattern for
//! several machines), group, fixed IP and install for unknown machines,
//! with validation against everything the console knows.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crossterm::event::{KeyEvent, KeyModifiers};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::app::Confirmation;
use super::keymap::Intent;
use crate::ident::{Mac, Uuid};
use crate::inventory::Adoption;
use crate::inventory::validate::{Taken, check_adoption};
use crate::model::{MachineRow, MachineState, Model};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Profile,
    Hostname,
    Group,
    Ip,
    Install,
}

impl Field {
    /// Profile, group and install are chosen from a list, not typed.
    fn is_choice(self) -> bool {
        matches!(self, Field::Profile | Field::Group | Field::Install)
    }
}

/// Field labels are padded to one width so values line up.
const LABEL_WIDTH: usize = 9;

/// A field's label as the dialog draws it: ` Hostname  `. The text cursor
/// of a field sits this label's width into the line.
pub fn field_label(name: &str) -> String {
    format!(" {name:<LABEL_WIDTH$} ")
}

const FIELDS: [Field; 5] = [
    Field::Profile,
    Field::Hostname,
    Field::Group,
    Field::Ip,
    Field::Install,
];

pub struct AdoptDialog {
    /// The machines being adopted, with what identifies them.
    pub machines: Vec<(Mac, Option<Uuid>)>,
    pub field: Field,
    pub profiles: Vec<String>,
    pub profile: usize,
    pub groups: Vec<String>,
    pub group: usize,
    /// A hostname, or for several machines a pattern (`worker-{n:02}`).
    pub hostname: Input,
    hostname_touched: bool,
    pub ip: Input,
    /// Off unless the group's `adopt.install` says so: adopting must not
    /// reimage a machine nobody asked to reinstall.
    pub install: bool,
    install_touched: bool,
    pub error: Option<String>,
}

/// What a key did to the dialog.
pub enum Outcome {
    Continue,
    Cancel,
    Submit(Vec<Adoption>),
}

pub use crate::inventory::rules::expand;

fn is_pattern(s: &str) -> bool {
    s.contains("{n")
}

/// Hostnames the inventory (or an earlier adoption on screen) already uses.
fn used_hostnames(model: &Model) -> BTreeSet<String> {
    model
        .machines
        .iter()
        .filter_map(|m| m.hostname.clone())
        .collect()
}

/// The first `count` names of `pattern` (counting from 1) that are free.
fn free_names(pattern: &str, used: &BTreeSet<String>, count: usize) -> Vec<String> {
    (1..100_000)
        .map(|n| expand(pattern, n))
        .filter(|name| !used.contains(name))
        .take(count)
        .collect()
}

/// The first address of any pool range that no lease, no machine's current
/// address and no machine's fixed address (an adoption just written, whose
/// machine still holds another lease) takes.
pub fn next_free_ip(model: &Model) -> Option<Ipv4Addr> {
    let taken: BTreeSet<Ipv4Addr> = model
        .leases
        .keys()
        .copied()
        .chain(model.machines.iter().filter_map(|m| m.ip))
        .chain(model.machines.iter().filter_map(|m| m.fixed_ip))
        .collect();
    let pools = &model.server.as_ref()?.pools;
    pools.iter().find_map(|p| {
        (u32::from(p.first)..=u32::from(p.last))
            .map(Ipv4Addr::from)
            .find(|ip| !taken.contains(ip))
    })
}

impl AdoptDialog {
    pub fn new(model: &Model, machines: Vec<(Mac, Option<Uuid>)>) -> AdoptDialog {
        let mut profiles = model.inventory.profiles.clone();
        if profiles.is_empty() {
            profiles.push("(no profiles)".into());
        }
        let mut groups = model.inventory.group_names();
        if groups.is_empty() {
            groups.push(String::new());
        }
        // Start in the first group that says how to adopt into it (an
        // `adopt:` section): a group that is only a folder of machines,
        // like one odd ARM box, is not where new machines usually go.
        let group = groups
            .iter()
            .position(|g| {
                model
                    .inventory
                    .group(g)
                    .is_some_and(|i| i.hostname_pattern.is_some() || i.adopt_install)
            })
            .unwrap_or(0);
        let single = machines.len() == 1;
        let mut d = AdoptDialog {
            machines,
            field: Field::Profile,
            profiles,
            profile: 0,
            groups,
            group,
            hostname: Input::default(),
            hostname_touched: false,
            ip: Input::default(),
            install: false,
            install_touched: false,
            error: None,
        };
        d.group_changed(model);
        d.prefill_from_rule(model);
        if single && let Some(ip) = next_free_ip(model) {
            d.ip = Input::default().with_value(ip.to_string());
        }
        d
    }

    /// A machine a rule matched starts with what the rule proposes: its
    /// group, profile, hostname pattern and install flag.
    fn prefill_from_rule(&mut self, model: &Model) {
        let Some(p) = self
            .machines
            .first()
            .and_then(|(mac, _)| model.machine(mac))
            .and_then(|m| m.proposal.clone())
        else {
            return;
        };
        if let Some(g) = self.groups.iter().position(|g| *g == p.group) {
            self.group = g;
            self.group_changed(model);
        }
        if let Some(i) = self.profiles.iter().position(|x| *x == p.profile) {
            self.profile = i;
        }
        let value = if self.bulk() {
            p.hostname.clone()
        } else {
            free_names(&p.hostname, &used_hostnames(model), 1)
                .pop()
                .unwrap_or_default()
        };
        self.hostname = Input::default().with_value(value);
        self.install = p.install;
        self.install_touched = true;
    }

    pub fn bulk(&self) -> bool {
        self.machines.len() > 1
    }

    pub fn group_name(&self) -> &str {
        &self.groups[self.group]
    }

    pub fn profile_name(&self) -> &str {
        &self.profiles[self.profile]
    }

    /// The group's naming pattern, or `<last folder>-{n:02}`.
    fn pattern(&self, model: &Model) -> String {
        let group = self.group_name();
        model
            .inventory
            .group(group)
            .and_then(|g| g.hostname_pattern.clone())
            .unwrap_or_else(|| {
                let stem = group.rsplit('/').next().filter(|s| !s.is_empty());
                format!("{}-{{n:02}}", stem.unwrap_or("node"))
            })
    }

    /// A new group suggests its pattern's next free name and its profile.
    fn group_changed(&mut self, model: &Model) {
        let pattern = self.pattern(model);
        if !self.hostname_touched {
            let value = if self.bulk() {
                pattern
            } else {
                free_names(&pattern, &used_hostnames(model), 1)
                    .pop()
                    .unwrap_or_default()
            };
            self.hostname = Input::default().with_value(value);
        }
        let group = self.group_name().to_string();
        if !self.install_touched {
            self.install = model
                .inventory
                .group(&group)
                .is_some_and(|g| g.adopt_install);
        }
        if let Some(p) = model
            .inventory
            .group(&group)
            .and_then(|g| g.profile.as_ref())
            .and_then(|p| self.profiles.iter().position(|x| x == p))
        {
            self.profile = p;
        }
    }

    fn step_field(&mut self, forward: bool) {
        let fields: Vec<Field> = FIELDS
            .into_iter()
            .filter(|f| !(self.bulk() && *f == Field::Ip))
            .collect();
        let i = fields.iter().position(|f| *f == self.field).unwrap_or(0);
        let n = fields.len();
        self.field = fields[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }];
    }

    fn cycle(&mut self, model: &Model, forward: bool) {
        let step = |i: usize, n: usize| {
            if forward {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            }
        };
        match self.field {
            Field::Profile => self.profile = step(self.profile, self.profiles.len()),
            Field::Group => {
                self.group = step(self.group, self.groups.len());
                self.group_changed(model);
            }
            Field::Install => {
                self.install = !self.install;
                self.install_touched = true;
            }
            Field::Hostname | Field::Ip => {}
        }
    }

    /// One key, as the keymap resolved it (`None`: text for the field).
    pub fn on_key(&mut self, intent: Option<Intent>, key: KeyEvent, model: &Model) -> Outcome {
        match intent {
            Some(Intent::Cancel) => return Outcome::Cancel,
            Some(Intent::Submit) => {
                return match self.validate(model) {
                    Ok(adoptions) => Outcome::Submit(adoptions),
                    Err(e) => {
                        self.error = Some(e);
                        Outcome::Continue
                    }
                };
            }
            Some(Intent::NextField) => self.step_field(true),
            Some(Intent::PrevField) => self.step_field(false),
            // In a text field the same keys move the text cursor or type.
            Some(Intent::ChoosePrev | Intent::ChooseNext) if self.field.is_choice() => {
                self.cycle(model, intent == Some(Intent::ChooseNext));
            }
            _ => {
                let event = crossterm::event::Event::Key(key);
                match self.field {
                    Field::Hostname if self.hostname.handle_event(&event).is_some() => {
                        self.hostname_touched = true;
                    }
                    Field::Ip => {
                        self.ip.handle_event(&event);
                    }
                    _ => {}
                }
            }
        }
        // Ctrl-U in a text field clears it (tui-input handles it); any edit
        // clears a shown error once it no longer applies.
        if key.modifiers.contains(KeyModifiers::CONTROL) || self.error.is_some() {
            self.error = self.validate(model).err();
        }
        Outcome::Continue
    }

    /// Checks the choices against the inventory as the console sees it and
    /// builds the adoptions, with the writer's rules and words
    /// ([`check_adoption`]). The writer checks again on disk.
    pub fn validate(&self, model: &Model) -> Result<Vec<Adoption>, String> {
        let entered = self.hostname.value().trim();
        let names = if self.bulk() {
            if !is_pattern(entered) {
                return Err("several machines need a pattern with {n}, like worker-{n:02}".into());
            }
            free_names(entered, &used_hostnames(model), self.machines.len())
        } else {
            vec![entered.to_string()]
        };
        let ip = match self.ip.value().trim() {
            "" => None,
            _ if self.bulk() => None,
            text => Some(
                text.parse::<Ipv4Addr>()
                    .map_err(|_| format!("{text:?} is not an IPv4 address"))?,
            ),
        };
        let adoptions: Vec<Adoption> = self
            .machines
            .iter()
            .zip(names)
            .map(|((mac, uuid), hostname)| Adoption {
                macs: vec![*mac],
                uuid: *uuid,
                hostname,
                group: self.group_name().to_string(),
                profile: self.profile_name().to_string(),
                ip,
                install: self.install,
                // What it reported, kept in its file: which box it is.
                facts: model
                    .machine(mac)
                    .map(|m| m.facts.clone())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        for a in &adoptions {
            check_adoption(a, &Seen(model)).map_err(|e| e.to_string())?;
        }
        Ok(adoptions)
    }
}

/// Counts for the header, beside the app's state.
impl super::app::App {
    /// Unknown machines a rule proposes an adoption for.
    pub fn proposed_count(&self) -> usize {
        self.model
            .machines
            .iter()
            .filter(|m| m.is_unknown() && m.proposal.is_some())
            .count()
    }

    /// Unknown machines waiting for a decision: the header counts them.
    pub fn unknown_count(&self) -> usize {
        self.model
            .machines
            .iter()
            .filter(|m| m.is_unknown() && m.state != MachineState::Known)
            .count()
    }
}

/// The most machines one "adopt all proposed" takes: the writer validates
/// the whole tree per adoption batch, and a screenful is what an operator
/// can check before saying yes.
pub const MAX_PROPOSED_AT_ONCE: usize = 200;

/// "Adopt every proposed machine?": each unknown machine a rule matched,
/// named by the first free names of its rule's pattern, checked with the
/// writer's rules, waiting for a yes.
pub fn confirm_proposed(model: &Model) -> Result<Confirmation, String> {
    let mut used = used_hostnames(model);
    let mut adoptions = Vec::new();
    for m in model.machines.iter().filter(|m| m.is_unknown()) {
        let Some(p) = &m.proposal else { continue };
        if adoptions.len() == MAX_PROPOSED_AT_ONCE {
            break;
        }
        let hostname = free_names(&p.hostname, &used, 1)
            .pop()
            .ok_or_else(|| format!("no free name left for pattern {}", p.hostname))?;
        used.insert(hostname.clone());
        let a = Adoption {
            macs: vec![m.mac],
            uuid: m.uuid,
            hostname,
            group: p.group.clone(),
            profile: p.profile.clone(),
            ip: None,
            install: p.install,
            facts: m.facts.clone(),
            ..Default::default()
        };
        check_adoption(&a, &Seen(model)).map_err(|e| format!("{} ({}): {e}", a.hostname, m.mac))?;
        adoptions.push(a);
    }
    let (first, last) = match (adoptions.first(), adoptions.last()) {
        (Some(f), Some(l)) => (f.hostname.clone(), l.hostname.clone()),
        _ => return Err("no machine is proposed by a rule".into()),
    };
    let mut groups: Vec<&str> = adoptions
        .iter()
        .map(|a| {
            if a.group.is_empty() {
                "/"
            } else {
                a.group.as_str()
            }
        })
        .collect();
    groups.sort();
    groups.dedup();
    let installs = adoptions.iter().filter(|a| a.install).count();
    let names = if adoptions.len() == 1 {
        first
    } else {
        format!("{first} … {last}")
    };
    let question = format!(
        "adopt {} proposed machine(s) ({names}) into {}{}? y/n",
        adoptions.len(),
        groups.join(", "),
        if installs > 0 {
            format!(", {installs} to INSTALL")
        } else {
            String::new()
        }
    );
    Ok(Confirmation {
        question,
        note: format!("adopting {} proposed machine(s)…", adoptions.len()),
        command: crate::event::Command::Adopt {
            machines: adoptions,
        },
        clears_marks: false,
    })
}

/// What the console has seen, as the adoption rules ask about it: the
/// inventory's machines and profiles, and the leases.
struct Seen<'a>(&'a Model);

impl Seen<'_> {
    fn known_where(&self, pick: impl Fn(&MachineRow) -> bool) -> Option<String> {
        self.0
            .machines
            .iter()
            .filter(|m| pick(m))
            .find_map(|m| m.hostname.clone())
    }
}

impl Taken for Seen<'_> {
    fn profile_count(&self) -> usize {
        self.0.inventory.profiles.len()
    }

    fn has_profile(&self, name: &str) -> bool {
        self.0.inventory.profiles.iter().any(|p| p == name)
    }

    fn hostname_taken(&self, hostname: &str) -> Option<Option<PathBuf>> {
        // The console knows names, not files.
        self.known_where(|m| {
            m.hostname
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(hostname))
        })
        .map(|_| None)
    }

    fn mac_owner(&self, mac: &Mac) -> Option<String> {
        self.0.machine(mac).and_then(|m| m.hostname.clone())
    }

    fn uuid_owner(&self, uuid: &Uuid) -> Option<String> {
        self.known_where(|m| m.uuid == Some(*uuid))
    }

    fn ip_owner(&self, ip: Ipv4Addr) -> Option<String> {
        self.known_where(|m| m.ip == Some(ip))
    }

    fn lease_holder(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.0.leases.get(&ip).map(|l| l.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand_and_skip_used_names() {
        assert_eq!(expand("dev-{n:02}", 3), "dev-03");
        assert_eq!(expand("w{n}", 12), "w12");
        assert_eq!(expand("r{n:03}-x", 7), "r007-x");
        assert_eq!(expand("plain", 1), "plain");
        let used: BTreeSet<String> = ["dev-01".into(), "dev-03".into()].into();
        assert_eq!(
            free_names("dev-{n:02}", &used, 3),
            ["dev-02", "dev-04", "dev-05"]
        );
    }
}
