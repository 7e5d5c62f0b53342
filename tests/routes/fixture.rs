//! The in-process HTTP fixture `tests/http_routes.rs` and
//! `tests/http_api.rs` share: a copy of the example inventory, a boot
//! root, the state every route reads, and helpers to call a router.

#![allow(dead_code, unused_imports)]

pub use std::collections::HashMap;
pub use std::net::{Ipv4Addr, SocketAddr};
pub use std::path::{Path, PathBuf};
pub use std::sync::Arc;

pub use axum::Router;
pub use axum::body::{Body, to_bytes};
pub use axum::extract::connect_info::MockConnectInfo;
pub use axum::http::{Method, Request, StatusCode, header};
pub use pxedeck::boot::ScriptKind;
pub use pxedeck::boot::render::Urls;
pub use pxedeck::bootfs::BootFs;
pub use pxedeck::capability::Purpose;
pub use pxedeck::config::Config;
pub use pxedeck::control::Control;
pub use pxedeck::event::{Bus, Event, EventKind};
pub use pxedeck::http::auth::Secrets;
pub use pxedeck::http::{self, HttpState, LeaseView};
pub use pxedeck::ident::Mac;
pub use pxedeck::inventory::{InventoryService, LoadOptions, SharedInventory, load};
pub use pxedeck::live::LiveModel;
pub use pxedeck::progress::ProgressTable;
pub use tower::ServiceExt;

pub const DEV01: &str = "52:54:00:d0:00:01";
pub const DEV01_LEASE: &str = "10.99.0.21";
pub const STRANGER: &str = "10.99.0.150";
pub const TOKEN: &str = "s3cret";

/// Leases as the DHCP side would report them.
pub struct FakeLeases(pub HashMap<Ipv4Addr, Mac>);

impl LeaseView for FakeLeases {
    fn mac_at(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.0.get(&ip).copied()
    }
    fn ip_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.0.iter().find(|(_, m)| *m == mac).map(|(ip, _)| *ip)
    }
}

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub nodes: PathBuf,
    pub state: Arc<HttpState>,
    pub events: tokio::sync::broadcast::Receiver<Arc<Event>>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Self::with(|_| {}, "unknown:\n  policy: hold\n")
    }

    /// A copy of the example inventory (changed by `edit`), a boot root
    /// with a few files, dev-01 holding its lease.
    pub fn with(edit: impl FnOnce(&Path), config_extra: &str) -> Fixture {
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

    pub fn boot(&self, from: &str) -> Router {
        let addr: SocketAddr = format!("{from}:40000").parse().unwrap();
        http::boot_router(self.state.clone()).layer(MockConnectInfo(addr))
    }

    pub fn api(&self) -> Router {
        http::api::router(self.state.clone()).layer(MockConnectInfo(
            "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
        ))
    }

    /// A capability for `hostname` as its boot script would hand it out:
    /// `/config/<hostname>/<token>` or `/done/<hostname>/<token>`.
    pub fn granted(&self, purpose: Purpose, hostname: &str) -> String {
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

    pub fn drain(&mut self) -> Vec<EventKind> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e.kind.clone());
        }
        out
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: header::HeaderName) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

pub async fn call(router: Router, req: Request<Body>) -> Reply {
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

pub async fn get(router: Router, uri: &str) -> Reply {
    call(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// A GET on the API with the full token.
pub async fn api_get(router: Router, uri: &str) -> Reply {
    let req = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    call(router, req).await
}

/// Script text with each capability token (`<hex>.<16 hex>.<32 hex>`)
/// as `[capability]`: tokens differ on every fetch.
pub fn mask_capabilities(text: &str) -> String {
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

pub fn json_post(uri: &str, token: Option<&str>, body: serde_json::Value) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}
