//! DHCP and proxyDHCP for PXE firmware and iPXE (RFC 2131/2132/4578 and
//! the PXE specification).

pub mod classify;
pub mod handler;
pub mod leases;
pub mod server;
pub mod store;
pub mod wire;

use serde::{Deserialize, Serialize};

/// DHCP message types a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DhcpMessage {
    Discover,
    Request,
    Decline,
    Release,
    Inform,
}

/// DHCP message types pxedeck answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DhcpReply {
    Offer,
    Ack,
    Nak,
}

impl DhcpMessage {
    pub fn name(self) -> &'static str {
        match self {
            DhcpMessage::Discover => "DISCOVER",
            DhcpMessage::Request => "REQUEST",
            DhcpMessage::Decline => "DECLINE",
            DhcpMessage::Release => "RELEASE",
            DhcpMessage::Inform => "INFORM",
        }
    }
}

impl DhcpReply {
    pub fn name(self) -> &'static str {
        match self {
            DhcpReply::Offer => "OFFER",
            DhcpReply::Ack => "ACK",
            DhcpReply::Nak => "NAK",
        }
    }
}

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseEnd {
    Released,
    Expired,
    Declined,
    /// An operator released it from the console or API.
    Operator,
}
