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
    setup_with("")
}

/// The lab with `pool_extra` (indented keys) added to its one pool.
fn setup_with(pool_extra: &str) -> Setup {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let net = lab.server_ip.octets();
    let text = format!(
        "server:\n  address: {srv}\n  interface: eth0\ndhcp:\n  lease_file: {lf}\n  pools:\n    - subnet: {a}.{b}.{c}.0/24\n      range: {a}.{b}.{c}.100-{a}.{b}.{c}.150\n      router: {srv}\n      dns: [{srv}]\n{pool_extra}",
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

/// Starts tshark in `ns` on eth0 with a capture filter, ending by itself
/// after `count` packets, and waits until it captures (it takes seconds to
/// load its dissectors).
fn capture(ns: &str, filter: &str, count: u32, pcap: &Path) -> common::KillOnDrop {
    let err = pcap.with_extension("err");
    let child = std::process::Command::new("ip")
        .args([
            "netns", "exec", ns, "tshark", "-q", "-i", "eth0", "-f", filter,
        ])
        .args(["-c", &count.to_string(), "-a", "duration:40", "-w"])
        .arg(pcap)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start tshark");
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&err).is_ok_and(|t| t.contains("Capture started")) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "tshark did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    common::KillOnDrop(child)
}

/// The given fields of every DHCP packet in a capture, one line each.
fn fields(pcap: &Path, names: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=|"]);
    for n in names {
        cmd.args(["-e", n]);
    }
    let out = cmd.output().expect("tshark -r");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// A UEFI stack that sends its architecture only in option 60
/// (`PXEClient:Arch:00007:…`, no option 93) is offered the UEFI loader,
/// not the BIOS one: the OFFER's `file` field as captured on the wire.
#[test]
fn dhcpcd_with_only_a_uefi_vendor_class_is_offered_ipxe_efi() {
    require_netns!();
    for tool in ["dhcpcd", "tshark"] {
        assert!(
            common::have(tool),
            "{tool} is not installed (.ci/run installs dhcpcd-base, tshark)"
        );
    }
    let s = setup();
    let pcap = s.dir.path().join("replies.pcap");
    // DISCOVER, OFFER, REQUEST, ACK.
    let mut tshark = capture(&s.lab.client_ns, "udp port 67", 4, &pcap);
    let out = s.dir.path().join("dhcpcd.env");
    let script = dump_script(s.dir.path(), &out);
    // A config of its own: Debian's /etc/dhcpcd.conf sets an empty
    // `vendorclassid`, which wins over the command line.
    let conf = s.dir.path().join("dhcpcd.conf");
    std::fs::write(&conf, "vendorclassid PXEClient:Arch:00007:UNDI:003016\n").unwrap();
    // A private /run/dhcpcd too: its control socket there would make this
    // dhcpcd talk to the other test's instead of running.
    let cmd = format!(
        "mount -t tmpfs none /var/lib/dhcpcd 2>/dev/null || mkdir -p /var/lib/dhcpcd; \
         mkdir -p /run/dhcpcd && mount -t tmpfs none /run/dhcpcd; \
         dhcpcd --config {conf} --oneshot --ipv4only --nobackground --noipv4ll --nodelay \
         --timeout 15 --script {script} eth0",
        conf = conf.display()
    );
    let o = s.lab.client(30, &["unshare", "-m", "sh", "-c", &cmd]);
    let dump = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        env_value(&dump, "new_ip_address").is_some(),
        "dhcpcd got no address: {}\n{dump}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = tshark.0.wait();
    let rows = fields(
        &pcap,
        &[
            "dhcp.option.dhcp",
            "dhcp.file",
            "dhcp.option.client_system_architecture",
            "dhcp.option.vendor_class_id",
        ],
    );
    let discover = rows
        .iter()
        .find(|r| r[0] == "1")
        .unwrap_or_else(|| panic!("no DISCOVER captured: {rows:?}"));
    assert_eq!(
        (discover[2].as_str(), discover[3].as_str()),
        ("", "PXEClient:Arch:00007:UNDI:003016"),
        "the client sent no option 93, only option 60"
    );
    let offer = rows
        .iter()
        .find(|r| r[0] == "2")
        .unwrap_or_else(|| panic!("no OFFER captured: {rows:?}"));
    assert_eq!(offer[1], "ipxe.efi", "{rows:?}\n{dump}");
    assert_eq!(
        env_value(&dump, "new_filename").as_deref(),
        Some("ipxe.efi"),
        "dhcpcd read the same boot file"
    );
}

/// Operator-defined options reach a real client, decoded by it: dhclient
/// asks for NTP (42), MTU (26), domain search (119, compressed) and
/// classless static routes (121) in its option 55 and hands what it got to
/// its `-sf` script.
#[test]
fn dhclient_decodes_the_operator_options_it_asks_for() {
    require_netns!();
    assert!(
        common::have("dhclient"),
        "isc-dhcp-client is not installed (.ci/run installs it)"
    );
    let s = setup_with(
        "      options:\n        ntp-servers: [10.77.0.123, 10.77.0.124]\n        mtu: 1400\n        domain-search: [dev.prov.example.net, prov.example.net]\n        classless-static-routes: [\"10.20.0.0/16 via 10.77.0.254\", \"0.0.0.0/0 via 10.77.0.1\"]\n        224: {type: string, value: not-asked-for}\n",
    );
    let out = s.dir.path().join("dhclient.env");
    let script = dump_script(s.dir.path(), &out);
    let conf = s.dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n\
         option site-224 code 224 = text;\n\
         request subnet-mask, routers, ntp-servers, interface-mtu, domain-search, \
         rfc3442-classless-static-routes;\n",
    )
    .unwrap();
    let lf = s.dir.path().join("dhclient.leases");
    let pf = s.dir.path().join("dhclient.pid");
    let o = s.lab.client(
        30,
        &[
            "dhclient",
            "-1",
            "-4",
            "-cf",
            conf.to_str().unwrap(),
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
    assert!(
        env_value(&dump, "new_ip_address").is_some(),
        "dhclient got no address: {}\n{dump}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = |k: &str| env_value(&dump, k).unwrap_or_default();
    assert_eq!(v("new_ntp_servers"), "10.77.0.123 10.77.0.124", "{dump}");
    assert_eq!(v("new_interface_mtu"), "1400");
    assert_eq!(
        v("new_domain_search").trim_matches(['\'', '"']),
        "dev.prov.example.net. prov.example.net."
    );
    assert_eq!(
        v("new_rfc3442_classless_static_routes"),
        "16 10 20 10 77 0 254 0 10 77 0 1"
    );
    assert_eq!(
        env_value(&dump, "new_site_224"),
        None,
        "not asked for, not sent"
    );
}
