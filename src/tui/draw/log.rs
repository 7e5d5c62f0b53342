//! The Log view: the newest lines that fit, or the window at the cursor
//! when not following, each with its wall-clock time (UTC), so a line can
//! be matched with other logs.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::{fit_words, level_style, table_block, time_of_day};
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
    // Time (9) and subsystem (10) before the message, cut after a word.
    let room = (area.width as usize).saturating_sub(19);
    let text: Vec<Line> = lines[start..end]
        .iter()
        .map(|l| {
            Line::from(vec![
                Span::styled(format!("{} ", time_of_day(l.at)), app.theme.muted()),
                Span::styled(format!("{:<9} ", l.target), app.theme.muted()),
                Span::styled(fit_words(&l.message, room), level_style(app, l.level)),
            ])
        })
        .collect();
    let title = format!(
        " Log ({}, times UTC){} ",
        lines.len(),
        if app.follow_log { " · following" } else { "" }
    );
    frame.render_widget(Paragraph::new(text).block(table_block(app, title)), area);
}
