//! The Machines view: one row per machine, failed and stuck ones first,
//! with its stage, time in it and what it did last (or why it stopped).
//! Columns come and go by priority: at 60 columns MAC, hostname, state
//! and stage; at 200 profile, vendor, arch and the last step too, power
//! once a machine has a BMC, and the model once one reported it (SMBIOS,
//! from the entry script's query).

use ratatui::Frame;
use ratatui::layout::{Constraint, Margin, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::format::{
    Column, age, arch_label, col, fill, fit, fit_words, fmt_age, on_screen, state_style,
    table_block, widths,
};
use crate::boot::identity::meaningful;
use crate::model::{MachineRow, MachineState, TransferRow};
use crate::tui::app::App;
use crate::tui::oui;

/// The columns the view can show.
#[derive(Clone, Copy)]
enum Col {
    Mark,
    Mac,
    Hostname,
    State,
    Stage,
    Last,
    InStage,
    Install,
    Power,
    Ip,
    Arch,
    Profile,
    Vendor,
    Model,
    Seen,
}

/// Every column, in display order, with its width and priority; `fit`
/// keeps those the width allows.
const COLUMNS: [(Col, Column); 15] = [
    (Col::Mark, col("", 1, 0)),
    (Col::Mac, col("MAC", 17, 0)),
    (Col::Hostname, fill("Hostname", 9, 0)),
    (Col::State, col("State", 10, 0)),
    (Col::Stage, col("Stage", 6, 1)),
    (Col::Last, fill("Last step / error", 19, 2)),
    (Col::InStage, col("In", 4, 3)),
    (Col::Install, col("Install", 7, 4)),
    (Col::Power, col("Power", 5, 5)),
    (Col::Ip, col("IP", 15, 5)),
    (Col::Arch, col("Arch", 9, 6)),
    (Col::Profile, fill("Profile", 12, 7)),
    (Col::Vendor, col("Vendor", 10, 8)),
    (Col::Model, fill("Model", 14, 8)),
    (Col::Seen, col("Seen", 4, 9)),
];

/// An unknown machine a rule matched: where it would go.
fn proposed_label(p: &crate::inventory::rules::RuleHit) -> String {
    let group = if p.group.is_empty() { "/" } else { &p.group };
    match p.mode {
        crate::inventory::rules::RuleMode::Propose => format!("→ {group}"),
        crate::inventory::rules::RuleMode::Auto => format!("auto → {group}"),
    }
}

/// What a cell holds.
fn cell<'a>(app: &App, m: &MachineRow, column: Col, width: u16) -> Cell<'a> {
    let t = &app.theme;
    let now = app.clock();
    let stuck = app.model.stuck_at(m, now);
    // Cut with an ellipsis: a cut word must not read as a whole one.
    let styled = |text: String, style: Style| {
        Cell::from(Span::styled(fit_words(&text, width.into()), style))
    };
    match column {
        Col::Mark => Cell::from(if app.marked.contains(&m.mac) {
            Span::styled("●", t.marked())
        } else if m.is_unknown() && m.proposal.is_some() {
            Span::styled("+", t.warn())
        } else if m.is_unknown() {
            Span::styled("?", t.unknown())
        } else {
            Span::raw(" ")
        }),
        Col::Mac => Cell::from(m.mac.to_string()),
        Col::Hostname => styled(
            m.hostname
                .clone()
                .or_else(|| m.proposal.as_ref().map(proposed_label))
                .unwrap_or_else(|| "unknown".into()),
            if m.is_unknown() {
                t.unknown()
            } else {
                t.text()
            },
        ),
        Col::State => match stuck {
            Some(_) => styled("stuck".into(), t.warn()),
            None => styled(m.state.label().into(), state_style(app, m)),
        },
        Col::Stage => styled(
            m.stage.map_or("-", |s| s.label()).into(),
            if stuck.is_some() { t.warn() } else { t.text() },
        ),
        Col::InStage => styled(
            m.stage
                .map_or("-".into(), |_| fmt_age(now.saturating_sub(m.stage_since))),
            t.muted(),
        ),
        Col::Install => match m.install {
            Some(true) => styled("yes".into(), t.warn()),
            Some(false) => styled("no".into(), t.text()),
            None => styled("-".into(), t.muted()),
        },
        Col::Ip => Cell::from(m.ip.map_or_else(|| "-".into(), |i| i.to_string())),
        Col::Last => match (&m.last_error, stuck) {
            (Some(e), _) if m.state == MachineState::Failed => styled(e.clone(), t.error()),
            (_, Some(s)) => styled(s.describe(fmt_age), t.warn()),
            _ => {
                // A download running shows how far it got.
                let progress = m
                    .transfer
                    .and_then(|id| app.model.transfers.get(&id))
                    .and_then(TransferRow::fraction)
                    .map(|f| format!(" {:.0}%", f * 100.0))
                    .unwrap_or_default();
                let last = m.timeline.back().map(|s| s.what()).unwrap_or_default();
                styled(format!("{last}{progress}"), t.muted())
            }
        },
        Col::Arch => Cell::from(arch_label(m)),
        Col::Profile => Cell::from(m.profile.clone().unwrap_or_else(|| "-".into())),
        // Who made it, as it says itself (SMBIOS manufacturer), else its
        // NIC's vendor from the MAC's OUI.
        Col::Vendor => match m.facts.get("manufacturer").filter(|v| meaningful(v)) {
            Some(maker) => styled(maker.into(), t.text()),
            None => styled(oui::vendor(&m.mac).into(), t.muted()),
        },
        Col::Model => styled(
            m.facts
                .get("product")
                .filter(|v| meaningful(v))
                .unwrap_or("")
                .into(),
            t.text(),
        ),
        Col::Seen => styled(age(app, m.last_seen), t.muted()),
        Col::Power => match &m.power {
            Some(p) if p.error.is_some() => styled("error".into(), t.error()),
            Some(p) => styled(
                p.state.map_or("?", crate::bmc::PowerState::label).into(),
                t.text(),
            ),
            None => styled("-".into(), t.muted()),
        },
    }
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let rows = app.visible_machines();
    // The Power column only once some machine has a BMC, the Model column
    // once some machine has reported its SMBIOS product.
    let bmc = app.model.machines.iter().any(|m| m.power.is_some());
    let facts = app
        .model
        .machines
        .iter()
        .any(|m| m.facts.get("product").is_some());
    let shown: Vec<(Col, Column)> = COLUMNS
        .iter()
        .copied()
        .filter(|(c, _)| bmc || !matches!(c, Col::Power))
        .filter(|(c, _)| facts || !matches!(c, Col::Model))
        .collect();
    let columns: Vec<Column> = shown.iter().map(|(_, c)| *c).collect();
    let kept = fit(&columns, area.width);
    let header: Vec<&str> = kept.iter().map(|&i| columns[i].title).collect();
    let sizes = widths(&columns, &kept, area.width);
    // Only the rows on screen get cells: the table scrolls to keep the
    // selection on its last line, as ratatui would from offset 0, and
    // formatting all 10,000 machines each frame cost 90 ms (benches/console).
    let cursor = app.cursor_within(rows.len());
    let (first, last) = on_screen(
        rows.len(),
        Some(cursor),
        area.height.saturating_sub(2).into(),
    );
    let body: Vec<Row> = rows[first..last]
        .iter()
        .map(|m| {
            let cells: Vec<Cell> = kept
                .iter()
                .zip(&sizes)
                .map(|(&i, &w)| cell(app, m, shown[i].0, w))
                .collect();
            Row::new(cells)
        })
        .collect();
    let title = format!(" Machines ({}) ", rows.len());
    let table = Table::new(body, sizes.iter().map(|&w| Constraint::Length(w)))
        .header(Row::new(header).style(t.muted().add_modifier(Modifier::BOLD)))
        .block(table_block(app, title))
        .row_highlight_style(t.selected());
    let mut state =
        TableState::default().with_selected((!rows.is_empty()).then_some(cursor - first));
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
