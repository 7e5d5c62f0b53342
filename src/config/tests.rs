//! The configuration file's contract: defaults, every key's validation
//! with file:line, and the sample config parsing.

use super::*;

fn err(text: &str) -> String {
    Config::from_text(text, Some(Path::new("/etc/pxedeck.yaml")))
        .unwrap_err()
        .to_string()
}

#[test]
fn builtin_defaults() {
    let c = Config::builtin();
    assert_eq!(c.dhcp.mode, DhcpMode::Full);
    assert_eq!(
        (c.dhcp.port, c.dhcp.proxy_port, c.tftp.port, c.http.port),
        (67, 4011, 69, 80)
    );
    assert_eq!(c.unknown, UnknownPolicy::Hold);
    assert_eq!(c.inventory, PathBuf::from("nodes"));
}

#[test]
fn the_sample_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pxedeck.sample.yaml");
    let c = Config::load(Some(&path)).unwrap();
    assert_eq!(c.dhcp.pools.len(), 2);
    assert_eq!(c.dhcp.pools[0].range_len(), 100);
    assert_eq!(c.inventory, path.parent().unwrap().join("nodes"));
    assert_eq!((c.unknown_max_machines, c.http.max_subscribers), (4096, 16));
}

#[test]
fn the_caps_on_rows_and_subscribers_are_read_and_zero_is_refused() {
    let c = Config::from_text(
        "unknown:\n  max_machines: 100\nhttp:\n  max_subscribers: 2\n",
        None,
    )
    .unwrap();
    assert_eq!((c.unknown_max_machines, c.http.max_subscribers), (100, 2));
    assert!(err("unknown:\n  max_machines: 0\n").contains(":2: max_machines must be at least 1"));
    assert!(
        err("http:\n  max_subscribers: 0\n").contains(":2: max_subscribers must be at least 1")
    );
}

#[test]
fn relative_paths_follow_the_config_file() {
    let c =
        Config::from_text("inventory: inv\n", Some(Path::new("/srv/pxe/pxedeck.yaml"))).unwrap();
    assert_eq!(c.inventory, PathBuf::from("/srv/pxe/inv"));
    assert_eq!(c.dhcp.lease_file, PathBuf::from("/srv/pxe/leases.jsonl"));
}

#[test]
fn unknown_key_names_its_line() {
    let e = err("server:\n  address: 10.0.0.1\n  adress: 10.0.0.2\n");
    assert!(e.starts_with("/etc/pxedeck.yaml:3: server.adress: unknown field `adress`, expected `address` or `interface`"), "{e}");
}

#[test]
fn bad_values_name_their_line() {
    assert!(
        err("dhcp:\n  mode: both\n")
            .starts_with("/etc/pxedeck.yaml:2: dhcp.mode: unknown variant `both`")
    );
    assert!(
        err("server:\n  address: 10.0.0.300\n").starts_with("/etc/pxedeck.yaml:2: server.address")
    );
    assert!(err("dhcp:\n  port: 70000\n").starts_with("/etc/pxedeck.yaml:2: dhcp.port"));
}

#[test]
fn syntax_error_names_its_line() {
    let e = err("server:\n  address: [1, 2\nhttp: {}\n");
    assert!(e.starts_with("/etc/pxedeck.yaml:"), "{e}");
}

#[test]
fn pool_validation() {
    let pool =
        |range: &str| format!("dhcp:\n  pools:\n    - subnet: 10.1.0.0/24\n      range: {range}\n");
    assert!(err(&pool("10.1.0.50-10.1.1.10")).contains(":4: 10.1.1.10 is outside subnet"));
    assert!(
        err(&pool("10.1.0.50-10.1.0.10")).contains(":4: range 10.1.0.50-10.1.0.10 runs backwards")
    );
    assert!(err(&pool("banana")).contains(":4: range \"banana\""));
    let ok = Config::from_text(&pool("[10.1.0.10, 10.1.0.19]"), None).unwrap();
    assert_eq!(ok.dhcp.pools[0].range_len(), 10);
}

#[test]
fn overlapping_pools_are_refused() {
    let text = "dhcp:\n  pools:\n    - subnet: 10.1.0.0/24\n      range: 10.1.0.10-10.1.0.20\n    - subnet: 10.1.0.0/24\n      range: 10.1.0.15-10.1.0.30\n";
    assert!(err(text).contains(":6: range overlaps"), "{}", err(text));
}

#[test]
fn discover_needs_a_profile() {
    assert!(err("unknown:\n  policy: discover\n").contains(":2: policy `discover` needs"));
    assert!(err("unknown:\n  policy: install\n").contains(":2: unknown policy `install`"));
}

