//! `pxedeck bench`: a mass boot of simulated machines against a pxedeck
//! `serve` child process (so its CPU and memory are its own), or against a
//! server already running (`--target`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde::Serialize;

use super::relay::Relay;
use super::world::{World, WorldSpec};
use super::{Report, Target, boot_all};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub machines: usize,
    pub loader_size: u64,
    pub kernel_size: u64,
    pub initrd_size: u64,
    /// Machines start spread over this long (power-on is never exact).
    pub spread: Duration,
    pub link_rate: Option<u64>,
    /// Reach the DHCP server as a relay agent with this address (bound on
    /// port 67, so root): for servers that only answer clients on port 68
    /// or relays, such as dnsmasq.
    pub relay: Option<Ipv4Addr>,
}

/// CPU and memory of the server process over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerCost {
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub report: Report,
    pub server: Option<ServerCost>,
}

/// Clock ticks per second for /proc times: 100 on every Linux we run on.
const TICKS: f64 = 100.0;

/// user + system CPU seconds of a process, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// Peak resident memory in MB, from /proc/<pid>/status (VmHWM).
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A free port on loopback (TCP and UDP both free, checked by binding).
fn free_port() -> std::io::Result<u16> {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// Writes a bench world (config, inventory, boot root) to `dir`.
pub fn prepare(dir: &Path, opts: &BenchOptions) -> std::io::Result<World> {
    World::create(
        dir,
        &WorldSpec {
            known: opts.machines,
            unknown: 0,
            loader_size: opts.loader_size,
            kernel_size: opts.kernel_size,
            initrd_size: opts.initrd_size,
            dhcp_port: free_port()?,
            tftp_port: free_port()?,
            http_port: free_port()?,
            api_port: free_port()?,
            api_token: "bench".into(),
        },
    )
}

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_healthy(api: SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{api}/healthz");
    for _ in 0..100 {
        if crate::http::client::get_text(&url, &Default::default())
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the server did not come up on {api}")
}

/// Runs the bench against a `pxedeck serve` child started on a fresh
/// world in `dir`.
pub async fn run_local(exe: &Path, dir: &Path, opts: &BenchOptions) -> anyhow::Result<BenchResult> {
    let world = prepare(dir, opts)?;
    let config_path: PathBuf = dir.join("pxedeck.yaml");
    let child = std::process::Command::new(exe)
        .args(["--config"])
        .arg(&config_path)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let server = ServerProcess(child);
    let pid = server.0.id();
    wait_healthy(world.config.http.api_listen).await?;
    let cpu_before = cpu_seconds(pid).unwrap_or(0.0);
    let dhcp = SocketAddr::from((world.config.address, world.config.dhcp.port));
    let report = run_against(dhcp, world.config.tftp.port, &world, opts).await?;
    let cost = ServerCost {
        cpu_seconds: cpu_seconds(pid).unwrap_or(0.0) - cpu_before,
        peak_rss_mb: peak_rss_mb(pid).unwrap_or(0.0),
    };
    drop(server);
    Ok(BenchResult {
        report,
        server: Some(cost),
    })
}

/// Boots the world's machines against a DHCP server and TFTP port.
pub async fn run_against(
    dhcp: SocketAddr,
    tftp_port: u16,
    world: &World,
    opts: &BenchOptions,
) -> anyhow::Result<Report> {
    let mut target = Target::new(dhcp, tftp_port);
    if let Some(giaddr) = opts.relay {
        let local = SocketAddr::from((giaddr, 67));
        let relay = Relay::bind(local, dhcp)
            .await
            .map_err(|e| anyhow::anyhow!("relay on {local}: {e}"))?;
        target.relay = Some(relay);
    }
    target.link_rate = opts.link_rate;
    target.hold_limit = Duration::from_secs(30);
    let (runs, makespan) = boot_all(&world.known, &target, opts.spread, 7).await;
    Ok(Report::new(&runs, makespan))
}

impl BenchResult {
    pub fn table(&self) -> String {
        let mut out = self.report.table();
        if let Some(s) = &self.server {
            out.push_str(&format!(
                "\nserver: {:.2} s CPU, peak RSS {:.1} MB\n",
                s.cpu_seconds, s.peak_rss_mb
            ));
        }
        out
    }
}
