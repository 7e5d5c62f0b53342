//! The server configuration file, `pxedeck.yaml`.
//!
//! Read once at start into serde "wire" structs, then validated into the
//! typed [`Config`] the rest of pxedeck trusts. Every error names the file and
//! line. Relative paths are resolved against the config file's directory (or
//! the working directory for built-in defaults).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::boot::decide::Chain;
use crate::dhcp::options::{self, OperatorOption};
use crate::dhcp::relay_agent::RelayMatch;
use crate::model::StageTimeouts;
use crate::yaml;

/// What the DHCP side does on the provisioning segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    /// Hand out addresses from the pools and boot information.
    Full,
    /// Another server hands out addresses; answer PXE clients with boot
    /// information only (yiaddr 0), on port 67 and the proxy port.
    Proxy,
    /// No DHCP at all (boot information comes from elsewhere).
    Off,
}

/// What happens to a machine that is not in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase")]
pub enum UnknownPolicy {
    /// Show it in the console; serve no boot answer.
    Ignore,
    /// Serve an iPXE wait loop until an operator adopts it.
    Hold,
    /// Boot a named discovery profile.
    Discover { profile: String },
}

impl std::fmt::Display for DhcpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DhcpMode::Full => "full",
            DhcpMode::Proxy => "proxy",
            DhcpMode::Off => "off",
        })
    }
}

impl std::fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnknownPolicy::Hold => f.write_str("hold"),
            UnknownPolicy::Ignore => f.write_str("ignore"),
            UnknownPolicy::Discover { profile } => write!(f, "discover {profile}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// The provisioning address: DHCP server id, next-server, script URLs.
    pub address: Ipv4Addr,
    /// The provisioning interface, if named (SO_BINDTODEVICE).
    pub interface: Option<String>,
    /// Several provisioning interfaces (`interfaces`), each with
    /// its address and DHCP mode; empty for one (`address`, `interface`).
    pub interfaces: Vec<Interface>,
    pub dhcp: DhcpConfig,
    pub tftp: TftpConfig,
    pub http: HttpConfig,
    pub unknown: UnknownPolicy,
    /// Whether unknown machines get an address under `ignore`.
    pub unknown_gets_address: bool,
    /// Unknown machines the model keeps; the ones idle longest go first.
    pub unknown_max_machines: usize,
    /// The chain machines outside the inventory take (`unknown.loader`):
    /// `grub` where unknown machines boot with Secure Boot on.
    pub unknown_chain: Chain,
    pub boot_root: PathBuf,
    pub inventory: PathBuf,
    pub theme: String,
    pub bmc: BmcConfig,
    pub loaders: LoaderPaths,
    pub git: GitConfig,
    pub history: HistoryConfig,
    /// How long a machine may idle in each boot stage before the console
    /// calls it stuck (`stuck_after`).
    pub stuck_after: StageTimeouts,
}

/// Committing the inventory's changes when it is a git work tree.
#[derive(Debug, Clone, PartialEq)]
pub struct GitConfig {
    /// Commit every write pxedeck makes (when the inventory is in a work
    /// tree; otherwise nothing happens).
    pub commit: bool,
    /// `Name <email>` for the commits; the committer stays git's own.
    pub author: String,
    /// Push to the branch's upstream after each commit.
    pub push: bool,
    /// Any one git command is killed after this long.
    pub timeout: Duration,
}

/// Machines' boot history kept on disk across restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryConfig {
    /// The file (JSON lines), default `history.jsonl` beside the leases.
    pub file: PathBuf,
    /// Steps kept per machine (the newest).
    pub per_machine: usize,
    /// Steps kept in all; past it the oldest go.
    pub total: usize,
}

/// The signed loaders of the shim → GRUB chain, served over TFTP (and HTTP)
/// under the names in [`crate::boot::decide`]. By default the files Debian's
/// `shim-signed`, `grub-efi-amd64-signed` and `grub-efi-arm64-signed`
/// install.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderPaths {
    pub shim_x64: PathBuf,
    pub grub_x64: PathBuf,
    pub shim_arm64: PathBuf,
    pub grub_arm64: PathBuf,
}

