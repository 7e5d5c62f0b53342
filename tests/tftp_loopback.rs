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
    let generator: pxedeck::tftp::Generator = Arc::new(|asked: &pxedeck::tftp::Asked<'_>| {
        (asked.path == "pxelinux.cfg/generated")
            .then(|| format!("for {} from {}\n", asked.client, asked.local).into_bytes())
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
        ..TftpSettings::default()
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

/// A transfer reads its client's packets into a small buffer (ACKs and
/// ERRORs fit a frame): an oversized ERROR is cut, read as an ERROR, and
/// ends the transfer as the client asked.
#[tokio::test]
async fn an_oversized_client_error_still_ends_the_transfer() {
    use std::sync::atomic::Ordering;
    let f = start(settings()).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&packet::encode_rrq("1m.bin", "octet", &[]), f.addr)
        .await
        .unwrap();
    let mut buf = [0u8; 600];
    let (_, from) = sock.recv_from(&mut buf).await.unwrap();
    let mut error = packet::encode_error(packet::ErrorCode::NotDefined, &"x".repeat(4000));
    error.truncate(error.len() - 1); // and no terminator either
    sock.send_to(&error, from).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while f.server.stats.failed.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the transfer went on"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.server.stats.malformed_total(), 0);
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
    assert_eq!(got.data, b"for 127.0.0.1 from 127.0.0.1\n");
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

// ---- issue 15: bounds a hostile segment must not break -------------------

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The memory tests measure the whole process: one at a time.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A sparse file: any size, no disk.
fn sparse(f: &Fixture, name: &str, len: u64) {
    let file = std::fs::File::create(f._root.path().join(name)).unwrap();
    file.set_len(len).unwrap();
}

/// A raw client in the middle of a transfer: it asked, got the first
/// window, and holds the transfer open until dropped.
struct Holding {
    sock: tokio::net::UdpSocket,
    from: SocketAddr,
}

/// Requests `name` with `options`, acknowledges the OACK and then `acks`
/// windows of data, and returns without finishing.
async fn hold_transfer(
    server: SocketAddr,
    name: &str,
    mode: &str,
    options: &[(&str, &str)],
    acks: usize,
) -> Holding {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&packet::encode_rrq(name, mode, options), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut from = server;
    let mut acked = 0;
    while acked <= acks {
        let (n, peer) = tokio::time::timeout(Duration::from_secs(20), sock.recv_from(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        from = peer;
        match Packet::decode(&buf[..n]).unwrap() {
            Packet::Oack { .. } => sock.send_to(&packet::encode_ack(0), from).await.unwrap(),
            Packet::Data { block, .. } => {
                acked += 1;
                sock.send_to(&packet::encode_ack(block), from)
                    .await
                    .unwrap()
            }
            other => panic!("{other:?}"),
        };
    }
    Holding { sock, from }
}

/// Waits until the server has let go of every transfer (and its memory).
async fn all_ended(f: &Fixture) {
    for _ in 0..250 {
        if f.server.active_transfers() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} transfers still running", f.server.active_transfers());
}

impl Holding {
    async fn abort(self) {
        let _ = self
            .sock
            .send_to(
                &packet::encode_error(packet::ErrorCode::NotDefined, "done"),
                self.from,
            )
            .await;
    }
}

#[tokio::test]
async fn files_past_the_cache_stream_in_bounded_memory() {
    let _one = MEMORY.lock().await;
    let f = start(settings()).await;
    // Past the cache's 192 MiB per-file limit: before, each transfer read
    // the whole file into a buffer of its own.
    sparse(&f, "live.img", 300 << 20);
    let before = status_kib("VmRSS");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            hold_transfer(
                f.addr,
                "live.img",
                "octet",
                &[("blksize", "1468"), ("windowsize", "16")],
                4,
            )
            .await,
        );
    }
    let grown_mib = status_kib("VmRSS").saturating_sub(before) / 1024;
    eprintln!("RSS {} -> {} MiB", before / 1024, before / 1024 + grown_mib);
    assert_eq!(f.server.active_transfers(), 4);
    for h in held {
        h.abort().await;
    }
    all_ended(&f).await;
    assert!(
        grown_mib < 64,
        "4 transfers of a 300 MiB file grew RSS by {grown_mib} MiB"
    );
}

#[tokio::test]
async fn netascii_converts_on_the_fly_without_a_copy_per_transfer() {
    let _one = MEMORY.lock().await;
    let f = start(settings()).await;
    // Small enough to be held in the cache (once, 100 MiB, legitimately);
    // before, netascii also copied it whole for every transfer.
    sparse(&f, "big.txt", 100 << 20);
    let before = status_kib("VmRSS");
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(hold_transfer(f.addr, "big.txt", "netascii", &[("blksize", "1468")], 4).await);
    }
    let grown_mib = status_kib("VmRSS").saturating_sub(before) / 1024;
    eprintln!("RSS {} -> {} MiB", before / 1024, before / 1024 + grown_mib);
    for h in held {
        h.abort().await;
    }
    all_ended(&f).await;
    assert!(
        grown_mib < 100 + 64,
        "5 netascii transfers of a 100 MiB file grew RSS by {grown_mib} MiB"
    );
}

