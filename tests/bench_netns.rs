//! `pxedeck bench` as a relay agent (root only): simulated machines on a
//! routed subnet, DHCP relayed with giaddr, TFTP and HTTP sent from each
//! machine's own lease, against `pxedeck serve` in another namespace.
//! This is how the mass-boot benchmark reaches servers that never answer a
//! client at its source port (benches/peer-boot.sh runs it against
//! dnsmasq + nginx), so it must boot every machine, and pxedeck must see
//! each one as itself: its address from the relay's pool, its configs
//! served only to that address.
//!
//! ```text
//!   srv (x.y.z.1, pxedeck serve) ── bridge ── bench (x.y.z.50): relay
//!   10.79.t.0/24 routed via x.y.z.50, where every address of it is local
//! ```

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::Command;

use common::segment::{Segment, Serve};

const API: &str = "127.0.0.1:9000";
const TOKEN: &str = "t";
const MACHINES: usize = 40;

#[test]
fn relayed_mass_boot_installs_every_machine() {
    require_netns!();
    let seg = Segment::new();
    let bench_ip = seg.ip(50);
    let bench = seg.host("bench", Some(bench_ip));
    let far = [10, 79, seg.net[2]];
    let far_subnet = format!("{}.{}.{}.0/24", far[0], far[1], far[2]);
    let relay = Ipv4Addr::new(far[0], far[1], far[2], 1);
    let route = |ns: &str, args: &[&str]| {
        let ok = seg.exec(ns, "ip").arg("route").args(args).status().unwrap();
        assert!(ok.success(), "ip route {args:?} in {ns}");
    };
    route(
        &seg.srv,
        &["add", &far_subnet, "via", &bench_ip.to_string()],
    );
    route(&bench, &["add", "local", &far_subnet, "dev", "lo"]);

    // The bench's own world (inventory, boot root), served from srv.
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    let prepared = Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .args(["bench", "--prepare"])
        .arg(&world)
        .args(["-n", &MACHINES.to_string()])
        .args([
            "--loader-mib",
            "0.25",
            "--kernel-mib",
            "1",
            "--initrd-mib",
            "2",
        ])
        .output()
        .unwrap();
    assert!(prepared.status.success(), "{prepared:?}");
    let config = world.join("pxedeck.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{address: {srv}}}\n\
             dhcp:\n  proxy_port: 0\n  lease_file: leases.jsonl\n  pools:\n    \
             - {{subnet: {far_subnet}, range: {a}.{b}.{c}.10-{a}.{b}.{c}.250, router: {relay}}}\n\
             http: {{port: 80, api_listen: \"{API}\", api_token: {TOKEN}}}\n\
             unknown: {{policy: hold}}\nboot_root: boot\ninventory: nodes\n",
            srv = seg.server_ip(),
            a = far[0],
            b = far[1],
            c = far[2],
        ),
    )
    .unwrap();
    let serve = Serve::start(&seg.srv, &config, &format!("http://{API}"), TOKEN);

    let out = seg
        .exec(&bench, env!("CARGO_BIN_EXE_pxedeck"))
        .args(["bench", "-n", &MACHINES.to_string(), "--target"])
        .arg(format!("{}:67", seg.server_ip()))
        .arg("--world")
        .arg(&world)
        .args(["--relay", &relay.to_string(), "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        serve.log_text()
    );
    let result: serde_json::Value = serde_json::from_str(&text).unwrap();
    let report = &result["report"];
    assert_eq!(report["outcomes"]["installed"], MACHINES, "{report}");
    assert_eq!(report["failures"].as_array().unwrap().len(), 0);
    for phase in [
        "dhcp",
        "loader",
        "ipxe_dhcp",
        "script",
        "kernel",
        "initrd",
        "done",
    ] {
        assert_eq!(report["phases"][phase]["count"], MACHINES, "{phase}");
    }

    // pxedeck's side: every machine came through the relay, holds its own
    // address from the relay's pool, and was installed (its done callback
    // came from that address, or it would have been refused).
    let machines = serve.get_json("/api/v1/machines");
    let rows = machines.as_array().unwrap();
    assert_eq!(rows.len(), MACHINES, "{machines}");
    let mut addresses = HashSet::new();
    for row in rows {
        assert_eq!(
            row["relay"].as_str(),
            Some(relay.to_string().as_str()),
            "{row}"
        );
        assert_eq!(row["state"].as_str(), Some("installed"), "{row}");
        let ip: Ipv4Addr = row["ip"].as_str().unwrap().parse().unwrap();
        assert_eq!(ip.octets()[..3], far, "{row}");
        addresses.insert(ip);
    }
    assert_eq!(
        addresses.len(),
        MACHINES,
        "addresses shared between machines"
    );
    let edited = std::fs::read_dir(world.join("nodes/rack1"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter(|text| text.contains("install: false"))
        .count();
    assert_eq!(edited, MACHINES, "every node file records the install");
}
