//! The console without a terminal: every view rendered to ratatui's
//! `TestBackend` at 80x24 and 160x48 (insta snapshots), and key handling
//! through the app's update function.

#[path = "console/rack.rs"]
mod rack;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pxedeck::boot::arch::Firmware;
use pxedeck::boot::{BootDecision, ScriptKind};
use pxedeck::event::{Command, Event, EventKind, KnownMachine};
use pxedeck::inventory::Problem;
use pxedeck::model::Model;
use pxedeck::tui::Origin;
use pxedeck::tui::app::{Action, App, Tab};
use pxedeck::tui::draw::draw;
use pxedeck::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use rack::*;

// ---- snapshots -------------------------------------------------------

#[test]
fn every_view_at_80x24_and_160x48() {
    for (tab, name) in [
        (Tab::Machines, "machines"),
        (Tab::Leases, "leases"),
        (Tab::Transfers, "transfers"),
        (Tab::Inventory, "inventory"),
        (Tab::Log, "log"),
    ] {
        let mut a = app();
        a.tab = tab;
        insta::assert_snapshot!(format!("{name}_80x24"), screen(&a, 80, 24));
        insta::assert_snapshot!(format!("{name}_160x48"), screen(&a, 160, 48));
        insta::assert_snapshot!(format!("{name}_60x20"), screen(&a, 60, 20));
        insta::assert_snapshot!(format!("{name}_200x60"), screen(&a, 200, 60));
    }
}

/// The rack with prod-01 stuck after its script, dev-02 failed.
fn stuck_app() -> App {
    let mut a = app();
    a.apply(&Event {
        at: T0 + 15_000,
        kind: EventKind::ScriptServed {
            client: "10.99.0.31".parse().unwrap(),
            mac: Some(mac("52:54:00:e0:00:01")),
            hostname: Some("prod-01".into()),
            kind: ScriptKind::Install,
            profile: Some("talos-worker".into()),
            chain: pxedeck::boot::decide::Chain::Ipxe,
        },
    });
    a.now = T0 + 15_000 + 3 * 60_000 + 10_000;
    a
}

#[test]
fn the_overview_puts_failed_and_stuck_machines_first_and_says_where() {
    let a = stuck_app();
    let rows: Vec<_> = a
        .visible_machines()
        .iter()
        .map(|m| m.hostname.clone().unwrap_or_default())
        .collect();
    assert_eq!(&rows[..2], ["dev-02", "prod-01"], "failed, then stuck");
    let s = screen(&a, 80, 24);
    assert!(s.contains("│ 1 failed · 1 stuck · 2 held · 0/min"), "{s}");
    assert!(
        s.contains("prod-01 stuck: no kernel request 3m after the script"),
        "the alert says where: {s}"
    );
    insta::assert_snapshot!("overview_stuck_80x24", s);
    let wide = screen(&a, 200, 60);
    for column in ["Profile", "Vendor", "Install", "Stage", "Last step / error"] {
        assert!(wide.contains(column), "{column} at 200x60: {wide}");
    }
    assert!(
        wide.contains("no kernel request 3m after the script"),
        "{wide}"
    );
    insta::assert_snapshot!("overview_stuck_200x60", wide);
    let narrow = screen(&a, 60, 20);
    for needle in ["52:54:00:e0:00:01", "prod-01", "stuck", "failed"] {
        assert!(narrow.contains(needle), "{needle} at 60x20: {narrow}");
    }
    assert!(
        !narrow.contains("inst "),
        "no state cut to an ambiguous word"
    );
    insta::assert_snapshot!("overview_stuck_60x20", narrow);
}

#[test]
fn below_the_minimum_size_a_plain_notice_says_what_is_needed() {
    let a = app();
    let s = screen(&a, 50, 12);
    assert!(s.contains("terminal too small"), "{s}");
    assert!(s.contains("need 60x16"), "{s}");
    assert!(!screen(&a, 60, 16).contains("too small"));
}