impl LoaderPaths {
    /// Each served name with the file behind it.
    pub fn files(&self) -> [(&'static str, &Path); 4] {
        use crate::boot::decide::{
            LOADER_GRUB_ARM64, LOADER_GRUB_X64, LOADER_SHIM_ARM64, LOADER_SHIM_X64,
        };
        [
            (LOADER_SHIM_X64, &self.shim_x64),
            (LOADER_GRUB_X64, &self.grub_x64),
            (LOADER_SHIM_ARM64, &self.shim_arm64),
            (LOADER_GRUB_ARM64, &self.grub_arm64),
        ]
        .map(|(name, path)| (name, path.as_path()))
    }
}

/// Where Debian's packages put the signed loaders.
pub const SHIM_X64_PATH: &str = "/usr/lib/shim/shimx64.efi.signed";
pub const GRUB_X64_PATH: &str = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed";
pub const SHIM_ARM64_PATH: &str = "/usr/lib/shim/shimaa64.efi.signed";
pub const GRUB_ARM64_PATH: &str = "/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed";

/// How pxedeck drives the machines' BMCs (`bmc:` in pxedeck.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct BmcConfig {
    /// How often each BMC's power state is read; zero: never polled.
    pub poll_interval: Duration,
    /// BMC calls running at once, polls and actions together.
    pub max_concurrent: usize,
    /// One BMC call (an ipmitool run, one HTTPS request).
    pub timeout: Duration,
}

/// At most this many BMC calls at once: each is a child process or a TLS
/// connection, and a BMC is a small computer.
pub const MAX_BMC_CONCURRENT: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct DhcpConfig {
    pub mode: DhcpMode,
    pub port: u16,
    pub proxy_port: u16,
    pub pools: Vec<Pool>,
    pub lease_file: PathBuf,
    /// Lease time given to firmware and iPXE (the installed OS asks again).
    pub firmware_lease_time: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub subnet: Ipv4Net,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_time: Duration,
    /// `match:` on option 82: a pool with one serves only the requests it
    /// matches, and is preferred over one without on the same segment.
    pub relay_match: RelayMatch,
    /// Operator-defined options (`options:`), overridden per code by a
    /// machine's `dhcp_options`.
    pub options: Vec<OperatorOption>,
}

impl Pool {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(&ip)
    }

    pub fn range_contains(&self, ip: Ipv4Addr) -> bool {
        (self.range_start..=self.range_end).contains(&ip)
    }

    pub fn range_len(&self) -> u32 {
        u32::from(self.range_end) - u32::from(self.range_start) + 1
    }

    /// Whether `ip` is a host address of the subnet: inside it and not its
    /// network or broadcast address (which /31 and /32 lack, RFC 3021).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let net = self.subnet;
        net.contains(&ip)
            && (net.prefix_len() > 30 || (ip != net.network() && ip != net.broadcast()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TftpConfig {
    pub port: u16,
    /// A configured root replaces the default (boot root over /usr/lib/ipxe).
    pub root: Option<PathBuf>,
    pub max_blksize: u16,
    pub max_windowsize: u16,
    pub max_transfers: usize,
    /// Concurrent transfers one client address may hold.
    pub max_per_client: usize,
    /// The longest retransmit timeout a client may ask for (RFC 2349).
    pub max_timeout: Duration,
    /// A transfer whose client is silent this long ends.
    pub max_idle: Duration,
    /// Serve every transfer from the listening port (helps behind NAT).
    pub single_port: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub port: u16,
    /// Where the JSON API and event stream listen (default loopback).
    pub api_listen: SocketAddr,
    /// Bearer token for everything on the API but `/healthz` and
    /// `/metrics`: reads and commands. When unset, the server makes one
    /// and keeps it in `api_token_file`.
    pub api_token: Option<String>,
    /// A second bearer token that may read (state, inventory values,
    /// configs, the event stream) but not command.
    pub api_read_token: Option<String>,
    /// Where the generated API token is kept (mode 0600) when `api_token`
    /// is unset; `pxedeck attach` reads it. Default: beside the lease file.
    pub api_token_file: PathBuf,
    /// The secret that signs machines' config and done URLs (mode 0600,
    /// created on first start). Default: beside the lease file.
    pub capability_key_file: PathBuf,
    /// How long the config and done URLs handed out with one boot script
    /// stay valid: longer than the slowest install.
    pub capability_lifetime: Duration,
    /// Addresses, besides the lease holder, that may fetch installer configs.
    pub config_allow: Vec<Ipv4Net>,
    /// Event-stream clients served at once; more are refused with 503.
    pub max_subscribers: usize,
    /// Open boot-HTTP connections; past it a client gets 503 at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also between
    /// requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// A connection that moves no bytes either way this long is closed.
    pub idle_timeout: Duration,
    /// Held boot files leave by `sendfile(2)` from the page cache, not by
    /// copy (`http::zerocopy`).
    pub sendfile: bool,
}

/// A configuration error: one message naming the file and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: u32,
        message: String,
    },
}

