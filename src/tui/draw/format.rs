//! Shared formatters and building blocks of every view: sizes, ages,
//! clocks, progress bars, the arch label, state and level colours, the
//! titled block and the centred overlay rectangle.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders};

use crate::clock::Millis;
use crate::event::Level;
use crate::model::{MachineRow, MachineState};
use crate::tui::app::App;

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

/// `mm:ss.t` for offsets within a boot.
pub fn fmt_clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    } else {
        format!("{:02}:{:02}.{}", s / 60, s % 60, (ms % 1000) / 100)
    }
}

/// How long ago `at` was on the console's clock.
pub fn age(app: &App, at: Option<Millis>) -> String {
    match at {
        Some(at) if app.now >= at => fmt_age(app.now - at),
        Some(_) => "0s".into(),
        None => "-".into(),
    }
}

/// A text progress bar: `██████░░░░`.
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// The firmware when known (iPXE reports it too), else just "iPXE".
pub fn arch_label(m: &MachineRow) -> String {
    match (m.firmware, m.ipxe) {
        (Some(f), _) => f.label().into(),
        (None, true) => "iPXE".into(),
        (None, false) => "-".into(),
    }
}

pub fn state_style(app: &App, m: &MachineRow) -> Style {
    let t = &app.theme;
    match m.state {
        MachineState::Failed => t.error(),
        MachineState::Installed | MachineState::Local => t.ok(),
        MachineState::Booting | MachineState::Loading | MachineState::Installing => t.busy(),
        MachineState::Held | MachineState::Discovered => t.unknown(),
        MachineState::Known => t.muted(),
    }
}

pub fn level_style(app: &App, level: Level) -> Style {
    match level {
        Level::Error => app.theme.error(),
        Level::Warn => app.theme.warn(),
        Level::Info => app.theme.text(),
        Level::Debug => app.theme.muted(),
    }
}

/// A view's frame: a rule on top with its title.
pub fn table_block(app: &App, title: String) -> Block<'static> {
    Block::default()
        .borders(Borders::TOP)
        .border_style(app.theme.border())
        .title(Span::styled(title, app.theme.text()))
}

/// A centred rectangle of at most `w`x`h`.
pub fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
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