#[test]
fn machine_detail() {
    let mut a = app();
    a.detail = Some(mac("52:54:00:d0:00:01"));
    a.detail_text = Some((
        mac("52:54:00:d0:00:01"),
        "decision: install profile ubuntu-2404\n\n── iPXE script ──\n#!ipxe\nkernel …\n".into(),
    ));
    insta::assert_snapshot!("detail_80x24", screen(&a, 80, 24));
    insta::assert_snapshot!("detail_160x48", screen(&a, 160, 48));
}

#[test]
fn adopt_dialog_empty_filled_and_invalid() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:99:00:01");
    press(&mut a, &[KeyCode::Char('a')]);
    // "Empty": nothing chosen yet beyond the suggestions.
    insta::assert_snapshot!("adopt_suggested_80x24", screen(&a, 80, 24));
    // Filled: another hostname, no fixed IP, install off.
    press(&mut a, &[KeyCode::Tab]);
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut a, "dev-10");
    press(&mut a, &[KeyCode::Tab, KeyCode::Tab]);
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut a, &[KeyCode::Tab, KeyCode::Right]);
    insta::assert_snapshot!("adopt_filled_80x24", screen(&a, 80, 24));
    // Invalid: a hostname that exists.
    press(&mut a, &[KeyCode::Up, KeyCode::Up, KeyCode::Up]);
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut a, "dev-02");
    let actions = press(&mut a, &[KeyCode::Enter]);
    assert!(actions.is_empty(), "an invalid adoption is not sent");
    insta::assert_snapshot!("adopt_invalid_80x24", screen(&a, 80, 24));
    insta::assert_snapshot!("adopt_invalid_160x48", screen(&a, 160, 48));
}

#[test]
fn help_overlay_and_alerts() {
    let mut a = app();
    press(&mut a, &[KeyCode::Char('?')]);
    insta::assert_snapshot!("help_80x24", screen(&a, 80, 24));
    press(&mut a, &[KeyCode::Char('x')]);
    assert!(!a.help_open(), "any key closes the help");

    let mut a = app();
    a.apply(&Event {
        at: T0 + 19_000,
        kind: EventKind::RogueDhcp {
            server: "10.99.0.254".parse().unwrap(),
            offered: Some("10.99.0.77".parse().unwrap()),
            mac: Some(mac("52:54:00:99:00:01")),
        },
    });
    a.apply(&Event {
        at: T0 + 19_500,
        kind: EventKind::InventoryError {
            problems: vec![Problem {
                file: "k8s-dev/dev-02.yaml".into(),
                line: Some(3),
                message: "malformed MAC \"52:54:00:d0:00\"".into(),
            }],
        },
    });
    let s = screen(&a, 80, 24);
    assert!(s.contains("rogue DHCP server 10.99.0.254"), "{s}");
    insta::assert_snapshot!("alerts_80x24", s);
    a.tab = Tab::Inventory;
    insta::assert_snapshot!("inventory_errors_80x24", screen(&a, 80, 24));
}

#[test]
fn monochrome_is_readable() {
    let mut a = app();
    a.theme = Theme::builtin(true);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| draw(f, &a)).unwrap();
    let buffer = terminal.backend().buffer();
    let colours = buffer
        .content()
        .iter()
        .filter(|c| c.fg != ratatui::style::Color::Reset || c.bg != ratatui::style::Color::Reset)
        .count();
    assert_eq!(colours, 0, "NO_COLOR means no colour at all");
    assert_eq!(
        screen(&a, 80, 24),
        screen(&app(), 80, 24),
        "same text either way"
    );
}

