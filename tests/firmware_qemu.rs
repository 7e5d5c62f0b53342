//! End to end with real firmware: QEMU virtual machines boot from
//! `pxedeck serve` on a private bridged segment of network namespaces.
//!
//! Every scenario is checked from both sides: the VM's serial console (what
//! the firmware, iPXE and the booted Linux printed) and pxedeck's API (the
//! state the machine reached) — and, where the boot changes the inventory,
//! the machine's file on disk.
//!
//! The full-path scenarios boot a real Debian kernel with a busybox initrd
//! built here (`common::linux`): it prints a marker, loads the NIC driver,
//! takes a lease, fetches its installer config from pxedeck, calls the done
//! callback and powers off. The kernel package is fetched with apt once and
//! cached in the target directory.
//!
//! Root only. Runs under TCG (nested KVM hangs on these machines); set
//! `PXEDECK_E2E_ACCEL=kvm` where KVM works. `PXEDECK_SKIP_QEMU=1` skips the
//! suite loudly for quick local runs; CI never sets it. Each scenario
//! appends a line to `target/tmp/firmware-e2e-summary.txt`, which `.ci/run`
//! prints.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::KillOnDrop;
use common::firmware::{
    BOOT_LIMIT, Firmware, Mode, Vm, World, assert_installed, has_step, state, timeline,
};
use common::linux::{MARKER, summary};
use common::segment::{Segment, Serve};

// ---------------------------------------------------------------------------
// Scenarios.

/// A known machine with `install: true` on its own full-mode segment,
/// booted to the end of its install. Fields drop in order: the VM and
/// pxedeck before their folder and namespaces.
struct Installed {
    vm: Vm,
    steps: Vec<String>,
    _serve: Serve,
    _world: World,
    _seg: Segment,
}

fn install_one(firmware: Firmware, host: &str, mac: &str) -> Installed {
    let seg = Segment::new();
    let world = World::new(&seg, Mode::Full);
    world.add_machine(host, mac, true);
    let serve = world.serve(&seg);
    let mut vm = Vm::start(&seg, firmware, mac, world.path());
    assert_installed(&mut vm, &serve, &world, host, mac);
    Installed {
        vm,
        steps: timeline(&serve, mac),
        _serve: serve,
        _world: world,
        _seg: seg,
    }
}

/// a + f: SeaBIOS, QEMU's iPXE ROM straight to the HTTP script, a real
/// kernel and initrd, config, done callback, power-off.
#[test]
fn bios_boots_linux_and_the_installer_reports_done() {
    require_qemu!();
    let started = Instant::now();
    let run = install_one(Firmware::Bios, "bios-1", "52:54:00:e2:00:01");
    let steps = &run.steps;
    assert!(has_step(steps, |s| s == "HTTP e2e/vmlinuz"), "{steps:?}");
    assert!(has_step(steps, |s| s == "install done"), "{steps:?}");
    summary(
        "BIOS (SeaBIOS + iPXE ROM) → Linux → done",
        started,
        &format!(
            "VM {:.0} s; state installed, file install: false",
            run.vm.started.elapsed().as_secs_f64()
        ),
    );
}

/// b: OVMF's PXE → TFTP ipxe.efi → iPXE → HTTP script → Linux.
#[test]
fn uefi_pxe_chains_ipxe_over_tftp() {
    require_qemu!();
    let started = Instant::now();
    let run = install_one(Firmware::UefiPxe, "uefi-1", "52:54:00:e2:00:02");
    let steps = &run.steps;
    assert!(
        has_step(steps, |s| s.starts_with("UEFI DISCOVER")),
        "{steps:?}"
    );
    assert!(has_step(steps, |s| s == "TFTP ipxe.efi"), "{steps:?}");
    assert!(run.vm.serial_text().contains("iPXE"), "iPXE never ran");
    summary(
        "UEFI PXE (OVMF) → TFTP ipxe.efi → Linux → done",
        started,
        "TFTP ipxe.efi in the timeline; state installed",
    );
}

/// c: OVMF's HTTP Boot fetches ipxe.efi over HTTP directly.
#[test]
fn uefi_http_boot_fetches_ipxe_over_http() {
    require_qemu!();
    let started = Instant::now();
    let run = install_one(Firmware::UefiHttp, "http-1", "52:54:00:e2:00:03");
    let steps = &run.steps;
    assert!(
        has_step(steps, |s| s.starts_with("UEFI-HTTP DISCOVER")),
        "{steps:?}"
    );
    assert!(has_step(steps, |s| s == "HTTP ipxe.efi"), "{steps:?}");
    assert!(!has_step(steps, |s| s.starts_with("TFTP")), "{steps:?}");
    summary(
        "UEFI HTTP Boot (OVMF) → ipxe.efi → Linux",
        started,
        "HTTP ipxe.efi, no TFTP; state installed",
    );
}

