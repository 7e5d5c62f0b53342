//! The DHCP sockets: a thin async shell around [`super::handler`] that
//! turns its outcomes into events and counts every datagram in
//! [`DhcpStats`].
//!
//! Each pass drains up to [`BATCH`] waiting datagrams, decides them all
//! with one context, makes every lease change durable with one fsync (group
//! commit), and only then sends the replies and emits the events — no ACK
//! leaves, and no binding is shown, before its lease is on disk. The
//! inventory is read lock-free from the shared snapshot and the loader set
//! from an atomic; nothing here waits on templates, the disk or the console
//! per packet.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::classify::{Reject, classify};
use super::handler::{Ctx, Destination, LeaseNews, Outcome, Persist, Port, handle};
use super::leases::{Lease, LeaseState, LeaseTable};
use super::loaders::Loaders;
use super::pktinfo::{self, Arrival};
use super::store::{LeaseJournal, LeaseStore};
use super::wire::{Packet, opt};
use super::{DhcpMessage, DhcpReply, LeaseEnd, Unanswered};
use crate::clock::{Millis, now_millis};
use crate::config::Config;
use crate::counters::Counts;
use crate::event::{Bus, EventKind, Level};
use crate::ident::Mac;
use crate::inventory::SharedInventory;

/// Datagrams decided per pass (and per fsync).
pub const BATCH: usize = 64;
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

struct Leases {
    table: LeaseTable,
    journal: Box<dyn LeaseJournal>,
}

/// Answers whether a loader file exists; run off the packet path.
pub type LoaderProbe = Box<dyn Fn(&str) -> bool + Send + Sync>;