mod interfaces;
mod wire;
pub use interfaces::{Interface, MAX_INTERFACES};
use wire::*;
pub use wire::{DEFAULT_GIT_AUTHOR, MAX_HISTORY_TOTAL};

// ---- loading -----------------------------------------------------------

/// Unknown machines the model keeps unless `unknown.max_machines` says.
/// A rack or three of strangers; a flood of invented MACs stops here.
pub const DEFAULT_UNKNOWN_MACHINES: usize = 4096;

/// The name of the default config file in the working directory.
pub const DEFAULT_FILE: &str = "pxedeck.yaml";

impl Config {
    /// Built-in defaults: loopback address, standard ports, `./nodes`.
    pub fn builtin() -> Config {
        Self::from_text("", None).expect("built-in defaults are valid")
    }

    /// Loads `path`, or — when `path` is None — `./pxedeck.yaml` if it
    /// exists, else the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Self::builtin()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::from_text(&text, Some(&path))
    }

    /// Parses and validates config text. `path` names the file in errors and
    /// anchors relative paths.
    pub fn from_text(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let file = path.map_or_else(|| "<built-in>".to_string(), |p| p.display().to_string());
        let invalid = |line: u32, message: String| ConfigError::Invalid {
            file: file.clone(),
            line,
            message,
        };
        let tree = yaml::parse(text, 0).map_err(|e| invalid(e.line, e.message))?;
        if tree.as_map().is_none() {
            return Err(invalid(
                tree.origin.line,
                "the config must be a map of settings".into(),
            ));
        }
        let wire: WireConfig = serde_path_to_error::deserialize(tree.to_json()).map_err(|e| {
            let line = tree.line_of_serde_path(e.path());
            let at = e.path().to_string();
            let message = if at == "." {
                e.inner().to_string()
            } else {
                format!("{at}: {}", e.inner())
            };
            invalid(line, message)
        })?;
        let line_of = |dotted: &str| tree.line_at(dotted.split('.'));
        let base = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let mut pools = Vec::new();
        for (i, w) in wire.dhcp.pools.iter().enumerate() {
            let at = |field: &str| line_of(&format!("dhcp.pools.{i}.{field}"));
            let (start, end) = match &w.range {
                WireRange::Pair([a, b]) => (*a, *b),
                WireRange::Text(t) => parse_range(t).map_err(|m| invalid(at("range"), m))?,
            };
            if start > end {
                return Err(invalid(
                    at("range"),
                    format!("range {start}-{end} runs backwards"),
                ));
            }
            for ip in [start, end] {
                if !w.subnet.contains(&ip) {
                    return Err(invalid(
                        at("range"),
                        format!("{ip} is outside subnet {}", w.subnet),
                    ));
                }
            }
            if let Some(r) = w.router.filter(|r| !w.subnet.contains(r)) {
                return Err(invalid(
                    at("router"),
                    format!("router {r} is outside subnet {}", w.subnet),
                ));
            }
            let lease_time = match &w.lease_time {
                Some(d) => to_duration(d).map_err(|m| invalid(at("lease_time"), m))?,
                None => Duration::from_secs(3600),
            };
            for (key, pattern) in [
                ("circuit_id", &w.relay_match.circuit_id),
                ("remote_id", &w.relay_match.remote_id),
            ] {
                if let Some(p) = pattern {
                    RelayMatch::check_pattern(p)
                        .map_err(|m| invalid(at(&format!("match.{key}")), m))?;
                }
            }
            let options = match tree
                .get("dhcp")
                .and_then(|d| d.get("pools"))
                .and_then(|p| match &p.value {
                    yaml::Value::Seq(items) => items.get(i),
                    _ => None,
                })
                .and_then(|p| p.get("options"))
            {
                Some(node) => options::parse(node)
                    .map_err(|errors| invalid(errors[0].origin.line, errors[0].message.clone()))?,
                None => Vec::new(),
            };
            let pool = Pool {
                subnet: w.subnet.trunc(),
                range_start: start,
                range_end: end,
                router: w.router,
                dns: w.dns.clone(),
                domain: w.domain.clone(),
                lease_time,
                relay_match: RelayMatch {
                    circuit_id: w.relay_match.circuit_id.clone(),
                    remote_id: w.relay_match.remote_id.clone(),
                },
                options,
            };
            if let Some(other) = pools.iter().find(|p: &&Pool| {
                p.range_contains(start)
                    || p.range_contains(end)
                    || pool.range_contains(p.range_start)
            }) {
                return Err(invalid(
                    at("range"),
                    format!("range overlaps the pool of {}", other.subnet),
                ));
            }
            pools.push(pool);
        }

        let unknown = match wire.unknown.policy.as_str() {
            "ignore" => UnknownPolicy::Ignore,
            "hold" => UnknownPolicy::Hold,
            "discover" => match &wire.unknown.profile {
                Some(profile) => UnknownPolicy::Discover {
                    profile: profile.clone(),
                },
                None => {
                    return Err(invalid(
                        line_of("unknown.policy"),
                        "policy `discover` needs `unknown.profile` (the discovery profile)".into(),
                    ));
                }
            },
            other => {
                return Err(invalid(
                    line_of("unknown.policy"),
                    format!("unknown policy `{other}`, expected ignore, hold or discover"),
                ));
            }
        };

        let unknown_chain = wire
            .unknown
            .loader
            .parse::<Chain>()
            .map_err(|m| invalid(line_of("unknown.loader"), m))?;

        let firmware_lease_time = match &wire.dhcp.firmware_lease_time {
            Some(d) => {
                Some(to_duration(d).map_err(|m| invalid(line_of("dhcp.firmware_lease_time"), m))?)
            }
            None => None,
        };
        if wire.tftp.max_blksize < 8 {
            return Err(invalid(
                line_of("tftp.max_blksize"),
                "max_blksize must be at least 8 (RFC 2348)".into(),
            ));
        }
        if wire.tftp.max_windowsize == 0 {
            return Err(invalid(
                line_of("tftp.max_windowsize"),
                "max_windowsize must be at least 1".into(),
            ));
        }
        // Resource bounds: a zero would refuse everything or nothing.
        let positive = |key: &str, d: &WireDuration| match to_duration(d) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(invalid(line_of(key), format!("{key} must be more than 0"))),
            Err(m) => Err(invalid(line_of(key), m)),
        };
        let tftp_max_timeout = positive("tftp.max_timeout", &wire.tftp.max_timeout)?;
        let tftp_max_idle = positive("tftp.max_idle", &wire.tftp.max_idle)?;
        let http_header_timeout = positive("http.header_timeout", &wire.http.header_timeout)?;
        let http_idle_timeout = positive("http.idle_timeout", &wire.http.idle_timeout)?;
        for (key, n) in [
            ("tftp.max_per_client", wire.tftp.max_per_client),
            ("tftp.max_transfers", wire.tftp.max_transfers),
            ("http.max_connections", wire.http.max_connections),
        ] {
            if n == 0 {
                return Err(invalid(line_of(key), format!("{key} must be at least 1")));
            }
        }
        if wire.unknown.max_machines == 0 {
            return Err(invalid(
                line_of("unknown.max_machines"),
                "max_machines must be at least 1".into(),
            ));
        }
        if wire.http.max_subscribers == 0 {
            return Err(invalid(
                line_of("http.max_subscribers"),
                "max_subscribers must be at least 1 (pxedeck attach needs one)".into(),
            ));
        }
        for (key, token) in [
            ("api_token", &wire.http.api_token),
            ("api_read_token", &wire.http.api_read_token),
        ] {
            if let Some(problem) = token.as_deref().and_then(token_problem) {
                return Err(invalid(
                    line_of(&format!("http.{key}")),
                    format!("{key} {problem}"),
                ));
            }
        }
        if wire.http.api_read_token.is_some() && wire.http.api_read_token == wire.http.api_token {
            return Err(invalid(
                line_of("http.api_read_token"),
                "api_read_token must differ from api_token (it may not command)".into(),
            ));
        }
        let capability_lifetime = match &wire.http.capability_lifetime {
            Some(d) => {
                to_duration(d).map_err(|m| invalid(line_of("http.capability_lifetime"), m))?
            }
            None => DEFAULT_CAPABILITY_LIFETIME,
        };
        if capability_lifetime < Duration::from_secs(60) {
            return Err(invalid(
                line_of("http.capability_lifetime"),
                "capability_lifetime must be at least 1m (an install must finish within it)".into(),
            ));
        }
        let bmc_timeout = positive("bmc.timeout", &wire.bmc.timeout)?;
        if bmc_timeout > Duration::from_secs(300) {
            return Err(invalid(
                line_of("bmc.timeout"),
                "bmc.timeout must be at most 5m".into(),
            ));
        }
        // Whole seconds: 0 (off) or at least 1 s between polls.
        let bmc_poll = to_duration(&wire.bmc.poll_interval)
            .map_err(|m| invalid(line_of("bmc.poll_interval"), m))?;
        if !(1..=MAX_BMC_CONCURRENT).contains(&wire.bmc.max_concurrent) {
            return Err(invalid(
                line_of("bmc.max_concurrent"),
                format!("bmc.max_concurrent must be 1-{MAX_BMC_CONCURRENT}"),
            ));
        }
        let mut stuck_after = StageTimeouts::default();
        let s = &wire.stuck_after;
        for (name, d) in [
            ("dhcp", &s.dhcp),
            ("loader", &s.loader),
            ("script", &s.script),
            ("kernel", &s.kernel),
            ("initrd", &s.initrd),
            ("config", &s.config),
        ] {
            if let Some(d) = d {
                stuck_after.set(name, positive(&format!("stuck_after.{name}"), d)?);
            }
        }
        let lease_file = resolve(wire.dhcp.lease_file.as_deref().unwrap_or("leases.jsonl"));
        // Generated secrets live with the leases: the state directory.
        let beside_leases = |explicit: &Option<String>, name: &str| {
            explicit
                .as_deref()
                .map_or_else(|| lease_file.with_file_name(name), resolve)
        };

        let git_author = wire.git.author.trim().to_string();
        let well_formed = git_author.split_once(" <").is_some_and(|(name, rest)| {
            !name.trim().is_empty()
                && rest.ends_with('>')
                && rest.len() > 1
                && !rest[..rest.len() - 1].contains(['<', '>'])
        });
        if !well_formed || git_author.contains('\n') {
            return Err(invalid(
                line_of("git.author"),
                format!("git.author must be `Name <email>`, not {git_author:?}"),
            ));
        }
        let git_timeout =
            to_duration(&wire.git.timeout).map_err(|m| invalid(line_of("git.timeout"), m))?;
        if git_timeout < Duration::from_secs(1) || git_timeout > Duration::from_secs(600) {
            return Err(invalid(
                line_of("git.timeout"),
                "git.timeout must be between 1s and 10m".into(),
            ));
        }
        if wire.history.per_machine == 0
            || wire.history.total == 0
            || wire.history.total > MAX_HISTORY_TOTAL
            || wire.history.per_machine > wire.history.total
        {
            return Err(invalid(
                line_of("history"),
                format!(
                    "history needs 1 <= per_machine <= total <= {MAX_HISTORY_TOTAL} \
                     (got per_machine {}, total {})",
                    wire.history.per_machine, wire.history.total
                ),
            ));
        }

        let interfaces = interfaces::read(&wire.interfaces, wire.dhcp.mode, &pools).map_err(
            |(i, field, m)| {
                let key = match i {
                    Some(i) => format!("interfaces.{i}.{field}"),
                    None => "interfaces".into(),
                };
                invalid(line_of(key.trim_end_matches('.')), m)
            },
        )?;
        if !interfaces.is_empty() {
            if wire.server.interface.is_some() {
                return Err(invalid(
                    line_of("server.interface"),
                    "server.interface and interfaces together: with a list of interfaces one socket serves them all; leave server.interface out".into(),
                ));
            }
            if let Some(a) = wire.server.address
                && !interfaces.iter().any(|i| i.address == a)
            {
                return Err(invalid(
                    line_of("server.address"),
                    format!("server.address {a} is none of the interfaces' addresses"),
                ));
            }
        }
        let address = wire
            .server
            .address
            .or(interfaces.first().map(|i| i.address))
            .unwrap_or(Ipv4Addr::LOCALHOST);

        Ok(Config {
            source: path.map(Path::to_path_buf),
            address,
            interface: wire.server.interface,
            interfaces,
            dhcp: DhcpConfig {
                mode: wire.dhcp.mode,
                port: wire.dhcp.port,
                proxy_port: wire.dhcp.proxy_port,
                pools,
                lease_file: lease_file.clone(),
                firmware_lease_time,
            },
            tftp: TftpConfig {
                port: wire.tftp.port,
                root: wire.tftp.root.as_deref().map(resolve),
                max_blksize: wire.tftp.max_blksize,
                max_windowsize: wire.tftp.max_windowsize,
                max_transfers: wire.tftp.max_transfers,
                max_per_client: wire.tftp.max_per_client,
                max_timeout: tftp_max_timeout,
                max_idle: tftp_max_idle,
                single_port: wire.tftp.single_port,
            },
            http: HttpConfig {
                port: wire.http.port,
                api_listen: wire.http.api_listen,
                api_token_file: beside_leases(&wire.http.api_token_file, "api.token"),
                capability_key_file: beside_leases(
                    &wire.http.capability_key_file,
                    "capability.key",
                ),
                api_token: wire.http.api_token,
                api_read_token: wire.http.api_read_token,
                capability_lifetime,
                config_allow: wire.http.config_allow,
                max_subscribers: wire.http.max_subscribers,
                max_connections: wire.http.max_connections,
                header_timeout: http_header_timeout,
                idle_timeout: http_idle_timeout,
                sendfile: wire.http.sendfile,
            },
            unknown,
            unknown_gets_address: wire.unknown.give_address,
            unknown_max_machines: wire.unknown.max_machines,
            unknown_chain,
            boot_root: resolve(wire.boot_root.as_deref().unwrap_or("boot")),
            inventory: resolve(wire.inventory.as_deref().unwrap_or("nodes")),
            theme: wire.theme.unwrap_or_else(|| "default".into()),
            bmc: BmcConfig {
                poll_interval: bmc_poll,
                max_concurrent: wire.bmc.max_concurrent,
                timeout: bmc_timeout,
            },
            loaders: {
                let l = &wire.loaders;
                let path = |set: &Option<String>, default: &str| {
                    resolve(set.as_deref().unwrap_or(default))
                };
                LoaderPaths {
                    shim_x64: path(&l.shim_x64, SHIM_X64_PATH),
                    grub_x64: path(&l.grub_x64, GRUB_X64_PATH),
                    shim_arm64: path(&l.shim_arm64, SHIM_ARM64_PATH),
                    grub_arm64: path(&l.grub_arm64, GRUB_ARM64_PATH),
                }
            },
            git: GitConfig {
                commit: wire.git.commit,
                author: git_author,
                push: wire.git.push,
                timeout: git_timeout,
            },
            history: HistoryConfig {
                file: beside_leases(&wire.history.file, "history.jsonl"),
                per_machine: wire.history.per_machine,
                total: wire.history.total,
            },
            stuck_after,
        })
    }
}

