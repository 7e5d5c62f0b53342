//! Boot files kept in memory while they are hot.
//!
//! A mass boot sends the same loader, kernel and initrd to every machine.
//! Reading each copy from the page cache costs a `read` per chunk, a trip
//! to the blocking pool and a copy into a fresh buffer; from here it costs
//! a reference count, and every transfer of a file shares one copy
//! (`Bytes` slices), so memory does not grow with the number of clients.
//! Measured on the 500-machine boot: this was a fifth of pxedeck's CPU.
//!
//! A file is known by path, length, mtime and inode: replacing it (even by
//! rename, even with the same size) makes the next request read it again.
//! The least recently used files are evicted past the budget. Files larger
//! than `max_file` (live images, ISOs) are never held: they stream from
//! disk, over HTTP and TFTP alike.
//!
//! Each held copy keeps the file it was read from open, so a writer can
//! find where a slice of the copy lies on disk ([`FileCache::on_disk`])
//! and have the kernel send it from the page cache (`http::zerocopy`).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// How long a request waits for another to read a file in before it
/// streams the file itself.
const LOAD_WAIT: Duration = Duration::from_secs(10);

/// What was loaded: equal identities mean the file did not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Identity {
    fn of(meta: &Metadata) -> Identity {
        Identity {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        }
    }
}

#[derive(Debug)]
enum Slot {
    /// One request is reading it in; the others wait for it. The flag turns
    /// true when it is in; a dropped sender means the load failed.
    Loading(tokio::sync::watch::Receiver<bool>),
    Ready {
        identity: Identity,
        data: Bytes,
        /// The file `data` was read from, open.
        file: Arc<File>,
        used: u64,
    },
}

#[derive(Debug, Default)]
struct Entries {
    slots: HashMap<PathBuf, Slot>,
    /// Bytes held by ready slots.
    total: usize,
    /// A use counter for least-recently-used eviction.
    clock: u64,
}

/// A copy to hold: its bytes and the open file they came from.
struct Held {
    identity: Identity,
    data: Bytes,
    file: Arc<File>,
}

/// The whole of `path`, and the file open, for [`FileCache::on_disk`].
fn read_open(path: &Path) -> std::io::Result<(Bytes, Arc<File>)> {
    let mut file = File::open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok((Bytes::from(data), Arc::new(file)))
}

/// What a streaming reader should do with a file.
#[derive(Debug)]
pub enum Lookup {
    /// Serve these bytes.
    Hit(Bytes),
    /// Not held: the caller reads it in with [`FileCache::load`] (blocking)
    /// and tells the others through this sender when done.
    Load(Loading),
    /// Another request is reading it in: wait for this, then look again.
    /// Reading a boot file from the page cache takes milliseconds, and
    /// waiting keeps a wave of clients from each streaming its own copy.
    Wait(tokio::sync::watch::Receiver<bool>),
    /// Too large to hold: stream from disk.
    Stream,
}

/// The claim on loading one file; waiters are released when it is
/// finished or dropped.
#[derive(Debug)]
pub struct Loading(tokio::sync::watch::Sender<bool>);

#[derive(Debug)]
pub struct FileCache {
    budget: usize,
    max_file: usize,
    entries: Mutex<Entries>,
    /// Bytes of held copies sent from their files by `sendfile`.
    sent_from_disk: std::sync::atomic::AtomicU64,
}

impl Default for FileCache {
    /// 512 MiB in all, files up to 192 MiB: a loader, a few kernels and
    /// initrds of the profiles in use.
    fn default() -> Self {
        FileCache::new(512 << 20, 192 << 20)
    }
}

