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
//!   once a minute. A real boot stays far below it. One client asking for
//!   its script 35,000 times a second made the recorder a quarter of the
//!   server's work, and the compactions it forced doubled the script's
//!   p99 (`docs/benchmarks.md`). Transfers and install callbacks, which
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

/// A machine's repeatable events recorded per second of event time; past
/// it they are counted, not written.
pub const REPEATS_PER_SECOND: u32 = 32;

/// How often the count of events left out is said.
const FLOOD_REPORT_EVERY_MS: u64 = 60_000;

/// Per owner, the repeatable events of the current second.
#[derive(Default)]
struct Flood {
    seconds: HashMap<String, (u64, u32)>,
    /// Left out since the last report, and when that was (event time).
    skipped: u64,
    reported_at: u64,
}

impl Flood {
    /// May this event of `owner`'s, at `at` (ms), be recorded?
    fn admit(&mut self, owner: &str, kind: &EventKind, at: u64) -> bool {
        use EventKind as E;
        let repeatable = matches!(
            kind,
            E::DhcpSeen(_)
                | E::DhcpReplied { .. }
                | E::ScriptServed { .. }
                | E::ConfigServed { .. }
        );
        if !repeatable {
            return true;
        }
        let second = at / 1000;
        if let Some((s, n)) = self.seconds.get_mut(owner) {
            // Events reach the bus slightly out of order across threads:
            // only a later second starts the count afresh.
            if second > *s {
                (*s, *n) = (second, 0);
            }
            *n += 1;
            if *n > REPEATS_PER_SECOND {
                self.skipped += 1;
                return false;
            }
            return true;
        }
        if self.seconds.len() >= TRANSFERS_REMEMBERED {
            self.seconds.clear();
        }
        self.seconds.insert(owner.to_string(), (second, 1));
        true
    }

    /// The count to say now, if one is due (once a minute at most).
    fn report(&mut self, now: u64) -> Option<u64> {
        if self.skipped == 0 || now < self.reported_at + FLOOD_REPORT_EVERY_MS {
            return None;
        }
        self.reported_at = now;
        Some(std::mem::take(&mut self.skipped))
    }
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
                    let left_out = std::mem::take(&mut self.flood.skipped);
                    return self.say_left_out(Some(left_out).filter(|&n| n > 0));
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
mod tests {
    use super::*;
    use crate::dhcp::{DhcpMessage, DhcpSeen};

    fn seen(at: u64, mac: &str) -> Event {
        Event {
            at,
            kind: EventKind::DhcpSeen(DhcpSeen {
                mac: mac.parse().unwrap(),
                xid: 1,
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
                decision: crate::boot::BootDecision::Hold,
            }),
        }
    }

    fn started(at: u64, id: u64, mac: &str) -> Event {
        Event {
            at,
            kind: EventKind::TransferStarted {
                id,
                protocol: crate::event::Protocol::Tftp,
                client: "10.0.0.5:1000".parse().unwrap(),
                mac: Some(mac.parse().unwrap()),
                path: "ipxe.efi".into(),
                size: Some(1),
                blksize: None,
                windowsize: None,
            },
        }
    }

