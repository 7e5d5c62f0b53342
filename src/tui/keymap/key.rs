//! Key names: a key as a keymap names it ("a", "G", "Enter", "Ctrl-c"),
//! parsed and printed back, matched against a key press, and labelled the
//! way the help and the footer show it ("↑↓  j k", "1-5").

use std::fmt;
use std::str::FromStr;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One key, as a binding names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

/// Named keys: (name a keymap uses, code, label the help and footer show).
const NAMED: &[(&str, KeyCode, &str)] = &[
    ("Enter", KeyCode::Enter, "enter"),
    ("Esc", KeyCode::Esc, "esc"),
    ("Tab", KeyCode::Tab, "tab"),
    ("BackTab", KeyCode::BackTab, "shift-tab"),
    ("Space", KeyCode::Char(' '), "space"),
    ("Backspace", KeyCode::Backspace, "backspace"),
    ("Delete", KeyCode::Delete, "del"),
    ("Up", KeyCode::Up, "↑"),
    ("Down", KeyCode::Down, "↓"),
    ("Left", KeyCode::Left, "←"),
    ("Right", KeyCode::Right, "→"),
    ("PageUp", KeyCode::PageUp, "PgUp"),
    ("PageDown", KeyCode::PageDown, "PgDn"),
    ("Home", KeyCode::Home, "home"),
    ("End", KeyCode::End, "end"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key {0:?} (a character, Ctrl-/Alt- prefixes, or one of Enter, Esc, Tab, Space, Up, PageDown, F1…)"
)]
pub struct KeyNameError(String);

impl FromStr for Key {
    type Err = KeyNameError;

    fn from_str(name: &str) -> Result<Key, KeyNameError> {
        let bad = || KeyNameError(name.to_string());
        let mut key = Key {
            code: KeyCode::Null,
            ctrl: false,
            alt: false,
        };
        let mut rest = name;
        // "Ctrl--" is Ctrl with the minus key: a prefix needs something after it.
        loop {
            if let Some(r) = strip_prefix_ci(rest, "ctrl-").filter(|r| !r.is_empty()) {
                (key.ctrl, rest) = (true, r);
            } else if let Some(r) = strip_prefix_ci(rest, "alt-").filter(|r| !r.is_empty()) {
                (key.alt, rest) = (true, r);
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        key.code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => NAMED
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(rest))
                .map(|(_, code, _)| *code)
                .or_else(|| {
                    let n = strip_prefix_ci(rest, "f")?.parse::<u8>().ok()?;
                    (1..=12).contains(&n).then_some(KeyCode::F(n))
                })
                .ok_or_else(bad)?,
        };
        Ok(key)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

impl fmt::Display for Key {
    /// The name [`Key::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("Ctrl-")?;
        }
        if self.alt {
            f.write_str("Alt-")?;
        }
        match NAMED.iter().find(|(_, code, _)| *code == self.code) {
            Some((name, _, _)) => f.write_str(name),
            None => match self.code {
                KeyCode::Char(c) => write!(f, "{c}"),
                KeyCode::F(n) => write!(f, "F{n}"),
                other => write!(f, "{other:?}"),
            },
        }
    }
}

impl Key {
    /// How the help and the footer show the key: `↑`, `PgDn`, `enter`.
    pub fn label(&self) -> String {
        let plain = Key {
            ctrl: false,
            alt: false,
            ..*self
        };
        let base = match NAMED.iter().find(|(_, code, _)| *code == self.code) {
            Some((_, _, label)) => (*label).to_string(),
            None => plain.to_string(),
        };
        let ctrl = if self.ctrl { "ctrl-" } else { "" };
        let alt = if self.alt { "alt-" } else { "" };
        format!("{ctrl}{alt}{base}")
    }

    /// Whether a key press is this key. A plain binding answers whatever
    /// else is held, as the console always has (Shift is part of `G` or
    /// `?` already); a Ctrl or Alt binding needs its modifier.
    pub(super) fn matches(&self, press: &KeyEvent) -> bool {
        press.code == self.code
            && (!self.ctrl || press.modifiers.contains(KeyModifiers::CONTROL))
            && (!self.alt || press.modifiers.contains(KeyModifiers::ALT))
    }

    pub(super) fn specificity(&self) -> u8 {
        u8::from(self.ctrl) + u8::from(self.alt)
    }
}

/// How a label groups keys: runs of one kind read as one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelKind {
    Arrow,
    Digit,
    Char,
    Word,
}

fn label_kind(label: &str) -> LabelKind {
    let mut chars = label.chars();
    match (chars.next(), chars.next()) {
        (Some('↑' | '↓' | '←' | '→'), None) => LabelKind::Arrow,
        (Some(c), None) if c.is_ascii_digit() => LabelKind::Digit,
        (Some(_), None) => LabelKind::Char,
        _ => LabelKind::Word,
    }
}

/// Keys as the help and footer print them: arrows run together (`↑↓`),
/// three or more consecutive digits become a range (`1-5`), other keys of
/// a kind are spaced (`j k`), and kinds are set two spaces apart
/// (`PgUp PgDn  g G`).
pub fn keys_label(keys: &[Key]) -> String {
    let labels: Vec<String> = keys.iter().map(Key::label).collect();
    let mut runs: Vec<(LabelKind, Vec<&str>)> = Vec::new();
    for label in &labels {
        let kind = label_kind(label);
        match runs.last_mut() {
            Some((k, run)) if *k == kind => run.push(label),
            _ => runs.push((kind, vec![label])),
        }
    }
    runs.iter()
        .map(|(kind, run)| match kind {
            LabelKind::Arrow => run.concat(),
            LabelKind::Digit => digit_ranges(run),
            LabelKind::Char | LabelKind::Word => run.join(" "),
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn digit_ranges(run: &[&str]) -> String {
    let digits: Vec<u32> = run.iter().filter_map(|d| d.parse().ok()).collect();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < digits.len() {
        let mut j = i;
        while j + 1 < digits.len() && digits[j + 1] == digits[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", digits[i], digits[j]));
        } else {
            parts.extend(digits[i..=j].iter().map(u32::to_string));
        }
        i = j + 1;
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        name.parse().unwrap()
    }

    #[test]
    fn key_names_parse_and_print_back() {
        for name in [
            "a",
            "G",
            "?",
            "/",
            "1",
            "Enter",
            "Esc",
            "Tab",
            "BackTab",
            "Space",
            "Up",
            "PageDown",
            "Home",
            "F5",
            "Ctrl-c",
            "Alt-x",
            "Ctrl-Alt-Delete",
            "-",
            "Ctrl--",
        ] {
            assert_eq!(key(name).to_string(), name, "{name}");
        }
        assert_eq!(key("enter"), key("Enter"), "named keys ignore case");
        assert_eq!(key("ctrl-c"), key("Ctrl-c"));
        assert_ne!(key("g"), key("G"), "characters keep their case");
        assert_eq!(key(" ").code, KeyCode::Char(' '));
        for bad in ["", "Ctrl-", "Enterr", "F13", "ab"] {
            assert!(bad.parse::<Key>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_group_keys_by_kind() {
        let keys = |names: &[&str]| names.iter().map(|n| key(n)).collect::<Vec<_>>();
        assert_eq!(keys_label(&keys(&["1", "2", "3", "Tab"])), "1-3  tab");
        assert_eq!(keys_label(&keys(&["1", "2", "4"])), "1 2 4");
        assert_eq!(keys_label(&keys(&["Left", "Right", "Space"])), "←→  space");
        assert_eq!(keys_label(&keys(&["Ctrl-c"])), "ctrl-c");
    }
}
