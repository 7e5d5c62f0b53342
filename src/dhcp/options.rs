//! Operator-defined DHCP options (`dhcp_options:` on a pool, a group's
//! `_defaults.yaml` or a machine), the way dnsmasq's `dhcp-option` is used:
//! named options whose type pxedeck knows (NTP servers, MTU, domain search
//! with RFC 1035 compression, classless static routes, …) and any other
//! code with a declared type. Read once, at load, into encoded bytes with
//! every error at its file:line; the reply builder only copies them.
//!
//! ```yaml
//! dhcp_options:
//!   ntp-servers: [10.99.0.1, 10.99.0.2]
//!   mtu: 9000
//!   domain-search: [prov.example.net, example.net]
//!   classless-static-routes: ["10.20.0.0/16 via 10.99.0.254"]
//!   vendor-specific: {suboptions: {1: {type: ip, value: 10.99.0.1}}}
//!   224: {type: string, value: rack-12, always: true}
//! ```

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::wire::opt;
use crate::yaml::{Node, Origin, Value};

/// One option, encoded, as the operator set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorOption {
    pub code: u8,
    pub value: Vec<u8>,
    /// Sent even when the client's option 55 does not ask for it.
    pub always: bool,
}

/// A `dhcp_options:` problem at the line it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    pub origin: Origin,
    pub message: String,
}

/// The most options one `dhcp_options:` map may set, and the most bytes one
/// option's value may take (RFC 3396 splits it on the wire; no client reads
/// more than its option 57 allows anyway).
pub const MAX_OPTIONS: usize = 64;
pub const MAX_VALUE: usize = 1024;

/// How a value is written and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ip,
    Ips,
    String,
    U8,
    U16,
    U32,
    Bool,
    Hex,
    /// RFC 3397 domain search list, RFC 1035 compressed.
    Domains,
    /// RFC 3442 classless static routes.
    Routes,
    /// Option 43: raw `hex:` or `suboptions:` (code → typed value).
    Vendor,
}

/// Named options: (name, code, kind).
const NAMED: [(&str, u8, Kind); 14] = [
    ("routers", 3, Kind::Ips),
    ("dns-servers", 6, Kind::Ips),
    ("log-servers", 7, Kind::Ips),
    ("domain-name", 15, Kind::String),
    ("mtu", 26, Kind::U16),
    ("ntp-servers", 42, Kind::Ips),
    ("vendor-specific", 43, Kind::Vendor),
    ("netbios-name-servers", 44, Kind::Ips),
    ("tftp-server-name", 66, Kind::String),
    ("smtp-servers", 69, Kind::Ips),
    ("domain-search", 119, Kind::Domains),
    ("classless-static-routes", 121, Kind::Routes),
    ("time-servers", 4, Kind::Ips),
    ("root-path", 17, Kind::String),
];

/// Codes an operator may not set: the protocol's own (message type, server
/// id, lease times, overload, parameter list, maximum size, client id), what
/// pxedeck decides per client (subnet mask from the pool, host name from the
/// inventory, class, boot file, architecture, GUID) and the relay's echo.
const RESERVED: [u8; 22] = [
    0, 1, 12, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 67, 82, 93, 94, 97, 175, 255,
];

fn kind_of_type(name: &str) -> Option<Kind> {
    Some(match name {
        "ip" => Kind::Ip,
        "ips" => Kind::Ips,
        "string" => Kind::String,
        "u8" => Kind::U8,
        "u16" => Kind::U16,
        "u32" => Kind::U32,
        "bool" => Kind::Bool,
        "hex" => Kind::Hex,
        "domains" => Kind::Domains,
        "routes" => Kind::Routes,
        _ => return None,
    })
}

const TYPES: &str = "ip, ips, string, u8, u16, u32, bool, hex, domains, routes";

fn err(node: &Node, message: impl Into<String>) -> OptionError {
    OptionError {
        origin: node.origin,
        message: message.into(),
    }
}