#[test]
fn the_header_says_how_many_unknown_machines_aged_out() {
    let mut model = Model::with_unknown_cap(16);
    for e in events() {
        model.apply(&e);
    }
    for n in 0..40u8 {
        model.apply(&Event {
            at: T0 + 30_000 + u64::from(n),
            kind: seen(
                &format!("02:00:00:00:01:{n:02x}"),
                Firmware::Bios,
                false,
                None,
                BootDecision::Hold,
            ),
        });
    }
    let dropped = model.unknown.dropped;
    assert!(dropped > 0);
    let a = App::new(model, Theme::builtin(false), Origin::Embedded);
    let header = screen(&a, 160, 48);
    assert!(
        header.contains(&format!("unknown ({dropped} dropped)")),
        "{header}"
    );
}

// ---- keys --------------------------------------------------------------

#[test]
fn adopting_one_machine_sends_what_was_chosen() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:99:00:01");
    press(&mut a, &[KeyCode::Char('a')]);
    let d = a.dialog().expect("dialog open");
    assert_eq!(
        d.hostname.value(),
        "dev-04",
        "next free name in the group's pattern"
    );
    assert_eq!(d.ip.value(), "10.99.0.100", "next free address suggested");
    assert_eq!(d.profile_name(), "ubuntu-2404");
    let actions = press(&mut a, &[KeyCode::Enter]);
    let [Action::Send(Command::Adopt { machines })] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(machines.len(), 1);
    let m = &machines[0];
    assert_eq!(
        (
            m.hostname.as_str(),
            m.group.as_str(),
            m.profile.as_str(),
            m.install
        ),
        ("dev-04", "k8s-dev", "ubuntu-2404", true)
    );
    assert_eq!(m.macs, vec![mac("52:54:00:99:00:01")]);
    assert_eq!(m.ip, Some("10.99.0.100".parse().unwrap()));
    assert!(a.dialog().is_none());
    assert_eq!(a.pending, 1);
}

#[test]
fn changing_the_group_changes_the_suggested_name_and_profile() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:99:00:01");
    press(
        &mut a,
        &[
            KeyCode::Char('a'),
            KeyCode::Tab,
            KeyCode::Tab,
            KeyCode::Right,
        ],
    );
    let d = a.dialog().unwrap();
    assert_eq!(d.group_name(), "k8s-prod");
    assert_eq!(d.hostname.value(), "prod-02");
    assert_eq!(d.profile_name(), "talos-worker");
}

#[test]
fn invalid_choices_are_refused_inline() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:99:00:01");
    press(
        &mut a,
        &[KeyCode::Char('a'), KeyCode::Tab, KeyCode::Tab, KeyCode::Tab],
    );
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut a, "10.99.0.21");
    assert!(press(&mut a, &[KeyCode::Enter]).is_empty());
    let err = a.dialog().unwrap().error.clone().unwrap();
    assert!(err.contains("dev-01"), "{err}");
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut a, "10.99.0.300");
    assert!(press(&mut a, &[KeyCode::Enter]).is_empty());
    assert!(
        a.dialog()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .contains("not an IPv4")
    );
    press(&mut a, &[KeyCode::Esc]);
    assert!(a.dialog().is_none());
}

#[test]
fn known_machines_cannot_be_adopted_again() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:d0:00:01"); // dev-01
    assert!(press(&mut a, &[KeyCode::Char('a')]).is_empty());
    assert!(a.dialog().is_none());
    assert!(a.status.as_ref().unwrap().error);
}

#[test]
fn bulk_adopt_names_marked_machines_from_a_pattern() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:99:00:01");
    press(&mut a, &[KeyCode::Char(' ')]);
    select_unknown(&mut a, "ac:1f:6b:00:00:07");
    press(&mut a, &[KeyCode::Char(' ')]);
    assert_eq!(a.marked.len(), 2);
    press(&mut a, &[KeyCode::Char('a'), KeyCode::Tab]);
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut a, "worker-{n:02}");
    let actions = press(&mut a, &[KeyCode::Enter]);
    let [Action::Send(Command::Adopt { machines })] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    let names: Vec<&str> = machines.iter().map(|m| m.hostname.as_str()).collect();
    assert_eq!(names, ["worker-01", "worker-02"]);
    assert!(machines.iter().all(|m| m.ip.is_none()));
    assert!(a.marked.is_empty());
}

