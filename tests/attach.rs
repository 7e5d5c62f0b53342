//! `pxedeck attach`'s view of a running server: a snapshot plus the event
//! stream over the API rebuilds the same state the server holds, and its
//! commands go through the same writer.

use std::time::Duration;

use pxedeck::event::Command;
use pxedeck::http::remote::RemoteBackend;
use pxedeck::inventory::Adoption;
use pxedeck::model::{MachineState, Model};
use pxedeck::services::Services;
use pxedeck::sim::world::{World, WorldSpec};
use pxedeck::sim::{Outcome, Target, boot_all};
use pxedeck::tui::{Backend, Feed};

/// The parts of two models that must agree.
fn essence(m: &Model) -> impl PartialEq + std::fmt::Debug {
    (
        m.machines
            .iter()
            .map(|r| (r.mac, r.hostname.clone(), r.state, r.ip, r.timeline.len()))
            .collect::<Vec<_>>(),
        m.leases.clone(),
        m.counters.clone(),
        m.inventory.machines,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_console_sees_the_same_state_and_can_adopt() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::create(
        dir.path(),
        &WorldSpec {
            known: 6,
            unknown: 1,
            api_token: "t0ken".into(),
            ..WorldSpec::default()
        },
    )
    .unwrap();
    let services = Services::start(world.config.clone()).await.unwrap();
    let mut target = Target::new(services.bound.dhcp.unwrap(), services.bound.tftp.port());
    target.hold_poll = Some(Duration::from_millis(100));

    // Half the rack boots before the console attaches, half after.
    let (runs, _) = boot_all(&world.known[..3], &target, Duration::ZERO, 1).await;
    assert!(runs.iter().all(|r| r.outcome == Outcome::Installed));

    let source = RemoteBackend::new(
        &format!("http://{}", services.bound.api),
        Some("t0ken".into()),
    );
    let mut feed = source.feed();
    let first = tokio::time::timeout(Duration::from_secs(5), feed.recv())
        .await
        .unwrap();
    let mut attached: Model = match first {
        Some(Feed::Snapshot(m)) => *m,
        other => panic!("expected a snapshot first, got {other:?}"),
    };
    assert_eq!(attached.machines.len(), 6);

    let unknown = world.unknown[0].clone();
    let held = tokio::spawn({
        let target = target.clone();
        async move { pxedeck::sim::boot(&unknown, &target, 9).await }
    });
    let (runs, _) = boot_all(&world.known[3..], &target, Duration::ZERO, 2).await;
    assert!(runs.iter().all(|r| r.outcome == Outcome::Installed));

    // Adopt the held machine through the attached source (the API).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while services
        .live
        .lock()
        .machine(&world.unknown[0].mac)
        .is_none_or(|m| m.state != MachineState::Held)
    {
        assert!(tokio::time::Instant::now() < deadline, "never held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = source
        .execute(Command::Adopt {
            machines: vec![Adoption {
                macs: vec![world.unknown[0].mac],
                uuid: None,
                hostname: "node-050".into(),
                group: "rack1".into(),
                profile: "sim-install".into(),
                ip: None,
                install: true,
                ..Default::default()
            }],
        })
        .await;
    assert_eq!(answer, Ok("adopted 1 machine(s)".into()));
    let run = tokio::time::timeout(Duration::from_secs(30), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.outcome, Outcome::Installed);

    // Let the stream drain, then compare.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(f) = feed.try_recv() {
        match f {
            Feed::Snapshot(m) => attached = *m,
            Feed::Event(e) => attached.apply(&e),
            Feed::Lost(why) => panic!("stream lost: {why}"),
        }
    }
    let server = services.live.lock().clone();
    assert_eq!(essence(&attached), essence(&server));
    assert_eq!(
        attached
            .machine(&world.unknown[0].mac)
            .and_then(|m| m.hostname.clone())
            .as_deref(),
        Some("node-050")
    );

    // Edit and undo go over the API like any command: the edit's reason
    // for a refusal comes back in words, the undo removes the adoption.
    let edited = source
        .execute(Command::Edit {
            hostname: "node-050".into(),
            edit: pxedeck::inventory::MachineEdit {
                install: Some(true),
                ..Default::default()
            },
        })
        .await;
    assert_eq!(edited, Ok("node-050: install true".into()));
    let refused = source
        .execute(Command::Edit {
            hostname: "node-050".into(),
            edit: pxedeck::inventory::MachineEdit {
                profile: Some("no-such".into()),
                ..Default::default()
            },
        })
        .await
        .unwrap_err();
    assert!(refused.contains("no-such"), "{refused}");
    // Done flipped install to false and the edit back to true: the file
    // says again what the adoption wrote, so it may be undone.
    let undo = source.execute(Command::UndoAdoption).await;
    assert_eq!(undo, Ok("undid the adoption of node-050".into()));
    let again = source.execute(Command::UndoAdoption).await.unwrap_err();
    assert!(again.contains("no adoption to undo"), "{again}");

    // A wrong token is refused with the server's reason.
    let intruder = RemoteBackend::new(
        &format!("http://{}", services.bound.api),
        Some("guess".into()),
    );
    let refused = intruder
        .execute(Command::ReloadInventory)
        .await
        .unwrap_err();
    assert!(refused.contains("bearer token"), "{refused}");
    services.shutdown().await;
}
