//! A console frame as plain text: what the console tests read; and the
//! console over a model folded from a list of events.
// Each test binary that includes this uses some of it.
#![allow(dead_code)]

use pxedeck::event::{Event, EventKind};
use pxedeck::model::Model;
use pxedeck::tui::Origin;
use pxedeck::tui::app::App;
use pxedeck::tui::draw::draw;
use pxedeck::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// The first event's time in the console tests.
pub const T0: u64 = 1_763_700_000_000;

/// The embedded console over `kinds` folded `step` ms apart from [`T0`],
/// looked at `after` ms past [`T0`].
pub fn app_of(kinds: Vec<EventKind>, step: u64, after: u64) -> App {
    let mut model = Model::default();
    for (i, kind) in kinds.into_iter().enumerate() {
        model.apply(&Event {
            at: T0 + i as u64 * step,
            kind,
        });
    }
    let mut app = App::new(model, Theme::builtin(false), Origin::Embedded);
    app.now = T0 + after;
    app
}

/// Puts the cursor on the machines list's row of `mac`.
pub fn select(app: &mut App, mac: &str) {
    let mac: pxedeck::ident::Mac = mac.parse().unwrap();
    let i = app
        .visible_machines()
        .iter()
        .position(|r| r.mac == mac)
        .unwrap();
    app.cursor[0] = i;
}

/// `app` drawn at `w`x`h` into a `TestBackend`, one line per row, trailing
/// blanks trimmed.
pub fn screen(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| draw(f, app)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
