//! The DHCP server over real sockets on loopback (unprivileged ports):
//! DORA, durability across a restart, rogue detection, garbage.
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

fn config(dir: &Path) -> Arc<Config> {
    let text = format!(
        "server:\n  address: 127.0.0.1\ndhcp:\n  lease_file: {}/leases.jsonl\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.110\n      router: 10.99.0.1\n",
        dir.display()
    );
    Arc::new(Config::from_text(&text, None).unwrap())
}

async fn start(dir: &Path) -> Running {
    let config = config(dir);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
    let inv = load(
        &root,
        &LoadOptions {
            pools: config.dhcp.pools.clone(),
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
    client.send_to(&p.encode(), to).await.unwrap();
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf))
        .await
        .expect("a reply")
        .unwrap();
    Packet::decode(&buf[..n]).unwrap()
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