/// Reads a `dhcp_options:` map. Every problem is reported, not only the
/// first.
pub fn parse(node: &Node) -> Result<Vec<OperatorOption>, Vec<OptionError>> {
    let Some(entries) = node.as_map() else {
        return Err(vec![err(
            node,
            "dhcp_options must be a map of option name or code to value",
        )]);
    };
    let mut out: Vec<OperatorOption> = Vec::new();
    let mut errors = Vec::new();
    if entries.len() > MAX_OPTIONS {
        errors.push(err(node, format!("more than {MAX_OPTIONS} options")));
    }
    for e in entries.iter().take(MAX_OPTIONS) {
        let key_at = Node::new(
            Value::Null,
            Origin {
                line: e.key_line,
                ..e.node.origin
            },
        );
        match entry(&e.key, &e.node) {
            Ok(o) if out.iter().any(|x| x.code == o.code) => errors.push(err(
                &key_at,
                format!("option {} is set twice (by name and by code?)", o.code),
            )),
            Ok(o) => out.push(o),
            Err(mut e2) => {
                if e2.origin == Origin::default() {
                    e2.origin = key_at.origin;
                }
                errors.push(e2)
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn entry(key: &str, node: &Node) -> Result<OperatorOption, OptionError> {
    let named = NAMED.iter().find(|(n, _, _)| *n == key);
    let (code, named_kind) = match named {
        Some((_, code, kind)) => (*code, Some(*kind)),
        None => match key.parse::<u8>() {
            Ok(code) => (code, None),
            Err(_) => {
                let names: Vec<&str> = NAMED.iter().map(|(n, _, _)| *n).collect();
                return Err(err(
                    node,
                    format!(
                        "unknown option `{key}`: use a code (1-254) with a type, or one of {}",
                        names.join(", ")
                    ),
                ));
            }
        },
    };
    if RESERVED.contains(&code) {
        return Err(err(
            node,
            format!(
                "option {code} is pxedeck's to set (protocol, pool or inventory), not an operator's"
            ),
        ));
    }
    // `{value: …, type: …, always: …}`, or the bare value of a named option.
    let long_form = node
        .as_map()
        .is_some_and(|m| m.iter().any(|e| e.key == "value"));
    let (value, declared, always) = if long_form {
        let mut always = false;
        let mut declared = None;
        for e in node.as_map().unwrap_or_default() {
            match e.key.as_str() {
                "value" => {}
                "always" => match e.node.value {
                    Value::Bool(b) => always = b,
                    _ => return Err(err(&e.node, "always must be true or false")),
                },
                "type" => match e.node.as_str().and_then(kind_of_type) {
                    Some(k) => declared = Some(k),
                    None => {
                        return Err(err(
                            &e.node,
                            format!("unknown type, expected one of {TYPES}"),
                        ));
                    }
                },
                other => {
                    return Err(err(
                        &e.node,
                        format!("unknown key `{other}`, expected value, type or always"),
                    ));
                }
            }
        }
        (node.get("value").unwrap_or(node), declared, always)
    } else {
        (node, None, false)
    };
    let kind = match (named_kind, declared) {
        (Some(k), None) => k,
        (Some(k), Some(d)) if d == k || (k == Kind::Vendor && d == Kind::Hex) => d,
        (Some(_), Some(_)) => {
            return Err(err(
                node,
                format!("option `{key}` has a fixed type; leave `type` out"),
            ));
        }
        (None, Some(d)) => d,
        (None, None) => {
            return Err(err(
                node,
                format!("option {code} needs a type: {{type: <{TYPES}>, value: …}}"),
            ));
        }
    };
    let bytes = encode(kind, value)?;
    if bytes.len() > MAX_VALUE {
        return Err(err(value, format!("value longer than {MAX_VALUE} bytes")));
    }
    if code == opt::VENDOR && bytes.len() > 255 {
        return Err(err(value, "option 43 is at most 255 bytes"));
    }
    Ok(OperatorOption {
        code,
        value: bytes,
        always,
    })
}

fn text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn list(node: &Node) -> Vec<&Node> {
    match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    }
}

fn ip(node: &Node) -> Result<Ipv4Addr, OptionError> {
    text(node)
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| err(node, "not an IPv4 address"))
}

fn int(node: &Node, max: u64) -> Result<u64, OptionError> {
    match node.value {
        Value::Int(i) if i >= 0 && (i as u64) <= max => Ok(i as u64),
        _ => Err(err(node, format!("must be a whole number from 0 to {max}"))),
    }
}

fn encode(kind: Kind, node: &Node) -> Result<Vec<u8>, OptionError> {
    Ok(match kind {
        Kind::Ip => ip(node)?.octets().to_vec(),
        Kind::Ips => {
            let items = list(node);
            if items.is_empty() {
                return Err(err(node, "an empty address list"));
            }
            let mut v = Vec::new();
            for n in items {
                v.extend_from_slice(&ip(n)?.octets());
            }
            v
        }
        Kind::String => {
            let s = text(node).ok_or_else(|| err(node, "must be a string"))?;
            if s.is_empty() {
                return Err(err(node, "an empty string"));
            }
            s.into_bytes()
        }
        Kind::U8 => vec![int(node, u8::MAX.into())? as u8],
        Kind::U16 => (int(node, u16::MAX.into())? as u16).to_be_bytes().to_vec(),
        Kind::U32 => (int(node, u32::MAX.into())? as u32).to_be_bytes().to_vec(),
        Kind::Bool => match node.value {
            Value::Bool(b) => vec![u8::from(b)],
            _ => return Err(err(node, "must be true or false")),
        },
        Kind::Hex => hex(node)?,
        Kind::Domains => {
            let mut names = Vec::new();
            for n in list(node) {
                let s = text(n).ok_or_else(|| err(n, "a domain must be a string"))?;
                check_domain(&s).map_err(|m| err(n, m))?;
                names.push(s);
            }
            if names.is_empty() {
                return Err(err(node, "an empty domain list"));
            }
            compress_domains(&names)
        }
        Kind::Routes => {
            let mut v = Vec::new();
            for n in list(node) {
                v.extend(route(n)?);
            }
            if v.is_empty() {
                return Err(err(node, "an empty route list"));
            }
            v
        }
        Kind::Vendor => vendor(node)?,
    })
}

fn hex(node: &Node) -> Result<Vec<u8>, OptionError> {
    let s = text(node).ok_or_else(|| err(node, "hex must be a string such as \"01:04:0a\""))?;
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(node, "not hex"));
    }
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(err(node, "hex needs an even number of hex digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| err(node, "not hex"))
}

/// Option 43: `{hex: "…"}` raw, or `{suboptions: {code: value}}` where a
/// value is a string or `{type, value}` like a top-level option.
fn vendor(node: &Node) -> Result<Vec<u8>, OptionError> {
    if let Some(h) = node.get("hex") {
        return hex(h);
    }
    let Some(subs) = node.get("suboptions").and_then(Node::as_map) else {
        return Err(err(node, "vendor-specific needs `hex:` or `suboptions:`"));
    };
    let mut out = Vec::new();
    for e in subs {
        let code: u8 = e
            .key
            .parse()
            .ok()
            .filter(|c| (1..=254).contains(c))
            .ok_or_else(|| {
                err(
                    &e.node,
                    format!("sub-option `{}` must be a code 1-254", e.key),
                )
            })?;
        let value = match (e.node.get("type"), e.node.get("value")) {
            (Some(t), Some(v)) => {
                let kind = t
                    .as_str()
                    .and_then(kind_of_type)
                    .ok_or_else(|| err(t, format!("unknown type, expected one of {TYPES}")))?;
                encode(kind, v)?
            }
            _ => encode(Kind::String, &e.node)?,
        };
        if value.len() > 255 {
            return Err(err(&e.node, "a sub-option is at most 255 bytes"));
        }
        out.push(code);
        out.push(value.len() as u8);
        out.extend(value);
    }
    Ok(out)
}

/// `10.20.0.0/16 via 10.99.0.254` or `{to: 10.20.0.0/16, via: 10.99.0.254}`
/// as RFC 3442 encodes it: prefix width, the significant octets, router.
fn route(node: &Node) -> Result<Vec<u8>, OptionError> {
    let (to, via) = match (node.get("to"), node.get("via")) {
        (Some(t), Some(v)) => (text(t), text(v)),
        _ => {
            let s = text(node).unwrap_or_default();
            let mut parts = s.split_whitespace();
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(t), Some("via"), Some(v), None) => (Some(t.to_string()), Some(v.to_string())),
                _ => (None, None),
            }
        }
    };
    let shape = "a route is \"<net>/<len> via <router>\" or {to: <net>/<len>, via: <router>}";
    let (Some(to), Some(via)) = (to, via) else {
        return Err(err(node, shape));
    };
    let net: Ipv4Net = to.parse().map_err(|_| err(node, shape))?;
    let router: Ipv4Addr = via.parse().map_err(|_| err(node, shape))?;
    if net.trunc() != net {
        return Err(err(
            node,
            format!("{net} has host bits set; did you mean {}?", net.trunc()),
        ));
    }
    let width = net.prefix_len();
    let mut v = vec![width];
    v.extend_from_slice(&net.network().octets()[..usize::from(width).div_ceil(8)]);
    v.extend_from_slice(&router.octets());
    Ok(v)
}

