//! A small HTTP/1.1 client on hyper, for the simulator (which must send
//! from a machine's own leased address), `pxedeck attach` (the event stream
//! and commands) and the benchmarks. Plain `http://` with IP literals only:
//! that is all boot URLs ever are.

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

#[cfg(test)]
mod tests {
    use super::*;

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
