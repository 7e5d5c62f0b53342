//! Several interfaces in one instance (`interfaces:`): one pxedeck, started
//! as `serve` starts it, in a server namespace with two segments, a real
//! client on each. busybox udhcpc on each segment gets an address of its
//! segment's pool with that segment's address as server identifier and
//! next-server; curl fetches the boot script and finds its URLs on its
//! segment's address; tftp-hpa fetches the loader from its segment's
//! address, and the GRUB configs it fetches name that address too. A third
//! segment in proxy mode answers a PXE DISCOVER with boot information only;
//! a fourth, on the server but not listed, is not answered at all. Root only; skipped loudly where namespaces are not
//! available. Namespaces and links are named `s7r-…` and removed on drop.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pxedeck::config::Config;
use pxedeck::dhcp::wire::{Packet, msg, opt};
use pxedeck::net::{UdpOptions, udp_socket};
use pxedeck::services::Services;
use tokio_util::sync::CancellationToken;

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the ip command")
}

fn must(args: &[&str]) {
    let o = ip(args);
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A server namespace with one link per segment to a client namespace.
struct Segments {
    server: String,
    clients: Vec<String>,
}

/// Three listed segments, and a fourth the server has but does not list
/// (the management LAN of a real host).
const SEGMENTS: [&str; 4] = ["10.61.1", "10.61.2", "10.61.3", "10.61.4"];

/// The MAC of segment `i`'s client.
fn client_mac(i: usize) -> String {
    format!("52:54:00:61:01:0{i}")
}

impl Segments {
    fn new() -> Segments {
        let pid = std::process::id();
        // Leftovers of a crashed run of this test.
        if let Ok(list) = String::from_utf8(ip(&["netns", "list"]).stdout) {
            for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
                if ns.starts_with("s7r-mi-") && !ns.starts_with(&format!("s7r-mi-{pid}-")) {
                    let _ = ip(&["netns", "del", ns]);
                }
            }
        }
        let s = Segments {
            server: format!("s7r-mi-{pid}-s"),
            clients: (0..SEGMENTS.len())
                .map(|i| format!("s7r-mi-{pid}-{i}"))
                .collect(),
        };
        for ns in std::iter::once(&s.server).chain(&s.clients) {
            must(&["netns", "add", ns]);
            must(&["-n", ns, "link", "set", "lo", "up"]);
        }
        for (i, (client, net)) in s.clients.iter().zip(SEGMENTS).enumerate() {
            let dev = format!("s7r{i}");
            must(&[
                "-n", &s.server, "link", "add", &dev, "type", "veth", "peer", "name", "eth0",
                "netns", client,
            ]);
            must(&[
                "-n",
                &s.server,
                "addr",
                "add",
                &format!("{net}.1/24"),
                "dev",
                &dev,
            ]);
            must(&["-n", &s.server, "link", "set", &dev, "up"]);
            // A MAC of our own, for the machine files the test writes.
            must(&[
                "-n",
                client,
                "link",
                "set",
                "eth0",
                "address",
                &client_mac(i),
            ]);
            must(&["-n", client, "link", "set", "eth0", "up"]);
            common::wire_checksums(&s.server, &dev);
            common::wire_checksums(client, "eth0");
        }
        s
    }

    fn client(&self, i: usize, secs: u32, cmd: &[&str]) -> Output {
        let secs = secs.to_string();
        let mut args = vec![
            "netns",
            "exec",
            &self.clients[i],
            "timeout",
            "-k",
            "2",
            &secs,
        ];
        args.extend_from_slice(cmd);
        Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run a client")
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        for ns in std::iter::once(&self.server).chain(&self.clients) {
            if let Ok(out) = String::from_utf8(ip(&["netns", "pids", ns]).stdout) {
                for pid in out.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `make` on a thread inside namespace `ns`, on a runtime built there
/// (every socket and thread the services make lives in it).
fn in_netns<F, Fut>(ns: &str, make: F) -> (CancellationToken, std::thread::JoinHandle<()>)
where
    F: FnOnce(CancellationToken, std::sync::mpsc::Sender<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let path = format!("/run/netns/{ns}");
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let join = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(make(token, ready_tx));
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(30));
    (cancel, join)
}

fn config_text(dir: &Path) -> String {
    format!(
        "interfaces:\n\
         \x20 - {{name: s7r0, address: 10.61.1.1}}\n\
         \x20 - {{name: s7r1, address: 10.61.2.1}}\n\
         \x20 - {{name: s7r2, address: 10.61.3.1, mode: proxy}}\n\
         dhcp:\n  lease_file: {dir}/leases.jsonl\n  pools:\n\
         \x20   - subnet: 10.61.1.0/24\n      range: 10.61.1.100-10.61.1.150\n\
         \x20   - subnet: 10.61.2.0/24\n      range: 10.61.2.100-10.61.2.150\n\
         \x20   - subnet: 10.61.4.0/24\n      range: 10.61.4.100-10.61.4.150\n\
         http:\n  port: 80\n  api_listen: 127.0.0.1:8081\n\
         unknown:\n  policy: hold\n\
         boot_root: {dir}/boot\ninventory: {dir}/nodes\n",
        dir = dir.display()
    )
}

/// A PXE DISCOVER broadcast on the client's eth0 and the reply it gets
/// (run inside the client namespace).
fn pxe_discover(ns: &str, mac: [u8; 6]) -> Option<Packet> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let opts = UdpOptions {
                interface: Some("eth0"),
                broadcast: true,
                ..Default::default()
            };
            let socket = udp_socket("0.0.0.0:68".parse().unwrap(), &opts).expect("bind 68");
            let mut p = Packet::client_request(mac, 0x5eed, msg::DISCOVER);
            p.set_option(opt::CLASS_ID, b"PXEClient:Arch:00000:UNDI:002001".to_vec());
            p.set_option(opt::CLIENT_ARCH, 0u16.to_be_bytes());
            let to: SocketAddr = "255.255.255.255:67".parse().unwrap();
            let mut buf = vec![0u8; 1500];
            for _ in 0..5 {
                socket.send_to(&p.encode(), to).await.ok()?;
                let got =
                    tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await;
                if let Ok(Ok((n, _))) = got
                    && let Ok(reply) = Packet::decode(&buf[..n])
                    && reply.xid == 0x5eed
                {
                    return Some(reply);
                }
            }
            None
        })
    })
    .join()
    .unwrap()
}

