//! What a machine boots: firmware classification, the decision shared by
//! the DHCP and HTTP sides, and rendering of scripts and installer configs.

pub mod arch;
pub mod decide;
pub mod grub;
pub mod identity;
pub mod render;

use serde::{Deserialize, Serialize};

/// What pxedeck decided a machine gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum BootDecision {
    /// Known, `install: true`: boot its profile.
    Install { profile: String },
    /// Known, `install: false` (or a local profile): boot the local disk.
    Local,
    /// Unknown, policy `hold`: the iPXE wait loop.
    Hold,
    /// Unknown, policy `discover`: the discovery profile.
    Discover { profile: String },
    /// Unknown, policy `ignore`: no boot answer.
    Ignore,
    /// Not a PXE / HTTP-boot client: an address at most.
    NotPxe,
}

/// The iPXE script a machine was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptKind {
    Install,
    Local,
    Hold,
    Discover,
    Menu,
    /// The profile failed to render; the script prints why.
    Error,
}

impl ScriptKind {
    pub fn name(self) -> &'static str {
        match self {
            ScriptKind::Install => "install",
            ScriptKind::Local => "local",
            ScriptKind::Hold => "hold",
            ScriptKind::Discover => "discover",
            ScriptKind::Menu => "menu",
            ScriptKind::Error => "error",
        }
    }
}
