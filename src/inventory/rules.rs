//! Rules for unknown machines: `adopt.rules:` in a group's
//! `_defaults.yaml`. A rule matches a machine the inventory does not know
//! by where it is (segment, relay, option 82), what it is (MAC prefix,
//! firmware, SMBIOS vendor/product when known) and says what adopting it
//! means (group, profile, hostname pattern, install). `propose` rules only
//! pre-fill the console; `auto` rules adopt on first sight (done by the
//! shell, `crate::auto_adopt`, through the inventory writer).
//!
//! This module is pure: reading rules from YAML with file:line, matching a
//! [`Sighting`] against them (first match wins), and finding rules that
//! overlap (a warning, not a problem).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::Problem;
use crate::boot::arch::Firmware;
use crate::ident::Mac;
use crate::yaml::{FileId, Node, Origin, Value};

/// The most rules one tree may hold: matching runs for every packet of an
/// unknown machine, and a list this long is already hard to reason about.
pub const MAX_RULES: usize = 64;
/// The longest text pattern (vendor, product, circuit-id, remote-id,
/// hostname pattern) a rule may hold.
pub const MAX_PATTERN: usize = 128;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMode {
    /// The console pre-fills the adoption and marks the machine; an
    /// operator adopts (one key adopts every proposed machine).
    Propose,
    /// Adopted on first sight, through the writer, logged and committed.
    Auto,
}

impl RuleMode {
    pub fn name(self) -> &'static str {
        match self {
            RuleMode::Propose => "propose",
            RuleMode::Auto => "auto",
        }
    }
}

/// What a rule gives a machine it matches: carried with the DHCP sighting
/// to the console and the auto-adopter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHit {
    /// Where the rule is written: `k8s-dev/_defaults.yaml:12`.
    pub rule: String,
    pub mode: RuleMode,
    /// Folder below the root ("" for the root).
    pub group: String,
    pub profile: String,
    /// A hostname pattern with `{n}` (`dev-{n:02}`).
    pub hostname: String,
    /// Only ever true when the rule itself says `install: true`.
    pub install: bool,
}

/// One rule, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub origin: Origin,
    pub when: RuleMatch,
    pub hit: RuleHit,
}

/// A rule's `match:`: every criterion given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleMatch {
    /// The machine's segment (the relay's address, else the address its
    /// request arrived on) lies in this subnet.
    pub subnet: Option<Ipv4Net>,
    /// It came through a relay (giaddr) in this subnet (a plain address is
    /// a /32).
    pub relay: Option<Ipv4Net>,
    /// Option 82 sub-options as the console prints them; `*` ends a prefix.
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
    pub mac: Option<MacPrefix>,
    /// SMBIOS manufacturer and product, when known (ASCII case ignored;
    /// `*` ends a prefix). Unknown facts never match.
    pub vendor: Option<String>,
    pub product: Option<String>,
    /// Any of these firmware kinds.
    pub arch: Vec<Firmware>,
}

/// A MAC or the first bytes of one (`52:54:00:*`, the OUI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacPrefix(pub Vec<u8>);

impl MacPrefix {
    pub fn parse(text: &str) -> Result<MacPrefix, String> {
        let (body, wild) = match text.strip_suffix('*') {
            Some(b) => (b.strip_suffix([':', '-']).unwrap_or(b), true),
            None => (text, false),
        };
        let bad = || {
            format!(
                "bad MAC pattern {text:?}: whole octets, then `*` (like \"52:54:00:*\"), or a full MAC"
            )
        };
        if text.len() > 20 {
            return Err(bad());
        }
        let mut bytes = Vec::new();
        if !body.is_empty() {
            for part in body.split([':', '-']) {
                if part.len() != 2 {
                    return Err(bad());
                }
                bytes.push(u8::from_str_radix(part, 16).map_err(|_| bad())?);
            }
        }
        match (bytes.len(), wild) {
            (0, _) => Err(format!(
                "MAC pattern {text:?} matches every MAC; leave `mac:` out instead"
            )),
            (7.., _) | (6, true) => Err(bad()),
            (1..=5, false) => Err(format!(
                "MAC pattern {text:?} is not a whole MAC: end a prefix with `*`"
            )),
            _ => Ok(MacPrefix(bytes)),
        }
    }

    pub fn matches(&self, mac: &Mac) -> bool {
        mac.0.starts_with(&self.0)
    }
}

