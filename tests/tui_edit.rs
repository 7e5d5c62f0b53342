//! Editing and undoing from the console, and everything that scrolls:
//! the edit dialog (what it sends, what it refuses, a refusal reopening
//! it as typed), undo behind a yes, the help overlay and the Log view by
//! keys and wheel, and the detail's timeline back to a failure.

#[path = "console/rack.rs"]
mod rack;

use crossterm::event::{KeyCode, MouseEvent, MouseEventKind};
use pxedeck::event::{Command, Event, EventKind, Protocol};
use pxedeck::inventory::MachineEdit;
use pxedeck::tui::app::{Action, Reply, Tab};
use ratatui::layout::Rect;

use rack::*;

fn wheel(kind: MouseEventKind) -> MouseEvent {
    MouseEvent {
        kind,
        column: 10,
        row: 10,
        modifiers: crossterm::event::KeyModifiers::NONE,
    }
}

#[test]
fn the_edit_dialog_sends_only_what_changed_and_a_refusal_reopens_it_as_typed() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:d0:00:01");
    assert!(press(&mut a, &[KeyCode::Char('e')]).is_empty());
    let s = screen(&a, 80, 24);
    assert!(s.contains(" Edit dev-01 "), "{s}");
    assert!(s.contains("◂ ubuntu-2404 ▸"), "{s}");
    assert!(s.contains("Fixed IP  10.99.0.21"), "{s}");
    insta::assert_snapshot!("edit_80x24", s);
    // Nothing changed: refused inline, nothing sent.
    assert!(press(&mut a, &[KeyCode::Enter]).is_empty());
    assert!(screen(&a, 80, 24).contains("✗ nothing changed"));
    // Profile → local, group → k8s-prod, install → no.
    press(
        &mut a,
        &[
            KeyCode::Left,
            KeyCode::Tab,
            KeyCode::Right,
            KeyCode::Tab,
            KeyCode::Tab,
            KeyCode::Char(' '),
        ],
    );
    let sent = press(&mut a, &[KeyCode::Enter]);
    let edit = MachineEdit {
        profile: Some("talos-worker".into()),
        group: Some("k8s-prod".into()),
        install: Some(false),
        ip: None,
    };
    assert_eq!(
        sent,
        vec![Action::Send(Command::Edit {
            hostname: "dev-01".into(),
            edit: edit.clone()
        })]
    );
    assert!(a.edit_dialog().is_none(), "closed while the writer works");
    // The writer refuses: the dialog is back with the reason and the
    // choices as they were sent.
    a.on_reply(Reply::Edit {
        hostname: "dev-01".into(),
        result: Err("the change would break the inventory: k8s-prod/dev-01.yaml:2: …".into()),
    });
    let d = a.edit_dialog().expect("reopened");
    assert_eq!(d.profile_name(), "talos-worker");
    assert_eq!(d.group_name(), "k8s-prod");
    let s = screen(&a, 80, 24);
    assert!(s.contains("✗ the change would break the inventory"), "{s}");
    assert!(a.status.as_ref().unwrap().error);
    // Sent again, accepted: closed for good.
    assert_eq!(
        press(&mut a, &[KeyCode::Enter]),
        vec![Action::Send(Command::Edit {
            hostname: "dev-01".into(),
            edit
        })]
    );
    a.on_reply(Reply::Edit {
        hostname: "dev-01".into(),
        result: Ok("dev-01: profile talos-worker".into()),
    });
    assert!(a.edit_dialog().is_none());
    assert!(!a.status.as_ref().unwrap().error);
}

