//! Where a transfer's blocks come from: a file held in memory (sliced, no
//! copy) or a file on disk read a window at a time, in octet mode or
//! converted to netascii on the fly. A transfer holds at most about one
//! window of its file, never the whole file: four clients of a 300 MiB
//! image used to cost 1.2 GB, five netascii clients of a held 100 MiB file
//! a copy each.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// Bytes read from disk per trip to the blocking pool, at least.
const MIN_READ_AHEAD: usize = 64 * 1024;
/// And at most, whatever the window: the bound on a transfer's memory.
const MAX_READ_AHEAD: usize = 1024 * 1024;

/// A file's bytes as stored.
#[derive(Debug, Clone)]
pub enum Raw {
    /// In memory: the shared cache copy or a generated file.
    Held(Bytes),
    /// Open on disk; `len` as it was when the transfer started.
    Disk { file: Arc<File>, len: u64 },
}

impl Raw {
    pub fn len(&self) -> u64 {
        match self {
            Raw::Held(data) => data.len() as u64,
            Raw::Disk { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `len` bytes from `offset` (fewer only at the end of the file).
    async fn chunk(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        match self {
            Raw::Held(data) => {
                let start = (offset as usize).min(data.len());
                Ok(data.slice(start..start.saturating_add(len).min(data.len())))
            }
            Raw::Disk { file, .. } => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || read_at_most(&file, offset, len))
                    .await
                    .map_err(io::Error::other)?
            }
        }
    }
}

/// Reads until `len` bytes or the end of the file (blocking).
fn read_at_most(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf.into())
}

/// RFC 1350 netascii: line ends as CR LF, a bare CR as CR NUL.
pub fn to_netascii(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    netascii_into(data, &mut out);
    out
}

fn netascii_into(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            other => out.push(other),
        }
    }
}

/// The length of `raw` in netascii: one pass, a chunk at a time.
async fn netascii_len(raw: &Raw) -> io::Result<u64> {
    let raw = raw.clone();
    let count = |data: &[u8]| {
        data.len() as u64 + data.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64
    };
    tokio::task::spawn_blocking(move || match &raw {
        Raw::Held(data) => Ok(count(data)),
        Raw::Disk { file, len } => {
            let mut total = 0;
            let mut offset = 0;
            while offset < *len {
                let chunk = read_at_most(file, offset, MAX_READ_AHEAD)?;
                if chunk.is_empty() {
                    return Err(changed());
                }
                offset += chunk.len() as u64;
                total += count(&chunk);
            }
            Ok(total)
        }
    })
    .await
    .map_err(io::Error::other)?
}

fn changed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file changed while it was being sent",
    )
}

#[derive(Debug)]
enum Buffer {
    /// File bytes from `start` on (a slice of the held copy, or read ahead).
    Octet { start: u64, data: Bytes },
    /// Converted bytes from `start` on; `raw_at` is how far the file has
    /// been read and converted.
    Netascii {
        start: u64,
        data: Vec<u8>,
        raw_at: u64,
    },
}

/// The bytes one transfer sends, as it asks for them.
#[derive(Debug)]
pub struct Source {
    raw: Raw,
    buffer: Buffer,
    /// The length the client sees (netascii is longer than the file).
    size: u64,
    read_ahead: usize,
}

impl Source {
    /// A source for `raw` as octet bytes.
    pub fn octet(raw: Raw) -> Source {
        Source {
            size: raw.len(),
            raw,
            buffer: Buffer::Octet {
                start: 0,
                data: Bytes::new(),
            },
            read_ahead: MIN_READ_AHEAD,
        }
    }

