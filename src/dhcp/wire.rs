//! DHCPv4 / BOOTP wire format (RFC 2131 §2, RFC 2132 options, RFC 3396
//! long options): a strict decoder that never panics, and an encoder.
//!
//! pxedeck owns this codec rather than use dhcproto: PXE needs option 93 as
//! a *list* of u16 (dhcproto reads one and misaligns the rest), option
//! overload handling, and a decoder with no assertion on client-supplied
//! lengths.

use std::net::Ipv4Addr;

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const HEADER: usize = 236;
/// The smallest IP datagram every DHCP client must accept (RFC 2131 §2).
pub const MIN_DATAGRAM: usize = 576;
/// An IPv4 header without options and a UDP header.
pub const IP_UDP_HEADERS: usize = 20 + 8;
/// The smallest DHCP message every client must accept: 576 bytes less the
/// headers leave 548 (a 312-byte options field).
pub const MIN_MESSAGE: usize = MIN_DATAGRAM - IP_UDP_HEADERS;
/// BOOTP relays and some ROMs expect at least a BOOTP-sized packet (RFC 951:
/// 64 bytes of vendor area after the 236-byte header), so replies are padded
/// to this.
const BOOTP_MIN: usize = 300;

pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const BROADCAST: u8 = 28;
    pub const VENDOR: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMS: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_SIZE: u8 = 57;
    pub const RENEWAL: u8 = 58;
    pub const REBINDING: u8 = 59;
    pub const CLASS_ID: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const RELAY_AGENT: u8 = 82;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_NDI: u8 = 94;
    pub const CLIENT_GUID: u8 = 97;
    pub const IPXE_ENCAP: u8 = 175;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
pub mod msg {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const DECLINE: u8 = 4;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
    pub const RELEASE: u8 = 7;
    pub const INFORM: u8 = 8;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// Server name, NUL-padded (unless overloaded with options).
    pub sname: Vec<u8>,
    /// Boot file name, NUL-padded (unless overloaded with options).
    pub file: Vec<u8>,
    /// Options in first-seen order; repeated codes are concatenated
    /// (RFC 3396).
    pub options: Vec<(u8, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    TooShort,
    BadMagic,
    /// An option's length runs past the end of its field.
    TruncatedOption,
    BadOverload,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireError::TooShort => "packet shorter than a BOOTP header",
            WireError::BadMagic => "no DHCP magic cookie",
            WireError::TruncatedOption => "an option runs past the end of the packet",
            WireError::BadOverload => "invalid option overload",
        })
    }
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Appends the options in `field` to `out`, merging repeated codes.
fn parse_options(mut field: &[u8], out: &mut Vec<(u8, Vec<u8>)>) -> Result<(), WireError> {
    while let Some((&code, rest)) = field.split_first() {
        match code {
            opt::PAD => field = rest,
            opt::END => return Ok(()),
            _ => {
                let (&len, rest) = rest.split_first().ok_or(WireError::TruncatedOption)?;
                let len = usize::from(len);
                if rest.len() < len {
                    return Err(WireError::TruncatedOption);
                }
                let (value, rest) = rest.split_at(len);
                match out.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, existing)) => existing.extend_from_slice(value),
                    None => out.push((code, value.to_vec())),
                }
                field = rest;
            }
        }
    }
    Ok(())
}

impl Packet {
    pub fn decode(b: &[u8]) -> Result<Packet, WireError> {
        if b.len() < HEADER + 4 {
            return Err(WireError::TooShort);
        }
        if b[HEADER..HEADER + 4] != MAGIC {
            return Err(WireError::BadMagic);
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&b[28..44]);
        let mut p = Packet {
            op: b[0],
            htype: b[1],
            hlen: b[2],
            hops: b[3],
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip_at(b, 12),
            yiaddr: ip_at(b, 16),
            siaddr: ip_at(b, 20),
            giaddr: ip_at(b, 24),
            chaddr,
            sname: b[44..108].to_vec(),
            file: b[108..236].to_vec(),
            options: Vec::new(),
        };
        parse_options(&b[HEADER + 4..], &mut p.options)?;
        // RFC 2132 §9.3: option 52 says file and/or sname carry options too.
        if let Some(v) = p.option(opt::OVERLOAD) {
            let which = *v.first().ok_or(WireError::BadOverload)?;
            if !(1..=3).contains(&which) {
                return Err(WireError::BadOverload);
            }
            let (file, sname) = (p.file.clone(), p.sname.clone());
            if which & 1 != 0 {
                parse_options(&file, &mut p.options)?;
                p.file.fill(0);
            }
            if which & 2 != 0 {
                parse_options(&sname, &mut p.options)?;
                p.sname.fill(0);
            }
        }
        Ok(p)
    }

