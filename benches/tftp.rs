//! TFTP throughput: pxedeck against tftpd-hpa and dnsmasq in one run, same
//! clients, same namespaces (root only: `cargo bench --bench tftp`).
//!
//! - one 64 MiB transfer at blksize 1468 (curl), median of 3;
//! - atftp lock-step at blksize 512 against windowsize 16 (pxedeck only;
//!   tftpd-hpa has no windowsize);
//! - N concurrent transfers of an 8 MiB file (curl, blksize 1468) for N in
//!   1, 10, 50, 200: aggregate MB/s, failures, server CPU seconds per GB.
//!
//! Server CPU is read from /proc (utime+stime, children included) for the
//! peers and from getrusage for pxedeck, which runs in this process while the
//! clients are separate processes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pxedeck::bootfs::BootFs;
use pxedeck::event::Bus;
use pxedeck::net::{UdpOptions, udp_socket};
use pxedeck::progress::ProgressTable;
use pxedeck::tftp::transfer::Limits;
use pxedeck::tftp::{TftpServer, TftpSettings};

enum Server {
    /// In this process; the thread stops the server when dropped.
    Pxedeck {
        _thread: common::ServerThread,
    },
    Process(Child),
}

impl Server {
    /// CPU seconds the server has used so far.
    fn cpu(&self) -> f64 {
        match self {
            Server::Pxedeck { .. } => {
                let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
                    .unwrap();
                let t =
                    |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
                t(u.user_time()) + t(u.system_time())
            }
            Server::Process(child) => proc_cpu(child.id()),
        }
    }
}

