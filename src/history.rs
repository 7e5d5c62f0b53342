//! Machines' boot history on disk, so a restart (or a crash) keeps what
//! happened in the night: the events that make up each machine's timeline
//! (DHCP, transfers, scripts, configs, install done) appended to a JSON
//! lines file beside the leases, and folded into the model again at start.
//!
//! - **Off the packet path.** A task of its own reads the bus and writes a
//!   batch a second (one `write` and one `fdatasync`); a `kill -9` loses at
//!   most that last batch. Boot services never wait for it.
//! - **Bounded.** At start, and whenever the file holds twice what is kept,
//!   it is cut to the newest `history.total` events, at most
//!   `history.per_machine` per machine, and rewritten atomically. Lines
//!   are at most [`MAX_LINE`] bytes.
//! - **Damage.** A torn last line (a crash mid-write) is skipped and
//!   counted. Anything else unreadable — a wrong header, a garbled line in
//!   the middle — refuses the file: it is moved aside (`.unreadable`),
//!   said so, and a new history starts. Leases live in their own journal
//!   and are never touched by this.
//! - **Leases are not history.** Lease events are left out: the lease
//!   journal says what is bound now.
//! - **Floods are sampled.** A machine's repeatable events (DHCP packets,
//!   scripts and configs served) are recorded at most
//!   [`REPEATS_PER_SECOND`] a second each; the rest are counted and said
//!   once a minute and at stop. A real boot stays far below it. One
//!   client asking for its script 35,000 times a second cost, through the
//!   recorder, an eighth of the server's rate and raised the script's p99
//!   from 18–20 to 31 ms (`docs/benchmarks.md`). Transfers and install callbacks, which
//!   change what a machine's timeline ends in, are always recorded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::event::{Bus, Event, EventKind, Paced};

mod flood;
use flood::Flood;
pub use flood::REPEATS_PER_SECOND;

/// The first line of a history file.
pub const HEADER: &str = r#"{"pxedeck_history":1}"#;
/// The longest line read back; a longer one is damage.
pub const MAX_LINE: usize = 64 * 1024;
/// How often a batch is written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Transfer ids given to replayed transfers start here, far above what a
/// run hands out, so a new transfer #1 never meets an old one.
pub const REPLAYED_IDS: u64 = 1 << 62;

/// How much history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub per_machine: usize,
    pub total: usize,
}

/// Why a history file is not used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {reason}", path.display())]
    Garbled {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// A history read back.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The events kept, oldest first, as they were recorded.
    pub events: Vec<Event>,
    /// Lines in the file (header aside).
    pub lines: usize,
    /// A torn last line was skipped.
    pub torn: bool,
}

/// Whether an event belongs in a machine's history, and whose: its MAC,
/// else its hostname. Transfers without a MAC and lease events are not.
fn owner(kind: &EventKind, transfers: &HashMap<u64, String>) -> Option<String> {
    use EventKind as E;
    match kind {
        E::DhcpSeen(d) => Some(d.mac.to_string()),
        E::DhcpReplied { mac, .. } => Some(mac.to_string()),
        E::TransferStarted { mac: Some(mac), .. } => Some(mac.to_string()),
        E::TransferDone { id, .. } | E::TransferFailed { id, .. } => transfers.get(id).cloned(),
        E::ScriptServed { mac: Some(mac), .. } => Some(mac.to_string()),
        E::ScriptServed {
            hostname: Some(h), ..
        } => Some(h.clone()),
        E::ConfigServed { hostname, .. } => Some(hostname.clone()),
        E::InstallDone { mac: Some(mac), .. } => Some(mac.to_string()),
        E::InstallDone { hostname, .. } => Some(hostname.clone()),
        _ => None,
    }
}

