//! The DHCP policy as a pure function: a classified request, the lease
//! table and a context in; the reply, where it goes, the lease change to
//! persist first, and what happened out — told in `dhcp` terms, for the
//! socket shell to turn into events. No sockets, no disk, no clock, no bus.

use std::net::{Ipv4Addr, SocketAddr};

use super::classify::Request;
use super::leases::{Lease, LeaseState, LeaseTable};
use super::loaders::Loaders;
use super::options::{OperatorOption, merged};
use super::reply::{Addressing, Fitted, nak, offer_or_ack};
use super::wire::{Packet, msg};
use crate::boot::BootDecision;
use crate::boot::arch::Firmware;
use crate::boot::decide::{BootFile, Chain, decide, first_stage};
use crate::clock::Millis;
use crate::config::{DhcpMode, Pool, UnknownPolicy};
use crate::dhcp::{DhcpMessage, DhcpReply, DhcpSeen, LeaseEnd, RelayAgentSeen, Unanswered};
use crate::inventory::Inventory;

pub use super::reply::Destination;

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

/// Everything the policy reads besides the request and the leases. The
/// shell builds one per batch of datagrams.
pub struct Ctx<'a> {
    pub mode: DhcpMode,
    pub pools: &'a [Pool],
    pub inventory: &'a Inventory,
    pub unknown: &'a UnknownPolicy,
    pub unknown_gets_address: bool,
    /// The boot chain machines outside the inventory take (`unknown.loader`).
    pub unknown_chain: Chain,
    /// The address of the interface the request came in on (option 54).
    pub server_ip: Ipv4Addr,
    /// `http://<server>[:port]` for iPXE scripts and HTTP Boot.
    pub http_base: &'a str,
    /// The first-stage loaders the boot root has (probed by the shell).
    pub loaders: Loaders,
    pub firmware_lease_ms: Option<Millis>,
    pub port: Port,
    pub now: Millis,
}

/// A lease change the shell must make durable before sending the reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    Bind(Lease),
    Release(Lease),
}

/// A reply to send, and what it told the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub packet: Packet,
    pub to: Destination,
    pub kind: DhcpReply,
    /// The address given; under proxyDHCP, the address the client says it
    /// holds from the other server (ciaddr or option 50), if any.
    pub ip: Option<Ipv4Addr>,
    pub boot_file: Option<String>,
    /// Answered as proxyDHCP: boot information only.
    pub proxy: bool,
    /// Option codes left out so the reply fits the client's option 57.
    pub dropped_options: Vec<u8>,
}

/// What happened to addresses, for the console.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseNews {
    Bound {
        lease: Lease,
        hostname: Option<String>,
    },
    /// The client's address ended (released or declined).
    Ended { ip: Ipv4Addr, why: LeaseEnd },
    /// The client's pool had no address left for it.
    PoolExhausted { subnet: String },
}

#[derive(Debug)]
pub struct Outcome {
    /// The request as the console shows it: every classified request is
    /// seen, answered or not.
    pub seen: DhcpSeen,
    pub reply: Option<Reply>,
    pub persist: Option<Persist>,
    pub lease: Option<LeaseNews>,
    /// Why no reply was sent, for counters.
    pub silent: Option<Unanswered>,
}

impl Outcome {
    fn silent(mut self, why: Unanswered) -> Outcome {
        self.silent = Some(why);
        self
    }
}

/// The request with what the inventory says about its client.
struct Client<'r> {
    req: &'r Request,
    hostname: Option<&'r str>,
    /// The machine's `dhcp_options` (its group's merged in), if known.
    options: &'r [OperatorOption],
    /// The boot file, None when the client gets no boot answer.
    boot: Option<BootFile>,
}

