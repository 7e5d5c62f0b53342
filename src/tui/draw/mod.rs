//! Rendering the app: a pure function of [`App`] into a ratatui frame, one
//! file per view or screen region, with shared formatters in `format`.
//! Layout works from 60x16 up (a notice below that); wider terminals get
//! more columns, chosen by priority.

mod adopt;
mod alerts;
mod detail;
mod edit;
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
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Wrap};

pub use alerts::{alert_text, alert_texts};
pub use inventory::scroll_positions as inventory_scroll_positions;

use super::app::{App, Tab};

/// The smallest terminal the console draws in; below it, a notice.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// A plain notice instead of a layout that cannot fit.
fn too_small(frame: &mut Frame, app: &App, area: Rect) {
    let text = format!(
        "terminal too small ({}x{}, need {MIN_WIDTH}x{MIN_HEIGHT})",
        area.width, area.height
    );
    frame.render_widget(
        Paragraph::new(text)
            .style(app.theme.warn())
            .wrap(Wrap { trim: true }),
        area,
    );
}

/// The screen's regions: header, alert row, tabs, body, status, keys.
fn layout(area: Rect, alerts: bool) -> [Rect; 6] {
    Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(u16::from(alerts)),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// Where a mouse click landed, for the app to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Tab(usize),
    /// A row of the open tab's table, counted from the top of the table.
    Row(usize),
    Nothing,
}

/// What is at (`x`, `y`) on a screen of `area`, as `draw` lays it out.
pub fn hit(app: &App, area: Rect, x: u16, y: u16) -> Hit {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return Hit::Nothing;
    }
    let [_, _, tabs, body, _, _] = layout(area, !alert_texts(app).is_empty());
    if y == tabs.y {
        return tabs::at(x).map_or(Hit::Nothing, Hit::Tab);
    }
    // Tables draw a rule and a header line above their rows.
    let first = body.y + 2;
    if y >= first && y < body.y + body.height {
        return Hit::Row((y - first) as usize);
    }
    Hit::Nothing
}

/// Rows a table in the body shows at once on a screen of `area`.
pub fn table_rows(app: &App, area: Rect) -> usize {
    let [_, _, _, body, _, _] = layout(area, !alert_texts(app).is_empty());
    body.height.saturating_sub(2) as usize
}

/// Draws the whole screen: header, alerts, tabs, the open view, status
/// line and key footer, then any overlay (adopt dialog, help).
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, app, area);
        return;
    }
    let alerts = alert_texts(app);
    let [header, alert_row, tabs, body, status, keys] = layout(area, !alerts.is_empty());
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
    if let Some(d) = app.edit_dialog() {
        edit::draw(frame, app, d);
    }
    if app.help_open() {
        help::draw(frame, app);
    }
}
