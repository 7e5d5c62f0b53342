//! Events in words: one sentence per event for `serve`'s log lines and the
//! console's log file, and the subsystem each belongs to (its tracing
//! target, so `RUST_LOG=pxedeck::dhcp=debug` selects DHCP alone).

use std::fmt;

use super::{EventKind, Level};
use crate::boot::BootDecision;
use crate::dhcp::LeaseEnd;

/// The part of pxedeck an event comes from. Each is a tracing target of
/// its own: `pxedeck::dhcp`, `pxedeck::tftp`, `pxedeck::http`,
/// `pxedeck::inventory`, `pxedeck::api`, `pxedeck::bmc`, and `pxedeck` for
/// the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subsystem {
    Dhcp,
    Tftp,
    Http,
    Inventory,
    Api,
    /// Power control through the machines' BMCs.
    Bmc,
    /// Start-up, limits, the process itself.
    Core,
}

impl Subsystem {
    /// The tracing target.
    pub fn target(self) -> &'static str {
        match self {
            Subsystem::Dhcp => "pxedeck::dhcp",
            Subsystem::Tftp => "pxedeck::tftp",
            Subsystem::Http => "pxedeck::http",
            Subsystem::Inventory => "pxedeck::inventory",
            Subsystem::Api => "pxedeck::api",
            Subsystem::Bmc => "pxedeck::bmc",
            Subsystem::Core => "pxedeck",
        }
    }

    /// The subsystem a free-form log event names (`EventKind::Log`'s
    /// target: "dhcp", "http", …).
    pub fn named(name: &str) -> Subsystem {
        match name {
            "dhcp" => Subsystem::Dhcp,
            "tftp" => Subsystem::Tftp,
            "http" => Subsystem::Http,
            "inventory" | "git" => Subsystem::Inventory,
            "api" => Subsystem::Api,
            "bmc" => Subsystem::Bmc,
            _ => Subsystem::Core,
        }
    }
}

impl EventKind {
    /// Where the event comes from. Transfers carry their protocol only in
    /// `TransferStarted`; the later ones are told apart by the logger.
    pub fn subsystem(&self) -> Subsystem {
        use EventKind as E;
        match self {
            E::Started(_) => Subsystem::Core,
            E::DhcpSeen(_)
            | E::DhcpReplied { .. }
            | E::LeaseBound { .. }
            | E::LeaseEnded { .. }
            | E::PoolExhausted { .. }
            | E::RogueDhcp { .. } => Subsystem::Dhcp,
            E::TransferStarted { protocol, .. } => match protocol {
                super::Protocol::Tftp => Subsystem::Tftp,
                super::Protocol::Http => Subsystem::Http,
            },
            E::Progress { .. } | E::TransferDone { .. } | E::TransferFailed { .. } => {
                Subsystem::Tftp
            }
            // GRUB reports its failures by fetching a file over TFTP.
            E::BootFailed { .. } => Subsystem::Tftp,
            E::BmcPower { .. } | E::BmcAction { .. } => Subsystem::Bmc,
            E::ScriptServed { .. }
            | E::FactsReported { .. }
            | E::ConfigServed { .. }
            | E::AccessDenied { .. }
            | E::InstallDone { .. } => Subsystem::Http,
            E::InventoryReloaded { .. }
            | E::InventoryMachineChanged { .. }
            | E::InventoryError { .. }
            | E::InventoryWritten { .. }
            | E::GitStatus(_) => Subsystem::Inventory,
            E::CommandFailed { .. } | E::MachineForgotten { .. } => Subsystem::Api,
            E::AutoAdoptRefused { .. } => Subsystem::Inventory,
            E::Log { target, .. } => Subsystem::named(target),
        }
    }

    /// How much the event matters to an operator reading a log: warnings
    /// for what needs a look, debug for per-packet detail and sampling.
    pub fn level(&self) -> Level {
        use EventKind as E;
        match self {
            E::Progress { .. }
            | E::TransferFailed { probe: true, .. }
            | E::GitStatus(_)
            | E::FactsReported { .. } => Level::Debug,
            E::PoolExhausted { .. }
            | E::RogueDhcp { .. }
            | E::TransferFailed { .. }
            | E::AccessDenied { .. }
            | E::AutoAdoptRefused { .. } => Level::Warn,
            E::BmcPower { error: Some(_), .. } => Level::Warn,
            E::BmcPower { power: None, .. } => Level::Debug,
            E::InventoryError { .. }
            | E::CommandFailed { .. }
            | E::BootFailed { .. }
            | E::BmcAction { ok: false, .. } => Level::Error,
            E::Log { level, .. } => *level,
            _ => Level::Info,
        }
    }
}

