//! Building reply packets: address configuration and boot information, in
//! the order the client asks for (option 55) and no larger than it accepts
//! (option 57), plus where each reply goes.

use std::net::{Ipv4Addr, SocketAddr};

use super::classify::Request;
use super::options::OperatorOption;
use super::wire::{BOOTREPLY, IP_UDP_HEADERS, Packet, msg, opt};
use crate::boot::arch::Firmware;
use crate::boot::decide::BootFile;
use crate::clock::Millis;
use crate::config::Pool;

/// Where a reply goes (RFC 2131 §4.1, PXE: 4011 answers the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:68 on the receiving interface.
    Broadcast,
    /// A relay agent, port 67.
    Relay(Ipv4Addr),
    /// A client that has an address, port 68.
    Client(Ipv4Addr),
    /// Back to where the request came from (port 4011 requests).
    Source(SocketAddr),
}

impl Destination {
    pub fn addr(self) -> SocketAddr {
        match self {
            Destination::Broadcast => SocketAddr::from((Ipv4Addr::BROADCAST, 68)),
            Destination::Relay(ip) => SocketAddr::from((ip, 67)),
            Destination::Client(ip) => SocketAddr::from((ip, 68)),
            Destination::Source(s) => s,
        }
    }

    /// Where an answer of `kind` to `req` goes on the server port
    /// ([`super::addressing::destination`], RFC 2131 §4.1).
    pub fn for_reply(req: &Request, kind: u8) -> Destination {
        super::addressing::destination(req, kind)
    }
}

/// Options a reply is useless without, never dropped to fit a small client
/// buffer: the message type, server id and lease time (RFC 2131 table 3),
/// the subnet mask, and what makes a PXE or HTTP Boot client take the
/// offer — class (60), boot file (67), PXE discovery control (43) and the
/// echoed GUID (97). Together they stay far below the 312-byte options field
/// every client accepts, so a reply always fits.
const MANDATORY: [u8; 8] = [
    opt::MESSAGE_TYPE,
    opt::SERVER_ID,
    opt::LEASE_TIME,
    opt::SUBNET_MASK,
    opt::CLASS_ID,
    opt::BOOTFILE,
    opt::VENDOR,
    opt::CLIENT_GUID,
];

fn mandatory(code: u8) -> bool {
    MANDATORY.contains(&code) || code == opt::RELAY_AGENT
}

/// The address part of an OFFER or ACK.
pub struct Addressing<'a> {
    pub pool: &'a Pool,
    /// Lease duration; zero (DHCPINFORM) sends no lease times.
    pub lease_ms: Millis,
    pub hostname: Option<&'a str>,
    /// Operator-defined options, pool's and machine's merged
    /// ([`super::options::merged`]); each is sent when the client's option 55
    /// asks for it or it is marked `always`.
    pub options: Vec<&'a OperatorOption>,
}

/// A reply packet, and the codes dropped to fit the client's maximum
/// (option 57), for the counters.
#[derive(Debug)]
pub struct Fitted {
    pub packet: Packet,
    pub dropped: Vec<u8>,
}

/// The header and the two options every reply starts with.
fn base(req: &Request, kind: u8, server_ip: Ipv4Addr) -> Packet {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&req.mac.0);
    let mut p = Packet {
        op: BOOTREPLY,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid: req.xid,
        secs: 0,
        flags: if req.broadcast { 0x8000 } else { 0 },
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: req.relay.unwrap_or(Ipv4Addr::UNSPECIFIED),
        chaddr,
        sname: vec![0; 64],
        file: vec![0; 128],
        options: Vec::new(),
    };
    p.set_option(opt::MESSAGE_TYPE, [kind]);
    p.set_option(opt::SERVER_ID, server_ip.octets());
    // RFC 3046 §2.2: echo the relay agent information unchanged in every
    // reply; the relay strips it and finds the client's port by it.
    if let Some(info) = &req.relay_agent {
        p.set_option(opt::RELAY_AGENT, info.raw.clone());
    }
    p
}

