//! A small HTTP/1.1 client on hyper, for the simulator (which must send
//! from a machine's own leased address), `pxedeck attach` (the event stream
//! and commands) and the benchmarks, with the parser for the API's
//! Server-Sent Events. Plain `http://` with IP literals only: that is all
//! boot URLs ever are.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unsupported URL {0:?}: only http://<ip>[:port]/path")]
    Url(String),
    #[error("connect {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("timed out")]
    Timeout,
    #[error("HTTP {0}: {1}")]
    Status(StatusCode, String),
}

/// An `http://` URL split for connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub addr: SocketAddr,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl std::str::FromStr for Url {
    type Err = ClientError;

    fn from_str(url: &str) -> Result<Url, ClientError> {
        let bad = || ClientError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let addr = match authority.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => SocketAddr::new(authority.parse::<IpAddr>().map_err(|_| bad())?, 80),
        };
        Ok(Url { addr, target })
    }
}

/// Per-request options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Send from this local address (a simulated machine's lease).
    pub bind: Option<IpAddr>,
    pub bearer: Option<String>,
    pub timeout: Option<Duration>,
    /// Pace downloads to this many bytes a second (a simulated NIC).
    pub rate: Option<u64>,
}

/// Sends one request on a fresh connection and returns the response with
/// its body still streaming.
pub async fn send(
    method: Method,
    url: &str,
    body: Option<Vec<u8>>,
    opts: &Options,
) -> Result<Response<Incoming>, ClientError> {
    let url: Url = url.parse()?;
    let work = async {
        let socket = match url.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| ClientError::Connect(url.addr, e))?;
        if let Some(ip) = opts.bind {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| ClientError::Connect(url.addr, e))?;
        }
        let stream = socket
            .connect(url.addr)
            .await
            .map_err(|e| ClientError::Connect(url.addr, e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(&url.target)
            .header(header::HOST, url.addr.to_string())
            .header(header::USER_AGENT, "pxedeck");
        if let Some(token) = &opts.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        Ok::<_, ClientError>(sender.send_request(req).await?)
    };
    match opts.timeout {
        Some(t) => tokio::time::timeout(t, work)
            .await
            .map_err(|_| ClientError::Timeout)?,
        None => work.await,
    }
}

/// GET a small text body; non-2xx statuses are errors carrying the body.
pub async fn get_text(url: &str, opts: &Options) -> Result<String, ClientError> {
    let res = send(Method::GET, url, None, opts).await?;
    text_of(res).await
}

/// POST a JSON body (or nothing) and read the text answer.
pub async fn post(url: &str, json: Option<Vec<u8>>, opts: &Options) -> Result<String, ClientError> {
    let res = send(Method::POST, url, json, opts).await?;
    text_of(res).await
}

async fn text_of(res: Response<Incoming>) -> Result<String, ClientError> {
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() {
        Ok(text)
    } else {
        Err(ClientError::Status(status, text.trim().to_string()))
    }
}

/// Downloads a body without keeping it; returns the byte count. With
/// `abort_after`, drops the connection once that many bytes arrived (a
/// machine that loses power mid-download).
pub async fn download(
    url: &str,
    opts: &Options,
    abort_after: Option<u64>,
) -> Result<u64, ClientError> {
    let res = send(Method::GET, url, None, opts).await?;
    if !res.status().is_success() {
        return text_of(res).await.map(|_| 0);
    }
    let mut body = res.into_body();
    let mut total = 0u64;
    let started = tokio::time::Instant::now();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            total += data.len() as u64;
            if abort_after.is_some_and(|limit| total >= limit) {
                return Ok(total);
            }
            if let Some(rate) = opts.rate.filter(|r| *r > 0) {
                let due = started + Duration::from_secs_f64(total as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
            }
        }
    }
    Ok(total)
}

/// Splits a byte stream of Server-Sent Events into (event, data) pairs.
///
/// Bytes wait until their line is whole, so a character split across two
/// reads (a "→" is three bytes) decodes whole; lines end in LF, CRLF or
/// CR, as the SSE format allows.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    /// How far `buf` is known to hold no line ending: a long line (the
    /// snapshot) arriving in many reads is scanned once, not once a read.
    scanned: usize,
    started: bool,
    /// The last read ended in CR: an LF starting the next one belongs to it.
    after_cr: bool,
    block: SseBlock,
}

