//! What DHCP saw of each client beyond its MAC, kept for the HTTP side:
//! the UUID of option 97 (RFC 4578 §2.3), so `/boot.ipxe` knows a machine
//! the inventory holds by UUID even when iPXE sends no query; and where the
//! client stands (firmware, segment, relay, option 82), so a rule by
//! vendor or product can be matched when iPXE reports its facts, seconds
//! after DHCP, with everything else the rule may also ask for.
//!
//! Bounded: past [`MAX_CLIENTS`] MACs the table starts over (a client
//! asks again on its next DISCOVER), so a flood of made-up MACs holds at
//! most that many entries; option 82 text is capped by the relay-agent
//! decoder.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use crate::boot::arch::Firmware;
use crate::dhcp::RelayAgentSeen;
use crate::ident::{Mac, Uuid};
use crate::inventory::rules::Sighting;

/// The most MACs remembered at once.
pub const MAX_CLIENTS: usize = 65_536;

/// One client's last DHCP request, as far as identity and rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub uuid: Option<Uuid>,
    pub firmware: Option<Firmware>,
    /// The relay's address, else the address the request arrived on.
    pub segment: Option<Ipv4Addr>,
    pub relay: Option<Ipv4Addr>,
    pub agent: Option<RelayAgentSeen>,
}

impl Seen {
    /// The rules' view of this client, with what iPXE reported about its
    /// hardware.
    pub fn sighting<'a>(
        &'a self,
        mac: Mac,
        vendor: Option<&'a str>,
        product: Option<&'a str>,
    ) -> Sighting<'a> {
        let agent = self.agent.as_ref();
        Sighting {
            firmware: self.firmware,
            segment: self.segment,
            relay: self.relay,
            circuit_id: agent.and_then(|a| a.circuit_id.as_deref()),
            remote_id: agent.and_then(|a| a.remote_id.as_deref()),
            vendor,
            product,
            ..Sighting::of_mac(mac)
        }
    }
}

#[derive(Default)]
pub struct SeenClients(Mutex<HashMap<Mac, Seen>>);

impl SeenClients {
    pub fn record(&self, mac: Mac, seen: Seen) {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if table.get(&mac) == Some(&seen) {
            return;
        }
        if table.len() >= MAX_CLIENTS && !table.contains_key(&mac) {
            table.clear();
        }
        table.insert(mac, seen);
    }

    pub fn get(&self, mac: &Mac) -> Option<Seen> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(mac)
            .cloned()
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

    fn with_uuid(u: Uuid) -> Seen {
        Seen {
            uuid: Some(u),
            ..Seen::default()
        }
    }

    #[test]
    fn the_latest_request_of_a_mac_is_kept() {
        let seen = SeenClients::default();
        let (a, b): (Uuid, Uuid) = (
            "4c4c4544-0051-3010-8057-b4c04f4a4d01".parse().unwrap(),
            "4c4c4544-0051-3010-8057-b4c04f4a4d02".parse().unwrap(),
        );
        seen.record(mac(1), with_uuid(a));
        assert_eq!(seen.get(&mac(1)).and_then(|s| s.uuid), Some(a));
        seen.record(mac(1), with_uuid(b));
        assert_eq!(seen.get(&mac(1)).and_then(|s| s.uuid), Some(b));
        assert_eq!(seen.get(&mac(2)), None);
    }

    #[test]
    fn a_flood_of_macs_never_holds_more_than_the_bound() {
        let seen = SeenClients::default();
        let u: Uuid = "4c4c4544-0051-3010-8057-b4c04f4a4d01".parse().unwrap();
        for n in 0..(MAX_CLIENTS as u32 + 10) {
            seen.record(mac(n), with_uuid(u));
            assert!(seen.len() <= MAX_CLIENTS);
        }
        assert_eq!(
            seen.get(&mac(MAX_CLIENTS as u32 + 9)).and_then(|s| s.uuid),
            Some(u)
        );
    }

    #[test]
    fn the_sighting_joins_dhcp_with_the_reported_hardware() {
        let seen = Seen {
            segment: Some(Ipv4Addr::new(10, 9, 0, 1)),
            relay: Some(Ipv4Addr::new(10, 9, 0, 1)),
            agent: Some(RelayAgentSeen {
                circuit_id: Some("swp12".into()),
                remote_id: None,
            }),
            ..Seen::default()
        };
        let s = seen.sighting(mac(7), Some("Supermicro"), Some("SYS-1029"));
        assert_eq!(s.mac, mac(7));
        assert_eq!(s.segment, Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(s.circuit_id, Some("swp12"));
        assert_eq!(s.vendor, Some("Supermicro"));
        assert_eq!(s.product, Some("SYS-1029"));
    }
}
