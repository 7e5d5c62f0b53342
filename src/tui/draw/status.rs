//! The status line: the filter or jump prompt being typed, the quit
//! question, a BMC action's question, or the last command's result.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let line = match app.prompt() {
        Some(prompt) => {
            let label = Span::styled(prompt.label(), t.accent());
            let input = prompt.input();
            let x = area.x + label.width() as u16 + input.visual_cursor() as u16;
            frame.set_cursor_position((x, area.y));
            Line::from(vec![
                label,
                Span::styled(input.value().to_string(), t.text()),
            ])
        }
        None if app.confirmation().is_some() => Line::from(Span::styled(
            format!(
                " {}",
                app.confirmation().map_or("", |c| c.question.as_str())
            ),
            t.warn(),
        )),
        None if app.confirming_quit() => Line::from(Span::styled(
            format!(" {} write(s) pending — quit anyway? y/n", app.pending),
            t.warn(),
        )),
        None => match &app.status {
            Some(s) => Line::from(Span::styled(
                format!(" {}", s.text),
                if s.error { t.error() } else { t.ok() },
            )),
            None => Line::default(),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}
