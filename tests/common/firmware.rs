//! The firmware suite's shared scenario setup: a pxedeck world (config,
//! inventory, boot root) on a `Segment`, QEMU machines booting from it
//! (SeaBIOS with QEMU's iPXE ROM, OVMF PXE, OVMF HTTP Boot, OVMF with
//! Secure Boot enforced, AAVMF on arm64), and the checks every scenario
//! makes from both sides (serial console, API, machine file). The world is
//! `firmware_qemu.rs`'s and `firmware_identity.rs`'s; the Secure Boot and
//! BMC suites bring worlds of their own and share the VMs and checks.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::linux::{MARKER, linux};
use super::segment::{Segment, Serve};

pub const TOKEN: &str = "e2e-token";
pub const API: &str = "127.0.0.1:8081";
/// How long one VM may take under TCG on a busy 2-core machine.
pub const BOOT_LIMIT: Duration = Duration::from_secs(360);

#[macro_export]
macro_rules! require_qemu {
    () => {
        require_netns!();
        if std::env::var_os("PXEDECK_SKIP_QEMU").is_some() {
            eprintln!("SKIPPED {}: PXEDECK_SKIP_QEMU is set", module_path!());
            return;
        }
        for (tool, package) in [
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("cpio", "cpio"),
            ("curl", "curl"),
        ] {
            assert!(
                common::have(tool),
                "{tool} is not installed (.ci/run installs {package})"
            );
        }
    };
}

// ---------------------------------------------------------------------------
// A pxedeck world: config, inventory and boot root in a temporary folder.

#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Full,
    Proxy,
}

pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new(seg: &Segment, mode: Mode) -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let linux = linux();
        std::fs::create_dir_all(d.join("boot/e2e")).unwrap();
        // Copies, not links: the boot root confines symlinks to itself.
        std::fs::copy(&linux.vmlinuz, d.join("boot/e2e/vmlinuz")).unwrap();
        std::fs::copy(&linux.initrd, d.join("boot/e2e/initrd.gz")).unwrap();
        for sub in ["nodes/_profiles", "nodes/lab"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("nodes/_defaults.yaml"), "install: false\n").unwrap();
        std::fs::write(
            d.join("nodes/_profiles/e2e-linux.yaml"),
            "description: Linux with a busybox initrd that reports back\n\
             boot:\n  kernel: e2e/vmlinuz\n  initrd: e2e/initrd.gz\n  \
             cmdline: console=ttyS0 quiet pxedeck.config={{ config_url }}/marker pxedeck.done={{ done_url }}\n\
             configs:\n  marker: \"hello {{ hostname }}\"\n",
        )
        .unwrap();
        let srv = seg.server_ip();
        let dhcp = match mode {
            Mode::Full => format!(
                "  mode: full\n  pools:\n    - subnet: {}\n      range: {}-{}\n      router: {srv}\n",
                seg.subnet(),
                seg.ip(100),
                seg.ip(150)
            ),
            Mode::Proxy => "  mode: proxy\n".to_string(),
        };
        // Behind a proxy, the lease is not pxedeck's: installers fetch
        // configs from an address the other server handed out.
        let allow = match mode {
            Mode::Full => String::new(),
            Mode::Proxy => format!("  config_allow: [{}]\n", seg.subnet()),
        };
        std::fs::write(
            d.join("pxedeck.yaml"),
            format!(
                "server:\n  address: {srv}\n  interface: eth0\n\
                 dhcp:\n  lease_file: leases.jsonl\n{dhcp}\
                 http:\n  port: 80\n  api_listen: {API}\n  api_token: {TOKEN}\n{allow}\
                 unknown:\n  policy: hold\n\
                 boot_root: boot\ninventory: nodes\n"
            ),
        )
        .unwrap();
        World { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn add_machine(&self, hostname: &str, mac: &str, install: bool) {
        std::fs::write(
            self.path().join(format!("nodes/lab/{hostname}.yaml")),
            format!("mac: \"{mac}\"\nprofile: e2e-linux\ninstall: {install}\n"),
        )
        .unwrap();
    }

    pub fn machine_file(&self, hostname: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("nodes/lab/{hostname}.yaml")))
            .unwrap_or_default()
    }

    pub fn serve(&self, seg: &Segment) -> Serve {
        Serve::start(
            &seg.srv,
            &self.path().join("pxedeck.yaml"),
            &format!("http://{API}"),
            TOKEN,
        )
    }
}

// ---------------------------------------------------------------------------
// Virtual machines.

#[derive(Clone, Copy, Debug)]
pub enum Firmware {
    /// SeaBIOS with QEMU's NIC option ROM, which is iPXE itself.
    Bios,
    /// OVMF's own PXE stack (a NIC without a ROM): TFTP, then iPXE.
    UefiPxe,
    /// OVMF's HTTP Boot, with PXE switched off in the firmware.
    UefiHttp,
    /// OVMF with Secure Boot enforced: the secure-boot build read-only, a
    /// copy of the Microsoft-keys variable store, SMM on (without it this
    /// firmware hangs silently).
    UefiSecureBoot,
    /// AAVMF on an arm64 `virt` machine (always TCG), without Secure Boot
    /// keys: it proves the chain and the architecture.
    Arm64,
}

/// OVMF's Secure Boot build and its variable store with Microsoft's KEK
/// and db enrolled, Secure Boot on.
pub const OVMF_SB_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
pub const OVMF_SB_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
pub const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

pub struct Vm {
    pub child: Child,
    pub serial: PathBuf,
    pub started: Instant,
    _vars: Option<tempfile::NamedTempFile>,
}