/// Config and done URLs stay valid this long after the script that
/// handed them out: a slow install, with margin.
pub const DEFAULT_CAPABILITY_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// Why a bearer token cannot be used, if it cannot: it travels as an RFC
/// 6750 `b64token`, so nothing else would ever match.
fn token_problem(token: &str) -> Option<&'static str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    let body = token.trim_end_matches('=');
    if token.is_empty() {
        Some("must not be empty")
    } else if body.is_empty() || !body.bytes().all(allowed) {
        Some("may only hold letters, digits and - . _ ~ + / (and = at the end)")
    } else {
        None
    }
}

fn parse_range(text: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("range {text:?} should be `first-last` or [first, last]"))?;
    let ip = |s: &str| {
        s.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("{:?} is not an IPv4 address", s.trim()))
    };
    Ok((ip(a)?, ip(b)?))
}

fn to_duration(d: &WireDuration) -> Result<Duration, String> {
    match d {
        WireDuration::Seconds(s) => Ok(Duration::from_secs(*s)),
        WireDuration::Text(t) => parse_duration(t),
    }
}

/// Parses `90`, `30s`, `5m`, `12h` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 5m, 12h, 7d)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?}: unknown unit, use s, m, h or d")),
    };
    Ok(Duration::from_secs(n * scale))
}

#[cfg(test)]
mod tests;
