//! pxedeck's TFTP server against real, independent clients — tftp-hpa,
//! atftp and curl — across a veth pair between two network namespaces.
//! Root only; skipped (loudly) where namespaces are unavailable.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::Lab;
use pxedeck::bootfs::BootFs;
use pxedeck::event::Bus;
use pxedeck::net::{UdpOptions, udp_socket};
use pxedeck::progress::ProgressTable;
use pxedeck::tftp::server::TftpDrop;
use pxedeck::tftp::transfer::Limits;
use pxedeck::tftp::{TftpServer, TftpSettings};

const SIZES: [(&str, usize); 6] = [
    ("0.bin", 0),
    ("511.bin", 511),
    ("512.bin", 512),
    ("513.bin", 513),
    ("1m.bin", 1 << 20),
    ("64m.bin", 64 << 20),
];

fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

struct Setup {
    lab: Lab,
    root: tempfile::TempDir,
    out: tempfile::TempDir,
    _server: common::ServerThread,
    server: Arc<TftpServer>,
}

fn setup() -> Setup {
    let lab = Lab::new();
    let root = tempfile::tempdir().unwrap();
    for (name, len) in SIZES {
        std::fs::write(root.path().join(name), pattern(len)).unwrap();
    }
    std::fs::write(root.path().join("secret-outside"), "x").unwrap();
    let server = Arc::new(TftpServer::new(
        TftpSettings {
            limits: Limits::default(),
            max_transfers: 100,
            single_port: false,
            ..TftpSettings::default()
        },
        BootFs::new([root.path().to_path_buf()]),
        Bus::default(),
        Arc::new(ProgressTable::default()),
        None,
    ));
    let addr = std::net::SocketAddr::from((lab.server_ip, 69));
    let s = server.clone();
    let thread = lab.serve(move |cancel| async move {
        let socket = udp_socket(
            addr,
            &UdpOptions {
                buffer: 4 << 20,
                ..Default::default()
            },
        )
        .expect("bind 69 in the lab");
        s.serve(socket, cancel).await;
    });
    std::thread::sleep(Duration::from_millis(100));
    Setup {
        lab,
        root,
        out: tempfile::tempdir().unwrap(),
        _server: thread,
        server,
    }
}

fn same_file(got: &Path, name: &str, len: usize, client: &str) {
    let data =
        std::fs::read(got).unwrap_or_else(|e| panic!("{client} {name}: no output file: {e}"));
    assert!(
        data == pattern(len),
        "{client} {name}: got {} bytes, want {len} (content differs)",
        data.len()
    );
}

fn out_path(s: &Setup, client: &str, name: &str) -> PathBuf {
    s.out.path().join(format!("{client}-{name}"))
}

#[test]
fn tftp_hpa_fetches_every_size_byte_exact() {
    require_netns!();
    assert!(
        common::have("tftp"),
        "tftp-hpa is not installed (.ci/run installs it)"
    );
    let s = setup();
    let server = s.lab.server_ip.to_string();
    for (name, len) in SIZES {
        let out = out_path(&s, "hpa", name);
        let o = s.lab.client(
            120,
            &[
                "tftp",
                "-m",
                "binary",
                &server,
                "-c",
                "get",
                name,
                out.to_str().unwrap(),
            ],
        );
        // tftp-hpa exits 0 even on errors: the file is the verdict.
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        same_file(&out, name, len, "tftp-hpa");
    }
}

#[test]
fn atftp_with_blksize_tsize_and_windowsize() {
    require_netns!();
    assert!(
        common::have("atftp"),
        "atftp is not installed (.ci/run installs it)"
    );
    let s = setup();
    let server = s.lab.server_ip.to_string();
    for opts in [
        &["--option", "blksize 1468", "--option", "tsize 0"][..],
        &["--option", "blksize 1468", "--option", "windowsize 16"][..],
        &["--option", "blksize 512"][..],
    ] {
        for (name, len) in SIZES {
            let out = out_path(&s, "atftp", name);
            let _ = std::fs::remove_file(&out);
            let mut cmd = vec!["atftp"];
            cmd.extend_from_slice(opts);
            cmd.extend_from_slice(&["-g", "-r", name, "-l", out.to_str().unwrap(), &server]);
            let o = s.lab.client(120, &cmd);
            assert!(
                o.status.success(),
                "atftp {opts:?} {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            same_file(&out, name, len, &format!("atftp {opts:?}"));
        }
    }
}

#[test]
fn curl_with_blksize() {
    require_netns!();
    let s = setup();
    for (name, len) in SIZES {
        let out = out_path(&s, "curl", name);
        let url = format!("tftp://{}/{name}", s.lab.server_ip);
        // curl 7.88 rejects an OACK carrying tsize 0 (an empty file): a curl
        // bug, so the empty file is fetched without options.
        let opts: &[&str] = if len == 0 {
            &["--tftp-no-options"]
        } else {
            &["--tftp-blksize", "1468"]
        };
        let mut cmd = vec!["curl", "-sS", "-o", out.to_str().unwrap()];
        cmd.extend_from_slice(opts);
        cmd.push(&url);
        let o = s.lab.client(120, &cmd);
        assert!(
            o.status.success(),
            "curl {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        same_file(&out, name, len, "curl");
    }
}

#[test]
fn traversal_and_writes_are_refused_to_real_clients() {
    require_netns!();
    let s = setup();
    let server = s.lab.server_ip.to_string();
    let out = out_path(&s, "hpa", "passwd");
    let o = s.lab.client(
        20,
        &[
            "tftp",
            "-m",
            "binary",
            &server,
            "-c",
            "get",
            "../../../../etc/passwd",
            out.to_str().unwrap(),
        ],
    );
    let said = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("Error code 2"), "tftp-hpa: {said}");
    assert!(
        std::fs::metadata(&out)
            .map(|m| m.len() == 0)
            .unwrap_or(true),
        "nothing leaked"
    );
    let o = s.lab.client(
        20,
        &[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            &format!("tftp://{server}//etc/passwd"),
        ],
    );
    assert!(
        !o.status.success(),
        "curl must fail on an absolute path outside the root"
    );
    // A write attempt: refused, and nothing appears in the root.
    let upload = s.out.path().join("upload.bin");
    std::fs::write(&upload, b"payload").unwrap();
    let o = s.lab.client(
        20,
        &[
            "atftp",
            "-p",
            "-l",
            upload.to_str().unwrap(),
            "-r",
            "upload.bin",
            &server,
        ],
    );
    assert!(!o.status.success(), "atftp put must fail");
    assert!(!s.root.path().join("upload.bin").exists());
    assert!(s.server.stats.dropped.get(TftpDrop::RefusedWrite) >= 1);
}
