//! The long-running commands of the binary: console, serve, attach, demo
//! and bench. Each builds on `pxedeck::services` and `pxedeck::tui`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pxedeck::boot::render::Urls;
use pxedeck::config::Config;
use pxedeck::demo::{self, DemoWorld};
use pxedeck::embedded::EmbeddedBackend;
use pxedeck::event::{EventKind, Level};
use pxedeck::http::remote::RemoteBackend;
use pxedeck::live::LiveModel;
use pxedeck::services::Services;
use pxedeck::sim::Target;
use pxedeck::sim::bench::{self, BenchOptions, BenchResult};
use pxedeck::tui::{self, Exit, theme::Theme};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

fn theme(name: Option<String>, config_theme: &str) -> anyhow::Result<Theme> {
    let mono = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Theme::load(name.as_deref().unwrap_or(config_theme), mono).map_err(anyhow::Error::msg)
}

/// Logs go to a file while the console owns the terminal.
fn log_to_file(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the log file {}: {e}", path.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_writer(Arc::new(file))
        .with_ansi(false)
        .try_init();
    Ok(())
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// A line for the operator on stderr. After the console lost its terminal
/// stderr is `/dev/null`; a failed write is never worth a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Waits for SIGINT or SIGTERM.
async fn terminated() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// The console's backend over the services this process runs.
fn embedded(services: &Services) -> Arc<EmbeddedBackend> {
    Arc::new(EmbeddedBackend::new(
        services.live.clone(),
        services.control.clone(),
        services.inventory.clone(),
        services.config.unknown.clone(),
        Urls::new(services.http.urls.base.clone()),
    ))
}

/// After the terminal went away the services keep running, headless and
/// attachable, until told to stop.
async fn headless_after_hangup(services: &Services) -> anyhow::Result<()> {
    info!(
        api = %services.bound.api,
        pid = std::process::id(),
        "the terminal went away; boot services keep running headless \
         (pxedeck attach http://{}; stop with kill {})",
        services.bound.api,
        std::process::id()
    );
    // A second SIGHUP must not kill the process now.
    let mut hup = signal(SignalKind::hangup())?;
    tokio::select! {
        r = terminated() => r?,
        _ = async { loop { hup.recv().await; } } => {}
    }
    Ok(())
}

pub async fn console(config: Config, theme_name: Option<String>) -> anyhow::Result<ExitCode> {
    let theme = theme(theme_name, &config.theme)?;
    let log = config
        .dhcp
        .lease_file
        .parent()
        .unwrap_or(Path::new("."))
        .join("pxedeck.log");
    log_to_file(&log)?;
    let services = Services::start(config).await?;
    let logging = tokio::spawn(log_events(services.live.clone()));
    let exit = tui::run(embedded(&services), theme).await;
    let stayed = stay_headless_if_lost(&services, exit).await;
    stop(services, logging).await;
    say(&format!("pxedeck: stopped (log: {})", log.display()));
    stayed.map(|()| ExitCode::SUCCESS)
}

/// After the console: if its terminal died, the services serve on until
/// SIGTERM. A console that failed is logged before the services stop.
async fn stay_headless_if_lost(
    services: &Services,
    exit: anyhow::Result<Exit>,
) -> anyhow::Result<()> {
    match exit {
        Ok(Exit::TerminalLost) => headless_after_hangup(services).await,
        Ok(Exit::Quit) => Ok(()),
        Err(e) => {
            tracing::error!("the console failed: {e:#}");
            Err(e)
        }
    }
}

async fn stop(services: Services, logging: tokio::task::JoinHandle<()>) {
    info!("stopping");
    services.shutdown().await;
    logging.abort();
    info!("stopped");
}

/// One line per event that changes something, for journald.
fn describe(kind: &EventKind) -> Option<(Level, String)> {
    use EventKind as E;
    let info = |s: String| Some((Level::Info, s));
    match kind {
        E::Started(s) => info(format!(
            "serving: DHCP {} ({}), TFTP {}, HTTP {}, API {}",
            s.dhcp.map_or("off".into(), |a| a.to_string()),
            s.dhcp_mode,
            s.tftp,
            s.http,
            s.api
        )),
        E::DhcpSeen(d) => info(format!(
            "dhcp {} from {}{} → {:?}",
            d.message.name(),
            d.mac,
            d.hostname
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default(),
            d.decision
        )),
        E::LeaseBound { mac, ip, .. } => info(format!("lease {ip} bound to {mac}")),
        E::LeaseEnded { mac, ip, why } => info(format!("lease {ip} of {mac} ended: {why:?}")),
        E::PoolExhausted { subnet, mac } => Some((
            Level::Warn,
            format!("pool {subnet} exhausted ({mac} got nothing)"),
        )),
        E::RogueDhcp {
            server, offered, ..
        } => Some((
            Level::Warn,
            format!("another DHCP server {server} answered (offered {offered:?})"),
        )),
        E::TransferStarted {
            id,
            protocol,
            client,
            path,
            size,
            ..
        } => info(format!(
            "{} #{id} {client} {path} ({} bytes)",
            protocol.name(),
            size.map_or("?".into(), |s| s.to_string())
        )),
        E::TransferDone { id, bytes, millis } => {
            info(format!("transfer #{id} done: {bytes} bytes in {millis} ms"))
        }
        E::TransferFailed {
            id,
            reason,
            probe: false,
            ..
        } => Some((Level::Warn, format!("transfer #{id} failed: {reason}"))),
        E::ScriptServed {
            client,
            hostname,
            kind,
            ..
        } => info(format!(
            "script {} to {client}{}",
            kind.name(),
            hostname
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default()
        )),
        E::ConfigServed {
            client,
            hostname,
            name,
        } => info(format!("config {name} of {hostname} to {client}")),
        E::AccessDenied {
            client,
            path,
            reason,
        } => Some((Level::Warn, format!("denied {path} to {client}: {reason}"))),
        E::InstallDone { hostname, .. } => {
            info(format!("{hostname}: install done, now install: false"))
        }
        E::InventoryReloaded { machines, .. } => {
            info(format!("inventory: {} machines", machines.len()))
        }
        E::InventoryError { problems } => Some((
            Level::Error,
            format!(
                "inventory has {} problem(s), keeping the last good one: {}",
                problems.len(),
                problems
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
        )),
        E::InventoryWritten {
            hostname,
            path,
            change,
        } => info(format!("{hostname}: {change} ({path})")),
        E::CommandFailed { command, error } => Some((Level::Error, format!("{command}: {error}"))),
        E::MachineForgotten { mac } => info(format!("forgot unknown machine {mac}")),
        E::Log {
            level,
            target,
            message,
        } => Some((*level, format!("{target}: {message}"))),
        // A machine's change is logged as the write that made it.
        E::DhcpReplied { .. }
        | E::Progress { .. }
        | E::TransferFailed { .. }
        | E::InventoryMachineChanged { .. } => None,
    }
}

/// Logs what the start-up said, then one line per event folded after it:
/// stdout for `serve`, `pxedeck.log` for the console and the demo.
async fn log_events(live: Arc<LiveModel>) {
    // Start-up events are already folded into the model: log what they
    // said, then every event folded after them. The snapshot is dropped
    // once read: it can be large.
    let mut rx = {
        let (startup, rx) = live.snapshot_and_subscribe();
        if let Some((_, line)) = startup
            .server
            .map(EventKind::Started)
            .as_ref()
            .and_then(describe)
        {
            info!("{line}");
        }
        for line in &startup.log {
            info!("{}: {}", line.target, line.message);
        }
        rx
    };
    if !tracing::enabled!(tracing::Level::INFO) {
        // Warnings only: nothing per event to log; do not wake per event.
        std::future::pending::<()>().await;
    }
    loop {
        match rx.recv().await {
            Ok(e) => match describe(&e.kind) {
                Some((Level::Error, s)) => tracing::error!("{s}"),
                Some((Level::Warn, s)) => tracing::warn!("{s}"),
                Some((_, s)) => info!("{s}"),
                None => {}
            },
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("log fell behind: {n} events not logged");
            }
            Err(_) => return,
        }
    }
}

pub async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    // Colour for a person at a terminal; plain text for journald and files.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
    let services = Services::start(config).await?;
    let logger = log_events(services.live.clone());
    let mut hup = signal(SignalKind::hangup())?;
    tokio::select! {
        r = terminated() => r?,
        _ = logger => {}
        _ = async { loop { hup.recv().await; } } => {}
    }
    info!("stopping");
    services.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn attach(
    url: String,
    token: Option<String>,
    config: &Config,
    theme_name: Option<String>,
) -> anyhow::Result<ExitCode> {
    let theme = theme(theme_name, "default")?;
    let token = token.or_else(|| config_token(config));
    if token.is_none() {
        eprintln!(
            "pxedeck attach: no API token (--token, PXEDECK_TOKEN, or {}): the server will refuse",
            config.http.api_token_file.display()
        );
    }
    tui::run(Arc::new(RemoteBackend::new(&url, token)), theme).await?;
    Ok(ExitCode::SUCCESS)
}

/// The token a server with this config uses: its `api_token`, else the one
/// it generated into `api_token_file` (readable only by the user it runs
/// as, which is the point).
fn config_token(config: &Config) -> Option<String> {
    config.http.api_token.clone().or_else(|| {
        std::fs::read_to_string(&config.http.api_token_file)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    })
}

pub async fn demo(
    unknown: usize,
    every: f64,
    keep: bool,
    theme_name: Option<String>,
) -> anyhow::Result<ExitCode> {
    let theme = theme(theme_name, "default")?;
    let dir = tempfile::Builder::new().prefix("pxedeck-demo-").tempdir()?;
    // The API on the well-known port when it is free, so `pxedeck attach`
    // works without arguments; any free port otherwise.
    let api_port = if std::net::TcpListener::bind("127.0.0.1:8081").is_ok() {
        8081
    } else {
        0
    };
    let world = DemoWorld::create(dir.path(), api_port)?;
    log_to_file(&dir.path().join("pxedeck.log"))?;
    let services = Services::start(world.config.clone()).await?;
    let logging = tokio::spawn(log_events(services.live.clone()));
    let mut target = Target::new(
        services.bound.dhcp.expect("the demo runs DHCP"),
        services.bound.tftp.port(),
    );
    // 25 MB/s per machine: fast enough to finish, slow enough to watch.
    target.link_rate = Some(25_000_000);
    tokio::spawn(demo::stream(
        demo::cast(unknown),
        target,
        Duration::from_secs_f64(every.max(0.0)),
    ));
    let exit = tui::run(embedded(&services), theme).await;
    let stayed = stay_headless_if_lost(&services, exit).await;
    stop(services, logging).await;
    let path = dir.path().to_path_buf();
    if keep {
        let kept: PathBuf = dir.keep();
        info!("files kept in {}", kept.display());
        say(&format!("pxedeck demo: files kept in {}", kept.display()));
    } else {
        drop(dir);
        say(&format!("pxedeck demo: removed {}", path.display()));
    }
    stayed.map(|()| ExitCode::SUCCESS)
}

pub async fn bench(
    opts: BenchOptions,
    prepare: Option<PathBuf>,
    target: Option<std::net::SocketAddr>,
    world: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(dir) = prepare {
        std::fs::create_dir_all(&dir)?;
        let w = bench::prepare(&dir, &opts)?;
        println!(
            "world written to {}: serve it with\n  pxedeck -c {}/pxedeck.yaml serve\nthen run\n  pxedeck bench -n {} --target {}:{} --world {}",
            dir.display(),
            dir.display(),
            opts.machines,
            w.config.address,
            w.config.dhcp.port,
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let result = match (target, world) {
        (Some(dhcp), Some(dir)) => {
            let config = Config::load(Some(&dir.join("pxedeck.yaml")))?;
            let machines = (0..opts.machines)
                .map(|n| {
                    pxedeck::sim::SimMachine::new(
                        pxedeck::sim::world::sim_mac(0xaa, n),
                        pxedeck::sim::world::firmware_for(n),
                    )
                })
                .collect();
            let w = pxedeck::sim::world::World {
                dir: dir.clone(),
                config: config.clone(),
                known: machines,
                unknown: vec![],
            };
            BenchResult {
                report: bench::run_against(dhcp, config.tftp.port, &w, &opts).await?,
                server: None,
            }
        }
        _ => {
            let dir = tempfile::Builder::new()
                .prefix("pxedeck-bench-")
                .tempdir()?;
            let exe = std::env::current_exe()?;
            bench::run_local(&exe, dir.path(), &opts).await?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", result.table());
    }
    Ok(if result.report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
