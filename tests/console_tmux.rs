//! The console as an operator sees it: `pxedeck demo` in a real terminal
//! (tmux), machines appearing, an unknown machine adopted by keystrokes,
//! the YAML file it writes, and the machine booting on screen.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(cmd: &str, env: &[(&str, &Path)], w: u16, h: u16) -> Tmux {
        // One per session started: the tests of one run overlap.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("pxdt-{}-{n}", std::process::id());
        let mut c = Command::new("tmux");
        c.args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]);
        for (k, v) in env {
            c.arg("-e").arg(format!("{k}={}", v.display()));
        }
        c.arg(cmd);
        assert!(c.status().unwrap().success(), "tmux new-session");
        Tmux { session }
    }

    fn capture(&self) -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            Command::new("tmux")
                .args(["send-keys", "-t", &self.session, k])
                .status()
                .unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Waits until the screen satisfies `ok`; panics with the screen.
    fn wait_for(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.capture();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {secs}s for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn resize(&self, w: u16, h: u16) {
        Command::new("tmux")
            .args(["resize-window", "-t", &self.session])
            .args(["-x", &w.to_string(), "-y", &h.to_string()])
            .status()
            .unwrap();
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.session])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The console outlives its terminal by design (services keep
        // serving headless), so a test that ends early must stop it
        // itself: SIGTERM to everything the pane's shell started.
        if let Ok(out) = Command::new("tmux")
            .args(["display", "-p", "-t", &self.session, "#{pane_pid}"])
            .output()
        {
            let shell = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !shell.is_empty() {
                let _ = Command::new("pkill").args(["-TERM", "-P", &shell]).status();
            }
        }
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .output();
    }
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn demo_dir(tmp: &Path) -> PathBuf {
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pxedeck-demo-")
        })
        .expect("the demo's folder")
}

#[test]
fn demo_shows_machines_and_adopts_one_by_keys() {
    if !have_tmux() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_pxedeck");
    // The demo leaves the pane when it quits; `; sleep` keeps the pane so
    // the test can see it ended cleanly.
    let cmd = format!("{exe} demo --every 0.3 --unknown 3; echo DEMO-EXITED $?; sleep 30");
    let term = Tmux::start(&cmd, &[("TMPDIR", tmp.path())], 80, 24);

    // Machines appear; known ones boot, unknown ones wait.
    let screen = term.wait_for("dev-01 installed and an unknown machine held", 60, |s| {
        s.contains("dev-01") && s.contains("installed") && s.contains("held")
    });
    assert!(screen.contains("Machines ("), "{screen}");
    assert!(screen.contains("unknown"), "{screen}");

    // Jump to the first unknown machine and adopt it with the suggestions.
    term.keys(&[":"]);
    term.keys(&["52:54:00:99:00:01", "Enter", "a"]);
    let dialog = term.wait_for("the adopt dialog", 10, |s| {
        s.contains("Adopt 52:54:00:99:00:01")
    });
    assert!(
        dialog.contains("dev-04"),
        "next free name suggested:\n{dialog}"
    );
    term.keys(&["Enter"]);

    // The file is written…
    let file = demo_dir(tmp.path()).join("nodes/k8s-dev/dev-04.yaml");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(Instant::now() < deadline, "{} not written", file.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("mac: \"52:54:00:99:00:01\""), "{text}");
    assert!(text.contains("profile: \"ubuntu-2404\""), "{text}");
    assert!(text.contains("install: true"), "{text}");

    // …and the held machine boots its profile without a reset.
    term.wait_for("dev-04 booting", 60, |s| {
        s.lines().any(|l| {
            l.contains("52:54:00:99:00:01")
                && l.contains("dev-04")
                && ["booting", "loading", "installing", "installed"]
                    .iter()
                    .any(|st| l.contains(st))
        })
    });
    term.wait_for("dev-04 installed", 60, |s| {
        s.lines()
            .any(|l| l.contains("dev-04") && l.contains("installed"))
    });
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(
        after.contains("install: false"),
        "the done callback flipped it:\n{after}"
    );

    // Edit it by keys: another group moves its file, comments kept.
    term.keys(&[":"]);
    term.keys(&["dev-04", "Enter", "e"]);
    term.wait_for("the edit dialog", 10, |s| s.contains("Edit dev-04"));
    term.keys(&["Down", "Right"]);
    term.wait_for("k8s-prod chosen", 10, |s| s.contains("◂ k8s-prod ▸"));
    term.keys(&["Enter"]);
    let moved = demo_dir(tmp.path()).join("nodes/k8s-prod/dev-04.yaml");
    term.wait_for("the move said", 10, |s| {
        s.contains("dev-04: moved to k8s-prod")
    });
    assert!(
        moved.exists() && !file.exists(),
        "moved to {}",
        moved.display()
    );
    assert!(
        std::fs::read_to_string(&moved)
            .unwrap()
            .starts_with("# Adopted in pxedeck on ")
    );
    // Undo is refused now that the adoption's file changed, and says so.
    term.keys(&["u"]);
    term.wait_for("the undo question", 10, |s| {
        s.contains("undo the last adoption")
    });
    term.keys(&["y"]);
    term.wait_for("the refusal", 10, |s| {
        s.contains("not undone: k8s-dev/dev-04.yaml")
    });
    assert!(moved.exists());

    // Quit: nothing pending, so no question; the demo cleans up.
    term.keys(&["q"]);
    let end = term.wait_for("the demo to exit", 15, |s| s.contains("DEMO-EXITED"));
    assert!(end.contains("DEMO-EXITED 0"), "{end}");
    assert!(end.contains("removed"), "{end}");
    assert!(term.alive());
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "the demo left files behind"
    );
}

