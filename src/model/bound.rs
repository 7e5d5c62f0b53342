//! Keeps the machines nobody vetted within a cap: any host on the segment
//! can invent MACs, so unknown rows beyond `UnknownBound::cap` age out, the
//! ones idle longest first, and the model counts how many went.
//!
//! Machines the inventory knows never age out, nor does a machine with a
//! transfer running (its row is where that transfer's end is folded).
//! Among the rest, rows without a lease go before rows with one, and the
//! oldest `last_seen` goes first: a held machine polls every few seconds,
//! so the rows that go are the ones a flood left behind.
//!
//! Making room costs a pass over every row, so one pass frees a slack of
//! `cap / 16` rows at once: under a flood of new MACs it runs once per that
//! many, not once per MAC. The decision depends only on the rows and the
//! cap, so `pxedeck attach` (which folds the same events into a copy of
//! the same snapshot) drops the same rows at the same event.

use serde::{Deserialize, Serialize};

use super::Model;
use crate::config::DEFAULT_UNKNOWN_MACHINES;
use crate::event::Level;

/// The cap on unknown machine rows and how many rows it has dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownBound {
    /// Unknown machines kept at most.
    pub cap: usize,
    /// Unknown machines dropped to stay within the cap, since the start.
    pub dropped: u64,
}

impl Default for UnknownBound {
    fn default() -> Self {
        UnknownBound {
            cap: DEFAULT_UNKNOWN_MACHINES,
            dropped: 0,
        }
    }
}

impl UnknownBound {
    /// Rows one pass frees beyond what the new row needs.
    fn slack(&self) -> usize {
        (self.cap / 16).max(1)
    }
}

impl Model {
    /// A model that keeps at most `cap` unknown machines (at least one).
    pub fn with_unknown_cap(cap: usize) -> Model {
        Model {
            unknown: UnknownBound {
                cap: cap.max(1),
                dropped: 0,
            },
            ..Model::default()
        }
    }

    /// Called before a new row is pushed: makes room for it when the
    /// unknown rows are at the cap. Cheap until `row_limit` is reached.
    pub(super) fn before_new_row(&mut self) {
        if self.machines.len() >= self.row_limit {
            self.bound_unknown(1);
        }
    }

    /// Drops the oldest idle unknown rows so that `incoming` more fit
    /// under the cap (with the slack), and sets when to look again.
    pub(super) fn bound_unknown(&mut self, incoming: usize) {
        let cap = self.unknown.cap.max(1);
        let unknown = self.machines.iter().filter(|m| m.is_unknown()).count();
        if unknown + incoming > cap {
            let target = cap.saturating_sub(self.unknown.slack()).max(1);
            let excess = (unknown + incoming).saturating_sub(target);
            let dropped = self.drop_idle_unknown(excess);
            if dropped > 0 {
                if self.unknown.dropped == 0 {
                    let line = format!(
                        "more than {cap} unknown machines: the ones idle longest are dropped from \
                         the view (unknown.max_machines)"
                    );
                    self.log(self.now, Level::Warn, "pxedeck", line);
                }
                self.unknown.dropped += dropped as u64;
            }
        }
        let unknown_now = self.machines.iter().filter(|m| m.is_unknown()).count();
        // New rows may be unknown: look again once that many could have
        // filled the cap. Known rows only make this early, never late.
        self.row_limit = self.machines.len() + cap.saturating_sub(unknown_now);
    }

    /// Removes up to `count` unknown rows, idle longest (and leaseless)
    /// first, and rebuilds the index. Returns how many went.
    fn drop_idle_unknown(&mut self, count: usize) -> usize {
        let mut candidates: Vec<((bool, u64), usize)> = self
            .machines
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_unknown() && m.transfer.is_none())
            .map(|(i, m)| {
                let leased = self.lease_of.contains_key(&m.mac);
                ((leased, m.last_seen.unwrap_or(0)), i)
            })
            .collect();
        let count = count.min(candidates.len());
        if count == 0 {
            return 0;
        }
        if count < candidates.len() {
            candidates.select_nth_unstable(count - 1);
        }
        let mut gone = vec![false; self.machines.len()];
        for &(_, i) in &candidates[..count] {
            gone[i] = true;
        }
        let mut i = 0;
        self.machines.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
        self.index_machines();
        count
    }
}

#[cfg(test)]
mod tests {
    use crate::boot::BootDecision;
    use crate::clock::Millis;
    use crate::dhcp::DhcpMessage;
    use crate::event::{DhcpSeen, Event, EventKind, KnownMachine, Protocol};
    use crate::ident::Mac;
    use crate::model::Model;

    fn mac(n: u32) -> Mac {
        let b = n.to_be_bytes();
        format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
            .parse()
            .unwrap()
    }

    fn discover(m: &mut Model, at: Millis, n: u32) {
        m.apply(&Event {
            at,
            kind: EventKind::DhcpSeen(DhcpSeen {
                mac: mac(n),
                xid: n,
                message: DhcpMessage::Discover,
                firmware: None,
                ipxe: false,
                vendor_class: None,
                uuid: None,
                relay: None,
                relay_agent: None,
                interface: None,
                rule: None,
                hostname: None,
                decision: BootDecision::Hold,
            }),
        });
    }