/// Reads a history file. A missing file is an empty history.
pub fn load(path: &Path, bounds: Bounds) -> Result<Loaded, HistoryError> {
    let io = |source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(io(e)),
    };
    let garbled = |line: usize, reason: String| HistoryError::Garbled {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut reader = BufReader::new(file);
    let mut kept: VecDeque<Event> = VecDeque::new();
    let mut loaded = Loaded::default();
    // A damaged line is damage only if another line follows it.
    let mut pending_damage: Option<(usize, String)> = None;
    let mut buf = Vec::new();
    for number in 1.. {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io)?;
        if n == 0 {
            break;
        }
        if let Some((line, reason)) = pending_damage.take() {
            return Err(garbled(line, reason));
        }
        let complete = buf.ends_with(b"\n");
        if !complete && buf.len() > MAX_LINE {
            return Err(garbled(
                number,
                format!("a line longer than {MAX_LINE} bytes"),
            ));
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end();
        if number == 1 {
            if text != HEADER {
                return Err(garbled(
                    1,
                    format!("not a pxedeck history (expected {HEADER})"),
                ));
            }
            continue;
        }
        loaded.lines += 1;
        match serde_json::from_str::<Event>(text) {
            Ok(e) => {
                if kept.len() == bounds.total {
                    kept.pop_front();
                }
                kept.push_back(e);
            }
            Err(e) => pending_damage = Some((number, e.to_string())),
        }
    }
    loaded.torn = pending_damage.is_some();
    loaded.events = bound_per_machine(kept.into(), bounds.per_machine);
    Ok(loaded)
}

