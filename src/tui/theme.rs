//! Colour themes: `themes/*.yaml`, each a partial override of the default.
//! The three shipped themes are built in; `--theme` also takes a path.
//! With `NO_COLOR` set, every colour is dropped and emphasis is carried by
//! bold, reverse and underline alone.

use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};

use crate::yaml;

const DEFAULT: &str = include_str!("../../themes/default.yaml");
const BUILT_IN: [(&str, &str); 3] = [
    ("default", DEFAULT),
    ("light", include_str!("../../themes/light.yaml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.yaml"),
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub text: Color,
    pub muted: Color,
    pub accent: Color,
    pub border: Color,
    pub header_bg: Color,
    pub selected_bg: Color,
    pub marked: Color,
    pub unknown: Color,
    pub ok: Color,
    pub busy: Color,
    pub warn: Color,
    pub error: Color,
    pub progress: Color,
    /// No colours at all (NO_COLOR).
    pub mono: bool,
}

impl Theme {
    /// The default theme, monochrome when `mono`.
    pub fn builtin(mono: bool) -> Theme {
        let mut t = Theme {
            text: Color::White,
            muted: Color::DarkGray,
            accent: Color::Cyan,
            border: Color::DarkGray,
            header_bg: Color::Black,
            selected_bg: Color::Blue,
            marked: Color::Yellow,
            unknown: Color::Yellow,
            ok: Color::Green,
            busy: Color::LightBlue,
            warn: Color::Yellow,
            error: Color::LightRed,
            progress: Color::Cyan,
            mono,
        };
        t.apply(DEFAULT)
            .expect("the built-in default theme is valid");
        t
    }

    /// Loads a theme by built-in name or file path, over the default.
    pub fn load(name: &str, mono: bool) -> Result<Theme, String> {
        let mut theme = Theme::builtin(mono);
        let text = match BUILT_IN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => (*text).to_string(),
            None => {
                let path = Path::new(name);
                std::fs::read_to_string(path).map_err(|e| {
                    let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                    format!(
                        "theme {name:?}: not a built-in ({}) and not a readable file: {e}",
                        names.join(", ")
                    )
                })?
            }
        };
        theme
            .apply(&text)
            .map_err(|e| format!("theme {name}: {e}"))?;
        Ok(theme)
    }

    /// Applies the keys a theme file sets.
    fn apply(&mut self, text: &str) -> Result<(), String> {
        let node = yaml::parse(text, 0).map_err(|e| format!("line {}: {}", e.line, e.message))?;
        let Some(entries) = node.as_map() else {
            return Ok(()); // an empty file changes nothing
        };
        for e in entries {
            let value = e
                .node
                .as_str()
                .ok_or_else(|| format!("line {}: {} must be a colour name", e.key_line, e.key))?;
            let colour = Color::from_str(value)
                .map_err(|_| format!("line {}: {value:?} is not a colour", e.key_line))?;
            let slot = match e.key.as_str() {
                "text" => &mut self.text,
                "muted" => &mut self.muted,
                "accent" => &mut self.accent,
                "border" => &mut self.border,
                "header_bg" => &mut self.header_bg,
                "selected_bg" => &mut self.selected_bg,
                "marked" => &mut self.marked,
                "unknown" => &mut self.unknown,
                "ok" => &mut self.ok,
                "busy" => &mut self.busy,
                "warn" => &mut self.warn,
                "error" => &mut self.error,
                "progress" => &mut self.progress,
                other => return Err(format!("line {}: unknown key {other}", e.key_line)),
            };
            *slot = colour;
        }
        Ok(())
    }

    fn fg(&self, c: Color) -> Style {
        if self.mono {
            Style::default()
        } else {
            Style::default().fg(c)
        }
    }

    pub fn text(&self) -> Style {
        self.fg(self.text)
    }
    pub fn muted(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::DIM)
        } else {
            self.fg(self.muted)
        }
    }
    pub fn accent(&self) -> Style {
        self.fg(self.accent).add_modifier(Modifier::BOLD)
    }
    pub fn border(&self) -> Style {
        self.fg(self.border)
    }
    pub fn header(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().fg(self.text).bg(self.header_bg)
        }
    }
    pub fn selected(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().bg(self.selected_bg)
        }
    }
    pub fn marked(&self) -> Style {
        self.fg(self.marked).add_modifier(Modifier::BOLD)
    }
    pub fn unknown(&self) -> Style {
        self.fg(self.unknown).add_modifier(Modifier::BOLD)
    }
    pub fn ok(&self) -> Style {
        self.fg(self.ok)
    }
    pub fn busy(&self) -> Style {
        self.fg(self.busy)
    }
    pub fn warn(&self) -> Style {
        self.fg(self.warn)
    }
    pub fn error(&self) -> Style {
        self.fg(self.error).add_modifier(Modifier::BOLD)
    }
    pub fn progress(&self) -> Style {
        self.fg(self.progress)
    }
}

