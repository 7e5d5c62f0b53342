use super::*;

fn q(pairs: &[(&str, &str)]) -> Query {
    let mut q = Query::default();
    for (k, v) in pairs {
        let v = Some(v.to_string());
        match *k {
            "mac" => q.mac = v,
            "uuid" => q.uuid = v,
            "serial" => q.serial = v,
            "board-serial" => q.board_serial = v,
            "asset" => q.asset = v,
            "manufacturer" => q.manufacturer = v,
            "product" => q.product = v,
            "chip" => q.chip = v,
            "busid" => q.busid = v,
            "platform" => q.platform = v,
            "arch" => q.arch = v,
            other => panic!("no key {other}"),
        }
    }
    q
}

#[test]
fn a_full_query_gives_claims_and_facts() {
    let r = q(&[
        ("mac", "52-54-00-12-34-56"),
        ("uuid", "4c4c4544-0051-3010-8057-b4c04f4a4d01"),
        ("serial", "SN-RACK12-07"),
        ("asset", "A-0042"),
        ("manufacturer", "Supermicro"),
        ("product", "SYS-1029P"),
        ("chip", "e1000"),
        ("busid", "01:80:86:10:0e"),
        ("platform", "pcbios"),
        ("arch", "i386"),
    ])
    .validate()
    .unwrap();
    assert!(r.asked);
    assert_eq!(r.mac, Some("52:54:00:12:34:56".parse().unwrap()));
    assert_eq!(r.serial.as_deref(), Some("SN-RACK12-07"));
    assert_eq!(r.asset.as_deref(), Some("A-0042"));
    assert_eq!(r.facts.get("busid"), Some("01:80:86:10:0e"));
    assert_eq!(r.facts.model().as_deref(), Some("Supermicro SYS-1029P"));
    assert_eq!(r.facts.ordered()[0], ("manufacturer", "Supermicro"));
    assert_eq!(r.facts.0.len(), 9);
}

#[test]
fn empty_values_are_absent_and_no_mac_is_not_asked() {
    let r = q(&[("serial", ""), ("uuid", " "), ("asset", "")])
        .validate()
        .unwrap();
    assert_eq!(r, Reported::default());
}

#[test]
fn values_past_the_bound_are_refused_not_cut() {
    let long = "x".repeat(MAX_VALUE) + "y";
    for key in [
        "serial",
        "asset",
        "manufacturer",
        "product",
        "chip",
        "busid",
        "mac",
    ] {
        let err = q(&[(key, &long)]).validate().unwrap_err();
        assert!(
            matches!(err, Refused::TooLong { len, .. } if len == MAX_VALUE + 1),
            "{key}: {err:?}"
        );
        assert!(err.to_string().contains("at most 64"), "{err}");
    }
    // Exactly at the bound is fine.
    let at = "a".repeat(MAX_VALUE - 1) + "b";
    assert_eq!(
        q(&[("serial", &at)]).validate().unwrap().serial.as_deref(),
        Some(at.as_str())
    );
}

#[test]
fn control_characters_and_non_ascii_are_refused() {
    for bad in ["a\nb", "a\u{0}b", "s\u{e9}rie", "tab\there", "\u{7f}"] {
        let err = q(&[("serial", bad)]).validate().unwrap_err();
        assert_eq!(err, Refused::Charset { key: "serial" }, "{bad:?}");
    }
    let err = q(&[("manufacturer", "ACME\r\n")]).validate().unwrap_err();
    assert_eq!(
        err,
        Refused::Charset {
            key: "manufacturer"
        }
    );
}

#[test]
fn malformed_identities_are_refused() {
    assert_eq!(
        q(&[("mac", "52:54:00")]).validate().unwrap_err(),
        Refused::Malformed {
            key: "mac",
            what: "MAC address"
        }
    );
    assert!(
        q(&[("uuid", "not-a-uuid")])
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not a UUID")
    );
}

#[test]
fn placeholders_never_identify() {
    for p in [
        "To be filled by O.E.M.",
        "Default string",
        "System Serial Number",
        "0000000000",
        "XXXXXXXX",
        "........",
        "N/A",
        "Not Specified",
        "0123456789",
    ] {
        assert!(!meaningful(p), "{p}");
        let r = q(&[("serial", p), ("asset", p)]).validate().unwrap();
        assert_eq!((r.serial, r.asset), (None, None), "{p}");
        // …but the operator still sees what the firmware says.
        assert_eq!(r.facts.get("serial"), Some(p.trim()));
    }
    for real in ["SN12345", "CZ2041ABCD", "A-0042", "A7"] {
        assert!(meaningful(real), "{real}");
    }
}

