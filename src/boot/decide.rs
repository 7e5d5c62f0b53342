//! What a machine gets: the decision from inventory and policy, and the
//! first-stage loader for its firmware. Shared by DHCP (boot file) and HTTP
//! (script), so both sides always agree.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::arch::Firmware;
use crate::boot::BootDecision;
use crate::config::UnknownPolicy;
use crate::ident::{Mac, Uuid};
use crate::inventory::{BootSpec, Inventory, Machine};

/// Looks a client up (MAC first, then UUID) and applies the safety rules:
/// known + `install: true` + something to boot → its profile; any other
/// known machine → local disk; unknown → the configured policy.
pub fn decide<'a>(
    inv: &'a Inventory,
    unknown: &UnknownPolicy,
    mac: &Mac,
    uuid: Option<&Uuid>,
) -> (BootDecision, Option<&'a Machine>) {
    let machine = inv
        .by_mac(mac)
        .or_else(|| uuid.and_then(|u| inv.by_uuid(u)));
    (decide_for(machine, unknown), machine)
}

/// The decision for a machine already found (or not): its file's, else
/// the unknown policy's.
pub fn decide_for(machine: Option<&Machine>, unknown: &UnknownPolicy) -> BootDecision {
    match machine {
        Some(m) => decide_known(m),
        None => decide_unknown(unknown),
    }
}

/// What a machine the inventory does not hold gets: the configured policy.
pub fn decide_unknown(unknown: &UnknownPolicy) -> BootDecision {
    match unknown {
        UnknownPolicy::Ignore => BootDecision::Ignore,
        UnknownPolicy::Hold => BootDecision::Hold,
        UnknownPolicy::Discover { profile } => BootDecision::Discover {
            profile: profile.clone(),
        },
    }
}

/// The safety rule for a machine in the inventory: only `install: true`
/// with something to boot installs; anything else boots its local disk.
pub fn decide_known(m: &Machine) -> BootDecision {
    match (&m.boot, m.install) {
        (Some(BootSpec::Local { .. }), _) | (None, _) | (_, false) => BootDecision::Local,
        (Some(_), true) => BootDecision::Install {
            profile: m.profile.clone().unwrap_or_else(|| "(inline)".into()),
        },
    }
}

/// Where a client fetches its next stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootFile {
    /// A file name on pxedeck's TFTP server.
    Tftp(String),
    /// An absolute `http://` URL with an IP literal.
    Http(String),
}

impl BootFile {
    pub fn name(&self) -> &str {
        match self {
            BootFile::Tftp(s) | BootFile::Http(s) => s,
        }
    }
}

/// Names of the iPXE builds pxedeck hands to each firmware. Debian's `ipxe`
/// package provides the x86 ones; others are served where the boot root
/// has them.
pub const LOADER_BIOS: &str = "undionly.kpxe";
pub const LOADER_UEFI_X64: &str = "ipxe.efi";
pub const LOADER_UEFI_IA32: &str = "ipxe-i386.efi";
pub const LOADER_ARM64: &str = "ipxe-arm64.efi";
pub const LOADER_ARM32: &str = "ipxe-arm32.efi";
/// The iPXE entry script every iPXE client is pointed at.
pub const SCRIPT_PATH: &str = "boot.ipxe";
/// The signed chain's names on pxedeck's TFTP server. Shim loads
/// `grub<arch>.efi` from the directory it was loaded from, so both sit at
/// the root; `config::LoaderPaths` says which packaged file each one is.
pub const LOADER_SHIM_X64: &str = "shimx64.efi";
pub const LOADER_GRUB_X64: &str = "grubx64.efi";
pub const LOADER_SHIM_ARM64: &str = "shimaa64.efi";
pub const LOADER_GRUB_ARM64: &str = "grubaa64.efi";

/// Which boot chain a machine takes after its firmware.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chain {
    /// Debian's iPXE, then pxedeck's HTTP script (unsigned: no Secure Boot).
    #[default]
    Ipxe,
    /// Microsoft-signed shim, Debian-signed GRUB, configs pxedeck generates
    /// over TFTP: the chain Secure Boot accepts, and the one ARM64 takes.
    Grub,
}

impl Chain {
    pub fn name(self) -> &'static str {
        match self {
            Chain::Ipxe => "ipxe",
            Chain::Grub => "grub",
        }
    }

    /// How the console and the API word the chain.
    pub fn label(self) -> &'static str {
        match self {
            Chain::Ipxe => "iPXE",
            Chain::Grub => "shim/GRUB",
        }
    }
}

impl std::str::FromStr for Chain {
    type Err = String;

    fn from_str(s: &str) -> Result<Chain, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ipxe" => Ok(Chain::Ipxe),
            "grub" => Ok(Chain::Grub),
            other => Err(format!("unknown loader `{other}`, expected ipxe or grub")),
        }
    }
}

