//! Loading a large inventory: 5,000 machines in 50 groups (target < 300 ms
//! on a 2-core machine). Run with `cargo bench --bench inventory`.
//! Prints the median and spread of several runs.

use std::fs;
use std::time::Instant;

use pxedeck::inventory::{LoadOptions, load};

fn main() {
    let machines: usize = std::env::var("MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let groups = 50;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("_profiles")).unwrap();
    fs::write(
        root.join("_defaults.yaml"),
        "install: false\nconsole: ttyS0,115200\ndns: [10.0.0.1]\nkernel_args:\n  quiet: true\n",
    )
    .unwrap();
    for p in ["ubuntu", "talos", "rocky"] {
        fs::write(
            root.join(format!("_profiles/{p}.yaml")),
            format!("description: {p}\nboot:\n  kernel: {p}/vmlinuz\n  initrd: [{p}/initrd]\n  cmdline: console={{{{ console }}}} ip=dhcp\nconfigs:\n  meta-data: |\n    instance-id: {{{{ hostname }}}}\n"),
        )
        .unwrap();
    }
    for g in 0..groups {
        let dir = root.join(format!("rack-{g:02}"));
        fs::create_dir_all(&dir).unwrap();
        let profile = ["ubuntu", "talos", "rocky"][g % 3];
        fs::write(
            dir.join("_defaults.yaml"),
            format!("profile: {profile}\nrack: {g}\n"),
        )
        .unwrap();
    }
    for i in 0..machines {
        let g = i % groups;
        let text = format!(
            "# machine {i}\nmac: \"52:54:{:02x}:{:02x}:{:02x}:{:02x}\"\nip: 10.{}.{}.{}\nserial: \"SN{i:08}\"\ninstall: {}\nbmc:\n  address: 10.200.{}.{}\n",
            (i >> 24) & 0xff,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            10 + (i >> 16),
            (i >> 8) & 0xff,
            i & 0xff,
            i % 2 == 0,
            (i >> 8) & 0xff,
            i & 0xff,
        );
        fs::write(root.join(format!("rack-{g:02}/node-{i:05}.yaml")), text).unwrap();
    }
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