    fn unknown_rows(m: &Model) -> usize {
        m.machines.iter().filter(|r| r.is_unknown()).count()
    }

    #[test]
    fn unknown_rows_stay_within_the_cap_and_the_dropped_are_counted() {
        let mut m = Model::with_unknown_cap(64);
        for n in 0..10_000 {
            discover(&mut m, u64::from(n), n);
            assert!(unknown_rows(&m) <= 64, "after {n}: {}", unknown_rows(&m));
        }
        assert!(unknown_rows(&m) >= 64 - 64 / 16, "{}", unknown_rows(&m));
        assert_eq!(m.unknown.dropped as usize + m.machines.len(), 10_000);
        // The newest stay, the oldest went; the index follows.
        assert!(m.machine(&mac(9_999)).is_some());
        assert!(m.machine(&mac(0)).is_none());
        for (i, row) in m.machines.iter().enumerate() {
            assert_eq!(m.by_mac[&row.mac], i);
        }
        assert!(m.log.iter().any(|l| l.message.contains("idle longest")));
    }

    #[test]
    fn known_machines_busy_ones_and_recently_seen_ones_never_age_out() {
        let mut m = Model::with_unknown_cap(16);
        m.apply(&Event {
            at: 0,
            kind: EventKind::InventoryReloaded {
                machines: vec![KnownMachine {
                    hostname: "dev-01".into(),
                    group: "k8s-dev".into(),
                    macs: vec![mac(1_000_000)],
                    ip: None,
                    profile: None,
                    install: true,
                }],
                profiles: vec![],
                groups: vec![],
                group_info: vec![],
            },
        });
        // An unknown machine with a transfer running, seen first of all.
        discover(&mut m, 1, 7);
        m.apply(&Event {
            at: 2,
            kind: EventKind::TransferStarted {
                id: 1,
                protocol: Protocol::Tftp,
                client: "10.99.0.7:2000".parse().unwrap(),
                mac: Some(mac(7)),
                path: "ipxe.efi".into(),
                size: None,
                blksize: None,
                windowsize: None,
            },
        });
        // A held machine that keeps polling while the flood goes on.
        for n in 100..1_000 {
            discover(&mut m, u64::from(n), n);
            if n % 10 == 0 {
                discover(&mut m, u64::from(n), 42);
            }
        }
        assert!(m.machine(&mac(1_000_000)).is_some(), "the known machine");
        assert!(m.machine(&mac(7)).is_some(), "the busy machine");
        assert!(m.machine(&mac(42)).is_some(), "the polling machine");
        assert!(unknown_rows(&m) <= 16);
        // Its transfer ends on the row that is still there.
        m.apply(&Event {
            at: 2_000,
            kind: EventKind::TransferDone {
                id: 1,
                bytes: 10,
                millis: 5,
            },
        });
        assert_eq!(m.machine(&mac(7)).unwrap().transfer, None);
    }

    #[test]
    fn leaseless_rows_go_before_leased_ones() {
        let mut m = Model::with_unknown_cap(4);
        discover(&mut m, 0, 1);
        m.apply(&Event {
            at: 0,
            kind: EventKind::LeaseBound {
                mac: mac(1),
                ip: "10.99.0.100".parse().unwrap(),
                hostname: None,
                expires: 60_000,
                fixed: false,
            },
        });
        for n in 2..=5 {
            discover(&mut m, u64::from(n), n);
        }
        assert!(m.machine(&mac(1)).is_some(), "leased, though oldest");
        assert!(m.machine(&mac(2)).is_none(), "oldest without a lease");
    }

    #[test]
    fn a_dropped_machine_is_not_brought_back_by_the_end_of_its_lease() {
        let mut m = Model::with_unknown_cap(2);
        for n in 1..=3 {
            discover(&mut m, u64::from(n), n);
        }
        assert!(m.machine(&mac(1)).is_none());
        m.apply(&Event {
            at: 10,
            kind: EventKind::LeaseEnded {
                mac: mac(1),
                ip: "10.99.0.100".parse().unwrap(),
                why: crate::dhcp::LeaseEnd::Expired,
            },
        });
        assert!(m.machine(&mac(1)).is_none());
    }

    #[test]
    fn a_snapshot_read_back_drops_the_same_rows_as_the_server() {
        let mut server = Model::with_unknown_cap(32);
        for n in 0..100 {
            discover(&mut server, u64::from(n), n);
        }
        let mut attached: Model =
            serde_json::from_str(&serde_json::to_string(&server).unwrap()).unwrap();
        attached.reindex();
        assert_eq!(attached.unknown, server.unknown);
        for n in 100..400 {
            discover(&mut server, u64::from(n), n);
            discover(&mut attached, u64::from(n), n);
        }
        let macs = |m: &Model| m.machines.iter().map(|r| r.mac).collect::<Vec<_>>();
        assert_eq!(macs(&attached), macs(&server));
        assert_eq!(attached.unknown, server.unknown);
    }
}
