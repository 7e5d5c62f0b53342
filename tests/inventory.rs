//! The inventory contract: merge rules, identities, validation with file and
//! line, the writer, and the watcher — against real files in temp folders.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pxedeck::config::Config;
use pxedeck::ident::Mac;
use pxedeck::inventory::watch::{Reload, watch};
use pxedeck::inventory::{
    Adoption, Inventory, InventoryService, LoadOptions, Published, Scalar, WriteError, load,
};
use serde_json::json;
use test_case::test_case;

#[path = "inventory/kit.rs"]
mod kit;
use kit::*;

// ---- merge semantics ---------------------------------------------------

/// Three levels of defaults, a profile between them and the machine.
fn merge_fixture() -> tempfile::TempDir {
    tree(&[
        (
            "_defaults.yaml",
            "level: root\nlist: [root]\nm:\n  root: 1\n  deep:\n    a: root\n    b: root\nprofile: p\n",
        ),
        (
            "dc1/_defaults.yaml",
            "level: dc1\nm:\n  dc1: 1\n  deep:\n    b: dc1\n",
        ),
        (
            "dc1/rack3/_defaults.yaml",
            "list: [rack3a, rack3b]\nm:\n  deep:\n    c: rack3\n",
        ),
        PROFILE,
        (
            "dc1/rack3/node-1.yaml",
            "mac: \"52:54:00:00:00:01\"\nm:\n  deep:\n    a: machine\n",
        ),
        (
            "dc1/node-2.yaml",
            "mac: \"52:54:00:00:00:02\"\nlevel: machine\nlist: []\n",
        ),
        (
            "node-3.yaml",
            "mac: \"52:54:00:00:00:03\"\nm: replaced-by-a-scalar\n",
        ),
    ])
}

#[test_case("node-1", "level", json!("profile") ; "profile beats every defaults level")]
#[test_case("node-2", "level", json!("machine") ; "machine beats profile")]
#[test_case("node-1", "list", json!(["rack3a", "rack3b"]) ; "lists replace, deepest wins")]
#[test_case("node-2", "list", json!([]) ; "an empty list replaces too")]
#[test_case("node-1", "m", json!({"root": 1, "deep": {"a": "machine", "b": "dc1", "c": "rack3"}, "dc1": 1, "from_profile": 1}) ; "maps merge across all levels")]
#[test_case("node-2", "m", json!({"root": 1, "deep": {"a": "root", "b": "dc1"}, "dc1": 1, "from_profile": 1}) ; "a sibling folder does not leak")]
#[test_case("node-3", "m", json!("replaced-by-a-scalar") ; "a scalar replaces a map")]
#[test_case("node-3", "level", json!("profile") ; "root machine gets root defaults and profile")]
fn merge(host: &str, key: &str, want: serde_json::Value) {
    let dir = merge_fixture();
    let loaded = load(dir.path(), &LoadOptions::default());
    assert!(loaded.is_ok(), "{:?}", loaded.problems);
    let m = loaded.inventory.by_hostname(host).unwrap();
    assert_eq!(m.values.get(key).unwrap().to_json(), want);
}

#[test]
fn group_is_the_relative_folder() {
    let dir = merge_fixture();
    let inv = load(dir.path(), &LoadOptions::default()).inventory;
    assert_eq!(inv.by_hostname("node-1").unwrap().group, "dc1/rack3");
    assert_eq!(inv.by_hostname("node-3").unwrap().group, "");
    assert_eq!(inv.groups, vec!["dc1", "dc1/rack3"]);
}

// ---- identities -----------------------------------------------------------

