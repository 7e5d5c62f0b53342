//! Who a client of `/boot.ipxe` is, and what it says about its hardware.
//!
//! Two kinds of identity reach the HTTP side, and they are not trusted
//! alike (docs/security.md, "Identity claims"):
//!
//! - **wire identities**: the MAC holding the lease of the request's
//!   address and the UUID the DHCP server saw in that MAC's option 97.
//!   They are what DHCP decided on; a client whose wire MAC or UUID is in
//!   the inventory is that machine, whatever its query says;
//! - **claims**: the `mac`, `uuid`, `serial`, `board-serial` and `asset`
//!   of the query, which iPXE fills from its settings (SMBIOS) and anyone
//!   on the segment can type. They are consulted only when the wire
//!   identities name no machine, only select a machine the inventory
//!   holds (never make one install: `decide_known` still needs
//!   `install: true`), and placeholder values (`To be filled by O.E.M.`)
//!   never match.
//!
//! Every value of the query is bounded ([`MAX_VALUE`] bytes of printable
//! ASCII); a request past the bound is refused with [`Refused`], not cut.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ident::{Mac, Uuid};
use crate::inventory::{Inventory, Machine};

/// The longest value a query key (or a kept fact) may have, in bytes.
/// SMBIOS strings are at most 64 bytes in practice; iPXE's `chip` and bus
/// id are shorter.
pub const MAX_VALUE: usize = 64;
/// The most facts one machine keeps (the keys of [`FACT_KEYS`] fit).
pub const MAX_FACTS: usize = 16;

/// The facts the entry script asks iPXE for, in the order they are shown:
/// (fact, the iPXE setting that gives it).
pub const FACT_KEYS: [(&str, &str); 9] = [
    ("manufacturer", "manufacturer"),
    ("product", "product"),
    ("serial", "serial"),
    ("asset", "asset"),
    ("uuid", "uuid"),
    ("chip", "netX/chip"),
    ("busid", "netX/busid"),
    ("platform", "platform"),
    ("arch", "buildarch"),
];

/// What iPXE's entry URL carries (`?mac=…&uuid=…&serial=…`), as received.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Query {
    pub mac: Option<String>,
    pub uuid: Option<String>,
    pub serial: Option<String>,
    #[serde(rename = "board-serial")]
    pub board_serial: Option<String>,
    pub asset: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub chip: Option<String>,
    pub busid: Option<String>,
    pub platform: Option<String>,
    pub arch: Option<String>,
}