/// An sRGB colour for a terminal colour, as xterm's default palette
/// draws the sixteen named ones; `Reset` is the terminal's own colour,
/// given as `terminal`.
pub fn rgb(c: Color, terminal: (u8, u8, u8)) -> (u8, u8, u8) {
    match c {
        Color::Reset => terminal,
        Color::Black => (0, 0, 0),
        Color::Red => (205, 0, 0),
        Color::Green => (0, 205, 0),
        Color::Yellow => (205, 205, 0),
        Color::Blue => (0, 0, 238),
        Color::Magenta => (205, 0, 205),
        Color::Cyan => (0, 205, 205),
        Color::Gray => (229, 229, 229),
        Color::DarkGray => (127, 127, 127),
        Color::LightRed => (255, 0, 0),
        Color::LightGreen => (0, 255, 0),
        Color::LightYellow => (255, 255, 0),
        Color::LightBlue => (92, 92, 255),
        Color::LightMagenta => (255, 0, 255),
        Color::LightCyan => (0, 255, 255),
        Color::White => (255, 255, 255),
        Color::Rgb(r, g, b) => (r, g, b),
        Color::Indexed(i) => indexed(i),
    }
}

/// xterm's 256-colour palette: the named sixteen, a 6×6×6 cube, 24 grays.
fn indexed(i: u8) -> (u8, u8, u8) {
    const NAMED: [Color; 16] = [
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::Gray,
        Color::DarkGray,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::White,
    ];
    match i {
        0..=15 => rgb(NAMED[i as usize], (0, 0, 0)),
        16..=231 => {
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            let n = i - 16;
            (level(n / 36), level((n / 6) % 6), level(n % 6))
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            (v, v, v)
        }
    }
}

/// WCAG 2 contrast ratio of two colours (1 to 21).
pub fn contrast(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
    let luminance = |(r, g, b): (u8, u8, u8)| {
        let channel = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.039_28 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    };
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every colour a theme writes with, on every background it writes
    /// on (the terminal's own, the header, the selection bar), is at least
    /// 4.5:1 for body text and 3:1 for the rest (WCAG AA for text, and for
    /// large text and interface parts). The terminal is assumed black
    /// under the dark themes and white under the light one.
    #[test]
    fn every_theme_keeps_every_colour_readable_on_every_background() {
        let mut failures = Vec::new();
        for (name, terminal) in [
            ("default", (0, 0, 0)),
            ("high-contrast", (0, 0, 0)),
            ("light", (255, 255, 255)),
        ] {
            let t = Theme::load(name, false).unwrap();
            let fgs = [
                ("text", t.text, 4.5),
                ("muted", t.muted, 3.0),
                ("accent", t.accent, 3.0),
                ("marked", t.marked, 3.0),
                ("unknown", t.unknown, 3.0),
                ("ok", t.ok, 3.0),
                ("busy", t.busy, 3.0),
                ("warn", t.warn, 3.0),
                ("error", t.error, 3.0),
                ("progress", t.progress, 3.0),
            ];
            let bgs = [
                ("terminal", Color::Reset),
                ("header_bg", t.header_bg),
                ("selected_bg", t.selected_bg),
            ];
            for (fg_name, fg, min) in fgs {
                for (bg_name, bg) in bgs {
                    let ratio = contrast(rgb(fg, terminal), rgb(bg, terminal));
                    if ratio < min {
                        failures.push(format!(
                            "{name}: {fg_name} on {bg_name} is {ratio:.2}:1 (need {min}:1)"
                        ));
                    }
                }
            }
            // Rules are drawn on the terminal's own background only.
            let ratio = contrast(rgb(t.border, terminal), terminal);
            if ratio < 3.0 {
                failures.push(format!("{name}: border is {ratio:.2}:1 (need 3:1)"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn contrast_is_computed_as_wcag_says() {
        let ratio = contrast((0, 0, 0), (255, 255, 255));
        assert!((ratio - 21.0).abs() < 1e-9, "{ratio}");
        assert!((contrast((119, 119, 119), (255, 255, 255)) - 4.48).abs() < 0.01);
        assert_eq!(indexed(196), (255, 0, 0));
        assert_eq!(indexed(244), (128, 128, 128));
    }

    #[test]
    fn built_ins_load_and_override_the_default() {
        let dark = Theme::load("default", false).unwrap();
        let light = Theme::load("light", false).unwrap();
        assert_eq!(light.text, Color::Black);
        assert_ne!(dark.text, light.text);
        Theme::load("high-contrast", false).unwrap();
    }

    #[test]
    fn a_partial_file_keeps_the_rest_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.yaml");
        std::fs::write(&p, "# only the accent\naccent: \"#ff8800\"\n").unwrap();
        let t = Theme::load(p.to_str().unwrap(), false).unwrap();
        assert_eq!(t.accent, Color::Rgb(0xff, 0x88, 0x00));
        assert_eq!(t.ok, Theme::builtin(false).ok);
        std::fs::write(&p, "accent: blue\nsparkle: red\n").unwrap();
        let e = Theme::load(p.to_str().unwrap(), false).unwrap_err();
        assert!(e.contains("line 2: unknown key sparkle"), "{e}");
        assert!(Theme::load("no-such-theme", false).is_err());
    }

    #[test]
    fn mono_has_no_colours() {
        let t = Theme::builtin(true);
        assert_eq!(t.ok().fg, None);
        assert_eq!(t.selected().bg, None);
    }
}