/// What is known of an unknown machine when it is seen.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    pub mac: Mac,
    pub firmware: Option<Firmware>,
    /// The relay's address, else the address its request arrived on.
    pub segment: Option<Ipv4Addr>,
    pub relay: Option<Ipv4Addr>,
    pub circuit_id: Option<&'a str>,
    pub remote_id: Option<&'a str>,
    pub vendor: Option<&'a str>,
    pub product: Option<&'a str>,
}

impl<'a> Sighting<'a> {
    /// A machine known by its MAC alone.
    pub fn of_mac(mac: Mac) -> Sighting<'a> {
        Sighting {
            mac,
            firmware: None,
            segment: None,
            relay: None,
            circuit_id: None,
            remote_id: None,
            vendor: None,
            product: None,
        }
    }
}

/// `pattern` against `text`: equal, or a prefix when it ends in `*`.
fn glob(pattern: &str, text: &str, fold_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if fold_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.strip_suffix('*') {
        Some(prefix) => text
            .get(..prefix.len())
            .is_some_and(|head| eq(head, prefix)),
        None => eq(pattern, text),
    }
}

impl RuleMatch {
    pub fn is_empty(&self) -> bool {
        *self == RuleMatch::default()
    }

    pub fn matches(&self, s: &Sighting<'_>) -> bool {
        let net = |net: &Option<Ipv4Net>, ip: Option<Ipv4Addr>| {
            net.is_none_or(|n| ip.is_some_and(|ip| n.contains(&ip)))
        };
        let text = |p: &Option<String>, t: Option<&str>, fold: bool| {
            p.as_deref()
                .is_none_or(|p| t.is_some_and(|t| glob(p, t, fold)))
        };
        net(&self.subnet, s.segment)
            && net(&self.relay, s.relay)
            && self.mac.as_ref().is_none_or(|m| m.matches(&s.mac))
            && (self.arch.is_empty() || s.firmware.is_some_and(|f| self.arch.contains(&f)))
            && text(&self.circuit_id, s.circuit_id, false)
            && text(&self.remote_id, s.remote_id, false)
            && text(&self.vendor, s.vendor, true)
            && text(&self.product, s.product, true)
    }

    /// Whether some machine could match both: each criterion that both
    /// give must be satisfiable at once.
    pub fn overlaps(&self, other: &RuleMatch) -> bool {
        fn both<T>(a: &Option<T>, b: &Option<T>, f: impl Fn(&T, &T) -> bool) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => f(a, b),
                _ => true,
            }
        }
        let nets = |a: &Ipv4Net, b: &Ipv4Net| a.contains(b) || b.contains(a);
        let texts = |fold: bool| {
            move |a: &String, b: &String| {
                let (pa, pb) = (a.strip_suffix('*'), b.strip_suffix('*'));
                match (pa, pb) {
                    (None, None) => glob(a, b, fold),
                    (Some(_), None) => glob(a, b, fold),
                    (None, Some(_)) => glob(b, a, fold),
                    (Some(x), Some(y)) => {
                        let n = x.len().min(y.len());
                        x.get(..n).zip(y.get(..n)).is_some_and(|(x, y)| {
                            if fold {
                                x.eq_ignore_ascii_case(y)
                            } else {
                                x == y
                            }
                        })
                    }
                }
            }
        };
        both(&self.subnet, &other.subnet, nets)
            && both(&self.relay, &other.relay, nets)
            && both(&self.mac, &other.mac, |a, b| {
                a.0.starts_with(&b.0) || b.0.starts_with(&a.0)
            })
            && (self.arch.is_empty()
                || other.arch.is_empty()
                || self.arch.iter().any(|f| other.arch.contains(f)))
            && both(&self.circuit_id, &other.circuit_id, texts(false))
            && both(&self.remote_id, &other.remote_id, texts(false))
            && both(&self.vendor, &other.vendor, texts(true))
            && both(&self.product, &other.product, texts(true))
    }
}

/// The first rule that matches (rules are in the tree's order).
pub fn first_match<'r>(rules: &'r [Rule], s: &Sighting<'_>) -> Option<&'r Rule> {
    rules.iter().find(|r| r.when.matches(s))
}