#[test]
fn install_toggle_release_and_quit() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:d0:00:01"); // dev-01 (failed ones list first)
    // `i` asks first; anything but y leaves the file alone.
    assert!(press(&mut a, &[KeyCode::Char('i')]).is_empty());
    let asked = screen(&a, 80, 24);
    assert!(
        asked.contains("dev-01: cancel the reinstall (install: false)? y/n"),
        "{asked}"
    );
    assert!(press(&mut a, &[KeyCode::Char('n')]).is_empty());
    assert!(a.confirmation().is_none());
    assert_eq!(a.pending, 0);
    assert_eq!(
        press(&mut a, &[KeyCode::Char('i'), KeyCode::Char('y')]),
        vec![Action::Send(Command::SetInstall {
            hostname: "dev-01".into(),
            install: false
        })]
    );
    // A write is pending: quitting asks first.
    assert!(press(&mut a, &[KeyCode::Char('q')]).is_empty());
    assert!(a.confirming_quit());
    assert!(press(&mut a, &[KeyCode::Char('n')]).is_empty());
    a.on_reply(pxedeck::tui::app::Reply::Command(Ok(
        "dev-01: install false".into(),
    )));
    assert_eq!(press(&mut a, &[KeyCode::Char('q')]), vec![Action::Quit]);

    let mut a = app();
    press(&mut a, &[KeyCode::Char('2')]);
    assert_eq!(a.tab, Tab::Leases);
    assert!(
        press(&mut a, &[KeyCode::Char('r')]).is_empty(),
        "r asks first"
    );
    assert!(screen(&a, 80, 24).contains("release 10.99.0.21 (dev-01)?"));
    press(&mut a, &[KeyCode::Esc]);
    assert_eq!(
        press(&mut a, &[KeyCode::Char('r'), KeyCode::Char('y')]),
        vec![Action::Send(Command::ReleaseLease {
            ip: "10.99.0.21".parse().unwrap()
        })]
    );
}

#[test]
fn filter_jump_detail_and_sort() {
    let mut a = app();
    press(&mut a, &[KeyCode::Char('/')]);
    type_text(&mut a, "unknown");
    assert_eq!(a.visible_machines().len(), 2, "filters as you type");
    press(&mut a, &[KeyCode::Enter]);
    assert_eq!(a.filter, "unknown");
    press(&mut a, &[KeyCode::Esc]);
    assert!(a.filter.is_empty());

    press(&mut a, &[KeyCode::Char(':')]);
    type_text(&mut a, "dev-03");
    press(&mut a, &[KeyCode::Enter]);
    assert_eq!(
        a.selected_machine().unwrap().hostname.as_deref(),
        Some("dev-03")
    );
    let actions = press(&mut a, &[KeyCode::Enter]);
    assert_eq!(actions, vec![Action::FetchDetail(mac("52:54:00:d0:00:03"))]);
    assert!(a.detail.is_some());
    press(&mut a, &[KeyCode::Esc]);
    assert!(a.detail.is_none());

    press(&mut a, &[KeyCode::Char('o'), KeyCode::Char('o')]);
    let ips: Vec<_> = a.visible_machines().iter().map(|m| m.ip).collect();
    let mut sorted = ips.clone();
    sorted.sort_by_key(|ip| (ip.is_none(), *ip));
    assert_eq!(ips, sorted);
}

// ---- cursor and modals -------------------------------------------------

fn cursor_after_draw(app: &App, w: u16, h: u16) -> (u16, u16) {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| draw(f, app)).unwrap();
    let p = terminal.get_cursor_position().unwrap();
    (p.x, p.y)
}

