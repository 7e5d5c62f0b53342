//! TFTP packets (RFC 1350) with option extensions (RFC 2347): decoding that
//! never panics on any input, and encoding into caller-owned buffers.

use std::fmt;

pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// Longest filename accepted in a request. Real boot loaders use short
/// relative paths; anything longer is an attack or a bug.
pub const MAX_FILENAME: usize = 255;
/// Most options honoured in one request; more is an "option bomb".
pub const MAX_OPTIONS: usize = 16;

/// RFC 1350 / 2347 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTid = 5,
    FileExists = 6,
    NoSuchUser = 7,
    /// RFC 2347: the client refuses the negotiated options.
    OptionRefused = 8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A read request; option names are lower-cased, values kept as sent.
    Rrq {
        filename: String,
        mode: Mode,
        options: Vec<(String, String)>,
    },
    Wrq {
        filename: String,
    },
    Data {
        block: u16,
        data: &'a [u8],
    },
    Ack {
        block: u16,
    },
    Error {
        code: u16,
        message: String,
    },
    Oack {
        options: Vec<(String, String)>,
    },
}

/// Why a datagram could not be decoded (the server counts each reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    TooShort,
    UnknownOpcode(u16),
    /// A string field without its NUL terminator.
    Unterminated,
    NotUtf8,
    EmptyFilename,
    FilenameTooLong,
    UnknownMode,
    TooManyOptions,
    /// An option name without a value.
    OddOptions,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort => f.write_str("packet too short"),
            DecodeError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            DecodeError::Unterminated => f.write_str("string field not NUL-terminated"),
            DecodeError::NotUtf8 => f.write_str("string field is not text"),
            DecodeError::EmptyFilename => f.write_str("empty filename"),
            DecodeError::FilenameTooLong => f.write_str("filename too long"),
            DecodeError::UnknownMode => f.write_str("unknown transfer mode"),
            DecodeError::TooManyOptions => f.write_str("too many options"),
            DecodeError::OddOptions => f.write_str("option without a value"),
        }
    }
}

/// Splits NUL-terminated strings off the front of `bytes`.
fn strings(mut bytes: &[u8]) -> Result<Vec<&str>, DecodeError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let nul = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Unterminated)?;
        out.push(std::str::from_utf8(&bytes[..nul]).map_err(|_| DecodeError::NotUtf8)?);
        bytes = &bytes[nul + 1..];
        if out.len() > 2 + 2 * MAX_OPTIONS {
            return Err(DecodeError::TooManyOptions);
        }
    }
    Ok(out)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

fn options(fields: &[&str]) -> Result<Vec<(String, String)>, DecodeError> {
    if !fields.len().is_multiple_of(2) {
        return Err(DecodeError::OddOptions);
    }
    Ok(fields
        .chunks(2)
        .map(|kv| (kv[0].to_ascii_lowercase(), kv[1].to_string()))
        .collect())
}

impl<'a> Packet<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        let op = u16_at(bytes, 0).ok_or(DecodeError::TooShort)?;
        let body = &bytes[2..];
        match op {
            OP_RRQ | OP_WRQ => {
                let fields = strings(body)?;
                let (filename, mode) = match fields.as_slice() {
                    [f, m, ..] => (*f, *m),
                    _ => return Err(DecodeError::Unterminated),
                };
                if filename.is_empty() {
                    return Err(DecodeError::EmptyFilename);
                }
                if filename.len() > MAX_FILENAME {
                    return Err(DecodeError::FilenameTooLong);
                }
                if op == OP_WRQ {
                    return Ok(Packet::Wrq {
                        filename: filename.into(),
                    });
                }
                let mode = match mode.to_ascii_lowercase().as_str() {
                    "octet" => Mode::Octet,
                    "netascii" => Mode::Netascii,
                    _ => return Err(DecodeError::UnknownMode),
                };
                Ok(Packet::Rrq {
                    filename: filename.into(),
                    mode,
                    options: options(&fields[2..])?,
                })
            }
            OP_DATA => Ok(Packet::Data {
                block: u16_at(bytes, 2).ok_or(DecodeError::TooShort)?,
                data: &bytes[4..],
            }),
            OP_ACK => Ok(Packet::Ack {
                block: u16_at(bytes, 2).ok_or(DecodeError::TooShort)?,
            }),
            OP_ERROR => {
                let code = u16_at(bytes, 2).ok_or(DecodeError::TooShort)?;
                // Clients are sloppy with error text: take what is there.
                let text = &bytes[4..];
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                Ok(Packet::Error {
                    code,
                    message: String::from_utf8_lossy(&text[..end]).into_owned(),
                })
            }
            OP_OACK => Ok(Packet::Oack {
                options: options(&strings(body)?)?,
            }),
            other => Err(DecodeError::UnknownOpcode(other)),
        }
    }
}

