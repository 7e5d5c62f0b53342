//! Several interfaces in the console (issue 16, item 5): the header names
//! each segment and how many machines were last heard on it, giving way to
//! a count of segments, then to nothing, as the terminal narrows; the
//! detail view says which segment a machine is on.

use pxedeck::boot::BootDecision;
use pxedeck::boot::arch::Firmware;
use pxedeck::config::{DhcpMode, UnknownPolicy};
use pxedeck::dhcp::DhcpMessage;
use pxedeck::event::{DhcpSeen, EventKind, InterfaceInfo, ServerInfo};
use pxedeck::ident::Mac;
use pxedeck::tui::app::App;

#[path = "console/screen.rs"]
mod screen;
use screen::{app_of, screen};

fn mac(i: u8) -> Mac {
    Mac([0x52, 0x54, 0, 0x61, 0, i])
}

fn seen(i: u8, interface: Option<&str>, relay: Option<&str>) -> EventKind {
    EventKind::DhcpSeen(DhcpSeen {
        mac: mac(i),
        xid: u32::from(i),
        message: DhcpMessage::Discover,
        firmware: Some(Firmware::UefiX64),
        ipxe: false,
        vendor_class: None,
        uuid: None,
        relay: relay.map(|r| r.parse().unwrap()),
        relay_agent: None,
        interface: interface.map(|a| a.parse().unwrap()),
        rule: None,
        hostname: None,
        decision: BootDecision::Hold,
    })
}

fn app(interfaces: Vec<InterfaceInfo>) -> App {
    let kinds = vec![
        EventKind::Started(ServerInfo {
            address: "10.61.1.1".parse().unwrap(),
            dhcp_mode: DhcpMode::Full,
            dhcp: Some("0.0.0.0:67".parse().unwrap()),
            proxy: None,
            tftp: "0.0.0.0:69".parse().unwrap(),
            http: "0.0.0.0:80".parse().unwrap(),
            api: "127.0.0.1:8081".parse().unwrap(),
            pools: vec![],
            unknown_policy: UnknownPolicy::Hold,
            interfaces,
        }),
        seen(1, Some("10.61.1.1"), None),
        seen(2, Some("10.61.1.1"), None),
        seen(3, Some("10.61.2.1"), None),
        // Relayed: on no interface of ours.
        seen(4, None, Some("10.70.0.1")),
    ];
    app_of(kinds, 100, 5_000)
}

fn three() -> Vec<InterfaceInfo> {
    vec![
        InterfaceInfo {
            name: Some("eth1".into()),
            address: "10.61.1.1".parse().unwrap(),
            mode: DhcpMode::Full,
        },
        InterfaceInfo {
            name: Some("eth2".into()),
            address: "10.61.2.1".parse().unwrap(),
            mode: DhcpMode::Full,
        },
        InterfaceInfo {
            name: None,
            address: "10.61.3.1".parse().unwrap(),
            mode: DhcpMode::Proxy,
        },
    ]
}

fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or_default()
}

#[test]
fn the_header_names_each_segment_and_its_machines_where_it_fits() {
    let a = app(three());
    let wide = screen(&a, 200, 60);
    assert!(
        header(&wide).ends_with("│ eth1 10.61.1.1: 2 · eth2 10.61.2.1: 1 · 10.61.3.1 proxy: 0"),
        "{wide}"
    );
    let medium = screen(&a, 80, 24);
    assert!(header(&medium).ends_with("│ 3 segments"), "{medium}");
    let narrow = screen(&a, 60, 20);
    assert!(!header(&narrow).contains("segment"), "{narrow}");
    assert!(header(&narrow).contains("10.61.1.1 DHCP full"), "{narrow}");
}

#[test]
fn one_interface_shows_no_segments() {
    let a = app(vec![]);
    let wide = screen(&a, 200, 60);
    assert!(!header(&wide).contains('│'), "{wide}");
}

#[test]
fn the_detail_view_says_which_segment_a_machine_is_on() {
    let mut a = app(three());
    a.detail = Some(mac(3));
    let detail = screen(&a, 160, 30);
    assert!(detail.contains(" · on eth2 10.61.2.1"), "{detail}");
    a.detail = Some(mac(4));
    let relayed = screen(&a, 160, 30);
    assert!(!relayed.contains(" · on "), "{relayed}");
    assert!(relayed.contains(" · relay 10.70.0.1"), "{relayed}");
}
