//! The fold, event by event: what each area of the model makes of them.

use super::*;
use crate::boot::arch::Firmware;
use crate::boot::{BootDecision, ScriptKind};
use crate::dhcp::LeaseEnd;
use crate::event::{DhcpSeen, KnownMachine, Level, PoolInfo, Protocol};
use crate::inventory::Problem;

mod alerts;
use alerts::bound;

const MAC: &str = "52:54:00:00:00:01";

fn mac() -> Mac {
    MAC.parse().unwrap()
}

fn ev(at: Millis, kind: EventKind) -> Event {
    Event { at, kind }
}

fn seen(message: DhcpMessage, decision: BootDecision) -> EventKind {
    EventKind::DhcpSeen(DhcpSeen {
        mac: mac(),
        xid: 7,
        message,
        firmware: Some(Firmware::UefiX64),
        ipxe: false,
        vendor_class: Some("PXEClient:Arch:00007:UNDI:003016".into()),
        uuid: None,
        relay: None,
        relay_agent: None,
        interface: None,
        rule: None,
        hostname: None,
        decision,
    })
}

fn known(hostname: &str, install: bool) -> EventKind {
    EventKind::InventoryReloaded {
        machines: vec![KnownMachine {
            hostname: hostname.into(),
            group: "k8s-dev".into(),
            macs: vec![mac()],
            ip: Some("10.99.0.21".parse().unwrap()),
            profile: Some("ubuntu-2404".into()),
            install,
        }],
        profiles: vec!["ubuntu-2404".into()],
        groups: vec!["k8s-dev".into()],
        group_info: vec![],
    }
}

fn started(at: Millis, id: u64, path: &str, size: u64) -> Event {
    ev(
        at,
        EventKind::TransferStarted {
            id,
            protocol: Protocol::Tftp,
            client: "10.99.0.100:2070".parse().unwrap(),
            mac: None,
            path: path.into(),
            size: Some(size),
            blksize: Some(1468),
            windowsize: None,
        },
    )
}

fn lease(at: Millis) -> Event {
    ev(
        at,
        EventKind::LeaseBound {
            mac: mac(),
            ip: "10.99.0.100".parse().unwrap(),
            hostname: None,
            expires: at + 120_000,
            fixed: false,
        },
    )
}

#[test]
fn a_rebind_moves_the_macs_lease() {
    let bound = |ip: &str, m: Mac| {
        ev(
            1,
            EventKind::LeaseBound {
                mac: m,
                ip: ip.parse().unwrap(),
                hostname: None,
                expires: 10,
                fixed: false,
            },
        )
    };
    let other: Mac = "52:54:00:00:00:02".parse().unwrap();
    let mut model = Model::default();
    model.apply(&bound("10.99.0.100", mac()));
    model.apply(&bound("10.99.0.101", mac()));
    // The old address went to another MAC in between: it stays theirs.
    model.apply(&bound("10.99.0.101", other));
    model.apply(&bound("10.99.0.102", mac()));
    let held: Vec<(String, Mac)> = model
        .leases
        .values()
        .map(|l| (l.ip.to_string(), l.mac))
        .collect();
    assert_eq!(
        held,
        vec![("10.99.0.101".into(), other), ("10.99.0.102".into(), mac())]
    );
}

#[test]
fn an_unknown_machine_appears_on_its_first_discover_and_stands_out() {
    let mut m = Model::default();
    m.apply(&ev(1000, seen(DhcpMessage::Discover, BootDecision::Hold)));
    let row = m.machine(&mac()).unwrap();
    assert!(row.is_unknown());
    assert_eq!(row.state, MachineState::Held);
    assert_eq!(row.firmware, Some(Firmware::UefiX64));
    assert_eq!(row.timeline[0].what(), "UEFI DISCOVER");
    assert_eq!(m.counters.dhcp_in[&DhcpMessage::Discover], 1);
}

fn script_for(mac: Mac) -> EventKind {
    EventKind::ScriptServed {
        client: "10.99.0.150".parse().unwrap(),
        mac: Some(mac),
        hostname: None,
        kind: ScriptKind::Hold,
        profile: None,
        chain: Default::default(),
    }
}

