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
    /// With several interfaces, each one's `http://<address>[:port]`: a
    /// machine's boot URLs name the address of its segment.
    http_bases: Vec<(Ipv4Addr, String)>,
    /// The listed interfaces (`interfaces:`); empty with one interface.
    listed: crate::dhcp::pktinfo::Listed,
    loader_probe: LoaderProbe,
    /// The last probe's [`Loaders`], as bits.
    loaders: AtomicU16,
    rate: Mutex<HashMap<Mac, (Millis, u32)>>,
    rogues: Mutex<HashMap<Ipv4Addr, Millis>>,
    /// The UUID each MAC last sent in option 97, for the HTTP side.
    seen: crate::dhcp::seen::SeenClients,
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
        let listed = crate::dhcp::pktinfo::Listed::resolve(&config.interfaces)?;
        Ok(DhcpServer {
            listed,
            ..DhcpServer::with_journal(
                config,
                inventory,
                bus,
                http_base,
                loader_probe,
                (table, Box::new(store)),
            )
        })
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
        let http_bases = interface_bases(&config, &http_base);
        let server = DhcpServer {
            http_bases,
            listed: Default::default(),
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
            seen: Default::default(),
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

    /// The UUID `mac` last sent in option 97 (RFC 4578), if any.
    pub fn seen_uuid(&self, mac: &Mac) -> Option<crate::ident::Uuid> {
        self.seen.get(mac).and_then(|s| s.uuid)
    }

    /// What `mac`'s last request said of it (`dhcp::seen`), if any.
    pub fn seen(&self, mac: &Mac) -> Option<crate::dhcp::seen::Seen> {
        self.seen.get(mac)
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
            let server_ip = if self.listed.is_empty() || req.relay.is_some() {
                arrived
                    .map(|a| a.local)
                    .filter(|ip| !ip.is_unspecified())
                    .unwrap_or(ctx.server_ip)
            } else {
                // Several interfaces: only the listed ones are served
                // directly (a relay's request may come in on any).
                match arrived.and_then(|a| self.listed.serving(a)) {
                    Some(ip) => ip,
                    None => {
                        self.stats.dropped.bump(Unanswered::NotOurInterface);
                        continue;
                    }
                }
            };
            // Only netbooting clients are matched against rules or known
            // by UUID; an office laptop's renewals skip the table's lock.
            if req.uuid.is_some() || req.is_boot_client() {
                self.seen.record(
                    req.mac,
                    crate::dhcp::seen::Seen {
                        uuid: req.uuid,
                        firmware: req.firmware,
                        segment: Some(req.relay.unwrap_or(server_ip)),
                        relay: req.relay,
                        agent: req
                            .relay_agent
                            .as_ref()
                            .map(crate::dhcp::RelayAgentSeen::of),
                    },
                );
            }
            // Several interfaces: the mode and boot URLs of the one the
            // request came to.
            let (mode, http_base) = if self.http_bases.is_empty() {
                (ctx.mode, ctx.http_base)
            } else {
                (
                    self.config.dhcp_mode_at(server_ip),
                    self.http_bases
                        .iter()
                        .find(|(ip, _)| *ip == server_ip)
                        .map_or(ctx.http_base, |(_, base)| base.as_str()),
                )
            };
            let ctx = Ctx {
                server_ip,
                mode,
                http_base,
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

/// Each listed interface's base URL: `http_base` with the interface's
/// address in place of the main one (same scheme and port).
fn interface_bases(config: &Config, http_base: &str) -> Vec<(Ipv4Addr, String)> {
    let main = format!("http://{}", config.address);
    let Some(port) = http_base.strip_prefix(&main) else {
        return Vec::new();
    };
    config
        .interfaces
        .iter()
        .map(|i| (i.address, format!("http://{}{port}", i.address)))
        .collect()
}

#[cfg(test)]
mod tests;
