//! The relay agent information option (82, RFC 3046): which switch port
//! (circuit-id, sub-option 1) and which relay (remote-id, sub-option 2) a
//! relayed request came through.
//!
//! A server that understands the option must echo it unchanged in every
//! reply (RFC 3046 §2.2); relays that added it (ISC dhcrelay `-a`, switch
//! DHCP snooping) use it to find the client's port and may drop a reply
//! without it. So the raw bytes are kept for the echo, and only what the
//! console and the pool matcher need is decoded.

use std::fmt::Write;

/// Sub-option codes (RFC 3046 §2.0).
pub const CIRCUIT_ID: u8 = 1;
pub const REMOTE_ID: u8 = 2;

/// The longest option 82 accepted. RFC 3046 §2.1: a relay agent must not
/// add the option if the packet would exceed its limits, and the option is
/// one option of at most 255 bytes; a longer one (RFC 3396 concatenation)
/// is no relay pxedeck can answer.
pub const MAX_LEN: usize = 255;

/// A decoded option 82.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAgentInfo {
    /// The option's bytes as received, echoed in every reply.
    pub raw: Vec<u8>,
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
    /// Every other sub-option (link selection, subscriber id, vendor…),
    /// kept raw, in order.
    pub other: Vec<(u8, Vec<u8>)>,
}

/// Why an option 82 was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayAgentError {
    /// Longer than [`MAX_LEN`].
    TooLong,
    /// A sub-option's length runs past the end of the option, or a
    /// sub-option has no length byte.
    Truncated,
    /// The option carries no sub-option at all (RFC 3046 §2.0: at least one).
    Empty,
}

impl RelayAgentInfo {
    /// Decodes the option's value (what follows code and length).
    pub fn decode(raw: &[u8]) -> Result<RelayAgentInfo, RelayAgentError> {
        if raw.len() > MAX_LEN {
            return Err(RelayAgentError::TooLong);
        }
        if raw.is_empty() {
            return Err(RelayAgentError::Empty);
        }
        let mut info = RelayAgentInfo {
            raw: raw.to_vec(),
            circuit_id: None,
            remote_id: None,
            other: Vec::new(),
        };
        let mut rest = raw;
        while let Some((&code, tail)) = rest.split_first() {
            let (&len, tail) = tail.split_first().ok_or(RelayAgentError::Truncated)?;
            let len = usize::from(len);
            if tail.len() < len {
                return Err(RelayAgentError::Truncated);
            }
            let (value, tail) = tail.split_at(len);
            match code {
                // A repeated sub-option: the first one counts, as in ISC dhcpd.
                CIRCUIT_ID if info.circuit_id.is_none() => info.circuit_id = Some(value.to_vec()),
                REMOTE_ID if info.remote_id.is_none() => info.remote_id = Some(value.to_vec()),
                _ => info.other.push((code, value.to_vec())),
            }
            rest = tail;
        }
        Ok(info)
    }

    /// The option's value with the given sub-options (for tests and the
    /// simulator's relay).
    pub fn encode(sub_options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (code, value) in sub_options {
            out.push(*code);
            out.push(value.len().min(255) as u8);
            out.extend_from_slice(&value[..value.len().min(255)]);
        }
        out
    }

    pub fn circuit_id_text(&self) -> Option<String> {
        self.circuit_id.as_deref().map(printable)
    }

    pub fn remote_id_text(&self) -> Option<String> {
        self.remote_id.as_deref().map(printable)
    }
}

/// An identifier as people read it: the text when it is printable ASCII
/// (interface names, "Gi1/0/12", a hostname), else colon-separated hex
/// (a MAC-form remote-id, a binary VLAN+port circuit-id).
pub fn printable(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A pool's `match:` on option 82 (`circuit_id`, `remote_id`): each given
/// pattern must match for the pool to serve the request. A pattern is
/// compared with the sub-option as [`printable`] shows it (text, or
/// colon-separated hex); a trailing `*` matches any rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayMatch {
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
}

/// The longest pattern accepted (a sub-option is at most 253 bytes, 3
/// characters each in hex).
pub const MAX_PATTERN: usize = 760;

impl RelayMatch {
    pub fn is_empty(&self) -> bool {
        self.circuit_id.is_none() && self.remote_id.is_none()
    }

    /// Checks a pattern as written in a config file.
    pub fn check_pattern(pattern: &str) -> Result<(), String> {
        let body = pattern.strip_suffix('*').unwrap_or(pattern);
        if pattern.is_empty() {
            return Err("an empty pattern matches nothing; leave the key out".into());
        }
        if pattern.len() > MAX_PATTERN {
            return Err(format!("pattern longer than {MAX_PATTERN} characters"));
        }
        if body.contains('*') {
            return Err("`*` may only end a pattern (a prefix match)".into());
        }
        Ok(())
    }

