//! The help overlay: every key binding, from the app's key table.

use ratatui::Frame;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::format::centred;
use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App) {
    let t = &app.theme;
    let keys = app.keymap.help_lines();
    let area = centred(frame.area(), 76, keys.len() as u16 + 3);
    frame.render_widget(Clear, area);
    let mut lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<16}"), t.accent()),
                Span::styled(what.to_string(), t.text()),
            ])
        })
        .collect();
    lines.push(Line::from(Span::styled(
        " ↑↓ PgUp PgDn or the wheel scroll; any other key closes this help",
        t.muted(),
    )));
    // Scrolled no further than the last line at the bottom.
    let room = area.height.saturating_sub(2) as usize;
    let most = lines.len().saturating_sub(room);
    let scroll = (app.help_scroll() as usize).min(most);
    let title = if most > 0 {
        format!(" Keys {}-{} of {} ", scroll + 1, scroll + room, lines.len())
    } else {
        " Keys ".to_string()
    };
    frame.render_widget(
        Paragraph::new(lines).scroll((scroll as u16, 0)).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.accent())
                .title(Span::styled(title, t.accent())),
        ),
        area,
    );
}
