//! The TFTP server over real sockets on loopback, driven by pxedeck's own
//! client (real third-party clients run in tests/tftp_netns.rs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pxedeck::bootfs::BootFs;
use pxedeck::event::{Bus, EventKind};
use pxedeck::net::{UdpOptions, udp_socket};
use pxedeck::progress::ProgressTable;
use pxedeck::tftp::client::{FetchError, FetchOptions, fetch};
use pxedeck::tftp::packet::{self, Packet};
use pxedeck::tftp::server::TftpDrop;
use pxedeck::tftp::transfer::Limits;
use pxedeck::tftp::{TftpServer, TftpSettings};
use tokio_util::sync::CancellationToken;

struct Fixture {
    addr: SocketAddr,
    server: Arc<TftpServer>,
    bus: Bus,
    _root: tempfile::TempDir,
    cancel: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 11) as u8)
        .collect()
}

async fn start(settings: TftpSettings) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    for (name, len) in [
        ("0.bin", 0),
        ("511.bin", 511),
        ("512.bin", 512),
        ("513.bin", 513),
        ("1m.bin", 1 << 20),
    ] {
        std::fs::write(root.path().join(name), pattern(len)).unwrap();
    }
    std::fs::write(root.path().join("text.txt"), "a\nb\rc\n").unwrap();
    std::fs::create_dir(root.path().join("dir")).unwrap();
    let bus = Bus::default();
    let generator: pxedeck::tftp::Generator = Arc::new(|name: &str, client| {
        (name == "pxelinux.cfg/generated").then(|| format!("for {client}\n").into_bytes())
    });
    let server = Arc::new(TftpServer::new(
        settings,
        BootFs::new([root.path().to_path_buf()]),
        bus.clone(),
        Arc::new(ProgressTable::default()),
        Some(generator),
    ));
    let socket = udp_socket("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
    let addr = socket.local_addr().unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(server.clone().serve(socket, cancel.clone()));
    Fixture {
        addr,
        server,
        bus,
        _root: root,
        cancel,
    }
}

fn settings() -> TftpSettings {
    TftpSettings {
        limits: Limits::default(),
        max_transfers: 100,
        single_port: false,
    }
}

#[tokio::test]
async fn files_of_every_boundary_size_with_every_option_combination() {
    for single_port in [false, true] {
        let f = start(TftpSettings {
            single_port,
            ..settings()
        })
        .await;
        for (name, len) in [
            ("0.bin", 0),
            ("511.bin", 511),
            ("512.bin", 512),
            ("513.bin", 513),
            ("1m.bin", 1 << 20),
        ] {
            for (blksize, windowsize, tsize) in [
                (None, None, false),
                (Some(1468), None, true),
                (Some(512), Some(16), true),
                (Some(1432), Some(4), false),
            ] {
                let opts = FetchOptions {
                    blksize,
                    windowsize,
                    tsize,
                    ..FetchOptions::default()
                };
                let got = fetch(f.addr, name, &opts)
                    .await
                    .unwrap_or_else(|e| panic!("{name} {opts:?}: {e}"));
                assert_eq!(
                    got.data,
                    pattern(len),
                    "{name} {opts:?} single_port={single_port}"
                );
                assert_eq!(got.tsize, tsize.then_some(len as u64));
                assert_eq!(got.blksize, blksize.unwrap_or(512));
            }
        }
    }
}

