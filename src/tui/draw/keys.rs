//! The footer: the keys that matter in the current view, as many whole
//! hints as fit (the help lists them all).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let hints = app.footer();
    let mut spans = Vec::new();
    let mut used = 0;
    for (k, what) in &hints {
        let key = Span::styled(format!(" {k}"), app.theme.accent());
        let word = Span::styled(format!(" {what} "), app.theme.muted());
        // Whole hints only: a cut one reads as a different key.
        used += key.width() + word.width();
        if used > area.width as usize {
            break;
        }
        spans.push(key);
        spans.push(word);
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
