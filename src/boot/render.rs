//! Rendering what a machine is served: its iPXE script and its installer
//! configs, from the inventory snapshot, with minijinja.
//!
//! Scripts are assembled here in Rust (the control flow: retries, the hold
//! loop, errors); only the profile's own strings (kernel, initrd, cmdline,
//! raw scripts, configs) are templates. Undefined variables are errors, so a
//! typo in a profile gives an error script that says why, never a script with
//! a hole in its command line.

use std::fmt::Write as _;

use minijinja::{Environment, UndefinedBehavior, Value};

use super::decide::SCRIPT_PATH;
use crate::boot::{BootDecision, ScriptKind};
use crate::capability::{CONFIG_SLOT, DONE_SLOT};
use crate::ident::Mac;
use crate::inventory::{BootSpec, ConfigTemplate, Inventory, Machine};
use crate::yaml::{self, Node};

/// Fetch attempts per file before the script gives up.
pub const FETCH_TRIES: u32 = 5;
/// Seconds between re-chains of the entry script in the hold loop.
pub const HOLD_SECONDS: u32 = 5;
/// Seconds an error script waits before asking again.
pub const ERROR_RETRY_SECONDS: u32 = 30;

/// What the identify and hold scripts ask iPXE for, after `mac=`. String
/// settings are `:uristring` (they hold spaces); `uuid` and `busid` are
/// formatted by their own types (`uuid`, `hex`), which are URL-safe, and
/// must not be: `:uristring` would encode their raw bytes.
const REPORT_QUERY: &str = "&uuid=${uuid}&serial=${serial:uristring}\
     &board-serial=${board-serial:uristring}&asset=${asset:uristring}\
     &manufacturer=${manufacturer:uristring}&product=${product:uristring}\
     &chip=${netX/chip:uristring}&busid=${netX/busid}\
     &platform=${platform:uristring}&arch=${buildarch:uristring}";

/// The URLs a machine's templates and scripts point at.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `http://<ip>[:port]`, no trailing slash.
    pub base: String,
}

impl Urls {
    pub fn new(base: impl Into<String>) -> Urls {
        Urls { base: base.into() }
    }

    /// These URLs with the host `main` replaced by `here`, the port kept:
    /// what a machine on another segment is told. `None` when the base
    /// does not name `main` (an operator's `public_url` elsewhere), which
    /// then stands for every segment.
    pub fn on_segment(&self, main: std::net::Ipv4Addr, here: std::net::Ipv4Addr) -> Option<Urls> {
        let port = self.base.strip_prefix(&format!("http://{main}"))?;
        let whole = port.is_empty() || port.starts_with(':');
        whole.then(|| Urls::new(format!("http://{here}{port}")))
    }

    /// `text` with every whole base URL of these replaced by `other`'s:
    /// `http://10.0.0.1` never rewrites `http://10.0.0.10` or
    /// `http://10.0.0.1:81`.
    pub fn swap_into(&self, text: &str, other: &Urls) -> String {
        let (main, here) = (self.base.as_str(), other.base.as_str());
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(main) {
            let after = &rest[at + main.len()..];
            let whole = !after.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == ':');
            out.push_str(&rest[..at]);
            out.push_str(if whole { here } else { main });
            rest = after;
        }
        out.push_str(rest);
        out
    }

    /// The entry script, identified by MAC.
    pub fn entry(&self, mac: &Mac) -> String {
        format!("{}/{SCRIPT_PATH}?mac={mac}", self.base)
    }

    /// The entry script with every identity and fact iPXE knows, expanded
    /// by iPXE: what the identify and hold scripts chain to, so a machine
    /// known only by serial or asset tag is found, and its facts reach the
    /// console before anyone adopts it. `mac` is fixed when known.
    pub fn entry_reporting(&self, mac: Option<&Mac>) -> String {
        let mac = mac.map_or_else(|| "${netX/mac:hexhyp}".to_string(), Mac::to_string);
        format!("{}/{SCRIPT_PATH}?mac={mac}{REPORT_QUERY}", self.base)
    }

    /// Where the installer fetches its configs: `<config_url>/<name>`. The
    /// capability is a slot the HTTP shell fills per boot
    /// ([`crate::capability::Key::fill`]): rendered text stays cacheable
    /// and never holds a live token.
    pub fn config(&self, hostname: &str) -> String {
        format!("{}/config/{hostname}/{CONFIG_SLOT}", self.base)
    }

    /// The install-done callback (its capability a slot, as for configs).
    pub fn done(&self, hostname: &str) -> String {
        format!("{}/done/{hostname}/{DONE_SLOT}", self.base)
    }

    /// A boot file: absolute URLs pass through, paths are under the boot
    /// root.
    pub fn file(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }
}

