//! A console frame as plain text: what the console tests read.

use pxedeck::tui::app::App;
use pxedeck::tui::draw::draw;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

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
