//! pxedeck's HTTP boot side against real curl across a veth pair: whole
//! files, ranges, HEAD, keep-alive, traversal, and installer configs served
//! only to the machine's own address. Root only; skipped (loudly) where
//! network namespaces are unavailable.

mod common;

use common::Lab;
use pxedeck::config::Config;
use pxedeck::services::Services;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

struct Setup {
    lab: Lab,
    _dir: tempfile::TempDir,
    out: tempfile::TempDir,
    _server: common::ServerThread,
}

const BIG: usize = 3 << 20;

fn setup() -> Setup {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("boot/os")).unwrap();
    std::fs::write(d.join("boot/os/big.bin"), pattern(BIG)).unwrap();
    std::fs::write(d.join("boot/ipxe.efi"), pattern(4096)).unwrap();
    std::fs::write(d.join("secret"), b"outside the boot root").unwrap();
    let profile = "boot:\n  kernel: os/big.bin\n  cmdline: cfg={{ config_url }}/\nconfigs:\n  meta-data: |\n    instance-id: {{ hostname }}\n";
    std::fs::create_dir_all(d.join("nodes/_profiles")).unwrap();
    std::fs::create_dir_all(d.join("nodes/rack")).unwrap();
    std::fs::write(d.join("nodes/_profiles/p.yaml"), profile).unwrap();
    // `here` has the client's address; `there` has another.
    std::fs::write(
        d.join("nodes/rack/here.yaml"),
        format!(
            "mac: \"52:54:00:00:00:01\"\nip: {}\nprofile: p\ninstall: true\n",
            lab.client_ip
        ),
    )
    .unwrap();
    let other = std::net::Ipv4Addr::from(u32::from(lab.client_ip) + 50);
    std::fs::write(
        d.join("nodes/rack/there.yaml"),
        format!("mac: \"52:54:00:00:00:02\"\nip: {other}\nprofile: p\ninstall: true\n"),
    )
    .unwrap();
    let net = std::net::Ipv4Addr::from(u32::from(lab.server_ip) & 0xffff_ff00);
    let config = format!(
        "server:\n  address: {server}\ndhcp:\n  mode: off\n  pools:\n    - subnet: {net}/24\n      range: {lo}-{hi}\n\
         tftp:\n  port: 69\nhttp:\n  port: 80\n  api_listen: {server}:8081\nboot_root: boot\ninventory: nodes\n",
        server = lab.server_ip,
        lo = std::net::Ipv4Addr::from(u32::from(net) + 100),
        hi = std::net::Ipv4Addr::from(u32::from(net) + 199),
    );
    std::fs::write(d.join("pxedeck.yaml"), config).unwrap();
    let config = Config::load(Some(&d.join("pxedeck.yaml"))).unwrap();
    let server = lab.serve(move |cancel| async move {
        let services = Services::start(config)
            .await
            .expect("services start in the lab");
        cancel.cancelled().await;
        services.shutdown().await;
    });
    // Wait until HTTP answers.
    for _ in 0..50 {
        let o = lab.client(
            5,
            &["curl", "-sf", &format!("http://{}/healthz", lab.server_ip)],
        );
        if o.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Setup {
        lab,
        _dir: dir,
        out: tempfile::tempdir().unwrap(),
        _server: server,
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.lab.server_ip)
    }

    /// curl with extra args; returns (status code, stdout, stderr).
    fn curl(&self, args: &[&str]) -> (String, String, String) {
        let mut cmd = vec!["curl", "-s", "-w", "%{http_code}"];
        cmd.extend_from_slice(args);
        let o = self.lab.client(60, &cmd);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let code = out
            .get(out.len().saturating_sub(3)..)
            .unwrap_or("")
            .to_string();
        (code, out, String::from_utf8_lossy(&o.stderr).into_owned())
    }

    fn fetch(&self, name: &str, args: &[&str]) -> (String, Vec<u8>) {
        let file = self.out.path().join(name);
        let mut all = vec!["-o", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let (code, _, err) = self.curl(&all);
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{name}: {e} ({err})"));
        (code, data)
    }
}

