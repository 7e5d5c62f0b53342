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

/// The interfaces listed in `interfaces:`, as a datagram's [`Arrival`]
/// tells them apart. With several interfaces one socket on 0.0.0.0 hears
/// every interface of the host, the management LAN too; a request sent
/// there directly must go unanswered. This is what binding each listed
/// interface would do, without a socket per interface.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    entries: Vec<ListedInterface>,
}

#[derive(Debug, Clone, Copy)]
struct ListedInterface {
    address: Ipv4Addr,
    /// The index of its `name`, when it has one.
    ifindex: Option<u32>,
}

impl Listed {
    /// `(address, interface index)` for each listed interface.
    pub fn new(entries: impl IntoIterator<Item = (Ipv4Addr, Option<u32>)>) -> Listed {
        Listed {
            entries: entries
                .into_iter()
                .map(|(address, ifindex)| ListedInterface { address, ifindex })
                .collect(),
        }
    }

    /// Looks each interface's name up on this host: a name it does not
    /// have is an error (a typo would otherwise serve nothing, silently).
    pub fn resolve(interfaces: &[crate::config::Interface]) -> io::Result<Listed> {
        let mut entries = Vec::with_capacity(interfaces.len());
        for i in interfaces {
            let ifindex = match &i.name {
                Some(name) => Some(nix::net::if_::if_nametoindex(name.as_str()).map_err(|e| {
                    io::Error::other(format!(
                        "interfaces: no interface named {name} on this host ({e})"
                    ))
                })?),
                None => None,
            };
            entries.push((i.address, ifindex));
        }
        Ok(Listed::new(entries))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The listed interface a request sent directly (not relayed) is for,
    /// by the address it came to, else by the interface it arrived on (a
    /// broadcast on an interface whose listed address is not its first).
    /// A named interface answers only what arrived on it. None: the
    /// request is not for any listed interface.
    pub fn serving(&self, arrival: Arrival) -> Option<Ipv4Addr> {
        let on_it = |e: &ListedInterface| e.ifindex.is_none_or(|ix| ix == arrival.ifindex);
        match self.entries.iter().find(|e| e.address == arrival.local) {
            Some(e) => on_it(e).then_some(e.address),
            None => self
                .entries
                .iter()
                .find(|e| e.ifindex == Some(arrival.ifindex))
                .map(|e| e.address),
        }
    }
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

    #[test]
    fn only_what_arrives_for_a_listed_interface_is_served() {
        let eth1 = Ipv4Addr::new(10, 61, 1, 1);
        let eth2 = Ipv4Addr::new(10, 61, 2, 1);
        let listed = Listed::new([(eth1, Some(3)), (eth2, None)]);
        let at = |local: [u8; 4], ifindex| Arrival {
            local: Ipv4Addr::from(local),
            ifindex,
        };
        // By address, on the named interface.
        assert_eq!(listed.serving(at([10, 61, 1, 1], 3)), Some(eth1));
        // The named interface's address reached through another one (the
        // management LAN routing to it): not answered.
        assert_eq!(listed.serving(at([10, 61, 1, 1], 2)), None);
        // A broadcast on the named interface whose first address is
        // another one: that interface's listed address answers.
        assert_eq!(listed.serving(at([10, 61, 1, 9], 3)), Some(eth1));
        // An unnamed interface is known by its address alone.
        assert_eq!(listed.serving(at([10, 61, 2, 1], 7)), Some(eth2));
        // The management LAN: neither address nor interface is listed.
        assert_eq!(listed.serving(at([192, 168, 1, 5], 2)), None);
    }

    #[test]
    fn a_name_the_host_does_not_have_is_refused() {
        let iface = |name: &str| crate::config::Interface {
            name: Some(name.into()),
            address: Ipv4Addr::LOCALHOST,
            mode: crate::config::DhcpMode::Full,
        };
        let listed = Listed::resolve(&[iface("lo")]).unwrap();
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        assert!(
            listed
                .serving(Arrival {
                    local: Ipv4Addr::LOCALHOST,
                    ifindex: lo
                })
                .is_some()
        );
        let e = Listed::resolve(&[iface("pxd-nonesuch")]).unwrap_err();
        assert!(
            e.to_string().contains("no interface named pxd-nonesuch"),
            "{e}"
        );
    }
}