/// d: an unknown machine waits in the hold loop, is adopted through the
/// API, and boots its new profile without a reset (`-no-reboot` would end
/// the VM on one).
#[test]
fn held_machine_boots_its_profile_when_adopted() {
    require_qemu!();
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, Mode::Full);
    let mac = "52:54:00:e2:00:04";
    let serve = world.serve(&seg);
    let mut vm = Vm::start(&seg, Firmware::Bios, mac, world.path());
    assert!(
        vm.wait_serial("asking again every 5 s", BOOT_LIMIT),
        "no hold loop on the console:\n{}",
        vm.tail()
    );
    assert!(
        serve.wait_until(Duration::from_secs(10), || state(&serve, mac) == "held"),
        "pxedeck says {:?}",
        state(&serve, mac)
    );
    let adopt = serde_json::json!({"machines": [{
        "macs": [mac], "hostname": "adopted-1", "group": "lab",
        "profile": "e2e-linux", "install": true
    }]});
    let adopted_at = Instant::now();
    let reply = serve.post_json("/api/v1/adopt", &adopt);
    assert!(reply.is_some(), "adopt refused:\n{}", serve.log_text());
    assert!(
        vm.wait_serial("is adopted-1, booting e2e-linux", Duration::from_secs(120)),
        "the held machine did not pick up its profile:\n{}",
        vm.tail()
    );
    let picked_up = adopted_at.elapsed();
    assert_installed(&mut vm, &serve, &world, "adopted-1", mac);
    let text = vm.serial_text();
    assert_eq!(
        text.matches("iPXE initialising devices").count(),
        1,
        "the machine was reset"
    );
    summary(
        "Unknown in hold → adopted via API → Linux",
        started,
        &format!(
            "script picked up {:.1} s after adoption, no reset",
            picked_up.as_secs_f64()
        ),
    );
}

/// e: a known machine with `install: false` is told to boot its local
/// disk: iPXE exits back to the firmware.
#[test]
fn install_false_boots_the_local_disk() {
    require_qemu!();
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, Mode::Full);
    let mac = "52:54:00:e2:00:05";
    world.add_machine("local-1", mac, false);
    let before = world.machine_file("local-1");
    let serve = world.serve(&seg);
    let mut vm = Vm::start(&seg, Firmware::Bios, mac, world.path());
    assert!(
        vm.wait_serial("pxedeck: local-1: local disk", BOOT_LIMIT),
        "no local-boot script:\n{}",
        vm.tail()
    );
    // SeaBIOS is back in control: nothing bootable on a diskless VM.
    assert!(
        vm.wait_serial("No bootable device", Duration::from_secs(60)),
        "iPXE did not exit to the firmware:\n{}",
        vm.tail()
    );
    assert!(
        !vm.serial_text().contains(MARKER),
        "it booted the installer"
    );
    assert_eq!(state(&serve, mac), "local");
    let steps = timeline(&serve, mac);
    assert!(
        !has_step(&steps, |s| s.starts_with("HTTP e2e")),
        "{steps:?}"
    );
    assert_eq!(world.machine_file("local-1"), before, "the file changed");
    summary(
        "install: false → iPXE exits to local disk",
        started,
        "state local; no kernel fetched; file unchanged",
    );
}

/// g: dnsmasq hands out the addresses; pxedeck in proxy mode supplies the
/// boot information. A BIOS and a UEFI machine boot side by side.
#[test]
fn proxy_dhcp_beside_dnsmasq_boots_bios_and_uefi() {
    require_qemu!();
    assert!(
        common::have("dnsmasq"),
        "dnsmasq is not installed (.ci/run installs dnsmasq-base)"
    );
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, Mode::Proxy);
    let dhcp_ns = seg.host("dhcp", Some(seg.ip(2)));
    let leases = world.path().join("dnsmasq.leases");
    let _dnsmasq = seg
        .exec(&dhcp_ns, "dnsmasq")
        .args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--interface=eth0",
            "--bind-interfaces",
            "--log-dhcp",
        ])
        .arg(format!(
            "--dhcp-range={},{},255.255.255.0,10m",
            seg.ip(160),
            seg.ip(200)
        ))
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("start dnsmasq");
    let bios = "52:54:00:e2:00:06";
    let uefi = "52:54:00:e2:00:07";
    world.add_machine("proxy-bios", bios, true);
    world.add_machine("proxy-uefi", uefi, true);
    let serve = world.serve(&seg);
    let mut vm_bios = Vm::start(&seg, Firmware::Bios, bios, world.path());
    let mut vm_uefi = Vm::start(&seg, Firmware::UefiPxe, uefi, world.path());
    assert_installed(&mut vm_bios, &serve, &world, "proxy-bios", bios);
    assert_installed(&mut vm_uefi, &serve, &world, "proxy-uefi", uefi);
    // The addresses came from dnsmasq's range, not from pxedeck.
    for vm in [&vm_bios, &vm_uefi] {
        let text = vm.serial_text();
        let got = text
            .lines()
            .find_map(|l| l.split(&format!("{MARKER} address ")).nth(1))
            .map(|ip| ip.trim().to_string())
            .unwrap_or_default();
        let last: u8 = got
            .rsplit('.')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        assert!(
            (160..=200).contains(&last),
            "address {got:?} is not dnsmasq's"
        );
    }
    let steps = timeline(&serve, uefi);
    assert!(has_step(&steps, |s| s == "TFTP ipxe.efi"), "{steps:?}");
    summary(
        "proxyDHCP beside dnsmasq: BIOS + UEFI PXE",
        started,
        "addresses from dnsmasq, boot from pxedeck; both installed",
    );
}
