//! The Log view: the newest lines that fit, or the window at the cursor
//! when not following.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::{fmt_clock, level_style, table_block};
use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let lines = app.visible_log();
    let height = area.height.saturating_sub(1) as usize;
    let end = if app.follow_log {
        lines.len()
    } else {
        (app.cursor_within(lines.len()) + 1).min(lines.len())
    };
    let start = end.saturating_sub(height);
    let first = app.model.log.front().map_or(0, |l| l.at);
    let text: Vec<Line> = lines[start..end]
        .iter()
        .map(|l| {
            Line::from(vec![
                Span::styled(
                    format!("{:>7} ", fmt_clock(l.at.saturating_sub(first))),
                    app.theme.muted(),
                ),
                Span::styled(format!("{:<9} ", l.target), app.theme.muted()),
                Span::styled(l.message.clone(), level_style(app, l.level)),
            ])
        })
        .collect();
    let title = format!(
        " Log ({}){} ",
        lines.len(),
        if app.follow_log { " · following" } else { "" }
    );
    frame.render_widget(Paragraph::new(text).block(table_block(app, title)), area);
}
