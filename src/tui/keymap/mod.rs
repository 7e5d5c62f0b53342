//! Key bindings as data: one table of {layer, key, intent} rows that
//! `App::on_key` resolves keys through and that the help overlay and the
//! key footer are generated from, so none of the three can drift.
//!
//! Keys have names ("a", "G", "Enter", "PageDown", "Ctrl-c") that parse
//! and print, so a keymap can later be read from a file; the default one is
//! itself parsed from names.

mod key;

use crossterm::event::KeyEvent;

pub use key::{Key, KeyNameError, keys_label};

use super::app::Tab;
use crate::bmc::PowerAction;

/// Where keys are being read: the view underneath, or what is open over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Consulted before every other layer (Ctrl-c quits from anywhere).
    Global,
    /// A tab's table.
    Normal,
    /// A machine's detail; keys it does not bind work as in `Normal`.
    Detail,
    /// The filter or jump line being typed.
    Prompt,
    /// The adopt dialog.
    Adopt,
    /// The help overlay.
    Help,
    /// "quit anyway? y/n".
    Confirm,
}

/// What an unbound key does in a layer.
enum Unbound {
    /// Ask this layer instead.
    Layer(Layer),
    /// Type it into the text being edited.
    Text,
    /// Do this, whatever the key.
    Intent(Intent),
    Ignore,
}

impl Layer {
    pub const ALL: [Layer; 7] = [
        Layer::Global,
        Layer::Normal,
        Layer::Detail,
        Layer::Prompt,
        Layer::Adopt,
        Layer::Help,
        Layer::Confirm,
    ];

    fn unbound(self) -> Unbound {
        match self {
            Layer::Detail => Unbound::Layer(Layer::Normal),
            Layer::Prompt | Layer::Adopt => Unbound::Text,
            // Any key closes the help; anything but yes keeps running.
            Layer::Help | Layer::Confirm => Unbound::Intent(Intent::Cancel),
            Layer::Global | Layer::Normal => Unbound::Ignore,
        }
    }
}

/// Where a movement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
}

/// What the operator means by a key. The app turns an intent into state
/// changes and [`super::app::Action`]s; the layer decides which apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    Quit,
    Help,
    ShowTab(Tab),
    NextTab,
    PrevTab,
    /// The selection in a table; the text in the detail.
    Move(Step),
    OpenDetail,
    Adopt,
    /// Adopt every machine a rule proposes, asked first.
    AdoptProposed,
    ToggleMark,
    ToggleInstall,
    /// Change a known machine: profile, IP, install, group.
    Edit,
    /// Remove the last adoption's files while unchanged; asked first.
    UndoAdoption,
    /// The detail: the arrows scroll the other pane.
    SwitchPane,
    ReleaseLease,
    /// Drop an unknown machine's row.
    Forget,
    Filter,
    Jump,
    CycleSort,
    ToggleFollow,
    Reload,
    ClearFilter,
    /// Close the detail.
    Back,
    /// Close what is open (prompt, dialog, help, question).
    Cancel,
    /// Apply the prompt, adopt from the dialog.
    Submit,
    NextField,
    PrevField,
    ChoosePrev,
    ChooseNext,
    /// Yes to "quit anyway?" (and to "power … these machines?").
    ConfirmQuit,
    /// A BMC action on the selected (or marked) machines, asked first.
    Power(PowerAction),
    /// install: true, boot once from network, power cycle; asked first.
    Reinstall,
}

