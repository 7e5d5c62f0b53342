//! The YAML inventory: the operator's `nodes/` tree, kept in git.
//!
//! - `load` walks the tree, merges `_defaults.yaml` → profile → machine file
//!   and validates everything with file and line ([`Problem`]).
//! - [`Inventory`] is an immutable snapshot with indexes by MAC, UUID, serial,
//!   hostname and IP; the servers read it lock-free through an `ArcSwap`.
//! - [`InventoryService`] is the one owner of the served snapshot: it
//!   loads, validates ([`validate`], the adoption rules everyone uses),
//!   writes (`write`: atomic and comment-preserving) and publishes under one
//!   lock; `watch` asks it to reload on change, keeping the last good
//!   snapshot.
//!
//! The rules are documented with examples in `docs/inventory.md`.

mod edit;
pub mod import;
mod load;
mod machine;
mod render;
pub mod rules;
mod service;
pub mod validate;
pub mod watch;
mod write;
pub use edit::Scalar;
pub use service::{InventoryService, Published, SharedInventory, Undone, WriteRecorder, Written};
pub use write::{machine_file_text, write_atomic};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use load::{LoadOptions, Loaded, load};
pub use machine::{BootSpec, ConfigTemplate, Machine, Profile};
pub use render::annotated_yaml;
pub use write::{Adoption, MAX_EDIT_NAME, MachineEdit, WriteError};

use crate::ident::{Mac, Uuid};
use crate::yaml::{FileId, Origin};

/// One problem found while loading or validating, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// Path relative to the inventory root.
    pub file: PathBuf,
    pub line: Option<u32>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            // A problem of the whole tree (its folder missing) has no file.
            _ if self.file.as_os_str().is_empty() => f.write_str(&self.message),
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// An immutable, validated view of the inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub root: PathBuf,
    /// Every file read, relative to `root`; a [`FileId`] indexes this.
    pub files: Vec<PathBuf>,
    /// Machines sorted by group, then hostname.
    pub machines: Vec<Machine>,
    pub profiles: BTreeMap<String, Profile>,
    /// Texts of `_templates/` files by path below it, read with the rest of
    /// the tree so rendering never touches the disk.
    pub templates: BTreeMap<String, String>,
    /// The root `_defaults.yaml` (what a machine outside any group
    /// inherits): the base of the `discover` profile's values.
    pub root_defaults: Option<crate::yaml::Node>,
    /// Groups (relative folders) that exist, including empty ones.
    pub groups: Vec<String>,
    /// Rules for unknown machines (`adopt.rules`), in the order they are
    /// tried: the first that matches wins.
    pub rules: Vec<rules::Rule>,
    /// A hash of each file's path and content, by [`FileId`].
    pub file_hashes: Vec<u64>,
    /// The sum of `file_hashes`: equal fingerprints mean nothing changed
    /// (lets the watcher ignore the writer's own writes).
    pub fingerprint: u64,
    /// The sum of the hashes of every file that is not a machine file
    /// (defaults, profiles, templates): what all machines' answers share.
    pub common_fingerprint: u64,
    by_mac: HashMap<Mac, usize>,
    by_uuid: HashMap<Uuid, usize>,
    by_serial: HashMap<String, usize>,
    by_asset: HashMap<String, usize>,
    by_hostname: HashMap<String, usize>,
    by_ip: HashMap<Ipv4Addr, usize>,
}

impl Inventory {
    /// An inventory with no machines (what runs until a good one loads).
    pub fn empty(root: &Path) -> Inventory {
        Inventory {
            root: root.to_path_buf(),
            ..Default::default()
        }
    }

    pub fn by_mac(&self, mac: &Mac) -> Option<&Machine> {
        self.by_mac.get(mac).map(|&i| &self.machines[i])
    }

    pub fn by_uuid(&self, uuid: &Uuid) -> Option<&Machine> {
        self.by_uuid.get(uuid).map(|&i| &self.machines[i])
    }