#[test]
fn a_script_named_by_a_made_up_mac_is_counted_but_lists_no_machine() {
    let mut m = Model::default();
    let stranger: Mac = "02:de:ad:00:00:01".parse().unwrap();
    m.apply(&ev(1000, script_for(stranger)));
    assert!(m.machines.is_empty());
    assert_eq!(m.counters.scripts, 1);
    // A machine DHCP has seen, or one holding a lease, is updated.
    m.apply(&ev(1100, seen(DhcpMessage::Discover, BootDecision::Hold)));
    m.apply(&ev(1200, script_for(mac())));
    assert_eq!(m.machine(&mac()).unwrap().last_seen, Some(1200));
    let leased: Mac = "02:de:ad:00:00:02".parse().unwrap();
    m.apply(&ev(
        1300,
        EventKind::LeaseBound {
            mac: leased,
            ip: "10.99.0.101".parse().unwrap(),
            hostname: None,
            expires: 60_000,
            fixed: false,
        },
    ));
    m.apply(&ev(1400, script_for(leased)));
    assert_eq!(m.machine(&leased).unwrap().last_seen, Some(1400));
    assert_eq!(m.machines.len(), 2);
}

#[test]
fn with_dhcp_off_a_script_is_all_there_is_and_lists_the_machine() {
    let mut m = Model::default();
    m.apply(&ev(
        1,
        EventKind::Started(ServerInfo {
            address: "10.99.0.1".parse().unwrap(),
            dhcp_mode: crate::config::DhcpMode::Off,
            dhcp: None,
            proxy: None,
            tftp: "10.99.0.1:69".parse().unwrap(),
            http: "10.99.0.1:80".parse().unwrap(),
            api: "127.0.0.1:8081".parse().unwrap(),
            pools: vec![],
            unknown_policy: crate::config::UnknownPolicy::Hold,
            interfaces: vec![],
        }),
    ));
    m.apply(&ev(1000, script_for(mac())));
    assert_eq!(m.machine(&mac()).unwrap().state, MachineState::Held);
}

#[test]
fn a_rom_resending_discover_is_one_step_with_a_count() {
    let mut m = Model::default();
    for t in 0..3 {
        m.apply(&ev(
            1000 + t * 1000,
            seen(DhcpMessage::Discover, BootDecision::Ignore),
        ));
    }
    let row = m.machine(&mac()).unwrap();
    assert_eq!(row.timeline.len(), 1);
    assert_eq!((row.timeline[0].repeats, row.timeline[0].at), (3, 3000));
    assert_eq!(row.state, MachineState::Discovered);
}

#[test]
fn inventory_labels_seen_machines_and_lists_unseen_ones() {
    let mut m = Model::default();
    m.apply(&ev(1, known("dev-01", true)));
    let row = m.machine(&mac()).unwrap();
    assert_eq!(
        (row.state, row.hostname.as_deref()),
        (MachineState::Known, Some("dev-01"))
    );
    assert_eq!(m.inventory.machines, 1);
    // Removed from the inventory and never seen: the row goes away.
    m.apply(&ev(
        2,
        EventKind::InventoryReloaded {
            machines: vec![],
            profiles: vec![],
            groups: vec![],
            group_info: vec![],
        },
    ));
    assert!(m.machines.is_empty());
    // Seen, then adopted: the same row gains its name.
    m.apply(&ev(3, seen(DhcpMessage::Discover, BootDecision::Hold)));
    m.apply(&ev(4, known("dev-09", true)));
    assert_eq!(m.machines.len(), 1);
    assert_eq!(m.machines[0].hostname.as_deref(), Some("dev-09"));
}

