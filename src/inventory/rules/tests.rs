use std::path::Path;

use test_case::test_case;

use super::*;
use crate::inventory::{LoadOptions, load};

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn sighting(m: &str) -> Sighting<'static> {
    Sighting::of_mac(mac(m))
}

fn rule(when: RuleMatch, name: &str) -> Rule {
    Rule {
        origin: Origin::default(),
        when,
        hit: RuleHit {
            rule: name.into(),
            mode: RuleMode::Propose,
            group: "g".into(),
            profile: "p".into(),
            hostname: "n-{n}".into(),
            install: false,
        },
    }
}

#[test_case("52:54:00:*", "52:54:00:12:34:56", true)]
#[test_case("52:54:00:*", "52:54:01:12:34:56", false)]
#[test_case("52-54-*", "52:54:ff:12:34:56", true)]
#[test_case("52:54:00:12:34:56", "52:54:00:12:34:56", true)]
#[test_case("52:54:00:12:34:56", "52:54:00:12:34:57", false)]
#[test_case("52:54:00:*", "AA:54:00:12:34:56", false)]
fn mac_prefixes(pattern: &str, m: &str, hit: bool) {
    assert_eq!(MacPrefix::parse(pattern).unwrap().matches(&mac(m)), hit);
}

#[test_case("*" ; "everything")]
#[test_case("52:54:00" ; "partial without star")]
#[test_case("5:54:*" ; "short octet")]
#[test_case("52:54:00:12:34:56:*" ; "a full mac then a star")]
#[test_case("52:54:00:12:34:56:78" ; "seven octets")]
#[test_case("zz:*" ; "not hex")]
#[test_case("52:54:00:00:00:00:00:00:00:00:00:*" ; "too long")]
fn bad_mac_patterns_are_refused(pattern: &str) {
    assert!(MacPrefix::parse(pattern).is_err(), "{pattern}");
}

