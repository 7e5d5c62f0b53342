//! The console's state and its update function: keys in, actions out. No
//! terminal and no I/O here, so every key binding is tested directly.

use std::collections::{BTreeSet, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::adopt::{self, AdoptDialog};
use super::oui;
use super::theme::Theme;
use crate::clock::Millis;
use crate::event::{Command, Event};
use crate::ident::Mac;
use crate::model::{MachineRow, MachineState, Model};

/// The tabs, in key order (1–5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Machines,
    Leases,
    Transfers,
    Inventory,
    Log,
}

pub const TABS: [(Tab, &str); 5] = [
    (Tab::Machines, "Machines"),
    (Tab::Leases, "Leases"),
    (Tab::Transfers, "Transfers"),
    (Tab::Inventory, "Inventory"),
    (Tab::Log, "Log"),
];

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
            Sort::Seen => "first seen",
            Sort::Hostname => "hostname",
            Sort::Ip => "IP",
            Sort::State => "state",
        }
    }
    fn next(self) -> Sort {
        match self {
            Sort::Seen => Sort::Hostname,
            Sort::Hostname => Sort::Ip,
            Sort::Ip => Sort::State,
            Sort::State => Sort::Seen,
        }
    }
}

/// What the runtime must do for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    Send(Command),
    /// Fetch what the machine is served (script, effective values).
    FetchDetail(Mac),
}

/// Results the runtime hands back.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Command(Result<String, String>),
    Detail { mac: Mac, text: String },
}

/// One row of the key table: keys, what they do. The help overlay is
/// generated from this, so it cannot drift from the bindings.
pub const KEYS: &[(&str, &str)] = &[
    (
        "1-5  tab",
        "switch view: machines, leases, transfers, inventory, log",
    ),
    ("↑↓  j k", "move the selection"),
    ("PgUp PgDn  g G", "page, first, last"),
    ("enter", "machine detail: timeline and what it is served"),
    ("a", "adopt the selected (or marked) unknown machines"),
    ("space", "mark a machine for bulk adopt"),
    ("i", "toggle install on the selected machine"),
    ("r", "release the selected lease (leases view)"),
    ("/", "filter the current view"),
    (":", "jump to a machine by MAC, hostname or IP"),
    ("o", "cycle the machine sort order"),
    ("f", "log: follow new lines"),
    ("R", "reload the inventory from disk"),
    ("esc", "close, clear the filter, back"),
    ("?", "this help"),
    ("q", "quit (asks only if a write is pending)"),
];

/// A line of text being typed at the bottom (filter or jump).
pub enum Prompt {
    Filter(Input),
    Jump(Input),
}

pub struct Status {
    pub text: String,
    pub error: bool,
}

pub struct App {
    pub model: Model,
    pub theme: Theme,
    pub tab: Tab,
    /// The machine whose detail is open.
    pub detail: Option<Mac>,
    pub detail_text: Option<(Mac, String)>,
    pub detail_scroll: u16,
    pub cursor: [usize; 5],
    pub marked: BTreeSet<Mac>,
    pub filter: String,
    pub prompt: Option<Prompt>,
    pub sort: Sort,
    pub dialog: Option<AdoptDialog>,
    pub help: bool,
    pub confirm_quit: bool,
    pub follow_log: bool,
    pub status: Option<Status>,
    /// Commands sent and not yet answered.
    pub pending: usize,
    /// Wall-clock time for ages (set by the runtime's tick; fixed in tests).
    pub now: Millis,
    /// Aggregate bytes/s, one sample per second, newest last.
    pub throughput: VecDeque<u64>,
    last_total: Option<u64>,
    /// Where this console is attached, for the header ("embedded" or a URL).
    pub origin: String,
}

/// Bytes served so far, including live transfers.
fn total_bytes(model: &Model) -> u64 {
    model.counters.bytes_served + model.transfers.values().map(|t| t.bytes).sum::<u64>()
}

pub const THROUGHPUT_SAMPLES: usize = 240;

impl App {
    pub fn new(model: Model, theme: Theme, origin: impl Into<String>) -> App {
        App {
            model,
            theme,
            tab: Tab::Machines,
            detail: None,
            detail_text: None,
            detail_scroll: 0,
            cursor: [0; 5],
            marked: BTreeSet::new(),
            filter: String::new(),
            prompt: None,
            sort: Sort::Seen,
            dialog: None,
            help: false,
            confirm_quit: false,
            follow_log: true,
            status: None,
            pending: 0,
            now: 0,
            throughput: VecDeque::new(),
            last_total: None,
            origin: origin.into(),
        }
    }

