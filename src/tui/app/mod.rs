//! The console's state and its update function: keys in, actions out. No
//! terminal and no I/O here, so every key binding is tested directly.
//!
//! What the keys mean comes from the [`Keymap`]; which layer reads them
//! comes from [`Modal`], the one thing that can be open over the view.

mod actions;
mod lists;
mod modal;
mod mouse;

use std::collections::{BTreeSet, VecDeque};

use crossterm::event::KeyEvent;
use ratatui::layout::Rect;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::adopt::{self, AdoptDialog};
use super::backend::Origin;
use super::edit::{EditDialog, EditOutcome};
use super::keymap::{Intent, Keymap, Layer, Resolved, Step};
use super::theme::Theme;
use crate::clock::Millis;
use crate::event::{Command, Event};
use crate::ident::Mac;
use crate::model::Model;
pub use lists::Sort;
pub use modal::{Confirmation, Modal, Prompt};

/// The tabs, in key order (1–5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// The outcome of an edit: a refusal reopens the dialog as it was.
    Edit {
        hostname: String,
        result: Result<String, String>,
    },
    Detail {
        mac: Mac,
        text: String,
    },
}

/// The detail's two panes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailPane {
    Timeline,
    Served,
}

pub struct Status {
    pub text: String,
    pub error: bool,
}

pub struct App {
    pub model: Model,
    pub theme: Theme,
    pub keymap: Keymap,
    pub tab: Tab,
    /// The machine whose detail is open (a view, under any modal).
    pub detail: Option<Mac>,
    pub detail_text: Option<(Mac, String)>,
    pub detail_scroll: u16,
    /// Which of the detail's panes the arrows scroll.
    pub detail_pane: DetailPane,
    /// Timeline rows scrolled up from its newest (0: the newest in sight).
    pub timeline_back: usize,
    /// An edit sent and not yet answered, kept to reopen if refused.
    edit_sent: Option<EditDialog>,
    pub cursor: [usize; 5],
    pub marked: BTreeSet<Mac>,
    pub filter: String,
    pub sort: Sort,
    modal: Modal,
    pub follow_log: bool,
    pub status: Option<Status>,
    /// Commands sent and not yet answered.
    pub pending: usize,
    /// Wall-clock time for ages (set by the runtime's tick; fixed in tests).
    pub now: Millis,
    /// Aggregate bytes/s, one sample per second, newest last.
    pub throughput: VecDeque<u64>,
    last_total: Option<u64>,
    /// Where this console is attached, for the header.
    pub origin: Origin,
    /// The screen as last drawn (the runtime sets it), for scrolling
    /// that stops where the text ends.
    pub size: Rect,
}

/// The help's scroll after one step (clamped when drawn).
fn scroll_by(scroll: u16, step: Step) -> u16 {
    match step {
        Step::Down => scroll.saturating_add(1),
        Step::Up => scroll.saturating_sub(1),
        Step::PageDown => scroll.saturating_add(10),
        Step::PageUp => scroll.saturating_sub(10),
        Step::First => 0,
        Step::Last => u16::MAX,
    }
}

/// Bytes served so far, including live transfers.
fn total_bytes(model: &Model) -> u64 {
    model.counters.bytes_served + model.transfers.values().map(|t| t.bytes).sum::<u64>()
}

pub const THROUGHPUT_SAMPLES: usize = 240;

