//! Identity beyond the MAC and hardware facts with real firmware (issue
//! 16, items 6–8): SeaBIOS with QEMU's iPXE ROM on a full-mode segment,
//! the SMBIOS tables set with `-smbios`.
//!
//! - a machine whose file has only `serial:` (a pre-seeded rack) installs
//!   on first boot with no adoption: DHCP sees an unknown MAC, the entry
//!   script asks iPXE for `${serial}`, and the HTTP side finds the file;
//! - an unknown machine's manufacturer, product, serial, asset tag, UUID,
//!   NIC and platform reach the API while it is held, and land in its file
//!   under `facts:` when it is adopted.
//!
//! Root only, like `firmware_qemu.rs` (whose World and Vm it shares from
//! `common::firmware`); `PXEDECK_SKIP_QEMU=1` skips it loudly.

mod common;

use std::time::{Duration, Instant};

use common::firmware::{BOOT_LIMIT, Firmware, Mode, Vm, World, assert_installed, state};
use common::linux::summary;
use common::segment::Segment;

/// A pre-seeded machine: known by its serial number only, `install: true`.
#[test]
fn a_machine_known_only_by_serial_installs_with_no_adoption() {
    require_qemu!();
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, Mode::Full);
    std::fs::write(
        world.path().join("nodes/lab/slot-07.yaml"),
        "# From the purchase order: no MAC known yet.\n\
         serial: \"SN-E2E-0007\"\nprofile: e2e-linux\ninstall: true\n",
    )
    .unwrap();
    let mac = "52:54:00:e2:00:17";
    let serve = world.serve(&seg);
    let mut vm = Vm::start_with(
        &seg,
        Firmware::Bios,
        mac,
        world.path(),
        &["-smbios", "type=1,serial=SN-E2E-0007"],
    );
    assert_installed(&mut vm, &serve, &world, "slot-07", mac);
    // Nobody adopted it: the tree holds the seeded file and nothing else,
    // and the file still names no MAC (claims are not written back).
    let lab: Vec<String> = std::fs::read_dir(world.path().join("nodes/lab"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(lab, vec!["slot-07.yaml".to_string()]);
    let file = world.machine_file("slot-07");
    assert!(!file.contains("mac:"), "{file}");
    let row = serve
        .machine(mac)
        .expect("a row for the MAC it booted from");
    assert_eq!(row["hostname"], "slot-07");
    assert_eq!(row["facts"]["serial"], "SN-E2E-0007");
    summary(
        "serial-only machine (SMBIOS serial) → installs, no adoption",
        started,
        &format!(
            "VM {:.0} s; found by ${{serial}}; file install: false, no MAC written",
            vm.started.elapsed().as_secs_f64()
        ),
    );
}

/// Facts reported from the hold loop, shown by the API, kept on adoption.
#[test]
fn facts_reach_the_api_before_adoption_and_the_file_after() {
    require_qemu!();
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, Mode::Full);
    let mac = "52:54:00:e2:00:18";
    let uuid = "4c4c4544-0051-3010-8057-b4c04f4a4d18";
    let serve = world.serve(&seg);
    let mut vm = Vm::start_with(
        &seg,
        Firmware::Bios,
        mac,
        world.path(),
        &[
            "-smbios",
            "type=1,manufacturer=Acme Systems,product=RackServer-9000,serial=SN-E2E-0018",
            "-smbios",
            "type=3,asset=RACK12-SLOT07",
            "-uuid",
            uuid,
        ],
    );
    assert!(
        vm.wait_serial("asking again every 5 s", BOOT_LIMIT),
        "no hold loop on the console:\n{}",
        vm.tail()
    );
    let facts = || {
        serve
            .machine(mac)
            .map(|m| m["facts"].clone())
            .unwrap_or_default()
    };
    assert!(
        serve.wait_until(Duration::from_secs(30), || facts()["asset"]
            == "RACK12-SLOT07"),
        "facts {:?}; state {:?}\n{}",
        facts(),
        state(&serve, mac),
        serve.log_text()
    );
    let f = facts();
    assert_eq!(f["manufacturer"], "Acme Systems", "{f}");
    assert_eq!(f["product"], "RackServer-9000", "{f}");
    assert_eq!(f["serial"], "SN-E2E-0018", "{f}");
    assert_eq!(f["uuid"], uuid, "{f}");
    assert_eq!(f["platform"], "pcbios", "{f}");
    assert!(
        f["busid"]
            .as_str()
            .is_some_and(|b| b.starts_with("01:80:86")),
        "the e1000's PCI bus id (Intel): {f}"
    );
    assert_eq!(state(&serve, mac), "held");
    // Adopted through the API without facts: the server keeps what the
    // machine reported.
    let adopt = serde_json::json!({"machines": [{
        "macs": [mac], "hostname": "slot-12", "group": "lab",
        "profile": "e2e-linux", "install": true
    }]});
    assert!(
        serve.post_json("/api/v1/adopt", &adopt).is_some(),
        "adopt refused:\n{}",
        serve.log_text()
    );
    let file = world.machine_file("slot-12");
    for line in [
        "facts:\n",
        "  manufacturer: \"Acme Systems\"\n",
        "  product: \"RackServer-9000\"\n",
        "  asset: \"RACK12-SLOT07\"\n",
        "  serial: \"SN-E2E-0018\"\n",
    ] {
        assert!(file.contains(line), "{line:?} not in:\n{file}");
    }
    assert!(
        vm.wait_serial("is slot-12, booting e2e-linux", Duration::from_secs(120)),
        "the held machine did not pick up its profile:\n{}",
        vm.tail()
    );
    assert_installed(&mut vm, &serve, &world, "slot-12", mac);
    assert!(
        world
            .machine_file("slot-12")
            .contains("  asset: \"RACK12-SLOT07\"\n"),
        "the install-done write kept the facts"
    );
    summary(
        "SMBIOS facts while held → API → adopted file",
        started,
        "manufacturer, product, serial, asset, UUID, bus id via the hold loop; kept under facts:",
    );
}
