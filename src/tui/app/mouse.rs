//! The mouse: a click selects a tab or a row (again opens the machine),
//! the wheel scrolls the view or the help.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::{Action, App, Modal, TABS, Tab, scroll_by};
use crate::tui::draw::{self, Hit};
use crate::tui::keymap::{Intent, Step};

impl App {
    /// A mouse event on a screen of `area`: a click selects a tab or a
    /// row (a click on the selected machine opens it), the wheel scrolls.
    /// Ignored while anything is open over the view.
    pub fn on_mouse(&mut self, mouse: MouseEvent, area: Rect) -> Vec<Action> {
        if let Modal::Help(scroll) = self.modal {
            let step = match mouse.kind {
                MouseEventKind::ScrollDown => Step::Down,
                MouseEventKind::ScrollUp => Step::Up,
                _ => return vec![],
            };
            self.size = area;
            let most = self.help_most();
            self.modal = Modal::Help((0..3).fold(scroll, |s, _| scroll_by(s, step)).min(most));
            return vec![];
        }
        if !matches!(self.modal, Modal::None) {
            return vec![];
        }
        match mouse.kind {
            MouseEventKind::ScrollDown => {
                for _ in 0..3 {
                    self.step(Step::Down);
                }
            }
            MouseEventKind::ScrollUp => {
                for _ in 0..3 {
                    self.step(Step::Up);
                }
            }
            MouseEventKind::Down(MouseButton::Left) => {
                match draw::hit(self, area, mouse.column, mouse.row) {
                    Hit::Tab(i) => return self.perform(Intent::ShowTab(TABS[i].0)),
                    Hit::Row(r)
                        if self.detail.is_none()
                            && matches!(self.tab, Tab::Machines | Tab::Leases) =>
                    {
                        // The table scrolls so the selection is its last
                        // visible row: the same offset the draw used.
                        let visible = draw::table_rows(self, area).max(1);
                        let offset = self.cursor().saturating_sub(visible - 1);
                        let row = offset + r;
                        if row < self.rows_in_tab() {
                            if row == self.cursor() && self.tab == Tab::Machines {
                                return self.perform(Intent::OpenDetail);
                            }
                            let i = self.tab_index();
                            self.cursor[i] = row;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        vec![]
    }
}
