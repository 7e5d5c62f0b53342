//! The DHCP sockets: a thin async shell around [`super::handler`] that
//! turns its outcomes into events and counts every datagram in
//! [`DhcpStats`].
//!
//! Each pass drains up to [`BATCH`] waiting datagrams and decides them all
//! with one context. Replies that need nothing durable (offers, NAKs, proxy
//! answers) leave at once; the lease changes are appended to the journal
//! and the rest of the batch waits, held by the loop, until the sync thread
//! of [`super::commit`] reports them on disk — no ACK leaves, and no binding
//! is shown, before its lease is durable, but the loop goes on receiving
//! and deciding meanwhile (pipelined group commit). The inventory is read
//! lock-free from the shared snapshot and the loader set from an atomic;
//! nothing here waits on templates, the disk or the console per packet.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::classify::{Reject, classify};
use super::commit::{Committer, Fate, Leases, Notify};
use super::handler::{Ctx, Destination, LeaseNews, Outcome, Persist, Port, handle};
use super::leases::{Lease, LeaseState, LeaseTable};
use super::loaders::Loaders;
use super::pktinfo::{self, Arrival};
use super::store::{Appended, LeaseJournal, LeaseStore};
use super::wire::{Packet, opt};
use super::{DhcpMessage, DhcpReply, LeaseEnd, Unanswered};
use crate::clock::{Millis, now_millis};
use crate::config::Config;
use crate::counters::Counts;
use crate::event::{Bus, EventKind, Level};
use crate::ident::Mac;
use crate::inventory::SharedInventory;

/// Datagrams decided per pass. A sync covers every pass decided while the
/// one before it ran, so this bounds the work per lock hold, not per sync.
pub const BATCH: usize = 64;
/// Batches one socket may hold waiting for their sync; past it, the socket
/// is not read until the disk catches up (the kernel buffer absorbs it).
const MAX_HELD: usize = 256;
/// Packets one MAC may send per second before the rest are dropped.
pub const PER_MAC_PER_SECOND: u32 = 20;
/// A rogue server is reported at most this often.
const ROGUE_REPORT_MS: Millis = 60_000;
/// A lease journal that cannot be synced is reported at most this often
/// (every batch fails while the disk is full).
const STORE_ERROR_REPORT_MS: Millis = 60_000;

/// The server's own exact counters, read by `/metrics`.
#[derive(Default)]
pub struct DhcpStats {
    /// Datagrams read from the sockets.
    pub received: AtomicU64,
    /// Client requests decided, by message type.
    pub requests: Counts<DhcpMessage>,
    /// Replies sent, by message type.
    pub replies: Counts<DhcpReply>,
    /// Datagrams not answered, by reason.
    pub dropped: Counts<Unanswered>,
    pub rogue_seen: AtomicU64,
    /// Options left out of replies to fit a client's maximum size (57).
    pub options_dropped: AtomicU64,
}

/// A reply ready for the wire: its bytes, where it goes, what it is, and
/// where its request arrived (its source address and interface).
type Reply = (Vec<u8>, SocketAddr, DhcpReply, Option<Arrival>);

/// What deciding a batch gave.
struct Decided {
    /// Replies that need nothing durable: they leave now.
    now: Vec<Reply>,
    /// The part that waits for its sync, if the batch changed leases.
    held: Option<Held>,
}

/// A batch's replies and events, held until its lease changes are durable.
struct Held {
    ticket: u64,
    replies: Vec<Reply>,
    events: Vec<EventKind>,
}

/// Answers whether a loader file exists; run off the packet path.
pub type LoaderProbe = Box<dyn Fn(&str) -> bool + Send + Sync>;

pub struct DhcpServer {
    config: Arc<Config>,
    inventory: SharedInventory,
    committer: Committer,
    bus: Bus,
    pub stats: DhcpStats,
    http_base: String,
    loader_probe: LoaderProbe,
    /// The last probe's [`Loaders`], as bits.
    loaders: AtomicU16,
    rate: Mutex<HashMap<Mac, (Millis, u32)>>,
    rogues: Mutex<HashMap<Ipv4Addr, Millis>>,
    /// When a journal failure was last reported (0: never).
    store_error_reported: AtomicU64,
}

impl DhcpServer {
    /// Opens the lease file and builds the server. `loader_probe` says
    /// whether a loader file is available; it is asked now and on every
    /// [`DhcpServer::refresh_loaders`], never per packet.
    pub fn new(
        config: Arc<Config>,
        inventory: SharedInventory,
        bus: Bus,
        http_base: String,
        loader_probe: LoaderProbe,
    ) -> std::io::Result<DhcpServer> {
        let (store, table, replayed) = LeaseStore::open(&config.dhcp.lease_file, now_millis())?;
        debug!(
            file = %config.dhcp.lease_file.display(),
            "leases restored: {} records read, {} leases live, {} unreadable lines skipped",
            replayed.records,
            replayed.live,
            replayed.skipped
        );
        Ok(DhcpServer::with_journal(
            config,
            inventory,
            bus,
            http_base,
            loader_probe,
            (table, Box::new(store)),
        ))
    }