impl App {
    pub fn new(model: Model, theme: Theme, origin: Origin) -> App {
        App {
            model,
            theme,
            keymap: Keymap::default(),
            tab: Tab::Machines,
            detail: None,
            detail_text: None,
            detail_scroll: 0,
            detail_pane: DetailPane::Served,
            timeline_back: 0,
            edit_sent: None,
            cursor: [0; 5],
            marked: BTreeSet::new(),
            filter: String::new(),
            sort: Sort::Seen,
            modal: Modal::None,
            follow_log: true,
            status: None,
            pending: 0,
            now: 0,
            throughput: VecDeque::new(),
            last_total: None,
            origin,
            size: Rect::new(0, 0, 80, 24),
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

    /// The time ages and stuck machines are judged at: the console's
    /// clock, or the newest event if that is later.
    pub fn clock(&self) -> Millis {
        self.now.max(self.model.now)
    }

    pub fn rate(&self) -> u64 {
        self.throughput.back().copied().unwrap_or(0)
    }

    /// The layer that reads keys now.
    pub fn layer(&self) -> Layer {
        match &self.modal {
            Modal::None if self.detail.is_some() => Layer::Detail,
            Modal::None => Layer::Normal,
            Modal::Prompt(_) => Layer::Prompt,
            Modal::Adopt(_) | Modal::Edit(_) => Layer::Adopt,
            Modal::Help(_) => Layer::Help,
            Modal::ConfirmQuit(_) | Modal::Confirm(_) => Layer::Confirm,
        }
    }

    /// The adopt dialog, also while "quit anyway?" is asked over it.
    pub fn dialog(&self) -> Option<&AdoptDialog> {
        match &self.modal {
            Modal::Adopt(d) => Some(d),
            Modal::ConfirmQuit(under) => match under.as_ref() {
                Modal::Adopt(d) => Some(d),
                _ => None,
            },
            _ => None,
        }
    }

    /// The prompt being typed; hidden while the status line asks
    /// "quit anyway?" (and back if the answer is no).
    pub fn prompt(&self) -> Option<&Prompt> {
        match &self.modal {
            Modal::Prompt(p) => Some(p),
            _ => None,
        }
    }

    pub fn help_open(&self) -> bool {
        matches!(self.modal, Modal::Help(_))
    }

    /// How far the help scrolls on this screen: its last line at the
    /// bottom of the overlay (as `draw::help` lays it out).
    fn help_most(&self) -> u16 {
        let lines = self.keymap.help_lines().len() as u16 + 1;
        let room = (lines + 2).min(self.size.height).saturating_sub(2);
        lines.saturating_sub(room)
    }

    /// Lines the help is scrolled down (0 when closed).
    pub fn help_scroll(&self) -> u16 {
        match self.modal {
            Modal::Help(n) => n,
            _ => 0,
        }
    }

    /// The edit dialog, if open.
    pub fn edit_dialog(&self) -> Option<&EditDialog> {
        match &self.modal {
            Modal::Edit(d) => Some(d),
            Modal::ConfirmQuit(under) => match under.as_ref() {
                Modal::Edit(d) => Some(d),
                _ => None,
            },
            _ => None,
        }
    }

    /// The question a destructive command waits on, if one does.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        match &self.modal {
            Modal::Confirm(c) => Some(c),
            _ => None,
        }
    }

    pub fn confirming_quit(&self) -> bool {
        matches!(self.modal, Modal::ConfirmQuit(_))
    }