/// A DHCPNAK.
pub fn nak(req: &Request, server_ip: Ipv4Addr) -> Fitted {
    let mut p = base(req, msg::NAK, server_ip);
    p.flags |= 0x8000; // RFC 2131: a NAK is broadcast unless relayed
    p.set_option(opt::MESSAGE, b"address not available".to_vec());
    fit_for(req, p)
}

/// An OFFER or ACK for `ip`: address configuration (when `addressing` is
/// given) and boot information (when `boot` is given).
pub fn offer_or_ack(
    req: &Request,
    kind: u8,
    ip: Ipv4Addr,
    addressing: Option<Addressing<'_>>,
    boot: Option<&BootFile>,
    server_ip: Ipv4Addr,
) -> Fitted {
    let mut p = base(req, kind, server_ip);
    p.yiaddr = ip;
    if let Some(a) = &addressing {
        add_addressing(&mut p, a);
    }
    if let Some(boot) = boot {
        add_boot(&mut p, req, boot, server_ip);
    }
    if let Some(a) = &addressing {
        add_operator_options(&mut p, req, &a.options);
    }
    fit_for(req, p)
}

/// Operator-defined options go in last, so they replace what the pool or
/// the boot answer set for the same code (dnsmasq's `dhcp-option` wins the
/// same way): the ones the client asked for, and those marked `always`.
fn add_operator_options(p: &mut Packet, req: &Request, options: &[&OperatorOption]) {
    for o in options {
        if o.always || req.params.contains(&o.code) {
            p.set_option(o.code, o.value.clone());
        }
    }
}

fn add_addressing(p: &mut Packet, a: &Addressing<'_>) {
    let pool = a.pool;
    let secs = (a.lease_ms / 1000).min(u64::from(u32::MAX)) as u32;
    if secs > 0 {
        p.set_option(opt::LEASE_TIME, secs.to_be_bytes());
        // RFC 2131 §4.4.5: T1 at half the lease, T2 at seven eighths.
        p.set_option(opt::RENEWAL, (secs / 2).to_be_bytes());
        p.set_option(opt::REBINDING, (secs / 8 * 7).to_be_bytes());
    }
    p.set_option(opt::SUBNET_MASK, pool.subnet.netmask().octets());
    if let Some(r) = pool.router {
        p.set_option(opt::ROUTER, r.octets());
    }
    if !pool.dns.is_empty() {
        let servers: Vec<u8> = pool.dns.iter().flat_map(|d| d.octets()).collect();
        p.set_option(opt::DNS, servers);
    }
    if let Some(d) = &pool.domain {
        p.set_option(opt::DOMAIN, d.as_bytes().to_vec());
    }
    p.set_option(opt::BROADCAST, pool.subnet.broadcast().octets());
    if let Some(h) = a.hostname {
        p.set_option(opt::HOSTNAME, h.as_bytes().to_vec());
    }
}

fn add_boot(p: &mut Packet, req: &Request, boot: &BootFile, server_ip: Ipv4Addr) {
    // The boot file goes in both the BOOTP `file` field and option 67, the
    // next server in `siaddr` and option 66: ROMs differ in which they read.
    // Never option overload (RFC 2132 §9.3): not every ROM parses it.
    let name = boot.name().as_bytes();
    p.file = name.to_vec();
    p.set_option(opt::BOOTFILE, name.to_vec());
    p.siaddr = server_ip;
    p.set_option(opt::TFTP_SERVER, server_ip.to_string().into_bytes());
    let class: &[u8] = if req.http_boot {
        b"HTTPClient"
    } else {
        b"PXEClient"
    };
    p.set_option(opt::CLASS_ID, class.to_vec());
    if req.pxe && !req.ipxe && req.firmware == Some(Firmware::Bios) {
        // PXE_DISCOVERY_CONTROL = 8: "boot file given, skip discovery".
        p.set_option(opt::VENDOR, vec![6, 1, 8, 255]);
    }
    if let Some(guid) = &req.guid_option {
        p.set_option(opt::CLIENT_GUID, guid.clone());
    }
}

