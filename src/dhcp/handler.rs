//! The DHCP policy as a pure function: a classified request, the lease
//! table and a context in; the reply, where it goes, the lease change to
//! persist first, and the events out. No sockets, no disk, no clock.

use std::net::{Ipv4Addr, SocketAddr};

use super::classify::Request;
use super::leases::{Lease, LeaseState, LeaseTable};
use super::wire::{BOOTREPLY, Packet, msg, opt};
use crate::boot::BootDecision;
use crate::boot::decide::{BootFile, decide, first_stage};
use crate::clock::Millis;
use crate::config::{DhcpMode, Pool, UnknownPolicy};
use crate::dhcp::{DhcpMessage, DhcpReply, LeaseEnd};
use crate::event::{DhcpSeen, EventKind};
use crate::inventory::Inventory;

/// How long an offered address is held for the client's REQUEST.
pub const OFFER_HOLD_MS: Millis = 60_000;
/// How long a declined address is kept out of use.
pub const DECLINE_QUARANTINE_MS: Millis = 10 * 60_000;

/// Which socket a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The DHCP server port (67), usually broadcast.
    Dhcp,
    /// The PXE "BINL" port (4011), unicast.
    Proxy,
}

/// Everything the policy reads besides the request and the leases.
pub struct Ctx<'a> {
    pub mode: DhcpMode,
    pub pools: &'a [Pool],
    pub inventory: &'a Inventory,
    pub unknown: &'a UnknownPolicy,
    pub unknown_gets_address: bool,
    /// The address of the interface the request came in on (option 54).
    pub server_ip: Ipv4Addr,
    /// `http://<server>[:port]` for iPXE scripts and HTTP Boot.
    pub http_base: &'a str,
    /// Whether a first-stage loader file is available.
    pub loader_exists: &'a dyn Fn(&str) -> bool,
    pub firmware_lease_ms: Option<Millis>,
    pub port: Port,
    pub now: Millis,
}

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
}

/// A lease change the shell must make durable before sending the reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    Bind(Lease),
    Release(Lease),
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub reply: Option<(Packet, Destination)>,
    pub persist: Option<Persist>,
    pub events: Vec<EventKind>,
    /// Why no reply was sent, for counters.
    pub silent: Option<&'static str>,
}

impl Outcome {
    fn silent(mut self, why: &'static str) -> Outcome {
        self.silent = Some(why);
        self
    }
}

