//! The TFTP server: a thin async shell around [`super::transfer`].
//!
//! The listening socket only accepts requests. Each read request gets a task
//! and (normally) a socket of its own — its transfer ID (RFC 1350) — so one
//! slow client never delays another. In single-port mode every transfer
//! shares the listening socket and packets are routed to their transfer by
//! the client's address (for NAT and containers).
//!
//! Bounds against a hostile segment: `max_transfers` in all (set below the
//! open-file limit by `services`), `max_per_client` per client address, and
//! each transfer ends once its client is silent for `Limits::max_idle`.
//! Files stream from disk a window at a time (`source`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::packet::{self, ErrorCode, Mode, Packet};
pub use super::source::to_netascii;
use super::source::{Raw, Source};
use super::transfer::{Limits, Status, Transfer, Transmit, negotiate};
use crate::bootfs::{BootFs, FsError};
use crate::counters::Counts;
use crate::event::{Bus, EventKind, Protocol};
use crate::filecache::FileCache;
use crate::progress::ProgressTable;

/// Files above this size are refused over TFTP: serve them over HTTP.
pub const MAX_TFTP_FILE: u64 = 1 << 30;

/// The largest packet a client sends inside a read transfer that is read
/// whole: its packets are ACKs (4 bytes) and ERRORs (a message RFC 1350
/// keeps within a block), and one Ethernet frame holds either. A longer
/// datagram is cut (an ERROR's text), never misread; a transfer's buffer
/// stays at this, not 64 KiB, across hundreds of concurrent transfers.
const CLIENT_PACKET_MAX: usize = 1500;

/// Produces files that do not exist on disk (per-client scripts, GRUB
/// configs). Consulted before the file system.
pub type Generator = Arc<dyn Fn(&Asked<'_>) -> Option<Vec<u8>> + Send + Sync>;

/// A read request, as a [`Generator`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The file name, as the client sent it.
    pub path: &'a str,
    /// The client's address.
    pub client: IpAddr,
    /// The server address the transfer is sent from: the address of the
    /// client's segment when several interfaces are served (0.0.0.0 in
    /// single-port mode on a wildcard socket, which cannot tell).
    pub local: IpAddr,
}

#[derive(Clone)]
pub struct TftpSettings {
    pub limits: Limits,
    pub max_transfers: usize,
    /// Transfers one client address may hold at once: one address that
    /// asks and leaves cannot take every slot.
    pub max_per_client: usize,
    pub single_port: bool,
}

impl Default for TftpSettings {
    fn default() -> Self {
        TftpSettings {
            limits: Limits::default(),
            max_transfers: 1000,
            max_per_client: 8,
            single_port: false,
        }
    }
}

impl TftpSettings {
    /// Settings from the config file: the blksize cap is also clamped to the
    /// provisioning interface's MTU − 32 when an interface is named.
    pub fn from_config(config: &crate::config::Config) -> TftpSettings {
        let t = &config.tftp;
        let mut limits = Limits {
            max_blksize: t.max_blksize,
            max_windowsize: t.max_windowsize,
            max_timeout: t.max_timeout,
            max_idle: t.max_idle,
            ..Limits::default()
        };
        if let Some(mtu) = config
            .interface
            .as_deref()
            .and_then(crate::net::interface_mtu)
        {
            limits = limits.clamp_to_mtu(mtu);
        }
        TftpSettings {
            limits,
            max_transfers: t.max_transfers,
            max_per_client: t.max_per_client,
            single_port: t.single_port,
        }
    }
}

crate::reasons! {
    /// Why a TFTP datagram or request was not served (not found and denied
    /// are answered with an ERROR; the rest are dropped or absorbed).
    pub enum TftpDrop {
        // Undecodable (`packet::DecodeError`).
        TooShort => "too_short",
        UnknownOpcode => "unknown_opcode",
        Unterminated => "unterminated",
        NotUtf8 => "not_utf8",
        EmptyFilename => "empty_filename",
        FilenameTooLong => "filename_too_long",
        UnknownMode => "unknown_mode",
        TooManyOptions => "too_many_options",
        OddOptions => "odd_options",
        /// A retransmitted RRQ for a transfer already running.
        DuplicateRequest => "duplicate_request",
        RefusedWrite => "refused_write",
        Busy => "busy",
        /// The client's address already holds `max_per_client` transfers.
        PerClientLimit => "per_client_limit",
        NotFound => "not_found",
        Denied => "denied",
        /// A packet for no running transfer.
        Stray => "stray",
    }
}

