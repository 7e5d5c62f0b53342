//! What simulated boots measured: per machine ([`Run`]) and summed up
//! ([`Report`]: outcomes, per-phase p50/p99, time until all booted).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::ident::Mac;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Firmware DISCOVER → ACK.
    Dhcp,
    /// Boot loader over TFTP (or HTTP for HTTP Boot).
    Loader,
    /// iPXE's DISCOVER → ACK.
    IpxeDhcp,
    /// The first entry script.
    Script,
    /// Time spent in the hold loop until adopted.
    Held,
    Kernel,
    Initrd,
    /// All installer configs.
    Config,
    Done,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Dhcp => "DHCP (firmware)",
            Phase::Loader => "boot loader",
            Phase::IpxeDhcp => "DHCP (iPXE)",
            Phase::Script => "script",
            Phase::Held => "held until adopted",
            Phase::Kernel => "kernel",
            Phase::Initrd => "initrd",
            Phase::Config => "installer configs",
            Phase::Done => "done callback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Installed and called back.
    Installed,
    /// Booted a kernel with no installer config to fetch.
    Booted,
    /// Told to boot its local disk.
    LocalDisk,
    /// DHCP gave an address but no boot file (policy `ignore`).
    NoBootAnswer,
    /// Still in the hold loop when the limit ran out.
    StillHeld,
    Failed(String),
    /// Not finished (the run is still going).
    Running,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Installed => "installed",
            Outcome::Booted => "booted",
            Outcome::LocalDisk => "local disk",
            Outcome::NoBootAnswer => "no boot answer",
            Outcome::StillHeld => "still held",
            Outcome::Failed(_) => "failed",
            Outcome::Running => "running",
        }
    }
}

/// One machine's boot.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub mac: Mac,
    pub outcome: Outcome,
    pub phases: Vec<(Phase, Duration)>,
    pub total: Duration,
    pub held: bool,
}

impl Run {
    pub fn new(mac: Mac) -> Run {
        Run {
            mac,
            outcome: Outcome::Running,
            phases: Vec::new(),
            total: Duration::ZERO,
            held: false,
        }
    }

    pub fn record(&mut self, phase: Phase, took: Duration) {
        self.phases.push((phase, took));
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseStats {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Many runs summed up.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machines: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub phases: BTreeMap<Phase, PhaseStats>,
    /// From the first start to the last machine finishing.
    pub makespan_ms: f64,
    pub failures: Vec<(String, String)>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

impl Report {
    pub fn new(runs: &[Run], makespan: Duration) -> Report {
        let mut outcomes = BTreeMap::new();
        let mut by_phase: BTreeMap<Phase, Vec<Duration>> = BTreeMap::new();
        let mut failures = Vec::new();
        for r in runs {
            *outcomes.entry(r.outcome.label().to_string()).or_insert(0) += 1;
            if let Outcome::Failed(why) = &r.outcome {
                failures.push((r.mac.to_string(), why.clone()));
            }
            for (phase, took) in &r.phases {
                by_phase.entry(*phase).or_default().push(*took);
            }
        }
        let phases = by_phase
            .into_iter()
            .map(|(phase, mut times)| {
                times.sort();
                let stats = PhaseStats {
                    count: times.len(),
                    p50_ms: percentile(&times, 0.5),
                    p99_ms: percentile(&times, 0.99),
                    max_ms: percentile(&times, 1.0),
                };
                (phase, stats)
            })
            .collect();
        Report {
            machines: runs.len(),
            outcomes,
            phases,
            makespan_ms: makespan.as_secs_f64() * 1000.0,
            failures,
        }
    }

    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// The human table `pxedeck bench` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} machines, all finished in {:.2} s",
            self.machines,
            self.makespan_ms / 1000.0
        );
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let _ = writeln!(out, "outcomes: {}", outcomes.join(", "));
        let _ = writeln!(
            out,
            "\n{:<20} {:>6} {:>10} {:>10} {:>10}",
            "phase", "count", "p50 ms", "p99 ms", "max ms"
        );
        for (phase, s) in &self.phases {
            let _ = writeln!(
                out,
                "{:<20} {:>6} {:>10.1} {:>10.1} {:>10.1}",
                phase.label(),
                s.count,
                s.p50_ms,
                s.p99_ms,
                s.max_ms
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nfailures:");
            for (mac, why) in self.failures.iter().take(20) {
                let _ = writeln!(out, "  {mac}: {why}");
            }
            if self.failures.len() > 20 {
                let _ = writeln!(out, "  … and {} more", self.failures.len() - 20);
            }
        }
        out
    }
}