#[test]
fn one_instance_serves_two_segments_each_from_its_own_address() {
    require_netns!();
    for tool in ["busybox", "curl", "tftp"] {
        assert!(
            common::have(tool),
            "{tool} is not installed (.ci/run installs busybox-static, curl, tftp-hpa)"
        );
    }
    let segments = Segments::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nodes")).unwrap();
    std::fs::create_dir_all(dir.path().join("boot")).unwrap();
    std::fs::write(dir.path().join("boot/undionly.kpxe"), vec![7u8; 70_000]).unwrap();
    std::fs::create_dir_all(dir.path().join("nodes/_profiles")).unwrap();
    std::fs::write(
        dir.path().join("nodes/_profiles/sb.yaml"),
        "secure_boot: true\nboot:\n  kernel: debian/vmlinuz\n  initrd: debian/initrd.gz\n  \
         cmdline: pxedeck.config={{ config_url }}/preseed\n\
         configs:\n  preseed: \"hello {{ hostname }}\"\n",
    )
    .unwrap();
    for i in 0..2 {
        std::fs::write(
            dir.path().join(format!("nodes/sb-{i}.yaml")),
            format!("mac: \"{}\"\nprofile: sb\ninstall: true\n", client_mac(i)),
        )
        .unwrap();
    }
    let config_path = dir.path().join("pxedeck.yaml");
    std::fs::write(&config_path, config_text(dir.path())).unwrap();
    let config = Config::load(Some(&config_path)).unwrap();
    assert!(config.multihomed());

    let (cancel, join) = in_netns(&segments.server, move |cancel, ready| async move {
        let services = Services::start(config).await.expect("services start");
        let _ = ready.send(());
        cancel.cancelled().await;
        services.shutdown().await;
    });

    for (i, net) in SEGMENTS[..2].iter().enumerate() {
        let server = format!("{net}.1");
        let hook = dir.path().join(format!("hook{i}.sh"));
        let out = dir.path().join(format!("udhcpc{i}.env"));
        common::write_executable(
            &hook,
            &format!(
                "#!/bin/sh\nenv >> {out}\nif [ \"$1\" = bound ]; then ip addr add $ip/$mask dev $interface; fi\nexit 0\n",
                out = out.display()
            ),
        );
        let dhcp = segments.client(
            i,
            25,
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
                "-V",
                "PXEClient:Arch:00000:UNDI:002001",
                "-s",
                hook.to_str().unwrap(),
            ],
        );
        let dump = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(
            dhcp.status.success(),
            "udhcpc on segment {i} got nothing:\n{dump}"
        );
        let value = |k: &str| {
            dump.lines()
                .rev()
                .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
                .unwrap_or_default()
        };
        assert_eq!(value("serverid"), server, "segment {i}: option 54");
        assert_eq!(value("siaddr"), server, "segment {i}: next-server");
        assert_eq!(value("boot_file"), "undionly.kpxe", "segment {i}");
        assert!(
            value("ip").starts_with(&format!("{net}.")),
            "segment {i}: an address of its own pool, not {}",
            value("ip")
        );

        // The boot script's URLs name this segment's address.
        let script = segments.client(
            i,
            10,
            &[
                "curl",
                "-fsS",
                &format!("http://{server}/boot.ipxe?mac=52:54:00:61:00:0{i}"),
            ],
        );
        let text = String::from_utf8_lossy(&script.stdout);
        assert!(
            script.status.success(),
            "curl on segment {i}: {}",
            String::from_utf8_lossy(&script.stderr)
        );
        assert!(
            text.contains(&format!("http://{server}/")),
            "segment {i}:\n{text}"
        );
        let other = if i == 0 { "10.61.2.1" } else { "10.61.1.1" };
        assert!(
            !text.contains(other),
            "segment {i} names the other segment:\n{text}"
        );

        // TFTP answers on this segment's address too.
        let got = dir.path().join(format!("got{i}.kpxe"));
        let tftp = segments.client(
            i,
            15,
            &[
                "tftp",
                "-m",
                "binary",
                &server,
                "-c",
                "get",
                "undionly.kpxe",
                got.to_str().unwrap(),
            ],
        );
        assert!(tftp.status.success(), "tftp on segment {i}: {tftp:?}");
        assert_eq!(
            std::fs::metadata(&got).map(|m| m.len()).unwrap_or(0),
            70_000
        );

        // The GRUB chain's generated configs name this segment's address,
        // for TFTP (the entry loop, the kernel) and HTTP (the installer's
        // config URL) alike.
        for (name, wants) in [
            (
                "grub/grub.cfg",
                vec![format!("(tftp,{server})/grub/machine/")],
            ),
            (
                &*format!("grub/machine/{}.cfg", client_mac(i)),
                vec![
                    format!("(tftp,{server})/debian/vmlinuz"),
                    format!("pxedeck.config=http://{server}/config/sb-{i}/"),
                ],
            ),
        ] {
            let local = dir.path().join(format!("grub{i}.cfg"));
            // `host:file`: tftp-hpa would take a name with a colon for it.
            let remote = format!("{server}:{name}");
            let fetched = segments.client(
                i,
                15,
                &[
                    "tftp",
                    &server,
                    "-c",
                    "get",
                    &remote,
                    local.to_str().unwrap(),
                ],
            );
            let text = std::fs::read_to_string(&local).unwrap_or_default();
            assert!(
                fetched.status.success(),
                "tftp {name} on segment {i}: {fetched:?}"
            );
            for want in wants {
                assert!(
                    text.contains(&want),
                    "segment {i}, {name}: no {want}:\n{text}"
                );
            }
            assert!(
                !text.contains(other),
                "segment {i}, {name} names the other segment:\n{text}"
            );
        }
    }

    // The proxy segment: boot information only, from its own address.
    let reply = pxe_discover(&segments.clients[2], [0x52, 0x54, 0, 0x61, 0, 9])
        .expect("an answer on the proxy segment");
    assert_eq!(reply.message_type(), Some(msg::OFFER));
    assert_eq!(
        reply.yiaddr,
        Ipv4Addr::UNSPECIFIED,
        "proxyDHCP gives no address"
    );
    assert_eq!(reply.siaddr, "10.61.3.1".parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        reply.option(opt::SERVER_ID),
        Some(&[10, 61, 3, 1][..]),
        "option 54 is the proxy segment's address"
    );
    assert_eq!(reply.option(opt::CLASS_ID), Some(&b"PXEClient"[..]));

    // The unlisted segment: not answered, though a pool holds its subnet
    // (a pool for relays there): one socket hears it, and refuses it.
    assert!(
        pxe_discover(&segments.clients[3], [0x52, 0x54, 0, 0x61, 0, 0x0a]).is_none(),
        "a request on an interface not listed was answered"
    );

    cancel.cancel();
    let _ = join.join();
}
