//! Starting every boot service from a [`Config`]: the one place that binds
//! sockets and wires the servers, the inventory, the bus and the model
//! together. `serve`, the console, `demo`, `bench` and the integration tests
//! all start pxedeck through [`Services::start`].

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::boot::decide::http_base;
use crate::boot::render::Urls;
use crate::bootfs::BootFs;
use crate::config::{Config, DhcpMode};
use crate::control::{Control, inventory_event};
use crate::dhcp::handler::Port;
use crate::dhcp::leases::LeaseState;
use crate::dhcp::server::DhcpServer;
use crate::event::{Bus, EventKind, InterfaceInfo, Level, PoolInfo, ServerInfo};
use crate::filecache::FileCache;
use crate::git::GitRecorder;
use crate::grub_chain::GrubChain;
use crate::http::{self, HttpState, LeaseView, NoLeases};
use crate::inventory::watch::{Watcher, watch};
use crate::inventory::{Inventory, InventoryService, LoadOptions, SharedInventory, load};
use crate::live::{LiveModel, sample_progress};
use crate::model::Model;
use crate::net::{Transport, UdpOptions, bind_error, udp_socket};
use crate::progress::ProgressTable;
use crate::tftp::server::{TftpServer, TftpSettings};

/// Socket buffer for the UDP services: a mass boot bursts.
const UDP_BUFFER: usize = 4 << 20;
/// How often expired leases are reclaimed and the boot root is probed for
/// loaders (see `DhcpServer::refresh_loaders`).
const EXPIRE_EVERY: Duration = Duration::from_secs(5);

/// The addresses the services actually bound (ports may have been 0).
#[derive(Debug, Clone)]
pub struct Bound {
    pub dhcp: Option<SocketAddr>,
    pub proxy: Option<SocketAddr>,
    pub tftp: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
}

/// Running boot services. Dropping it does not stop them; call
/// [`Services::shutdown`].
pub struct Services {
    pub config: Arc<Config>,
    pub bus: Bus,
    pub live: Arc<LiveModel>,
    pub inventory: SharedInventory,
    pub control: Arc<Control>,
    /// What the `auto` rules adopted and had refused.
    pub auto_adopt: Arc<crate::auto_adopt::AutoAdoptStats>,
    pub dhcp: Option<Arc<DhcpServer>>,
    pub tftp: Arc<TftpServer>,
    pub http: Arc<HttpState>,
    pub progress: Arc<ProgressTable>,
    pub bound: Bound,
    pub cancel: CancellationToken,
    tasks: JoinSet<()>,
    _watcher: Option<Watcher>,
}

pub fn load_options(config: &Config) -> LoadOptions {
    LoadOptions {
        pools: config.dhcp.pools.clone(),
        server: Some(config.address),
    }
}

