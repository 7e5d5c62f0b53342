//! The inventory in git: every write pxedeck makes is a commit with a
//! clear message and the configured author, pushed to the tracking remote;
//! a failed push is shown and loses nothing; a `git pull` is picked up by
//! the watcher; pxedeck's own commits cause no reload. A real repository
//! and a bare remote (`git init --bare`) in a temporary folder.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pxedeck::event::{Command as Cmd, EventKind, GitState};
use pxedeck::inventory::Adoption;
use pxedeck::services::Services;

#[path = "support/git.rs"]
mod git_cli;
use git_cli::git;

/// Polls until `f` says yes.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(services: &Services, command: Cmd) -> String {
    let control = services.control.clone();
    tokio::task::spawn_blocking(move || control.run(&command))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_a_commit_pushed_upstream_a_pull_is_picked_up_and_a_failed_push_keeps_the_commit()
 {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    // The demo's world: a config and an inventory that go together.
    let mut world = pxedeck::demo::DemoWorld::create(&tmp.path().join("world"), 0).unwrap();
    let work = world.config.inventory.clone();
    git(
        tmp.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
    );
    git(&work, &["init", "--quiet", "-b", "main"]);
    git(&work, &["config", "user.name", "Operator"]);
    git(&work, &["config", "user.email", "op@example.com"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "--quiet", "-m", "inventory"]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&work, &["push", "--quiet", "-u", "origin", "main"]);
    world.config.git.author = "Rack Robot <robot@example.com>".into();
    world.config.git.push = true;
    let config = world.config.clone();
    let services = Services::start(config).await.unwrap();
    let mut events = services.bus.subscribe();
    let loads = services.control.inventory().load_counter();

    // An adoption: one commit, the configured author, pushed.
    let before = loads.load(Ordering::Relaxed);
    run(
        &services,
        Cmd::Adopt {
            machines: vec![Adoption {
                macs: vec!["52:54:00:77:00:04".parse().unwrap()],
                uuid: None,
                hostname: "dev-04".into(),
                group: "k8s-dev".into(),
                profile: "ubuntu-2404".into(),
                ip: None,
                install: true,
                ..Default::default()
            }],
        },
    )
    .await;
    let head = |dir: &Path| git(dir, &["log", "-1", "--format=%an <%ae>|%s"]);
    until("the adoption's commit", || {
        head(&work).ends_with("|adopt dev-04 into k8s-dev (ubuntu-2404, to install)")
    })
    .await;
    assert_eq!(
        head(&work),
        "Rack Robot <robot@example.com>|adopt dev-04 into k8s-dev (ubuntu-2404, to install)"
    );
    assert_eq!(
        git(&work, &["show", "--name-only", "--format=", "HEAD"]),
        "k8s-dev/dev-04.yaml",
        "the commit holds exactly the written file"
    );
    until("the push", || {
        git(&remote, &["log", "-1", "--format=%s", "main"]).starts_with("adopt dev-04")
    })
    .await;
    // Its own writes and commits (files under .git) reload nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        loads.load(Ordering::Relaxed),
        before,
        "a commit caused a reload"
    );

    // An install flip, with a stray file of the operator's lying around:
    // committed alone, the stray file left uncommitted and counted.
    std::fs::write(work.join("notes.txt"), "mine\n").unwrap();
    run(
        &services,
        Cmd::SetInstall {
            hostname: "dev-04".into(),
            install: false,
        },
    )
    .await;
    until("the flip's commit", || {
        head(&work).ends_with("|dev-04: install: false")
    })
    .await;
    let status = last_status(&mut events, |s| {
        s.last_commit
            .as_deref()
            .is_some_and(|c| c.ends_with("dev-04: install: false"))
    })
    .await;
    assert_eq!(status.branch.as_deref(), Some("main"));
    assert_eq!(status.upstream.as_deref(), Some("origin/main"));
    assert_eq!(status.uncommitted, 1, "{status:?}");
    assert_eq!((status.ahead, status.behind), (0, 0), "{status:?}");
    assert_eq!(status.error, None);
    std::fs::remove_file(work.join("notes.txt")).unwrap();

    // Someone else pushes a machine; a `git pull` here is served.
    let other = tmp.path().join("other");
    git(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            remote.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    std::fs::write(
        other.join("k8s-dev/dev-09.yaml"),
        "mac: \"52:54:00:77:00:09\"\n",
    )
    .unwrap();
    git(&other, &["add", "-A"]);
    git(
        &other,
        &[
            "-c",
            "user.name=B",
            "-c",
            "user.email=b@x",
            "commit",
            "--quiet",
            "-m",
            "dev-09",
        ],
    );
    git(&other, &["push", "--quiet"]);
    git(&work, &["pull", "--quiet", "--ff-only"]);
    until("the pulled machine to be served", || {
        services.inventory.load().by_hostname("dev-09").is_some()
    })
    .await;

    // The remote goes away: the commit stays, the failure is told.
    git(
        &work,
        &["remote", "set-url", "origin", "/nonexistent/remote.git"],
    );
    run(
        &services,
        Cmd::SetInstall {
            hostname: "dev-04".into(),
            install: true,
        },
    )
    .await;
    until("the commit despite the push", || {
        head(&work).ends_with("|dev-04: install: true")
    })
    .await;
    let status = last_status(&mut events, |s| s.error.is_some()).await;
    let error = status.error.clone().unwrap();
    assert!(error.starts_with("git push failed"), "{error}");
    assert_eq!(status.ahead, 1, "{status:?}");
    assert!(
        std::fs::read_to_string(work.join("k8s-dev/dev-04.yaml"))
            .unwrap()
            .contains("install: true")
    );
    services.shutdown().await;
}

