//! Where a reply goes: RFC 2131 §4.1 as one pure function, table-tested.
//!
//! | request                         | reply to                          |
//! |---------------------------------|-----------------------------------|
//! | relayed (giaddr set)            | the relay, giaddr:67              |
//! | a NAK, not relayed              | broadcast 255.255.255.255:68      |
//! | ciaddr set                      | unicast ciaddr:68                 |
//! | broadcast bit set               | broadcast                         |
//! | none of these                   | "unicast to yiaddr and chaddr" → broadcast, see below |

use super::classify::Request;
use super::reply::Destination;
use super::wire::msg;

/// The destination of a reply of `kind` to `req` on the server port.
///
/// The last rule of §4.1 asks for a unicast to `yiaddr` at `chaddr`: the
/// client has no address yet, so it cannot answer ARP, and the server must
/// put the pair into its ARP cache itself. A UDP socket cannot: that takes
/// an `SIOCSARP` ioctl or a raw `AF_PACKET` frame, neither of which has a
/// safe API (`unsafe_code` stays denied) nor works without CAP_NET_ADMIN.
/// §4.1 allows the broadcast ("If unicasting is not possible, the message
/// MAY be sent as an IP broadcast"), which every client accepts.
pub fn destination(req: &Request, kind: u8) -> Destination {
    if let Some(relay) = req.relay {
        return Destination::Relay(relay);
    }
    if kind == msg::NAK {
        return Destination::Broadcast;
    }
    if !req.ciaddr.is_unspecified() {
        return Destination::Client(req.ciaddr);
    }
    if req.broadcast {
        return Destination::Broadcast;
    }
    unicast_unconfigured()
}

/// See [`destination`]: no safe way to reach a client without an address.
fn unicast_unconfigured() -> Destination {
    Destination::Broadcast
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::classify::classify;
    use crate::dhcp::wire::Packet;
    use crate::dhcp::wire::tests::discover;
    use test_case::test_case;

    const RELAY: [u8; 4] = [10, 2, 0, 1];
    const CIADDR: [u8; 4] = [10, 1, 0, 11];
    const NONE: [u8; 4] = [0, 0, 0, 0];

    /// (giaddr, ciaddr, broadcast bit, reply kind) → destination.
    #[test_case(RELAY, NONE, true, msg::OFFER => Destination::Relay(RELAY.into()) ; "relayed offer")]
    #[test_case(RELAY, CIADDR, false, msg::ACK => Destination::Relay(RELAY.into()) ; "relayed renewal")]
    #[test_case(RELAY, NONE, false, msg::NAK => Destination::Relay(RELAY.into()) ; "relayed nak")]
    #[test_case(NONE, CIADDR, false, msg::ACK => Destination::Client(CIADDR.into()) ; "renewal unicast")]
    #[test_case(NONE, CIADDR, true, msg::ACK => Destination::Client(CIADDR.into()) ; "ciaddr beats the bit")]
    #[test_case(NONE, CIADDR, false, msg::NAK => Destination::Broadcast ; "nak is broadcast")]
    #[test_case(NONE, NONE, true, msg::OFFER => Destination::Broadcast ; "broadcast bit")]
    #[test_case(NONE, NONE, false, msg::OFFER => Destination::Broadcast ; "unconfigured client")]
    #[test_case(NONE, NONE, false, msg::ACK => Destination::Broadcast ; "unconfigured ack")]
    fn rfc_2131_section_4_1(giaddr: [u8; 4], ciaddr: [u8; 4], bit: bool, kind: u8) -> Destination {
        let mut p = discover();
        p.giaddr = giaddr.into();
        p.ciaddr = ciaddr.into();
        p.flags = if bit { 0x8000 } else { 0 };
        let req = classify(&Packet::decode(&p.encode()).unwrap()).unwrap();
        destination(&req, kind)
    }

    #[test]
    fn ports() {
        assert_eq!(Destination::Relay(RELAY.into()).addr().port(), 67);
        assert_eq!(Destination::Client(CIADDR.into()).addr().port(), 68);
        assert_eq!(Destination::Broadcast.addr().port(), 68);
    }
}