impl Client<'_> {
    fn reply(&self, fitted: Fitted, to: Destination, ip: Option<Ipv4Addr>, boot: bool) -> Reply {
        let Fitted { packet, dropped } = fitted;
        Reply {
            dropped_options: dropped,
            kind: reply_kind(packet.message_type().unwrap_or(msg::ACK)),
            packet,
            to,
            ip,
            boot_file: self
                .boot
                .as_ref()
                .filter(|_| boot)
                .map(|b| b.name().to_string()),
            proxy: false,
        }
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
    let arch = machine.and_then(|m| m.arch);
    let client = Client {
        req,
        hostname: machine.map(|m| m.hostname.as_str()),
        options: machine.map_or(&[], |m| m.dhcp_options.as_slice()),
        boot: boot_answer(
            req,
            &decision,
            arch,
            machine.map_or(ctx.unknown_chain, |m| m.chain),
            ctx,
        ),
    };
    let agent = req.relay_agent.as_ref().map(RelayAgentSeen::of);
    let rule = if machine.is_none() && req.is_boot_client() {
        unknown_rule(req, agent.as_ref(), ctx)
    } else {
        None
    };
    let out = Outcome {
        seen: DhcpSeen {
            mac: req.mac,
            xid: req.xid,
            message: req.message,
            firmware: arch.or(req.firmware),
            ipxe: req.ipxe,
            vendor_class: req.vendor_class.clone(),
            uuid: req.uuid,
            relay: req.relay,
            relay_agent: agent,
            interface: req.relay.is_none().then_some(ctx.server_ip),
            hostname: client.hostname.map(str::to_string),
            decision: decision.clone(),
            rule,
        },
        reply: None,
        persist: None,
        lease: None,
        silent: None,
    };
    if let Some(why) = req.relay.and_then(|giaddr| relay_refused(giaddr, ctx)) {
        return out.silent(why);
    }
    if ctx.port == Port::Proxy || ctx.mode == DhcpMode::Proxy {
        return proxy(&client, src, ctx, out);
    }
    if ctx.mode == DhcpMode::Off {
        return out.silent(Unanswered::DhcpOff);
    }
    if decision == BootDecision::Ignore && !ctx.unknown_gets_address {
        return out.silent(Unanswered::UnknownIgnored);
    }
    let Some(pool) = pool_for(req, ctx) else {
        return out.silent(Unanswered::NoPoolForSegment);
    };
    match req.message {
        DhcpMessage::Discover => discover(&client, pool, leases, ctx, out),
        DhcpMessage::Request => request(&client, pool, leases, ctx, out),
        DhcpMessage::Inform => inform(&client, pool, ctx, out),
        DhcpMessage::Release => release(req, leases, out),
        DhcpMessage::Decline => decline(req, leases, ctx, out),
    }
}

/// proxyDHCP (and the BINL port in any mode): boot information only.
fn proxy(c: &Client<'_>, src: SocketAddr, ctx: &Ctx<'_>, mut out: Outcome) -> Outcome {
    let req = c.req;
    if !matches!(
        req.message,
        DhcpMessage::Discover | DhcpMessage::Request | DhcpMessage::Inform
    ) {
        return out.silent(Unanswered::ProxyIgnoresMessage);
    }
    let Some(boot) = &c.boot else {
        return out.silent(Unanswered::NoBootAnswer);
    };
    let kind = if req.message == DhcpMessage::Discover && ctx.port == Port::Dhcp {
        msg::OFFER
    } else {
        msg::ACK
    };
    let packet = offer_or_ack(
        req,
        kind,
        Ipv4Addr::UNSPECIFIED,
        None,
        Some(boot),
        ctx.server_ip,
    );
    let to = if ctx.port == Port::Proxy {
        Destination::Source(src)
    } else {
        Destination::for_reply(req, kind)
    };
    // The address is the other server's; what the client says it has
    // lets transfers from that address be attributed to the machine.
    let stated = (!req.ciaddr.is_unspecified())
        .then_some(req.ciaddr)
        .or(req.requested_ip);
    out.reply = Some(Reply {
        proxy: true,
        ..c.reply(packet, to, stated, true)
    });
    out
}

fn discover(
    c: &Client<'_>,
    pool: &Pool,
    leases: &mut LeaseTable,
    ctx: &Ctx<'_>,
    mut out: Outcome,
) -> Outcome {
    let req = c.req;
    let Some(ip) = leases.choose(pool, &req.mac, req.requested_ip, ctx.inventory, ctx.now) else {
        out.lease = Some(LeaseNews::PoolExhausted {
            subnet: pool.subnet.to_string(),
        });
        return out.silent(Unanswered::PoolExhausted);
    };
    let offer = Lease {
        ip,
        mac: req.mac,
        state: LeaseState::Offered,
        expires: ctx.now + OFFER_HOLD_MS,
        fixed: ctx.inventory.by_ip(ip).is_some(),
    };
    if leases.hold(offer, ctx.inventory, ctx.now).is_err() {
        return out.silent(Unanswered::OfferConflict);
    }
    let packet = offer_or_ack(
        req,
        msg::OFFER,
        ip,
        Some(addressing(c, pool, lease_ms(req, pool, ctx))),
        c.boot.as_ref(),
        ctx.server_ip,
    );
    let to = Destination::for_reply(req, msg::OFFER);
    out.reply = Some(c.reply(packet, to, Some(ip), true));
    out
}