#[test]
fn identities_are_normalised_and_indexed() {
    let dir = tree(&[
        (
            "a.yaml",
            "mac: [\"52-54-00-AA-BB-01\", \"5254.00aa.bb02\"]\nuuid: \"{4C4C4544-0051-3010-8057-B4C04F4A4D32}\"\nserial: \" CZJ123 \"\n",
        ),
        ("b.yaml", "mac: 525400aabb03\n"),
    ]);
    let inv = load(dir.path(), &LoadOptions::default()).inventory;
    let a = inv.by_hostname("a").unwrap();
    assert_eq!(
        a.macs.iter().map(Mac::to_string).collect::<Vec<_>>(),
        ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]
    );
    for q in [
        "52:54:00:aa:bb:02",
        "52-54-00-aa-bb-01",
        "4c4c4544-0051-3010-8057-b4c04f4a4d32",
        "CZJ123",
        "a",
    ] {
        assert_eq!(
            inv.find(q).map(|m| m.hostname.as_str()),
            Some("a"),
            "query {q}"
        );
    }
    assert_eq!(inv.find("52:54:00:aa:bb:03").unwrap().hostname, "b");
    assert!(inv.find("52:54:00:aa:bb:04").is_none());
}

// ---- validation: every error with file and line -------------------------

#[test_case(&[("n.yaml", "mac: \"52:54:00:00:00:01\"\nip: [1, 2\n")], "n.yaml:3: YAML syntax" ; "syntax error")]
#[test_case(&[("n.yaml", "- just\n- a list\n")], "n.yaml:1: expected a map of keys, found a list" ; "not a map")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\n"), ("g/b.yaml", "# b\nmac: 52-54-00-00-00-01\n")], "g/b.yaml:2: duplicate MAC 52:54:00:00:00:01: also used by a (a.yaml:1)" ; "duplicate mac")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nuuid: \"4c4c4544-0051-3010-8057-b4c04f4a4d32\"\n"), ("b.yaml", "mac: \"52:54:00:00:00:02\"\nuuid: \"4C4C4544005130108057B4C04F4A4D32\"\n")], "b.yaml:2: duplicate UUID 4c4c4544-0051-3010-8057-b4c04f4a4d32: also used by a (a.yaml:2)" ; "duplicate uuid")]
#[test_case(&[("g1/a.yaml", "mac: \"52:54:00:00:00:01\"\n"), ("g2/a.yaml", "mac: \"52:54:00:00:00:02\"\n")], "g2/a.yaml:1: duplicate hostname a: also used by a (g1/a.yaml:1)" ; "duplicate hostname")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nip: 10.99.0.5\n"), ("b.yaml", "mac: \"52:54:00:00:00:02\"\n\nip: 10.99.0.5\n")], "b.yaml:3: duplicate IP 10.99.0.5: also used by a (a.yaml:2)" ; "duplicate ip")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nprofile: nope\n")], "a.yaml:2: unknown profile `nope` (profiles: none defined)" ; "unknown profile")]
#[test_case(&[PROFILE, ("g/_defaults.yaml", "# x\nprofile: ghost\n"), ("g/a.yaml", "mac: \"52:54:00:00:00:01\"\n")], "g/_defaults.yaml:2: unknown profile `ghost` (profiles: p)" ; "unknown profile set by defaults")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:zz\"\n")], "a.yaml:1: invalid MAC address \"52:54:00:00:00:zz\": not a hex digit or separator" ; "malformed mac")]
#[test_case(&[("a.yaml", "mac:\n  - \"52:54:00:00:00:01\"\n  - \"52:54:00\"\n")], "a.yaml:3: invalid MAC address \"52:54:00\": expected aa:bb:cc:dd:ee:ff" ; "malformed mac in a list")]
#[test_case(&[("a.yaml", "mac: 525400000001\n")], "a.yaml:1: mac must be a string: quote it so leading zeros and digits survive" ; "mac read as a number")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nip: 10.99.0.256\n")], "a.yaml:2: ip \"10.99.0.256\" is not an IPv4 address" ; "malformed ip")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nip: 10.1.2.3\n")], "a.yaml:2: ip 10.1.2.3 is outside every pool (10.99.0.0/24)" ; "ip outside pools")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\ninstall: yes\n")], "a.yaml:2: install must be true or false, not a string" ; "install not a boolean")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\ninstall: true\n")], "a.yaml:2: install is true but the machine has no profile" ; "install without profile")]
#[test_case(&[("a.yaml", "# only a comment and a key\nowner: me\n")], "a.yaml:1: machine has no identity: set mac, uuid or serial" ; "no identity")]
#[test_case(&[("Bad_Name.yaml", "mac: \"52:54:00:00:00:01\"\n")], "Bad_Name.yaml:1: file name `Bad_Name` is not a valid hostname (letters, digits, hyphens; at most 63)" ; "invalid hostname")]
#[test_case(&[("_profiles/p.yaml", "boot:\n  kernel: k\n  script: s\n")], "_profiles/p.yaml:2: boot has kernel and script: choose exactly one" ; "boot with two kinds")]
#[test_case(&[("_profiles/p.yaml", "boot:\n  kernal: k\n")], "_profiles/p.yaml:2: unknown boot key `kernal`, expected one of kernel, initrd, cmdline, script, chain, local" ; "boot key typo")]
#[test_case(&[("_profiles/p.yaml", "boot:\n  kernel: k\n  cmdline: \"a={{ x \"\n"), ("a.yaml", "mac: \"52:54:00:00:00:01\"\nprofile: p\n")], "_profiles/p.yaml:3: template error: unexpected end of input, expected end of variable block" ; "template syntax in boot")]
#[test_case(&[("_profiles/p.yaml", "boot:\n  kernel: k\nconfigs:\n  user-data: |\n    #cloud-config\n    {% if x %}\n    a: 1\n"), ("a.yaml", "mac: \"52:54:00:00:00:01\"\nprofile: p\n")], "_profiles/p.yaml:7: template error in config `user-data`: unexpected end of input, expected end of block" ; "template syntax in inline config")]
#[test_case(&[("_templates/ks.cfg.j2", "text\n{{ hostname \n"), ("_profiles/p.yaml", "boot:\n  kernel: k\nconfigs:\n  ks.cfg:\n    template: ks.cfg.j2\n")], "_templates/ks.cfg.j2:2: template ks.cfg.j2: unexpected end of input, expected end of variable block" ; "template syntax in template file")]
#[test_case(&[("_profiles/p.yaml", "boot:\n  kernel: k\nconfigs:\n  ks.cfg:\n    template: missing.j2\n"), ("a.yaml", "mac: \"52:54:00:00:00:01\"\nprofile: p\n")], "_profiles/p.yaml:5: config `ks.cfg`: no template `missing.j2` in _templates/" ; "missing template file")]
#[test_case(&[("a.yaml", "mac: \"ff:ff:ff:ff:ff:ff\"\n")], "a.yaml:1: MAC ff:ff:ff:ff:ff:ff is the broadcast address, not a machine's" ; "broadcast mac")]
#[test_case(&[("a.yaml", "mac:\n  - \"52:54:00:00:00:01\"\n  - \"00-00-00-00-00-00\"\n")], "a.yaml:3: MAC 00:00:00:00:00:00 is all zeros, not a machine's" ; "zero mac in a list")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nuuid: \"00000000-0000-0000-0000-000000000000\"\n")], "a.yaml:2: UUID 00000000-0000-0000-0000-000000000000 is a placeholder the firmware reports when it has none" ; "zero uuid")]
#[test_case(&[("a.yaml", "uuid: \"ffffffff-ffff-ffff-ffff-ffffffffffff\"\n")], "a.yaml:1: UUID ffffffff-ffff-ffff-ffff-ffffffffffff is a placeholder the firmware reports when it has none" ; "unset uuid")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nip: 10.99.0.1\n")], "a.yaml:2: ip 10.99.0.1 is the server's own address" ; "ip of the server")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nip: 10.99.0.0\n")], "a.yaml:2: ip 10.99.0.0 is the network address of 10.99.0.0/24" ; "ip of the network")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nip: 10.99.0.255\n")], "a.yaml:2: ip 10.99.0.255 is the broadcast address of 10.99.0.0/24" ; "ip of the broadcast")]
#[test_case(&[("Dev-01.yaml", "mac: \"52:54:00:00:00:01\"\n"), ("g/dev-01.yaml", "mac: \"52:54:00:00:00:02\"\n")], "g/dev-01.yaml:1: duplicate hostname dev-01: also used by Dev-01 (Dev-01.yaml:1)" ; "hostnames equal but for case")]
#[test_case(&[("g1/g2/g3/g4/g5/g6/g7/g8/g9/g10/g11/g12/g13/g14/g15/g16/g17/a.yaml", "mac: \"52:54:00:00:00:01\"\n")], "g1/g2/g3/g4/g5/g6/g7/g8/g9/g10/g11/g12/g13/g14/g15/g16/g17: folder nested too deep (at most 16 levels)" ; "group too deep")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\nconfigs:\n  user-data: x\ndone_on_config: machine.yaml\n")], "a.yaml:4: done_on_config names \"machine.yaml\", which is not one of its configs (user-data)" ; "done_on_config naming no config")]
#[test_case(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\ndone_on_config: [a]\n")], "a.yaml:2: done_on_config" ; "done_on_config not a name")]
fn validation(files: &[(&str, &str)], want: &str) {
    let got = problems(files);
    assert!(
        got.iter().any(|p| p.starts_with(want)),
        "want {want:?}\n got {got:#?}"
    );
}