#[test]
fn text_cursors_sit_after_the_labels_drawn() {
    let mut a = app();
    press(&mut a, &[KeyCode::Char('/')]);
    type_text(&mut a, "ab");
    assert_eq!(
        cursor_after_draw(&a, 80, 24),
        (" filter ".len() as u16 + 2, 22)
    );
    press(&mut a, &[KeyCode::Esc, KeyCode::Char(':')]);
    type_text(&mut a, "dev");
    assert_eq!(
        cursor_after_draw(&a, 80, 24),
        (" jump ".len() as u16 + 3, 22)
    );
    press(&mut a, &[KeyCode::Esc]);

    select_unknown(&mut a, "52:54:00:99:00:01");
    press(&mut a, &[KeyCode::Char('a'), KeyCode::Tab]);
    let s = screen(&a, 80, 24);
    let (row, line) = s
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("Hostname") && l.contains("dev-04"))
        .unwrap();
    let value_at = line.find("dev-04").unwrap();
    let column = line[..value_at].chars().count() as u16;
    assert_eq!(
        cursor_after_draw(&a, 80, 24),
        (column + "dev-04".len() as u16, row as u16),
        "the hostname cursor ends its value:\n{s}"
    );
}

#[test]
fn no_to_quit_gives_back_what_was_open() {
    let mut a = app();
    a.pending = 1;
    select_unknown(&mut a, "52:54:00:99:00:01");
    press(&mut a, &[KeyCode::Char('a')]);
    assert!(
        a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))
            .is_empty()
    );
    assert!(a.confirming_quit());
    assert!(a.dialog().is_some(), "the dialog stays under the question");
    press(&mut a, &[KeyCode::Char('n')]);
    assert!(!a.confirming_quit());
    assert_eq!(a.dialog().unwrap().hostname.value(), "dev-04");
    assert_eq!(
        a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        vec![]
    );
    assert_eq!(press(&mut a, &[KeyCode::Char('y')]), vec![Action::Quit]);

    // Over a prompt the status line asks; "no" gives the prompt back.
    let mut a = app();
    a.pending = 1;
    press(&mut a, &[KeyCode::Char('/')]);
    type_text(&mut a, "dev");
    a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(screen(&a, 80, 24).contains("quit anyway? y/n"));
    press(&mut a, &[KeyCode::Char('n')]);
    assert_eq!(a.prompt().unwrap().input().value(), "dev");
}

#[test]
fn adopting_installs_only_where_the_group_says_so() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:99:00:01");
    press(&mut a, &[KeyCode::Char('a')]);
    assert!(
        a.dialog().unwrap().install,
        "k8s-dev has adopt.install: true"
    );
    // k8s-prod says nothing: adopting there does not reimage.
    press(&mut a, &[KeyCode::Tab, KeyCode::Tab, KeyCode::Right]);
    assert_eq!(a.dialog().unwrap().group_name(), "k8s-prod");
    assert!(!a.dialog().unwrap().install);
    let actions = press(&mut a, &[KeyCode::Enter]);
    let [Action::Send(Command::Adopt { machines })] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert!(!machines[0].install);
}

#[test]
fn an_address_an_adoption_just_took_is_not_suggested_again() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:99:00:01");
    press(&mut a, &[KeyCode::Char('a')]);
    assert_eq!(a.dialog().unwrap().ip.value(), "10.99.0.100");
    press(&mut a, &[KeyCode::Enter]);
    // The write lands: the machine keeps its dynamic lease (.150) until
    // it renews, but .100 is now its fixed address.
    a.apply(&Event {
        at: T0 + 19_000,
        kind: EventKind::InventoryMachineChanged {
            machine: KnownMachine {
                hostname: "dev-04".into(),
                group: "k8s-dev".into(),
                macs: vec![mac("52:54:00:99:00:01")],
                ip: Some("10.99.0.100".parse().unwrap()),
                profile: Some("ubuntu-2404".into()),
                install: true,
            },
        },
    });
    select_unknown(&mut a, "ac:1f:6b:00:00:07");
    press(&mut a, &[KeyCode::Char('a')]);
    let d = a.dialog().unwrap();
    assert_eq!(d.ip.value(), "10.99.0.101");
    assert_eq!(d.hostname.value(), "dev-05");
    assert!(d.validate(&a.model).is_ok(), "{:?}", d.validate(&a.model));
}