    /// Builds the server over a lease table and the journal that keeps it
    /// (tests inject one that fails).
    pub fn with_journal(
        config: Arc<Config>,
        inventory: SharedInventory,
        bus: Bus,
        http_base: String,
        loader_probe: LoaderProbe,
        (table, journal): (LeaseTable, Box<dyn LeaseJournal>),
    ) -> DhcpServer {
        let server = DhcpServer {
            config,
            inventory,
            committer: Committer::start(Leases::new(table, journal)),
            bus,
            stats: DhcpStats::default(),
            http_base,
            loader_probe,
            loaders: AtomicU16::new(0),
            rate: Mutex::new(HashMap::new()),
            rogues: Mutex::new(HashMap::new()),
            store_error_reported: AtomicU64::new(0),
        };
        server.refresh_loaders();
        server
    }

    /// Probes the boot root for the first-stage loaders again. Called
    /// periodically by the services (with lease expiry): the boot root is not
    /// watched — the inventory watcher sees only the inventory tree — and a
    /// loader appears when an operator installs the iPXE package or copies a
    /// build in. Five names, a few `stat`s each, every few seconds, outside
    /// the lease lock: nothing per packet.
    pub fn refresh_loaders(&self) {
        let found = Loaders::probe(&*self.loader_probe);
        let before = self.loaders.swap(found.bits(), Ordering::Relaxed);
        if before != found.bits() {
            debug!(?found, "boot loaders available");
        }
    }

    fn loaders(&self) -> Loaders {
        Loaders::from_bits(self.loaders.load(Ordering::Relaxed))
    }

    /// A copy of the current leases (for the API and the console).
    pub fn leases(&self) -> Vec<Lease> {
        let guard = self.committer.leases();
        guard.table.iter().cloned().collect()
    }

    /// The `pxedeck_dhcp_leases` samples: per pool range, the addresses
    /// used (bound or offered), quarantined by a DECLINE, and free (neither).
    pub fn lease_samples(&self) -> Vec<(String, u64)> {
        let now = now_millis();
        let guard = self.committer.leases();
        let mut samples = Vec::new();
        for pool in &self.config.dhcp.pools {
            let used = guard.table.used_in(pool) as u64;
            let quarantined = guard.table.quarantined_in(pool, now) as u64;
            let free = u64::from(pool.range_len()).saturating_sub(used + quarantined);
            for (state, n) in [("used", used), ("quarantined", quarantined), ("free", free)] {
                samples.push((format!("{{pool=\"{}\",state=\"{state}\"}}", pool.subnet), n));
            }
        }
        samples
    }

    /// The bound lease on `ip`, if any.
    pub fn bound_lease_at(&self, ip: Ipv4Addr) -> Option<Lease> {
        let guard = self.committer.leases();
        guard
            .table
            .get(ip)
            .filter(|l| l.state == LeaseState::Bound)
            .cloned()
    }

    /// The bound lease of `mac`, if any.
    pub fn bound_lease_of(&self, mac: &Mac) -> Option<Lease> {
        let guard = self.committer.leases();
        guard
            .table
            .of_mac(mac)
            .filter(|l| l.state == LeaseState::Bound)
            .cloned()
    }

