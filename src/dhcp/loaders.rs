//! Which first-stage loaders (the iPXE builds of [`crate::boot::decide`])
//! are available, as a value the handler reads instead of the disk.
//!
//! The socket shell probes the boot root off the packet path and replaces
//! the set (see [`super::server::DhcpServer::refresh_loaders`]); a DISCOVER
//! then costs a bit test, not three `stat`s under the lease lock.

use crate::boot::decide::{
    LOADER_ARM32, LOADER_ARM64, LOADER_BIOS, LOADER_GRUB_ARM64, LOADER_GRUB_X64, LOADER_SHIM_ARM64,
    LOADER_SHIM_X64, LOADER_UEFI_IA32, LOADER_UEFI_X64,
};

/// Every loader name [`crate::boot::decide::first_stage`] can ask for.
const ALL: [&str; 9] = [
    LOADER_BIOS,
    LOADER_UEFI_X64,
    LOADER_UEFI_IA32,
    LOADER_ARM64,
    LOADER_ARM32,
    LOADER_SHIM_X64,
    LOADER_GRUB_X64,
    LOADER_SHIM_ARM64,
    LOADER_GRUB_ARM64,
];

/// A set of available loaders: bit `i` stands for `ALL[i]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaders(u16);

impl Loaders {
    /// Asks `exists` about every loader name.
    pub fn probe(exists: impl Fn(&str) -> bool) -> Loaders {
        Loaders::only(ALL.iter().copied().filter(|name| exists(name)))
    }

    /// Exactly the given names (unknown names are ignored).
    pub fn only<'a>(names: impl IntoIterator<Item = &'a str>) -> Loaders {
        let mut bits = 0;
        for name in names {
            if let Some(i) = ALL.iter().position(|l| *l == name) {
                bits |= 1 << i;
            }
        }
        Loaders(bits)
    }

    /// Every loader (for tests and tools with no boot root to look at).
    pub fn all() -> Loaders {
        Loaders::only(ALL)
    }

    pub fn contains(self, name: &str) -> bool {
        ALL.iter()
            .position(|l| *l == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The set as one word, for an atomic.
    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn from_bits(bits: u16) -> Loaders {
        Loaders(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::arch::Firmware;
    use crate::boot::decide::{Chain, first_stage};
    use std::cell::RefCell;

    #[test]
    fn every_loader_first_stage_asks_for_is_in_the_set() {
        let asked = RefCell::new(Vec::new());
        let firmwares = [
            Firmware::Bios,
            Firmware::UefiX64,
            Firmware::UefiIa32,
            Firmware::UefiArm64,
            Firmware::UefiArm32,
            Firmware::HttpX64,
            Firmware::HttpArm64,
            Firmware::HttpArm32,
        ];
        for firmware in firmwares {
            for chain in [Chain::Ipxe, Chain::Grub] {
                // All present, and none: each branch asks for its names.
                for present in [true, false] {
                    first_stage(Some(firmware), false, chain, "http://x", |name: &str| {
                        asked.borrow_mut().push(name.to_string());
                        present
                    });
                }
            }
        }
        for name in asked.into_inner() {
            assert!(ALL.contains(&name.as_str()), "{name} is not probed");
            assert!(Loaders::all().contains(&name));
        }
    }

    #[test]
    fn probe_and_contains() {
        let set = Loaders::probe(|name| name == LOADER_BIOS || name == LOADER_ARM64);
        assert!(set.contains(LOADER_BIOS) && set.contains(LOADER_ARM64));
        assert!(!set.contains(LOADER_UEFI_X64) && !set.contains("boot.ipxe"));
        assert_eq!(Loaders::from_bits(set.bits()), set);
        assert_eq!(Loaders::only(["nonsense"]), Loaders::default());
    }
}