impl Vm {
    pub fn start(seg: &Segment, firmware: Firmware, mac: &str, dir: &Path) -> Vm {
        Vm::start_with(seg, firmware, mac, dir, &[])
    }

    /// [`Vm::start`] with more QEMU arguments (`-smbios type=1,serial=…`).
    pub fn start_with(
        seg: &Segment,
        firmware: Firmware,
        mac: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Vm {
        let tap = seg.tap();
        let serial = dir.join(format!("serial-{}.log", mac.replace(':', "")));
        let accel = match firmware {
            Firmware::Arm64 => "tcg".to_string(),
            _ => std::env::var("PXEDECK_E2E_ACCEL").unwrap_or_else(|_| "tcg".into()),
        };
        let mut args: Vec<String> = [
            "-accel",
            &accel,
            "-nographic",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !matches!(firmware, Firmware::Arm64) {
            args.extend(["-boot", "n"].map(String::from));
        }
        args.push("-serial".into());
        args.push(format!("file:{}", serial.display()));
        args.push("-netdev".into());
        args.push(format!("tap,id=n0,ifname={tap},script=no,downscript=no"));
        // UEFI: the code read-only, a copy of the variable store per VM.
        let mut vars = None;
        let mut pflash = |args: &mut Vec<String>, code: &str, store: &str| {
            let copy = tempfile::NamedTempFile::new_in(dir).unwrap();
            std::fs::copy(store, copy.path())
                .unwrap_or_else(|e| panic!("{store}: {e} (.ci/run installs the firmware)"));
            args.push("-drive".into());
            args.push(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={code}"
            ));
            args.push("-drive".into());
            args.push(format!(
                "if=pflash,format=raw,unit=1,file={}",
                copy.path().display()
            ));
            vars = Some(copy);
        };
        let virtio = format!("virtio-net-pci,netdev=n0,mac={mac},romfile=");
        match firmware {
            Firmware::Bios => {
                // graphics=off makes SeaBIOS (and iPXE) write to the serial port.
                args.extend(["-machine", "pc,graphics=off", "-m", "256"].map(String::from));
                args.push("-device".into());
                args.push(format!("e1000,netdev=n0,mac={mac}"));
            }
            Firmware::UefiPxe | Firmware::UefiHttp => {
                args.extend(["-machine", "q35", "-m", "512"].map(String::from));
                pflash(&mut args, OVMF_CODE, OVMF_VARS);
                args.extend(["-device".into(), virtio]);
                if matches!(firmware, Firmware::UefiHttp) {
                    for v in ["IPv4PXESupport", "IPv6PXESupport"] {
                        args.push("-fw_cfg".into());
                        args.push(format!("name=opt/org.tianocore/{v},string=n"));
                    }
                }
            }
            Firmware::UefiSecureBoot => {
                args.extend(["-machine", "q35,smm=on", "-m", "512"].map(String::from));
                args.extend(
                    ["-global", "driver=cfi.pflash01,property=secure,value=on"].map(String::from),
                );
                pflash(&mut args, OVMF_SB_CODE, OVMF_SB_VARS);
                args.extend(["-device".into(), virtio]);
            }
            Firmware::Arm64 => {
                args.extend(["-machine", "virt", "-cpu", "max", "-m", "1024"].map(String::from));
                pflash(&mut args, AAVMF_CODE, AAVMF_VARS);
                args.extend(["-device".into(), virtio]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let qemu = match firmware {
            Firmware::Arm64 => "qemu-system-aarch64",
            _ => "qemu-system-x86_64",
        };
        let child = seg
            .exec(&seg.lan, qemu)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {qemu}: {e}"));
        Vm {
            child,
            serial,
            started: Instant::now(),
            _vars: vars,
        }
    }

    pub fn serial_text(&self) -> String {
        let bytes = std::fs::read(&self.serial).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits for a line on the serial console; false on timeout or exit.
    pub fn wait_serial(&mut self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.serial_text().contains(needle) {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.serial_text().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    /// Waits for the VM to power off.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    /// The serial console without escape sequences' clutter, for messages.
    pub fn tail(&self) -> String {
        let text = self.serial_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Checks and the summary.

pub fn state(serve: &Serve, mac: &str) -> String {
    serve
        .machine(mac)
        .and_then(|m| m["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn timeline(serve: &Serve, mac: &str) -> Vec<String> {
    serve
        .machine(mac)
        .and_then(|m| {
            m["timeline"].as_array().map(|steps| {
                steps
                    .iter()
                    .filter_map(|s| s["what"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Asserts the busybox installer ran to its end on this VM.
pub fn assert_installed(vm: &mut Vm, serve: &Serve, world: &World, host: &str, mac: &str) {
    let done = vm.wait_serial(&format!("{MARKER} done called"), BOOT_LIMIT);
    assert!(
        done,
        "{host}: the installer never called back. Serial:\n{}\n--- pxedeck:\n{}",
        vm.tail(),
        serve.log_text()
    );
    let text = vm.serial_text();
    assert!(
        text.contains(&format!("is {host}, booting e2e-linux")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{MARKER} config says hello {host}")),
        "{text}"
    );
    assert!(
        vm.wait_exit(Duration::from_secs(60)),
        "{host} did not power off"
    );
    let installed = serve.wait_until(Duration::from_secs(10), || state(serve, mac) == "installed");
    assert!(
        installed,
        "{host}: pxedeck says {:?}; timeline {:?}",
        state(serve, mac),
        timeline(serve, mac)
    );
    assert!(
        world.machine_file(host).contains("install: false"),
        "{host}'s file after the install:\n{}",
        world.machine_file(host)
    );
}

pub fn has_step(steps: &[String], what: impl Fn(&str) -> bool) -> bool {
    steps.iter().any(|s| what(s))
}
