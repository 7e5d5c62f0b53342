//! What the console knows of the inventory (counts, groups, profiles,
//! problems) and the fold that labels machine rows from a new snapshot.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Model;
use super::machines::MachineRow;
use crate::clock::Millis;
use crate::event::{GitState, GroupInfo, KnownMachine, Level};
use crate::ident::Mac;
use crate::inventory::Problem;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InventoryStatus {
    pub machines: usize,
    pub profiles: Vec<String>,
    /// Every group, in the inventory's order, with what adopting into it
    /// means.
    pub groups: Vec<GroupInfo>,
    pub last_reload: Option<Millis>,
    pub problems: Vec<Problem>,
    /// The git work tree the inventory is in, if it is in one.
    #[serde(default)]
    pub git: Option<GitState>,
}

impl InventoryStatus {
    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    pub fn group(&self, name: &str) -> Option<&GroupInfo> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// One entry per group name, with its details where the snapshot has them.
fn merge_groups(names: &[String], details: &[GroupInfo]) -> Vec<GroupInfo> {
    let mut groups: Vec<GroupInfo> = names
        .iter()
        .map(|name| {
            details
                .iter()
                .find(|g| &g.name == name)
                .cloned()
                .unwrap_or_else(|| GroupInfo {
                    name: name.clone(),
                    hostname_pattern: None,
                    profile: None,
                    adopt_install: false,
                })
        })
        .collect();
    for g in details {
        if !names.contains(&g.name) {
            groups.push(g.clone());
        }
    }
    groups
}

fn label(row: &mut MachineRow, known: Option<&KnownMachine>) {
    match known {
        Some(k) => {
            row.hostname = Some(k.hostname.clone());
            row.group = Some(k.group.clone());
            row.profile = k.profile.clone();
            row.install = Some(k.install);
            row.fixed_ip = k.ip;
            row.proposal = None;
            if row.ip.is_none() {
                row.ip = k.ip;
            }
        }
        None => {
            row.hostname = None;
            row.group = None;
            row.profile = None;
            row.install = None;
            row.fixed_ip = None;
        }
    }
}

impl Model {
    pub(super) fn inventory_reloaded(
        &mut self,
        at: Millis,
        known: &[KnownMachine],
        profiles: &[String],
        groups: &[String],
        group_info: &[GroupInfo],
    ) {
        self.counters.inventory_reloads += 1;
        self.label_machines(known);
        self.inventory = InventoryStatus {
            machines: known.len(),
            profiles: profiles.to_vec(),
            groups: merge_groups(groups, group_info),
            last_reload: Some(at),
            problems: Vec::new(),
            // A reload says nothing about git: keep what it last said.
            git: self.inventory.git.take(),
        };
    }

    pub(super) fn inventory_error(&mut self, at: Millis, problems: &[Problem]) {
        self.inventory.problems = problems.to_vec();
        for p in problems {
            self.log(at, Level::Error, "inventory", p.to_string());
        }
    }

    /// Labels rows with inventory names, adds known-but-unseen machines, and
    /// drops rows of machines that left the inventory and were never seen.
    fn label_machines(&mut self, known: &[KnownMachine]) {
        let mut listed: HashMap<Mac, &KnownMachine> = HashMap::new();
        for k in known {
            for mac in &k.macs {
                listed.insert(*mac, k);
            }
        }
        for row in &mut self.machines {
            label(row, listed.get(&row.mac).copied());
        }
        self.machines
            .retain(|r| r.hostname.is_some() || r.last_seen.is_some());
        self.index_machines();
        for k in known {
            if let Some(&mac) = k.macs.first()
                && !k.macs.iter().any(|m| self.by_mac.contains_key(m))
            {
                let mut row = MachineRow::new(mac);
                label(&mut row, Some(k));
                self.by_mac.insert(mac, self.machines.len());
                self.machines.push(row);
            }
        }
        // Machines that left the inventory are unknown now: back under
        // the cap.
        self.bound_unknown(0);
    }

    /// One machine's inventory entry changed (an adoption, a done callback,
    /// an install flip): relabel its rows, or list it if it has none. The
    /// rest of the inventory, and its problems, stay as they are.
    pub(super) fn machine_changed(&mut self, at: Millis, known: &KnownMachine) {
        self.counters.inventory_reloads += 1;
        self.inventory.last_reload = Some(at);
        let rows: Vec<usize> = known
            .macs
            .iter()
            .filter_map(|m| self.by_mac.get(m).copied())
            .collect();
        for &i in &rows {
            label(&mut self.machines[i], Some(known));
        }
        if rows.is_empty()
            && let Some(&mac) = known.macs.first()
        {
            let row = self.row(mac);
            label(row, Some(known));
            row.ip = known.ip;
        }
    }
}