/// What a boot decision means, in words.
fn decision(d: &BootDecision) -> String {
    match d {
        BootDecision::Install { profile } => format!("installs profile {profile}"),
        BootDecision::Local => "boots its local disk".into(),
        BootDecision::Hold => "unknown, held until adopted".into(),
        BootDecision::Discover { profile } => format!("unknown, discovery profile {profile}"),
        BootDecision::Ignore => "unknown, ignored".into(),
        BootDecision::NotPxe => "not a network-boot client: an address at most".into(),
    }
}

fn lease_end(why: LeaseEnd) -> &'static str {
    match why {
        LeaseEnd::Released => "released by the client",
        LeaseEnd::Expired => "expired",
        LeaseEnd::Declined => "declined by the client (address quarantined)",
        LeaseEnd::Operator => "released by the operator",
    }
}

/// " (name)" when there is a name.
fn named(name: Option<&str>) -> String {
    name.map(|h| format!(" ({h})")).unwrap_or_default()
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EventKind as E;
        match self {
            E::Started(s) => write!(
                f,
                "serving: DHCP {} ({}), TFTP {}, HTTP {}, API {}",
                s.dhcp.map_or("off".into(), |a| a.to_string()),
                s.dhcp_mode,
                s.tftp,
                s.http,
                s.api
            ),
            E::DhcpSeen(d) => write!(
                f,
                "{} from {}{}{}: {}",
                d.message.name(),
                d.mac,
                named(d.hostname.as_deref()),
                d.relay
                    .map(|r| format!(" via relay {r}"))
                    .unwrap_or_default(),
                decision(&d.decision)
            ),
            E::DhcpReplied {
                mac,
                reply,
                ip,
                boot_file,
                proxy,
            } => {
                write!(f, "{} to {mac}", reply.name())?;
                if let Some(ip) = ip {
                    let whose = if *proxy { " (another server's)" } else { "" };
                    write!(f, ": address {ip}{whose}")?;
                }
                if let Some(file) = boot_file {
                    write!(f, ", boot file {file}")?;
                }
                if *proxy {
                    write!(f, " [proxyDHCP]")?;
                }
                Ok(())
            }
            E::LeaseBound {
                mac,
                ip,
                hostname,
                fixed,
                ..
            } => write!(
                f,
                "lease {ip} bound to {mac}{}{}",
                named(hostname.as_deref()),
                if *fixed { ", fixed address" } else { "" }
            ),
            E::LeaseEnded { mac, ip, why } => {
                write!(f, "lease {ip} of {mac} ended: {}", lease_end(*why))
            }
            E::PoolExhausted { subnet, mac } => {
                write!(f, "pool {subnet} is exhausted: {mac} got no address")
            }
            E::RogueDhcp {
                server, offered, ..
            } => write!(
                f,
                "another DHCP server, {server}, answered on the segment{}",
                offered
                    .map(|o| format!(" (offered {o})"))
                    .unwrap_or_default()
            ),
            E::TransferStarted {
                id,
                protocol,
                client,
                path,
                size,
                ..
            } => write!(
                f,
                "{} transfer #{id}: {path} to {client} ({})",
                protocol.name(),
                size.map_or("size unknown".into(), |s| format!("{s} bytes"))
            ),
            E::Progress { samples } => write!(f, "progress of {} transfer(s)", samples.len()),
            E::TransferDone { id, bytes, millis } => {
                write!(f, "transfer #{id} done: {bytes} bytes in {millis} ms")
            }
            E::TransferFailed {
                id,
                bytes,
                reason,
                probe,
            } => {
                if *probe {
                    write!(
                        f,
                        "transfer #{id} was a size probe (ended after the options)"
                    )
                } else {
                    write!(f, "transfer #{id} failed after {bytes} bytes: {reason}")
                }
            }
            E::FactsReported { mac, facts, rule } => {
                write!(
                    f,
                    "{mac} reports {}",
                    facts
                        .ordered()
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
                match rule {
                    Some(r) => write!(f, "; matches rule {}", r.rule),
                    None => Ok(()),
                }
            }
            E::ScriptServed {
                client,
                hostname,
                kind,
                profile,
                chain,
                ..
            } => write!(
                f,
                "{} {} script to {client}{}{}",
                chain.label(),
                kind.name(),
                named(hostname.as_deref()),
                profile
                    .as_deref()
                    .map(|p| format!(", profile {p}"))
                    .unwrap_or_default()
            ),
            E::BootFailed {
                mac,
                hostname,
                stage,
                reason,
            } => write!(
                f,
                "{}: GRUB {} failed: {reason}",
                hostname
                    .as_deref()
                    .map_or_else(|| mac.to_string(), str::to_string),
                stage.name()
            ),
            E::BmcPower {
                hostname,
                power,
                error,
            } => match (power, error) {
                (_, Some(e)) => write!(f, "{hostname}: BMC {e}"),
                (Some(p), None) => write!(f, "{hostname}: power {}", p.label()),
                (None, None) => write!(f, "{hostname}: power unknown"),
            },
            E::BmcAction {
                hostname,
                action,
                message,
                ..
            } => write!(f, "{hostname}: {action}: {message}"),
            E::ConfigServed {
                client,
                hostname,
                name,
            } => write!(f, "config {name} of {hostname} to {client}"),
            E::AccessDenied {
                client,
                path,
                reason,
            } => write!(f, "refused {path} to {client}: {reason}"),
            E::InstallDone { hostname, .. } => {
                write!(f, "{hostname}: install done, install: false from now on")
            }
            E::InventoryReloaded {
                machines,
                profiles,
                groups,
                ..
            } => write!(
                f,
                "inventory loaded: {} machines in {} groups, {} profiles",
                machines.len(),
                groups.len(),
                profiles.len()
            ),
            E::InventoryMachineChanged { machine } => write!(
                f,
                "{} changed: profile {}, install: {}",
                machine.hostname,
                machine.profile.as_deref().unwrap_or("-"),
                machine.install
            ),
            E::InventoryError { problems } => {
                write!(
                    f,
                    "the inventory has {} problem(s), the last good one keeps serving",
                    problems.len()
                )?;
                if let Some(p) = problems.first() {
                    write!(f, ": {p}")?;
                }
                Ok(())
            }
            E::InventoryWritten {
                hostname,
                path,
                change,
            } => write!(f, "{hostname}: {change} ({path})"),
            E::CommandFailed { command, error } => write!(f, "{command} failed: {error}"),
            E::MachineForgotten { mac } => write!(f, "forgot unknown machine {mac}"),
            E::AutoAdoptRefused {
                mac,
                rule,
                reason,
                refused,
            } => write!(
                f,
                "auto-adopt of {mac} by rule {rule} refused: {reason} ({refused} refused so far)"
            ),
            E::Log { message, .. } => f.write_str(message),
            E::GitStatus(g) => write!(
                f,
                "git: branch {}, {} uncommitted, {} ahead, {} behind {}",
                g.branch.as_deref().unwrap_or("(detached)"),
                g.uncommitted,
                g.ahead,
                g.behind,
                g.upstream.as_deref().unwrap_or("(no upstream)")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dhcp_line_is_a_sentence_not_debug_output() {
        let seen = EventKind::DhcpSeen(crate::dhcp::DhcpSeen {
            mac: "52:54:00:00:00:01".parse().unwrap(),
            xid: 1,
            message: crate::dhcp::DhcpMessage::Discover,
            firmware: None,
            ipxe: false,
            vendor_class: None,
            uuid: None,
            relay: None,
            relay_agent: None,
            interface: None,
            rule: None,
            hostname: Some("sim-01".into()),
            decision: BootDecision::Install {
                profile: "sim-install".into(),
            },
        });
        assert_eq!(
            seen.to_string(),
            "DISCOVER from 52:54:00:00:00:01 (sim-01): installs profile sim-install"
        );
        assert_eq!(seen.subsystem().target(), "pxedeck::dhcp");
        assert_eq!(seen.level(), Level::Info);
    }

    #[test]
    fn lease_ends_and_failures_say_why_in_words() {
        let ended = EventKind::LeaseEnded {
            mac: "52:54:00:00:00:01".parse().unwrap(),
            ip: "10.0.0.5".parse().unwrap(),
            why: LeaseEnd::Declined,
        };
        assert_eq!(
            ended.to_string(),
            "lease 10.0.0.5 of 52:54:00:00:00:01 ended: declined by the client (address quarantined)"
        );
        let failed = EventKind::TransferFailed {
            id: 7,
            bytes: 512,
            reason: "timed out".into(),
            probe: false,
        };
        assert_eq!(
            failed.to_string(),
            "transfer #7 failed after 512 bytes: timed out"
        );
        assert_eq!(failed.level(), Level::Warn);
    }

    #[test]
    fn free_form_logs_keep_their_subsystem() {
        let log = EventKind::Log {
            level: Level::Warn,
            target: "inventory".into(),
            message: "not watching".into(),
        };
        assert_eq!(log.subsystem(), Subsystem::Inventory);
        assert_eq!(log.to_string(), "not watching");
        let other = EventKind::Log {
            level: Level::Info,
            target: "limits".into(),
            message: "m".into(),
        };
        assert_eq!(other.subsystem().target(), "pxedeck");
    }
}