/// The demo at the three sizes an operator meets: each screen read back
/// from tmux, what must stay readable checked, and below the minimum the
/// plain notice.
#[test]
fn the_console_reads_at_60x20_80x24_and_200x60() {
    if !have_tmux() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let exe = env!("CARGO_BIN_EXE_pxedeck");
    for (w, h) in [(60u16, 20u16), (80, 24), (200, 60)] {
        let tmp = tempfile::tempdir().unwrap();
        let cmd = format!("{exe} demo --every 0.3 --unknown 3; echo DEMO-EXITED $?; sleep 30");
        let term = Tmux::start(&cmd, &[("TMPDIR", tmp.path())], w, h);
        let screen = term.wait_for(&format!("dev-01 installed at {w}x{h}"), 60, |s| {
            s.lines().any(|l| {
                l.contains("52:54:00:d0:00:01") && l.contains("dev-01") && l.contains("installed")
            })
        });
        assert!(screen.contains("held"), "{w}x{h}:\n{screen}");
        assert!(
            screen.contains("failed ·"),
            "the overview line at {w}x{h}:\n{screen}"
        );
        assert!(screen.contains("Stage"), "{w}x{h}:\n{screen}");
        for line in screen.lines() {
            assert!(
                !line.contains(" inst ") && !line.ends_with(" inst"),
                "a state cut short at {w}x{h}: {line}"
            );
        }
        if w >= 200 {
            for column in ["Profile", "Vendor", "Install", "Last step / error", "Arch"] {
                assert!(screen.contains(column), "{column} at {w}x{h}:\n{screen}");
            }
        }
        if w == 80 {
            assert!(screen.contains("Install"), "{screen}");
        }
        if w == 60 {
            // Below the minimum: a notice, not a broken layout.
            term.resize(50, 12);
            term.wait_for("the too-small notice", 10, |s| {
                s.contains("terminal too small") && s.contains("need 60x16")
            });
            term.resize(60, 20);
            term.wait_for("the console back", 10, |s| s.contains("Machines ("));
        }
        term.keys(&["q"]);
        let end = term.wait_for("the demo to exit", 15, |s| s.contains("DEMO-EXITED"));
        assert!(end.contains("DEMO-EXITED 0"), "{end}");
    }
}
