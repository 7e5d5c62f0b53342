//! pxedeck's DHCP server against real clients — busybox udhcpc, ISC
//! dhclient and dhcpcd — across a veth pair between two namespaces. Each
//! must get an address in the pool with pxedeck as next-server and the boot
//! file for its kind. Root only; skipped loudly where namespaces are not
//! available.

mod common;

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use common::Lab;
use pxedeck::config::Config;
use pxedeck::dhcp::handler::Port;
use pxedeck::dhcp::server::DhcpServer;
use pxedeck::event::Bus;
use pxedeck::inventory::{LoadOptions, load};
use pxedeck::net::{UdpOptions, udp_socket};

struct Setup {
    lab: Lab,
    dir: tempfile::TempDir,
    server: Arc<DhcpServer>,
    _thread: common::ServerThread,
}

fn setup() -> Setup {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let net = lab.server_ip.octets();
    let text = format!(
        "server:\n  address: {srv}\n  interface: eth0\ndhcp:\n  lease_file: {lf}\n  pools:\n    - subnet: {a}.{b}.{c}.0/24\n      range: {a}.{b}.{c}.100-{a}.{b}.{c}.150\n      router: {srv}\n      dns: [{srv}]\n",
        srv = lab.server_ip,
        lf = dir.path().join("leases.jsonl").display(),
        a = net[0],
        b = net[1],
        c = net[2],
    );
    let config = Arc::new(Config::from_text(&text, None).unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
    let inv = load(&root, &LoadOptions::default()).inventory;
    let base = format!("http://{}", lab.server_ip);
    let server = Arc::new(
        DhcpServer::new(
            config,
            Arc::new(ArcSwap::from_pointee(inv)),
            Bus::default(),
            base,
            Box::new(|_: &str| true),
        )
        .unwrap(),
    );
    let s = server.clone();
    let thread = lab.serve(move |cancel| async move {
        let opts = UdpOptions {
            interface: Some("eth0"),
            broadcast: true,
            buffer: 1 << 20,
            ..Default::default()
        };
        let socket = udp_socket("0.0.0.0:67".parse().unwrap(), &opts).expect("bind 67 in the lab");
        s.serve(socket, Port::Dhcp, cancel).await;
    });
    Setup {
        lab,
        dir,
        server,
        _thread: thread,
    }
}

/// A hook script that dumps the client's environment to `out`.
fn dump_script(dir: &Path, out: &Path) -> String {
    let script = dir.join(format!(
        "hook-{}.sh",
        out.file_name().unwrap().to_string_lossy()
    ));
    common::write_executable(
        &script,
        &format!("#!/bin/sh\nenv >> {}\nexit 0\n", out.display()),
    );
    script.to_string_lossy().into_owned()
}

fn env_value(dump: &str, key: &str) -> Option<String> {
    dump.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn in_pool(s: &Setup, ip: &str) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let o = ip.octets();
    o[..3] == s.lab.server_ip.octets()[..3] && (100..=150).contains(&o[3])
}

#[test]
fn udhcpc_gets_an_address_next_server_and_boot_file() {
    require_netns!();
    assert!(
        common::have("busybox"),
        "busybox is not installed (.ci/run installs it)"
    );
    let s = setup();
    let out = s.dir.path().join("udhcpc.env");
    let script = dump_script(s.dir.path(), &out);
    // PXE-style vendor class so the client gets boot information too.
    let o = s.lab.client(
        20,
        &[
            "busybox",
            "udhcpc",
            "-f",
            "-q",
            "-n",
            "-i",
            "eth0",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            &script,
            "-V",
            "PXEClient:Arch:00000:UNDI:002001",
        ],
    );
    let dump = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        o.status.success(),
        "udhcpc failed: {}\n{dump}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ip = env_value(&dump, "ip").expect("udhcpc reported no ip");
    assert!(in_pool(&s, &ip), "{ip} not in the pool");
    assert_eq!(
        env_value(&dump, "siaddr").as_deref(),
        Some(s.lab.server_ip.to_string().as_str())
    );
    assert_eq!(
        env_value(&dump, "boot_file").as_deref(),
        Some("undionly.kpxe")
    );
    assert_eq!(
        env_value(&dump, "serverid").as_deref(),
        Some(s.lab.server_ip.to_string().as_str())
    );
    assert_eq!(s.server.leases().len(), 1);
}

#[test]
fn dhclient_gets_an_address_router_and_server_id() {
    require_netns!();
    assert!(
        common::have("dhclient"),
        "isc-dhcp-client is not installed (.ci/run installs it)"
    );
    let s = setup();
    let out = s.dir.path().join("dhclient.env");
    let script = dump_script(s.dir.path(), &out);
    let lf = s.dir.path().join("dhclient.leases");
    let pf = s.dir.path().join("dhclient.pid");
    // Without -d, dhclient goes to the background once bound (its normal
    // behaviour); the lab kills it on drop.
    let o = s.lab.client(
        30,
        &[
            "dhclient",
            "-1",
            "-4",
            "-lf",
            lf.to_str().unwrap(),
            "-pf",
            pf.to_str().unwrap(),
            "-sf",
            &script,
            "eth0",
        ],
    );
    let dump = std::fs::read_to_string(&out).unwrap_or_default();
    let ip = env_value(&dump, "new_ip_address").unwrap_or_else(|| {
        panic!(
            "dhclient got no address: {}\n{dump}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(in_pool(&s, &ip), "{ip} not in the pool");
    assert_eq!(
        env_value(&dump, "new_dhcp_server_identifier").as_deref(),
        Some(s.lab.server_ip.to_string().as_str())
    );
    assert_eq!(
        env_value(&dump, "new_routers").as_deref(),
        Some(s.lab.server_ip.to_string().as_str())
    );
}

#[test]
fn dhcpcd_gets_an_address() {
    require_netns!();
    assert!(
        common::have("dhcpcd"),
        "dhcpcd is not installed (.ci/run installs it)"
    );
    let s = setup();
    let out = s.dir.path().join("dhcpcd.env");
    let script = dump_script(s.dir.path(), &out);
    // dhcpcd keeps state in /var/lib/dhcpcd and /run: give it private ones,
    // and no random start delay.
    let cmd = format!(
        "mount -t tmpfs none /var/lib/dhcpcd 2>/dev/null || mkdir -p /var/lib/dhcpcd; \
         dhcpcd --oneshot --ipv4only --nobackground --noipv4ll --nodelay --timeout 15 \
         --script {script} --clientid eth0"
    );
    let o = s.lab.client(30, &["unshare", "-m", "sh", "-c", &cmd]);
    let dump = std::fs::read_to_string(&out).unwrap_or_default();
    let ip = env_value(&dump, "new_ip_address").unwrap_or_else(|| {
        panic!(
            "dhcpcd got no address: {}\n{dump}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(in_pool(&s, &ip), "{ip} not in the pool");
}