/// A rendered iPXE script.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub kind: ScriptKind,
    pub profile: Option<String>,
    pub text: String,
    /// Why the machine got an error script.
    pub error: Option<String>,
}

/// A template failed: which one and why (the message never contains the
/// template's variables, which may be secrets).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct RenderError {
    pub what: String,
    pub message: String,
}

/// Builds the script for a machine that has been identified (by MAC, UUID
/// or serial) and decided on.
pub fn script(
    inv: &Inventory,
    machine: Option<&Machine>,
    decision: &BootDecision,
    mac: &Mac,
    urls: &Urls,
) -> Script {
    match decision {
        BootDecision::Install { profile } => {
            let Some(m) = machine else {
                return error_script(mac, urls, None, "no machine behind the decision".into());
            };
            match m.boot.as_ref().map(|b| boot_text(b, &machine_context(m, mac, urls), urls)) {
                Some(Ok(body)) => Script {
                    kind: ScriptKind::Install,
                    profile: Some(profile.clone()),
                    text: format!(
                        "#!ipxe\n# pxedeck: {host} ({group}) boots profile {profile}\n\
                         echo pxedeck: {mac} is {host}, booting {profile}\n{body}",
                        host = m.hostname,
                        group = m.group_label(),
                    ),
                    error: None,
                },
                Some(Err(e)) => error_script(mac, urls, Some(profile.clone()), e.to_string()),
                None => error_script(
                    mac,
                    urls,
                    Some(profile.clone()),
                    format!("{} has install: true but nothing to boot", m.hostname),
                ),
            }
        }
        BootDecision::Local => {
            let sanboot = matches!(
                machine.and_then(|m| m.boot.as_ref()),
                Some(BootSpec::Local { sanboot: true })
            );
            let who = machine.map_or_else(|| mac.to_string(), |m| m.hostname.clone());
            Script {
                kind: ScriptKind::Local,
                profile: machine.and_then(|m| m.profile.clone()),
                text: local_script(&who, sanboot),
                error: None,
            }
        }
        BootDecision::Hold => Script {
            kind: ScriptKind::Hold,
            profile: None,
            text: hold_script(mac, urls),
            error: None,
        },
        BootDecision::Discover { profile } => {
            let found = inv.profiles.get(profile);
            let rendered = match found.and_then(|p| p.boot.as_ref().map(|b| (p, b))) {
                Some((p, boot)) => {
                    let mut values = inv.root_defaults.clone().unwrap_or_else(|| p.layer.clone());
                    crate::yaml::deep_merge(&mut values, &p.layer);
                    boot_text(boot, &discovery_context(&values, mac, urls), urls)
                }
                None => Err(RenderError {
                    what: format!("discovery profile {profile}"),
                    message: "no such profile, or it has no boot section".into(),
                }),
            };
            match rendered {
                Ok(body) => Script {
                    kind: ScriptKind::Discover,
                    profile: Some(profile.clone()),
                    text: format!(
                        "#!ipxe\n# pxedeck: unknown machine {mac}, discovery profile {profile}\n\
                         echo pxedeck: {mac} is not in the inventory, booting {profile}\n{body}"
                    ),
                    error: None,
                },
                Err(e) => error_script(mac, urls, Some(profile.clone()), e.to_string()),
            }
        }
        // The DHCP side gives these no boot file; an iPXE that asks anyway
        // (a stale chain, a curious operator) gets sent back to its firmware.
        BootDecision::Ignore | BootDecision::NotPxe => Script {
            kind: ScriptKind::Local,
            profile: None,
            text: "#!ipxe\necho pxedeck: this machine is not served; returning to the firmware\nexit\n"
                .into(),
            error: None,
        },
    }
}

/// The script for a request that names no MAC (iPXE fetching the URL DHCP
/// gave it, from an address pxedeck did not lease): it asks again with
/// everything iPXE knows about the machine.
pub fn identify_script(urls: &Urls) -> String {
    format!(
        "#!ipxe\nchain --replace --autofree {} || shell\n",
        urls.entry_reporting(None)
    )
}

