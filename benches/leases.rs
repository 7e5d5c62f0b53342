//! The cost of durable leases: binds per second with an fdatasync per
//! DHCPACK, on this machine's disk (`cargo bench --bench leases`).

use std::collections::HashMap;
use std::time::Instant;

use pxedeck::dhcp::handler::Persist;
use pxedeck::dhcp::leases::{Lease, LeaseState};
use pxedeck::dhcp::store::LeaseStore;
use pxedeck::ident::Mac;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("leases.jsonl");
    let (mut store, mut table, _) = LeaseStore::open(&path, 0).unwrap();
    let none: HashMap<Mac, std::net::Ipv4Addr> = HashMap::new();
    let n = 5000u32;
    let mut per_run = Vec::new();
    for run in 0..5u32 {
        let t = Instant::now();
        for i in 0..n {
            let lease = bound_lease(run, n, i);
            table.hold(lease.clone(), &none, 0).unwrap();
            store.bind(&lease, &table).unwrap();
        }
        per_run.push(t.elapsed().as_secs_f64());
    }
    report("one fdatasync per bind", n, per_run);

    // Group commit, as the DHCP socket loop does: one sync per batch of 64.
    let mut per_run = Vec::new();
    for run in 5..10u32 {
        let t = Instant::now();
        let mut batch = Vec::with_capacity(64);
        for i in 0..n {
            let lease = bound_lease(run, n, i);
            table.hold(lease.clone(), &none, 0).unwrap();
            batch.push(Persist::Bind(lease));
            if batch.len() == 64 || i + 1 == n {
                store.commit(&batch, &table).unwrap();
                batch.clear();
            }
        }
        per_run.push(t.elapsed().as_secs_f64());
    }
    report("one fdatasync per 64 binds", n, per_run);
}

/// The i-th of n distinct bound leases of a run (each run its own MACs
/// and addresses).
fn bound_lease(run: u32, n: u32, i: u32) -> Lease {
    Lease {
        ip: std::net::Ipv4Addr::from(0x0a00_0000 + run * n + i),
        mac: Mac([2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, run as u8]),
        state: LeaseState::Bound,
        expires: 1_000_000,
        fixed: false,
    }
}

fn report(what: &str, n: u32, mut per_run: Vec<f64>) {
    per_run.sort_by(f64::total_cmp);
    let median = per_run[per_run.len() / 2];
    println!(
        "lease journal, {what}: {n} binds in {:.3} s → {:.0} binds/s, {:.1} µs per bind (median of {} runs)",
        median,
        f64::from(n) / median,
        median / f64::from(n) * 1e6,
        per_run.len()
    );
}