#[test]
fn a_broken_defaults_file_is_reported_once_and_skips_its_machines() {
    let got = problems(&[
        ("g/_defaults.yaml", "a: [\n"),
        ("g/x.yaml", "mac: \"52:54:00:00:00:01\"\n"),
        ("y.yaml", "mac: \"52:54:00:00:00:02\"\n"),
    ]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("g/_defaults.yaml:2: YAML syntax"),
        "{got:?}"
    );
}

#[test]
fn the_example_inventory_is_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
    let config = Config::load(Some(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("pxedeck.sample.yaml"),
    ))
    .unwrap();
    let loaded = load(
        &root,
        &LoadOptions {
            pools: config.dhcp.pools,
            server: Some(config.address),
        },
    );
    assert!(loaded.is_ok(), "{:#?}", loaded.problems);
    let inv = loaded.inventory;
    assert_eq!(
        inv.profiles.keys().collect::<Vec<_>>(),
        [
            "disk-image",
            "local",
            "secureboot-debian12",
            "talos-worker",
            "ubuntu-2404"
        ]
    );
    assert!(inv.machines.len() >= 6);
    assert!(
        !inv.by_hostname("dev-03").unwrap().install,
        "install: false is honoured"
    );
    assert!(
        !inv.by_hostname("prod-05").unwrap().install,
        "install defaults to false"
    );
}

