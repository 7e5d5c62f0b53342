//! `pxedeck serve`'s DHCP with real clients (busybox udhcpc) in network
//! namespaces: through a real relay (ISC dhcrelay), and across `kill -9`.
//! Root only; skipped loudly where namespaces are not available.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::KillOnDrop;
use common::segment::{Segment, Serve};

const API: &str = "127.0.0.1:8081";
const TOKEN: &str = "t";

/// A config for `pxedeck serve` on the segment, with the given pools.
fn write_config(dir: &Path, seg: &Segment, pools: &[[u8; 3]]) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    let mut text = format!(
        "server:\n  address: {}\n  interface: eth0\ndhcp:\n  lease_file: leases.jsonl\n  pools:\n",
        seg.server_ip()
    );
    for [a, b, c] in pools {
        text.push_str(&format!(
            "    - subnet: {a}.{b}.{c}.0/24\n      range: {a}.{b}.{c}.100-{a}.{b}.{c}.199\n      router: {a}.{b}.{c}.1\n"
        ));
    }
    text.push_str(&format!(
        "http:\n  port: 8080\n  api_listen: {API}\n  api_token: {TOKEN}\nboot_root: boot\ninventory: nodes\n"
    ));
    let path = dir.join("pxedeck.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs udhcpc once in `ns` as `mac` and returns the address it was given.
fn udhcpc(seg: &Segment, ns: &str, mac: &str, dir: &Path) -> Option<Ipv4Addr> {
    let out = dir.join(format!("udhcpc-{}.env", mac.replace(':', "")));
    let hook = dir.join("hook.sh");
    if !hook.exists() {
        common::write_executable(
            &hook,
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" > \"$OUT\"\nexit 0\n",
        );
    }
    let _ = std::fs::remove_file(&out);
    let set_mac = seg
        .exec(ns, "ip")
        .args(["link", "set", "eth0", "address", mac])
        .status()
        .unwrap();
    assert!(set_mac.success());
    let status = seg
        .exec(ns, "timeout")
        .args([
            "20", "busybox", "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-t", "5", "-T", "1", "-s",
        ])
        .arg(&hook)
        .env("OUT", &out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    if !status.success() {
        return None;
    }
    std::fs::read_to_string(&out).ok()?.trim().parse().ok()
}

fn require_busybox() {
    assert!(
        common::have("busybox"),
        "busybox is not installed (.ci/run installs busybox-static)"
    );
}

/// A client two hops away, behind ISC dhcrelay: it gets an address from the
/// pool of the relay's subnet, and the reply travels back via the relay.
#[test]
fn a_relayed_client_gets_its_subnets_pool() {
    require_netns!();
    require_busybox();
    assert!(
        common::have("dhcrelay"),
        "dhcrelay is not installed (.ci/run installs isc-dhcp-relay)"
    );
    let seg = Segment::new();
    let relay_ip = seg.ip(2);
    let relay = seg.host("relay", Some(relay_ip));
    let far = [10, 79, seg.net[2]];
    let client = seg.subnet_behind(&relay, relay_ip, "far", far);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &seg, &[seg.net, far]);
    let serve = Serve::start(&seg.srv, &config, &format!("http://{API}"), TOKEN);
    let _dhcrelay = seg
        .exec(&relay, "dhcrelay")
        .args(["-d", "-4", "-q", "-id", "eth1", "-iu", "eth0"])
        .arg(seg.server_ip().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("start dhcrelay");
    std::thread::sleep(Duration::from_millis(500));

    let mac = "02:79:00:00:00:01";
    let ip = udhcpc(&seg, &client, mac, dir.path())
        .unwrap_or_else(|| panic!("no address through the relay:\n{}", serve.log_text()));
    assert_eq!(ip.octets()[..3], far, "{ip} is not from the relay's subnet");
    assert!((100..=199).contains(&ip.octets()[3]));
    let row = serve.machine(mac).expect("pxedeck saw the machine");
    assert_eq!(
        row["relay"].as_str(),
        Some(format!("{}.{}.{}.1", far[0], far[1], far[2]).as_str()),
        "{row}"
    );
    // The same MAC asks again through the relay: the same address.
    assert_eq!(udhcpc(&seg, &client, mac, dir.path()), Some(ip));
}

/// Leases ACKed before a `kill -9` are all there after a restart: the same
/// MACs get the same addresses back, and a new MAC gets none of them.
#[test]
fn acked_leases_survive_kill_9() {
    require_netns!();
    require_busybox();
    let seg = Segment::new();
    let client = seg.host("c", None);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &seg, &[seg.net]);
    let mut serve = Serve::start(&seg.srv, &config, &format!("http://{API}"), TOKEN);

    const N: u8 = 20;
    let mut bound = BTreeMap::new();
    for i in 1..=N {
        let mac = format!("02:78:00:00:01:{i:02x}");
        let ip = udhcpc(&seg, &client, &mac, dir.path())
            .unwrap_or_else(|| panic!("{mac} got no address:\n{}", serve.log_text()));
        bound.insert(mac, ip);
    }
    // The last client has its ACK; nothing gets a chance to flush.
    serve.kill9();
    let addresses: Vec<Ipv4Addr> = bound.values().copied().collect();
    let mut unique = addresses.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), addresses.len(), "two MACs shared an address");

    let serve = Serve::start(&seg.srv, &config, &format!("http://{API}"), TOKEN);
    let leases = serve.get_json("/api/v1/leases");
    let after: BTreeMap<String, Ipv4Addr> = leases
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mac"].as_str().unwrap().to_string(),
                l["ip"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    for (mac, ip) in &bound {
        assert_eq!(after.get(mac), Some(ip), "lease of {mac} lost");
    }
    // New machines never get a bound address.
    for i in 1..=5u8 {
        let mac = format!("02:78:00:00:02:{i:02x}");
        let ip = udhcpc(&seg, &client, &mac, dir.path()).expect("a new MAC gets an address");
        assert!(
            !addresses.contains(&ip),
            "{mac} got {ip}, bound before the crash"
        );
    }
    // An old one gets its own back.
    let (mac, ip) = bound.iter().next().unwrap();
    assert_eq!(udhcpc(&seg, &client, mac, dir.path()), Some(*ip));
}
