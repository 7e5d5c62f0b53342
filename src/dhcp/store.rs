//! Persistent leases: an append-only journal with compaction.
//!
//! Every binding and release is one JSON line, appended and `fdatasync`ed
//! before the DHCPACK leaves, so after `kill -9` no acknowledged lease is
//! lost. Offers are not persisted (a client whose offer is forgotten simply
//! asks again). Replay applies the records in order; a torn last line — a
//! crash mid-write — is ignored. When the journal holds many more records
//! than live leases it is rewritten as a snapshot (temp file, fsync, rename),
//! so it never grows without bound.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::handler::Persist;
use super::leases::{Lease, LeaseState, LeaseTable};
use crate::clock::Millis;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    Bind(Lease),
    Release {
        ip: std::net::Ipv4Addr,
        mac: crate::ident::Mac,
    },
}

/// What replay found, for the log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replayed {
    pub records: usize,
    pub live: usize,
    /// Unreadable lines (a torn write at the end is normal after a crash).
    pub skipped: usize,
}

/// Where lease changes are made durable before any reply leaves: the
/// journal file, or in tests one that fails on demand. Writing and syncing
/// are apart so that the sync runs off the lease lock, on its own thread,
/// while the next batch is decided (see [`super::commit`]).
pub trait LeaseJournal: Send {
    /// Writes `changes` without waiting for the disk; `table` is the state
    /// after them, for compaction.
    fn append(&mut self, changes: &[Persist], table: &LeaseTable) -> std::io::Result<Appended>;

    /// Something that makes everything appended so far durable, to run
    /// without the lease lock held.
    fn syncer(&self) -> std::io::Result<Syncer>;
}

/// Makes a journal's writes durable (`fdatasync` on a duplicate of its file).
pub type Syncer = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// What an append left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written; durable after the next sync.
    Written,
    /// Durable already, with everything before it: the journal was
    /// compacted into a synced snapshot of the table.
    Durable,
}

impl LeaseJournal for LeaseStore {
    fn append(&mut self, changes: &[Persist], table: &LeaseTable) -> std::io::Result<Appended> {
        LeaseStore::append(self, changes, table)
    }

    fn syncer(&self) -> std::io::Result<Syncer> {
        let file = self.file.try_clone()?;
        Ok(Box::new(move || file.sync_data()))
    }
}

pub struct LeaseStore {
    path: PathBuf,
    file: File,
    /// Records in the journal since the last compaction.
    records: usize,
}

/// Rewrite the journal when it holds this many records more than live leases.
const COMPACT_SLACK: usize = 10_000;

