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

/// The IANA "Processor Architecture Types" registry (RFC 4578 §2.1, RFC
/// 5970; iana.org/assignments/dhcpv6-parameters, processor-architecture),
/// 0x00–0x29 as published, for the console and logs. Codes 7 and 9 are as
/// the registry has them since RFC 4578's erratum 4624.
pub const IANA_ARCH: [(u16, &str); 42] = [
    (0x00, "x86 BIOS"),
    (0x01, "NEC/PC98 (deprecated)"),
    (0x02, "Itanium"),
    (0x03, "DEC Alpha (deprecated)"),
    (0x04, "Arc x86 (deprecated)"),
    (0x05, "Intel Lean Client (deprecated)"),
    (0x06, "x86 UEFI"),
    (0x07, "x64 UEFI"),
    (0x08, "EFI Xscale (deprecated)"),
    (0x09, "EBC"),
    (0x0a, "ARM 32-bit UEFI"),
    (0x0b, "ARM 64-bit UEFI"),
    (0x0c, "PowerPC Open Firmware"),
    (0x0d, "PowerPC ePAPR"),
    (0x0e, "POWER OPAL v3"),
    (0x0f, "x86 UEFI boot from HTTP"),
    (0x10, "x64 UEFI boot from HTTP"),
    (0x11, "EBC boot from HTTP"),
    (0x12, "ARM UEFI 32 boot from HTTP"),
    (0x13, "ARM UEFI 64 boot from HTTP"),
    (0x14, "pc/at BIOS boot from HTTP"),
    (0x15, "ARM 32 uboot"),
    (0x16, "ARM 64 uboot"),
    (0x17, "ARM uboot 32 boot from HTTP"),
    (0x18, "ARM uboot 64 boot from HTTP"),
    (0x19, "RISC-V 32-bit UEFI"),
    (0x1a, "RISC-V 32-bit UEFI boot from HTTP"),
    (0x1b, "RISC-V 64-bit UEFI"),
    (0x1c, "RISC-V 64-bit UEFI boot from HTTP"),
    (0x1d, "RISC-V 128-bit UEFI"),
    (0x1e, "RISC-V 128-bit UEFI boot from HTTP"),
    (0x1f, "s390 Basic"),
    (0x20, "s390 Extended"),
    (0x21, "MIPS 32-bit UEFI"),
    (0x22, "MIPS 64-bit UEFI"),
    (0x23, "Sunway 32-bit UEFI"),
    (0x24, "Sunway 64-bit UEFI"),
    (0x25, "LoongArch 32-bit UEFI"),
    (0x26, "LoongArch 32-bit UEFI boot from HTTP"),
    (0x27, "LoongArch 64-bit UEFI"),
    (0x28, "LoongArch 64-bit UEFI boot from HTTP"),
    (0x29, "arm rpiboot"),
];

impl Firmware {
    /// Maps one option-93 code. Codes 15–19 mean "HTTP boot requested".
    /// Every code of [`IANA_ARCH`] not named here has no loader pxedeck
    /// ships and is `Other`.
    pub fn from_code(code: u16) -> Firmware {
        match code {
            0 => Firmware::Bios,
            6 => Firmware::UefiIa32,
            7 | 9 => Firmware::UefiX64,
            10 => Firmware::UefiArm32,
            11 => Firmware::UefiArm64,
            // 15 is "x86 UEFI HTTP" but firmware in the field sends it from
            // x64 machines, as it sends 9 (EBC) for x64 PXE; 17 (EBC HTTP)
            // is to 16 what 9 is to 7.
            15..=17 => Firmware::HttpX64,
            18 => Firmware::HttpArm32,
            19 => Firmware::HttpArm64,
            other => Firmware::Other(other),
        }
    }

