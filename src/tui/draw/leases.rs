//! The Leases view: bound addresses with their machine and time left.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table, TableState};

use super::format::{fmt_age, table_block};
use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let leases = app.visible_leases();
    let body: Vec<Row> = leases
        .iter()
        .map(|l| {
            let left = l.expires.saturating_sub(app.now.max(app.model.now));
            Row::new(vec![
                Cell::from(l.ip.to_string()),
                Cell::from(l.mac.to_string()),
                Cell::from(l.hostname.clone().unwrap_or_else(|| "-".into())),
                Cell::from(if l.fixed { "static" } else { "dynamic" }),
                Cell::from(Span::styled("bound", t.ok())),
                Cell::from(fmt_age(left)),
            ])
        })
        .collect();
    let table = Table::new(
        body,
        [
            Constraint::Length(15),
            Constraint::Length(17),
            Constraint::Fill(1),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new(["IP", "MAC", "Hostname", "Type", "State", "Expires"])
            .style(t.muted().add_modifier(Modifier::BOLD)),
    )
    .block(table_block(app, format!(" Leases ({}) ", leases.len())))
    .row_highlight_style(t.selected());
    let mut state = TableState::default()
        .with_selected((!leases.is_empty()).then(|| app.cursor_within(leases.len())));
    frame.render_stateful_widget(table, area, &mut state);
}
