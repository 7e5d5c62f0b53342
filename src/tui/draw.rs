//! Rendering the app: a pure function of [`App`] into a ratatui frame.
//! Layout works from 80x24 up; wider terminals get more columns.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Margin, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Wrap,
};

use super::adopt::{AdoptDialog, Field, field_label};
use super::app::{App, TABS, Tab};
use super::oui;
use crate::clock::Millis;
use crate::config::DhcpMode;
use crate::event::Level;
use crate::model::{Alert, MachineRow, MachineState, TransferRow};

pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn fmt_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn age(app: &App, at: Option<Millis>) -> String {
    match at {
        Some(at) if app.now >= at => fmt_age(app.now - at),
        Some(_) => "0s".into(),
        None => "-".into(),
    }
}

/// A text progress bar: `██████░░░░`.
fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// The firmware when known (iPXE reports it too), else just "iPXE".
fn arch_label(m: &MachineRow) -> String {
    match (m.firmware, m.ipxe) {
        (Some(f), _) => f.label().into(),
        (None, true) => "iPXE".into(),
        (None, false) => "-".into(),
    }
}

fn state_style(app: &App, m: &MachineRow) -> Style {
    let t = &app.theme;
    match m.state {
        MachineState::Failed => t.error(),
        MachineState::Installed | MachineState::Local => t.ok(),
        MachineState::Booting | MachineState::Loading | MachineState::Installing => t.busy(),
        MachineState::Held | MachineState::Discovered => t.unknown(),
        MachineState::Known => t.muted(),
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let alerts = alert_texts(app);
    let [header, alert_row, tabs, body, status, keys] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(u16::from(!alerts.is_empty())),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, app, header);
    if !alerts.is_empty() {
        let line = Line::from(Span::styled(
            format!(" ⚠ {}", alerts.join(" · ")),
            app.theme.error(),
        ));
        frame.render_widget(Paragraph::new(line), alert_row);
    }
    draw_tabs(frame, app, tabs);
    match (app.detail, app.tab) {
        (Some(mac), _) => draw_detail(frame, app, body, mac),
        (None, Tab::Machines) => draw_machines(frame, app, body),
        (None, Tab::Leases) => draw_leases(frame, app, body),
        (None, Tab::Transfers) => draw_transfers(frame, app, body),
        (None, Tab::Inventory) => draw_inventory(frame, app, body),
        (None, Tab::Log) => draw_log(frame, app, body),
    }
    draw_status(frame, app, status);
    draw_keys(frame, app, keys);
    if let Some(d) = app.dialog() {
        draw_adopt(frame, app, d);
    }
    if app.help_open() {
        draw_help(frame, app);
    }
}