/// Handles one classified request.
pub fn handle(req: &Request, src: SocketAddr, leases: &mut LeaseTable, ctx: &Ctx<'_>) -> Outcome {
    let (decision, machine) = decide(ctx.inventory, ctx.unknown, &req.mac, req.uuid.as_ref());
    let decision = if req.is_boot_client() {
        decision
    } else {
        BootDecision::NotPxe
    };
    let mut out = Outcome::default();
    out.events.push(EventKind::DhcpSeen(DhcpSeen {
        mac: req.mac,
        xid: req.xid,
        message: req.message,
        firmware: machine.and_then(|m| m.arch).or(req.firmware),
        ipxe: req.ipxe,
        vendor_class: req.vendor_class.clone(),
        uuid: req.uuid,
        relay: req.relay,
        hostname: machine.map(|m| m.hostname.clone()),
        decision: decision.clone(),
    }));
    let boot = boot_answer(req, &decision, machine.and_then(|m| m.arch), ctx);
    let hostname = machine.map(|m| m.hostname.as_str());

    if ctx.port == Port::Proxy || ctx.mode == DhcpMode::Proxy {
        // proxyDHCP (and the BINL port in any mode): boot information only.
        if !matches!(
            req.message,
            DhcpMessage::Discover | DhcpMessage::Request | DhcpMessage::Inform
        ) {
            return out.silent("proxy_ignores_message");
        }
        let Some(boot) = boot else {
            return out.silent("no_boot_answer");
        };
        let kind = if req.message == DhcpMessage::Discover && ctx.port == Port::Dhcp {
            msg::OFFER
        } else {
            msg::ACK
        };
        let reply = build(
            req,
            kind,
            Ipv4Addr::UNSPECIFIED,
            None,
            Some(&boot),
            hostname,
            ctx,
        );
        let dest = if ctx.port == Port::Proxy {
            Destination::Source(src)
        } else {
            destination(req, kind)
        };
        // The address is the other server's; what the client says it has
        // lets transfers from that address be attributed to the machine.
        let stated = (!req.ciaddr.is_unspecified())
            .then_some(req.ciaddr)
            .or(req.requested_ip);
        out.events
            .push(replied(req, kind, stated, Some(&boot), true));
        out.reply = Some((reply, dest));
        return out;
    }
    if ctx.mode == DhcpMode::Off {
        return out.silent("dhcp_off");
    }
    if decision == BootDecision::Ignore && !ctx.unknown_gets_address {
        return out.silent("unknown_ignored");
    }
    let Some(pool) = pool_for(req, ctx) else {
        return out.silent("no_pool_for_segment");
    };
    match req.message {
        DhcpMessage::Discover => {
            let Some(ip) = leases.choose(pool, &req.mac, req.requested_ip, ctx.inventory, ctx.now)
            else {
                out.events.push(EventKind::PoolExhausted {
                    subnet: pool.subnet.to_string(),
                    mac: req.mac,
                });
                return out.silent("pool_exhausted");
            };
            let fixed = ctx.inventory.by_ip(ip).is_some();
            let offer = Lease {
                ip,
                mac: req.mac,
                state: LeaseState::Offered,
                expires: ctx.now + OFFER_HOLD_MS,
                fixed,
            };
            if leases.hold(offer, ctx.inventory, ctx.now).is_err() {
                return out.silent("offer_conflict");
            }
            let reply = build(
                req,
                msg::OFFER,
                ip,
                Some((pool, lease_ms(req, pool, ctx))),
                boot.as_ref(),
                hostname,
                ctx,
            );
            out.events
                .push(replied(req, msg::OFFER, Some(ip), boot.as_ref(), false));
            out.reply = Some((reply, destination(req, msg::OFFER)));
            out
        }
        DhcpMessage::Request => {
            if let Some(sid) = req.server_id
                && sid != ctx.server_ip
            {
                // The client chose another server's offer: free ours.
                if let Some(l) = leases
                    .of_mac(&req.mac)
                    .filter(|l| l.state == LeaseState::Offered)
                    .cloned()
                {
                    leases.release(l.ip, &req.mac);
                }
                return out.silent("chose_another_server");
            }
            let wanted = req
                .requested_ip
                .or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
            let Some(ip) = wanted else {
                return out.silent("request_without_address");
            };
            let acceptable = pool.range_contains(ip)
                || ctx
                    .inventory
                    .by_ip(ip)
                    .is_some_and(|m| m.macs.contains(&req.mac));
            let ms = lease_ms(req, pool, ctx);
            let lease = Lease {
                ip,
                mac: req.mac,
                state: LeaseState::Bound,
                expires: ctx.now + ms,
                fixed: ctx.inventory.by_ip(ip).is_some(),
            };
            // A client must not keep an address when its reservation says otherwise.
            let reserved_elsewhere = ctx
                .inventory
                .by_mac(&req.mac)
                .and_then(|m| m.ip)
                .is_some_and(|r| r != ip && pool.contains(r));
            if !acceptable
                || reserved_elsewhere
                || leases.hold(lease.clone(), ctx.inventory, ctx.now).is_err()
            {
                let reply = nak(req, ctx);
                out.events.push(replied(req, msg::NAK, None, None, false));
                out.reply = Some((reply, destination(req, msg::NAK)));
                return out;
            }
            let reply = build(
                req,
                msg::ACK,
                ip,
                Some((pool, ms)),
                boot.as_ref(),
                hostname,
                ctx,
            );
            out.events.push(EventKind::LeaseBound {
                mac: req.mac,
                ip,
                hostname: hostname.map(str::to_string),
                expires: lease.expires,
                fixed: lease.fixed,
            });
            out.events
                .push(replied(req, msg::ACK, Some(ip), boot.as_ref(), false));
            out.persist = Some(Persist::Bind(lease));
            out.reply = Some((reply, destination(req, msg::ACK)));
            out
        }
        DhcpMessage::Inform => {
            let mut reply = build(
                req,
                msg::ACK,
                Ipv4Addr::UNSPECIFIED,
                Some((pool, 0)),
                boot.as_ref(),
                hostname,
                ctx,
            );
            reply
                .options
                .retain(|(c, _)| ![opt::LEASE_TIME, opt::RENEWAL, opt::REBINDING].contains(c));
            out.events
                .push(replied(req, msg::ACK, None, boot.as_ref(), false));
            let dest = if req.ciaddr.is_unspecified() {
                destination(req, msg::ACK)
            } else {
                Destination::Client(req.ciaddr)
            };
            out.reply = Some((reply, dest));
            out
        }
        DhcpMessage::Release => {
            if let Some(l) = leases.release(req.ciaddr, &req.mac) {
                out.events.push(EventKind::LeaseEnded {
                    mac: req.mac,
                    ip: l.ip,
                    why: LeaseEnd::Released,
                });
                out.persist = Some(Persist::Release(l));
            }
            out.silent("release")
        }
        DhcpMessage::Decline => {
            if let Some(ip) = req.requested_ip {
                let held = leases.get(ip).filter(|l| l.mac == req.mac).cloned();
                leases.decline(ip, &req.mac, ctx.now + DECLINE_QUARANTINE_MS);
                out.events.push(EventKind::LeaseEnded {
                    mac: req.mac,
                    ip,
                    why: LeaseEnd::Declined,
                });
                if let Some(l) = held {
                    out.persist = Some(Persist::Release(l));
                }
            }
            out.silent("decline")
        }
    }
}

