//! The rules a machine must meet, in one place: the writer, the console's
//! adopt dialog and the loader (so `pxedeck check`) all refuse with these
//! words, so a write can never leave a tree that `check` rejects.
//!
//! The checks are pure: what is already taken comes through [`Taken`], which
//! the writer answers from the served snapshot and the console from what it
//! has seen (leases included). Whether the file exists on disk is the
//! writer's own last check. The address rules need the pools and the
//! server's address, which only the writer and the loader have: the writer
//! applies them by loading the tree with the new file overlaid.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::{Adoption, Inventory, valid_group, valid_hostname};
use crate::config::Pool;
use crate::ident::{Mac, Uuid};

/// The deepest group folder the loader reads (and templates' subfolders):
/// a bound on the walk, and deeper than any site's racks and rows.
pub const MAX_GROUP_DEPTH: usize = 16;

/// Why an adoption is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdoptionError {
    #[error("`{0}` is not a valid hostname (letters, digits, hyphens; at most 63)")]
    InvalidHostname(String),
    #[error("`{0}` is not a valid group folder")]
    InvalidGroup(String),
    /// Said at the first folder too deep, as the loader says it there.
    #[error("{folder}: {}", nested_too_deep())]
    GroupTooDeep { folder: String },
    #[error("MAC {0} is the broadcast address, not a machine's")]
    BroadcastMac(Mac),
    #[error("MAC {0} is all zeros, not a machine's")]
    ZeroMac(Mac),
    /// SMBIOS: all zeros means no UUID, all ones one not set; many
    /// machines share either, so neither identifies one.
    #[error("UUID {0} is a placeholder the firmware reports when it has none")]
    PlaceholderUuid(Uuid),
    #[error("an adopted machine needs a MAC or UUID")]
    NoIdentity,
    #[error("the inventory has no profiles: add one under _profiles/")]
    NoProfiles,
    #[error("no profile named `{0}`")]
    UnknownProfile(String),
    #[error("hostname {hostname} is taken{}", in_file(.file.as_deref()))]
    HostnameTaken {
        hostname: String,
        /// The file that has it, when the checker knows files.
        file: Option<PathBuf>,
    },
    #[error("MAC {mac} already belongs to {owner}")]
    MacTaken { mac: Mac, owner: String },
    #[error("UUID {uuid} already belongs to {owner}")]
    UuidTaken { uuid: Uuid, owner: String },
    #[error("IP {ip} already belongs to {owner}")]
    IpTaken { ip: Ipv4Addr, owner: String },
    #[error("IP {ip} is leased to {mac}")]
    IpLeased { ip: Ipv4Addr, mac: Mac },
    #[error("ip {ip} is outside every pool ({subnets})")]
    IpOutsidePools { ip: Ipv4Addr, subnets: String },
    #[error("ip {0} is the server's own address")]
    IpIsServer(Ipv4Addr),
    #[error("ip {ip} is the network address of {subnet}")]
    IpIsNetwork { ip: Ipv4Addr, subnet: String },
    #[error("ip {ip} is the broadcast address of {subnet}")]
    IpIsBroadcast { ip: Ipv4Addr, subnet: String },
}

/// What the loader says at a folder deeper than [`MAX_GROUP_DEPTH`].
pub fn nested_too_deep() -> String {
    format!("folder nested too deep (at most {MAX_GROUP_DEPTH} levels)")
}

fn in_file(file: Option<&Path>) -> String {
    file.map(|f| format!(" ({})", f.display()))
        .unwrap_or_default()
}

/// What an adoption must not collide with. Owners are named by hostname.
pub trait Taken {
    /// The names of the profiles there are to choose from.
    fn profile_count(&self) -> usize;
    fn has_profile(&self, name: &str) -> bool;
    /// Whether the hostname is in use, ignoring case (DNS names are
    /// case-insensitive, so `Dev-01` is `dev-01`), and in which file when
    /// known.
    fn hostname_taken(&self, hostname: &str) -> Option<Option<PathBuf>>;
    fn mac_owner(&self, mac: &Mac) -> Option<String>;
    fn uuid_owner(&self, uuid: &Uuid) -> Option<String>;
    fn ip_owner(&self, ip: Ipv4Addr) -> Option<String>;
    /// The MAC holding a lease on `ip`, for checkers that see leases.
    fn lease_holder(&self, _ip: Ipv4Addr) -> Option<Mac> {
        None
    }
}

