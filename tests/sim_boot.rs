//! Whole boots over real sockets on loopback: 50 simulated machines go
//! DHCP → TFTP → iPXE DHCP → script → kernel → initrd → configs → done
//! against a pxedeck started the way `serve` starts it. Ten of them are
//! unknown, wait in the hold loop, and are adopted by a command mid-run;
//! they then boot without a reset.

use std::time::Duration;

use pxedeck::boot::ScriptKind;
use pxedeck::event::Command;
use pxedeck::http::HttpResponse;
use pxedeck::inventory::Adoption;
use pxedeck::model::{MachineState, StepKind};
use pxedeck::services::Services;
use pxedeck::sim::world::{World, WorldSpec};
use pxedeck::sim::{Outcome, Phase, Report, Target, boot_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_machines_boot_and_held_ones_boot_once_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::create(
        dir.path(),
        &WorldSpec {
            known: 40,
            unknown: 10,
            ..WorldSpec::default()
        },
    )
    .unwrap();
    let services = Services::start(world.config.clone()).await.unwrap();
    let mut target = Target::new(services.bound.dhcp.unwrap(), services.bound.tftp.port());
    target.hold_poll = Some(Duration::from_millis(100));
    target.hold_limit = Duration::from_secs(60);

    let machines: Vec<_> = world.known.iter().chain(&world.unknown).cloned().collect();
    let run = tokio::spawn({
        let target = target.clone();
        async move { boot_all(&machines, &target, Duration::from_millis(500), 1).await }
    });

    // Wait until every unknown machine sits in the hold loop — it has
    // fetched the hold script, not only been told by DHCP it will be held
    // (adopted before that, it boots straight into its install) — then
    // adopt them all in one command, as the console's bulk adopt does.
    let unknown_macs: Vec<_> = world.unknown.iter().map(|m| m.mac).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let held = {
            let model = services.live.lock();
            unknown_macs
                .iter()
                .filter(|m| {
                    model.machine(m).is_some_and(|r| {
                        r.state == MachineState::Held
                            && r.timeline.iter().any(|step| {
                                matches!(
                                    step.kind,
                                    StepKind::Script {
                                        kind: ScriptKind::Hold,
                                        ..
                                    }
                                )
                            })
                    })
                })
                .count()
        };
        if held == unknown_macs.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {held} held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let adoptions = unknown_macs
        .iter()
        .enumerate()
        .map(|(i, mac)| Adoption {
            macs: vec![*mac],
            uuid: None,
            hostname: format!("node-{:03}", 101 + i),
            group: "rack1".into(),
            profile: "sim-install".into(),
            ip: None,
            install: true,
            ..Default::default()
        })
        .collect();
    let control = services.control.clone();
    let adopted = tokio::task::spawn_blocking(move || {
        control.execute(Command::Adopt {
            machines: adoptions,
        })
    })
    .await
    .unwrap();
    assert_eq!(adopted, Ok("adopted 10 machine(s)".into()));

    let (runs, makespan) = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the boots finish")
        .unwrap();
    let report = Report::new(&runs, makespan);
    assert_eq!(report.failed(), 0, "{}", report.table());
    assert!(
        runs.iter().all(|r| r.outcome == Outcome::Installed),
        "{}",
        report.table()
    );
    eprintln!("{}", report.table());
    assert_eq!(report.phases[&Phase::Held].count, 10, "{}", report.table());
    assert_eq!(report.phases[&Phase::Kernel].count, 50);
    assert_eq!(report.phases[&Phase::Done].count, 50);

    // Every machine's file now says install: false (the done callback),
    // and the console model shows them installed.
    for n in 1..=40 {
        let text =
            std::fs::read_to_string(dir.path().join(format!("nodes/rack1/node-{n:03}.yaml")))
                .unwrap();
        assert!(text.contains("install: false"), "node-{n:03}: {text}");
    }
    for n in 101..=110 {
        let text =
            std::fs::read_to_string(dir.path().join(format!("nodes/rack1/node-{n:03}.yaml")))
                .unwrap();
        assert!(text.contains("install: false"), "node-{n:03}: {text}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    {
        let model = services.live.lock();
        let installed = model
            .machines
            .iter()
            .filter(|m| m.state == MachineState::Installed)
            .count();
        assert_eq!(installed, 50);
        assert_eq!(model.counters.installs_done, 50);
        let failed: Vec<_> = model
            .recent
            .iter()
            .filter_map(|t| t.failure().map(|e| (&t.path, e)))
            .collect();
        assert_eq!(model.counters.transfers_failed, 0, "{failed:?}");
    }
    let stats = &services.http.stats;
    assert_eq!(
        stats.responses.get(HttpResponse::Denied),
        0,
        "every config came from its machine's own lease address"
    );
    services.shutdown().await;
}
