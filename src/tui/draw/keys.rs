//! The footer: the keys that matter in the current view.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let hints = app.footer();
    let mut spans = Vec::new();
    for (k, what) in &hints {
        spans.push(Span::styled(format!(" {k}"), app.theme.accent()));
        spans.push(Span::styled(format!(" {what} "), app.theme.muted()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