impl Intent {
    /// The help overlay's words; intents that share them share a line.
    pub fn help(self) -> &'static str {
        use Intent as I;
        match self {
            I::ShowTab(_) | I::NextTab | I::PrevTab => {
                "switch view: machines, leases, transfers, inventory, log"
            }
            I::Move(Step::Up | Step::Down) => "move the selection",
            I::Move(_) => "page, first, last",
            I::OpenDetail => "machine detail: timeline and what it is served",
            // One line for both: the help fits 80x24.
            I::Adopt | I::AdoptProposed => {
                "adopt selected/marked unknown machines, or all proposed"
            }
            I::ToggleMark => "mark a machine for bulk adopt, power or reinstall",
            I::ToggleInstall => "toggle install (reimage) of the selection; asks first",
            I::Edit => "edit a machine: profile, fixed IP, install, group",
            I::UndoAdoption => "undo the last adoption while its file is unchanged; asks",
            I::SwitchPane => "detail: arrows scroll the timeline or what it is served",
            I::ReleaseLease => "release the selected lease (leases view); asks first",
            I::Forget => "forget the selected unknown machine; asks first",
            I::Filter => "filter the current view",
            I::Jump => "jump to a machine by MAC, hostname or IP",
            I::CycleSort => "cycle the machine sort order",
            I::ToggleFollow => "log: follow new lines",
            I::Reload => "reload the inventory from disk",
            I::ClearFilter | I::Back | I::Cancel => "close, clear the filter, back",
            I::Help => "this help",
            I::Quit => "quit (asks only if a write is pending)",
            I::Submit => "apply the filter or jump; adopt from the dialog",
            I::NextField | I::PrevField => "adopt, edit dialog: next or previous field",
            I::ChoosePrev | I::ChooseNext => "adopt, edit dialog: choose profile, group, install",
            I::ConfirmQuit => "yes to: reimage, release, forget, undo, power, quit",
            // One line for the BMC keys: the help fits 80x24 with one more.
            I::Power(_) | I::Reinstall => {
                "BMC (asks): on, soft off, off, cycle, PXE once, reinstall"
            }
        }
    }
}

/// One row of the keymap: in `layer`, `key` means `intent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub layer: Layer,
    pub key: Key,
    pub intent: Intent,
    /// Shown in the help and the footer; an alias (`Home` beside `g`)
    /// works without taking room there.
    pub shown: bool,
}

/// A footer entry: the keys of these intents, and one word for them.
struct Hint {
    intents: &'static [Intent],
    word: &'static str,
}

const fn hint(intents: &'static [Intent], word: &'static str) -> Hint {
    Hint { intents, word }
}

/// What the footer offers in each view, in order. The keys shown are
/// whatever the keymap binds to the intents.
const DETAIL_HINTS: &[Hint] = &[
    hint(&[Intent::Back], "back"),
    hint(&[Intent::Adopt], "adopt"),
    hint(&[Intent::ToggleInstall], "install"),
    hint(&[Intent::Edit], "edit"),
    hint(
        &[Intent::Move(Step::Up), Intent::Move(Step::Down)],
        "scroll",
    ),
    hint(&[Intent::SwitchPane], "pane"),
    hint(&[Intent::Help], "help"),
];
const MACHINES_HINTS: &[Hint] = &[
    hint(&[Intent::Adopt], "adopt"),
    hint(&[Intent::ToggleMark], "mark"),
    hint(&[Intent::OpenDetail], "detail"),
    hint(&[Intent::ToggleInstall], "install"),
    hint(&[Intent::Edit], "edit"),
    hint(&[Intent::Filter], "filter"),
    hint(&[Intent::CycleSort], "sort"),
    hint(&[Intent::Help], "help"),
    hint(&[Intent::Quit], "quit"),
];
const LEASES_HINTS: &[Hint] = &[
    hint(&[Intent::ReleaseLease], "release"),
    hint(&[Intent::Filter], "filter"),
    hint(&[Intent::Help], "help"),
    hint(&[Intent::Quit], "quit"),
];
const LOG_HINTS: &[Hint] = &[
    hint(&[Intent::ToggleFollow], "follow"),
    hint(&[Intent::Filter], "filter"),
    hint(&[Intent::Help], "help"),
    hint(&[Intent::Quit], "quit"),
];
const OTHER_HINTS: &[Hint] = &[
    hint(
        &[
            Intent::ShowTab(Tab::Machines),
            Intent::ShowTab(Tab::Leases),
            Intent::ShowTab(Tab::Transfers),
            Intent::ShowTab(Tab::Inventory),
            Intent::ShowTab(Tab::Log),
        ],
        "views",
    ),
    hint(&[Intent::Reload], "reload"),
    hint(&[Intent::Help], "help"),
    hint(&[Intent::Quit], "quit"),
];

/// The layers the help overlay describes, in the order it lists them.
const HELP_LAYERS: [Layer; 6] = [
    Layer::Normal,
    Layer::Detail,
    Layer::Global,
    Layer::Prompt,
    Layer::Adopt,
    Layer::Confirm,
];

