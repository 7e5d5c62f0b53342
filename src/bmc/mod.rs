//! Baseboard management controllers: power a machine on, off or round,
//! and make its next boot a network boot, over IPMI or Redfish.
//!
//! - `spec`: the `bmc:` inventory key, validated (passwords by reference
//!   only);
//! - `ipmi`: IPMI 2.0 over LAN through `ipmitool -I lanplus`, its replies
//!   judged by their text (it exits 0 on many refusals);
//! - `redfish`: Redfish over HTTPS (rustls; verification on unless the
//!   machine says `verify_tls: false`);
//! - `actor`: the one task that owns BMC work: jobs from the console and
//!   the API, the power poll, bounded concurrency, a timeout on each call,
//!   outcomes as events. Nothing here ever blocks the console.
//!
//! The keys, the console's keys and the API routes are documented in
//! `docs/inventory.md` and `docs/operating.md`.

pub mod actor;
pub mod ipmi;
pub mod redfish;
pub mod spec;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use actor::{BmcActor, BmcHandle, BmcStats};
pub use spec::{BmcProtocol, BmcSpec, PasswordRef};

/// A machine's power as its BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
}

impl PowerState {
    pub fn label(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        }
    }
}

/// What an operator can ask of a BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    /// Read the power state now.
    Status,
    On,
    /// Ask the OS to shut down (ACPI power button).
    SoftOff,
    /// Cut the power.
    Off,
    /// Off, then on again (on when it was off).
    Cycle,
    /// Hard reset, power stays on.
    Reset,
    /// Boot from the network next time only.
    PxeOnce,
}

impl PowerAction {
    pub fn label(self) -> &'static str {
        match self {
            PowerAction::Status => "power status",
            PowerAction::On => "power on",
            PowerAction::SoftOff => "soft power off",
            PowerAction::Off => "power off",
            PowerAction::Cycle => "power cycle",
            PowerAction::Reset => "reset",
            PowerAction::PxeOnce => "boot once from network",
        }
    }

    pub fn parse(text: &str) -> Option<PowerAction> {
        Some(match text {
            "status" => PowerAction::Status,
            "on" => PowerAction::On,
            "soft" | "soft_off" => PowerAction::SoftOff,
            "off" => PowerAction::Off,
            "cycle" => PowerAction::Cycle,
            "reset" => PowerAction::Reset,
            "pxe" | "pxe_once" => PowerAction::PxeOnce,
            _ => return None,
        })
    }
}

/// Why a BMC call failed, in the words the console shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum BmcError {
    /// The password could not be read (no variable, no file).
    #[error("password: {0}")]
    Password(String),
    /// The BMC refused the user name or password.
    #[error("authentication refused: {0}")]
    Auth(String),
    /// No answer within the time allowed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The BMC is not reachable (no route, refused, no session).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The BMC's certificate did not verify.
    #[error("TLS: {0}")]
    Tls(String),
    /// The BMC answered, but not with what the action needs.
    #[error("refused: {0}")]
    Refused(String),
    /// The BMC does not offer this action.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The tool pxedeck drives is missing or broke.
    #[error("{0}")]
    Tool(String),
}

impl BmcError {
    /// A short word for metrics labels and the console's column.
    pub fn reason(&self) -> &'static str {
        match self {
            BmcError::Password(_) => "password",
            BmcError::Auth(_) => "auth",
            BmcError::Timeout(_) => "timeout",
            BmcError::Unreachable(_) => "unreachable",
            BmcError::Tls(_) => "tls",
            BmcError::Refused(_) => "refused",
            BmcError::Unsupported(_) => "unsupported",
            BmcError::Tool(_) => "tool",
        }
    }
}

/// The bounds every call runs within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One BMC call (ipmitool run, HTTPS request chain).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(15),
        }
    }
}

/// Runs one action against one BMC: the drivers behind one door. Blocking
/// (a child process or HTTPS calls): the actor calls it on a blocking
/// thread. Returns the power state when the action reads it.
pub fn perform(
    spec: &BmcSpec,
    action: PowerAction,
    limits: Limits,
) -> Result<Option<PowerState>, BmcError> {
    let password = spec.password.resolve().map_err(BmcError::Password)?;
    match spec.protocol {
        BmcProtocol::Ipmi => ipmi::perform(spec, &password, action, limits),
        BmcProtocol::Redfish => redfish::Redfish::connect(spec, &password, limits)?.perform(action),
    }
}
