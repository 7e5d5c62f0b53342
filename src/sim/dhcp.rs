//! The DHCP half of a simulated machine: DISCOVER/OFFER/REQUEST/ACK with
//! the options PXE firmware and iPXE really send, retransmitting with
//! backoff as firmware does.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::relay::{Listening, Relay};
use super::{Rng, SimError};
use crate::boot::arch::Firmware;
use crate::dhcp::wire::{BOOTREPLY, Packet, msg, opt};
use crate::ident::{Mac, Uuid};

/// What a client learnt from its ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub ip: Ipv4Addr,
    pub server: Ipv4Addr,
    pub next_server: Ipv4Addr,
    /// The boot file (`file`/option 67), empty when none was offered.
    pub boot_file: String,
}

/// Who is asking.
pub struct Client<'a> {
    pub mac: Mac,
    pub uuid: Uuid,
    pub firmware: Firmware,
    /// Asking as iPXE (user class `iPXE`, option 175) rather than the ROM.
    pub ipxe: bool,
    pub server: SocketAddr,
    /// Share of packets this client "loses" on the way out.
    pub loss: f64,
    pub rng: &'a mut Rng,
}

/// Option 93 code for the firmware kinds the simulator plays.
fn arch_code(f: Firmware) -> u16 {
    match f {
        Firmware::Bios => 0,
        Firmware::UefiIa32 => 6,
        Firmware::UefiX64 => 7,
        Firmware::UefiArm32 => 10,
        Firmware::UefiArm64 => 11,
        Firmware::HttpX64 => 16,
        Firmware::HttpArm32 => 18,
        Firmware::HttpArm64 => 19,
        Firmware::Other(c) => c,
    }
}

impl Client<'_> {
    fn packet(&self, xid: u32, kind: u8) -> Packet {
        let mut p = Packet::client_request(self.mac.0, xid, kind);
        let code = arch_code(self.firmware);
        let class = if matches!(
            self.firmware,
            Firmware::HttpX64 | Firmware::HttpArm32 | Firmware::HttpArm64
        ) {
            format!("HTTPClient:Arch:{code:05}:UNDI:003016")
        } else {
            format!("PXEClient:Arch:{code:05}:UNDI:002001")
        };
        p.set_option(opt::PARAMS, [1, 3, 6, 43, 54, 60, 66, 67, 97, 128, 175]);
        p.set_option(opt::MAX_SIZE, 1472u16.to_be_bytes());
        p.set_option(opt::CLASS_ID, class.into_bytes());
        p.set_option(opt::CLIENT_ARCH, code.to_be_bytes());
        p.set_option(opt::CLIENT_NDI, [1, 3, 16]);
        let mut guid = vec![0u8];
        guid.extend_from_slice(&self.uuid.0);
        p.set_option(opt::CLIENT_GUID, guid);
        if self.ipxe {
            p.set_option(opt::USER_CLASS, b"iPXE".to_vec());
            // Encapsulated iPXE feature options: HTTP (0x13) and version.
            p.set_option(opt::IPXE_ENCAP, vec![0x13, 1, 1, 0xeb, 3, 1, 21, 1]);
        }
        p
    }

    /// Sends `p` and waits for a reply of type `want` to `xid`, re-sending
    /// on a doubling timeout (firmware uses 4 s; the simulator starts at
    /// `first_wait`).
    async fn exchange(
        &mut self,
        wire: &mut Wire,
        p: &Packet,
        want: &[u8],
        first_wait: Duration,
        tries: u32,
    ) -> Result<Packet, SimError> {
        let mut wait = first_wait;
        for _ in 0..tries {
            if !self.rng.chance(self.loss) {
                wire.send(p).await?;
            }
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let Ok(received) = tokio::time::timeout_at(deadline, wire.recv()).await else {
                    break;
                };
                let Some(reply) = received? else {
                    continue;
                };
                if reply.op == BOOTREPLY
                    && reply.xid == p.xid
                    && reply.message_type().is_some_and(|t| want.contains(&t))
                {
                    return Ok(reply);
                }
            }
            wait = (wait * 2).min(Duration::from_secs(8));
        }
        Err(SimError::Dhcp("no answer".into()))
    }

    /// A full DISCOVER → OFFER → REQUEST → ACK, straight to the server or
    /// through a relay.
    pub async fn dora(&mut self, via: &Via, first_wait: Duration) -> Result<Acked, SimError> {
        let xid = self.rng.next_u64() as u32;
        let discover = self.packet(xid, msg::DISCOVER);
        let mut wire = Wire::open(via, self.server, &discover).await?;
        let offer = self
            .exchange(&mut wire, &discover, &[msg::OFFER], first_wait, 4)
            .await?;
        let server_id = offer
            .option(opt::SERVER_ID)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(Ipv4Addr::from)
            .ok_or_else(|| SimError::Dhcp("OFFER without a server id".into()))?;
        let mut request = self.packet(xid, msg::REQUEST);
        request.set_option(opt::REQUESTED_IP, offer.yiaddr.octets());
        request.set_option(opt::SERVER_ID, server_id.octets());
        let ack = self
            .exchange(&mut wire, &request, &[msg::ACK, msg::NAK], first_wait, 4)
            .await?;
        if ack.message_type() == Some(msg::NAK) {
            return Err(SimError::Dhcp("NAK".into()));
        }
        let file_field = Packet::text(&ack.file);
        let boot_file = ack
            .option(opt::BOOTFILE)
            .map(Packet::text)
            .filter(|s| !s.is_empty())
            .unwrap_or(file_field);
        Ok(Acked {
            ip: ack.yiaddr,
            server: server_id,
            next_server: ack.siaddr,
            boot_file,
        })
    }
}

/// How a machine's DHCP packets reach the server.
#[derive(Clone)]
pub enum Via {
    /// From its own socket on this address (a loopback address in the
    /// demo; 0.0.0.0 elsewhere); the server answers at the source.
    Direct(Ipv4Addr),
    /// Through a relay agent, which the server answers on port 67.
    Relay(Arc<Relay>),
}

/// One transaction's way to the server and back.
enum Wire {
    Socket(UdpSocket, SocketAddr, Vec<u8>),
    Relayed(Listening),
}

impl Wire {
    async fn open(via: &Via, server: SocketAddr, first: &Packet) -> std::io::Result<Wire> {
        Ok(match via {
            Via::Direct(bind) => {
                Wire::Socket(UdpSocket::bind((*bind, 0)).await?, server, vec![0u8; 1500])
            }
            Via::Relay(relay) => Wire::Relayed(relay.listen(first)),
        })
    }

    async fn send(&mut self, p: &Packet) -> std::io::Result<()> {
        match self {
            Wire::Socket(socket, server, _) => socket.send_to(&p.encode(), *server).await.map(drop),
            Wire::Relayed(listening) => listening.forward(p).await,
        }
    }

    /// The next DHCP packet that came back (None: something undecodable).
    async fn recv(&mut self) -> std::io::Result<Option<Packet>> {
        match self {
            Wire::Socket(socket, _, buf) => {
                let (n, _) = socket.recv_from(buf).await?;
                Ok(Packet::decode(&buf[..n]).ok())
            }
            Wire::Relayed(listening) => match listening.next().await {
                Some(p) => Ok(Some(p)),
                None => Err(std::io::Error::other("the relay stopped")),
            },
        }
    }
}