// ---- the writer ---------------------------------------------------------

#[test]
fn adopt_creates_the_file_and_publishes_at_once() {
    let (dir, w) = writer_on(&[PROFILE, ("_defaults.yaml", "console: ttyS0\n")]);
    let written = w.adopt(&[adoption("web-01", "52:54:00:00:00:09")]).unwrap();
    assert_eq!(written, vec![PathBuf::from("rack1/web-01.yaml")]);
    let text = fs::read_to_string(dir.path().join("rack1/web-01.yaml")).unwrap();
    assert!(
        text.contains(
            "mac: \"52:54:00:00:00:09\"\nprofile: \"p\"\nip: 10.99.0.50\ninstall: true\n"
        ),
        "{text}"
    );
    let inv = w.shared().load();
    let m = inv
        .by_mac(&"52:54:00:00:00:09".parse().unwrap())
        .expect("published without a reload");
    assert_eq!(
        (m.hostname.as_str(), m.group.as_str(), m.install),
        ("web-01", "rack1", true)
    );
    assert!(load(dir.path(), &pools()).is_ok());
}

#[test_case(|a: &mut Adoption| a.hostname = "taken".into(), "hostname taken is taken" ; "hostname in use")]
#[test_case(|a: &mut Adoption| a.macs = vec!["52:54:00:00:00:01".parse().unwrap()], "MAC 52:54:00:00:00:01 already belongs to taken" ; "mac in use")]
#[test_case(|a: &mut Adoption| a.ip = Some("10.99.0.7".parse().unwrap()), "IP 10.99.0.7 already belongs to taken" ; "ip in use")]
#[test_case(|a: &mut Adoption| a.profile = "ghost".into(), "no profile named `ghost`" ; "unknown profile")]
#[test_case(|a: &mut Adoption| a.hostname = "../etc/passwd".into(), "is not a valid hostname" ; "path in hostname")]
#[test_case(|a: &mut Adoption| a.group = "../outside".into(), "is not a valid group folder" ; "escaping group")]
#[test_case(|a: &mut Adoption| a.group = "_profiles".into(), "is not a valid group folder" ; "reserved group")]
#[test_case(|a: &mut Adoption| a.ip = Some("192.0.2.1".parse().unwrap()), "ip 192.0.2.1 is outside every pool" ; "ip outside pools")]
#[test_case(|a: &mut Adoption| a.hostname = "Taken".into(), "hostname Taken is taken (taken.yaml)" ; "hostname in use but for case")]
fn adopt_refuses(change: fn(&mut Adoption), want: &str) {
    let (dir, w) = writer_on(&[
        PROFILE,
        ("taken.yaml", "mac: \"52:54:00:00:00:01\"\nip: 10.99.0.7\n"),
    ]);
    let mut a = adoption("web-01", "52:54:00:00:00:09");
    change(&mut a);
    let err = w.adopt(&[a]).unwrap_err().to_string();
    assert!(err.contains(want), "want {want:?}, got {err:?}");
    assert!(!dir.path().join("rack1").exists(), "nothing written");
}

