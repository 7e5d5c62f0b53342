//! The `bmc:` key of a machine (or of a group's `_defaults.yaml`): how to
//! reach the machine's baseboard management controller, read from the
//! merged values and validated with file:line.
//!
//! The password is never in the tree: a machine names an environment
//! variable of pxedeck (`password_env:`) or a file outside git
//! (`password_file:`), and a literal `password:` is refused where it is
//! written, so `pxedeck check` catches it before it reaches a commit.
//! Pure: reading the secret happens only when a driver needs it
//! ([`PasswordRef::resolve`]).

use std::io::Read;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::yaml::{Node, Origin, Value};

/// How pxedeck talks to a BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BmcProtocol {
    /// IPMI 2.0 over LAN (RMCP+), through `ipmitool -I lanplus`.
    Ipmi,
    /// Redfish over HTTPS.
    Redfish,
}

impl BmcProtocol {
    pub fn name(self) -> &'static str {
        match self {
            BmcProtocol::Ipmi => "ipmi",
            BmcProtocol::Redfish => "redfish",
        }
    }

    /// The port used when the address names none.
    pub fn default_port(self) -> u16 {
        match self {
            BmcProtocol::Ipmi => 623,
            BmcProtocol::Redfish => 443,
        }
    }
}

/// Where the BMC password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordRef {
    /// An environment variable of the pxedeck process.
    Env(String),
    /// A file (absolute path) holding the password, one line.
    File(PathBuf),
}

/// The longest password file read: a password is a line, so anything
/// larger is the wrong file.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

impl PasswordRef {
    /// Reads the password now. The error names the variable or file and
    /// never the secret.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            PasswordRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => Err(format!("password_env {name} is empty")),
                Err(_) => Err(format!(
                    "password_env {name} is not set in pxedeck's environment"
                )),
            },
            PasswordRef::File(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| format!("password_file {}: {e}", path.display()))?;
                let mut bytes = Vec::new();
                file.take(MAX_PASSWORD_FILE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("password_file {}: {e}", path.display()))?;
                if bytes.len() as u64 > MAX_PASSWORD_FILE_BYTES {
                    return Err(format!(
                        "password_file {} is larger than {MAX_PASSWORD_FILE_BYTES} bytes",
                        path.display()
                    ));
                }
                let text = String::from_utf8(bytes)
                    .map_err(|_| format!("password_file {} is not UTF-8", path.display()))?;
                // One line; editors add a newline at the end.
                let password = text.trim_end_matches(['\n', '\r']).to_string();
                if password.is_empty() {
                    return Err(format!("password_file {} is empty", path.display()));
                }
                Ok(password)
            }
        }
    }

    /// Where the password comes from, for messages and the API (never the
    /// password).
    pub fn describe(&self) -> String {
        match self {
            PasswordRef::Env(name) => format!("env {name}"),
            PasswordRef::File(path) => format!("file {}", path.display()),
        }
    }
}

/// A machine's BMC, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcSpec {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub protocol: BmcProtocol,
    pub username: String,
    pub password: PasswordRef,
    /// Redfish: whether the BMC's certificate must verify (default true).
    pub verify_tls: bool,
    /// Redfish: a PEM file of the CA (or the BMC's own certificate) to
    /// trust instead of the public roots.
    pub ca_file: Option<PathBuf>,
}

impl BmcSpec {
    /// `host:port`, bracketing an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `ipmi 10.0.0.5:623`: what the console and the API show.
    pub fn label(&self) -> String {
        format!("{} {}", self.protocol.name(), self.authority())
    }
}

/// A problem in `bmc:`, at the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub origin: Origin,
    pub message: String,
}

const KEYS: [&str; 7] = [
    "address",
    "protocol",
    "username",
    "password_env",
    "password_file",
    "verify_tls",
    "ca_file",
];

/// IPMI 2.0 user names are at most 16 bytes; Redfish has no limit, but a
/// user name longer than this is a mistake.
const MAX_USERNAME: usize = 64;
const MAX_IPMI_USERNAME: usize = 16;
/// A DNS name is at most 253 characters.
const MAX_HOST: usize = 253;

fn err(origin: Origin, message: impl Into<String>) -> SpecError {
    SpecError {
        origin,
        message: message.into(),
    }
}

