//! Simulated PXE machines that boot from a real pxedeck over real sockets.
//!
//! Each machine does what real firmware and installers do, in order: DHCP
//! as PXE firmware (option 60/93/94/97), its boot loader over TFTP with
//! options (or HTTP for UEFI HTTP Boot), DHCP again as iPXE, the entry
//! script over HTTP, whatever the script says (wait loop, local disk, or
//! kernel + initrds), the installer's configs, and the done callback. It
//! sends from its leased address when that address is local (the demo's
//! loopback pool), so pxedeck's lease checks apply to it for real.
//!
//! Used by `pxedeck demo`, `pxedeck bench` and the integration tests.

pub mod bench;
mod dhcp;
pub mod ipxe;
pub mod relay;
pub mod report;
pub mod world;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::boot::arch::Firmware;
use crate::http::client::{self, Options};
use crate::ident::{Mac, Uuid};
use crate::tftp::client::{FetchOptions, fetch};
use dhcp::Via;
use ipxe::Next;
use relay::Relay;
pub use report::{Outcome, Phase, Report, Run};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("DHCP: {0}")]
    Dhcp(String),
    #[error("TFTP {file}: {message}")]
    Tftp { file: String, message: String },
    #[error("HTTP {url}: {message}")]
    Http { url: String, message: String },
    #[error("script: {0}")]
    Script(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Maps a client error to the simulator's, naming the URL.
fn http_error(url: impl Into<String>) -> impl FnOnce(client::ClientError) -> SimError {
    let url = url.into();
    move |e| SimError::Http {
        url,
        message: e.to_string(),
    }
}

/// A tiny deterministic generator (xorshift64*): reproducible runs, no
/// dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// How a simulated machine misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    /// Loses power halfway through its kernel download.
    DiesMidKernel,
    /// Hangs after its boot script: never asks for the kernel (a machine
    /// the console calls stuck once `stuck_after.script` passes).
    StallsAfterScript,
}

#[derive(Debug, Clone)]
pub struct SimMachine {
    pub mac: Mac,
    pub uuid: Uuid,
    pub firmware: Firmware,
    pub behaviour: Behaviour,
}

impl SimMachine {
    /// A machine with a MAC in the QEMU/KVM range and a UUID derived from
    /// it.
    pub fn new(mac: Mac, firmware: Firmware) -> SimMachine {
        let mut uuid = [0u8; 16];
        uuid[..6].copy_from_slice(&mac.0);
        uuid[6] = 0x40;
        uuid[8] = 0x80;
        uuid[10..].copy_from_slice(&mac.0);
        SimMachine {
            mac,
            uuid: Uuid(uuid),
            firmware,
            behaviour: Behaviour::Normal,
        }
    }
}

/// Where the machines boot from and how the wire behaves.
#[derive(Debug, Clone)]
pub struct Target {
    /// The DHCP server's socket.
    pub dhcp: SocketAddr,
    /// Reach it through this relay agent rather than directly (machines on
    /// a routed subnet; any server that answers relays on port 67).
    pub relay: Option<Arc<Relay>>,
    /// The TFTP port on the next-server the DHCP answer names.
    pub tftp_port: u16,
    /// Share of DHCP packets lost on the way out (0.0–1.0).
    pub loss: f64,
    /// Added before every request (a slow or distant segment).
    pub latency: Duration,
    /// The first DHCP retransmit timeout (firmware uses 4 s).
    pub dhcp_wait: Duration,
    /// Give up waiting in the hold loop after this long.
    pub hold_limit: Duration,
    /// Override the script's wait between hold-loop polls (tests).
    pub hold_poll: Option<Duration>,
    /// Each machine's HTTP download speed in bytes/s (None: as fast as
    /// loopback goes). The demo paces so progress is watchable.
    pub link_rate: Option<u64>,
}

impl Target {
    pub fn new(dhcp: SocketAddr, tftp_port: u16) -> Target {
        Target {
            dhcp,
            relay: None,
            tftp_port,
            loss: 0.0,
            latency: Duration::ZERO,
            dhcp_wait: Duration::from_millis(500),
            hold_limit: Duration::from_secs(600),
            hold_poll: None,
            link_rate: None,
        }
    }
}

/// The leased address as the source of the machine's TFTP and HTTP
/// traffic, where this host can send from it: the demo's loopback pool,
/// or a subnet routed here and made local (`ip route add local …`).
/// Servers that check who asks (pxedeck's configs) then see the machine
/// itself. Elsewhere traffic goes from the default address.
fn source_for(ip: Ipv4Addr) -> Option<IpAddr> {
    let bindable = ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok();
    (!ip.is_unspecified() && bindable).then_some(IpAddr::V4(ip))
}

/// One machine's boot, start to finish.
pub async fn boot(m: &SimMachine, target: &Target, seed: u64) -> Run {
    let mut run = Run::new(m.mac);
    let started = Instant::now();
    let result = boot_inner(m, target, seed, &mut run).await;
    run.total = started.elapsed();
    run.outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(e.to_string()),
    };
    run
}

