//! Identity beyond the MAC on `/boot.ipxe` (issue 16, items 6 and 7),
//! in-process: a machine known only by serial or asset tag is found from
//! the identify script's query and installs, its configs go to the MAC it
//! booted from and to no one else; the UUID DHCP saw identifies without a
//! query; a claim never makes a machine the inventory knows by MAC another
//! one; queries past their bounds are refused with 400; facts reach the
//! bus.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use pxedeck::boot::render::Urls;
use pxedeck::bootfs::BootFs;
use pxedeck::config::Config;
use pxedeck::control::Control;
use pxedeck::event::{Bus, Event, EventKind};
use pxedeck::http::auth::Secrets;
use pxedeck::http::{self, HttpState, LeaseView};
use pxedeck::ident::{Mac, Uuid};
use pxedeck::inventory::{InventoryService, LoadOptions, load};
use pxedeck::live::LiveModel;
use pxedeck::progress::ProgressTable;
use tower::ServiceExt;

/// Leases (and the UUIDs DHCP saw) as the DHCP side would report them.
struct FakeLeases(HashMap<Ipv4Addr, (Mac, Option<Uuid>)>);

impl LeaseView for FakeLeases {
    fn mac_at(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.0.get(&ip).map(|l| l.0)
    }
    fn ip_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.0.iter().find(|(_, l)| l.0 == *mac).map(|(ip, _)| *ip)
    }
    fn uuid_of(&self, mac: &Mac) -> Option<Uuid> {
        self.0.values().find(|l| l.0 == *mac).and_then(|l| l.1)
    }
}

const SEEDED_LEASE: &str = "10.99.0.120"; // 52:54:00:5e:00:01, unknown MAC
const SEEDED_MAC: &str = "52:54:00:5e:00:01";
const PROD_LEASE: &str = "10.99.0.121"; // prod-01 by MAC, install: false
const PROD_MAC: &str = "52:54:00:e0:00:01";
const UUID_LEASE: &str = "10.99.0.122"; // an unknown MAC that sent a known UUID
const SPOOFER: &str = "10.99.0.123"; // another unknown MAC
const FULL_QUERY: &str = "&uuid=&serial=SN-SEEDED-01&board-serial=&asset=\
    &manufacturer=QEMU&product=Standard%20PC&chip=e1000&busid=01:80:86:10:0e\
    &platform=pcbios&arch=i386";

struct Fixture {
    _dir: tempfile::TempDir,
    state: Arc<HttpState>,
    events: tokio::sync::broadcast::Receiver<Arc<Event>>,
}

