//! Adoption on first sight: the shell that carries out `auto` rules.
//!
//! The DHCP handler says which rule an unknown machine matches
//! (`DhcpSeen::rule`); this task reads those sightings off the bus and
//! adopts through [`Control::auto_adopt`] (the inventory writer: validated,
//! atomic, committed to git). One adoption at a time, on a blocking thread.
//!
//! Bounded, because anyone on the segment can invent MACs that match a
//! rule: at most [`MAX_PER_MINUTE`] adoptions in any 60 seconds; past it a
//! machine is refused and counted (an `AutoAdoptRefused` event at most once
//! a second, with the running count; the console raises an alert). A MAC
//! tried is not tried again for [`RETRY_AFTER_MS`], and at most
//! [`REMEMBERED`] MACs are remembered.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::boot::identity::Facts;
use crate::clock::{Millis, now_millis};
use crate::control::Control;
use crate::event::{Bus, DhcpSeen, EventKind, Paced};
use crate::ident::{Mac, Uuid};
use crate::inventory::rules::{RuleHit, RuleMode};

/// Auto-adoptions allowed in any 60 seconds: a rack of new machines
/// powered on together takes a few minutes; a flood of invented MACs
/// creates at most this many files a minute.
pub const MAX_PER_MINUTE: usize = 20;
/// A MAC tried (adopted, refused or failed) is not tried again for this
/// long.
pub const RETRY_AFTER_MS: Millis = 60_000;
/// MACs remembered as tried, at most.
pub const REMEMBERED: usize = 4096;
/// Refusals are reported at most this often.
const REPORT_EVERY_MS: Millis = 1000;
const WINDOW_MS: Millis = 60_000;

/// Counts for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct AutoAdoptStats {
    pub adopted: AtomicU64,
    pub refused: AtomicU64,
}

/// What to do with one sighting.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Skip,
    Adopt(Mac, Option<Uuid>, RuleHit),
    /// Past the bound: refused with this reason.
    Refuse(Mac, RuleHit, String),
}

/// An unknown machine that matched a rule: at its DHCP request, or when
/// iPXE reported its hardware (a rule by vendor or product).
#[derive(Debug, Clone, PartialEq)]
pub struct Sighted {
    pub mac: Mac,
    pub uuid: Option<Uuid>,
    pub rule: Option<RuleHit>,
    /// What the machine reported, kept in its file when it is adopted.
    pub facts: Facts,
}

impl Sighted {
    fn of_dhcp(seen: &DhcpSeen) -> Sighted {
        Sighted {
            mac: seen.mac,
            uuid: seen.uuid,
            rule: seen.rule.clone(),
            facts: Facts::default(),
        }
    }
}

/// The decisions, without I/O: the window of recent adoptions and the MACs
/// tried.
#[derive(Debug, Default)]
pub struct Gate {
    window: VecDeque<Millis>,
    tried: HashMap<Mac, Millis>,
}

impl Gate {
    pub fn consider(&mut self, seen: &DhcpSeen, now: Millis) -> Decision {
        if seen.hostname.is_some() {
            return Decision::Skip;
        }
        self.consider_unknown(&Sighted::of_dhcp(seen), now)
    }

    /// An unknown machine's sighting, from DHCP or from its facts report.
    pub fn consider_unknown(&mut self, seen: &Sighted, now: Millis) -> Decision {
        let Some(hit) = seen.rule.as_ref().filter(|r| r.mode == RuleMode::Auto) else {
            return Decision::Skip;
        };
        if self
            .tried
            .get(&seen.mac)
            .is_some_and(|&t| now.saturating_sub(t) < RETRY_AFTER_MS)
        {
            return Decision::Skip;
        }
        if self.tried.len() >= REMEMBERED {
            self.tried
                .retain(|_, t| now.saturating_sub(*t) < RETRY_AFTER_MS);
            if self.tried.len() >= REMEMBERED {
                // Still full of fresh MACs: a flood. Refuse without
                // remembering, so memory stays bounded.
                return Decision::Refuse(seen.mac, hit.clone(), flood_reason());
            }
        }
        self.tried.insert(seen.mac, now);
        while self
            .window
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= WINDOW_MS)
        {
            self.window.pop_front();
        }
        if self.window.len() >= MAX_PER_MINUTE {
            return Decision::Refuse(seen.mac, hit.clone(), flood_reason());
        }
        self.window.push_back(now);
        Decision::Adopt(seen.mac, seen.uuid, hit.clone())
    }
}

fn flood_reason() -> String {
    format!("more than {MAX_PER_MINUTE} auto-adoptions in a minute")
}

pub struct AutoAdopter {
    control: Arc<Control>,
    bus: Bus,
    pub stats: Arc<AutoAdoptStats>,
}

/// The last refusal not yet reported.
struct Unreported {
    mac: Mac,
    rule: String,
    reason: String,
}

