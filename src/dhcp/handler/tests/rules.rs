//! Rules for unknown machines: the sighting carries the first rule an
//! unknown netbooting machine matches, by MAC prefix, segment and option 82.

use super::*;
use crate::dhcp::relay_agent::{CIRCUIT_ID, RelayAgentInfo};
use crate::inventory::rules::{MacPrefix, Rule, RuleHit, RuleMatch, RuleMode};

fn rule(name: &str, when: RuleMatch) -> Rule {
    Rule {
        origin: Default::default(),
        when,
        hit: RuleHit {
            rule: name.into(),
            mode: RuleMode::Auto,
            group: "k8s-dev".into(),
            profile: "ubuntu-2404".into(),
            hostname: "dev-{n:02}".into(),
            install: false,
        },
    }
}

fn with_rules() -> World {
    let mut w = world("");
    w.inventory.rules = vec![
        rule(
            "port",
            RuleMatch {
                circuit_id: Some("Gi1/0/*".into()),
                subnet: Some("10.98.0.0/24".parse().unwrap()),
                ..Default::default()
            },
        ),
        rule(
            "oui",
            RuleMatch {
                mac: Some(MacPrefix::parse("52:54:00:12:*").unwrap()),
                subnet: Some("10.99.0.0/24".parse().unwrap()),
                ..Default::default()
            },
        ),
    ];
    w
}

fn matched(w: &mut World, req: &Request) -> Option<String> {
    let out = run(w, req, Port::Dhcp, DhcpMode::Full);
    out.seen.rule.map(|r| r.rule)
}

#[test]
fn an_unknown_machine_carries_the_first_rule_it_matches() {
    let mut w = with_rules();
    let unknown = request(|p| set_mac(p, UNKNOWN));
    assert_eq!(matched(&mut w, &unknown).as_deref(), Some("oui"));
    // Through a relay on 10.98.0.0/24, from switch port Gi1/0/7: the
    // segment is the relay's, so the OUI rule's subnet no longer holds.
    let relayed = request(|p| {
        set_mac(p, UNKNOWN);
        p.giaddr = "10.98.0.1".parse().unwrap();
        p.set_option(
            opt::RELAY_AGENT,
            RelayAgentInfo::encode(&[(CIRCUIT_ID, b"Gi1/0/7")]),
        );
    });
    assert_eq!(matched(&mut w, &relayed).as_deref(), Some("port"));
    let other_port = request(|p| {
        set_mac(p, UNKNOWN);
        p.giaddr = "10.98.0.1".parse().unwrap();
        p.set_option(
            opt::RELAY_AGENT,
            RelayAgentInfo::encode(&[(CIRCUIT_ID, b"Gi2/0/7")]),
        );
    });
    assert_eq!(matched(&mut w, &other_port), None);
    let other_oui = request(|p| set_mac(p, [0x52, 0x54, 0, 0x13, 0, 1]));
    assert_eq!(matched(&mut w, &other_oui), None);
}

#[test]
fn known_machines_and_clients_that_do_not_netboot_match_no_rule() {
    let mut w = with_rules();
    w.inventory.rules[1].when.mac = Some(MacPrefix::parse("52:54:00:*").unwrap());
    let known = request(|p| set_mac(p, DEV01));
    assert_eq!(matched(&mut w, &known), None, "dev-01 is in the inventory");
    let os = request(|p| {
        set_mac(p, UNKNOWN);
        p.options
            .retain(|(code, _)| *code != opt::CLASS_ID && *code != opt::CLIENT_ARCH);
    });
    assert!(!os.is_boot_client());
    assert_eq!(matched(&mut w, &os), None, "an installed OS renewing");
}
