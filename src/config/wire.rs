//! The serde layer of `pxedeck.yaml`: exactly the file's shape, with its
//! defaults, before validation turns it into [`super::Config`].

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;
use serde::Deserialize;

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireConfig {
    pub(super) server: WireServer,
    /// Several provisioning interfaces (`config::interfaces`).
    pub(super) interfaces: Vec<super::interfaces::WireInterface>,
    pub(super) dhcp: WireDhcp,
    pub(super) tftp: WireTftp,
    pub(super) http: WireHttp,
    pub(super) unknown: WireUnknown,
    pub(super) boot_root: Option<String>,
    pub(super) inventory: Option<String>,
    pub(super) theme: Option<String>,
    pub(super) git: WireGit,
    pub(super) history: WireHistory,
    pub(super) bmc: WireBmc,
    pub(super) loaders: WireLoaders,
    pub(super) stuck_after: WireStuck,
}

/// Per-stage stuck timeouts; a stage left out keeps its default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireStuck {
    pub(super) dhcp: Option<WireDuration>,
    pub(super) loader: Option<WireDuration>,
    pub(super) script: Option<WireDuration>,
    pub(super) kernel: Option<WireDuration>,
    pub(super) initrd: Option<WireDuration>,
    pub(super) config: Option<WireDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireLoaders {
    pub(super) shim_x64: Option<String>,
    pub(super) grub_x64: Option<String>,
    pub(super) shim_arm64: Option<String>,
    pub(super) grub_arm64: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireBmc {
    pub(super) poll_interval: WireDuration,
    pub(super) max_concurrent: usize,
    pub(super) timeout: WireDuration,
}

impl Default for WireBmc {
    fn default() -> Self {
        WireBmc {
            poll_interval: WireDuration::Seconds(30),
            max_concurrent: 8,
            timeout: WireDuration::Seconds(15),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireGit {
    pub(super) commit: bool,
    pub(super) author: String,
    pub(super) push: bool,
    pub(super) timeout: WireDuration,
}

impl Default for WireGit {
    fn default() -> Self {
        WireGit {
            commit: true,
            author: DEFAULT_GIT_AUTHOR.into(),
            push: false,
            timeout: WireDuration::Seconds(30),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireHistory {
    pub(super) file: Option<String>,
    pub(super) per_machine: usize,
    pub(super) total: usize,
}

impl Default for WireHistory {
    fn default() -> Self {
        WireHistory {
            file: None,
            per_machine: 200,
            total: 100_000,
        }
    }
}

/// The author of pxedeck's inventory commits unless `git.author` says.
pub const DEFAULT_GIT_AUTHOR: &str = "pxedeck <pxedeck@localhost>";
/// The most history `history.total` may ask to keep (steps are ~150
/// bytes each on disk and in memory).
pub const MAX_HISTORY_TOTAL: usize = 1_000_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireServer {
    pub(super) address: Option<Ipv4Addr>,
    pub(super) interface: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireDhcp {
    pub(super) mode: DhcpMode,
    pub(super) port: u16,
    pub(super) proxy_port: u16,
    pub(super) pools: Vec<WirePool>,
    pub(super) lease_file: Option<String>,
    pub(super) firmware_lease_time: Option<WireDuration>,
}

impl Default for WireDhcp {
    fn default() -> Self {
        WireDhcp {
            mode: DhcpMode::Full,
            port: 67,
            proxy_port: 4011,
            pools: Vec::new(),
            lease_file: None,
            firmware_lease_time: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WirePool {
    pub(super) subnet: Ipv4Net,
    pub(super) range: WireRange,
    pub(super) router: Option<Ipv4Addr>,
    #[serde(default)]
    pub(super) dns: Vec<Ipv4Addr>,
    pub(super) domain: Option<String>,
    pub(super) lease_time: Option<WireDuration>,
    #[serde(default, rename = "match")]
    pub(super) relay_match: WireRelayMatch,
    /// Read from the YAML tree by `dhcp::options`, for its lines.
    #[serde(default)]
    #[serde(rename = "options")]
    pub(super) _options: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct WireRelayMatch {
    pub(super) circuit_id: Option<String>,
    pub(super) remote_id: Option<String>,
}

/// `[first, last]` or `"first-last"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum WireRange {
    Pair([Ipv4Addr; 2]),
    Text(String),
}

/// Seconds as a number, or text with a unit: `30s`, `5m`, `12h`, `7d`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum WireDuration {
    Seconds(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireTftp {
    pub(super) port: u16,
    pub(super) root: Option<String>,
    pub(super) max_blksize: u16,
    pub(super) max_windowsize: u16,
    pub(super) max_transfers: usize,
    pub(super) max_per_client: usize,
    pub(super) max_timeout: WireDuration,
    pub(super) max_idle: WireDuration,
    pub(super) single_port: bool,
}

impl Default for WireTftp {
    fn default() -> Self {
        WireTftp {
            port: 69,
            root: None,
            max_blksize: 1468,
            max_windowsize: 64,
            max_transfers: 1000,
            max_per_client: 8,
            max_timeout: WireDuration::Seconds(10),
            max_idle: WireDuration::Seconds(30),
            single_port: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireHttp {
    pub(super) port: u16,
    pub(super) api_listen: SocketAddr,
    pub(super) api_token: Option<String>,
    pub(super) api_read_token: Option<String>,
    pub(super) api_token_file: Option<String>,
    pub(super) capability_key_file: Option<String>,
    pub(super) capability_lifetime: Option<WireDuration>,
    pub(super) config_allow: Vec<Ipv4Net>,
    pub(super) max_subscribers: usize,
    pub(super) max_connections: usize,
    pub(super) header_timeout: WireDuration,
    pub(super) idle_timeout: WireDuration,
    pub(super) sendfile: bool,
}

impl Default for WireHttp {
    fn default() -> Self {
        WireHttp {
            port: 80,
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            api_token: None,
            api_read_token: None,
            api_token_file: None,
            capability_key_file: None,
            capability_lifetime: None,
            config_allow: Vec::new(),
            max_subscribers: 16,
            max_connections: 1024,
            header_timeout: WireDuration::Seconds(10),
            idle_timeout: WireDuration::Seconds(60),
            sendfile: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WireUnknown {
    pub(super) policy: String,
    pub(super) profile: Option<String>,
    pub(super) give_address: bool,
    pub(super) max_machines: usize,
    pub(super) loader: String,
}

impl Default for WireUnknown {
    fn default() -> Self {
        WireUnknown {
            policy: "hold".into(),
            profile: None,
            give_address: true,
            max_machines: DEFAULT_UNKNOWN_MACHINES,
            loader: "ipxe".into(),
        }
    }
}
