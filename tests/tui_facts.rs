//! Hardware facts in the console (issue 16, item 7): what a held machine's
//! iPXE reported shows in the machines list (Vendor column: manufacturer
//! and product, else the NIC vendor of the MAC's OUI), the detail view and
//! the adopt dialog, and goes with the adoption into the machine's file.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pxedeck::boot::BootDecision;
use pxedeck::boot::arch::Firmware;
use pxedeck::boot::identity::Facts;
use pxedeck::config::{DhcpMode, UnknownPolicy};
use pxedeck::dhcp::DhcpMessage;
use pxedeck::event::{Command, DhcpSeen, EventKind, GroupInfo, PoolInfo, ServerInfo};
use pxedeck::ident::Mac;
use pxedeck::inventory::machine_file_text;
use pxedeck::tui::app::{Action, App};
use pxedeck::tui::draw::draw;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

#[path = "console/screen.rs"]
mod screen;
use screen::{app_of, screen, select};

const HELD: &str = "52:54:00:99:00:01";
const BARE: &str = "ac:1f:6b:00:00:02"; // no facts: a Supermicro OUI

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn facts() -> Facts {
    let mut f = Facts::default();
    for (k, v) in [
        ("manufacturer", "Dell Inc."),
        ("product", "PowerEdge R650"),
        ("serial", "CZ2041ABCD"),
        ("asset", "RACK12-SLOT07"),
        ("chip", "bnxt"),
        ("busid", "01:14:e4:16:d8"),
        ("platform", "efi"),
        ("arch", "x86_64"),
    ] {
        assert!(f.insert(k, v));
    }
    f
}

fn seen(m: &str) -> EventKind {
    EventKind::DhcpSeen(DhcpSeen {
        mac: mac(m),
        xid: 1,
        message: DhcpMessage::Discover,
        firmware: Some(Firmware::UefiX64),
        ipxe: true,
        vendor_class: None,
        uuid: None,
        relay: None,
        relay_agent: None,
        interface: None,
        rule: None,
        hostname: None,
        decision: BootDecision::Hold,
    })
}

fn app() -> App {
    let kinds = vec![
        EventKind::Started(ServerInfo {
            address: "10.99.0.1".parse().unwrap(),
            dhcp_mode: DhcpMode::Proxy,
            dhcp: None,
            proxy: Some("0.0.0.0:4011".parse().unwrap()),
            tftp: "10.99.0.1:69".parse().unwrap(),
            http: "10.99.0.1:80".parse().unwrap(),
            api: "127.0.0.1:8081".parse().unwrap(),
            pools: vec![PoolInfo {
                subnet: "10.99.0.0/24".into(),
                first: "10.99.0.100".parse().unwrap(),
                last: "10.99.0.199".parse().unwrap(),
            }],
            unknown_policy: UnknownPolicy::Hold,
            interfaces: vec![],
        }),
        EventKind::InventoryReloaded {
            machines: vec![],
            profiles: vec!["ubuntu-2404".into()],
            groups: vec!["rack12".into()],
            group_info: vec![GroupInfo {
                name: "rack12".into(),
                hostname_pattern: Some("r12-{n:02}".into()),
                profile: Some("ubuntu-2404".into()),
                adopt_install: false,
            }],
        },
        seen(HELD),
        seen(BARE),
        EventKind::FactsReported {
            mac: mac(HELD),
            facts: facts(),
            rule: None,
        },
    ];
    app_of(kinds, 100, 5_000)
}

fn line_of<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle}:\n{screen}"))
}

#[test]
fn the_model_keeps_the_reported_facts() {
    let a = app();
    let row = a.model.machine(&mac(HELD)).unwrap();
    assert_eq!(row.facts.get("serial"), Some("CZ2041ABCD"));
    assert!(a.model.machine(&mac(BARE)).unwrap().facts.is_empty());
    // The API's /state serialises the row with its facts.
    let json = serde_json::to_value(row).unwrap();
    assert_eq!(json["facts"]["asset"], "RACK12-SLOT07");
}

#[test]
fn the_vendor_column_shows_the_model_where_wide_enough_else_the_oui() {
    let a = app();
    let wide = screen(&a, 200, 30);
    assert!(line_of(&wide, "MAC").contains("Vendor     Model"), "{wide}");
    assert!(
        line_of(&wide, HELD).contains("Dell Inc.  PowerEdge R650"),
        "{wide}"
    );
    assert!(line_of(&wide, BARE).contains("Supermicro"), "{wide}");
    // At 80 columns the column gives way to the ones that matter more.
    let narrow = screen(&a, 80, 24);
    assert!(!line_of(&narrow, HELD).contains("Dell"), "{narrow}");
}

#[test]
fn the_detail_view_and_the_adopt_dialog_say_which_box_it_is() {
    let mut a = app();
    a.detail = Some(mac(HELD));
    let detail = screen(&a, 120, 30);
    let l = line_of(&detail, "reports ");
    assert!(l.contains("Dell Inc. PowerEdge R650"), "{detail}");
    assert!(l.contains("serial CZ2041ABCD"), "{detail}");
    assert!(l.contains("asset RACK12-SLOT07"), "{detail}");
    a.detail = None;
    select(&mut a, HELD);
    a.on_key(KeyEvent::new(KeyCode::Char('a'), KeyModifiers::NONE));
    let dialog = screen(&a, 80, 24);
    let l = line_of(&dialog, "Reports");
    assert!(l.contains("Dell Inc. PowerEdge R650"), "{dialog}");
    assert!(l.contains("serial CZ2041ABCD"), "{dialog}");
    assert!(
        line_of(&dialog, "│ Hostname").contains("r12-01"),
        "the dialog's fields stay in place: {dialog}"
    );
    // The text cursor sits after the Hostname label, one row lower.
    a.on_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| draw(f, &a)).unwrap();
    let pos = terminal.get_cursor_position().unwrap();
    let row = screen(&a, 80, 24)
        .lines()
        .position(|l| l.contains("│ Hostname"))
        .unwrap();
    assert_eq!(pos.y as usize, row, "{dialog}");
    a.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::NONE));
    // The adoption carries the facts into the machine's file.
    let actions = a.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let [Action::Send(Command::Adopt { machines })] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(machines[0].facts, facts());
    let text = machine_file_text(&machines[0]);
    assert!(
        text.contains("facts:\n  manufacturer: \"Dell Inc.\"\n"),
        "{text}"
    );
    assert!(text.contains("  asset: \"RACK12-SLOT07\"\n"), "{text}");
}

#[test]
fn a_machine_without_facts_gets_no_reports_line() {
    let mut a = app();
    select(&mut a, BARE);
    a.on_key(KeyEvent::new(KeyCode::Char('a'), KeyModifiers::NONE));
    assert!(!screen(&a, 80, 24).contains("Reports"));
}