#[test]
fn adopt_refuses_to_clobber_an_existing_file() {
    // A file that exists but is not (yet) in the snapshot: never overwritten.
    let (dir, w) = writer_on(&[PROFILE]);
    fs::create_dir_all(dir.path().join("rack1")).unwrap();
    fs::write(
        dir.path().join("rack1/web-01.yaml"),
        "mac: \"52:54:00:00:00:42\"\n",
    )
    .unwrap();
    let err = w
        .adopt(&[adoption("web-01", "52:54:00:00:00:09")])
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("rack1/web-01.yaml")).unwrap(),
        "mac: \"52:54:00:00:00:42\"\n"
    );
}

#[test]
fn bulk_adopt_is_all_or_nothing() {
    let (dir, w) = writer_on(&[PROFILE]);
    let mut second = adoption("web-02", "52:54:00:00:00:0a");
    second.ip = Some("10.99.0.50".parse().unwrap()); // same IP as the first
    let err = w
        .adopt(&[adoption("web-01", "52:54:00:00:00:09"), second])
        .unwrap_err();
    assert!(matches!(err, WriteError::Invalid(_)), "{err}");
    assert!(!dir.path().join("rack1/web-01.yaml").exists());
}

const COMMENTED: &str = "# prod-07 — rack B3, slot 12 (asset 4411)\n\
mac: \"52:54:00:e0:00:07\"   # onboard NIC\n\
profile: p\n\
install: true   # flipped by the done callback\n\
\n\
# hardware quirks we track here:\n\
bmc:\n  address: 10.0.9.7   # not ours\n  vendor: idrac\n\
owner: team-storage\n";

#[test]
fn set_install_changes_one_line_byte_for_byte() {
    let (dir, w) = writer_on(&[PROFILE, ("prod-07.yaml", COMMENTED)]);
    w.set_install("prod-07", false).unwrap();
    let after = fs::read_to_string(dir.path().join("prod-07.yaml")).unwrap();
    let diff: Vec<(&str, &str)> = COMMENTED
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        diff,
        vec![(
            "install: true   # flipped by the done callback",
            "install: false   # flipped by the done callback"
        )]
    );
    assert_eq!(COMMENTED.len() + 1, after.len());
    assert!(!w.shared().load().by_hostname("prod-07").unwrap().install);
}

