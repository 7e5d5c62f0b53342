//! One instance at site scale: 10,000 machines in the inventory, 5,000 of
//! them booting, 100,000 leases. Reports what an operator waits for (load,
//! adoption, lease replay at start) and what the model costs per machine.
//! The console's frame cost at this size is `MACHINES=10000 LIVE=5000
//! cargo bench --bench console`.
//!
//! `cargo bench --bench scale` (`MACHINES=`, `LEASES=` to change the size)

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use pxedeck::boot::BootDecision;
use pxedeck::boot::arch::Firmware;
use pxedeck::dhcp::DhcpMessage;
use pxedeck::dhcp::handler::Persist;
use pxedeck::dhcp::leases::{Lease, LeaseState};
use pxedeck::dhcp::store::LeaseStore;
use pxedeck::event::{DhcpSeen, Event, EventKind, KnownMachine, Protocol};
use pxedeck::ident::Mac;
use pxedeck::inventory::{Adoption, InventoryService, LoadOptions, load};
use pxedeck::model::Model;

mod common;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let machines = knob("MACHINES", 10_000).clamp(1, 65_536);
    let leases = knob("LEASES", 100_000).clamp(1, 1 << 22);
    // First, while the heap is fresh: later steps free memory that the
    // model would reuse without the RSS growing.
    model_memory(machines, machines / 2);
    inventory(machines);
    lease_replay(leases);
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// Loading the tree, and adopting one machine into it: the adoption writes
/// one file and publishes a new snapshot, which means a whole-tree
/// validation with the new file overlaid.
fn inventory(machines: usize) {
    let groups = 100;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    common::write_inventory(root, machines, groups);
    let opts = LoadOptions::default();
    let first = load(root, &opts);
    assert!(
        first.is_ok(),
        "{:?}",
        &first.problems[..first.problems.len().min(3)]
    );
    let (min, med, max) = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(load(root, &opts));
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    );
    println!(
        "inventory load: {machines} machines in {groups} groups: median {med:.0} ms (min {min:.0}, max {max:.0}, 5 runs)"
    );

    let service = InventoryService::new(root, opts, first.inventory);
    let (min, med, max) = median(
        (0..20u8)
            .map(|n| {
                let adoption = Adoption {
                    macs: vec![Mac([0x02, 0xad, 0, 0, 0, n])],
                    uuid: None,
                    hostname: format!("adopted-{n:02}"),
                    group: "rack-00".into(),
                    profile: "ubuntu".into(),
                    ip: Some(Ipv4Addr::new(10, 250, 0, n + 1)),
                    install: false,
                    ..Default::default()
                };
                let t = Instant::now();
                service.adopt(&[adoption]).expect("adoption");
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    );
    println!(
        "adoption into {machines} machines (write + publish): median {med:.0} ms (min {min:.0}, max {max:.0}, 20 adoptions)"
    );
}

fn mac(n: usize) -> Mac {
    Mac([0x52, 0x54, 0x00, 0x10, (n >> 8) as u8, n as u8])
}

/// Resident memory of the process in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The console's model with every machine known and half of them mid-boot:
/// a DHCP exchange each, and a live transfer with progress.
fn model_memory(machines: usize, booting: usize) {
    let before = rss();
    let t = Instant::now();
    let mut model = Model::default();
    let mut at = 1_000;
    let mut apply = |model: &mut Model, kind| {
        at += 1;
        model.apply(&Event { at, kind });
    };
    apply(
        &mut model,
        EventKind::InventoryReloaded {
            machines: (0..machines)
                .map(|n| KnownMachine {
                    hostname: format!("node-{n:05}"),
                    group: format!("rack-{:02}", n % 100),
                    macs: vec![mac(n)],
                    ip: Some(Ipv4Addr::new(10, 10, (n >> 8) as u8, n as u8)),
                    profile: Some("ubuntu".into()),
                    install: true,
                })
                .collect(),
            profiles: vec!["ubuntu".into()],
            groups: (0..100).map(|g| format!("rack-{g:02}")).collect(),
            group_info: vec![],
        },
    );
    let known = rss();
    for n in 0..booting {
        for message in [DhcpMessage::Discover, DhcpMessage::Request] {
            apply(
                &mut model,
                EventKind::DhcpSeen(DhcpSeen {
                    mac: mac(n),
                    xid: n as u32,
                    message,
                    firmware: Some(Firmware::UefiX64),
                    ipxe: true,
                    vendor_class: Some("PXEClient:Arch:00007:UNDI:003016".into()),
                    uuid: None,
                    relay: None,
                    relay_agent: None,
                    interface: None,
                    rule: None,
                    hostname: Some(format!("node-{n:05}")),
                    decision: BootDecision::Install {
                        profile: "ubuntu".into(),
                    },
                }),
            );
        }
        apply(
            &mut model,
            EventKind::TransferStarted {
                id: n as u64,
                protocol: Protocol::Http,
                client: format!("10.10.{}.{}:4000", n >> 8, n & 255)
                    .parse()
                    .unwrap(),
                mac: Some(mac(n)),
                path: "ubuntu/initrd".into(),
                size: Some(50 << 20),
                blksize: None,
                windowsize: None,
            },
        );
    }
    apply(
        &mut model,
        EventKind::Progress {
            samples: (0..booting as u64).map(|id| (id, id * 1000)).collect(),
        },
    );
    let elapsed = t.elapsed();
    let after = rss();
    std::hint::black_box(&model);
    let per = |bytes: u64, n: usize| bytes as f64 / n.max(1) as f64 / 1024.0;
    println!(
        "model: {machines} known: {:.1} KiB per machine; {booting} booting (DHCP + live transfer): {:.1} KiB more per booting machine; RSS {:.0} MiB in all; built in {:.0} ms",
        per(known.saturating_sub(before), machines),
        per(after.saturating_sub(known), booting),
        after as f64 / (1 << 20) as f64,
        elapsed.as_secs_f64() * 1000.0
    );
}

/// Start-up with a journal of `n` live leases: read, replay, and rewrite
/// the compacted snapshot with its sync, before DHCP answers anyone.
fn lease_replay(n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("leases.jsonl");
    {
        let (mut store, mut table, _) = LeaseStore::open(&path, 0).expect("journal");
        let none: HashMap<Mac, Ipv4Addr> = HashMap::new();
        let mut batch = Vec::with_capacity(1024);
        for i in 0..n as u32 {
            let lease = Lease {
                ip: Ipv4Addr::from(0x0a00_0000 + i),
                mac: Mac([
                    2,
                    0,
                    (i >> 24) as u8,
                    (i >> 16) as u8,
                    (i >> 8) as u8,
                    i as u8,
                ]),
                state: LeaseState::Bound,
                expires: u64::MAX / 2,
                fixed: false,
            };
            table.hold(lease.clone(), &none, 0).expect("hold");
            batch.push(Persist::Bind(lease));
            if batch.len() == 1024 {
                store.commit(&batch, &table).expect("commit");
                batch.clear();
            }
        }
        store.commit(&batch, &table).expect("commit");
    }
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let (min, med, max) = median(
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let (_, table, replayed) = LeaseStore::open(&path, 1).expect("replay");
                assert_eq!(replayed.live, n);
                std::hint::black_box(table);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    );
    println!(
        "lease replay at start: {n} leases ({:.1} MiB journal): median {med:.0} ms (min {min:.0}, max {max:.0}, 3 runs)",
        bytes as f64 / (1 << 20) as f64
    );
}
