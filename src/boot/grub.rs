//! The GRUB configuration of the shim → GRUB chain, generated per request
//! and served over TFTP.
//!
//! Debian's signed network GRUB (`grubnetx64.efi`, `grubnetaa64.efi`) reads
//! only `<prefix>/grub.cfg`, with the prefix `(tftp,<next-server>)/grub`,
//! and has no HTTP: everything it loads comes over TFTP. So the one file
//! every machine reads, [`entry`], loops: it sources the machine's own
//! config by `$net_default_mac` ([`machine`]), which boots, exits to the
//! firmware, or returns (hold, error) to be asked again a few seconds later.
//! A held machine that is adopted boots on its next round, without a reset.
//!
//! GRUB knows a machine by MAC only; a machine no wire identity names (in
//! the inventory by serial or asset tag alone) gets, before what the
//! unknown policy gives, a [`claims`] prelude: GRUB's `smbios` command
//! reads the serial numbers and asset tag, and sources
//! `grub/serial/<mac>/<serial>` and `grub/asset/<mac>/<tag>`
//! ([`Request::Claim`]), which boot that machine or say nothing.
//!
//! A failed `linux`/`initrd`/`boot` is reported back by fetching
//! `grub/failed/<mac>/<stage>` ([`Request::Failed`]): GRUB has no other way
//! to tell the server, and the shell turns it into a failed timeline step.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::render::{self, RenderError, Script, Urls};
use crate::boot::{BootDecision, ScriptKind};
use crate::ident::Mac;
use crate::inventory::{BootSpec, Inventory, Machine};

/// GRUB's prefix directory on the TFTP server.
pub const DIR: &str = "grub";
/// Seconds between rounds of the entry loop while a machine is held.
pub const HOLD_SECONDS: u32 = render::HOLD_SECONDS;
/// Seconds before a machine whose boot failed (or whose config could not
/// be built) asks again.
pub const ERROR_RETRY_SECONDS: u32 = render::ERROR_RETRY_SECONDS;
/// Longest request path the generator looks at; anything longer is not one
/// of its names (TFTP answers "not found"). A claim path holds a MAC and a
/// value GRUB read; the generator refuses values over 64 bytes, with the
/// reason, as long as the whole path fits here.
const MAX_PATH: usize = 160;

/// A GRUB request the generator answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `grub/grub.cfg`: the entry loop every machine reads.
    Entry,
    /// `grub/machine/<mac>.cfg`: one machine's config.
    Machine(Mac),
    /// `grub/serial/<mac>/<value>`, `grub/asset/<mac>/<value>`: what the
    /// [`claims`] prelude asks for a machine no wire identity names. The
    /// value is GRUB's `smbios` string, as it came (checked by the
    /// generator like an iPXE query's).
    Claim {
        mac: Mac,
        kind: Claim,
        value: String,
    },
    /// `grub/failed/<mac>/<stage>`: GRUB reporting a failed boot step.
    Failed { mac: Mac, stage: Stage },
}

/// What a claim path says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The system or board serial number (SMBIOS type 1 or 2).
    Serial,
    /// The chassis asset tag (SMBIOS type 3).
    Asset,
}

impl Claim {
    fn name(self) -> &'static str {
        match self {
            Claim::Serial => "serial",
            Claim::Asset => "asset",
        }
    }
}

/// The GRUB command that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Kernel,
    Initrd,
    Boot,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Kernel => "kernel",
            Stage::Initrd => "initrd",
            Stage::Boot => "boot",
        }
    }

    /// What most likely went wrong, for the operator.
    pub fn reason(self) -> &'static str {
        match self {
            Stage::Kernel => {
                "GRUB could not load the kernel: not signed by a key shim trusts \
                 (Secure Boot), or not on the TFTP server"
            }
            Stage::Initrd => "GRUB could not load an initrd (not on the TFTP server?)",
            Stage::Boot => "GRUB could not start the kernel",
        }
    }

    fn parse(s: &str) -> Option<Stage> {
        [Stage::Kernel, Stage::Initrd, Stage::Boot]
            .into_iter()
            .find(|st| st.name() == s)
    }
}