/// Orders the options — mandatory ones, then those the client asked for in
/// its option 55 order (RFC 2132 §9.8: "MUST try to insert the requested
/// options in the order requested"), then the rest — and drops optional
/// ones from the end until the reply fits the client's maximum (option 57,
/// less the IP and UDP headers).
fn fit_for(req: &Request, mut p: Packet) -> Fitted {
    p.options.sort_by_key(|(code, _)| {
        if *code == opt::RELAY_AGENT {
            // Last, where the relay put it (RFC 3046 §2.1).
            (3, 0)
        } else if mandatory(*code) {
            (0, 0)
        } else if let Some(at) = req.params.iter().position(|c| c == code) {
            (1, at)
        } else {
            (2, 0)
        }
    });
    let dropped = p.fit(req.max_size.saturating_sub(IP_UDP_HEADERS), mandatory);
    Fitted { packet: p, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dhcp::classify::classify;
    use crate::dhcp::wire::MIN_MESSAGE;
    use crate::dhcp::wire::tests::discover;

    fn pool() -> Pool {
        let text = "dhcp:\n  pools:\n    - subnet: 10.1.0.0/24\n      range: 10.1.0.10-10.1.0.20\n      router: 10.1.0.1\n      dns: [10.1.0.2, 10.1.0.3, 10.1.0.4, 10.1.0.5]\n      domain: a-rather-long-provisioning-domain.example.org\n";
        Config::from_text(text, None).unwrap().dhcp.pools.remove(0)
    }

    fn request(f: impl FnOnce(&mut Packet)) -> Request {
        let mut p = discover();
        f(&mut p);
        classify(&Packet::decode(&p.encode()).unwrap()).unwrap()
    }

    fn codes(p: &Packet) -> Vec<u8> {
        p.options.iter().map(|(c, _)| *c).collect()
    }

    fn offer(req: &Request, hostname: &str, boot: &BootFile) -> Packet {
        let pool = pool();
        let addressing = Addressing {
            pool: &pool,
            lease_ms: 3_600_000,
            hostname: Some(hostname),
            options: Vec::new(),
        };
        let server = Ipv4Addr::new(10, 1, 0, 1);
        offer_or_ack(
            req,
            msg::OFFER,
            [10, 1, 0, 11].into(),
            Some(addressing),
            Some(boot),
            server,
        )
        .packet
    }

    #[test]
    fn requested_options_come_in_the_clients_order() {
        let req = request(|p| p.set_option(opt::PARAMS, [opt::DOMAIN, opt::DNS, opt::ROUTER]));
        let p = offer(&req, "dev-01", &BootFile::Tftp("ipxe.efi".into()));
        let order = codes(&p);
        let at = |c: u8| order.iter().position(|x| *x == c).unwrap();
        assert!(order[..5].iter().all(|c| mandatory(*c)), "{order:?}");
        assert!(at(opt::DOMAIN) < at(opt::DNS) && at(opt::DNS) < at(opt::ROUTER));
        assert!(
            at(opt::ROUTER) < at(opt::HOSTNAME),
            "unrequested last: {order:?}"
        );
        // The encoder keeps that order after message type and server id.
        let decoded = Packet::decode(&p.encode()).unwrap();
        assert_eq!(codes(&decoded)[..2], [opt::MESSAGE_TYPE, opt::SERVER_ID]);
        assert_eq!(codes(&decoded), order);
    }

    #[test]
    fn replies_fit_the_clients_maximum_and_keep_the_mandatory_options() {
        let long_name = "h".repeat(200);
        let url = BootFile::Http(format!("http://10.1.0.1:8080/{}", "x".repeat(100)));
        // No option 57: the RFC minimum. The long hostname does not fit.
        let req = request(|p| p.set_option(opt::PARAMS, [opt::ROUTER, opt::HOSTNAME]));
        let p = offer(&req, &long_name, &url);
        assert!(p.encode().len() <= MIN_MESSAGE, "{}", p.encode().len());
        for code in MANDATORY
            .iter()
            .filter(|c| **c != opt::VENDOR && **c != opt::CLIENT_GUID)
        {
            assert!(p.option(*code).is_some(), "option {code} kept");
        }
        assert!(p.option(opt::ROUTER).is_some(), "requested first, so kept");
        assert_eq!(p.option(opt::HOSTNAME), None, "dropped to fit");
        // A client that accepts 1500 bytes gets everything.
        let big = request(|p| {
            p.set_option(opt::PARAMS, [opt::ROUTER, opt::HOSTNAME]);
            p.set_option(opt::MAX_SIZE, 1500u16.to_be_bytes());
        });
        let p = offer(&big, &long_name, &url);
        assert_eq!(p.option(opt::HOSTNAME), Some(long_name.as_bytes()));
        assert!(p.encode().len() > MIN_MESSAGE && p.encode().len() <= 1500 - 28);
        // Option 57 counts the IP and UDP headers: 600 leaves 572.
        let mid = request(|p| p.set_option(opt::MAX_SIZE, 600u16.to_be_bytes()));
        assert!(offer(&mid, &long_name, &url).encode().len() <= 572);
    }

    #[test]
    fn option_82_is_echoed_unchanged_and_last_in_every_reply() {
        use crate::dhcp::relay_agent::{CIRCUIT_ID, REMOTE_ID, RelayAgentInfo};
        let raw = RelayAgentInfo::encode(&[(CIRCUIT_ID, b"eth1"), (9, &[0, 0, 0x0d, 0xe9])]);
        let relayed = request(|p| {
            p.giaddr = [10, 2, 0, 1].into();
            p.set_option(opt::RELAY_AGENT, raw.clone());
            p.set_option(opt::PARAMS, [opt::RELAY_AGENT, opt::ROUTER]);
        });
        let boot = BootFile::Tftp("ipxe.efi".into());
        let server = Ipv4Addr::new(10, 1, 0, 1);
        for reply in [
            offer(&relayed, "dev-01", &boot),
            nak(&relayed, server).packet,
        ] {
            let decoded = Packet::decode(&reply.encode()).unwrap();
            assert_eq!(decoded.option(opt::RELAY_AGENT), Some(&raw[..]));
            assert_eq!(codes(&decoded).last(), Some(&opt::RELAY_AGENT));
        }
        // Kept when the reply must shrink to the RFC minimum.
        let tight = request(|p| {
            p.set_option(
                opt::RELAY_AGENT,
                RelayAgentInfo::encode(&[(REMOTE_ID, &[7; 200])]),
            );
        });
        let p = offer(&tight, &"h".repeat(200), &boot);
        assert!(p.encode().len() <= MIN_MESSAGE);
        assert_eq!(p.option(opt::RELAY_AGENT).map(<[u8]>::len), Some(202));
        // Without option 82 in the request, none in the reply.
        let plain = request(|_| {});
        assert_eq!(
            offer(&plain, "dev-01", &boot).option(opt::RELAY_AGENT),
            None
        );
    }

    #[test]
    fn destinations() {
        let plain = request(|_| {});
        assert_eq!(
            Destination::for_reply(&plain, msg::OFFER),
            Destination::Broadcast
        );
        let renewing = request(|p| p.ciaddr = [10, 1, 0, 11].into());
        assert_eq!(
            Destination::for_reply(&renewing, msg::ACK),
            Destination::Client([10, 1, 0, 11].into())
        );
        assert_eq!(
            Destination::for_reply(&renewing, msg::NAK),
            Destination::Broadcast
        );
        let relayed = request(|p| p.giaddr = [10, 2, 0, 1].into());
        assert_eq!(
            Destination::for_reply(&relayed, msg::NAK),
            Destination::Relay([10, 2, 0, 1].into())
        );
    }
}