/// The boot file for this client, or None when it gets no boot answer.
fn boot_answer(
    req: &Request,
    decision: &BootDecision,
    arch: Option<crate::boot::arch::Firmware>,
    ctx: &Ctx<'_>,
) -> Option<BootFile> {
    if matches!(decision, BootDecision::Ignore | BootDecision::NotPxe) {
        return None;
    }
    // Every other decision chains to iPXE, whose script then says install,
    // hold, discover or exit — so an adoption takes effect without a reboot.
    // Option 93 came after the PXE spec: a PXE ROM that omits it is BIOS.
    let pxe_default = (!req.http_boot).then_some(crate::boot::arch::Firmware::Bios);
    let firmware = arch.or(req.firmware).or(pxe_default);
    first_stage(firmware, req.ipxe, ctx.http_base, ctx.loader_exists)
}

fn pool_for<'a>(req: &Request, ctx: &Ctx<'a>) -> Option<&'a Pool> {
    match req.relay {
        Some(giaddr) => ctx.pools.iter().find(|p| p.contains(giaddr)),
        None => ctx
            .pools
            .iter()
            .find(|p| p.contains(ctx.server_ip))
            .or(ctx.pools.first()),
    }
}

fn lease_ms(req: &Request, pool: &Pool, ctx: &Ctx<'_>) -> Millis {
    match ctx.firmware_lease_ms {
        Some(ms) if req.is_boot_client() => ms,
        _ => pool.lease_time.as_millis() as Millis,
    }
}

fn destination(req: &Request, kind: u8) -> Destination {
    if let Some(relay) = req.relay {
        return Destination::Relay(relay);
    }
    if kind != msg::NAK && !req.ciaddr.is_unspecified() {
        return Destination::Client(req.ciaddr);
    }
    Destination::Broadcast
}

fn reply_kind(kind: u8) -> DhcpReply {
    match kind {
        msg::OFFER => DhcpReply::Offer,
        msg::NAK => DhcpReply::Nak,
        _ => DhcpReply::Ack,
    }
}