#[test]
fn curl_whole_ranges_head_and_keep_alive() {
    require_netns!();
    assert!(
        common::have("curl"),
        "curl is not installed (.ci/run installs it)"
    );
    let s = setup();
    let big = pattern(BIG);
    let url = s.url("/os/big.bin");
    let (code, data) = s.fetch("whole", &[&url]);
    assert_eq!(code, "200");
    assert!(data == big, "whole file differs ({} bytes)", data.len());

    let (code, data) = s.fetch("range", &["-r", "1000-1999", &url]);
    assert_eq!((code.as_str(), data.as_slice()), ("206", &big[1000..2000]));
    let (code, data) = s.fetch("open", &["-r", "3000000-", &url]);
    assert_eq!((code.as_str(), data.as_slice()), ("206", &big[3_000_000..]));
    let (code, data) = s.fetch("suffix", &["-r", "-100", &url]);
    assert_eq!((code.as_str(), data.as_slice()), ("206", &big[BIG - 100..]));
    let (code, _) = s.fetch("beyond", &["-r", &format!("{BIG}-"), &url]);
    assert_eq!(code, "416");

    let (code, out, _) = s.curl(&["-I", &s.url("/ipxe.efi")]);
    assert_eq!(code, "200");
    let head = out.to_lowercase();
    assert!(head.contains("content-length: 4096"), "{out}");
    assert!(head.contains("content-type: application/efi"), "{out}");
    assert!(head.contains("accept-ranges: bytes"), "{out}");

    // Two files on one connection, as iPXE fetches kernel then initrd.
    let (_, _, err) = s.curl(&[
        "-v",
        "-o",
        "/dev/null",
        &url,
        "-o",
        "/dev/null",
        &s.url("/ipxe.efi"),
    ]);
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "{err}"
    );
}

#[test]
fn curl_cannot_leave_the_boot_root() {
    require_netns!();
    assert!(
        common::have("curl"),
        "curl is not installed (.ci/run installs it)"
    );
    let s = setup();
    for path in [
        "/../secret",
        "/%2e%2e/secret",
        "/os/../../secret",
        "/os",
        "/etc/passwd",
    ] {
        let (code, out, _) = s.curl(&["--path-as-is", &s.url(path)]);
        assert!(code == "403" || code == "404", "{path}: {code}");
        assert!(
            !out.contains("outside the boot root"),
            "{path} leaked the file"
        );
    }
    let (code, _, _) = s.curl(&["-X", "PUT", "--data", "x", &s.url("/os/big.bin")]);
    assert_eq!(code, "405");
}

#[test]
fn configs_only_for_the_machine_itself() {
    require_netns!();
    assert!(
        common::have("curl"),
        "curl is not installed (.ci/run installs it)"
    );
    let s = setup();
    // Config URLs are capabilities: each machine's comes in its script.
    let (code, here_script, _) = s.curl(&[&s.url("/boot.ipxe?mac=52:54:00:00:00:01")]);
    assert_eq!(code, "200");
    let (_, there_script, _) = s.curl(&[&s.url("/boot.ipxe?mac=52:54:00:00:00:02")]);
    let here = config_prefix(&here_script, "here");
    let there = config_prefix(&there_script, "there");
    let (code, out, _) = s.curl(&[&s.url(&format!("{here}/meta-data"))]);
    assert_eq!(code, "200");
    assert!(out.starts_with("instance-id: here\n"), "{out}");
    let (code, out, _) = s.curl(&[&s.url(&format!("{there}/meta-data"))]);
    assert_eq!(code, "403", "{out}");
    assert!(!out.contains("instance-id"));
    // The boot script for `here`, asked by MAC, points at its kernel.
    let out = here_script;
    assert!(
        out.contains(&format!(
            "kernel --name kernel http://{}/os/big.bin",
            s.lab.server_ip
        )),
        "{out}"
    );
}

/// `/config/<host>/<capability>` from a script's kernel command line.
fn config_prefix(script: &str, host: &str) -> String {
    let start = script
        .find(&format!("/config/{host}/"))
        .unwrap_or_else(|| panic!("no config URL for {host} in {script}"));
    let rest = &script[start + "/config/".len() + host.len() + 1..];
    let token = rest.split('/').next().unwrap();
    format!("/config/{host}/{token}")
}