#[test]
fn set_install_adds_the_key_when_absent() {
    let (dir, w) = writer_on(&[
        PROFILE,
        ("a.yaml", "# keep\nmac: \"52:54:00:00:00:01\"\nprofile: p\n"),
    ]);
    w.set_install("a", true).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("a.yaml")).unwrap(),
        "# keep\nmac: \"52:54:00:00:00:01\"\nprofile: p\ninstall: true\n"
    );
}

#[test]
fn set_install_false_still_applies_when_another_file_is_broken() {
    let (dir, w) = writer_on(&[PROFILE, ("prod-07.yaml", COMMENTED)]);
    fs::write(dir.path().join("broken.yaml"), "mac: [\n").unwrap();
    w.set_install("prod-07", false).unwrap();
    assert!(
        fs::read_to_string(dir.path().join("prod-07.yaml"))
            .unwrap()
            .contains("install: false")
    );
    assert!(!w.shared().load().by_hostname("prod-07").unwrap().install);
    // …but an adoption into a broken tree is refused.
    let err = w
        .adopt(&[adoption("web-01", "52:54:00:00:00:09")])
        .unwrap_err();
    assert!(err.to_string().contains("fix them first"), "{err}");
}

#[test]
fn update_refuses_a_change_that_breaks_validation() {
    let (dir, w) = writer_on(&[
        PROFILE,
        ("a.yaml", "mac: \"52:54:00:00:00:01\"\n"),
        ("b.yaml", "mac: \"52:54:00:00:00:02\"\nip: 10.99.0.9\n"),
    ]);
    let err = w
        .update("a", &[("ip", Scalar::Str("10.99.0.9".into()))])
        .unwrap_err();
    assert!(err.to_string().contains("duplicate IP 10.99.0.9"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("a.yaml")).unwrap(),
        "mac: \"52:54:00:00:00:01\"\n"
    );
}

#[test]
fn a_temp_file_left_by_a_crash_is_never_loaded_and_does_not_block_writes() {
    let (dir, w) = writer_on(&[
        PROFILE,
        ("a.yaml", "mac: \"52:54:00:00:00:01\"\nprofile: p\n"),
    ]);
    // A crash between create and rename leaves a half-written temp file.
    fs::write(
        dir.path().join(".a.yaml.pxedeck-tmp"),
        "mac: \"52:54:00:00:00:01\"\npro",
    )
    .unwrap();
    let loaded = load(dir.path(), &pools());
    assert!(loaded.is_ok(), "{:?}", loaded.problems);
    assert_eq!(loaded.inventory.machines.len(), 1);
    w.set_install("a", true).unwrap();
    assert!(
        fs::read_to_string(dir.path().join("a.yaml"))
            .unwrap()
            .ends_with("install: true\n")
    );
    assert!(!dir.path().join(".a.yaml.pxedeck-tmp").exists());
}

/// The done callback's write patches the served snapshot without loading
/// the tree; the result must be exactly what a load would give.
#[test]
fn set_install_patches_the_snapshot_exactly_as_a_load_would() {
    let (dir, w) = writer_on(&[
        PROFILE,
        ("_defaults.yaml", "install: true\nprofile: p\n"),
        ("r/a.yaml", "mac: \"52:54:00:00:00:01\"\n"),
        ("r/prod-07.yaml", COMMENTED),
    ]);
    let same_as_a_load = |w: &InventoryService| {
        let served = w.shared().load();
        let loaded = load(dir.path(), &pools()).inventory;
        assert_eq!(served.fingerprint, loaded.fingerprint);
        for (s, l) in served.machines.iter().zip(&loaded.machines) {
            assert_eq!(s.install, l.install, "{}", s.hostname);
            assert_eq!(
                s.values.get("install").map(|n| n.to_json()),
                l.values.get("install").map(|n| n.to_json()),
                "{}",
                s.hostname
            );
        }
    };
    // The key added (it came from _defaults), changed in place, turned back.
    w.set_install("a", false).unwrap();
    same_as_a_load(&w);
    w.set_install("prod-07", false).unwrap();
    same_as_a_load(&w);
    w.set_install("a", true).unwrap();
    same_as_a_load(&w);
    // An edit the snapshot has not seen yet: the writer loads the tree, so
    // the edit is served too, not lost behind the patched flag.
    let path = dir.path().join("r/a.yaml");
    let edited = fs::read_to_string(&path).unwrap() + "ip: 10.99.0.7\n";
    fs::write(&path, edited).unwrap();
    w.set_install("a", false).unwrap();
    same_as_a_load(&w);
    assert_eq!(
        w.shared().load().by_hostname("a").unwrap().ip,
        Some("10.99.0.7".parse().unwrap())
    );
}

