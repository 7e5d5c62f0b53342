//! The rack the console tests draw: a mid-boot rack (installs running,
//! one failed, two unknown machines held) and the helpers that render it
//! and press keys, shared by `tests/tui.rs` and `tests/tui_edit.rs`.

#![allow(dead_code)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pxedeck::boot::arch::Firmware;
use pxedeck::boot::{BootDecision, ScriptKind};
use pxedeck::config::{DhcpMode, UnknownPolicy};
use pxedeck::dhcp::DhcpMessage;
use pxedeck::event::{
    DhcpSeen, Event, EventKind, GroupInfo, KnownMachine, Level, PoolInfo, Protocol, ServerInfo,
};
use pxedeck::ident::Mac;
use pxedeck::model::Model;
use pxedeck::tui::Origin;
use pxedeck::tui::app::{Action, App};
use pxedeck::tui::theme::Theme;

#[path = "screen.rs"]
mod screen;
pub use screen::screen;

pub const T0: u64 = 1_763_700_000_000;

pub fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

pub fn known(hostname: &str, group: &str, m: &str, ip: &str, install: bool) -> KnownMachine {
    KnownMachine {
        hostname: hostname.into(),
        group: group.into(),
        macs: vec![mac(m)],
        ip: Some(ip.parse().unwrap()),
        profile: Some(
            if group == "k8s-dev" {
                "ubuntu-2404"
            } else {
                "talos-worker"
            }
            .into(),
        ),
        install,
    }
}

pub fn seen(
    m: &str,
    fw: Firmware,
    ipxe: bool,
    hostname: Option<&str>,
    decision: BootDecision,
) -> EventKind {
    EventKind::DhcpSeen(DhcpSeen {
        mac: mac(m),
        xid: 1,
        message: DhcpMessage::Discover,
        firmware: Some(fw),
        ipxe,
        vendor_class: Some("PXEClient:Arch:00007:UNDI:003016".into()),
        uuid: None,
        relay: None,
        relay_agent: None,
        interface: None,
        rule: None,
        hostname: hostname.map(str::to_string),
        decision,
    })
}

