//! The accept loop and what each connection may hold: a cap on open
//! connections (past it a client gets 503 at once, not a wait), a header
//! timeout (also between requests on a kept-alive connection) and an idle
//! timeout (a download nobody reads). Without them 1,100 half-open
//! connections starved every real request (issue 15).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{HttpResponse, HttpState};
use crate::config::HttpConfig;

/// Connections the API listener takes: `attach` consoles, scripts and
/// scrapes, far fewer than booting machines.
pub const API_MAX_CONNECTIONS: usize = 128;

/// Refusals being written at once; past it an over-the-cap connection is
/// closed without a word.
const MAX_REFUSING: usize = 256;

/// What one listener's connections may hold.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Held files' bytes go by `sendfile` (`http.sendfile`; boot only).
    pub sendfile: bool,
}

impl ConnLimits {
    /// The boot listener's bounds, from the config.
    pub fn boot(http: &HttpConfig) -> ConnLimits {
        ConnLimits {
            max_connections: http.max_connections,
            header_timeout: http.header_timeout,
            idle_timeout: http.idle_timeout,
            sendfile: http.sendfile,
        }
    }

    /// The API listener's: the same timeouts, its own cap, so a boot storm
    /// never locks the operator out.
    pub fn api(http: &HttpConfig) -> ConnLimits {
        ConnLimits {
            max_connections: API_MAX_CONNECTIONS,
            sendfile: false,
            ..ConnLimits::boot(http)
        }
    }
}

/// Frees a connection's slot when its task ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves a router until `cancel` fires; handlers see the client address.
/// Cancelling stops accepting at once; running downloads end with the
/// runtime (a boot server that is told to stop should not wait on a 4 GiB
/// ISO). Refusals and timeouts are counted in `state.stats`. Connections
/// run on the caller's runtime.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    state: Arc<HttpState>,
    cancel: CancellationToken,
) {
    serve_on(listener, router, limits, state, cancel, Vec::new()).await
}

/// As [`serve`], with the accepted connections dealt in turn to `lanes`,
/// single-threaded runtimes of their own (none: the caller's runtime).
///
/// Why: with more connections ready at once than a tokio worker's local
/// run queue holds (256), the multi-threaded scheduler moves the overflow
/// to its global queue, which it visits only now and then; those
/// connections wait several rounds. 500 busy connections on one worker
/// had a p99 about eight times their p50. A single-threaded runtime's queue is
/// unbounded and first-in first-out, so every ready connection waits one
/// round (`docs/decisions.md`).
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    state: Arc<HttpState>,
    cancel: CancellationToken,
    lanes: Vec<Handle>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut turn = 0usize;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = cancel.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors (EMFILE) or a connection reset
                // before accept: pause so the loop does not spin, go on.
                warn!(error = %e, "http accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            state.stats.answered(HttpResponse::Busy);
            if refusing.fetch_add(1, Ordering::Relaxed) < MAX_REFUSING {
                let refusing = Slot(refusing.clone());
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusing);
                });
            } else {
                refusing.fetch_sub(1, Ordering::Relaxed);
            }
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(open.clone());
        let router = router.clone();
        let limits = limits.clone();
        let state = state.clone();
        if lanes.is_empty() {
            tokio::spawn(async move {
                connection(stream, peer, router, &limits, &state).await;
                drop(slot);
            });
            continue;
        }
        // The socket leaves this runtime's reactor and joins the lane's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                debug!(%peer, error = %e, "http connection lost before its lane");
                continue;
            }
        };
        lanes[turn % lanes.len()].spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => connection(stream, peer, router, &limits, &state).await,
                Err(e) => warn!(%peer, error = %e, "http connection: cannot join its lane"),
            }
            drop(slot);
        });
        turn = turn.wrapping_add(1);
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\nConnection: close\r\n\r\n\
server busy, try again\n";

/// Answers 503 without reading the request, then closes. The short read
/// afterwards lets the client's request arrive and be discarded, so the
/// close is a FIN and the client sees the answer rather than a reset.
async fn refuse(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if stream.try_write(BUSY).is_err() {
        return;
    }
    let (mut read, mut write) = stream.into_split();
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut write).await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(250), async {
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut read, &mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &ConnLimits,
    state: &HttpState,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let held = limits.sendfile.then(|| state.files.clone());
    let stream = super::zerocopy::ZeroCopy::new(stream, held);
    let io = TokioIo::new(Idle::new(stream, limits.idle_timeout));
    let router = match local {
        Some(l) => router.layer(axum::Extension(super::boot::LocalAddr(l))),
        None => router,
    };
    let service = TowerToHyperService::new(router.layer(axum::Extension(ConnectInfo(peer))));
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service)
        .await;
    if let Err(e) = served {
        let idle = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut);
        if e.is_timeout() || idle {
            state.stats.answered(HttpResponse::TimedOut);
        }
        debug!(%peer, error = %e, "http connection ended");
    }
}

/// A stream that fails with `TimedOut` once no byte has moved either way
/// for `limit`: the connection's idle timeout. The timer is re-armed only
/// when an operation would wait, not on every read and write.
struct Idle<S> {
    inner: S,
    limit: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, limit: Duration) -> Idle<S> {
        let now = Instant::now();
        Idle {
            inner,
            limit,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + limit)),
        }
    }

    fn moved(&mut self) {
        self.last = Instant::now();
    }

    /// Called when the inner stream would wait: Ready(error) once idle too
    /// long, else Pending with the timer armed.
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let due = self.last + self.limit;
            if Instant::now() >= due {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle too long",
                ));
            }
            if self.timer.deadline() != due {
                self.timer.as_mut().reset(due);
            }
            ready!(self.timer.as_mut().poll(cx));
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.waiting(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.waiting(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.waiting(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.waiting(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
