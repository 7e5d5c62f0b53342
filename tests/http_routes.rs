//! Every HTTP route and error, in-process (tower `oneshot`, no sockets):
//! boot scripts for each example profile (golden files), identification,
//! configs and their access check, the done callback, files with ranges,
//! and the API's commands, reads, metrics and event stream.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use pxedeck::boot::ScriptKind;
use pxedeck::boot::render::Urls;
use pxedeck::bootfs::BootFs;
use pxedeck::capability::Purpose;
use pxedeck::config::Config;
use pxedeck::control::Control;
use pxedeck::event::{Bus, Event, EventKind};
use pxedeck::http::auth::Secrets;
use pxedeck::http::{self, HttpState, LeaseView};
use pxedeck::ident::Mac;
use pxedeck::inventory::{InventoryService, LoadOptions, SharedInventory, load};
use pxedeck::live::LiveModel;
use pxedeck::progress::ProgressTable;
use tower::ServiceExt;

const DEV01: &str = "52:54:00:d0:00:01";
const DEV01_LEASE: &str = "10.99.0.21";
const STRANGER: &str = "10.99.0.150";
const TOKEN: &str = "s3cret";

/// Leases as the DHCP side would report them.
struct FakeLeases(HashMap<Ipv4Addr, Mac>);

impl LeaseView for FakeLeases {
    fn mac_at(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.0.get(&ip).copied()
    }
    fn ip_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.0.iter().find(|(_, m)| *m == mac).map(|(ip, _)| *ip)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    nodes: PathBuf,
    state: Arc<HttpState>,
    events: tokio::sync::broadcast::Receiver<Arc<Event>>,
}

impl Fixture {
    fn new() -> Fixture {
        Self::with(|_| {}, "unknown:\n  policy: hold\n")
    }

    /// A copy of the example inventory (changed by `edit`), a boot root
    /// with a few files, dev-01 holding its lease.
    fn with(edit: impl FnOnce(&Path), config_extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let nodes = dir.path().join("nodes");
        pxedeck::demo::copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes"),
            &nodes,
            &str::to_string,
        )
        .unwrap();
        edit(&nodes);
        let boot = dir.path().join("boot");
        std::fs::create_dir_all(boot.join("ubuntu-24.04")).unwrap();
        std::fs::create_dir_all(boot.join("empty-dir")).unwrap();
        let kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(boot.join("ubuntu-24.04/vmlinuz"), &kernel).unwrap();
        std::fs::write(boot.join("ipxe.efi"), b"MZ fake efi").unwrap();
        std::fs::write(boot.join("zero"), b"").unwrap();
        std::fs::write(dir.path().join("secret"), b"not for you").unwrap();
        let text = format!(
            "server:\n  address: 10.99.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.199\nhttp:\n  api_token: {TOKEN}\n{config_extra}"
        );
        let config = Arc::new(Config::from_text(&text, None).unwrap());
        let opts = LoadOptions {
            pools: config.dhcp.pools.clone(),
            ..Default::default()
        };
        let loaded = load(&nodes, &opts);
        assert!(loaded.is_ok(), "{:?}", loaded.problems);
        let service = Arc::new(InventoryService::new(&nodes, opts, loaded.inventory));
        let inventory: SharedInventory = service.shared().clone();
        let bus = Bus::default();
        let events = bus.subscribe();
        let control = Arc::new(Control::new(service, None, bus.clone()));
        let leases = FakeLeases(HashMap::from([(
            DEV01_LEASE.parse().unwrap(),
            DEV01.parse().unwrap(),
        )]));
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
            secrets: secrets.into(),
            // No least install time: the boot after the installer is the
            // next request (the retry guard has its unit test).
            next_boot: pxedeck::http::next_boot::NextBoot::with_min(0),
        });
        Fixture {
            _dir: dir,
            nodes,
            state,
            events,
        }
    }

    fn boot(&self, from: &str) -> Router {
        let addr: SocketAddr = format!("{from}:40000").parse().unwrap();
        http::boot_router(self.state.clone()).layer(MockConnectInfo(addr))
    }

    fn api(&self) -> Router {
        http::api::router(self.state.clone()).layer(MockConnectInfo(
            "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
        ))
    }

    /// A capability for `hostname` as its boot script would hand it out:
    /// `/config/<hostname>/<token>` or `/done/<hostname>/<token>`.
    fn granted(&self, purpose: Purpose, hostname: &str) -> String {
        let inv = self.state.inventory.load();
        let mac = inv.by_hostname(hostname).and_then(|m| m.macs.first());
        let key = &self.state.secrets.capabilities;
        let now = pxedeck::clock::now_millis() / 1000;
        let token = key.token(purpose, hostname, mac, &key.mint(now, 600));
        match purpose {
            Purpose::Config => format!("/config/{hostname}/{token}"),
            Purpose::Done => format!("/done/{hostname}/{token}"),
        }
    }

    fn drain(&mut self) -> Vec<EventKind> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e.kind.clone());
        }
        out
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: header::HeaderName) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