#[test]
fn install_true_without_a_profile_is_still_refused() {
    let (_dir, w) = writer_on(&[PROFILE, ("a.yaml", "mac: \"52:54:00:00:00:01\"\n")]);
    let err = w.set_install("a", true).unwrap_err();
    assert!(err.to_string().contains("no profile"), "{err}");
    assert!(!w.shared().load().by_hostname("a").unwrap().install);
}

// ---- the watcher --------------------------------------------------------

fn reloader_on(
    files: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    Arc<InventoryService>,
    Arc<ArcSwap<Inventory>>,
) {
    let dir = tree(files);
    let r = Arc::new(InventoryService::new(
        dir.path(),
        pools(),
        load(dir.path(), &pools()).inventory,
    ));
    let shared = r.shared().clone();
    (dir, r, shared)
}

#[test]
fn reload_keeps_the_last_good_snapshot_on_a_broken_file_and_recovers() {
    let (dir, r, shared) = reloader_on(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\n")]);
    assert_eq!(r.reload(), None, "nothing changed");
    fs::write(dir.path().join("b.yaml"), "mac: [\n").unwrap();
    match r.reload() {
        Some(Reload::Failed(p)) => assert!(
            p[0].to_string().starts_with("b.yaml:2: YAML syntax"),
            "{p:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(shared.load().machines.len(), 1, "last good snapshot kept");
    assert_eq!(r.reload(), None, "the same broken tree is reported once");
    fs::write(dir.path().join("b.yaml"), "mac: \"52:54:00:00:00:02\"\n").unwrap();
    assert_eq!(
        r.reload(),
        Some(Reload::Reloaded {
            machines: 2,
            profiles: 0
        })
    );
    assert_eq!(shared.load().machines.len(), 2);
}

/// The watcher and an operator's reload share one service: a broken tree
/// the watcher reported is not reported twice by it, but an operator who
/// asks hears about it again.
#[test]
fn an_operator_reload_reports_a_broken_tree_again() {
    let (dir, r, _shared) = reloader_on(&[("a.yaml", "mac: \"52:54:00:00:00:01\"\n")]);
    fs::write(dir.path().join("b.yaml"), "mac: [\n").unwrap();
    assert!(matches!(r.reload(), Some(Reload::Failed(_))));
    assert_eq!(r.reload(), None);
    assert!(matches!(r.reload_on_request(), Some(Reload::Failed(_))));
    fs::remove_file(dir.path().join("b.yaml")).unwrap();
    assert_eq!(
        r.reload_on_request(),
        Some(Reload::Reloaded {
            machines: 1,
            profiles: 0
        }),
        "recovering publishes the good tree"
    );
    assert_eq!(r.reload(), None);
}

/// An install flip publishes one machine and says so; an adoption
/// publishes the whole tree.
#[test]
fn writes_say_how_much_of_the_snapshot_changed() {
    let (_dir, w) = writer_on(&[PROFILE, ("prod-07.yaml", COMMENTED)]);
    let flip = w.set_install("prod-07", false).unwrap();
    assert_eq!(flip.published, Published::Machine("prod-07".into()));
    let again = w.set_install("prod-07", false).unwrap();
    assert_eq!(again.published, Published::Nothing);
    let before = w.shared().load_full();
    w.adopt(&[adoption("web-01", "52:54:00:00:00:09")]).unwrap();
    assert!(!Arc::ptr_eq(&before, &w.shared().load_full()));
}

#[test]
fn the_writers_own_writes_do_not_cause_a_reload() {
    let dir = tree(&[
        PROFILE,
        ("a.yaml", "mac: \"52:54:00:00:00:01\"\nprofile: p\n"),
    ]);
    // The writer and the watcher are one service: its reload sees that the
    // tree on disk is what it published.
    let w = InventoryService::new(dir.path(), pools(), load(dir.path(), &pools()).inventory);
    w.set_install("a", true).unwrap();
    assert_eq!(w.reload(), None);
}

fn wait_for(rx: &mpsc::Receiver<Reload>, what: impl Fn(&Reload) -> bool) -> Reload {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) if what(&r) => return r,
            Ok(_) => continue,
            Err(_) => panic!("no matching reload within 10 s"),
        }
    }
}