#[tokio::test]
async fn blksize_is_clamped_to_the_configured_cap() {
    let f = start(settings()).await;
    let got = fetch(
        f.addr,
        "1m.bin",
        &FetchOptions {
            blksize: Some(9000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(got.blksize, 1468);
    assert_eq!(got.data.len(), 1 << 20);
}

#[tokio::test]
async fn refusals_carry_the_right_error_codes() {
    let f = start(settings()).await;
    let err = |r: Result<_, FetchError>| match r {
        Err(FetchError::Server { code, message }) => (code, message),
        other => panic!("expected a server error, got {other:?}"),
    };
    let o = FetchOptions::default();
    assert_eq!(err(fetch(f.addr, "missing.efi", &o).await).0, 1);
    assert_eq!(
        err(fetch(f.addr, "../etc/passwd", &o).await),
        (2, "access violation: `..` in path".into())
    );
    assert_eq!(err(fetch(f.addr, "/etc/passwd", &o).await).0, 2);
    assert_eq!(err(fetch(f.addr, "dir", &o).await).0, 2);
    // Write requests are refused from the listening port.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut wrq = packet::encode_rrq("upload.bin", "octet", &[]);
    wrq[1] = 2;
    sock.send_to(&wrq, f.addr).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Packet::decode(&buf[..n]).unwrap(),
        Packet::Error {
            code: 2,
            message: "read-only server".into()
        }
    );
    assert_eq!(f.server.stats.dropped.get(TftpDrop::RefusedWrite), 1);
}

#[tokio::test]
async fn netascii_and_generated_files() {
    let f = start(settings()).await;
    // Our client asks octet; send a netascii RRQ by hand.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&packet::encode_rrq("text.txt", "netascii", &[]), f.addr)
        .await
        .unwrap();
    let mut buf = [0u8; 600];
    let (n, from) = sock.recv_from(&mut buf).await.unwrap();
    assert_eq!(
        Packet::decode(&buf[..n]).unwrap(),
        Packet::Data {
            block: 1,
            data: b"a\r\nb\r\0c\r\n"
        }
    );
    sock.send_to(&packet::encode_ack(1), from).await.unwrap();
    let got = fetch(f.addr, "pxelinux.cfg/generated", &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(got.data, b"for 127.0.0.1\n");
}

#[tokio::test]
async fn garbage_is_counted_and_never_stops_the_server() {
    let f = start(settings()).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut bomb = packet::encode_rrq("1m.bin", "octet", &[]);
    for i in 0..200 {
        bomb.extend_from_slice(format!("opt{i}\0{i}\0").as_bytes());
    }
    let long_name = packet::encode_rrq(&"x".repeat(4000), "octet", &[]);
    for junk in [
        vec![],
        vec![0],
        vec![0, 99, 1],
        b"\x00\x01\x00octet\x00".to_vec(),
        bomb,
        long_name,
        vec![0xff; 1400],
    ] {
        sock.send_to(&junk, f.addr).await.unwrap();
    }
    let got = fetch(f.addr, "513.bin", &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(got.data.len(), 513);
    let malformed: u64 = f.server.stats.malformed_total();
    assert_eq!(malformed, 7);
}

#[tokio::test]
async fn events_and_probe_classification() {
    let f = start(settings()).await;
    let mut rx = f.bus.subscribe();
    fetch(
        f.addr,
        "512.bin",
        &FetchOptions {
            blksize: Some(1468),
            tsize: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut kinds = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        kinds.push(e.kind.clone());
        if matches!(e.kind, EventKind::TransferDone { .. }) {
            break;
        }
    }
    match &kinds[..] {
        [
            EventKind::TransferStarted {
                path,
                size: Some(512),
                blksize: Some(1468),
                windowsize: None,
                ..
            },
            EventKind::TransferDone { bytes: 512, .. },
        ] => assert_eq!(path, "512.bin"),
        other => panic!("{other:?}"),
    }
    // Intel UNDI's size probe: RRQ with tsize, read the OACK, abort.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(
        &packet::encode_rrq("1m.bin", "octet", &[("tsize", "0")]),
        f.addr,
    )
    .await
    .unwrap();
    let mut buf = [0u8; 600];
    let (n, from) = sock.recv_from(&mut buf).await.unwrap();
    assert_eq!(
        Packet::decode(&buf[..n]).unwrap(),
        Packet::Oack {
            options: vec![("tsize".into(), "1048576".into())]
        }
    );
    sock.send_to(
        &packet::encode_error(packet::ErrorCode::NotDefined, "TFTP Aborted"),
        from,
    )
    .await
    .unwrap();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let EventKind::TransferFailed { probe, .. } = e.kind {
            assert!(probe);
            break;
        }
    }
}

#[tokio::test]
async fn a_full_server_says_busy() {
    let f = start(TftpSettings {
        max_transfers: 1,
        ..settings()
    })
    .await;
    // Hold one transfer open: request and never ACK.
    let hog = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    hog.send_to(&packet::encode_rrq("1m.bin", "octet", &[]), f.addr)
        .await
        .unwrap();
    let mut buf = [0u8; 600];
    hog.recv_from(&mut buf).await.unwrap();
    match fetch(f.addr, "512.bin", &FetchOptions::default()).await {
        Err(FetchError::Server { code: 0, message }) => assert!(message.contains("busy")),
        other => panic!("{other:?}"),
    }
}