#[test]
fn the_leases_view_names_an_adopted_machine_and_says_what_each_lease_is() {
    let mut a = app();
    a.apply(&Event {
        at: T0 + 19_000,
        kind: EventKind::InventoryMachineChanged {
            machine: KnownMachine {
                hostname: "dev-04".into(),
                group: "k8s-dev".into(),
                macs: vec![mac("52:54:00:99:00:01")],
                ip: None,
                profile: Some("ubuntu-2404".into()),
                install: true,
            },
        },
    });
    a.tab = Tab::Leases;
    let s = screen(&a, 80, 24);
    let line = s.lines().find(|l| l.contains("10.99.0.150")).unwrap();
    assert!(line.contains("dev-04"), "the adopted name, not '-': {line}");
    // Leases granted 120 s, 20 s ago: bound. At 100 s, expiring.
    assert!(line.contains("bound"), "{line}");
    a.now = T0 + 110_000;
    let s = screen(&a, 60, 20);
    let line = s.lines().find(|l| l.contains("10.99.0.150")).unwrap();
    assert!(
        line.contains("expiring") && line.contains("dev-04"),
        "{line}"
    );
}

#[test]
fn the_mouse_selects_tabs_and_rows_and_the_wheel_scrolls() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    use ratatui::layout::Rect;
    let click = |kind, column, row| MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    let area = Rect::new(0, 0, 80, 24);
    let mut a = app();
    let s = screen(&a, 80, 24);
    let lines: Vec<&str> = s.lines().collect();
    // The second data row of the table, wherever the layout put it.
    let header = lines.iter().position(|l| l.contains("MAC")).unwrap() as u16;
    let second = lines[header as usize + 2];
    let down = MouseEventKind::Down(MouseButton::Left);
    a.on_mouse(click(down, 5, header + 2), area);
    assert_eq!(a.cursor[0], 1);
    assert!(second.contains(&a.selected_machine().unwrap().mac.to_string()));
    // A click on the selected row opens it.
    let actions = a.on_mouse(click(down, 5, header + 2), area);
    assert!(
        matches!(actions.as_slice(), [Action::FetchDetail(_)]),
        "{actions:?}"
    );
    press(&mut a, &[KeyCode::Esc]);
    a.on_mouse(click(MouseEventKind::ScrollDown, 5, 10), area);
    assert_eq!(a.cursor[0], 4, "the wheel moves three rows");
    // The tab bar: " 1 Machines  2 Leases …".
    let tabs = lines.iter().position(|l| l.contains("2 Leases")).unwrap() as u16;
    let x = lines[tabs as usize].find("2 Leases").unwrap() as u16;
    a.on_mouse(click(down, x, tabs), area);
    assert_eq!(a.tab, Tab::Leases);
    // Nothing happens under an open dialog.
    press(&mut a, &[KeyCode::Char('?')]);
    a.on_mouse(click(down, 2, tabs), area);
    assert_eq!(a.tab, Tab::Leases);
}

