//! Option 82 (RFC 3046) through a real relay: ISC dhcrelay with `-a`
//! (add circuit-id), `-D` (drop replies whose option 82 does not match what
//! it added) and `-m replace`, a busybox udhcpc client behind it, and
//! `pxedeck serve` on the server segment. With `-D` this dhcrelay drops a
//! reply that lacks the option 82 it added (checked by turning the echo in
//! `dhcp::reply` off: the client then gets no address), so the lease below
//! comes only through the echo. Root only; skipped loudly where namespaces
//! are not available.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::KillOnDrop;
use common::segment::{Segment, Serve};

const API: &str = "127.0.0.1:8081";
const TOKEN: &str = "t";

/// Two pools on the relay's far subnet: one only for circuit-id `eth1`
/// (the relay's client-side interface, as dhcrelay `-a` names it), and a
/// catch-all the relayed client must not get.
fn write_config(dir: &Path, seg: &Segment, far: [u8; 3]) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    let [a, b, c] = far;
    let text = format!(
        "server:\n  address: {srv}\n  interface: eth0\ndhcp:\n  lease_file: leases.jsonl\n  pools:\n\
         \x20   - subnet: {a}.{b}.{c}.0/24\n      range: {a}.{b}.{c}.200-{a}.{b}.{c}.209\n      router: {a}.{b}.{c}.1\n\
         \x20   - subnet: {a}.{b}.{c}.0/24\n      range: {a}.{b}.{c}.100-{a}.{b}.{c}.109\n      router: {a}.{b}.{c}.1\n      match:\n        circuit_id: eth1\n\
         http:\n  port: 8080\n  api_listen: {API}\n  api_token: {TOKEN}\nboot_root: boot\ninventory: nodes\n",
        srv = seg.server_ip(),
    );
    let path = dir.join("pxedeck.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_client_behind_dhcrelay_a_gets_its_ports_pool_and_the_echo() {
    require_netns!();
    for tool in ["busybox", "dhcrelay", "tshark"] {
        assert!(
            common::have(tool),
            "{tool} is not installed (.ci/run installs busybox-static, isc-dhcp-relay, tshark)"
        );
    }
    let seg = Segment::new();
    let relay_ip = seg.ip(2);
    let relay = seg.host("relay", Some(relay_ip));
    let far = [10, 76, seg.net[2]];
    let client = seg.subnet_behind(&relay, relay_ip, "far", far);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &seg, far);
    let serve = Serve::start(&seg.srv, &config, &format!("http://{API}"), TOKEN);

    // What the server sends the relay, captured on the relay's upstream
    // side: DISCOVER, OFFER, REQUEST, ACK, then tshark ends by itself.
    let pcap = dir.path().join("upstream.pcap");
    let mut capture = seg
        .exec(&relay, "tshark")
        .args(["-q", "-i", "eth0", "-f", "udp port 67", "-c", "4"])
        .args(["-a", "duration:30", "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("tshark.err")).unwrap())
        .spawn()
        .map(KillOnDrop)
        .expect("start tshark");
    let _dhcrelay = seg
        .exec(&relay, "dhcrelay")
        .args([
            "-d", "-4", "-q", "-a", "-D", "-m", "replace", "-id", "eth1", "-iu", "eth0",
        ])
        .arg(seg.server_ip().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("start dhcrelay");
    // tshark takes seconds to load its dissectors: wait until it captures.
    let started = serve.wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(dir.path().join("tshark.err"))
            .is_ok_and(|t| t.contains("Capture started"))
    });
    assert!(started, "tshark did not start capturing");
    std::thread::sleep(Duration::from_millis(500));

    let mac = "02:76:00:00:00:01";
    assert!(
        seg.exec(&client, "ip")
            .args(["link", "set", "eth0", "address", mac])
            .status()
            .unwrap()
            .success()
    );
    let hook = dir.path().join("hook.sh");
    let out = dir.path().join("udhcpc.ip");
    common::write_executable(
        &hook,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" > \"$OUT\"\nexit 0\n",
    );
    let status = seg
        .exec(&client, "timeout")
        .args([
            "20", "busybox", "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-t", "5", "-T", "1", "-s",
        ])
        .arg(&hook)
        .env("OUT", &out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "no address through dhcrelay -a:\n{}",
        serve.log_text()
    );
    let ip: Ipv4Addr = std::fs::read_to_string(&out)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(ip.octets()[..3], far);
    assert!(
        (100..=109).contains(&ip.octets()[3]),
        "{ip}: not the pool that matches circuit-id eth1"
    );

    // The console's row (the API's machine view) shows the port.
    let row = serve.machine(mac).expect("pxedeck saw the machine");
    assert_eq!(
        row["relay_agent"]["circuit_id"].as_str(),
        Some("eth1"),
        "{row}"
    );

    // The server's OFFER and ACK carried option 82 back, unchanged.
    let _ = capture.0.wait();
    let fields = seg
        .exec(&relay, "tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-Y",
            "dhcp.option.dhcp == 2 || dhcp.option.dhcp == 5",
            "-T",
            "fields",
            "-e",
            "dhcp.option.dhcp",
            "-e",
            "dhcp.option.agent_information_option.agent_circuit_id",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fields.stdout);
    let replies: Vec<&str> = text.lines().collect();
    assert!(
        replies.len() >= 2,
        "no OFFER and ACK captured: {text}\n{}",
        std::fs::read_to_string(dir.path().join("tshark.err")).unwrap_or_default()
    );
    for line in &replies {
        // tshark prints the circuit-id as hex bytes: "eth1".
        assert!(
            line.ends_with("65746831"),
            "a reply without the echo: {line:?}"
        );
    }
}
