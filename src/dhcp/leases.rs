//! Address allocation: pools, static reservations, offers and bindings.
//!
//! Pure and clock-free (times are passed in). Invariants, tested with
//! proptest: an address is held by at most one MAC; a MAC holds at most one
//! address; an address reserved for a machine in the inventory is never
//! given to anyone else. Dynamic addresses are stable per MAC: a client gets
//! its previous address back, and a new client starts its search at a point
//! derived from its MAC, so even a lost lease file hands out the same
//! addresses again.
//!
//! Batches of changes can be undone ([`LeaseTable::begin`] …
//! [`LeaseTable::roll_back`]): when the journal cannot be synced, the table
//! must not keep bindings no client was told about and no disk holds. Several
//! batches may wait for their sync at once (the socket loop decides the next
//! batch while the last one is being synced), so each keeps its own undo
//! frame until it is durable ([`LeaseTable::keep_through`]).

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::config::Pool;
use crate::ident::Mac;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Offered, not yet requested: held briefly so two DISCOVERs do not
    /// get the same address.
    Offered,
    Bound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub state: LeaseState,
    pub expires: Millis,
    /// A static reservation from the inventory.
    pub fixed: bool,
}

/// Who an address is reserved for, from the inventory's `ip:` keys.
pub trait Reservations {
    /// The owner of `ip` when it is reserved for a machine other than the
    /// one with `mac` (a machine with two NICs owns its address on both).
    fn reserved_for_other(&self, ip: Ipv4Addr, mac: &Mac) -> Option<Mac>;
    fn reservation_of(&self, mac: &Mac) -> Option<Ipv4Addr>;
}

impl Reservations for HashMap<Mac, Ipv4Addr> {
    fn reserved_for_other(&self, ip: Ipv4Addr, mac: &Mac) -> Option<Mac> {
        let owners: Vec<Mac> = self
            .iter()
            .filter(|(_, r)| **r == ip)
            .map(|(m, _)| *m)
            .collect();
        (!owners.is_empty() && !owners.contains(mac)).then(|| owners[0])
    }
    fn reservation_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.get(mac).copied()
    }
}

