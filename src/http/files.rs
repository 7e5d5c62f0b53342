//! Files under the boot root over HTTP: what UEFI HTTP Boot firmware and
//! iPXE download. Exact lengths, single byte ranges, HEAD, no listings, no
//! redirects (firmware does not follow them), streamed from disk and tracked
//! as transfers.

use std::io::SeekFrom;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{HttpResponse, HttpState, to_v4};
use crate::bootfs::FsError;
use crate::event::{EventKind, Protocol};
use crate::progress::Handle;

/// Read size per chunk: large enough that a 1 GiB stream costs few trips
/// to the blocking pool, small enough that 200 streams stay flat in memory.
const CHUNK: usize = 256 * 1024;

/// A byte range to send, inclusive start, exclusive end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    Whole,
    Part(Span),
    Unsatisfiable,
}

/// Parses a `Range` header (RFC 9110 §14). Only single ranges are honoured;
/// a list, another unit or a malformed value is ignored and the whole file
/// served, which the RFC allows and every client handles.
pub fn wanted(range: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let span = match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => return Wanted::Unsatisfiable,
            Some(n) => Span {
                start: size.saturating_sub(n),
                end: size,
            },
            None => return Wanted::Whole,
        },
        // bytes=A-: from A to the end.
        (false, true) => match parse(first) {
            Some(a) => Span {
                start: a,
                end: size,
            },
            None => return Wanted::Whole,
        },
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b => Span {
                start: a,
                end: b.saturating_add(1).min(size),
            },
            _ => return Wanted::Whole,
        },
        (true, true) => return Wanted::Whole,
    };
    if span.start >= size {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(span)
    }
}

pub(super) fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("efi") => "application/efi",
        Some("ipxe" | "txt" | "cfg" | "conf") => "text/plain; charset=utf-8",
        Some("json" | "ign") => "application/json",
        Some("iso") => "application/x-iso9660-image",
        Some("html" | "htm") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Decodes `%XX` escapes; None for malformed escapes or non-UTF-8.
pub fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Every path no other route claims: a file under the boot root.
pub async fn serve(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state.stats.request();
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let Some(request) = percent_decode(uri.path()) else {
        return plain(StatusCode::BAD_REQUEST, "malformed path\n");
    };
    let relative = request.trim_start_matches('/');
    // Resolving walks and stats the path: blocking file-system calls, kept
    // off the async workers so a slow disk cannot stall other requests.
    let lookup = {
        let fs = state.fs.clone();
        let relative = relative.to_string();
        tokio::task::spawn_blocking(move || fs.find(&relative)).await
    };
    let Ok(lookup) = lookup else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "lookup failed\n");
    };
    let found = match lookup {
        Ok(found) => found,
        Err(FsError::NotFound) => {
            state.stats.answered(HttpResponse::NotFound);
            return plain(StatusCode::NOT_FOUND, "not found\n");
        }
        Err(FsError::Denied(why)) => {
            state.stats.answered(HttpResponse::Denied);
            state.bus.emit(EventKind::AccessDenied {
                client: to_v4(peer.ip()),
                path: request.clone(),
                reason: why.into(),
            });
            return plain(StatusCode::FORBIDDEN, "forbidden\n");
        }
    };
    let size = found.metadata.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, span) = match wanted(range, size) {
        Wanted::Whole => (
            StatusCode::OK,
            Span {
                start: 0,
                end: size,
            },
        ),
        Wanted::Part(span) => (StatusCode::PARTIAL_CONTENT, span),
        Wanted::Unsatisfiable => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    let length = span.end - span.start;
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type(relative))
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", span.start, span.end - 1),
        );
    }
    if method == Method::HEAD || length == 0 {
        return response
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let inner = match state.files.in_memory(&found.path, &found.metadata).await {
        Some(data) => in_chunks(data, span).boxed(),
        None => {
            let mut file = match tokio::fs::File::open(&found.path).await {
                Ok(f) => f,
                Err(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
            };
            if span.start > 0 && file.seek(SeekFrom::Start(span.start)).await.is_err() {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "seek failed\n");
            }
            ReaderStream::with_capacity(file.take(length), CHUNK).boxed()
        }
    };
    let client = SocketAddr::new(to_v4(peer.ip()), peer.port());
    let mac = match client.ip() {
        std::net::IpAddr::V4(v4) => state.leases.mac_at(v4),
        std::net::IpAddr::V6(_) => None,
    };
    let handle = state.progress.register();
    state.bus.emit(EventKind::TransferStarted {
        id: handle.id,
        protocol: Protocol::Http,
        client,
        mac,
        path: relative.to_string(),
        size: Some(length),
        blksize: None,
        windowsize: None,
    });
    let stream = Tracked {
        inner,
        remaining: length,
        sent: 0,
        started: Instant::now(),
        handle,
        state: state.clone(),
        finished: false,
    };
    response
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A held file's span as chunks that share its memory.
fn in_chunks(data: Bytes, span: Span) -> impl Stream<Item = std::io::Result<Bytes>> {
    let (start, end) = (span.start as usize, span.end as usize);
    futures_util::stream::iter(
        (start..end)
            .step_by(CHUNK)
            .map(move |at| Ok(data.slice(at..(at + CHUNK).min(end)))),
    )
}

/// A file stream that reports progress, and reports the transfer done when
/// the last byte has been handed to the connection, or failed when the
/// client goes away first (the stream is dropped unfinished).
struct Tracked<S> {
    inner: S,
    remaining: u64,
    sent: u64,
    started: Instant,
    handle: Handle,
    state: Arc<HttpState>,
    finished: bool,
}

impl<S> Stream for Tracked<S>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            let n = chunk.len() as u64;
            this.sent += n;
            this.remaining = this.remaining.saturating_sub(n);
            this.handle.set(this.sent);
            this.state
                .stats
                .bytes
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            // With a Content-Length, hyper stops polling after the last
            // byte, so the end is seen here, not at `Ready(None)`.
            if this.remaining == 0 && !this.finished {
                this.finished = true;
                this.state.stats.answered(HttpResponse::FileDone);
                this.state.bus.emit(EventKind::TransferDone {
                    id: this.handle.id,
                    bytes: this.sent,
                    millis: this.started.elapsed().as_millis() as u64,
                });
            }
        }
        polled
    }
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        if !self.finished {
            self.state.stats.answered(HttpResponse::FileFailed);
            self.state.bus.emit(EventKind::TransferFailed {
                id: self.handle.id,
                bytes: self.sent,
                reason: "the client went away mid-download".into(),
                probe: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let part = |start, end| Wanted::Part(Span { start, end });
        assert_eq!(wanted(None, 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-9"), 100), part(0, 10));
        assert_eq!(wanted(Some("bytes=90-"), 100), part(90, 100));
        assert_eq!(wanted(Some("bytes=-10"), 100), part(90, 100));
        assert_eq!(wanted(Some("bytes=-1000"), 100), part(0, 100));
        assert_eq!(wanted(Some("bytes=50-5000"), 100), part(50, 100));
        assert_eq!(wanted(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-0"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-1,5-6"), 100), Wanted::Whole);
        assert_eq!(wanted(Some("items=0-1"), 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=9-3"), 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=x-3"), 100), Wanted::Whole);
    }

    #[test]
    fn types_and_escapes() {
        assert_eq!(content_type("ipxe.efi"), "application/efi");
        assert_eq!(content_type("EFI/BOOT/BOOTX64.EFI"), "application/efi");
        assert_eq!(content_type("vmlinuz"), "application/octet-stream");
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/%2e%2e/etc").as_deref(), Some("/../etc"));
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%4"), None);
    }
}
