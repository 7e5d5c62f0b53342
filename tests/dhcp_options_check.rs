//! `pxedeck check` validates `dhcp_options` in a group's `_defaults.yaml`
//! and in a machine file, each problem at its own file and line.

use std::process::Command;

#[test]
fn check_names_the_file_and_line_of_each_bad_dhcp_option() {
    let dir = tempfile::tempdir().unwrap();
    let rack = dir.path().join("rack12");
    std::fs::create_dir_all(&rack).unwrap();
    std::fs::write(
        rack.join("_defaults.yaml"),
        "dhcp_options:\n  ntp-servers: [10.0.0.1]\n  classless-static-routes: [\"10.20.0.1/16 via 10.0.0.1\"]\n",
    )
    .unwrap();
    std::fs::write(
        rack.join("n1.yaml"),
        "mac: \"52:54:00:00:00:01\"\ndhcp_options:\n  mtu: huge\n",
    )
    .unwrap();
    std::fs::write(
        rack.join("n2.yaml"),
        "mac: \"52:54:00:00:00:02\"\ndhcp_options:\n  224: {type: string, value: rack-12}\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .args(["check", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The group's mistake is reported for each machine that inherits it,
    // at the group file's line; the machine's at its own.
    assert!(
        out.contains("rack12/_defaults.yaml:3: dhcp_options: 10.20.0.1/16 has host bits set"),
        "{out}"
    );
    assert!(
        out.contains("rack12/n1.yaml:3: dhcp_options: must be a whole number from 0 to 65535"),
        "{out}"
    );
    assert!(!out.contains("n2.yaml"), "n2's own option is fine: {out}");
}
