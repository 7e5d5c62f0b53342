//! The DHCP sockets: a thin async shell around [`super::handler`].
//!
//! Each pass drains up to [`BATCH`] waiting datagrams, decides them all,
//! makes every lease change durable with one fsync (group commit), and only
//! then sends the replies — no ACK leaves before its lease is on disk. The
//! inventory is read lock-free from the shared snapshot; nothing here waits
//! on templates or the console.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::classify::{Reject, classify};
use super::handler::{Ctx, Destination, Persist, Port, handle};
use super::leases::LeaseTable;
use super::store::LeaseStore;
use super::wire::{Packet, opt};
use crate::clock::{Millis, now_millis};
use crate::config::Config;
use crate::dhcp::LeaseEnd;
use crate::event::{Bus, EventKind};
use crate::ident::Mac;
use crate::inventory::SharedInventory;

/// Datagrams decided per pass (and per fsync).
pub const BATCH: usize = 64;
/// Packets one MAC may send per second before the rest are dropped.
pub const PER_MAC_PER_SECOND: u32 = 20;
/// A rogue server is reported at most this often.
const ROGUE_REPORT_MS: Millis = 60_000;

#[derive(Default)]
pub struct DhcpStats {
    pub received: AtomicU64,
    pub replies: AtomicU64,
    /// Requests not answered or dropped, by reason.
    pub dropped: Mutex<BTreeMap<&'static str, u64>>,
    pub rogue_seen: AtomicU64,
}

impl DhcpStats {
    fn drop(&self, why: &'static str) {
        *self
            .dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(why)
            .or_default() += 1;
    }
}

struct Leases {
    table: LeaseTable,
    store: LeaseStore,
}

pub struct DhcpServer {
    config: Arc<Config>,
    inventory: SharedInventory,
    leases: Mutex<Leases>,
    bus: Bus,
    pub stats: DhcpStats,
    http_base: String,
    loader_exists: Box<dyn Fn(&str) -> bool + Send + Sync>,
    rate: Mutex<HashMap<Mac, (Millis, u32)>>,
    rogues: Mutex<HashMap<Ipv4Addr, Millis>>,
}

impl DhcpServer {
    /// Opens the lease file and builds the server.
    pub fn new(
        config: Arc<Config>,
        inventory: SharedInventory,
        bus: Bus,
        http_base: String,
        loader_exists: Box<dyn Fn(&str) -> bool + Send + Sync>,
    ) -> std::io::Result<DhcpServer> {
        let (store, table, replayed) = LeaseStore::open(&config.dhcp.lease_file, now_millis())?;
        debug!(?replayed, file = %config.dhcp.lease_file.display(), "leases restored");
        Ok(DhcpServer {
            config,
            inventory,
            leases: Mutex::new(Leases { table, store }),
            bus,
            stats: DhcpStats::default(),
            http_base,
            loader_exists,
            rate: Mutex::new(HashMap::new()),
            rogues: Mutex::new(HashMap::new()),
        })
    }

    /// A copy of the current leases (for the API and the console).
    pub fn leases(&self) -> Vec<super::leases::Lease> {
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        guard.table.iter().cloned().collect()
    }

    /// (subnet, addresses in use, addresses in the range) per pool.
    pub fn pool_usage(&self) -> Vec<(String, usize, u32)> {
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        self.config
            .dhcp
            .pools
            .iter()
            .map(|p| (p.subnet.to_string(), guard.table.used_in(p), p.range_len()))
            .collect()
    }

    /// The bound lease on `ip`, if any.
    pub fn bound_lease_at(&self, ip: Ipv4Addr) -> Option<super::leases::Lease> {
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .table
            .get(ip)
            .filter(|l| l.state == super::leases::LeaseState::Bound)
            .cloned()
    }

    /// The bound lease of `mac`, if any.
    pub fn bound_lease_of(&self, mac: &Mac) -> Option<super::leases::Lease> {
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .table
            .of_mac(mac)
            .filter(|l| l.state == super::leases::LeaseState::Bound)
            .cloned()
    }

