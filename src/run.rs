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
use pxedeck::event::Command;
use pxedeck::http::remote::RemoteBackend;
use pxedeck::logging::{self, LogFile, LogFormat, log_events};
use pxedeck::services::Services;
use pxedeck::sim::Target;
use pxedeck::sim::bench::{self, BenchOptions, BenchResult};
use pxedeck::systemd;
use pxedeck::tui::{self, Exit, theme::Theme};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

fn theme(name: Option<String>, config_theme: &str) -> anyhow::Result<Theme> {
    let mono = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Theme::load(name.as_deref().unwrap_or(config_theme), mono).map_err(anyhow::Error::msg)
}

/// Logs go to a file while the console owns the terminal.
fn log_to_file(path: &Path, format: LogFormat) -> anyhow::Result<Arc<LogFile>> {
    let file = LogFile::open(path)?;
    logging::init(format, Some(file.clone()));
    Ok(file)
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
async fn headless_after_hangup(services: &Services, log: &LogFile) -> anyhow::Result<()> {
    info!(
        api = %services.bound.api,
        pid = std::process::id(),
        "the terminal went away; boot services keep running headless \
         (pxedeck attach http://{}; stop with kill {})",
        services.bound.api,
        std::process::id()
    );
    // A later SIGHUP must not kill the process now: it reloads, as for
    // `serve`.
    serve_until_terminated(services, Some(log)).await
}

/// Serves until SIGINT or SIGTERM; each SIGHUP reloads the inventory and
/// reopens the log file (after logrotate moved it).
async fn serve_until_terminated(services: &Services, log: Option<&LogFile>) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let stop = terminated();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => return r,
            _ = hup.recv() => on_hangup(services, log).await,
        }
    }
}

/// SIGHUP: the log file first (so what follows lands in the new one),
/// then the inventory, which systemd hears as a reload.
async fn on_hangup(services: &Services, log: Option<&LogFile>) {
    systemd::reloading();
    if let Some(log) = log {
        match log.reopen() {
            Ok(()) => {
                info!(target: "pxedeck", "SIGHUP: log file {} reopened", log.path().display())
            }
            Err(e) => tracing::error!(target: "pxedeck", "SIGHUP: {e:#}"),
        }
    }
    let control = services.control.clone();
    let reloaded =
        tokio::task::spawn_blocking(move || control.run(&Command::ReloadInventory)).await;
    match reloaded {
        Ok(Ok(what)) => info!(target: "pxedeck::inventory", "SIGHUP: {what}"),
        // The failure is an event of its own (CommandFailed), logged as such.
        Ok(Err(_)) => {}
        Err(e) => tracing::error!(target: "pxedeck::inventory", "SIGHUP: reload failed: {e}"),
    }
    systemd::ready("serving");
}

/// Where the console and the demo write their log: `log_file` from the
/// config, else `pxedeck.log` next to the lease file.
fn console_log_path(config: &Config) -> PathBuf {
    config
        .dhcp
        .lease_file
        .parent()
        .unwrap_or(Path::new("."))
        .join("pxedeck.log")
}

pub async fn console(
    config: Config,
    theme_name: Option<String>,
    format: LogFormat,
) -> anyhow::Result<ExitCode> {
    let theme = theme(theme_name, &config.theme)?;
    let path = console_log_path(&config);
    let log = log_to_file(&path, format)?;
    let services = Services::start(config).await?;
    let logging = tokio::spawn(log_events(services.live.clone()));
    let exit = tui::run(embedded(&services), theme).await;
    let stayed = stay_headless_if_lost(&services, exit, &log).await;
    stop(services, logging).await;
    say(&format!("pxedeck: stopped (log: {})", path.display()));
    stayed.map(|()| ExitCode::SUCCESS)
}

/// After the console: if its terminal died, the services serve on until
/// SIGTERM. A console that failed is logged before the services stop.
async fn stay_headless_if_lost(
    services: &Services,
    exit: anyhow::Result<Exit>,
    log: &LogFile,
) -> anyhow::Result<()> {
    match exit {
        Ok(Exit::TerminalLost) => headless_after_hangup(services, log).await,
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

/// How `serve` logs: the format, and a file instead of stdout.
pub struct ServeLog {
    pub format: LogFormat,
    pub file: Option<PathBuf>,
}

pub async fn serve(config: Config, log: ServeLog) -> anyhow::Result<ExitCode> {
    let file = match &log.file {
        Some(path) => Some(LogFile::open(path)?),
        None => None,
    };
    logging::init(log.format, file.clone());
    let services = Services::start(config).await?;
    let logger = tokio::spawn(log_events(services.live.clone()));
    let watchdog = systemd::watchdog_interval()
        .map(|every| tokio::spawn(systemd::watchdog(every, services.cancel.clone())));
    systemd::ready(&format!("serving; API on {}", services.bound.api));
    let served = serve_until_terminated(&services, file.as_deref()).await;
    systemd::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    stop(services, logger).await;
    served.map(|()| ExitCode::SUCCESS)
}

/// The API address a server with this config listens on, as a URL; a
/// wildcard listen address is reached on loopback.
pub fn api_url(config: &Config) -> String {
    let mut addr = config.http.api_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

pub async fn attach(
    url: Option<String>,
    token: Option<String>,
    config: &Config,
    theme_name: Option<String>,
) -> anyhow::Result<ExitCode> {
    let theme = theme(theme_name, &config.theme)?;
    let url = url.unwrap_or_else(|| api_url(config));
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
    format: LogFormat,
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
    let mut world = DemoWorld::create(dir.path(), api_port)?;
    let log = log_to_file(&dir.path().join("pxedeck.log"), format)?;
    let services = match Services::start(world.config.clone()).await {
        Ok(services) => services,
        // Another demo took 8081 between the probe and the bind (two
        // started at once): take any free port instead.
        Err(_) if api_port == 8081 => {
            world = DemoWorld::create(dir.path(), 0)?;
            Services::start(world.config.clone()).await?
        }
        Err(e) => return Err(e),
    };
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
    let stayed = stay_headless_if_lost(&services, exit, &log).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_reaches_the_api_the_config_names() {
        let mut c = Config::from_text(
            "http:\n  api_listen: 127.0.0.1:9123\n  api_token: tok\n",
            None,
        )
        .unwrap();
        assert_eq!(api_url(&c), "http://127.0.0.1:9123");
        assert_eq!(config_token(&c).as_deref(), Some("tok"));
        c.http.api_listen = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(
            api_url(&c),
            "http://127.0.0.1:9000",
            "a wildcard is reached on loopback"
        );
        let dir = tempfile::tempdir().unwrap();
        c.http.api_token = None;
        c.http.api_token_file = dir.path().join("api.token");
        std::fs::write(&c.http.api_token_file, "from-file\n").unwrap();
        assert_eq!(config_token(&c).as_deref(), Some("from-file"));
    }
}
