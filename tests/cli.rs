//! The command line as an operator meets it: exit codes and output.

use std::path::Path;
use std::process::{Command, Output};

fn pxedeck(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run pxedeck")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_subcommand() {
    let o = pxedeck(&["--help"], repo());
    assert!(o.status.success());
    let (out, _) = text(&o);
    for sub in [
        "console", "serve", "attach", "demo", "bench", "check", "render", "--config",
    ] {
        assert!(out.contains(sub), "--help lacks {sub}:\n{out}");
    }
}

#[test]
fn check_on_the_example_inventory_prints_one_line_and_succeeds() {
    let o = pxedeck(&["check"], repo());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("nodes: ok — 10 machines in 3 groups, 5 profiles"),
        "{out}"
    );
}

#[test]
fn check_prints_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "mac: \"52:54:00:00:00:01\"\nprofile: nope\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.yaml"), "mac: \"52:54:00:00:00:01\"\n").unwrap();
    let o = pxedeck(&["check", dir.path().to_str().unwrap()], repo());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        out,
        "a.yaml:2: unknown profile `nope` (profiles: none defined)\n\
         b.yaml:1: duplicate MAC 52:54:00:00:00:01: also used by a (a.yaml:1)\n"
    );
    assert!(err.contains("2 problems"), "{err}");
}

#[test]
fn check_lists_the_rules_in_order_warns_of_overlaps_and_refuses_bad_ones() {
    // The example inventory's rule, listed (stdout keeps its one line).
    let o = pxedeck(&["check"], repo());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        err.contains("1 rule(s) for unknown machines (0 auto), tried in this order")
            && err.contains(
                "  k8s-prod/_defaults.yaml:12: propose → k8s-prod (talos-worker, prod-{n:02})"
            ),
        "{err}"
    );
    // Two rules that can match one machine: a warning, not a failure.
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("_profiles/p.yaml", "boot: {local: true}\n");
    write(
        "lab/_defaults.yaml",
        "profile: p\nadopt:\n  rules:\n    - match: {mac: \"52:54:00:*\"}\n      mode: auto\n    - match: {arch: bios}\n",
    );
    let o = pxedeck(&["check", dir.path().to_str().unwrap()], repo());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        err.contains("warning: lab/_defaults.yaml:6: this rule overlaps the rule at lab/_defaults.yaml:4: the first match wins"),
        "{err}"
    );
    assert!(
        err.contains("2 rule(s) for unknown machines (1 auto)"),
        "{err}"
    );
    // An unknown key in a rule: refused at its line.
    write(
        "lab/_defaults.yaml",
        "profile: p\nadopt:\n  rules:\n    - match: {mac: \"52:54:00:*\"}\n      instal: true\n",
    );
    let o = pxedeck(&["check", dir.path().to_str().unwrap()], repo());
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        out,
        "lab/_defaults.yaml:5: unknown key `instal` in a rule (known: match, mode, group, profile, hostname, install)\n"
    );
}

#[test]
fn render_shows_effective_values_with_their_sources() {
    let o = pxedeck(&["render", "52-54-00-D0-00-01"], repo());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("# dev-01 — k8s-dev/dev-01.yaml\n"), "{out}");
    assert!(
        out.contains("profile: ubuntu-2404  # k8s-dev/_defaults.yaml:2"),
        "{out}"
    );
    assert!(
        out.contains("  quiet: false  # k8s-dev/_defaults.yaml:7"),
        "{out}"
    );
    assert!(
        out.contains("install: true  # k8s-dev/dev-01.yaml:4"),
        "{out}"
    );
}

#[test]
fn render_of_an_unknown_machine_fails() {
    let o = pxedeck(&["render", "no-such-host"], repo());
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("no machine matches"));
}

#[test]
fn an_invalid_config_is_one_message_with_file_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pxedeck.yaml");
    std::fs::write(&file, "dhcp:\n  mode: full\n  pools:\n    - subnet: 10.0.0.0/24\n      range: 10.0.1.1-10.0.1.9\n").unwrap();
    let o = pxedeck(&["check"], dir.path());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err,
        "pxedeck: invalid configuration: pxedeck.yaml:5: 10.0.1.1 is outside subnet 10.0.0.0/24\n"
    );
}