    /// Releases a lease on an operator's command.
    pub fn release(&self, ip: Ipv4Addr) -> std::io::Result<bool> {
        let mut guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mac) = guard.table.get(ip).map(|l| l.mac) else {
            return Ok(false);
        };
        let Leases { table, store } = &mut *guard;
        if let Some(l) = table.release(ip, &mac) {
            store.commit(&[Persist::Release(l)], table)?;
            self.bus.emit(EventKind::LeaseEnded {
                mac,
                ip,
                why: LeaseEnd::Operator,
            });
        }
        Ok(true)
    }

    /// Expires leases past their time; call periodically.
    pub fn expire(&self) {
        let mut guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        for l in guard.table.expire(now_millis()) {
            if l.state == super::leases::LeaseState::Bound {
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
    fn rogue(&self, p: &Packet, now: Millis) {
        let server = p
            .option(opt::SERVER_ID)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(Ipv4Addr::from)
            .unwrap_or(p.siaddr);
        if server == self.config.address {
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
        let mut bufs = vec![vec![0u8; 1500]; BATCH];
        loop {
            let first = tokio::select! {
                r = socket.recv_from(&mut bufs[0]) => r,
                _ = cancel.cancelled() => return,
            };
            let mut batch: Vec<(usize, SocketAddr)> = Vec::with_capacity(BATCH);
            match first {
                Ok(x) => batch.push(x),
                Err(e) => {
                    debug!(error = %e, "dhcp recv");
                    continue;
                }
            }
            // Drain whatever else is already waiting, without blocking.
            while batch.len() < BATCH {
                match socket.try_recv_from(&mut bufs[batch.len()]) {
                    Ok(x) => batch.push(x),
                    Err(_) => break,
                }
            }
            let replies = self.decide(&bufs, &batch, port, local);
            for (bytes, to) in replies {
                if let Err(e) = socket.send_to(&bytes, to).await {
                    debug!(%to, error = %e, "dhcp send");
                } else {
                    self.stats.replies.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Decides a batch and commits its lease changes; returns what to send.
    fn decide(
        &self,
        bufs: &[Vec<u8>],
        batch: &[(usize, SocketAddr)],
        port: Port,
        local: Option<std::net::IpAddr>,
    ) -> Vec<(Vec<u8>, SocketAddr)> {
        let now = now_millis();
        let inventory = self.inventory.load();
        let server_ip = match local {
            Some(std::net::IpAddr::V4(ip)) if !ip.is_unspecified() => ip,
            _ => self.config.address,
        };
        let firmware_lease_ms = self
            .config
            .dhcp
            .firmware_lease_time
            .map(|d| d.as_millis() as Millis);
        let mut guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut persist = Vec::new();
        let mut events = Vec::new();
        for (i, &(len, src)) in batch.iter().enumerate() {
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            let packet = match Packet::decode(&bufs[i][..len]) {
                Ok(p) => p,
                Err(e) => {
                    self.stats.drop(e.label());
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
                    self.stats.drop(r.label());
                    continue;
                }
            };
            if self.rate_limited(req.mac, now) {
                self.stats.drop("rate_limited");
                continue;
            }
            let ctx = Ctx {
                mode: self.config.dhcp.mode,
                pools: &self.config.dhcp.pools,
                inventory: &inventory,
                unknown: &self.config.unknown,
                unknown_gets_address: self.config.unknown_gets_address,
                server_ip,
                http_base: &self.http_base,
                loader_exists: &*self.loader_exists,
                firmware_lease_ms,
                port,
                now,
            };
            let outcome = handle(&req, src, &mut guard.table, &ctx);
            if let Some(why) = outcome.silent {
                self.stats.drop(why);
            }
            persist.extend(outcome.persist);
            events.extend(outcome.events);
            if let Some((reply, dest)) = outcome.reply {
                out.push((reply.encode(), route(dest, src)));
            }
        }
        let Leases { table, store } = &mut *guard;
        if let Err(e) = store.commit(&persist, table) {
            // Without a durable lease no ACK may go out: drop the batch's
            // ACKs; clients retry.
            warn!(error = %e, "cannot persist leases; withholding ACKs");
            self.stats.drop("lease_store_error");
            out.clear();
        }
        drop(guard);
        for e in events {
            self.bus.emit(e);
        }
        out
    }
}

/// Loopback has no broadcast domain: replies to a client on loopback (the
/// demo, the simulator, tests) go back to its source address.
fn route(dest: Destination, src: SocketAddr) -> SocketAddr {
    match dest {
        Destination::Broadcast | Destination::Client(_) if src.ip().is_loopback() => src,
        other => other.addr(),
    }
}