impl Services {
    /// Loads the inventory, binds every socket, and starts serving. Fails
    /// (with the address and the reason) when a socket cannot be bound; an
    /// inventory with problems starts empty and says why.
    pub async fn start(mut config: Config) -> anyhow::Result<Services> {
        let bus = Bus::default();
        let open_files = raise_open_file_limit();
        let limits_lowered = fit_to_open_files(&mut config, open_files);
        let config = Arc::new(config);
        let mut model = Model::with_unknown_cap(config.unknown_max_machines);
        model.stage_timeouts = config.stuck_after;
        let live = Arc::new(LiveModel::new(model));
        let cancel = CancellationToken::new();
        // If starting fails half-way, stop what already runs (the lanes'
        // threads would otherwise outlive the error).
        let stop_on_error = cancel.clone().drop_guard();
        let mut tasks = JoinSet::new();
        // The model folds from the first event on (it subscribes now).
        tasks.spawn(live.clone().run(bus.clone(), cancel.clone()));
        // Last night's boots, folded before any service starts; the
        // history records from here on.
        let (replayed, history) = crate::history::restore(
            &config.history.file,
            crate::history::Bounds {
                per_machine: config.history.per_machine,
                total: config.history.total,
            },
            &bus,
        );
        {
            let mut model = live.lock();
            for e in &replayed {
                model.apply(e);
            }
        }
        drop(replayed);
        tasks.spawn(history.run(cancel.clone()));
        if let Some(why) = limits_lowered {
            tracing::warn!("{why}");
            bus.emit(EventKind::Log {
                level: Level::Warn,
                target: "limits".into(),
                message: why,
            });
        }

        let loaded = load(&config.inventory, &load_options(&config));
        let first_problems = (!loaded.is_ok()).then(|| loaded.problems.clone());
        let inventory_service = Arc::new(InventoryService::new(
            &config.inventory,
            load_options(&config),
            if loaded.is_ok() {
                loaded.inventory
            } else {
                Inventory::empty(&config.inventory)
            },
        ));
        let inventory: SharedInventory = inventory_service.shared().clone();
        // Every write becomes a commit when the inventory is in git.
        let git = GitRecorder::start(&config.inventory, &config.git, bus.clone());
        if let Some(g) = &git {
            inventory_service.set_recorder(g.clone());
            bus.emit(EventKind::Log {
                level: Level::Info,
                target: "git".into(),
                message: format!(
                    "the inventory is a git work tree: every write is a commit by {}{}",
                    config.git.author,
                    if config.git.push {
                        ", pushed to its upstream"
                    } else {
                        ""
                    }
                ),
            });
        }

        let address = config.address;
        // Several interfaces: HTTP and TFTP on every address, each machine
        // answered with its segment's (`interfaces`).
        let listen = if config.multihomed() {
            Ipv4Addr::UNSPECIFIED
        } else {
            address
        };
        let http_listener =
            tcp_listener("HTTP", SocketAddr::from((listen, config.http.port))).await?;
        let http_addr = http_listener.local_addr()?;
        let api_listener = tcp_listener("the API", config.http.api_listen).await?;
        let api_addr = api_listener.local_addr()?;
        let base = http_base(address, http_addr.port());

        let tftp_fs = with_signed_loaders(
            BootFs::for_tftp(&config.boot_root, config.tftp.root.as_deref()),
            &config,
        );
        let urls = Urls::new(base.clone());
        let (secrets, secret_notes) = http::auth::Secrets::load_or_create(&config)?;
        let secrets = Arc::new(secrets);
        let progress = Arc::new(ProgressTable::default());
        // Loaders, kernels and initrds are held once for both services.
        let files = Arc::new(FileCache::default());
        // TFTP and DHCP each run on a thread of their own (see `Lane`).
        let tftp_lane = Lane::start("pxedeck-tftp", &cancel, &mut tasks)?;
        let tftp_socket = {
            let _in_lane = tftp_lane.enter();
            udp_socket(
                SocketAddr::from((listen, config.tftp.port)),
                &UdpOptions {
                    buffer: UDP_BUFFER,
                    ..Default::default()
                },
            )?
        };
        let tftp_addr = tftp_socket.local_addr()?;
        let dhcp_lane = Lane::start("pxedeck-dhcp", &cancel, &mut tasks)?;
        let dhcp_started = start_dhcp(
            &config,
            &inventory,
            &bus,
            &base,
            tftp_fs.clone(),
            &cancel,
            &dhcp_lane,
        )?;
        let dhcp = dhcp_started.as_ref().map(|d| d.server.clone());
        let dhcp_addr = dhcp_started.as_ref().map(|d| d.main);
        let proxy_addr = dhcp_started.and_then(|d| d.proxy);

        let leases: Arc<dyn LeaseView> = match &dhcp {
            Some(d) if config.dhcp.mode == DhcpMode::Full => d.clone(),
            _ => Arc::new(NoLeases),
        };
        // TFTP's port is bound before DHCP's; it serves once DHCP is up,
        // as the GRUB chain's configs need the lease table. No machine
        // reaches TFTP before it has a DHCP answer.
        let scripts = http::ScriptCache::default();
        let tftp = Arc::new(
            TftpServer::new(
                TftpSettings::from_config(&config),
                tftp_fs,
                bus.clone(),
                progress.clone(),
                Some(
                    GrubChain {
                        config: config.clone(),
                        inventory: inventory.clone(),
                        urls: urls.clone(),
                        secrets: secrets.clone(),
                        bus: bus.clone(),
                        leases: leases.clone(),
                        bindings: scripts.bindings(),
                    }
                    .generator(),
                ),
            )
            .sharing_cache(files.clone()),
        );
        tftp_lane.spawn(tftp.clone().serve(tftp_socket, cancel.clone()));

        // BMC work runs on a task of its own: a slow BMC never holds up
        // the console, the API or a boot.
        let (bmc_actor, bmc) =
            crate::bmc::BmcActor::new(inventory.clone(), bus.clone(), config.bmc.clone());
        tasks.spawn(bmc_actor.run(cancel.clone()));
        let control = Arc::new(
            Control::new(inventory_service.clone(), dhcp.clone(), bus.clone()).with_bmc(bmc),
        );
        // `auto` rules adopt what DHCP sees, bounded per minute.
        let adopter = crate::auto_adopt::AutoAdopter::new(control.clone(), bus.clone());
        let auto_adopt = adopter.stats.clone();
        tasks.spawn(adopter.run(cancel.clone()));

        let http_state = Arc::new(HttpState {
            config: config.clone(),
            inventory: inventory.clone(),
            bus: bus.clone(),
            fs: with_signed_loaders(BootFs::with_loaders(&config.boot_root), &config),
            progress: progress.clone(),
            leases,
            urls,
            stats: Default::default(),
            control: Some(control.clone()),
            model: live.clone(),
            dhcp: dhcp.clone(),
            tftp: Some(tftp.clone()),
            scripts,
            files,
            secrets,
            next_boot: Default::default(),
        });
        if let Some(file) = &secret_notes.token_file {
            let made = if secret_notes.generated_token.is_some() {
                "generated into"
            } else {
                "read from"
            };
            bus.emit(EventKind::Log {
                level: Level::Info,
                target: "api".into(),
                message: format!(
                    "API token {made} {} (mode 0600; `pxedeck attach` reads it)",
                    file.display()
                ),
            });
        }
        // Boot connections run on lanes of their own, one per core, dealt
        // in turn (`http::serve_on`); the API stays on the shared runtime.
        let http_lanes = (0..http_lane_count())
            .map(|i| Lane::start(&format!("pxedeck-http-{i}"), &cancel, &mut tasks))
            .map(|lane| lane.map(|l| l.handle()))
            .collect::<std::io::Result<Vec<_>>>()?;
        tasks.spawn(http::serve_on(
            http_listener,
            http::boot_router(http_state.clone()),
            http::ConnLimits::boot(&config.http),
            http_state.clone(),
            cancel.clone(),
            http_lanes,
        ));
        tasks.spawn(http::serve(
            api_listener,
            http::api::router(http_state.clone()),
            http::ConnLimits::api(&config.http),
            http_state.clone(),
            cancel.clone(),
        ));
        tasks.spawn(sample_progress(
            progress.clone(),
            bus.clone(),
            cancel.clone(),
        ));

        // The first snapshot (or why there is none), then the watcher.
        match first_problems {
            None => bus.emit(inventory_event(&inventory.load())),
            Some(problems) => bus.emit(EventKind::InventoryError { problems }),
        }
        let watcher = {
            let control = control.clone();
            match watch(inventory_service, move |reload| {
                control.report_reload(reload);
                // A pull moves the branch: show where it stands now.
                if let Some(g) = &git {
                    g.refresh();
                }
            }) {
                Ok(w) => Some(w),
                Err(e) => {
                    bus.emit(EventKind::Log {
                        level: Level::Warn,
                        target: "inventory".into(),
                        message: format!(
                            "not watching {}: {e}; edits need a reload",
                            config.inventory.display()
                        ),
                    });
                    None
                }
            }
        };
        bus.emit(EventKind::Started(ServerInfo {
            address,
            dhcp_mode: config.dhcp.mode,
            dhcp: dhcp_addr,
            proxy: proxy_addr,
            tftp: tftp_addr,
            http: http_addr,
            api: api_addr,
            pools: config
                .dhcp
                .pools
                .iter()
                .map(|p| PoolInfo {
                    subnet: p.subnet.to_string(),
                    first: p.range_start,
                    last: p.range_end,
                })
                .collect(),
            unknown_policy: config.unknown.clone(),
            interfaces: config
                .interfaces
                .iter()
                .map(|i| InterfaceInfo {
                    name: i.name.clone(),
                    address: i.address,
                    mode: i.mode,
                })
                .collect(),
        }));

        // Leases that survived a restart are shown, and attribute
        // transfers, from the first moment.
        if let Some(d) = &dhcp {
            announce_leases(d, &inventory.load(), &bus);
        }

        stop_on_error.disarm();
        Ok(Services {
            config,
            bus,
            live,
            inventory,
            control,
            auto_adopt,
            dhcp,
            tftp,
            http: http_state,
            progress,
            bound: Bound {
                dhcp: dhcp_addr,
                proxy: proxy_addr,
                tftp: tftp_addr,
                http: http_addr,
                api: api_addr,
            },
            cancel,
            tasks,
            _watcher: watcher,
        })
    }