    /// The key footer for the view: (keys, word) pairs from the keymap.
    pub fn footer(&self) -> Vec<(String, &'static str)> {
        self.keymap.footer(self.detail.is_some(), self.tab)
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
            Reply::Edit { hostname, result } => {
                self.pending = self.pending.saturating_sub(1);
                let sent = self.edit_sent.take();
                match result {
                    Ok(message) => self.set_status(message, false),
                    Err(error) => {
                        // Nothing typed is lost: the dialog comes back as
                        // it was sent, with the writer's reason.
                        match sent {
                            Some(mut d) if d.hostname == hostname => {
                                d.error = Some(error.clone());
                                if matches!(self.modal, Modal::None) {
                                    self.modal = Modal::Edit(d);
                                } else {
                                    self.edit_sent = Some(d);
                                }
                            }
                            _ => {}
                        }
                        self.set_status(format!("{hostname}: not changed: {error}"), true);
                    }
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
        let intent = match self.keymap.resolve(self.layer(), &key) {
            Resolved::Intent(Intent::Quit) => return self.quit(),
            Resolved::Intent(intent) => Some(intent),
            Resolved::Text => None,
            Resolved::Nothing => return vec![],
        };
        match std::mem::take(&mut self.modal) {
            Modal::None => intent.map_or_else(Vec::new, |i| self.perform(i)),
            Modal::Help(scroll) => {
                // The arrows scroll it; any other key closes it.
                if let Some(Intent::Move(step)) = intent {
                    self.modal = Modal::Help(scroll_by(scroll, step).min(self.help_most()));
                }
                vec![]
            }
            Modal::ConfirmQuit(under) => {
                if intent == Some(Intent::ConfirmQuit) {
                    return vec![Action::Quit];
                }
                self.modal = *under;
                self.set_status("quit cancelled", false);
                vec![]
            }
            Modal::Confirm(c) => {
                if intent == Some(Intent::ConfirmQuit) {
                    if c.clears_marks {
                        self.marked.clear();
                    }
                    return self.send(c.command, &c.note);
                }
                self.set_status("cancelled: nothing was changed", false);
                vec![]
            }
            Modal::Prompt(prompt) => self.on_prompt_key(prompt, intent, key),
            Modal::Adopt(mut dialog) => match dialog.on_key(intent, key, &self.model) {
                adopt::Outcome::Continue => {
                    self.modal = Modal::Adopt(dialog);
                    vec![]
                }
                adopt::Outcome::Cancel => vec![],
                adopt::Outcome::Submit(machines) => {
                    let note = format!("adopting {} machine(s)…", machines.len());
                    self.marked.clear();
                    self.send(Command::Adopt { machines }, &note)
                }
            },
            Modal::Edit(mut dialog) => match dialog.on_key(intent, key, &self.model) {
                EditOutcome::Continue => {
                    self.modal = Modal::Edit(dialog);
                    vec![]
                }
                EditOutcome::Cancel => vec![],
                EditOutcome::Submit(command) => {
                    let note = format!("{}: saving the edit…", dialog.hostname);
                    dialog.error = None;
                    self.edit_sent = Some(dialog);
                    self.send(command, &note)
                }
            },
        }
    }

    /// An intent read over the view (no modal open).
    fn perform(&mut self, intent: Intent) -> Vec<Action> {
        use Intent as I;
        match intent {
            I::Help => self.modal = Modal::Help(0),
            I::ShowTab(tab) => {
                self.tab = tab;
                self.detail = None;
            }
            I::NextTab => {
                self.tab = TABS[(self.tab_index() + 1) % TABS.len()].0;
                self.detail = None;
            }
            I::PrevTab => {
                self.tab = TABS[(self.tab_index() + TABS.len() - 1) % TABS.len()].0;
                self.detail = None;
            }
            I::Move(step) => self.step(step),
            I::Back => self.detail = None,
            I::ClearFilter => {
                self.filter.clear();
                self.status = None;
            }
            I::Filter => {
                self.modal = Modal::Prompt(Prompt::Filter(
                    Input::default().with_value(self.filter.clone()),
                ))
            }
            I::Jump => self.modal = Modal::Prompt(Prompt::Jump(Input::default())),
            I::CycleSort => {
                self.sort = self.sort.next();
                self.set_status(format!("sorted by {}", self.sort.label()), false);
            }
            I::ToggleFollow if self.tab == Tab::Log => {
                self.follow_log = !self.follow_log;
                if self.follow_log {
                    self.move_cursor(isize::MAX / 2);
                }
            }
            I::Reload => return self.send(Command::ReloadInventory, "reloading the inventory…"),
            I::OpenDetail if self.tab == Tab::Machines => {
                if let Some(mac) = self.selected_machine().map(|m| m.mac) {
                    self.detail = Some(mac);
                    self.detail_scroll = 0;
                    self.timeline_back = 0;
                    self.detail_pane = DetailPane::Served;
                    self.detail_text = None;
                    return vec![Action::FetchDetail(mac)];
                }
            }
            I::ToggleMark if self.tab == Tab::Machines => {
                if let Some(m) = self.selected_machine() {
                    let mac = m.mac;
                    if !self.marked.remove(&mac) {
                        self.marked.insert(mac);
                    }
                    self.move_cursor(1);
                }
            }
            I::Adopt => return self.open_adopt(),
            I::AdoptProposed => match adopt::confirm_proposed(&self.model) {
                Ok(c) => self.modal = Modal::Confirm(c),
                Err(e) => self.set_status(e, true),
            },
            I::Forget => match self.target() {
                Some(m) if m.is_unknown() => {
                    let mac = m.mac;
                    self.modal = Modal::Confirm(Confirmation {
                        question: format!("forget unknown machine {mac}? y/n"),
                        command: Command::Forget { mac },
                        note: format!("forgetting {mac}…"),
                        clears_marks: false,
                    });
                    self.detail = None;
                }
                Some(_) => self.set_status("only unknown machines can be forgotten", true),
                None => {}
            },
            I::ToggleInstall => return self.toggle_install(),
            I::Edit => self.open_edit(),
            I::UndoAdoption => {
                self.modal = Modal::Confirm(Confirmation {
                    question: "undo the last adoption (remove its files, if unchanged)? y/n".into(),
                    command: Command::UndoAdoption,
                    note: "undoing the last adoption…".into(),
                    clears_marks: false,
                });
            }
            I::SwitchPane if self.detail.is_some() => {
                self.detail_pane = match self.detail_pane {
                    DetailPane::Timeline => DetailPane::Served,
                    DetailPane::Served => DetailPane::Timeline,
                };
            }
            I::Power(action) => self.ask_bmc(Some(action)),
            I::Reinstall => self.ask_bmc(None),
            I::ReleaseLease if self.tab == Tab::Leases => {
                if let Some(l) = self.visible_leases().get(self.cursor()) {
                    let (ip, who) = (
                        l.ip,
                        l.hostname.clone().unwrap_or_else(|| l.mac.to_string()),
                    );
                    self.modal = Modal::Confirm(Confirmation {
                        question: format!(
                            "release {ip} ({who})? it may be handed to another machine — y/n"
                        ),
                        command: Command::ReleaseLease { ip },
                        note: format!("releasing {ip}…"),
                        clears_marks: false,
                    });
                }
            }
            // Outside their tab, or meaningful only in a modal's layer.
            I::ToggleFollow
            | I::SwitchPane
            | I::OpenDetail
            | I::ToggleMark
            | I::ReleaseLease
            | I::Quit
            | I::Cancel
            | I::Submit
            | I::NextField
            | I::PrevField
            | I::ChoosePrev
            | I::ChooseNext
            | I::ConfirmQuit => {}
        }
        vec![]
    }

    /// The detail scrolls by line and page; first and last still move the
    /// table's selection behind it.
    fn step(&mut self, step: Step) {
        let by: isize = match step {
            Step::Down => 1,
            Step::Up => -1,
            Step::PageDown => 10,
            Step::PageUp => -10,
            Step::First => isize::MIN / 2,
            Step::Last => isize::MAX / 2,
        };
        match step {
            _ if self.detail.is_some() && self.detail_pane == DetailPane::Timeline => {
                // Up goes back in time: rows above the newest.
                let rows = self.target().map_or(0, |m| m.timeline.len());
                self.timeline_back = self.timeline_back.saturating_add_signed(-by).min(rows);
            }
            Step::Up | Step::Down | Step::PageUp | Step::PageDown if self.detail.is_some() => {
                // ±1 or ±10: fits an i16.
                self.detail_scroll = self.detail_scroll.saturating_add_signed(by as i16);
            }
            _ => self.move_cursor(by),
        }
    }

    fn quit(&mut self) -> Vec<Action> {
        if self.pending == 0 {
            return vec![Action::Quit];
        }
        // Ask over what is open, so "no" gives it back as it was.
        if !self.confirming_quit() {
            let under = std::mem::take(&mut self.modal);
            self.modal = Modal::ConfirmQuit(Box::new(under));
        }
        vec![]
    }

    fn on_prompt_key(
        &mut self,
        mut prompt: Prompt,
        intent: Option<Intent>,
        key: KeyEvent,
    ) -> Vec<Action> {
        let filtering = matches!(prompt, Prompt::Filter(_));
        match intent {
            Some(Intent::Cancel) => {
                if filtering {
                    self.filter.clear();
                }
            }
            Some(Intent::Submit) => {
                let value = prompt.input().value().trim().to_string();
                match prompt {
                    Prompt::Filter(_) => self.filter = value,
                    Prompt::Jump(_) => self.jump(&value),
                }
            }
            _ => {
                let input = prompt.input_mut();
                input.handle_event(&crossterm::event::Event::Key(key));
                if filtering {
                    // Filter as you type.
                    self.filter = input.value().to_string();
                }
                self.modal = Modal::Prompt(prompt);
            }
        }
        vec![]
    }
}
