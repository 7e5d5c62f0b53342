//! The signed chain with real firmware, Secure Boot enforced: OVMF with
//! Microsoft's keys enrolled PXE-boots Debian's Microsoft-signed shim over
//! TFTP, shim loads Debian's signed network GRUB, GRUB reads the config
//! pxedeck generates for the machine and loads Debian's signed kernel and
//! the suite's initrd (`common::linux`) over TFTP; the installer fetches its
//! config over HTTP and calls back.
//!
//! Checked from both sides as in `firmware_qemu.rs`: the serial console
//! (the kernel's own `secureboot: Secure boot enabled` proves enforcement)
//! and pxedeck's API (the chain's stages as timeline steps, the state).
//! Root only, TCG unless `PXEDECK_E2E_ACCEL=kvm`; `PXEDECK_SKIP_QEMU=1`
//! skips loudly.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::firmware::{
    AAVMF_CODE, Firmware, OVMF_SB_CODE, OVMF_SB_VARS, Vm, has_step, state, timeline,
};
use common::linux::{MARKER, build_initrd, find_file, linux, sh, summary};
use common::segment::{Segment, Serve};

const TOKEN: &str = "e2e-token";
const API: &str = "127.0.0.1:8081";
/// One VM under TCG on a busy 2-core machine (the chain itself takes
/// ~15 s when the machine is idle; the kernel comes over TFTP).
const BOOT_LIMIT: Duration = Duration::from_secs(420);

const SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
/// Under TCG an arm64 guest on a loaded 2-core machine is slow; the
/// scenario runs beside the x86 ones.
const ARM64_LIMIT: Duration = Duration::from_secs(900);
const GRUB: &str = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed";

macro_rules! require_secure_boot_kit {
    () => {
        require_qemu!();
        assert!(
            common::have("sbattach"),
            "sbattach is not installed (.ci/run installs sbsigntool)"
        );
        for (file, package) in [
            (OVMF_SB_CODE, "ovmf"),
            (OVMF_SB_VARS, "ovmf"),
            (SHIM, "shim-signed"),
            (GRUB, "grub-efi-amd64-signed"),
        ] {
            assert!(
                Path::new(file).is_file(),
                "{file} is missing (.ci/run installs {package})"
            );
        }
    };
}

/// A pxedeck world whose profile `sb` has `secure_boot: true`.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new(seg: &Segment, unknown_loader: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let linux = linux();
        std::fs::create_dir_all(d.join("boot/e2e")).unwrap();
        std::fs::copy(&linux.vmlinuz, d.join("boot/e2e/vmlinuz")).unwrap();
        std::fs::copy(&linux.initrd, d.join("boot/e2e/initrd.gz")).unwrap();
        // The same kernel with its Authenticode signature removed.
        sh(
            "cp e2e/vmlinuz e2e/vmlinuz-unsigned && sbattach --remove e2e/vmlinuz-unsigned",
            &d.join("boot"),
        );
        for sub in ["nodes/_profiles", "nodes/lab"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("nodes/_defaults.yaml"), "install: false\n").unwrap();
        for (name, kernel) in [
            ("sb", "e2e/vmlinuz"),
            ("sb-unsigned", "e2e/vmlinuz-unsigned"),
        ] {
            std::fs::write(
                d.join(format!("nodes/_profiles/{name}.yaml")),
                format!(
                    "description: Debian's signed kernel under Secure Boot\n\
                     secure_boot: true\n\
                     boot:\n  kernel: {kernel}\n  initrd: e2e/initrd.gz\n  \
                     cmdline: console=ttyS0 loglevel=7 pxedeck.config={{{{ config_url }}}}/marker \
                     pxedeck.done={{{{ done_url }}}}\n\
                     configs:\n  marker: \"hello {{{{ hostname }}}}\"\n"
                ),
            )
            .unwrap();
        }
        let srv = seg.server_ip();
        std::fs::write(
            d.join("pxedeck.yaml"),
            format!(
                "server:\n  address: {srv}\n  interface: eth0\n\
                 dhcp:\n  lease_file: leases.jsonl\n  mode: full\n  pools:\n    \
                 - subnet: {}\n      range: {}-{}\n      router: {srv}\n\
                 http:\n  port: 80\n  api_listen: {API}\n  api_token: {TOKEN}\n\
                 unknown:\n  policy: hold\n  loader: {unknown_loader}\n\
                 boot_root: boot\ninventory: nodes\n",
                seg.subnet(),
                seg.ip(100),
                seg.ip(150)
            ),
        )
        .unwrap();
        World { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn add_machine(&self, hostname: &str, mac: &str, profile: &str) {
        std::fs::write(
            self.path().join(format!("nodes/lab/{hostname}.yaml")),
            format!("mac: \"{mac}\"\nprofile: {profile}\ninstall: true\n"),
        )
        .unwrap();
    }

    fn machine_file(&self, hostname: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("nodes/lab/{hostname}.yaml")))
            .unwrap_or_default()
    }

    fn serve(&self, seg: &Segment) -> Serve {
        Serve::start(
            &seg.srv,
            &self.path().join("pxedeck.yaml"),
            &format!("http://{API}"),
            TOKEN,
        )
    }
}