/// The chain DHCP offers a firmware: the machine's own choice, except that
/// ARM64 takes GRUB when the boot root has no iPXE build for it (Debian
/// ships none), and firmware with no signed GRUB build (BIOS, 32-bit) stays
/// on iPXE.
pub fn chain_for(
    firmware: Option<Firmware>,
    wanted: Chain,
    exists: impl Fn(&str) -> bool,
) -> Chain {
    match firmware {
        Some(Firmware::UefiX64 | Firmware::HttpX64) => wanted,
        Some(Firmware::UefiArm64 | Firmware::HttpArm64) if !exists(LOADER_ARM64) => Chain::Grub,
        Some(Firmware::UefiArm64 | Firmware::HttpArm64) => wanted,
        _ => Chain::Ipxe,
    }
}

/// The two-stage chainload: PXE firmware gets the iPXE binary for its
/// architecture over TFTP, UEFI HTTP Boot gets an EFI binary over HTTP, and
/// iPXE gets its script URL. On the GRUB chain the firmware gets shim (or
/// GRUB itself when no shim is installed: it boots without Secure Boot).
/// `exists` says whether a loader is available (the boot root or the
/// packages have it). None: nothing to offer.
pub fn first_stage(
    firmware: Option<Firmware>,
    ipxe: bool,
    chain: Chain,
    http_base: &str,
    exists: impl Fn(&str) -> bool,
) -> Option<BootFile> {
    if ipxe {
        return Some(BootFile::Http(format!("{http_base}/{SCRIPT_PATH}")));
    }
    let firmware = firmware?;
    let http = firmware.is_http_boot();
    let loader = match chain_for(Some(firmware), chain, &exists) {
        // Tried in QEMU (docs/operating.md): under UEFI HTTP Boot the
        // firmware loads shim and shim loads GRUB over HTTP, but Debian's
        // GRUB then has neither an `http` module nor a TFTP server (no PXE
        // DHCP answer to take it from) and stops at its prompt. Offer
        // nothing, so the firmware moves on to PXE, where the chain works.
        Chain::Grub if http => return None,
        Chain::Grub => {
            let (shim, grub) = match firmware {
                Firmware::UefiArm64 | Firmware::HttpArm64 => (LOADER_SHIM_ARM64, LOADER_GRUB_ARM64),
                _ => (LOADER_SHIM_X64, LOADER_GRUB_X64),
            };
            if !exists(grub) {
                return None;
            }
            if exists(shim) { shim } else { grub }
        }
        Chain::Ipxe => {
            let loader = match firmware {
                Firmware::Bios => LOADER_BIOS,
                Firmware::UefiX64 | Firmware::HttpX64 => LOADER_UEFI_X64,
                Firmware::UefiIa32 => LOADER_UEFI_IA32,
                Firmware::UefiArm64 | Firmware::HttpArm64 => LOADER_ARM64,
                Firmware::UefiArm32 | Firmware::HttpArm32 => LOADER_ARM32,
                Firmware::Other(_) => return None,
            };
            if !exists(loader) {
                return None;
            }
            loader
        }
    };
    Some(if http {
        BootFile::Http(format!("{http_base}/{loader}"))
    } else {
        BootFile::Tftp(loader.into())
    })
}