fn request(
    c: &Client<'_>,
    pool: &Pool,
    leases: &mut LeaseTable,
    ctx: &Ctx<'_>,
    mut out: Outcome,
) -> Outcome {
    let req = c.req;
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
        return out.silent(Unanswered::ChoseAnotherServer);
    }
    let wanted = req
        .requested_ip
        .or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
    let Some(ip) = wanted else {
        return out.silent(Unanswered::RequestWithoutAddress);
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
        let to = Destination::for_reply(req, msg::NAK);
        out.reply = Some(c.reply(nak(req, ctx.server_ip), to, None, false));
        return out;
    }
    let packet = offer_or_ack(
        req,
        msg::ACK,
        ip,
        Some(addressing(c, pool, ms)),
        c.boot.as_ref(),
        ctx.server_ip,
    );
    let to = Destination::for_reply(req, msg::ACK);
    out.reply = Some(c.reply(packet, to, Some(ip), true));
    out.lease = Some(LeaseNews::Bound {
        lease: lease.clone(),
        hostname: c.hostname.map(str::to_string),
    });
    out.persist = Some(Persist::Bind(lease));
    out
}

/// DHCPINFORM: configuration for a client that has its address already.
fn inform(c: &Client<'_>, pool: &Pool, ctx: &Ctx<'_>, mut out: Outcome) -> Outcome {
    let req = c.req;
    // A zero lease time sends no lease options (RFC 2131 §3.4).
    let packet = offer_or_ack(
        req,
        msg::ACK,
        Ipv4Addr::UNSPECIFIED,
        Some(addressing(c, pool, 0)),
        c.boot.as_ref(),
        ctx.server_ip,
    );
    let to = if req.ciaddr.is_unspecified() {
        Destination::for_reply(req, msg::ACK)
    } else {
        Destination::Client(req.ciaddr)
    };
    out.reply = Some(c.reply(packet, to, None, true));
    out
}

fn release(req: &Request, leases: &mut LeaseTable, mut out: Outcome) -> Outcome {
    if let Some(l) = leases.release(req.ciaddr, &req.mac) {
        out.lease = Some(LeaseNews::Ended {
            ip: l.ip,
            why: LeaseEnd::Released,
        });
        out.persist = Some(Persist::Release(l));
    }
    out.silent(Unanswered::Release)
}

/// DHCPDECLINE (RFC 2131 §4.3.3): the client found its address in use.
/// Accepted only from the MAC holding that address (see
/// [`LeaseTable::decline`]); anything else is counted and changes nothing.
fn decline(req: &Request, leases: &mut LeaseTable, ctx: &Ctx<'_>, mut out: Outcome) -> Outcome {
    let Some(ip) = req.requested_ip else {
        return out.silent(Unanswered::DeclineRefused);
    };
    let until = ctx.now + DECLINE_QUARANTINE_MS;
    match leases.decline(ip, &req.mac, ctx.inventory, ctx.now, until) {
        Ok(held) => {
            out.lease = Some(LeaseNews::Ended {
                ip,
                why: LeaseEnd::Declined,
            });
            out.persist = Some(Persist::Release(held));
            out.silent(Unanswered::Decline)
        }
        Err(_) => out.silent(Unanswered::DeclineRefused),
    }
}

fn addressing<'a>(c: &Client<'a>, pool: &'a Pool, lease_ms: Millis) -> Addressing<'a> {
    Addressing {
        pool,
        lease_ms,
        hostname: c.hostname,
        options: merged(&pool.options, c.options),
    }
}

