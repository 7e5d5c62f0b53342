//! The policy's table of cases: one world (the example inventory, two
//! pools), requests built from a UEFI DISCOVER and changed per case.

use super::*;
use crate::config::Config;
use crate::dhcp::classify::classify;
use crate::dhcp::wire::opt;
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
            ..Default::default()
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
    let ctx = Ctx {
        mode,
        pools: &w.config.dhcp.pools,
        inventory: &w.inventory,
        unknown: &w.config.unknown,
        unknown_gets_address: w.config.unknown_gets_address,
        unknown_chain: w.config.unknown_chain,
        server_ip: "10.99.0.1".parse().unwrap(),
        http_base: base,
        loaders: Loaders::only(["undionly.kpxe", "ipxe.efi"]),
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
    &o.reply.as_ref().expect("a reply").packet
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
            "UEFI x64 PXE, option 60 only",
            |p| p.options.retain(|(c, _)| *c != opt::CLIENT_ARCH),
            offer_for_dev01("ipxe.efi", "PXEClient", false),
        ),
        (
            "UEFI HTTP Boot, option 60 only",
            |p| {
                p.options.retain(|(c, _)| *c != opt::CLIENT_ARCH);
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
            out.reply.as_ref().unwrap().to,
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
    assert!(matches!(ack.lease, Some(LeaseNews::Bound { .. })));
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
    assert_eq!(out.silent, Some(Unanswered::PoolExhausted));
    assert!(matches!(out.lease, Some(LeaseNews::PoolExhausted { .. })));
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
    let Reply {
        packet: p,
        to: dest,
        ..
    } = out.reply.as_ref().unwrap();
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
    let Reply {
        packet: p,
        to: dest,
        ..
    } = out.reply.as_ref().unwrap();
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
    let Reply {
        packet: p,
        to: dest,
        ..
    } = out.reply.as_ref().unwrap();
    assert_eq!(p.message_type(), Some(msg::ACK));
    assert_eq!(
        *dest,
        Destination::Source(SocketAddr::from(([10, 99, 0, 150], 68)))
    );
    // The client's own address is reported, so its TFTP and HTTP
    // transfers can be attributed to it.
    assert!(matches!(
        &out.reply,
        Some(Reply { ip: Some(ip), proxy: true, .. }) if *ip == Ipv4Addr::new(10, 99, 0, 150)
    ));
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
        out.seen.decision == BootDecision::Ignore,
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
    let Reply {
        packet: p,
        to: dest,
        ..
    } = out.reply.as_ref().unwrap();
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
    // Decline, by the client holding the address (bound again: a DECLINE
    // of an address one holds nothing on quarantines nothing): that
    // address is not offered again for a while.
    assert_eq!(bind(&mut w, UNKNOWN), offered);
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

/// A client with `mac` that went through DISCOVER and REQUEST; its address.
fn bind(w: &mut World, mac: [u8; 6]) -> Ipv4Addr {
    let offered = reply(&run(
        w,
        &request(|p| set_mac(p, mac)),
        Port::Dhcp,
        DhcpMode::Full,
    ))
    .yiaddr;
    let ack = run(
        w,
        &request(|p| {
            set_mac(p, mac);
            p.set_option(opt::MESSAGE_TYPE, [msg::REQUEST]);
            p.set_option(opt::REQUESTED_IP, offered.octets());
        }),
        Port::Dhcp,
        DhcpMode::Full,
    );
    assert_eq!(reply(&ack).message_type(), Some(msg::ACK));
    offered
}

fn decline_from(mac: [u8; 6], ip: Option<Ipv4Addr>) -> Request {
    request(|p| {
        set_mac(p, mac);
        p.set_option(opt::MESSAGE_TYPE, [msg::DECLINE]);
        p.options.retain(|(c, _)| *c != opt::REQUESTED_IP);
        if let Some(ip) = ip {
            p.set_option(opt::REQUESTED_IP, ip.octets());
        }
    })
}

/// Issue 15, item 8: a DECLINE quarantines an address only when its sender
/// holds that address's offer or lease, and a reservation only for its
/// owner.
#[test]
fn a_decline_counts_only_from_the_holder() {
    const STRANGER: [u8; 6] = [2, 0xde, 0, 0, 0, 1];
    let reserved: Ipv4Addr = "10.99.0.21".parse().unwrap();
    /// Who declines what (the unknown client's bound address, or dev-01's
    /// reservation), whether dev-01 holds its lease, and the verdict.
    type Case = (
        &'static str,
        [u8; 6],
        Option<&'static str>,
        bool,
        Unanswered,
    );
    let cases: [Case; 7] = [
        (
            "a stranger, someone's lease",
            STRANGER,
            Some("lease"),
            true,
            Unanswered::DeclineRefused,
        ),
        (
            "a stranger, a held reservation",
            STRANGER,
            Some("reserved"),
            true,
            Unanswered::DeclineRefused,
        ),
        (
            "a stranger, an idle reservation",
            STRANGER,
            Some("reserved"),
            false,
            Unanswered::DeclineRefused,
        ),
        (
            "no address named",
            UNKNOWN,
            None,
            true,
            Unanswered::DeclineRefused,
        ),
        (
            "the owner, an address it does not hold",
            DEV01,
            Some("lease"),
            true,
            Unanswered::DeclineRefused,
        ),
        (
            "the holder of the lease",
            UNKNOWN,
            Some("lease"),
            true,
            Unanswered::Decline,
        ),
        (
            "the owner of the reservation",
            DEV01,
            Some("reserved"),
            true,
            Unanswered::Decline,
        ),
    ];
    for (name, who, what, dev01_bound, want) in cases {
        let mut w = world("");
        let lease = bind(&mut w, UNKNOWN);
        if dev01_bound {
            assert_eq!(bind(&mut w, DEV01), reserved);
        }
        let ip = what.map(|w| if w == "lease" { lease } else { reserved });
        let before = w.leases.clone();
        let out = run(&mut w, &decline_from(who, ip), Port::Dhcp, DhcpMode::Full);
        assert!(out.reply.is_none(), "{name}");
        assert_eq!(out.silent, Some(want), "{name}");
        let pool = &w.config.dhcp.pools[0];
        let quarantined = w.leases.quarantined_in(pool, 1_000_000);
        if want == Unanswered::DeclineRefused {
            assert_eq!(w.leases, before, "{name}: nothing changed");
            assert!((out.lease, out.persist) == (None, None), "{name}");
            // The address's holder keeps it; a reservation still goes to its owner.
            let again = run(
                &mut w,
                &request(|p| set_mac(p, DEV01)),
                Port::Dhcp,
                DhcpMode::Full,
            );
            assert_eq!(reply(&again).yiaddr, reserved, "{name}");
        } else {
            let ip = ip.unwrap();
            assert!(
                matches!(out.persist, Some(Persist::Release(ref l)) if l.ip == ip && l.mac == Mac(who)),
                "{name}"
            );
            assert_eq!(
                out.lease,
                Some(LeaseNews::Ended {
                    ip,
                    why: LeaseEnd::Declined
                }),
                "{name}"
            );
            assert_eq!(quarantined, usize::from(pool.range_contains(ip)), "{name}");
            assert!(w.leases.get(ip).is_none(), "{name}");
        }
    }
}

#[test]
fn an_expired_offer_gives_no_right_to_decline() {
    let mut w = world("");
    let ip: Ipv4Addr = "10.99.0.100".parse().unwrap();
    let stale = Lease {
        ip,
        mac: Mac(UNKNOWN),
        state: LeaseState::Offered,
        expires: 1_000_000 - 1,
        fixed: false,
    };
    w.leases.hold(stale, &w.inventory, 0).unwrap();
    let out = run(
        &mut w,
        &decline_from(UNKNOWN, Some(ip)),
        Port::Dhcp,
        DhcpMode::Full,
    );
    assert_eq!(out.silent, Some(Unanswered::DeclineRefused));
    assert_eq!(
        w.leases.quarantined_in(&w.config.dhcp.pools[0], 1_000_000),
        0
    );
}

/// Issue 15, item 11: a relayed request is answered only when its giaddr
/// is a host of a pool's subnet and not the server itself. With no pools
/// (proxyDHCP) only addresses no relay can have are refused.
#[test]
fn relayed_requests_need_a_relay_that_can_exist() {
    type Case = (&'static str, DhcpMode, bool, Option<Unanswered>);
    let cases: [Case; 12] = [
        ("10.98.0.1", DhcpMode::Full, true, None),
        (
            "10.99.0.1",
            DhcpMode::Full,
            true,
            Some(Unanswered::RelayIsOurs),
        ),
        (
            "10.99.0.1",
            DhcpMode::Proxy,
            true,
            Some(Unanswered::RelayIsOurs),
        ),
        (
            "10.99.0.1",
            DhcpMode::Proxy,
            false,
            Some(Unanswered::RelayIsOurs),
        ),
        (
            "10.98.0.0",
            DhcpMode::Full,
            true,
            Some(Unanswered::RelayNotInPool),
        ),
        (
            "10.98.0.255",
            DhcpMode::Full,
            true,
            Some(Unanswered::RelayNotInPool),
        ),
        (
            "192.0.2.1",
            DhcpMode::Full,
            true,
            Some(Unanswered::RelayNotInPool),
        ),
        (
            "192.0.2.1",
            DhcpMode::Proxy,
            true,
            Some(Unanswered::RelayNotInPool),
        ),
        ("192.0.2.1", DhcpMode::Proxy, false, None),
        (
            "127.0.0.1",
            DhcpMode::Proxy,
            false,
            Some(Unanswered::RelayNotInPool),
        ),
        (
            "255.255.255.255",
            DhcpMode::Proxy,
            false,
            Some(Unanswered::RelayNotInPool),
        ),
        (
            "224.0.0.1",
            DhcpMode::Proxy,
            false,
            Some(Unanswered::RelayNotInPool),
        ),
    ];
    for (giaddr, mode, pools, want) in cases {
        let name = format!("{giaddr} {mode} pools={pools}");
        let mut w = world("");
        if !pools {
            w.config.dhcp.pools.clear();
        }
        let giaddr: Ipv4Addr = giaddr.parse().unwrap();
        let req = request(|p| {
            set_mac(p, DEV01);
            p.giaddr = giaddr;
        });
        let out = run(&mut w, &req, Port::Dhcp, mode);
        assert_eq!(out.silent, want, "{name}");
        match want {
            Some(_) => {
                assert!(out.reply.is_none(), "{name}");
                assert!(w.leases.is_empty(), "{name}: no address held");
            }
            None => assert_eq!(
                out.reply.as_ref().map(|r| r.to),
                Some(Destination::Relay(giaddr)),
                "{name}"
            ),
        }
    }
}

mod options;
mod relay_agent;
mod rules;