/// The default keymap, by name: (layer, key, intent, shown). Row order
/// is the help's order.
const DEFAULT: &[(Layer, &str, Intent, bool)] = {
    use Intent as I;
    use Layer::*;
    use Step::*;
    &[
        (Normal, "1", I::ShowTab(Tab::Machines), true),
        (Normal, "2", I::ShowTab(Tab::Leases), true),
        (Normal, "3", I::ShowTab(Tab::Transfers), true),
        (Normal, "4", I::ShowTab(Tab::Inventory), true),
        (Normal, "5", I::ShowTab(Tab::Log), true),
        (Normal, "Tab", I::NextTab, true),
        (Normal, "BackTab", I::PrevTab, false),
        (Normal, "Up", I::Move(Up), true),
        (Normal, "Down", I::Move(Down), true),
        (Normal, "j", I::Move(Down), true),
        (Normal, "k", I::Move(Up), true),
        (Normal, "PageUp", I::Move(PageUp), true),
        (Normal, "PageDown", I::Move(PageDown), true),
        (Normal, "g", I::Move(First), true),
        (Normal, "G", I::Move(Last), true),
        (Normal, "Home", I::Move(First), false),
        (Normal, "End", I::Move(Last), false),
        (Normal, "Enter", I::OpenDetail, true),
        (Normal, "a", I::Adopt, true),
        (Normal, "P", I::AdoptProposed, true),
        (Normal, "Space", I::ToggleMark, true),
        (Normal, "i", I::ToggleInstall, true),
        (Normal, "e", I::Edit, true),
        (Normal, "u", I::UndoAdoption, true),
        (Normal, "r", I::ReleaseLease, true),
        (Normal, "Delete", I::Forget, true),
        (Normal, "/", I::Filter, true),
        (Normal, ":", I::Jump, true),
        (Normal, "o", I::CycleSort, true),
        (Normal, "f", I::ToggleFollow, true),
        (Normal, "R", I::Reload, true),
        (Normal, "O", I::Power(PowerAction::On), true),
        (Normal, "S", I::Power(PowerAction::SoftOff), true),
        (Normal, "X", I::Power(PowerAction::Off), true),
        (Normal, "C", I::Power(PowerAction::Cycle), true),
        (Normal, "B", I::Power(PowerAction::PxeOnce), true),
        (Normal, "I", I::Reinstall, true),
        (Normal, "Esc", I::ClearFilter, true),
        (Normal, "?", I::Help, true),
        (Normal, "q", I::Quit, true),
        (Detail, "Esc", I::Back, true),
        (Detail, "q", I::Back, false),
        (Detail, "Left", I::Back, false),
        (Detail, "h", I::Back, false),
        (Detail, "Tab", I::SwitchPane, true),
        (Help, "Up", I::Move(Up), false),
        (Help, "Down", I::Move(Down), false),
        (Help, "k", I::Move(Up), false),
        (Help, "j", I::Move(Down), false),
        (Help, "PageUp", I::Move(PageUp), false),
        (Help, "PageDown", I::Move(PageDown), false),
        (Help, "g", I::Move(First), false),
        (Help, "G", I::Move(Last), false),
        (Global, "Ctrl-c", I::Quit, false),
        (Prompt, "Enter", I::Submit, true),
        (Prompt, "Esc", I::Cancel, true),
        (Adopt, "Enter", I::Submit, true),
        (Adopt, "Esc", I::Cancel, true),
        (Adopt, "Tab", I::NextField, true),
        (Adopt, "Up", I::PrevField, true),
        (Adopt, "Down", I::NextField, true),
        (Adopt, "BackTab", I::PrevField, false),
        (Adopt, "Left", I::ChoosePrev, true),
        (Adopt, "Right", I::ChooseNext, true),
        (Adopt, "Space", I::ChooseNext, true),
        (Confirm, "y", I::ConfirmQuit, true),
        (Confirm, "Y", I::ConfirmQuit, false),
    ]
};

/// What a key press resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Intent(Intent),
    /// Text for the prompt or dialog field being edited.
    Text,
    Nothing,
}

/// The bindings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        let bindings = DEFAULT
            .iter()
            .map(|&(layer, name, intent, shown)| Binding {
                layer,
                key: name.parse().expect("the default keymap's names parse"),
                intent,
                shown,
            })
            .collect();
        Keymap { bindings }
    }
}

impl Keymap {
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Binds `key` in `layer` to `intent`, replacing what it meant there.
    pub fn bind(&mut self, layer: Layer, key: Key, intent: Intent) {
        self.bindings
            .retain(|b| !(b.layer == layer && b.key == key));
        self.bindings.push(Binding {
            layer,
            key,
            intent,
            shown: true,
        });
    }