    pub fn apply(&mut self, event: &Event) {
        self.model.apply(event);
    }

    /// Once a second: the throughput sample and the clock for ages.
    pub fn tick(&mut self, now: Millis) {
        self.now = now;
        let total = total_bytes(&self.model);
        let rate = self.last_total.map_or(0, |last| total.saturating_sub(last));
        self.last_total = Some(total);
        if self.throughput.len() == THROUGHPUT_SAMPLES {
            self.throughput.pop_front();
        }
        self.throughput.push_back(rate);
    }

    pub fn rate(&self) -> u64 {
        self.throughput.back().copied().unwrap_or(0)
    }

    fn tab_index(&self) -> usize {
        TABS.iter().position(|(t, _)| *t == self.tab).unwrap_or(0)
    }

    fn matches_filter(&self, haystack: &[&str]) -> bool {
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
            .filter(|m| {
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
            })
            .collect();
        match self.sort {
            Sort::Seen => {}
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

    fn rows_in_tab(&self) -> usize {
        match self.tab {
            Tab::Machines => self.visible_machines().len(),
            Tab::Leases => self.visible_leases().len(),
            Tab::Transfers => self.model.transfers.len() + self.model.recent.len(),
            Tab::Inventory => self.model.inventory.problems.len(),
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

    fn move_cursor(&mut self, delta: isize) {
        let n = self.rows_in_tab();
        let i = self.tab_index();
        let current = self.cursor() as isize;
        self.cursor[i] = (current + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
        if self.tab == Tab::Log {
            self.follow_log = self.cursor[i] + 1 >= n;
        }
    }

    /// Shows a line in the status bar.
    pub fn set_status(&mut self, text: impl Into<String>, error: bool) {
        self.status = Some(Status {
            text: text.into(),
            error,
        });
    }

    /// Handles a reply from the runtime.
    pub fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Command(result) => {
                self.pending = self.pending.saturating_sub(1);
                match result {
                    Ok(message) => self.set_status(message, false),
                    Err(error) => self.set_status(error, true),
                }
            }
            Reply::Detail { mac, text } => self.detail_text = Some((mac, text)),
        }
    }

    fn send(&mut self, command: Command, note: &str) -> Vec<Action> {
        self.pending += 1;
        self.set_status(note, false);
        vec![Action::Send(command)]
    }

    /// The update function: one key, the actions it causes.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return self.quit();
        }
        if self.confirm_quit {
            self.confirm_quit = false;
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => vec![Action::Quit],
                _ => {
                    self.set_status("quit cancelled", false);
                    vec![]
                }
            };
        }
        if self.help {
            self.help = false;
            return vec![];
        }
        if let Some(dialog) = &mut self.dialog {
            return match dialog.on_key(key, &self.model) {
                adopt::Outcome::Continue => vec![],
                adopt::Outcome::Cancel => {
                    self.dialog = None;
                    vec![]
                }
                adopt::Outcome::Submit(machines) => {
                    self.dialog = None;
                    let note = format!("adopting {} machine(s)…", machines.len());
                    self.marked.clear();
                    self.send(Command::Adopt { machines }, &note)
                }
            };
        }
        if let Some(kind) = self.prompt.as_ref().map(prompt_kind) {
            return self.on_prompt_key(key, kind);
        }
        if self.detail.is_some() {
            match key.code {
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Left | KeyCode::Char('h') => {
                    self.detail = None;
                    return vec![];
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    self.detail_scroll = self.detail_scroll.saturating_add(1);
                    return vec![];
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    self.detail_scroll = self.detail_scroll.saturating_sub(1);
                    return vec![];
                }
                KeyCode::PageDown => {
                    self.detail_scroll = self.detail_scroll.saturating_add(10);
                    return vec![];
                }
                KeyCode::PageUp => {
                    self.detail_scroll = self.detail_scroll.saturating_sub(10);
                    return vec![];
                }
                _ => {} // a, i, ? … work on the detail's machine below
            }
        }
        match key.code {
            KeyCode::Char('q') => return self.quit(),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char(c @ '1'..='5') => {
                self.tab = TABS[(c as u8 - b'1') as usize].0;
                self.detail = None;
            }
            KeyCode::Tab => {
                self.tab = TABS[(self.tab_index() + 1) % TABS.len()].0;
                self.detail = None;
            }
            KeyCode::BackTab => {
                self.tab = TABS[(self.tab_index() + TABS.len() - 1) % TABS.len()].0;
                self.detail = None;
            }
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::PageDown => self.move_cursor(10),
            KeyCode::PageUp => self.move_cursor(-10),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_cursor(isize::MAX / 2),
            KeyCode::Esc => {
                self.filter.clear();
                self.status = None;
            }
            KeyCode::Char('/') => {
                self.prompt = Some(Prompt::Filter(
                    Input::default().with_value(self.filter.clone()),
                ))
            }
            KeyCode::Char(':') => self.prompt = Some(Prompt::Jump(Input::default())),
            KeyCode::Char('o') => {
                self.sort = self.sort.next();
                self.set_status(format!("sorted by {}", self.sort.label()), false);
            }
            KeyCode::Char('f') if self.tab == Tab::Log => {
                self.follow_log = !self.follow_log;
                if self.follow_log {
                    self.move_cursor(isize::MAX / 2);
                }
            }
            KeyCode::Char('R') => {
                return self.send(Command::ReloadInventory, "reloading the inventory…");
            }
            KeyCode::Enter if self.tab == Tab::Machines => {
                if let Some(mac) = self.selected_machine().map(|m| m.mac) {
                    self.detail = Some(mac);
                    self.detail_scroll = 0;
                    self.detail_text = None;
                    return vec![Action::FetchDetail(mac)];
                }
            }
            KeyCode::Char(' ') if self.tab == Tab::Machines => {
                if let Some(m) = self.selected_machine()
                    && m.is_unknown()
                {
                    let mac = m.mac;
                    if !self.marked.remove(&mac) {
                        self.marked.insert(mac);
                    }
                    self.move_cursor(1);
                }
            }
            KeyCode::Char('a') => return self.open_adopt(),
            KeyCode::Char('i') => return self.toggle_install(),
            KeyCode::Char('r') if self.tab == Tab::Leases => {
                if let Some(ip) = self.visible_leases().get(self.cursor()).map(|l| l.ip) {
                    return self.send(Command::ReleaseLease { ip }, &format!("releasing {ip}…"));
                }
            }
            _ => {}
        }
        vec![]
    }