    /// Stops every service and waits for their tasks.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Adds the shim and GRUB of `loaders:` under the names DHCP offers.
fn with_signed_loaders(fs: BootFs, config: &Config) -> BootFs {
    config
        .loaders
        .files()
        .into_iter()
        .fold(fs, |fs, (name, path)| fs.and_file(name, path))
}

/// File descriptors kept for everything but TFTP transfers and boot-HTTP
/// connections: the API, DHCP, the lease journal, the inventory watch, logs.
/// So when TFTP or HTTP is full, the API and DHCP still work.
pub const RESERVED_FILES: u64 = 256;

/// Raises the soft limit on open files to the hard limit (a mass boot
/// holds a socket and a file per transfer; 1024 is the usual soft default)
/// and returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// Lowers the TFTP transfer cap and the boot-HTTP connection cap so that
/// both full (a socket and a file each) still leave [`RESERVED_FILES`]
/// under `open_files`. Says what it lowered, if anything.
pub fn fit_to_open_files(config: &mut Config, open_files: u64) -> Option<String> {
    // Half of what is left for each, two descriptors per transfer or
    // connection.
    let each = (open_files.saturating_sub(RESERVED_FILES) / 4).max(1) as usize;
    let (tftp, http) = (config.tftp.max_transfers, config.http.max_connections);
    config.tftp.max_transfers = tftp.min(each);
    config.http.max_connections = http.min(each);
    (config.tftp.max_transfers < tftp || config.http.max_connections < http).then(|| {
        format!(
            "the open-file limit is {open_files}: at most {} TFTP transfers and {} HTTP \
             connections (raise LimitNOFILE to allow the configured {tftp} and {http})",
            config.tftp.max_transfers, config.http.max_connections
        )
    })
}

/// Binds a TCP service; the error names the service, the port and why.
async fn tcp_listener(what: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(Transport::Tcp, addr, e))
        .with_context(|| format!("cannot start {what}"))
}

