//! Client firmware architectures (DHCP option 93, RFC 4578 and the IANA
//! "Processor Architecture Types" registry) and what pxedeck makes of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The firmware family that decides which boot loader a client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    /// Legacy BIOS PXE (code 0).
    Bios,
    /// UEFI on 32-bit x86 (code 6).
    UefiIa32,
    /// UEFI on x86-64 (codes 7 and 9: RFC 4578 swapped them until an
    /// erratum, and firmware in the field sends both).
    UefiX64,
    /// UEFI on 32-bit ARM (code 10).
    UefiArm32,
    /// UEFI on 64-bit ARM (code 11).
    UefiArm64,
    /// UEFI HTTP Boot on x86-64 (codes 15, 16).
    HttpX64,
    /// UEFI HTTP Boot on 32-bit ARM (code 18).
    HttpArm32,
    /// UEFI HTTP Boot on 64-bit ARM (code 19).
    HttpArm64,
    /// RISC-V 64 UEFI (code 27) and other codes we recognise but have no
    /// default loader for.
    Other(u16),
}

impl Firmware {
    /// Maps one option-93 code. Codes 15–19 mean "HTTP boot requested".
    pub fn from_code(code: u16) -> Firmware {
        match code {
            0 => Firmware::Bios,
            6 => Firmware::UefiIa32,
            7 | 9 => Firmware::UefiX64,
            10 => Firmware::UefiArm32,
            11 => Firmware::UefiArm64,
            15 | 16 => Firmware::HttpX64,
            18 => Firmware::HttpArm32,
            19 => Firmware::HttpArm64,
            other => Firmware::Other(other),
        }
    }

    /// Picks the first code of an option-93 list that we know how to serve.
    pub fn from_codes(codes: &[u16]) -> Option<Firmware> {
        codes
            .iter()
            .map(|&c| Firmware::from_code(c))
            .find(|f| !matches!(f, Firmware::Other(_)))
            .or_else(|| codes.first().map(|&c| Firmware::from_code(c)))
    }

    /// Whether the client asked for UEFI HTTP Boot (gets a URL, not TFTP).
    pub fn is_http_boot(self) -> bool {
        matches!(
            self,
            Firmware::HttpX64 | Firmware::HttpArm32 | Firmware::HttpArm64
        )
    }

    /// A short label for the console's Arch column.
    pub fn label(self) -> &'static str {
        match self {
            Firmware::Bios => "BIOS",
            Firmware::UefiIa32 => "UEFI32",
            Firmware::UefiX64 => "UEFI",
            Firmware::UefiArm32 => "ARM32",
            Firmware::UefiArm64 => "ARM64",
            Firmware::HttpX64 => "UEFI-HTTP",
            Firmware::HttpArm32 => "ARM32-HTTP",
            Firmware::HttpArm64 => "ARM64-HTTP",
            Firmware::Other(_) => "other",
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Firmware::Other(code) => write!(f, "arch-{code}"),
            known => f.write_str(known.name()),
        }
    }
}

impl Firmware {
    /// The name used in inventory files (`arch: uefi`).
    fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::UefiIa32 => "uefi-ia32",
            Firmware::UefiX64 => "uefi",
            Firmware::UefiArm32 => "arm32",
            Firmware::UefiArm64 => "arm64",
            Firmware::HttpX64 => "uefi-http",
            Firmware::HttpArm32 => "arm32-http",
            Firmware::HttpArm64 => "arm64-http",
            Firmware::Other(_) => "other",
        }
    }
}

impl FromStr for Firmware {
    type Err = String;

    /// Reads the inventory's `arch:` override.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const ALL: [Firmware; 8] = [
            Firmware::Bios,
            Firmware::UefiIa32,
            Firmware::UefiX64,
            Firmware::UefiArm32,
            Firmware::UefiArm64,
            Firmware::HttpX64,
            Firmware::HttpArm32,
            Firmware::HttpArm64,
        ];
        let want = s.trim().to_ascii_lowercase();
        ALL.into_iter().find(|f| f.name() == want).ok_or_else(|| {
            let names: Vec<_> = ALL.iter().map(|f| f.name()).collect();
            format!("unknown arch {s:?}, expected one of {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(0, Firmware::Bios)]
    #[test_case(6, Firmware::UefiIa32)]
    #[test_case(7, Firmware::UefiX64)]
    #[test_case(9, Firmware::UefiX64 ; "EBC is x64 in the field")]
    #[test_case(11, Firmware::UefiArm64)]
    #[test_case(15, Firmware::HttpX64)]
    #[test_case(16, Firmware::HttpX64)]
    #[test_case(19, Firmware::HttpArm64)]
    #[test_case(27, Firmware::Other(27))]
    fn codes(code: u16, want: Firmware) {
        assert_eq!(Firmware::from_code(code), want);
    }

    #[test]
    fn first_known_code_wins() {
        assert_eq!(Firmware::from_codes(&[27, 7]), Some(Firmware::UefiX64));
        assert_eq!(Firmware::from_codes(&[41]), Some(Firmware::Other(41)));
        assert_eq!(Firmware::from_codes(&[]), None);
    }

    #[test]
    fn names_round_trip() {
        for code in [0, 6, 7, 10, 11, 16, 18, 19] {
            let f = Firmware::from_code(code);
            assert_eq!(f.to_string().parse::<Firmware>().unwrap(), f);
        }
        assert!("sparc".parse::<Firmware>().is_err());
        assert!(Firmware::HttpX64.is_http_boot() && !Firmware::UefiX64.is_http_boot());
    }
}