#[test]
fn every_criterion_must_hold() {
    let when = RuleMatch {
        subnet: Some("10.20.0.0/16".parse().unwrap()),
        relay: Some("10.20.5.1/32".parse().unwrap()),
        circuit_id: Some("Gi1/0/*".into()),
        remote_id: Some("sw-rack12".into()),
        mac: Some(MacPrefix::parse("52:54:00:*").unwrap()),
        vendor: Some("dell*".into()),
        product: Some("PowerEdge R650".into()),
        arch: vec![Firmware::UefiX64, Firmware::HttpX64],
    };
    let full = Sighting {
        mac: mac("52:54:00:01:02:03"),
        firmware: Some(Firmware::UefiX64),
        segment: Some("10.20.5.1".parse().unwrap()),
        relay: Some("10.20.5.1".parse().unwrap()),
        circuit_id: Some("Gi1/0/12"),
        remote_id: Some("sw-rack12"),
        vendor: Some("Dell Inc."),
        product: Some("poweredge r650"),
    };
    assert!(when.matches(&full));
    let breaks: [(&str, Sighting<'_>); 10] = [
        (
            "mac",
            Sighting {
                mac: mac("52:55:00:01:02:03"),
                ..full
            },
        ),
        (
            "arch",
            Sighting {
                firmware: Some(Firmware::Bios),
                ..full
            },
        ),
        (
            "no arch",
            Sighting {
                firmware: None,
                ..full
            },
        ),
        (
            "segment",
            Sighting {
                segment: Some("10.21.0.1".parse().unwrap()),
                ..full
            },
        ),
        (
            "relay",
            Sighting {
                relay: Some("10.20.5.2".parse().unwrap()),
                ..full
            },
        ),
        (
            "not relayed",
            Sighting {
                relay: None,
                ..full
            },
        ),
        (
            "circuit",
            Sighting {
                circuit_id: Some("Gi2/0/1"),
                ..full
            },
        ),
        (
            "circuit case",
            Sighting {
                circuit_id: Some("gi1/0/1"),
                ..full
            },
        ),
        (
            "remote",
            Sighting {
                remote_id: None,
                ..full
            },
        ),
        (
            "vendor unknown",
            Sighting {
                vendor: None,
                ..full
            },
        ),
    ];
    for (what, s) in breaks {
        assert!(!when.matches(&s), "{what} should not match");
    }
    assert!(!when.matches(&Sighting {
        product: Some("PowerEdge R6501"),
        ..full
    }));
}

#[test]
fn the_first_matching_rule_wins() {
    let oui = |p: &str| RuleMatch {
        mac: Some(MacPrefix::parse(p).unwrap()),
        ..Default::default()
    };
    let rules = [
        rule(oui("52:54:00:aa:*"), "narrow"),
        rule(oui("52:54:00:*"), "wide"),
    ];
    let name = |m: &str| first_match(&rules, &sighting(m)).map(|r| r.hit.rule.as_str());
    assert_eq!(name("52:54:00:aa:00:01"), Some("narrow"));
    assert_eq!(name("52:54:00:bb:00:01"), Some("wide"));
    assert_eq!(name("00:11:22:33:44:55"), None);
    assert_eq!(overlaps(&rules), vec![(1, 0)]);
}

#[test]
fn overlap_is_said_only_where_one_machine_could_match_both() {
    let m = |f: &dyn Fn(&mut RuleMatch)| {
        let mut x = RuleMatch::default();
        f(&mut x);
        x
    };
    let net = |s: &str| Some(s.parse::<Ipv4Net>().unwrap());
    let cases = [
        (
            m(&|x| x.subnet = net("10.0.0.0/8")),
            m(&|x| x.subnet = net("10.1.0.0/16")),
            true,
        ),
        (
            m(&|x| x.subnet = net("10.0.0.0/16")),
            m(&|x| x.subnet = net("10.1.0.0/16")),
            false,
        ),
        (
            m(&|x| x.vendor = Some("Dell*".into())),
            m(&|x| x.vendor = Some("dell inc.".into())),
            true,
        ),
        (
            m(&|x| x.vendor = Some("Dell*".into())),
            m(&|x| x.vendor = Some("HPE".into())),
            false,
        ),
        (
            m(&|x| x.circuit_id = Some("Gi1*".into())),
            m(&|x| x.circuit_id = Some("Gi*".into())),
            true,
        ),
        (
            m(&|x| x.arch = vec![Firmware::Bios]),
            m(&|x| x.arch = vec![Firmware::UefiX64]),
            false,
        ),
        // Different criteria: a machine can meet both.
        (
            m(&|x| x.arch = vec![Firmware::Bios]),
            m(&|x| x.vendor = Some("HPE".into())),
            true,
        ),
    ];
    for (i, (a, b, want)) in cases.iter().enumerate() {
        assert_eq!(a.overlaps(b), *want, "case {i}");
        assert_eq!(b.overlaps(a), *want, "case {i} reversed");
    }
}

#[test]
fn hostname_patterns() {
    assert_eq!(expand("dev-{n:02}", 3), "dev-03");
    assert_eq!(expand("r{n:03}-x", 7), "r007-x");
    assert!(check_hostname_pattern("dev-{n:02}").is_ok());
    assert!(check_hostname_pattern("dev").is_err(), "no {{n}}");
    assert!(check_hostname_pattern("dev_{n}").is_err(), "not a label");
    assert!(check_hostname_pattern(&format!("{}{{n}}", "a".repeat(60))).is_err());
    assert!(
        check_hostname_pattern(&"{n}".repeat(50)).is_err(),
        "too long"
    );
    // A huge width is capped rather than allocating.
    assert_eq!(expand("{n:0999999999}", 1).len(), 9);
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn problems(root: &Path) -> Vec<String> {
    load(root, &LoadOptions::default())
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

const PROFILE: (&str, &str) = ("_profiles/ubuntu.yaml", "boot: {local: true}\n");

#[test]
fn rules_load_in_tree_order_with_their_groups_defaults() {
    let dir = tree(&[
        PROFILE,
        (
            "_defaults.yaml",
            "adopt:\n  rules:\n    - match: {mac: \"52:54:00:*\"}\n      group: lab\n",
        ),
        (
            "lab/_defaults.yaml",
            "profile: ubuntu\nadopt:\n  hostname_pattern: lab-{n:02}\n  install: true\n  rules:\n    - match:\n        arch: [uefi, bios]\n        circuit_id: \"Gi1/0/*\"\n      mode: auto\n      hostname: rack-{n:03}\n      install: true\n",
        ),
    ]);
    let loaded = load(dir.path(), &LoadOptions::default());
    assert_eq!(loaded.problems, vec![]);
    let rules = &loaded.inventory.rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0].hit,
        RuleHit {
            rule: "_defaults.yaml:3".into(),
            mode: RuleMode::Propose,
            group: "lab".into(),
            profile: "ubuntu".into(),
            hostname: "lab-{n:02}".into(),
            install: false, // adopt.install is the dialog's, never a rule's
        }
    );
    assert_eq!(rules[1].hit.rule, "lab/_defaults.yaml:6");
    assert_eq!(rules[1].hit.mode, RuleMode::Auto);
    assert_eq!(rules[1].hit.hostname, "rack-{n:03}");
    assert!(rules[1].hit.install);
    assert_eq!(
        loaded
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "lab/_defaults.yaml:6: this rule overlaps the rule at _defaults.yaml:3: the first match wins, so a machine both match is taken by that one"
        ]
    );
}

