//! Typed views of machine and profile files, extracted from merged values.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::bmc::BmcSpec;
use crate::boot::arch::Firmware;
use crate::boot::decide::Chain;
use crate::boot::identity::Facts;
use crate::dhcp::options::OperatorOption;
use crate::ident::{Mac, Uuid};
use crate::yaml::{FileId, Node, Origin, Value};

/// One machine: a `<hostname>.yaml` file with its effective values.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The file stem.
    pub hostname: String,
    /// The folder below the inventory root (`k8s-prod`, `dc1/rack3`), or ""
    /// for machines at the root.
    pub group: String,
    pub file: FileId,
    pub macs: Vec<Mac>,
    pub uuid: Option<Uuid>,
    pub serial: Option<String>,
    /// Asset tag (SMBIOS type 3), for machines known before they boot.
    pub asset: Option<String>,
    /// What the machine reported about its hardware when it was adopted
    /// (`facts:`), for people; pxedeck never decides on it.
    pub facts: Facts,
    pub ip: Option<Ipv4Addr>,
    pub profile: Option<String>,
    /// Whether pxedeck may boot the profile's installer. Absent means false:
    /// nothing is reimaged unless someone asked for it.
    pub install: bool,
    /// Firmware override for machines whose option 93 lies.
    pub arch: Option<Firmware>,
    /// The boot chain after the firmware (`loader: ipxe | grub`; `grub` when
    /// `secure_boot: true`).
    pub chain: Chain,
    /// The machine boots with Secure Boot on (`secure_boot: true`): it must
    /// take the signed shim → GRUB chain.
    pub secure_boot: bool,
    /// What to boot when `install` is true (from the merged `boot:` map).
    pub boot: Option<BootSpec>,
    /// Installer configs served to this machine, by name.
    pub configs: BTreeMap<String, ConfigTemplate>,
    /// Operator-defined DHCP options (`dhcp_options:`, merged from the
    /// group's `_defaults.yaml` under the machine file).
    pub dhcp_options: Vec<OperatorOption>,
    /// Its BMC, when the machine or its group names one (`bmc:`).
    pub bmc: Option<BmcSpec>,
    /// For installers that never call back (`done_on_config`): serving
    /// this config counts as the done callback.
    pub done_on_config: Option<String>,
    /// For installers that never call back and fetch no config
    /// (`done_on_next_boot`): once the installer was served, the machine's
    /// next request for its boot script counts as the done callback, and
    /// it is served its local disk.
    pub done_on_next_boot: bool,
    /// Every effective value: defaults chain → profile → machine file.
    pub values: Node,
}

impl Machine {
    /// The group as shown to people: the root group is `/`.
    pub fn group_label(&self) -> &str {
        if self.group.is_empty() {
            "/"
        } else {
            &self.group
        }
    }
}

/// A named boot profile from `_profiles/<name>.yaml`. Its file is one layer
/// of every machine that names it.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub file: FileId,
    pub description: Option<String>,
    /// What the profile boots on its own (used for unknown machines under
    /// the `discover` policy, which have no machine file to merge).
    pub boot: Option<BootSpec>,
    pub layer: Node,
}

/// What a profile boots. Strings are minijinja templates over the machine's
/// effective values; paths are under the boot root unless absolute URLs.
#[derive(Debug, Clone, PartialEq)]
pub enum BootSpec {
    Kernel {
        kernel: String,
        initrds: Vec<String>,
        cmdline: String,
    },
    /// A raw iPXE script.
    Script(String),
    /// Chain to another URL (iPXE fetches it).
    Chain(String),
    /// Boot the local disk: iPXE `exit`, or `sanboot` of drive 0x80.
    Local { sanboot: bool },
}

impl std::fmt::Display for BootSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootSpec::Kernel {
                kernel,
                initrds,
                cmdline,
            } => {
                write!(f, "kernel {kernel}")?;
                for i in initrds {
                    write!(f, " + initrd {i}")?;
                }
                if !cmdline.is_empty() {
                    write!(f, " with cmdline {cmdline:?}")?;
                }
                Ok(())
            }
            BootSpec::Script(_) => f.write_str("a raw iPXE script"),
            BootSpec::Chain(url) => write!(f, "chain {url}"),
            BootSpec::Local { sanboot: false } => f.write_str("local disk (iPXE exit)"),
            BootSpec::Local { sanboot: true } => f.write_str("local disk (sanboot drive 0x80)"),
        }
    }
}