/// The base URL of the boot HTTP server: an IP literal, because firmware
/// that boots over HTTP may have no DNS.
pub fn http_base(address: Ipv4Addr, port: u16) -> String {
    if port == 80 {
        format!("http://{address}")
    } else {
        format!("http://{address}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{LoadOptions, load};
    use std::path::Path;

    fn inv() -> Inventory {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
        let loaded = load(&root, &LoadOptions::default());
        assert!(loaded.is_ok());
        loaded.inventory
    }

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    #[test]
    fn decisions_follow_inventory_and_policy() {
        let inv = inv();
        let hold = UnknownPolicy::Hold;
        let d = |m: &str, p: &UnknownPolicy| decide(&inv, p, &mac(m), None).0;
        assert_eq!(
            d("52:54:00:d0:00:01", &hold),
            BootDecision::Install {
                profile: "ubuntu-2404".into()
            },
            "dev-01: install true"
        );
        assert_eq!(
            d("52:54:00:d0:00:03", &hold),
            BootDecision::Local,
            "dev-03: install false"
        );
        assert_eq!(
            d("52:54:00:e0:00:05", &hold),
            BootDecision::Local,
            "prod-05: local profile, install absent"
        );
        assert_eq!(
            d("52:54:00:e1:00:04", &hold),
            BootDecision::Install {
                profile: "talos-worker".into()
            },
            "prod-04's second NIC"
        );
        assert_eq!(d("52:54:00:99:99:99", &hold), BootDecision::Hold);
        assert_eq!(
            d("52:54:00:99:99:99", &UnknownPolicy::Ignore),
            BootDecision::Ignore
        );
        assert_eq!(
            d(
                "52:54:00:99:99:99",
                &UnknownPolicy::Discover {
                    profile: "disc".into()
                }
            ),
            BootDecision::Discover {
                profile: "disc".into()
            }
        );
    }

    #[test]
    fn an_unknown_mac_with_a_known_uuid_is_that_machine() {
        let inv = inv();
        let uuid: Uuid = "4c4c4544-0051-3010-8057-b4c04f4a4d01".parse().unwrap();
        let (d, m) = decide(
            &inv,
            &UnknownPolicy::Hold,
            &mac("02:00:00:00:00:01"),
            Some(&uuid),
        );
        assert_eq!(m.unwrap().hostname, "prod-01");
        assert_eq!(
            d,
            BootDecision::Install {
                profile: "talos-worker".into()
            }
        );
    }

    #[test]
    fn first_stage_per_firmware() {
        let base = http_base("10.99.0.1".parse().unwrap(), 80);
        let x86_only = |name: &str| [LOADER_BIOS, LOADER_UEFI_X64].contains(&name);
        let f = |fw, ipxe| first_stage(fw, ipxe, Chain::Ipxe, &base, x86_only);
        assert_eq!(
            f(Some(Firmware::Bios), false),
            Some(BootFile::Tftp("undionly.kpxe".into()))
        );
        assert_eq!(
            f(Some(Firmware::UefiX64), false),
            Some(BootFile::Tftp("ipxe.efi".into()))
        );
        assert_eq!(
            f(Some(Firmware::HttpX64), false),
            Some(BootFile::Http("http://10.99.0.1/ipxe.efi".into()))
        );
        assert_eq!(
            f(Some(Firmware::UefiArm64), false),
            None,
            "no arm64 build in the boot root, and no GRUB either"
        );
        assert_eq!(f(Some(Firmware::Other(27)), false), None);
        assert_eq!(
            f(Some(Firmware::Bios), true),
            Some(BootFile::Http("http://10.99.0.1/boot.ipxe".into())),
            "iPXE goes to its script"
        );
        assert_eq!(
            f(None, true),
            Some(BootFile::Http("http://10.99.0.1/boot.ipxe".into()))
        );
        let with_arm = first_stage(Some(Firmware::UefiArm64), false, Chain::Ipxe, &base, |_| {
            true
        });
        assert_eq!(with_arm, Some(BootFile::Tftp("ipxe-arm64.efi".into())));
        assert_eq!(
            http_base("127.0.0.1".parse().unwrap(), 8080),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn the_grub_chain_offers_shim_and_arm64_takes_it_without_an_ipxe_build() {
        let base = http_base("10.99.0.1".parse().unwrap(), 80);
        let debian = |name: &str| {
            [
                LOADER_BIOS,
                LOADER_UEFI_X64,
                LOADER_SHIM_X64,
                LOADER_GRUB_X64,
                LOADER_SHIM_ARM64,
                LOADER_GRUB_ARM64,
            ]
            .contains(&name)
        };
        let f = |fw, chain| first_stage(Some(fw), false, chain, &base, debian);
        let tftp = |s: &str| Some(BootFile::Tftp(s.into()));
        assert_eq!(f(Firmware::UefiX64, Chain::Grub), tftp("shimx64.efi"));
        assert_eq!(f(Firmware::UefiX64, Chain::Ipxe), tftp("ipxe.efi"));
        assert_eq!(
            f(Firmware::HttpX64, Chain::Grub),
            None,
            "HTTP Boot cannot reach GRUB's config: no offer, the firmware tries PXE"
        );
        assert_eq!(f(Firmware::HttpArm64, Chain::Ipxe), None);
        assert_eq!(
            f(Firmware::UefiArm64, Chain::Ipxe),
            tftp("shimaa64.efi"),
            "arch 11 with no iPXE build goes to the GRUB chain"
        );
        assert_eq!(
            f(Firmware::Bios, Chain::Grub),
            tftp("undionly.kpxe"),
            "BIOS has no signed GRUB: iPXE"
        );
        let no_shim = |name: &str| name == LOADER_GRUB_X64;
        assert_eq!(
            first_stage(Some(Firmware::UefiX64), false, Chain::Grub, &base, no_shim),
            tftp("grubx64.efi"),
            "without shim, GRUB itself (no Secure Boot)"
        );
        assert_eq!(
            first_stage(
                Some(Firmware::UefiX64),
                false,
                Chain::Grub,
                &base,
                |n: &str| n == LOADER_SHIM_X64
            ),
            None,
            "shim without GRUB would fail at its next step: offer nothing"
        );
        assert_eq!(
            f(Firmware::UefiX64, Chain::Grub).map(|_| ()),
            first_stage(Some(Firmware::UefiX64), true, Chain::Grub, &base, debian).map(|_| ()),
        );
        assert_eq!("GRUB".parse::<Chain>(), Ok(Chain::Grub));
        assert!("pxelinux".parse::<Chain>().is_err());
    }
}