/// The alerts the header shows, most urgent first.
pub fn alert_texts(app: &App) -> Vec<String> {
    let m = &app.model;
    let mut out: Vec<String> = m
        .alerts()
        .into_iter()
        .map(|a| match a {
            Alert::RogueDhcp { server, count } => {
                format!("rogue DHCP server {server} ({count}×)")
            }
            Alert::PoolExhausted { subnet } => format!("pool {subnet} exhausted"),
            Alert::InventoryErrors { count } => {
                format!(
                    "{count} inventory error{} (press 4)",
                    if count == 1 { "" } else { "s" }
                )
            }
        })
        .collect();
    if let Some(server) = &m.server {
        for p in &server.pools {
            let size =
                u64::from(u32::from(p.last)).saturating_sub(u64::from(u32::from(p.first))) + 1;
            let used = m
                .leases
                .keys()
                .filter(|ip| (p.first..=p.last).contains(*ip))
                .count() as u64;
            if size >= 10 && used * 10 >= size * 9 && !m.exhausted_pools.contains(&p.subnet) {
                out.push(format!("pool {} {}% used", p.subnet, used * 100 / size));
            }
        }
    }
    let recent_failures = m
        .recent
        .iter()
        .filter(|t| matches!(t.outcome, Some(Err(_))))
        .filter(|t| {
            t.finished
                .is_some_and(|f| app.now.saturating_sub(f) < 60_000)
        })
        .count();
    if recent_failures >= 5 {
        out.push(format!(
            "{recent_failures} failed transfers in the last minute"
        ));
    }
    out
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let m = &app.model;
    let services = match &m.server {
        Some(s) => {
            let dhcp = match (s.dhcp_mode, s.dhcp) {
                (DhcpMode::Off, _) | (_, None) => "DHCP off".to_string(),
                (mode, Some(a)) => format!("DHCP {mode} :{}", a.port()),
            };
            let full = format!(
                "{dhcp} · TFTP :{} · HTTP {} · API {} · unknown: {}",
                s.tftp.port(),
                s.http,
                s.api,
                s.unknown_policy
            );
            if full.chars().count() + 9 <= area.width as usize {
                full
            } else {
                format!(
                    "{} {dhcp} · TFTP :{} · HTTP :{} · API :{}",
                    s.address,
                    s.tftp.port(),
                    s.http.port(),
                    s.api.port()
                )
            }
        }
        None => "connecting…".into(),
    };
    let line1 = Line::from(vec![
        Span::styled(" pxedeck ", t.accent()),
        Span::styled(services, t.header()),
    ]);
    let unknown = app.unknown_count();
    let mut line2 = vec![Span::styled(
        format!(" {} machines", m.machines.len()),
        t.header(),
    )];
    if unknown > 0 {
        line2.push(Span::styled(format!(" · {unknown} unknown"), t.unknown()));
    }
    line2.push(Span::styled(
        format!(
            " · {} leases · {} transfers · {}/s",
            m.leases.len(),
            m.transfers.len(),
            fmt_bytes(app.rate())
        ),
        t.header(),
    ));
    if let Some(url) = app.origin.attached_to() {
        line2.push(Span::styled(format!(" · attached to {url}"), t.muted()));
    }
    frame.render_widget(
        Paragraph::new(vec![line1, Line::from(line2)]).style(t.header()),
        area,
    );
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut spans = Vec::new();
    for (i, (tab, name)) in TABS.iter().enumerate() {
        let style = if *tab == app.tab && app.detail.is_none() {
            t.accent().add_modifier(Modifier::REVERSED)
        } else {
            t.muted()
        };
        spans.push(Span::styled(format!(" {} {name} ", i + 1), style));
    }
    if app.detail.is_some() {
        spans.push(Span::styled(
            " ▸ detail ",
            t.accent().add_modifier(Modifier::REVERSED),
        ));
    }
    let mut extra = Vec::new();
    if !app.filter.is_empty() {
        extra.push(format!("filter: {}", app.filter));
    }
    if app.tab == Tab::Machines && app.sort != super::app::Sort::Seen {
        extra.push(format!("sort: {}", app.sort.label()));
    }
    if !app.marked.is_empty() {
        extra.push(format!("{} marked", app.marked.len()));
    }
    if !extra.is_empty() {
        spans.push(Span::styled(format!("  {}", extra.join(" · ")), t.warn()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn table_block(app: &App, title: String) -> Block<'static> {
    Block::default()
        .borders(Borders::TOP)
        .border_style(app.theme.border())
        .title(Span::styled(title, app.theme.text()))
}

fn draw_machines(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let rows = app.visible_machines();
    let wide = area.width >= 120;
    let mut header = vec!["", "MAC"];
    if wide {
        header.push("Vendor");
    }
    header.extend(["Arch", "IP", "Hostname"]);
    if wide {
        header.push("Profile");
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

fn draw_leases(frame: &mut Frame, app: &App, area: Rect) {
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

fn transfer_row<'a>(app: &App, tr: &TransferRow, live: bool, bar_width: usize) -> Row<'a> {
    let t = &app.theme;
    let who = tr
        .mac
        .and_then(|mac| app.model.machine(&mac))
        .and_then(|m| m.hostname.clone())
        .or_else(|| tr.mac.map(|m| m.to_string()))
        .unwrap_or_else(|| tr.client.ip().to_string());
    let elapsed = tr
        .finished
        .unwrap_or(app.model.now)
        .saturating_sub(tr.started)
        .max(1);
    let rate = tr.bytes * 1000 / elapsed;
    let (progress, style) = if live {
        let text = match tr.fraction() {
            Some(f) => format!("{} {:>3.0}%", bar(f, bar_width), f * 100.0),
            None => fmt_bytes(tr.bytes),
        };
        (text, t.progress())
    } else {
        match &tr.outcome {
            Some(Ok(())) => (format!("done {}", fmt_bytes(tr.bytes)), t.ok()),
            Some(Err(e)) => (format!("failed: {e}"), t.error()),
            None => (String::new(), t.muted()),
        }
    };
    let eta = match (live, tr.size) {
        (true, Some(size)) if rate > 0 => fmt_age((size.saturating_sub(tr.bytes)) * 1000 / rate),
        (true, _) => "-".into(),
        (false, _) => fmt_age(elapsed),
    };
    Row::new(vec![
        Cell::from(tr.protocol.name()),
        Cell::from(who),
        Cell::from(tr.path.clone()),
        Cell::from(Span::styled(progress, style)),
        Cell::from(format!("{}/s", fmt_bytes(rate))),
        Cell::from(eta),
    ])
}

fn draw_transfers(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let [spark, live_area, recent_area] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    let width = spark.width.saturating_sub(2) as usize;
    let samples: Vec<u64> = app
        .throughput
        .iter()
        .rev()
        .take(width)
        .rev()
        .copied()
        .collect();
    let peak = samples.iter().copied().max().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(table_block(
                app,
                format!(
                    " Throughput {}/s (peak {}/s) ",
                    fmt_bytes(app.rate()),
                    fmt_bytes(peak)
                ),
            ))
            .data(&samples)
            .style(t.progress()),
        spark,
    );
    let bar_width = if area.width >= 120 { 30 } else { 10 };
    let widths = [
        Constraint::Length(4),
        Constraint::Length(17),
        Constraint::Fill(1),
        Constraint::Length(bar_width as u16 + 5),
        Constraint::Length(11),
        Constraint::Length(5),
    ];
    let live: Vec<Row> = app
        .model
        .transfers
        .values()
        .map(|tr| transfer_row(app, tr, true, bar_width))
        .collect();
    let head = |last: &'static str| {
        Row::new(["", "Machine", "File", "Progress", "Rate", last])
            .style(t.muted().add_modifier(Modifier::BOLD))
    };
    frame.render_widget(
        Table::new(live, widths)
            .header(head("ETA"))
            .block(table_block(
                app,
                format!(" Live ({}) ", app.model.transfers.len()),
            )),
        live_area,
    );
    let recent: Vec<Row> = app
        .model
        .recent
        .iter()
        .rev()
        .map(|tr| transfer_row(app, tr, false, bar_width))
        .collect();
    let failed = app
        .model
        .recent
        .iter()
        .filter(|t| matches!(t.outcome, Some(Err(_))))
        .count();
    // Finished rows carry reasons, not bars: give them the room.
    let mut recent_widths = widths;
    recent_widths[3] = Constraint::Fill(1);
    frame.render_widget(
        Table::new(recent, recent_widths)
            .header(head("Took"))
            .block(table_block(
                app,
                format!(
                    " Recent ({} done, {failed} failed) ",
                    app.model.counters.transfers_done
                ),
            )),
        recent_area,
    );
}

fn draw_inventory(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let inv = &app.model.inventory;
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!(
                "{} machines in {} groups, {} profiles",
                inv.machines,
                inv.groups.len(),
                inv.profiles.len()
            ),
            t.text(),
        ),
        Span::styled(
            format!("  · last reload {} ago", age(app, inv.last_reload)),
            t.muted(),
        ),
    ])];
    lines.push(Line::default());
    if !inv.problems.is_empty() {
        lines.push(Line::from(Span::styled(
            format!(
                "{} problem(s); the last good inventory keeps serving:",
                inv.problems.len()
            ),
            t.error(),
        )));
        for p in &inv.problems {
            lines.push(Line::from(Span::styled(format!("  {p}"), t.error())));
        }
        lines.push(Line::default());
    }
    lines.push(Line::from(Span::styled("Groups", t.accent())));
    for g in &inv.group_info {
        let count = app
            .model
            .machines
            .iter()
            .filter(|m| m.group.as_deref() == Some(g.name.as_str()))
            .count();
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {:<20}", if g.name.is_empty() { "/" } else { &g.name }),
                t.text(),
            ),
            Span::styled(
                format!(
                    " {count:>3} machines  profile {:<16} names {}",
                    g.profile.as_deref().unwrap_or("-"),
                    g.hostname_pattern.as_deref().unwrap_or("-")
                ),
                t.muted(),
            ),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Profiles", t.accent())));
    lines.push(Line::from(Span::styled(
        format!("  {}", inv.profiles.join(", ")),
        t.text(),
    )));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(table_block(app, " Inventory ".into())),
        area,
    );
}

