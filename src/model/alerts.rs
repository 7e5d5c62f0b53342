//! Every alert the console raises, decided here from the model's state and
//! a time, and each cleared when its cause ends.
//!
//! | alert               | raised when                             | cleared when                          |
//! |---------------------|-----------------------------------------|---------------------------------------|
//! | rogue DHCP server   | another server answers                  | it has been quiet for 10 minutes      |
//! | pool exhausted      | a DISCOVER finds no free address        | the pool hands out a new address      |
//! | inventory errors    | a reload fails                          | a reload succeeds                     |
//! | pool nearly full    | ≥ 90 % of a pool of ≥ 10 is leased      | leases drop below that (or it is out) |
//! | transfer failures   | ≥ 5 transfers failed in the last minute | fewer did                             |
//! | machines stuck      | a machine idles past its stage timeout  | it moves on, fails, or leaves         |
//! | auto-adopt refused  | an `auto` rule's adoption was refused   | none refused for 10 minutes           |

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::Model;
use super::stage::Stuck;
use crate::clock::Millis;
use crate::event::{Level, PoolInfo};

/// Refused auto-adoptions raise an alert until none was for this long.
pub const AUTO_REFUSED_QUIET_MS: Millis = 10 * 60 * 1000;
/// A rogue server quiet this long no longer raises an alert.
pub const ROGUE_QUIET_MS: Millis = 10 * 60 * 1000;
/// Rogue servers remembered at most: answers with spoofed sources must not
/// grow the model without bound. The longest quiet one makes room.
pub const ROGUE_SERVERS_KEPT: usize = 64;
/// Failed transfers count towards the alert for this long.
pub const FAILURE_WINDOW_MS: Millis = 60 * 1000;
/// Failed transfers within the window that raise the alert.
pub const FAILURES_ALERT: usize = 5;
/// A pool this full (in percent) raises the alert…
pub const POOL_NEARLY_FULL_PERCENT: u64 = 90;
/// …if it has at least this many addresses (a tiny lab pool is always full).
pub const POOL_NEARLY_FULL_MIN_SIZE: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alert {
    RogueDhcp {
        server: Ipv4Addr,
        count: u64,
    },
    PoolExhausted {
        subnet: String,
    },
    InventoryErrors {
        count: usize,
    },
    PoolNearlyFull {
        subnet: String,
        percent: u64,
    },
    TransferFailures {
        count: usize,
    },
    /// Machines idle past their stage's timeout; `first` (hostname, else
    /// MAC) is the one stuck longest, and `stuck` says where.
    MachinesStuck {
        count: usize,
        first: String,
        stuck: Stuck,
    },
    /// Auto-adoptions refused since start (past the bound per minute, or
    /// the write refused).
    AutoAdoptRefused {
        count: u64,
    },
}

/// Another DHCP server seen answering on the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RogueServer {
    /// Answers seen since pxedeck started.
    pub count: u64,
    pub last_seen: Millis,
}

impl RogueServer {
    fn quiet_at(&self, now: Millis) -> bool {
        now.saturating_sub(self.last_seen) >= ROGUE_QUIET_MS
    }
}

impl Model {
    pub(super) fn auto_adopt_refused(
        &mut self,
        at: Millis,
        mac: crate::ident::Mac,
        rule: &str,
        reason: &str,
        refused: u64,
    ) {
        self.auto_refused = self.auto_refused.max(refused);
        self.auto_refused_at = Some(at);
        let line =
            format!("auto-adopt of {mac} by rule {rule} refused: {reason} ({refused} so far)");
        self.log(at, Level::Warn, "inventory", line);
    }

    pub(super) fn rogue_dhcp(&mut self, at: Millis, server: Ipv4Addr, offered: Option<Ipv4Addr>) {
        if self.rogue_servers.len() >= ROGUE_SERVERS_KEPT
            && !self.rogue_servers.contains_key(&server)
            && let Some(quietest) = self
                .rogue_servers
                .iter()
                .min_by_key(|(_, seen)| seen.last_seen)
                .map(|(&ip, _)| ip)
        {
            self.rogue_servers.remove(&quietest);
        }
        let seen = self.rogue_servers.entry(server).or_insert(RogueServer {
            count: 0,
            last_seen: at,
        });
        // Logged when its alert starts: first sight, or back after quiet.
        let starts = seen.count == 0 || seen.quiet_at(at);
        seen.count += 1;
        seen.last_seen = seen.last_seen.max(at);
        if starts {
            let what = offered.map_or(String::new(), |o| format!(" offering {o}"));
            let line = format!("another DHCP server {server} answered{what}");
            self.log(at, Level::Warn, "dhcp", line);
        }
    }

    /// The alerts to show at `now` (the console's clock, or the newest
    /// event's time), most urgent first. Reads no clock itself.
    pub fn alerts(&self, now: Millis) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .rogue_servers
            .iter()
            .filter(|(_, seen)| !seen.quiet_at(now))
            .map(|(&server, seen)| Alert::RogueDhcp {
                server,
                count: seen.count,
            })
            .collect();
        out.extend(
            self.exhausted_pools
                .iter()
                .map(|s| Alert::PoolExhausted { subnet: s.clone() }),
        );
        if !self.inventory.problems.is_empty() {
            out.push(Alert::InventoryErrors {
                count: self.inventory.problems.len(),
            });
        }
        if let Some(server) = &self.server {
            out.extend(server.pools.iter().filter_map(|p| self.nearly_full(p, now)));
        }
        let failures = self
            .recent
            .iter()
            .filter(|t| t.failure().is_some())
            .filter(|t| {
                t.finished()
                    .is_some_and(|f| now.saturating_sub(f) < FAILURE_WINDOW_MS)
            })
            .count();
        if self
            .auto_refused_at
            .is_some_and(|t| now.saturating_sub(t) < AUTO_REFUSED_QUIET_MS)
        {
            out.push(Alert::AutoAdoptRefused {
                count: self.auto_refused,
            });
        }
        if failures >= FAILURES_ALERT {
            out.push(Alert::TransferFailures { count: failures });
        }
        let stuck = self.stuck_machines(now);
        if let Some((m, s)) = stuck.iter().max_by_key(|(_, s)| s.idle) {
            out.push(Alert::MachinesStuck {
                count: stuck.len(),
                first: m.hostname.clone().unwrap_or_else(|| m.mac.to_string()),
                stuck: *s,
            });
        }
        out
    }

    /// The nearly-full alert for a pool, unless it is already out.
    fn nearly_full(&self, pool: &PoolInfo, now: Millis) -> Option<Alert> {
        let size =
            u64::from(u32::from(pool.last)).saturating_sub(u64::from(u32::from(pool.first))) + 1;
        // Offers and quarantines hold an address only until they run out.
        let used = self
            .leases
            .range(pool.first..=pool.last)
            .filter(|(_, l)| l.kind == super::LeaseKind::Bound || l.expires > now)
            .count() as u64;
        let full = used * 100 >= size * POOL_NEARLY_FULL_PERCENT;
        (size >= POOL_NEARLY_FULL_MIN_SIZE && full && !self.exhausted_pools.contains(&pool.subnet))
            .then(|| Alert::PoolNearlyFull {
                subnet: pool.subnet.clone(),
                percent: used * 100 / size,
            })
    }
}