const PROFILE: &str = "boot:\n  kernel: k/vmlinuz\n  initrd: k/initrd\n  \
    cmdline: url={{ config_url }}/user-data\nconfigs:\n  user-data: |\n    \
    #cloud-config {{ hostname }} done={{ done_url }}\n";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes");
    for d in ["_profiles", "rack12", "prod"] {
        std::fs::create_dir_all(nodes.join(d)).unwrap();
    }
    let w = |p: &str, t: &str| std::fs::write(nodes.join(p), t).unwrap();
    w("_profiles/os.yaml", PROFILE);
    w(
        "rack12/slot-07.yaml",
        "serial: SN-SEEDED-01\nprofile: os\ninstall: true\n",
    );
    w(
        "rack12/slot-08.yaml",
        "asset: A-0008\nprofile: os\ninstall: true\n",
    );
    w(
        "rack12/slot-09.yaml",
        "uuid: 4c4c4544-0051-3010-8057-b4c04f4a4d09\nprofile: os\ninstall: true\n",
    );
    w(
        "prod/prod-01.yaml",
        &format!("mac: \"{PROD_MAC}\"\nserial: SN-PROD-01\nprofile: os\n"),
    );
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    let text = "server:\n  address: 10.99.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      \
                range: 10.99.0.100-10.99.0.199\nunknown:\n  policy: hold\n";
    let config = Arc::new(Config::from_text(text, None).unwrap());
    let opts = LoadOptions {
        pools: config.dhcp.pools.clone(),
        ..Default::default()
    };
    let loaded = load(&nodes, &opts);
    assert!(loaded.is_ok(), "{:?}", loaded.problems);
    let service = Arc::new(InventoryService::new(&nodes, opts, loaded.inventory));
    let inventory = service.shared().clone();
    let bus = Bus::default();
    let events = bus.subscribe();
    let control = Arc::new(Control::new(service, None, bus.clone()));
    let lease = |ip: &str, mac: &str, uuid: Option<&str>| {
        (
            ip.parse().unwrap(),
            (mac.parse().unwrap(), uuid.map(|u| u.parse().unwrap())),
        )
    };
    let leases = FakeLeases(HashMap::from([
        lease(SEEDED_LEASE, SEEDED_MAC, None),
        lease(PROD_LEASE, PROD_MAC, None),
        lease(
            UUID_LEASE,
            "52:54:00:5e:00:09",
            Some("4c4c4544-0051-3010-8057-b4c04f4a4d09"),
        ),
        lease(SPOOFER, "52:54:00:66:66:66", None),
    ]));
    let secrets = Secrets::ephemeral(&config).unwrap();
    let state = Arc::new(HttpState {
        config,
        inventory,
        bus,
        fs: BootFs::new([boot]),
        progress: Arc::new(ProgressTable::default()),
        leases: Arc::new(leases),
        urls: Urls::new("http://10.99.0.1"),
        stats: Default::default(),
        control: Some(control),
        model: Arc::new(LiveModel::default()),
        dhcp: None,
        tftp: None,
        scripts: Default::default(),
        files: Default::default(),
        next_boot: Default::default(),
        secrets: secrets.into(),
    });
    Fixture {
        _dir: dir,
        state,
        events,
    }
}

impl Fixture {
    fn from(&self, ip: &str) -> Router {
        let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
        http::boot_router(self.state.clone()).layer(MockConnectInfo(addr))
    }

    fn drain(&mut self) -> Vec<EventKind> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e.kind.clone());
        }
        out
    }
}

