//! Held boot files leave by `sendfile(2)`, not by copy.
//!
//! hyper writes a body chunk by handing its bytes to the connection. For a
//! kernel or initrd held in the [`FileCache`], those bytes are a slice of
//! the held copy, and the same bytes sit in the page cache of the file it
//! was read from. Copying them from memory into the socket was 43 % of the
//! server's CPU in the 500-machine boot (`_copy_from_iter` under
//! `tcp_sendmsg`); nginx's `sendfile` hands the kernel page references
//! instead. So this stream, under hyper, looks each slice up
//! ([`FileCache::on_disk`]) and sends a held one with `sendfile` from the
//! open file at that offset; anything else (headers, scripts, the bytes of
//! a file changed since it was read) is written as before. hyper sees an
//! ordinary writer either way; nix's `sendfile` is safe.
//!
//! A held file was read moments before it is sent, so its pages are in the
//! page cache; should memory pressure have evicted them, `sendfile` reads
//! them back on this thread, as nginx without `aio` does.
//!
//! `http.sendfile: false` turns it off. The cost moves to the receiver:
//! a client on the same host (the simulator of `pxedeck bench`) spends
//! more CPU on spliced pages than on copied ones, as it does against nginx
//! (docs/benchmarks.md); a booting machine behind a NIC does not.

use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::filecache::FileCache;

/// A connection whose writes of held files' bytes go by `sendfile`.
pub struct ZeroCopy {
    stream: TcpStream,
    /// None: every byte is written as it is (`http.sendfile: false`, the
    /// API listener).
    held: Option<Arc<FileCache>>,
}

impl ZeroCopy {
    pub fn new(stream: TcpStream, held: Option<Arc<FileCache>>) -> ZeroCopy {
        ZeroCopy { stream, held }
    }

    /// Sends `len` bytes of `file` from `offset`; `Ok(0)` when the file
    /// has none there any more (truncated in place), so the caller writes
    /// the copy instead.
    fn send_file(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let Ok(mut at) = i64::try_from(offset) else {
            return Poll::Ready(Ok(0));
        };
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                nix::sys::sendfile::sendfile(&self.stream, file, Some(&mut at), len)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(n) => {
                    if let Some(held) = &self.held {
                        held.note_sent_from_disk(n as u64);
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// What a write call managed: more after `Pending` or an error would lose
/// the count of what was already written.
fn so_far(written: usize, outcome: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
    match outcome {
        _ if written > 0 => Poll::Ready(Ok(written)),
        other => other,
    }
}

impl AsyncRead for ZeroCopy {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopy {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(held) = &this.held else {
            return Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        };
        // hyper passes at most a few slices: the head, then body chunks.
        let on_disk: Vec<_> = bufs
            .iter()
            .map(|b| (!b.is_empty()).then(|| held.on_disk(b)).flatten())
            .collect();
        let mut written = 0;
        let mut i = 0;
        while i < bufs.len() {
            if let Some((file, offset)) = &on_disk[i] {
                let want = bufs[i].len();
                match this.send_file(cx, file, *offset, want) {
                    Poll::Ready(Ok(0)) => {} // written from memory below
                    Poll::Ready(Ok(n)) => {
                        written += n;
                        if n < want {
                            break;
                        }
                        i += 1;
                        continue;
                    }
                    other => return so_far(written, other),
                }
            }
            // A run of slices to copy (up to the next held one), in one
            // vectored write.
            let end = (i + 1..bufs.len())
                .find(|&j| on_disk[j].is_some())
                .unwrap_or(bufs.len());
            let run = &bufs[i..end];
            let want: usize = run.iter().map(|b| b.len()).sum();
            match Pin::new(&mut this.stream).poll_write_vectored(cx, run) {
                Poll::Ready(Ok(n)) => {
                    written += n;
                    if n < want {
                        break;
                    }
                    i = end;
                }
                other => return so_far(written, other),
            }
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A connected pair on loopback: the server end wrapped.
    async fn pair(held: Arc<FileCache>) -> (ZeroCopy, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (
            ZeroCopy::new(accepted.unwrap().0, Some(held)),
            client.unwrap(),
        )
    }

    /// What the wrapped end writes (a head from memory, then `body`),
    /// as the other end reads it.
    async fn sent(mut server: ZeroCopy, mut client: TcpStream, body: bytes::Bytes) -> Vec<u8> {
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let head = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        let bufs = [IoSlice::new(&head), IoSlice::new(&body)];
        let mut done = 0;
        let total = head.len() + body.len();
        while done < total {
            // As hyper does: the slices not yet written, again.
            let rest: Vec<IoSlice<'_>> = if done < head.len() {
                vec![IoSlice::new(&head[done..]), bufs[1]]
            } else {
                vec![IoSlice::new(&body[done - head.len()..])]
            };
            done += server.write_vectored(&rest).await.unwrap();
        }
        server.shutdown().await.unwrap();
        drop(server);
        reader.await.unwrap()
    }

    /// A file of `len` pattern bytes in `dir`, read into a fresh cache.
    async fn held_file(dir: &std::path::Path, len: usize) -> (Arc<FileCache>, bytes::Bytes) {
        let path = dir.join("boot-file");
        std::fs::write(&path, pattern(len)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let held = Arc::new(FileCache::default());
        let data = held.in_memory(&path, &meta).await.unwrap();
        (held, data)
    }

    #[tokio::test]
    async fn a_held_files_bytes_go_by_sendfile_and_arrive_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (held, data) = held_file(dir.path(), 3 << 20).await;
        let body = data.slice(1000..(2 << 20) + 17);
        let (server, client) = pair(held.clone()).await;
        let got = sent(server, client, body.clone()).await;
        assert_eq!(&got[..19], b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(got[19..] == body[..], "the bytes differ");
        assert_eq!(
            held.sent_from_disk(),
            body.len() as u64,
            "all of it by sendfile"
        );
    }

    #[tokio::test]
    async fn a_file_changed_since_it_was_read_is_sent_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (held, data) = held_file(dir.path(), 1 << 20).await;
        let path = dir.path().join("boot-file");
        // Rewritten in place, same length: the page cache no longer holds
        // what the copy does.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &file, &vec![0u8; 1 << 20]).unwrap();
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
            .unwrap();
        let (server, client) = pair(held.clone()).await;
        let got = sent(server, client, data.clone()).await;
        assert!(
            got[19..] == data[..],
            "the copy's bytes, not the new file's"
        );
        assert_eq!(held.sent_from_disk(), 0);
    }

    #[tokio::test]
    async fn other_bytes_are_written_as_they_are() {
        let held = Arc::new(FileCache::default());
        let (server, client) = pair(held.clone()).await;
        let body = bytes::Bytes::from(pattern(300_000));
        let got = sent(server, client, body.clone()).await;
        assert!(got[19..] == body[..]);
        assert_eq!(held.sent_from_disk(), 0);
    }
}
