//! The BMC proof with real firmware: a powered-off QEMU machine whose BMC
//! is OpenIPMI's `ipmi_sim`, reinstalled by pxedeck through the API.
//!
//! ```text
//!   <lan>: bridge br0 ── <srv>: pxedeck serve (x.y.z.1), ipmitool → x.y.z.2:623
//!                    ├── <bmc>: ipmi_sim (x.y.z.2:623, RMCP+)
//!                    │          chassis_control → starts/stops QEMU in <lan>
//!                    └── tap0: the VM (SeaBIOS + iPXE ROM), no disk
//! ```
//!
//! ipmi_sim's `chassis_control` program owns power: `set power 1` starts
//! QEMU, with `-boot once=n` when a network boot was asked for (`set boot
//! pxe`), `set power 0` kills it, `get power` says whether it runs. The
//! machine starts off with `install: false`; `POST
//! /api/v1/nodes/<host>/reinstall` must write `install: true`, set the
//! next boot to the network and power it on; it PXE boots from pxedeck,
//! installs (the done callback lands, `install: false` again), powers
//! off, and the API shows its power following.
//!
//! Root only, like the firmware suite; runs alone in its own file.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ipmi_sim::{IpmiSim, USER};
use common::linux::{self, linux};
use common::segment::{Segment, Serve};

const TOKEN: &str = "bmc-e2e-token";
const API: &str = "127.0.0.1:8081";
const HOST: &str = "bmc-vm-1";
const MAC: &str = "52:54:00:e2:0b:01";
const BOOT_LIMIT: Duration = Duration::from_secs(360);

/// The chassis_control program: QEMU is the machine's power.
fn chassis(dir: &Path, lan: &str, tap: &str) -> String {
    let d = dir.display();
    let serial = dir.join("serial.log");
    let accel = std::env::var("PXEDECK_E2E_ACCEL").unwrap_or_else(|_| "tcg".into());
    format!(
        r#"#!/bin/sh
d={d}
echo "$*" >> $d/calls
running() {{ [ -f $d/qemu.pid ] && kill -0 "$(cat $d/qemu.pid)" 2>/dev/null; }}
stop() {{ if running; then kill "$(cat $d/qemu.pid)"; sleep 0.2; fi; rm -f $d/qemu.pid; }}
start() {{
  running && return 0
  # A network boot was asked for: this boot only.
  if [ "$(cat $d/boot 2>/dev/null)" = pxe ]; then order="once=n"; echo default > $d/boot; else order="c"; fi
  echo "$order" >> $d/boots
  setsid ip netns exec {lan} qemu-system-x86_64 -accel {accel} -nographic -display none \
    -monitor none -no-reboot -machine pc,graphics=off -m 256 -boot "$order" \
    -serial file:{serial} -netdev tap,id=n0,ifname={tap},script=no,downscript=no \
    -device e1000,netdev=n0,mac={MAC} </dev/null >/dev/null 2>&1 &
  echo $! > $d/qemu.pid
}}
op=$1; shift
if [ "$op" = get ]; then
  for p in "$@"; do
    case $p in
      power) if running; then echo power:1; else echo power:0; fi;;
      boot) echo "boot:$(cat $d/boot 2>/dev/null || echo default)";;
      *) echo "unknown $p"; exit 1;;
    esac
  done
  exit 0
fi
while [ $# -gt 0 ]; do
  case $1 in
    power) if [ "$2" = 1 ]; then start; else stop; fi;;
    shutdown) stop;;
    reset) stop; start;;
    boot) echo $2 > $d/boot;;
    *) echo "unknown $1"; exit 1;;
  esac
  shift 2
done
"#,
        serial = serial.display(),
    )
}

fn power(serve: &Serve) -> Option<String> {
    serve
        .machine(MAC)
        .and_then(|m| m["power"]["state"].as_str().map(str::to_string))
}