    /// The registry's name of a code, if it has one.
    pub fn iana_name(code: u16) -> Option<&'static str> {
        IANA_ARCH.get(usize::from(code)).map(|(_, name)| *name)
    }

    /// The architecture code inside an option-60 class such as
    /// `PXEClient:Arch:00007:UNDI:003016` or `HTTPClient:Arch:00016:…` (the
    /// PXE specification's form: five decimal digits after `Arch:`), for
    /// firmware that sends no option 93. Anything else — no `Arch` field,
    /// not five digits, over 65535 — is no code.
    pub fn code_from_class(class: &str) -> Option<u16> {
        let mut fields = class.split(':');
        if !matches!(fields.next(), Some("PXEClient" | "HTTPClient")) {
            return None;
        }
        if fields.next() != Some("Arch") {
            return None;
        }
        let digits = fields.next()?;
        if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
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

    /// Every code of the registry, 0x00–0x29: what each one gets.
    #[test_case(0x00, Firmware::Bios)]
    #[test_case(0x01, Firmware::Other(0x01) ; "NEC PC98")]
    #[test_case(0x02, Firmware::Other(0x02) ; "Itanium")]
    #[test_case(0x03, Firmware::Other(0x03) ; "DEC Alpha")]
    #[test_case(0x04, Firmware::Other(0x04) ; "Arc x86")]
    #[test_case(0x05, Firmware::Other(0x05) ; "Intel Lean Client")]
    #[test_case(0x06, Firmware::UefiIa32)]
    #[test_case(0x07, Firmware::UefiX64)]
    #[test_case(0x08, Firmware::Other(0x08) ; "EFI Xscale")]
    #[test_case(0x09, Firmware::UefiX64 ; "EBC")]
    #[test_case(0x0a, Firmware::UefiArm32)]
    #[test_case(0x0b, Firmware::UefiArm64)]
    #[test_case(0x0c, Firmware::Other(0x0c) ; "PowerPC Open Firmware")]
    #[test_case(0x0d, Firmware::Other(0x0d) ; "PowerPC ePAPR")]
    #[test_case(0x0e, Firmware::Other(0x0e) ; "POWER OPAL v3")]
    #[test_case(0x0f, Firmware::HttpX64 ; "x86 UEFI HTTP")]
    #[test_case(0x10, Firmware::HttpX64 ; "x64 UEFI HTTP")]
    #[test_case(0x11, Firmware::HttpX64 ; "EBC HTTP")]
    #[test_case(0x12, Firmware::HttpArm32)]
    #[test_case(0x13, Firmware::HttpArm64)]
    #[test_case(0x14, Firmware::Other(0x14) ; "pc-at BIOS HTTP")]
    #[test_case(0x15, Firmware::Other(0x15) ; "ARM 32 uboot")]
    #[test_case(0x16, Firmware::Other(0x16) ; "ARM 64 uboot")]
    #[test_case(0x17, Firmware::Other(0x17) ; "ARM uboot 32 HTTP")]
    #[test_case(0x18, Firmware::Other(0x18) ; "ARM uboot 64 HTTP")]
    #[test_case(0x19, Firmware::Other(0x19) ; "RISC-V 32 UEFI")]
    #[test_case(0x1a, Firmware::Other(0x1a) ; "RISC-V 32 UEFI HTTP")]
    #[test_case(0x1b, Firmware::Other(0x1b) ; "RISC-V 64 UEFI")]
    #[test_case(0x1c, Firmware::Other(0x1c) ; "RISC-V 64 UEFI HTTP")]
    #[test_case(0x1d, Firmware::Other(0x1d) ; "RISC-V 128 UEFI")]
    #[test_case(0x1e, Firmware::Other(0x1e) ; "RISC-V 128 UEFI HTTP")]
    #[test_case(0x1f, Firmware::Other(0x1f) ; "s390 Basic")]
    #[test_case(0x20, Firmware::Other(0x20) ; "s390 Extended")]
    #[test_case(0x21, Firmware::Other(0x21) ; "MIPS 32 UEFI")]
    #[test_case(0x22, Firmware::Other(0x22) ; "MIPS 64 UEFI")]
    #[test_case(0x23, Firmware::Other(0x23) ; "Sunway 32 UEFI")]
    #[test_case(0x24, Firmware::Other(0x24) ; "Sunway 64 UEFI")]
    #[test_case(0x25, Firmware::Other(0x25) ; "LoongArch 32 UEFI")]
    #[test_case(0x26, Firmware::Other(0x26) ; "LoongArch 32 UEFI HTTP")]
    #[test_case(0x27, Firmware::Other(0x27) ; "LoongArch 64 UEFI")]
    #[test_case(0x28, Firmware::Other(0x28) ; "LoongArch 64 UEFI HTTP")]
    #[test_case(0x29, Firmware::Other(0x29) ; "arm rpiboot")]
    fn the_whole_iana_table(code: u16, want: Firmware) {
        assert_eq!(Firmware::from_code(code), want);
        // The same code in an option-60 class, with no option 93.
        let class = format!("PXEClient:Arch:{code:05}:UNDI:003016");
        assert_eq!(Firmware::code_from_class(&class), Some(code));
        assert!(Firmware::iana_name(code).is_some());
        assert_eq!(IANA_ARCH[usize::from(code)].0, code, "table in code order");
    }

    #[test]
    fn arch_from_the_vendor_class() {
        let c = Firmware::code_from_class;
        assert_eq!(c("PXEClient:Arch:00007:UNDI:003016"), Some(7));
        assert_eq!(c("HTTPClient:Arch:00016:UNDI:003001"), Some(16));
        assert_eq!(c("PXEClient:Arch:00000"), Some(0));
        assert_eq!(c("PXEClient"), None);
        assert_eq!(c("PXEClient:Arch:7:UNDI:003016"), None, "five digits");
        assert_eq!(c("PXEClient:Arch:99999:UNDI:003016"), None, "over u16");
        assert_eq!(c("PXEClient:Arch:0000x"), None);
        assert_eq!(c("MSFT 5.0"), None);
        assert_eq!(c("Arch:00007"), None);
        assert_eq!(Firmware::iana_name(0x2a), None);
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
