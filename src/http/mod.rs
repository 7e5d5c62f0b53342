//! The HTTP side: what iPXE, UEFI HTTP Boot and installers fetch (boot
//! routes, on the provisioning address) and what `pxedeck attach` and
//! automation use (the API, bound separately, loopback by default).
//!
//! - `boot`: the entry script, installer configs, the install-done callback;
//! - `files`: files under the boot root (Range, HEAD, streamed, tracked);
//! - `conn`: the accept loop, with a connection cap, a header timeout and
//!   an idle timeout;
//! - `api`: JSON under `/api/v1`, the SSE event stream, `/metrics`,
//!   `/healthz`;
//! - `auth`: the API's bearer tokens and the secrets behind capability
//!   URLs;
//! - `client`: the small HTTP client the simulator and `attach` use, and
//!   the SSE parser;
//! - `remote`: the console's backend over the API (`pxedeck attach`).

pub mod api;
pub mod auth;
mod boot;
pub use boot::{Bindings, ScriptCache};
pub mod client;
mod conn;
pub use conn::{API_MAX_CONNECTIONS, ConnLimits, serve, serve_on};
mod files;
pub mod next_boot;
// Public for the fuzz targets (fuzz/): the request parsing only.
pub use files::{Span, Wanted, percent_decode, wanted};
pub mod remote;
pub mod zerocopy;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::{any, get};

use crate::boot::render::Urls;
use crate::bootfs::BootFs;
use crate::config::Config;
use crate::control::Control;
use crate::counters::Counts;
use crate::dhcp::server::DhcpServer;
use crate::event::Bus;
use crate::ident::{Mac, Uuid};
use crate::inventory::SharedInventory;
use crate::live::LiveModel;
use crate::progress::ProgressTable;
use crate::tftp::server::TftpServer;

/// Who holds which address: the HTTP side asks the DHCP lease table so it
/// can tell which machine a request comes from.
pub trait LeaseView: Send + Sync {
    fn mac_at(&self, ip: Ipv4Addr) -> Option<Mac>;
    fn ip_of(&self, mac: &Mac) -> Option<Ipv4Addr>;
    /// The SMBIOS UUID the DHCP server saw in this MAC's option 97.
    fn uuid_of(&self, _mac: &Mac) -> Option<Uuid> {
        None
    }
    /// Where DHCP last saw this MAC (segment, relay, option 82,
    /// firmware), for rules matched when its facts arrive.
    fn seen_of(&self, _mac: &Mac) -> Option<crate::dhcp::seen::Seen> {
        None
    }
    /// The wire identities of a request from `client`: the MAC holding
    /// the lease of its address and the UUID DHCP saw for that MAC
    /// (option 97).
    fn wire(&self, client: IpAddr) -> (Option<Mac>, Option<Uuid>) {
        let mac = match to_v4(client) {
            IpAddr::V4(v4) => self.mac_at(v4),
            IpAddr::V6(_) => None,
        };
        (mac, mac.and_then(|m| self.uuid_of(&m)))
    }
}

/// No lease table (proxyDHCP or DHCP off): machines are identified by the
/// MAC iPXE sends, and configs go to static addresses and the allow-list.
pub struct NoLeases;

impl LeaseView for NoLeases {
    fn mac_at(&self, _: Ipv4Addr) -> Option<Mac> {
        None
    }
    fn ip_of(&self, _: &Mac) -> Option<Ipv4Addr> {
        None
    }
}

impl LeaseView for DhcpServer {
    fn mac_at(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.bound_lease_at(ip).map(|l| l.mac)
    }
    fn ip_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.bound_lease_of(mac).map(|l| l.ip)
    }
    fn uuid_of(&self, mac: &Mac) -> Option<Uuid> {
        self.seen_uuid(mac)
    }
    fn seen_of(&self, mac: &Mac) -> Option<crate::dhcp::seen::Seen> {
        self.seen(mac)
    }
}

crate::reasons! {
    /// What a boot-route request was answered with.
    pub enum HttpResponse {
        Script => "script",
        Config => "config",
        NotFound => "not_found",
        Denied => "denied",
        /// A boot script request whose query broke a bound (400).
        Refused => "refused",
        RenderError => "render_error",
        FileDone => "file_done",
        FileFailed => "file_failed",
        /// A connection past the cap, answered 503 without being read.
        Busy => "busy",
        /// A connection closed by the header or the idle timeout.
        TimedOut => "timed_out",
    }
}

/// Exact counters for `/metrics`, bumped on the request paths.
#[derive(Default)]
pub struct HttpStats {
    pub requests: AtomicU64,
    /// File bytes handed to connections.
    pub bytes: AtomicU64,
    pub responses: Counts<HttpResponse>,
}

impl HttpStats {
    fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn answered(&self, kind: HttpResponse) {
        self.responses.bump(kind);
    }
}

/// Everything the HTTP handlers read.
pub struct HttpState {
    pub config: Arc<Config>,
    pub inventory: SharedInventory,
    pub bus: Bus,
    pub fs: BootFs,
    pub progress: Arc<ProgressTable>,
    pub leases: Arc<dyn LeaseView>,
    pub urls: Urls,
    pub stats: HttpStats,
    /// Writes the inventory (done callback, API commands); None in tests
    /// that only read.
    pub control: Option<Arc<Control>>,
    /// The model the API answers from, folded from the bus.
    pub model: Arc<LiveModel>,
    /// For `/metrics`.
    pub dhcp: Option<Arc<DhcpServer>>,
    pub tftp: Option<Arc<TftpServer>>,
    /// Entry scripts rendered for the current inventory snapshot.
    pub scripts: ScriptCache,
    /// Hot boot files in memory (shared with TFTP in `serve`).
    pub files: Arc<crate::filecache::FileCache>,
    /// The API's tokens and the key that signs config and done URLs.
    /// Shared with the TFTP side, whose GRUB configs carry tokens too.
    pub secrets: Arc<auth::Secrets>,
    /// When machines with `done_on_next_boot` were handed their installer.
    pub next_boot: next_boot::NextBoot,
}

impl HttpState {
    /// May `client` read the configs of (and call back for) the machine
    /// with these MACs and static address? Only the address that holds its
    /// lease, its static address, or the configured allow-list.
    fn may_access(&self, client: IpAddr, macs: &[Mac], fixed: Option<Ipv4Addr>) -> bool {
        let IpAddr::V4(v4) = to_v4(client) else {
            return false;
        };
        if self
            .config
            .http
            .config_allow
            .iter()
            .any(|n| n.contains(&v4))
            || fixed == Some(v4)
        {
            return true;
        }
        macs.iter().any(|m| self.leases.ip_of(m) == Some(v4))
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener) as IPv4.
fn to_v4(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The routes firmware, iPXE and installers use.
pub fn boot_router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route(
            &format!("/{}", crate::boot::decide::SCRIPT_PATH),
            get(boot::script),
        )
        .route("/config/{hostname}/{capability}/{name}", get(boot::config))
        .route("/done/{hostname}/{capability}", any(boot::done))
        // The URLs of old, without a capability: refused like a bad one.
        .route(
            "/config/{hostname}/{name}",
            get(boot::config_without_capability),
        )
        .route("/done/{hostname}", any(boot::done_without_capability))
        .route("/healthz", get(api::healthz))
        .fallback(files::serve)
        .with_state(state)
}