    /// The machine keys act on: the open detail, else the selection.
    fn target(&self) -> Option<&MachineRow> {
        match self.detail {
            Some(mac) => self.model.machine(&mac),
            None if self.tab == Tab::Machines => self.selected_machine(),
            None => None,
        }
    }

    fn open_adopt(&mut self) -> Vec<Action> {
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
        self.dialog = Some(AdoptDialog::new(&self.model, machines));
        vec![]
    }

    fn toggle_install(&mut self) -> Vec<Action> {
        let Some(m) = self.target() else {
            return vec![];
        };
        let (Some(hostname), Some(install)) = (m.hostname.clone(), m.install) else {
            self.set_status("only machines in the inventory have an install flag", true);
            return vec![];
        };
        let note = format!("{hostname}: install {}…", !install);
        self.send(
            Command::SetInstall {
                hostname,
                install: !install,
            },
            &note,
        )
    }

    fn quit(&mut self) -> Vec<Action> {
        if self.pending > 0 {
            self.confirm_quit = true;
            vec![]
        } else {
            vec![Action::Quit]
        }
    }

    fn on_prompt_key(&mut self, key: KeyEvent, kind: PromptKind) -> Vec<Action> {
        let Some(prompt) = &mut self.prompt else {
            return vec![];
        };
        let input = match prompt {
            Prompt::Filter(i) | Prompt::Jump(i) => i,
        };
        match key.code {
            KeyCode::Esc => {
                if kind == PromptKind::Filter {
                    self.filter.clear();
                }
                self.prompt = None;
            }
            KeyCode::Enter => {
                let value = input.value().trim().to_string();
                self.prompt = None;
                match kind {
                    PromptKind::Filter => self.filter = value,
                    PromptKind::Jump => self.jump(&value),
                }
            }
            _ => {
                input.handle_event(&crossterm::event::Event::Key(key));
                if kind == PromptKind::Filter {
                    // Filter as you type.
                    self.filter = input.value().to_string();
                }
            }
        }
        vec![]
    }

    fn jump(&mut self, query: &str) {
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

    /// Unknown machines waiting for a decision: the header counts them.
    pub fn unknown_count(&self) -> usize {
        self.model
            .machines
            .iter()
            .filter(|m| m.is_unknown() && m.state != MachineState::Known)
            .count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PromptKind {
    Filter,
    Jump,
}

fn prompt_kind(p: &Prompt) -> PromptKind {
    match p {
        Prompt::Filter(_) => PromptKind::Filter,
        Prompt::Jump(_) => PromptKind::Jump,
    }
}