impl AutoAdopter {
    pub fn new(control: Arc<Control>, bus: Bus) -> AutoAdopter {
        AutoAdopter {
            stats: control.auto_adopt_stats().clone(),
            control,
            bus,
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let mut rx = Paced::new(self.bus.subscribe());
        let mut gate = Gate::default();
        let mut tick = tokio::time::interval(Duration::from_millis(REPORT_EVERY_MS));
        let mut refused: u64 = 0;
        let mut reported_at: Option<Millis> = None;
        let mut unreported: Option<Unreported> = None;
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    self.report(&mut unreported, refused, &mut reported_at, now_millis(), true);
                    continue;
                }
                event = rx.recv() => event,
            };
            let seen = match event {
                Ok(e) => match &e.kind {
                    EventKind::DhcpSeen(seen) if seen.rule.is_some() && seen.hostname.is_none() => {
                        Sighted::of_dhcp(seen)
                    }
                    // Only unknown machines are given a rule here.
                    EventKind::FactsReported {
                        mac,
                        facts,
                        rule: Some(rule),
                    } => Sighted {
                        mac: *mac,
                        uuid: facts.get("uuid").and_then(|u| u.parse().ok()),
                        rule: Some(rule.clone()),
                        facts: facts.clone(),
                    },
                    _ => continue,
                },
                // A sighting missed is seen again: firmware retries.
                Err(RecvError::Lagged(n)) => {
                    self.bus.note_lagged(n);
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let now = now_millis();
            let refusal = match gate.consider_unknown(&seen, now) {
                Decision::Skip => None,
                Decision::Refuse(mac, hit, reason) => Some((mac, hit.rule, reason)),
                Decision::Adopt(mac, uuid, hit) => {
                    let control = self.control.clone();
                    let rule = hit.rule.clone();
                    let facts = seen.facts;
                    let done = tokio::task::spawn_blocking(move || {
                        control.auto_adopt(mac, uuid, &hit, facts)
                    })
                    .await;
                    match done {
                        Ok(Ok(Some(_))) => {
                            self.stats.adopted.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        Ok(Ok(None)) => None,
                        Ok(Err(e)) => Some((mac, rule, e.to_string())),
                        Err(e) => Some((mac, rule, format!("the adoption task failed: {e}"))),
                    }
                }
            };
            if let Some((mac, rule, reason)) = refusal {
                refused += 1;
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                unreported = Some(Unreported { mac, rule, reason });
                self.report(&mut unreported, refused, &mut reported_at, now, false);
            }
        }
    }

    /// Sends the last refusal with the running count, at most once per
    /// [`REPORT_EVERY_MS`] (the tick sends what a burst left unsaid).
    fn report(
        &self,
        unreported: &mut Option<Unreported>,
        refused: u64,
        reported_at: &mut Option<Millis>,
        now: Millis,
        from_tick: bool,
    ) {
        let due = from_tick || reported_at.is_none_or(|t| now.saturating_sub(t) >= REPORT_EVERY_MS);
        if !due {
            return;
        }
        let Some(u) = unreported.take() else {
            return;
        };
        *reported_at = Some(now);
        self.bus.emit(EventKind::AutoAdoptRefused {
            mac: u.mac,
            rule: u.rule,
            reason: u.reason,
            refused,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::BootDecision;
    use crate::dhcp::DhcpMessage;

    fn seen(n: u32, mode: RuleMode, hostname: Option<&str>) -> DhcpSeen {
        let b = n.to_be_bytes();
        DhcpSeen {
            mac: Mac([0x52, 0x54, b[0], b[1], b[2], b[3]]),
            xid: 1,
            message: DhcpMessage::Discover,
            firmware: None,
            ipxe: false,
            vendor_class: None,
            uuid: None,
            relay: None,
            relay_agent: None,
            interface: None,
            hostname: hostname.map(str::to_string),
            decision: BootDecision::Hold,
            rule: Some(RuleHit {
                rule: "r.yaml:3".into(),
                mode,
                group: "g".into(),
                profile: "p".into(),
                hostname: "n-{n}".into(),
                install: false,
            }),
        }
    }

    fn adopts(d: &Decision) -> bool {
        matches!(d, Decision::Adopt(..))
    }

    #[test]
    fn propose_rules_known_machines_and_repeats_are_not_adopted() {
        let mut gate = Gate::default();
        assert_eq!(
            gate.consider(&seen(1, RuleMode::Propose, None), 0),
            Decision::Skip
        );
        assert_eq!(
            gate.consider(&seen(1, RuleMode::Auto, Some("n-1")), 0),
            Decision::Skip
        );
        assert!(adopts(&gate.consider(&seen(1, RuleMode::Auto, None), 0)));
        assert_eq!(
            gate.consider(&seen(1, RuleMode::Auto, None), 500),
            Decision::Skip,
            "its REQUEST right after the DISCOVER"
        );
        assert!(
            adopts(&gate.consider(&seen(1, RuleMode::Auto, None), RETRY_AFTER_MS)),
            "tried again a minute later (the first write failed)"
        );
    }

    #[test]
    fn a_flood_of_invented_macs_adopts_at_most_the_bound_per_minute() {
        let mut gate = Gate::default();
        let mut adopted = 0;
        let mut refused = 0;
        for n in 0..1000u32 {
            match gate.consider(&seen(n, RuleMode::Auto, None), u64::from(n)) {
                Decision::Adopt(..) => adopted += 1,
                Decision::Refuse(_, _, reason) => {
                    assert_eq!(reason, "more than 20 auto-adoptions in a minute");
                    refused += 1;
                }
                Decision::Skip => panic!("each MAC is new"),
            }
        }
        assert_eq!((adopted, refused), (MAX_PER_MINUTE, 1000 - MAX_PER_MINUTE));
        // A minute after the first ones, room again.
        let later = WINDOW_MS + 1000;
        assert!(adopts(
            &gate.consider(&seen(5000, RuleMode::Auto, None), later)
        ));
    }

    #[test]
    fn the_memory_of_tried_macs_is_bounded() {
        let mut gate = Gate::default();
        for n in 0..(REMEMBERED as u32 + 500) {
            gate.consider(&seen(n, RuleMode::Auto, None), 10);
        }
        assert!(gate.tried.len() <= REMEMBERED);
        assert!(gate.window.len() <= MAX_PER_MINUTE);
        // Once they are old, new ones are remembered again.
        let d = gate.consider(&seen(999_999, RuleMode::Auto, None), 10 + RETRY_AFTER_MS);
        assert!(adopts(&d), "{d:?}");
        assert!(gate.tried.len() < 10);
    }
}
