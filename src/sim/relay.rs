//! The simulator as a DHCP relay agent (RFC 1542 §4): machines that sit
//! on a subnet behind a router, which forwards their broadcasts to the
//! server with its own address in `giaddr`. The server answers the relay
//! on port 67, whatever server it is, so this is also how the simulator
//! boots against peer servers (dnsmasq) that never answer a client at its
//! source port.
//!
//! One socket serves every machine. Replies are handed to the machine
//! waiting for that transaction (xid and hardware address), the way a
//! relay hands them to the right client port.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::dhcp::wire::{BOOTREPLY, Packet};

type Transaction = (u32, [u8; 6]);

/// A relay agent: one socket, many machines behind it.
pub struct Relay {
    socket: UdpSocket,
    giaddr: Ipv4Addr,
    server: SocketAddr,
    waiting: Mutex<HashMap<Transaction, mpsc::UnboundedSender<Packet>>>,
}

/// A machine's claim on the replies to one transaction; unclaimed when
/// dropped.
pub struct Listening {
    relay: Arc<Relay>,
    key: Transaction,
    replies: mpsc::UnboundedReceiver<Packet>,
}

fn hardware_address(p: &Packet) -> [u8; 6] {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&p.chaddr[..6]);
    mac
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("giaddr", &self.giaddr)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Binds `local` (port 67 for a real server, which always answers
    /// relays there) and relays to `server`. The relay's address in
    /// `giaddr` is `local`'s: the subnet the server picks a pool from.
    pub async fn bind(local: SocketAddr, server: SocketAddr) -> std::io::Result<Arc<Relay>> {
        let std::net::IpAddr::V4(giaddr) = local.ip() else {
            return Err(std::io::Error::other(
                "a DHCPv4 relay needs an IPv4 address",
            ));
        };
        if giaddr.is_unspecified() {
            return Err(std::io::Error::other(
                "a relay needs its own address, not 0.0.0.0 (it goes in giaddr)",
            ));
        }
        let socket = UdpSocket::bind(local).await?;
        let relay = Arc::new(Relay {
            socket,
            giaddr,
            server,
            waiting: Mutex::new(HashMap::new()),
        });
        tokio::spawn(deliver(Arc::downgrade(&relay)));
        Ok(relay)
    }

    pub fn giaddr(&self) -> Ipv4Addr {
        self.giaddr
    }

    /// Starts taking the replies to `request`'s transaction.
    pub fn listen(self: &Arc<Self>, request: &Packet) -> Listening {
        let key = (request.xid, hardware_address(request));
        let (tx, replies) = mpsc::unbounded_channel();
        self.lock().insert(key, tx);
        Listening {
            relay: self.clone(),
            key,
            replies,
        }
    }

    /// Forwards a client's request to the server, as a relay does: its own
    /// address in `giaddr`, one more hop.
    pub async fn forward(&self, request: &Packet) -> std::io::Result<()> {
        let mut p = request.clone();
        p.giaddr = self.giaddr;
        p.hops = p.hops.saturating_add(1);
        self.socket.send_to(&p.encode(), self.server).await?;
        Ok(())
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Transaction, mpsc::UnboundedSender<Packet>>> {
        // A poisoned map is still a correct map: entries are only inserted
        // and removed whole.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Listening {
    /// Sends a request of this transaction through the relay.
    pub async fn forward(&self, request: &Packet) -> std::io::Result<()> {
        self.relay.forward(request).await
    }

    /// The next reply to this transaction; None if the relay has stopped.
    pub async fn next(&mut self) -> Option<Packet> {
        self.replies.recv().await
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.relay.lock().remove(&self.key);
    }
}

/// Hands each reply to the machine waiting for it, until the relay is
/// dropped. Anything else (garbage, requests, replies nobody waits for)
/// is dropped, as a relay would.
async fn deliver(relay: Weak<Relay>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let received = {
            let Some(relay) = relay.upgrade() else { return };
            // Hold the relay only while waiting on its socket, through a
            // timeout, so dropping the last machine's handle ends the task.
            tokio::time::timeout(
                std::time::Duration::from_millis(200),
                relay.socket.recv_from(&mut buf),
            )
            .await
        };
        let Ok(received) = received else { continue };
        let Ok((n, _)) = received else { continue };
        let Ok(reply) = Packet::decode(&buf[..n]) else {
            continue;
        };
        if reply.op != BOOTREPLY {
            continue;
        }
        let Some(relay) = relay.upgrade() else { return };
        let key = (reply.xid, hardware_address(&reply));
        if let Some(tx) = relay.lock().get(&key) {
            let _ = tx.send(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::wire::{BOOTREQUEST, msg};
    use std::time::Duration;

    /// A server that answers every request at its source, echoing the
    /// transaction and remembering what it saw.
    async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<Packet>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (seen, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            loop {
                let (n, from) = socket.recv_from(&mut buf).await.unwrap();
                let request = Packet::decode(&buf[..n]).unwrap();
                let mut reply = request.clone();
                reply.op = BOOTREPLY;
                reply.set_option(crate::dhcp::wire::opt::MESSAGE_TYPE, [msg::OFFER]);
                // Some noise first: garbage and a reply nobody asked for.
                socket.send_to(b"not dhcp", from).await.unwrap();
                let mut stray = reply.clone();
                stray.xid ^= 1;
                socket.send_to(&stray.encode(), from).await.unwrap();
                socket.send_to(&reply.encode(), from).await.unwrap();
                let _ = seen.send(request);
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn relays_with_giaddr_and_routes_replies_by_transaction() {
        let (server, mut seen) = echo_server().await;
        let relay = Relay::bind("127.0.0.1:0".parse().unwrap(), server)
            .await
            .unwrap();
        let a = Packet::client_request([2, 0, 0, 0, 0, 1], 7, msg::DISCOVER);
        let b = Packet::client_request([2, 0, 0, 0, 0, 2], 7, msg::DISCOVER);
        let mut la = relay.listen(&a);
        let mut lb = relay.listen(&b);
        relay.forward(&b).await.unwrap();
        relay.forward(&a).await.unwrap();
        let five = Duration::from_secs(5);
        let ra = tokio::time::timeout(five, la.next())
            .await
            .unwrap()
            .unwrap();
        let rb = tokio::time::timeout(five, lb.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ra.chaddr[..6], [2, 0, 0, 0, 0, 1]);
        assert_eq!(rb.chaddr[..6], [2, 0, 0, 0, 0, 2]);
        assert_eq!((ra.xid, rb.xid), (7, 7));
        for _ in 0..2 {
            let forwarded = seen.recv().await.unwrap();
            assert_eq!(forwarded.op, BOOTREQUEST);
            assert_eq!(forwarded.giaddr, Ipv4Addr::LOCALHOST);
            assert_eq!(forwarded.hops, 1);
        }
        // Nothing else arrived for either machine (the stray went nowhere).
        assert!(
            tokio::time::timeout(Duration::from_millis(100), la.next())
                .await
                .is_err()
        );
        drop(la);
        assert_eq!(relay.lock().len(), 1, "a dropped listener is unclaimed");
    }

    #[tokio::test]
    async fn refuses_an_address_it_cannot_put_in_giaddr() {
        let server = "127.0.0.1:9".parse().unwrap();
        assert!(
            Relay::bind("0.0.0.0:0".parse().unwrap(), server)
                .await
                .is_err()
        );
    }
}