    /// Removes every binding of `intent` in `layer`.
    pub fn unbind(&mut self, layer: Layer, intent: Intent) {
        self.bindings
            .retain(|b| !(b.layer == layer && b.intent == intent));
    }

    fn lookup(&self, layer: Layer, press: &KeyEvent) -> Option<Intent> {
        self.bindings
            .iter()
            .filter(|b| b.layer == layer && b.key.matches(press))
            .max_by_key(|b| b.key.specificity())
            .map(|b| b.intent)
    }

    /// What a key press means in `layer`: the global bindings first, then
    /// the layer's, then what the layer does with keys it does not bind.
    pub fn resolve(&self, layer: Layer, press: &KeyEvent) -> Resolved {
        if let Some(intent) = self.lookup(Layer::Global, press) {
            return Resolved::Intent(intent);
        }
        let mut layer = layer;
        loop {
            if let Some(intent) = self.lookup(layer, press) {
                return Resolved::Intent(intent);
            }
            match layer.unbound() {
                Unbound::Layer(next) => layer = next,
                Unbound::Text => return Resolved::Text,
                Unbound::Intent(intent) => return Resolved::Intent(intent),
                Unbound::Ignore => return Resolved::Nothing,
            }
        }
    }

    /// The shown keys bound to `intent` in `layer` or the layers it falls
    /// back to, first bound first.
    fn keys_for(&self, layer: Layer, intent: Intent) -> Vec<Key> {
        let mut layer = layer;
        loop {
            let keys: Vec<Key> = self
                .bindings
                .iter()
                .filter(|b| b.layer == layer && b.intent == intent && b.shown)
                .map(|b| b.key)
                .collect();
            if !keys.is_empty() {
                return keys;
            }
            match layer.unbound() {
                Unbound::Layer(next) => layer = next,
                _ => return keys,
            }
        }
    }

