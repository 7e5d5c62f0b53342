//! Socket setup shared by the services: exclusive binds, and bind errors
//! that say which port failed and why.

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
    /// Let other sockets bind the same port (SO_REUSEADDR). Only for the
    /// passive watch on the DHCP client port, which a local DHCP client
    /// may hold; a service port is bound exclusively, so a second server
    /// on it fails loudly instead of silently sharing the traffic.
    pub share_port: bool,
}

/// Creates a non-blocking UDP socket bound to `addr`, with a clear error
/// when the port needs privileges or is taken.
pub fn udp_socket(addr: SocketAddr, opts: &UdpOptions<'_>) -> io::Result<tokio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(opts.share_port)?;
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
    socket
        .bind(&addr.into())
        .map_err(|e| bind_error(Transport::Udp, addr, e))?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// The transport of a port, for finding who holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    fn proc_tables(self) -> [&'static str; 2] {
        match self {
            Transport::Udp => ["/proc/net/udp", "/proc/net/udp6"],
            Transport::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        }
    }
}

/// Turns a failed bind into an error an operator can act on: which port,
/// and why — privileges, an address this host does not have, or (named
/// where `/proc` tells) the process that already holds the port.
pub fn bind_error(transport: Transport, addr: SocketAddr, e: io::Error) -> io::Error {
    let what = transport.name();
    let why = match e.kind() {
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            format!("{e} — ports below 1024 need root or CAP_NET_BIND_SERVICE")
        }
        io::ErrorKind::AddrInUse => match port_holder(transport, addr.port()) {
            Some((pid, name)) => format!(
                "port {} is already in use by {name} (pid {pid}); is another pxedeck or DHCP/TFTP server running?",
                addr.port()
            ),
            None => format!(
                "port {} is already in use by another process; is another pxedeck or DHCP/TFTP server running?",
                addr.port()
            ),
        },
        io::ErrorKind::AddrNotAvailable => {
            format!("{} is not an address of this host ({e})", addr.ip())
        }
        _ => e.to_string(),
    };
    io::Error::new(e.kind(), format!("cannot bind {what} {addr}: {why}"))
}

/// The process (pid, command name) holding a bound socket on `port`, from
/// `/proc/net/*` and the processes' descriptor tables. None when it cannot
/// be seen (another user's process without root, or no `/proc`).
pub fn port_holder(transport: Transport, port: u16) -> Option<(u32, String)> {
    let inodes: Vec<u64> = transport
        .proc_tables()
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|table| socket_inodes(&table, transport, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let me = std::process::id();
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|l| wanted.iter().any(|w| l.as_os_str() == w.as_str()))
        });
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            // Another process is the likelier culprit than ourselves (a
            // test binds twice in one process).
            if pid != me {
                return Some((pid, name));
            }
            found = Some((pid, name));
        }
    }
    found
}

/// Inodes of the sockets bound to `port` in one `/proc/net/{udp,tcp}[6]`
/// table (TCP: listening ones only). Columns: `sl local rem st … inode`.
fn socket_inodes(table: &str, transport: Transport, port: u16) -> Vec<u64> {
    const TCP_LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols.get(1)?.rsplit(':').next()?;
            let state = cols.get(3)?;
            let inode = cols.get(9)?.parse::<u64>().ok()?;
            let listening = transport == Transport::Udp || *state == TCP_LISTEN;
            (u16::from_str_radix(local_port, 16).ok()? == port && listening && inode != 0)
                .then_some(inode)
        })
        .collect()
}

/// The MTU of an interface, from sysfs.
pub fn interface_mtu(ifname: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_server_on_the_same_port_fails_naming_the_port_and_holder() {
        let opts = UdpOptions::default();
        let first = udp_socket("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let addr = first.local_addr().unwrap();
        let err = udp_socket(addr, &opts).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{text}");
        assert!(
            text.contains(&format!("port {} is already in use by", addr.port())),
            "{text}"
        );
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_client_port_watch_may_share() {
        let opts = UdpOptions {
            share_port: true,
            ..Default::default()
        };
        let first = udp_socket("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let again = udp_socket(first.local_addr().unwrap(), &opts);
        assert!(again.is_ok(), "{again:?}");
    }

    #[test]
    fn an_address_not_on_this_host_is_not_blamed_on_privileges() {
        let e = io::Error::from(io::ErrorKind::AddrNotAvailable);
        let text = bind_error(Transport::Tcp, "10.255.0.9:80".parse().unwrap(), e).to_string();
        assert!(
            text.contains("10.255.0.9 is not an address of this host"),
            "{text}"
        );
        assert!(!text.contains("root"), "{text}");
    }

    #[test]
    fn proc_tables_are_read_by_port_and_listening_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0045 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 0100007F:0045 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1";
        assert_eq!(socket_inodes(table, Transport::Tcp, 69), vec![4242]);
        assert_eq!(socket_inodes(table, Transport::Udp, 69), vec![4242, 4343]);
        assert_eq!(socket_inodes(table, Transport::Tcp, 8080), vec![4444]);
    }
}
