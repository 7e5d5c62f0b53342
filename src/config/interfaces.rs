//! Several interfaces in one instance (`interfaces`): each with its
//! address and DHCP mode (full or proxy). One DHCP socket on 0.0.0.0 serves
//! them all (IP_PKTINFO tells which address a request came to: its server
//! identifier, next-server, pools and boot URLs); HTTP and TFTP listen on
//! 0.0.0.0 and answer each machine with the address of its segment. An
//! interface serves the pools whose subnet holds its address (relayed
//! pools by giaddr, as always).

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

use super::{DhcpMode, Pool};

/// The most interfaces one instance serves.
pub const MAX_INTERFACES: usize = 32;

/// One provisioning interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    /// Its name, for the logs and the console (`eth1`); at most 15 bytes.
    pub name: Option<String>,
    /// Its address: the server identifier, next-server and boot URL host
    /// for machines on its segment.
    pub address: Ipv4Addr,
    /// Full or proxy DHCP on this segment.
    pub mode: DhcpMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WireInterface {
    #[serde(default)]
    pub(super) name: Option<String>,
    pub(super) address: Ipv4Addr,
    #[serde(default)]
    pub(super) mode: Option<DhcpMode>,
}

impl super::Config {
    /// Whether several interfaces are listed (`interfaces`).
    pub fn multihomed(&self) -> bool {
        !self.interfaces.is_empty()
    }

    /// The DHCP mode for a request that came to `local`: its interface's,
    /// else `dhcp.mode`.
    pub fn dhcp_mode_at(&self, local: Ipv4Addr) -> DhcpMode {
        self.interfaces
            .iter()
            .find(|i| i.address == local)
            .map_or(self.dhcp.mode, |i| i.mode)
    }

    /// Whether `ip` is the address of one of the listed interfaces.
    pub fn is_interface_address(&self, ip: Ipv4Addr) -> bool {
        self.interfaces.iter().any(|i| i.address == ip)
    }

    /// The segment address to name to a machine whose request came to
    /// `local`: that address when it is a listed interface other than the
    /// main one, else `None` (the main address serves it; so does a
    /// request to an address pxedeck does not list, or to 0.0.0.0).
    pub fn segment_address(&self, local: IpAddr) -> Option<Ipv4Addr> {
        match local {
            IpAddr::V4(ip) if ip != self.address && self.is_interface_address(ip) => Some(ip),
            _ => None,
        }
    }
}

