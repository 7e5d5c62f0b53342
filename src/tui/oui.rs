//! NIC vendors by OUI (the first three bytes of a MAC): a short table of
//! what shows up in server racks, enough to tell a BMC from a data port at
//! a glance. Unlisted OUIs show no vendor; locally administered MACs show
//! "local".

use crate::ident::Mac;

/// Sorted by OUI for binary search.
const VENDORS: &[([u8; 3], &str)] = &[
    ([0x00, 0x02, 0xc9], "Mellanox"),
    ([0x00, 0x0a, 0xf7], "Broadcom"),
    ([0x00, 0x10, 0x18], "Broadcom"),
    ([0x00, 0x1b, 0x21], "Intel"),
    ([0x00, 0x1e, 0x67], "Intel"),
    ([0x00, 0x25, 0x90], "Supermicro"),
    ([0x00, 0x50, 0x56], "VMware"),
    ([0x08, 0x00, 0x27], "VirtualBox"),
    ([0x0c, 0x42, 0xa1], "Mellanox"),
    ([0x14, 0x18, 0x77], "Dell"),
    ([0x18, 0x66, 0xda], "Dell"),
    ([0x1c, 0x34, 0xda], "Mellanox"),
    ([0x24, 0x6e, 0x96], "Dell"),
    ([0x3c, 0xec, 0xef], "Supermicro"),
    ([0x3c, 0xfd, 0xfe], "Intel"),
    ([0x40, 0xa6, 0xb7], "Intel"),
    ([0x48, 0xdf, 0x37], "HPE"),
    ([0x52, 0x54, 0x00], "QEMU"),
    ([0x68, 0x05, 0xca], "Intel"),
    ([0x6c, 0xb3, 0x11], "Intel"),
    ([0x94, 0x40, 0xc9], "HPE"),
    ([0x98, 0x03, 0x9b], "Mellanox"),
    ([0x9c, 0xdc, 0x71], "HPE"),
    ([0xa0, 0x36, 0x9f], "Intel"),
    ([0xac, 0x1f, 0x6b], "Supermicro"),
    ([0xb0, 0x26, 0x28], "Dell"),
    ([0xb4, 0x96, 0x91], "Intel"),
    ([0xb8, 0x59, 0x9f], "Mellanox"),
    ([0xd0, 0x94, 0x66], "Dell"),
    ([0xe4, 0x43, 0x4b], "Dell"),
    ([0xec, 0x0d, 0x9a], "Mellanox"),
    ([0xf4, 0x02, 0x70], "Dell"),
];

pub fn vendor(mac: &Mac) -> &'static str {
    let oui = [mac.0[0], mac.0[1], mac.0[2]];
    match VENDORS.binary_search_by(|(o, _)| o.cmp(&oui)) {
        Ok(i) => VENDORS[i].1,
        Err(_) if oui[0] & 0x02 != 0 => "local",
        Err(_) => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_found() {
        assert!(VENDORS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(vendor(&"52:54:00:12:34:56".parse().unwrap()), "QEMU");
        assert_eq!(vendor(&"ac:1f:6b:00:00:01".parse().unwrap()), "Supermicro");
        assert_eq!(vendor(&"02:00:00:00:00:01".parse().unwrap()), "local");
        assert_eq!(vendor(&"00:00:01:00:00:01".parse().unwrap()), "");
    }
}