/// DATA header + payload into `buf` (cleared first).
pub fn encode_data(buf: &mut Vec<u8>, block: u16, payload: &[u8]) {
    buf.clear();
    buf.extend_from_slice(&OP_DATA.to_be_bytes());
    buf.extend_from_slice(&block.to_be_bytes());
    buf.extend_from_slice(payload);
}

pub fn encode_ack(block: u16) -> Vec<u8> {
    let mut v = OP_ACK.to_be_bytes().to_vec();
    v.extend_from_slice(&block.to_be_bytes());
    v
}

pub fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut v = OP_ERROR.to_be_bytes().to_vec();
    v.extend_from_slice(&(code as u16).to_be_bytes());
    v.extend_from_slice(message.as_bytes());
    v.push(0);
    v
}

pub fn encode_oack(options: &[(String, String)]) -> Vec<u8> {
    let mut v = OP_OACK.to_be_bytes().to_vec();
    for (k, val) in options {
        v.extend_from_slice(k.as_bytes());
        v.push(0);
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

/// A read request, as clients send it (for tests and the simulator).
pub fn encode_rrq(filename: &str, mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut v = OP_RRQ.to_be_bytes().to_vec();
    for s in [filename, mode]
        .into_iter()
        .chain(options.iter().flat_map(|(k, val)| [*k, *val]))
    {
        v.extend_from_slice(s.as_bytes());
        v.push(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrq_with_options() {
        let bytes = encode_rrq("ipxe.efi", "OCTET", &[("BLKSIZE", "1468"), ("tsize", "0")]);
        assert_eq!(
            Packet::decode(&bytes).unwrap(),
            Packet::Rrq {
                filename: "ipxe.efi".into(),
                mode: Mode::Octet,
                options: vec![
                    ("blksize".into(), "1468".into()),
                    ("tsize".into(), "0".into())
                ],
            }
        );
    }

    #[test]
    fn every_truncation_of_every_packet_is_an_error_or_a_packet_never_a_panic() {
        let samples = [
            encode_rrq(
                "undionly.kpxe",
                "octet",
                &[("blksize", "1432"), ("tsize", "0")],
            ),
            encode_ack(7),
            encode_error(ErrorCode::FileNotFound, "nope"),
            encode_oack(&[("blksize".into(), "1468".into())]),
            {
                let mut b = Vec::new();
                encode_data(&mut b, 3, b"hello");
                b
            },
        ];
        for s in &samples {
            for n in 0..=s.len() {
                let _ = Packet::decode(&s[..n]);
            }
        }
    }

    #[test]
    fn malformed_requests_are_named() {
        let cases: Vec<(Vec<u8>, DecodeError)> = vec![
            (vec![0], DecodeError::TooShort),
            (vec![0, 9, 1, 2], DecodeError::UnknownOpcode(9)),
            (b"\x00\x01file\x00octet".to_vec(), DecodeError::Unterminated),
            (encode_rrq("", "octet", &[]), DecodeError::EmptyFilename),
            (
                encode_rrq(&"a".repeat(300), "octet", &[]),
                DecodeError::FilenameTooLong,
            ),
            (encode_rrq("f", "mail", &[]), DecodeError::UnknownMode),
            (
                b"\x00\x01f\x00octet\x00blksize\x00".to_vec(),
                DecodeError::OddOptions,
            ),
            (
                b"\x00\x01\xff\xfe\x00octet\x00".to_vec(),
                DecodeError::NotUtf8,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(Packet::decode(&bytes), Err(want));
        }
        let bomb: Vec<(String, String)> = (0..100).map(|i| (format!("o{i}"), "1".into())).collect();
        let refs: Vec<(&str, &str)> = bomb.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            Packet::decode(&encode_rrq("f", "octet", &refs)),
            Err(DecodeError::TooManyOptions)
        );
    }
}
