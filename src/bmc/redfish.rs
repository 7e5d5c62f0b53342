//! Redfish over HTTPS (DMTF DSP0266): the system's `PowerState`, the
//! `ComputerSystem.Reset` action, and a one-time boot override
//! (`Boot.BootSourceOverrideTarget: Pxe`, `BootSourceOverrideEnabled:
//! Once`, DSP2046 ComputerSystem).
//!
//! Blocking (ureq with rustls), run on a blocking thread by the actor.
//! The BMC's certificate is verified against the public roots, or against
//! `ca_file:` when the machine names one; `verify_tls: false` turns
//! verification off for that BMC alone (self-signed certificates are the
//! norm). A certificate that does not verify is a [`BmcError::Tls`] that
//! says what to set. Every request has the one overall timeout and every
//! body read a cap.

use std::sync::Arc;

use serde_json::{Value, json};
use ureq::Agent;
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use super::{BmcError, BmcSpec, Limits, PowerAction, PowerState};

/// The most of a Redfish reply read: resources are a few kilobytes.
const MAX_BODY: u64 = 1 << 20;

/// A connection to one BMC's Redfish service, with its system found.
pub struct Redfish {
    agent: Agent,
    base: String,
    authorization: String,
    timeout: std::time::Duration,
    /// The first member of `/redfish/v1/Systems` (a BMC per machine has
    /// one).
    system: String,
}

/// The ResetType each action sends, best first; the system's
/// `ResetType@Redfish.AllowableValues` picks the first it offers.
fn reset_types(action: PowerAction) -> &'static [&'static str] {
    match action {
        PowerAction::On => &["On", "ForceOn"],
        PowerAction::SoftOff => &["GracefulShutdown"],
        PowerAction::Off => &["ForceOff"],
        PowerAction::Cycle => &["PowerCycle", "ForceRestart"],
        PowerAction::Reset => &["ForceRestart", "PowerCycle"],
        PowerAction::Status | PowerAction::PxeOnce => &[],
    }
}

impl Redfish {
    /// Builds the client and finds the system.
    pub fn connect(spec: &BmcSpec, password: &str, limits: Limits) -> Result<Redfish, BmcError> {
        let tls = if !spec.verify_tls {
            TlsConfig::builder().disable_verification(true).build()
        } else if let Some(ca) = &spec.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| BmcError::Tls(format!("ca_file {}: {e}", ca.display())))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(BmcError::Tls(format!(
                    "ca_file {} holds no PEM certificate",
                    ca.display()
                )));
            }
            TlsConfig::builder()
                .root_certs(RootCerts::Specific(Arc::new(certs)))
                .build()
        } else {
            TlsConfig::builder().build()
        };
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(limits.timeout))
            .http_status_as_error(false)
            .tls_config(tls)
            .max_redirects(0)
            .build()
            .into();
        use base64::Engine as _;
        let credentials = format!("{}:{password}", spec.username);
        let mut r = Redfish {
            agent,
            base: format!("https://{}", spec.authority()),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
            timeout: limits.timeout,
            system: String::new(),
        };
        let systems = r.get("/redfish/v1/Systems")?;
        r.system = systems["Members"][0]["@odata.id"]
            .as_str()
            .filter(|p| p.starts_with("/redfish/v1/Systems/"))
            .ok_or_else(|| BmcError::Unsupported("the BMC lists no system".into()))?
            .to_string();
        Ok(r)
    }

    /// Runs one action; the power state when it reads it.
    pub fn perform(&self, action: PowerAction) -> Result<Option<PowerState>, BmcError> {
        match action {
            PowerAction::Status => self.power_state().map(Some),
            PowerAction::PxeOnce => self.boot_once_pxe().map(|_| None),
            PowerAction::Cycle if self.power_state()? == PowerState::Off => {
                self.reset(PowerAction::On)?;
                Ok(Some(PowerState::On))
            }
            other => self.reset(other).map(|_| None),
        }
    }

    pub fn power_state(&self) -> Result<PowerState, BmcError> {
        let system = self.get(&self.system)?;
        match system["PowerState"].as_str() {
            // PoweringOn/Off are transitions; the poll sees where they end.
            Some("On" | "PoweringOff") => Ok(PowerState::On),
            Some("Off" | "PoweringOn") => Ok(PowerState::Off),
            Some(other) => Err(BmcError::Refused(format!("PowerState `{other}`"))),
            None => Err(BmcError::Unsupported("the system has no PowerState".into())),
        }
    }

    /// The system's boot override as (target, enabled), as the BMC reads
    /// it back.
    pub fn boot_override(&self) -> Result<(String, String), BmcError> {
        let system = self.get(&self.system)?;
        let field = |k: &str| system["Boot"][k].as_str().unwrap_or("").to_string();
        Ok((
            field("BootSourceOverrideTarget"),
            field("BootSourceOverrideEnabled"),
        ))
    }

    fn boot_once_pxe(&self) -> Result<(), BmcError> {
        let system = self.get(&self.system)?;
        let allowed = &system["Boot"]["BootSourceOverrideTarget@Redfish.AllowableValues"];
        if let Some(values) = allowed.as_array()
            && !values.iter().any(|v| v == "Pxe")
        {
            return Err(BmcError::Unsupported(
                "the system offers no Pxe boot override".into(),
            ));
        }
        self.send(
            "PATCH",
            &self.system,
            json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}),
        )
    }

    fn reset(&self, action: PowerAction) -> Result<(), BmcError> {
        let system = self.get(&self.system)?;
        let reset = &system["Actions"]["#ComputerSystem.Reset"];
        let target = reset["target"]
            .as_str()
            .filter(|t| t.starts_with("/redfish/v1/"))
            .ok_or_else(|| BmcError::Unsupported("the system has no Reset action".into()))?
            .to_string();
        let wanted = reset_types(action);
        let kind = match reset["ResetType@Redfish.AllowableValues"].as_array() {
            // No list: the service takes any; send the first choice.
            None => wanted.first().copied(),
            Some(allowed) => wanted
                .iter()
                .copied()
                .find(|w| allowed.iter().any(|a| a == w)),
        }
        .ok_or_else(|| {
            BmcError::Unsupported(format!(
                "{}: the system offers none of {}",
                action.label(),
                wanted.join(", ")
            ))
        })?;
        self.send("POST", &target, json!({ "ResetType": kind }))
    }

    fn get(&self, path: &str) -> Result<Value, BmcError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .get(&url)
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let text = body
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        check_status("GET", path, status, &text)?;
        serde_json::from_str(&text)
            .map_err(|e| BmcError::Refused(format!("GET {path}: not JSON ({e})")))
    }

    fn send(&self, method: &str, path: &str, body: Value) -> Result<(), BmcError> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "PATCH" => self.agent.patch(&url),
            _ => self.agent.post(&url),
        };
        let response = request
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let mut reply = response.into_body();
        let text = reply
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .unwrap_or_default();
        check_status(method, path, status, &text)
    }

    fn transport(&self, e: ureq::Error) -> BmcError {
        transport_error(e, self.timeout)
    }
}