fn level_style(app: &App, level: Level) -> Style {
    match level {
        Level::Error => app.theme.error(),
        Level::Warn => app.theme.warn(),
        Level::Info => app.theme.text(),
        Level::Debug => app.theme.muted(),
    }
}

fn draw_log(frame: &mut Frame, app: &App, area: Rect) {
    let lines = app.visible_log();
    let height = area.height.saturating_sub(1) as usize;
    let end = if app.follow_log {
        lines.len()
    } else {
        (app.cursor_within(lines.len()) + 1).min(lines.len())
    };
    let start = end.saturating_sub(height);
    let first = app.model.log.front().map_or(0, |l| l.at);
    let text: Vec<Line> = lines[start..end]
        .iter()
        .map(|l| {
            Line::from(vec![
                Span::styled(
                    format!("{:>7} ", fmt_clock(l.at.saturating_sub(first))),
                    app.theme.muted(),
                ),
                Span::styled(format!("{:<9} ", l.target), app.theme.muted()),
                Span::styled(l.message.clone(), level_style(app, l.level)),
            ])
        })
        .collect();
    let title = format!(
        " Log ({}){} ",
        lines.len(),
        if app.follow_log { " · following" } else { "" }
    );
    frame.render_widget(Paragraph::new(text).block(table_block(app, title)), area);
}

