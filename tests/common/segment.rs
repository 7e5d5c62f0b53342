//! A bridged L2 segment of namespaces, and `pxedeck serve` as a child
//! process inside one of them (root only).
//!
//! ```text
//!   <lan>: bridge br0 ── eth0 of <srv> (x.y.z.1/24, pxedeck serve)
//!                    ├── eth0 of other hosts (dnsmasq, a relay…)
//!                    └── tap devices for QEMU, which runs in <lan>
//! ```
//!
//! Names follow `Lab`'s scheme (`pxdt-<pid>-<n>-…`), so a crashed run's
//! namespaces are removed by the next one.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{cleanup_stale, ip, kill_all, must, prefix, wire_checksums};

static NEXT: AtomicU32 = AtomicU32::new(100);

pub struct Segment {
    pub lan: String,
    pub srv: String,
    /// The first three octets of the segment's /24.
    pub net: [u8; 3],
    hosts: std::sync::Mutex<Vec<String>>,
    taps: AtomicU32,
}

impl Segment {
    pub fn new() -> Segment {
        cleanup_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let third = ((pid % 200 + n * 11) % 250 + 1) as u8;
        let seg = Segment {
            lan: format!("{}-{pid}-{n}-lan", prefix()),
            srv: format!("{}-{pid}-{n}-srv", prefix()),
            net: [10, 78, third],
            hosts: Default::default(),
            taps: AtomicU32::new(0),
        };
        new_ns(&seg.lan);
        must(&[
            "-n",
            &seg.lan,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        must(&["-n", &seg.lan, "link", "set", "br0", "up"]);
        seg.join(&seg.srv, "v-srv", Some(seg.ip(1)));
        seg
    }

    /// An address on the segment: `x.y.z.<host>`.
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], host)
    }

    pub fn server_ip(&self) -> Ipv4Addr {
        self.ip(1)
    }

    pub fn subnet(&self) -> String {
        format!("{}/24", self.ip(0))
    }

    /// Another host on the segment (a namespace with eth0 on the bridge).
    pub fn host(&self, name: &str, address: Option<Ipv4Addr>) -> String {
        let ns = format!("{}-{name}", self.lan.trim_end_matches("-lan"));
        self.join(&ns, &format!("v-{name}"), address);
        self.hosts.lock().unwrap().push(ns.clone());
        ns
    }

    fn join(&self, ns: &str, port: &str, address: Option<Ipv4Addr>) {
        new_ns(ns);
        must(&[
            "-n", &self.lan, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
            ns,
        ]);
        must(&["-n", &self.lan, "link", "set", port, "master", "br0", "up"]);
        if let Some(a) = address {
            must(&["-n", ns, "addr", "add", &format!("{a}/24"), "dev", "eth0"]);
        }
        must(&["-n", ns, "link", "set", "eth0", "up"]);
        wire_checksums(ns, "eth0");
        wire_checksums(&self.lan, port);
    }

    /// A second subnet behind a router host: `router` (already on the
    /// segment at `router_ip`) gets eth1 = `net`.1/24, a new namespace
    /// `name` is on the far side (eth0, no address), and the server routes
    /// `net`.0/24 through the router. Returns the new namespace.
    pub fn subnet_behind(
        &self,
        router: &str,
        router_ip: Ipv4Addr,
        name: &str,
        net: [u8; 3],
    ) -> String {
        let ns = format!("{}-{name}", self.lan.trim_end_matches("-lan"));
        new_ns(&ns);
        self.hosts.lock().unwrap().push(ns.clone());
        must(&[
            "-n", router, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        let gateway = Ipv4Addr::new(net[0], net[1], net[2], 1);
        must(&[
            "-n",
            router,
            "addr",
            "add",
            &format!("{gateway}/24"),
            "dev",
            "eth1",
        ]);
        must(&["-n", router, "link", "set", "eth1", "up"]);
        must(&["-n", &ns, "link", "set", "eth0", "up"]);
        let subnet = format!("{}/24", Ipv4Addr::new(net[0], net[1], net[2], 0));
        must(&[
            "-n",
            &self.srv,
            "route",
            "add",
            &subnet,
            "via",
            &router_ip.to_string(),
        ]);
        wire_checksums(&ns, "eth0");
        wire_checksums(router, "eth1");
        ns
    }

    /// A new tap device on the bridge, for a VM that runs in `lan`.
    pub fn tap(&self) -> String {
        let name = format!("tap{}", self.taps.fetch_add(1, Ordering::Relaxed));
        must(&[
            "-n", &self.lan, "tuntap", "add", "dev", &name, "mode", "tap",
        ]);
        must(&["-n", &self.lan, "link", "set", &name, "master", "br0", "up"]);
        name
    }

    /// A command run inside a namespace of this segment.
    pub fn exec(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c.stdin(Stdio::null());
        c
    }
}

fn new_ns(ns: &str) {
    must(&["netns", "add", ns]);
    must(&["-n", ns, "link", "set", "lo", "up"]);
    for key in ["all", "default"] {
        let _ = ip(&[
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
        ]);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let hosts = std::mem::take(&mut *self.hosts.lock().unwrap());
        for ns in hosts.iter().chain([&self.srv, &self.lan]) {
            kill_all(ns);
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// `pxedeck serve` running in a namespace, logging to a file. Killed on drop.
pub struct Serve {
    child: Child,
    pub ns: String,
    pub log: PathBuf,
    /// The API as seen from inside the namespace.
    pub api: String,
    pub token: String,
}

impl Serve {
    /// Starts `pxedeck serve --config <config>` in `ns` and waits until
    /// its API answers.
    pub fn start(ns: &str, config: &Path, api: &str, token: &str) -> Serve {
        let log = config.with_file_name("serve.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_pxedeck"),
                "--config",
            ])
            .arg(config)
            .arg("serve")
            .current_dir(config.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn pxedeck serve");
        let serve = Serve {
            child,
            ns: ns.to_string(),
            log,
            api: api.to_string(),
            token: token.to_string(),
        };
        let ready = serve.wait_until(Duration::from_secs(20), || {
            serve.try_get("/healthz").is_some()
        });
        assert!(ready, "pxedeck serve did not start:\n{}", serve.log_text());
        serve
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn curl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-sf", "--max-time", "5"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// GETs with the bearer token (every API read needs it).
    pub fn try_get(&self, path: &str) -> Option<String> {
        let auth = format!("Authorization: Bearer {}", self.token);
        self.curl(&["-H", &auth, &format!("{}{path}", self.api)])
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let text = self
            .try_get(path)
            .unwrap_or_else(|| panic!("GET {path} failed:\n{}", self.log_text()));
        serde_json::from_str(&text).expect("JSON from the API")
    }

    /// POSTs JSON with the bearer token; the response body on success.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Option<String> {
        let auth = format!("Authorization: Bearer {}", self.token);
        self.curl(&[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            &body.to_string(),
            &format!("{}{path}", self.api),
        ])
    }

    /// The machine row the API reports for a MAC, if pxedeck has one.
    pub fn machine(&self, mac: &str) -> Option<serde_json::Value> {
        let all = self.get_json("/api/v1/machines");
        all.as_array()?
            .iter()
            .find(|m| m["mac"].as_str() == Some(mac))
            .cloned()
    }

    pub fn wait_until(&self, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    /// Kills the server without letting it clean up (`kill -9`).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
    }
}