/// An installer config: inline template text or a file under `_templates/`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigTemplate {
    Inline { text: String, origin: Origin },
    File { path: String, origin: Origin },
}

/// A field error found while extracting typed values.
pub(super) struct FieldError {
    pub origin: Origin,
    pub message: String,
}

fn field_err(node: &Node, message: impl Into<String>) -> FieldError {
    FieldError {
        origin: node.origin,
        message: message.into(),
    }
}

/// The `facts:` map: at most [`MAX_FACTS`](crate::boot::identity::MAX_FACTS)
/// scalars of at most [`MAX_VALUE`](crate::boot::identity::MAX_VALUE)
/// printable bytes, as the HTTP side bounds what it is told.
fn facts(node: &Node) -> Result<Facts, FieldError> {
    use crate::boot::identity::{MAX_FACTS, MAX_VALUE};
    let Value::Map(entries) = &node.value else {
        return Err(field_err(node, "facts must be a map of name: value"));
    };
    if entries.len() > MAX_FACTS {
        return Err(field_err(
            node,
            format!("facts has {} entries; at most {MAX_FACTS}", entries.len()),
        ));
    }
    let mut out = Facts::default();
    for e in entries {
        let text = match &e.node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(field_err(
                    &e.node,
                    format!("facts.{} must be a string", e.key),
                ));
            }
        };
        if !out.insert(&e.key, &text) && !text.trim().is_empty() {
            return Err(field_err(
                &e.node,
                format!(
                    "facts.{} must be printable ASCII of at most {MAX_VALUE} bytes",
                    e.key
                ),
            ));
        }
    }
    Ok(out)
}

/// A serial number or asset tag: what iPXE reports (printable ASCII, at
/// most [`MAX_VALUE`](crate::boot::identity::MAX_VALUE) bytes) and able to
/// tell one machine from another (no `To be filled by O.E.M.`).
fn tag(node: &Node, what: &str, s: &str) -> Result<String, FieldError> {
    use crate::boot::identity::{MAX_VALUE, meaningful};
    let s = s.trim();
    if s.len() > MAX_VALUE || !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(field_err(
            node,
            format!("{what} must be printable ASCII of at most {MAX_VALUE} bytes"),
        ));
    }
    if !meaningful(s) {
        return Err(field_err(
            node,
            format!(
                "{what} {s:?} is a firmware placeholder, not one machine's: \
                 many boards report it"
            ),
        ));
    }
    Ok(s.to_string())
}

fn string(node: &Node, what: &str) -> Result<String, FieldError> {
    match &node.value {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(_) | Value::Float(_) => Err(field_err(
            node,
            format!("{what} must be a string: quote it so leading zeros and digits survive"),
        )),
        other => Err(field_err(
            node,
            format!("{what} must be a string, not {}", other.kind()),
        )),
    }
}

fn string_or_list(node: &Node, what: &str) -> Result<Vec<(String, Origin)>, FieldError> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .map(|n| string(n, what).map(|s| (s, n.origin)))
            .collect(),
        _ => string(node, what).map(|s| vec![(s, node.origin)]),
    }
}