pub struct DhcpServer {
    config: Arc<Config>,
    inventory: SharedInventory,
    leases: Mutex<Leases>,
    bus: Bus,
    pub stats: DhcpStats,
    http_base: String,
    loader_probe: LoaderProbe,
    /// The last probe's [`Loaders`], as bits.
    loaders: AtomicU8,
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
        debug!(?replayed, file = %config.dhcp.lease_file.display(), "leases restored");
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
            leases: Mutex::new(Leases { table, journal }),
            bus,
            stats: DhcpStats::default(),
            http_base,
            loader_probe,
            loaders: AtomicU8::new(0),
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
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        guard.table.iter().cloned().collect()
    }

    /// The `pxedeck_dhcp_leases` samples: per pool range, the addresses
    /// used (bound or offered), quarantined by a DECLINE, and free (neither).
    pub fn lease_samples(&self) -> Vec<(String, u64)> {
        let now = now_millis();
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
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
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .table
            .get(ip)
            .filter(|l| l.state == LeaseState::Bound)
            .cloned()
    }

    /// The bound lease of `mac`, if any.
    pub fn bound_lease_of(&self, mac: &Mac) -> Option<Lease> {
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .table
            .of_mac(mac)
            .filter(|l| l.state == LeaseState::Bound)
            .cloned()
    }

    /// Releases a lease on an operator's command. When the journal cannot
    /// record the release, the lease stays (in memory as on disk).
    pub fn release(&self, ip: Ipv4Addr) -> std::io::Result<bool> {
        let mut guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mac) = guard.table.get(ip).map(|l| l.mac) else {
            return Ok(false);
        };
        let Leases { table, journal } = &mut *guard;
        table.begin();
        if let Some(l) = table.release(ip, &mac) {
            if let Err(e) = journal.commit(&[Persist::Release(l)], table) {
                table.roll_back();
                return Err(e);
            }
            self.bus.emit(EventKind::LeaseEnded {
                mac,
                ip,
                why: LeaseEnd::Operator,
            });
        }
        table.keep();
        Ok(true)
    }

    /// Expires leases past their time; call periodically.
    pub fn expire(&self) {
        let mut guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
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
        loop {
            let first = tokio::select! {
                r = pktinfo::recv(&socket, &mut bufs[0]) => r,
                _ = cancel.cancelled() => return,
            };
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
            let replies = self.decide_each(&bufs, &batch, port, local, &arrivals);
            for (bytes, to, kind, i) in replies {
                let from = arrivals.get(i).copied().flatten();
                if let Err(e) = pktinfo::send(&socket, &bytes, to, from).await {
                    debug!(%to, error = %e, "dhcp send");
                } else {
                    self.stats.replies.bump(kind);
                }
            }
        }
    }

    /// [`DhcpServer::decide_each`] for datagrams that all arrived on `local`.
    #[cfg(test)]
    fn decide(
        &self,
        bufs: &[Vec<u8>],
        batch: &[(usize, SocketAddr)],
        port: Port,
        local: Option<IpAddr>,
    ) -> Vec<(Vec<u8>, SocketAddr, DhcpReply)> {
        self.decide_each(bufs, batch, port, local, &[])
            .into_iter()
            .map(|(bytes, to, kind, _)| (bytes, to, kind))
            .collect()
    }

    /// Decides a batch and commits its lease changes; returns what to send.
    /// When the journal cannot be synced, the batch did not happen: its
    /// lease changes are rolled back, and neither its replies nor its events
    /// go out (clients retry).
    /// `arrivals[i]`, when known, is where datagram `i` arrived: its
    /// server address. Returns each reply with the index of its request.
    fn decide_each(
        &self,
        bufs: &[Vec<u8>],
        batch: &[(usize, SocketAddr)],
        port: Port,
        local: Option<IpAddr>,
        arrivals: &[Option<Arrival>],
    ) -> Vec<(Vec<u8>, SocketAddr, DhcpReply, usize)> {
        let now = now_millis();
        let inventory = self.inventory.load();
        let ctx = Ctx {
            mode: self.config.dhcp.mode,
            pools: &self.config.dhcp.pools,
            inventory: &inventory,
            unknown: &self.config.unknown,
            unknown_gets_address: self.config.unknown_gets_address,
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
        let mut guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let Leases { table, journal } = &mut *guard;
        table.begin();
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
            let arrived = arrivals.get(i).copied().flatten().map(|a| a.local);
            let ctx = Ctx {
                server_ip: arrived
                    .filter(|ip| !ip.is_unspecified())
                    .unwrap_or(ctx.server_ip),
                ..ctx
            };
            let outcome = handle(&req, src, table, &ctx);
            if let Some(why) = outcome.silent {
                self.stats.dropped.bump(why);
            }
            outcomes.push((outcome, src, i));
        }
        let persist: Vec<Persist> = outcomes
            .iter_mut()
            .filter_map(|(o, _, _)| o.persist.take())
            .collect();
        if let Err(e) = journal.commit(&persist, table) {
            // Without a durable lease no ACK may go out, and the console must
            // not show bindings that do not exist: the batch never happened.
            table.roll_back();
            drop(guard);
            let withheld = outcomes
                .iter()
                .filter(|(o, _, _)| o.reply.is_some())
                .count();
            self.stats
                .dropped
                .add(Unanswered::LeaseStoreError, withheld as u64);
            self.report_store_error(&e, withheld, now);
            return Vec::new();
        }
        table.keep();
        drop(guard);
        let mut replies = Vec::new();
        for (outcome, src, i) in outcomes {
            if let Some(r) = &outcome.reply {
                self.stats
                    .options_dropped
                    .fetch_add(r.dropped_options.len() as u64, Ordering::Relaxed);
                replies.push((r.packet.encode(), route(r.to, src), r.kind, i));
            }
            for event in events_of(outcome) {
                self.bus.emit(event);
            }
        }
        replies
    }

    /// Tells the operator the lease journal failed: first time, then at most
    /// every [`STORE_ERROR_REPORT_MS`].
    fn report_store_error(&self, e: &std::io::Error, withheld: usize, now: Millis) {
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

    /// A journal that fails while `failing` is set, and keeps what it was
    /// given otherwise. Like the file journal, an empty commit never fails.
    struct Flaky {
        failing: Arc<AtomicBool>,
        kept: Arc<Mutex<Vec<Persist>>>,
    }

    impl LeaseJournal for Flaky {
        fn commit(&mut self, changes: &[Persist], _: &LeaseTable) -> std::io::Result<()> {
            if changes.is_empty() {
                return Ok(());
            }
            if self.failing.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("no space left on device"));
            }
            self.kept.lock().unwrap().extend_from_slice(changes);
            Ok(())
        }
    }

    struct Rig {
        server: DhcpServer,
        events: tokio::sync::broadcast::Receiver<Arc<crate::event::Event>>,
        failing: Arc<AtomicBool>,
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
        let kept = Arc::new(Mutex::new(Vec::new()));
        let journal = Flaky {
            failing: failing.clone(),
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
        /// Decides one batch; returns the replies, decoded.
        fn batch(&self, packets: &[Packet]) -> Vec<Packet> {
            let bufs: Vec<Vec<u8>> = packets.iter().map(Packet::encode).collect();
            let batch: Vec<(usize, SocketAddr)> = bufs.iter().map(|b| (b.len(), CLIENT)).collect();
            let local = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
            self.server
                .decide(&bufs, &batch, Port::Dhcp, local)
                .into_iter()
                .map(|(bytes, _, _)| Packet::decode(&bytes).unwrap())
                .collect()
        }

        fn drain_events(&mut self) -> Vec<EventKind> {
            std::iter::from_fn(|| self.events.try_recv().ok())
                .map(|e| e.kind.clone())
                .collect()
        }

        fn lease_of(&self, mac: u8) -> Option<Lease> {
            let guard = self.server.leases.lock().unwrap();
            guard.table.of_mac(&Mac([2, 0, 0, 0, 0, mac])).cloned()
        }
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
        rig.server.decide(&bufs, &[(10, CLIENT)], Port::Dhcp, None);
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
        let replies = server.decide(&bufs, &batch, Port::Dhcp, None);
        assert_eq!(calls.load(Ordering::Relaxed), probed, "no disk per packet");
        let offer = Packet::decode(&replies[0].0).unwrap();
        assert_eq!(offer.option(opt::BOOTFILE), None, "no loader yet");
        present.store(true, Ordering::Relaxed);
        server.refresh_loaders();
        let replies = server.decide(&bufs, &batch, Port::Dhcp, None);
        let offer = Packet::decode(&replies[0].0).unwrap();
        assert_eq!(offer.option(opt::BOOTFILE), Some(&b"ipxe.efi"[..]));
    }

    /// A journal that keeps nothing (offers are never persisted anyway).
    struct LeaseTableOnly;

    impl LeaseJournal for LeaseTableOnly {
        fn commit(&mut self, _: &[Persist], _: &LeaseTable) -> std::io::Result<()> {
            Ok(())
        }
    }
}