impl From<packet::DecodeError> for TftpDrop {
    fn from(e: packet::DecodeError) -> TftpDrop {
        use packet::DecodeError as E;
        match e {
            E::TooShort => TftpDrop::TooShort,
            E::UnknownOpcode(_) => TftpDrop::UnknownOpcode,
            E::Unterminated => TftpDrop::Unterminated,
            E::NotUtf8 => TftpDrop::NotUtf8,
            E::EmptyFilename => TftpDrop::EmptyFilename,
            E::FilenameTooLong => TftpDrop::FilenameTooLong,
            E::UnknownMode => TftpDrop::UnknownMode,
            E::TooManyOptions => TftpDrop::TooManyOptions,
            E::OddOptions => TftpDrop::OddOptions,
        }
    }
}

impl TftpDrop {
    fn is_malformed(self) -> bool {
        matches!(
            self,
            TftpDrop::TooShort
                | TftpDrop::UnknownOpcode
                | TftpDrop::Unterminated
                | TftpDrop::NotUtf8
                | TftpDrop::EmptyFilename
                | TftpDrop::FilenameTooLong
                | TftpDrop::UnknownMode
                | TftpDrop::TooManyOptions
                | TftpDrop::OddOptions
        )
    }
}

/// Counters for metrics and the console.
#[derive(Default)]
pub struct TftpStats {
    pub requests: AtomicU64,
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub probes: AtomicU64,
    pub bytes: AtomicU64,
    /// Datagrams and requests not served, by reason.
    pub dropped: Counts<TftpDrop>,
}

impl TftpStats {
    /// Undecodable datagrams, whatever the reason.
    pub fn malformed_total(&self) -> u64 {
        self.dropped
            .iter()
            .filter(|(why, _)| why.is_malformed())
            .map(|(_, n)| n)
            .sum()
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub struct TftpServer {
    settings: TftpSettings,
    fs: BootFs,
    bus: Bus,
    progress: Arc<ProgressTable>,
    pub stats: Arc<TftpStats>,
    generator: Option<Generator>,
    /// Loaders shared by concurrent transfers (and with HTTP, in serve).
    cache: Arc<FileCache>,
    /// Client addresses with a running transfer.
    active: Mutex<HashMap<SocketAddr, Option<mpsc::Sender<Vec<u8>>>>>,
}

/// Where a transfer's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    File,
    Generated,
}

/// How a transfer talks to its client.
enum Link {
    /// Its own socket, connected to the client (the normal case).
    Own(UdpSocket),
    /// The shared listening socket; packets arrive through the channel.
    Shared {
        socket: Arc<UdpSocket>,
        peer: SocketAddr,
        rx: mpsc::Receiver<Vec<u8>>,
    },
}

impl Link {
    /// The address this transfer is sent from. A connected socket knows
    /// it even when the listener is on 0.0.0.0: the kernel chose it by
    /// route when it connected.
    fn local_ip(&self) -> IpAddr {
        let socket = match self {
            Link::Own(s) => s,
            Link::Shared { socket, .. } => socket.as_ref(),
        };
        socket
            .local_addr()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip())
    }

    async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Link::Own(s) => s.send(bytes).await.map(|_| ()),
            Link::Shared { socket, peer, .. } => socket.send_to(bytes, peer).await.map(|_| ()),
        }
    }

    async fn recv(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Link::Own(s) => {
                buf.resize(CLIENT_PACKET_MAX, 0);
                s.recv(buf).await
            }
            Link::Shared { rx, .. } => match rx.recv().await {
                Some(p) => {
                    *buf = p;
                    Ok(buf.len())
                }
                None => Err(std::io::Error::other("transfer channel closed")),
            },
        }
    }
}

/// Removes a client from the active set when its transfer task ends.
struct ActiveGuard<'a>(&'a TftpServer, SocketAddr);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl TftpServer {
    pub fn new(
        settings: TftpSettings,
        fs: BootFs,
        bus: Bus,
        progress: Arc<ProgressTable>,
        generator: Option<Generator>,
    ) -> TftpServer {
        TftpServer {
            settings,
            fs,
            bus,
            progress,
            stats: Arc::new(TftpStats::default()),
            generator,
            cache: Arc::default(),
            active: Mutex::new(HashMap::new()),
        }
    }