/// The fields of the event being read.
#[derive(Default)]
struct SseBlock {
    event: Option<String>,
    data: Option<String>,
}

impl SseBlock {
    fn line(&mut self, line: &str, out: &mut Vec<(String, String)>) {
        if line.is_empty() {
            let event = self.event.take().filter(|e| !e.is_empty());
            if let Some(data) = self.data.take() {
                out.push((event.unwrap_or_else(|| "message".into()), data));
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment: the server's keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            // `id` and `retry`: the console starts over from a snapshot
            // after a break, so it needs neither.
            _ => {}
        }
    }
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        if bytes.is_empty() {
            return Vec::new();
        }
        let bytes = match std::mem::take(&mut self.after_cr) {
            true => bytes.strip_prefix(b"\n").unwrap_or(bytes),
            false => bytes,
        };
        self.buf.extend_from_slice(bytes);
        if !self.started {
            if self.buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf) {
                return Vec::new(); // maybe a byte-order mark, still arriving
            }
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
            self.started = true;
        }
        let mut out = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(i) = self.buf[from..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
        {
            let end = from + i;
            let ending = match (self.buf[end], self.buf.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    self.after_cr = true;
                    1
                }
                _ => 1,
            };
            let line = String::from_utf8_lossy(&self.buf[start..end]);
            self.block.line(&line, &mut out);
            start = end + ending;
            from = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_split_across_reads() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: snapshot\ndata: {\"a\"").is_empty());
        let got = p.push(b":1}\n\n: keep-alive\n\nevent: event\ndata: 2\n\n");
        assert_eq!(
            got,
            vec![
                ("snapshot".into(), "{\"a\":1}".into()),
                ("event".into(), "2".into())
            ]
        );
    }

    #[test]
    fn sse_character_split_across_reads_decodes_whole() {
        let arrow = "→".as_bytes();
        assert_eq!(arrow.len(), 3);
        let mut p = SseParser::default();
        let first = b"event: event\ndata: dhcp discover \xe2\x86".to_vec();
        assert_eq!(&first[first.len() - 2..], &arrow[..2]);
        assert!(p.push(&first).is_empty());
        let got = p.push(b"\x92 hold\n\n");
        assert_eq!(got, vec![("event".into(), "dhcp discover → hold".into())]);
        assert!(!got[0].1.contains('\u{FFFD}'));
    }

    #[test]
    fn sse_line_endings_crlf_and_cr() {
        let mut p = SseParser::default();
        assert_eq!(
            p.push(b"event: event\r\ndata: 1\r\n\r\n"),
            vec![("event".into(), "1".into())]
        );
        // A CRLF split between reads is one line ending, not two.
        assert!(p.push(b"data: 2\r").is_empty());
        assert!(p.push(b"\n").is_empty());
        assert!(p.push(b"data: 3\r").is_empty());
        assert!(p.push(b"\n").is_empty());
        assert_eq!(p.push(b"\r\n"), vec![("message".into(), "2\n3".into())]);
        assert_eq!(
            p.push(b"event: x\rdata: 4\r\r"),
            vec![("x".into(), "4".into())],
            "a CR that ends the read ends the line at once"
        );
        // Only the one LF after a CR is swallowed: the next ends the block.
        assert!(p.push(b"data: 5\r").is_empty());
        assert!(p.push(b"\n").is_empty());
        assert_eq!(p.push(b"\n"), vec![("message".into(), "5".into())]);
    }

    #[test]
    fn sse_multi_line_data_comments_and_bom() {
        let mut p = SseParser::default();
        assert!(p.push(b"\xEF\xBB").is_empty());
        let got = p.push(b"\xBF: hello\ndata: a\ndata:b\ndata\nid: 7\n\nevent: only-a-name\n\n");
        assert_eq!(got, vec![("message".into(), "a\nb\n".into())]);
    }

    #[test]
    fn urls() {
        let u: Url = "http://127.0.0.1:8080/boot.ipxe?mac=1".parse().unwrap();
        assert_eq!(u.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(u.target, "/boot.ipxe?mac=1");
        let u: Url = "http://10.0.0.1".parse().unwrap();
        assert_eq!((u.addr.port(), u.target.as_str()), (80, "/"));
        assert!("https://10.0.0.1/".parse::<Url>().is_err());
        assert!("http://example.com/".parse::<Url>().is_err());
    }
}