fn replied(
    req: &Request,
    kind: u8,
    ip: Option<Ipv4Addr>,
    boot: Option<&BootFile>,
    proxy: bool,
) -> EventKind {
    EventKind::DhcpReplied {
        mac: req.mac,
        reply: reply_kind(kind),
        ip,
        boot_file: boot.map(|b| b.name().to_string()),
        proxy,
    }
}

fn base_reply(req: &Request, kind: u8, ctx: &Ctx<'_>) -> Packet {
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
    p.set_option(opt::SERVER_ID, ctx.server_ip.octets());
    p
}

fn nak(req: &Request, ctx: &Ctx<'_>) -> Packet {
    let mut p = base_reply(req, msg::NAK, ctx);
    p.flags |= 0x8000; // RFC 2131: a NAK is broadcast unless relayed
    p.set_option(opt::MESSAGE, b"address not available".to_vec());
    p
}

/// An OFFER or ACK: address configuration (when `lease` is given) and boot
/// information (when `boot` is given).
fn build(
    req: &Request,
    kind: u8,
    ip: Ipv4Addr,
    lease: Option<(&Pool, Millis)>,
    boot: Option<&BootFile>,
    hostname: Option<&str>,
    ctx: &Ctx<'_>,
) -> Packet {
    let mut p = base_reply(req, kind, ctx);
    p.yiaddr = ip;
    if let Some((pool, ms)) = lease {
        let secs = (ms / 1000).min(u64::from(u32::MAX)) as u32;
        if secs > 0 {
            p.set_option(opt::LEASE_TIME, secs.to_be_bytes());
            p.set_option(opt::RENEWAL, (secs / 2).to_be_bytes());
            p.set_option(opt::REBINDING, (secs / 8 * 7).to_be_bytes());
        }
        p.set_option(opt::SUBNET_MASK, pool.subnet.netmask().octets());
        if let Some(r) = pool.router {
            p.set_option(opt::ROUTER, r.octets());
        }
        if !pool.dns.is_empty() {
            p.set_option(
                opt::DNS,
                pool.dns
                    .iter()
                    .flat_map(|d| d.octets())
                    .collect::<Vec<u8>>(),
            );
        }
        if let Some(d) = &pool.domain {
            p.set_option(opt::DOMAIN, d.as_bytes().to_vec());
        }
        p.set_option(opt::BROADCAST, pool.subnet.broadcast().octets());
        if let Some(h) = hostname {
            p.set_option(opt::HOSTNAME, h.as_bytes().to_vec());
        }
    }
    if let Some(boot) = boot {
        // Boot file in both the BOOTP field and option 67, next server in
        // siaddr and option 66 (PROTOCOLS.md); never option overload.
        let name = boot.name().as_bytes();
        p.file = name.to_vec();
        p.set_option(opt::BOOTFILE, name.to_vec());
        p.siaddr = ctx.server_ip;
        p.set_option(opt::TFTP_SERVER, ctx.server_ip.to_string().into_bytes());
        let class: &[u8] = if req.http_boot {
            b"HTTPClient"
        } else {
            b"PXEClient"
        };
        p.set_option(opt::CLASS_ID, class.to_vec());
        if req.pxe && !req.ipxe && req.firmware == Some(crate::boot::arch::Firmware::Bios) {
            // PXE_DISCOVERY_CONTROL = 8: "boot file given, skip discovery".
            p.set_option(opt::VENDOR, vec![6, 1, 8, 255]);
        }
        if let Some(guid) = &req.guid_option {
            p.set_option(opt::CLIENT_GUID, guid.clone());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dhcp::classify::classify;
    use crate::dhcp::wire::tests::discover;
    use crate::ident::Mac;
    use crate::inventory::{LoadOptions, load};

    struct World {
        config: Config,
        inventory: Inventory,
        leases: LeaseTable,
    }

    fn world(extra: &str) -> World {
        let config = Config::from_text(
            &format!(
                "server:\n  address: 10.99.0.1\ndhcp:\n  firmware_lease_time: 2m\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.102\n      router: 10.99.0.1\n      dns: [10.99.0.1]\n    - subnet: 10.98.0.0/24\n      range: 10.98.0.10-10.98.0.20\n{extra}"
            ),
            None,
        )
        .unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
        let inventory = load(
            &root,
            &LoadOptions {
                pools: config.dhcp.pools.clone(),
            },
        )
        .inventory;
        World {
            config,
            inventory,
            leases: LeaseTable::default(),
        }
    }

    const UNKNOWN: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const DEV01: [u8; 6] = [0x52, 0x54, 0, 0xd0, 0, 1];

    /// A request built like `discover()` and then changed by `f`.
    fn request(f: impl FnOnce(&mut Packet)) -> Request {
        let mut p = discover();
        f(&mut p);
        classify(&Packet::decode(&p.encode()).unwrap()).unwrap()
    }

    fn run(w: &mut World, req: &Request, port: Port, mode: DhcpMode) -> Outcome {
        let base = "http://10.99.0.1";
        let exists = |name: &str| ["undionly.kpxe", "ipxe.efi"].contains(&name);
        let ctx = Ctx {
            mode,
            pools: &w.config.dhcp.pools,
            inventory: &w.inventory,
            unknown: &w.config.unknown,
            unknown_gets_address: w.config.unknown_gets_address,
            server_ip: "10.99.0.1".parse().unwrap(),
            http_base: base,
            loader_exists: &exists,
            firmware_lease_ms: w
                .config
                .dhcp
                .firmware_lease_time
                .map(|d| d.as_millis() as u64),
            port,
            now: 1_000_000,
        };
        let src = SocketAddr::from(([10, 99, 0, 150], 68));
        handle(req, src, &mut w.leases, &ctx)
    }

    fn reply(o: &Outcome) -> &Packet {
        &o.reply.as_ref().expect("a reply").0
    }

    fn text(p: &Packet, code: u8) -> Option<String> {
        p.option(code)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Message type, yiaddr, siaddr, `file`, option 67, option 60, option 43 present.
    type Summary = (
        u8,
        Ipv4Addr,
        Ipv4Addr,
        String,
        Option<String>,
        Option<String>,
        bool,
    );

    fn summary(p: &Packet) -> Summary {
        (
            p.message_type().unwrap(),
            p.yiaddr,
            p.siaddr,
            Packet::text(&p.file),
            text(p, opt::BOOTFILE),
            text(p, opt::CLASS_ID),
            p.option(opt::VENDOR).is_some(),
        )
    }

    fn set_mac(p: &mut Packet, mac: [u8; 6]) {
        p.chaddr[..6].copy_from_slice(&mac);
    }

    fn arch(p: &mut Packet, code: u16) {
        p.set_option(opt::CLIENT_ARCH, code.to_be_bytes());
        p.set_option(
            opt::CLASS_ID,
            format!("PXEClient:Arch:{code:05}:UNDI:003016").into_bytes(),
        );
    }

    /// The offer every case below expects for dev-01 (reserved 10.99.0.21):
    /// the boot file in both places, the class, and whether option 43 is set.
    fn offer_for_dev01(file: &str, class: &str, option_43: bool) -> Summary {
        let file = file.to_string();
        (
            msg::OFFER,
            "10.99.0.21".parse().unwrap(),
            "10.99.0.1".parse().unwrap(),
            file.clone(),
            Some(file),
            Some(class.into()),
            option_43,
        )
    }

    #[test]
    fn golden_offers_per_client_kind() {
        type Case = (&'static str, fn(&mut Packet), Summary);
        let cases: Vec<Case> = vec![
            (
                "BIOS PXE",
                |p| arch(p, 0),
                offer_for_dev01("undionly.kpxe", "PXEClient", true),
            ),
            (
                "UEFI x64 PXE",
                |_| {},
                offer_for_dev01("ipxe.efi", "PXEClient", false),
            ),
            (
                "UEFI HTTP Boot",
                |p| {
                    p.set_option(opt::CLIENT_ARCH, [0, 16]);
                    p.set_option(opt::CLASS_ID, b"HTTPClient:Arch:00016:UNDI:003001".to_vec());
                },
                offer_for_dev01("http://10.99.0.1/ipxe.efi", "HTTPClient", false),
            ),
            (
                "iPXE",
                |p| p.set_option(opt::USER_CLASS, b"iPXE".to_vec()),
                offer_for_dev01("http://10.99.0.1/boot.ipxe", "PXEClient", false),
            ),
        ];
        for (name, f, want) in cases {
            let mut w = world("");
            let out = run(
                &mut w,
                &request(|p| {
                    set_mac(p, DEV01);
                    f(p)
                }),
                Port::Dhcp,
                DhcpMode::Full,
            );
            assert_eq!(summary(reply(&out)), want, "{name}");
            assert_eq!(
                out.reply.as_ref().unwrap().1,
                Destination::Broadcast,
                "{name}"
            );
        }
    }

    #[test]
    fn offers_carry_address_configuration_and_short_firmware_leases() {
        let mut w = world("");
        let out = run(
            &mut w,
            &request(|p| set_mac(p, DEV01)),
            Port::Dhcp,
            DhcpMode::Full,
        );
        let p = reply(&out);
        assert_eq!(p.option(opt::SERVER_ID), Some(&[10, 99, 0, 1][..]));
        assert_eq!(p.option(opt::SUBNET_MASK), Some(&[255, 255, 255, 0][..]));
        assert_eq!(p.option(opt::ROUTER), Some(&[10, 99, 0, 1][..]));
        assert_eq!(
            p.option(opt::LEASE_TIME),
            Some(&120u32.to_be_bytes()[..]),
            "firmware_lease_time"
        );
        assert_eq!(text(p, opt::HOSTNAME).as_deref(), Some("dev-01"));
        assert!(p.encode().len() <= 576, "PXE replies stay small");
    }

    #[test]
    fn arm64_without_a_loader_gets_an_address_but_no_boot_file() {
        let mut w = world("");
        let out = run(
            &mut w,
            &request(|p| arch(p, 11)),
            Port::Dhcp,
            DhcpMode::Full,
        );
        let p = reply(&out);
        assert_ne!(p.yiaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.option(opt::BOOTFILE), None);
    }

    #[test]
    fn the_guid_is_echoed() {
        let mut w = world("");
        let mut guid = vec![0u8];
        guid.extend(1..=16u8);
        let g = guid.clone();
        let out = run(
            &mut w,
            &request(move |p| p.set_option(opt::CLIENT_GUID, g)),
            Port::Dhcp,
            DhcpMode::Full,
        );
        assert_eq!(reply(&out).option(opt::CLIENT_GUID), Some(&guid[..]));
    }

    #[test]
    fn discover_request_ack_binds_and_persists() {
        let mut w = world("");
        let offer = run(&mut w, &request(|_| {}), Port::Dhcp, DhcpMode::Full);
        let offered = reply(&offer).yiaddr;
        assert!(offer.persist.is_none(), "offers are not persisted");
        let req = request(|p| {
            p.set_option(opt::MESSAGE_TYPE, [msg::REQUEST]);
            p.set_option(opt::SERVER_ID, [10, 99, 0, 1]);
            p.set_option(opt::REQUESTED_IP, offered.octets());
        });
        let ack = run(&mut w, &req, Port::Dhcp, DhcpMode::Full);
        assert_eq!(reply(&ack).message_type(), Some(msg::ACK));
        assert_eq!(reply(&ack).yiaddr, offered);
        match &ack.persist {
            Some(Persist::Bind(l)) => assert_eq!(
                (l.ip, l.mac, l.state),
                (offered, Mac(UNKNOWN), LeaseState::Bound)
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            ack.events
                .iter()
                .any(|e| matches!(e, EventKind::LeaseBound { .. }))
        );
    }

    #[test]
    fn request_for_a_taken_or_foreign_address_is_naked() {
        let mut w = world("");
        let taken = request(|p| {
            set_mac(p, DEV01);
            p.set_option(opt::MESSAGE_TYPE, [msg::REQUEST]);
            p.set_option(opt::REQUESTED_IP, [10, 99, 0, 21]);
        });
        assert_eq!(
            reply(&run(&mut w, &taken, Port::Dhcp, DhcpMode::Full)).message_type(),
            Some(msg::ACK),
            "its reservation"
        );
        let stranger = request(|p| {
            p.set_option(opt::MESSAGE_TYPE, [msg::REQUEST]);
            p.set_option(opt::REQUESTED_IP, [10, 99, 0, 21]);
        });
        let out = run(&mut w, &stranger, Port::Dhcp, DhcpMode::Full);
        assert_eq!(
            reply(&out).message_type(),
            Some(msg::NAK),
            "someone else's reservation"
        );
        let foreign = request(|p| {
            p.set_option(opt::MESSAGE_TYPE, [msg::REQUEST]);
            p.set_option(opt::REQUESTED_IP, [192, 168, 1, 5]);
        });
        assert_eq!(
            reply(&run(&mut w, &foreign, Port::Dhcp, DhcpMode::Full)).message_type(),
            Some(msg::NAK)
        );
    }

    #[test]
    fn selecting_another_server_frees_our_offer() {
        let mut w = world("");
        run(&mut w, &request(|_| {}), Port::Dhcp, DhcpMode::Full);
        assert_eq!(w.leases.len(), 1);
        let req = request(|p| {
            p.set_option(opt::MESSAGE_TYPE, [msg::REQUEST]);
            p.set_option(opt::SERVER_ID, [10, 99, 0, 254]);
            p.set_option(opt::REQUESTED_IP, [10, 99, 0, 77]);
        });
        let out = run(&mut w, &req, Port::Dhcp, DhcpMode::Full);
        assert!(out.reply.is_none());
        assert!(w.leases.is_empty());
    }

    #[test]
    fn exhaustion_is_an_event_not_a_crash() {
        let mut w = world("");
        for n in 0..3u8 {
            let out = run(
                &mut w,
                &request(|p| set_mac(p, [2, 0, 0, 0, 0, n])),
                Port::Dhcp,
                DhcpMode::Full,
            );
            assert!(out.reply.is_some());
        }
        let out = run(
            &mut w,
            &request(|p| set_mac(p, [2, 0, 0, 0, 0, 9])),
            Port::Dhcp,
            DhcpMode::Full,
        );
        assert!(out.reply.is_none());
        assert_eq!(out.silent, Some("pool_exhausted"));
        assert!(
            out.events
                .iter()
                .any(|e| matches!(e, EventKind::PoolExhausted { .. }))
        );
    }

    #[test]
    fn relayed_requests_use_the_relays_pool_and_go_back_to_it() {
        let mut w = world("");
        let out = run(
            &mut w,
            &request(|p| p.giaddr = "10.98.0.1".parse().unwrap()),
            Port::Dhcp,
            DhcpMode::Full,
        );
        let (p, dest) = out.reply.as_ref().unwrap();
        assert!(
            ("10.98.0.10".parse::<Ipv4Addr>().unwrap()..="10.98.0.20".parse().unwrap())
                .contains(&p.yiaddr)
        );
        assert_eq!(p.giaddr, "10.98.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(*dest, Destination::Relay("10.98.0.1".parse().unwrap()));
        assert_eq!(dest.addr().port(), 67);
    }

    #[test]
    fn proxy_mode_gives_boot_information_only() {
        let mut w = world("");
        let out = run(
            &mut w,
            &request(|p| set_mac(p, DEV01)),
            Port::Dhcp,
            DhcpMode::Proxy,
        );
        let (p, dest) = out.reply.as_ref().unwrap();
        assert_eq!(
            (p.message_type(), p.yiaddr),
            (Some(msg::OFFER), Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(Packet::text(&p.file), "ipxe.efi");
        assert_eq!(p.option(opt::LEASE_TIME), None);
        assert_eq!(*dest, Destination::Broadcast);
        assert!(w.leases.is_empty(), "a proxy hands out no addresses");
        // Port 4011: ACK, unicast back to the source.
        let req = request(|p| {
            set_mac(p, DEV01);
            p.set_option(opt::MESSAGE_TYPE, [msg::REQUEST]);
            p.ciaddr = Ipv4Addr::new(10, 99, 0, 150);
        });
        let out = run(&mut w, &req, Port::Proxy, DhcpMode::Proxy);
        let (p, dest) = out.reply.as_ref().unwrap();
        assert_eq!(p.message_type(), Some(msg::ACK));
        assert_eq!(
            *dest,
            Destination::Source(SocketAddr::from(([10, 99, 0, 150], 68)))
        );
        // The client's own address is reported, so its TFTP and HTTP
        // transfers can be attributed to it.
        assert!(out.events.iter().any(|e| matches!(
            e,
            EventKind::DhcpReplied { ip: Some(ip), proxy: true, .. } if *ip == Ipv4Addr::new(10, 99, 0, 150)
        )));
        // A plain DHCP client is not a proxy's business.
        let plain = request(|p| p.options.retain(|(c, _)| *c == opt::MESSAGE_TYPE));
        assert!(
            run(&mut w, &plain, Port::Dhcp, DhcpMode::Proxy)
                .reply
                .is_none()
        );
    }

    #[test]
    fn unknown_policy_ignore_can_withhold_even_the_address() {
        let mut w = world("unknown:\n  policy: ignore\n  give_address: false\n");
        let out = run(&mut w, &request(|_| {}), Port::Dhcp, DhcpMode::Full);
        assert!(out.reply.is_none());
        assert!(
            matches!(&out.events[0], EventKind::DhcpSeen(s) if s.decision == BootDecision::Ignore),
            "still seen in the console"
        );
        let mut w = world("unknown:\n  policy: ignore\n");
        let out = run(&mut w, &request(|_| {}), Port::Dhcp, DhcpMode::Full);
        assert_eq!(
            reply(&out).option(opt::BOOTFILE),
            None,
            "an address, no boot answer"
        );
    }

    #[test]
    fn inform_release_and_decline() {
        let mut w = world("");
        let inform = request(|p| {
            p.set_option(opt::MESSAGE_TYPE, [msg::INFORM]);
            p.ciaddr = "10.99.0.150".parse().unwrap();
        });
        let out = run(&mut w, &inform, Port::Dhcp, DhcpMode::Full);
        let (p, dest) = out.reply.as_ref().unwrap();
        assert_eq!(
            (p.message_type(), p.yiaddr, p.option(opt::LEASE_TIME)),
            (Some(msg::ACK), Ipv4Addr::UNSPECIFIED, None)
        );
        assert_eq!(*dest, Destination::Client("10.99.0.150".parse().unwrap()));
        // Bind, release.
        let offered = reply(&run(&mut w, &request(|_| {}), Port::Dhcp, DhcpMode::Full)).yiaddr;
        run(
            &mut w,
            &request(|p| {
                p.set_option(opt::MESSAGE_TYPE, [msg::REQUEST]);
                p.set_option(opt::REQUESTED_IP, offered.octets());
            }),
            Port::Dhcp,
            DhcpMode::Full,
        );
        let out = run(
            &mut w,
            &request(|p| {
                p.set_option(opt::MESSAGE_TYPE, [msg::RELEASE]);
                p.ciaddr = offered;
            }),
            Port::Dhcp,
            DhcpMode::Full,
        );
        assert!(matches!(out.persist, Some(Persist::Release(_))));
        assert!(w.leases.is_empty());
        // Decline: that address is not offered again for a while.
        let out = run(
            &mut w,
            &request(|p| {
                p.set_option(opt::MESSAGE_TYPE, [msg::DECLINE]);
                p.set_option(opt::REQUESTED_IP, offered.octets());
            }),
            Port::Dhcp,
            DhcpMode::Full,
        );
        assert!(out.reply.is_none());
        assert_ne!(
            reply(&run(&mut w, &request(|_| {}), Port::Dhcp, DhcpMode::Full)).yiaddr,
            offered
        );
    }
}