/// Checks one adoption against the rules and what is taken.
pub fn check_adoption(a: &Adoption, taken: &impl Taken) -> Result<(), AdoptionError> {
    check_hostname(&a.hostname)?;
    check_group(&a.group)?;
    if a.macs.is_empty() && a.uuid.is_none() && a.serial.is_none() && a.asset.is_none() {
        return Err(AdoptionError::NoIdentity);
    }
    for mac in &a.macs {
        check_mac(mac)?;
    }
    if let Some(uuid) = &a.uuid {
        check_uuid(uuid)?;
    }
    if taken.profile_count() == 0 {
        return Err(AdoptionError::NoProfiles);
    }
    if !taken.has_profile(&a.profile) {
        return Err(AdoptionError::UnknownProfile(a.profile.clone()));
    }
    if let Some(file) = taken.hostname_taken(&a.hostname) {
        return Err(AdoptionError::HostnameTaken {
            hostname: a.hostname.clone(),
            file,
        });
    }
    for mac in &a.macs {
        if let Some(owner) = taken.mac_owner(mac) {
            return Err(AdoptionError::MacTaken { mac: *mac, owner });
        }
    }
    if let Some(uuid) = a.uuid
        && let Some(owner) = taken.uuid_owner(&uuid)
    {
        return Err(AdoptionError::UuidTaken { uuid, owner });
    }
    if let Some(ip) = a.ip {
        if let Some(owner) = taken.ip_owner(ip) {
            return Err(AdoptionError::IpTaken { ip, owner });
        }
        // The machine's own lease on the address it is given is fine.
        if let Some(mac) = taken.lease_holder(ip).filter(|m| !a.macs.contains(m)) {
            return Err(AdoptionError::IpLeased { ip, mac });
        }
    }
    Ok(())
}

/// The hostname rule alone (the loader applies it to file names).
pub fn check_hostname(hostname: &str) -> Result<(), AdoptionError> {
    if valid_hostname(hostname) {
        Ok(())
    } else {
        Err(AdoptionError::InvalidHostname(hostname.into()))
    }
}

/// The group rule: hostname-like folder names, none reserved, and no
/// deeper than the loader reads.
pub fn check_group(group: &str) -> Result<(), AdoptionError> {
    if !valid_group(group) {
        return Err(AdoptionError::InvalidGroup(group.into()));
    }
    if group.split('/').count() > MAX_GROUP_DEPTH {
        let folder: Vec<&str> = group.split('/').take(MAX_GROUP_DEPTH + 1).collect();
        return Err(AdoptionError::GroupTooDeep {
            folder: folder.join("/"),
        });
    }
    Ok(())
}

/// A MAC must be one a NIC can have: never the broadcast address, never
/// all zeros (what a broken or unset client sends).
pub fn check_mac(mac: &Mac) -> Result<(), AdoptionError> {
    if mac.0 == [0xff; 6] {
        Err(AdoptionError::BroadcastMac(*mac))
    } else if mac.0 == [0; 6] {
        Err(AdoptionError::ZeroMac(*mac))
    } else {
        Ok(())
    }
}

pub fn check_uuid(uuid: &Uuid) -> Result<(), AdoptionError> {
    if uuid.0 == [0; 16] || uuid.0 == [0xff; 16] {
        Err(AdoptionError::PlaceholderUuid(*uuid))
    } else {
        Ok(())
    }
}

