//! What a DHCP request says about its client: message type, identity,
//! which kind of boot firmware sent it (option 60 class, option 77/175 for
//! iPXE, option 93 architecture; RFC 4578 and the PXE specification), and
//! how it wants its reply (options 55 and 57).

use std::net::Ipv4Addr;

use super::relay_agent::RelayAgentInfo;
use super::wire::{BOOTREQUEST, MIN_DATAGRAM, Packet, msg, opt};
use crate::boot::arch::Firmware;
use crate::dhcp::DhcpMessage;
use crate::ident::{Mac, Uuid};

/// A client request, validated and classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub message: DhcpMessage,
    pub xid: u32,
    pub mac: Mac,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    /// The relay agent's address (giaddr), when relayed.
    pub relay: Option<Ipv4Addr>,
    /// Option 82, when a relay agent added it: echoed in every reply.
    pub relay_agent: Option<RelayAgentInfo>,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub vendor_class: Option<String>,
    /// Option 93 codes, in the client's order.
    pub arch_codes: Vec<u16>,
    pub firmware: Option<Firmware>,
    /// Option 60 starts with `PXEClient` (PXE firmware, also iPXE).
    pub pxe: bool,
    /// Option 60 starts with `HTTPClient` (UEFI HTTP Boot).
    pub http_boot: bool,
    /// iPXE: user class `iPXE` (raw or RFC 3004 form) or option 175.
    pub ipxe: bool,
    /// Option 97, for echoing back verbatim.
    pub guid_option: Option<Vec<u8>>,
    pub uuid: Option<Uuid>,
    /// The largest DHCP datagram the client accepts, IP and UDP headers
    /// included (option 57, RFC 2132 §9.10; as dnsmasq and ISC dhcpd read
    /// it). Never below the 576 every client must accept.
    pub max_size: usize,
    /// The options the client asks for, most wanted first (option 55).
    pub params: Vec<u8>,
}

impl Request {
    /// Whether the client wants to network-boot at all.
    pub fn is_boot_client(&self) -> bool {
        self.pxe || self.http_boot || self.ipxe
    }
}

/// Why a datagram was not a usable client request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    NotARequest,
    NoMessageType,
    /// A message type clients do not send (OFFER, ACK, NAK) — on the server
    /// port these come from another server, see rogue detection.
    ServerMessage(u8),
    UnknownMessageType(u8),
    NotEthernet,
    /// Option 82 is malformed: a reply could not echo what the relay meant.
    BadRelayAgentInfo,
}

/// RFC 3004 user class: a list of length-prefixed strings. dhcpcd and
/// others send it that way; iPXE sends the bare string. Accept both.
fn user_class_has(value: &[u8], want: &[u8]) -> bool {
    if value == want {
        return true;
    }
    let mut rest = value;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || tail.len() < len {
            return false;
        }
        if &tail[..len] == want {
            return true;
        }
        rest = &tail[len..];
    }
    false
}

