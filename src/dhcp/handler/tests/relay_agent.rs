//! Option 82: echoed to the relay, shown, and matched by pools.

use super::*;
use crate::dhcp::relay_agent::{CIRCUIT_ID, REMOTE_ID, RelayAgentInfo};

/// Two pools on the relay's subnet: one for switch port Gi1/0/12 of sw-a,
/// and the rest of the subnet.
const PORT_POOL: &str = "    - subnet: 10.97.0.0/24\n      range: 10.97.0.50-10.97.0.59\n      match:\n        circuit_id: Gi1/0/12\n        remote_id: sw-a*\n    - subnet: 10.97.0.0/24\n      range: 10.97.0.100-10.97.0.109\n";

fn relayed(circuit: &[u8], remote: &[u8]) -> Request {
    request(|p| {
        p.giaddr = "10.97.0.1".parse().unwrap();
        p.set_option(
            opt::RELAY_AGENT,
            RelayAgentInfo::encode(&[(CIRCUIT_ID, circuit), (REMOTE_ID, remote)]),
        );
    })
}

fn last_octet(o: &Outcome) -> u8 {
    reply(o).yiaddr.octets()[3]
}

#[test]
fn the_offer_echoes_option_82_and_the_console_sees_the_port() {
    let mut w = world(PORT_POOL);
    let req = relayed(b"Gi1/0/12", b"sw-a1");
    let out = run(&mut w, &req, Port::Dhcp, DhcpMode::Full);
    assert_eq!(
        reply(&out).option(opt::RELAY_AGENT),
        Some(&req.relay_agent.as_ref().unwrap().raw[..])
    );
    let seen = out.seen.relay_agent.expect("shown");
    assert_eq!(
        (seen.circuit_id.as_deref(), seen.remote_id.as_deref()),
        (Some("Gi1/0/12"), Some("sw-a1"))
    );
}

#[test]
fn a_pool_matching_the_port_wins_and_others_fall_back() {
    let mut w = world(PORT_POOL);
    let out = run(
        &mut w,
        &relayed(b"Gi1/0/12", b"sw-a1"),
        Port::Dhcp,
        DhcpMode::Full,
    );
    assert!((50..=59).contains(&last_octet(&out)), "the port's pool");
    let other_port = request(|p| {
        set_mac(p, [2, 0, 0, 0, 0, 2]);
        p.giaddr = "10.97.0.1".parse().unwrap();
        p.set_option(
            opt::RELAY_AGENT,
            RelayAgentInfo::encode(&[(CIRCUIT_ID, b"Gi1/0/13"), (REMOTE_ID, b"sw-a1")]),
        );
    });
    let out = run(&mut w, &other_port, Port::Dhcp, DhcpMode::Full);
    assert!(
        (100..=109).contains(&last_octet(&out)),
        "the catch-all pool"
    );
    let no_82 = request(|p| {
        set_mac(p, [2, 0, 0, 0, 0, 3]);
        p.giaddr = "10.97.0.1".parse().unwrap();
    });
    let out = run(&mut w, &no_82, Port::Dhcp, DhcpMode::Full);
    assert!((100..=109).contains(&last_octet(&out)));
}

#[test]
fn with_only_matching_pools_an_unmatched_port_gets_nothing() {
    let only = "    - subnet: 10.97.0.0/24\n      range: 10.97.0.50-10.97.0.59\n      match:\n        circuit_id: Gi1/0/12\n";
    let mut w = world(only);
    let out = run(
        &mut w,
        &relayed(b"Gi1/0/99", b"x"),
        Port::Dhcp,
        DhcpMode::Full,
    );
    assert_eq!(out.silent, Some(Unanswered::NoPoolForSegment));
}

#[test]
fn a_bad_match_pattern_is_refused_with_its_line() {
    let bad = "    - subnet: 10.97.0.0/24\n      range: 10.97.0.50-10.97.0.59\n      match:\n        circuit_id: \"Gi*/12\"\n";
    let text = format!("dhcp:\n  pools:\n{bad}");
    let err = Config::from_text(&text, None).unwrap_err().to_string();
    assert!(
        err.contains(":6") && err.contains("`*` may only end"),
        "{err}"
    );
    let unknown_key = "dhcp:\n  pools:\n    - subnet: 10.97.0.0/24\n      range: 10.97.0.50-10.97.0.59\n      match:\n        vlan: 12\n";
    assert!(Config::from_text(unknown_key, None).is_err());
}
