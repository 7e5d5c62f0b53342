//! The console's BMC part: the Power column and detail line (from the
//! model's fold of BMC events), and the power and reinstall keys, which
//! ask first and name how many machines they touch.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pxedeck::bmc::{PowerAction, PowerState};
use pxedeck::event::{Command, Event, EventKind, KnownMachine};
use pxedeck::model::Model;
use pxedeck::tui::Origin;
use pxedeck::tui::app::{Action, App};
use pxedeck::tui::theme::Theme;

#[path = "console/screen.rs"]
mod screen;
use screen::screen;

const T0: u64 = 1_700_000_000_000;

fn known(hostname: &str, mac: &str) -> KnownMachine {
    KnownMachine {
        hostname: hostname.into(),
        group: "rack".into(),
        macs: vec![mac.parse().unwrap()],
        ip: None,
        profile: Some("p".into()),
        install: false,
    }
}

fn app() -> App {
    let mut model = Model::default();
    let events = [
        EventKind::InventoryReloaded {
            machines: vec![
                known("node-1", "52:54:00:bb:00:01"),
                known("node-2", "52:54:00:bb:00:02"),
                known("node-3", "52:54:00:bb:00:03"),
            ],
            profiles: vec!["p".into()],
            groups: vec!["rack".into()],
            group_info: vec![],
        },
        EventKind::BmcPower {
            hostname: "node-1".into(),
            power: Some(PowerState::On),
            error: None,
        },
        EventKind::BmcPower {
            hostname: "node-2".into(),
            power: None,
            error: Some("authentication refused: wrong password".into()),
        },
        EventKind::BmcAction {
            hostname: "node-1".into(),
            action: "reinstall".into(),
            ok: true,
            message: "done".into(),
        },
    ];
    for (i, kind) in events.into_iter().enumerate() {
        model.apply(&Event {
            at: T0 + i as u64,
            kind,
        });
    }
    let mut app = App::new(model, Theme::builtin(false), Origin::Embedded);
    app.now = T0 + 20_000;
    app
}

fn press(app: &mut App, keys: &[KeyCode]) -> Vec<Action> {
    keys.iter()
        .flat_map(|k| app.on_key(KeyEvent::new(*k, KeyModifiers::NONE)))
        .collect()
}

fn row_of<'a>(screen: &'a str, hostname: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(hostname))
        .unwrap_or_else(|| panic!("no row for {hostname}:\n{screen}"))
}

#[test]
fn the_power_column_shows_state_and_errors_where_wide_enough() {
    let a = app();
    let wide = screen(&a, 160, 30);
    assert!(wide.contains("Power"), "{wide}");
    assert!(row_of(&wide, "node-1").contains(" on "), "{wide}");
    assert!(row_of(&wide, "node-2").contains("error"), "{wide}");
    // node-3 has no BMC.
    assert!(row_of(&wide, "node-3").contains(" - "), "{wide}");
    let narrow = screen(&a, 80, 24);
    assert!(!narrow.contains("Power"), "{narrow}");
}

#[test]
fn the_detail_says_power_and_the_last_action() {
    let mut a = app();
    press(&mut a, &[KeyCode::Enter]);
    let s = screen(&a, 160, 30);
    assert!(
        s.contains("power on · last BMC action reinstall: done"),
        "{s}"
    );
    press(&mut a, &[KeyCode::Esc, KeyCode::Down, KeyCode::Enter]);
    let s = screen(&a, 160, 30);
    assert!(
        s.contains("power ? (BMC authentication refused: wrong password)"),
        "{s}"
    );
}

#[test]
fn a_power_key_asks_first_and_no_means_nothing_is_sent() {
    let mut a = app();
    assert!(press(&mut a, &[KeyCode::Char('C')]).is_empty());
    let s = screen(&a, 120, 30);
    assert!(s.contains("power cycle: 1 machine(s) (node-1)? y/n"), "{s}");
    assert!(press(&mut a, &[KeyCode::Char('n')]).is_empty());
    assert!(a.confirmation().is_none());
    let sent = press(&mut a, &[KeyCode::Char('X'), KeyCode::Char('y')]);
    assert_eq!(
        sent,
        vec![Action::Send(Command::Power {
            hostnames: vec!["node-1".into()],
            action: PowerAction::Off,
        })]
    );
}

#[test]
fn reinstall_of_the_marked_set_names_the_count() {
    let mut a = app();
    // Mark all three (known machines can be marked for bulk BMC work).
    press(
        &mut a,
        &[KeyCode::Char(' '), KeyCode::Char(' '), KeyCode::Char(' ')],
    );
    assert_eq!(a.marked.len(), 3);
    assert!(press(&mut a, &[KeyCode::Char('I')]).is_empty());
    let question = a.confirmation().unwrap().question.clone();
    assert!(question.starts_with("reinstall"), "{question}");
    assert!(
        question.contains(": 3 machine(s) (node-1, node-2, …)? y/n"),
        "{question}"
    );
    let sent = press(&mut a, &[KeyCode::Char('y')]);
    assert_eq!(
        sent,
        vec![Action::Send(Command::Reinstall {
            hostnames: vec!["node-1".into(), "node-2".into(), "node-3".into()],
        })]
    );
    assert!(a.marked.is_empty(), "marks are spent");
    // The help lists the keys.
    press(&mut a, &[KeyCode::Char('?')]);
    let help = screen(&a, 160, 60);
    assert!(
        help.contains("O S X C B I     BMC (asks): on, soft off, off, cycle, PXE once, reinstall"),
        "{help}"
    );
}