#[test]
fn the_ip_field_is_bounded_and_checked_against_other_machines() {
    let mut a = app();
    select_unknown(&mut a, "52:54:00:d0:00:01");
    press(&mut a, &[KeyCode::Char('e'), KeyCode::Tab, KeyCode::Tab]);
    // Clear the field, then try to type far past an address's length.
    for _ in 0..20 {
        a.on_key(key(KeyCode::Backspace));
    }
    type_text(&mut a, &"1".repeat(200));
    let d = a.edit_dialog().unwrap();
    assert_eq!(d.ip.value().len(), 15, "capped at an address's length");
    assert!(screen(&a, 80, 24).contains("at most 15 characters"));
    for _ in 0..20 {
        a.on_key(key(KeyCode::Backspace));
    }
    type_text(&mut a, "10.99.0.22");
    assert!(press(&mut a, &[KeyCode::Enter]).is_empty());
    assert!(
        screen(&a, 80, 24).contains("10.99.0.22 is dev-02's address"),
        "{}",
        screen(&a, 80, 24)
    );
    for _ in 0..20 {
        a.on_key(key(KeyCode::Backspace));
    }
    type_text(&mut a, "10.99.0.300");
    assert!(press(&mut a, &[KeyCode::Enter]).is_empty());
    assert!(screen(&a, 80, 24).contains("is not an IPv4 address"));
    // Esc: nothing sent, nothing kept.
    assert!(press(&mut a, &[KeyCode::Esc]).is_empty());
    assert!(a.edit_dialog().is_none());
    // Unknown machines are adopted, not edited.
    select_unknown(&mut a, "ac:1f:6b:00:00:07");
    assert!(press(&mut a, &[KeyCode::Char('e')]).is_empty());
    assert!(a.edit_dialog().is_none());
    assert!(
        a.status.as_ref().unwrap().text.contains("adopt"),
        "{:?}",
        a.status.as_ref().unwrap().text
    );
}

#[test]
fn undo_asks_first_and_sends_the_command_only_after_a_yes() {
    let mut a = app();
    assert!(press(&mut a, &[KeyCode::Char('u')]).is_empty());
    assert!(screen(&a, 80, 24).contains("undo the last adoption"));
    assert!(press(&mut a, &[KeyCode::Char('n')]).is_empty());
    assert!(a.confirmation().is_none());
    press(&mut a, &[KeyCode::Char('u')]);
    assert_eq!(
        press(&mut a, &[KeyCode::Char('y')]),
        vec![Action::Send(Command::UndoAdoption)]
    );
}

#[test]
fn the_help_scrolls_by_keys_and_wheel_and_any_other_key_closes_it() {
    let mut a = app();
    press(&mut a, &[KeyCode::Char('?')]);
    let top = screen(&a, 80, 24);
    assert!(
        top.contains("Keys 1-"),
        "the title says there is more: {top}"
    );
    assert!(top.contains("switch view"), "{top}");
    assert!(
        !top.contains("any other key closes"),
        "the last line is below: {top}"
    );
    press(&mut a, &[KeyCode::Char('G')]);
    let bottom = screen(&a, 80, 24);
    assert!(
        bottom.contains("any other key closes this help"),
        "{bottom}"
    );
    assert!(!bottom.contains("switch view"), "{bottom}");
    assert!(a.help_open(), "scrolling keeps it open");
    insta::assert_snapshot!("help_scrolled_80x24", bottom);
    press(&mut a, &[KeyCode::Char('g')]);
    assert_eq!(screen(&a, 80, 24), top);
    let area = Rect::new(0, 0, 80, 24);
    for _ in 0..10 {
        a.on_mouse(wheel(MouseEventKind::ScrollDown), area);
    }
    assert_eq!(screen(&a, 80, 24), bottom, "the wheel scrolls it too");
    a.on_mouse(wheel(MouseEventKind::ScrollUp), area);
    assert_ne!(screen(&a, 80, 24), bottom);
    press(&mut a, &[KeyCode::Char('x')]);
    assert!(!a.help_open());
    // At 200x60 it all fits: no scrolling, no range in the title.
    press(&mut a, &[KeyCode::Char('?')]);
    let wide = screen(&a, 200, 60);
    assert!(
        wide.contains(" Keys ") && !wide.contains("Keys 1-"),
        "{wide}"
    );
}

/// The Log view with more lines than fit: the wheel and the keys leave
/// the newest lines for older ones, `f` follows again.
#[test]
fn the_log_scrolls_by_wheel_and_keys() {
    let mut a = app();
    for i in 0..60u64 {
        a.apply(&Event {
            at: T0 + 30_000 + i * 1000,
            kind: EventKind::Log {
                level: pxedeck::event::Level::Info,
                target: "dhcp".into(),
                message: format!("line number {i:02}"),
            },
        });
    }
    a.tab = Tab::Log;
    a.cursor[4] = usize::MAX / 2;
    let s = screen(&a, 80, 24);
    assert!(
        s.contains("line number 59") && !s.contains("line number 30"),
        "{s}"
    );
    let area = Rect::new(0, 0, 80, 24);
    for _ in 0..10 {
        a.on_mouse(wheel(MouseEventKind::ScrollUp), area);
    }
    let s = screen(&a, 80, 24);
    assert!(!a.follow_log, "scrolled away from the newest");
    assert!(
        !s.contains("line number 59") && s.contains("line number 29"),
        "{s}"
    );
    press(&mut a, &[KeyCode::Char('g')]);
    assert!(screen(&a, 80, 24).contains("boot services started"));
    press(&mut a, &[KeyCode::Char('f')]);
    assert!(screen(&a, 80, 24).contains("line number 59"));
}