/// Which generated file a TFTP request names, if any. Accepts the leading
/// `/` (or `\`) GRUB and firmware put in front.
pub fn parse(path: &str) -> Option<Request> {
    if path.len() > MAX_PATH {
        return None;
    }
    let path = path.trim_start_matches(['/', '\\']);
    let rest = path.strip_prefix(DIR)?.strip_prefix('/')?;
    if rest == "grub.cfg" {
        return Some(Request::Entry);
    }
    if let Some(mac) = rest
        .strip_prefix("machine/")
        .and_then(|m| m.strip_suffix(".cfg"))
    {
        return mac.parse().ok().map(Request::Machine);
    }
    for kind in [Claim::Serial, Claim::Asset] {
        if let Some(claim) = rest
            .strip_prefix(kind.name())
            .and_then(|r| r.strip_prefix('/'))
        {
            // The value is the rest, slashes and all: a serial may hold one.
            let (mac, value) = claim.split_once('/')?;
            return Some(Request::Claim {
                mac: mac.parse().ok()?,
                kind,
                value: value.to_string(),
            });
        }
    }
    let (mac, stage) = rest.strip_prefix("failed/")?.split_once('/')?;
    Some(Request::Failed {
        mac: mac.parse().ok()?,
        stage: Stage::parse(stage)?,
    })
}

/// A TFTP location GRUB reads: `(tftp,<server>)/<path>`.
fn tftp(server: Ipv4Addr, path: &str) -> String {
    format!("(tftp,{server})/{}", path.trim_start_matches('/'))
}

/// The entry file: every machine on the GRUB chain reads it, then its own
/// config, round after round until that config boots or exits.
pub fn entry(server: Ipv4Addr) -> String {
    format!(
        "# pxedeck: the GRUB chain's entry (generated). Each round reads this\n\
         # machine's own config; it boots, exits, or asks again.\n\
         set timeout=0\n\
         while true; do\n\
         \x20 set pxedeck_wait={HOLD_SECONDS}\n\
         \x20 source {machine}\n\
         \x20 sleep ${{pxedeck_wait}}\n\
         done\n",
        machine = tftp(server, &format!("{DIR}/machine/${{net_default_mac}}.cfg")),
    )
}

/// What a machine no wire identity names runs before its unknown-machine
/// config: each SMBIOS string GRUB can read is offered as a claim, and a
/// claim the inventory knows boots that machine (a `source` that never
/// returns). A missing string makes `smbios` fail, which skips it.
pub fn claims(server: Ipv4Addr, mac: &Mac) -> String {
    let mut out = String::from(
        "# pxedeck: no MAC or DHCP UUID names this machine; ask by its SMBIOS \
         serials and asset tag\n",
    );
    // (type, offset): system serial, baseboard serial, chassis asset tag.
    for (kind, table, offset) in [
        (Claim::Serial, 1, 7),
        (Claim::Serial, 2, 7),
        (Claim::Asset, 3, 8),
    ] {
        let path = tftp(server, &format!("{DIR}/{}/{mac}/", kind.name()));
        let _ = writeln!(
            out,
            "unset pxedeck_claim\n\
             if smbios --type {table} --get-string {offset} --set pxedeck_claim; then\n\
             \x20 if [ -n \"${{pxedeck_claim}}\" ]; then source \"{path}${{pxedeck_claim}}\"; fi\n\
             fi"
        );
    }
    out
}

/// The answer to a claim no machine holds: GRUB sources it and goes on.
pub fn no_claim(kind: Claim, why: &str) -> String {
    format!("# pxedeck: {} claim: {why}\n", kind.name())
}

/// The answer to a failure report: GRUB sources it, so it only says so.
pub fn failure_noted(stage: Stage) -> String {
    format!(
        "echo {}\n",
        quote(&format!(
            "pxedeck: {} failed; reported to pxedeck",
            stage.name()
        ))
    )
}

/// One machine's config, for the decision taken on it (the same decision
/// DHCP and the iPXE script take: [`super::decide::decide`]). A machine the
/// inventory does not name (`machine` is None) asks by its SMBIOS claims
/// first ([`claims`]).
pub fn machine(
    inv: &Inventory,
    machine: Option<&Machine>,
    decision: &BootDecision,
    mac: &Mac,
    urls: &Urls,
    server: Ipv4Addr,
) -> Script {
    let mut script = decided(inv, machine, decision, mac, urls, server);
    if machine.is_none() {
        script.text = claims(server, mac) + &script.text;
    }
    script
}