/// Validates `server.interfaces`; `Err((index, field, message))` names the
/// item and key that is wrong.
pub(super) fn read(
    wire: &[WireInterface],
    default_mode: DhcpMode,
    pools: &[Pool],
) -> Result<Vec<Interface>, (Option<usize>, &'static str, String)> {
    if wire.len() > MAX_INTERFACES {
        return Err((
            None,
            "",
            format!(
                "more than {MAX_INTERFACES} interfaces; pxedeck serves at most {MAX_INTERFACES}"
            ),
        ));
    }
    let mut out: Vec<Interface> = Vec::new();
    for (i, w) in wire.iter().enumerate() {
        let bad = |field: &'static str, m: String| Err((Some(i), field, m));
        let a = w.address;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
            return bad(
                "address",
                format!("{a} is not an interface address: give the address the interface has"),
            );
        }
        if let Some(n) = &w.name
            && (n.is_empty()
                || n.len() > 15
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@')))
        {
            return bad(
                "name",
                format!("{n:?} is not an interface name (1–15 letters, digits, - _ . @)"),
            );
        }
        if out.iter().any(|o| o.address == a) {
            return bad("address", format!("{a} is given to two interfaces"));
        }
        let mode = w.mode.unwrap_or(default_mode);
        if w.mode == Some(DhcpMode::Off) {
            return bad(
                "mode",
                "an interface's mode is full or proxy (leave out an interface without DHCP, or set dhcp.mode: off)".into(),
            );
        }
        if mode == DhcpMode::Full && !pools.iter().any(|p| p.subnet.contains(&a)) {
            return bad(
                "address",
                format!(
                    "interface {}{a} is in full mode, but no pool's subnet holds its address: add a pool for its segment, or give it mode: proxy",
                    w.name
                        .as_deref()
                        .map(|n| format!("{n} "))
                        .unwrap_or_default()
                ),
            );
        }
        out.push(Interface {
            name: w.name.clone(),
            address: a,
            mode,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    const POOLS: &str = "dhcp:\n  pools:\n    - subnet: 10.61.1.0/24\n      range: 10.61.1.100-10.61.1.150\n    - subnet: 10.61.2.0/24\n      range: 10.61.2.100-10.61.2.150\n";

    fn config(server: &str) -> Result<Config, String> {
        Config::from_text(&format!("{server}{POOLS}"), None).map_err(|e| e.to_string())
    }

    #[test]
    fn two_interfaces_each_with_its_mode() {
        let c = config(
            "interfaces:\n    - {name: eth1, address: 10.61.1.1}\n    - {name: eth2, address: 10.61.2.1, mode: proxy}\n    - {address: 10.61.3.1, mode: proxy}\n",
        )
        .unwrap();
        assert!(c.multihomed());
        assert_eq!(
            c.address,
            "10.61.1.1".parse::<Ipv4Addr>().unwrap(),
            "the first"
        );
        assert_eq!(c.interface, None);
        assert_eq!(c.dhcp_mode_at("10.61.1.1".parse().unwrap()), DhcpMode::Full);
        assert_eq!(
            c.dhcp_mode_at("10.61.2.1".parse().unwrap()),
            DhcpMode::Proxy
        );
        assert_eq!(c.dhcp_mode_at("127.0.0.1".parse().unwrap()), DhcpMode::Full);
        assert_eq!(c.interfaces[1].name.as_deref(), Some("eth2"));
    }

    #[test]
    fn one_interface_configs_are_unchanged() {
        let c = config("server:\n  address: 10.61.1.1\n  interface: eth1\n").unwrap();
        assert!(!c.multihomed());
        assert_eq!(c.interface.as_deref(), Some("eth1"));
        assert_eq!(c.dhcp_mode_at("10.61.2.1".parse().unwrap()), DhcpMode::Full);
    }

    #[test]
    fn bad_interface_lists_are_refused_at_their_line() {
        let cases = [
            (
                "interfaces:\n    - {address: 10.61.9.1}\n",
                ":2: interface 10.61.9.1 is in full mode, but no pool's subnet holds its address",
            ),
            (
                "interfaces:\n    - {address: 10.61.1.1}\n    - {address: 10.61.1.1, mode: proxy}\n",
                ":3: 10.61.1.1 is given to two interfaces",
            ),
            (
                "interfaces:\n    - {address: 10.61.1.1, mode: off}\n",
                ":2: an interface's mode is full or proxy",
            ),
            (
                "interfaces:\n    - {address: 0.0.0.0, mode: proxy}\n",
                ":2: 0.0.0.0 is not an interface address",
            ),
            (
                "interfaces:\n    - {name: a-name-far-too-long, address: 10.61.1.1}\n",
                ":2: \"a-name-far-too-long\" is not an interface name",
            ),
            (
                "server:\n  interface: eth1\ninterfaces:\n    - {address: 10.61.1.1}\n",
                ":2: server.interface and interfaces together",
            ),
            (
                "server:\n  address: 10.61.5.5\ninterfaces:\n    - {address: 10.61.1.1}\n",
                ":2: server.address 10.61.5.5 is none of the interfaces' addresses",
            ),
            (
                "interfaces:\n    - {address: 10.61.1.1, colour: red}\n",
                "unknown field `colour`",
            ),
        ];
        for (server, want) in cases {
            let got = config(server).unwrap_err();
            assert!(got.contains(want), "{server:?}: {got}");
        }
        let many: String = (0..=MAX_INTERFACES)
            .map(|i| format!("    - {{address: 10.62.{i}.1, mode: proxy}}\n"))
            .collect();
        let got = config(&format!("interfaces:\n{many}")).unwrap_err();
        assert!(got.contains("more than 32 interfaces"), "{got}");
    }

    #[test]
    fn the_samples_commented_interfaces_parse_once_uncommented() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pxedeck.sample.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut out = String::new();
        let mut inside = false;
        for line in text.lines() {
            if line == "# interfaces:" {
                inside = true;
            } else if inside && !line.starts_with("#   ") {
                inside = false;
            }
            if inside {
                out.push_str(&line[2..]);
            } else if line.trim_start().starts_with("interface:") {
                continue; // server.interface and interfaces exclude each other
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        let c = Config::from_text(&out, None).unwrap();
        assert_eq!(c.interfaces.len(), 2);
        assert_eq!(c.interfaces[1].mode, DhcpMode::Proxy);
    }
}
