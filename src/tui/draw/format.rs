//! Shared formatters and building blocks of every view: sizes, ages,
//! clocks, progress bars, the arch label, state and level colours, the
//! titled block and the centred overlay rectangle.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders};

use crate::clock::Millis;
use crate::event::Level;
use crate::model::{MachineRow, MachineState};
use crate::tui::app::App;
use crate::tui::theme::Theme;

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

/// `HH:MM:SS` of a wall-clock time, in UTC.
pub fn time_of_day(at: Millis) -> String {
    let s = (at / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
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

/// A table column that is shown only when the terminal has room for it.
#[derive(Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    /// Its width, or the least it is shown at when it fills.
    pub width: u16,
    /// Takes a share of the width left over.
    pub fill: bool,
    /// Lower goes first: 0 is always shown, higher numbers only when
    /// there is room for every column before them.
    pub priority: u8,
}

pub const fn col(title: &'static str, width: u16, priority: u8) -> Column {
    Column {
        title,
        width,
        fill: false,
        priority,
    }
}

pub const fn fill(title: &'static str, width: u16, priority: u8) -> Column {
    Column {
        title,
        width,
        fill: true,
        priority,
    }
}

/// The columns that fit in `width` (one space between columns), in
/// display order: taken by priority until the next would not fit, so a
/// narrow terminal drops whole columns instead of cutting every one.
pub fn fit(columns: &[Column], width: u16) -> Vec<usize> {
    let mut by_priority: Vec<usize> = (0..columns.len()).collect();
    by_priority.sort_by_key(|&i| columns[i].priority);
    let mut kept = Vec::new();
    let mut used: u16 = 0;
    for i in by_priority {
        let need = columns[i].width + u16::from(!kept.is_empty());
        if columns[i].priority > 0 && used.saturating_add(need) > width {
            break;
        }
        used = used.saturating_add(need);
        kept.push(i);
    }
    kept.sort_unstable();
    kept
}

/// The widths of the kept columns in `width`: fixed ones as they are, the
/// room left shared out between the filling ones (the first ones get the
/// odd columns), so nothing depends on the layout solver.
pub fn widths(columns: &[Column], kept: &[usize], width: u16) -> Vec<u16> {
    let used: u16 =
        kept.iter().map(|&i| columns[i].width).sum::<u16>() + kept.len().saturating_sub(1) as u16;
    let fills = kept.iter().filter(|&&i| columns[i].fill).count() as u16;
    let spare = width.saturating_sub(used);
    let mut extra_left = spare % fills.max(1);
    kept.iter()
        .map(|&i| {
            let c = &columns[i];
            if !c.fill {
                return c.width;
            }
            let odd = u16::from(extra_left > 0);
            extra_left = extra_left.saturating_sub(1);
            c.width + spare / fills.max(1) + odd
        })
        .collect()
}

/// `text` cut to `width` characters with an ellipsis, so a cut is never
/// mistaken for the whole word.
pub fn ellipsize(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A path cut to `width` at its `/`s: the last components that fit after
/// `…/`; a last component too long for that is cut at a word boundary
/// (`-`, `_`, `.`) with `…`, never in the middle of a word unless it is
/// one long word.
pub fn fit_path(path: &str, width: usize) -> String {
    if path.chars().count() <= width {
        return path.to_string();
    }
    let parts: Vec<&str> = path.split('/').collect();
    let mut tail = String::new();
    for part in parts.iter().rev() {
        let candidate = if tail.is_empty() {
            part.to_string()
        } else {
            format!("{part}/{tail}")
        };
        if candidate.chars().count() + 2 > width {
            break;
        }
        tail = candidate;
    }
    if !tail.is_empty() {
        return format!("…/{tail}");
    }
    cut_at_boundary(
        parts.last().copied().unwrap_or(path),
        width,
        &['-', '_', '.'],
    )
}

/// Text cut to `width` after a whole word (split at spaces, or after a
/// `/` of a path in it), with `…`.
pub fn fit_words(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let room = width - 1;
    let cut = (1..=room.min(chars.len()))
        .rev()
        .find(|&i| chars.get(i) == Some(&' ') || chars[i - 1] == '/');
    match cut {
        Some(i) => {
            let mut out: String = chars[..i].iter().collect();
            out.truncate(out.trim_end().len());
            out.push('…');
            out
        }
        None => cut_at_boundary(text, width, &[' ']),
    }
}

/// The longest prefix of `text` that ends before one of `boundaries` and
/// fits `width` with `…`; a hard cut when no boundary is that early.
fn cut_at_boundary(text: &str, width: usize, boundaries: &[char]) -> String {
    if width == 0 {
        return String::new();
    }
    let room = width - 1;
    let chars: Vec<char> = text.chars().collect();
    let cut = (1..=room.min(chars.len()))
        .rev()
        .find(|&i| chars.get(i).is_some_and(|c| boundaries.contains(c)))
        .unwrap_or(room.min(chars.len()));
    let mut out: String = chars[..cut].iter().collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
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

/// A dialog field's name, lit while it has the focus.
pub fn field_name(theme: &Theme, focused: bool, name: &str) -> Span<'static> {
    let style = if focused {
        theme.accent()
    } else {
        theme.muted()
    };
    Span::styled(crate::tui::adopt::field_label(name), style)
}

/// A dialog field chosen from a list: `◂ value ▸` while it has the focus.
pub fn field_choice(theme: &Theme, focused: bool, value: &str) -> Span<'static> {
    if focused {
        Span::styled(
            format!("◂ {value} ▸"),
            theme.text().add_modifier(Modifier::BOLD),
        )
    } else {
        Span::styled(value.to_string(), theme.text())
    }
}

/// The rows `[first, last)` of `len` that a table `height` rows tall shows
/// with row `cursor` selected: from the top until the cursor would fall off
/// the bottom, then scrolled so that it sits on the last line, as ratatui
/// does from offset 0. Tables build cells for these rows only: formatting
/// all of 10,000 machines each frame cost 90 ms (benches/console).
pub fn on_screen(len: usize, cursor: Option<usize>, height: usize) -> (usize, usize) {
    let height = height.max(1);
    let first = cursor.map_or(0, |c| (c + 1).saturating_sub(height));
    (first.min(len), (first + height).min(len))
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
        // 2025-11-21 04:40:00.500 UTC.
        assert_eq!(time_of_day(1_763_700_000_500), "04:40:00");
        assert_eq!(ellipsize("ubuntu-24.04/initrd", 10), "ubuntu-24…");
        assert_eq!(ellipsize("initrd", 10), "initrd");
    }

    #[test]
    fn paths_and_words_are_cut_at_their_boundaries() {
        assert_eq!(fit_path("ubuntu-24.04/vmlinuz", 20), "ubuntu-24.04/vmlinuz");
        assert_eq!(fit_path("ubuntu-24.04/vmlinuz", 15), "…/vmlinuz");
        assert_eq!(
            fit_path("images/ubuntu-24.04/casper/initrd", 20),
            "…/casper/initrd"
        );
        // One component too long: cut after a word of it.
        assert_eq!(
            fit_path("a/ubuntu-24.04-live-server.iso", 16),
            "ubuntu-24.04…"
        );
        assert_eq!(fit_path("a/abcdefghijkl", 6), "abcde…", "one long word");
        assert_eq!(fit_path("x", 0), "");
        assert_eq!(
            fit_words("failed: the client went away mid-download", 20),
            "failed: the client…"
        );
        assert_eq!(fit_words("short", 20), "short");
        assert_eq!(
            fit_words("HTTP ubuntu-24.04/initrd 40%", 22),
            "HTTP ubuntu-24.04/…",
            "after a path's /"
        );
        for w in 0..30 {
            for s in [
                "ubuntu-24.04/vmlinuz",
                "a/b/c/d-e-f.g",
                "failed: the client went away",
            ] {
                assert!(fit_path(s, w).chars().count() <= w, "{s} at {w}");
                assert!(fit_words(s, w).chars().count() <= w, "{s} at {w}");
            }
        }
    }

    #[test]
    fn columns_are_dropped_whole_by_priority_and_kept_in_order() {
        let cols = [
            col("a", 10, 0),
            col("b", 10, 2),
            col("c", 10, 1),
            fill("d", 5, 0),
        ];
        assert_eq!(fit(&cols, 80), [0, 1, 2, 3]);
        // a + d = 16; c needs 11 more.
        assert_eq!(fit(&cols, 27), [0, 2, 3]);
        assert_eq!(fit(&cols, 26), [0, 3]);
        // Priority 0 is shown however narrow.
        assert_eq!(fit(&cols, 3), [0, 3]);
        // The room left goes to the filling column.
        assert_eq!(widths(&cols, &[0, 3], 30), [10, 19]);
    }
}

#[cfg(test)]
mod window_tests {
    use super::on_screen;

    #[test]
    fn the_window_follows_the_cursor_to_the_bottom_line() {
        assert_eq!(on_screen(0, Some(0), 10), (0, 0));
        assert_eq!(on_screen(5, Some(2), 10), (0, 5));
        assert_eq!(on_screen(100, Some(9), 10), (0, 10));
        assert_eq!(on_screen(100, Some(10), 10), (1, 11));
        assert_eq!(on_screen(100, Some(99), 10), (90, 100));
        assert_eq!(on_screen(100, Some(50), 0), (50, 51));
        assert_eq!(on_screen(100, None, 10), (0, 10));
    }
}