/// Keeps the newest `per_machine` events of each machine.
fn bound_per_machine(events: Vec<Event>, per_machine: usize) -> Vec<Event> {
    let mut transfers = HashMap::new();
    let owners: Vec<Option<String>> = events
        .iter()
        .map(|e| {
            let o = owner(&e.kind, &transfers);
            if let (EventKind::TransferStarted { id, .. }, Some(o)) = (&e.kind, &o) {
                transfers.insert(*id, o.clone());
            }
            o
        })
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut keep = vec![false; events.len()];
    for (i, o) in owners.iter().enumerate().rev() {
        let Some(o) = o else { continue };
        let c = counts.entry(o.as_str()).or_default();
        if *c < per_machine {
            *c += 1;
            keep[i] = true;
        }
    }
    events
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

/// The events to fold into a fresh model: transfer ids moved out of the
/// way of this run's, and transfers that never ended (pxedeck stopped
/// under them) ended as failed, so none shows as running forever.
pub fn replay(events: Vec<Event>) -> Vec<Event> {
    let mut ids: HashMap<u64, u64> = HashMap::new();
    let mut next_id = REPLAYED_IDS;
    let mut open: Vec<u64> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    let mut last_at = 0;
    for mut e in events {
        last_at = last_at.max(e.at);
        match &mut e.kind {
            EventKind::TransferStarted { id, .. } => {
                let new = next_id;
                next_id += 1;
                ids.insert(*id, new);
                *id = new;
                open.push(new);
            }
            EventKind::TransferDone { id, .. } | EventKind::TransferFailed { id, .. } => {
                match ids.remove(id) {
                    Some(new) => {
                        *id = new;
                        open.retain(|o| *o != new);
                    }
                    None => continue, // its start was cut by the bounds
                }
            }
            _ => {}
        }
        out.push(e);
    }
    for id in open {
        out.push(Event {
            at: last_at,
            kind: EventKind::TransferFailed {
                id,
                bytes: 0,
                reason: "pxedeck stopped during the transfer".into(),
                probe: false,
            },
        });
    }
    out
}

/// Rewrites the file with exactly `events` (temp file, fsync, rename).
pub fn rewrite(path: &Path, events: &[Event]) -> std::io::Result<()> {
    let mut text = String::with_capacity(events.len() * 160 + HEADER.len() + 1);
    text.push_str(HEADER);
    text.push('\n');
    for e in events {
        if let Ok(line) = serde_json::to_string(e) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    crate::inventory::write_atomic(path, &text).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Reads the history for a start: the events to replay, and the recorder
/// that appends to it. A torn or over-long file is rewritten first (so new
/// lines never follow a torn one); a refused file is moved aside. What
/// happened is said on the bus.
pub fn restore(path: &Path, bounds: Bounds, bus: &Bus) -> (Vec<Event>, Recorder) {
    let say = |level, message: String| {
        bus.emit(EventKind::Log {
            level,
            target: "history".into(),
            message,
        })
    };
    use crate::event::Level;
    let (events, lines) = match load(path, bounds) {
        Ok(loaded) => {
            let kept = loaded.events.len();
            // A torn line must not be followed by new ones.
            let must_rewrite = loaded.torn || loaded.lines != kept;
            if must_rewrite && let Err(e) = rewrite(path, &loaded.events) {
                say(
                    Level::Warn,
                    format!("boot history {}: cannot rewrite: {e}", path.display()),
                );
            }
            if kept > 0 {
                say(
                    Level::Info,
                    format!(
                        "boot history: {kept} events of {} machines restored from {}{}",
                        machines(&loaded.events),
                        path.display(),
                        if loaded.torn {
                            " (a torn last line skipped)"
                        } else {
                            ""
                        }
                    ),
                );
            }
            (loaded.events, kept)
        }
        Err(e @ HistoryError::Garbled { .. }) => {
            let aside = set_aside(path)
                .map(|p| format!("moved to {}", p.display()))
                .unwrap_or_else(|err| format!("could not be moved aside: {err}"));
            say(
                Level::Warn,
                format!(
                    "boot history refused, {e}; the file {aside}; a new history starts (leases are not affected)"
                ),
            );
            (Vec::new(), 0)
        }
        Err(e) => {
            say(Level::Warn, format!("boot history not restored: {e}"));
            (Vec::new(), 0)
        }
    };
    (replay(events), Recorder::new(path, bounds, bus, lines))
}

/// Moves a refused file aside so nothing is lost and a new one starts.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".unreadable");
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

/// Appends history to the file until cancelled.
pub struct Recorder {
    path: PathBuf,
    bounds: Bounds,
    /// Paced: under load, a wake-up per batch, not per event.
    rx: Paced<Arc<Event>>,
    bus: Bus,
    /// Lines in the file now (header aside).
    lines: usize,
    /// Transfers started with an owner: only their ends are history.
    transfers: HashMap<u64, String>,
    /// Who holds which address, to name the machine behind a transfer or
    /// a script fetched by address alone (as the model does).
    holders: HashMap<std::net::IpAddr, crate::ident::Mac>,
    flood: Flood,
}

/// Past this many transfers in flight, the map starts over.
const TRANSFERS_REMEMBERED: usize = 65_536;

impl Recorder {
    /// Subscribes now, so every event emitted after this call is seen.
    pub fn new(path: &Path, bounds: Bounds, bus: &Bus, lines: usize) -> Recorder {
        Recorder {
            path: path.to_path_buf(),
            bounds,
            rx: Paced::new(bus.subscribe()),
            bus: bus.clone(),
            lines,
            transfers: HashMap::new(),
            holders: HashMap::new(),
            flood: Flood::default(),
        }
    }

    /// Learns addresses from leases; names the machine of a transfer or
    /// script that came by address only. Returns the event to record.
    fn attribute(&mut self, e: &Event) -> Option<Event> {
        use EventKind as E;
        match &e.kind {
            E::LeaseBound { mac, ip, .. }
            | E::DhcpReplied {
                mac,
                ip: Some(ip),
                proxy: false,
                ..
            } => {
                if self.holders.len() >= TRANSFERS_REMEMBERED {
                    self.holders.clear();
                }
                self.holders.insert((*ip).into(), *mac);
                None
            }
            E::LeaseEnded { ip, .. } => {
                self.holders.remove(&std::net::IpAddr::from(*ip));
                None
            }
            E::TransferStarted {
                mac: None, client, ..
            } => {
                let holder = *self.holders.get(&client.ip())?;
                let mut e = e.clone();
                if let E::TransferStarted { mac, .. } = &mut e.kind {
                    *mac = Some(holder);
                }
                Some(e)
            }
            E::ScriptServed {
                mac: None,
                hostname: None,
                client,
                ..
            } => {
                let holder = *self.holders.get(client)?;
                let mut e = e.clone();
                if let E::ScriptServed { mac, .. } = &mut e.kind {
                    *mac = Some(holder);
                }
                Some(e)
            }
            _ => None,
        }
    }

    fn line_of(&mut self, e: &Event) -> Option<String> {
        let attributed = self.attribute(e);
        let e = attributed.as_ref().unwrap_or(e);
        let owner = owner(&e.kind, &self.transfers)?;
        if !self.flood.admit(&owner, &e.kind, e.at) {
            return None;
        }
        match &e.kind {
            EventKind::TransferStarted { id, .. } => {
                if self.transfers.len() >= TRANSFERS_REMEMBERED {
                    self.transfers.clear();
                }
                self.transfers.insert(*id, owner);
            }
            EventKind::TransferDone { id, .. } | EventKind::TransferFailed { id, .. } => {
                self.transfers.remove(id);
            }
            _ => {}
        }
        serde_json::to_string(e).ok().filter(|l| l.len() < MAX_LINE)
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut batch = Batch::default();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(e) => {
                        if let Some(line) = self.line_of(&e) {
                            batch.push(&line);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => self.bus.note_lagged(n),
                    Err(_) => return self.flush(batch.take()).await,
                },
                _ = tick.tick() => {
                    self.flush(batch.take()).await;
                    let due = self.flood.report(crate::clock::now_millis());
                    self.say_left_out(due);
                }
                _ = cancel.cancelled() => {
                    // What was emitted before the stop is history too.
                    while let Ok(e) = self.rx.try_recv() {
                        if let Some(line) = self.line_of(&e) {
                            batch.push(&line);
                        }
                    }
                    self.flush(batch.take()).await;
                    let left_out = self.flood.take_skipped();
                    return self.say_left_out(left_out);
                }
            }
            if batch.text.len() > BATCH_BYTES {
                self.flush(batch.take()).await;
            }
        }
    }

    async fn flush(&mut self, batch: Batch) {
        if batch.lines == 0 {
            return;
        }
        let Batch {
            text: batch,
            lines: batch_lines,
        } = batch;
        let path = self.path.clone();
        let fresh = self.lines == 0;
        let written = tokio::task::spawn_blocking(move || append(&path, &batch, fresh)).await;
        match written {
            Ok(Ok(())) => self.lines += batch_lines,
            Ok(Err(e)) => self.warn(format!(
                "boot history {}: cannot write ({e}); the last second of history is lost",
                self.path.display()
            )),
            Err(_) => {}
        }
        if self.lines > 2 * self.bounds.total {
            self.compact().await;
        }
    }

    /// Cuts the file to its bounds.
    async fn compact(&mut self) {
        let (path, bounds) = (self.path.clone(), self.bounds);
        let done = tokio::task::spawn_blocking(move || {
            let loaded = load(&path, bounds).map_err(|e| e.to_string())?;
            rewrite(&path, &loaded.events).map_err(|e| e.to_string())?;
            Ok::<usize, String>(loaded.events.len())
        })
        .await;
        match done {
            Ok(Ok(kept)) => self.lines = kept,
            Ok(Err(e)) => self.warn(format!("boot history: cannot compact: {e}")),
            Err(_) => {}
        }
    }

    fn say_left_out(&self, count: Option<u64>) {
        if let Some(n) = count {
            self.warn(format!(
                "boot history: {n} repeated events of flooding machines not recorded \
                 (at most {REPEATS_PER_SECOND} a second each)"
            ));
        }
    }

    fn warn(&self, message: String) {
        self.bus.emit(EventKind::Log {
            level: crate::event::Level::Warn,
            target: "history".into(),
            message,
        });
    }
}

/// A batch is written early past this size (a burst).
const BATCH_BYTES: usize = 1 << 20;

/// Lines waiting for the next write.
#[derive(Default)]
struct Batch {
    text: String,
    lines: usize,
}

impl Batch {
    fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        self.lines += 1;
    }

    fn take(&mut self) -> Batch {
        std::mem::take(self)
    }
}

/// Appends a batch (the header first into a new file), then syncs it.
fn append(path: &Path, batch: &str, fresh: bool) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    let empty = f.metadata()?.len() == 0;
    if fresh && empty {
        f.write_all(HEADER.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.write_all(batch.as_bytes())?;
    f.sync_data()
}

/// The distinct machines a history names (for the start-up line).
pub fn machines(events: &[Event]) -> usize {
    let transfers = HashMap::new();
    events
        .iter()
        .filter_map(|e| owner(&e.kind, &transfers))
        .collect::<HashSet<_>>()
        .len()
}

#[cfg(test)]
mod tests;