#[test]
fn facts_are_bounded_in_number_and_length() {
    let mut f = Facts::default();
    for n in 0..MAX_FACTS + 5 {
        f.insert(&format!("k{n}"), "v");
    }
    assert_eq!(f.0.len(), MAX_FACTS);
    assert!(!f.insert("k0", &"x".repeat(MAX_VALUE + 1)));
    assert!(!f.insert("k0", "bad\u{1b}[31m"));
    assert_eq!(f.get("k0"), Some("v"));
}

fn inventory(files: &[(&str, &str)]) -> Inventory {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("_profiles")).unwrap();
    std::fs::write(
        dir.path().join("_profiles/os.yaml"),
        "boot: {kernel: k, initrd: i}\n",
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let loaded = crate::inventory::load(dir.path(), &crate::inventory::LoadOptions::default());
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.inventory
}

const PROD: &str = "mac: \"52:54:00:00:00:01\"\nserial: SN-PROD\nprofile: os\n";
const SEEDED: &str = "serial: SN-SEEDED\nprofile: os\ninstall: true\n";
const TAGGED: &str = "asset: A-0042\nprofile: os\ninstall: true\n";

#[test]
fn wire_identities_win_over_claims() {
    let inv = inventory(&[
        ("prod.yaml", PROD),
        ("seeded.yaml", SEEDED),
        ("tagged.yaml", TAGGED),
    ]);
    let prod: Mac = "52:54:00:00:00:01".parse().unwrap();
    // A production machine that claims the seeded machine's serial (a
    // spoof, or two boards with one serial) stays itself: never reimaged.
    let claims = q(&[("mac", "52:54:00:00:00:01"), ("serial", "SN-SEEDED")])
        .validate()
        .unwrap();
    let r = resolve(&inv, Some(prod), None, &claims);
    assert_eq!(r.machine.map(|m| m.hostname.as_str()), Some("prod"));
    assert_eq!(r.via, Some(Via::Mac));
    // The query's MAC does not override the lease's.
    let other = q(&[("mac", "52:54:00:00:00:01")]).validate().unwrap();
    let stranger: Mac = "52:54:00:99:00:01".parse().unwrap();
    let r = resolve(&inv, Some(stranger), None, &other);
    assert_eq!(r.mac, Some(stranger));
    assert!(r.machine.is_none());
}

#[test]
fn a_machine_known_by_serial_or_asset_is_found_from_an_unknown_mac() {
    let inv = inventory(&[("seeded.yaml", SEEDED), ("tagged.yaml", TAGGED)]);
    let mac: Mac = "52:54:00:99:00:02".parse().unwrap();
    let claims = q(&[("mac", "52-54-00-99-00-02"), ("serial", "SN-SEEDED")])
        .validate()
        .unwrap();
    let r = resolve(&inv, Some(mac), None, &claims);
    assert_eq!(r.machine.map(|m| m.hostname.as_str()), Some("seeded"));
    assert_eq!((r.mac, r.via), (Some(mac), Some(Via::Serial)));
    assert!(!Via::Serial.is_wire());
    let claims = q(&[("mac", "52-54-00-99-00-02"), ("asset", "A-0042")])
        .validate()
        .unwrap();
    let r = resolve(&inv, None, None, &claims);
    assert_eq!(r.machine.map(|m| m.hostname.as_str()), Some("tagged"));
    assert_eq!(r.via, Some(Via::Asset));
    // A placeholder claim finds nothing, even if someone wrote it down.
    let claims = q(&[("mac", "52-54-00-99-00-02"), ("serial", "Default string")])
        .validate()
        .unwrap();
    assert!(resolve(&inv, Some(mac), None, &claims).machine.is_none());
}

#[test]
fn the_uuid_dhcp_saw_identifies_without_a_query() {
    let inv = inventory(&[(
        "byuuid.yaml",
        "uuid: 4c4c4544-0051-3010-8057-b4c04f4a4d01\nprofile: os\n",
    )]);
    let mac: Mac = "52:54:00:99:00:03".parse().unwrap();
    let uuid = "4c4c4544-0051-3010-8057-b4c04f4a4d01".parse().ok();
    let r = resolve(&inv, Some(mac), uuid, &Reported::default());
    assert_eq!(r.machine.map(|m| m.hostname.as_str()), Some("byuuid"));
    assert_eq!(r.via, Some(Via::DhcpUuid));
    assert!(Via::DhcpUuid.is_wire());
}
