//! A mass boot's done callbacks arrive together, and the inventory writer
//! takes them one at a time. Waiting for it on the blocking pool held a
//! thread each (75 threads and 30 MB more peak memory in the 500-machine
//! bench); `Control::set_install_off_thread` lets them wait as tasks.
//!
//! Its own test binary: it counts the process's threads.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pxedeck::control::Control;
use pxedeck::event::Bus;
use pxedeck::inventory::{InventoryService, LoadOptions, load};

const MACHINES: usize = 48;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn inventory(nodes: &Path) {
    std::fs::create_dir_all(nodes.join("rack")).unwrap();
    std::fs::create_dir_all(nodes.join("_profiles")).unwrap();
    std::fs::write(nodes.join("_profiles/local.yaml"), "boot:\n  local: true\n").unwrap();
    for i in 0..MACHINES {
        std::fs::write(
            nodes.join(format!("rack/node-{i:02}.yaml")),
            format!("# node {i}\nmac: 52:54:00:aa:00:{i:02x}\ninstall: true\nprofile: local\n"),
        )
        .unwrap();
    }
}

#[test]
fn a_burst_of_done_callbacks_waits_as_tasks_not_threads() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes");
    inventory(&nodes);
    let loaded = load(&nodes, &LoadOptions::default());
    assert!(loaded.is_ok(), "{:?}", loaded.problems);
    let service = Arc::new(InventoryService::new(
        &nodes,
        LoadOptions::default(),
        loaded.inventory,
    ));
    let control = Arc::new(Control::new(service, None, Bus::default()));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Let the runtime's own threads start before counting.
    runtime.block_on(async { tokio::task::spawn_blocking(|| ()).await.unwrap() });
    let before = threads();
    let peak = Arc::new(AtomicUsize::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(threads(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    runtime.block_on(async {
        let calls: Vec<_> = (0..MACHINES)
            .map(|i| {
                let control = control.clone();
                tokio::spawn(async move {
                    control
                        .set_install_off_thread(format!("node-{i:02}"), false)
                        .await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap().unwrap();
        }
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    for i in 0..MACHINES {
        let text = std::fs::read_to_string(nodes.join(format!("rack/node-{i:02}.yaml"))).unwrap();
        assert!(text.contains("install: false"), "node-{i:02}: {text}");
        assert!(text.starts_with(&format!("# node {i}\n")), "comment kept");
    }
    // The sampler itself is one; a blocking thread or two may be kept
    // from the warm-up. One per waiting callback would be dozens.
    let grew = peak.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        grew <= 4,
        "{grew} more threads for {MACHINES} done callbacks"
    );
}
