//! Network namespaces for tests that need real peers (root only).
//!
//! A `Lab` is a pair of namespaces joined by a veth pair on a private
//! 10.77.N.0/24 segment that exists only inside them. Server sockets are
//! created from a thread that has entered the server namespace, so the
//! server under test runs in this process while its traffic stays inside
//! the lab; clients run as subprocesses with `ip netns exec`. `Drop` kills
//! whatever still runs in the namespaces and deletes them; a new `Lab` also
//! removes leftovers of crashed runs.

#![allow(dead_code)]

pub mod firmware;
pub mod ipmi_sim;
pub mod linux;
pub mod segment;

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_util::sync::CancellationToken;

/// The prefix of every namespace the tests create: `pxdt`, or
/// `PXEDECK_NETNS_PREFIX` (2–8 lower-case letters or digits) where several
/// worktrees share one machine and each keeps to names of its own.
pub fn prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        std::env::var("PXEDECK_NETNS_PREFIX")
            .ok()
            .filter(|p| {
                (2..=8).contains(&p.len())
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
            .unwrap_or_else(|| "pxdt".into())
    })
}

pub struct Lab {
    pub server_ns: String,
    pub client_ns: String,
    pub server_ip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> std::io::Result<Output> {
    Command::new("ip").args(args).stdin(Stdio::null()).output()
}

fn must(args: &[&str]) {
    let out = ip(args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why this machine cannot run namespace tests, if it cannot. Probed once
/// per test process: parallel tests must not race on the probe's name
/// (a race once made them skip where namespaces work).
pub fn unavailable() -> Option<String> {
    static ANSWER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ANSWER.get_or_init(probe).clone()
}

fn probe() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    let probe = format!("{}-probe-{}", prefix(), std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(o) if o.status.success() => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Ok(o) => Some(format!(
            "ip netns add failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("no `ip` command: {e}")),
    }
}

/// Returns early from a test, loudly, where the kernel forbids namespaces.
#[macro_export]
macro_rules! require_netns {
    () => {
        if let Some(why) = common::unavailable() {
            eprintln!(
                "SKIPPED {}: network namespaces unavailable ({why})",
                module_path!()
            );
            return;
        }
    };
}

/// Turns TX checksum offload off, so UDP checksums are filled in as on a
/// real wire: old clients and firmware check them.
pub fn wire_checksums(ns: &str, dev: &str) {
    let _ = Command::new("ip")
        .args(["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"])
        .output();
}

/// Writes a script and makes it executable.
pub fn write_executable(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A child process (a peer server) killed when the test ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a command exists; tests of real clients need them installed.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn cleanup_stale() {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        // Names are pxdt-<pid>-<n>-{s,c}: remove those whose test process is gone.
        let mut parts = name.split('-');
        if parts.next() != Some(prefix()) {
            continue;
        }
        let Some(pid) = parts.next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        kill_all(name);
        let _ = ip(&["netns", "del", name]);
    }
}

fn kill_all(ns: &str) {
    if let Ok(out) = ip(&["netns", "pids", ns]) {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

static NEXT: AtomicU32 = AtomicU32::new(1);

impl Lab {
    pub fn new() -> Lab {
        cleanup_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // A distinct /24 per lab in this process, so labs can run in parallel.
        let net = (pid % 200 + n * 7) % 250 + 1;
        let lab = Lab {
            server_ns: format!("{}-{pid}-{n}-s", prefix()),
            client_ns: format!("{}-{pid}-{n}-c", prefix()),
            server_ip: Ipv4Addr::new(10, 77, net as u8, 1),
            client_ip: Ipv4Addr::new(10, 77, net as u8, 2),
        };
        for ns in [&lab.server_ns, &lab.client_ns] {
            must(&["netns", "add", ns]);
            must(&["-n", ns, "link", "set", "lo", "up"]);
        }
        must(&[
            "-n",
            &lab.server_ns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &lab.client_ns,
        ]);
        for (ns, addr) in [
            (&lab.server_ns, lab.server_ip),
            (&lab.client_ns, lab.client_ip),
        ] {
            must(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            must(&["-n", ns, "link", "set", "eth0", "up"]);
            wire_checksums(ns, "eth0");
        }
        lab
    }

    /// Runs a server inside the server namespace: a thread enters it and
    /// builds a tokio runtime there, so every socket the server creates —
    /// including per-transfer ones — lives in the lab. Stops on drop.
    pub fn serve<F, Fut>(&self, make: F) -> ServerThread
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let path = format!("/run/netns/{}", self.server_ns);
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let join = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let _ = ready_tx.send(());
            rt.block_on(make(token));
        });
        ready_rx.recv().expect("server thread started");
        ServerThread {
            cancel,
            join: Some(join),
        }
    }

    /// Runs a command in the client namespace with a time limit.
    pub fn client(&self, secs: u32, cmd: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", &self.client_ns, "timeout", "-k", "2"];
        let secs = secs.to_string();
        args.push(&secs);
        args.extend_from_slice(cmd);
        Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run client")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            kill_all(ns);
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

pub struct ServerThread {
    pub cancel: CancellationToken,
    join: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}