#[test]
fn api_tokens_and_capability_settings() {
    let c = Config::from_text(
        "dhcp:\n  lease_file: state/leases.jsonl\n",
        Some(Path::new("/srv/pxe/pxedeck.yaml")),
    )
    .unwrap();
    assert_eq!(c.http.api_token, None);
    // Generated secrets live beside the leases.
    assert_eq!(
        c.http.api_token_file,
        PathBuf::from("/srv/pxe/state/api.token")
    );
    assert_eq!(
        c.http.capability_key_file,
        PathBuf::from("/srv/pxe/state/capability.key")
    );
    assert_eq!(c.http.capability_lifetime, DEFAULT_CAPABILITY_LIFETIME);
    let c = Config::from_text(
        "http:\n  api_token: a.b-c\n  api_read_token: r3ad\n  capability_lifetime: 2h\n  capability_key_file: /etc/pxedeck/key\n",
        None,
    )
    .unwrap();
    assert_eq!(c.http.api_read_token.as_deref(), Some("r3ad"));
    assert_eq!(c.http.capability_lifetime, Duration::from_secs(7200));
    assert_eq!(
        c.http.capability_key_file,
        PathBuf::from("/etc/pxedeck/key")
    );

    assert!(err("http:\n  api_token: ''\n").contains(":2: api_token must not be empty"));
    assert!(
        err("http:\n  api_token: 'two words'\n").contains(":2: api_token may only hold"),
        "a token with a space could never match a bearer header"
    );
    assert!(err("http:\n  api_read_token: 'x '\n").contains(":2: api_read_token may only"));
    assert!(
        err("http:\n  api_token: same\n  api_read_token: same\n")
            .contains(":3: api_read_token must differ")
    );
    assert!(err("http:\n  capability_lifetime: 10s\n").contains("at least 1m"));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604800));
    assert!(parse_duration("5w").is_err());
    assert!(parse_duration("m").is_err());
}

#[test]
fn signed_loaders_default_to_debian_paths_and_follow_the_config_file() {
    let c = Config::builtin();
    assert_eq!(c.unknown_chain, Chain::Ipxe);
    assert_eq!(
        c.loaders.shim_x64,
        PathBuf::from("/usr/lib/shim/shimx64.efi.signed")
    );
    assert_eq!(
        c.loaders.grub_x64,
        PathBuf::from("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")
    );
    let c = Config::from_text(
        "unknown:\n  loader: grub\nloaders:\n  grub_arm64: arm/grubnetaa64.efi.signed\n",
        Some(Path::new("/srv/pxe/pxedeck.yaml")),
    )
    .unwrap();
    assert_eq!(c.unknown_chain, Chain::Grub);
    assert_eq!(
        c.loaders.grub_arm64,
        PathBuf::from("/srv/pxe/arm/grubnetaa64.efi.signed")
    );
    let names: Vec<&str> = c.loaders.files().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["shimx64.efi", "grubx64.efi", "shimaa64.efi", "grubaa64.efi"]
    );
    assert!(err("unknown:\n  loader: pxelinux\n").contains(":2: unknown loader `pxelinux`"));
    assert!(err("loaders:\n  shim: /x\n").contains(":2: loaders.shim: unknown field"));
}

#[test]
fn git_and_history_have_defaults_and_refuse_nonsense_with_the_line() {
    let c = Config::builtin();
    assert!(c.git.commit && !c.git.push);
    assert_eq!(c.git.author, "pxedeck <pxedeck@localhost>");
    assert_eq!(c.history.file, PathBuf::from("history.jsonl"));
    assert_eq!((c.history.per_machine, c.history.total), (200, 100_000));
    let c = Config::from_text(
        "git:\n  author: Ops Team <ops@example.com>\n  push: true\n",
        None,
    )
    .unwrap();
    assert_eq!(c.git.author, "Ops Team <ops@example.com>");
    assert!(c.git.push);
    assert_eq!(
        err("git:\n  author: nobody\n"),
        "/etc/pxedeck.yaml:2: git.author must be `Name <email>`, not \"nobody\""
    );
    assert!(err("git:\n  author: a <b<c>\n").contains("git.author"));
    assert!(err("git:\n  timeout: 0s\n").contains("between 1s and 10m"));
    assert!(err("history:\n  per_machine: 0\n").starts_with("/etc/pxedeck.yaml:1: history needs"));
    assert!(err("history:\n  total: 2000000\n").contains("<= 1000000"));
    assert!(err("history:\n  per_machine: 50\n  total: 10\n").contains("per_machine 50, total 10"));
}

#[test]
fn stuck_timeouts_are_read_per_stage_and_bad_ones_refused() {
    let c = Config::from_text("stuck_after:\n  kernel: 90s\n  config: 2h\n", None).unwrap();
    let defaults = StageTimeouts::default();
    assert_eq!(c.stuck_after.kernel, 90_000);
    assert_eq!(c.stuck_after.config, 2 * 3600 * 1000);
    assert_eq!(
        c.stuck_after.script, defaults.script,
        "others keep defaults"
    );
    assert_eq!(Config::builtin().stuck_after, defaults);
    let e = err("stuck_after:\n  kernel: 0\n");
    assert!(e.contains(":2:") && e.contains("more than 0"), "{e}");
    let e = err("stuck_after:\n  done: 1m\n");
    assert!(e.contains(":2:") && e.contains("done"), "{e}");
}