/// utime + stime + cutime + cstime of a process tree root, in seconds.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields after the command: state is [0]; utime [11], stime [12], cutime [13], cstime [14].
    (f.get(11).unwrap_or(&0.0)
        + f.get(12).unwrap_or(&0.0)
        + f.get(13).unwrap_or(&0.0)
        + f.get(14).unwrap_or(&0.0))
        / 100.0
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Process(c) = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(name: &str, lab: &common::Lab, root: &std::path::Path) -> Server {
    let addr = std::net::SocketAddr::from((lab.server_ip, 69));
    let srv = match name {
        "pxedeck" => {
            let server = Arc::new(TftpServer::new(
                TftpSettings {
                    limits: Limits::default(),
                    max_transfers: 1000,
                    // The concurrency runs fetch from one client address.
                    max_per_client: 1000,
                    single_port: false,
                },
                BootFs::new([root.to_path_buf()]),
                Bus::default(),
                Arc::new(ProgressTable::default()),
                None,
            ));
            Server::Pxedeck {
                _thread: lab.serve(move |cancel| async move {
                    let socket = udp_socket(
                        addr,
                        &UdpOptions {
                            buffer: 8 << 20,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    server.serve(socket, cancel).await;
                }),
            }
        }
        "tftpd-hpa" => Server::Process(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &lab.server_ns,
                    "in.tftpd",
                    "-L",
                    "-s",
                    "-u",
                    "root",
                    "-a",
                    &addr.to_string(),
                    root.to_str().unwrap(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("in.tftpd"),
        ),
        "dnsmasq" => Server::Process(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &lab.server_ns,
                    "dnsmasq",
                    "-k",
                    "--conf-file=/dev/null",
                    "--port=0",
                    "--enable-tftp",
                    "--tftp-max=1000",
                ])
                .arg(format!("--tftp-root={}", root.display()))
                .arg(format!("--listen-address={}", lab.server_ip))
                .args(["--bind-interfaces", "--user=root", "--pid-file="])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq"),
        ),
        _ => unreachable!(),
    };
    std::thread::sleep(Duration::from_millis(300));
    srv
}

/// One concurrency level: (N, aggregate MB/s, failures, CPU s/GB).
type Row = (usize, f64, usize, f64);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds for one client command; panics on failure.
fn timed(lab: &common::Lab, cmd: &[&str]) -> f64 {
    let t = Instant::now();
    let o = lab.client(300, cmd);
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    t.elapsed().as_secs_f64()
}

/// Median seconds of `runs` runs of a client command.
fn median_time(lab: &common::Lab, runs: usize, cmd: &[&str]) -> f64 {
    median((0..runs).map(|_| timed(lab, cmd)).collect())
}

/// `n` concurrent curl fetches of 8m.bin: (aggregate MB/s, failures, CPU s/GB).
fn concurrent(lab: &common::Lab, server: &Server, n: usize) -> (f64, usize, f64) {
    let url = format!("tftp://{}/8m.bin", lab.server_ip);
    let script = format!(
        "fails=0; for i in $(seq 1 {n}); do curl -s --tftp-blksize 1468 -o /dev/null {url} & done; \
         for j in $(jobs -p); do wait $j || fails=$((fails+1)); done; echo $fails"
    );
    let cpu0 = server.cpu();
    let t = Instant::now();
    let o = lab.client(600, &["bash", "-c", &script]);
    let secs = t.elapsed().as_secs_f64();
    let cpu = server.cpu() - cpu0;
    let fails: usize = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(n);
    let gb = (n - fails) as f64 * 8.0 / 1024.0;
    (
        (n - fails) as f64 * 8.0 / secs,
        fails,
        if gb > 0.0 { cpu / gb } else { f64::NAN },
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = common::unavailable() {
        eprintln!("SKIPPED tftp bench: {why} (needs root for network namespaces)");
        return;
    }
    let lab = common::Lab::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let data: Vec<u8> = (0..64usize << 20)
        .map(|i| (i * 31 + (i >> 13)) as u8)
        .collect();
    std::fs::write(root.path().join("64m.bin"), &data).unwrap();
    std::fs::write(root.path().join("8m.bin"), &data[..8 << 20]).unwrap();
    let runs = 3;
    println!("TFTP benchmark — 2 cores, veth between two namespaces; medians of {runs} runs\n");
    let mut single = Vec::new();
    let mut conc: Vec<(&str, Vec<Row>)> = Vec::new();
    for name in ["pxedeck", "tftpd-hpa", "dnsmasq"] {
        let server = start(name, &lab, root.path());
        let url = format!("tftp://{}/64m.bin", lab.server_ip);
        let secs = median_time(
            &lab,
            runs,
            &[
                "curl",
                "-s",
                "--tftp-blksize",
                "1468",
                "-o",
                "/dev/null",
                &url,
            ],
        );
        single.push((name, 64.0 / secs));
        if name == "pxedeck" {
            let ip = lab.server_ip.to_string();
            let lock = median_time(
                &lab,
                runs,
                &[
                    "atftp",
                    "--option",
                    "blksize 512",
                    "-g",
                    "-r",
                    "64m.bin",
                    "-l",
                    "/dev/null",
                    &ip,
                ],
            );
            let win = median_time(
                &lab,
                runs,
                &[
                    "atftp",
                    "--option",
                    "blksize 512",
                    "--option",
                    "windowsize 16",
                    "-g",
                    "-r",
                    "64m.bin",
                    "-l",
                    "/dev/null",
                    &ip,
                ],
            );
            println!(
                "atftp 64 MiB, blksize 512: lock-step {:.1} MB/s, windowsize 16 {:.1} MB/s — {:.1}×\n",
                64.0 / lock,
                64.0 / win,
                lock / win
            );
        }
        let mut rows = Vec::new();
        for n in [1, 10, 50, 200] {
            let samples: Vec<(f64, usize, f64)> =
                (0..runs).map(|_| concurrent(&lab, &server, n)).collect();
            let fails = samples.iter().map(|s| s.1).max().unwrap_or(0);
            rows.push((
                n,
                median(samples.iter().map(|s| s.0).collect()),
                fails,
                median(samples.iter().map(|s| s.2).collect()),
            ));
        }
        conc.push((name, rows));
        drop(server);
        std::thread::sleep(Duration::from_millis(200));
    }
    let base = single[0].1;
    println!("one 64 MiB transfer, curl blksize 1468:");
    for (name, rate) in &single {
        println!(
            "  {name:<10} {rate:7.1} MB/s   pxedeck/peer {:.2}",
            base / rate
        );
    }
    println!(
        "\nconcurrent 8 MiB transfers (curl, blksize 1468): aggregate MB/s / failures / server CPU s per GB"
    );
    print!("  {:>5}", "N");
    for (name, _) in &conc {
        print!(" | {name:^26}");
    }
    println!();
    for i in 0..4 {
        print!("  {:>5}", conc[0].1[i].0);
        for (_, rows) in &conc {
            let (_, rate, fails, cpu) = rows[i];
            print!(" | {rate:8.1} MB/s {fails:>3} {cpu:6.2} s/GB");
        }
        println!();
    }
    println!(
        "\n(peer CPU comes from /proc of the server process and its reaped children;\n tftpd-hpa's forked transfer processes are not reaped into it, so its column reads ~0)"
    );
}