fn local_script(who: &str, sanboot: bool) -> String {
    let action = if sanboot {
        "sanboot --no-describe --drive 0x80"
    } else {
        "exit"
    };
    format!(
        "#!ipxe\n# pxedeck: {who} boots its local disk\necho pxedeck: {who}: local disk\n{action}\n"
    )
}

fn hold_script(mac: &Mac, urls: &Urls) -> String {
    format!(
        "#!ipxe\n\
         # pxedeck: {mac} is not in the inventory; held until someone adopts it\n\
         echo pxedeck: {mac} is not in the inventory.\n\
         echo pxedeck: adopt it in the pxedeck console; asking again every {HOLD_SECONDS} s.\n\
         :wait\n\
         sleep {HOLD_SECONDS}\n\
         chain --replace --autofree {entry} || goto wait\n",
        entry = urls.entry_reporting(Some(mac))
    )
}

/// A script that prints why the machine cannot boot and asks again later,
/// so fixing the inventory heals it without a trip to the rack.
pub fn error_script(mac: &Mac, urls: &Urls, profile: Option<String>, reason: String) -> Script {
    let text = format!(
        "#!ipxe\n\
         # pxedeck: cannot build a boot script for {mac}\n\
         echo pxedeck: cannot boot {mac}: {why}\n\
         echo pxedeck: fix the inventory; asking again in {ERROR_RETRY_SECONDS} s (Ctrl-C for a shell).\n\
         :wait\n\
         sleep {ERROR_RETRY_SECONDS} || shell\n\
         chain --replace --autofree {entry} || goto wait\n",
        why = ipxe_safe(&reason),
        entry = urls.entry(mac)
    );
    Script {
        kind: ScriptKind::Error,
        profile,
        text,
        error: Some(reason),
    }
}

/// Text that iPXE prints as is: one line, printable ASCII, no `${`
/// expansions.
fn ipxe_safe(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .collect();
    line.replace("${", "$ {")
}

/// The script body for a boot spec (after the header lines).
fn boot_text(spec: &BootSpec, ctx: &Value, urls: &Urls) -> Result<String, RenderError> {
    let r = |what: &str, src: &str| render(what, src, ctx);
    match spec {
        BootSpec::Kernel {
            kernel,
            initrds,
            cmdline,
        } => {
            let kernel = r("boot.kernel", kernel)?;
            let initrds = initrds
                .iter()
                .map(|i| r("boot.initrd", i))
                .collect::<Result<Vec<_>, _>>()?;
            let cmdline = one_line(&r("boot.cmdline", cmdline)?);
            let file = |p: &str| urls.file(p);
            let mut args = cmdline;
            for n in 0..initrds.len() {
                // UEFI kernels find their initrds by name; BIOS ignores it.
                let _ = write!(args, " initrd=initrd{n}");
            }
            let mut fetches = vec![format!(
                "kernel --name kernel {} {}",
                file(&kernel),
                args.trim()
            )];
            for (n, i) in initrds.iter().enumerate() {
                fetches.push(format!("initrd --name initrd{n} {}", file(i)));
            }
            let mut out = String::from("imgfree\n");
            for (n, cmd) in fetches.iter().enumerate() {
                let _ = write!(
                    out,
                    "set tries:int32 0\n\
                     :fetch{n}\n\
                     {cmd} && goto fetched{n} ||\n\
                     inc tries\n\
                     iseq ${{tries}} {FETCH_TRIES} && goto failed ||\n\
                     echo pxedeck: fetch failed, retrying in 3 s\n\
                     sleep 3\n\
                     goto fetch{n}\n\
                     :fetched{n}\n"
                );
            }
            out.push_str(
                "boot || goto failed\n\
                 :failed\n\
                 echo pxedeck: boot failed; dropping to the iPXE shell\n\
                 shell\n",
            );
            Ok(out)
        }
        BootSpec::Script(src) => {
            let text = r("boot.script", src)?;
            let body = text
                .strip_prefix("#!ipxe")
                .map_or(text.as_str(), |rest| rest.trim_start_matches(['\r', '\n']));
            let mut body = body.to_string();
            if !body.ends_with('\n') {
                body.push('\n');
            }
            Ok(body)
        }
        BootSpec::Chain(url) => {
            let url = r("boot.chain", url)?;
            Ok(format!(
                "chain --replace --autofree {} || shell\n",
                one_line(&url)
            ))
        }
        BootSpec::Local { sanboot } => Ok(if *sanboot {
            "sanboot --no-describe --drive 0x80\n".into()
        } else {
            "exit\n".into()
        }),
    }
}

pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default syntax with keep_trailing_newline is valid"),
    );
    env
}

pub(super) fn render(what: &str, source: &str, ctx: &Value) -> Result<String, RenderError> {
    // Most boot strings are plain paths: no template work for them.
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return Ok(source.to_string());
    }
    // One environment for the process: building one registers every
    // filter and test, which costs more than rendering a command line.
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(environment)
        .render_str(source, ctx)
        .map_err(|e| RenderError {
            what: what.to_string(),
            message: describe(&e),
        })
}

/// A minijinja error as one line without the template source (which could
/// hold secrets once rendered).
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.kind().to_string();
    if let Some(detail) = e.detail() {
        let _ = write!(text, ": {detail}");
    }
    if let Some(line) = e.line() {
        let _ = write!(text, " (template line {line})");
    }
    text
}

/// A YAML value as a template value.
fn value(node: &Node) -> Value {
    match &node.value {
        yaml::Value::Null => Value::from(()),
        yaml::Value::Bool(b) => Value::from(*b),
        yaml::Value::Int(i) => Value::from(*i),
        yaml::Value::Float(f) => Value::from(*f),
        yaml::Value::Str(s) => Value::from(s.as_str()),
        yaml::Value::Seq(items) => Value::from(items.iter().map(value).collect::<Vec<_>>()),
        yaml::Value::Map(entries) => Value::from(
            entries
                .iter()
                .map(|e| (e.key.clone(), value(&e.node)))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
    }
}

fn with_standard(values: &Node, extra: Vec<(&str, Value)>) -> Value {
    let mut map: std::collections::BTreeMap<String, Value> = match &values.value {
        yaml::Value::Map(entries) => entries
            .iter()
            .map(|e| (e.key.clone(), value(&e.node)))
            .collect(),
        _ => Default::default(),
    };
    for (k, v) in extra {
        map.insert(k.to_string(), v);
    }
    Value::from(map)
}

/// The context of a machine's templates: its effective values, plus
/// `hostname`, `group`, `mac`, `ip` and the URLs.
pub fn machine_context(m: &Machine, mac: &Mac, urls: &Urls) -> Value {
    with_standard(
        &m.values,
        vec![
            ("hostname", Value::from(m.hostname.as_str())),
            ("group", Value::from(m.group.as_str())),
            ("mac", Value::from(mac.to_string())),
            (
                "ip",
                m.ip.map_or(Value::from(()), |ip| Value::from(ip.to_string())),
            ),
            ("base_url", Value::from(urls.base.as_str())),
            ("config_url", Value::from(urls.config(&m.hostname))),
            ("done_url", Value::from(urls.done(&m.hostname))),
        ],
    )
}

pub(super) fn discovery_context(layer: &Node, mac: &Mac, urls: &Urls) -> Value {
    let name = format!("unknown-{}", mac.to_string().replace(':', ""));
    with_standard(
        layer,
        vec![
            ("hostname", Value::from(name)),
            ("group", Value::from("")),
            ("mac", Value::from(mac.to_string())),
            ("ip", Value::from(())),
            ("base_url", Value::from(urls.base.as_str())),
            ("config_url", Value::from(format!("{}/config", urls.base))),
            ("done_url", Value::from(format!("{}/done", urls.base))),
        ],
    )
}

/// How an installer config is served.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedConfig {
    pub text: String,
    pub content_type: &'static str,
}

/// Renders installer config `name` for a machine. Ignition configs (`.ign`,
/// `.json`) must come out as valid JSON.
pub fn config(
    inv: &Inventory,
    m: &Machine,
    name: &str,
    urls: &Urls,
) -> Option<Result<RenderedConfig, RenderError>> {
    let template = m.configs.get(name)?;
    let mac = m.macs.first().copied().unwrap_or(Mac([0; 6]));
    let ctx = machine_context(m, &mac, urls);
    let what = format!("config {name} of {}", m.hostname);
    let source = match template {
        ConfigTemplate::Inline { text, .. } => text.as_str(),
        ConfigTemplate::File { path, .. } => match inv.templates.get(path) {
            Some(text) => text.as_str(),
            None => {
                return Some(Err(RenderError {
                    what,
                    message: format!("no template {path} under _templates/"),
                }));
            }
        },
    };
    Some(render(&what, source, &ctx).and_then(|text| {
        let json = name.ends_with(".ign") || name.ends_with(".json");
        if json {
            serde_json::from_str::<serde_json::Value>(&text).map_err(|e| RenderError {
                what: what.clone(),
                message: format!("not valid JSON after rendering: {e}"),
            })?;
        }
        Ok(RenderedConfig {
            text,
            content_type: if json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            },
        })
    }))
}

