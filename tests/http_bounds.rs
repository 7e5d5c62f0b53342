//! The boot HTTP server against clients that hold connections open
//! (issue 15): half-open connections are dropped after the header timeout,
//! a download nobody reads after the idle timeout, and over the connection
//! cap a client is refused at once instead of waiting. Real sockets on
//! loopback, through `Services::start`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pxedeck::config::Config;
use pxedeck::services::Services;

struct World {
    services: Option<Services>,
    _dir: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(s) = self.services.take() {
            s.cancel.cancel();
        }
    }
}

async fn start(http_extra: &str) -> (World, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nodes")).unwrap();
    // Sparse: a download far larger than any socket buffer, costing no disk.
    std::fs::File::create(dir.path().join("live.iso"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let text = format!(
        "server:\n  address: 127.0.0.1\n\
         dhcp:\n  mode: off\n  lease_file: {leases}\n\
         tftp:\n  port: 0\nhttp:\n  port: 0\n  api_listen: 127.0.0.1:0\n{http_extra}\
         boot_root: {root}\ninventory: {nodes}\n",
        leases = dir.path().join("leases.jsonl").display(),
        root = dir.path().display(),
        nodes = dir.path().join("nodes").display(),
    );
    let config = Config::from_text(&text, None).unwrap();
    let services = Services::start(config).await.unwrap();
    let http = services.bound.http;
    (
        World {
            services: Some(services),
            _dir: dir,
        },
        http,
    )
}

/// Blocking: reads until the server closes, or `limit` passes.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true, // reset
        }
    }
    false
}

fn healthz(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_dropped_and_the_cap_refuses_fast() {
    let (_world, addr) =
        start("  header_timeout: 1s\n  idle_timeout: 2s\n  max_connections: 50\n").await;
    tokio::task::spawn_blocking(move || {
        // 50 connections that send half a request line and stop.
        let mut half_open: Vec<TcpStream> = (0..50)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /hea").unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        // Over the cap: answered at once with 503, not left waiting.
        let started = Instant::now();
        let over = healthz(addr);
        assert!(over.starts_with("HTTP/1.1 503"), "{over:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // The header timeout frees the slots...
        for s in &mut half_open {
            assert!(
                closed_within(s, Duration::from_secs(4)),
                "a half-open connection outlived the header timeout"
            );
        }
        // ...and real requests are served again.
        let ok = healthz(addr);
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok:?}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_nobody_reads_is_dropped_after_the_idle_timeout() {
    let (_world, addr) = start("  header_timeout: 1s\n  idle_timeout: 2s\n").await;
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /live.iso HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // Read the head and a little, then stop reading: the server's
        // writes stall once the socket buffers are full.
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).unwrap();
        std::thread::sleep(Duration::from_secs(4));
        assert!(
            closed_within(&mut s, Duration::from_secs(30)),
            "a stalled download held its connection"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let (_world, addr) = start("  header_timeout: 1s\n  idle_timeout: 2s\n").await;
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(5)),
            "an idle keep-alive connection stayed open"
        );
    })
    .await
    .unwrap();
}

fn open_files() -> (u64, u64) {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_and_the_caps_fit_under_it() {
    use nix::sys::resource::{Resource, setrlimit};
    let (_, hard) = open_files();
    // The usual soft default, below the hard limit.
    setrlimit(Resource::RLIMIT_NOFILE, 1024.min(hard), hard).unwrap();
    let (_world, _) = start("").await;
    assert_eq!(open_files(), (hard, hard), "the soft limit was not raised");

    // With only 1024 descriptors, TFTP and HTTP full still leave a reserve
    // for the API, DHCP and the rest.
    let mut config = Config::from_text("", None).unwrap();
    let why = pxedeck::services::fit_to_open_files(&mut config, 1024).expect("lowered");
    assert!(why.contains("1024"), "{why}");
    let used = 2 * (config.tftp.max_transfers + config.http.max_connections) as u64;
    assert!(used + pxedeck::services::RESERVED_FILES <= 1024, "{used}");
    assert!(
        config.tftp.max_transfers >= 100,
        "{}",
        config.tftp.max_transfers
    );
    let mut config = Config::from_text("", None).unwrap();
    assert_eq!(
        pxedeck::services::fit_to_open_files(&mut config, 65536),
        None
    );
    assert_eq!(
        (config.tftp.max_transfers, config.http.max_connections),
        (1000, 1024)
    );
}

/// A GET of `path` on a fresh connection, with more header lines: the
/// body, after a 2xx head.
fn get_body(addr: SocketAddr, path: &str, headers: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let head = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(
        all.starts_with(b"HTTP/1.1 2"),
        "{:?}",
        String::from_utf8_lossy(&all[..head])
    );
    all.split_off(head)
}

/// A held boot file (kernel, initrd) leaves by sendfile from the page
/// cache, byte for byte what is on disk, whole and by range; with
/// `http.sendfile: false` every byte is copied, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_files_go_by_sendfile_unless_it_is_off() {
    let kernel: Vec<u8> = (0..(3 << 20) + 5)
        .map(|i: usize| (i * 31 % 253) as u8)
        .collect();
    for (extra, by_sendfile) in [("", true), ("  sendfile: false\n", false)] {
        let (world, addr) = start(extra).await;
        std::fs::write(world._dir.path().join("vmlinuz"), &kernel).unwrap();
        let files = world.services.as_ref().unwrap().http.files.clone();
        for _ in 0..2 {
            // The first GET reads it in, the second is served held.
            let got = tokio::task::spawn_blocking(move || get_body(addr, "/vmlinuz", ""))
                .await
                .unwrap();
            assert!(
                got == kernel,
                "the body differs from the file ({} bytes)",
                got.len()
            );
        }
        let range = "Range: bytes=1000-2000999\r\n";
        let part = tokio::task::spawn_blocking(move || get_body(addr, "/vmlinuz", range))
            .await
            .unwrap();
        assert!(part == kernel[1000..2_001_000], "the range differs");
        let sent = files.sent_from_disk();
        if by_sendfile {
            assert!(sent >= kernel.len() as u64, "only {sent} bytes by sendfile");
        } else {
            assert_eq!(sent, 0, "{extra}");
        }
    }
}

/// Not a check: MB/s for 64 MiB over the boot HTTP server with curl
/// (`cargo test --test http_bounds -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_of_64_mib() {
    let (_world, addr) = start("").await;
    let url = format!("http://{addr}/live.iso");
    let mut rates = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-r", "0-67108863"])
                .args(["-w", "%{speed_download}", &url])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let bytes_per_s: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        rates.push(bytes_per_s / 1e6);
    }
    println!("http 64 MiB with curl: {rates:.0?} MB/s");
}