fn string<'a>(node: &'a Node, what: &str) -> Result<&'a str, SpecError> {
    match &node.value {
        Value::Str(s) => Ok(s),
        other => Err(err(
            node.origin,
            format!("bmc.{what} must be a string, not {}", other.kind()),
        )),
    }
}

/// The keys that say a `bmc:` map is for pxedeck to drive. A `bmc:` map
/// with none of them (say `{address: …, vendor: idrac}`, kept for
/// templates before pxedeck drove BMCs) stays a template variable.
const DRIVEN_BY: [&str; 6] = [
    "protocol",
    "username",
    "password_env",
    "password_file",
    "verify_tls",
    "ca_file",
];

const LITERAL_PASSWORD: &str = "bmc.password: a password does not belong in the inventory (it is kept \
     in git); use password_env: (a variable of pxedeck's environment) or password_file: (a file \
     outside the tree)";

/// Reads a `bmc:` map: None when it is not one pxedeck drives (no
/// protocol, user or password reference), else the BMC or every problem,
/// each where it is written, so one `check` run shows them all. A missing
/// key is reported at `at`, the line of the `bmc:` key itself. A literal
/// `password:` is refused either way.
pub fn parse(node: &Node, at: Origin) -> Result<Option<BmcSpec>, Vec<SpecError>> {
    let Some(entries) = node.as_map() else {
        return Ok(None);
    };
    if !DRIVEN_BY.iter().any(|k| node.get(k).is_some()) {
        return match entries.iter().find(|e| e.key == "password") {
            Some(e) => Err(vec![err(
                Origin {
                    line: e.key_line,
                    ..e.node.origin
                },
                LITERAL_PASSWORD,
            )]),
            None => Ok(None),
        };
    }
    let mut errors = Vec::new();
    let key_origin = |key: &str| {
        entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| Origin {
                line: e.key_line,
                ..e.node.origin
            })
            .unwrap_or(node.origin)
    };
    for e in entries {
        let at = Origin {
            line: e.key_line,
            ..e.node.origin
        };
        if e.key == "password" {
            errors.push(err(at, LITERAL_PASSWORD));
        } else if !KEYS.contains(&e.key.as_str()) {
            errors.push(err(
                at,
                format!(
                    "unknown bmc key `{}`, expected one of {}",
                    e.key,
                    KEYS.join(", ")
                ),
            ));
        }
    }

    let protocol = match node.get("protocol") {
        None => {
            errors.push(err(at, "bmc needs protocol: ipmi or redfish"));
            None
        }
        Some(n) => match string(n, "protocol") {
            Ok("ipmi") => Some(BmcProtocol::Ipmi),
            Ok("redfish") => Some(BmcProtocol::Redfish),
            Ok(other) => {
                errors.push(err(
                    n.origin,
                    format!("bmc.protocol `{other}` is not ipmi or redfish"),
                ));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };

    let address = match node.get("address") {
        None => {
            errors.push(err(at, "bmc needs address: the BMC's host or IP"));
            None
        }
        Some(n) => match string(n, "address").and_then(|s| {
            parse_address(s).map_err(|m| err(n.origin, format!("bmc.address {s:?}: {m}")))
        }) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };

    let username = match node.get("username") {
        None => {
            errors.push(err(at, "bmc needs username"));
            None
        }
        Some(n) => match string(n, "username") {
            Ok("") => {
                errors.push(err(n.origin, "bmc.username is empty"));
                None
            }
            Ok(u) if u.len() > MAX_USERNAME || u.chars().any(char::is_control) => {
                errors.push(err(
                    n.origin,
                    format!(
                        "bmc.username must be at most {MAX_USERNAME} bytes without control characters"
                    ),
                ));
                None
            }
            Ok(u) if protocol == Some(BmcProtocol::Ipmi) && u.len() > MAX_IPMI_USERNAME => {
                errors.push(err(
                    n.origin,
                    format!("bmc.username: IPMI user names are at most {MAX_IPMI_USERNAME} bytes"),
                ));
                None
            }
            Ok(u) => Some(u.to_string()),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };

    let password = match (node.get("password_env"), node.get("password_file")) {
        (Some(_), Some(_)) => {
            errors.push(err(
                key_origin("password_file"),
                "bmc has both password_env and password_file: choose one",
            ));
            None
        }
        (None, None) => {
            if node.get("password").is_none() {
                errors.push(err(
                    at,
                    "bmc needs password_env: or password_file: (where the password is kept)",
                ));
            }
            None
        }
        (Some(n), None) => match string(n, "password_env") {
            Ok(name) if valid_env_name(name) => Some(PasswordRef::Env(name.to_string())),
            Ok(name) => {
                errors.push(err(
                    n.origin,
                    format!(
                        "bmc.password_env `{name}` is not a variable name (letters, digits, _; \
                         not starting with a digit)"
                    ),
                ));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
        (None, Some(n)) => match string(n, "password_file") {
            Ok(p) if p.starts_with('/') && !p.contains('\0') => {
                Some(PasswordRef::File(PathBuf::from(p)))
            }
            Ok(p) => {
                errors.push(err(
                    n.origin,
                    format!("bmc.password_file `{p}` must be an absolute path"),
                ));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };

    let verify_tls = match node.get("verify_tls") {
        None => true,
        Some(n) => match n.value {
            Value::Bool(b) => b,
            ref other => {
                errors.push(err(
                    n.origin,
                    format!("bmc.verify_tls must be true or false, not {}", other.kind()),
                ));
                true
            }
        },
    };
    let ca_file = match node.get("ca_file") {
        None => None,
        Some(n) => match string(n, "ca_file") {
            Ok(p) if p.starts_with('/') => Some(PathBuf::from(p)),
            Ok(p) => {
                errors.push(err(
                    n.origin,
                    format!("bmc.ca_file `{p}` must be an absolute path"),
                ));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    if protocol == Some(BmcProtocol::Ipmi) {
        for key in ["verify_tls", "ca_file"] {
            if node.get(key).is_some() {
                errors.push(err(
                    key_origin(key),
                    format!("bmc.{key} is for redfish (IPMI over LAN has no TLS)"),
                ));
            }
        }
    }
    if ca_file.is_some() && !verify_tls {
        errors.push(err(
            key_origin("ca_file"),
            "bmc.ca_file with verify_tls: false: the CA would never be used",
        ));
    }

    match (protocol, address, username, password) {
        (Some(protocol), Some((host, port)), Some(username), Some(password))
            if errors.is_empty() =>
        {
            Ok(Some(BmcSpec {
                host,
                port: port.unwrap_or(protocol.default_port()),
                protocol,
                username,
                password,
                verify_tls,
                ca_file,
            }))
        }
        _ => Err(errors),
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
fn parse_address(text: &str) -> Result<(String, Option<u16>), String> {
    let text = text.trim();
    if text.contains("://") {
        return Err("give the host (and :port), not a URL".into());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or("unclosed [")?;
        match tail {
            "" => (h, None),
            t => (h, Some(t.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else if text.matches(':').count() == 1 {
        let (h, p) = text.split_once(':').unwrap_or((text, ""));
        (h, Some(p))
    } else {
        (text, None)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("port `{p}` is not 1-65535")),
            Ok(n) => Some(n),
        },
    };
    if host.is_empty() || host.len() > MAX_HOST {
        return Err(format!("the host must be 1-{MAX_HOST} characters"));
    }
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let is_name = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !is_ip && !is_name {
        return Err("not an IP address or host name".into());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<BmcSpec, Vec<(u32, String)>> {
        let node = crate::yaml::parse(text, 0).unwrap();
        let e = node.entry("bmc").unwrap();
        let at = Origin {
            line: e.key_line,
            ..e.node.origin
        };
        parse(&e.node, at)
            .map(|s| s.expect("a bmc pxedeck drives"))
            .map_err(|errs| {
                errs.into_iter()
                    .map(|e| (e.origin.line, e.message))
                    .collect()
            })
    }

    #[test]
    fn a_full_ipmi_entry_reads() {
        let s = spec(
            "bmc:\n  address: 10.0.0.5\n  protocol: ipmi\n  username: admin\n  password_env: RACK3_BMC\n",
        )
        .unwrap();
        assert_eq!(s.host, "10.0.0.5");
        assert_eq!(s.port, 623);
        assert_eq!(s.protocol, BmcProtocol::Ipmi);
        assert_eq!(s.password, PasswordRef::Env("RACK3_BMC".into()));
        assert!(s.verify_tls);
        assert_eq!(s.label(), "ipmi 10.0.0.5:623");
    }

    #[test]
    fn redfish_takes_a_port_a_ca_and_a_password_file() {
        let s = spec(
            "bmc:\n  address: bmc-04.mgmt:8443\n  protocol: redfish\n  username: root\n  \
             password_file: /etc/pxedeck/bmc.pass\n  ca_file: /etc/pxedeck/ca.pem\n",
        )
        .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("bmc-04.mgmt", 8443));
        assert_eq!(
            s.password,
            PasswordRef::File("/etc/pxedeck/bmc.pass".into())
        );
        assert_eq!(s.ca_file, Some("/etc/pxedeck/ca.pem".into()));
        let v6 = spec(
            "bmc: {address: \"[fd00::5]:443\", protocol: redfish, username: r, password_env: P, verify_tls: false}\n",
        )
        .unwrap();
        assert_eq!(v6.authority(), "[fd00::5]:443");
        assert!(!v6.verify_tls);
    }

    #[test]
    fn a_literal_password_is_refused_at_its_line() {
        let errs = spec(
            "bmc:\n  address: 10.0.0.5\n  protocol: ipmi\n  username: admin\n  password: hunter2\n",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, 5);
        assert!(
            errs[0].1.contains("does not belong in the inventory"),
            "{errs:?}"
        );
        assert!(
            !errs[0].1.contains("hunter2"),
            "the message must not repeat it"
        );
    }

    #[test]
    fn every_problem_is_reported_where_it_is() {
        let errs = spec(
            "bmc:\n  address: http://10.0.0.5\n  protocol: snmp\n  username: 7\n  \
             password_env: 1BAD\n  colour: red\n",
        )
        .unwrap_err();
        let lines: Vec<u32> = errs.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![6, 3, 2, 4, 5], "{errs:?}");
        assert!(errs[0].1.contains("unknown bmc key `colour`"));
        assert!(errs[1].1.contains("not ipmi or redfish"));
        assert!(errs[2].1.contains("not a URL"));
        assert!(errs[3].1.contains("must be a string"));
        assert!(errs[4].1.contains("not a variable name"));
    }

    #[test]
    fn missing_and_conflicting_keys_are_named() {
        let errs = spec("bmc: {verify_tls: true}\n").unwrap_err();
        let text: Vec<&str> = errs.iter().map(|e| e.1.as_str()).collect();
        assert!(
            text.iter().any(|m| m.contains("needs protocol")),
            "{text:?}"
        );
        assert!(text.iter().any(|m| m.contains("needs address")), "{text:?}");
        assert!(
            text.iter().any(|m| m.contains("needs username")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|m| m.contains("password_env: or password_file:"))
        );
        let both = spec(
            "bmc:\n  address: h\n  protocol: ipmi\n  username: u\n  password_env: P\n  password_file: /p\n",
        )
        .unwrap_err();
        assert_eq!(
            both,
            vec![(
                6,
                "bmc has both password_env and password_file: choose one".into()
            )]
        );
        let tls = spec(
            "bmc:\n  address: h\n  protocol: ipmi\n  username: u\n  password_env: P\n  verify_tls: false\n",
        )
        .unwrap_err();
        assert_eq!(tls[0].0, 6);
        assert!(tls[0].1.contains("for redfish"));
    }

    #[test]
    fn addresses_and_names_are_bounded() {
        for bad in [
            "h:0",
            "h:70000",
            "h:",
            "[fd00::1",
            "[fd00::1]x",
            "-bad-",
            "a b",
            "",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_address(&"a".repeat(254)).is_err());
        assert_eq!(parse_address("fd00::1").unwrap(), ("fd00::1".into(), None));
        let long_user = format!(
            "bmc: {{address: h, protocol: ipmi, username: {}, password_env: P}}\n",
            "u".repeat(17)
        );
        assert!(spec(&long_user).unwrap_err()[0].1.contains("at most 16"));
        assert!(!valid_env_name(&"A".repeat(129)));
    }

    #[test]
    fn a_password_file_is_read_bounded_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(PasswordRef::File(path.clone()).resolve().unwrap(), "s3cret");
        std::fs::write(&path, vec![b'x'; 5000]).unwrap();
        assert!(
            PasswordRef::File(path.clone())
                .resolve()
                .unwrap_err()
                .contains("larger")
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(
            PasswordRef::File(path)
                .resolve()
                .unwrap_err()
                .contains("empty")
        );
        let missing = PasswordRef::Env("PXEDECK_TEST_SURELY_UNSET_VAR".into());
        assert!(missing.resolve().unwrap_err().contains("not set"));
    }
}