#[test]
fn a_full_boot_walks_through_the_states() {
    let mut m = Model::default();
    m.apply(&ev(0, known("dev-01", true)));
    m.apply(&ev(
        1000,
        seen(
            DhcpMessage::Discover,
            BootDecision::Install {
                profile: "ubuntu-2404".into(),
            },
        ),
    ));
    assert_eq!(m.machine(&mac()).unwrap().state, MachineState::Booting);
    m.apply(&lease(1100));
    m.apply(&started(1200, 1, "ipxe.efi", 1_000_000));
    assert_eq!(
        m.machine(&mac()).unwrap().state,
        MachineState::Loading,
        "client IP resolved through the lease"
    );
    m.apply(&ev(
        1300,
        EventKind::Progress {
            samples: vec![(1, 400_000)],
        },
    ));
    assert_eq!(m.transfers[&1].fraction(), Some(0.4));
    m.apply(&ev(
        1700,
        EventKind::TransferDone {
            id: 1,
            bytes: 1_000_000,
            millis: 500,
        },
    ));
    assert!(m.transfers.is_empty());
    assert_eq!(
        m.recent.back().unwrap().state,
        TransferState::Done { at: 1700 }
    );
    let client = "10.99.0.100".parse().unwrap();
    m.apply(&ev(
        2000,
        EventKind::ScriptServed {
            client,
            mac: None,
            hostname: Some("dev-01".into()),
            kind: ScriptKind::Install,
            profile: Some("ubuntu-2404".into()),
            chain: Default::default(),
        },
    ));
    m.apply(&ev(
        9000,
        EventKind::ConfigServed {
            client,
            hostname: "dev-01".into(),
            name: "user-data".into(),
        },
    ));
    assert_eq!(m.machine(&mac()).unwrap().state, MachineState::Installing);
    m.apply(&ev(
        60_000,
        EventKind::InstallDone {
            hostname: "dev-01".into(),
            mac: None,
        },
    ));
    let row = m.machine(&mac()).unwrap();
    assert_eq!(
        (row.state, row.install),
        (MachineState::Installed, Some(false))
    );
    let steps: Vec<String> = row.timeline.iter().map(Step::what).collect();
    assert_eq!(
        steps,
        [
            "UEFI DISCOVER",
            "TFTP ipxe.efi",
            "script install (ubuntu-2404)",
            "config user-data",
            "install done"
        ]
    );
    assert_eq!(row.timeline[1].millis, Some(500));
    assert_eq!(
        (m.counters.transfers_done, m.counters.bytes_served),
        (1, 1_000_000)
    );
}

#[test]
fn a_failed_transfer_marks_the_machine_failed_with_the_reason() {
    let mut m = Model::default();
    m.apply(&lease(0));
    m.apply(&started(10, 5, "undionly.kpxe", 100));
    m.apply(&ev(
        20,
        EventKind::TransferFailed {
            id: 5,
            bytes: 10,
            reason: "timed out after 5 tries".into(),
            probe: false,
        },
    ));
    let row = m.machine(&mac()).unwrap();
    assert_eq!(row.state, MachineState::Failed);
    assert_eq!(
        row.last_error.as_deref(),
        Some("undionly.kpxe: timed out after 5 tries")
    );
    assert!(row.timeline.back().unwrap().failed);
    assert_eq!(m.counters.transfers_failed, 1);
}

#[test]
fn a_size_probe_is_not_a_failure() {
    let mut m = Model::default();
    m.apply(&lease(0));
    m.apply(&started(10, 5, "undionly.kpxe", 100));
    m.apply(&ev(
        20,
        EventKind::TransferFailed {
            id: 5,
            bytes: 0,
            reason: "client aborted after OACK".into(),
            probe: true,
        },
    ));
    let row = m.machine(&mac()).unwrap();
    assert_ne!(row.state, MachineState::Failed);
    assert_eq!(
        row.timeline.back().unwrap().what(),
        "TFTP size probe undionly.kpxe"
    );
    assert_eq!((m.counters.transfers_failed, m.counters.probes), (0, 1));
    assert!(m.recent.is_empty());
}

#[test]
fn leases_follow_bind_and_end() {
    let mut m = Model::default();
    m.apply(&lease(0));
    assert_eq!(m.leases.len(), 1);
    m.apply(&ev(
        5,
        EventKind::LeaseEnded {
            mac: mac(),
            ip: "10.99.0.100".parse().unwrap(),
            why: LeaseEnd::Released,
        },
    ));
    assert!(m.leases.is_empty());
}

#[test]
fn the_log_is_a_bounded_ring() {
    let mut m = Model::default();
    for i in 0..(LOG_LINES as u64 + 10) {
        m.apply(&ev(
            i,
            EventKind::Log {
                level: Level::Info,
                target: "t".into(),
                message: format!("{i}"),
            },
        ));
    }
    assert_eq!(m.log.len(), LOG_LINES);
    assert_eq!(m.log.front().unwrap().message, "10");
    assert_eq!(m.generation, LOG_LINES as u64 + 10);
}

#[test]
fn a_size_probe_behind_a_later_step_rewords_its_own_step() {
    let mut m = Model::default();
    m.apply(&lease(0));
    m.apply(&started(10, 5, "undionly.kpxe", 100));
    m.apply(&ev(15, seen(DhcpMessage::Request, BootDecision::Hold)));
    m.apply(&ev(
        20,
        EventKind::TransferFailed {
            id: 5,
            bytes: 0,
            reason: "client aborted after OACK".into(),
            probe: true,
        },
    ));
    let steps: Vec<String> = m
        .machine(&mac())
        .unwrap()
        .timeline
        .iter()
        .map(Step::what)
        .collect();
    assert_eq!(steps, ["TFTP size probe undionly.kpxe", "UEFI REQUEST"]);
}

