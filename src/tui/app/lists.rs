//! What each view lists: the machines filtered and sorted, the leases and
//! log lines filtered, the selection in each tab, and jumping to a machine.

use super::{App, TABS, Tab};
use crate::ident::Mac;
use crate::model::{MachineRow, MachineState};
use crate::tui::oui;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Seen,
    Hostname,
    Ip,
    State,
}

impl Sort {
    pub fn label(self) -> &'static str {
        match self {
            Sort::Seen => "failed and stuck first",
            Sort::Hostname => "hostname",
            Sort::Ip => "IP",
            Sort::State => "state",
        }
    }
    pub(super) fn next(self) -> Sort {
        match self {
            Sort::Seen => Sort::Hostname,
            Sort::Hostname => Sort::Ip,
            Sort::Ip => Sort::State,
            Sort::State => Sort::Seen,
        }
    }
}

impl App {
    pub(super) fn tab_index(&self) -> usize {
        TABS.iter().position(|(t, _)| *t == self.tab).unwrap_or(0)
    }

    pub(super) fn matches_filter(&self, haystack: &[&str]) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        let needle = self.filter.to_lowercase();
        haystack.iter().any(|h| h.to_lowercase().contains(&needle))
    }

    /// The machines the Machines view lists, filtered and sorted.
    pub fn visible_machines(&self) -> Vec<&MachineRow> {
        let mut rows: Vec<&MachineRow> = self
            .model
            .machines
            .iter()
            // No filter: no strings to build for each of 10,000 machines
            // on every frame.
            .filter(|m| {
                self.filter.is_empty() || {
                    let mac = m.mac.to_string();
                    let ip = m.ip.map(|i| i.to_string()).unwrap_or_default();
                    self.matches_filter(&[
                        &mac,
                        &ip,
                        m.hostname.as_deref().unwrap_or(""),
                        m.profile.as_deref().unwrap_or(""),
                        m.state.label(),
                        oui::vendor(&m.mac),
                        if m.is_unknown() { "unknown" } else { "" },
                    ])
                }
            })
            .collect();
        match self.sort {
            // Failed, then stuck, on top; the rest as first seen.
            Sort::Seen => {
                let now = self.clock();
                rows.sort_by_cached_key(|m| match m.state {
                    MachineState::Failed => 0,
                    _ if self.model.stuck_at(m, now).is_some() => 1,
                    _ => 2,
                });
            }
            Sort::Hostname => rows.sort_by(|a, b| {
                (a.hostname.is_some(), &a.hostname).cmp(&(b.hostname.is_some(), &b.hostname))
            }),
            Sort::Ip => rows.sort_by_key(|m| (m.ip.is_none(), m.ip)),
            Sort::State => rows.sort_by_key(|m| (m.state, m.hostname.clone())),
        }
        rows
    }

    pub fn visible_leases(&self) -> Vec<&crate::model::LeaseRow> {
        self.model
            .leases
            .values()
            .filter(|l| {
                self.matches_filter(&[
                    &l.ip.to_string(),
                    &l.mac.to_string(),
                    l.hostname.as_deref().unwrap_or(""),
                ])
            })
            .collect()
    }

    pub fn visible_log(&self) -> Vec<&crate::model::LogLine> {
        self.model
            .log
            .iter()
            .filter(|l| self.matches_filter(&[&l.message, &l.target]))
            .collect()
    }

    pub(super) fn rows_in_tab(&self) -> usize {
        match self.tab {
            Tab::Machines => self.visible_machines().len(),
            Tab::Leases => self.visible_leases().len(),
            Tab::Transfers => self.model.transfers.len() + self.model.recent.len(),
            // A page of text: it scrolls a line at a time, over its
            // problems, groups and the lines around them.
            Tab::Inventory => crate::tui::draw::inventory_scroll_positions(self, self.size),
            Tab::Log => self.visible_log().len(),
        }
    }

    /// The selection in the current tab, clamped to what is there.
    pub fn cursor(&self) -> usize {
        self.cursor_within(self.rows_in_tab())
    }

    /// The selection clamped to `rows` rows (a frame that already listed
    /// them need not list them again).
    pub fn cursor_within(&self, rows: usize) -> usize {
        self.cursor[self.tab_index()].min(rows.saturating_sub(1))
    }

    pub fn selected_machine(&self) -> Option<&MachineRow> {
        self.visible_machines().get(self.cursor()).copied()
    }

    pub(super) fn move_cursor(&mut self, delta: isize) {
        let n = self.rows_in_tab();
        let i = self.tab_index();
        let current = self.cursor() as isize;
        self.cursor[i] = (current + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
        if self.tab == Tab::Log {
            self.follow_log = self.cursor[i] + 1 >= n;
        }
    }

    /// The machine keys act on: the open detail, else the selection.
    pub(super) fn target(&self) -> Option<&MachineRow> {
        match self.detail {
            Some(mac) => self.model.machine(&mac),
            None if self.tab == Tab::Machines => self.selected_machine(),
            None => None,
        }
    }

    pub(super) fn jump(&mut self, query: &str) {
        if query.is_empty() {
            return;
        }
        self.tab = Tab::Machines;
        self.filter.clear();
        let q = query.to_lowercase();
        let wanted_mac: Option<Mac> = query.parse().ok();
        let found = self.visible_machines().iter().position(|m| {
            Some(m.mac) == wanted_mac
                || m.hostname.as_deref().is_some_and(|h| h.to_lowercase() == q)
                || m.ip.is_some_and(|ip| ip.to_string() == q)
        });
        match found {
            Some(i) => self.cursor[0] = i,
            None => self.set_status(format!("no machine matches {query:?}"), true),
        }
    }
}
