//! A console whose terminal dies (what an SSH drop does): the console and
//! the demo run in tmux, the tmux session is killed, and the boot services
//! must keep serving headless — `/healthz` answers, a simulated machine
//! boots — until SIGTERM stops them cleanly. The log file says where the
//! API is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pxedeck::boot::arch::Firmware;
use pxedeck::demo::DemoWorld;
use pxedeck::sim::{Outcome, SimMachine, Target};

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tmux session running `cmd` under a shell that survives the hangup
/// (its trap is reset in the child, so pxedeck gets a default SIGHUP) and
/// writes pxedeck's pid and exit code into `dir`.
struct Session {
    name: String,
    dir: PathBuf,
}

impl Session {
    fn start(tag: &str, dir: &Path, cmd: &str) -> Session {
        let name = format!("pxdf-{tag}-{}", std::process::id());
        let script = format!(
            "trap : HUP; echo $$ > {shell}; {cmd}; echo $? > {rc}",
            shell = dir.join("shell.pid").display(),
            rc = dir.join("rc").display(),
        );
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "100", "-y", "30"])
            .arg("-e")
            .arg(format!("TMPDIR={}", dir.display()))
            .arg(script)
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session");
        Session {
            name,
            dir: dir.to_path_buf(),
        }
    }

    fn screen(&self) -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait_for_screen(&self, what: &str, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What an SSH drop does to the terminal: it goes away under pxedeck.
    fn kill(&self) {
        let ok = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux kill-session");
    }

    /// pxedeck: the shell's child.
    fn pxedeck_pid(&self) -> u32 {
        let shell: u32 = wait_for_file(&self.dir.join("shell.pid"))
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = child_of(shell) {
                return pid;
            }
            assert!(Instant::now() < deadline, "no child of the shell {shell}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit code the shell saw, once pxedeck has ended.
    fn exit_code(&self) -> String {
        wait_for_file(&self.dir.join("rc")).trim().to_string()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
    }
}

/// Stops a pxedeck left running by a failed assertion.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(Instant::now() < deadline, "{} not written", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| stat(pid).is_some_and(|s| s[1] == parent.to_string()))
}

/// Running, not a zombie.
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s[0] != "Z" && s[0] != "X")
}

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let s = stat(pid).expect("the process exists");
    let ticks: u64 = s[11].parse::<u64>().unwrap() + s[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// The log line that says where everything is bound, once written.
fn serving_line(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("serving: DHCP")) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{} never said what it serves:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The address after `label ` in the serving line.
fn bound(line: &str, label: &str) -> SocketAddr {
    let at = line.find(&format!("{label} ")).expect(label) + label.len() + 1;
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.parse()
        .unwrap_or_else(|e| panic!("{label} {addr:?}: {e}"))
}

fn healthz(api: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to the API {api}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// Events keep reaching the log file after the hangup.
fn wait_for_log(log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the log never said {what:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_until_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pxedeck {pid} did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After the hangup: still running and the log says so and where the API
/// is. A `quiet` process (nothing booting) must also not spin on the dead
/// tty.
fn check_headless(pid: u32, log: &Path, api: SocketAddr, quiet: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("keep running headless") {
            assert!(
                text.contains(&format!("pxedeck attach http://{api}")),
                "the log names the API:\n{text}"
            );
            break;
        }
        assert!(alive(pid), "pxedeck died with its terminal; log:\n{text}");
        assert!(
            Instant::now() < deadline,
            "the log never said the services went headless:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    if quiet {
        let before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(2));
        let used = cpu_seconds(pid) - before;
        assert!(
            used < 0.5,
            "{used:.2} CPU seconds in 2 s with nothing to do: a thread spins on the dead terminal"
        );
    }
    assert!(alive(pid), "pxedeck died after its terminal");
}

#[test]
fn console_keeps_serving_after_its_terminal_dies() {
    if !have_tmux() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let world = DemoWorld::create(&tmp.path().join("world"), 0).unwrap();
    let config = world.dir.join("pxedeck.yaml");
    let log = world.dir.join("pxedeck.log");
    let exe = env!("CARGO_BIN_EXE_pxedeck");
    let session = Session::start(
        "console",
        tmp.path(),
        &format!("{exe} -c {} console", config.display()),
    );
    session.wait_for_screen("the console", |s| s.contains("Machines ("));
    let pid = session.pxedeck_pid();
    let _guard = KillOnDrop(pid);
    let serving = serving_line(&log);
    let (dhcp, tftp, api) = (
        bound(&serving, "DHCP"),
        bound(&serving, "TFTP"),
        bound(&serving, "API"),
    );

    session.kill();
    check_headless(pid, &log, api, true);

    let health = healthz(api);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // dev-01 installs: DHCP, TFTP, HTTP and the done callback all answer.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let machine = SimMachine::new("52:54:00:d0:00:01".parse().unwrap(), Firmware::UefiX64);
    let run = rt.block_on(pxedeck::sim::boot(
        &machine,
        &Target::new(dhcp, tftp.port()),
        1,
    ));
    assert_eq!(run.outcome, Outcome::Installed, "{run:?}");
    wait_for_log(&log, "dev-01: install done");

    assert!(
        Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
    wait_until_gone(pid);
    assert_eq!(session.exit_code(), "0", "a clean exit on SIGTERM");
    wait_for_log(&log, "stopped");
}

#[test]
fn demo_keeps_serving_after_its_terminal_dies() {
    if !have_tmux() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_pxedeck");
    let session = Session::start(
        "demo",
        tmp.path(),
        &format!("{exe} demo --keep --every 0.2 --unknown 2"),
    );
    session.wait_for_screen("the demo's machines", |s| {
        s.contains("dev-01") && s.contains("installed")
    });
    let pid = session.pxedeck_pid();
    let _guard = KillOnDrop(pid);
    let demo = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("pxedeck-demo-"))
        .expect("the demo's folder");
    let log = demo.join("pxedeck.log");
    let api = bound(&serving_line(&log), "API");

    session.kill();
    check_headless(pid, &log, api, false);
    let health = healthz(api);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    assert!(
        Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
    wait_until_gone(pid);
    assert_eq!(session.exit_code(), "0", "a clean exit on SIGTERM");
    assert!(demo.join("nodes").is_dir(), "--keep kept the demo's files");
}
