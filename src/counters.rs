//! Exact counters by reason that the servers bump on their packet paths and
//! `/metrics` reads: one atomic per variant of a small per-service enum.
//!
//! A fixed slot per reason means no lock and no allocation on the hot path,
//! and every reason is rendered even at zero, so a Prometheus `rate()` has
//! a series from the first scrape on.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

/// A closed set of reasons (or kinds) that can be counted.
pub trait Reason: Copy + 'static {
    /// Every variant, in the order they are rendered.
    const ALL: &'static [Self];
    /// The variant's slot: its position in [`Reason::ALL`].
    fn index(self) -> usize;
    /// The label value shown in metrics.
    fn label(self) -> &'static str;
}

/// Defines a fieldless enum whose variants are counter reasons, each with
/// its metrics label.
#[macro_export]
macro_rules! reasons {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $crate::counters::Reason for $name {
            const ALL: &'static [$name] = &[$( $name::$variant, )+];
            fn index(self) -> usize {
                self as usize
            }
            fn label(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }
    };
}

/// One `AtomicU64` per variant of `R`.
pub struct Counts<R: Reason> {
    slots: Box<[AtomicU64]>,
    reason: PhantomData<fn(R)>,
}

impl<R: Reason> Default for Counts<R> {
    fn default() -> Self {
        Counts {
            slots: R::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            reason: PhantomData,
        }
    }
}

impl<R: Reason> Counts<R> {
    pub fn bump(&self, reason: R) {
        self.add(reason, 1);
    }

    pub fn add(&self, reason: R, n: u64) {
        // `index` comes from the variant list the slots were built from, so
        // the slot exists; `get` keeps a hand-written impl from panicking.
        if let Some(slot) = self.slots.get(reason.index()) {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self, reason: R) -> u64 {
        self.slots
            .get(reason.index())
            .map_or(0, |slot| slot.load(Ordering::Relaxed))
    }

    /// Every reason with its count, zeros included, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (R, u64)> + '_ {
        R::ALL.iter().map(|&r| (r, self.get(r)))
    }

    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }

    /// The non-zero counts by label (for logs and tests).
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.label(), n))
            .collect()
    }

    /// Prometheus samples: `{<key>="<label>"} <count>` for every reason.
    pub fn samples(&self, key: &str) -> Vec<(String, u64)> {
        self.iter()
            .map(|(r, n)| (format!("{{{key}=\"{}\"}}", r.label()), n))
            .collect()
    }
}

impl<R: Reason> std::fmt::Debug for Counts<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.snapshot()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    reasons! {
        enum Why {
            Cold => "cold",
            Wet => "wet",
        }
    }

    #[test]
    fn counts_per_reason_and_renders_zeros() {
        let c = Counts::<Why>::default();
        c.bump(Why::Wet);
        c.add(Why::Wet, 2);
        assert_eq!((c.get(Why::Cold), c.get(Why::Wet), c.total()), (0, 3, 3));
        assert_eq!(c.snapshot(), BTreeMap::from([("wet", 3)]));
        assert_eq!(
            c.samples("reason"),
            vec![
                ("{reason=\"cold\"}".to_string(), 0),
                ("{reason=\"wet\"}".to_string(), 3)
            ]
        );
    }
}