    fn file_of(dir: &Path, lines: &[String]) -> PathBuf {
        let path = dir.join("history.jsonl");
        let mut text = format!("{HEADER}\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn json(e: &Event) -> String {
        serde_json::to_string(e).unwrap()
    }

    const WIDE: Bounds = Bounds {
        per_machine: 100,
        total: 1000,
    };

    #[test]
    fn the_newest_are_kept_per_machine_and_in_total() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = vec![];
        for i in 0..10 {
            lines.push(json(&seen(i, "52:54:00:00:00:01")));
        }
        for i in 10..13 {
            lines.push(json(&seen(i, "52:54:00:00:00:02")));
        }
        let path = file_of(dir.path(), &lines);
        let l = load(
            &path,
            Bounds {
                per_machine: 4,
                total: 1000,
            },
        )
        .unwrap();
        let ats: Vec<u64> = l.events.iter().map(|e| e.at).collect();
        assert_eq!(ats, vec![6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(l.lines, 13);
        let l = load(
            &path,
            Bounds {
                per_machine: 100,
                total: 5,
            },
        )
        .unwrap();
        assert_eq!(
            l.events.iter().map(|e| e.at).collect::<Vec<_>>(),
            vec![8, 9, 10, 11, 12]
        );
    }

    #[test]
    fn a_torn_last_line_is_skipped_but_a_garbled_middle_refuses_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = json(&seen(1, "52:54:00:00:00:01"));
        let torn = good[..good.len() / 2].to_string();
        let path = dir.path().join("h");
        std::fs::write(&path, format!("{HEADER}\n{good}\n{torn}")).unwrap();
        let l = load(&path, WIDE).unwrap();
        assert!(l.torn);
        assert_eq!(l.events.len(), 1);

        std::fs::write(&path, format!("{HEADER}\n{good}\n{torn}\n{good}\n")).unwrap();
        let e = load(&path, WIDE).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3: ", path.display())), "{e}");

        std::fs::write(&path, format!("{good}\n")).unwrap();
        let e = load(&path, WIDE).unwrap_err().to_string();
        assert!(e.contains(":1: not a pxedeck history"), "{e}");

        std::fs::write(
            &path,
            format!("{HEADER}\n{}\n{good}\n", "x".repeat(MAX_LINE + 10)),
        )
        .unwrap();
        let e = load(&path, WIDE).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");

        assert!(
            load(&dir.path().join("none"), WIDE)
                .unwrap()
                .events
                .is_empty()
        );
    }

    #[test]
    fn replay_moves_transfer_ids_aside_and_ends_what_never_ended() {
        let mac = "52:54:00:00:00:01";
        let events = vec![
            started(1, 1, mac),
            Event {
                at: 2,
                kind: EventKind::TransferDone {
                    id: 1,
                    bytes: 1,
                    millis: 1,
                },
            },
            started(3, 2, mac),
            // An end whose start the bounds cut.
            Event {
                at: 4,
                kind: EventKind::TransferDone {
                    id: 9,
                    bytes: 1,
                    millis: 1,
                },
            },
        ];
        let out = replay(events);
        assert_eq!(out.len(), 4);
        let ids: Vec<u64> = out
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::TransferStarted { id, .. }
                | EventKind::TransferDone { id, .. }
                | EventKind::TransferFailed { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(
            ids,
            vec![
                REPLAYED_IDS,
                REPLAYED_IDS,
                REPLAYED_IDS + 1,
                REPLAYED_IDS + 1
            ]
        );
        assert!(matches!(
            &out[3].kind,
            EventKind::TransferFailed { reason, .. } if reason.contains("stopped")
        ));
    }

    #[tokio::test]
    async fn the_recorder_writes_history_in_batches_and_leaves_leases_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let bus = Bus::new(64);
        let (replayed, recorder) = restore(&path, WIDE, &bus);
        assert!(replayed.is_empty());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(recorder.run(cancel.clone()));
        bus.emit(seen(0, "52:54:00:00:00:01").kind);
        bus.emit(EventKind::LeaseBound {
            mac: "52:54:00:00:00:01".parse().unwrap(),
            ip: "10.0.0.5".parse().unwrap(),
            hostname: None,
            expires: 0,
            fixed: false,
        });
        // A transfer without a MAC is nobody's history, nor its end.
        bus.emit(EventKind::TransferDone {
            id: 77,
            bytes: 1,
            millis: 1,
        });
        cancel.cancel();
        task.await.unwrap();
        let l = load(&path, WIDE).unwrap();
        assert_eq!(l.events.len(), 1, "{:?}", l.events);
        assert!(matches!(l.events[0].kind, EventKind::DhcpSeen(_)));
    }

    #[test]
    fn a_flooding_machine_is_sampled_per_second_and_others_are_not() {
        let bus = Bus::new(64);
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::new(&dir.path().join("h.jsonl"), WIDE, &bus, 0);
        let limit = REPEATS_PER_SECOND as usize;
        let recorded = |r: &mut Recorder, e: Event| r.line_of(&e).is_some();
        // 1,000 DHCP packets of one machine within one second: the first
        // `limit` are history, the rest are counted.
        let first = (0..1000)
            .filter(|i| recorded(&mut r, seen(5_000 + i, "52:54:00:00:00:01")))
            .count();
        assert_eq!(first, limit);
        // Another machine in the same second is not held back by it.
        assert!(recorded(&mut r, seen(5_500, "52:54:00:00:00:02")));
        // A transfer of the flooding machine is always history.
        assert!(recorded(&mut r, started(5_600, 9, "52:54:00:00:00:01")));
        // The next second starts afresh.
        let next = (0..100)
            .filter(|i| recorded(&mut r, seen(6_000 + i, "52:54:00:00:00:01")))
            .count();
        assert_eq!(next, limit);
        // A late event of the second before does not start a fresh count.
        assert!(!recorded(&mut r, seen(5_999, "52:54:00:00:00:01")));
        // Said once, then not again within the minute.
        let skipped = (1000 - limit + 100 - limit + 1) as u64;
        assert_eq!(r.flood.report(100_000), Some(skipped));
        assert!(!recorded(&mut r, seen(6_500, "52:54:00:00:00:01")));
        assert_eq!(r.flood.report(100_001), None);
        assert_eq!(r.flood.report(160_000), Some(1));
    }
}
