//! The adopt dialog: profile, hostname (or naming pattern), group, fixed
//! IP and install flag for one machine or many, with its validation error.

use ratatui::Frame;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::format::{centred, ellipsize, field_choice, field_name};
use crate::tui::adopt::{AdoptDialog, Field, field_label};
use crate::tui::app::App;
use crate::tui::oui;

pub(super) fn draw(frame: &mut Frame, app: &App, d: &AdoptDialog) {
    let t = &app.theme;
    // What the machine reported (SMBIOS, NIC): which box in the rack it is.
    let facts = match d.machines.as_slice() {
        [(mac, _)] => app
            .model
            .machine(mac)
            .map(|m| ellipsize(&m.facts.sticker(), 50))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let extra = u16::from(!facts.is_empty());
    let area = centred(frame.area(), 64, 11 + extra);
    frame.render_widget(Clear, area);
    let title = if d.bulk() {
        format!(" Adopt {} machines ", d.machines.len())
    } else {
        let (mac, _) = d.machines[0];
        format!(" Adopt {mac} ({}) ", oui::vendor(&mac))
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.accent())
        .title(Span::styled(title, t.accent()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let label = |f: Field, name: &str| field_name(t, d.field == f, name);
    let choice = |f: Field, value: &str| field_choice(t, d.field == f, value);
    let mut lines = Vec::new();
    if !facts.is_empty() {
        lines.push(Line::from(vec![
            Span::styled(field_label("Reports"), t.muted()),
            Span::styled(facts, t.text()),
        ]));
    }
    lines.extend([
        Line::from(vec![
            label(Field::Profile, "Profile"),
            choice(Field::Profile, d.profile_name()),
        ]),
        Line::from(vec![
            label(Field::Hostname, if d.bulk() { "Names" } else { "Hostname" }),
            Span::styled(d.hostname.value().to_string(), t.text()),
        ]),
        Line::from(vec![
            label(Field::Group, "Group"),
            choice(
                Field::Group,
                if d.group_name().is_empty() {
                    "/"
                } else {
                    d.group_name()
                },
            ),
        ]),
    ]);
    if !d.bulk() {
        lines.push(Line::from(vec![
            label(Field::Ip, "Fixed IP"),
            Span::styled(d.ip.value().to_string(), t.text()),
            Span::styled(
                if d.ip.value().is_empty() {
                    "(none: from the pool)"
                } else {
                    ""
                },
                t.muted(),
            ),
        ]));
    } else {
        lines.push(Line::from(vec![
            label(Field::Ip, "Fixed IP"),
            Span::styled("none: addresses from the pool", t.muted()),
        ]));
    }
    lines.push(Line::from(vec![
        label(Field::Install, "Install"),
        choice(
            Field::Install,
            if d.install {
                "yes: boot the installer now"
            } else {
                "no: boot the local disk"
            },
        ),
    ]));
    lines.push(Line::default());
    if d.bulk() {
        let preview = d
            .validate(&app.model)
            .map(|a| {
                let names: Vec<String> = a.iter().take(4).map(|x| x.hostname.clone()).collect();
                format!(
                    " → {}{}",
                    names.join(", "),
                    if a.len() > 4 { ", …" } else { "" }
                )
            })
            .unwrap_or_default();
        lines.push(Line::from(Span::styled(preview, t.muted())));
    }
    match &d.error {
        Some(e) => lines.push(Line::from(Span::styled(format!(" ✗ {e}"), t.error()))),
        None => lines.push(Line::default()),
    }
    lines.push(Line::from(Span::styled(
        " enter adopt · tab/↑↓ field · ←→ choose · esc cancel",
        t.muted(),
    )));
    let text_cursor = match d.field {
        Field::Hostname => Some((1, d.hostname.visual_cursor())),
        Field::Ip if !d.bulk() => Some((3, d.ip.visual_cursor())),
        _ => None,
    };
    if let Some((row, col)) = text_cursor {
        let row = row + usize::from(extra);
        // After the label drawn on that row (every row starts with one).
        let label = lines[row].spans.first().map_or(0, Span::width) as u16;
        frame.set_cursor_position((inner.x + label + col as u16, inner.y + row as u16));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
