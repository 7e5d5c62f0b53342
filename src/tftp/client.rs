//! A TFTP read client (RFC 1350 + options + RFC 7440 windows), as firmware
//! behaves: used by the simulator, the benchmarks and the tests.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::packet::{self, Packet};

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub blksize: Option<u16>,
    pub windowsize: Option<u16>,
    pub tsize: bool,
    /// Wait for a packet this long before re-sending the last ACK.
    pub timeout: Duration,
    pub retries: u32,
    /// Keep the data (tests) or only count and hash it (load tests).
    pub keep: bool,
    /// Send from this local address (a simulated machine's lease).
    pub bind: Option<std::net::IpAddr>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            blksize: None,
            windowsize: None,
            tsize: false,
            timeout: Duration::from_secs(1),
            retries: 5,
            keep: true,
            bind: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub bytes: u64,
    pub data: Vec<u8>,
    /// The size the server announced in its OACK.
    pub tsize: Option<u64>,
    pub blksize: u16,
    pub windowsize: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("server error {code}: {message}")]
    Server { code: u16, message: String },
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Reads `filename` from the TFTP server at `server`.
pub async fn fetch(
    server: SocketAddr,
    filename: &str,
    opts: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let bind = match opts.bind {
        Some(ip) => SocketAddr::new(ip, 0),
        None if server.is_ipv4() => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
        None => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(bind).await?;
    let mut asked: Vec<(String, String)> = Vec::new();
    if let Some(b) = opts.blksize {
        asked.push(("blksize".into(), b.to_string()));
    }
    if let Some(w) = opts.windowsize {
        asked.push(("windowsize".into(), w.to_string()));
    }
    if opts.tsize {
        asked.push(("tsize".into(), "0".into()));
    }
    let refs: Vec<(&str, &str)> = asked
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let rrq = packet::encode_rrq(filename, "octet", &refs);
    let mut out = Fetched {
        bytes: 0,
        data: Vec::new(),
        tsize: None,
        blksize: 512,
        windowsize: 1,
    };
    let mut peer: Option<SocketAddr> = None;
    let mut last_sent = rrq.clone();
    socket.send_to(&rrq, server).await?;
    let mut next: u64 = 1; // absolute block expected next
    let mut since_ack = 0u16;
    let mut tries = 0;
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, from) = match tokio::time::timeout(opts.timeout, socket.recv_from(&mut buf)).await
        {
            Ok(r) => r?,
            Err(_) => {
                tries += 1;
                if tries > opts.retries {
                    return Err(FetchError::Timeout);
                }
                socket.send_to(&last_sent, peer.unwrap_or(server)).await?;
                continue;
            }
        };
        match peer {
            None => peer = Some(from),
            Some(p) if p != from => {
                let err =
                    packet::encode_error(packet::ErrorCode::UnknownTid, "unknown transfer id");
                socket.send_to(&err, from).await?;
                continue;
            }
            Some(_) => {}
        }
        let to = peer.unwrap_or(server);
        match Packet::decode(&buf[..len]).map_err(|e| FetchError::Protocol(e.to_string()))? {
            Packet::Oack { options } if next == 1 => {
                for (k, v) in &options {
                    match k.as_str() {
                        "blksize" => {
                            out.blksize = v
                                .parse()
                                .map_err(|_| FetchError::Protocol("bad blksize".into()))?
                        }
                        "windowsize" => {
                            out.windowsize = v
                                .parse()
                                .map_err(|_| FetchError::Protocol("bad windowsize".into()))?
                        }
                        "tsize" => out.tsize = v.parse().ok(),
                        _ => {}
                    }
                }
                last_sent = packet::encode_ack(0);
                socket.send_to(&last_sent, to).await?;
            }
            Packet::Data { block, data } => {
                tries = 0;
                if block == (next & 0xffff) as u16 {
                    out.bytes += data.len() as u64;
                    if opts.keep {
                        out.data.extend_from_slice(data);
                    }
                    let last = data.len() < usize::from(out.blksize);
                    since_ack += 1;
                    if last || since_ack >= out.windowsize {
                        since_ack = 0;
                        last_sent = packet::encode_ack(block);
                        socket.send_to(&last_sent, to).await?;
                    }
                    next += 1;
                    if last {
                        return Ok(out);
                    }
                } else {
                    // A gap or a duplicate: acknowledge what we have.
                    since_ack = 0;
                    last_sent = packet::encode_ack(((next - 1) & 0xffff) as u16);
                    socket.send_to(&last_sent, to).await?;
                }
            }
            Packet::Error { code, message } => return Err(FetchError::Server { code, message }),
            other => return Err(FetchError::Protocol(format!("unexpected {other:?}"))),
        }
    }
}
