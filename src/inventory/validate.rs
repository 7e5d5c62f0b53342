//! The rules an adoption must meet, in one place: the writer, the console's
//! adopt dialog and the loader (so `pxedeck check`) all refuse with these
//! words.
//!
//! The checks are pure: what is already taken comes through [`Taken`], which
//! the writer answers from the served snapshot and the console from what it
//! has seen (leases included). Whether the file exists on disk is the
//! writer's own last check.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::{Adoption, Inventory, valid_group, valid_hostname};
use crate::ident::{Mac, Uuid};

/// Why an adoption is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdoptionError {
    #[error("`{0}` is not a valid hostname (letters, digits, hyphens; at most 63)")]
    InvalidHostname(String),
    #[error("`{0}` is not a valid group folder")]
    InvalidGroup(String),
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
    /// Whether the hostname is in use, and in which file when known.
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
    if !valid_group(&a.group) {
        return Err(AdoptionError::InvalidGroup(a.group.clone()));
    }
    if a.macs.is_empty() && a.uuid.is_none() {
        return Err(AdoptionError::NoIdentity);
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

/// The writer's view: the served snapshot.
impl Taken for Inventory {
    fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    fn has_profile(&self, name: &str) -> bool {
        self.profiles.contains_key(name)
    }

    fn hostname_taken(&self, hostname: &str) -> Option<Option<PathBuf>> {
        self.by_hostname(hostname)
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
        }
    }

    /// A change to a good adoption, and the refusal it earns ("": none).
    type Case = (fn(&mut Adoption), &'static str);

    #[test]
    fn every_rule_has_its_words() {
        assert_eq!(check_adoption(&good(), &World), Ok(()));
        let cases: [Case; 10] = [
            (
                |a| a.hostname = "Bad_Name".into(),
                "`Bad_Name` is not a valid hostname (letters, digits, hyphens; at most 63)",
            ),
            (
                |a| a.group = "../up".into(),
                "`../up` is not a valid group folder",
            ),
            (|a| a.macs.clear(), "an adopted machine needs a MAC or UUID"),
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
    fn a_console_that_knows_no_files_names_none() {
        let e = AdoptionError::HostnameTaken {
            hostname: "dev-02".into(),
            file: None,
        };
        assert_eq!(e.to_string(), "hostname dev-02 is taken");
    }
}