impl FileCache {
    pub fn new(budget: usize, max_file: usize) -> FileCache {
        FileCache {
            budget,
            max_file: max_file.min(budget),
            entries: Mutex::default(),
            sent_from_disk: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Slots are replaced whole, so a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fits(&self, meta: &Metadata) -> bool {
        meta.len() <= self.max_file as u64
    }

    /// The held copy of `path` if it is still the file `meta` describes.
    fn hit(entries: &mut Entries, path: &Path, meta: &Metadata) -> Option<Bytes> {
        entries.clock += 1;
        let now = entries.clock;
        match entries.slots.get_mut(path) {
            Some(Slot::Ready {
                identity,
                data,
                used,
                ..
            }) if *identity == Identity::of(meta) => {
                *used = now;
                Some(data.clone())
            }
            _ => None,
        }
    }

    /// For streaming readers (HTTP): the held copy, or what to do instead.
    pub fn lookup(&self, path: &Path, meta: &Metadata) -> Lookup {
        let mut entries = self.lock();
        if let Some(data) = Self::hit(&mut entries, path, meta) {
            return Lookup::Hit(data);
        }
        if !self.fits(meta) {
            return Lookup::Stream;
        }
        if let Some(Slot::Loading(done)) = entries.slots.get(path) {
            return Lookup::Wait(done.clone());
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        if let Some(Slot::Ready { data, .. }) = entries.slots.insert(path.into(), Slot::Loading(rx))
        {
            entries.total -= data.len(); // a stale copy
        }
        Lookup::Load(Loading(tx))
    }

    /// Reads `path` into the cache after [`Lookup::Load`] (blocking: call
    /// from a blocking thread), then releases the waiters. On failure the
    /// claim is dropped, so a later request tries again.
    pub fn load(&self, claim: Loading, path: &Path, meta: &Metadata) -> std::io::Result<Bytes> {
        let read = read_open(path);
        if let Ok((data, file)) = &read {
            self.keep(path, meta, data, file); // replaces the loading slot
        }
        let mut entries = self.lock();
        if matches!(entries.slots.get(path), Some(Slot::Loading(_))) {
            entries.slots.remove(path); // failed, or not kept
        }
        drop(entries);
        let (data, _) = read?;
        let _ = claim.0.send(true);
        Ok(data)
    }

    /// For streaming readers (TFTP and HTTP): the file from memory — held
    /// already, read in now by this request, or read in by another request
    /// this one waits for. None: stream it from disk (too large to hold,
    /// or it changed while being read).
    pub async fn in_memory(self: &Arc<Self>, path: &Path, meta: &Metadata) -> Option<Bytes> {
        for _ in 0..2 {
            match self.lookup(path, meta) {
                Lookup::Hit(data) => return Some(data),
                Lookup::Stream => return None,
                Lookup::Load(claim) => {
                    let (files, path, meta) = (self.clone(), path.to_path_buf(), meta.clone());
                    // Finishes (and releases the waiters) even if this
                    // client goes away meanwhile.
                    let read = tokio::task::spawn_blocking(move || {
                        let data = files.load(claim, &path, &meta).ok()?;
                        (data.len() as u64 == meta.len()).then_some(data)
                    });
                    return read.await.ok().flatten();
                }
                Lookup::Wait(mut loaded) => {
                    let _ = tokio::time::timeout(LOAD_WAIT, loaded.wait_for(|done| *done)).await;
                }
            }
        }
        None
    }

    /// A whole file in memory: the held copy, or the file read now and held
    /// if it fits (blocking). Reads a file too large to hold whole too, so
    /// the servers use [`FileCache::in_memory`] and stream the rest.
    pub fn read(&self, path: &Path, meta: &Metadata) -> std::io::Result<Bytes> {
        if let Some(data) = Self::hit(&mut self.lock(), path, meta) {
            return Ok(data);
        }
        let (data, file) = read_open(path)?;
        self.keep(path, meta, &data, &file);
        Ok(data)
    }

    /// Holds `data`, just read from `file` (opened at `path`), if it fits
    /// and is still the file `meta` describes (it may have changed while
    /// it was read).
    fn keep(&self, path: &Path, meta: &Metadata, data: &Bytes, file: &Arc<File>) {
        let unchanged = file.metadata().is_ok_and(|now| {
            Identity::of(&now) == Identity::of(meta) && now.len() == data.len() as u64
        });
        if unchanged && self.fits(meta) {
            let held = Held {
                identity: Identity::of(meta),
                data: data.clone(),
                file: file.clone(),
            };
            self.insert(&mut self.lock(), path, held);
        }
    }

    /// Where `bytes`, a slice of a held copy (a body chunk is one), lie on
    /// disk: the open file and the offset, while that file is unchanged
    /// since it was read (same length, mtime and inode, so the page cache
    /// holds the same bytes; a file replaced by rename is still the old
    /// inode here). None: not a held copy's bytes, or the file changed —
    /// then the bytes in memory are what to send.
    pub fn on_disk(&self, bytes: &[u8]) -> Option<(Arc<File>, u64)> {
        let at = bytes.as_ptr() as usize;
        let (file, identity, offset) = self.lock().slots.values().find_map(|slot| match slot {
            Slot::Ready {
                identity,
                data,
                file,
                ..
            } => {
                let start = data.as_ptr() as usize;
                (at >= start && at + bytes.len() <= start + data.len())
                    .then(|| (file.clone(), *identity, (at - start) as u64))
            }
            Slot::Loading(_) => None,
        })?;
        let now = file.metadata().ok()?;
        (Identity::of(&now) == identity).then_some((file, offset))
    }

    fn insert(&self, entries: &mut Entries, path: &Path, held: Held) {
        let Held {
            identity,
            data,
            file,
        } = held;
        if let Some(Slot::Ready { data: old, .. }) = entries.slots.remove(path) {
            entries.total -= old.len();
        }
        while entries.total + data.len() > self.budget {
            let oldest = entries
                .slots
                .iter()
                .filter_map(|(p, s)| match s {
                    Slot::Ready { used, .. } => Some((*used, p.clone())),
                    Slot::Loading(_) => None,
                })
                .min();
            let Some((_, victim)) = oldest else { break };
            if let Some(Slot::Ready { data, .. }) = entries.slots.remove(&victim) {
                entries.total -= data.len();
            }
        }
        entries.clock += 1;
        entries.total += data.len();
        let used = entries.clock;
        entries.slots.insert(
            path.into(),
            Slot::Ready {
                identity,
                data,
                file,
                used,
            },
        );
    }

    /// Counts bytes a writer sent from [`FileCache::on_disk`]'s answer.
    pub fn note_sent_from_disk(&self, n: u64) {
        self.sent_from_disk
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes of held copies sent by the kernel from their files.
    pub fn sent_from_disk(&self) -> u64 {
        self.sent_from_disk
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes held (tests check eviction with it).
    pub fn held(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, Metadata) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        (path, meta)
    }

    #[test]
    fn loads_once_then_hits_and_notices_a_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(1000, 500);
        let (path, meta) = file(dir.path(), "k", b"kernel one");
        let Lookup::Load(claim) = cache.lookup(&path, &meta) else {
            panic!("not a load")
        };
        // Others wait while it loads, and are told when it is in.
        let Lookup::Wait(mut done) = cache.lookup(&path, &meta) else {
            panic!("not a wait")
        };
        assert_eq!(&cache.load(claim, &path, &meta).unwrap()[..], b"kernel one");
        assert!(*done.borrow_and_update());
        match cache.lookup(&path, &meta) {
            Lookup::Hit(b) => assert_eq!(&b[..], b"kernel one"),
            other => panic!("{other:?}"),
        }
        // Replaced by rename with the same length: a new inode.
        let (tmp, _) = file(dir.path(), ".k.new", b"kernel two");
        std::fs::rename(&tmp, &path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let Lookup::Load(claim) = cache.lookup(&path, &meta) else {
            panic!("the replaced file is not loaded again")
        };
        assert_eq!(cache.held(), 0, "the stale copy is gone");
        assert_eq!(&cache.load(claim, &path, &meta).unwrap()[..], b"kernel two");
        assert_eq!(cache.held(), 10);
    }

    #[test]
    fn large_files_stream_and_the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(25, 10);
        let (big, big_meta) = file(dir.path(), "iso", &[0; 11]);
        assert!(matches!(cache.lookup(&big, &big_meta), Lookup::Stream));
        assert_eq!(cache.read(&big, &big_meta).unwrap().len(), 11);
        assert_eq!(cache.held(), 0);
        let (a, am) = file(dir.path(), "a", &[1; 10]);
        let (b, bm) = file(dir.path(), "b", &[2; 10]);
        let (c, cm) = file(dir.path(), "c", &[3; 10]);
        cache.read(&a, &am).unwrap();
        cache.read(&b, &bm).unwrap();
        cache.read(&a, &am).unwrap(); // a is now the more recent
        cache.read(&c, &cm).unwrap(); // evicts b
        assert_eq!(cache.held(), 20);
        assert!(matches!(cache.lookup(&a, &am), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(&c, &cm), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(&b, &bm), Lookup::Load(_)));
    }

    #[test]
    fn a_failed_load_can_be_retried() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(100, 100);
        let (path, meta) = file(dir.path(), "k", b"x");
        let Lookup::Load(claim) = cache.lookup(&path, &meta) else {
            panic!("not a load")
        };
        let Lookup::Wait(waiter) = cache.lookup(&path, &meta) else {
            panic!("not a wait")
        };
        std::fs::remove_file(&path).unwrap();
        assert!(cache.load(claim, &path, &meta).is_err());
        // The waiter is released (the sender is gone), and may try again.
        assert!(waiter.has_changed().is_err());
        assert!(matches!(cache.lookup(&path, &meta), Lookup::Load(_)));
    }
}
