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

#[cfg(test)]
mod tests {
    use super::*;

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
