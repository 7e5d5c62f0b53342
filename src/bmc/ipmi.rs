//! IPMI 2.0 over LAN (RMCP+), by running `ipmitool -I lanplus`, as most
//! provisioning tools do.
//!
//! - The password goes to ipmitool in its environment (`-E` reads
//!   `IPMI_PASSWORD`), never on the command line: any local user can read
//!   another process's `/proc/<pid>/cmdline`, only its owner its
//!   environment.
//! - `-C 3` (cipher suite 3: HMAC-SHA1, AES-128) is named: without it
//!   ipmitool probes suites first, about ten seconds per call on some BMCs.
//! - ipmitool exits 0 on many refusals (a BMC that answers "unspecified
//!   error" to a power command still exits 0), so the reply text is judged:
//!   each action has the one line that means it was done, and anything
//!   else is an error carrying what ipmitool said.
//! - Each run is killed when [`Limits::timeout`] passes.

use std::io::{Read, Seek};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{BmcError, BmcSpec, Limits, PowerAction, PowerState};

/// The program run; a test may point this elsewhere with `PXEDECK_IPMITOOL`.
fn program() -> String {
    std::env::var("PXEDECK_IPMITOOL").unwrap_or_else(|_| "ipmitool".into())
}

/// The most of ipmitool's output read back: its replies are a few lines.
const MAX_OUTPUT: u64 = 64 * 1024;

/// The ipmitool arguments of an action, after the session options.
pub fn action_args(action: PowerAction) -> &'static [&'static str] {
    match action {
        PowerAction::Status => &["power", "status"],
        PowerAction::On => &["power", "on"],
        PowerAction::SoftOff => &["power", "soft"],
        PowerAction::Off => &["power", "off"],
        PowerAction::Cycle => &["power", "cycle"],
        PowerAction::Reset => &["power", "reset"],
        // Without `options=persistent` the override holds for one boot.
        PowerAction::PxeOnce => &["chassis", "bootdev", "pxe"],
    }
}

/// Runs one action. A power cycle of a machine that is off powers it on
/// (IPMI leaves a cycle of an off chassis to the BMC; many refuse it).
pub fn perform(
    spec: &BmcSpec,
    password: &str,
    action: PowerAction,
    limits: Limits,
) -> Result<Option<PowerState>, BmcError> {
    if action == PowerAction::Cycle {
        let state = run_action(spec, password, PowerAction::Status, limits)?;
        if state == Some(PowerState::Off) {
            run_action(spec, password, PowerAction::On, limits)?;
            return Ok(Some(PowerState::On));
        }
    }
    run_action(spec, password, action, limits)
}

fn run_action(
    spec: &BmcSpec,
    password: &str,
    action: PowerAction,
    limits: Limits,
) -> Result<Option<PowerState>, BmcError> {
    let text = run(spec, password, action_args(action), limits.timeout)?;
    judge(action, &text)
}

