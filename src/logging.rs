//! Where log lines go and what they look like: one sentence per event
//! (see `event::display`), each under its subsystem's tracing target, as
//! text or JSON, to stdout or to a file that can be reopened after
//! logrotate moved it.
//!
//! The filter is `info` for everything, then `RUST_LOG` on top: naming one
//! subsystem (`RUST_LOG=pxedeck::dhcp=debug`) raises that one and silences
//! nothing else. (A filter made of `RUST_LOG` alone turns every target it
//! does not name off, which left the console's log file empty.)

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::event::{EventKind, Level, Paced, Protocol, Subsystem};
use crate::live::LiveModel;

/// How each line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00Z  INFO pxedeck::dhcp: DISCOVER from …`
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields.message),
    /// for journald's JSON consumers and Loki.
    Json,
}

/// A log file that can be swapped for a fresh one at the same path: after
/// logrotate renamed it, [`LogFile::reopen`] (on SIGHUP) starts a new file
/// and lines stop going to the renamed one.
pub struct LogFile {
    path: PathBuf,
    file: Mutex<Arc<File>>,
}

impl LogFile {
    pub fn open(path: &Path) -> anyhow::Result<Arc<LogFile>> {
        Ok(Arc::new(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(Arc::new(open_append(path)?)),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again (creating it); the old file is closed once the
    /// last line being written to it is done.
    pub fn reopen(&self) -> anyhow::Result<()> {
        let fresh = Arc::new(open_append(&self.path)?);
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn current(&self) -> Arc<File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn open_append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the log file {}: {e}", path.display()))
}

/// One line's writer: the file that was current when the line began.
pub struct LineWriter(Arc<File>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// The handle tracing writes through.
#[derive(Clone)]
pub struct FileSink(pub Arc<LogFile>);

impl<'a> MakeWriter<'a> for FileSink {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter(self.0.current())
    }
}

/// `info` for every target, then `RUST_LOG`'s directives. A bare level in
/// `RUST_LOG` (`warn`, `debug`) replaces the `info`.
pub fn filter() -> EnvFilter {
    filter_from(std::env::var("RUST_LOG").ok().as_deref())
}

pub fn filter_from(rust_log: Option<&str>) -> EnvFilter {
    let given = rust_log.unwrap_or("").trim();
    let has_bare_level = given.split(',').any(|d| {
        d.trim()
            .parse::<tracing_subscriber::filter::LevelFilter>()
            .is_ok()
    });
    let text = if given.is_empty() {
        "info".to_string()
    } else if has_bare_level {
        given.to_string()
    } else {
        format!("info,{given}")
    };
    EnvFilter::builder().parse_lossy(text)
}

/// Installs the process's subscriber: lines to `file`, or stdout when
/// there is none (with colour only for a person at a terminal).
pub fn init(format: LogFormat, file: Option<Arc<LogFile>>) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter());
    // Another subscriber already installed (tests) wins; that is fine.
    let _ = match (format, file) {
        (LogFormat::Text, Some(f)) => builder.with_writer(FileSink(f)).with_ansi(false).try_init(),
        (LogFormat::Json, Some(f)) => builder
            .json()
            .with_writer(FileSink(f))
            .with_ansi(false)
            .try_init(),
        (LogFormat::Text, None) => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        (LogFormat::Json, None) => builder.json().with_ansi(false).try_init(),
    };
}

/// Writes one line under a subsystem's target. Tracing's targets must be
/// known where the macro is written, hence one arm per target and level.
pub fn line(subsystem: Subsystem, level: Level, text: &str) {
    macro_rules! at {
        ($target:literal) => {
            match level {
                Level::Error => tracing::error!(target: $target, "{text}"),
                Level::Warn => tracing::warn!(target: $target, "{text}"),
                Level::Info => tracing::info!(target: $target, "{text}"),
                Level::Debug => tracing::debug!(target: $target, "{text}"),
            }
        };
    }
    match subsystem {
        Subsystem::Dhcp => at!("pxedeck::dhcp"),
        Subsystem::Tftp => at!("pxedeck::tftp"),
        Subsystem::Http => at!("pxedeck::http"),
        Subsystem::Inventory => at!("pxedeck::inventory"),
        Subsystem::Api => at!("pxedeck::api"),
        Subsystem::Bmc => at!("pxedeck::bmc"),
        Subsystem::Core => at!("pxedeck"),
    }
}

fn tracing_level(level: Level) -> tracing::Level {
    match level {
        Level::Error => tracing::Level::ERROR,
        Level::Warn => tracing::Level::WARN,
        Level::Info => tracing::Level::INFO,
        Level::Debug => tracing::Level::DEBUG,
    }
}

/// Transfers name their protocol only when they start; the end is logged
/// under the same subsystem. Bounded: past this many transfers in flight
/// the table starts over (ends then log as TFTP).
const TRANSFERS_REMEMBERED: usize = 65_536;

/// Turns events into log lines, remembering which protocol each transfer
/// in flight uses.
#[derive(Default)]
pub struct EventLog {
    transfers: HashMap<u64, Protocol>,
}

impl EventLog {
    /// The subsystem, level and sentence for one event; None for progress
    /// samples, which are not happenings.
    pub fn describe(&mut self, kind: &EventKind) -> Option<(Subsystem, Level, String)> {
        self.classify(kind)
            .map(|(subsystem, level)| (subsystem, level, kind.to_string()))
    }

    /// Where one event is logged and at what level, keeping track of the
    /// transfers in flight; None for progress samples.
    fn classify(&mut self, kind: &EventKind) -> Option<(Subsystem, Level)> {
        let mut subsystem = kind.subsystem();
        match kind {
            EventKind::Progress { .. } => return None,
            EventKind::TransferStarted { id, protocol, .. } => {
                if self.transfers.len() >= TRANSFERS_REMEMBERED {
                    self.transfers.clear();
                }
                self.transfers.insert(*id, *protocol);
            }
            EventKind::TransferDone { id, .. } | EventKind::TransferFailed { id, .. } => {
                if let Some(Protocol::Http) = self.transfers.remove(id) {
                    subsystem = Subsystem::Http;
                }
            }
            _ => {}
        }
        Some((subsystem, kind.level()))
    }

    /// Logs one event. The sentence is only made when its level can be
    /// written at all: under a mass boot at `RUST_LOG=warn`, formatting
    /// every DHCP packet's line only for the filter to drop it cost as
    /// much as the lease journal.
    pub fn log(&mut self, kind: &EventKind) {
        if let Some((subsystem, level)) = self.classify(kind)
            && tracing_level(level) <= tracing::level_filters::LevelFilter::current()
        {
            line(subsystem, level, &kind.to_string());
        }
    }
}

/// Logs what the start-up said, then one line per event folded after it:
/// stdout for `serve`, `pxedeck.log` for the console and the demo.
pub async fn log_events(live: Arc<LiveModel>) {
    let mut log = EventLog::default();
    // Start-up events are already folded into the model: log what they
    // said, then every event folded after them. The snapshot is dropped
    // once read: it can be large.
    let mut rx = {
        let (startup, rx) = live.snapshot_and_subscribe();
        if let Some(server) = startup.server {
            log.log(&EventKind::Started(server));
        }
        let inv = &startup.inventory;
        if inv.last_reload.is_some() {
            line(
                Subsystem::Inventory,
                Level::Info,
                &format!(
                    "inventory loaded: {} machines in {} groups, {} profiles",
                    inv.machines,
                    inv.groups.len(),
                    inv.profiles.len()
                ),
            );
        }
        if let Some(p) = inv.problems.first() {
            line(
                Subsystem::Inventory,
                Level::Error,
                &format!("the inventory has {} problem(s): {p}", inv.problems.len()),
            );
        }
        for l in &startup.log {
            line(Subsystem::named(&l.target), l.level, &l.message);
        }
        Paced::new(rx)
    };
    loop {
        match rx.recv().await {
            Ok(e) => log.log(&e.kind),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(target: "pxedeck", "the log fell behind: {n} events not logged");
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_subsystem_named_in_rust_log_silences_nothing_else() {
        let f = filter_from(Some("pxedeck::dhcp=debug")).to_string();
        assert!(f.contains("pxedeck::dhcp=debug"), "{f}");
        assert!(f.contains("info"), "{f}");
        assert_eq!(filter_from(None).to_string(), "info");
        assert_eq!(filter_from(Some("warn")).to_string(), "warn");
        let both = filter_from(Some("warn,pxedeck::http=debug")).to_string();
        assert!(!both.contains("info"), "{both}");
    }

    #[test]
    fn a_transfer_ends_under_the_protocol_it_started_with() {
        let mut log = EventLog::default();
        let start = EventKind::TransferStarted {
            id: 3,
            protocol: Protocol::Http,
            client: "10.0.0.5:40000".parse().unwrap(),
            mac: None,
            path: "vmlinuz".into(),
            size: Some(10),
            blksize: None,
            windowsize: None,
        };
        let (s, _, text) = log.describe(&start).unwrap();
        assert_eq!(s, Subsystem::Http);
        assert_eq!(
            text,
            "HTTP transfer #3: vmlinuz to 10.0.0.5:40000 (10 bytes)"
        );
        let done = EventKind::TransferDone {
            id: 3,
            bytes: 10,
            millis: 1,
        };
        assert_eq!(log.describe(&done).unwrap().0, Subsystem::Http);
        assert!(log.transfers.is_empty(), "forgotten once ended");
        assert!(
            log.describe(&EventKind::Progress { samples: vec![] })
                .is_none()
        );
    }

    #[test]
    fn a_reopened_file_takes_the_next_lines_and_the_moved_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pxedeck.log");
        let file = LogFile::open(&path).unwrap();
        let sink = FileSink(file.clone());
        sink.make_writer().write_all(b"before\n").unwrap();
        std::fs::rename(&path, dir.path().join("pxedeck.log.1")).unwrap();
        sink.make_writer().write_all(b"still old\n").unwrap();
        file.reopen().unwrap();
        sink.make_writer().write_all(b"after\n").unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("pxedeck.log.1"), "before\nstill old\n");
        assert_eq!(read("pxedeck.log"), "after\n");
    }
}
