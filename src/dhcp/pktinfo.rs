//! IP_PKTINFO on the DHCP sockets: which local address (and interface) a
//! datagram arrived on, and replies sent from that address out of that
//! interface — so a multi-homed server answers from the address the client
//! reached, with the same address in option 54, whatever the routing table
//! would pick. Through `nix`'s safe `recvmsg`/`sendmsg`; no `unsafe` here.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, sendmsg, setsockopt,
    sockopt::Ipv4PacketInfo,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Where a datagram arrived: the local address it was for (for a
/// broadcast, the interface's address the kernel would answer from) and
/// the interface index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub local: Ipv4Addr,
    pub ifindex: u32,
}

/// Asks the kernel for IP_PKTINFO on every datagram of `socket`.
pub fn enable(socket: &UdpSocket) -> io::Result<()> {
    setsockopt(socket, Ipv4PacketInfo, &true).map_err(io::Error::from)
}

/// Reads one datagram without waiting (`WouldBlock` when none is queued).
pub fn try_recv(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<Arrival>)> {
    socket.try_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!(libc::in_pktinfo);
        let msg = recvmsg::<SockaddrIn>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let src = msg
            .address
            .map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())))
            .ok_or_else(|| io::Error::other("datagram without a source address"))?;
        let mut arrival = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                    arrival = Some(Arrival {
                        local: Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)),
                        ifindex: info.ipi_ifindex as u32,
                    });
                }
            }
        }
        Ok((msg.bytes, src, arrival))
    })
}

/// Waits for and reads one datagram.
pub async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<Arrival>)> {
    loop {
        socket.readable().await?;
        match try_recv(socket, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Sends `bytes` to `to`, from the address and out of the interface the
/// request arrived on when `from` is given.
pub async fn send(
    socket: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    from: Option<Arrival>,
) -> io::Result<usize> {
    let (SocketAddr::V4(to4), Some(from)) = (to, from) else {
        return socket.send_to(bytes, to).await;
    };
    let dest = SockaddrIn::from(to4);
    let info = libc::in_pktinfo {
        ipi_ifindex: from.ifindex as i32,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(from.local).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    socket
        .async_io(Interest::WRITABLE, || {
            let iov = [IoSlice::new(bytes)];
            let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
            sendmsg(
                socket.as_raw_fd(),
                &iov,
                &cmsg,
                MsgFlags::empty(),
                Some(&dest),
            )
            .map_err(io::Error::from)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On loopback: the arrival names 127.0.0.1 and lo, and a reply sent
    /// with it comes from that address.
    #[tokio::test]
    async fn arrival_and_reply_from_the_same_address() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enable(&server).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client
            .send_to(b"hello", server.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, src, arrival) = recv(&server, &mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], src),
            (&b"hello"[..], client.local_addr().unwrap())
        );
        let arrival = arrival.expect("IP_PKTINFO delivered");
        assert_eq!(arrival.local, Ipv4Addr::LOCALHOST);
        assert!(arrival.ifindex > 0);
        send(&server, b"back", src, Some(arrival)).await.unwrap();
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"back"[..], server.local_addr().unwrap())
        );
        // Nothing queued: WouldBlock, not a hang.
        let e = try_recv(&server, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
