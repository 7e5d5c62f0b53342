//! A window of DATA blocks (RFC 7440) in one `sendmmsg`: each datagram is
//! a 4-byte header and a slice of the file's bytes, gathered by the kernel,
//! so a window of 16 blocks costs one system call and no copy of its
//! payload. nix's `sendmmsg` is a safe function; no `unsafe` here.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// One DATA datagram: its header and its payload.
pub type Block<'a> = ([u8; 4], &'a [u8]);

/// The most datagrams handed to one call: the default window cap
/// (`tftp.max_windowsize`), so a window is one call unless the socket
/// buffer fills.
const MAX_PER_CALL: usize = 64;

/// Sends every block, in order, to `peer` (or to the connected peer when
/// `None`), waiting for the socket to take them.
pub async fn send_all(
    socket: &UdpSocket,
    peer: Option<SocketAddr>,
    blocks: &[Block<'_>],
) -> io::Result<()> {
    let mut from = 0;
    while from < blocks.len() {
        let sent = socket
            .async_io(Interest::WRITABLE, || {
                send_some(socket, peer, &blocks[from..])
            })
            .await?;
        if sent == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "sendmmsg sent nothing",
            ));
        }
        from += sent;
    }
    Ok(())
}

/// One `sendmmsg`: how many of `blocks` the kernel took.
fn send_some(
    socket: &UdpSocket,
    peer: Option<SocketAddr>,
    blocks: &[Block<'_>],
) -> io::Result<usize> {
    let n = blocks.len().min(MAX_PER_CALL);
    let slices: Vec<[IoSlice<'_>; 2]> = blocks[..n]
        .iter()
        .map(|(header, payload)| [IoSlice::new(header), IoSlice::new(payload)])
        .collect();
    let addresses = vec![peer.map(SockaddrStorage::from); n];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(n, None);
    let none: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        &addresses,
        none,
        MsgFlags::empty(),
    )?;
    Ok(sent.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_window_arrives_as_separate_datagrams_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let payload: Vec<u8> = (0..=255u8).cycle().take(3 * 512 + 100).collect();
        let blocks: Vec<Block<'_>> = payload
            .chunks(512)
            .enumerate()
            .map(|(i, chunk)| ([0, 3, 0, i as u8 + 1], chunk))
            .collect();
        // Unconnected, with an address per datagram...
        send_all(&tx, Some(rx.local_addr().unwrap()), &blocks)
            .await
            .unwrap();
        // ...and connected, as a transfer's own socket is.
        tx.connect(rx.local_addr().unwrap()).await.unwrap();
        send_all(&tx, None, &blocks).await.unwrap();
        let mut buf = [0u8; 1024];
        for _round in 0..2 {
            let mut got = Vec::new();
            for (i, chunk) in payload.chunks(512).enumerate() {
                let n = rx.recv(&mut buf).await.unwrap();
                assert_eq!(&buf[..4], &[0, 3, 0, i as u8 + 1]);
                assert_eq!(&buf[4..n], chunk);
                got.extend_from_slice(&buf[4..n]);
            }
            assert_eq!(got, payload);
        }
    }

    #[tokio::test]
    async fn more_blocks_than_one_call_takes_all_arrive() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        tx.connect(rx.local_addr().unwrap()).await.unwrap();
        let data = [7u8; 8];
        let blocks: Vec<Block<'_>> = (0..MAX_PER_CALL as u16 + 10)
            .map(|i| {
                let [hi, lo] = i.to_be_bytes();
                ([0, 3, hi, lo], &data[..])
            })
            .collect();
        send_all(&tx, None, &blocks).await.unwrap();
        let mut buf = [0u8; 64];
        for i in 0..blocks.len() as u16 {
            let n = rx.recv(&mut buf).await.unwrap();
            assert_eq!(n, 12);
            assert_eq!(&buf[2..4], &i.to_be_bytes());
        }
    }
}
