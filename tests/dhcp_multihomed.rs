//! A multi-homed server answers from the address the request came to
//! (IP_PKTINFO, `dhcp::pktinfo`): one DHCP socket on 0.0.0.0:67, two links
//! with an address each, a busybox udhcpc client on the second. Its OFFER
//! and ACK come from the second link's address, name it in option 54, and
//! give an address of that link's pool. Root only; skipped loudly where
//! namespaces are not available.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arc_swap::ArcSwap;
use common::Lab;
use pxedeck::config::Config;
use pxedeck::dhcp::handler::Port;
use pxedeck::dhcp::server::DhcpServer;
use pxedeck::event::Bus;
use pxedeck::inventory::{LoadOptions, load};
use pxedeck::net::{UdpOptions, udp_socket};

/// A second client namespace on its own link to the server, removed on drop.
struct SecondLink {
    ns: String,
}

impl SecondLink {
    fn new(lab: &Lab, server_addr: Ipv4Addr) -> SecondLink {
        let ns = format!("{}-c2", lab.client_ns.trim_end_matches("-c"));
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &ns]);
        let link = SecondLink { ns };
        ip(&["-n", &link.ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &lab.server_ns,
            "link",
            "add",
            "eth1",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &link.ns,
        ]);
        ip(&[
            "-n",
            &lab.server_ns,
            "addr",
            "add",
            &format!("{server_addr}/24"),
            "dev",
            "eth1",
        ]);
        ip(&["-n", &lab.server_ns, "link", "set", "eth1", "up"]);
        ip(&["-n", &link.ns, "link", "set", "eth0", "up"]);
        common::wire_checksums(&lab.server_ns, "eth1");
        common::wire_checksums(&link.ns, "eth0");
        link
    }
}

impl Drop for SecondLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[test]
fn the_reply_comes_from_the_address_the_request_came_to() {
    require_netns!();
    for tool in ["busybox", "tshark"] {
        assert!(
            common::have(tool),
            "{tool} is not installed (.ci/run installs busybox-static, tshark)"
        );
    }
    let lab = Lab::new();
    let [a, b, c, _] = lab.server_ip.octets();
    let second = Ipv4Addr::new(a, b.wrapping_sub(11), c, 1);
    let [_, b2, _, _] = second.octets();
    let link = SecondLink::new(&lab, second);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "server:\n  address: {srv}\ndhcp:\n  lease_file: {lf}\n  pools:\n    - subnet: {a}.{b}.{c}.0/24\n      range: {a}.{b}.{c}.100-{a}.{b}.{c}.150\n    - subnet: {a}.{b2}.{c}.0/24\n      range: {a}.{b2}.{c}.100-{a}.{b2}.{c}.150\n",
        srv = lab.server_ip,
        lf = dir.path().join("leases.jsonl").display(),
    );
    let config = Arc::new(Config::from_text(&text, None).unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
    let inv = load(&root, &LoadOptions::default()).inventory;
    let server = Arc::new(
        DhcpServer::new(
            config,
            Arc::new(ArcSwap::from_pointee(inv)),
            Bus::default(),
            format!("http://{}", lab.server_ip),
            Box::new(|_: &str| true),
        )
        .unwrap(),
    );
    let s = server.clone();
    let _thread = lab.serve(move |cancel| async move {
        // No interface: one socket for both links.
        let opts = UdpOptions {
            broadcast: true,
            buffer: 1 << 20,
            ..Default::default()
        };
        let socket = udp_socket("0.0.0.0:67".parse().unwrap(), &opts).expect("bind 67");
        s.serve(socket, Port::Dhcp, cancel).await;
    });

    let pcap = dir.path().join("replies.pcap");
    let err = dir.path().join("tshark.err");
    let mut tshark = common::KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &link.ns, "tshark", "-q", "-i", "eth0"])
            .args([
                "-f",
                "udp src port 67",
                "-c",
                "2",
                "-a",
                "duration:40",
                "-w",
            ])
            .arg(&pcap)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&err).is_ok_and(|t| t.contains("Capture started")) {
        assert!(start.elapsed().as_secs() < 20, "tshark did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));

    let hook = dir.path().join("hook.sh");
    let out = dir.path().join("udhcpc.env");
    common::write_executable(
        &hook,
        &format!("#!/bin/sh\nenv >> {}\nexit 0\n", out.display()),
    );
    let status = Command::new("ip")
        .args([
            "netns", "exec", &link.ns, "timeout", "20", "busybox", "udhcpc",
        ])
        .args(["-f", "-q", "-n", "-i", "eth0", "-t", "5", "-T", "1", "-s"])
        .arg(&hook)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let dump = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        status.success(),
        "udhcpc on the second link got nothing:\n{dump}"
    );
    let value = |k: &str| {
        dump.lines()
            .rev()
            .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(value("serverid"), second.to_string(), "option 54");
    let ip: Ipv4Addr = value("ip").parse().unwrap();
    assert_eq!(
        ip.octets()[..3],
        second.octets()[..3],
        "the second link's pool"
    );

    let _ = tshark.0.wait();
    let fields = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-T", "fields", "-e", "ip.src", "-e", "dhcp.option.dhcp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fields.stdout);
    let sources: Vec<&str> = text.lines().collect();
    assert_eq!(sources.len(), 2, "OFFER and ACK: {text}");
    for line in sources {
        assert!(
            line.starts_with(&format!("{second}\t")),
            "a reply not from {second}: {line:?}"
        );
    }
}