/// A query that breaks a bound: answered 400 with this sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("`{key}` is {len} bytes long; at most {MAX_VALUE} are accepted")]
    TooLong { key: &'static str, len: usize },
    #[error("`{key}` holds a character other than printable ASCII")]
    Charset { key: &'static str },
    #[error("`{key}` is not a {what}")]
    Malformed {
        key: &'static str,
        what: &'static str,
    },
}

/// Hardware facts a machine reported about itself (SMBIOS, its NIC, the
/// platform), by fact name. Bounded: at most [`MAX_FACTS`] entries of at
/// most [`MAX_VALUE`] bytes each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Facts(pub BTreeMap<String, String>);

impl Facts {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a fact, within the bounds; false when it does not fit.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        let value = value.trim();
        let key_ok = !key.is_empty()
            && key.len() <= 32
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !key_ok || value.is_empty() || !printable(value) || value.len() > MAX_VALUE {
            return false;
        }
        if self.0.len() >= MAX_FACTS && !self.0.contains_key(key) {
            return false;
        }
        self.0.insert(key.to_string(), value.to_string());
        true
    }

    /// "QEMU Standard PC" — manufacturer and product, as a Vendor/Model
    /// column shows them; None when neither is known.
    pub fn model(&self) -> Option<String> {
        let parts: Vec<&str> = ["manufacturer", "product"]
            .iter()
            .filter_map(|k| self.get(k))
            .filter(|v| meaningful(v))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// What the sticker on the box says: "Dell Inc. PowerEdge R650 ·
    /// serial CZ2041ABCD · asset RACK12-SLOT07"; empty without them.
    pub fn sticker(&self) -> String {
        let mut parts: Vec<String> = self.model().into_iter().collect();
        for key in ["serial", "asset"] {
            if let Some(v) = self.get(key) {
                parts.push(format!("{key} {v}"));
            }
        }
        parts.join(" · ")
    }

    /// One line for people: "QEMU Standard PC · serial SN1 · asset A-12 ·
    /// NIC e1000 01:80:86:10:0e · pcbios i386"; empty without facts.
    pub fn summary(&self) -> String {
        let sticker = self.sticker();
        let mut parts: Vec<String> = (!sticker.is_empty())
            .then_some(sticker)
            .into_iter()
            .collect();
        let nic: Vec<&str> = ["chip", "busid"]
            .iter()
            .filter_map(|k| self.get(k))
            .collect();
        if !nic.is_empty() {
            parts.push(format!("NIC {}", nic.join(" ")));
        }
        let platform: Vec<&str> = ["platform", "arch"]
            .iter()
            .filter_map(|k| self.get(k))
            .collect();
        if !platform.is_empty() {
            parts.push(platform.join(" "));
        }
        parts.join(" · ")
    }

    /// The facts in display order (known keys first), for the detail view,
    /// the adopt dialog and the machine file.
    pub fn ordered(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = FACT_KEYS
            .iter()
            .filter_map(|(k, _)| self.get(k).map(|v| (*k, v)))
            .collect();
        for (k, v) in &self.0 {
            if !FACT_KEYS.iter().any(|(known, _)| known == k) {
                out.push((k, v));
            }
        }
        out
    }
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Values firmware fills in when the vendor did not: they name no machine
/// (thousands of boards share them), so they never identify one.
const PLACEHOLDERS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "system serial number",
    "chassis serial number",
    "base board serial number",
    "system product name",
    "not specified",
    "not applicable",
    "not available",
    "no asset tag",
    "no asset information",
    "asset-1234567890",
    "none",
    "null",
    "n/a",
    "na",
    "oem",
    "default",
    "unknown",
    "invalid",
    "serial",
    "0123456789",
    "123456789",
    "1234567890",
];

/// Whether a serial number or asset tag can tell one machine from another:
/// not empty, not a vendor's placeholder, not one character repeated
/// (`0000000`, `xxxxxxxx`, `........`).
pub fn meaningful(value: &str) -> bool {
    let v = value.trim();
    let Some(first) = v.chars().next() else {
        return false;
    };
    if v.chars().all(|c| c == first) {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    !PLACEHOLDERS.contains(&lower.as_str())
}

/// A query, validated: the claims it makes and the facts it reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    pub mac: Option<Mac>,
    pub uuid: Option<Uuid>,
    pub serial: Option<String>,
    pub board_serial: Option<String>,
    pub asset: Option<String>,
    pub facts: Facts,
    /// The query named a MAC: it came from one of pxedeck's own scripts
    /// (the identify or hold loop), which send everything iPXE knows.
    pub asked: bool,
}

/// One query value: None when absent or empty (iPXE sends an empty string
/// for a setting the machine lacks), refused past the bounds.
fn value<'a>(key: &'static str, v: Option<&'a String>) -> Result<Option<&'a str>, Refused> {
    let Some(v) = v else { return Ok(None) };
    if v.len() > MAX_VALUE {
        return Err(Refused::TooLong { key, len: v.len() });
    }
    if !printable(v) {
        return Err(Refused::Charset { key });
    }
    let v = v.trim();
    Ok((!v.is_empty()).then_some(v))
}

impl Query {
    /// Checks every value against the bounds and parses the identities.
    pub fn validate(&self) -> Result<Reported, Refused> {
        let mut out = Reported::default();
        if let Some(m) = value("mac", self.mac.as_ref())? {
            out.mac = Some(m.parse().map_err(|_| Refused::Malformed {
                key: "mac",
                what: "MAC address",
            })?);
        }
        out.asked = self.mac.is_some();
        if let Some(u) = value("uuid", self.uuid.as_ref())? {
            out.uuid = Some(u.parse().map_err(|_| Refused::Malformed {
                key: "uuid",
                what: "UUID",
            })?);
        }
        let claim = |key, v| value(key, v).map(|v| v.filter(|v| meaningful(v)).map(String::from));
        out.serial = claim("serial", self.serial.as_ref())?;
        out.board_serial = claim("board-serial", self.board_serial.as_ref())?;
        out.asset = claim("asset", self.asset.as_ref())?;
        let facts = [
            ("manufacturer", self.manufacturer.as_ref()),
            ("product", self.product.as_ref()),
            ("serial", self.serial.as_ref()),
            ("asset", self.asset.as_ref()),
            ("uuid", self.uuid.as_ref()),
            ("chip", self.chip.as_ref()),
            ("busid", self.busid.as_ref()),
            ("platform", self.platform.as_ref()),
            ("arch", self.arch.as_ref()),
        ];
        for (key, v) in facts {
            if let Some(v) = value(key, v)? {
                out.facts.insert(key, v);
            }
        }
        Ok(out)
    }
}

/// How a client was told from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The MAC holding its lease (or, without a lease, the query's MAC).
    Mac,
    /// The UUID DHCP saw in option 97 for that MAC.
    DhcpUuid,
    /// Claims of the query: UUID, serial, board serial, asset tag.
    Uuid,
    Serial,
    Asset,
}

impl Via {
    /// A wire identity (what DHCP decided on), not a claim of the query.
    pub fn is_wire(self) -> bool {
        matches!(self, Via::Mac | Via::DhcpUuid)
    }
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The MAC the script is rendered for: the lease's, else the query's,
    /// else the machine's own.
    pub mac: Option<Mac>,
    pub machine: Option<&'a Machine>,
    pub via: Option<Via>,
}

/// Finds the machine behind a request. `lease_mac` and `lease_uuid` are
/// the wire identities (None without a lease: proxyDHCP, loopback).
pub fn resolve<'a>(
    inv: &'a Inventory,
    lease_mac: Option<Mac>,
    lease_uuid: Option<Uuid>,
    r: &Reported,
) -> Resolved<'a> {
    // The lease's MAC wins over the query's: the query cannot make a
    // client that DHCP knows as one machine another one.
    let mac = lease_mac.or(r.mac);
    let found = |machine: Option<&'a Machine>, via| machine.map(|m| (m, via));
    let hit = found(mac.and_then(|m| inv.by_mac(&m)), Via::Mac)
        .or_else(|| found(lease_uuid.and_then(|u| inv.by_uuid(&u)), Via::DhcpUuid))
        .or_else(|| found(r.uuid.and_then(|u| inv.by_uuid(&u)), Via::Uuid))
        .or_else(|| {
            let by = |s: &Option<String>| s.as_deref().and_then(|s| inv.by_serial(s));
            found(by(&r.serial).or_else(|| by(&r.board_serial)), Via::Serial)
        })
        .or_else(|| found(r.asset.as_deref().and_then(|a| inv.by_asset(a)), Via::Asset));
    match hit {
        Some((m, via)) => Resolved {
            mac: mac.or_else(|| m.macs.first().copied()),
            machine: Some(m),
            via: Some(via),
        },
        None => Resolved {
            mac,
            machine: None,
            via: None,
        },
    }
}

#[cfg(test)]
mod tests;