#[tokio::test]
async fn a_client_acking_every_block_gets_each_block_about_once() {
    let f = start(settings()).await;
    // 715 blocks of 512 bytes, as measured in issue 15.
    let size = 714 * 512 + 100;
    std::fs::write(f._root.path().join("715.bin"), pattern(size)).unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(
        &packet::encode_rrq("715.bin", "octet", &[("windowsize", "64")]),
        f.addr,
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let (mut data_packets, mut next, mut got) = (0u64, 1u64, Vec::new());
    loop {
        let wait = if got.len() == size {
            Duration::from_millis(500) // count the stragglers, then stop
        } else {
            Duration::from_secs(5)
        };
        let Ok(r) = tokio::time::timeout(wait, sock.recv_from(&mut buf)).await else {
            break;
        };
        let (n, from) = r.unwrap();
        match Packet::decode(&buf[..n]).unwrap() {
            Packet::Oack { .. } => sock.send_to(&packet::encode_ack(0), from).await.unwrap(),
            Packet::Data { block, data } => {
                data_packets += 1;
                if u64::from(block) == next & 0xffff {
                    got.extend_from_slice(data);
                    next += 1;
                }
                // ACK every block received, in order or not.
                sock.send_to(&packet::encode_ack(((next - 1) & 0xffff) as u16), from)
                    .await
                    .unwrap()
            }
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(got, pattern(size));
    assert!(
        data_packets <= 715 * 5 / 4,
        "{data_packets} DATA packets for a 715-block file"
    );
}

#[tokio::test]
async fn clients_that_leave_cannot_take_every_slot() {
    let f = start(settings()).await; // 100 transfers in all
    // An attacker on one address asks the longest timeout 100 times (a
    // new port each time) and never answers.
    let mut hogs = Vec::new();
    let mut oack_timeouts = Vec::new();
    for _ in 0..100 {
        let hog = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        hog.send_to(
            &packet::encode_rrq("1m.bin", "octet", &[("timeout", "255")]),
            f.addr,
        )
        .await
        .unwrap();
        hogs.push(hog);
    }
    let mut buf = vec![0u8; 65536];
    for hog in &hogs {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), hog.recv_from(&mut buf))
            .await
            .expect("every request is answered")
            .unwrap();
        match Packet::decode(&buf[..n]).unwrap() {
            Packet::Oack { options } => oack_timeouts.extend(
                options
                    .into_iter()
                    .filter(|(k, _)| k == "timeout")
                    .map(|(_, v)| v),
            ),
            // No OACK at all: the only option asked was refused.
            Packet::Data { block: 1, .. } => {}
            Packet::Error { message, .. } => assert!(message.contains("too many"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        !oack_timeouts.iter().any(|t| t == "255"),
        "a 255 s timeout was granted"
    );
    assert!(
        f.server.active_transfers() <= 8,
        "{} transfers held by one address",
        f.server.active_transfers()
    );
    // A real machine on another address is still served.
    let got = fetch(
        f.addr,
        "513.bin",
        &FetchOptions {
            bind: Some("127.0.0.2".parse().unwrap()),
            ..FetchOptions::default()
        },
    )
    .await
    .expect("a legitimate client is served");
    assert_eq!(got.data, pattern(513));
}

/// Not a check: MB/s for a 64 MiB file, held in memory and streamed from
/// disk (`cargo test --test tftp_loopback -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_of_a_64_mib_file() {
    for (label, cache) in [
        ("held", pxedeck::filecache::FileCache::default()),
        ("streamed", pxedeck::filecache::FileCache::new(0, 0)),
    ] {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("64m.bin"), pattern(64 << 20)).unwrap();
        let server = Arc::new(
            TftpServer::new(
                settings(),
                BootFs::new([root.path().to_path_buf()]),
                Bus::default(),
                Arc::new(ProgressTable::default()),
                None,
            )
            .sharing_cache(Arc::new(cache)),
        );
        let socket = udp_socket("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
        let addr = socket.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(server.clone().serve(socket, cancel.clone()));
        for (blksize, windowsize) in [(1468, 1), (1468, 16), (8192, 16)] {
            let opts = FetchOptions {
                blksize: Some(blksize),
                windowsize: Some(windowsize),
                keep: false,
                ..FetchOptions::default()
            };
            fetch(addr, "64m.bin", &opts).await.unwrap(); // warm
            let t = std::time::Instant::now();
            let got = fetch(addr, "64m.bin", &opts).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(got.bytes, 64 << 20);
            println!(
                "tftp {label} blksize {blksize} window {windowsize}: {:.1} MB/s",
                64.0 * 1.048576 / secs
            );
        }
        cancel.cancel();
    }
}

/// The GRUB chain over real sockets: a pxedeck started as `serve` starts
/// it serves the signed loaders under the names DHCP offers, the entry
/// `grub/grub.cfg`, each machine's generated config (with live capability
/// tokens the HTTP side accepts), and turns GRUB's failure report into a
/// failed step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grub_configs_are_generated_per_machine_over_tftp() {
    use pxedeck::config::Config;
    use pxedeck::model::MachineState;
    use pxedeck::services::Services;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["boot/debian", "nodes/_profiles", "nodes/lab", "pkg"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("pkg/shim.signed"), b"signed shim").unwrap();
    std::fs::write(d.join("pkg/grub.signed"), b"signed grub").unwrap();
    std::fs::write(
        d.join("nodes/_profiles/sb.yaml"),
        "secure_boot: true\nboot:\n  kernel: debian/vmlinuz\n  initrd: debian/initrd.gz\n  \
         cmdline: console=ttyS0 pxedeck.config={{ config_url }}/marker pxedeck.done={{ done_url }}\n\
         configs:\n  marker: \"hello {{ hostname }}\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("nodes/lab/sb-1.yaml"),
        "mac: \"52:54:00:5b:00:01\"\nprofile: sb\ninstall: true\n",
    )
    .unwrap();
    // Pre-seeded from a purchase order: known by serial alone.
    std::fs::write(
        d.join("nodes/lab/po-7.yaml"),
        "serial: \"PO-7 SN/42\"\nprofile: sb\ninstall: true\n",
    )
    .unwrap();
    let config = Config::from_text(
        &format!(
            "server:\n  address: 127.0.0.1\n\
             dhcp:\n  mode: off\n  lease_file: {d}/leases.jsonl\n\
             tftp:\n  port: 0\n\
             http:\n  port: 0\n  api_listen: 127.0.0.1:0\n  api_token: t0ken\n  \
             config_allow: [127.0.0.0/8]\n\
             unknown:\n  policy: hold\n  loader: grub\n\
             loaders:\n  shim_x64: {d}/pkg/shim.signed\n  grub_x64: {d}/pkg/grub.signed\n\
             boot_root: {d}/boot\ninventory: {d}/nodes\n",
            d = d.display()
        ),
        None,
    )
    .unwrap();
    let services = Services::start(config).await.unwrap();
    let tftp = services.bound.tftp;
    let get = |name: &'static str| async move {
        let got = fetch(tftp, name, &FetchOptions::default()).await;
        String::from_utf8(got.unwrap_or_else(|e| panic!("{name}: {e}")).data).unwrap()
    };

    assert_eq!(get("shimx64.efi").await, "signed shim");
    assert_eq!(
        get("/grubx64.efi").await,
        "signed grub",
        "as shim asks for it"
    );
    let entry = get("/grub/grub.cfg").await;
    assert!(
        entry.contains("source (tftp,127.0.0.1)/grub/machine/${net_default_mac}.cfg"),
        "{entry}"
    );

    let own = get("/grub/machine/52:54:00:5b:00:01.cfg").await;
    assert!(
        own.contains("echo 'pxedeck: 52:54:00:5b:00:01 is sb-1, booting sb'"),
        "{own}"
    );
    assert!(
        own.contains("if linux '(tftp,127.0.0.1)/debian/vmlinuz' 'console=ttyS0'"),
        "{own}"
    );
    assert!(
        !own.contains("pxedeck-capability"),
        "slots filled per fetch:\n{own}"
    );
    // The installer (Linux, over HTTP) fetches its config with the token.
    let config_url = own
        .split('\'')
        .find_map(|w| w.strip_prefix("pxedeck.config="))
        .expect("a config URL on the command line")
        .to_string();
    let opts = pxedeck::http::client::Options::default();
    let marker = pxedeck::http::client::get_text(&config_url, &opts)
        .await
        .unwrap();
    assert_eq!(marker, "hello sb-1");
    let again = get("/grub/machine/52:54:00:5b:00:01.cfg").await;
    assert_ne!(own, again, "each fetch is a boot with tokens of its own");

    let held = get("/grub/machine/52:54:00:99:00:01.cfg").await;
    assert!(held.contains("is not in the inventory"), "{held}");
    assert!(
        held.contains("source \"(tftp,127.0.0.1)/grub/serial/52:54:00:99:00:01/${pxedeck_claim}\""),
        "an unknown MAC asks by its SMBIOS serial first:\n{held}"
    );

    // What that prelude fetches for a machine known by serial alone: its
    // install config, with tokens bound to the MAC that asked, which the
    // HTTP side honours (one binding table for both chains).
    let claimed = get("/grub/serial/52:54:00:99:00:07/PO-7 SN/42").await;
    assert!(
        claimed.contains("echo 'pxedeck: 52:54:00:99:00:07 is po-7, booting sb'"),
        "{claimed}"
    );
    assert!(!claimed.contains("smbios"), "{claimed}");
    let po_config = claimed
        .split('\'')
        .find_map(|w| w.strip_prefix("pxedeck.config="))
        .expect("a config URL on the command line")
        .to_string();
    assert_eq!(
        pxedeck::http::client::get_text(&po_config, &opts)
            .await
            .unwrap(),
        "hello po-7"
    );
    // A machine its MAC names stays itself whatever serial it claims; a
    // placeholder or an overlong value names nothing, and says why.
    let wire_wins = get("/grub/serial/52:54:00:5b:00:01/PO-7 SN/42").await;
    assert!(wire_wins.contains("is sb-1, booting sb"), "{wire_wins}");
    for (value, why) in [
        (
            "To be filled by O.E.M.",
            "no machine in the inventory has it",
        ),
        ("NOPE-1", "no machine in the inventory has it"),
        (&*"S".repeat(65), "at most 64"),
    ] {
        let name = format!("/grub/serial/52:54:00:99:00:07/{value}");
        let got = fetch(tftp, &name, &FetchOptions::default()).await.unwrap();
        let answer = String::from_utf8(got.data).unwrap();
        assert!(answer.starts_with("# pxedeck: serial claim: "), "{answer}");
        assert!(answer.contains(why), "{value}: {answer}");
    }
    let noted = get("/grub/failed/52:54:00:5b:00:01/kernel").await;
    assert!(noted.contains("kernel failed"), "{noted}");
    for bad in [
        "/grub/machine/nonsense.cfg",
        "/grub/failed/52:54:00:5b:00:01/x",
    ] {
        assert!(
            matches!(
                fetch(tftp, bad, &FetchOptions::default()).await,
                Err(FetchError::Server { .. })
            ),
            "{bad}"
        );
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (steps, state, error, chain) = {
            let model = services.live.lock();
            let row = model.machine(&"52:54:00:5b:00:01".parse().unwrap());
            (
                row.map(|r| r.timeline.iter().map(|s| s.what()).collect::<Vec<_>>())
                    .unwrap_or_default(),
                row.map(|r| r.state),
                row.and_then(|r| r.last_error.clone()),
                row.and_then(|r| r.chain),
            )
        };
        let wanted = ["grub.cfg install (sb)", "GRUB kernel failed"];
        if wanted.iter().all(|w| steps.iter().any(|s| s == w))
            || tokio::time::Instant::now() > deadline
        {
            assert!(
                steps.iter().any(|s| s == "grub.cfg install (sb)"),
                "{steps:?}"
            );
            assert!(steps.iter().any(|s| s == "GRUB kernel failed"), "{steps:?}");
            assert!(
                !steps.iter().any(|s| s.contains("/grub/")),
                "generated files are not transfers: {steps:?}"
            );
            assert_eq!(state, Some(MachineState::Failed));
            assert!(error.unwrap_or_default().contains("not signed"));
            assert_eq!(chain, Some(pxedeck::boot::decide::Chain::Grub));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    services.shutdown().await;
}