/// Runs ipmitool with the session options and `args`; its stdout and
/// stderr together.
fn run(
    spec: &BmcSpec,
    password: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, BmcError> {
    let mut out = tempfile::tempfile().map_err(|e| BmcError::Tool(format!("temp file: {e}")))?;
    let err = out
        .try_clone()
        .map_err(|e| BmcError::Tool(format!("temp file: {e}")))?;
    let port = spec.port.to_string();
    let mut child = Command::new(program())
        // -v: the session errors then say why (RAKP 2 HMAC invalid,
        // unauthorized name, no answer to Get Channel Auth Capabilities).
        .args(["-v", "-I", "lanplus", "-C", "3", "-N", "1", "-R", "2"])
        .args(["-H", &spec.host, "-p", &port, "-U", &spec.username, "-E"])
        .args(args)
        .env("IPMI_PASSWORD", password)
        .env_remove("IPMITOOL_PASSWORD")
        // ipmitool prompts on the terminal when -E finds nothing.
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| BmcError::Tool(e.to_string()))?)
        .stderr(err)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BmcError::Tool(format!(
                "{} not found: install ipmitool (Debian package ipmitool)",
                program()
            )),
            _ => BmcError::Tool(format!("cannot run {}: {e}", program())),
        })?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BmcError::Timeout(timeout));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(BmcError::Tool(format!("waiting for ipmitool: {e}"))),
        }
    }
    let mut bytes = Vec::new();
    out.rewind()
        .and_then(|_| out.take(MAX_OUTPUT).read_to_end(&mut bytes))
        .map_err(|e| BmcError::Tool(format!("reading ipmitool's reply: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Judges ipmitool's reply to an action: the line that means it was done,
/// else the error it names. Pure, so every reply seen can be a test.
pub fn judge(action: PowerAction, text: &str) -> Result<Option<PowerState>, BmcError> {
    if let Some(e) = session_error(text) {
        return Err(e);
    }
    let lines = || text.lines().map(str::trim);
    let done = |expect: &str| lines().any(|l| l == expect);
    let ok = match action {
        PowerAction::Status => {
            if done("Chassis Power is on") {
                return Ok(Some(PowerState::On));
            }
            if done("Chassis Power is off") {
                return Ok(Some(PowerState::Off));
            }
            false
        }
        PowerAction::On => done("Chassis Power Control: Up/On"),
        PowerAction::SoftOff => done("Chassis Power Control: Soft"),
        PowerAction::Off => done("Chassis Power Control: Down/Off"),
        PowerAction::Cycle => done("Chassis Power Control: Cycle"),
        PowerAction::Reset => done("Chassis Power Control: Reset"),
        PowerAction::PxeOnce => done("Set Boot Device to pxe"),
    };
    if ok {
        return Ok(None);
    }
    Err(refusal(action, text))
}

/// Why no session was made, if that is what the reply says.
fn session_error(text: &str) -> Option<BmcError> {
    if !text.contains("Unable to establish IPMI v2 / RMCP+ session")
        && !text.contains("Unable to establish LAN session")
    {
        return None;
    }
    let has = |s: &str| text.contains(s);
    Some(if has("RAKP 2 HMAC is invalid") {
        BmcError::Auth("wrong password".into())
    } else if has("unauthorized name") {
        BmcError::Auth("unknown user name".into())
    } else if has("insufficient resources for session") {
        BmcError::Refused("the BMC has no free session".into())
    } else if has("Get Auth Capabilities error")
        || has("Error issuing Get Channel Authentication Capabilities")
    {
        BmcError::Unreachable("no answer on RMCP+ (UDP)".into())
    } else if has("RAKP") || has("authentication") {
        BmcError::Auth(last_error_line(text))
    } else {
        BmcError::Unreachable(last_error_line(text))
    })
}

fn refusal(action: PowerAction, text: &str) -> BmcError {
    let line = last_error_line(text);
    let lower = line.to_ascii_lowercase();
    if lower.contains("invalid command")
        || lower.contains("not supported")
        || lower.contains("parameter not supported")
    {
        BmcError::Unsupported(format!("{}: {line}", action.label()))
    } else if lower.contains("insufficient privilege") {
        BmcError::Auth(format!("{}: {line}", action.label()))
    } else {
        BmcError::Refused(format!("{}: {line}", action.label()))
    }
}

/// The line of a reply that says what went wrong: the last one that is not
/// ipmitool's chatter, cut to a length the console can show.
fn last_error_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("Loading IANA") && !l.starts_with('>'))
        .unwrap_or("no reply");
    line.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_done_line_is_success_and_anything_else_is_not() {
        assert_eq!(
            judge(
                PowerAction::Status,
                "Loading IANA PEN Registry...\nChassis Power is on\n"
            ),
            Ok(Some(PowerState::On))
        );
        assert_eq!(
            judge(PowerAction::Status, "Chassis Power is off\n"),
            Ok(Some(PowerState::Off))
        );
        assert_eq!(
            judge(PowerAction::Cycle, "Chassis Power Control: Cycle\n"),
            Ok(None)
        );
        assert_eq!(
            judge(PowerAction::PxeOnce, "Set Boot Device to pxe\n"),
            Ok(None)
        );
        // ipmitool exits 0 here: only the text says it failed.
        assert_eq!(
            judge(
                PowerAction::On,
                "Set Chassis Power Control to Up/On failed: Unspecified error\n"
            ),
            Err(BmcError::Refused(
                "power on: Set Chassis Power Control to Up/On failed: Unspecified error".into()
            ))
        );
        // The right words for another action are not success.
        assert!(judge(PowerAction::Off, "Chassis Power Control: Up/On\n").is_err());
        assert!(judge(PowerAction::Status, "").is_err());
    }

    #[test]
    fn session_failures_say_why() {
        let fail = "Error: Unable to establish IPMI v2 / RMCP+ session\n";
        assert_eq!(
            judge(
                PowerAction::Status,
                &format!("> RAKP 2 HMAC is invalid\n{fail}")
            ),
            Err(BmcError::Auth("wrong password".into()))
        );
        assert_eq!(
            judge(
                PowerAction::Status,
                &format!("RAKP 2 message indicates an error : unauthorized name\n{fail}")
            ),
            Err(BmcError::Auth("unknown user name".into()))
        );
        let silent = format!(
            "Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\n{fail}"
        );
        assert!(matches!(
            judge(PowerAction::On, &silent),
            Err(BmcError::Unreachable(_))
        ));
        assert!(matches!(
            judge(
                PowerAction::PxeOnce,
                "Set Chassis Boot Parameter 5 failed: Invalid command\n"
            ),
            Err(BmcError::Unsupported(_))
        ));
    }

    #[test]
    fn a_huge_reply_is_cut() {
        let long = "x".repeat(10_000);
        match judge(PowerAction::Off, &long) {
            Err(BmcError::Refused(m)) => assert!(m.len() < 200, "{}", m.len()),
            other => panic!("{other:?}"),
        }
    }
}
