//! A machine's detail: who it is, its boot timeline (worded here from the
//! typed steps) and what it is served.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use super::format::{arch_label, fmt_clock, state_style, table_block};
use crate::ident::Mac;
use crate::tui::app::{App, DetailPane};
use crate::tui::oui;

/// With several interfaces, the one the machine was last heard on:
/// ` · on eth2 10.61.2.1`.
fn segment_text(app: &App, m: &crate::model::MachineRow) -> String {
    let listed = app
        .model
        .server
        .as_ref()
        .map_or(&[][..], |s| &s.interfaces[..]);
    listed
        .iter()
        .find(|i| Some(i.address) == m.interface)
        .map_or(String::new(), |i| format!(" · on {}", i.label()))
}

/// Option 82 as an operator reads it: the switch port and the relay.
fn relay_agent_text(info: Option<&crate::event::RelayAgentSeen>) -> String {
    let Some(info) = info else {
        return String::new();
    };
    let mut s = String::new();
    if let Some(c) = &info.circuit_id {
        s.push_str(&format!(" · port {c}"));
    }
    if let Some(r) = &info.remote_id {
        s.push_str(&format!(" · remote-id {r}"));
    }
    s
}

/// The BMC's part of the detail: power, or why it is not known, and the
/// last action.
fn power_words(m: &crate::model::MachineRow) -> String {
    let Some(p) = &m.power else {
        return String::new();
    };
    let state = match (&p.error, p.state) {
        (Some(e), _) => format!(" · power ? (BMC {e})"),
        (None, Some(s)) => format!(" · power {}", s.label()),
        (None, None) => " · power ?".into(),
    };
    match &p.last_action {
        Some(a) => format!("{state} · last BMC action {a}"),
        None => state,
    }
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect, mac: Mac) {
    let t = &app.theme;
    let Some(m) = app.model.machine(&mac) else {
        frame.render_widget(Paragraph::new("machine gone"), area);
        return;
    };
    let mut info = vec![
        Line::from(vec![
            Span::styled(
                m.hostname
                    .clone()
                    .unwrap_or_else(|| "unknown machine".into()),
                if m.is_unknown() {
                    t.unknown()
                } else {
                    t.accent()
                },
            ),
            Span::styled(format!("  {}  {}", m.mac, oui::vendor(&m.mac)), t.text()),
            Span::styled(format!("  {}", m.state.label()), state_style(app, m)),
        ]),
        Line::from(Span::styled(
            format!(
                "group {} · profile {} · install {} · arch {} · IP {} · UUID {}{}{}{}",
                m.group.as_deref().unwrap_or("-"),
                m.profile.as_deref().unwrap_or("-"),
                m.install.map_or("-".into(), |i| i.to_string()),
                arch_label(m),
                m.ip.map_or("-".into(), |i| i.to_string()),
                m.uuid.map_or("-".into(), |u| u.to_string()),
                segment_text(app, m),
                m.relay.map_or(String::new(), |r| format!(" · relay {r}")),
                relay_agent_text(m.relay_agent.as_ref()),
            ) + &power_words(m),
            t.muted(),
        )),
    ];
    // What it reported about itself (SMBIOS, NIC, platform), else the
    // vendor of its MAC's OUI on the first line is all there is.
    if !m.facts.is_empty() {
        info.push(Line::from(Span::styled(
            format!("reports {}", m.facts.summary()),
            t.text(),
        )));
    }
    // The failure goes second, before the details that wrap on a narrow
    // terminal (the UUID), so it is never pushed out of sight.
    if let Some(e) = &m.last_error {
        info.insert(
            1,
            Line::from(Span::styled(format!("last error: {e}"), t.error())),
        );
    }
    if let Some(p) = &m.proposal {
        let verb = match p.mode {
            crate::inventory::rules::RuleMode::Propose => "proposed (P adopts all proposed)",
            crate::inventory::rules::RuleMode::Auto => "auto-adopting",
        };
        info.insert(
            1,
            Line::from(Span::styled(
                format!(
                    "{verb}: {} into {} as {}, install {} — rule {}",
                    p.profile,
                    if p.group.is_empty() { "/" } else { &p.group },
                    p.hostname,
                    p.install,
                    p.rule
                ),
                t.warn(),
            )),
        );
    }
    let [info_area, rest] = Layout::vertical([
        Constraint::Length(4 + u16::from(!m.facts.is_empty())),
        Constraint::Fill(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(info).wrap(Wrap { trim: true }), info_area);
    let direction = if area.width >= 120 {
        Direction::Horizontal
    } else {
        Direction::Vertical
    };
    let [timeline_area, text_area] = Layout::default()
        .direction(direction)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .areas(rest);
    let first = m.timeline.front().map_or(0, |s| s.at);
    let rows: Vec<Row> = m
        .timeline
        .iter()
        .map(|s| {
            let style = if s.failed { t.error() } else { t.text() };
            Row::new(vec![
                Cell::from(Span::styled(
                    fmt_clock(s.at.saturating_sub(first)),
                    t.muted(),
                )),
                Cell::from(Span::styled(s.what(), style)),
                Cell::from(s.millis.map_or(String::new(), |ms| format!("{ms} ms"))),
                Cell::from(if s.repeats > 1 {
                    format!("×{}", s.repeats)
                } else {
                    String::new()
                }),
            ])
        })
        .collect();
    // The newest rows that fit, or as far back as the operator scrolled
    // (to a failure further up).
    let room = timeline_area.height.saturating_sub(2) as usize;
    let total = rows.len();
    let newest_first = total.saturating_sub(room);
    let skip = newest_first.saturating_sub(app.timeline_back);
    let focused = app.detail_pane == DetailPane::Timeline;
    let timeline_title = if total > room {
        format!(
            " Boot timeline {}-{} of {total}{} ",
            skip + 1,
            (skip + room).min(total),
            if focused { " (↑↓ scroll)" } else { "" }
        )
    } else {
        " Boot timeline ".to_string()
    };
    frame.render_widget(
        Table::new(
            rows.into_iter().skip(skip),
            [
                Constraint::Length(8),
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(4),
            ],
        )
        .header(
            Row::new(["time", "step", "took", ""]).style(t.muted().add_modifier(Modifier::BOLD)),
        )
        .block(table_block(app, timeline_title)),
        timeline_area,
    );
    let text = match &app.detail_text {
        Some((for_mac, text)) if *for_mac == mac => text.clone(),
        _ => "loading…".into(),
    };
    frame.render_widget(
        Paragraph::new(text)
            .style(t.text())
            .scroll((app.detail_scroll, 0))
            .block(table_block(
                app,
                if focused {
                    " What it is served (tab: scroll this) ".into()
                } else {
                    " What it is served (↑↓ scroll) ".into()
                },
            )),
        text_area,
    );
}
