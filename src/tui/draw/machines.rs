//! The Machines view: one row per machine, unknown ones marked, wider
//! terminals adding vendor and profile columns (and power, once a machine
//! has a BMC).

use ratatui::Frame;
use ratatui::layout::{Constraint, Margin, Rect};
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::format::{age, arch_label, state_style, table_block};
use crate::model::TransferRow;
use crate::tui::app::App;
use crate::tui::oui;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let rows = app.visible_machines();
    let wide = area.width >= 120;
    // The Power column, where wide enough and some machine has a BMC.
    let power = wide && app.model.machines.iter().any(|m| m.power.is_some());
    let mut header = vec!["", "MAC"];
    if wide {
        header.push("Vendor");
    }
    header.extend(["Arch", "IP", "Hostname"]);
    if wide {
        header.push("Profile");
    }
    if power {
        header.push("Power");
    }
    header.extend(["State", "Xfer", "Age"]);
    let body: Vec<Row> = rows
        .iter()
        .map(|m| {
            let mark = if app.marked.contains(&m.mac) {
                Span::styled("●", t.marked())
            } else if m.is_unknown() {
                Span::styled("?", t.unknown())
            } else {
                Span::raw(" ")
            };
            let progress = m
                .transfer
                .and_then(|id| app.model.transfers.get(&id))
                .and_then(TransferRow::fraction)
                .map(|f| format!("{:>3.0}%", f * 100.0))
                .unwrap_or_default();
            let name_style = if m.is_unknown() {
                t.unknown()
            } else {
                t.text()
            };
            let mut cells = vec![Cell::from(mark), Cell::from(m.mac.to_string())];
            if wide {
                cells.push(Cell::from(Span::styled(oui::vendor(&m.mac), t.muted())));
            }
            cells.push(Cell::from(arch_label(m)));
            cells.push(Cell::from(
                m.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            ));
            cells.push(Cell::from(Span::styled(
                m.hostname.clone().unwrap_or_else(|| "unknown".into()),
                name_style,
            )));
            if wide {
                cells.push(Cell::from(m.profile.clone().unwrap_or_else(|| "-".into())));
            }
            if power {
                cells.push(Cell::from(match &m.power {
                    Some(p) if p.error.is_some() => Span::styled("error", t.error()),
                    Some(p) => {
                        Span::styled(p.state.map_or("?", crate::bmc::PowerState::label), t.text())
                    }
                    None => Span::styled("-", t.muted()),
                }));
            }
            cells.push(Cell::from(Span::styled(
                m.state.label(),
                state_style(app, m),
            )));
            cells.push(Cell::from(Span::styled(progress, t.progress())));
            cells.push(Cell::from(Span::styled(age(app, m.last_seen), t.muted())));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![Constraint::Length(1), Constraint::Length(17)];
    if wide {
        widths.push(Constraint::Length(10));
    }
    widths.extend([
        Constraint::Length(9),
        Constraint::Length(15),
        Constraint::Fill(2),
    ]);
    if wide {
        widths.push(Constraint::Fill(2));
    }
    if power {
        widths.push(Constraint::Length(5));
    }
    widths.extend([
        Constraint::Length(10),
        Constraint::Length(4),
        Constraint::Length(4),
    ]);
    let title = format!(" Machines ({}) ", rows.len());
    let table = Table::new(body, widths)
        .header(Row::new(header).style(t.muted().add_modifier(Modifier::BOLD)))
        .block(table_block(app, title))
        .row_highlight_style(t.selected());
    let mut state = TableState::default()
        .with_selected((!rows.is_empty()).then(|| app.cursor_within(rows.len())));
    frame.render_stateful_widget(table, area, &mut state);
    if rows.is_empty() {
        let hint = if app.filter.is_empty() {
            "No machines yet. They appear the moment they send a DHCPDISCOVER."
        } else {
            "No machine matches the filter (esc clears it)."
        };
        let inner = area.inner(Margin::new(2, 3));
        frame.render_widget(Paragraph::new(Span::styled(hint, t.muted())), inner);
    }
}