/// The installer ran to its end under Secure Boot, and pxedeck saw every
/// stage of the chain.
fn assert_installed_under_secure_boot(
    vm: &mut Vm,
    serve: &Serve,
    world: &World,
    host: &str,
    mac: &str,
) -> Vec<String> {
    let done = vm.wait_serial(&format!("{MARKER} done called"), BOOT_LIMIT);
    assert!(
        done,
        "{host}: the installer never called back. Serial:\n{}\n--- pxedeck:\n{}",
        vm.tail(),
        serve.log_text()
    );
    let text = vm.serial_text();
    assert!(
        text.contains("secureboot: Secure boot enabled"),
        "the kernel did not report Secure Boot:\n{}",
        vm.tail()
    );
    assert!(
        text.contains(&format!("is {host}, booting sb")),
        "GRUB did not echo the machine's config:\n{}",
        vm.tail()
    );
    assert!(
        text.contains(&format!("{MARKER} config says hello {host}")),
        "{}",
        vm.tail()
    );
    assert!(
        vm.wait_exit(Duration::from_secs(60)),
        "{host} did not power off"
    );
    let installed = serve.wait_until(Duration::from_secs(10), || state(serve, mac) == "installed");
    let steps = timeline(serve, mac);
    assert!(
        installed,
        "{host}: pxedeck says {:?}; timeline {steps:?}",
        state(serve, mac)
    );
    assert!(world.machine_file(host).contains("install: false"));
    for stage in [
        "TFTP shimx64.efi",
        "grubx64.efi",
        "grub.cfg install (sb)",
        "e2e/vmlinuz",
        "e2e/initrd.gz",
        "config marker",
        "install done",
    ] {
        assert!(
            has_step(&steps, |s| s.contains(stage)),
            "no {stage:?} in {steps:?}"
        );
    }
    steps
}

/// PXE → shim → GRUB → per-machine config → signed kernel + initrd →
/// installer config → done callback, Secure Boot enforced.
#[test]
fn secure_boot_pxe_boots_the_signed_chain_to_the_done_callback() {
    require_secure_boot_kit!();
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, "ipxe");
    let mac = "52:54:00:5b:00:01";
    world.add_machine("sb-1", mac, "sb");
    let serve = world.serve(&seg);
    let mut vm = Vm::start(&seg, Firmware::UefiSecureBoot, mac, world.path());
    let steps = assert_installed_under_secure_boot(&mut vm, &serve, &world, "sb-1", mac);
    let chain = serve
        .machine(mac)
        .and_then(|m| m["chain"].as_str().map(str::to_string));
    assert_eq!(chain.as_deref(), Some("grub"), "{steps:?}");
    // The kernel came over TFTP (GRUB has no HTTP): how fast.
    let kernel_ms = serve
        .machine(mac)
        .and_then(|m| {
            m["timeline"].as_array()?.iter().find_map(|s| {
                let what = s["what"].as_str()?;
                (what.starts_with("TFTP") && what.ends_with("e2e/vmlinuz"))
                    .then(|| s["millis"].as_u64())?
            })
        })
        .unwrap_or(0);
    let kernel_bytes = std::fs::metadata(world.path().join("boot/e2e/vmlinuz"))
        .map(|m| m.len())
        .unwrap_or(0);
    summary(
        "Secure Boot (OVMF ms keys): shim → GRUB → Linux",
        started,
        &format!(
            "VM {:.0} s; kernel says Secure boot enabled; kernel {:.1} MB over TFTP in {:.1} s; \
             state installed",
            vm.started.elapsed().as_secs_f64(),
            kernel_bytes as f64 / 1e6,
            kernel_ms as f64 / 1000.0
        ),
    );
}