    /// Shares the file cache with the other services.
    pub fn sharing_cache(mut self, cache: Arc<FileCache>) -> TftpServer {
        self.cache = cache;
        self
    }

    pub fn active_transfers(&self) -> usize {
        self.active.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Serves requests arriving on `socket` until `cancel` fires.
    pub async fn serve(self: Arc<Self>, socket: UdpSocket, cancel: CancellationToken) {
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; 65536];
        loop {
            let (len, peer) = tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // ICMP errors from earlier sends surface here; keep going.
                        debug!(error = %e, "tftp recv");
                        continue;
                    }
                },
                _ = cancel.cancelled() => return,
            };
            self.dispatch(&socket, &buf[..len], peer, &cancel).await;
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        socket: &Arc<UdpSocket>,
        bytes: &[u8],
        peer: SocketAddr,
        cancel: &CancellationToken,
    ) {
        let packet = match Packet::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.stats.dropped.bump(e.into());
                debug!(%peer, error = %e, "tftp: dropped malformed packet");
                return;
            }
        };
        match packet {
            Packet::Rrq {
                filename,
                mode,
                options,
            } => {
                bump(&self.stats.requests);
                enum Admit {
                    Duplicate,
                    Busy,
                    PerClient,
                    Start(Option<mpsc::Receiver<Vec<u8>>>),
                }
                let admit = {
                    let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
                    if active.contains_key(&peer) {
                        Admit::Duplicate
                    } else if active.len() >= self.settings.max_transfers {
                        Admit::Busy
                    } else if active.keys().filter(|a| a.ip() == peer.ip()).count()
                        >= self.settings.max_per_client
                    {
                        Admit::PerClient
                    } else if self.settings.single_port {
                        let (tx, rx) = mpsc::channel(256);
                        active.insert(peer, Some(tx));
                        Admit::Start(Some(rx))
                    } else {
                        active.insert(peer, None);
                        Admit::Start(None)
                    }
                };
                let link_rx = match admit {
                    Admit::Duplicate => {
                        // The client re-sent its RRQ before our first answer
                        // arrived: the running transfer already covers it.
                        self.stats.dropped.bump(TftpDrop::DuplicateRequest);
                        return;
                    }
                    Admit::Busy => {
                        self.stats.dropped.bump(TftpDrop::Busy);
                        let _ = socket
                            .send_to(
                                &packet::encode_error(
                                    ErrorCode::NotDefined,
                                    "server busy, try again",
                                ),
                                peer,
                            )
                            .await;
                        return;
                    }
                    Admit::PerClient => {
                        self.stats.dropped.bump(TftpDrop::PerClientLimit);
                        debug!(%peer, "tftp: too many transfers from one address");
                        let _ = socket
                            .send_to(
                                &packet::encode_error(
                                    ErrorCode::NotDefined,
                                    "too many transfers from your address, try again",
                                ),
                                peer,
                            )
                            .await;
                        return;
                    }
                    Admit::Start(rx) => rx,
                };
                let link = match link_rx {
                    Some(rx) => Link::Shared {
                        socket: socket.clone(),
                        peer,
                        rx,
                    },
                    None => match transfer_socket(socket, peer).await {
                        Ok(s) => Link::Own(s),
                        Err(e) => {
                            warn!(%peer, error = %e, "tftp: no socket for a transfer");
                            self.active
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .remove(&peer);
                            return;
                        }
                    },
                };
                let server = self.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    server
                        .transfer(link, peer, filename, mode, options, cancel)
                        .await;
                });
            }
            Packet::Wrq { filename } => {
                self.stats.dropped.bump(TftpDrop::RefusedWrite);
                debug!(%peer, %filename, "tftp: write request refused");
                let _ = socket
                    .send_to(
                        &packet::encode_error(ErrorCode::AccessViolation, "read-only server"),
                        peer,
                    )
                    .await;
            }
            _ => {
                // DATA/ACK/ERROR/OACK on the listening port: in single-port
                // mode they belong to a transfer; otherwise they are strays.
                let tx = self
                    .active
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&peer)
                    .cloned()
                    .flatten();
                match tx {
                    Some(tx) => {
                        let _ = tx.try_send(bytes.to_vec());
                    }
                    None => self.stats.dropped.bump(TftpDrop::Stray),
                }
            }
        }
    }

    /// Resolves a file (or a generated one) off the async threads: the held
    /// copy when the cache has or takes it, else the file open on disk.
    async fn content(
        self: &Arc<Self>,
        asked: Asked<'_>,
    ) -> Result<(Raw, Origin), (ErrorCode, String)> {
        let filename = asked.path;
        if let Some(generated) = self.generator.as_ref().and_then(|g| g(&asked)) {
            return Ok((Raw::Held(generated.into()), Origin::Generated));
        }
        let server = self.clone();
        let name = filename.to_string();
        let found = tokio::task::spawn_blocking(move || {
            let found = server.fs.find(&name)?;
            if found.metadata.len() > MAX_TFTP_FILE {
                return Err(FsError::Denied(
                    "file too large for TFTP; serve it over HTTP",
                ));
            }
            Ok(found)
        })
        .await
        .map_err(|_| (ErrorCode::NotDefined, "internal error".to_string()))?;
        let found = found.map_err(|e| match e {
            FsError::NotFound => {
                self.stats.dropped.bump(TftpDrop::NotFound);
                (ErrorCode::FileNotFound, "file not found".to_string())
            }
            FsError::Denied(why) => {
                self.stats.dropped.bump(TftpDrop::Denied);
                (
                    ErrorCode::AccessViolation,
                    format!("access violation: {why}"),
                )
            }
        })?;
        if let Some(data) = self.cache.in_memory(&found.path, &found.metadata).await {
            return Ok((Raw::Held(data), Origin::File));
        }
        let path = found.path.clone();
        let opened = tokio::task::spawn_blocking(move || std::fs::File::open(path)).await;
        match opened {
            Ok(Ok(file)) => Ok((
                Raw::Disk {
                    file: Arc::new(file),
                    len: found.metadata.len(),
                },
                Origin::File,
            )),
            _ => {
                self.stats.dropped.bump(TftpDrop::NotFound);
                Err((ErrorCode::FileNotFound, "file not found".to_string()))
            }
        }
    }

    async fn transfer(
        self: Arc<Self>,
        mut link: Link,
        peer: SocketAddr,
        filename: String,
        mode: Mode,
        options: Vec<(String, String)>,
        cancel: CancellationToken,
    ) {
        let _active = ActiveGuard(&self, peer);
        let asked = Asked {
            path: &filename,
            client: peer.ip(),
            local: link.local_ip(),
        };
        let (content, origin) = match self.content(asked).await {
            Ok(c) => c,
            Err((code, message)) => {
                debug!(%peer, %filename, %message, "tftp: request refused");
                let _ = link.send(&packet::encode_error(code, &message)).await;
                return;
            }
        };
        let mut source = match mode {
            Mode::Octet => Source::octet(content),
            Mode::Netascii => match Source::netascii(content).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(%peer, %filename, error = %e, "tftp: netascii read failed");
                    let _ = link
                        .send(&packet::encode_error(ErrorCode::NotDefined, "read error"))
                        .await;
                    return;
                }
            },
        };
        let size = source.size();
        let limits = &self.settings.limits;
        let negotiated = negotiate(&options, size, limits);
        source.set_window(negotiated.windowsize, negotiated.blksize);
        let started = Instant::now();
        let (mut transfer, first) = Transfer::start(&negotiated, size, limits, started);
        let progress = self.progress.register();
        // A generated file (a GRUB config) is announced by the generator's
        // own event; as transfers, a hold loop's rounds would bury the
        // machine's timeline.
        let announce = origin == Origin::File;
        let emit = |kind| {
            if announce {
                self.bus.emit(kind);
            }
        };
        emit(EventKind::TransferStarted {
            id: progress.id,
            protocol: Protocol::Tftp,
            client: peer,
            mac: None,
            path: filename.clone(),
            size: Some(size),
            blksize: Some(negotiated.blksize),
            windowsize: (negotiated.windowsize > 1).then_some(negotiated.windowsize),
        });
        let oack = packet::encode_oack(&negotiated.oack);
        let mut out = Vec::with_capacity(usize::from(negotiated.blksize) + 4);
        let mut buf = Vec::with_capacity(CLIENT_PACKET_MAX);
        let mut pending = Some(first);
        let mut read_failed = None;
        let status = loop {
            if let Some(send) = pending.take() {
                let sent = match send {
                    Transmit::Oack => link.send(&oack).await,
                    Transmit::Blocks(range) => {
                        let mut r = Ok(());
                        let keep_from = transfer.bytes_acked();
                        for abs in range {
                            let (offset, len, wire) = transfer.block(abs);
                            match source.bytes(offset, len, keep_from).await {
                                Ok(data) => packet::encode_data(&mut out, wire, data),
                                Err(e) => {
                                    // Truncated or unreadable underneath us:
                                    // end it rather than send wrong bytes.
                                    let _ = link
                                        .send(&packet::encode_error(
                                            ErrorCode::NotDefined,
                                            "read error",
                                        ))
                                        .await;
                                    read_failed = Some(e.to_string());
                                    break;
                                }
                            }
                            r = link.send(&out).await;
                            if r.is_err() {
                                break;
                            }
                        }
                        r
                    }
                    Transmit::Error(code, message) => {
                        link.send(&packet::encode_error(code, &message)).await
                    }
                };
                if let Err(e) = sent {
                    // Transient (ENOBUFS, an ICMP error): the timeout retries.
                    debug!(%peer, error = %e, "tftp send");
                }
                if let Some(why) = read_failed.take() {
                    break Status::Failed {
                        reason: format!("reading the file failed: {why}"),
                        probe: false,
                    };
                }
            }
            let deadline = transfer.deadline();
            let reaction = tokio::select! {
                r = link.recv(&mut buf) => match r {
                    Ok(len) => match Packet::decode(&buf[..len]) {
                        Ok(p) => transfer.on_packet(&p, Instant::now()),
                        Err(e) => {
                            self.stats.dropped.bump(e.into());
                            continue;
                        }
                    },
                    Err(_) => continue, // ICMP port unreachable etc.; the timeout decides
                },
                _ = tokio::time::sleep_until(deadline.into()) => transfer.on_timeout(Instant::now()),
                _ = cancel.cancelled() => {
                    let _ = link.send(&packet::encode_error(ErrorCode::NotDefined, "server shutting down")).await;
                    break Status::Failed { reason: "server shutting down".into(), probe: false };
                }
            };
            progress.set(transfer.bytes_acked());
            pending = reaction.send;
            if reaction.status != Status::Running {
                break reaction.status;
            }
        };
        let bytes = transfer.bytes_acked();
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        match status {
            Status::Done => {
                bump(&self.stats.done);
                let millis = started.elapsed().as_millis() as u64;
                debug!(%peer, %filename, bytes, millis, "tftp: done");
                emit(EventKind::TransferDone {
                    id: progress.id,
                    bytes,
                    millis,
                });
            }
            Status::Failed { reason, probe } => {
                bump(if probe {
                    &self.stats.probes
                } else {
                    &self.stats.failed
                });
                debug!(%peer, %filename, %reason, probe, "tftp: ended");
                emit(EventKind::TransferFailed {
                    id: progress.id,
                    bytes,
                    reason,
                    probe,
                });
            }
            Status::Running => unreachable!("the loop only ends on a final status"),
        }
    }
}

