//! The status line: the filter or jump prompt being typed, the quit
//! question, or the last command's result.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Prompt};

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let line = match &app.prompt {
        Some(Prompt::Filter(input)) => {
            frame.set_cursor_position((area.x + 8 + input.visual_cursor() as u16, area.y));
            Line::from(vec![
                Span::styled(" filter ", t.accent()),
                Span::styled(input.value().to_string(), t.text()),
            ])
        }
        Some(Prompt::Jump(input)) => {
            frame.set_cursor_position((area.x + 6 + input.visual_cursor() as u16, area.y));
            Line::from(vec![
                Span::styled(" jump ", t.accent()),
                Span::styled(input.value().to_string(), t.text()),
            ])
        }
        None if app.confirm_quit => Line::from(Span::styled(
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