fn decided(
    inv: &Inventory,
    machine: Option<&Machine>,
    decision: &BootDecision,
    mac: &Mac,
    urls: &Urls,
    server: Ipv4Addr,
) -> Script {
    let ok = |kind, profile: Option<String>, text| Script {
        kind,
        profile,
        text,
        error: None,
    };
    match decision {
        BootDecision::Install { profile } => {
            let Some(m) = machine else {
                return error(mac, None, "no machine behind the decision".into());
            };
            let header = format!(
                "# pxedeck: {host} ({group}) boots profile {profile}\n\
                 echo {}\n",
                quote(&format!(
                    "pxedeck: {mac} is {host}, booting {profile}",
                    host = m.hostname
                )),
                host = m.hostname,
                group = m.group_label(),
            );
            let ctx = render::machine_context(m, mac, urls);
            match m.boot.as_ref().map(|b| boot_text(b, &ctx, mac, server)) {
                Some(Ok(body)) => ok(ScriptKind::Install, Some(profile.clone()), header + &body),
                Some(Err(e)) => error(mac, Some(profile.clone()), e.to_string()),
                None => error(
                    mac,
                    Some(profile.clone()),
                    format!("{} has install: true but nothing to boot", m.hostname),
                ),
            }
        }
        BootDecision::Local => {
            let who = machine.map_or_else(|| mac.to_string(), |m| m.hostname.clone());
            ok(
                ScriptKind::Local,
                machine.and_then(|m| m.profile.clone()),
                local_text(&who),
            )
        }
        BootDecision::Hold => ok(
            ScriptKind::Hold,
            None,
            format!(
                "# pxedeck: {mac} is not in the inventory; held until someone adopts it\n\
                 echo {}\n\
                 echo {}\n",
                quote(&format!("pxedeck: {mac} is not in the inventory.")),
                quote(&format!(
                    "pxedeck: adopt it in the pxedeck console; asking again every {HOLD_SECONDS} s."
                )),
            ),
        ),
        BootDecision::Discover { profile } => {
            let found = inv.profiles.get(profile);
            let rendered = match found.and_then(|p| p.boot.as_ref().map(|b| (p, b))) {
                Some((p, boot)) => {
                    let mut values = inv.root_defaults.clone().unwrap_or_else(|| p.layer.clone());
                    crate::yaml::deep_merge(&mut values, &p.layer);
                    boot_text(
                        boot,
                        &render::discovery_context(&values, mac, urls),
                        mac,
                        server,
                    )
                }
                None => Err(RenderError {
                    what: format!("discovery profile {profile}"),
                    message: "no such profile, or it has no boot section".into(),
                }),
            };
            match rendered {
                Ok(body) => ok(
                    ScriptKind::Discover,
                    Some(profile.clone()),
                    format!(
                        "# pxedeck: unknown machine {mac}, discovery profile {profile}\n\
                         echo {}\n{body}",
                        quote(&format!(
                            "pxedeck: {mac} is not in the inventory, booting {profile}"
                        ))
                    ),
                ),
                Err(e) => error(mac, Some(profile.clone()), e.to_string()),
            }
        }
        BootDecision::Ignore | BootDecision::NotPxe => ok(
            ScriptKind::Local,
            None,
            format!(
                "echo {}\nexit\n",
                quote("pxedeck: this machine is not served; returning to the firmware")
            ),
        ),
    }
}

fn local_text(who: &str) -> String {
    // GRUB has no sanboot: `exit` hands the machine back to the firmware,
    // which tries its next boot option (the disk).
    format!(
        "# pxedeck: {who} boots its local disk\necho {}\nexit\n",
        quote(&format!("pxedeck: {who}: local disk"))
    )
}