    /// A client request with the given type (for the simulator and tests):
    /// broadcast flag set, no options but the message type.
    pub fn client_request(mac: [u8; 6], xid: u32, message_type: u8) -> Packet {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&mac);
        let mut p = Packet {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid,
            secs: 0,
            flags: 0x8000,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            sname: vec![0; 64],
            file: vec![0; 128],
            options: Vec::new(),
        };
        p.set_option(opt::MESSAGE_TYPE, [message_type]);
        p
    }

    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn set_option(&mut self, code: u8, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self.options.iter_mut().find(|(c, _)| *c == code) {
            Some((_, v)) => *v = value,
            None => self.options.push((code, value)),
        }
    }

    /// The DHCP message type (option 53), if present.
    pub fn message_type(&self) -> Option<u8> {
        self.option(opt::MESSAGE_TYPE)
            .and_then(|v| v.first().copied())
    }

    pub fn broadcast_flag(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// A NUL-terminated text field (file, sname) as a string.
    pub fn text(field: &[u8]) -> String {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        String::from_utf8_lossy(&field[..end]).into_owned()
    }

    /// The options in the order they are encoded: message type and server
    /// id first (some ROMs look for 53 at the start), then the rest in the
    /// order the packet holds them — the handler orders those by the
    /// client's option 55 (see [`super::reply`]).
    fn encoding_order(&self) -> impl Iterator<Item = &(u8, Vec<u8>)> {
        const FIRST: [u8; 2] = [opt::MESSAGE_TYPE, opt::SERVER_ID];
        FIRST
            .iter()
            .filter_map(|c| self.options.iter().find(|(code, _)| code == c))
            .chain(self.options.iter().filter(|(c, _)| !FIRST.contains(c)))
    }

    /// The bytes [`Packet::encode`] will produce, without encoding.
    pub fn encoded_len(&self) -> usize {
        let options: usize = self
            .options
            .iter()
            .map(|(_, v)| encoded_option_len(v.len()))
            .sum();
        (HEADER + MAGIC.len() + options + 1).max(BOOTP_MIN)
    }

    /// Makes the packet fit in `limit` encoded bytes: options for which
    /// `mandatory` holds are always kept (so the result can still exceed
    /// `limit` if those alone do); the others are kept in their order while
    /// they fit, so a large option low in the list does not push out smaller
    /// ones below it. Returns the codes dropped.
    pub fn fit(&mut self, limit: usize, mandatory: impl Fn(u8) -> bool) -> Vec<u8> {
        if self.encoded_len() <= limit {
            return Vec::new();
        }
        let size = |(_, v): &(u8, Vec<u8>)| encoded_option_len(v.len());
        let fixed = HEADER + MAGIC.len() + 1;
        let mut used = fixed
            + self
                .options
                .iter()
                .filter(|(c, _)| mandatory(*c))
                .map(size)
                .sum::<usize>();
        let mut dropped = Vec::new();
        self.options.retain(|o| {
            if mandatory(o.0) {
                return true;
            }
            if used + size(o) <= limit {
                used += size(o);
                return true;
            }
            dropped.push(o.0);
            false
        });
        dropped
    }

    /// Encodes the packet, options in [`Packet::encoding_order`]. Options
    /// longer than 255 bytes are split (RFC 3396); nothing is overloaded
    /// into `file` or `sname`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MIN_MESSAGE);
        b.push(self.op);
        b.push(self.htype);
        b.push(self.hlen);
        b.push(self.hops);
        b.extend_from_slice(&self.xid.to_be_bytes());
        b.extend_from_slice(&self.secs.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        for ip in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            b.extend_from_slice(&ip.octets());
        }
        b.extend_from_slice(&self.chaddr);
        let mut fixed = |field: &[u8], len: usize| {
            let mut f = field[..field.len().min(len)].to_vec();
            f.resize(len, 0);
            b.extend_from_slice(&f);
        };
        fixed(&self.sname, 64);
        fixed(&self.file, 128);
        b.extend_from_slice(&MAGIC);
        for (code, value) in self.encoding_order() {
            if value.is_empty() {
                b.extend_from_slice(&[*code, 0]);
            }
            for chunk in value.chunks(255) {
                b.push(*code);
                b.push(chunk.len() as u8);
                b.extend_from_slice(chunk);
            }
        }
        b.push(opt::END);
        if b.len() < BOOTP_MIN {
            b.resize(BOOTP_MIN, 0);
        }
        b
    }
}

