//! The alerts the model decides: rogue DHCP servers, exhausted and nearly
//! full pools, inventory errors, repeated transfer failures; each raised
//! and cleared by events, and bounded.

use super::*;

#[test]
fn alerts_for_rogue_servers_exhausted_pools_and_inventory_errors() {
    let mut m = Model::default();
    for _ in 0..3 {
        m.apply(&ev(
            1,
            EventKind::RogueDhcp {
                server: "10.99.0.254".parse().unwrap(),
                offered: None,
                mac: None,
            },
        ));
    }
    m.apply(&ev(
        2,
        EventKind::PoolExhausted {
            subnet: "10.99.0.0/24".into(),
            mac: mac(),
        },
    ));
    m.apply(&ev(
        3,
        EventKind::InventoryError {
            problems: vec![Problem {
                file: "a.yaml".into(),
                line: Some(2),
                message: "x".into(),
            }],
        },
    ));
    assert_eq!(
        m.alerts(m.now),
        vec![
            Alert::RogueDhcp {
                server: "10.99.0.254".parse().unwrap(),
                count: 3
            },
            Alert::PoolExhausted {
                subnet: "10.99.0.0/24".into()
            },
            Alert::InventoryErrors { count: 1 },
        ]
    );
    assert_eq!(
        m.log.iter().filter(|l| l.target == "dhcp").count(),
        1,
        "a rogue server is logged once"
    );
    m.apply(&ev(4, known("a", false)));
    assert!(
        m.inventory.problems.is_empty(),
        "a good reload clears the errors"
    );
}

fn rogue(at: Millis) -> Event {
    ev(
        at,
        EventKind::RogueDhcp {
            server: "10.99.0.254".parse().unwrap(),
            offered: None,
            mac: None,
        },
    )
}

pub(super) fn bound(at: Millis, m: Mac, ip: &str, fixed: bool) -> Event {
    ev(
        at,
        EventKind::LeaseBound {
            mac: m,
            ip: ip.parse().unwrap(),
            hostname: None,
            expires: at + 120_000,
            fixed,
        },
    )
}

fn other_mac(n: u8) -> Mac {
    Mac([0x52, 0x54, 0x00, 0x00, 0x01, n])
}

fn with_pool(first: &str, last: &str) -> Model {
    let mut m = Model::default();
    m.apply(&ev(
        0,
        EventKind::Started(ServerInfo {
            address: "10.99.0.1".parse().unwrap(),
            dhcp_mode: crate::config::DhcpMode::Full,
            dhcp: Some("0.0.0.0:67".parse().unwrap()),
            proxy: None,
            tftp: "10.99.0.1:69".parse().unwrap(),
            http: "10.99.0.1:80".parse().unwrap(),
            api: "127.0.0.1:8081".parse().unwrap(),
            pools: vec![PoolInfo {
                subnet: "10.99.0.0/24".into(),
                first: first.parse().unwrap(),
                last: last.parse().unwrap(),
            }],
            unknown_policy: crate::config::UnknownPolicy::Hold,
            interfaces: vec![],
        }),
    ));
    m
}

#[test]
fn a_rogue_server_alert_clears_after_ten_quiet_minutes_and_returns_with_it() {
    let mut m = Model::default();
    m.apply(&rogue(1_000));
    let raised = |m: &Model, now| {
        m.alerts(now)
            .iter()
            .any(|a| matches!(a, Alert::RogueDhcp { .. }))
    };
    assert!(raised(&m, 1_000 + ROGUE_QUIET_MS - 1));
    assert!(!raised(&m, 1_000 + ROGUE_QUIET_MS), "quiet for 10 minutes");
    m.apply(&rogue(1_000 + ROGUE_QUIET_MS + 5));
    assert_eq!(
        m.alerts(m.now),
        vec![Alert::RogueDhcp {
            server: "10.99.0.254".parse().unwrap(),
            count: 2
        }]
    );
    assert_eq!(
        m.log.iter().filter(|l| l.target == "dhcp").count(),
        2,
        "its return is logged like its first answer"
    );
}

