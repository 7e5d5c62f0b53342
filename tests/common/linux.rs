//! The Linux the firmware suites boot (`tests/firmware_*.rs`): Debian's
//! current amd64 kernel (signed: it boots under Secure Boot too), fetched
//! with apt once and cached in the target directory, and a busybox initrd
//! built here that prints a marker, takes a lease, fetches its installer
//! config from pxedeck, calls the done callback and powers off. Also the
//! summary line each scenario appends for `.ci/run`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// Printed by the initrd's /init on the serial console.
pub const MARKER: &str = "PXEDECK-E2E:";

pub struct Linux {
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
}

/// The kernel and initrd, built once per test process.
pub fn linux() -> &'static Linux {
    static LINUX: OnceLock<Linux> = OnceLock::new();
    LINUX.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-linux");
        let modules = dir.join("modules");
        let vmlinuz = dir.join("vmlinuz");
        if !vmlinuz.exists() {
            fetch_kernel(&dir);
        }
        let initrd = dir.join("initrd.gz");
        build_initrd(Path::new("/bin/busybox"), &modules, MODULES, &initrd);
        Linux { vmlinuz, initrd }
    })
}

/// The NIC drivers the initrd loads: e1000 (SeaBIOS machines) and
/// virtio-net with its dependencies (OVMF machines). Debian builds them as
/// modules.
const MODULES: &[&str] = &[
    "e1000",
    "virtio",
    "virtio_ring",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

pub fn sh(script: &str, dir: &Path) {
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Downloads Debian's current amd64 kernel package and keeps the kernel and
/// the NIC modules.
fn fetch_kernel(dir: &Path) {
    let work = dir.join("deb");
    std::fs::create_dir_all(&work).unwrap();
    sh(
        "pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \\(linux-image-[0-9].*\\)/\\1/p' | head -n1)
         test -n \"$pkg\"
         rm -f ./*.deb
         apt-get download -q \"$pkg\" 2>/dev/null || { apt-get update -qq && apt-get download -q \"$pkg\"; }
         dpkg-deb --fsys-tarfile ./*.deb | tar -x --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/*' './lib/modules/*/kernel/net/core/failover.ko'",
        &work,
    );
    let modules = dir.join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    for name in MODULES {
        let found = find_file(&work.join("lib"), &format!("{name}.ko"))
            .unwrap_or_else(|| panic!("the kernel package has no {name}.ko"));
        std::fs::copy(found, modules.join(format!("{name}.ko"))).unwrap();
    }
    let kernel = std::fs::read_dir(work.join("boot"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .expect("vmlinuz in the package");
    // Written last: its presence means the cache is complete.
    std::fs::copy(kernel.path(), dir.join("vmlinuz")).unwrap();
    let _ = std::fs::remove_dir_all(&work);
}

pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

/// What the installed "OS" does: report each step on the console, take a
/// lease with udhcpc, fetch the config named on the kernel command line,
/// call the done URL, power off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "PXEDECK-E2E: initrd up"
# Load the NIC drivers; three passes settle the dependency order.
for pass in 1 2 3; do for m in /modules/*.ko; do insmod "$m" 2>/dev/null; done; done
ip link set eth0 up
udhcpc -i eth0 -q -n -t 10 -T 2 -s /udhcpc.sh || echo "PXEDECK-E2E: no address"
for arg in $(cat /proc/cmdline); do
  case $arg in
    pxedeck.config=*) CONFIG=${arg#*=} ;;
    pxedeck.done=*) DONE=${arg#*=} ;;
  esac
done
if wget -q -O /tmp/config "$CONFIG"; then echo "PXEDECK-E2E: config says $(cat /tmp/config)"; fi
if wget -q -O /dev/null --post-data done "$DONE"; then echo "PXEDECK-E2E: done called"; fi
echo "PXEDECK-E2E: powering off"
poweroff -f
"#;

const UDHCPC_HOOK: &str = r#"#!/bin/sh
case $1 in
  bound|renew)
    ip addr add "$ip/${mask:-24}" dev "$interface"
    echo "PXEDECK-E2E: address $ip" ;;
esac
"#;

/// The initrd: a static `busybox` (of the guest's architecture), the NIC
/// modules named in `names` from the folder `modules`, and [`INIT`].
pub fn build_initrd(busybox: &Path, modules: &Path, names: &[&str], out: &Path) {
    let kind = Command::new("file").arg(busybox).output();
    if let Ok(k) = kind {
        assert!(
            String::from_utf8_lossy(&k.stdout).contains("statically linked"),
            "{} must be static (.ci/run installs busybox-static)",
            busybox.display()
        );
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["bin", "proc", "sys", "dev", "tmp", "modules"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
    for name in names {
        std::fs::copy(
            modules.join(format!("{name}.ko")),
            r.join(format!("modules/{name}.ko")),
        )
        .unwrap();
    }
    super::write_executable(&r.join("init"), INIT);
    super::write_executable(&r.join("udhcpc.sh"), UDHCPC_HOOK);
    sh(
        &format!(
            "find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
            out.display()
        ),
        r,
    );
}

/// Appends a scenario's line to `target/tmp/firmware-e2e-summary.txt`.
pub fn summary(scenario: &str, started: Instant, checked: &str) {
    let line = format!(
        "{scenario:<48} PASS {:>5.0} s  {checked}\n",
        started.elapsed().as_secs_f64()
    );
    eprint!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("firmware-e2e-summary.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}