/// A socket for one transfer: same local address as the listener, a fresh
/// port (the server's transfer ID), connected so only the client reaches it.
async fn transfer_socket(listener: &UdpSocket, peer: SocketAddr) -> std::io::Result<UdpSocket> {
    let local = listener.local_addr()?;
    let bind = SocketAddr::new(local.ip(), 0);
    let socket = crate::net::udp_socket(
        bind,
        &crate::net::UdpOptions {
            buffer: 1 << 20,
            ..Default::default()
        },
    )?;
    socket.connect(peer).await?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_config_and_the_interface_mtu() {
        let c = crate::config::Config::from_text(
            "tftp:\n  max_blksize: 8192\n  max_windowsize: 8\n  single_port: true\n",
            None,
        )
        .unwrap();
        let s = TftpSettings::from_config(&c);
        assert_eq!(
            (s.limits.max_blksize, s.limits.max_windowsize, s.single_port),
            (8192, 8, true)
        );
        // Loopback's MTU is 65536 here; "lo" always exists.
        let c = crate::config::Config::from_text(
            "server:\n  interface: lo\ntftp:\n  max_blksize: 65464\n",
            None,
        )
        .unwrap();
        let mtu = crate::net::interface_mtu("lo").unwrap();
        assert_eq!(
            u32::from(TftpSettings::from_config(&c).limits.max_blksize),
            (mtu - 32).min(65464)
        );
    }

    #[test]
    fn netascii_line_ends() {
        assert_eq!(to_netascii(b"a\nb\rc"), b"a\r\nb\r\0c");
    }
}