/// A kernel with its signature stripped is refused by GRUB (through shim's
/// verifier), and pxedeck shows the failure: GRUB's report is a failed
/// step, no config was fetched, the machine's file is unchanged.
#[test]
fn secure_boot_refuses_an_unsigned_kernel_and_pxedeck_shows_it() {
    require_secure_boot_kit!();
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, "ipxe");
    let mac = "52:54:00:5b:00:02";
    world.add_machine("sb-bad", mac, "sb-unsigned");
    let before = world.machine_file("sb-bad");
    let serve = world.serve(&seg);
    let mut vm = Vm::start(&seg, Firmware::UefiSecureBoot, mac, world.path());
    assert!(
        vm.wait_serial("bad shim signature", BOOT_LIMIT),
        "GRUB did not refuse the unsigned kernel:\n{}\n--- pxedeck:\n{}",
        vm.tail(),
        serve.log_text()
    );
    let failed = serve.wait_until(Duration::from_secs(30), || {
        has_step(&timeline(&serve, mac), |s| s == "GRUB kernel failed")
    });
    let steps = timeline(&serve, mac);
    assert!(failed, "no failure step: {steps:?}");
    assert_eq!(state(&serve, mac), "failed", "{steps:?}");
    let error = serve
        .machine(mac)
        .and_then(|m| m["last_error"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(error.contains("not signed by a key shim trusts"), "{error}");
    assert!(
        has_step(&steps, |s| s.contains("e2e/vmlinuz-unsigned")),
        "{steps:?}"
    );
    assert!(!has_step(&steps, |s| s.starts_with("config")), "{steps:?}");
    assert!(
        !vm.serial_text().contains(MARKER),
        "the unsigned kernel ran"
    );
    assert_eq!(world.machine_file("sb-bad"), before);
    summary(
        "Secure Boot: unsigned kernel refused by GRUB",
        started,
        "bad shim signature on the console; step GRUB kernel failed; no config",
    );
}

/// An unknown machine under `unknown.loader: grub` waits in GRUB's hold
/// loop, is adopted through the API, and boots its profile under Secure
/// Boot without a reset (`-no-reboot` would end the VM on one).
#[test]
fn secure_boot_held_machine_boots_when_adopted() {
    require_secure_boot_kit!();
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, "grub");
    let mac = "52:54:00:5b:00:03";
    let serve = world.serve(&seg);
    let mut vm = Vm::start(&seg, Firmware::UefiSecureBoot, mac, world.path());
    assert!(
        vm.wait_serial("asking again every 5 s", BOOT_LIMIT),
        "no hold loop on the console:\n{}\n--- pxedeck:\n{}",
        vm.tail(),
        serve.log_text()
    );
    assert!(
        serve.wait_until(Duration::from_secs(10), || state(&serve, mac) == "held"),
        "pxedeck says {:?}",
        state(&serve, mac)
    );
    let adopt = serde_json::json!({"machines": [{
        "macs": [mac], "hostname": "sb-adopted", "group": "lab",
        "profile": "sb", "install": true
    }]});
    let adopted_at = Instant::now();
    assert!(
        serve.post_json("/api/v1/adopt", &adopt).is_some(),
        "adopt refused:\n{}",
        serve.log_text()
    );
    assert!(
        vm.wait_serial("is sb-adopted, booting sb", Duration::from_secs(120)),
        "the held machine did not pick up its profile:\n{}",
        vm.tail()
    );
    let picked_up = adopted_at.elapsed();
    assert_installed_under_secure_boot(&mut vm, &serve, &world, "sb-adopted", mac);
    let shims = vm.serial_text().matches("shimx64.efi").count();
    let steps = timeline(&serve, mac);
    assert_eq!(
        steps
            .iter()
            .filter(|s| s.contains("TFTP shimx64.efi"))
            .count(),
        1,
        "shim was loaded again: the machine was reset ({shims} on the console): {steps:?}"
    );
    summary(
        "Secure Boot: held in GRUB → adopted → Linux",
        started,
        &format!(
            "config picked up {:.1} s after adoption, no reset",
            picked_up.as_secs_f64()
        ),
    );
}