async fn get(router: Router, uri: &str) -> (StatusCode, String) {
    let res = router
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The `/config/<host>/<token>` prefix a script hands out.
fn config_prefix(script: &str, host: &str) -> Option<String> {
    let start = script.find(&format!("/config/{host}/"))?;
    let rest = &script[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let url = &rest[..end];
    Some(url.strip_suffix("/user-data").unwrap_or(url).to_string())
}

#[tokio::test]
async fn a_serial_only_machine_in_full_mode_is_asked_then_installs() {
    let mut f = fixture();
    // What DHCP's boot file gives (no query): the lease's MAC is unknown,
    // so iPXE is asked for everything it knows, serial included.
    let (status, first) = get(f.from(SEEDED_LEASE), "/boot.ipxe").await;
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("&serial=${serial:uristring}"), "{first}");
    assert!(first.contains("&asset=${asset:uristring}"), "{first}");
    assert!(first.contains("&chip=${netX/chip:uristring}"), "{first}");
    assert!(!first.contains("held until"), "not held yet: {first}");
    // The chained request, as iPXE expands it: found by serial, installs.
    let url = format!("/boot.ipxe?mac=52-54-00-5e-00-01{FULL_QUERY}");
    let (_, script) = get(f.from(SEEDED_LEASE), &url).await;
    assert!(
        script.contains("is slot-07, booting os"),
        "a machine known by serial installs with no adoption: {script}"
    );
    let events = f.drain();
    let served = events.iter().find_map(|e| match e {
        EventKind::ScriptServed { hostname, mac, .. } => Some((hostname.clone(), *mac)),
        _ => None,
    });
    assert_eq!(
        served,
        Some((Some("slot-07".into()), Some(SEEDED_MAC.parse().unwrap())))
    );
    let facts = events.iter().find_map(|e| match e {
        EventKind::FactsReported { facts, .. } => Some(facts.clone()),
        _ => None,
    });
    let facts = facts.expect("the facts reach the bus");
    assert_eq!(facts.get("product"), Some("Standard PC"));
    assert_eq!(facts.get("busid"), Some("01:80:86:10:0e"));
    assert_eq!(facts.get("serial"), Some("SN-SEEDED-01"));

    // Its configs go to the MAC it booted from (bound for this boot)…
    let prefix = config_prefix(&script, "slot-07").expect(&script);
    let (status, config) = get(f.from(SEEDED_LEASE), &format!("{prefix}/user-data")).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert!(config.contains("#cloud-config slot-07"), "{config}");
    // …and to no other address, token or not.
    let (status, _) = get(f.from(SPOOFER), &format!("{prefix}/user-data")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_spoofed_serial_rebinds_but_the_earlier_token_dies() {
    let f = fixture();
    let url = |mac: &str| format!("/boot.ipxe?mac={mac}{FULL_QUERY}");
    let (_, real) = get(f.from(SEEDED_LEASE), &url("52-54-00-5e-00-01")).await;
    let real_prefix = config_prefix(&real, "slot-07").unwrap();
    // Someone else on the segment claims the same serial: it is served
    // the script (claims are not proof), and the machine is bound to it…
    let (_, spoofed) = get(f.from(SPOOFER), &url("52-54-00-66-66-66")).await;
    assert!(spoofed.contains("is slot-07"), "{spoofed}");
    // …so the first boot's token no longer opens the configs: a machine
    // without a MAC in its file has one boot at a time.
    let (status, _) = get(f.from(SEEDED_LEASE), &format!("{real_prefix}/user-data")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The real machine boots again and takes it back.
    let (_, again) = get(f.from(SEEDED_LEASE), &url("52-54-00-5e-00-01")).await;
    let prefix = config_prefix(&again, "slot-07").unwrap();
    let (status, _) = get(f.from(SEEDED_LEASE), &format!("{prefix}/user-data")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_claim_never_makes_a_machine_known_by_mac_another_one() {
    let f = fixture();
    // prod-01 (install: false) claims the seeded machine's serial and the
    // seeded machine's MAC: it stays prod-01 and boots its disk.
    let url = format!("/boot.ipxe?mac=52-54-00-5e-00-01{FULL_QUERY}");
    let (_, script) = get(f.from(PROD_LEASE), &url).await;
    assert!(script.contains("prod-01: local disk"), "{script}");
    assert!(!script.contains("booting"), "{script}");
}

#[tokio::test]
async fn asset_tags_and_the_uuid_dhcp_saw_identify_too() {
    let f = fixture();
    let (_, script) = get(
        f.from(SPOOFER),
        "/boot.ipxe?mac=52-54-00-66-66-66&serial=&asset=A-0008",
    )
    .await;
    assert!(script.contains("is slot-08, booting os"), "{script}");
    // No query at all: the UUID of option 97 at this lease is enough.
    let (_, script) = get(f.from(UUID_LEASE), "/boot.ipxe").await;
    assert!(script.contains("is slot-09, booting os"), "{script}");
}

#[tokio::test]
async fn the_hold_loop_keeps_reporting_everything() {
    let f = fixture();
    let (_, held) = get(
        f.from(SPOOFER),
        "/boot.ipxe?mac=52-54-00-66-66-66&serial=Default%20string",
    )
    .await;
    assert!(held.contains("held until someone adopts it"), "{held}");
    assert!(
        held.contains("boot.ipxe?mac=52:54:00:66:66:66&uuid=${uuid}&serial=${serial:uristring}"),
        "{held}"
    );
    assert!(
        held.contains("&manufacturer=${manufacturer:uristring}"),
        "{held}"
    );
}

#[tokio::test]
async fn queries_past_their_bounds_are_refused_with_400() {
    let mut f = fixture();
    let long = "A".repeat(65);
    for (query, why) in [
        (format!("mac=52-54-00-66-66-66&serial={long}"), "at most 64"),
        (
            "mac=52-54-00-66-66-66&product=evil%0Aecho".to_string(),
            "printable ASCII",
        ),
        ("mac=52-54-00-66-66-66&uuid=nope".to_string(), "not a UUID"),
        ("mac=xx".to_string(), "not a MAC address"),
        (
            format!("mac=52-54-00-66-66-66&manufacturer={long}"),
            "at most 64",
        ),
    ] {
        let (status, body) = get(f.from(SPOOFER), &format!("/boot.ipxe?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.contains(why), "{query}: {body}");
    }
    let events = f.drain();
    assert!(
        !events.iter().any(|e| matches!(
            e,
            EventKind::ScriptServed { .. } | EventKind::FactsReported { .. }
        )),
        "a refused query serves nothing and reports nothing"
    );
    // 64 bytes is within the bound.
    let ok = "A".repeat(63) + "B";
    let (status, _) = get(
        f.from(SPOOFER),
        &format!("/boot.ipxe?mac=52-54-00-66-66-66&serial={ok}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_placeholder_serial_in_a_machine_file_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path();
    std::fs::create_dir_all(nodes.join("_profiles")).unwrap();
    std::fs::write(nodes.join("_profiles/os.yaml"), PROFILE).unwrap();
    std::fs::write(
        nodes.join("a.yaml"),
        "profile: os\nserial: To be filled by O.E.M.\n",
    )
    .unwrap();
    std::fs::write(nodes.join("b.yaml"), "asset: A-1\nprofile: os\n").unwrap();
    std::fs::write(nodes.join("c.yaml"), "asset: A-1\nprofile: os\n").unwrap();
    let loaded = load(Path::new(nodes), &LoadOptions::default());
    let text: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|p| p.contains("a.yaml:2") && p.contains("firmware placeholder")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|p| p.contains("c.yaml") && p.contains("duplicate asset tag A-1")),
        "{text:?}"
    );
}

#[test]
fn an_adopted_file_keeps_its_facts_and_facts_in_files_are_bounded() {
    use pxedeck::boot::identity::Facts;
    use pxedeck::inventory::{Adoption, machine_file_text};
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path();
    std::fs::create_dir_all(nodes.join("_profiles")).unwrap();
    std::fs::write(nodes.join("_profiles/os.yaml"), PROFILE).unwrap();
    let mut facts = Facts::default();
    facts.insert("manufacturer", "QEMU");
    facts.insert("product", "Standard PC (i440FX + PIIX, 1996)");
    facts.insert("asset", "RACK12: \"slot\" 7 # not a comment");
    let a = Adoption {
        macs: vec!["52:54:00:5e:00:07".parse().unwrap()],
        hostname: "r12-07".into(),
        profile: "os".into(),
        facts: facts.clone(),
        ..Default::default()
    };
    std::fs::write(nodes.join("r12-07.yaml"), machine_file_text(&a)).unwrap();
    let many: String = (0..17).map(|n| format!("  k{n}: v\n")).collect();
    std::fs::write(
        nodes.join("many.yaml"),
        format!("mac: \"52:54:00:5e:00:08\"\nfacts:\n{many}"),
    )
    .unwrap();
    std::fs::write(
        nodes.join("long.yaml"),
        format!(
            "mac: \"52:54:00:5e:00:09\"\nfacts:\n  product: {}\n",
            "x".repeat(65)
        ),
    )
    .unwrap();
    let loaded = load(nodes, &LoadOptions::default());
    let text: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|p| p.contains("many.yaml:3") && p.contains("at most 16")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|p| p.contains("long.yaml:3") && p.contains("at most 64 bytes")),
        "{text:?}"
    );
    assert_eq!(text.len(), 2, "the adopted file itself is clean: {text:?}");
    let m = loaded.inventory.by_hostname("r12-07").expect("loaded");
    assert_eq!(
        m.facts, facts,
        "facts survive the round trip, quoting and all"
    );
}