async fn timed<T, E>(
    run: &mut Run,
    phase: Phase,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let t = Instant::now();
    let out = work.await;
    if out.is_ok() {
        run.record(phase, t.elapsed());
    }
    out
}

async fn boot_inner(
    m: &SimMachine,
    target: &Target,
    seed: u64,
    run: &mut Run,
) -> Result<Outcome, SimError> {
    let mut rng = Rng::new(
        seed ^ u64::from_be_bytes([
            0, 0, m.mac.0[0], m.mac.0[1], m.mac.0[2], m.mac.0[3], m.mac.0[4], m.mac.0[5],
        ]),
    );
    let via = match &target.relay {
        Some(relay) => Via::Relay(relay.clone()),
        None => Via::Direct(match target.dhcp.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => ip,
            _ => Ipv4Addr::UNSPECIFIED,
        }),
    };
    tokio::time::sleep(target.latency).await;
    let mut rom = dhcp::Client {
        mac: m.mac,
        uuid: m.uuid,
        firmware: m.firmware,
        ipxe: false,
        server: target.dhcp,
        loss: target.loss,
        rng: &mut rng,
    };
    let acked = timed(run, Phase::Dhcp, rom.dora(&via, target.dhcp_wait)).await?;
    if acked.boot_file.is_empty() {
        return Ok(Outcome::NoBootAnswer);
    }
    let source = source_for(acked.ip);
    let http_opts = Options {
        bind: source,
        bearer: None,
        timeout: Some(Duration::from_secs(600)),
        rate: target.link_rate,
    };

    // Stage one: the boot loader.
    tokio::time::sleep(target.latency).await;
    if acked.boot_file.starts_with("http://") {
        let url = &acked.boot_file;
        timed(run, Phase::Loader, client::download(url, &http_opts, None))
            .await
            .map_err(http_error(url))?;
    } else {
        let server = SocketAddr::new(IpAddr::V4(acked.next_server), target.tftp_port);
        // Firmware asks for the size first on many ROMs; this one goes
        // straight to the transfer with the options UEFI uses.
        let opts = FetchOptions {
            blksize: Some(1468),
            windowsize: (m.firmware != Firmware::Bios).then_some(4),
            tsize: true,
            keep: false,
            bind: source,
            ..FetchOptions::default()
        };
        let file = acked.boot_file.clone();
        timed(run, Phase::Loader, fetch(server, &file, &opts))
            .await
            .map_err(|e| SimError::Tftp {
                file,
                message: e.to_string(),
            })?;
    }

    // Stage two: iPXE asks DHCP again and gets its script URL.
    let mut ipxe = dhcp::Client {
        mac: m.mac,
        uuid: m.uuid,
        firmware: m.firmware,
        ipxe: true,
        server: target.dhcp,
        loss: target.loss,
        rng: &mut rng,
    };
    let acked = timed(run, Phase::IpxeDhcp, ipxe.dora(&via, target.dhcp_wait)).await?;
    if !acked.boot_file.starts_with("http://") {
        return Err(SimError::Dhcp(format!(
            "iPXE was offered {:?}, not a script URL",
            acked.boot_file
        )));
    }
    let mac_hyphen = m.mac.to_string().replace(':', "-");
    let uuid = m.uuid.to_string();
    let settings = ipxe::Settings {
        mac_hyphen: &mac_hyphen,
        uuid: &uuid,
    };
    let mut url = acked.boot_file;
    let hold_started = Instant::now();
    let mut first_script = true;
    let (kernel, cmdline, initrds) = loop {
        tokio::time::sleep(target.latency).await;
        let t = Instant::now();
        let script = client::get_text(&url, &http_opts)
            .await
            .map_err(http_error(url))?;
        if first_script {
            run.record(Phase::Script, t.elapsed());
            first_script = false;
        }
        match ipxe::follow(&script, &settings).map_err(SimError::Script)? {
            Next::Boot {
                kernel,
                cmdline,
                initrds,
            } => break (kernel, cmdline, initrds),
            Next::Local => return Ok(Outcome::LocalDisk),
            Next::Shell => return Err(SimError::Script("the script dropped to a shell".into())),
            Next::Chain {
                url: next,
                after_secs,
            } => {
                if after_secs > 0 {
                    if hold_started.elapsed() > target.hold_limit {
                        return Ok(Outcome::StillHeld);
                    }
                    run.held = true;
                    let wait = target
                        .hold_poll
                        .unwrap_or(Duration::from_secs(u64::from(after_secs)));
                    tokio::time::sleep(wait).await;
                }
                url = next;
            }
        }
    };
    if run.held {
        run.record(Phase::Held, hold_started.elapsed());
    }

    if m.behaviour == Behaviour::StallsAfterScript {
        return Ok(Outcome::Failed("hung after its boot script".into()));
    }
    // Kernel and initrds. Remote (https) images are the firmware's
    // business with the internet; the simulator skips them.
    // A machine that dies does so 64 KiB into its kernel.
    let dies_after = (m.behaviour == Behaviour::DiesMidKernel).then_some(64 * 1024);
    if kernel.starts_with("http://") {
        let bytes = timed(
            run,
            Phase::Kernel,
            client::download(&kernel, &http_opts, dies_after),
        )
        .await
        .map_err(http_error(kernel))?;
        if dies_after.is_some() {
            return Ok(Outcome::Failed(format!(
                "lost power after {bytes} bytes of the kernel"
            )));
        }
    }
    for initrd in initrds.iter().filter(|u| u.starts_with("http://")) {
        timed(
            run,
            Phase::Initrd,
            client::download(initrd, &http_opts, None),
        )
        .await
        .map_err(http_error(initrd))?;
    }

    // The installer: configs named on the command line, then the callback
    // its config tells it to make.
    let configs = config_urls(&cmdline);
    if configs.is_empty() {
        return Ok(Outcome::Booted);
    }
    let t = Instant::now();
    let mut texts = Vec::new();
    for url in &configs {
        match client::get_text(url, &http_opts).await {
            Ok(text) => texts.push(text),
            // cloud-init tolerates a missing vendor-data; so do we.
            Err(client::ClientError::Status(s, _)) if s == 404 => {}
            Err(e) => {
                return Err(SimError::Http {
                    url: url.clone(),
                    message: e.to_string(),
                });
            }
        }
    }
    run.record(Phase::Config, t.elapsed());
    let Some(done) = texts.iter().find_map(|t| done_url(t)) else {
        return Ok(Outcome::Booted);
    };
    timed(run, Phase::Done, client::post(&done, None, &http_opts))
        .await
        .map_err(http_error(done))?;
    Ok(Outcome::Installed)
}

