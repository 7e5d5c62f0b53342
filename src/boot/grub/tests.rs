//! The GRUB configs as GRUB reads them: snapshots, parsing, validation.

use super::*;
use crate::config::UnknownPolicy;
use crate::inventory::{LoadOptions, load};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn world(machine: &str) -> (tempfile::TempDir, Inventory) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("_profiles")).unwrap();
    std::fs::create_dir_all(d.join("lab")).unwrap();
    std::fs::write(
        d.join("_profiles/sb.yaml"),
        "secure_boot: true\n\
         boot:\n  kernel: debian/vmlinuz\n  initrd: [debian/initrd.gz, extra.img]\n  \
         cmdline: console=ttyS0 pxedeck.config={{ config_url }}/marker \
         pxedeck.done={{ done_url }} note=\"two words\" it's\n\
         configs:\n  marker: \"hello {{ hostname }}\"\n",
    )
    .unwrap();
    std::fs::write(d.join("lab/sb-1.yaml"), machine).unwrap();
    let loaded = load(d, &LoadOptions::default());
    assert!(loaded.is_ok(), "{:?}", loaded.problems);
    (dir, loaded.inventory)
}

fn config_for(inv: &Inventory, policy: &UnknownPolicy, m: &str) -> Script {
    let mac = mac(m);
    let (decision, machine) = super::super::decide::decide(inv, policy, &mac, None);
    super::machine(
        inv,
        machine,
        &decision,
        &mac,
        &Urls::new("http://10.99.0.1"),
        SERVER,
    )
}