/// Expands `{n}`, `{n:02}`, `{n:03}`… in a hostname pattern.
pub fn expand(pattern: &str, n: usize) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("{n") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let width = after[..end]
            .strip_prefix(":0")
            .and_then(|w| w.parse::<usize>().ok())
            .unwrap_or(0)
            .min(9);
        out.push_str(&format!("{n:0width$}"));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A rule as written, before its group's defaults fill what it leaves out.
#[derive(Debug, Clone)]
pub(super) struct Draft {
    pub origin: Origin,
    pub when: RuleMatch,
    pub mode: RuleMode,
    pub group: Option<(String, Origin)>,
    pub profile: Option<(String, Origin)>,
    pub hostname: Option<(String, Origin)>,
    pub install: bool,
}

const RULE_KEYS: [&str; 6] = ["match", "mode", "group", "profile", "hostname", "install"];
const MATCH_KEYS: [&str; 8] = [
    "subnet",
    "relay",
    "circuit_id",
    "remote_id",
    "mac",
    "vendor",
    "product",
    "arch",
];

fn str_of<'n>(node: &'n Node, what: &str) -> Result<&'n str, (Origin, String)> {
    node.as_str()
        .ok_or_else(|| (node.origin, format!("{what} must be a string")))
}

fn text_pattern(node: &Node, what: &str) -> Result<String, (Origin, String)> {
    let s = str_of(node, what)?;
    let body = s.strip_suffix('*').unwrap_or(s);
    if s.is_empty() {
        return Err((
            node.origin,
            format!("{what}: an empty pattern; leave the key out"),
        ));
    }
    if s.len() > MAX_PATTERN {
        return Err((
            node.origin,
            format!("{what}: pattern longer than {MAX_PATTERN} characters"),
        ));
    }
    if body.contains('*') {
        return Err((
            node.origin,
            format!("{what}: `*` may only end a pattern (a prefix match)"),
        ));
    }
    Ok(s.to_string())
}

fn net(node: &Node, what: &str) -> Result<Ipv4Net, (Origin, String)> {
    let s = str_of(node, what)?;
    s.parse::<Ipv4Net>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<Ipv4Addr>().map(Ipv4Net::from))
        .map_err(|_| {
            (
                node.origin,
                format!("{what}: {s:?} is not an IPv4 subnet (10.0.0.0/24) or address"),
            )
        })
}

fn read_match(node: &Node) -> Result<RuleMatch, Vec<(Origin, String)>> {
    let Some(entries) = node.as_map() else {
        return Err(vec![(node.origin, "match: must be a map".into())]);
    };
    let mut m = RuleMatch::default();
    let mut errors = Vec::new();
    for e in entries {
        let n = &e.node;
        let at = |r: Result<(), (Origin, String)>, errors: &mut Vec<_>| {
            if let Err(x) = r {
                errors.push(x);
            }
        };
        let r = match e.key.as_str() {
            "subnet" => net(n, "subnet").map(|v| m.subnet = Some(v)),
            "relay" => net(n, "relay").map(|v| m.relay = Some(v)),
            "circuit_id" => text_pattern(n, "circuit_id").map(|v| m.circuit_id = Some(v)),
            "remote_id" => text_pattern(n, "remote_id").map(|v| m.remote_id = Some(v)),
            "vendor" => text_pattern(n, "vendor").map(|v| m.vendor = Some(v)),
            "product" => text_pattern(n, "product").map(|v| m.product = Some(v)),
            "mac" => str_of(n, "mac")
                .and_then(|s| MacPrefix::parse(s).map_err(|e| (n.origin, e)))
                .map(|v| m.mac = Some(v)),
            "arch" => read_arch(n).map(|v| m.arch = v),
            other => Err((
                Origin {
                    line: e.key_line,
                    ..n.origin
                },
                format!(
                    "unknown key `{other}` in a rule's match: (known: {})",
                    MATCH_KEYS.join(", ")
                ),
            )),
        };
        at(r, &mut errors);
    }
    if errors.is_empty() && m.is_empty() {
        errors.push((
            node.origin,
            "an empty match: would take every unknown machine; say `subnet: 0.0.0.0/0` if that is meant".into(),
        ));
    }
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(errors)
    }
}

fn read_arch(node: &Node) -> Result<Vec<Firmware>, (Origin, String)> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    if items.is_empty() || items.len() > 16 {
        return Err((node.origin, "arch: one to 16 names".into()));
    }
    items
        .into_iter()
        .map(|n| str_of(n, "arch").and_then(|s| s.parse::<Firmware>().map_err(|e| (n.origin, e))))
        .collect()
}