/// A failed request in the words of [`BmcError`].
fn transport_error(e: ureq::Error, timeout: std::time::Duration) -> BmcError {
    match e {
        ureq::Error::Timeout(_) => BmcError::Timeout(timeout),
        ureq::Error::Rustls(e) => tls_error(&e.to_string()),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            BmcError::Timeout(timeout)
        }
        // rustls reports a bad certificate as an I/O error of the
        // handshake.
        ureq::Error::Io(io) if io.to_string().to_ascii_lowercase().contains("certificate") => {
            tls_error(&io.to_string())
        }
        ureq::Error::Io(io) => BmcError::Unreachable(io.to_string()),
        ureq::Error::HostNotFound => BmcError::Unreachable("host not found".into()),
        ureq::Error::ConnectionFailed => BmcError::Unreachable("connection failed".into()),
        ureq::Error::BodyExceedsLimit(n) => {
            BmcError::Refused(format!("a reply larger than {n} bytes"))
        }
        other => BmcError::Unreachable(other.to_string()),
    }
}

fn tls_error(detail: &str) -> BmcError {
    BmcError::Tls(format!(
        "the BMC's certificate did not verify ({detail}); name its CA with bmc.ca_file, \
         or set bmc.verify_tls: false for a self-signed BMC"
    ))
}

/// A reply's status in the words of [`BmcError`]; the Redfish error
/// message (`error.message`) when the BMC sent one.
fn check_status(method: &str, path: &str, status: u16, body: &str) -> Result<(), BmcError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            let m = &v["error"]["@Message.ExtendedInfo"][0]["Message"];
            m.as_str()
                .or_else(|| v["error"]["message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let message: String = message.chars().take(160).collect();
    let what = format!(
        "{method} {path}: {status}{}",
        if message.is_empty() {
            String::new()
        } else {
            format!(" {message}")
        }
    );
    Err(match status {
        401 | 403 => BmcError::Auth(what),
        404 | 405 | 501 => BmcError::Unsupported(what),
        _ => BmcError::Refused(what),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_errors_with_the_bmc_message() {
        assert!(check_status("GET", "/x", 200, "").is_ok());
        assert!(check_status("POST", "/x", 204, "").is_ok());
        assert!(matches!(
            check_status("GET", "/x", 401, ""),
            Err(BmcError::Auth(_))
        ));
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"Power state Bogus is not supported"}}"#;
        assert_eq!(
            check_status("POST", "/r", 400, body),
            Err(BmcError::Refused(
                "POST /r: 400 Power state Bogus is not supported".into()
            ))
        );
        assert!(matches!(
            check_status("PATCH", "/x", 405, "<html>"),
            Err(BmcError::Unsupported(_))
        ));
    }

    #[test]
    fn each_action_has_reset_types_to_choose_from() {
        for a in [
            PowerAction::On,
            PowerAction::SoftOff,
            PowerAction::Off,
            PowerAction::Cycle,
            PowerAction::Reset,
        ] {
            assert!(!reset_types(a).is_empty(), "{a:?}");
        }
    }
}
