//! The DHCP server over real sockets on loopback (unprivileged ports):
//! DORA, durability across a restart, rogue detection, garbage, spoofed
//! DECLINEs and reflected relays.
//! Real third-party clients run in the network-namespace suite.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pxedeck::config::Config;
use pxedeck::dhcp::handler::Port;
use pxedeck::dhcp::server::DhcpServer;
use pxedeck::dhcp::wire::{BOOTREPLY, Packet, msg, opt};
use pxedeck::dhcp::{DhcpReply, Unanswered};
use pxedeck::event::{Bus, EventKind};
use pxedeck::inventory::{LoadOptions, load};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

struct Running {
    addr: SocketAddr,
    server: Arc<DhcpServer>,
    bus: Bus,
    cancel: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The usual pool: 10.99.0.0/24, eleven addresses, away from the server.
const POOL: &str =
    "    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.110\n      router: 10.99.0.1\n";

fn config(dir: &Path, pools: &str) -> Arc<Config> {
    let text = format!(
        "server:\n  address: 127.0.0.1\ndhcp:\n  lease_file: {}/leases.jsonl\n  pools:\n{pools}",
        dir.display()
    );
    Arc::new(Config::from_text(&text, None).unwrap())
}

async fn start(dir: &Path) -> Running {
    start_with(config(dir, POOL)).await
}

async fn start_with(config: Arc<Config>) -> Running {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
    let inv = load(
        &root,
        &LoadOptions {
            pools: config.dhcp.pools.clone(),
            ..Default::default()
        },
    )
    .inventory;
    let bus = Bus::default();
    let server = Arc::new(
        DhcpServer::new(
            config,
            Arc::new(ArcSwap::from_pointee(inv)),
            bus.clone(),
            "http://127.0.0.1:8080".into(),
            Box::new(|_: &str| true),
        )
        .unwrap(),
    );
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(server.clone().serve(socket, Port::Dhcp, cancel.clone()));
    Running {
        addr,
        server,
        bus,
        cancel,
    }
}

async fn exchange(client: &UdpSocket, to: SocketAddr, p: &Packet) -> Packet {
    try_exchange(client, to, p, Duration::from_secs(2))
        .await
        .expect("a reply")
}

/// Sends `p` and waits up to `wait` for the answer.
async fn try_exchange(
    client: &UdpSocket,
    to: SocketAddr,
    p: &Packet,
    wait: Duration,
) -> Option<Packet> {
    client.send_to(&p.encode(), to).await.unwrap();
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(wait, client.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(Packet::decode(&buf[..n]).unwrap())
}

/// Whether `mac` is offered an address within half a second.
async fn offered(client: &UdpSocket, to: SocketAddr, mac: [u8; 6]) -> Option<Ipv4Addr> {
    let d = Packet::client_request(mac, 1, msg::DISCOVER);
    let reply = try_exchange(client, to, &d, Duration::from_millis(500)).await?;
    (reply.message_type() == Some(msg::OFFER)).then_some(reply.yiaddr)
}

/// DISCOVER → OFFER → REQUEST → ACK for `mac`; returns the bound address.
async fn dora(client: &UdpSocket, to: SocketAddr, mac: [u8; 6]) -> Ipv4Addr {
    let mut d = Packet::client_request(mac, 1, msg::DISCOVER);
    d.set_option(opt::CLASS_ID, b"PXEClient:Arch:00007:UNDI:003016".to_vec());
    d.set_option(opt::CLIENT_ARCH, [0, 7]);
    let offer = exchange(client, to, &d).await;
    assert_eq!(offer.message_type(), Some(msg::OFFER));
    let mut r = Packet::client_request(mac, 2, msg::REQUEST);
    r.set_option(opt::SERVER_ID, [127, 0, 0, 1]);
    r.set_option(opt::REQUESTED_IP, offer.yiaddr.octets());
    let ack = exchange(client, to, &r).await;
    assert_eq!(ack.message_type(), Some(msg::ACK));
    assert_eq!(ack.yiaddr, offer.yiaddr);
    ack.yiaddr
}

#[tokio::test]
async fn dora_binds_and_leases_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut bound = Vec::new();
    {
        let s = start(dir.path()).await;
        for n in 1..=5u8 {
            bound.push(dora(&client, s.addr, [2, 0, 0, 0, 0, n]).await);
        }
        // Known machine with a reservation gets its fixed address.
        assert_eq!(
            dora(&client, s.addr, [0x52, 0x54, 0, 0xd0, 0, 1]).await,
            "10.99.0.21".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(s.server.leases().len(), 6);
    } // dropped: no clean shutdown of the lease store
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = start(dir.path()).await;
    let leases = s.server.leases();
    assert_eq!(leases.len(), 6, "every ACKed lease is back");
    // Same MAC, same address; a new MAC never gets a bound one.
    assert_eq!(dora(&client, s.addr, [2, 0, 0, 0, 0, 3]).await, bound[2]);
    let fresh = dora(&client, s.addr, [2, 0, 0, 0, 0, 99]).await;
    assert!(!bound.contains(&fresh));
}

#[tokio::test]
async fn another_servers_offer_raises_a_rogue_event() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut rx = s.bus.subscribe();
    let mut rogue = Packet::client_request([2, 0, 0, 0, 0, 7], 9, msg::OFFER);
    rogue.op = BOOTREPLY;
    rogue.yiaddr = "192.168.1.50".parse().unwrap();
    rogue.set_option(opt::SERVER_ID, [192, 168, 1, 1]);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&rogue.encode(), s.addr).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    match &e.kind {
        EventKind::RogueDhcp {
            server, offered, ..
        } => {
            assert_eq!(*server, Ipv4Addr::new(192, 168, 1, 1));
            assert_eq!(*offered, Some(Ipv4Addr::new(192, 168, 1, 50)));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn garbage_and_floods_are_counted_and_never_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [vec![], vec![1; 10], vec![0xff; 400], {
        let mut p = Packet::client_request([2, 0, 0, 0, 0, 1], 1, msg::DISCOVER).encode();
        p[241] = 250; // message type option claims 250 bytes
        p
    }] {
        sock.send_to(&junk, s.addr).await.unwrap();
    }
    // A flood from one MAC is rate limited.
    let flood = Packet::client_request([2, 0, 0, 0, 0, 66], 5, msg::INFORM).encode();
    for _ in 0..100 {
        sock.send_to(&flood, s.addr).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    dora(&client, s.addr, [2, 0, 0, 0, 0, 42]).await;
    let dropped = s.server.stats.dropped.snapshot();
    assert_eq!(dropped.get("too_short"), Some(&2), "{dropped:?}");
    assert!(
        dropped.get("rate_limited").copied().unwrap_or(0) >= 50,
        "{dropped:?}"
    );
}

/// Issue 15, item 8: a DECLINE from a MAC that holds no offer or lease on
/// the address is refused and counted; it quarantines nothing, not even a
/// reservation. Before, 100 such DECLINEs left no address for anyone.
#[tokio::test]
async fn spoofed_declines_quarantine_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let range: Vec<Ipv4Addr> = (100..=110).map(|n| Ipv4Addr::new(10, 99, 0, n)).collect();
    for n in 0..100u8 {
        let mut d = Packet::client_request([2, 0xde, 0, 0, 0, n], 40 + u32::from(n), msg::DECLINE);
        d.set_option(opt::SERVER_ID, [127, 0, 0, 1]);
        // Every address of the range, and dev-01's reservation.
        let ip = match n % 12 {
            11 => Ipv4Addr::new(10, 99, 0, 21),
            i => range[usize::from(i)],
        };
        d.set_option(opt::REQUESTED_IP, ip.octets());
        attacker.send_to(&d.encode(), s.addr).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut served = 0;
    for n in 1..=11u8 {
        served += usize::from(offered(&client, s.addr, [2, 0, 0, 0, 1, n]).await.is_some());
    }
    let dev01 = offered(&client, s.addr, [0x52, 0x54, 0, 0xd0, 0, 1]).await;
    let dropped = s.server.stats.dropped.snapshot();
    eprintln!(
        "after 100 spoofed DECLINEs: {served}/11 clients offered an address, dev-01 offered {dev01:?}, leases {:?}, dropped {dropped:?}",
        s.server.lease_samples()
    );
    assert_eq!(served, 11, "every address of the pool is still given out");
    assert_eq!(
        dev01,
        Some(Ipv4Addr::new(10, 99, 0, 21)),
        "the reservation too"
    );
    assert_eq!(dropped.get("decline_refused"), Some(&100), "{dropped:?}");
    assert_eq!(dropped.get("decline"), None, "{dropped:?}");

    // The holder's own DECLINE is honoured, and the metrics say so: the
    // address is neither used nor free.
    let mac = [2, 0, 0, 0, 1, 1];
    let ip = offered(&client, s.addr, mac)
        .await
        .expect("its offer again");
    let mut d = Packet::client_request(mac, 99, msg::DECLINE);
    d.set_option(opt::SERVER_ID, [127, 0, 0, 1]);
    d.set_option(opt::REQUESTED_IP, ip.octets());
    client.send_to(&d.encode(), s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.server.stats.dropped.get(Unanswered::Decline), 1);
    assert!(s.server.leases().iter().all(|l| l.ip != ip));
    let samples = s.server.lease_samples();
    let pool = "pool=\"10.99.0.0/24\"";
    for (state, want) in [("used", 10), ("quarantined", 1), ("free", 0)] {
        let label = format!("{{{pool},state=\"{state}\"}}");
        assert!(samples.contains(&(label, want)), "{state}: {samples:?}");
    }
}

/// Issue 15, item 11: a relayed request whose giaddr is the server's own
/// address, or no host of any pool subnet, is dropped and counted — no
/// OFFER reflected to ourselves (or a subnet's broadcast), no address held.
/// The pool here is the server's own loopback subnet, so the reflection
/// stays on loopback.
#[tokio::test]
async fn relayed_requests_from_our_own_address_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let pool = "    - subnet: 127.0.0.0/24\n      range: 127.0.0.100-127.0.0.110\n";
    let s = start_with(config(dir.path(), pool)).await;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let giaddrs = [
        (Ipv4Addr::new(127, 0, 0, 1), 100u8), // the server itself
        (Ipv4Addr::new(127, 0, 0, 255), 10),  // the pool subnet's broadcast
        (Ipv4Addr::new(127, 0, 0, 0), 5),     // its network address
        (Ipv4Addr::new(127, 5, 0, 1), 10),    // outside every pool subnet
    ];
    let mut n = 0u8;
    for (giaddr, count) in giaddrs {
        for _ in 0..count {
            n = n.wrapping_add(1);
            let mut d =
                Packet::client_request([2, 0xaa, 0, 0, giaddr.octets()[3], n], 7, msg::DISCOVER);
            d.giaddr = giaddr;
            d.hops = 1;
            attacker.send_to(&d.encode(), s.addr).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies = s.server.stats.replies.total();
    let held = s.server.leases().len();
    let dropped = s.server.stats.dropped.snapshot();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let direct = offered(&client, s.addr, [2, 0, 0, 0, 2, 1]).await;
    eprintln!(
        "after 125 relayed DISCOVERs with bad giaddrs: {replies} replies sent to them, {held} addresses held, a direct client offered {direct:?}, dropped {dropped:?}"
    );
    assert_eq!(replies, 0, "nothing reflected");
    assert_eq!(held, 0, "no address held for them");
    assert!(direct.is_some(), "a direct client is served");
    assert_eq!(dropped.get("relay_is_ours"), Some(&100), "{dropped:?}");
    assert_eq!(dropped.get("relay_not_in_pool"), Some(&25), "{dropped:?}");

    // A relay that is a host of the pool's subnet is answered (at its
    // address, port 67: nobody listens there on loopback, so count it).
    let mut d = Packet::client_request([2, 0, 0, 0, 2, 2], 8, msg::DISCOVER);
    d.giaddr = Ipv4Addr::new(127, 0, 0, 2);
    d.hops = 1;
    attacker.send_to(&d.encode(), s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.server.stats.replies.get(DhcpReply::Offer), 2);
}