/// `mm:ss.t` for offsets within a boot.
fn fmt_clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    } else {
        format!("{:02}:{:02}.{}", s / 60, s % 60, (ms % 1000) / 100)
    }
}

fn draw_detail(frame: &mut Frame, app: &App, area: Rect, mac: crate::ident::Mac) {
    let t = &app.theme;
    let Some(m) = app.model.machine(&mac) else {
        frame.render_widget(Paragraph::new("machine gone"), area);
        return;
    };
    let info = vec![
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
                "group {} · profile {} · install {} · arch {} · IP {} · UUID {}{}",
                m.group.as_deref().unwrap_or("-"),
                m.profile.as_deref().unwrap_or("-"),
                m.install.map_or("-".into(), |i| i.to_string()),
                arch_label(m),
                m.ip.map_or("-".into(), |i| i.to_string()),
                m.uuid.map_or("-".into(), |u| u.to_string()),
                m.relay.map_or(String::new(), |r| format!(" · relay {r}")),
            ),
            t.muted(),
        )),
        match &m.last_error {
            Some(e) => Line::from(Span::styled(format!("last error: {e}"), t.error())),
            None => Line::default(),
        },
    ];
    let [info_area, rest] =
        Layout::vertical([Constraint::Length(3), Constraint::Fill(1)]).areas(area);
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
                Cell::from(Span::styled(s.what.clone(), style)),
                Cell::from(s.millis.map_or(String::new(), |ms| format!("{ms} ms"))),
                Cell::from(if s.repeats > 1 {
                    format!("×{}", s.repeats)
                } else {
                    String::new()
                }),
            ])
        })
        .collect();
    let skip = rows
        .len()
        .saturating_sub(timeline_area.height.saturating_sub(2) as usize);
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
        .block(table_block(app, " Boot timeline ".into())),
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
            .block(table_block(app, " What it is served (↑↓ scroll) ".into())),
        text_area,
    );
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
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

fn draw_keys(frame: &mut Frame, app: &App, area: Rect) {
    let hints = app.footer();
    let mut spans = Vec::new();
    for (k, what) in &hints {
        spans.push(Span::styled(format!(" {k}"), app.theme.accent()));
        spans.push(Span::styled(format!(" {what} "), app.theme.muted()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A centred rectangle of at most `w`x`h`.
fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_adopt(frame: &mut Frame, app: &App, d: &AdoptDialog) {
    let t = &app.theme;
    let area = centred(frame.area(), 64, 11);
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
    let label = |f: Field, name: &str| {
        let style = if d.field == f { t.accent() } else { t.muted() };
        Span::styled(field_label(name), style)
    };
    let choice = |f: Field, value: &str| {
        if d.field == f {
            Span::styled(
                format!("◂ {value} ▸"),
                t.text().add_modifier(Modifier::BOLD),
            )
        } else {
            Span::styled(value.to_string(), t.text())
        }
    };
    let mut lines = vec![
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
    ];
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
        // After the label drawn on that row (every row starts with one).
        let label = lines[row].spans.first().map_or(0, Span::width) as u16;
        frame.set_cursor_position((inner.x + label + col as u16, inner.y + row as u16));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn draw_help(frame: &mut Frame, app: &App) {
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
        " any key closes this help",
        t.muted(),
    )));
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.accent())
                .title(Span::styled(" Keys ", t.accent())),
        ),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_bytes(999), "999 B");
        assert_eq!(fmt_bytes(1_500_000), "1.5 MB");
        assert_eq!(fmt_age(61_000), "1m");
        assert_eq!(bar(0.5, 4), "██░░");
        assert_eq!(fmt_clock(61_500), "01:01.5");
    }
}
