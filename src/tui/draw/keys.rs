//! The footer: the keys that matter in the current view.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Tab};

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let hints: &[(&str, &str)] = match (app.detail.is_some(), app.tab) {
        (true, _) => &[
            ("esc", "back"),
            ("a", "adopt"),
            ("i", "install"),
            ("↑↓", "scroll"),
            ("?", "help"),
        ],
        (false, Tab::Machines) => &[
            ("a", "adopt"),
            ("space", "mark"),
            ("enter", "detail"),
            ("i", "install"),
            ("/", "filter"),
            ("o", "sort"),
            ("?", "help"),
            ("q", "quit"),
        ],
        (false, Tab::Leases) => &[
            ("r", "release"),
            ("/", "filter"),
            ("?", "help"),
            ("q", "quit"),
        ],
        (false, Tab::Log) => &[
            ("f", "follow"),
            ("/", "filter"),
            ("?", "help"),
            ("q", "quit"),
        ],
        (false, _) => &[
            ("1-5", "views"),
            ("R", "reload"),
            ("?", "help"),
            ("q", "quit"),
        ],
    };
    let mut spans = Vec::new();
    for (k, what) in hints {
        spans.push(Span::styled(format!(" {k}"), app.theme.accent()));
        spans.push(Span::styled(format!(" {what} "), app.theme.muted()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