#[test]
fn a_snapshot_read_back_and_reindexed_is_the_same_model() {
    let mut m = Model::default();
    m.apply(&ev(0, known("dev-01", true)));
    m.apply(&lease(1));
    m.apply(&started(2, 1, "ipxe.efi", 10));
    let json = serde_json::to_string(&m).unwrap();
    let mut back: Model = serde_json::from_str(&json).unwrap();
    back.reindex();
    assert_eq!(back.machine(&mac()), m.machine(&mac()));
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    // The indexes work: a rebind moves the lease.
    back.apply(&bound(3, mac(), "10.99.0.101", false));
    assert_eq!(back.leases.len(), 1);
}

#[test]
fn a_machine_idle_after_its_script_is_stuck_until_it_asks_for_the_kernel() {
    let mut m = Model::default();
    m.apply(&ev(0, known("dev-01", true)));
    let install = BootDecision::Install {
        profile: "ubuntu-2404".into(),
    };
    m.apply(&ev(1000, seen(DhcpMessage::Discover, install)));
    m.apply(&lease(1100));
    m.apply(&started(1200, 1, "ipxe.efi", 1000));
    m.apply(&ev(
        1300,
        EventKind::TransferDone {
            id: 1,
            bytes: 1000,
            millis: 100,
        },
    ));
    m.apply(&ev(
        2000,
        EventKind::ScriptServed {
            client: "10.99.0.100".parse().unwrap(),
            mac: None,
            hostname: Some("dev-01".into()),
            kind: ScriptKind::Install,
            profile: Some("ubuntu-2404".into()),
            chain: crate::boot::decide::Chain::Ipxe,
        },
    ));
    let row = m.machine(&mac()).unwrap();
    assert_eq!((row.stage, row.stage_since), (Some(Stage::Script), 2000));
    let limit = m.stage_timeouts.script;
    let stuck = |m: &Model, now| {
        m.alerts(now)
            .into_iter()
            .find(|a| matches!(a, Alert::MachinesStuck { .. }))
    };
    assert_eq!(stuck(&m, 2000 + limit), None);
    let Some(Alert::MachinesStuck {
        count,
        first,
        stuck: s,
    }) = stuck(&m, 2000 + limit + 1)
    else {
        panic!("no stuck alert: {:?}", m.alerts(2000 + limit + 1));
    };
    assert_eq!(
        (count, first.as_str(), s.stage),
        (1, "dev-01", Stage::Script)
    );
    let o = m.overview(2000 + limit + 1);
    assert_eq!((o.stuck, o.in_stage(Stage::Script)), (1, 1));
    // The kernel request ends it.
    let late = 2000 + limit + 10;
    m.apply(&started(late, 2, "vmlinuz", 1000));
    assert_eq!(m.machine(&mac()).unwrap().stage, Some(Stage::Kernel));
    assert_eq!(stuck(&m, late + 1), None, "cleared when the cause ends");
    m.apply(&ev(
        late + 5,
        EventKind::InstallDone {
            hostname: "dev-01".into(),
            mac: None,
        },
    ));
    let o = m.overview(late + 6);
    assert_eq!((o.in_stage(Stage::Done), o.done_per_minute), (1, 1));
    assert_eq!(m.overview(late + 6 + RATE_WINDOW_MS).done_per_minute, 0);
}