/// The GitStatus events until one satisfies `f`; that one. A warning
/// about the push comes on the bus as a log line too.
async fn last_status(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<pxedeck::event::Event>>,
    f: impl Fn(&GitState) -> bool,
) -> GitState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no such git status")
            .unwrap();
        if let EventKind::GitStatus(s) = &e.kind
            && f(s)
        {
            return s.clone();
        }
    }
}

/// The Inventory view's git line, drawn from a GitStatus event.
#[test]
fn the_inventory_view_shows_branch_uncommitted_files_ahead_behind_and_a_push_failure() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use pxedeck::event::Event;
    use pxedeck::model::Model;
    use pxedeck::tui::Origin;
    use pxedeck::tui::app::App;
    use pxedeck::tui::theme::Theme;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    let mut model = Model::default();
    model.apply(&Event {
        at: 1,
        kind: EventKind::GitStatus(GitState {
            branch: Some("main".into()),
            upstream: Some("origin/main".into()),
            uncommitted: 2,
            ahead: 1,
            behind: 0,
            last_commit: Some("abc1234 dev-04: install: true".into()),
            error: Some("git push failed: fatal: not a repository".into()),
        }),
    });
    let mut app = App::new(model, Theme::builtin(false), Origin::Embedded);
    app.on_key(KeyEvent::new(KeyCode::Char('4'), KeyModifiers::NONE));
    let mut terminal = Terminal::new(TestBackend::new(120, 24)).unwrap();
    terminal
        .draw(|f| pxedeck::tui::draw::draw(f, &app))
        .unwrap();
    let buffer = terminal.backend().buffer();
    let text: String = (0..24)
        .map(|y| {
            (0..120)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
                + "\n"
        })
        .collect();
    assert!(
        text.contains("git main → origin/main · 2 uncommitted · ↑1 ↓0 · git push failed: fatal: not a repository"),
        "{text}"
    );
}

