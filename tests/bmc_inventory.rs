//! The `bmc:` key through the real loader: group defaults merge into a
//! machine's entry, `check` refuses a literal password with file:line, and
//! the example inventory has a machine with a BMC.

use std::fs;
use std::path::Path;

use pxedeck::bmc::{BmcProtocol, PasswordRef};
use pxedeck::inventory::{LoadOptions, load};

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn a_group_default_and_a_machine_address_make_one_bmc() {
    let dir = tree(&[
        (
            "rack3/_defaults.yaml",
            "bmc:\n  protocol: redfish\n  username: root\n  password_file: /etc/pxedeck/rack3.pass\n  verify_tls: false\n",
        ),
        (
            "rack3/r3-01.yaml",
            "mac: \"52:54:00:aa:00:01\"\nbmc:\n  address: 10.0.3.101\n",
        ),
        ("rack3/r3-02.yaml", "mac: \"52:54:00:aa:00:02\"\n"),
    ]);
    let loaded = load(dir.path(), &LoadOptions::default());
    // r3-02 inherits the group's bmc without an address: named at its file.
    let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("rack3/_defaults.yaml:1: bmc needs address"),
        "{problems:?}"
    );
    let m = loaded.inventory.by_hostname("r3-01").unwrap();
    let bmc = m.bmc.as_ref().expect("merged bmc");
    assert_eq!(bmc.protocol, BmcProtocol::Redfish);
    assert_eq!(bmc.authority(), "10.0.3.101:443");
    assert_eq!(bmc.username, "root");
    assert_eq!(
        bmc.password,
        PasswordRef::File("/etc/pxedeck/rack3.pass".into())
    );
    assert!(!bmc.verify_tls);
}

#[test]
fn check_refuses_a_literal_password_where_it_is_written() {
    let dir = tree(&[
        (
            "_defaults.yaml",
            "install: false\nbmc:\n  protocol: ipmi\n  username: admin\n  password: hunter2\n",
        ),
        (
            "g/m1.yaml",
            "mac: \"52:54:00:aa:00:03\"\nbmc:\n  address: 10.0.0.9\n",
        ),
    ]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "_defaults.yaml:5: bmc.password: a password does not belong in the inventory"
        ),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "check must not print it: {text}");
}

#[test]
fn the_example_inventory_has_a_machine_with_a_bmc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
    let loaded = load(&root, &LoadOptions::default());
    assert!(loaded.is_ok(), "{:#?}", loaded.problems);
    let with_bmc: Vec<&str> = loaded
        .inventory
        .machines
        .iter()
        .filter(|m| m.bmc.is_some())
        .map(|m| m.hostname.as_str())
        .collect();
    assert_eq!(with_bmc, ["prod-04"]);
    let bmc = loaded.inventory.by_hostname("prod-04").unwrap().bmc.clone();
    assert_eq!(
        bmc.unwrap().password,
        PasswordRef::Env("PXEDECK_BMC_PASSWORD".into())
    );
}

#[test]
fn the_bmc_config_section_is_bounded() {
    use pxedeck::config::Config;
    let ok = Config::from_text(
        "bmc:\n  poll_interval: 0\n  max_concurrent: 64\n  timeout: 5m\n",
        None,
    )
    .unwrap();
    assert!(ok.bmc.poll_interval.is_zero(), "0 turns the poll off");
    assert_eq!(ok.bmc.max_concurrent, 64);
    for (text, needle) in [
        (
            "bmc:\n  max_concurrent: 0\n",
            "bmc.max_concurrent must be 1-64",
        ),
        (
            "bmc:\n  max_concurrent: 65\n",
            "bmc.max_concurrent must be 1-64",
        ),
        ("bmc:\n  timeout: 0\n", "bmc.timeout must be more than 0"),
        ("bmc:\n  timeout: 10m\n", "bmc.timeout must be at most 5m"),
        ("bmc:\n  poll_interval: 100ms\n", "unknown unit"),
        ("bmc:\n  colour: red\n", "colour"),
    ] {
        let err = Config::from_text(text, None).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
}
