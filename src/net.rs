//! Socket setup shared by the UDP services.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Options for a UDP service socket.
#[derive(Debug, Clone, Default)]
pub struct UdpOptions<'a> {
    /// Bind to this interface (SO_BINDTODEVICE): packets of other
    /// interfaces never reach the socket.
    pub interface: Option<&'a str>,
    pub broadcast: bool,
    /// Receive/send buffer sizes; mass boots need more than the default.
    pub buffer: usize,
}

/// Creates a non-blocking UDP socket bound to `addr`, with a clear error
/// when the port needs privileges.
pub fn udp_socket(addr: SocketAddr, opts: &UdpOptions<'_>) -> io::Result<tokio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if opts.broadcast {
        socket.set_broadcast(true)?;
    }
    if opts.buffer > 0 {
        // The kernel may clamp these to net.core.[rw]mem_max; that is fine.
        let _ = socket.set_recv_buffer_size(opts.buffer);
        let _ = socket.set_send_buffer_size(opts.buffer);
    }
    if let Some(ifname) = opts.interface {
        socket.bind_device(Some(ifname.as_bytes())).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind to interface {ifname}: {e}"))
        })?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            " — ports below 1024 need root or CAP_NET_BIND_SERVICE"
        } else {
            ""
        };
        io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}{hint}"))
    })?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// The MTU of an interface, from sysfs.
pub fn interface_mtu(ifname: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}