/// A machine pre-seeded by serial alone (no MAC in its file) installs on
/// its first boot under Secure Boot with no adoption: GRUB knows only the
/// MAC, so pxedeck's config for an unknown MAC has GRUB's `smbios` read the
/// serial QEMU sets (`-smbios type=1,serial=…`) and ask for it by name.
#[test]
fn secure_boot_machine_known_only_by_serial_installs_without_adoption() {
    require_secure_boot_kit!();
    let started = Instant::now();
    let seg = Segment::new();
    let world = World::new(&seg, "grub");
    let (mac, serial) = ("52:54:00:5b:00:04", "PO-2026-SB-0004");
    std::fs::write(
        world.path().join("nodes/lab/sb-serial.yaml"),
        format!("serial: \"{serial}\"\nprofile: sb\ninstall: true\n"),
    )
    .unwrap();
    let serve = world.serve(&seg);
    let smbios = format!("type=1,serial={serial}");
    let mut vm = Vm::start_with(
        &seg,
        Firmware::UefiSecureBoot,
        mac,
        world.path(),
        &["-smbios", &smbios],
    );
    let steps = assert_installed_under_secure_boot(&mut vm, &serve, &world, "sb-serial", mac);
    // The config for its unknown MAC is a hold that asks by serial first:
    // it is served once, and the same round boots.
    let holds = steps
        .iter()
        .filter(|s| s.as_str() == "grub.cfg hold")
        .count();
    assert!(
        holds <= 1,
        "held for {holds} rounds before its serial was read: {steps:?}"
    );
    let file = world.machine_file("sb-serial");
    assert!(
        !file.contains("mac"),
        "a claim is never written back into the file:\n{file}"
    );
    summary(
        "Secure Boot: known by serial alone → Linux, no adoption",
        started,
        &format!(
            "GRUB read SMBIOS serial {serial}; VM {:.0} s; state installed",
            vm.started.elapsed().as_secs_f64()
        ),
    );
}

// ---------------------------------------------------------------------------
// ARM64: Debian's arm64 shim, GRUB, kernel and busybox, from Debian's arm64
// packages (`dpkg --add-architecture arm64`; `.ci/run` does it), cached in
// the target directory.

struct Arm64 {
    shim: PathBuf,
    grub: PathBuf,
    vmlinuz: PathBuf,
    initrd: PathBuf,
}

