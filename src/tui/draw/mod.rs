//! Rendering the app: a pure function of [`App`] into a ratatui frame, one
//! file per view or screen region, with shared formatters in `format`.
//! Layout works from 80x24 up; wider terminals get more columns.

mod adopt;
mod alerts;
mod detail;
mod format;
mod header;
mod help;
mod inventory;
mod keys;
mod leases;
mod log;
mod machines;
mod status;
mod tabs;
mod transfers;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

pub use alerts::{alert_text, alert_texts};

use super::app::{App, Tab};

/// Draws the whole screen: header, alerts, tabs, the open view, status
/// line and key footer, then any overlay (adopt dialog, help).
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
    header::draw(frame, app, header);
    if !alerts.is_empty() {
        alerts::draw(frame, app, alert_row, &alerts);
    }
    tabs::draw(frame, app, tabs);
    match (app.detail, app.tab) {
        (Some(mac), _) => detail::draw(frame, app, body, mac),
        (None, Tab::Machines) => machines::draw(frame, app, body),
        (None, Tab::Leases) => leases::draw(frame, app, body),
        (None, Tab::Transfers) => transfers::draw(frame, app, body),
        (None, Tab::Inventory) => inventory::draw(frame, app, body),
        (None, Tab::Log) => log::draw(frame, app, body),
    }
    status::draw(frame, app, status);
    keys::draw(frame, app, keys);
    if let Some(d) = app.dialog() {
        adopt::draw(frame, app, d);
    }
    if app.help_open() {
        help::draw(frame, app);
    }
}