/// A static address must be one a machine can hold: inside a pool's
/// subnet (when there are pools), not the server's, and not a subnet's
/// network or broadcast address.
pub fn check_static_ip(
    ip: Ipv4Addr,
    pools: &[Pool],
    server: Option<Ipv4Addr>,
) -> Result<(), AdoptionError> {
    if server == Some(ip) {
        return Err(AdoptionError::IpIsServer(ip));
    }
    if pools.is_empty() {
        return Ok(());
    }
    let Some(pool) = pools.iter().find(|p| p.contains(ip)) else {
        let subnets: Vec<String> = pools.iter().map(|p| p.subnet.to_string()).collect();
        return Err(AdoptionError::IpOutsidePools {
            ip,
            subnets: subnets.join(", "),
        });
    };
    if pool.is_host(ip) {
        return Ok(());
    }
    let subnet = pool.subnet.to_string();
    if ip == pool.subnet.network() {
        Err(AdoptionError::IpIsNetwork { ip, subnet })
    } else {
        Err(AdoptionError::IpIsBroadcast { ip, subnet })
    }
}

/// The writer's view: the served snapshot.
impl Taken for Inventory {
    fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    fn has_profile(&self, name: &str) -> bool {
        self.profiles.contains_key(name)
    }

    fn hostname_taken(&self, hostname: &str) -> Option<Option<PathBuf>> {
        // An exact match is indexed; one that differs in case is rare
        // enough to look for only when adopting.
        self.by_hostname(hostname)
            .or_else(|| {
                self.machines
                    .iter()
                    .find(|m| m.hostname.eq_ignore_ascii_case(hostname))
            })
            .map(|m| Some(self.file(m.file).to_path_buf()))
    }

    fn mac_owner(&self, mac: &Mac) -> Option<String> {
        self.by_mac(mac).map(|m| m.hostname.clone())
    }

    fn uuid_owner(&self, uuid: &Uuid) -> Option<String> {
        self.by_uuid(uuid).map(|m| m.hostname.clone())
    }