/// Boots every machine concurrently, starts spread evenly over `spread`;
/// returns the runs (in input order) and the time until the last finished.
pub async fn boot_all(
    machines: &[SimMachine],
    target: &Target,
    spread: Duration,
    seed: u64,
) -> (Vec<Run>, Duration) {
    let started = Instant::now();
    let n = machines.len().max(1) as u32;
    let mut set = tokio::task::JoinSet::new();
    for (i, m) in machines.iter().cloned().enumerate() {
        let target = target.clone();
        let delay = spread * i as u32 / n;
        set.spawn(async move {
            tokio::time::sleep(delay).await;
            (i, boot(&m, &target, seed.wrapping_add(i as u64)).await)
        });
    }
    let mut runs: Vec<Option<Run>> = vec![None; machines.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, run)) = joined {
            runs[i] = Some(run);
        }
    }
    let runs = runs
        .into_iter()
        .zip(machines)
        .map(|(r, m)| {
            r.unwrap_or_else(|| {
                let mut run = Run::new(m.mac);
                run.outcome = Outcome::Failed("the simulation task panicked".into());
                run
            })
        })
        .collect();
    (runs, started.elapsed())
}

/// Config URLs an installer would fetch, from its kernel command line:
/// cloud-init's nocloud-net seed (`ds=nocloud-net;s=<url>/`) and Talos's
/// `talos.config=<url>`.
pub fn config_urls(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in cmdline.split_whitespace() {
        if let Some(seed) = word
            .strip_prefix("ds=nocloud-net;s=")
            .or_else(|| word.strip_prefix("ds=nocloud-net;seedfrom="))
        {
            let base = seed.trim_end_matches('/');
            for name in ["meta-data", "user-data", "vendor-data"] {
                out.push(format!("{base}/{name}"));
            }
        } else if let Some(url) = word.strip_prefix("talos.config=") {
            out.push(url.to_string());
        } else if let Some(url) = word
            .strip_prefix("inst.ks=")
            .or_else(|| word.strip_prefix("ks="))
            .or_else(|| word.strip_prefix("url="))
            .filter(|u| u.contains("/config/"))
        {
            out.push(url.to_string());
        }
    }
    out.retain(|u| u.starts_with("http://"));
    out
}

/// The done-callback URL an installer config calls (`…/done/<host>`).
pub fn done_url(config: &str) -> Option<String> {
    config
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .find(|w| w.starts_with("http://") && w.contains("/done/"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installer_urls() {
        assert_eq!(
            config_urls("ip=dhcp ds=nocloud-net;s=http://h/config/dev-01/ autoinstall"),
            vec![
                "http://h/config/dev-01/meta-data",
                "http://h/config/dev-01/user-data",
                "http://h/config/dev-01/vendor-data"
            ]
        );
        assert_eq!(
            config_urls("talos.config=http://h/config/p/machine.yaml"),
            vec!["http://h/config/p/machine.yaml"]
        );
        assert_eq!(
            done_url("late-commands:\n  - curl -fsS -X POST http://h:8080/done/dev-01 || true\n"),
            Some("http://h:8080/done/dev-01".into())
        );
    }

    #[test]
    fn rng_is_deterministic_and_fair_enough() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let hits = (0..10_000).filter(|_| a.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
        assert!(!a.chance(0.0));
    }
}