    /// Releases a lease on an operator's command. When the journal cannot
    /// record the release, the lease stays (in memory as on disk). Waits for
    /// the sync thread: call off the packet path.
    pub fn release(&self, ip: Ipv4Addr) -> std::io::Result<bool> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut guard = self.committer.leases();
        let Some(mac) = guard.table.get(ip).map(|l| l.mac) else {
            return Ok(false);
        };
        let ticket = guard.next_ticket();
        let Leases { table, journal, .. } = &mut *guard;
        table.begin(ticket);
        let Some(lease) = table.release(ip, &mac) else {
            table.seal(false);
            return Ok(true);
        };
        table.seal(true);
        match journal.append(&[Persist::Release(lease)], table) {
            Err(e) => {
                table.roll_back_newest();
                return Err(e);
            }
            Ok(Appended::Durable) => self.committer.durable_now(&mut guard, ticket),
            Ok(Appended::Written) => {
                let notify: Notify = Box::new(move |_, fate| {
                    let _ = tx.send(fate);
                });
                self.committer.register(&mut guard, ticket, notify);
                drop(guard);
                match rx.recv() {
                    Ok(Fate::Durable) => {}
                    Ok(Fate::Failed(why)) => return Err(std::io::Error::other(why)),
                    Err(_) => return Err(std::io::Error::other("the lease sync thread stopped")),
                }
            }
        }
        self.bus.emit(EventKind::LeaseEnded {
            mac,
            ip,
            why: LeaseEnd::Operator,
        });
        Ok(true)
    }

    /// Expires leases past their time; call periodically.
    pub fn expire(&self) {
        let mut guard = self.committer.leases();
        for l in guard.table.expire(now_millis()) {
            if l.state == LeaseState::Bound {
                self.bus.emit(EventKind::LeaseEnded {
                    mac: l.mac,
                    ip: l.ip,
                    why: LeaseEnd::Expired,
                });
            }
        }
    }

    fn rate_limited(&self, mac: Mac, now: Millis) -> bool {
        let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        if rate.len() > 100_000 {
            rate.retain(|_, (start, _)| now.saturating_sub(*start) < 1000);
        }
        let (start, count) = rate.entry(mac).or_insert((now, 0));
        if now.saturating_sub(*start) >= 1000 {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count > PER_MAC_PER_SECOND
    }

    /// Another server's OFFER or ACK: report it (throttled per server).
    /// Our own replies, seen on the client port, are counted as dropped.
    fn rogue(&self, p: &Packet, now: Millis) {
        let server = p
            .option(opt::SERVER_ID)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(Ipv4Addr::from)
            .unwrap_or(p.siaddr);
        if server == self.config.address {
            self.stats.dropped.bump(Unanswered::ServerMessage);
            return;
        }
        self.stats.rogue_seen.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.rogues.lock().unwrap_or_else(|e| e.into_inner());
        let last = seen.entry(server).or_insert(0);
        if *last != 0 && now.saturating_sub(*last) < ROGUE_REPORT_MS {
            return;
        }
        *last = now;
        warn!(%server, offered = %p.yiaddr, "another DHCP server answered on the segment");
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&p.chaddr[..6]);
        self.bus.emit(EventKind::RogueDhcp {
            server,
            offered: (!p.yiaddr.is_unspecified()).then_some(p.yiaddr),
            mac: Some(Mac(mac)),
        });
    }

    /// Serves one socket until cancelled. `port` says which one it is:
    /// 67 (`Port::Dhcp`), 4011 (`Port::Proxy`).
    pub async fn serve(self: Arc<Self>, socket: UdpSocket, port: Port, cancel: CancellationToken) {
        let local = socket.local_addr().map(|a| a.ip()).ok();
        // Where each datagram arrived (IP_PKTINFO): its reply's source
        // address, option 54 and pool follow it. Without it (a kernel that
        // refuses the option), the socket's or the configured address.
        if let Err(e) = pktinfo::enable(&socket) {
            warn!(error = %e, "no IP_PKTINFO: replies come from the configured address");
        }
        let mut bufs = vec![vec![0u8; 1500]; BATCH];
        let (fates_tx, mut fates) = mpsc::unbounded_channel::<(u64, Fate)>();
        let mut held: VecDeque<Held> = VecDeque::new();
        loop {
            tokio::select! {
                // Durable batches first: their clients have waited longest.
                biased;
                Some((ticket, fate)) = fates.recv() => {
                    let Some(i) = held.iter().position(|h| h.ticket == ticket) else {
                        continue;
                    };
                    if let Some(batch) = held.remove(i) {
                        let replies = self.settle(batch, fate);
                        self.send(&socket, replies).await;
                    }
                }
                first = pktinfo::recv(&socket, &mut bufs[0]), if held.len() < MAX_HELD => {
                    let mut batch: Vec<(usize, SocketAddr)> = Vec::with_capacity(BATCH);
                    let mut arrivals: Vec<Option<Arrival>> = Vec::with_capacity(BATCH);
                    match first {
                        Ok((n, src, at)) => {
                            batch.push((n, src));
                            arrivals.push(at);
                        }
                        Err(e) => {
                            debug!(error = %e, "dhcp recv");
                            continue;
                        }
                    }
                    // Drain whatever else is already waiting, without blocking.
                    while batch.len() < BATCH {
                        match pktinfo::try_recv(&socket, &mut bufs[batch.len()]) {
                            Ok((n, src, at)) => {
                                batch.push((n, src));
                                arrivals.push(at);
                            }
                            Err(_) => break,
                        }
                    }
                    let tx = fates_tx.clone();
                    let notify = Box::new(move |t, fate| {
                        let _ = tx.send((t, fate));
                    });
                    let decided = self.decide_arrived(&bufs, &batch, &arrivals, port, local, notify);
                    held.extend(decided.held);
                    self.send(&socket, decided.now).await;
                }
                _ = cancel.cancelled() => return,
            }
        }
    }

    async fn send(&self, socket: &UdpSocket, replies: Vec<Reply>) {
        for (bytes, to, kind, from) in replies {
            if let Err(e) = pktinfo::send(socket, &bytes, to, from).await {
                debug!(%to, error = %e, "dhcp send");
            } else {
                self.stats.replies.bump(kind);
            }
        }
    }

    /// A held batch's fate is known: its replies to send once durable (and
    /// its events shown), or nothing when the sync failed — the batch was
    /// undone, and its clients retry.
    fn settle(&self, batch: Held, fate: Fate) -> Vec<Reply> {
        match fate {
            Fate::Durable => {
                for event in batch.events {
                    self.bus.emit(event);
                }
                batch.replies
            }
            Fate::Failed(why) => {
                let withheld = batch.replies.len();
                self.stats
                    .dropped
                    .add(Unanswered::LeaseStoreError, withheld as u64);
                self.report_store_error(&why, withheld, now_millis());
                Vec::new()
            }
        }
    }

    /// Decides a batch and appends its lease changes to the journal.
    /// Returns the replies that may leave now, and the part of the batch
    /// that waits for its sync (`notify` hears when). When the journal
    /// cannot be written, the batch did not happen: its lease changes are
    /// rolled back, and neither its replies nor its events go out (clients
    /// retry).
    #[cfg(test)]
    fn decide(
        &self,
        bufs: &[Vec<u8>],
        batch: &[(usize, SocketAddr)],
        port: Port,
        local: Option<IpAddr>,
        notify: Notify,
    ) -> Decided {
        self.decide_arrived(bufs, batch, &[], port, local, notify)
    }

    /// [`DhcpServer::decide`] where `arrivals[i]`, when known, is where
    /// datagram `i` arrived: its request's server address.
    fn decide_arrived(
        &self,
        bufs: &[Vec<u8>],
        batch: &[(usize, SocketAddr)],
        arrivals: &[Option<Arrival>],
        port: Port,
        local: Option<IpAddr>,
        notify: Notify,
    ) -> Decided {
        let now = now_millis();
        let inventory = self.inventory.load();
        let ctx = Ctx {
            mode: self.config.dhcp.mode,
            pools: &self.config.dhcp.pools,
            inventory: &inventory,
            unknown: &self.config.unknown,
            unknown_gets_address: self.config.unknown_gets_address,
            unknown_chain: self.config.unknown_chain,
            server_ip: match local {
                Some(IpAddr::V4(ip)) if !ip.is_unspecified() => ip,
                _ => self.config.address,
            },
            http_base: &self.http_base,
            loaders: self.loaders(),
            firmware_lease_ms: self
                .config
                .dhcp
                .firmware_lease_time
                .map(|d| d.as_millis() as Millis),
            port,
            now,
        };
        let mut guard = self.committer.leases();
        let ticket = guard.next_ticket();
        let Leases { table, journal, .. } = &mut *guard;
        table.begin(ticket);
        let mut outcomes = Vec::with_capacity(batch.len());
        for (i, (buf, &(len, src))) in bufs.iter().zip(batch).enumerate() {
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            let Some(datagram) = buf.get(..len) else {
                continue;
            };
            let packet = match Packet::decode(datagram) {
                Ok(p) => p,
                Err(e) => {
                    self.stats.dropped.bump(e.into());
                    continue;
                }
            };
            let req = match classify(&packet) {
                Ok(r) => r,
                Err(Reject::ServerMessage(_)) => {
                    self.rogue(&packet, now);
                    continue;
                }
                Err(r) => {
                    self.stats.dropped.bump(r.into());
                    continue;
                }
            };
            if self.rate_limited(req.mac, now) {
                self.stats.dropped.bump(Unanswered::RateLimited);
                continue;
            }
            self.stats.requests.bump(req.message);
            // The address the datagram came to is this request's server
            // address (option 54, next-server, its segment's pool).
            let arrived = arrivals.get(i).copied().flatten();
            let ctx = Ctx {
                server_ip: arrived
                    .map(|a| a.local)
                    .filter(|ip| !ip.is_unspecified())
                    .unwrap_or(ctx.server_ip),
                ..ctx
            };
            let outcome = handle(&req, src, table, &ctx);
            if let Some(why) = outcome.silent {
                self.stats.dropped.bump(why);
            }
            outcomes.push((outcome, (src, arrived)));
        }
        let mut persist = Vec::new();
        let mut waits = Vec::with_capacity(outcomes.len());
        for (outcome, _) in &mut outcomes {
            let change = outcome.persist.take();
            waits.push(change.is_some());
            persist.extend(change);
        }
        table.seal(!persist.is_empty());
        let appended = journal.append(&persist, table);
        if let Err(e) = appended {
            // Without a durable lease no ACK may go out, and the console must
            // not show bindings that do not exist: the batch never happened.
            table.roll_back_newest();
            drop(guard);
            let withheld = outcomes.iter().filter(|(o, _)| o.reply.is_some()).count();
            self.stats
                .dropped
                .add(Unanswered::LeaseStoreError, withheld as u64);
            self.report_store_error(&e.to_string(), withheld, now);
            return Decided {
                now: Vec::new(),
                held: None,
            };
        }
        let mut decided = Decided {
            now: Vec::new(),
            held: None,
        };
        if !persist.is_empty() {
            match appended {
                Ok(Appended::Durable) => self.committer.durable_now(&mut guard, ticket),
                _ => {
                    self.committer.register(&mut guard, ticket, notify);
                    decided.held = Some(Held {
                        ticket,
                        replies: Vec::new(),
                        events: Vec::new(),
                    });
                }
            }
        }
        drop(guard);
        for ((outcome, (src, arrived)), waits) in outcomes.into_iter().zip(waits) {
            let reply = outcome.reply.as_ref().map(|r| {
                self.stats
                    .options_dropped
                    .fetch_add(r.dropped_options.len() as u64, Ordering::Relaxed);
                (r.packet.encode(), route(r.to, src), r.kind, arrived)
            });
            match &mut decided.held {
                Some(held) if waits => {
                    held.replies.extend(reply);
                    held.events.extend(events_of(outcome));
                }
                _ => {
                    decided.now.extend(reply);
                    for event in events_of(outcome) {
                        self.bus.emit(event);
                    }
                }
            }
        }
        decided
    }

    /// Tells the operator the lease journal failed: first time, then at most
    /// every [`STORE_ERROR_REPORT_MS`].
    fn report_store_error(&self, e: &str, withheld: usize, now: Millis) {
        warn!(error = %e, withheld, "cannot persist leases; withholding replies");
        let last = self.store_error_reported.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < STORE_ERROR_REPORT_MS {
            return;
        }
        self.store_error_reported
            .store(now.max(1), Ordering::Relaxed);
        self.bus.emit(EventKind::Log {
            level: Level::Error,
            target: "dhcp".into(),
            message: format!(
                "cannot write the lease file {}: {e}; DHCP answers withheld until it can",
                self.config.dhcp.lease_file.display()
            ),
        });
    }
}