impl Reservations for crate::inventory::Inventory {
    fn reserved_for_other(&self, ip: Ipv4Addr, mac: &Mac) -> Option<Mac> {
        let owner = self.by_ip(ip)?;
        (!owner.macs.contains(mac)).then(|| owner.macs.first().copied().unwrap_or_default())
    }
    fn reservation_of(&self, mac: &Mac) -> Option<Ipv4Addr> {
        self.by_mac(mac).and_then(|m| m.ip)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseError {
    /// The address is held by another MAC.
    Taken {
        by: Mac,
    },
    /// The address is reserved for another machine.
    Reserved {
        for_mac: Mac,
    },
    OutsidePool,
}

/// Why a DECLINE quarantined nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineRefused {
    /// The sender holds no offer or lease on the address.
    NotHeld,
    /// The address is reserved for another machine.
    ReservedFor(Mac),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct LeaseTable {
    by_ip: HashMap<Ipv4Addr, Lease>,
    by_mac: HashMap<Mac, Ipv4Addr>,
    /// The last address each MAC had, kept after expiry for stability.
    last: HashMap<Mac, Ipv4Addr>,
    /// Declined addresses, unusable until the given time.
    quarantine: HashMap<Ipv4Addr, Millis>,
    /// Batches decided but not yet durable, oldest first: each batch's
    /// ticket and the previous value of every entry it changed, oldest
    /// first. Undoing costs what the batches changed, not a copy of the
    /// table.
    frames: VecDeque<Frame>,
    /// Whether changes are being recorded into the newest frame.
    recording: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Frame {
    ticket: u64,
    undo: Vec<Undo>,
}

/// One entry as it was before a change.
#[derive(Debug, Clone, PartialEq)]
enum Undo {
    ByIp(Ipv4Addr, Option<Lease>),
    ByMac(Mac, Option<Ipv4Addr>),
    Last(Mac, Option<Ipv4Addr>),
    Quarantine(Ipv4Addr, Option<Millis>),
}

fn restore_entry<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, old: Option<V>) {
    match old {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    };
}

fn start_offset(mac: &Mac, len: u32) -> u32 {
    let mut h = DefaultHasher::new();
    mac.hash(&mut h);
    (h.finish() % u64::from(len)) as u32
}

impl LeaseTable {
    /// Starts recording the changes of the batch `ticket` in a frame of
    /// its own, so that [`LeaseTable::roll_back`] can undo them.
    pub fn begin(&mut self, ticket: u64) {
        self.frames.push_back(Frame {
            ticket,
            undo: Vec::new(),
        });
        self.recording = true;
    }

    /// Stops recording; the batch's frame waits for
    /// [`LeaseTable::keep_through`] or [`LeaseTable::roll_back`]. A batch
    /// that changed nothing durable (`durable: false`: offers only) needs no
    /// sync of its own: its frame joins the one before it, so it is kept or
    /// undone with that batch, or kept now when none is waiting.
    pub fn seal(&mut self, durable: bool) {
        self.recording = false;
        if durable {
            return;
        }
        if let Some(last) = self.frames.pop_back()
            && let Some(before) = self.frames.back_mut()
        {
            before.undo.extend(last.undo);
        }
    }

    /// Keeps the changes of every batch up to `ticket`: they are durable.
    pub fn keep_through(&mut self, ticket: u64) {
        while self.frames.front().is_some_and(|f| f.ticket <= ticket) {
            self.frames.pop_front();
        }
    }

    /// The batches waiting for their sync.
    pub fn pending(&self) -> usize {
        self.frames.len()
    }

    /// Undoes every batch not yet kept, newest first, and stops recording.
    /// All of them: a later batch was decided on top of the earlier ones.
    pub fn roll_back(&mut self) {
        self.recording = false;
        while let Some(frame) = self.frames.pop_back() {
            self.undo(frame);
        }
    }

    /// Undoes only the newest batch (one that never reached the journal).
    pub fn roll_back_newest(&mut self) {
        self.recording = false;
        if let Some(frame) = self.frames.pop_back() {
            self.undo(frame);
        }
    }

    fn undo(&mut self, frame: Frame) {
        for entry in frame.undo.into_iter().rev() {
            match entry {
                Undo::ByIp(ip, old) => restore_entry(&mut self.by_ip, ip, old),
                Undo::ByMac(mac, old) => restore_entry(&mut self.by_mac, mac, old),
                Undo::Last(mac, old) => restore_entry(&mut self.last, mac, old),
                Undo::Quarantine(ip, old) => restore_entry(&mut self.quarantine, ip, old),
            }
        }
    }

    fn record(&mut self, entry: impl FnOnce(&Self) -> Undo) {
        if self.recording {
            let entry = entry(self);
            if let Some(frame) = self.frames.back_mut() {
                frame.undo.push(entry);
            }
        }
    }

    fn set_ip(&mut self, ip: Ipv4Addr, lease: Option<Lease>) -> Option<Lease> {
        self.record(|t| Undo::ByIp(ip, t.by_ip.get(&ip).cloned()));
        match lease {
            Some(l) => self.by_ip.insert(ip, l),
            None => self.by_ip.remove(&ip),
        }
    }

    fn set_mac(&mut self, mac: Mac, ip: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        self.record(|t| Undo::ByMac(mac, t.by_mac.get(&mac).copied()));
        match ip {
            Some(ip) => self.by_mac.insert(mac, ip),
            None => self.by_mac.remove(&mac),
        }
    }

    fn set_last(&mut self, mac: Mac, ip: Option<Ipv4Addr>) {
        self.record(|t| Undo::Last(mac, t.last.get(&mac).copied()));
        match ip {
            Some(ip) => self.last.insert(mac, ip),
            None => self.last.remove(&mac),
        };
    }

    fn set_quarantine(&mut self, ip: Ipv4Addr, until: Option<Millis>) {
        self.record(|t| Undo::Quarantine(ip, t.quarantine.get(&ip).copied()));
        match until {
            Some(until) => self.quarantine.insert(ip, until),
            None => self.quarantine.remove(&ip),
        };
    }

    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }

    pub fn of_mac(&self, mac: &Mac) -> Option<&Lease> {
        self.by_mac.get(mac).and_then(|ip| self.by_ip.get(ip))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Bound and offered addresses in a pool's range.
    pub fn used_in(&self, pool: &Pool) -> usize {
        self.by_ip
            .keys()
            .filter(|ip| pool.range_contains(**ip))
            .count()
    }

    /// Whether `mac` may take `ip` now.
    fn usable(
        &self,
        ip: Ipv4Addr,
        mac: &Mac,
        reservations: &dyn Reservations,
        now: Millis,
    ) -> Result<(), LeaseError> {
        if let Some(l) = self.by_ip.get(&ip)
            && l.mac != *mac
            && l.expires > now
        {
            return Err(LeaseError::Taken { by: l.mac });
        }
        if let Some(owner) = reservations.reserved_for_other(ip, mac) {
            return Err(LeaseError::Reserved { for_mac: owner });
        }
        if self.quarantine.get(&ip).is_some_and(|&until| until > now) {
            return Err(LeaseError::Taken { by: Mac::default() });
        }
        Ok(())
    }

    /// Picks the address for `mac` in `pool`: its reservation, its current
    /// or last address, the address it asks for, else the first free one
    /// from a MAC-derived starting point. None when the pool is exhausted.
    pub fn choose(
        &self,
        pool: &Pool,
        mac: &Mac,
        requested: Option<Ipv4Addr>,
        reservations: &dyn Reservations,
        now: Millis,
    ) -> Option<Ipv4Addr> {
        if let Some(fixed) = reservations
            .reservation_of(mac)
            .filter(|ip| pool.contains(*ip))
        {
            return self
                .usable(fixed, mac, reservations, now)
                .is_ok()
                .then_some(fixed);
        }
        let mine = [
            self.by_mac.get(mac).copied(),
            self.last.get(mac).copied(),
            requested,
        ];
        for ip in mine.into_iter().flatten() {
            if pool.range_contains(ip) && self.usable(ip, mac, reservations, now).is_ok() {
                return Some(ip);
            }
        }
        let len = pool.range_len();
        let start = u32::from(pool.range_start);
        let offset = start_offset(mac, len);
        (0..len)
            .map(|i| Ipv4Addr::from(start + (offset + i) % len))
            .find(|&ip| self.usable(ip, mac, reservations, now).is_ok())
    }

    /// Records `lease` (an offer or a binding) of its address to its MAC.
    /// Whatever `mac` held before is let go.
    pub fn hold(
        &mut self,
        lease: Lease,
        reservations: &dyn Reservations,
        now: Millis,
    ) -> Result<(), LeaseError> {
        let (ip, mac) = (lease.ip, lease.mac);
        self.usable(ip, &mac, reservations, now)?;
        if let Some(old) = self.by_ip.get(&ip).map(|l| l.mac)
            && old != mac
        {
            // Expired lease of someone else: reclaim it.
            self.set_mac(old, None);
        }
        if let Some(prev) = self.set_mac(mac, Some(ip))
            && prev != ip
        {
            self.set_ip(prev, None);
        }
        self.set_ip(ip, Some(lease));
        self.set_last(mac, Some(ip));
        Ok(())
    }

    /// The client gave its address back (DHCPRELEASE, or an operator).
    pub fn release(&mut self, ip: Ipv4Addr, mac: &Mac) -> Option<Lease> {
        if self.by_ip.get(&ip).is_some_and(|l| l.mac == *mac) {
            self.set_mac(*mac, None);
            return self.set_ip(ip, None);
        }
        None
    }

    /// The client found the address in use (DHCPDECLINE): quarantine it
    /// until `until` and return the offer or lease it had.
    ///
    /// DHCP carries no proof of who sent a packet, so the one thing a
    /// DECLINE can be checked against is the table: only the MAC that holds
    /// the address now (an unexpired offer or lease) may give it back this
    /// way, and never an address reserved for another machine. Anyone else
    /// could otherwise take a whole pool, reservations included, out of use
    /// with one packet per address.
    pub fn decline(
        &mut self,
        ip: Ipv4Addr,
        mac: &Mac,
        reservations: &dyn Reservations,
        now: Millis,
        until: Millis,
    ) -> Result<Lease, DeclineRefused> {
        if let Some(owner) = reservations.reserved_for_other(ip, mac) {
            return Err(DeclineRefused::ReservedFor(owner));
        }
        let held = self
            .by_ip
            .get(&ip)
            .is_some_and(|l| l.mac == *mac && l.expires > now);
        if !held {
            return Err(DeclineRefused::NotHeld);
        }
        let lease = self.release(ip, mac).ok_or(DeclineRefused::NotHeld)?;
        self.set_last(*mac, None);
        self.set_quarantine(ip, Some(until));
        Ok(lease)
    }

    /// Addresses of a pool's range that a DECLINE keeps out of use now.
    pub fn quarantined_in(&self, pool: &Pool, now: Millis) -> usize {
        self.quarantine
            .iter()
            .filter(|&(ip, &until)| until > now && pool.range_contains(*ip))
            .count()
    }

    /// Removes leases past their expiry and returns them.
    pub fn expire(&mut self, now: Millis) -> Vec<Lease> {
        let gone: Vec<Ipv4Addr> = self
            .by_ip
            .values()
            .filter(|l| l.expires <= now)
            .map(|l| l.ip)
            .collect();
        let free_again: Vec<Ipv4Addr> = self
            .quarantine
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in free_again {
            self.set_quarantine(ip, None);
        }
        gone.into_iter()
            .filter_map(|ip| {
                let l = self.set_ip(ip, None)?;
                self.set_mac(l.mac, None);
                Some(l)
            })
            .collect()
    }

    /// Restores a lease read from disk (no checks beyond consistency: the
    /// last record for an address or a MAC wins).
    pub fn restore(&mut self, lease: Lease) {
        if let Some(old) = self.set_ip(lease.ip, None) {
            self.set_mac(old.mac, None);
        }
        if let Some(prev) = self.set_mac(lease.mac, Some(lease.ip)) {
            self.set_ip(prev, None);
        }
        self.set_last(lease.mac, Some(lease.ip));
        self.set_ip(lease.ip, Some(lease));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool(range: (u8, u8)) -> Pool {
        crate::config::Config::from_text(
            &format!(
                "dhcp:\n  pools:\n    - subnet: 10.1.0.0/24\n      range: 10.1.0.{}-10.1.0.{}\n",
                range.0, range.1
            ),
            None,
        )
        .unwrap()
        .dhcp
        .pools
        .remove(0)
    }

    fn mac(n: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, n])
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn bound(ip: Ipv4Addr, mac: Mac, expires: Millis) -> Lease {
        Lease {
            ip,
            mac,
            state: LeaseState::Bound,
            expires,
            fixed: false,
        }
    }

    fn none() -> HashMap<Mac, Ipv4Addr> {
        HashMap::new()
    }

    #[test]
    fn a_client_gets_the_same_address_back() {
        let p = pool((10, 200));
        let mut t = LeaseTable::default();
        let got = t.choose(&p, &mac(1), None, &none(), 0).unwrap();
        t.hold(bound(got, mac(1), 1000), &none(), 0).unwrap();
        assert_eq!(t.choose(&p, &mac(1), None, &none(), 10), Some(got));
        t.expire(5000);
        assert!(t.is_empty());
        assert_eq!(
            t.choose(&p, &mac(1), None, &none(), 5000),
            Some(got),
            "after expiry too"
        );
        // Even with no history (a lost lease file) the search starts at the same point.
        assert_eq!(
            LeaseTable::default().choose(&p, &mac(1), None, &none(), 0),
            Some(got)
        );
    }

    #[test]
    fn reservations_win_and_are_never_given_away() {
        let p = pool((10, 12));
        let mut res = HashMap::new();
        res.insert(mac(9), ip("10.1.0.11"));
        let mut t = LeaseTable::default();
        for n in 1..=2 {
            let got = t
                .choose(&p, &mac(n), Some(ip("10.1.0.11")), &res, 0)
                .unwrap();
            assert_ne!(got, ip("10.1.0.11"));
            t.hold(bound(got, mac(n), 100), &res, 0).unwrap();
        }
        assert_eq!(
            t.choose(&p, &mac(3), None, &res, 0),
            None,
            "pool exhausted: the reserved address is not free"
        );
        assert_eq!(t.choose(&p, &mac(9), None, &res, 0), Some(ip("10.1.0.11")));
        assert_eq!(
            t.hold(bound(ip("10.1.0.11"), mac(3), 100), &res, 0),
            Err(LeaseError::Reserved { for_mac: mac(9) })
        );
    }

    #[test]
    fn declined_addresses_are_quarantined() {
        let p = pool((10, 11));
        let mut t = LeaseTable::default();
        let first = t.choose(&p, &mac(1), None, &none(), 0).unwrap();
        t.hold(bound(first, mac(1), 100), &none(), 0).unwrap();
        assert_eq!(t.quarantined_in(&p, 10), 0);
        assert!(t.decline(first, &mac(1), &none(), 10, 1000).is_ok());
        assert_eq!(t.quarantined_in(&p, 10), 1);
        assert_ne!(t.choose(&p, &mac(1), None, &none(), 10), Some(first));
        assert_eq!(
            t.choose(&p, &mac(1), Some(first), &none(), 2000),
            Some(first),
            "usable again after the quarantine"
        );
    }

    #[test]
    fn expired_leases_are_reclaimed() {
        let p = pool((10, 10));
        let mut t = LeaseTable::default();
        t.hold(bound(ip("10.1.0.10"), mac(1), 100), &none(), 0)
            .unwrap();
        assert_eq!(t.choose(&p, &mac(2), None, &none(), 50), None);
        assert_eq!(
            t.choose(&p, &mac(2), None, &none(), 150),
            Some(ip("10.1.0.10"))
        );
        t.hold(bound(ip("10.1.0.10"), mac(2), 300), &none(), 150)
            .unwrap();
        assert_eq!(t.of_mac(&mac(1)), None);
        assert_eq!(t.of_mac(&mac(2)).unwrap().ip, ip("10.1.0.10"));
    }

    proptest! {
        #[test]
        fn a_rolled_back_batch_leaves_the_table_as_it_was(
            before in proptest::collection::vec((1u8..12, 0u8..3), 0..20),
            batch in proptest::collection::vec((0u8..5, 1u8..12), 1..40),
        ) {
            let p = pool((10, 17));
            let mut t = LeaseTable::default();
            for (m, state) in before {
                if let Some(got) = t.choose(&p, &mac(m), None, &none(), 0) {
                    let state = if state == 0 { LeaseState::Offered } else { LeaseState::Bound };
                    let lease = Lease { ip: got, mac: mac(m), state, expires: 100, fixed: false };
                    t.hold(lease, &none(), 0).unwrap();
                }
            }
            let saved = t.clone();
            t.begin(1);
            for (op, m) in batch {
                let who = mac(m);
                match op {
                    0 | 1 => {
                        if let Some(got) = t.choose(&p, &who, None, &none(), 50) {
                            let _ = t.hold(bound(got, who, 500), &none(), 50);
                        }
                    }
                    2 => {
                        if let Some(l) = t.of_mac(&who).cloned() {
                            t.release(l.ip, &who);
                        }
                    }
                    3 => {
                        if let Some(l) = t.of_mac(&who).cloned() {
                            let _ = t.decline(l.ip, &who, &none(), 50, 1000);
                        }
                    }
                    _ => {
                        t.expire(150);
                    }
                }
            }
            t.roll_back();
            prop_assert_eq!(t, saved);
        }

        #[test]
        fn a_failed_sync_undoes_every_batch_after_the_last_durable_one(
            first in proptest::collection::vec((0u8..3, 1u8..12), 1..20),
            later in proptest::collection::vec(proptest::collection::vec((0u8..3, 1u8..12), 1..10), 1..4),
        ) {
            let p = pool((10, 17));
            let apply = |t: &mut LeaseTable, ops: &[(u8, u8)]| {
                for &(op, m) in ops {
                    let who = mac(m);
                    match op {
                        0 | 1 => {
                            if let Some(got) = t.choose(&p, &who, None, &none(), 50) {
                                let _ = t.hold(bound(got, who, 500), &none(), 50);
                            }
                        }
                        _ => {
                            if let Some(l) = t.of_mac(&who).cloned() {
                                t.release(l.ip, &who);
                            }
                        }
                    }
                }
            };
            let mut t = LeaseTable::default();
            t.begin(1);
            apply(&mut t, &first);
            t.seal(true);
            for (i, ops) in later.iter().enumerate() {
                t.begin(2 + i as u64);
                apply(&mut t, ops);
                t.seal(i % 2 == 0);
            }
            // The first batch's sync returns; a later one fails.
            t.keep_through(1);
            let mut durable = LeaseTable::default();
            durable.begin(1);
            apply(&mut durable, &first);
            durable.seal(true);
            durable.keep_through(1);
            t.roll_back();
            prop_assert_eq!(t, durable);
        }

        #[test]
        fn no_address_is_ever_held_by_two_macs(ops in proptest::collection::vec((0u8..4, 1u8..12, 0u64..50), 1..300)) {
            let p = pool((10, 17));
            let mut res = HashMap::new();
            res.insert(mac(11), ip("10.1.0.12"));
            let mut t = LeaseTable::default();
            let mut now = 0;
            for (op, m, dt) in ops {
                now += dt;
                let who = mac(m);
                match op {
                    0 | 1 => {
                        if let Some(got) = t.choose(&p, &who, None, &res, now) {
                            let state = if op == 0 { LeaseState::Offered } else { LeaseState::Bound };
                            let lease = Lease { ip: got, mac: who, state, expires: now + 100, fixed: false };
                            prop_assert!(t.hold(lease, &res, now).is_ok());
                        }
                    }
                    2 => {
                        if let Some(l) = t.of_mac(&who).cloned() {
                            t.release(l.ip, &who);
                        }
                    }
                    _ => {
                        t.expire(now);
                    }
                }
                let mut seen = HashMap::new();
                for l in t.iter() {
                    prop_assert!(seen.insert(l.mac, l.ip).is_none(), "a MAC holds two addresses");
                    prop_assert_eq!(t.by_mac.get(&l.mac), Some(&l.ip));
                    if l.ip == ip("10.1.0.12") {
                        prop_assert_eq!(l.mac, mac(11));
                    }
                }
                prop_assert_eq!(t.by_mac.len(), t.by_ip.len());
            }
        }
    }
}
