//! The Transfers view: the throughput sparkline, live transfers with
//! progress bars, and recent ones with how they ended.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Sparkline, Table, TableState};

use super::format::{bar, fit_path, fit_words, fmt_age, fmt_bytes, on_screen, table_block};
use crate::model::{TransferRow, TransferState};
use crate::tui::app::App;

/// The room a row has for its file and its progress (or outcome).
#[derive(Clone, Copy)]
struct Room {
    bar: usize,
    file: usize,
    progress: usize,
}

/// The widths the table will give each column (the same layout ratatui's
/// `Table` does: one space between columns).
fn room(widths: &[Constraint], width: u16, bar: usize) -> Room {
    let cells = Layout::horizontal(widths.to_vec())
        .spacing(1)
        .split(Rect::new(0, 0, width, 1));
    Room {
        bar,
        file: cells.get(2).map_or(0, |r| r.width as usize),
        progress: cells.get(3).map_or(0, |r| r.width as usize),
    }
}

fn transfer_row<'a>(app: &App, tr: &TransferRow, live: bool, room: Room) -> Row<'a> {
    let bar_width = room.bar;
    let t = &app.theme;
    let who = tr
        .mac
        .and_then(|mac| app.model.machine(&mac))
        .and_then(|m| m.hostname.clone())
        .or_else(|| tr.mac.map(|m| m.to_string()))
        .unwrap_or_else(|| tr.client.ip().to_string());
    let elapsed = tr
        .finished()
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
        match &tr.state {
            TransferState::Done { .. } => (format!("done {}", fmt_bytes(tr.bytes)), t.ok()),
            TransferState::Failed { reason, .. } => (
                fit_words(&format!("failed: {reason}"), room.progress),
                t.error(),
            ),
            TransferState::Running => (String::new(), t.muted()),
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
        Cell::from(fit_path(&tr.path, room.file)),
        Cell::from(Span::styled(progress, style)),
        Cell::from(format!("{}/s", fmt_bytes(rate))),
        Cell::from(eta),
    ])
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
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
    // The cursor walks live rows, then recent ones (newest first), so a
    // failure far down the list can be scrolled to and selected.
    let live_n = app.model.transfers.len();
    let cursor = app.cursor_within(live_n + app.model.recent.len());
    let live_cursor = (cursor < live_n).then_some(cursor);
    let (first, last) = on_screen(
        live_n,
        live_cursor,
        live_area.height.saturating_sub(2).into(),
    );
    let live_room = room(&widths, live_area.width, bar_width);
    let live: Vec<Row> = app
        .model
        .transfers
        .values()
        .skip(first)
        .take(last - first)
        .map(|tr| transfer_row(app, tr, true, live_room))
        .collect();
    let head = |last: &'static str| {
        Row::new(["", "Machine", "File", "Progress", "Rate", last])
            .style(t.muted().add_modifier(Modifier::BOLD))
    };
    let mut live_state = TableState::default().with_selected(live_cursor.map(|c| c - first));
    frame.render_stateful_widget(
        Table::new(live, widths)
            .header(head("ETA"))
            .row_highlight_style(t.selected())
            .block(table_block(
                app,
                format!(" Live ({}) ", app.model.transfers.len()),
            )),
        live_area,
        &mut live_state,
    );
    let recent_cursor = (cursor >= live_n && !app.model.recent.is_empty()).then(|| cursor - live_n);
    let (first, last) = on_screen(
        app.model.recent.len(),
        recent_cursor,
        recent_area.height.saturating_sub(2).into(),
    );
    // Finished rows carry reasons, not bars: give them the room.
    let mut recent_widths = widths;
    recent_widths[3] = Constraint::Fill(1);
    let recent_room = room(&recent_widths, recent_area.width, bar_width);
    let recent: Vec<Row> = app
        .model
        .recent
        .iter()
        .rev()
        .skip(first)
        .take(last - first)
        .map(|tr| transfer_row(app, tr, false, recent_room))
        .collect();
    let failed = app
        .model
        .recent
        .iter()
        .filter(|t| t.failure().is_some())
        .count();
    let mut recent_state = TableState::default().with_selected(recent_cursor.map(|c| c - first));
    frame.render_stateful_widget(
        Table::new(recent, recent_widths)
            .header(head("Took"))
            .row_highlight_style(t.selected())
            .block(table_block(
                app,
                format!(
                    " Recent ({} done, {failed} failed) ",
                    app.model.counters.transfers_done
                ),
            )),
        recent_area,
        &mut recent_state,
    );
}