/// A rack mid-boot: installs running, one failed, two unknown machines held.
pub fn events() -> Vec<Event> {
    let install = |p: &str| BootDecision::Install { profile: p.into() };
    let kinds = vec![
        EventKind::Started(ServerInfo {
            address: "10.99.0.1".parse().unwrap(),
            dhcp_mode: DhcpMode::Full,
            dhcp: Some("0.0.0.0:67".parse().unwrap()),
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
            machines: vec![
                known("dev-01", "k8s-dev", "52:54:00:d0:00:01", "10.99.0.21", true),
                known("dev-02", "k8s-dev", "52:54:00:d0:00:02", "10.99.0.22", true),
                known(
                    "dev-03",
                    "k8s-dev",
                    "52:54:00:d0:00:03",
                    "10.99.0.23",
                    false,
                ),
                known(
                    "prod-01",
                    "k8s-prod",
                    "52:54:00:e0:00:01",
                    "10.99.0.31",
                    true,
                ),
            ],
            profiles: vec!["local".into(), "talos-worker".into(), "ubuntu-2404".into()],
            groups: vec!["k8s-dev".into(), "k8s-prod".into()],
            group_info: vec![
                GroupInfo {
                    name: "k8s-dev".into(),
                    hostname_pattern: Some("dev-{n:02}".into()),
                    profile: Some("ubuntu-2404".into()),
                    adopt_install: true,
                },
                GroupInfo {
                    name: "k8s-prod".into(),
                    hostname_pattern: Some("prod-{n:02}".into()),
                    profile: Some("talos-worker".into()),
                    adopt_install: false,
                },
            ],
        },
        seen(
            "52:54:00:d0:00:01",
            Firmware::UefiX64,
            false,
            Some("dev-01"),
            install("ubuntu-2404"),
        ),
        EventKind::LeaseBound {
            mac: mac("52:54:00:d0:00:01"),
            ip: "10.99.0.21".parse().unwrap(),
            hostname: Some("dev-01".into()),
            expires: T0 + 120_000,
            fixed: true,
        },
        EventKind::TransferStarted {
            id: 1,
            protocol: Protocol::Tftp,
            client: "10.99.0.21:2070".parse().unwrap(),
            mac: Some(mac("52:54:00:d0:00:01")),
            path: "ipxe.efi".into(),
            size: Some(1_048_576),
            blksize: Some(1468),
            windowsize: Some(4),
        },
        EventKind::TransferDone {
            id: 1,
            bytes: 1_048_576,
            millis: 180,
        },
        seen(
            "52:54:00:d0:00:01",
            Firmware::UefiX64,
            true,
            Some("dev-01"),
            install("ubuntu-2404"),
        ),
        EventKind::ScriptServed {
            client: "10.99.0.21".parse().unwrap(),
            mac: Some(mac("52:54:00:d0:00:01")),
            hostname: Some("dev-01".into()),
            kind: ScriptKind::Install,
            profile: Some("ubuntu-2404".into()),
            chain: Default::default(),
        },
        EventKind::TransferStarted {
            id: 2,
            protocol: Protocol::Http,
            client: "10.99.0.21:40100".parse().unwrap(),
            mac: Some(mac("52:54:00:d0:00:01")),
            path: "ubuntu-24.04/initrd".into(),
            size: Some(70_000_000),
            blksize: None,
            windowsize: None,
        },
        EventKind::Progress {
            samples: vec![(2, 28_000_000)],
        },
        seen(
            "52:54:00:d0:00:02",
            Firmware::Bios,
            false,
            Some("dev-02"),
            install("ubuntu-2404"),
        ),
        EventKind::LeaseBound {
            mac: mac("52:54:00:d0:00:02"),
            ip: "10.99.0.22".parse().unwrap(),
            hostname: Some("dev-02".into()),
            expires: T0 + 120_000,
            fixed: true,
        },
        EventKind::TransferStarted {
            id: 3,
            protocol: Protocol::Http,
            client: "10.99.0.22:40200".parse().unwrap(),
            mac: Some(mac("52:54:00:d0:00:02")),
            path: "ubuntu-24.04/vmlinuz".into(),
            size: Some(15_000_000),
            blksize: None,
            windowsize: None,
        },
        EventKind::TransferFailed {
            id: 3,
            bytes: 65_536,
            reason: "the client went away mid-download".into(),
            probe: false,
        },
        seen(
            "52:54:00:d0:00:03",
            Firmware::UefiX64,
            true,
            Some("dev-03"),
            BootDecision::Local,
        ),
        seen(
            "52:54:00:99:00:01",
            Firmware::UefiX64,
            true,
            None,
            BootDecision::Hold,
        ),
        EventKind::LeaseBound {
            mac: mac("52:54:00:99:00:01"),
            ip: "10.99.0.150".parse().unwrap(),
            hostname: None,
            expires: T0 + 120_000,
            fixed: false,
        },
        seen(
            "ac:1f:6b:00:00:07",
            Firmware::Bios,
            false,
            None,
            BootDecision::Hold,
        ),
        EventKind::Log {
            level: Level::Warn,
            target: "dhcp".into(),
            message: "ac:1f:6b:00:00:07 retransmitted DISCOVER 3 times".into(),
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            at: T0 + i as u64 * 700,
            kind,
        })
        .collect()
}

pub fn app() -> App {
    let mut model = Model::default();
    for e in events() {
        model.apply(&e);
    }
    let mut app = App::new(model, Theme::builtin(false), Origin::Embedded);
    app.now = T0 + 20_000;
    app
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

pub fn press(app: &mut App, keys: &[KeyCode]) -> Vec<Action> {
    keys.iter().flat_map(|k| app.on_key(key(*k))).collect()
}

pub fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
}

/// Selects the row of MAC `m` (unknown or not).
pub fn select_unknown(app: &mut App, m: &str) {
    let i = app
        .visible_machines()
        .iter()
        .position(|r| r.mac == mac(m))
        .unwrap();
    app.cursor[0] = i;
}