/// A running DHCP server and the addresses it answers on.
struct DhcpStarted {
    server: Arc<DhcpServer>,
    /// The server port (67, or what the config asked).
    main: SocketAddr,
    /// The PXE BINL port (4011), unless disabled.
    proxy: Option<SocketAddr>,
}

fn announce_leases(dhcp: &DhcpServer, inventory: &Inventory, bus: &Bus) {
    for lease in dhcp.leases() {
        if lease.state != LeaseState::Bound {
            continue;
        }
        bus.emit(EventKind::LeaseBound {
            mac: lease.mac,
            ip: lease.ip,
            hostname: inventory.by_mac(&lease.mac).map(|m| m.hostname.clone()),
            expires: lease.expires,
            fixed: lease.fixed,
        });
    }
}

/// Binds the DHCP sockets the mode needs: 67 (full or proxy), 4011 (PXE
/// BINL, both modes), and 68 to notice other servers' answers. None when
/// DHCP is off.
fn start_dhcp(
    config: &Arc<Config>,
    inventory: &SharedInventory,
    bus: &Bus,
    base: &str,
    loaders: BootFs,
    cancel: &CancellationToken,
    lane: &Lane,
) -> anyhow::Result<Option<DhcpStarted>> {
    if config.dhcp.mode == DhcpMode::Off {
        return Ok(None);
    }
    // Sockets register with the lane's runtime, which serves them.
    let _in_lane = lane.enter();
    let server = Arc::new(DhcpServer::new(
        config.clone(),
        inventory.clone(),
        bus.clone(),
        base.to_string(),
        Box::new(move |name| loaders.find(name).is_ok()),
    )?);
    let interface = config.interface.as_deref();
    // With an interface, listen on the wildcard address of that interface
    // only: broadcasts from clients without an address arrive there.
    // Without one (loopback, tests, relayed-only setups) bind the address.
    let listen = if interface.is_some() || config.multihomed() {
        Ipv4Addr::UNSPECIFIED
    } else {
        config.address
    };
    let opts = UdpOptions {
        interface,
        broadcast: true,
        buffer: UDP_BUFFER,
        share_port: false,
    };
    let main = udp_socket(SocketAddr::from((listen, config.dhcp.port)), &opts)?;
    let main_addr = main.local_addr()?;
    lane.spawn(server.clone().serve(main, Port::Dhcp, cancel.clone()));
    let proxy_addr = if config.dhcp.proxy_port != 0 {
        let proxy = udp_socket(SocketAddr::from((listen, config.dhcp.proxy_port)), &opts)?;
        let addr = proxy.local_addr()?;
        lane.spawn(server.clone().serve(proxy, Port::Proxy, cancel.clone()));
        Some(addr)
    } else {
        None
    };
    if interface.is_some() {
        // Other servers' OFFERs and ACKs are broadcast to the client port.
        // Sharing 68 with a local DHCP client is fine (SO_REUSEADDR); if it
        // cannot be had, rogue detection is reduced to relayed traffic.
        let shared = UdpOptions {
            share_port: true,
            ..opts.clone()
        };
        match udp_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)), &shared) {
            Ok(watch68) => {
                lane.spawn(server.clone().serve(watch68, Port::Dhcp, cancel.clone()));
            }
            Err(e) => bus.emit(EventKind::Log {
                level: Level::Warn,
                target: "dhcp".into(),
                message: format!("rogue DHCP detection limited: {e}"),
            }),
        }
    }
    {
        let server = server.clone();
        let cancel = cancel.clone();
        lane.spawn(async move {
            let mut tick = tokio::time::interval(EXPIRE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        server.expire();
                        server.refresh_loaders();
                    }
                    _ = cancel.cancelled() => return,
                }
            }
        });
    }
    Ok(Some(DhcpStarted {
        server,
        main: main_addr,
        proxy: proxy_addr,
    }))
}