#[test]
fn a_powered_off_machine_is_reinstalled_through_its_bmc() {
    require_netns!();
    if std::env::var_os("PXEDECK_SKIP_QEMU").is_some() {
        eprintln!("SKIPPED {}: PXEDECK_SKIP_QEMU is set", module_path!());
        return;
    }
    for (tool, package) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("cpio", "cpio"),
        ("curl", "curl"),
        ("ipmi_sim", "openipmi"),
        ("ipmitool", "ipmitool"),
    ] {
        assert!(
            common::have(tool),
            "{tool} is not installed (.ci/run installs {package})"
        );
    }
    let started = Instant::now();
    let kit = linux();

    let seg = Segment::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("boot/e2e")).unwrap();
    std::fs::copy(&kit.vmlinuz, d.join("boot/e2e/vmlinuz")).unwrap();
    std::fs::copy(&kit.initrd, d.join("boot/e2e/initrd.gz")).unwrap();

    // The BMC: its own host on the segment.
    let bmc_ip = seg.ip(2);
    let bmc_ns = seg.host("bmc", Some(bmc_ip));
    let tap = seg.tap();
    let bmc_dir = d.join("bmc");
    std::fs::create_dir_all(&bmc_dir).unwrap();
    let sim = IpmiSim::start(
        &bmc_dir,
        bmc_ip,
        623,
        Some(&bmc_ns),
        &chassis(&bmc_dir, &seg.lan, &tap),
    );
    assert!(
        sim.ipmitool(Some(&bmc_ns), &["power", "status"])
            .contains("Chassis Power is off"),
        "the machine starts powered off"
    );

    for sub in ["nodes/_profiles", "nodes/lab"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(
        d.join("nodes/_profiles/e2e-linux.yaml"),
        "boot:\n  kernel: e2e/vmlinuz\n  initrd: e2e/initrd.gz\n  \
         cmdline: console=ttyS0 quiet pxedeck.config={{ config_url }}/marker pxedeck.done={{ done_url }}\n\
         configs:\n  marker: \"hello {{ hostname }}\"\n",
    )
    .unwrap();
    // The group names the BMC protocol and credentials; the machine its
    // address. install: false: nothing happens until someone asks.
    std::fs::write(
        d.join("nodes/lab/_defaults.yaml"),
        format!(
            "profile: e2e-linux\nbmc:\n  protocol: ipmi\n  username: {USER}\n  password_file: {}\n",
            sim.password_file.display()
        ),
    )
    .unwrap();
    let machine_file = d.join(format!("nodes/lab/{HOST}.yaml"));
    std::fs::write(
        &machine_file,
        format!("mac: \"{MAC}\"\ninstall: false\nbmc:\n  address: {bmc_ip}\n"),
    )
    .unwrap();
    let srv = seg.server_ip();
    std::fs::write(
        d.join("pxedeck.yaml"),
        format!(
            "server:\n  address: {srv}\n  interface: eth0\n\
             dhcp:\n  lease_file: leases.jsonl\n  mode: full\n  pools:\n    - subnet: {}\n      range: {}-{}\n      router: {srv}\n\
             http:\n  port: 80\n  api_listen: {API}\n  api_token: {TOKEN}\n\
             unknown:\n  policy: hold\n\
             bmc:\n  poll_interval: 1s\n  timeout: 10s\n\
             boot_root: boot\ninventory: nodes\n",
            seg.subnet(),
            seg.ip(100),
            seg.ip(150)
        ),
    )
    .unwrap();
    let serve = Serve::start(
        &seg.srv,
        &d.join("pxedeck.yaml"),
        &format!("http://{API}"),
        TOKEN,
    );

    // The poll sees the machine off.
    assert!(
        serve.wait_until(Duration::from_secs(20), || power(&serve).as_deref()
            == Some("off")),
        "power {:?}\n{}",
        power(&serve),
        serve.log_text()
    );

    let reply = serve
        .post_json(
            &format!("/api/v1/nodes/{HOST}/reinstall"),
            &serde_json::json!({}),
        )
        .unwrap_or_else(|| panic!("reinstall refused:\n{}", serve.log_text()));
    assert!(reply.contains("\"ok\":true"), "{reply}");

    // Power follows the VM: on while it boots.
    assert!(
        serve.wait_until(Duration::from_secs(30), || power(&serve).as_deref()
            == Some("on")),
        "power {:?}; BMC calls {:?}\n{}",
        power(&serve),
        sim.calls(),
        serve.log_text()
    );
    let boots = std::fs::read_to_string(bmc_dir.join("boots")).unwrap_or_default();
    assert_eq!(
        boots.trim(),
        "once=n",
        "started once, from the network first"
    );

    let serial = bmc_dir.join("serial.log");
    let serial_text =
        || String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
    let limit = Instant::now();
    while limit.elapsed() < BOOT_LIMIT
        && !serial_text().contains(&format!("{} done called", linux::MARKER))
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let text = serial_text();
    assert!(
        text.contains(&format!("{} done called", linux::MARKER)),
        "the installer never called back. Serial:\n{}\n--- pxedeck:\n{}",
        text.lines().rev().take(40).collect::<Vec<_>>().join("\n"),
        serve.log_text()
    );
    assert!(
        text.contains(&format!("{} config says hello {HOST}", linux::MARKER)),
        "{text}"
    );
    let first_boot = text
        .lines()
        .find(|l| l.contains("Booting from"))
        .unwrap_or("")
        .trim()
        .to_string();
    assert!(
        !first_boot.contains("Hard Disk") && !first_boot.contains("Floppy"),
        "the network came first: {first_boot:?}"
    );

    // The installer's callback set install back to false; the VM powered
    // off and the poll shows it.
    assert!(
        serve.wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&machine_file)
                .unwrap_or_default()
                .contains("install: false")
        }),
        "{}",
        std::fs::read_to_string(&machine_file).unwrap_or_default()
    );
    assert!(
        serve.wait_until(Duration::from_secs(60), || power(&serve).as_deref()
            == Some("off")),
        "power {:?} after the install",
        power(&serve)
    );
    let calls = sim.calls();
    let pxe = calls.iter().position(|c| c == "set boot pxe");
    let on = calls.iter().position(|c| c == "set power 1");
    assert!(
        pxe.is_some() && on.is_some() && pxe < on,
        "boot device first: {calls:?}"
    );
    let metrics = Command::new("ip")
        .args([
            "netns",
            "exec",
            &seg.srv,
            "curl",
            "-sf",
            &format!("http://{API}/metrics"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("pxedeck_bmc_reachable{state=\"reachable\"} 1"),
        "{metrics}"
    );

    linux::summary(
        "BMC (ipmi_sim) → reinstall → PXE → done",
        started,
        &format!("ipmi_sim chassis → QEMU -boot once=n, {first_boot:?}, done, power off seen"),
    );
    // The VM is gone (it powered off); make sure before the namespaces go.
    let _ = sim.ipmitool(Some(&bmc_ns), &["power", "off"]);
    drop(serve);
    drop(sim);
}