#[test]
fn an_exhausted_pool_clears_when_it_hands_out_a_new_address() {
    let mut m = Model::default();
    let exhausted = |m: &Model| {
        m.alerts(m.now).contains(&Alert::PoolExhausted {
            subnet: "10.99.0.0/24".into(),
        })
    };
    m.apply(&bound(1, other_mac(1), "10.99.0.100", false));
    m.apply(&ev(
        2,
        EventKind::PoolExhausted {
            subnet: "10.99.0.0/24".into(),
            mac: mac(),
        },
    ));
    assert!(exhausted(&m));
    m.apply(&bound(3, other_mac(1), "10.99.0.100", false));
    assert!(exhausted(&m), "a renewal proves no room");
    m.apply(&bound(4, other_mac(2), "10.99.0.21", true));
    assert!(exhausted(&m), "a fixed address is not from the pool");
    m.apply(&bound(5, other_mac(3), "10.98.0.100", false));
    assert!(exhausted(&m), "another pool's address");
    m.apply(&bound(6, mac(), "10.99.0.101", false));
    assert!(!exhausted(&m));
    assert!(m.exhausted_pools.is_empty());
}

#[test]
fn inventory_errors_clear_with_a_good_reload() {
    let mut m = Model::default();
    m.apply(&ev(
        1,
        EventKind::InventoryError {
            problems: vec![Problem {
                file: "a.yaml".into(),
                line: None,
                message: "x".into(),
            }],
        },
    ));
    assert_eq!(m.alerts(m.now), vec![Alert::InventoryErrors { count: 1 }]);
    m.apply(&ev(2, known("a", false)));
    assert!(m.alerts(m.now).is_empty());
}

#[test]
fn a_nearly_full_pool_alert_follows_its_leases() {
    let mut m = with_pool("10.99.0.100", "10.99.0.109");
    for n in 0..9 {
        m.apply(&bound(
            1,
            other_mac(n),
            &format!("10.99.0.{}", 100 + n),
            false,
        ));
    }
    assert_eq!(
        m.alerts(m.now),
        vec![Alert::PoolNearlyFull {
            subnet: "10.99.0.0/24".into(),
            percent: 90
        }]
    );
    m.apply(&ev(
        2,
        EventKind::LeaseEnded {
            mac: other_mac(0),
            ip: "10.99.0.100".parse().unwrap(),
            why: LeaseEnd::Expired,
        },
    ));
    assert!(m.alerts(m.now).is_empty(), "80% is not nearly full");
}

#[test]
fn repeated_transfer_failures_raise_an_alert_that_ages_out() {
    let mut m = Model::default();
    m.apply(&lease(0));
    for id in 0..5 {
        m.apply(&started(10, id, "vmlinuz", 100));
        m.apply(&ev(
            1_000 + id,
            EventKind::TransferFailed {
                id,
                bytes: 0,
                reason: "timed out".into(),
                probe: false,
            },
        ));
    }
    assert_eq!(m.alerts(m.now), vec![Alert::TransferFailures { count: 5 }]);
    assert!(
        m.alerts(1_000 + FAILURE_WINDOW_MS).is_empty(),
        "the oldest failure left the window: four are not an alert"
    );
}

#[test]
fn rogue_servers_are_remembered_up_to_a_cap_the_quietest_going_first() {
    let mut m = Model::default();
    for n in 0..=ROGUE_SERVERS_KEPT as u32 {
        m.apply(&ev(
            u64::from(n),
            EventKind::RogueDhcp {
                server: Ipv4Addr::from(0x0a63_0000 + n),
                offered: None,
                mac: None,
            },
        ));
    }
    assert_eq!(m.rogue_servers.len(), ROGUE_SERVERS_KEPT);
    assert!(!m.rogue_servers.contains_key(&Ipv4Addr::new(10, 99, 0, 0)));
}
