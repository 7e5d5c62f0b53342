//! The Leases view: every address the server holds for a machine — offered,
//! bound (expiring when under a quarter of its time is left), expired,
//! quarantined after a DECLINE — with the machine's name as the inventory
//! knows it now (an adoption names a lease taken while it was unknown) and
//! the time left.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table, TableState};

use super::format::{Column, col, ellipsize, fill, fit, fmt_age, table_block, widths};
use crate::model::LeaseState;
use crate::tui::app::App;

/// IP, MAC, hostname, state and time left always; the type when it fits.
const COLUMNS: [Column; 6] = [
    col("IP", 15, 0),
    col("MAC", 17, 0),
    fill("Hostname", 8, 0),
    col("State", 11, 0),
    col("Left", 4, 0),
    col("Type", 7, 1),
];

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let leases = app.visible_leases();
    let now = app.clock();
    let kept = fit(&COLUMNS, area.width);
    let shown = widths(&COLUMNS, &kept, area.width);
    // Every column's width (0 where dropped), for cutting cells.
    let mut sizes = [0u16; 6];
    for (&i, &w) in kept.iter().zip(&shown) {
        sizes[i] = w;
    }
    let body: Vec<Row> = leases
        .iter()
        .map(|l| {
            let state = l.state(now);
            let style = match state {
                LeaseState::Bound => t.ok(),
                LeaseState::Offered => t.busy(),
                LeaseState::Expiring => t.warn(),
                LeaseState::Expired => t.muted(),
                LeaseState::Quarantined => t.error(),
            };
            let hostname = app
                .model
                .machine(&l.mac)
                .and_then(|m| m.hostname.clone())
                .or_else(|| l.hostname.clone());
            let left = match state {
                LeaseState::Expired => "-".to_string(),
                _ => fmt_age(l.expires.saturating_sub(now)),
            };
            let cells = [
                Cell::from(l.ip.to_string()),
                Cell::from(l.mac.to_string()),
                Cell::from(ellipsize(
                    &hostname.unwrap_or_else(|| "-".into()),
                    sizes[2].into(),
                )),
                Cell::from(Span::styled(state.label(), style)),
                Cell::from(left),
                Cell::from(if l.fixed { "static" } else { "dynamic" }),
            ];
            Row::new(kept.iter().map(|&i| cells[i].clone()).collect::<Vec<_>>())
        })
        .collect();
    let header: Vec<&str> = kept.iter().map(|&i| COLUMNS[i].title).collect();
    let table = Table::new(body, shown.iter().map(|&w| Constraint::Length(w)))
        .header(Row::new(header).style(t.muted().add_modifier(Modifier::BOLD)))
        .block(table_block(app, format!(" Leases ({}) ", leases.len())))
        .row_highlight_style(t.selected());
    let mut state = TableState::default()
        .with_selected((!leases.is_empty()).then(|| app.cursor_within(leases.len())));
    frame.render_stateful_widget(table, area, &mut state);
}
