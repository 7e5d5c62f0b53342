//! Unknown machines a rule proposes (`adopt.rules`, mode `propose`): marked
//! in the machines view (TestBackend snapshot), pre-filled in the adopt
//! dialog, and all adopted by one key after a yes.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pxedeck::boot::BootDecision;
use pxedeck::boot::arch::Firmware;
use pxedeck::config::{DhcpMode, UnknownPolicy};
use pxedeck::dhcp::DhcpMessage;
use pxedeck::event::{
    Command, DhcpSeen, Event, EventKind, GroupInfo, KnownMachine, PoolInfo, ServerInfo,
};
use pxedeck::ident::Mac;
use pxedeck::inventory::rules::{RuleHit, RuleMode};
use pxedeck::tui::app::{Action, App};

#[path = "console/screen.rs"]
mod screen;
use screen::{T0, app_of, screen, select};

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn hit(mode: RuleMode, install: bool) -> RuleHit {
    RuleHit {
        rule: "k8s-dev/_defaults.yaml:7".into(),
        mode,
        group: "k8s-dev".into(),
        profile: "ubuntu-2404".into(),
        hostname: "dev-{n:02}".into(),
        install,
    }
}

fn seen(m: &str, hostname: Option<&str>, rule: Option<RuleHit>) -> EventKind {
    EventKind::DhcpSeen(DhcpSeen {
        mac: mac(m),
        xid: 1,
        message: DhcpMessage::Discover,
        firmware: Some(Firmware::UefiX64),
        ipxe: false,
        vendor_class: None,
        uuid: None,
        relay: None,
        relay_agent: None,
        interface: None,
        hostname: hostname.map(str::to_string),
        decision: if hostname.is_some() {
            BootDecision::Local
        } else {
            BootDecision::Hold
        },
        rule,
    })
}

fn app() -> App {
    let kinds = vec![
        EventKind::Started(ServerInfo {
            address: "10.99.0.1".parse().unwrap(),
            dhcp_mode: DhcpMode::Full,
            dhcp: Some("0.0.0.0:67".parse().unwrap()),
            proxy: None,
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
            machines: vec![KnownMachine {
                hostname: "dev-01".into(),
                group: "k8s-dev".into(),
                macs: vec![mac("52:54:00:d0:00:01")],
                ip: Some("10.99.0.21".parse().unwrap()),
                profile: Some("ubuntu-2404".into()),
                install: false,
            }],
            profiles: vec!["local".into(), "ubuntu-2404".into()],
            groups: vec!["k8s-dev".into(), "lab".into()],
            group_info: vec![GroupInfo {
                name: "lab".into(),
                hostname_pattern: Some("lab-{n}".into()),
                profile: Some("local".into()),
                adopt_install: false,
            }],
        },
        seen("52:54:00:d0:00:01", Some("dev-01"), None),
        seen(
            "52:54:00:12:00:01",
            None,
            Some(hit(RuleMode::Propose, false)),
        ),
        seen(
            "52:54:00:12:00:02",
            None,
            Some(hit(RuleMode::Propose, false)),
        ),
        seen("00:25:90:00:00:09", None, None),
        seen("52:54:00:12:00:03", None, Some(hit(RuleMode::Auto, false))),
    ];
    app_of(kinds, 700, 20_000)
}

fn press(app: &mut App, code: KeyCode) -> Vec<Action> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

#[test]
fn proposed_machines_are_marked_in_the_list_and_the_header() {
    let a = app();
    let s = screen(&a, 80, 24);
    insta::assert_snapshot!("proposed_80x24", s);
    assert!(s.contains("3 proposed (P)"), "{s}");
    assert!(s.contains("→ k8s-dev"), "{s}");
    let wide = screen(&a, 160, 48);
    assert!(wide.contains("auto → k8s-dev"), "{wide}");
    insta::assert_snapshot!("proposed_160x48", wide);
}

#[test]
fn the_detail_says_what_the_rule_proposes() {
    let mut a = app();
    select(&mut a, "52:54:00:12:00:02");
    press(&mut a, KeyCode::Enter);
    let s = screen(&a, 120, 30);
    assert!(
        s.contains("proposed (P adopts all proposed): ubuntu-2404 into k8s-dev as dev-{n:02}, install false — rule k8s-dev/_defaults.yaml:7"),
        "{s}"
    );
}

#[test]
fn the_adopt_dialog_starts_with_what_the_rule_proposes() {
    let mut a = app();
    select(&mut a, "52:54:00:12:00:02");
    press(&mut a, KeyCode::Char('a'));
    let d = a.dialog().expect("the dialog");
    assert_eq!(
        d.group_name(),
        "k8s-dev",
        "not the first group with an adopt: section"
    );
    assert_eq!(d.profile_name(), "ubuntu-2404");
    assert_eq!(d.hostname.value(), "dev-02");
    assert!(!d.install);
    // An unmatched machine starts as before: lab (the group with adopt:).
    press(&mut a, KeyCode::Esc);
    select(&mut a, "00:25:90:00:00:09");
    press(&mut a, KeyCode::Char('a'));
    assert_eq!(a.dialog().unwrap().group_name(), "lab");
}

#[test]
fn one_key_adopts_every_proposed_machine_after_a_yes() {
    let mut a = app();
    assert!(press(&mut a, KeyCode::Char('P')).is_empty(), "asks first");
    let question = a.confirmation().expect("a question").question.clone();
    assert_eq!(
        question,
        "adopt 3 proposed machine(s) (dev-02 … dev-04) into k8s-dev? y/n"
    );
    let actions = press(&mut a, KeyCode::Char('y'));
    let [Action::Send(Command::Adopt { machines })] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    let got: Vec<(String, &str, &str, bool)> = machines
        .iter()
        .map(|m| {
            (
                m.macs[0].to_string(),
                m.hostname.as_str(),
                m.group.as_str(),
                m.install,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("52:54:00:12:00:01".into(), "dev-02", "k8s-dev", false),
            ("52:54:00:12:00:02".into(), "dev-03", "k8s-dev", false),
            ("52:54:00:12:00:03".into(), "dev-04", "k8s-dev", false),
        ]
    );
    // No answer but y changes nothing.
    let mut b = app();
    press(&mut b, KeyCode::Char('P'));
    assert!(press(&mut b, KeyCode::Char('n')).is_empty());
}

#[test]
fn with_nothing_proposed_the_key_says_so() {
    let mut a = app();
    // Every proposed machine adopted: the rows are labelled, proposals go.
    let known: Vec<KnownMachine> = [
        "52:54:00:d0:00:01",
        "52:54:00:12:00:01",
        "52:54:00:12:00:02",
        "52:54:00:12:00:03",
    ]
    .iter()
    .enumerate()
    .map(|(i, m)| KnownMachine {
        hostname: format!("dev-{:02}", i + 1),
        group: "k8s-dev".into(),
        macs: vec![mac(m)],
        ip: None,
        profile: Some("ubuntu-2404".into()),
        install: false,
    })
    .collect();
    a.apply(&Event {
        at: T0 + 10_000,
        kind: EventKind::InventoryReloaded {
            machines: known,
            profiles: vec!["ubuntu-2404".into()],
            groups: vec!["k8s-dev".into()],
            group_info: vec![],
        },
    });
    assert_eq!(a.proposed_count(), 0);
    assert!(press(&mut a, KeyCode::Char('P')).is_empty());
    assert!(a.confirmation().is_none());
    let status = a.status.as_ref().expect("a status line");
    assert_eq!(status.text, "no machine is proposed by a rule");
    assert!(status.error);
}
