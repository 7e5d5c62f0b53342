//! What DHCP saw of each client beyond its MAC, kept for the HTTP side:
//! the UUID of option 97 (RFC 4578 §2.3), so `/boot.ipxe` knows a machine
//! the inventory holds by UUID even when iPXE sends no query.
//!
//! Bounded: past [`MAX_CLIENTS`] MACs the table starts over (a client
//! asks again on its next DISCOVER), so a flood of made-up MACs holds at
//! most that many entries.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::ident::{Mac, Uuid};

/// The most MACs remembered at once.
pub const MAX_CLIENTS: usize = 65_536;

#[derive(Default)]
pub struct SeenUuids(Mutex<HashMap<Mac, Uuid>>);

impl SeenUuids {
    pub fn record(&self, mac: Mac, uuid: Uuid) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(&mac) == Some(&uuid) {
            return;
        }
        if seen.len() >= MAX_CLIENTS && !seen.contains_key(&mac) {
            seen.clear();
        }
        seen.insert(mac, uuid);
    }

    pub fn get(&self, mac: &Mac) -> Option<Uuid> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(mac)
            .copied()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> Mac {
        let b = n.to_be_bytes();
        Mac([0x52, 0x54, b[0], b[1], b[2], b[3]])
    }

    #[test]
    fn the_latest_uuid_of_a_mac_is_kept() {
        let seen = SeenUuids::default();
        let (a, b): (Uuid, Uuid) = (
            "4c4c4544-0051-3010-8057-b4c04f4a4d01".parse().unwrap(),
            "4c4c4544-0051-3010-8057-b4c04f4a4d02".parse().unwrap(),
        );
        seen.record(mac(1), a);
        assert_eq!(seen.get(&mac(1)), Some(a));
        seen.record(mac(1), b);
        assert_eq!(seen.get(&mac(1)), Some(b));
        assert_eq!(seen.get(&mac(2)), None);
    }

    #[test]
    fn a_flood_of_macs_never_holds_more_than_the_bound() {
        let seen = SeenUuids::default();
        let u: Uuid = "4c4c4544-0051-3010-8057-b4c04f4a4d01".parse().unwrap();
        for n in 0..(MAX_CLIENTS as u32 + 10) {
            seen.record(mac(n), u);
            assert!(seen.len() <= MAX_CLIENTS);
        }
        assert_eq!(seen.get(&mac(MAX_CLIENTS as u32 + 9)), Some(u));
    }
}