#[test]
fn the_entry_loops_over_the_machines_own_config() {
    insta::assert_snapshot!(entry(SERVER), @r#"
    # pxedeck: the GRUB chain's entry (generated). Each round reads this
    # machine's own config; it boots, exits, or asks again.
    set timeout=0
    while true; do
      set pxedeck_wait=5
      source (tftp,10.99.0.1)/grub/machine/${net_default_mac}.cfg
      sleep ${pxedeck_wait}
    done
    "#);
}

#[test]
fn an_installing_machine_boots_its_kernel_over_tftp_and_reports_a_failure() {
    let (_d, inv) = world("mac: \"52:54:00:5b:00:01\"\nprofile: sb\ninstall: true\n");
    assert_eq!(
        inv.by_hostname("sb-1").unwrap().chain,
        crate::boot::decide::Chain::Grub
    );
    let s = config_for(&inv, &UnknownPolicy::Hold, "52:54:00:5b:00:01");
    assert_eq!(
        (s.kind, s.profile.as_deref(), s.error),
        (ScriptKind::Install, Some("sb"), None)
    );
    insta::assert_snapshot!(s.text, @r#"
    # pxedeck: sb-1 (lab) boots profile sb
    echo 'pxedeck: 52:54:00:5b:00:01 is sb-1, booting sb'
    set pxedeck_failed=kernel
    if linux '(tftp,10.99.0.1)/debian/vmlinuz' 'console=ttyS0' 'pxedeck.config=http://10.99.0.1/config/sb-1/pxedeck-capability-config/marker' 'pxedeck.done=http://10.99.0.1/done/sb-1/pxedeck-capability-done' 'note=two words' 'it'\''s'; then
      set pxedeck_failed=initrd
      if initrd '(tftp,10.99.0.1)/debian/initrd.gz' '(tftp,10.99.0.1)/extra.img'; then
        set pxedeck_failed=boot
        boot
      fi
    fi
    echo "pxedeck: the ${pxedeck_failed} step failed; asking again in 30 s"
    source (tftp,10.99.0.1)/grub/failed/52:54:00:5b:00:01/${pxedeck_failed}
    set pxedeck_wait=30
    "#);
}

#[test]
fn local_hold_discover_and_errors() {
    let (_d, inv) = world("mac: \"52:54:00:5b:00:01\"\nprofile: sb\ninstall: false\n");
    let local = config_for(&inv, &UnknownPolicy::Hold, "52:54:00:5b:00:01");
    assert_eq!(local.kind, ScriptKind::Local);
    assert!(
        local
            .text
            .ends_with("echo 'pxedeck: sb-1: local disk'\nexit\n"),
        "{}",
        local.text
    );

    let held = config_for(&inv, &UnknownPolicy::Hold, "52:54:00:99:99:99");
    assert_eq!(held.kind, ScriptKind::Hold);
    assert!(
        held.text.contains("asking again every 5 s"),
        "{}",
        held.text
    );
    assert!(
        !held.text.contains("pxedeck_wait") && !held.text.contains("exit"),
        "a held machine returns to the entry loop, which waits and asks again"
    );

    let disc = config_for(
        &inv,
        &UnknownPolicy::Discover {
            profile: "sb".into(),
        },
        "52:54:00:99:99:99",
    );
    assert_eq!(disc.kind, ScriptKind::Discover);
    assert!(
        disc.text
            .contains("if linux '(tftp,10.99.0.1)/debian/vmlinuz'"),
        "{}",
        disc.text
    );
    assert!(
        disc.text
            .contains("'pxedeck.config=http://10.99.0.1/config/marker'"),
        "{}",
        disc.text
    );

    let missing = config_for(
        &inv,
        &UnknownPolicy::Discover {
            profile: "nope".into(),
        },
        "52:54:00:99:99:99",
    );
    assert_eq!(missing.kind, ScriptKind::Error);
    assert!(
        missing.text.contains("set pxedeck_wait=30"),
        "{}",
        missing.text
    );
    let ignored = config_for(&inv, &UnknownPolicy::Ignore, "52:54:00:99:99:99");
    assert!(ignored.text.ends_with("exit\n"));
}

#[test]
fn what_grub_cannot_boot_is_an_error_config_that_says_why() {
    for (boot, why) in [
        (
            "boot:\n  kernel: http://mirror/vmlinuz\n",
            "the signed GRUB has no HTTP",
        ),
        ("boot:\n  script: \"#!ipxe\\nshell\"\n", "raw iPXE script"),
        ("boot:\n  chain: http://x/y\n", "cannot chain"),
        ("boot:\n  kernel: \"{{ nope }}\"\n", "undefined"),
    ] {
        let (_d, inv) = world(&format!(
            "mac: \"52:54:00:5b:00:01\"\nloader: grub\ninstall: true\n{boot}"
        ));
        let s = config_for(&inv, &UnknownPolicy::Hold, "52:54:00:5b:00:01");
        assert_eq!(s.kind, ScriptKind::Error, "{boot}");
        let reason = s.error.unwrap_or_default();
        assert!(reason.contains(why), "{boot}: {reason}");
        assert!(s.text.contains("set pxedeck_wait=30"));
        assert!(!s.text.contains("\nlinux"));
    }
}

#[test]
fn loader_and_secure_boot_keys_are_validated() {
    for (machine, problem) in [
        ("loader: ipxe\n", "secure_boot: true needs loader: grub"),
        ("loader: pxelinux\n", "unknown loader `pxelinux`"),
        (
            "secure_boot: \"yes\"\n",
            "secure_boot must be true or false",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("_profiles")).unwrap();
        std::fs::write(dir.path().join("_profiles/sb.yaml"), "secure_boot: true\n").unwrap();
        std::fs::write(
            dir.path().join("m.yaml"),
            format!("mac: \"52:54:00:5b:00:09\"\nprofile: sb\n{machine}"),
        )
        .unwrap();
        let loaded = load(dir.path(), &LoadOptions::default());
        let all: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        assert!(
            all.iter().any(|p| p.contains(problem)),
            "{machine}: {all:?}"
        );
        assert!(
            all.iter().any(|p| p.contains("m.yaml:3")),
            "{machine}: {all:?}"
        );
    }
    let (_d, inv) = world("mac: \"52:54:00:5b:00:01\"\nprofile: sb\nloader: grub\n");
    let m = inv.by_hostname("sb-1").unwrap();
    assert!(m.secure_boot && m.chain == crate::boot::decide::Chain::Grub);
}

#[test]
fn the_served_report_shows_the_grub_config_and_secure_boot() {
    let (_d, inv) = world("mac: \"52:54:00:5b:00:01\"\nprofile: sb\ninstall: true\n");
    let report = render::served_report(
        &inv,
        &UnknownPolicy::Hold,
        &mac("52:54:00:5b:00:01"),
        &Urls::new("http://10.99.0.1:8080"),
    );
    assert!(
        report.contains("chain: shim → GRUB, Secure Boot expected"),
        "{report}"
    );
    assert!(report.contains("── GRUB config (TFTP grub/machine/52:54:00:5b:00:01.cfg) ──"));
    assert!(
        report.contains("if linux '(tftp,10.99.0.1)/debian/vmlinuz'"),
        "{report}"
    );
    assert!(!report.contains("iPXE script"), "{report}");
}

#[test]
fn requests_are_parsed_strictly() {
    let m = mac("52:54:00:5b:00:01");
    assert_eq!(parse("/grub/grub.cfg"), Some(Request::Entry));
    assert_eq!(parse("grub/grub.cfg"), Some(Request::Entry));
    assert_eq!(parse("\\grub/grub.cfg"), Some(Request::Entry));
    assert_eq!(
        parse("/grub/machine/52:54:00:5b:00:01.cfg"),
        Some(Request::Machine(m))
    );
    assert_eq!(
        parse("/grub/failed/52:54:00:5b:00:01/kernel"),
        Some(Request::Failed {
            mac: m,
            stage: Stage::Kernel
        })
    );
    assert_eq!(
        parse("/grub/serial/52:54:00:5b:00:01/VMware-56 4d/x"),
        Some(Request::Claim {
            mac: m,
            kind: Claim::Serial,
            value: "VMware-56 4d/x".into()
        }),
        "a serial keeps its spaces and slashes"
    );
    assert_eq!(
        parse("grub/asset/52:54:00:5b:00:01/SLOT-12"),
        Some(Request::Claim {
            mac: m,
            kind: Claim::Asset,
            value: "SLOT-12".into()
        })
    );
    for other in [
        "/grub/serial/52:54:00:5b:00:01",
        "/grub/serial/nope/ABC",
        "/grub/uuid/52:54:00:5b:00:01/ABC",
        "/grub/x86_64-efi/grub.cfg",
        "/grub/machine/.cfg",
        "/grub/machine/52:54:00:5b:00:01",
        "/grub/machine/zz:54:00:5b:00:01.cfg",
        "/grub/failed/52:54:00:5b:00:01/reboot",
        "/grub/failed/52:54:00:5b:00:01",
        "/grub/grub.cfg/",
        "/grubx64.efi",
        "/other/grub/grub.cfg",
        "",
    ] {
        assert_eq!(parse(other), None, "{other:?}");
    }
    assert_eq!(
        parse(&format!("/grub/machine/{}.cfg", "5".repeat(200))),
        None
    );
}

#[test]
fn an_unknown_machine_asks_by_its_smbios_claims_before_it_is_held() {
    let (_d, inv) = world("mac: \"52:54:00:5b:00:01\"\nprofile: sb\ninstall: true\n");
    let held = config_for(&inv, &UnknownPolicy::Hold, "52:54:00:99:99:99");
    insta::assert_snapshot!(held.text, @r#"
    # pxedeck: no MAC or DHCP UUID names this machine; ask by its SMBIOS serials and asset tag
    unset pxedeck_claim
    if smbios --type 1 --get-string 7 --set pxedeck_claim; then
      if [ -n "${pxedeck_claim}" ]; then source "(tftp,10.99.0.1)/grub/serial/52:54:00:99:99:99/${pxedeck_claim}"; fi
    fi
    unset pxedeck_claim
    if smbios --type 2 --get-string 7 --set pxedeck_claim; then
      if [ -n "${pxedeck_claim}" ]; then source "(tftp,10.99.0.1)/grub/serial/52:54:00:99:99:99/${pxedeck_claim}"; fi
    fi
    unset pxedeck_claim
    if smbios --type 3 --get-string 8 --set pxedeck_claim; then
      if [ -n "${pxedeck_claim}" ]; then source "(tftp,10.99.0.1)/grub/asset/52:54:00:99:99:99/${pxedeck_claim}"; fi
    fi
    # pxedeck: 52:54:00:99:99:99 is not in the inventory; held until someone adopts it
    echo 'pxedeck: 52:54:00:99:99:99 is not in the inventory.'
    echo 'pxedeck: adopt it in the pxedeck console; asking again every 5 s.'
    "#);
    let known = config_for(&inv, &UnknownPolicy::Hold, "52:54:00:5b:00:01");
    assert!(!known.text.contains("smbios"), "{}", known.text);
}

#[test]
fn words_are_quoted_so_grub_expands_nothing() {
    assert_eq!(quote("a b"), "'a b'");
    assert_eq!(quote("$x"), "'$x'");
    assert_eq!(quote("it's"), "'it'\\''s'");
    assert_eq!(quote("line\nbreak"), "'line break'");
    assert_eq!(
        kernel_args(r#"a b="c d" "e" x="""#),
        ["a", "b=c d", "e", "x="]
    );
    assert!(kernel_args("  ").is_empty());
}