/// The events one decided request makes, in the order the console expects
/// them: what was seen, what happened to addresses, what was answered.
fn events_of(outcome: Outcome) -> Vec<EventKind> {
    let Outcome {
        seen, reply, lease, ..
    } = outcome;
    let mac = seen.mac;
    let mut events = vec![EventKind::DhcpSeen(seen)];
    events.extend(lease.map(|news| match news {
        LeaseNews::Bound { lease, hostname } => EventKind::LeaseBound {
            mac,
            ip: lease.ip,
            hostname,
            expires: lease.expires,
            fixed: lease.fixed,
        },
        LeaseNews::Ended { ip, why } => EventKind::LeaseEnded { mac, ip, why },
        LeaseNews::PoolExhausted { subnet } => EventKind::PoolExhausted { subnet, mac },
    }));
    events.extend(reply.map(|r| EventKind::DhcpReplied {
        mac,
        reply: r.kind,
        ip: r.ip,
        boot_file: r.boot_file,
        proxy: r.proxy,
    }));
    events
}

/// Loopback has no broadcast domain: replies to a client on loopback (the
/// demo, the simulator, tests) go back to its source address.
fn route(dest: Destination, src: SocketAddr) -> SocketAddr {
    match dest {
        Destination::Broadcast | Destination::Client(_) if src.ip().is_loopback() => src,
        other => other.addr(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::wire::msg;
    use crate::inventory::Inventory;
    use arc_swap::ArcSwap;
    use std::sync::atomic::AtomicBool;

    /// A journal that fails while `failing` is set (its writes, or with
    /// `at_sync` its syncs), and keeps what it was given once synced. Like
    /// the file journal, an empty append never fails.
    struct Flaky {
        failing: Arc<AtomicBool>,
        at_sync: Arc<AtomicBool>,
        written: Arc<Mutex<Vec<Persist>>>,
        kept: Arc<Mutex<Vec<Persist>>>,
    }

    impl LeaseJournal for Flaky {
        fn append(&mut self, changes: &[Persist], _: &LeaseTable) -> std::io::Result<Appended> {
            if changes.is_empty() {
                return Ok(Appended::Written);
            }
            if self.failing.load(Ordering::Relaxed) && !self.at_sync.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("no space left on device"));
            }
            self.written.lock().unwrap().extend_from_slice(changes);
            Ok(Appended::Written)
        }

        fn syncer(&self) -> std::io::Result<crate::dhcp::store::Syncer> {
            let fails =
                self.failing.load(Ordering::Relaxed) && self.at_sync.load(Ordering::Relaxed);
            let (written, kept) = (self.written.clone(), self.kept.clone());
            Ok(Box::new(move || {
                let mut written = written.lock().unwrap();
                if fails {
                    written.clear();
                    return Err(std::io::Error::other("input/output error"));
                }
                kept.lock().unwrap().append(&mut written);
                Ok(())
            }))
        }
    }

    struct Rig {
        server: DhcpServer,
        events: tokio::sync::broadcast::Receiver<Arc<crate::event::Event>>,
        failing: Arc<AtomicBool>,
        at_sync: Arc<AtomicBool>,
        kept: Arc<Mutex<Vec<Persist>>>,
    }

    fn rig() -> Rig {
        let config = Config::from_text(
            "server:\n  address: 127.0.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.110\n",
            None,
        )
        .unwrap();
        let inventory = Inventory::empty(std::path::Path::new("/nonexistent"));
        let bus = Bus::default();
        let events = bus.subscribe();
        let failing = Arc::new(AtomicBool::new(false));
        let at_sync = Arc::new(AtomicBool::new(false));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let journal = Flaky {
            failing: failing.clone(),
            at_sync: at_sync.clone(),
            written: Arc::default(),
            kept: kept.clone(),
        };
        let server = DhcpServer::with_journal(
            Arc::new(config),
            Arc::new(ArcSwap::from_pointee(inventory)),
            bus,
            "http://127.0.0.1:8080".into(),
            Box::new(|_: &str| true),
            (LeaseTable::default(), Box::new(journal)),
        );
        Rig {
            server,
            events,
            failing,
            at_sync,
            kept,
        }
    }

    const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6800);

    fn discover(mac: u8) -> Packet {
        Packet::client_request([2, 0, 0, 0, 0, mac], 1, msg::DISCOVER)
    }

    fn request(mac: u8, ip: Ipv4Addr) -> Packet {
        let mut p = Packet::client_request([2, 0, 0, 0, 0, mac], 2, msg::REQUEST);
        p.set_option(opt::SERVER_ID, [127, 0, 0, 1]);
        p.set_option(opt::REQUESTED_IP, ip.octets());
        p
    }

    impl Rig {
        /// Decides one batch and waits for its sync; returns the replies
        /// that left, decoded: those sent at once, then the held ones.
        fn batch(&self, packets: &[Packet]) -> Vec<Packet> {
            let (now, settled) = self.batch_in_two(packets);
            now.into_iter().chain(settled).collect()
        }

        /// As [`Rig::batch`], the replies sent at once apart from those
        /// that waited for the sync.
        fn batch_in_two(&self, packets: &[Packet]) -> (Vec<Packet>, Vec<Packet>) {
            let bufs: Vec<Vec<u8>> = packets.iter().map(Packet::encode).collect();
            let batch: Vec<(usize, SocketAddr)> = bufs.iter().map(|b| (b.len(), CLIENT)).collect();
            decide_and_settle(
                &self.server,
                &bufs,
                &batch,
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            )
        }

        fn drain_events(&mut self) -> Vec<EventKind> {
            std::iter::from_fn(|| self.events.try_recv().ok())
                .map(|e| e.kind.clone())
                .collect()
        }

        fn lease_of(&self, mac: u8) -> Option<Lease> {
            let guard = self.server.committer.leases();
            guard.table.of_mac(&Mac([2, 0, 0, 0, 0, mac])).cloned()
        }
    }

    fn decode(replies: Vec<Reply>) -> Vec<Packet> {
        replies
            .into_iter()
            .map(|(bytes, _, _, _)| Packet::decode(&bytes).unwrap())
            .collect()
    }

    /// What the socket loop does with one batch, synchronously.
    fn decide_and_settle(
        server: &DhcpServer,
        bufs: &[Vec<u8>],
        batch: &[(usize, SocketAddr)],
        local: Option<IpAddr>,
    ) -> (Vec<Packet>, Vec<Packet>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let notify: Notify = Box::new(move |_, fate| {
            let _ = tx.send(fate);
        });
        let decided = server.decide(bufs, batch, Port::Dhcp, local, notify);
        let settled = decided.held.map(|held| {
            let fate = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the sync thread tells every batch its fate");
            server.settle(held, fate)
        });
        (decode(decided.now), decode(settled.unwrap_or_default()))
    }

    #[test]
    fn a_failed_sync_withholds_replies_and_events_and_rolls_the_table_back() {
        let mut rig = rig();
        let offer = rig.batch(&[discover(1)]).remove(0);
        assert_eq!(offer.message_type(), Some(msg::OFFER));
        rig.drain_events();
        let offered = rig.lease_of(1).expect("an offer is held");

        rig.failing.store(true, Ordering::Relaxed);
        let replies = rig.batch(&[request(1, offer.yiaddr), discover(2)]);
        assert!(replies.is_empty(), "no reply of the batch leaves");
        let events = rig.drain_events();
        assert!(
            matches!(
                &events[..],
                [EventKind::Log {
                    level: Level::Error,
                    ..
                }]
            ),
            "only the operator is told: {events:?}"
        );
        assert_eq!(rig.lease_of(1), Some(offered), "the binding is undone");
        assert_eq!(rig.lease_of(2), None, "so is the other client's offer");
        assert_eq!(rig.server.stats.dropped.get(Unanswered::LeaseStoreError), 2);
        assert!(rig.kept.lock().unwrap().is_empty());
        assert_eq!(rig.server.stats.replies.total(), 0);

        // The disk is back: the client's retry is bound and shown.
        rig.failing.store(false, Ordering::Relaxed);
        let ack = rig.batch(&[request(1, offer.yiaddr)]).remove(0);
        assert_eq!(
            (ack.message_type(), ack.yiaddr),
            (Some(msg::ACK), offer.yiaddr)
        );
        assert_eq!(rig.lease_of(1).map(|l| l.state), Some(LeaseState::Bound));
        assert!(
            rig.drain_events()
                .iter()
                .any(|e| matches!(e, EventKind::LeaseBound { ip, .. } if *ip == offer.yiaddr))
        );
        assert!(
            matches!(&rig.kept.lock().unwrap()[..], [Persist::Bind(l)] if l.ip == offer.yiaddr)
        );
    }

    #[test]
    fn a_failed_sync_undoes_the_batch_but_its_offers_have_left() {
        let mut rig = rig();
        let offer = rig.batch(&[discover(1)]).remove(0);
        rig.drain_events();
        let offered = rig.lease_of(1).expect("an offer is held");

        rig.failing.store(true, Ordering::Relaxed);
        rig.at_sync.store(true, Ordering::Relaxed);
        let (now, settled) = rig.batch_in_two(&[request(1, offer.yiaddr), discover(2)]);
        assert!(
            matches!(&now[..], [o] if o.message_type() == Some(msg::OFFER) && o.chaddr[5] == 2),
            "the offer needs nothing durable and left at once: {now:?}"
        );
        assert!(settled.is_empty(), "the ACK never leaves");
        let events = rig.drain_events();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, EventKind::LeaseBound { .. })),
            "no binding is shown: {events:?}"
        );
        assert!(events.iter().any(|e| matches!(
            e,
            EventKind::Log {
                level: Level::Error,
                ..
            }
        )));
        assert_eq!(rig.lease_of(1), Some(offered), "the binding is undone");
        assert_eq!(rig.server.stats.dropped.get(Unanswered::LeaseStoreError), 1);
        assert!(rig.kept.lock().unwrap().is_empty());

        rig.failing.store(false, Ordering::Relaxed);
        let ack = rig.batch(&[request(1, offer.yiaddr)]).remove(0);
        assert_eq!(ack.message_type(), Some(msg::ACK));
        assert!(
            matches!(&rig.kept.lock().unwrap()[..], [Persist::Bind(l)] if l.ip == offer.yiaddr)
        );
    }

    /// A journal whose syncs wait at a gate, to hold a batch mid-sync.
    struct Gated {
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }

    impl LeaseJournal for Gated {
        fn append(&mut self, _: &[Persist], _: &LeaseTable) -> std::io::Result<Appended> {
            Ok(Appended::Written)
        }

        fn syncer(&self) -> std::io::Result<crate::dhcp::store::Syncer> {
            let gate = self.gate.clone();
            Ok(Box::new(move || {
                let (open, cv) = &*gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                Ok(())
            }))
        }
    }

    #[test]
    fn offers_and_later_batches_do_not_wait_for_a_sync_in_flight() {
        let rig = rig();
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let server = DhcpServer::with_journal(
            rig.server.config.clone(),
            rig.server.inventory.clone(),
            Bus::default(),
            "http://127.0.0.1:8080".into(),
            Box::new(|_: &str| true),
            (
                LeaseTable::default(),
                Box::new(Gated { gate: gate.clone() }),
            ),
        );
        let one = |p: &Packet| {
            let buf = vec![p.encode()];
            let batch = vec![(buf[0].len(), CLIENT)];
            (buf, batch)
        };
        let local = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let (buf, batch) = one(&discover(1));
        let (offers, _) = decide_and_settle(&server, &buf, &batch, local);
        // The REQUEST's ACK is held while its sync waits at the gate...
        let (tx, rx) = std::sync::mpsc::channel();
        let (buf, batch) = one(&request(1, offers[0].yiaddr));
        let first = server.decide(
            &buf,
            &batch,
            Port::Dhcp,
            local,
            Box::new(move |t, f| {
                let _ = tx.send((t, f));
            }),
        );
        assert!(first.now.is_empty() && first.held.is_some());
        // ...and meanwhile other batches are decided and answered, one of
        // them durable too (it joins the next sync).
        let (buf, batch) = one(&discover(2));
        let second_offer = server.decide(&buf, &batch, Port::Dhcp, local, Box::new(|_, _| {}));
        assert_eq!(
            decode(second_offer.now).len(),
            1,
            "an OFFER leaves mid-sync"
        );
        let (tx2, rx2) = std::sync::mpsc::channel();
        let offer2 = server
            .committer
            .leases()
            .table
            .of_mac(&Mac([2, 0, 0, 0, 0, 2]))
            .map(|l| l.ip)
            .unwrap();
        let (buf, batch) = one(&request(2, offer2));
        let third = server.decide(
            &buf,
            &batch,
            Port::Dhcp,
            local,
            Box::new(move |t, f| {
                let _ = tx2.send((t, f));
            }),
        );
        assert!(third.held.is_some());
        assert!(
            rx.try_recv().is_err(),
            "not durable before the sync returns"
        );
        assert_eq!(server.committer.leases().table.pending(), 2);
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
        let wait = std::time::Duration::from_secs(10);
        let (t1, f1) = rx.recv_timeout(wait).unwrap();
        let (t3, f3) = rx2.recv_timeout(wait).unwrap();
        assert_eq!((f1, f3), (Fate::Durable, Fate::Durable));
        assert!(t1 < t3, "tickets follow the order of decisions");
        let acks = decode(server.settle(first.held.unwrap(), Fate::Durable));
        assert_eq!(acks[0].message_type(), Some(msg::ACK));
        assert_eq!(server.committer.leases().table.pending(), 0);
    }

    #[test]
    fn an_operator_release_that_cannot_be_recorded_keeps_the_lease() {
        let mut rig = rig();
        let offer = rig.batch(&[discover(1)]).remove(0);
        rig.batch(&[request(1, offer.yiaddr)]);
        rig.drain_events();
        rig.failing.store(true, Ordering::Relaxed);
        assert!(rig.server.release(offer.yiaddr).is_err());
        assert!(rig.server.bound_lease_at(offer.yiaddr).is_some());
        assert!(rig.drain_events().is_empty());
        rig.failing.store(false, Ordering::Relaxed);
        assert!(rig.server.release(offer.yiaddr).unwrap());
        assert!(rig.server.bound_lease_at(offer.yiaddr).is_none());
    }

    #[test]
    fn counters_count_requests_by_type_and_drops_by_reason() {
        let rig = rig();
        let offer = rig.batch(&[discover(1), discover(2)]);
        rig.batch(&[request(1, offer[0].yiaddr)]);
        let bufs = vec![vec![0u8; 10]];
        decide_and_settle(&rig.server, &bufs, &[(10, CLIENT)], None);
        let s = &rig.server.stats;
        assert_eq!(s.received.load(Ordering::Relaxed), 4);
        assert_eq!(
            (
                s.requests.get(DhcpMessage::Discover),
                s.requests.get(DhcpMessage::Request)
            ),
            (2, 1)
        );
        assert_eq!(s.dropped.get(Unanswered::TooShort), 1);
    }

    #[test]
    fn loaders_are_probed_up_front_and_on_refresh_only() {
        let calls = Arc::new(AtomicU64::new(0));
        let present = Arc::new(AtomicBool::new(false));
        let rig = rig();
        let (c, p) = (calls.clone(), present.clone());
        let server = DhcpServer::with_journal(
            rig.server.config.clone(),
            rig.server.inventory.clone(),
            Bus::default(),
            "http://127.0.0.1:8080".into(),
            Box::new(move |name: &str| {
                c.fetch_add(1, Ordering::Relaxed);
                p.load(Ordering::Relaxed) && name == crate::boot::decide::LOADER_UEFI_X64
            }),
            (LeaseTable::default(), Box::new(LeaseTableOnly)),
        );
        let probed = calls.load(Ordering::Relaxed);
        assert!(probed > 0 && !server.loaders().contains("ipxe.efi"));
        let pxe = |mac| {
            let mut d = discover(mac);
            d.set_option(opt::CLASS_ID, b"PXEClient:Arch:00007:UNDI:003016".to_vec());
            d.set_option(opt::CLIENT_ARCH, [0, 7]);
            d.encode()
        };
        let bufs = vec![pxe(1), pxe(2)];
        let batch: Vec<_> = bufs.iter().map(|b| (b.len(), CLIENT)).collect();
        let (replies, _) = decide_and_settle(&server, &bufs, &batch, None);
        assert_eq!(calls.load(Ordering::Relaxed), probed, "no disk per packet");
        let offer = &replies[0];
        assert_eq!(offer.option(opt::BOOTFILE), None, "no loader yet");
        present.store(true, Ordering::Relaxed);
        server.refresh_loaders();
        let (replies, _) = decide_and_settle(&server, &bufs, &batch, None);
        let offer = &replies[0];
        assert_eq!(offer.option(opt::BOOTFILE), Some(&b"ipxe.efi"[..]));
    }

    /// A journal that keeps nothing (offers are never persisted anyway).
    struct LeaseTableOnly;

    impl LeaseJournal for LeaseTableOnly {
        fn append(&mut self, _: &[Persist], _: &LeaseTable) -> std::io::Result<Appended> {
            Ok(Appended::Written)
        }

        fn syncer(&self) -> std::io::Result<crate::dhcp::store::Syncer> {
            Ok(Box::new(|| Ok(())))
        }
    }
}