    /// A source for `raw` converted to netascii (its length is counted in
    /// one pass first: the size goes in the OACK and decides the blocks).
    pub async fn netascii(raw: Raw) -> io::Result<Source> {
        Ok(Source {
            size: netascii_len(&raw).await?,
            raw,
            buffer: Buffer::Netascii {
                start: 0,
                data: Vec::new(),
                raw_at: 0,
            },
            read_ahead: MIN_READ_AHEAD,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads ahead about one window (`windowsize` × `blksize`), within the
    /// per-transfer bound.
    pub fn set_window(&mut self, windowsize: u16, blksize: u16) {
        let window = usize::from(windowsize.max(1)) * usize::from(blksize);
        self.read_ahead = window.clamp(MIN_READ_AHEAD, MAX_READ_AHEAD);
    }

    /// `len` bytes at `offset`. Nothing below `keep_from` (the first byte
    /// the client has not acknowledged) will be asked for again, so it is
    /// let go.
    pub async fn bytes(&mut self, offset: u64, len: usize, keep_from: u64) -> io::Result<&[u8]> {
        let end = offset + len as u64;
        match &mut self.buffer {
            Buffer::Octet { start, data } => {
                if offset < *start || end > *start + data.len() as u64 {
                    *data = self.raw.chunk(offset, len.max(self.read_ahead)).await?;
                    *start = offset;
                }
                let at = (offset - *start) as usize;
                data.get(at..at + len).ok_or_else(changed)
            }
            Buffer::Netascii {
                start,
                data,
                raw_at,
            } => {
                if offset < *start {
                    // Behind what was let go (never asked in practice):
                    // convert again from the top.
                    (*start, *raw_at) = (0, 0);
                    data.clear();
                }
                loop {
                    let done =
                        (keep_from.min(offset).saturating_sub(*start) as usize).min(data.len());
                    if done > 0 {
                        data.drain(..done);
                        *start += done as u64;
                    }
                    if *start + data.len() as u64 >= end {
                        break;
                    }
                    let chunk = self.raw.chunk(*raw_at, self.read_ahead).await?;
                    if chunk.is_empty() {
                        return Err(changed());
                    }
                    *raw_at += chunk.len() as u64;
                    netascii_into(&chunk, data);
                }
                let at = (offset - *start) as usize;
                Ok(&data[at..at + len])
            }
        }
    }

    /// Bytes this source holds now (tests check the bound with it).
    pub fn buffered(&self) -> usize {
        match &self.buffer {
            Buffer::Octet { data, .. } => data.len(),
            Buffer::Netascii { data, .. } => data.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| match i % 37 {
                0 => b'\n',
                19 => b'\r',
                _ => b'a' + (i % 26) as u8,
            })
            .collect()
    }

    fn on_disk(bytes: &[u8]) -> (tempfile::NamedTempFile, Raw) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        let file = File::open(f.path()).unwrap();
        let raw = Raw::Disk {
            file: Arc::new(file),
            len: bytes.len() as u64,
        };
        (f, raw)
    }

    /// Reads a whole source the way a transfer does: block by block, with
    /// a step back now and then (a resend from the last ACK).
    async fn read_all(source: &mut Source, blksize: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        let mut step = 0;
        while offset < source.size() {
            let len = (source.size() - offset).min(blksize as u64) as usize;
            let keep_from = offset.saturating_sub(blksize as u64 * 3);
            let got = source.bytes(offset, len, keep_from).await.unwrap().to_vec();
            step += 1;
            if step % 7 == 0 && offset >= keep_from + blksize as u64 {
                // Re-read an earlier block still in the window.
                let back = offset - blksize as u64;
                let again = source.bytes(back, blksize, keep_from).await.unwrap();
                assert_eq!(again, &out[back as usize..back as usize + blksize]);
            }
            out.extend_from_slice(&got);
            offset += len as u64;
            assert!(
                source.buffered() <= 3 * MAX_READ_AHEAD,
                "{}",
                source.buffered()
            );
        }
        out
    }

    #[tokio::test]
    async fn octet_and_netascii_from_memory_and_disk_are_byte_exact() {
        for len in [0, 1, 511, 512, 513, 200_000, 1_500_000] {
            let data = text(len);
            let (_keep, disk) = on_disk(&data);
            for raw in [Raw::Held(data.clone().into()), disk] {
                for blksize in [512, 1468] {
                    let mut octet = Source::octet(raw.clone());
                    octet.set_window(16, blksize as u16);
                    assert_eq!(read_all(&mut octet, blksize).await, data, "octet {len}");
                    let mut ascii = Source::netascii(raw.clone()).await.unwrap();
                    ascii.set_window(4, blksize as u16);
                    let want = to_netascii(&data);
                    assert_eq!(ascii.size(), want.len() as u64);
                    assert_eq!(read_all(&mut ascii, blksize).await, want, "netascii {len}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_file_that_shrinks_underneath_is_an_error_not_a_panic() {
        let data = text(300_000);
        let (f, raw) = on_disk(&data);
        f.as_file().set_len(1000).unwrap();
        let mut s = Source::octet(raw.clone());
        assert!(s.bytes(200_000, 512, 0).await.is_err());
        let mut s = Source::netascii(Raw::Held(data.into())).await.unwrap();
        s.raw = raw;
        assert!(s.bytes(200_000, 512, 0).await.is_err());
    }
}