    /// Whether a request with this option 82 (or none) is matched.
    pub fn matches(&self, info: Option<&RelayAgentInfo>) -> bool {
        let one = |pattern: &Option<String>, value: Option<&[u8]>| match pattern {
            None => true,
            Some(p) => value.is_some_and(|v| pattern_matches(p, &printable(v))),
        };
        one(&self.circuit_id, info.and_then(|i| i.circuit_id.as_deref()))
            && one(&self.remote_id, info.and_then(|i| i.remote_id.as_deref()))
    }
}

fn pattern_matches(pattern: &str, text: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => text.starts_with(prefix),
        None => text == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_and_remote_id_and_the_rest_raw() {
        let raw = RelayAgentInfo::encode(&[
            (CIRCUIT_ID, b"eth1"),
            (5, &[10, 0, 0, 0]),
            (REMOTE_ID, &[0, 6, 0x52, 0x54, 0, 1, 2, 3]),
        ]);
        let info = RelayAgentInfo::decode(&raw).unwrap();
        assert_eq!(info.raw, raw, "kept byte for byte for the echo");
        assert_eq!(info.circuit_id_text().as_deref(), Some("eth1"));
        assert_eq!(
            info.remote_id_text().as_deref(),
            Some("00:06:52:54:00:01:02:03")
        );
        assert_eq!(info.other, vec![(5, vec![10, 0, 0, 0])]);
    }

    #[test]
    fn repeated_sub_options_keep_the_first_and_the_rest_as_other() {
        let raw = RelayAgentInfo::encode(&[(CIRCUIT_ID, b"a"), (CIRCUIT_ID, b"b")]);
        let info = RelayAgentInfo::decode(&raw).unwrap();
        assert_eq!(info.circuit_id.as_deref(), Some(&b"a"[..]));
        assert_eq!(info.other, vec![(CIRCUIT_ID, b"b".to_vec())]);
    }

    #[test]
    fn malformed_options_are_refused_not_panicked_on() {
        let good = RelayAgentInfo::encode(&[(CIRCUIT_ID, b"Gi1/0/12"), (REMOTE_ID, b"sw1")]);
        let boundary = 2 + b"Gi1/0/12".len();
        for n in (1..good.len()).filter(|n| *n != boundary) {
            let cut = RelayAgentInfo::decode(&good[..n]);
            assert_eq!(cut, Err(RelayAgentError::Truncated), "cut at {n}");
        }
        assert_eq!(RelayAgentInfo::decode(&[]), Err(RelayAgentError::Empty));
        assert_eq!(
            RelayAgentInfo::decode(&[1, 10, b'x']),
            Err(RelayAgentError::Truncated)
        );
        let long = vec![9u8; MAX_LEN + 1];
        assert_eq!(RelayAgentInfo::decode(&long), Err(RelayAgentError::TooLong));
        // The longest allowed: 127 empty sub-options and one more byte pair.
        let mut max = [3u8, 0].repeat(127);
        max.push(4);
        assert_eq!(
            RelayAgentInfo::decode(&max),
            Err(RelayAgentError::Truncated)
        );
        max.pop();
        assert_eq!(RelayAgentInfo::decode(&max).unwrap().other.len(), 127);
    }

    #[test]
    fn matching_on_circuit_and_remote_id() {
        let info = RelayAgentInfo::decode(&RelayAgentInfo::encode(&[
            (CIRCUIT_ID, b"Gi1/0/12"),
            (REMOTE_ID, &[0, 6, 1, 2]),
        ]))
        .unwrap();
        let m = |c: Option<&str>, r: Option<&str>| RelayMatch {
            circuit_id: c.map(str::to_string),
            remote_id: r.map(str::to_string),
        };
        assert!(m(Some("Gi1/0/12"), None).matches(Some(&info)));
        assert!(m(Some("Gi1/0/*"), Some("00:06:*")).matches(Some(&info)));
        assert!(
            !m(Some("Gi1/0/1"), None).matches(Some(&info)),
            "not a prefix"
        );
        assert!(!m(Some("Gi1/0/12"), Some("00:07:*")).matches(Some(&info)));
        assert!(!m(Some("Gi1/0/12"), None).matches(None), "no option 82");
        assert!(m(None, None).matches(None));
        assert!(RelayMatch::check_pattern("Gi1/*").is_ok());
        assert!(RelayMatch::check_pattern("Gi*/1").is_err());
        assert!(RelayMatch::check_pattern("").is_err());
        assert!(RelayMatch::check_pattern(&"x".repeat(MAX_PATTERN + 1)).is_err());
    }

    #[test]
    fn printable_text_or_hex() {
        assert_eq!(printable(b"Gi1/0/12"), "Gi1/0/12");
        assert_eq!(printable(&[0, 10, 1]), "00:0a:01");
        assert_eq!(printable(b"a\tb"), "61:09:62");
        assert_eq!(printable(&[]), "");
    }
}
