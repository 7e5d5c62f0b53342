//! Machine identities: MAC addresses and SMBIOS UUIDs, parsed from any common
//! notation and normalised to one canonical form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet MAC address. Displays as lower-case, colon-separated hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {input:?}: {reason}")]
pub struct IdentError {
    kind: &'static str,
    input: String,
    reason: &'static str,
}

impl Mac {
    /// The first three bytes: the vendor's organisationally unique identifier.
    pub fn oui(&self) -> [u8; 3] {
        [self.0[0], self.0[1], self.0[2]]
    }

    /// Hyphen-separated form, as iPXE and PXELINUX use in file names.
    pub fn hyphenated(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

/// Reads hex digits out of `input`, skipping the separators in `separators`,
/// and requires exactly `N` bytes. Separators must sit on byte boundaries,
/// and all groups must have the same size (so `aa:bbcc:…` is rejected).
fn parse_hex<const N: usize>(
    input: &str,
    kind: &'static str,
    separators: &[char],
) -> Result<[u8; N], IdentError> {
    let err = |reason| IdentError {
        kind,
        input: input.to_string(),
        reason,
    };
    let trimmed = input.trim();
    let digits: Vec<u8> = trimmed
        .chars()
        .filter(|c| !separators.contains(c))
        .map(|c| c.to_digit(16).map(|d| d as u8).ok_or(c))
        .collect::<Result<_, _>>()
        .map_err(|_| err("not a hex digit or separator"))?;
    if digits.len() != N * 2 {
        return Err(err(if N == 6 {
            "expected 12 hex digits"
        } else {
            "expected 32 hex digits"
        }));
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks(2).enumerate() {
        out[i] = pair[0] << 4 | pair[1];
    }
    Ok(out)
}

impl FromStr for Mac {
    type Err = IdentError;

    /// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff`
    /// (Cisco), `aabbccddeeff`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let groups: Vec<&str> = t.split([':', '-', '.']).collect();
        let uniform = groups.len() == 1
            || (groups.len() == 6 && groups.iter().all(|g| g.len() == 2))
            || (groups.len() == 3 && groups.iter().all(|g| g.len() == 4) && t.contains('.'));
        if !uniform {
            return Err(IdentError {
                kind: "MAC address",
                input: s.to_string(),
                reason: "expected aa:bb:cc:dd:ee:ff, aa-bb-…, aabb.ccdd.eeff or aabbccddeeff",
            });
        }
        parse_hex::<6>(t, "MAC address", &[':', '-', '.']).map(Mac)
    }
}

/// A byte's two lower-case hex digits, by table: for the formatting done
/// per packet or per request, where `{:02x}` showed in profiles.
pub fn hex_digits(byte: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand rather than six `{:02x}`: a MAC is formatted for every
        // DHCP packet (log, history, console), and the formatting machinery
        // was a visible share of the server's CPU under load.
        let mut text = [b':'; 17];
        for (i, byte) in self.0.iter().enumerate() {
            text[3 * i..3 * i + 2].copy_from_slice(&hex_digits(*byte));
        }
        // Only ASCII was written.
        f.pad(std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A 128-bit machine UUID (SMBIOS system UUID, DHCP option 97).
/// Displays lower-case in the 8-4-4-4-12 form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl FromStr for Uuid {
    type Err = IdentError;

    /// Accepts the dashed form, plain 32 hex digits, and braces (`{…}`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches('{').trim_end_matches('}');
        parse_hex::<16>(t, "UUID", &['-']).map(Uuid)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_str!(Mac);
serde_via_str!(Uuid);

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("52:54:00:12:34:56" ; "colons")]
    #[test_case("52-54-00-12-34-56" ; "hyphens")]
    #[test_case("5254.0012.3456" ; "cisco dots")]
    #[test_case("525400123456" ; "bare")]
    #[test_case("52:54:00:12:34:56 " ; "trailing space")]
    #[test_case("52:54:00:12:34:56".to_uppercase().as_str() ; "upper")]
    fn mac_notations_normalise(input: &str) {
        let mac: Mac = input.parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:12:34:56");
    }

    #[test]
    fn mac_upper_case_normalises_to_lower() {
        let mac: Mac = "AA:BB:CC:DD:EE:0F".parse().unwrap();
        assert_eq!(mac.to_string(), "aa:bb:cc:dd:ee:0f");
        assert_eq!(mac.hyphenated(), "aa-bb-cc-dd-ee-0f");
        assert_eq!(mac.oui(), [0xaa, 0xbb, 0xcc]);
    }

    #[test_case("52:54:00:12:34" ; "too short")]
    #[test_case("52:54:00:12:34:56:78" ; "too long")]
    #[test_case("52:54:00:12:34:zz" ; "not hex")]
    #[test_case("525:400:123:456" ; "odd grouping")]
    #[test_case("" ; "empty")]
    fn mac_rejects(input: &str) {
        assert!(input.parse::<Mac>().is_err(), "{input} should be rejected");
    }

    #[test]
    fn uuid_forms_normalise() {
        let want = "4c4c4544-0051-3010-8057-b4c04f4a4d32";
        for input in [
            "4C4C4544-0051-3010-8057-B4C04F4A4D32",
            "4c4c454400513010 8057b4c04f4a4d32"
                .replace(' ', "")
                .as_str(),
            "{4c4c4544-0051-3010-8057-b4c04f4a4d32}",
        ] {
            assert_eq!(input.parse::<Uuid>().unwrap().to_string(), want);
        }
        assert!("4c4c4544-0051".parse::<Uuid>().is_err());
    }
}
