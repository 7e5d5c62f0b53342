//! `pxedeck demo`: the whole product on loopback, no root and no setup.
//!
//! A temporary copy of the example inventory (its 10.99.0.x addresses moved
//! to 127.99.0.x so simulated machines can send from them), a boot root of
//! realistic sizes (sparse files: no disk used), every service on
//! unprivileged ports, and a stream of simulated machines: the inventory's
//! own (some install, some boot their disk), unknown ones that wait in the
//! hold loop until someone adopts them, and one that loses power
//! mid-download.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::boot::arch::Firmware;
use crate::boot::decide::{LOADER_BIOS, LOADER_UEFI_X64};
use crate::config::Config;
use crate::ident::Mac;
use crate::sim::world::sized_file;
use crate::sim::{Behaviour, SimMachine, Target, boot};

/// Files and settings of a demo run.
pub struct DemoWorld {
    pub dir: PathBuf,
    pub config: Config,
}

/// Copies a folder of text files, passing each through `rewrite`.
pub fn copy_tree(from: &Path, to: &Path, rewrite: &dyn Fn(&str) -> String) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target, rewrite)?;
        } else {
            let text = std::fs::read_to_string(entry.path())?;
            std::fs::write(target, rewrite(&text))?;
        }
    }
    Ok(())
}

/// The example inventory: `./nodes` when run from a checkout (`cargo run`),
/// else the one in the source tree the binary was built from.
fn example_inventory() -> PathBuf {
    let here = Path::new("nodes");
    if here.join("_profiles").is_dir() {
        here.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes")
    }
}

impl DemoWorld {
    /// Builds the demo's files under `dir`. `api_port` 0 picks a free one.
    pub fn create(dir: &Path, api_port: u16) -> std::io::Result<DemoWorld> {
        let nodes = dir.join("nodes");
        copy_tree(&example_inventory(), &nodes, &|t| {
            t.replace("10.99.0.", "127.99.0.")
        })?;
        let boot = dir.join("boot");
        sized_file(&boot.join(LOADER_BIOS), 70 * 1024)?;
        sized_file(&boot.join(LOADER_UEFI_X64), 1024 * 1024)?;
        sized_file(&boot.join("ubuntu-24.04/vmlinuz"), 15 * 1024 * 1024)?;
        sized_file(&boot.join("ubuntu-24.04/initrd"), 70 * 1024 * 1024)?;
        let text = format!(
            "server:\n  address: 127.0.0.1\n\
             dhcp:\n  port: 0\n  proxy_port: 0\n  lease_file: leases.jsonl\n  firmware_lease_time: 2m\n  pools:\n    - subnet: 127.99.0.0/24\n      range: 127.99.0.100-127.99.0.250\n      router: 127.99.0.1\n      lease_time: 1h\n\
             tftp:\n  port: 0\n\
             http:\n  port: 0\n  api_listen: 127.0.0.1:{api_port}\n  api_token: demo\n\
             unknown:\n  policy: hold\n\
             stuck_after:\n  script: 30s\n\
             boot_root: boot\ninventory: nodes\n"
        );
        let path = dir.join("pxedeck.yaml");
        std::fs::write(&path, text)?;
        let config = Config::load(Some(&path))
            .map_err(|e| std::io::Error::other(format!("demo config: {e}")))?;
        Ok(DemoWorld {
            dir: dir.to_path_buf(),
            config,
        })
    }
}

/// The demo's cast, in order of appearance.
pub fn cast(unknown: usize) -> Vec<SimMachine> {
    let mac = |s: &str| s.parse::<Mac>().expect("demo MACs are valid");
    let mut out = vec![
        SimMachine::new(mac("52:54:00:d0:00:01"), Firmware::UefiX64), // dev-01 installs
        SimMachine::new(mac("52:54:00:99:00:01"), Firmware::UefiX64), // unknown
        SimMachine::new(mac("52:54:00:e0:00:05"), Firmware::UefiX64), // prod-05 local disk
        SimMachine::new(mac("52:54:00:99:00:02"), Firmware::Bios),    // unknown
        SimMachine::new(mac("52:54:00:d0:00:03"), Firmware::UefiX64), // dev-03 local disk
        SimMachine::new(mac("52:54:00:e0:00:01"), Firmware::HttpX64), // prod-01 Talos
        SimMachine::new(mac("52:54:00:e0:00:02"), Firmware::UefiX64), // prod-02 Talos
    ];
    // dev-02 loses power halfway through its kernel: a failed transfer
    // and a failed machine, as the console shows them.
    let mut flaky = SimMachine::new(mac("52:54:00:d0:00:02"), Firmware::Bios);
    flaky.behaviour = Behaviour::DiesMidKernel;
    out.insert(2, flaky);
    // prod-04 hangs after its script: stuck, with where, after 30 s.
    let mut hung = SimMachine::new(mac("52:54:00:e0:00:04"), Firmware::UefiX64);
    hung.behaviour = Behaviour::StallsAfterScript;
    out.push(hung);
    for n in 3..3 + unknown.saturating_sub(2) {
        let fw = if n % 3 == 0 {
            Firmware::Bios
        } else {
            Firmware::UefiX64
        };
        out.push(SimMachine::new(
            Mac([0x52, 0x54, 0x00, 0x99, 0x00, n as u8]),
            fw,
        ));
    }
    out
}

/// Streams the cast in, one machine every `every`, each booting as soon
/// as it appears (the held ones keep polling until adopted).
pub async fn stream(machines: Vec<SimMachine>, target: Target, every: Duration) {
    for (i, m) in machines.into_iter().enumerate() {
        let target = target.clone();
        tokio::spawn(async move {
            let _ = boot(&m, &target, i as u64 + 1).await;
        });
        tokio::time::sleep(every).await;
    }
}