    /// The help overlay: one (keys, what they do) line per description, in
    /// the order the keymap first binds it.
    pub fn help_lines(&self) -> Vec<(String, &'static str)> {
        let mut groups: Vec<(&'static str, Vec<Key>)> = Vec::new();
        for layer in HELP_LAYERS {
            for b in self.bindings.iter().filter(|b| b.layer == layer) {
                let text = b.intent.help();
                let i = match groups.iter().position(|(t, _)| *t == text) {
                    Some(i) => i,
                    None => {
                        groups.push((text, Vec::new()));
                        groups.len() - 1
                    }
                };
                if b.shown && !groups[i].1.contains(&b.key) {
                    groups[i].1.push(b.key);
                }
            }
        }
        groups
            .into_iter()
            .map(|(text, keys)| (keys_label(&keys), text))
            .collect()
    }

    /// The footer for a view: (keys, word) pairs. An intent left without
    /// a key is left out.
    pub fn footer(&self, detail_open: bool, tab: Tab) -> Vec<(String, &'static str)> {
        let (layer, hints) = match (detail_open, tab) {
            (true, _) => (Layer::Detail, DETAIL_HINTS),
            (false, Tab::Machines) => (Layer::Normal, MACHINES_HINTS),
            (false, Tab::Leases) => (Layer::Normal, LEASES_HINTS),
            (false, Tab::Log) => (Layer::Normal, LOG_HINTS),
            (false, Tab::Transfers | Tab::Inventory) => (Layer::Normal, OTHER_HINTS),
        };
        hints
            .iter()
            .filter_map(|h| {
                // One key per intent: the footer is one line.
                let keys: Vec<Key> = h
                    .intents
                    .iter()
                    .filter_map(|i| self.keys_for(layer, *i).first().copied())
                    .collect();
                (!keys.is_empty()).then(|| (keys_label(&keys), h.word))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn key(name: &str) -> Key {
        name.parse().unwrap()
    }

    #[test]
    fn modifiers_are_required_only_by_bindings_that_name_them() {
        let press = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(key("G").matches(&press(KeyCode::Char('G'), KeyModifiers::SHIFT)));
        assert!(key("Ctrl-c").matches(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!key("Ctrl-c").matches(&press(KeyCode::Char('c'), KeyModifiers::NONE)));
        let map = Keymap::default();
        assert_eq!(
            map.resolve(
                Layer::Prompt,
                &press(KeyCode::Char('c'), KeyModifiers::CONTROL)
            ),
            Resolved::Intent(Intent::Quit),
            "Ctrl-c quits even while typing"
        );
        assert_eq!(
            map.resolve(
                Layer::Prompt,
                &press(KeyCode::Char('c'), KeyModifiers::NONE)
            ),
            Resolved::Text
        );
    }

    #[test]
    fn layers_fall_back_as_documented() {
        let map = Keymap::default();
        let press = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(
            map.resolve(Layer::Detail, &press('q')),
            Resolved::Intent(Intent::Back)
        );
        assert_eq!(
            map.resolve(Layer::Detail, &press('a')),
            Resolved::Intent(Intent::Adopt),
            "the detail acts on its machine with the normal keys"
        );
        assert_eq!(
            map.resolve(Layer::Help, &press('x')),
            Resolved::Intent(Intent::Cancel)
        );
        assert_eq!(
            map.resolve(Layer::Confirm, &press('y')),
            Resolved::Intent(Intent::ConfirmQuit)
        );
        assert_eq!(map.resolve(Layer::Normal, &press('x')), Resolved::Nothing);
    }

    /// Every intent `on_key` can reach (a binding, or what a layer does
    /// with keys it does not bind) is described in the help, and every
    /// shown key appears on its line.
    #[test]
    fn every_reachable_intent_is_in_the_help() {
        let map = Keymap::default();
        let help = map.help_lines();
        let line_of = |intent: Intent| {
            help.iter()
                .find(|(_, text)| *text == intent.help())
                .unwrap_or_else(|| panic!("{intent:?} is reachable but not in the help"))
        };
        for b in map.bindings() {
            let (label, _) = line_of(b.intent);
            if b.shown {
                let shown = b.key.label();
                assert!(
                    label.contains(&shown) || in_a_range(label, &shown),
                    "{:?}: {shown:?} is not on {label:?}",
                    b.intent
                );
            }
        }
        for layer in Layer::ALL {
            if let Unbound::Intent(intent) = layer.unbound() {
                line_of(intent);
            }
        }
        let labels: Vec<&str> = help.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            &labels[..4],
            ["1-5  tab", "↑↓  j k", "PgUp PgDn  g G", "enter"]
        );
        assert!(labels.contains(&"esc"), "{labels:?}");
        assert!(labels.contains(&"tab  ↑↓"), "{labels:?}");
        assert!(labels.contains(&"←→  space"), "{labels:?}");
    }

    /// Whether a digit is inside a `1-5` range of a label.
    fn in_a_range(label: &str, digit: &str) -> bool {
        let Ok(d) = digit.parse::<u32>() else {
            return false;
        };
        label.split_whitespace().any(|part| {
            part.split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                .is_some_and(|(a, b)| (a..=b).contains(&d))
        })
    }

    #[test]
    fn the_footer_is_generated_from_the_keymap() {
        let mut map = Keymap::default();
        let words = |f: Vec<(String, &str)>| {
            f.into_iter()
                .map(|(k, w)| format!("{k} {w}"))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        assert_eq!(
            words(map.footer(false, Tab::Machines)),
            "a adopt · space mark · enter detail · i install · e edit · / filter · o sort · ? help · q quit"
        );
        assert_eq!(
            words(map.footer(true, Tab::Machines)),
            "esc back · a adopt · i install · e edit · ↑↓ scroll · tab pane · ? help"
        );
        assert_eq!(
            words(map.footer(false, Tab::Inventory)),
            "1-5 views · R reload · ? help · q quit"
        );
        // Remapped keys show up where they are offered; unbound ones go.
        map.unbind(Layer::Normal, Intent::Adopt);
        map.bind(Layer::Normal, key("A"), Intent::Adopt);
        map.unbind(Layer::Normal, Intent::CycleSort);
        let footer = words(map.footer(false, Tab::Machines));
        assert!(footer.starts_with("A adopt · "), "{footer}");
        assert!(!footer.contains("sort"), "{footer}");
        assert!(words(map.footer(true, Tab::Machines)).contains("A adopt"));
        let press = KeyEvent::new(KeyCode::Char('A'), KeyModifiers::SHIFT);
        assert_eq!(
            map.resolve(Layer::Normal, &press),
            Resolved::Intent(Intent::Adopt)
        );
    }
}