/// The arm64 NIC drivers (virtio and virtio_ring are built in there).
const ARM64_MODULES: &[&str] = &[
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

fn arm64() -> Arm64 {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-arm64");
    let kit = Arm64 {
        shim: dir.join("shimaa64.efi.signed"),
        grub: dir.join("grubnetaa64.efi.signed"),
        vmlinuz: dir.join("vmlinuz"),
        initrd: dir.join("initrd.gz"),
    };
    if !kit.vmlinuz.exists() {
        let work = dir.join("deb");
        std::fs::create_dir_all(&work).unwrap();
        sh(
            "dpkg --print-foreign-architectures | grep -qx arm64 || \
               { dpkg --add-architecture arm64 && apt-get update -qq; }
             pkg=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/.*Depends: \\(linux-image-[0-9][^:]*\\).*/\\1/p' | head -n1)
             test -n \"$pkg\"
             rm -f ./*.deb
             get() { apt-get download -q \"$@\" 2>/dev/null || { apt-get update -qq && apt-get download -q \"$@\"; }; }
             get shim-signed:arm64 grub-efi-arm64-signed:arm64 busybox-static:arm64 \"$pkg:arm64\"
             for d in ./*.deb; do dpkg-deb --fsys-tarfile \"$d\" | tar -x --wildcards \\
               './usr/lib/shim/shimaa64.efi.signed' './usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed' \\
               './bin/busybox' './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/*' \\
               './lib/modules/*/kernel/net/core/failover.ko' 2>/dev/null || true; done
             cp usr/lib/shim/shimaa64.efi.signed usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed ..",
            &work,
        );
        let modules = dir.join("modules");
        std::fs::create_dir_all(&modules).unwrap();
        for name in ARM64_MODULES {
            let found = find_file(&work.join("lib"), &format!("{name}.ko"))
                .unwrap_or_else(|| panic!("the arm64 kernel package has no {name}.ko"));
            std::fs::copy(found, modules.join(format!("{name}.ko"))).unwrap();
        }
        build_initrd(
            &work.join("bin/busybox"),
            &modules,
            ARM64_MODULES,
            &kit.initrd,
        );
        let kernel = std::fs::read_dir(work.join("boot"))
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
            .expect("vmlinuz in the arm64 package");
        // Written last: its presence means the cache is complete.
        std::fs::copy(kernel.path(), &kit.vmlinuz).unwrap();
        let _ = std::fs::remove_dir_all(&work);
    }
    kit
}

/// AAVMF (qemu-efi-aarch64) PXE → shimaa64.efi → grubaa64.efi → the
/// machine's GRUB config → Debian's arm64 kernel + an arm64 initrd → the
/// installer's config and done callback. Arch 11 alone selects the chain:
/// the machine file sets neither `loader` nor `arch`.
#[test]
fn arm64_pxe_boots_shim_grub_and_an_arm64_kernel() {
    require_secure_boot_kit!();
    assert!(
        common::have("qemu-system-aarch64"),
        "qemu-system-aarch64 is not installed (.ci/run installs qemu-system-arm)"
    );
    assert!(
        Path::new(AAVMF_CODE).is_file(),
        "{AAVMF_CODE} is missing (.ci/run installs qemu-efi-aarch64)"
    );
    let started = Instant::now();
    let kit = arm64();
    let seg = Segment::new();
    let world = World::new(&seg, "ipxe");
    let d = world.path();
    std::fs::create_dir_all(d.join("boot/arm64")).unwrap();
    std::fs::copy(&kit.vmlinuz, d.join("boot/arm64/vmlinuz")).unwrap();
    std::fs::copy(&kit.initrd, d.join("boot/arm64/initrd.gz")).unwrap();
    std::fs::write(
        d.join("nodes/_profiles/arm.yaml"),
        "boot:\n  kernel: arm64/vmlinuz\n  initrd: arm64/initrd.gz\n  \
         cmdline: console=ttyAMA0 pxedeck.config={{ config_url }}/marker pxedeck.done={{ done_url }}\n\
         configs:\n  marker: \"hello {{ hostname }}\"\n",
    )
    .unwrap();
    let mut config = std::fs::read_to_string(d.join("pxedeck.yaml")).unwrap();
    config.push_str(&format!(
        "loaders:\n  shim_arm64: {}\n  grub_arm64: {}\n",
        kit.shim.display(),
        kit.grub.display()
    ));
    std::fs::write(d.join("pxedeck.yaml"), config).unwrap();
    let mac = "52:54:00:a6:00:01";
    world.add_machine("arm-1", mac, "arm");
    let serve = world.serve(&seg);

    let mut vm = Vm::start(&seg, Firmware::Arm64, mac, d);
    let done = vm.wait_serial(&format!("{MARKER} done called"), ARM64_LIMIT);
    let steps = timeline(&serve, mac);
    assert!(
        done,
        "arm-1: the installer never called back. Serial:\n{}\n--- steps {steps:?}\n--- pxedeck:\n{}",
        vm.tail(),
        serve.log_text()
    );
    let text = vm.serial_text();
    assert!(text.contains("is arm-1, booting arm"), "{}", vm.tail());
    assert!(
        text.contains(&format!("{MARKER} config says hello arm-1")),
        "{}",
        vm.tail()
    );
    assert!(
        serve.wait_until(Duration::from_secs(10), || state(&serve, mac)
            == "installed"),
        "pxedeck says {:?}",
        state(&serve, mac)
    );
    let steps = timeline(&serve, mac);
    for stage in [
        "ARM64 DISCOVER",
        "TFTP shimaa64.efi",
        "grubaa64.efi",
        "grub.cfg install (arm)",
        "arm64/vmlinuz",
        "install done",
    ] {
        assert!(
            has_step(&steps, |s| s.contains(stage)),
            "no {stage:?} in {steps:?}"
        );
    }
    summary(
        "ARM64 (AAVMF, TCG): shimaa64 → GRUB → Linux",
        started,
        &format!(
            "VM {:.0} s; arch 11 took the GRUB chain; state installed",
            vm.started.elapsed().as_secs_f64()
        ),
    );
}