/// Lanes for boot HTTP: one per core this process may use, at most
/// `MAX_HTTP_LANES`.
fn http_lane_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_HTTP_LANES)
}

/// Past this many cores, more lanes only add threads: the NIC and the
/// disk are the bound long before.
const MAX_HTTP_LANES: usize = 8;

/// A thread of its own with a single-threaded runtime, for a UDP service
/// or a share of the boot HTTP connections.
///
/// TFTP without windows waits for an ACK before every block, and firmware
/// waits for every DHCP answer. On the shared runtime, during a mass boot,
/// each of those packets would queue behind hundreds of HTTP streams
/// writing their next chunk: measured with 500 machines on one core, boot
/// loaders over TFTP took 22–30 s at p99. On its own thread the
/// kernel runs the service as soon as its packet arrives.
pub struct Lane {
    handle: tokio::runtime::Handle,
}

impl Lane {
    /// Starts the thread; it runs until `cancel`, and `tasks` learns when
    /// it has stopped.
    pub fn start(
        name: &str,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> std::io::Result<Lane> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stopped, on_stop) = tokio::sync::oneshot::channel::<()>();
        let cancel = cancel.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(cancel.cancelled());
                // Dropping the runtime ends whatever still runs on it.
                drop(runtime);
                let _ = stopped.send(());
            })?;
        tasks.spawn(async move {
            let _ = on_stop.await;
        });
        Ok(Lane { handle })
    }

    /// Where work for this lane is spawned.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.handle.spawn(work);
    }

    /// Makes sockets created while the guard lives belong to this lane.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.handle.enter()
    }
}