#[test]
fn bench_boots_machines_against_a_serve_process() {
    // Runs `pxedeck serve` as a child and ten simulated machines at it.
    let dir = tempfile::tempdir().unwrap();
    let o = pxedeck(
        &[
            "bench",
            "-n",
            "10",
            "--loader-mib",
            "0.1",
            "--kernel-mib",
            "1",
            "--initrd-mib",
            "2",
            "--spread",
            "0.2",
            "--json",
        ],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["report"]["machines"], 10);
    assert_eq!(v["report"]["outcomes"]["installed"], 10, "{out}");
    assert!(v["server"]["cpu_seconds"].as_f64().unwrap() >= 0.0);
    assert!(v["server"]["peak_rss_mb"].as_f64().unwrap() > 1.0);
}

/// A port the kernel just handed out (and took back): free for a moment.
fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn serve_config(dir: &Path, name: &str, dhcp: u16, tftp: u16) -> std::path::PathBuf {
    let nodes = dir.join("nodes");
    std::fs::create_dir_all(&nodes).unwrap();
    let file = dir.join(name);
    let text = format!(
        "server:\n  address: 127.0.0.1\n\
         dhcp:\n  port: {dhcp}\n  proxy_port: 0\n  lease_file: {leases}\n  pools:\n    - subnet: 127.97.0.0/16\n      range: 127.97.1.1-127.97.1.100\n\
         tftp:\n  port: {tftp}\nhttp:\n  port: {http}\n  api_listen: 127.0.0.1:{api}\n\
         boot_root: {root}\ninventory: {nodes}\n",
        leases = dir.join(format!("{name}.leases")).display(),
        root = dir.display(),
        nodes = nodes.display(),
        http = free_port(false),
        api = free_port(false),
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn a_second_serve_on_the_same_udp_ports_fails_naming_the_port_and_holder() {
    let dir = tempfile::tempdir().unwrap();
    let (dhcp, tftp) = (free_port(true), free_port(true));
    let first = serve_config(dir.path(), "one.yaml", dhcp, tftp);
    let mut running = Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .args(["-c", first.to_str().unwrap(), "serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Up once its TFTP port is taken (a plain bind fails).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::UdpSocket::bind(("127.0.0.1", tftp)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve never bound TFTP"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Same UDP ports, other TCP ports: only the UDP exclusivity can stop it.
    let second = serve_config(dir.path(), "two.yaml", dhcp, tftp);
    let mut again = Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .args(["-c", second.to_str().unwrap(), "serve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It must give up at once; one still running after 10 s shares the port.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while again.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = again.kill();
    let o = again.wait_with_output().unwrap();
    let _ = running.kill();
    let _ = running.wait();
    let (_, err) = text(&o);
    assert!(
        o.status.code().is_some_and(|c| c != 0),
        "a second serve started and shared the ports ({:?}): {err}",
        o.status
    );
    assert!(
        err.contains(&format!(
            "port {tftp} is already in use by pxedeck (pid {})",
            running.id()
        )),
        "{err}"
    );
}

#[test]
fn check_warns_about_signed_loaders_that_are_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("nodes")).unwrap();
    std::fs::write(d.join("shim.signed"), b"shim").unwrap();
    std::fs::write(
        d.join("pxedeck.yaml"),
        "loaders:\n  shim_x64: shim.signed\n  grub_x64: missing/grubnetx64.efi.signed\n  \
         shim_arm64: shim.signed\n  grub_arm64: shim.signed\n",
    )
    .unwrap();
    std::fs::write(
        d.join("nodes/sb-1.yaml"),
        "mac: \"52:54:00:5b:00:01\"\nsecure_boot: true\n",
    )
    .unwrap();
    std::fs::write(d.join("nodes/plain.yaml"), "mac: \"52:54:00:5b:00:02\"\n").unwrap();
    let o = pxedeck(&["check"], d);
    let (out, err) = text(&o);
    assert!(o.status.success(), "a warning, not a failure: {out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("missing/grubnetx64.efi.signed not installed, needed by sb-1")
            && err.contains("apt-get install grub-efi-amd64-signed"),
        "{err}"
    );
    // With every loader present there is nothing to say.
    std::fs::write(
        d.join("pxedeck.yaml"),
        "loaders:\n  shim_x64: shim.signed\n  grub_x64: shim.signed\n",
    )
    .unwrap();
    let (_, err) = text(&pxedeck(&["check"], d));
    assert!(err.is_empty(), "{err}");
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = pxedeck(&["completions", shell], repo());
        let (out, err) = text(&o);
        assert!(o.status.success(), "{shell}: {err}");
        for sub in ["serve", "attach", "render", "completions"] {
            assert!(out.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let o = pxedeck(&["completions", "tcsh"], repo());
    assert_eq!(o.status.code(), Some(2), "an unknown shell is refused");
    let o = pxedeck(&["man"], repo());
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(out.contains(".TH pxedeck 1"), "{out}");
    for sub in ["serve", "attach", "render", "\\-\\-log\\-format"] {
        assert!(out.contains(sub), "the man page lacks {sub}:\n{out}");
    }
}

#[test]
fn help_names_the_token_env_once_and_explains_every_theme_option() {
    let (out, _) = text(&pxedeck(&["attach", "--help"], repo()));
    assert_eq!(out.matches("env: PXEDECK_TOKEN").count(), 1, "{out}");
    for sub in ["console", "attach", "demo"] {
        let (out, _) = text(&pxedeck(&[sub, "--help"], repo()));
        let at = out
            .find("--theme <THEME>")
            .unwrap_or_else(|| panic!("{sub}: {out}"));
        let help = &out[at..];
        assert!(
            help.lines().take(3).any(|l| l.contains("high-contrast")),
            "{sub} --theme has no help:\n{help}"
        );
    }
}

#[test]
fn check_on_a_missing_folder_says_so_without_a_stray_colon() {
    let o = pxedeck(&["check", "/nonexistent/nodes"], repo());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out, "inventory folder /nonexistent/nodes does not exist\n");
    assert_eq!(err, "/nonexistent/nodes: 1 problem\n");
}

#[test]
fn serve_refuses_a_missing_inventory_folder_unless_told_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let (dhcp, tftp) = (free_port(true), free_port(true));
    let config = serve_config(dir.path(), "p.yaml", dhcp, tftp);
    let nodes = dir.path().join("nodes");
    std::fs::remove_dir(&nodes).unwrap();
    let o = pxedeck(&["-c", config.to_str().unwrap(), "serve"], dir.path());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(
        err,
        format!(
            "pxedeck: the inventory folder {} does not exist (set `inventory:` in the config, \
             or pass --init to create it)\n",
            nodes.display()
        )
    );
    assert!(!nodes.exists());
    let mut running = Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .args(["-c", config.to_str().unwrap(), "serve", "--init"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::UdpSocket::bind(("127.0.0.1", tftp)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve --init never served"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = running.kill();
    let _ = running.wait();
    assert!(nodes.is_dir(), "--init made no folder");
}

#[test]
fn an_address_this_host_lacks_is_named_as_such_not_blamed_on_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nodes")).unwrap();
    // TEST-NET-1: never an address of this host.
    std::fs::write(
        dir.path().join("pxedeck.yaml"),
        "server:\n  address: 192.0.2.1\ndhcp:\n  mode: off\ntftp:\n  port: 0\nhttp:\n  port: 80\n",
    )
    .unwrap();
    let o = pxedeck(&["serve"], dir.path());
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("192.0.2.1 is not an address of this host"),
        "{err}"
    );
    assert!(!err.contains("root"), "{err}");
}

#[test]
fn render_also_shows_the_script_with_its_command_line_and_every_config() {
    let o = pxedeck(&["render", "dev-01"], repo());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains(
            "# ── iPXE script (http://127.0.0.1/boot.ipxe?mac=52:54:00:d0:00:01) ──\n#!ipxe\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("kernel --name kernel http://127.0.0.1/ubuntu-24.04/vmlinuz ip=dhcp console=ttyS0,115200 autoinstall"),
        "the command line, rendered: {out}"
    );
    for name in ["meta-data", "user-data", "vendor-data"] {
        assert!(
            out.contains(&format!(
                "# ── config {name} (http://127.0.0.1/config/dev-01/pxedeck-capability-config/{name}) ──\n"
            )),
            "{name}: {out}"
        );
    }
    assert!(out.contains("local-hostname: dev-01\n"), "{out}");
    assert!(
        out.contains("    hostname: dev-01\n"),
        "user-data rendered: {out}"
    );
}