/// Reads the identity and boot fields of a machine's effective values.
/// Collects every problem rather than stopping at the first.
pub(super) fn extract_machine(
    hostname: String,
    group: String,
    file: FileId,
    values: Node,
    errors: &mut Vec<FieldError>,
) -> Machine {
    let mut m = Machine {
        hostname,
        group,
        file,
        macs: Vec::new(),
        uuid: None,
        serial: None,
        asset: None,
        facts: Facts::default(),
        ip: None,
        profile: None,
        install: false,
        arch: None,
        chain: Chain::Ipxe,
        secure_boot: false,
        boot: None,
        configs: BTreeMap::new(),
        dhcp_options: Vec::new(),
        bmc: None,
        done_on_config: None,
        done_on_next_boot: false,
        values: Node::empty_map(Origin { file, line: 1 }),
    };
    let mut run = |r: Result<(), FieldError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    if let Some(n) = values.get("mac") {
        run((|| {
            for (text, origin) in string_or_list(n, "mac")? {
                let mac = text.parse::<Mac>().map_err(|e| FieldError {
                    origin,
                    message: e.to_string(),
                })?;
                if m.macs.contains(&mac) {
                    return Err(FieldError {
                        origin,
                        message: format!("MAC {mac} is listed twice"),
                    });
                }
                m.macs.push(mac);
            }
            Ok(())
        })());
    }
    if let Some(n) = values.get("uuid") {
        run(string(n, "uuid").and_then(|s| {
            s.parse::<Uuid>()
                .map(|u| m.uuid = Some(u))
                .map_err(|e| field_err(n, e.to_string()))
        }));
    }
    if let Some(n) = values.get("serial") {
        run(string(n, "serial").and_then(|s| tag(n, "serial", &s).map(|s| m.serial = Some(s))));
    }
    if let Some(n) = values.get("asset") {
        run(string(n, "asset").and_then(|s| tag(n, "asset", &s).map(|s| m.asset = Some(s))));
    }
    if let Some(n) = values.get("ip") {
        run(string(n, "ip").and_then(|s| {
            s.parse::<Ipv4Addr>()
                .map(|ip| m.ip = Some(ip))
                .map_err(|_| field_err(n, format!("ip {s:?} is not an IPv4 address")))
        }));
    }
    if let Some(n) = values.get("profile") {
        run(string(n, "profile").map(|s| m.profile = Some(s)));
    }
    if let Some(n) = values.get("install") {
        run(match n.value {
            Value::Bool(b) => {
                m.install = b;
                Ok(())
            }
            ref other => Err(field_err(
                n,
                format!("install must be true or false, not {}", other.kind()),
            )),
        });
    }
    if let Some(n) = values.get("arch") {
        run(string(n, "arch").and_then(|s| {
            s.parse::<Firmware>()
                .map(|f| m.arch = Some(f))
                .map_err(|e| field_err(n, e))
        }));
    }
    if let Some(n) = values.get("secure_boot") {
        run(match n.value {
            Value::Bool(b) => {
                m.secure_boot = b;
                Ok(())
            }
            ref other => Err(field_err(
                n,
                format!("secure_boot must be true or false, not {}", other.kind()),
            )),
        });
    }
    let loader = values.get("loader");
    if let Some(n) = loader {
        run(string(n, "loader").and_then(|s| {
            s.parse::<Chain>()
                .map(|c| m.chain = c)
                .map_err(|e| field_err(n, e))
        }));
    }
    if m.secure_boot {
        match loader {
            Some(n) if m.chain == Chain::Ipxe => run(Err(field_err(
                n,
                "secure_boot: true needs loader: grub (Debian's iPXE is unsigned; \
                 Secure Boot refuses it)",
            ))),
            _ => m.chain = Chain::Grub,
        }
    }
    if let Some(n) = values.get("boot") {
        run(boot_spec(n).map(|b| m.boot = Some(b)));
    }
    if let Some(n) = values.get("configs") {
        run(configs(n).map(|c| m.configs = c));
    }
    if let Some(n) = values.get("facts") {
        run(facts(n).map(|f| m.facts = f));
    }
    if let Some(n) = values.get("done_on_next_boot") {
        run(match n.value {
            Value::Bool(b) => {
                m.done_on_next_boot = b;
                Ok(())
            }
            ref other => Err(field_err(
                n,
                format!(
                    "done_on_next_boot must be true or false, not {}",
                    other.kind()
                ),
            )),
        });
    }
    if let Some(n) = values.get("done_on_config") {
        run(string(n, "done_on_config").and_then(|name| {
            if m.configs.contains_key(&name) {
                m.done_on_config = Some(name);
                Ok(())
            } else {
                let known: Vec<&str> = m.configs.keys().map(String::as_str).collect();
                Err(field_err(
                    n,
                    format!(
                        "done_on_config names {name:?}, which is not one of its configs ({})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ))
            }
        }));
    }
    if let Some(n) = values.get("dhcp_options") {
        match crate::dhcp::options::parse(n) {
            Ok(o) => m.dhcp_options = o,
            Err(problems) => errors.extend(problems.into_iter().map(|p| FieldError {
                origin: p.origin,
                message: format!("dhcp_options: {}", p.message),
            })),
        }
    }
    if let Some(e) = values.entry("bmc") {
        let at = Origin {
            line: e.key_line,
            ..e.node.origin
        };
        match crate::bmc::spec::parse(&e.node, at) {
            Ok(spec) => m.bmc = spec,
            Err(problems) => errors.extend(problems.into_iter().map(|p| FieldError {
                origin: p.origin,
                message: p.message,
            })),
        }
    }
    if m.macs.is_empty() && m.uuid.is_none() && m.serial.is_none() && m.asset.is_none() {
        errors.push(FieldError {
            origin: Origin { file, line: 1 },
            message: "machine has no identity: set mac, uuid or serial (or an asset tag: asset)"
                .into(),
        });
    }
    if m.install && m.boot.is_none() {
        let at = values.get("install").unwrap_or(&values);
        errors.push(field_err(
            at,
            match &m.profile {
                Some(p) => format!("install is true but profile `{p}` has no boot section"),
                None => "install is true but the machine has no profile".into(),
            },
        ));
    }
    m.values = values;
    m
}

const BOOT_KEYS: [&str; 6] = ["kernel", "initrd", "cmdline", "script", "chain", "local"];

/// Reads a `boot:` map: exactly one of kernel (+ initrd, cmdline), script,
/// chain or local.
pub(super) fn boot_spec(node: &Node) -> Result<BootSpec, FieldError> {
    let entries = node.as_map().ok_or_else(|| {
        field_err(
            node,
            "boot must be a map with kernel, script, chain or local",
        )
    })?;
    if let Some(e) = entries
        .iter()
        .find(|e| !BOOT_KEYS.contains(&e.key.as_str()))
    {
        return Err(FieldError {
            origin: Origin {
                line: e.key_line,
                ..e.node.origin
            },
            message: format!(
                "unknown boot key `{}`, expected one of {}",
                e.key,
                BOOT_KEYS.join(", ")
            ),
        });
    }
    let kinds: Vec<&str> = ["kernel", "script", "chain", "local"]
        .into_iter()
        .filter(|k| node.get(k).is_some())
        .collect();
    match kinds.as_slice() {
        ["kernel"] => Ok(BootSpec::Kernel {
            kernel: string(node.get("kernel").unwrap_or(node), "boot.kernel")?,
            initrds: match node.get("initrd") {
                Some(n) => string_or_list(n, "boot.initrd")?
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect(),
                None => Vec::new(),
            },
            cmdline: match node.get("cmdline") {
                Some(n) => string(n, "boot.cmdline")?,
                None => String::new(),
            },
        }),
        [other] if node.get("initrd").or(node.get("cmdline")).is_some() => Err(field_err(
            node,
            format!("boot.initrd and boot.cmdline go with boot.kernel, not boot.{other}"),
        )),
        ["script"] => {
            string(node.get("script").unwrap_or(node), "boot.script").map(BootSpec::Script)
        }
        ["chain"] => string(node.get("chain").unwrap_or(node), "boot.chain").map(BootSpec::Chain),
        ["local"] => {
            let n = node.get("local").unwrap_or(node);
            match &n.value {
                Value::Bool(true) => Ok(BootSpec::Local { sanboot: false }),
                Value::Str(s) if s == "exit" => Ok(BootSpec::Local { sanboot: false }),
                Value::Str(s) if s == "sanboot" => Ok(BootSpec::Local { sanboot: true }),
                _ => Err(field_err(n, "boot.local must be true, `exit` or `sanboot`")),
            }
        }
        [] => Err(field_err(
            node,
            "boot needs one of kernel, script, chain or local",
        )),
        many => Err(field_err(
            node,
            format!("boot has {}: choose exactly one", many.join(" and ")),
        )),
    }
}

/// Reads a `configs:` map: name → inline template text or `{template: path}`.
fn configs(node: &Node) -> Result<BTreeMap<String, ConfigTemplate>, FieldError> {
    let entries = node
        .as_map()
        .ok_or_else(|| field_err(node, "configs must be a map of name → template"))?;
    let mut out = BTreeMap::new();
    for e in entries {
        if !e
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(field_err(
                &e.node,
                format!(
                    "config name `{}` may only hold letters, digits, - _ .",
                    e.key
                ),
            ));
        }
        let t = match &e.node.value {
            Value::Str(text) => ConfigTemplate::Inline {
                text: text.clone(),
                origin: e.node.origin,
            },
            Value::Map(_) => match e.node.get("template") {
                Some(p) => ConfigTemplate::File {
                    path: string(p, "template")?,
                    origin: p.origin,
                },
                None => {
                    return Err(field_err(
                        &e.node,
                        "a config is template text or {template: <file under _templates/>}",
                    ));
                }
            },
            _ => {
                return Err(field_err(
                    &e.node,
                    "a config is template text or {template: <file under _templates/>}",
                ));
            }
        };
        out.insert(e.key.clone(), t);
    }
    Ok(out)
}