#[test]
fn a_lease_is_offered_bound_expiring_expired_or_quarantined() {
    use crate::dhcp::DhcpReply;
    let ip: std::net::Ipv4Addr = "10.99.0.100".parse().unwrap();
    let mut m = Model::default();
    let offer = |at, proxy| {
        ev(
            at,
            EventKind::DhcpReplied {
                mac: mac(),
                reply: DhcpReply::Offer,
                ip: Some(ip),
                boot_file: None,
                proxy,
            },
        )
    };
    m.apply(&offer(1_000, true));
    assert!(m.leases.is_empty(), "a proxyDHCP answer holds no address");
    m.apply(&offer(1_000, false));
    assert_eq!(m.leases[&ip].state(1_500), LeaseState::Offered);
    assert_eq!(
        m.leases[&ip].state(1_000 + crate::dhcp::handler::OFFER_HOLD_MS),
        LeaseState::Expired
    );
    m.apply(&lease(2_000)); // expires 2_000 + 120_000
    let l = &m.leases[&ip];
    assert_eq!(l.state(3_000), LeaseState::Bound);
    assert_eq!(l.state(2_000 + 100_000), LeaseState::Expiring);
    assert_eq!(l.state(2_000 + 120_000), LeaseState::Expired);
    // A renewal's OFFER never downgrades a bound lease.
    m.apply(&offer(3_000, false));
    assert_eq!(m.leases[&ip].kind, LeaseKind::Bound);
    m.apply(&ev(
        4_000,
        EventKind::LeaseEnded {
            mac: mac(),
            ip,
            why: LeaseEnd::Declined,
        },
    ));
    assert_eq!(m.leases[&ip].state(5_000), LeaseState::Quarantined);
    let out = 4_000 + crate::dhcp::handler::DECLINE_QUARANTINE_MS;
    assert_eq!(m.leases[&ip].state(out), LeaseState::Expired);
    m.apply(&ev(
        6_000,
        EventKind::LeaseEnded {
            mac: mac(),
            ip,
            why: LeaseEnd::Released,
        },
    ));
    assert!(m.leases.is_empty());
}

#[test]
fn forgetting_drops_an_unknown_row_and_keeps_a_known_one() {
    let mut m = Model::default();
    m.apply(&ev(1, seen(DhcpMessage::Discover, BootDecision::Hold)));
    assert_eq!(m.machines.len(), 1);
    m.apply(&ev(2, EventKind::MachineForgotten { mac: mac() }));
    assert!(m.machines.is_empty() && m.machine(&mac()).is_none());
    // It comes back when it asks again.
    m.apply(&ev(3, seen(DhcpMessage::Discover, BootDecision::Hold)));
    assert!(m.machine(&mac()).is_some());
    m.apply(&ev(4, known("dev-01", false)));
    m.apply(&ev(5, EventKind::MachineForgotten { mac: mac() }));
    assert!(m.machine(&mac()).is_some(), "known machines stay");
}

/// A rule its facts matched (by vendor or product) is the better-informed
/// proposal, and the machine's next DHCP sighting, which knows no facts,
/// does not take it back.
#[test]
fn a_facts_proposal_survives_the_next_dhcp_sighting() {
    use crate::inventory::rules::{RuleHit, RuleMode};
    let hit = |rule: &str, profile: &str| RuleHit {
        rule: rule.into(),
        mode: RuleMode::Propose,
        group: "lab".into(),
        profile: profile.into(),
        hostname: "lab-{n}".into(),
        install: false,
    };
    let seen_with = |rule: Option<RuleHit>| match seen(DhcpMessage::Discover, BootDecision::Hold) {
        EventKind::DhcpSeen(s) => EventKind::DhcpSeen(DhcpSeen { rule, ..s }),
        _ => unreachable!(),
    };
    let mut m = Model::default();
    m.apply(&ev(
        1000,
        seen_with(Some(hit("lab/_defaults.yaml:3", "by-mac"))),
    ));
    let proposal = |m: &Model| {
        m.machine(&mac())
            .and_then(|r| r.proposal.clone())
            .map(|p| p.profile)
    };
    assert_eq!(proposal(&m).as_deref(), Some("by-mac"));

    let facts = crate::boot::identity::Facts::default();
    m.apply(&ev(
        2000,
        EventKind::FactsReported {
            mac: mac(),
            facts: facts.clone(),
            rule: Some(hit("lab/_defaults.yaml:9", "by-vendor")),
        },
    ));
    assert_eq!(proposal(&m).as_deref(), Some("by-vendor"));
    for (at, rule) in [
        (3000, None),
        (4000, Some(hit("lab/_defaults.yaml:3", "by-mac"))),
    ] {
        m.apply(&ev(at, seen_with(rule)));
        assert_eq!(proposal(&m).as_deref(), Some("by-vendor"), "at {at}");
    }
    // Facts that match nothing leave DHCP's proposal.
    m.apply(&ev(
        5000,
        EventKind::FactsReported {
            mac: mac(),
            facts,
            rule: None,
        },
    ));
    m.apply(&ev(
        6000,
        seen_with(Some(hit("lab/_defaults.yaml:3", "by-mac"))),
    ));
    assert_eq!(proposal(&m).as_deref(), Some("by-mac"));
}