fn check_domain(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} is not a domain name (1-253 characters)"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{name:?}: label {label:?} is not a DNS label"));
        }
    }
    Ok(())
}

/// RFC 3397: the names one after another in DNS wire form, a suffix already
/// written replaced by a pointer to it (RFC 1035 §4.1.4, offsets from the
/// start of the option's value).
pub fn compress_domains(names: &[String]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    // (suffix in lower case, offset where it was written)
    let mut seen: Vec<(String, usize)> = Vec::new();
    for name in names {
        let name = name.strip_suffix('.').unwrap_or(name);
        let labels: Vec<&str> = name.split('.').collect();
        let mut pointer = None;
        for i in 0..labels.len() {
            let suffix = labels[i..].join(".").to_ascii_lowercase();
            if let Some((_, at)) = seen.iter().find(|(s, _)| *s == suffix) {
                pointer = Some(*at);
                break;
            }
            if out.len() < 0x3fff {
                seen.push((suffix, out.len()));
            }
            out.push(labels[i].len() as u8);
            out.extend_from_slice(labels[i].as_bytes());
        }
        match pointer {
            Some(at) => out.extend_from_slice(&(0xc000u16 | at as u16).to_be_bytes()),
            None => out.push(0),
        }
    }
    out
}

/// The options one client gets: the pool's, overridden per code by the
/// machine's (whose own map already merged its group's `_defaults.yaml`
/// under the machine file).
pub fn merged<'a>(
    pool: &'a [OperatorOption],
    machine: &'a [OperatorOption],
) -> Vec<&'a OperatorOption> {
    let mut out: Vec<&OperatorOption> = pool
        .iter()
        .filter(|p| !machine.iter().any(|m| m.code == p.code))
        .collect();
    out.extend(machine.iter());
    out
}

#[cfg(test)]
mod tests;