#[test]
fn a_failed_machine_shows_why_at_80x24_and_the_log_lists_the_failure() {
    let mut a = app();
    a.detail = Some(mac("52:54:00:d0:00:02"));
    a.detail_text = Some((mac("52:54:00:d0:00:02"), "decision: install\n".into()));
    let s = screen(&a, 80, 24);
    assert!(
        s.contains("last error: ubuntu-24.04/vmlinuz: the client went away"),
        "the failure in the detail header at 80x24:\n{s}"
    );
    insta::assert_snapshot!("detail_failed_80x24", s);
    let mut a = app();
    a.tab = Tab::Log;
    let s = screen(&a, 80, 24);
    assert!(
        s.contains("dev-02: HTTP ubuntu-24.04/vmlinuz failed"),
        "{s}"
    );
    assert!(s.contains("04:40:00 pxedeck"), "wall-clock times: {s}");
}

#[test]
fn delete_forgets_an_unknown_machine_after_a_yes() {
    let mut a = app();
    select_unknown(&mut a, "ac:1f:6b:00:00:07");
    assert!(press(&mut a, &[KeyCode::Delete]).is_empty());
    assert!(screen(&a, 80, 24).contains("forget unknown machine ac:1f:6b:00:00:07? y/n"));
    assert_eq!(
        press(&mut a, &[KeyCode::Char('y')]),
        vec![Action::Send(Command::Forget {
            mac: mac("ac:1f:6b:00:00:07")
        })]
    );
    select_unknown(&mut a, "52:54:00:d0:00:01");
    assert!(press(&mut a, &[KeyCode::Delete]).is_empty());
    assert!(
        a.confirmation().is_none(),
        "known machines are not forgotten"
    );
    assert!(a.status.as_ref().unwrap().error);
}

/// File names are cut at their `/`s and reasons after a whole word, each
/// with an ellipsis, never mid-word.
#[test]
fn transfers_cut_file_names_at_path_boundaries_and_reasons_at_words() {
    let mut a = app();
    a.tab = Tab::Transfers;
    let s = screen(&a, 80, 24);
    assert!(s.contains("…/vmlinuz "), "{s}");
    assert!(s.contains("failed: the client… "), "{s}");
    assert!(!s.contains("vmlinu "), "cut mid-word: {s}");
    let wide = screen(&a, 200, 60);
    assert!(
        wide.contains("ubuntu-24.04/vmlinuz"),
        "whole where it fits: {wide}"
    );
    assert!(wide.contains("the client went away mid-download"), "{wide}");
}

#[test]
fn a_list_longer_than_the_screen_keeps_the_selection_in_view() {
    // Tables build rows for the screen only; the window must follow the
    // cursor exactly as a full table would scroll.
    let mut model = Model::default();
    model.apply(&Event {
        at: T0,
        kind: EventKind::InventoryReloaded {
            machines: (0..300)
                .map(|n| {
                    known(
                        &format!("node-{n:03}"),
                        "rack",
                        &format!("52:54:00:aa:{:02x}:{:02x}", n >> 8, n & 0xff),
                        &format!("10.99.1.{}", n % 250 + 1),
                        false,
                    )
                })
                .collect(),
            profiles: vec!["talos-worker".into()],
            groups: vec!["rack".into()],
            group_info: vec![],
        },
    });
    let mut a = App::new(model, Theme::builtin(false), Origin::Embedded);
    a.now = T0 + 1_000;
    let first = screen(&a, 80, 24);
    assert!(first.contains("node-000"), "{first}");
    let wanted = 250;
    a.cursor[0] = wanted;
    let chosen = a.selected_machine().unwrap().hostname.clone().unwrap();
    let s = screen(&a, 80, 24);
    let lines: Vec<&str> = s.lines().collect();
    let header = lines.iter().position(|l| l.contains("MAC")).unwrap();
    let shown: Vec<&&str> = lines[header + 1..]
        .iter()
        .filter(|l| l.contains("52:54:00:aa:"))
        .collect();
    assert!(shown.len() >= 10, "a full screen of rows:\n{s}");
    assert!(
        shown.last().unwrap().contains(&chosen),
        "the selection sits on the last row:\n{s}"
    );
    assert!(!s.contains("node-000"), "the top scrolled away:\n{s}");
}