#[test]
fn check_reports_bad_rules_at_their_lines() {
    let dir = tree(&[
        PROFILE,
        (
            "lab/_defaults.yaml",
            concat!(
                "profile: ubuntu\n",
                "adopt:\n",
                "  rules:\n",
                "    - match: {mac: \"52:54\"}\n",      // 4
                "    - match: {colour: red}\n",         // 5
                "      mode: sometimes\n",              // 6
                "    - match: {subnet: 10.0.0.0/33}\n", // 7
                "      profile: nope\n",                // 8
                "    - match: {vendor: \"D*ll\"}\n",    // 9
                "    - match: {}\n",                    // 10
                "    - match: {arch: pdp11}\n",         // 11
                "    - match: {relay: 10.0.0.1}\n",     // 12
                "      group: elsewhere\n",             // 13
                "    - match: {relay: 10.0.0.1}\n",     // 14
                "      profile: nope\n",                // 15
                "    - match: {relay: 10.0.0.1}\n",     // 16
                "      hostname: fixed\n",              // 17
                "    - mode: auto\n",                   // 18
                "      flavour: x\n",                   // 19
            ),
        ),
    ]);
    let got = problems(dir.path());
    let want = [
        "lab/_defaults.yaml:4: MAC pattern \"52:54\" is not a whole MAC: end a prefix with `*`",
        "lab/_defaults.yaml:5: unknown key `colour` in a rule's match: (known: subnet, relay, circuit_id, remote_id, mac, vendor, product, arch)",
        "lab/_defaults.yaml:6: mode must be `propose` or `auto`",
        "lab/_defaults.yaml:7: subnet: \"10.0.0.0/33\" is not an IPv4 subnet (10.0.0.0/24) or address",
        "lab/_defaults.yaml:9: vendor: `*` may only end a pattern (a prefix match)",
        "lab/_defaults.yaml:10: an empty match: would take every unknown machine; say `subnet: 0.0.0.0/0` if that is meant",
        "lab/_defaults.yaml:13: unknown group `elsewhere`: no such folder in the inventory",
        "lab/_defaults.yaml:15: unknown profile `nope` (profiles: ubuntu)",
        "lab/_defaults.yaml:17: hostname pattern \"fixed\" has no {n}: every machine a rule takes needs its own name",
        "lab/_defaults.yaml:18: a rule needs a match:",
        "lab/_defaults.yaml:19: unknown key `flavour` in a rule (known: match, mode, group, profile, hostname, install)",
    ];
    for w in want {
        assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
    }
    assert!(
        got.iter()
            .any(|g| g.starts_with("lab/_defaults.yaml:11: unknown arch \"pdp11\"")),
        "{got:#?}"
    );
    assert_eq!(got.len(), want.len() + 1, "{got:#?}");
}

#[test]
fn a_rule_without_a_profile_anywhere_is_refused() {
    let dir = tree(&[
        PROFILE,
        (
            "lab/_defaults.yaml",
            "adopt:\n  rules:\n    - match: {mac: \"52:54:00:*\"}\n",
        ),
    ]);
    assert_eq!(
        problems(dir.path()),
        ["lab/_defaults.yaml:3: the rule names no profile and group lab has none: add profile:"]
    );
}

#[test]
fn more_rules_than_the_bound_are_refused_and_counted_at_each() {
    let mut text = String::from("profile: ubuntu\nadopt:\n  rules:\n");
    for i in 0..MAX_RULES + 3 {
        text.push_str(&format!("    - match: {{mac: \"52:54:00:{:02x}:*\"}}\n", i));
    }
    let dir = tree(&[PROFILE, ("lab/_defaults.yaml", &text)]);
    let loaded = load(dir.path(), &LoadOptions::default());
    assert_eq!(loaded.inventory.rules.len(), MAX_RULES);
    assert_eq!(loaded.problems.len(), 3);
    assert!(loaded.problems[0].message.starts_with("more than 64 rules"));
    assert_eq!(loaded.problems[0].line, Some(4 + MAX_RULES as u32));
    assert!(
        loaded.warnings.is_empty(),
        "distinct prefixes do not overlap"
    );
}

#[test]
fn a_pattern_past_the_length_bound_is_refused() {
    let long = "x".repeat(MAX_PATTERN + 1);
    let dir = tree(&[
        PROFILE,
        (
            "lab/_defaults.yaml",
            &format!("profile: ubuntu\nadopt:\n  rules:\n    - match: {{product: \"{long}\"}}\n"),
        ),
    ]);
    assert_eq!(
        problems(dir.path()),
        ["lab/_defaults.yaml:4: product: pattern longer than 128 characters"]
    );
}
