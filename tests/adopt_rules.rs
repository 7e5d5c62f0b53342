//! Rules for unknown machines over real sockets on loopback: a simulated
//! machine an `auto` rule matches is adopted on first sight (its file
//! written by the inventory writer) and boots its local disk without a
//! reset; one a `propose` rule matches waits in the hold loop, marked; a
//! flood of invented MACs matching the auto rule creates at most the bound
//! of files per minute, the rest refused and counted; in a real git work
//! tree the auto-adoption is a commit that names the rule; and rules by
//! vendor and product match when the machine reports its facts from its
//! lease, never on a claim from another address.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pxedeck::auto_adopt::MAX_PER_MINUTE;
use pxedeck::boot::arch::Firmware;
use pxedeck::dhcp::wire::{Packet, msg, opt};
use pxedeck::ident::Mac;
use pxedeck::inventory::rules::RuleMode;
use pxedeck::model::{Alert, MachineState};
use pxedeck::services::Services;
use pxedeck::sim::report::Outcome;
use pxedeck::sim::world::{World, WorldSpec, sim_mac};
use pxedeck::sim::{SimMachine, Target, boot};

#[path = "support/git.rs"]
mod git_cli;
use git_cli::git;

/// rack1's defaults with two rules: MACs 52:54:00:bb:00:* are adopted on
/// sight, any other 52:54:00:bb:* is proposed (the second overlaps the
/// first: the first match wins).
const RULES: &str = "profile: sim-install
adopt:
  hostname_pattern: node-{n:03}
  rules:
    - match: {mac: \"52:54:00:bb:00:*\", subnet: 127.0.0.0/8}
      mode: auto
      hostname: auto-{n:02}
    - match: {mac: \"52:54:00:bb:*\"}
      mode: propose
";

fn world(dir: &Path) -> World {
    let world = World::create(dir, &WorldSpec::default()).unwrap();
    std::fs::write(dir.join("nodes/rack1/_defaults.yaml"), RULES).unwrap();
    world
}

async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn auto_files(dir: &Path) -> Vec<String> {
    files_named(dir, "auto-")
}

fn files_named(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("nodes/rack1"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Boots `mac` against a `propose` rule: it is held and marked with the
/// rule at `rule` (file:line) until its hold limit.
async fn held_and_proposed(services: &Services, target: &Target, mac: Mac, rule: &str) {
    let machine = SimMachine::new(mac, Firmware::Bios);
    let held = tokio::spawn({
        let mut target = target.clone();
        target.hold_limit = Duration::from_secs(2);
        async move { boot(&machine, &target, 2).await }
    });
    until("the proposal", 10, || {
        let model = services.live.lock();
        model.machine(&mac).is_some_and(|r| {
            r.state == MachineState::Held
                && r.proposal
                    .as_ref()
                    .is_some_and(|p| p.rule == rule && p.mode == RuleMode::Propose)
        })
    })
    .await;
    assert_eq!(held.await.unwrap().outcome, Outcome::StillHeld);
}

/// One PXE DISCOVER from `mac`, as firmware sends it.
async fn discover(server: std::net::SocketAddr, mac: [u8; 6]) {
    let mut p = Packet::client_request(
        mac,
        u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
        msg::DISCOVER,
    );
    p.set_option(opt::CLASS_ID, b"PXEClient:Arch:00007:UNDI:003016".to_vec());
    p.set_option(opt::CLIENT_ARCH, 7u16.to_be_bytes());
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&p.encode(), server).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rules_adopt_on_sight_propose_rules_mark_and_a_flood_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let services = Services::start(world.config.clone()).await.unwrap();
    let dhcp = services.bound.dhcp.unwrap();
    let mut target = Target::new(dhcp, services.bound.tftp.port());
    target.hold_poll = Some(Duration::from_millis(100));
    target.hold_limit = Duration::from_secs(20);

    // The auto machine: held at first sight, adopted, then told to boot
    // its local disk (the rule says no install) by its next hold poll.
    let auto = SimMachine::new(sim_mac(0xbb, 1), Firmware::UefiX64);
    let run = boot(&auto, &target, 1).await;
    assert_eq!(run.outcome, Outcome::LocalDisk, "{run:?}");
    assert_eq!(auto_files(dir.path()), ["auto-01.yaml"]);
    let text = std::fs::read_to_string(dir.path().join("nodes/rack1/auto-01.yaml")).unwrap();
    assert!(text.contains(&format!("mac: \"{}\"", auto.mac)), "{text}");
    assert!(text.contains("profile: \"sim-install\""), "{text}");
    assert!(
        text.contains("install: false"),
        "never installs unless the rule says so: {text}"
    );
    // The console folds the reload a moment after the HTTP side serves
    // from it; under a loaded machine that moment shows.
    until("the console to fold the adoption", 10, || {
        services
            .live
            .lock()
            .machine(&auto.mac)
            .is_some_and(|r| r.hostname.is_some())
    })
    .await;
    {
        let model = services.live.lock();
        let row = model.machine(&auto.mac).unwrap();
        assert_eq!(row.hostname.as_deref(), Some("auto-01"));
        assert_eq!(row.proposal, None, "adopted: nothing left to propose");
        assert!(
            model.log.iter().any(|l| l.message.contains(
                "auto-adopted 52:54:00:bb:00:01 by rule rack1/_defaults.yaml:5 as auto-01"
            )),
            "the adoption is logged"
        );
    }

    // The proposed machine: held and marked, no file written.
    held_and_proposed(
        &services,
        &target,
        sim_mac(0xbb, 0x100),
        "rack1/_defaults.yaml:8",
    )
    .await;
    assert_eq!(auto_files(dir.path()), ["auto-01.yaml"]);
    let proposed_mac = format!("\"{}\"", sim_mac(0xbb, 0x100));
    for e in std::fs::read_dir(dir.path().join("nodes/rack1")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!text.contains(&proposed_mac), "a proposal writes nothing");
    }

    // A flood of invented MACs the auto rule matches: within the minute,
    // the bound less the one already adopted; every other one refused.
    let flood = 25;
    for i in 0..flood {
        discover(dhcp, sim_mac(0xbb, 0x10 + i).0).await;
    }
    let refused_expected = (flood + 1 - MAX_PER_MINUTE) as u64;
    until("the refusals to be counted", 30, || {
        services.live.lock().auto_refused == refused_expected
    })
    .await;
    assert_eq!(auto_files(dir.path()).len(), MAX_PER_MINUTE);
    let metrics = Command::new("curl")
        .args(["-fsS", &format!("http://{}/metrics", services.bound.api)])
        .output()
        .expect("curl is missing: install the Debian package curl");
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    for needle in [
        format!("pxedeck_auto_adoptions_total{{outcome=\"adopted\"}} {MAX_PER_MINUTE}"),
        format!("pxedeck_auto_adoptions_total{{outcome=\"refused\"}} {refused_expected}"),
    ] {
        assert!(metrics.contains(&needle), "{needle} in\n{metrics}");
    }
    {
        let model = services.live.lock();
        assert!(
            model.alerts(model.now).contains(&Alert::AutoAdoptRefused {
                count: refused_expected
            }),
            "{:?}",
            model.alerts(model.now)
        );
        assert!(
            model.log.iter().any(|l| l
                .message
                .contains("refused: more than 20 auto-adoptions in a minute")),
            "the refusal is logged"
        );
    }
    services.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_adoption_is_a_git_commit_that_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = world(dir.path());
    let work = world.config.inventory.clone();
    git(&work, &["init", "--quiet", "-b", "main"]);
    git(&work, &["config", "user.name", "Operator"]);
    git(&work, &["config", "user.email", "op@example.com"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "--quiet", "-m", "inventory"]);
    world.config.git.author = "Rack Robot <robot@example.com>".into();
    let services = Services::start(world.config.clone()).await.unwrap();
    let dhcp = services.bound.dhcp.unwrap();

    discover(dhcp, sim_mac(0xbb, 7).0).await;
    let head = || git(&work, &["log", "-1", "--format=%an <%ae>|%s"]);
    until("the auto-adoption's commit", 20, || {
        head().contains("auto-adopt")
    })
    .await;
    assert_eq!(
        head(),
        "Rack Robot <robot@example.com>|auto-adopt auto-01 into rack1 by rule rack1/_defaults.yaml:5 (sim-install)"
    );
    assert_eq!(
        git(&work, &["show", "--name-only", "--format=", "HEAD"]),
        "rack1/auto-01.yaml",
        "the commit holds exactly the new machine's file"
    );
    assert_eq!(services.auto_adopt.adopted.load(Ordering::Relaxed), 1);
    services.shutdown().await;
}

/// Rules by vendor and product, which DHCP cannot know: matched when the
/// machine's iPXE reports its hardware (the simulator reports QEMU /
/// pxedeck-sim), joined with what DHCP saw of it.
const VENDOR_RULES: &str = "profile: sim-install
adopt:
  hostname_pattern: node-{n:03}
  rules:
    - match: {vendor: qemu, product: \"pxedeck-*\", mac: \"52:54:00:cc:00:*\", subnet: 127.0.0.0/8}
      mode: auto
      hostname: vm-{n:02}
    - match: {vendor: QEMU}
      mode: propose
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_by_vendor_and_product_match_when_the_facts_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::create(dir.path(), &WorldSpec::default()).unwrap();
    std::fs::write(dir.path().join("nodes/rack1/_defaults.yaml"), VENDOR_RULES).unwrap();
    let services = Services::start(world.config.clone()).await.unwrap();
    let dhcp = services.bound.dhcp.unwrap();
    let mut target = Target::new(dhcp, services.bound.tftp.port());
    target.hold_poll = Some(Duration::from_millis(100));
    target.hold_limit = Duration::from_secs(20);
    let vm_files = || files_named(dir.path(), "vm-");

    // DHCP alone matches neither rule: vendor and product are not on the
    // wire.
    let spoofed = sim_mac(0xcc, 5);
    discover(dhcp, spoofed.0).await;
    until("the sighting", 10, || {
        services.live.lock().machine(&spoofed).is_some()
    })
    .await;
    assert_eq!(
        services.live.lock().machine(&spoofed).unwrap().proposal,
        None
    );

    // A machine that boots: held, its facts reported from its lease,
    // adopted by the auto rule, then told to boot its local disk.
    let auto = SimMachine::new(sim_mac(0xcc, 1), Firmware::UefiX64);
    let run = boot(&auto, &target, 1).await;
    assert_eq!(run.outcome, Outcome::LocalDisk, "{run:?}");
    assert_eq!(vm_files(), ["vm-01.yaml"]);
    let text = std::fs::read_to_string(dir.path().join("nodes/rack1/vm-01.yaml")).unwrap();
    assert!(text.contains(&format!("mac: \"{}\"", auto.mac)), "{text}");
    assert!(
        text.contains("install: false"),
        "never installs unasked: {text}"
    );
    assert!(
        text.contains("product: \"pxedeck-sim\""),
        "the facts are kept: {text}"
    );

    // Another QEMU box, outside the auto rule's MACs: proposed by the
    // vendor rule, held, nothing written.
    held_and_proposed(
        &services,
        &target,
        sim_mac(0xcc, 0x100),
        "rack1/_defaults.yaml:8",
    )
    .await;
    assert_eq!(vm_files(), ["vm-01.yaml"]);

    // Facts claimed for a MAC from an address that does not hold its
    // lease match nothing: the query alone cannot make a machine match.
    let url = format!(
        "http://{}/boot.ipxe?mac={spoofed}&manufacturer=QEMU&product=pxedeck-sim",
        services.bound.http
    );
    let out = Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", &url])
        .output()
        .expect("curl is missing: install the Debian package curl");
    assert!(out.status.success(), "{out:?}");
    until("the claimed facts to be shown", 10, || {
        let model = services.live.lock();
        model
            .machine(&spoofed)
            .is_some_and(|r| r.facts.get("manufacturer") == Some("QEMU"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        services.live.lock().machine(&spoofed).unwrap().proposal,
        None
    );
    assert_eq!(vm_files(), ["vm-01.yaml"]);
    assert_eq!(services.auto_adopt.adopted.load(Ordering::Relaxed), 1);
    services.shutdown().await;
}
