//! The alert row under the header: the model's alerts, worded.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::fmt_age;
use crate::model::Alert;
use crate::tui::app::App;

/// How an alert reads.
pub fn alert_text(alert: &Alert) -> String {
    match alert {
        Alert::RogueDhcp { server, count } => format!("rogue DHCP server {server} ({count}×)"),
        Alert::PoolExhausted { subnet } => format!("pool {subnet} exhausted"),
        Alert::InventoryErrors { count } => format!(
            "{count} inventory error{} (press 4)",
            if *count == 1 { "" } else { "s" }
        ),
        Alert::PoolNearlyFull { subnet, percent } => format!("pool {subnet} {percent}% used"),
        Alert::TransferFailures { count } => {
            format!("{count} failed transfers in the last minute")
        }
        Alert::MachinesStuck {
            count: 1,
            first,
            stuck,
        } => format!("{first} stuck: {}", stuck.describe(fmt_age)),
        Alert::MachinesStuck {
            count,
            first,
            stuck,
        } => format!(
            "{count} machines stuck ({first}: {})",
            stuck.describe(fmt_age)
        ),
        Alert::AutoAdoptRefused { count } => format!("{count} auto-adoption(s) refused (see log)"),
    }
}

/// The alerts the header shows, most urgent first, as of the console's
/// clock (or the newest event, if that is later).
pub fn alert_texts(app: &App) -> Vec<String> {
    app.model
        .alerts(app.now.max(app.model.now))
        .iter()
        .map(alert_text)
        .collect()
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect, alerts: &[String]) {
    let line = Line::from(Span::styled(
        format!(" ⚠ {}", alerts.join(" · ")),
        app.theme.error(),
    ));
    frame.render_widget(Paragraph::new(line), area);
}