/// Reads the `adopt.rules:` list of one `_defaults.yaml`, reporting every
/// problem where it is; a rule with a problem is left out.
pub(super) fn read_drafts(defaults: &Node, report: &mut dyn FnMut(Origin, String)) -> Vec<Draft> {
    let Some(list) = defaults.path("adopt.rules") else {
        return Vec::new();
    };
    let Value::Seq(items) = &list.value else {
        report(list.origin, "adopt.rules must be a list of rules".into());
        return Vec::new();
    };
    let mut drafts = Vec::new();
    for item in items {
        let Some(entries) = item.as_map() else {
            report(
                item.origin,
                "a rule must be a map (match:, mode:, …)".into(),
            );
            continue;
        };
        let mut ok = true;
        let mut fail = |o: Origin, m: String| {
            ok = false;
            report(o, m);
        };
        let mut d = Draft {
            origin: item.origin,
            when: RuleMatch::default(),
            mode: RuleMode::Propose,
            group: None,
            profile: None,
            hostname: None,
            install: false,
        };
        let mut matched = false;
        for e in entries {
            let n = &e.node;
            let owned = |n: &Node, what: &str| str_of(n, what).map(|s| (s.to_string(), n.origin));
            let r: Result<(), (Origin, String)> = match e.key.as_str() {
                "match" => {
                    matched = true;
                    match read_match(n) {
                        Ok(m) => {
                            d.when = m;
                            Ok(())
                        }
                        Err(errors) => {
                            for (o, m) in errors {
                                fail(o, m);
                            }
                            Ok(())
                        }
                    }
                }
                "mode" => match n.as_str() {
                    Some("propose") => {
                        d.mode = RuleMode::Propose;
                        Ok(())
                    }
                    Some("auto") => {
                        d.mode = RuleMode::Auto;
                        Ok(())
                    }
                    _ => Err((n.origin, "mode must be `propose` or `auto`".into())),
                },
                "install" => match n.value {
                    Value::Bool(b) => {
                        d.install = b;
                        Ok(())
                    }
                    _ => Err((n.origin, "install must be true or false".into())),
                },
                "group" => owned(n, "group").map(|v| d.group = Some(v)),
                "profile" => owned(n, "profile").map(|v| d.profile = Some(v)),
                "hostname" => owned(n, "hostname").map(|v| d.hostname = Some(v)),
                other => Err((
                    Origin {
                        line: e.key_line,
                        ..n.origin
                    },
                    format!(
                        "unknown key `{other}` in a rule (known: {})",
                        RULE_KEYS.join(", ")
                    ),
                )),
            };
            if let Err((o, m)) = r {
                fail(o, m);
            }
        }
        if !matched {
            fail(item.origin, "a rule needs a match:".into());
        }
        if ok {
            drafts.push(d);
        }
    }
    drafts
}

/// Checks a hostname pattern a rule gives: `{n}` in it, at most
/// [`MAX_PATTERN`] characters, and what it expands to a hostname label.
pub fn check_hostname_pattern(pattern: &str) -> Result<(), String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!(
            "hostname pattern longer than {MAX_PATTERN} characters"
        ));
    }
    if !pattern.contains("{n") {
        return Err(format!(
            "hostname pattern {pattern:?} has no {{n}}: every machine a rule takes needs its own name"
        ));
    }
    let sample = expand(pattern, 99_999);
    if !super::valid_hostname(&sample) {
        return Err(format!(
            "hostname pattern {pattern:?} does not give hostname labels ({sample:?}): letters, digits, hyphens, at most 63"
        ));
    }
    Ok(())
}

/// What resolving a draft needs from the rest of the tree.
pub(super) struct Tree<'a> {
    pub groups: &'a [String],
    pub has_profile: &'a dyn Fn(&str) -> bool,
    pub profiles: String,
    /// The merged defaults a machine of the group would inherit.
    pub group_values: &'a mut dyn FnMut(&str) -> Option<Node>,
}

