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

    pub(super) fn lease_ended(&mut self, at: Millis, mac: Mac, ip: Ipv4Addr, why: LeaseEnd) {
        if self.leases.get(&ip).is_some_and(|l| l.mac == mac) {
            self.leases.remove(&ip);
            self.lease_of.remove(&mac);
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
