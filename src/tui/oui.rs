//! NIC vendors by OUI (the first three bytes of a MAC), shown where a
//! machine has not reported its own manufacturer (SMBIOS facts).
//!
//! The table is generated, not typed: `tools/gen-oui.py` reads the IEEE
//! MA-L registry from Debian's `ieee-data` package and keeps the vendors
//! whose NICs, BMCs and servers show up in racks (a few thousand of the
//! registry's ~35k entries, under one short name each) in `oui.txt`,
//! committed beside this file. Committed rather than read at build time:
//! the build must not depend on a package being installed, and a change of
//! the table shows in review. Unlisted OUIs show no vendor; locally
//! administered MACs show "local".

use std::sync::OnceLock;

use crate::ident::Mac;

/// `tools/gen-oui.py`'s output: `# comment` lines, then `XXXXXX Name`,
/// sorted by OUI.
const TABLE: &str = include_str!("oui.txt");

/// The table parsed once, sorted by OUI for binary search. A malformed
/// line is skipped (the tests refuse one).
fn vendors() -> &'static [([u8; 3], &'static str)] {
    static PARSED: OnceLock<Vec<([u8; 3], &'static str)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut out: Vec<([u8; 3], &'static str)> = TABLE.lines().filter_map(entry).collect();
        out.sort_by_key(|(oui, _)| *oui);
        out.dedup_by_key(|(oui, _)| *oui);
        out
    })
}

fn entry(line: &'static str) -> Option<([u8; 3], &'static str)> {
    if line.starts_with('#') {
        return None;
    }
    let (hex, name) = line.split_once(' ')?;
    if hex.len() != 6 || name.trim().is_empty() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some(([byte(0)?, byte(2)?, byte(4)?], name.trim()))
}

pub fn vendor(mac: &Mac) -> &'static str {
    let oui = mac.oui();
    let table = vendors();
    match table.binary_search_by(|(o, _)| o.cmp(&oui)) {
        Ok(i) => table[i].1,
        Err(_) if oui[0] & 0x02 != 0 => "local",
        Err(_) => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_found() {
        assert!(vendors().windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(vendor(&"52:54:00:12:34:56".parse().unwrap()), "QEMU");
        assert_eq!(vendor(&"ac:1f:6b:00:00:01".parse().unwrap()), "Supermicro");
        assert_eq!(vendor(&"02:00:00:00:00:01".parse().unwrap()), "local");
        assert_eq!(vendor(&"00:00:01:00:00:01".parse().unwrap()), "");
    }

    #[test]
    fn the_generated_file_is_well_formed_and_covers_rack_vendors() {
        let lines: Vec<&str> = TABLE.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(lines.len() > 1000, "{} entries", lines.len());
        for l in &lines {
            assert!(entry(l).is_some(), "malformed line {l:?}");
        }
        // Written sorted and without repeats by the generator.
        assert_eq!(vendors().len(), lines.len());
        for (mac, want) in [
            ("00:02:c9:00:00:01", "Mellanox"),
            ("00:1b:21:00:00:01", "Intel"),
            ("14:18:77:00:00:01", "Dell"),
            ("48:df:37:00:00:01", "HPE"),
            ("00:25:90:00:00:01", "Supermicro"),
            ("00:50:56:00:00:01", "VMware"),
        ] {
            assert_eq!(vendor(&mac.parse().unwrap()), want, "{mac}");
        }
    }
}
