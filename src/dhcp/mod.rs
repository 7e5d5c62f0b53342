//! DHCP and proxyDHCP for PXE firmware and iPXE (RFC 2131/2132/4578 and
//! the PXE specification), and the vocabulary its outcomes are told in.
//!
//! The pure core — [`wire`], [`classify`], [`handler`], [`reply`],
//! [`leases`], [`loaders`] — never sees the event bus; only the socket
//! shell, [`server`], turns its outcomes into events.

pub mod addressing;
pub mod classify;
pub mod commit;
pub mod handler;
pub mod leases;
pub mod loaders;
pub mod options;
pub mod pktinfo;
pub mod relay_agent;
pub mod reply;
pub mod seen;
pub mod server;
pub mod store;
pub mod wire;

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::boot::BootDecision;
use crate::boot::arch::Firmware;
use crate::counters::Reason;
use crate::ident::{Mac, Uuid};

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

impl Reason for DhcpMessage {
    const ALL: &'static [DhcpMessage] = &[
        DhcpMessage::Discover,
        DhcpMessage::Request,
        DhcpMessage::Decline,
        DhcpMessage::Release,
        DhcpMessage::Inform,
    ];
    fn index(self) -> usize {
        self as usize
    }
    fn label(self) -> &'static str {
        self.name()
    }
}

impl Reason for DhcpReply {
    const ALL: &'static [DhcpReply] = &[DhcpReply::Offer, DhcpReply::Ack, DhcpReply::Nak];
    fn index(self) -> usize {
        self as usize
    }
    fn label(self) -> &'static str {
        self.name()
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

/// The client side of a DHCP packet, as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpSeen {
    pub mac: Mac,
    pub xid: u32,
    pub message: DhcpMessage,
    pub firmware: Option<Firmware>,
    /// The client is iPXE (user class `iPXE` or option 175).
    pub ipxe: bool,
    pub vendor_class: Option<String>,
    pub uuid: Option<Uuid>,
    /// The relay (giaddr) the request came through.
    pub relay: Option<Ipv4Addr>,
    /// What option 82 said about the port and relay, when a relay added it.
    #[serde(default)]
    pub relay_agent: Option<RelayAgentSeen>,
    /// The address of the interface a direct request was heard on (with
    /// several interfaces, which segment the machine is on); None for a
    /// relayed one, which has `relay`.
    #[serde(default)]
    pub interface: Option<Ipv4Addr>,
    /// The inventory hostname, when the machine is known.
    pub hostname: Option<String>,
    pub decision: BootDecision,
    /// The first rule (`adopt.rules`) an unknown netbooting machine
    /// matches: what adopting it would mean, and whether it is automatic.
    #[serde(default)]
    pub rule: Option<crate::inventory::rules::RuleHit>,
}

/// Option 82 as the console shows it: circuit-id (which switch port) and
/// remote-id (which relay or switch), as text or hex
/// ([`relay_agent::printable`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayAgentSeen {
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
}

impl RelayAgentSeen {
    pub fn of(info: &relay_agent::RelayAgentInfo) -> RelayAgentSeen {
        RelayAgentSeen {
            circuit_id: info.circuit_id_text(),
            remote_id: info.remote_id_text(),
        }
    }
}

crate::reasons! {
    /// Why a datagram on a DHCP port got no reply: undecodable, not a client
    /// request, throttled, or a request the policy leaves unanswered.
    pub enum Unanswered {
        // The codec (`wire::WireError`).
        TooShort => "too_short",
        BadMagic => "bad_magic",
        TruncatedOption => "truncated_option",
        BadOverload => "bad_overload",
        // The classifier (`classify::Reject`).
        NotARequest => "not_a_request",
        NoMessageType => "no_message_type",
        /// An OFFER/ACK/NAK that is our own (seen on the client port).
        ServerMessage => "server_message",
        UnknownMessageType => "unknown_message_type",
        NotEthernet => "not_ethernet",
        /// An option 82 too long, truncated or empty (RFC 3046).
        BadRelayAgentInfo => "bad_relay_agent_info",
        // The shell.
        RateLimited => "rate_limited",
        /// The lease journal could not be synced: the batch was withheld.
        LeaseStoreError => "lease_store_error",
        // The policy (`handler`).
        ProxyIgnoresMessage => "proxy_ignores_message",
        NoBootAnswer => "no_boot_answer",
        DhcpOff => "dhcp_off",
        UnknownIgnored => "unknown_ignored",
        NoPoolForSegment => "no_pool_for_segment",
        /// With several interfaces: a request sent directly to an
        /// interface or address not listed (the management LAN).
        NotOurInterface => "not_our_interface",
        PoolExhausted => "pool_exhausted",
        OfferConflict => "offer_conflict",
        ChoseAnotherServer => "chose_another_server",
        RequestWithoutAddress => "request_without_address",
        /// RELEASE and DECLINE are answered by nobody, by design.
        Release => "release",
        Decline => "decline",
        /// A DECLINE from a MAC that holds no offer or lease on the address
        /// (or of another machine's reservation): nothing is quarantined.
        DeclineRefused => "decline_refused",
        /// A relayed request whose giaddr is the server's own address: the
        /// reply would come back to us.
        RelayIsOurs => "relay_is_ours",
        /// A relayed request whose giaddr is no host of any pool subnet
        /// (outside them all, or a subnet's network or broadcast address):
        /// the reply would go where no relay of ours is.
        RelayNotInPool => "relay_not_in_pool",
    }
}

impl From<wire::WireError> for Unanswered {
    fn from(e: wire::WireError) -> Unanswered {
        match e {
            wire::WireError::TooShort => Unanswered::TooShort,
            wire::WireError::BadMagic => Unanswered::BadMagic,
            wire::WireError::TruncatedOption => Unanswered::TruncatedOption,
            wire::WireError::BadOverload => Unanswered::BadOverload,
        }
    }
}

impl From<classify::Reject> for Unanswered {
    fn from(r: classify::Reject) -> Unanswered {
        match r {
            classify::Reject::NotARequest => Unanswered::NotARequest,
            classify::Reject::NoMessageType => Unanswered::NoMessageType,
            classify::Reject::ServerMessage(_) => Unanswered::ServerMessage,
            classify::Reject::UnknownMessageType(_) => Unanswered::UnknownMessageType,
            classify::Reject::NotEthernet => Unanswered::NotEthernet,
            classify::Reject::BadRelayAgentInfo => Unanswered::BadRelayAgentInfo,
        }
    }
}
