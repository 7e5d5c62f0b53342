//! The edit dialog: a known machine's profile, group, fixed IP and install
//! flag, with the reason the last try was refused.

use ratatui::Frame;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::format::{centred, field_choice, field_name};
use crate::tui::app::App;
use crate::tui::edit::{EditDialog, EditField};

pub(super) fn draw(frame: &mut Frame, app: &App, d: &EditDialog) {
    let t = &app.theme;
    let area = centred(frame.area(), 64, 11);
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.accent())
        .title(Span::styled(format!(" Edit {} ", d.hostname), t.accent()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let label = |f: EditField, name: &str| field_name(t, d.field == f, name);
    let choice = |f: EditField, value: &str| field_choice(t, d.field == f, value);
    let group = if d.group_name().is_empty() {
        "/"
    } else {
        d.group_name()
    };
    let mut lines = vec![
        Line::from(vec![
            label(EditField::Profile, "Profile"),
            choice(EditField::Profile, d.profile_name()),
        ]),
        Line::from(vec![
            label(EditField::Group, "Group"),
            choice(EditField::Group, group),
        ]),
        Line::from(vec![
            label(EditField::Ip, "Fixed IP"),
            Span::styled(d.ip.value().to_string(), t.text()),
            Span::styled(
                if d.ip.value().is_empty() {
                    "(none: from the pool)"
                } else {
                    ""
                },
                t.muted(),
            ),
        ]),
        Line::from(vec![
            label(EditField::Install, "Install"),
            choice(
                EditField::Install,
                if d.install {
                    "yes: boot the installer next"
                } else {
                    "no: boot the local disk"
                },
            ),
        ]),
        Line::default(),
    ];
    match &d.error {
        Some(e) => lines.push(Line::from(Span::styled(format!(" ✗ {e}"), t.error()))),
        None => lines.push(Line::default()),
    }
    lines.push(Line::from(Span::styled(
        " enter save · tab/↑↓ field · ←→ choose · esc cancel",
        t.muted(),
    )));
    if d.field == EditField::Ip {
        let label = lines[2].spans.first().map_or(0, Span::width) as u16;
        frame.set_cursor_position((inner.x + label + d.ip.visual_cursor() as u16, inner.y + 2));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
