//! `pxedeck serve` as systemd and logrotate meet it: readiness and watchdog
//! over a (fake) `NOTIFY_SOCKET`, SIGHUP reopening a moved log file and
//! reloading the inventory, JSON lines, one tracing target per subsystem.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port(udp: bool) -> u16 {
    if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    } else {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    }
}

struct World {
    dir: tempfile::TempDir,
    config: PathBuf,
    dhcp: u16,
    tftp: u16,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes");
    std::fs::create_dir_all(&nodes).unwrap();
    std::fs::write(
        nodes.join("dev-01.yaml"),
        "mac: \"52:54:00:aa:00:01\"\ninstall: false\n",
    )
    .unwrap();
    let (dhcp, tftp) = (free_port(true), free_port(true));
    let config = dir.path().join("pxedeck.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  address: 127.0.0.1\n\
             dhcp:\n  port: {dhcp}\n  proxy_port: 0\n  lease_file: leases.jsonl\n  pools:\n    - subnet: 127.96.0.0/16\n      range: 127.96.1.1-127.96.1.100\n\
             tftp:\n  port: {tftp}\nhttp:\n  port: {http}\n  api_listen: 127.0.0.1:{api}\n  api_token: t\n\
             boot_root: .\ninventory: nodes\n",
            http = free_port(false),
            api = free_port(false),
        ),
    )
    .unwrap();
    World {
        dir,
        config,
        dhcp,
        tftp,
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(w: &World, args: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pxedeck"));
    cmd.arg("-c").arg(&w.config).args(args).arg("serve");
    cmd.current_dir(w.dir.path())
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Serve(cmd.spawn().unwrap())
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{name} failed");
}

fn sighup(child: &Child) {
    signal(child, "HUP");
}

/// Waits until the file holds a line with `needle`; returns the text.
fn wait_for_line(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never said {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads notifications until one contains `needle`; returns all read.
fn wait_for_notice(sock: &UnixDatagram, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = vec![];
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = text.lines().any(|l| l == needle);
            seen.push(text);
            if found {
                return seen;
            }
        }
    }
    panic!("no {needle} notification; got {seen:?}");
}

#[test]
fn serve_tells_systemd_it_is_ready_pets_the_watchdog_and_reopens_its_log_on_sighup() {
    let w = world();
    let socket_path = w.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = w.dir.path().join("pxedeck.log");
    let log_arg = log.to_str().unwrap();
    let cmd_args = ["serve", "--log-file", log_arg];
    let mut child = Command::new(env!("CARGO_BIN_EXE_pxedeck"));
    child
        .arg("-c")
        .arg(&w.config)
        .args(cmd_args)
        .current_dir(w.dir.path())
        .env_remove("RUST_LOG")
        .env_remove("WATCHDOG_PID")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Serve(child.spawn().unwrap());

    let ready = wait_for_notice(&sock, "READY=1");
    assert!(
        ready.iter().any(|n| n.contains("STATUS=serving")),
        "{ready:?}"
    );
    let started = Instant::now();
    wait_for_notice(&sock, "WATCHDOG=1");
    wait_for_notice(&sock, "WATCHDOG=1");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "two watchdog pings took {:?}",
        started.elapsed()
    );
    wait_for_line(&log, "serving: DHCP 127.0.0.1:");

    // logrotate: move the file, then SIGHUP.
    let rotated = w.dir.path().join("pxedeck.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    std::fs::write(
        w.dir.path().join("nodes/dev-02.yaml"),
        "mac: \"52:54:00:aa:00:02\"\ninstall: false\n",
    )
    .unwrap();
    sighup(&server.0);
    let notices = wait_for_notice(&sock, "READY=1");
    assert!(
        notices
            .iter()
            .any(|n| n.contains("RELOADING=1") && n.contains("MONOTONIC_USEC=")),
        "{notices:?}"
    );
    let fresh = wait_for_line(&log, "log file");
    assert!(fresh.contains("SIGHUP: log file"), "{fresh}");
    // The inventory was read again: by the SIGHUP or by the watcher just
    // before it; either way the new machine is counted in the new file.
    let fresh = wait_for_line(&log, "2 machines");
    assert!(fresh.contains("pxedeck::inventory"), "{fresh}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        !old.contains("SIGHUP"),
        "the moved file got new lines:\n{old}"
    );
    assert!(server_alive(&server), "SIGHUP stopped serve");
    // A second SIGHUP with nothing changed still answers, and says so.
    sighup(&server.0);
    wait_for_line(&log, "SIGHUP: inventory unchanged");

    // SIGTERM: STOPPING=1, exit 0.
    signal(&server.0, "TERM");
    wait_for_notice(&sock, "STOPPING=1");
    let mut server = server;
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn server_alive(s: &Serve) -> bool {
    std::fs::metadata(format!("/proc/{}", s.0.id())).is_ok()
}

/// `serve`'s stdout, read on a thread.
struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Lines { rx, seen: vec![] }
    }

    /// Reads until a line contains `needle`; returns every line so far.
    fn until(&mut self, needle: &str) -> &[String] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {needle:?}; stdout so far:\n{}",
                self.seen.join("\n")
            );
            if let Ok(l) = self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                self.seen.push(l);
            }
        }
        &self.seen
    }
}