fn ip(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

/// Classifies a decoded packet as a client request.
pub fn classify(p: &Packet) -> Result<Request, Reject> {
    if p.op != BOOTREQUEST {
        return match p.message_type() {
            Some(t @ (msg::OFFER | msg::ACK | msg::NAK)) => Err(Reject::ServerMessage(t)),
            _ => Err(Reject::NotARequest),
        };
    }
    if p.htype != 1 || p.hlen != 6 {
        return Err(Reject::NotEthernet);
    }
    let message = match p.message_type().ok_or(Reject::NoMessageType)? {
        msg::DISCOVER => DhcpMessage::Discover,
        msg::REQUEST => DhcpMessage::Request,
        msg::DECLINE => DhcpMessage::Decline,
        msg::RELEASE => DhcpMessage::Release,
        msg::INFORM => DhcpMessage::Inform,
        t @ (msg::OFFER | msg::ACK | msg::NAK) => return Err(Reject::ServerMessage(t)),
        other => return Err(Reject::UnknownMessageType(other)),
    };
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&p.chaddr[..6]);
    let vendor_class = p
        .option(opt::CLASS_ID)
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let class = vendor_class.as_deref().unwrap_or("");
    let arch_codes: Vec<u16> = p
        .option(opt::CLIENT_ARCH)
        .map(|v| {
            v.chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect()
        })
        .unwrap_or_default();
    let guid_option = p.option(opt::CLIENT_GUID).map(<[u8]>::to_vec);
    // Option 97: type 0 followed by the 16-byte UUID.
    let uuid = guid_option
        .as_deref()
        .filter(|g| g.len() == 17 && g[0] == 0)
        .and_then(|g| <[u8; 16]>::try_from(&g[1..]).ok())
        .filter(|u| u.iter().any(|&b| b != 0) && u.iter().any(|&b| b != 0xff))
        .map(Uuid);
    let relay_agent = p
        .option(opt::RELAY_AGENT)
        .map(RelayAgentInfo::decode)
        .transpose()
        .map_err(|_| Reject::BadRelayAgentInfo)?;
    let max_size = p
        .option(opt::MAX_SIZE)
        .and_then(|v| <[u8; 2]>::try_from(v).ok())
        .map_or(MIN_DATAGRAM, |b| usize::from(u16::from_be_bytes(b)))
        .max(MIN_DATAGRAM);
    Ok(Request {
        message,
        xid: p.xid,
        mac: Mac(mac),
        broadcast: p.broadcast_flag(),
        ciaddr: p.ciaddr,
        relay: (!p.giaddr.is_unspecified()).then_some(p.giaddr),
        relay_agent,
        requested_ip: p.option(opt::REQUESTED_IP).and_then(ip),
        server_id: p.option(opt::SERVER_ID).and_then(ip),
        // Some stacks send no option 93, only the architecture inside
        // option 60 (`PXEClient:Arch:00007:…`): take it from there.
        firmware: Firmware::from_codes(&arch_codes)
            .or_else(|| Firmware::code_from_class(class).map(Firmware::from_code)),
        pxe: class.starts_with("PXEClient"),
        http_boot: class.starts_with("HTTPClient"),
        ipxe: p
            .option(opt::USER_CLASS)
            .is_some_and(|v| user_class_has(v, b"iPXE"))
            || p.option(opt::IPXE_ENCAP).is_some(),
        vendor_class,
        arch_codes,
        guid_option,
        uuid,
        max_size,
        params: p
            .option(opt::PARAMS)
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::wire::tests::discover;

    fn with(f: impl FnOnce(&mut Packet)) -> Result<Request, Reject> {
        let mut p = discover();
        f(&mut p);
        classify(&Packet::decode(&p.encode()).unwrap())
    }

    #[test]
    fn uefi_pxe_firmware() {
        let r = with(|_| {}).unwrap();
        assert_eq!(
            (r.message, r.firmware, r.pxe, r.http_boot, r.ipxe),
            (
                DhcpMessage::Discover,
                Some(Firmware::UefiX64),
                true,
                false,
                false
            )
        );
        assert_eq!(r.arch_codes, vec![7, 9]);
        assert_eq!(r.mac.to_string(), "52:54:00:12:34:56");
        assert!(r.broadcast && r.is_boot_client());
    }

    #[test]
    fn ipxe_by_user_class_raw_or_rfc3004_or_option_175() {
        assert!(
            with(|p| p.set_option(opt::USER_CLASS, b"iPXE".to_vec()))
                .unwrap()
                .ipxe
        );
        assert!(
            with(|p| p.set_option(opt::USER_CLASS, b"\x04iPXE".to_vec()))
                .unwrap()
                .ipxe
        );
        assert!(
            with(|p| p.set_option(opt::USER_CLASS, b"\x03foo\x04iPXE".to_vec()))
                .unwrap()
                .ipxe
        );
        assert!(
            with(|p| p.set_option(opt::IPXE_ENCAP, vec![1, 1, 1]))
                .unwrap()
                .ipxe
        );
        assert!(
            !with(|p| p.set_option(opt::USER_CLASS, b"\x09iPXE-fake".to_vec()))
                .unwrap()
                .ipxe
        );
        assert!(
            !with(|p| p.set_option(opt::USER_CLASS, b"\x09iP".to_vec()))
                .unwrap()
                .ipxe,
            "truncated RFC 3004 list"
        );
    }

    #[test]
    fn http_boot_and_arm64() {
        let r = with(|p| {
            p.set_option(opt::CLASS_ID, b"HTTPClient:Arch:00016:UNDI:003001".to_vec());
            p.set_option(opt::CLIENT_ARCH, [0, 16]);
        })
        .unwrap();
        assert!(r.http_boot && !r.pxe);
        assert_eq!(r.firmware, Some(Firmware::HttpX64));
        let r = with(|p| p.set_option(opt::CLIENT_ARCH, [0, 11])).unwrap();
        assert_eq!(r.firmware, Some(Firmware::UefiArm64));
    }

    #[test]
    fn without_option_93_the_arch_comes_from_option_60() {
        let uefi = with(|p| p.options.retain(|(c, _)| *c != opt::CLIENT_ARCH)).unwrap();
        assert!(uefi.arch_codes.is_empty());
        assert_eq!(uefi.firmware, Some(Firmware::UefiX64));
        let http = with(|p| {
            p.options.retain(|(c, _)| *c != opt::CLIENT_ARCH);
            p.set_option(opt::CLASS_ID, b"HTTPClient:Arch:00016:UNDI:003001".to_vec());
        })
        .unwrap();
        assert_eq!(http.firmware, Some(Firmware::HttpX64));
        // Option 93 wins when both are there.
        let both = with(|p| p.set_option(opt::CLIENT_ARCH, [0, 11])).unwrap();
        assert_eq!(both.firmware, Some(Firmware::UefiArm64));
    }

    #[test]
    fn guid_relay_and_requested_ip() {
        let mut guid = vec![0u8];
        guid.extend(1..=16u8);
        let r = with(|p| {
            p.set_option(opt::CLIENT_GUID, guid.clone());
            p.giaddr = "10.98.0.1".parse().unwrap();
            p.set_option(opt::REQUESTED_IP, [10, 98, 0, 50]);
            p.set_option(opt::MAX_SIZE, 1500u16.to_be_bytes());
        })
        .unwrap();
        assert_eq!(
            r.uuid.unwrap().to_string(),
            "01020304-0506-0708-090a-0b0c0d0e0f10"
        );
        assert_eq!(r.guid_option, Some(guid));
        assert_eq!(r.relay, Some("10.98.0.1".parse().unwrap()));
        assert_eq!(r.requested_ip, Some("10.98.0.50".parse().unwrap()));
        assert_eq!(r.max_size, 1500);
        // An all-zero GUID is a ROM that has none: no identity.
        assert_eq!(
            with(|p| p.set_option(opt::CLIENT_GUID, vec![0u8; 17]))
                .unwrap()
                .uuid,
            None
        );
    }

    #[test]
    fn relay_agent_information_is_decoded_and_a_malformed_one_refused() {
        use crate::dhcp::relay_agent::{CIRCUIT_ID, REMOTE_ID};
        let raw = RelayAgentInfo::encode(&[(CIRCUIT_ID, b"eth1"), (REMOTE_ID, b"sw-a")]);
        let r = with(|p| {
            p.giaddr = "10.98.0.1".parse().unwrap();
            p.set_option(opt::RELAY_AGENT, raw.clone());
        })
        .unwrap();
        let info = r.relay_agent.unwrap();
        assert_eq!(info.raw, raw);
        assert_eq!(info.circuit_id_text().as_deref(), Some("eth1"));
        assert_eq!(info.remote_id_text().as_deref(), Some("sw-a"));
        assert_eq!(with(|_| {}).unwrap().relay_agent, None);
        assert_eq!(
            with(|p| p.set_option(opt::RELAY_AGENT, vec![1, 9, b'x'])),
            Err(Reject::BadRelayAgentInfo)
        );
    }

    #[test]
    fn max_size_has_the_rfc_floor_and_params_keep_their_order() {
        let r = with(|p| {
            p.set_option(opt::MAX_SIZE, 300u16.to_be_bytes());
            p.set_option(opt::PARAMS, [67, 1, 3, 66]);
        })
        .unwrap();
        assert_eq!((r.max_size, r.params), (576, vec![67, 1, 3, 66]));
        assert_eq!(with(|_| {}).unwrap().max_size, 576, "no option 57");
        assert_eq!(
            with(|p| p.set_option(opt::MAX_SIZE, [5])).unwrap().max_size,
            576,
            "a malformed option 57 is ignored"
        );
    }

    #[test]
    fn a_plain_dhcp_client_is_not_a_boot_client() {
        let r = with(|p| {
            p.options.retain(|(c, _)| *c == opt::MESSAGE_TYPE);
        })
        .unwrap();
        assert!(!r.is_boot_client());
        assert_eq!(r.firmware, None);
    }

    #[test]
    fn rejections() {
        assert_eq!(with(|p| p.options.clear()), Err(Reject::NoMessageType));
        assert_eq!(with(|p| p.hlen = 8), Err(Reject::NotEthernet));
        assert_eq!(
            with(|p| p.set_option(opt::MESSAGE_TYPE, [42])),
            Err(Reject::UnknownMessageType(42))
        );
        assert_eq!(
            with(|p| {
                p.op = 2;
                p.set_option(opt::MESSAGE_TYPE, [msg::OFFER]);
            }),
            Err(Reject::ServerMessage(msg::OFFER))
        );
    }
}