#[test]
fn watcher_reloads_on_editor_rename_and_reports_broken_files() {
    let (dir, r, shared) = reloader_on(&[("g/a.yaml", "mac: \"52:54:00:00:00:01\"\n")]);
    let (tx, rx) = mpsc::channel();
    let _w = watch(r, move |change| {
        let _ = tx.send(change);
    })
    .unwrap();
    // An editor saves by writing a temp file and renaming it over the original.
    let tmp = dir.path().join("g/.a.yaml.swp");
    fs::write(&tmp, "mac: \"52:54:00:00:00:01\"\nip: 10.99.0.8\n").unwrap();
    fs::rename(&tmp, dir.path().join("g/a.yaml")).unwrap();
    wait_for(&rx, |r| matches!(r, Reload::Reloaded { .. }));
    assert_eq!(
        shared.load().by_hostname("a").unwrap().ip,
        Some("10.99.0.8".parse().unwrap())
    );
    // A new folder (git pull) with a broken file: reported, old snapshot kept.
    fs::create_dir_all(dir.path().join("h")).unwrap();
    fs::write(dir.path().join("h/b.yaml"), "mac: \"52:54:00:00:00:01\"\n").unwrap();
    match wait_for(&rx, |r| matches!(r, Reload::Failed(_))) {
        Reload::Failed(p) => assert!(
            p.iter().any(|p| p.to_string().contains("duplicate MAC")),
            "{p:?}"
        ),
        _ => unreachable!(),
    }
    assert_eq!(shared.load().machines.len(), 1);
}

/// A mass boot's done callbacks write hundreds of files; the watcher sees
/// each, and must not load the whole tree for any of them. Anyone else's
/// edit still loads it.
#[test]
fn the_watcher_loads_nothing_for_the_writers_own_files() {
    let mut files = vec![PROFILE];
    let texts: Vec<(String, String)> = (1..=20)
        .map(|n| {
            (
                format!("r/n{n:02}.yaml"),
                format!("mac: \"52:54:00:00:01:{n:02x}\"\nprofile: p\ninstall: true\n"),
            )
        })
        .collect();
    files.extend(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    let dir = tree(&files);
    let w = Arc::new(InventoryService::new(
        dir.path(),
        pools(),
        load(dir.path(), &pools()).inventory,
    ));
    let shared = w.shared().clone();
    let loads = w.load_counter();
    let (tx, rx) = mpsc::channel();
    let _watch = watch(w.clone(), move |change| {
        let _ = tx.send(change);
    })
    .unwrap();
    for n in 1..=20 {
        w.set_install(&format!("n{n:02}"), false).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(loads.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(shared.load().machines.iter().all(|m| !m.install));
    // Someone flips one back by hand: that is loaded and served.
    let path = dir.path().join("r/n05.yaml");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("install: false", "install: true");
    fs::write(&path, text).unwrap();
    wait_for(&rx, |r| matches!(r, Reload::Reloaded { .. }));
    assert!(shared.load().by_hostname("n05").unwrap().install);
    assert!(loads.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}