/// What a machine is served, as the console's detail pane and
/// `GET /api/v1/machines/<mac>/served` show it: the decision, the script,
/// the installer configs and the effective values with their origins.
pub fn served_report(
    inv: &Inventory,
    policy: &crate::config::UnknownPolicy,
    mac: &Mac,
    urls: &Urls,
) -> String {
    let (decision, machine) = super::decide::decide(inv, policy, mac, None);
    let decided = match &decision {
        BootDecision::Install { profile } => format!("install profile {profile}"),
        BootDecision::Local => "boot the local disk".into(),
        BootDecision::Hold => "hold: wait until adopted".into(),
        BootDecision::Discover { profile } => format!("discover with profile {profile}"),
        BootDecision::Ignore => "ignore: no boot answer".into(),
        BootDecision::NotPxe => "not a PXE client".into(),
    };
    // A machine on the GRUB chain is shown its GRUB config, as served over
    // TFTP from the address in the boot URLs (always an IP literal:
    // `decide::http_base`). ARM64 without an `arch:` override is known to
    // be on that chain only once its firmware has asked.
    let grub_server = machine
        .filter(|m| m.chain == super::decide::Chain::Grub)
        .and_then(|_| {
            let host = urls.base.trim_start_matches("http://");
            host.split(':').next()?.parse::<std::net::Ipv4Addr>().ok()
        });
    let mut out = match grub_server {
        Some(server) => {
            let s = super::grub::machine(inv, machine, &decision, mac, urls, server);
            format!(
                "decision: {decided}\nchain: shim → GRUB{}\n\n── GRUB config (TFTP {}/machine/{mac}.cfg) ──\n{}",
                if machine.is_some_and(|m| m.secure_boot) {
                    ", Secure Boot expected"
                } else {
                    ""
                },
                super::grub::DIR,
                s.text
            )
        }
        None => {
            let s = script(inv, machine, &decision, mac, urls);
            format!("decision: {decided}\n\n── iPXE script ──\n{}", s.text)
        }
    };
    if let Some(m) = machine {
        if !m.configs.is_empty() {
            out.push_str("\n── installer configs ──\n");
            for name in m.configs.keys() {
                let _ = writeln!(out, "{}/{name}", urls.config(&m.hostname));
            }
        }
        let _ = write!(
            out,
            "\n── effective values ({}) ──\n{}",
            inv.file(m.file).display(),
            crate::inventory::annotated_yaml(inv, &m.values)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Urls;

    #[test]
    fn base_urls_are_swapped_only_where_whole() {
        let main = Urls::new("http://10.0.0.1");
        let text = "chain http://10.0.0.1/boot.ipxe?mac=x\nkernel http://10.0.0.10/k http://10.0.0.1:81/y http://10.0.0.1";
        assert_eq!(
            main.swap_into(text, &Urls::new("http://10.0.1.1")),
            "chain http://10.0.1.1/boot.ipxe?mac=x\nkernel http://10.0.0.10/k http://10.0.0.1:81/y http://10.0.1.1"
        );
        assert_eq!(
            Urls::new("http://10.0.0.1:8080").swap_into(
                "a http://10.0.0.1:8080/x b",
                &Urls::new("http://10.0.1.1:8080")
            ),
            "a http://10.0.1.1:8080/x b"
        );
    }

    #[test]
    fn segment_urls_keep_the_port_and_leave_other_hosts_alone() {
        let (main, here) = ("10.0.0.1".parse().unwrap(), "10.0.1.1".parse().unwrap());
        let base = |b: &str| Urls::new(b).on_segment(main, here).map(|u| u.base);
        assert_eq!(base("http://10.0.0.1").as_deref(), Some("http://10.0.1.1"));
        assert_eq!(
            base("http://10.0.0.1:8080").as_deref(),
            Some("http://10.0.1.1:8080")
        );
        assert_eq!(base("http://10.0.0.10"), None, "another host");
        assert_eq!(base("http://boot.example"), None, "a public_url elsewhere");
    }
}