impl LeaseStore {
    /// Opens (or creates) the journal and replays it into a table; expired
    /// leases are dropped as of `now`.
    pub fn open(path: &Path, now: Millis) -> std::io::Result<(LeaseStore, LeaseTable, Replayed)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut table = LeaseTable::default();
        let mut stats = Replayed::default();
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Record>(&line) {
                    Ok(Record::Bind(lease)) => {
                        stats.records += 1;
                        table.restore(lease);
                    }
                    Ok(Record::Release { ip, mac }) => {
                        stats.records += 1;
                        table.release(ip, &mac);
                    }
                    Err(_) => stats.skipped += 1,
                }
            }
        }
        table.expire(now);
        stats.live = table.len();
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut store = LeaseStore {
            path: path.to_path_buf(),
            file,
            records: stats.records,
        };
        // Start from a clean snapshot: drops expired records and any torn line.
        store.compact(&table)?;
        Ok((store, table, stats))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Persists several changes with one sync, here and now (tools,
    /// benchmarks; the server syncs on its own thread instead).
    pub fn commit(&mut self, changes: &[Persist], table: &LeaseTable) -> std::io::Result<()> {
        if self.append(changes, table)? == Appended::Written && !changes.is_empty() {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes the records of `changes`, unsynced. When the journal holds
    /// many more records than live leases, rewrites it as a synced snapshot
    /// of `table` instead, which makes everything durable at once.
    pub fn append(&mut self, changes: &[Persist], table: &LeaseTable) -> std::io::Result<Appended> {
        if changes.is_empty() {
            return Ok(Appended::Written);
        }
        let mut buf = Vec::new();
        for change in changes {
            let record = match change {
                Persist::Bind(l) => Record::Bind(l.clone()),
                Persist::Release(l) => Record::Release {
                    ip: l.ip,
                    mac: l.mac,
                },
            };
            buf.extend(serde_json::to_vec(&record).map_err(std::io::Error::other)?);
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.records += changes.len();
        if self.records > table.len() + COMPACT_SLACK {
            // A failed compaction only leaves the journal longer: the
            // records are written, and the next sync makes them durable.
            match self.compact(table) {
                Ok(()) => return Ok(Appended::Durable),
                Err(e) => {
                    tracing::warn!(error = %e, file = %self.path.display(), "lease journal compaction failed")
                }
            }
        }
        Ok(Appended::Written)
    }

    /// Persists one binding. Call before sending the DHCPACK.
    pub fn bind(&mut self, lease: &Lease, table: &LeaseTable) -> std::io::Result<()> {
        self.commit(&[Persist::Bind(lease.clone())], table)
    }

    /// Persists one release (or decline, or an operator's release).
    pub fn release(&mut self, lease: &Lease, table: &LeaseTable) -> std::io::Result<()> {
        self.commit(&[Persist::Release(lease.clone())], table)
    }

    /// Rewrites the journal as one record per bound lease, atomically.
    pub fn compact(&mut self, table: &LeaseTable) -> std::io::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.compact"));
        let mut out = Vec::new();
        let mut live: Vec<&Lease> = table
            .iter()
            .filter(|l| l.state == LeaseState::Bound)
            .collect();
        live.sort_by_key(|l| l.ip);
        for lease in &live {
            out.extend(
                serde_json::to_vec(&Record::Bind((*lease).clone()))
                    .map_err(std::io::Error::other)?,
            );
            out.push(b'\n');
        }
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        // Opened before the rename, so once the snapshot is in place the
        // store appends to it: nothing after the rename can leave `file`
        // pointing at the unlinked old journal.
        let appender = OpenOptions::new().append(true).open(&tmp)?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = appender;
        self.records = live.len();
        File::open(dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::Mac;

    fn lease(n: u8, expires: Millis) -> Lease {
        Lease {
            ip: [10, 0, 0, n].into(),
            mac: Mac([2, 0, 0, 0, 0, n]),
            state: LeaseState::Bound,
            expires,
            fixed: false,
        }
    }

    #[test]
    fn bindings_and_releases_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.jsonl");
        let (mut store, mut table, _) = LeaseStore::open(&path, 0).unwrap();
        let none = std::collections::HashMap::new();
        for n in 1..=5 {
            table.hold(lease(n, 10_000), &none, 0).unwrap();
            store.bind(&lease(n, 10_000), &table).unwrap();
        }
        let gone = table
            .release([10, 0, 0, 2].into(), &Mac([2, 0, 0, 0, 0, 2]))
            .unwrap();
        store.release(&gone, &table).unwrap();
        drop(store); // no clean shutdown needed: every record was synced
        let (_, table, stats) = LeaseStore::open(&path, 100).unwrap();
        assert_eq!(
            stats,
            Replayed {
                records: 6,
                live: 4,
                skipped: 0
            }
        );
        assert!(table.get([10, 0, 0, 2].into()).is_none());
        assert_eq!(
            table.of_mac(&Mac([2, 0, 0, 0, 0, 5])).unwrap().ip,
            std::net::Ipv4Addr::new(10, 0, 0, 5)
        );
    }

    #[test]
    fn a_torn_last_line_and_expired_leases_are_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.jsonl");
        let mut text = String::new();
        for (n, exp) in [(1, 50), (2, 5000)] {
            text += &serde_json::to_string(&Record::Bind(lease(n, exp))).unwrap();
            text += "\n";
        }
        text += "{\"op\":\"bind\",\"ip\":\"10.0.0.3\",\"ma"; // crash mid-write
        std::fs::write(&path, text).unwrap();
        let (_, table, stats) = LeaseStore::open(&path, 100).unwrap();
        assert_eq!(
            stats,
            Replayed {
                records: 2,
                live: 1,
                skipped: 1
            }
        );
        assert_eq!(table.len(), 1);
        let compacted = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            compacted.lines().count(),
            1,
            "rewritten as a clean snapshot: {compacted}"
        );
    }

    #[test]
    fn compaction_keeps_exactly_the_live_bindings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.jsonl");
        let (mut store, mut table, _) = LeaseStore::open(&path, 0).unwrap();
        let none = std::collections::HashMap::new();
        for round in 0..3u64 {
            for n in 1..=50 {
                let l = lease(n, 1_000_000 + round);
                table.hold(l.clone(), &none, 0).unwrap();
                store.bind(&l, &table).unwrap();
            }
        }
        store.compact(&table).unwrap();
        let (_, again, stats) = LeaseStore::open(&path, 0).unwrap();
        assert_eq!(stats.records, 50);
        assert_eq!(again.len(), 50);
        assert!(again.iter().all(|l| l.expires == 1_000_002));
    }
}
