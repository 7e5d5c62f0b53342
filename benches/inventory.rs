//! Loading a large inventory: 5,000 machines in 50 groups (target < 300 ms
//! on a 2-core machine). Run with `cargo bench --bench inventory`.
//! Prints the median and spread of several runs.

use std::time::Instant;

use pxedeck::inventory::{LoadOptions, load};

mod common;

fn main() {
    let machines: usize = std::env::var("MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let groups = 50;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    common::write_inventory(root, machines, groups);
    let opts = LoadOptions::default();
    let warm = load(root, &opts);
    assert!(
        warm.is_ok(),
        "{:?}",
        &warm.problems[..warm.problems.len().min(3)]
    );
    assert_eq!(warm.inventory.machines.len(), machines);
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            let loaded = load(root, &opts);
            std::hint::black_box(&loaded);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "inventory load: {machines} machines in {groups} groups: median {:.1} ms (min {:.1}, max {:.1}, 9 runs)",
        times[4], times[0], times[8]
    );
}