/// The boot file for this client, or None when it gets no boot answer.
fn boot_answer(
    req: &Request,
    decision: &BootDecision,
    arch: Option<Firmware>,
    chain: Chain,
    ctx: &Ctx<'_>,
) -> Option<BootFile> {
    if matches!(decision, BootDecision::Ignore | BootDecision::NotPxe) {
        return None;
    }
    // Every other decision chains to iPXE, whose script then says install,
    // hold, discover or exit — so an adoption takes effect without a reboot.
    // Option 93 came after the PXE spec: a PXE ROM that omits it is BIOS.
    let pxe_default = (!req.http_boot).then_some(Firmware::Bios);
    let firmware = arch.or(req.firmware).or(pxe_default);
    first_stage(firmware, req.ipxe, chain, ctx.http_base, |name: &str| {
        ctx.loaders.contains(name)
    })
}

/// Why a relayed request must not be answered, if it must not. Its reply
/// goes to giaddr port 67 (RFC 2131 §4.1), and giaddr is whatever the
/// sender wrote: our own address would send the reply back to us (and hold
/// an address for nobody), a subnet's broadcast address to every host on
/// it, anything else to a host that asked for nothing. A relay is a host
/// of the subnet it serves, so giaddr must be one of a pool's subnet. With
/// no pools (proxyDHCP without them) only what no relay can have is
/// refused.
fn relay_refused(giaddr: Ipv4Addr, ctx: &Ctx<'_>) -> Option<Unanswered> {
    if giaddr == ctx.server_ip {
        return Some(Unanswered::RelayIsOurs);
    }
    let usable = if ctx.pools.is_empty() {
        !(giaddr.is_loopback() || giaddr.is_broadcast() || giaddr.is_multicast())
    } else {
        ctx.pools.iter().any(|p| p.is_host(giaddr))
    };
    (!usable).then_some(Unanswered::RelayNotInPool)
}

/// The pool that serves a request: among the pools of its segment (the
/// relay's subnet, else the server's, else the first pool), one whose
/// `match:` holds for the request's option 82 wins over one without a
/// `match:`; a pool whose `match:` fails never serves it.
fn pool_for<'a>(req: &Request, ctx: &Ctx<'a>) -> Option<&'a Pool> {
    let segment: Vec<&'a Pool> = match req.relay {
        Some(giaddr) => ctx.pools.iter().filter(|p| p.contains(giaddr)).collect(),
        None => {
            let here: Vec<&'a Pool> = ctx
                .pools
                .iter()
                .filter(|p| p.contains(ctx.server_ip))
                .collect();
            if here.is_empty() {
                ctx.pools.first().into_iter().collect()
            } else {
                here
            }
        }
    };
    let info = req.relay_agent.as_ref();
    segment
        .iter()
        .find(|p| !p.relay_match.is_empty() && p.relay_match.matches(info))
        .or_else(|| segment.iter().find(|p| p.relay_match.is_empty()))
        .copied()
}

/// The rule an unknown machine matches (`adopt.rules`): its segment is
/// the relay's address, else the address its request arrived on.
fn unknown_rule(
    req: &Request,
    agent: Option<&RelayAgentSeen>,
    ctx: &Ctx<'_>,
) -> Option<crate::inventory::rules::RuleHit> {
    use crate::inventory::rules::{Sighting, first_match};
    if ctx.inventory.rules.is_empty() {
        return None;
    }
    let sighting = Sighting {
        firmware: req.firmware,
        segment: Some(req.relay.unwrap_or(ctx.server_ip)),
        relay: req.relay,
        circuit_id: agent.and_then(|a| a.circuit_id.as_deref()),
        remote_id: agent.and_then(|a| a.remote_id.as_deref()),
        ..Sighting::of_mac(req.mac)
    };
    first_match(&ctx.inventory.rules, &sighting).map(|r| r.hit.clone())
}

fn lease_ms(req: &Request, pool: &Pool, ctx: &Ctx<'_>) -> Millis {
    match ctx.firmware_lease_ms {
        Some(ms) if req.is_boot_client() => ms,
        _ => pool.lease_time.as_millis() as Millis,
    }
}

fn reply_kind(kind: u8) -> DhcpReply {
    match kind {
        msg::OFFER => DhcpReply::Offer,
        msg::NAK => DhcpReply::Nak,
        _ => DhcpReply::Ack,
    }
}

#[cfg(test)]
mod tests;