/// A machine whose failure is far up a long timeline: Tab moves the
/// arrows to the timeline, which scrolls back to it.
#[test]
fn the_detail_timeline_scrolls_back_to_the_failure() {
    let mut a = app();
    let dev02 = mac("52:54:00:d0:00:02");
    for i in 0..30u64 {
        a.apply(&Event {
            at: T0 + 30_000 + i * 1000,
            kind: EventKind::TransferStarted {
                id: 100 + i,
                protocol: Protocol::Http,
                client: "10.99.0.22:40000".parse().unwrap(),
                mac: Some(dev02),
                path: format!("retry/file-{i:02}"),
                size: Some(10),
                blksize: None,
                windowsize: None,
            },
        });
        a.apply(&Event {
            at: T0 + 30_500 + i * 1000,
            kind: EventKind::TransferDone {
                id: 100 + i,
                bytes: 10,
                millis: 5,
            },
        });
    }
    a.now = T0 + 80_000;
    select_unknown(&mut a, "52:54:00:d0:00:02");
    press(&mut a, &[KeyCode::Enter]);
    a.on_reply(Reply::Detail {
        mac: dev02,
        text: "decision: install\n".into(),
    });
    let s = screen(&a, 80, 24);
    assert!(s.contains("retry/file-29"), "{s}");
    assert!(!s.contains("vmlinuz    "), "the failure is far up: {s}");
    assert!(s.contains("Boot timeline"), "{s}");
    // The arrows scroll what it is served until Tab.
    press(&mut a, &[KeyCode::Up]);
    assert!(screen(&a, 80, 24).contains("retry/file-29"));
    press(&mut a, &[KeyCode::Tab]);
    assert!(
        a.detail.is_some(),
        "Tab in the detail switches pane, not view"
    );
    press(&mut a, &[KeyCode::Char('g')]);
    let s = screen(&a, 80, 24);
    assert!(s.contains("HTTP ubuntu-24.04/vmlinuz"), "{s}");
    assert!(!s.contains("retry/file-29"), "{s}");
    insta::assert_snapshot!("detail_timeline_scrolled_80x24", s);
    press(&mut a, &[KeyCode::Char('G')]);
    assert!(screen(&a, 80, 24).contains("retry/file-29"));
    // The wheel scrolls the pane too.
    let area = Rect::new(0, 0, 80, 24);
    for _ in 0..20 {
        a.on_mouse(wheel(MouseEventKind::ScrollUp), area);
    }
    assert!(screen(&a, 80, 24).contains("HTTP ubuntu-24.04/vmlinuz"));
}

/// The Inventory view with more groups than fit scrolls by keys and
/// wheel to the last of them.
#[test]
fn the_inventory_view_scrolls_to_its_last_lines() {
    let mut a = app();
    a.apply(&Event {
        at: T0 + 30_000,
        kind: EventKind::InventoryReloaded {
            machines: vec![],
            profiles: vec!["local".into()],
            groups: (0..40).map(|i| format!("rack-{i:02}")).collect(),
            group_info: vec![],
        },
    });
    a.tab = Tab::Inventory;
    let s = screen(&a, 80, 24);
    assert!(s.contains("rack-00") && !s.contains("rack-39"), "{s}");
    let area = Rect::new(0, 0, 80, 24);
    for _ in 0..20 {
        a.on_mouse(wheel(MouseEventKind::ScrollDown), area);
    }
    let s = screen(&a, 80, 24);
    assert!(!s.contains("rack-00") && s.contains("rack-39"), "{s}");
    press(&mut a, &[KeyCode::Char('g')]);
    assert!(screen(&a, 80, 24).contains("rack-00"));
}
