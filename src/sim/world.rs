//! A self-contained provisioning setup on loopback for simulated machines:
//! a config with unprivileged (or ephemeral) ports, a boot root with
//! loaders, kernel and initrd of chosen sizes, and an inventory of known
//! machines. `pxedeck bench` and the integration tests boot from it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::boot::arch::Firmware;
use crate::boot::decide::{LOADER_BIOS, LOADER_UEFI_X64};
use crate::config::Config;
use crate::ident::Mac;

use super::SimMachine;

/// What to build.
#[derive(Debug, Clone)]
pub struct WorldSpec {
    /// Machines in the inventory, `install: true`.
    pub known: usize,
    /// Machines that are not (they wait in the hold loop).
    pub unknown: usize,
    pub loader_size: u64,
    pub kernel_size: u64,
    pub initrd_size: u64,
    /// Ports: 0 picks free ones.
    pub dhcp_port: u16,
    pub tftp_port: u16,
    pub http_port: u16,
    pub api_port: u16,
    pub api_token: String,
}

impl Default for WorldSpec {
    fn default() -> Self {
        WorldSpec {
            known: 10,
            unknown: 0,
            loader_size: 64 * 1024,
            kernel_size: 1 << 20,
            initrd_size: 2 << 20,
            dhcp_port: 0,
            tftp_port: 0,
            http_port: 0,
            api_port: 0,
            api_token: "sim".into(),
        }
    }
}

/// The generated files and the machines that boot from them.
pub struct World {
    pub dir: PathBuf,
    pub config: Config,
    pub known: Vec<SimMachine>,
    pub unknown: Vec<SimMachine>,
}

/// The loopback subnet simulated machines lease from: all of 127/8 is
/// local on Linux, so each machine can send from its own address.
pub const SIM_SUBNET: &str = "127.99.0.0/16";

/// MAC of the n-th known (`aa`) or unknown (`bb`) simulated machine.
pub fn sim_mac(kind: u8, n: usize) -> Mac {
    Mac([0x52, 0x54, 0x00, kind, (n >> 8) as u8, n as u8])
}

/// Firmware mix of a rack: mostly UEFI, some BIOS, a few HTTP Boot.
pub fn firmware_for(n: usize) -> Firmware {
    match n % 10 {
        0..=2 => Firmware::Bios,
        3 => Firmware::HttpX64,
        _ => Firmware::UefiX64,
    }
}

/// Creates a file of `size` bytes without writing them (sparse): reads
/// are real, disk use is not.
pub fn sized_file(path: &Path, size: u64) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::File::create(path)?.set_len(size)
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}

/// The profile every generated machine boots: a kernel and initrd from the
/// boot root, a nocloud-net seed, a user-data that calls back when done.
const PROFILE: &str = "\
description: Simulated installer (kernel + initrd, cloud-init seed)
boot:
  kernel: sim/vmlinuz
  initrd: sim/initrd
  cmdline: console={{ console }} ds=nocloud-net;s={{ config_url }}/
configs:
  meta-data: |
    instance-id: {{ hostname }}
  user-data: |
    #cloud-config
    hostname: {{ hostname }}
    runcmd:
      - curl -fsS -X POST {{ done_url }}
";

impl World {
    pub fn create(dir: &Path, spec: &WorldSpec) -> std::io::Result<World> {
        let nodes = dir.join("nodes");
        let boot = dir.join("boot");
        write(
            &nodes.join("_defaults.yaml"),
            "install: false\nconsole: ttyS0,115200\n",
        )?;
        write(&nodes.join("_profiles/sim-install.yaml"), PROFILE)?;
        write(
            &nodes.join("rack1/_defaults.yaml"),
            "profile: sim-install\nadopt:\n  hostname_pattern: node-{n:03}\n",
        )?;
        let mut known = Vec::new();
        for n in 0..spec.known {
            let m = SimMachine::new(sim_mac(0xaa, n), firmware_for(n));
            write(
                &nodes.join(format!("rack1/node-{:03}.yaml", n + 1)),
                &format!("mac: \"{}\"\ninstall: true\n", m.mac),
            )?;
            known.push(m);
        }
        let unknown = (0..spec.unknown)
            .map(|n| SimMachine::new(sim_mac(0xbb, n), firmware_for(n)))
            .collect();
        sized_file(&boot.join(LOADER_BIOS), spec.loader_size)?;
        sized_file(&boot.join(LOADER_UEFI_X64), spec.loader_size)?;
        sized_file(&boot.join("sim/vmlinuz"), spec.kernel_size)?;
        sized_file(&boot.join("sim/initrd"), spec.initrd_size)?;

        let mut text = String::new();
        let _ = write!(
            text,
            "server:\n  address: 127.0.0.1\n\
             dhcp:\n  port: {dhcp}\n  proxy_port: 0\n  lease_file: leases.jsonl\n  firmware_lease_time: 2m\n  pools:\n    - subnet: {SIM_SUBNET}\n      range: 127.99.1.1-127.99.250.250\n      lease_time: 1h\n\
             tftp:\n  port: {tftp}\n\
             http:\n  port: {http}\n  api_listen: 127.0.0.1:{api}\n  api_token: {token}\n\
             unknown:\n  policy: hold\n\
             boot_root: boot\ninventory: nodes\n",
            dhcp = spec.dhcp_port,
            tftp = spec.tftp_port,
            http = spec.http_port,
            api = spec.api_port,
            token = spec.api_token,
        );
        let config_path = dir.join("pxedeck.yaml");
        write(&config_path, &text)?;
        let config = Config::load(Some(&config_path))
            .map_err(|e| std::io::Error::other(format!("generated config: {e}")))?;
        Ok(World {
            dir: dir.to_path_buf(),
            config,
            known,
            unknown,
        })
    }
}
