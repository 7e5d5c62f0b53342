//! Leases by address, each MAC's one lease, and exhausted pools: the fold
//! of binds, ends and "no free address".

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::Model;
use super::timeline::StepKind;
use crate::clock::Millis;
use crate::dhcp::LeaseEnd;
use crate::ident::Mac;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRow {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub hostname: Option<String>,
    pub fixed: bool,
    pub expires: Millis,
    /// Offered, bound, or declined (quarantined until `expires`).
    #[serde(default)]
    pub kind: LeaseKind,
    /// When it was offered, bound or declined: with `expires`, how long
    /// it was granted for.
    #[serde(default)]
    pub since: Millis,
}

/// What the server did with an address, as the fold saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    /// Held for a client that has not yet asked for it (OFFER).
    Offered,
    #[default]
    Bound,
    /// The client said it is in use (DECLINE): out of use until `expires`.
    Declined,
}

/// A lease's state at a time, as the Leases view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    Offered,
    Bound,
    /// Bound, with less than a quarter of its time left.
    Expiring,
    Expired,
    Quarantined,
}

impl LeaseState {
    pub fn label(self) -> &'static str {
        match self {
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Expiring => "expiring",
            LeaseState::Expired => "expired",
            LeaseState::Quarantined => "quarantined",
        }
    }
}

impl LeaseRow {
    pub fn state(&self, now: Millis) -> LeaseState {
        let left = self.expires.saturating_sub(now);
        let granted = self.expires.saturating_sub(self.since);
        match self.kind {
            _ if left == 0 => LeaseState::Expired,
            LeaseKind::Offered => LeaseState::Offered,
            LeaseKind::Declined => LeaseState::Quarantined,
            LeaseKind::Bound if left.saturating_mul(4) < granted => LeaseState::Expiring,
            LeaseKind::Bound => LeaseState::Bound,
        }
    }
}

/// Whether `ip` belongs to the pool named `subnet` (as the DHCP server
/// names it: `10.99.0.0/24`). A name that does not parse matches nothing.
fn in_subnet(subnet: &str, ip: Ipv4Addr) -> bool {
    subnet.parse::<Ipv4Net>().is_ok_and(|net| net.contains(&ip))
}

impl Model {
    /// Rebuilds the MAC → lease address index: the one place it is built.
    pub(super) fn index_leases(&mut self) {
        self.lease_of = self.leases.values().map(|l| (l.mac, l.ip)).collect();
    }

    pub(super) fn lease_bound(&mut self, lease: LeaseRow) {
        let (mac, ip) = (lease.mac, lease.ip);
        let previous = self.lease_of.insert(mac, ip);
        if let Some(old) = previous
            && old != ip
            && self.leases.get(&old).is_some_and(|l| l.mac == mac)
        {
            self.leases.remove(&old);
        }
        // A pool that hands out an address it did not hold for this MAC
        // has room again. A renewal proves nothing, and a fixed address
        // does not come from the pool.
        if previous != Some(ip) && !lease.fixed {
            self.exhausted_pools.retain(|subnet| !in_subnet(subnet, ip));
        }
        self.leases.insert(ip, lease);
        self.row(mac).ip = Some(ip);
    }

    /// An OFFER holds the address for the client: shown as offered until
    /// it binds (or the hold runs out). A proxyDHCP answer gives nothing.
    pub(super) fn lease_offered(&mut self, at: Millis, mac: Mac, ip: Ipv4Addr) {
        let taken = self
            .leases
            .get(&ip)
            .is_some_and(|l| l.kind != LeaseKind::Offered && l.expires > at);
        if taken {
            return;
        }
        self.leases.insert(
            ip,
            LeaseRow {
                ip,
                mac,
                hostname: None,
                fixed: false,
                expires: at + crate::dhcp::handler::OFFER_HOLD_MS,
                kind: LeaseKind::Offered,
                since: at,
            },
        );
    }

    pub(super) fn lease_ended(&mut self, at: Millis, mac: Mac, ip: Ipv4Addr, why: LeaseEnd) {
        if self.leases.get(&ip).is_some_and(|l| l.mac == mac) {
            self.leases.remove(&ip);
            self.lease_of.remove(&mac);
            // A declined address stays listed while it is out of use.
            if why == LeaseEnd::Declined {
                let until = at + crate::dhcp::handler::DECLINE_QUARANTINE_MS;
                self.leases.insert(
                    ip,
                    LeaseRow {
                        ip,
                        mac,
                        hostname: None,
                        fixed: false,
                        expires: until,
                        kind: LeaseKind::Declined,
                        since: at,
                    },
                );
            }
        }
        if let Some(row) = self.existing_row(mac) {
            row.step(at, StepKind::LeaseEnded { ip, why }, false);
        }
    }

    pub(super) fn pool_exhausted(&mut self, at: Millis, subnet: &str, mac: Mac) {
        if !self.exhausted_pools.iter().any(|s| s == subnet) {
            self.exhausted_pools.push(subnet.to_string());
        }
        let row = self.row(mac);
        let step = StepKind::NoFreeAddress {
            subnet: subnet.to_string(),
        };
        row.step(at, step, true);
        row.last_error = Some(format!("pool {subnet} exhausted"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_named_by_its_subnet() {
        let ip = Ipv4Addr::new(10, 99, 0, 7);
        assert!(in_subnet("10.99.0.0/24", ip));
        assert!(!in_subnet("10.98.0.0/24", ip));
        assert!(!in_subnet("not a subnet", ip));
    }
}