/// Edits from the console or the API: each a commit with a clear message,
/// comments and unknown keys kept, a group move a rename in one commit;
/// a refused edit writes and commits nothing. Undo removes the last
/// adoption while its file is unchanged, and refuses once it changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_moves_and_undo_are_commits_and_refusals_change_nothing() {
    use pxedeck::inventory::MachineEdit;
    let tmp = tempfile::tempdir().unwrap();
    let world = pxedeck::demo::DemoWorld::create(&tmp.path().join("world"), 0).unwrap();
    let work = world.config.inventory.clone();
    git(&work, &["init", "--quiet", "-b", "main"]);
    git(&work, &["config", "user.name", "Operator"]);
    git(&work, &["config", "user.email", "op@example.com"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "--quiet", "-m", "inventory"]);
    let services = Services::start(world.config.clone()).await.unwrap();
    let subject = |dir: &Path| git(dir, &["log", "-1", "--format=%s"]);
    let try_run = |command: Cmd| {
        let control = services.control.clone();
        async move {
            tokio::task::spawn_blocking(move || control.run(&command))
                .await
                .unwrap()
        }
    };

    // Profile, IP and install of dev-01: its comment line stays.
    let edit = MachineEdit {
        profile: Some("talos-worker".into()),
        ip: Some("127.99.0.41".parse().unwrap()),
        install: Some(false),
        group: None,
    };
    run(
        &services,
        Cmd::Edit {
            hostname: "dev-01".into(),
            edit,
        },
    )
    .await;
    until("the edit's commit", || {
        subject(&work) == "dev-01: profile: talos-worker, ip: 127.99.0.41, install: false"
    })
    .await;
    let text = std::fs::read_to_string(work.join("k8s-dev/dev-01.yaml")).unwrap();
    assert!(
        text.starts_with("# racked 2026-11-02, B3 slot 12\n"),
        "{text}"
    );
    assert!(
        text.contains("ip: 127.99.0.41\n") && text.contains("install: false"),
        "{text}"
    );
    let served = services.inventory.load();
    let m = served.by_hostname("dev-01").unwrap();
    assert_eq!(m.profile.as_deref(), Some("talos-worker"));
    assert_eq!(m.ip, Some("127.99.0.41".parse().unwrap()));

    // A move: one commit that removes the old file and adds the new one,
    // whose text (comment and unknown key) is kept.
    run(
        &services,
        Cmd::Edit {
            hostname: "dev-03".into(),
            edit: MachineEdit {
                group: Some("k8s-prod".into()),
                ..Default::default()
            },
        },
    )
    .await;
    until("the move's commit", || {
        subject(&work) == "dev-03: move from k8s-dev to k8s-prod"
    })
    .await;
    assert!(!work.join("k8s-dev/dev-03.yaml").exists());
    let moved = std::fs::read_to_string(work.join("k8s-prod/dev-03.yaml")).unwrap();
    assert!(
        moved.contains("storage_layout: direct   # one small disk"),
        "{moved}"
    );
    let files = git(&work, &["show", "--name-status", "--format=", "HEAD"]);
    assert!(
        files.contains("k8s-dev/dev-03.yaml") && files.contains("k8s-prod/dev-03.yaml"),
        "{files}"
    );
    assert_eq!(
        services
            .inventory
            .load()
            .by_hostname("dev-03")
            .unwrap()
            .group,
        "k8s-prod"
    );

    // Refusals: a profile that does not exist, a group that does not, a
    // name past the bound, an empty edit. Nothing written, no commit.
    let head_before = git(&work, &["rev-parse", "HEAD"]);
    let dev02 = std::fs::read_to_string(work.join("k8s-dev/dev-02.yaml")).unwrap();
    for (edit, says) in [
        (
            MachineEdit {
                profile: Some("no-such-profile".into()),
                ..Default::default()
            },
            "no-such-profile",
        ),
        (
            MachineEdit {
                group: Some("nowhere".into()),
                ..Default::default()
            },
            "no group named `nowhere`",
        ),
        (
            MachineEdit {
                profile: Some("p".repeat(10_000)),
                ..Default::default()
            },
            "10000 characters long; at most 128",
        ),
        (MachineEdit::default(), "nothing to change"),
    ] {
        let e = try_run(Cmd::Edit {
            hostname: "dev-02".into(),
            edit,
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert!(
            e.to_string().len() < 400,
            "the refusal echoes no huge input: {e}"
        );
    }
    let e = try_run(Cmd::Edit {
        hostname: "nobody".into(),
        edit: MachineEdit {
            install: Some(true),
            ..Default::default()
        },
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no machine named `nobody`"), "{e}");
    assert_eq!(
        std::fs::read_to_string(work.join("k8s-dev/dev-02.yaml")).unwrap(),
        dev02
    );

    // Undo: nothing yet; then the last adoption's file goes, in a commit.
    let e = try_run(Cmd::UndoAdoption).await.unwrap_err();
    assert!(e.to_string().contains("no adoption to undo"), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        git(&work, &["rev-parse", "HEAD"]),
        head_before,
        "a refusal committed"
    );
    let adopt = |hostname: &str, mac: &str| Cmd::Adopt {
        machines: vec![Adoption {
            macs: vec![mac.parse().unwrap()],
            uuid: None,
            hostname: hostname.into(),
            group: "k8s-dev".into(),
            profile: "ubuntu-2404".into(),
            ip: None,
            install: false,
            ..Default::default()
        }],
    };
    run(&services, adopt("dev-04", "52:54:00:77:00:04")).await;
    until("the adoption's commit", || {
        subject(&work).starts_with("adopt dev-04")
    })
    .await;
    assert_eq!(
        run(&services, Cmd::UndoAdoption).await,
        "undid the adoption of dev-04"
    );
    until("the undo's commit", || {
        subject(&work) == "undo the adoption of dev-04"
    })
    .await;
    assert!(!work.join("k8s-dev/dev-04.yaml").exists());
    assert!(services.inventory.load().by_hostname("dev-04").is_none());
    assert_eq!(
        git(&work, &["show", "--name-status", "--format=", "HEAD"]),
        "D\tk8s-dev/dev-04.yaml"
    );
    let e = try_run(Cmd::UndoAdoption).await.unwrap_err();
    assert!(
        e.to_string().contains("no adoption to undo"),
        "undone once: {e}"
    );

    // Changed since: refused, the file kept as the operator left it.
    run(&services, adopt("dev-05", "52:54:00:77:00:05")).await;
    let path = work.join("k8s-dev/dev-05.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("# checked by hand\n");
    std::fs::write(&path, &text).unwrap();
    let e = try_run(Cmd::UndoAdoption).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("not undone: k8s-dev/dev-05.yaml changed since it was adopted"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    services.shutdown().await;
}