/// Bytes one option takes on the wire: code and length per 255-byte chunk
/// (RFC 3396), or code and a zero length when empty.
fn encoded_option_len(value_len: usize) -> usize {
    value_len + 2 * value_len.div_ceil(255).max(1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn discover() -> Packet {
        let mut p = Packet::client_request(
            [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            0xdead_beef,
            msg::DISCOVER,
        );
        p.secs = 4;
        p.set_option(opt::CLASS_ID, b"PXEClient:Arch:00007:UNDI:003016".to_vec());
        p.set_option(opt::CLIENT_ARCH, [0, 7, 0, 9]);
        p
    }

    #[test]
    fn round_trip() {
        let p = discover();
        let bytes = p.encode();
        assert_eq!(bytes.len(), 300);
        assert_eq!(Packet::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn long_and_repeated_options_concatenate() {
        let mut p = discover();
        p.set_option(opt::USER_CLASS, vec![b'x'; 600]);
        let bytes = p.encode();
        assert_eq!(
            Packet::decode(&bytes)
                .unwrap()
                .option(opt::USER_CLASS)
                .unwrap()
                .len(),
            600
        );
    }

    #[test]
    fn overloaded_file_field_carries_options() {
        let mut p = discover();
        p.set_option(opt::OVERLOAD, [1]);
        let mut bytes = p.encode();
        // Put option 12 "node" into the file field (offset 108).
        bytes[108..115].copy_from_slice(&[opt::HOSTNAME, 4, b'n', b'o', b'd', b'e', opt::END]);
        let d = Packet::decode(&bytes).unwrap();
        assert_eq!(d.option(opt::HOSTNAME), Some(&b"node"[..]));
        assert!(d.file.iter().all(|&b| b == 0));
    }

    #[test]
    fn encoded_len_matches_encode() {
        let mut p = discover();
        assert_eq!(p.encoded_len(), p.encode().len(), "padded to 300");
        p.set_option(opt::USER_CLASS, vec![b'x'; 600]);
        p.set_option(opt::HOSTNAME, Vec::new());
        p.set_option(opt::DOMAIN, vec![b'd'; 255]);
        assert_eq!(p.encoded_len(), p.encode().len());
    }

    #[test]
    fn fit_keeps_mandatory_options_and_what_still_fits() {
        let mut p = discover();
        p.set_option(opt::DOMAIN, vec![b'd'; 200]);
        p.set_option(opt::HOSTNAME, vec![b'h'; 100]);
        p.set_option(opt::CLASS_ID, vec![b'c'; 250]);
        let mandatory = |c: u8| c == opt::MESSAGE_TYPE || c == opt::CLASS_ID;
        assert_eq!(
            p.fit(MIN_MESSAGE, mandatory),
            vec![opt::DOMAIN, opt::HOSTNAME]
        );
        assert!(p.encoded_len() <= MIN_MESSAGE);
        assert!(p.option(opt::CLASS_ID).is_some() && p.option(opt::CLIENT_ARCH).is_some());
        // A big option does not push out a small one after it.
        p.set_option(opt::DOMAIN, vec![b'd'; 200]);
        p.set_option(opt::ROUTER, [10, 0, 0, 1]);
        assert_eq!(p.fit(MIN_MESSAGE, mandatory), vec![opt::DOMAIN]);
        assert!(p.option(opt::ROUTER).is_some());
        // What cannot fit without a mandatory option is sent anyway.
        p.set_option(opt::CLASS_ID, vec![b'c'; 400]);
        p.fit(MIN_MESSAGE, mandatory);
        assert_eq!(p.option(opt::CLASS_ID).map(<[u8]>::len), Some(400));
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        let good = discover().encode();
        for n in 0..good.len() {
            let _ = Packet::decode(&good[..n]);
        }
        assert_eq!(Packet::decode(&good[..100]), Err(WireError::TooShort));
        let mut bad = good.clone();
        bad[236] = 0;
        assert_eq!(Packet::decode(&bad), Err(WireError::BadMagic));
        let mut trunc = good[..244].to_vec();
        trunc.extend_from_slice(&[opt::HOSTNAME, 200, b'a']);
        assert_eq!(Packet::decode(&trunc), Err(WireError::TruncatedOption));
    }
}