    fn ip_owner(&self, ip: Ipv4Addr) -> Option<String> {
        self.by_ip(ip).map(|m| m.hostname.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One machine `taken` (MAC …:01, UUID, IP .7) and a lease on .8.
    struct World;

    impl Taken for World {
        fn profile_count(&self) -> usize {
            1
        }
        fn has_profile(&self, name: &str) -> bool {
            name == "p"
        }
        fn hostname_taken(&self, hostname: &str) -> Option<Option<PathBuf>> {
            (hostname == "taken").then(|| Some("r/taken.yaml".into()))
        }
        fn mac_owner(&self, mac: &Mac) -> Option<String> {
            (*mac == mac_1()).then(|| "taken".into())
        }
        fn uuid_owner(&self, uuid: &Uuid) -> Option<String> {
            (*uuid == uuid_1()).then(|| "taken".into())
        }
        fn ip_owner(&self, ip: Ipv4Addr) -> Option<String> {
            (ip == Ipv4Addr::new(10, 0, 0, 7)).then(|| "taken".into())
        }
        fn lease_holder(&self, ip: Ipv4Addr) -> Option<Mac> {
            (ip == Ipv4Addr::new(10, 0, 0, 8)).then(|| "52:54:00:00:00:08".parse().unwrap())
        }
    }

    fn mac_1() -> Mac {
        "52:54:00:00:00:01".parse().unwrap()
    }

    fn uuid_1() -> Uuid {
        "4c4c4544-0000-0000-0000-000000000001".parse().unwrap()
    }

    fn good() -> Adoption {
        Adoption {
            macs: vec!["52:54:00:00:00:09".parse().unwrap()],
            uuid: None,
            hostname: "web-01".into(),
            group: "rack1".into(),
            profile: "p".into(),
            ip: None,
            install: true,
            ..Default::default()
        }
    }

    /// A change to a good adoption, and the refusal it earns ("": none).
    type Case = (fn(&mut Adoption), &'static str);

    #[test]
    fn every_rule_has_its_words() {
        assert_eq!(check_adoption(&good(), &World), Ok(()));
        let cases: [Case; 14] = [
            (
                |a| a.hostname = "Bad_Name".into(),
                "`Bad_Name` is not a valid hostname (letters, digits, hyphens; at most 63)",
            ),
            (
                |a| a.group = "../up".into(),
                "`../up` is not a valid group folder",
            ),
            (|a| a.macs.clear(), "an adopted machine needs a MAC or UUID"),
            (
                |a| a.group = vec!["r"; 20].join("/"),
                "r/r/r/r/r/r/r/r/r/r/r/r/r/r/r/r/r: folder nested too deep (at most 16 levels)",
            ),
            (
                |a| a.macs.push(Mac([0xff; 6])),
                "MAC ff:ff:ff:ff:ff:ff is the broadcast address, not a machine's",
            ),
            (
                |a| a.macs = vec![Mac([0; 6])],
                "MAC 00:00:00:00:00:00 is all zeros, not a machine's",
            ),
            (
                |a| a.uuid = Some(Uuid([0; 16])),
                "UUID 00000000-0000-0000-0000-000000000000 is a placeholder the firmware reports when it has none",
            ),
            (|a| a.profile = "ghost".into(), "no profile named `ghost`"),
            (
                |a| a.hostname = "taken".into(),
                "hostname taken is taken (r/taken.yaml)",
            ),
            (
                |a| a.macs = vec![mac_1()],
                "MAC 52:54:00:00:00:01 already belongs to taken",
            ),
            (
                |a| a.uuid = Some(uuid_1()),
                "UUID 4c4c4544-0000-0000-0000-000000000001 already belongs to taken",
            ),
            (
                |a| a.ip = Some(Ipv4Addr::new(10, 0, 0, 7)),
                "IP 10.0.0.7 already belongs to taken",
            ),
            (
                |a| a.ip = Some(Ipv4Addr::new(10, 0, 0, 8)),
                "IP 10.0.0.8 is leased to 52:54:00:00:00:08",
            ),
            (
                // Its own lease is no collision.
                |a| {
                    a.ip = Some(Ipv4Addr::new(10, 0, 0, 8));
                    a.macs = vec!["52:54:00:00:00:08".parse().unwrap()];
                },
                "",
            ),
        ];
        for (change, want) in cases {
            let mut a = good();
            change(&mut a);
            let got = check_adoption(&a, &World).err().map(|e| e.to_string());
            assert_eq!(got.as_deref().unwrap_or(""), want);
        }
    }

    #[test]
    fn a_static_address_is_a_host_of_a_pool_and_not_the_server() {
        let pools = crate::config::Config::from_text(
            "dhcp:\n  pools:\n    - subnet: 10.0.0.0/24\n      range: 10.0.0.10-10.0.0.20\n    - subnet: 10.1.0.0/31\n      range: 10.1.0.0-10.1.0.1\n",
            None,
        )
        .unwrap()
        .dhcp
        .pools;
        let server = Some(Ipv4Addr::new(10, 0, 0, 1));
        let cases = [
            ("10.0.0.7", ""),
            ("10.0.0.1", "ip 10.0.0.1 is the server's own address"),
            (
                "10.0.0.0",
                "ip 10.0.0.0 is the network address of 10.0.0.0/24",
            ),
            (
                "10.0.0.255",
                "ip 10.0.0.255 is the broadcast address of 10.0.0.0/24",
            ),
            // A /31 has two hosts and neither address is reserved (RFC 3021).
            ("10.1.0.0", ""),
            ("10.1.0.1", ""),
            (
                "10.2.0.1",
                "ip 10.2.0.1 is outside every pool (10.0.0.0/24, 10.1.0.0/31)",
            ),
        ];
        for (ip, want) in cases {
            let got = check_static_ip(ip.parse().unwrap(), &pools, server).err();
            assert_eq!(got.map(|e| e.to_string()).unwrap_or_default(), want, "{ip}");
        }
        // Without pools (proxyDHCP) only the server's own address is refused.
        assert!(check_static_ip(Ipv4Addr::new(192, 0, 2, 1), &[], server).is_ok());
        assert!(check_static_ip(Ipv4Addr::new(10, 0, 0, 1), &[], server).is_err());
    }

    #[test]
    fn a_console_that_knows_no_files_names_none() {
        let e = AdoptionError::HostnameTaken {
            hostname: "dev-02".into(),
            file: None,
        };
        assert_eq!(e.to_string(), "hostname dev-02 is taken");
    }
}