/// One unknown machine's DHCP exchange against the server, for events.
fn boot_one(w: &World) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target =
        pxedeck::sim::Target::new(std::net::SocketAddr::from(([127, 0, 0, 1], w.dhcp)), w.tftp);
    let m = pxedeck::sim::SimMachine::new(
        "52:54:00:aa:00:01".parse().unwrap(),
        pxedeck::boot::arch::Firmware::Bios,
    );
    // The known machine boots locally: DHCP, the loader, a script, done.
    let _ = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), pxedeck::sim::boot(&m, &target, 1)).await
    });
}

#[test]
fn json_lines_carry_one_target_per_subsystem_and_rust_log_selects_one() {
    let w = world();
    let mut s = serve(
        &w,
        &["--log-format", "json"],
        &[("RUST_LOG", "pxedeck::inventory=warn")],
    );
    let mut out = Lines::of(&mut s.0);
    out.until("serving: DHCP");
    boot_one(&w);
    let lines = out.until("ACK to").to_vec();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let targets: Vec<&str> = parsed
        .iter()
        .map(|v| v["target"].as_str().unwrap())
        .collect();
    assert!(targets.contains(&"pxedeck::dhcp"), "{targets:?}");
    assert!(
        !targets.contains(&"pxedeck::inventory"),
        "RUST_LOG=pxedeck::inventory=warn let an info line through: {lines:?}"
    );
    let discover = parsed
        .iter()
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("DISCOVER from 52:54:00:aa:00:01 (dev-01)"))
        })
        .unwrap_or_else(|| panic!("no DISCOVER line: {lines:?}"));
    assert_eq!(discover["level"], "INFO");
    assert_eq!(
        discover["fields"]["message"],
        "DISCOVER from 52:54:00:aa:00:01 (dev-01): boots its local disk"
    );
    for l in &lines {
        assert!(!l.contains(" { "), "Rust Debug output in a log line: {l}");
    }
}

#[test]
fn text_lines_are_sentences_and_rust_log_for_one_subsystem_keeps_the_others() {
    let w = world();
    let mut s = serve(&w, &[], &[("RUST_LOG", "pxedeck::dhcp=debug")]);
    let mut out = Lines::of(&mut s.0);
    out.until("serving: DHCP");
    boot_one(&w);
    let lines = out.until("ACK to").to_vec();
    let text = lines.join("\n");
    assert!(
        text.contains("pxedeck::inventory: inventory loaded: 1 machines"),
        "{text}"
    );
    assert!(
        text.contains(
            "pxedeck::dhcp: DISCOVER from 52:54:00:aa:00:01 (dev-01): boots its local disk"
        ),
        "{text}"
    );
    assert!(
        !text.contains("Local }") && !text.contains("Install {"),
        "{text}"
    );
}

#[test]
fn the_unit_in_docs_is_type_notify_with_a_watchdog_and_verifies() {
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/pxedeck.service"))
            .unwrap();
    for key in [
        "Type=notify\n",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID\n",
        "StateDirectory=pxedeck\n",
    ] {
        assert!(unit.contains(key), "the unit lacks {key:?}");
    }
    // The command line it runs is one this binary accepts.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let o = Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success(), "{exec}: {o:?}");
    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd-analyze is missing: install the Debian package systemd"
    );
    // systemd's own check, with the binary where the unit expects one.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pxedeck.service");
    std::fs::write(
        &file,
        unit.replace("/usr/local/bin/pxedeck", env!("CARGO_BIN_EXE_pxedeck")),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_console_writes_every_subsystem_to_its_log_file_whatever_rust_log_names() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is missing: install the Debian package tmux"
    );
    let w = world();
    let session = format!("pxedeck-log-{}", std::process::id());
    let line = format!(
        "env RUST_LOG=pxedeck::dhcp=debug {} -c {} console",
        env!("CARGO_BIN_EXE_pxedeck"),
        w.config.display()
    );
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output().unwrap();
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .output();
        }
    }
    let o = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "100",
        "-y",
        "30",
        &line,
    ]);
    assert!(o.status.success(), "{o:?}");
    let _kill = Kill(session.clone());
    let log = w.dir.path().join("pxedeck.log");
    wait_for_line(&log, "serving: DHCP");
    boot_one(&w);
    let text = wait_for_line(&log, "ACK to 52:54:00:aa:00:01");
    assert!(
        text.contains("pxedeck::inventory: inventory loaded: 1 machines"),
        "{text}"
    );
    assert!(
        text.contains("pxedeck::dhcp: DISCOVER from 52:54:00:aa:00:01 (dev-01)"),
        "{text}"
    );
    tmux(&["send-keys", "-t", &session, "q"]);
    wait_for_line(&log, "stopped");
}
