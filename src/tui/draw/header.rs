//! The three header lines: where the services listen (with several
//! interfaces, each segment and its machines); the counts of
//! machines, leases, transfers and bytes/s; and the mass-boot overview
//! (machines per stage, failed, stuck, held, installs done per minute).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::format::fmt_bytes;
use crate::config::DhcpMode;
use crate::event::ServerInfo;
use crate::model::Stage;
use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
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
            let short = format!(
                "{} {dhcp} · TFTP :{} · HTTP :{} · API :{}",
                s.address,
                s.tftp.port(),
                s.http.port(),
                s.api.port()
            );
            // With several interfaces, each segment and its machines; when
            // that does not fit, how many segments; then nothing of them.
            let mut tries = Vec::new();
            if let Some(segments) = segments(app, s) {
                let count = format!("{} segments", s.interfaces.len());
                tries.extend([
                    format!("{full} │ {segments}"),
                    format!("{short} │ {segments}"),
                    format!("{full} │ {count}"),
                    format!("{short} │ {count}"),
                ]);
            }
            tries.extend([full, short]);
            tries
                .into_iter()
                .find(|line| line.chars().count() + 9 <= area.width as usize)
                // The narrowest terminals: where it serves, and DHCP.
                .unwrap_or_else(|| format!("{} {dhcp}", s.address))
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
    let proposed = app.proposed_count();
    if proposed > 0 {
        line2.push(Span::styled(
            format!(" · {proposed} proposed (P)"),
            t.warn(),
        ));
    }
    // Rows over unknown.max_machines aged out: say so, or a flood of
    // invented MACs would look like nothing happened.
    if m.unknown.dropped > 0 {
        line2.push(Span::styled(
            format!(" ({} dropped)", m.unknown.dropped),
            t.muted(),
        ));
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
    let line3 = overview(app, area.width as usize);
    frame.render_widget(
        Paragraph::new(vec![line1, Line::from(line2), line3]).style(t.header()),
        area,
    );
}

/// `eth1 10.61.1.1: 12 · eth3 10.61.3.1 proxy: 0`: each listed interface
/// and how many machines were last heard on it. None with one interface.
fn segments(app: &App, s: &ServerInfo) -> Option<String> {
    if s.interfaces.is_empty() {
        return None;
    }
    let mut heard: HashMap<Ipv4Addr, usize> = HashMap::new();
    for m in &app.model.machines {
        if let Some(at) = m.interface {
            *heard.entry(at).or_default() += 1;
        }
    }
    let each: Vec<String> = s
        .interfaces
        .iter()
        .map(|i| {
            let proxy = if i.mode == DhcpMode::Proxy {
                " proxy"
            } else {
                ""
            };
            let n = heard.get(&i.address).copied().unwrap_or(0);
            format!("{}{proxy}: {n}", i.label())
        })
        .collect();
    Some(each.join(" · "))
}

/// The stage counts in boot order, then the conditions and the rate.
/// When that does not fit: stages with no machine go, then the words
/// between items get shorter, then stages go from the end; the failed,
/// stuck and held counts stay.
fn overview(app: &App, width: usize) -> Line<'static> {
    let t = &app.theme;
    let o = app.model.overview(app.clock());
    let stages: Vec<(String, usize)> = Stage::ALL
        .iter()
        .map(|&s| (format!("{} {}", s.label(), o.in_stage(s)), o.in_stage(s)))
        .collect();
    let conditions = [
        (format!("{} failed", o.failed), o.failed, t.error()),
        (format!("{} stuck", o.stuck), o.stuck, t.warn()),
        (format!("{} held", o.held), o.held, t.unknown()),
    ];
    let build = |all_stages: bool, compact: bool, keep: usize| -> Vec<Span<'static>> {
        let (arrow, dot) = if compact {
            (" ", " · ")
        } else {
            (" › ", " · ")
        };
        let mut spans = vec![Span::raw(" ")];
        let shown: Vec<&(String, usize)> = stages
            .iter()
            .filter(|(_, n)| all_stages || *n > 0)
            .take(keep)
            .collect();
        for (i, (text, n)) in shown.iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(arrow, t.muted()));
            }
            let style = if *n > 0 { t.header() } else { t.muted() };
            spans.push(Span::styled(text.clone(), style));
        }
        if !shown.is_empty() {
            spans.push(Span::styled(" │ ", t.muted()));
        }
        for (text, n, style) in &conditions {
            let style = if *n > 0 { *style } else { t.muted() };
            spans.push(Span::styled(text.clone(), style));
            spans.push(Span::styled(dot, t.muted()));
        }
        let rate = if compact {
            format!("{}/min", o.done_per_minute)
        } else {
            format!("{} done/min", o.done_per_minute)
        };
        spans.push(Span::styled(rate, t.header()));
        spans
    };
    let fits = |spans: &[Span]| spans.iter().map(|s| s.width()).sum::<usize>() <= width;
    let mut tries = vec![(true, false, 7), (false, false, 7), (false, true, 7)];
    tries.extend((0..7).rev().map(|keep| (false, true, keep)));
    for (all, compact, keep) in tries {
        let spans = build(all, compact, keep);
        if fits(&spans) {
            return Line::from(spans);
        }
    }
    Line::from(build(false, true, 0))
}
