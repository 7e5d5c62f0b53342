//! The two header lines: where the services listen, and the counts of
//! machines, leases, transfers and throughput.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::fmt_bytes;
use crate::config::DhcpMode;
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
    frame.render_widget(
        Paragraph::new(vec![line1, Line::from(line2)]).style(t.header()),
        area,
    );
}