    pub fn by_serial(&self, serial: &str) -> Option<&Machine> {
        self.by_serial.get(serial).map(|&i| &self.machines[i])
    }

    pub fn by_asset(&self, asset: &str) -> Option<&Machine> {
        self.by_asset.get(asset).map(|&i| &self.machines[i])
    }

    pub fn by_hostname(&self, hostname: &str) -> Option<&Machine> {
        self.by_hostname.get(hostname).map(|&i| &self.machines[i])
    }

    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Machine> {
        self.by_ip.get(&ip).map(|&i| &self.machines[i])
    }

    /// The machine a booting client is: by MAC first, then by UUID (the
    /// lookup `boot::decide` makes).
    pub fn lookup(&self, mac: &Mac, uuid: Option<&Uuid>) -> Option<&Machine> {
        self.by_mac(mac)
            .or_else(|| uuid.and_then(|u| self.by_uuid(u)))
    }

    /// What a client's boot answers depend on in this snapshot: the files
    /// all machines share, and the machine's own file and install flag.
    /// Equal stamps in two snapshots mean the same answer, so a cache keeps
    /// what a change elsewhere in the tree did not touch.
    pub fn stamp(&self, machine: Option<&Machine>) -> Stamp {
        Stamp {
            common: self.common_fingerprint,
            machine: machine.map(|m| {
                let file = self.file_hashes.get(m.file as usize).copied();
                (file.unwrap_or_default(), m.install)
            }),
        }
    }

    /// Finds a machine by whatever an operator typed: a MAC in any
    /// notation, a UUID, a hostname, or a serial number.
    pub fn find(&self, query: &str) -> Option<&Machine> {
        if let Ok(mac) = query.parse::<Mac>()
            && let Some(m) = self.by_mac(&mac)
        {
            return Some(m);
        }
        if let Ok(uuid) = query.parse::<Uuid>()
            && let Some(m) = self.by_uuid(&uuid)
        {
            return Some(m);
        }
        self.by_hostname(query)
            .or_else(|| self.by_serial(query))
            .or_else(|| self.by_asset(query))
    }

    /// The path of a file, relative to the root.
    pub fn file(&self, id: FileId) -> &Path {
        &self.files[id as usize]
    }

    /// `file:line` of an origin, for messages.
    pub fn locate(&self, origin: Origin) -> String {
        format!("{}:{}", self.file(origin.file).display(), origin.line)
    }

    fn index(&mut self) {
        self.by_mac.clear();
        self.by_uuid.clear();
        self.by_serial.clear();
        self.by_asset.clear();
        self.by_hostname.clear();
        self.by_ip.clear();
        for (i, m) in self.machines.iter().enumerate() {
            for mac in &m.macs {
                self.by_mac.insert(*mac, i);
            }
            if let Some(u) = m.uuid {
                self.by_uuid.insert(u, i);
            }
            if let Some(s) = &m.serial {
                self.by_serial.insert(s.clone(), i);
            }
            if let Some(a) = &m.asset {
                self.by_asset.insert(a.clone(), i);
            }
            if let Some(ip) = m.ip {
                self.by_ip.insert(ip, i);
            }
            self.by_hostname.insert(m.hostname.clone(), i);
        }
    }
}

/// See [`Inventory::stamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    common: u64,
    /// The machine's file hash and install flag (the flag is set apart from
    /// the file while the tree on disk is broken).
    machine: Option<(u64, bool)>,
}

/// Whether `name` is a valid hostname label (RFC 1123): letters, digits and
/// hyphens, 1–63 characters, not starting or ending with a hyphen.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether `group` is a usable group path: hostname-like segments separated
/// by `/`, none starting with `_` or `.` (those are reserved), or empty for
/// the root.
pub fn valid_group(group: &str) -> bool {
    group.is_empty()
        || group.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && !seg.starts_with(['_', '.'])
        })
}