async fn call(router: Router, req: Request<Body>) -> Reply {
    let res = router.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(router: Router, uri: &str) -> Reply {
    call(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// A GET on the API with the full token.
async fn api_get(router: Router, uri: &str) -> Reply {
    let req = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    call(router, req).await
}

/// Script text with each capability token (`<hex>.<16 hex>.<32 hex>`)
/// as `[capability]`: tokens differ on every fetch.
fn mask_capabilities(text: &str) -> String {
    let is_token = |w: &str| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3
            && [0, 16, 32].iter().zip(&parts).all(|(len, p)| {
                !p.is_empty()
                    && (*len == 0 || p.len() == *len)
                    && p.bytes().all(|b| b.is_ascii_hexdigit())
            })
    };
    text.split('/')
        .map(|seg| if is_token(seg) { "[capability]" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

// ---- scripts ----------------------------------------------------------

#[tokio::test]
async fn golden_scripts_for_every_example_profile() {
    let f = Fixture::new();
    let cases = [
        ("dev-01_ubuntu_install", DEV01),
        ("dev-03_install_false", "52:54:00:d0:00:03"),
        ("prod-01_talos_remote", "52:54:00:e0:00:01"),
        ("prod-05_local_profile", "52:54:00:e0:00:05"),
        ("unknown_hold", "52:54:00:99:00:01"),
    ];
    for (name, mac) in cases {
        let r = get(f.boot(STRANGER), &format!("/boot.ipxe?mac={mac}")).await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
        assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
        insta::assert_snapshot!(name, mask_capabilities(&r.text()));
    }
}

#[tokio::test]
async fn discover_policy_boots_the_named_profile() {
    let f = Fixture::with(
        |_| {},
        "unknown:\n  policy: discover\n  profile: ubuntu-2404\n",
    );
    let r = get(f.boot(STRANGER), "/boot.ipxe?mac=52-54-00-99-00-02").await;
    insta::assert_snapshot!("unknown_discover", r.text());
}

#[tokio::test]
async fn the_lease_address_identifies_a_machine_without_a_query() {
    let mut f = Fixture::new();
    let r = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    assert!(
        r.text().contains("is dev-01, booting ubuntu-2404"),
        "{}",
        r.text()
    );
    let served = f.drain().into_iter().find_map(|e| match e {
        EventKind::ScriptServed { kind, hostname, .. } => Some((kind, hostname)),
        _ => None,
    });
    assert_eq!(served, Some((ScriptKind::Install, Some("dev-01".into()))));
}

#[tokio::test]
async fn an_unidentified_client_is_asked_for_its_identity() {
    let f = Fixture::new();
    let r = get(f.boot(STRANGER), "/boot.ipxe").await;
    let text = r.text();
    assert!(text.starts_with("#!ipxe\n"));
    assert!(
        text.contains("http://10.99.0.1/boot.ipxe?mac=${netX/mac:hexhyp}&uuid=${uuid:uristring}"),
        "{text}"
    );
}

#[tokio::test]
async fn uuid_or_serial_identify_a_known_machine_with_a_new_nic() {
    let f = Fixture::new();
    let r = get(
        f.boot(STRANGER),
        "/boot.ipxe?mac=02-00-00-00-00-09&uuid=4c4c4544-0051-3010-8057-b4c04f4a4d01",
    )
    .await;
    assert!(
        r.text().contains("is prod-01, booting talos-worker"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn a_template_error_gives_an_error_script_and_an_event() {
    let mut f = Fixture::with(
        |nodes| {
            let p = nodes.join("k8s-dev/dev-01.yaml");
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(
                &p,
                format!("{text}boot:\n  kernel: k\n  cmdline: root={{{{ no_such_value }}}}\n"),
            )
            .unwrap();
        },
        "",
    );
    let r = get(f.boot(STRANGER), &format!("/boot.ipxe?mac={DEV01}")).await;
    let text = r.text();
    assert!(
        text.contains("echo pxedeck: cannot boot 52:54:00:d0:00:01: boot.cmdline: undefined value"),
        "{text}"
    );
    assert!(
        !text.contains("kernel "),
        "never a half-rendered script: {text}"
    );
    assert!(text.contains(
        "chain --replace --autofree http://10.99.0.1/boot.ipxe?mac=52:54:00:d0:00:01 || goto wait"
    ));
    let events = f.drain();
    assert!(events.iter().any(|e| matches!(
        e,
        EventKind::ScriptServed {
            kind: ScriptKind::Error,
            ..
        }
    )));
    assert!(events.iter().any(
        |e| matches!(e, EventKind::Log { message, .. } if message.contains("undefined value"))
    ));
}

// ---- configs ----------------------------------------------------------

#[tokio::test]
async fn configs_are_rendered_for_the_lease_holder_only() {
    let mut f = Fixture::new();
    let dev01 = f.granted(Purpose::Config, "dev-01");
    let r = get(f.boot(DEV01_LEASE), &format!("{dev01}/user-data")).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(text.starts_with("#cloud-config\n"));
    assert!(text.contains("hostname: dev-01"));
    assert!(text.contains("curl -fsS -X POST http://10.99.0.1/done/dev-01"));
    assert!(text.contains("name: lvm"), "profile values merged: {text}");
    assert!(
        text.contains("timezone: Etc/UTC"),
        "root defaults merged: {text}"
    );
    let meta = get(f.boot(DEV01_LEASE), &format!("{dev01}/meta-data")).await;
    assert_eq!(meta.text(), "instance-id: dev-01\nlocal-hostname: dev-01\n");
    assert!(matches!(
        f.drain().as_slice(),
        [
            EventKind::ConfigServed { .. },
            EventKind::ConfigServed { .. }
        ]
    ));

    let denied = get(f.boot(STRANGER), &format!("{dev01}/user-data")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(!denied.text().contains("cloud-config"));
    assert!(matches!(
        f.drain().as_slice(),
        [EventKind::AccessDenied { path, .. }] if path == "/config/dev-01/user-data"
    ));
    // Issue 15 item 3: an unknown machine answers as a refused one does
    // (it was 404), so a prober cannot list hostnames.
    assert_eq!(
        get(f.boot(DEV01_LEASE), "/config/nobody/user-data")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(f.boot(DEV01_LEASE), &format!("{dev01}/kickstart"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_static_address_and_the_allow_list_may_read_configs() {
    let f = Fixture::with(|_| {}, "  config_allow: [192.0.2.0/24]\n");
    // prod-01 has ip: 10.99.0.31 and no lease in the fake table.
    let prod01 = f.granted(Purpose::Config, "prod-01");
    let r = get(f.boot("10.99.0.31"), &format!("{prod01}/machine.yaml")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("hostname: prod-01"));
    assert!(r.text().contains("disk: /dev/sda"));
    let r = get(f.boot("192.0.2.7"), &format!("{prod01}/machine.yaml")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn ignition_must_render_to_json() {
    let f = Fixture::with(
        |nodes| {
            let p = nodes.join("k8s-dev/dev-01.yaml");
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(
                &p,
                format!("{text}configs:\n  good.ign: '{{\"ignition\": {{\"version\": \"3.4.0\"}}, \"h\": \"{{{{ hostname }}}}\"}}'\n  bad.ign: 'not json {{{{ hostname }}}}'\n"),
            )
            .unwrap();
        },
        "",
    );
    let dev01 = f.granted(Purpose::Config, "dev-01");
    let good = get(f.boot(DEV01_LEASE), &format!("{dev01}/good.ign")).await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.text());
    assert_eq!(good.header(header::CONTENT_TYPE), "application/json");
    assert!(good.text().contains("\"h\": \"dev-01\""));
    let bad = get(f.boot(DEV01_LEASE), &format!("{dev01}/bad.ign")).await;
    assert_eq!(bad.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(bad.text().contains("not valid JSON"), "{}", bad.text());
}

// ---- done callback -----------------------------------------------------

#[tokio::test]
async fn the_done_callback_flips_install_and_nothing_else() {
    let mut f = Fixture::new();
    let path = f.nodes.join("k8s-dev/dev-01.yaml");
    let before = std::fs::read_to_string(&path).unwrap();
    let done = f.granted(Purpose::Done, "dev-01");
    let post = |from| {
        let router = f.boot(from);
        let req = Request::post(done.as_str()).body(Body::empty()).unwrap();
        async move { call(router, req).await }
    };
    let denied = post(STRANGER).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    let ok = post(DEV01_LEASE).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after, before.replace("install: true", "install: false"));
    assert_ne!(after, before);
    let events = f.drain();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "dev-01"))
    );
    // The served snapshot changed too: the next script boots the disk.
    let r = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    assert!(r.text().contains("dev-01: local disk"), "{}", r.text());
}

#[tokio::test]
async fn an_installer_that_never_calls_back_is_done_when_it_has_its_config() {
    let mut f = Fixture::new();
    let path = f.nodes.join("k8s-prod/prod-01.yaml");
    let before = std::fs::read_to_string(&path).unwrap();
    let prod01 = f.granted(Purpose::Config, "prod-01");
    let r = get(f.boot("10.99.0.31"), &format!("{prod01}/machine.yaml")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The flip runs beside the response: wait for its event (bounded).
    let mut events = Vec::new();
    for _ in 0..100 {
        events.extend(f.drain());
        if events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "prod-01"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "prod-01")),
        "{events:?}"
    );
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after, before.replace("install: true", "install: false"));
    let r = get(f.boot("10.99.0.31"), "/boot.ipxe?mac=52:54:00:e0:00:01").await;
    assert!(r.text().contains("prod-01: local disk"), "{}", r.text());
    // A profile without the key waits for its callback.
    let dev01 = f.granted(Purpose::Config, "dev-01");
    let r = get(f.boot(DEV01_LEASE), &format!("{dev01}/user-data")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let dev = std::fs::read_to_string(f.nodes.join("k8s-dev/dev-01.yaml")).unwrap();
    assert!(dev.contains("install: true"), "{dev}");
}

/// A mass boot's done callbacks must cost O(1) each: the callback tells
/// consumers about its one machine, and every other machine's cached
/// script stays cached.
#[tokio::test]
async fn a_done_callback_changes_one_machine_and_keeps_the_other_scripts() {
    let mut f = Fixture::new();
    let others = [
        "52:54:00:d0:00:02",
        "52:54:00:d0:00:03",
        "52:54:00:99:00:07",
    ];
    for mac in others {
        get(f.boot(STRANGER), &format!("/boot.ipxe?mac={mac}")).await;
    }
    let dev01 = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    assert!(
        !dev01.text().contains("dev-01: local disk"),
        "{}",
        dev01.text()
    );
    let rendered = f.state.scripts.renders();
    assert_eq!(rendered, 4);
    f.drain();

    let ok = call(
        f.boot(DEV01_LEASE),
        Request::post(f.granted(Purpose::Done, "dev-01"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let events = f.drain();
    let changed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::InventoryMachineChanged { machine } => Some(machine),
            _ => None,
        })
        .collect();
    assert_eq!(changed.len(), 1, "{events:?}");
    assert_eq!(
        (changed[0].hostname.as_str(), changed[0].install),
        ("dev-01", false)
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, EventKind::InventoryReloaded { .. })),
        "no whole-inventory event for one machine: {events:?}"
    );

    for mac in others {
        get(f.boot(STRANGER), &format!("/boot.ipxe?mac={mac}")).await;
    }
    assert_eq!(
        f.state.scripts.renders(),
        rendered,
        "the others stay cached"
    );
    let dev01 = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    assert!(
        dev01.text().contains("dev-01: local disk"),
        "{}",
        dev01.text()
    );
    assert_eq!(f.state.scripts.renders(), rendered + 1);
}

/// The cache keeps a script only while what it was rendered from is
/// unchanged: a shared file (a profile) re-renders every machine, a
/// machine's own file re-renders that machine.
#[tokio::test]
async fn an_edited_file_re_renders_exactly_the_scripts_it_feeds() {
    let f = Fixture::new();
    let script = |mac: &'static str| {
        let router = f.boot(STRANGER);
        async move { get(router, &format!("/boot.ipxe?mac={mac}")).await.text() }
    };
    let reload = || {
        call(
            f.api(),
            json_post(
                "/api/v1/commands",
                Some(TOKEN),
                serde_json::json!({"command": "reload_inventory"}),
            ),
        )
    };
    let (dev01, dev02) = ("52:54:00:d0:00:01", "52:54:00:d0:00:02");
    assert!(script(dev01).await.contains("autoinstall"));
    assert!(script(dev02).await.contains("autoinstall"));

    let profile = f.nodes.join("_profiles/ubuntu-2404.yaml");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        text.replace("autoinstall\n", "autoinstall quiet\n"),
    )
    .unwrap();
    assert_eq!(reload().await.status, StatusCode::OK);
    assert!(script(dev01).await.contains("autoinstall quiet"));
    assert!(script(dev02).await.contains("autoinstall quiet"));

    let own = f.nodes.join("k8s-dev/dev-02.yaml");
    let text = std::fs::read_to_string(&own).unwrap();
    std::fs::write(&own, text.replace("install: true", "install: false")).unwrap();
    let before = f.state.scripts.renders();
    assert_eq!(reload().await.status, StatusCode::OK);
    assert!(script(dev02).await.contains("dev-02: local disk"));
    assert!(script(dev01).await.contains("autoinstall quiet"));
    assert_eq!(f.state.scripts.renders(), before + 1, "only dev-02's again");
}

/// Command failures answer with what kind they are: the request (422), a
/// name (404), the state on disk (409), or pxedeck itself (500).
#[tokio::test]
async fn api_command_errors_answer_with_their_kind() {
    let f = Fixture::new();
    let adopt = |host: &str, group: &str| {
        serde_json::json!({"machines": [{
            "macs": ["52:54:00:99:00:08"], "hostname": host, "group": group,
            "profile": "ubuntu-2404", "install": true
        }]})
    };
    let post = |uri: &str, body| call(f.api(), json_post(uri, Some(TOKEN), body));

    let invalid = post("/api/v1/adopt", adopt("Not_A_Name", "k8s-dev")).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        invalid.text().contains("not a valid hostname"),
        "{}",
        invalid.text()
    );

    let missing = post(
        "/api/v1/nodes/ghost/install",
        serde_json::json!({"install": true}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    assert!(missing.text().contains("ghost"), "{}", missing.text());

    // A plain file where the group folder would go: the write fails.
    std::fs::write(f.nodes.join("rack9"), "not a folder").unwrap();
    let io = post("/api/v1/adopt", adopt("web-09", "rack9")).await;
    assert_eq!(
        io.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        io.text()
    );
    std::fs::remove_file(f.nodes.join("rack9")).unwrap();

    // Someone's typo elsewhere in the tree: adoptions wait for the fix.
    std::fs::write(f.nodes.join("broken.yaml"), "mac: [\n").unwrap();
    let conflict = post("/api/v1/adopt", adopt("web-09", "k8s-dev")).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.text());
    assert!(
        conflict.text().contains("fix them first"),
        "{}",
        conflict.text()
    );
    assert!(!f.nodes.join("k8s-dev/web-09.yaml").exists());
}

// ---- files ------------------------------------------------------------

fn ranged(uri: &str, range: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::RANGE, range)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn files_whole_ranged_head_and_refused() {
    let mut f = Fixture::new();
    let kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let whole = get(f.boot(DEV01_LEASE), "/ubuntu-24.04/vmlinuz").await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body, kernel);
    assert_eq!(whole.header(header::CONTENT_LENGTH), "100000");
    assert_eq!(whole.header(header::ACCEPT_RANGES), "bytes");
    let events = f.drain();
    assert!(matches!(
        &events[0],
        EventKind::TransferStarted {
            size: Some(100_000),
            mac: Some(_),
            ..
        }
    ));
    assert!(matches!(
        &events[1],
        EventKind::TransferDone { bytes: 100_000, .. }
    ));

    let part = call(
        f.boot(STRANGER),
        ranged("/ubuntu-24.04/vmlinuz", "bytes=10-19"),
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, &kernel[10..20]);
    assert_eq!(part.header(header::CONTENT_RANGE), "bytes 10-19/100000");
    let open = call(
        f.boot(STRANGER),
        ranged("/ubuntu-24.04/vmlinuz", "bytes=99990-"),
    )
    .await;
    assert_eq!(open.body, &kernel[99_990..]);
    let suffix = call(
        f.boot(STRANGER),
        ranged("/ubuntu-24.04/vmlinuz", "bytes=-5"),
    )
    .await;
    assert_eq!(suffix.body, &kernel[99_995..]);
    let beyond = call(
        f.boot(STRANGER),
        ranged("/ubuntu-24.04/vmlinuz", "bytes=100000-"),
    )
    .await;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.header(header::CONTENT_RANGE), "bytes */100000");

    let head = call(
        f.boot(STRANGER),
        Request::head("/ipxe.efi").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header(header::CONTENT_TYPE), "application/efi");
    assert_eq!(head.header(header::CONTENT_LENGTH), "11");
    assert!(head.body.is_empty());
    let empty = get(f.boot(STRANGER), "/zero").await;
    assert_eq!((empty.status, empty.body.len()), (StatusCode::OK, 0));

    for (uri, status) in [
        ("/missing", StatusCode::NOT_FOUND),
        ("/../secret", StatusCode::FORBIDDEN),
        ("/%2e%2e/secret", StatusCode::FORBIDDEN),
        ("/empty-dir", StatusCode::FORBIDDEN),
        ("/etc/passwd", StatusCode::NOT_FOUND),
        ("/%zz", StatusCode::BAD_REQUEST),
    ] {
        let r = get(f.boot(STRANGER), uri).await;
        assert_eq!(r.status, status, "{uri}");
        assert!(!r.text().contains("not for you"));
        assert!(r.headers.get(header::LOCATION).is_none(), "no redirects");
    }
    let post = call(
        f.boot(STRANGER),
        Request::builder()
            .method(Method::POST)
            .uri("/ipxe.efi")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

// ---- API --------------------------------------------------------------

fn json_post(uri: &str, token: Option<&str>, body: serde_json::Value) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn api_commands_need_the_token_and_write_the_inventory() {
    let f = Fixture::new();
    let adoption = serde_json::json!({"machines": [{
        "macs": ["52:54:00:99:00:07"], "hostname": "dev-07", "group": "k8s-dev",
        "profile": "ubuntu-2404", "install": true
    }]});
    // Held before the adoption (and that script is now cached)…
    let held = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:99:00:07").await;
    assert!(
        held.text().contains("held until someone adopts it"),
        "{}",
        held.text()
    );
    let none = call(f.api(), json_post("/api/v1/adopt", None, adoption.clone())).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let wrong = call(
        f.api(),
        json_post("/api/v1/adopt", Some("nope"), adoption.clone()),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!f.nodes.join("k8s-dev/dev-07.yaml").exists());

    let ok = call(
        f.api(),
        json_post("/api/v1/adopt", Some(TOKEN), adoption.clone()),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(f.nodes.join("k8s-dev/dev-07.yaml").exists());
    // …the adopted machine boots its profile at once: a new inventory
    // snapshot is a new cache.
    let r = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:99:00:07").await;
    assert!(
        r.text().contains("is dev-07, booting ubuntu-2404"),
        "{}",
        r.text()
    );

    let again = call(f.api(), json_post("/api/v1/adopt", Some(TOKEN), adoption)).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.text().contains("dev-07"), "{}", again.text());

    let flip = call(
        f.api(),
        json_post(
            "/api/v1/nodes/dev-07/install",
            Some(TOKEN),
            serde_json::json!({"install": false}),
        ),
    )
    .await;
    assert_eq!(flip.status, StatusCode::OK, "{}", flip.text());
    let text = std::fs::read_to_string(f.nodes.join("k8s-dev/dev-07.yaml")).unwrap();
    assert!(text.contains("install: false"), "{text}");
}

#[tokio::test]
async fn api_commands_are_refused_without_a_configured_token() {
    let f = Fixture::new();
    let mut config = (*f.state.config).clone();
    config.http.api_token = None;
    let secrets = Secrets::ephemeral(&config).unwrap();
    let state = Arc::new(HttpState {
        config: Arc::new(config),
        inventory: f.state.inventory.clone(),
        bus: f.state.bus.clone(),
        fs: f.state.fs.clone(),
        progress: f.state.progress.clone(),
        leases: Arc::new(FakeLeases(HashMap::new())),
        urls: f.state.urls.clone(),
        stats: Default::default(),
        control: f.state.control.clone(),
        model: f.state.model.clone(),
        dhcp: None,
        tftp: None,
        scripts: Default::default(),
        files: Default::default(),
        secrets: secrets.into(),
        next_boot: Default::default(),
    });
    let api = http::api::router(state);
    let r = call(
        api,
        json_post(
            "/api/v1/commands",
            Some(TOKEN),
            serde_json::json!({"command": "reload_inventory"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("api_token"));
}

#[tokio::test]
async fn api_reads_metrics_and_event_stream() {
    let f = Fixture::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(
        f.state
            .model
            .clone()
            .run(f.state.bus.clone(), cancel.clone()),
    );
    // Some traffic for the model to fold.
    get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    get(f.boot(DEV01_LEASE), "/ubuntu-24.04/vmlinuz").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let machines = api_get(f.api(), "/api/v1/machines").await;
    let rows: serde_json::Value = serde_json::from_slice(&machines.body).unwrap();
    assert_eq!(rows[0]["mac"], DEV01);
    assert_eq!(rows[0]["hostname"], "dev-01");
    let nodes: serde_json::Value =
        serde_json::from_slice(&api_get(f.api(), "/api/v1/nodes").await.body).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 9);
    let profiles: serde_json::Value =
        serde_json::from_slice(&api_get(f.api(), "/api/v1/profiles").await.body).unwrap();
    assert_eq!(profiles[0]["name"], "disk-image");
    assert_eq!(profiles[1]["name"], "local");
    let transfers: serde_json::Value =
        serde_json::from_slice(&api_get(f.api(), "/api/v1/transfers").await.body).unwrap();
    assert_eq!(transfers["recent"][0]["bytes"], 100_000);
    assert_eq!(get(f.api(), "/healthz").await.text(), "ok\n");

    let metrics = get(f.api(), "/metrics").await.text();
    for needle in [
        "pxedeck_http_requests_total 2",
        "pxedeck_http_bytes_total 100000",
        "pxedeck_http_responses_total{kind=\"script\"} 1",
        "pxedeck_http_responses_total{kind=\"file_done\"} 1",
        "# TYPE pxedeck_inventory_reloads_total counter",
        "pxedeck_machines_by_state{state=\"loading\"} 1",
        "pxedeck_machines_by_state{state=\"stuck\"} 0",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }

    // The stream opens with the snapshot, then carries new events.
    let res = f
        .api()
        .oneshot(
            Request::get("/api/v1/events")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body().into_data_stream();
    use futures_util::StreamExt;
    let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: snapshot\ndata: {"), "{first}");
    assert!(first.contains("\"hostname\":\"dev-01\""));
    get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:99:00:01").await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let next = String::from_utf8(next.to_vec()).unwrap();
    assert!(next.starts_with("event: event\ndata: {"), "{next}");
    assert!(next.contains("\"type\":\"script_served\""), "{next}");
    cancel.cancel();
}

#[tokio::test]
async fn forget_drops_an_unknown_machine_and_refuses_a_known_one() {
    let mut f = Fixture::new();
    let forget = |mac: &str| {
        call(
            f.api(),
            json_post(
                "/api/v1/commands",
                Some(TOKEN),
                serde_json::json!({"command": "forget", "mac": mac}),
            ),
        )
    };
    let known = forget(DEV01).await;
    assert_eq!(
        known.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        known.text()
    );
    assert!(
        known.text().contains("dev-01 in the inventory"),
        "{}",
        known.text()
    );
    let stranger = "52:54:00:99:00:42";
    let ok = forget(stranger).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(
        f.drain().iter().any(
            |e| matches!(e, EventKind::MachineForgotten { mac } if mac.to_string() == stranger)
        )
    );
}

/// Edit and undo over the API: the same commands as the console's keys,
/// each input bounded with a clear refusal (unknown keys, a name past
/// the bound, a body past axum's limit), and undo refused once nothing
/// is left to undo or the file changed.
#[tokio::test]
async fn api_edits_a_machine_and_undoes_the_last_adoption_within_bounds() {
    let f = Fixture::new();
    let post = |uri: &str, body| call(f.api(), json_post(uri, Some(TOKEN), body));
    let ok = post(
        "/api/v1/nodes/dev-03/edit",
        serde_json::json!({"profile": "talos-worker", "install": true}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(
        ok.text()
            .contains("dev-03: profile talos-worker, install true"),
        "{}",
        ok.text()
    );
    let text = std::fs::read_to_string(f.nodes.join("k8s-dev/dev-03.yaml")).unwrap();
    assert!(
        text.contains("profile: talos-worker") && text.contains("install: true"),
        "{text}"
    );
    assert!(
        text.contains("storage_layout: direct   # one small disk"),
        "{text}"
    );
    // The same through the generic commands route.
    let ok = post(
        "/api/v1/commands",
        serde_json::json!({"command": "edit", "hostname": "dev-03", "group": "k8s-prod"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(f.nodes.join("k8s-prod/dev-03.yaml").exists());
    assert!(!f.nodes.join("k8s-dev/dev-03.yaml").exists());

    let misspelt = post(
        "/api/v1/nodes/dev-01/edit",
        serde_json::json!({"profil": "x"}),
    )
    .await;
    assert_eq!(
        misspelt.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        misspelt.text()
    );
    assert!(
        misspelt.text().contains("unknown field `profil`"),
        "{}",
        misspelt.text()
    );
    let long = post(
        "/api/v1/nodes/dev-01/edit",
        serde_json::json!({"group": "g".repeat(5000)}),
    )
    .await;
    assert_eq!(
        long.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        long.text()
    );
    assert!(long.text().contains("at most 128"), "{}", long.text());
    assert!(
        long.text().len() < 300,
        "no echo of the input: {}",
        long.text()
    );
    let huge = post(
        "/api/v1/nodes/dev-01/edit",
        serde_json::json!({"profile": "p".repeat(3 << 20)}),
    )
    .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    let bad_ip = post(
        "/api/v1/nodes/dev-01/edit",
        serde_json::json!({"ip": "10.99.0.300"}),
    )
    .await;
    assert_eq!(
        bad_ip.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_ip.text()
    );
    let ghost = post(
        "/api/v1/nodes/ghost/edit",
        serde_json::json!({"install": true}),
    )
    .await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND, "{}", ghost.text());

    let nothing = post("/api/v1/adopt/undo", serde_json::json!({})).await;
    assert_eq!(nothing.status, StatusCode::CONFLICT, "{}", nothing.text());
    assert!(
        nothing.text().contains("no adoption to undo"),
        "{}",
        nothing.text()
    );
    let adoption = serde_json::json!({"machines": [{
        "macs": ["52:54:00:99:00:07"], "hostname": "dev-07", "group": "k8s-dev",
        "profile": "ubuntu-2404", "install": false
    }]});
    assert_eq!(
        post("/api/v1/adopt", adoption.clone()).await.status,
        StatusCode::OK
    );
    let undone = post("/api/v1/adopt/undo", serde_json::json!({})).await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.text());
    assert!(!f.nodes.join("k8s-dev/dev-07.yaml").exists());
    assert_eq!(post("/api/v1/adopt", adoption).await.status, StatusCode::OK);
    std::fs::write(
        f.nodes.join("k8s-dev/dev-07.yaml"),
        "mac: \"52:54:00:99:00:07\"\n",
    )
    .unwrap();
    let changed = post(
        "/api/v1/commands",
        serde_json::json!({"command": "undo_adoption"}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::CONFLICT, "{}", changed.text());
    assert!(
        changed.text().contains("changed since it was adopted"),
        "{}",
        changed.text()
    );
    assert!(f.nodes.join("k8s-dev/dev-07.yaml").exists());
}

/// `done_on_next_boot` (the example's disk-image profile): the boot after
/// the installer is the done callback, answered with the local disk.
#[tokio::test]
async fn an_installer_without_callback_or_config_is_done_on_the_next_boot() {
    let mut f = Fixture::with(
        |nodes| {
            std::fs::write(
                nodes.join("k8s-dev/img-01.yaml"),
                "# imaged, never calls back\nmac: \"52:54:00:77:00:41\"\nprofile: disk-image\ninstall: true\n",
            )
            .unwrap();
        },
        "unknown:\n  policy: hold\n",
    );
    let path = f.nodes.join("k8s-dev/img-01.yaml");
    let first = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:77:00:41").await;
    assert!(
        first.text().contains("imager/vmlinuz"),
        "the installer: {}",
        first.text()
    );
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("install: true")
    );
    let next = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:77:00:41").await;
    assert!(
        next.text().contains("img-01: local disk"),
        "{}",
        next.text()
    );
    let mut events = Vec::new();
    for _ in 0..100 {
        events.extend(f.drain());
        if events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "img-01"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "img-01")),
        "{events:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# imaged, never calls back\n") && text.contains("install: false"),
        "{text}"
    );
    // And it stays on its disk.
    let again = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:77:00:41").await;
    assert!(
        again.text().contains("img-01: local disk"),
        "{}",
        again.text()
    );
    // A profile without the key is served its installer every time.
    for _ in 0..2 {
        let r = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
        assert!(r.text().contains("autoinstall"), "{}", r.text());
    }
}