/// Fills what a draft leaves out from its group's defaults (the group is
/// the rule's folder unless it names another): the profile from
/// `profile:`, the pattern from `adopt.hostname_pattern` (else
/// `<folder>-{n:02}`). `install` is never inherited: only a rule that says
/// `install: true` installs.
pub(super) fn resolve(
    d: Draft,
    folder: &str,
    label: &str,
    tree: &mut Tree<'_>,
    report: &mut dyn FnMut(Origin, String),
) -> Option<Rule> {
    let (group, group_at) = d.group.clone().unwrap_or((folder.to_string(), d.origin));
    let group = group.trim_matches('/').to_string();
    if !group.is_empty() && !tree.groups.contains(&group) {
        report(
            group_at,
            format!("unknown group `{group}`: no such folder in the inventory"),
        );
        return None;
    }
    let values = (tree.group_values)(&group);
    let inherited = |key: &str| {
        values
            .as_ref()
            .and_then(|v| v.path(key))
            .and_then(Node::as_str)
            .map(str::to_string)
    };
    let shown = if group.is_empty() { "/" } else { &group };
    let profile = match d.profile.clone() {
        Some((p, at)) if !(tree.has_profile)(&p) => {
            report(
                at,
                format!("unknown profile `{p}` (profiles: {})", tree.profiles),
            );
            return None;
        }
        Some((p, _)) => p,
        None => match inherited("profile") {
            Some(p) if (tree.has_profile)(&p) => p,
            _ => {
                report(
                    d.origin,
                    format!("the rule names no profile and group {shown} has none: add profile:"),
                );
                return None;
            }
        },
    };
    let (hostname, pattern_at) = d.hostname.clone().unwrap_or_else(|| {
        let stem = group.rsplit('/').next().filter(|s| !s.is_empty());
        let fallback = format!("{}-{{n:02}}", stem.unwrap_or("node"));
        (
            inherited("adopt.hostname_pattern").unwrap_or(fallback),
            d.origin,
        )
    });
    if let Err(e) = check_hostname_pattern(&hostname) {
        report(pattern_at, e);
        return None;
    }
    Some(Rule {
        origin: d.origin,
        when: d.when,
        hit: RuleHit {
            rule: format!("{label}:{}", d.origin.line),
            mode: d.mode,
            group,
            profile,
            hostname,
            install: d.install,
        },
    })
}

/// Every rule of a tree, with what is wrong (problems) and worth saying
/// (overlaps, warnings), each at its file and line.
pub(super) struct Found {
    pub rules: Vec<Rule>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// The `adopt.rules` of every `_defaults.yaml`, the root's first, then by
/// folder path, each file's in list order: the order they are tried in.
pub(super) fn read_all(
    defaults: &HashMap<PathBuf, FileId>,
    parsed: &HashMap<FileId, Node>,
    files: &[PathBuf],
    tree: &mut Tree<'_>,
) -> Found {
    let at = |origin: Origin, message: String| Problem {
        file: files[origin.file as usize].clone(),
        line: Some(origin.line),
        message,
    };
    let mut folders: Vec<(&PathBuf, FileId)> =
        defaults.iter().map(|(dir, id)| (dir, *id)).collect();
    folders.sort();
    let mut problems = Vec::new();
    let mut out: Vec<Rule> = Vec::new();
    for (dir, id) in folders {
        let Some(node) = parsed.get(&id) else {
            continue;
        };
        let mut report = |o: Origin, m: String| problems.push(at(o, m));
        let folder = dir.to_string_lossy().into_owned();
        let label = files[id as usize].display().to_string();
        for draft in read_drafts(node, &mut report) {
            if out.len() >= MAX_RULES {
                report(
                    draft.origin,
                    format!("more than {MAX_RULES} rules in the inventory; this one is not read"),
                );
                continue;
            }
            if let Some(rule) = resolve(draft, &folder, &label, tree, &mut report) {
                out.push(rule);
            }
        }
    }
    let warnings = overlaps(&out)
        .into_iter()
        .map(|(later, earlier)| {
            at(
                out[later].origin,
                format!(
                    "this rule overlaps the rule at {}: the first match wins, so a machine both match is taken by that one",
                    out[earlier].hit.rule
                ),
            )
        })
        .collect();
    Found {
        rules: out,
        problems,
        warnings,
    }
}

/// For each rule, the earlier rules it overlaps: `(later, earlier)` pairs
/// by index.
pub fn overlaps(rules: &[Rule]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, later) in rules.iter().enumerate() {
        if let Some(j) = rules[..i].iter().position(|r| r.when.overlaps(&later.when)) {
            out.push((i, j));
        }
    }
    out
}

#[cfg(test)]
mod tests;