/// A config that says why the machine cannot boot and asks again later.
fn error(mac: &Mac, profile: Option<String>, reason: String) -> Script {
    let text = format!(
        "# pxedeck: cannot build a GRUB config for {mac}\n\
         echo {}\n\
         echo {}\n\
         set pxedeck_wait={ERROR_RETRY_SECONDS}\n",
        quote(&format!("pxedeck: cannot boot {mac}: {reason}")),
        quote(&format!(
            "pxedeck: fix the inventory; asking again in {ERROR_RETRY_SECONDS} s."
        )),
    );
    Script {
        kind: ScriptKind::Error,
        profile,
        text,
        error: Some(reason),
    }
}

/// The body that boots a spec, after the header lines.
fn boot_text(
    spec: &BootSpec,
    ctx: &minijinja::Value,
    mac: &Mac,
    server: Ipv4Addr,
) -> Result<String, RenderError> {
    let r = |what: &str, src: &str| render::render(what, src, ctx);
    match spec {
        BootSpec::Kernel {
            kernel,
            initrds,
            cmdline,
        } => {
            let file = |what: &str, path: &str| -> Result<String, RenderError> {
                if path.contains("://") {
                    return Err(RenderError {
                        what: what.into(),
                        message: format!(
                            "{path} is a URL: the signed GRUB has no HTTP, so the file must \
                             be under the boot root (it is fetched over TFTP)"
                        ),
                    });
                }
                Ok(quote(&tftp(server, path)))
            };
            let kernel = file("boot.kernel", &r("boot.kernel", kernel)?)?;
            let initrds = initrds
                .iter()
                .map(|i| file("boot.initrd", &r("boot.initrd", i)?))
                .collect::<Result<Vec<_>, _>>()?;
            let args: Vec<String> = kernel_args(&render::one_line(&r("boot.cmdline", cmdline)?))
                .iter()
                .map(|a| quote(a))
                .collect();
            let mut out = String::new();
            let _ = write!(
                out,
                "set pxedeck_failed=kernel\n\
                 if linux {kernel}{sep}{args}; then\n",
                sep = if args.is_empty() { "" } else { " " },
                args = args.join(" "),
            );
            if initrds.is_empty() {
                out.push_str("  set pxedeck_failed=boot\n  boot\n");
            } else {
                let _ = write!(
                    out,
                    "  set pxedeck_failed=initrd\n\
                     \x20 if initrd {}; then\n\
                     \x20   set pxedeck_failed=boot\n\
                     \x20   boot\n\
                     \x20 fi\n",
                    initrds.join(" ")
                );
            }
            let _ = write!(
                out,
                "fi\n\
                 echo \"pxedeck: the ${{pxedeck_failed}} step failed; asking again in \
                 {ERROR_RETRY_SECONDS} s\"\n\
                 source {report}/${{pxedeck_failed}}\n\
                 set pxedeck_wait={ERROR_RETRY_SECONDS}\n",
                report = tftp(server, &format!("{DIR}/failed/{mac}")),
            );
            Ok(out)
        }
        BootSpec::Script(_) => Err(RenderError {
            what: "boot.script".into(),
            message: "a raw iPXE script cannot run on the GRUB chain (loader: grub); \
                      use boot.kernel"
                .into(),
        }),
        BootSpec::Chain(_) => Err(RenderError {
            what: "boot.chain".into(),
            message: "the GRUB chain cannot chain to a URL (loader: grub); use boot.kernel".into(),
        }),
        BootSpec::Local { .. } => Ok(local_text(&mac.to_string())),
    }
}

/// Splits a kernel command line as the kernel does: at blanks outside
/// double quotes, the quotes removed. GRUB joins its arguments again and
/// puts double quotes around any that hold a blank, so a `key="a b"` comes
/// out as `"key=a b"`, which the kernel reads as the same parameter (GRUB
/// would escape a literal quote with a backslash, which the kernel would
/// keep).
fn kernel_args(cmdline: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
                any = false;
            }
            c => current.push(c),
        }
    }
    if any || !current.is_empty() {
        args.push(current);
    }
    args
}

/// One GRUB word: single quotes, in which GRUB expands nothing; a quote
/// inside ends the quoting, is escaped, and starts it again. Control
/// characters (which GRUB would take as line ends) become blanks.
fn quote(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("'{}'", clean.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests;
