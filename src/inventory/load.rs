//! Walking, parsing, merging and validating the inventory tree.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::machine::{ConfigTemplate, FieldError, Profile, boot_spec, extract_machine};
use super::validate::{
    MAX_GROUP_DEPTH, check_hostname, check_mac, check_static_ip, check_uuid, nested_too_deep,
};
use super::{Inventory, Machine, Problem, rules};
use crate::config::Pool;
use crate::yaml::{self, FileId, Node, Origin};

/// What validation needs from outside the tree.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// DHCP pools; a static `ip:` must lie in one of their subnets. With no
    /// pools (proxy mode), IPs are not checked against subnets.
    pub pools: Vec<Pool>,
    /// The server's own address, which no machine may be given.
    pub server: Option<Ipv4Addr>,
}

/// The result of a load: everything that could be read, and every problem.
/// A caller that serves machines uses the inventory only when `problems` is
/// empty, and otherwise keeps its last good snapshot.
#[derive(Debug)]
pub struct Loaded {
    pub inventory: Inventory,
    pub problems: Vec<Problem>,
    /// Worth saying, never a reason to refuse the tree (rules that
    /// overlap: the first match wins).
    pub warnings: Vec<Problem>,
}

impl Loaded {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const DEFAULTS: &str = "_defaults.yaml";
const PROFILES_DIR: &str = "_profiles";
pub(super) const TEMPLATES_DIR: &str = "_templates";
/// The largest file read: inventory files are a few hundred bytes and
/// templates a few kilobytes; anything this big is a mistake or an attack.
pub const MAX_FILE_BYTES: u64 = 2 << 20;
/// The most files one tree may hold (machines, defaults, profiles and
/// templates together): ten times the largest site we plan for.
pub const MAX_FILES: usize = 100_000;
/// The most bytes one tree may hold, all files together.
pub const MAX_TREE_BYTES: u64 = 256 << 20;

#[derive(Default)]
struct Walk<'a> {
    /// File contents that replace (or add to) what is on disk: how the
    /// writer validates a change before it touches the tree.
    overlay: Option<&'a BTreeMap<PathBuf, String>>,
    /// Machine files to read as if they were gone (a move, an undo).
    removed: Option<&'a BTreeSet<PathBuf>>,
    files: Vec<(PathBuf, String)>,
    defaults: HashMap<PathBuf, FileId>,
    profiles: Vec<FileId>,
    templates: Vec<FileId>,
    machines: Vec<FileId>,
    groups: Vec<String>,
    problems: Vec<Problem>,
    /// Bytes read so far, against [`MAX_TREE_BYTES`].
    bytes: u64,
    /// Set once a tree-wide cap is hit: the walk stops reading.
    full: bool,
}

/// What a directory entry is, without following a symbolic link.
enum EntryKind {
    Dir,
    File,
    /// A link: followed only to a regular file inside the tree.
    Link,
    Other,
}

fn entry_kind(entry: &std::fs::DirEntry) -> EntryKind {
    match entry.file_type() {
        Ok(t) if t.is_dir() => EntryKind::Dir,
        Ok(t) if t.is_file() => EntryKind::File,
        Ok(t) if t.is_symlink() => EntryKind::Link,
        _ => EntryKind::Other,
    }
}

impl Walk<'_> {
    fn add(&mut self, rel: PathBuf, text: String) -> FileId {
        self.files.push((rel, text));
        (self.files.len() - 1) as FileId
    }

    fn dir(&mut self, root: &Path, rel: &Path, depth: usize) {
        let abs = root.join(rel);
        let mut entries: Vec<_> = match std::fs::read_dir(&abs) {
            Ok(rd) => rd.filter_map(Result::ok).collect(),
            Err(e) => {
                self.problems.push(Problem {
                    file: rel.to_path_buf(),
                    line: None,
                    message: format!("cannot read folder: {e}"),
                });
                return;
            }
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = rel.join(&name);
            if name.starts_with('.') {
                continue; // .git, editor swap files, our own temp files
            }
            let is_dir = match entry_kind(&entry) {
                EntryKind::Dir => true,
                EntryKind::File | EntryKind::Link => false,
                EntryKind::Other => continue,
            };
            if is_dir {
                if depth >= MAX_GROUP_DEPTH {
                    self.problem(&child, &nested_too_deep());
                } else if depth == 0 && name == PROFILES_DIR {
                    self.collect(root, &child, Kind::Profile, 1);
                } else if depth == 0 && name == TEMPLATES_DIR {
                    self.collect(root, &child, Kind::Template, 1);
                } else if !name.starts_with('_') {
                    self.groups.push(child.to_string_lossy().into_owned());
                    self.dir(root, &child, depth + 1);
                }
                continue;
            }
            if !is_yaml(&name) {
                continue;
            }
            if name == DEFAULTS {
                if let Some(id) = self.read(root, &child) {
                    self.defaults.insert(rel.to_path_buf(), id);
                }
            } else if !name.starts_with('_')
                && !self.removed.is_some_and(|r| r.contains(&child))
                && let Some(id) = self.read(root, &child)
            {
                self.machines.push(id);
            }
        }
    }

    /// Collects every file of a special folder (profiles, templates; only
    /// templates have subfolders).
    fn collect(&mut self, root: &Path, rel: &Path, kind: Kind, depth: usize) {
        let Ok(rd) = std::fs::read_dir(root.join(rel)) else {
            self.problem(rel, "cannot read folder");
            return;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = rel.join(&name);
            if name.starts_with('.') {
                continue;
            }
            match entry_kind(&entry) {
                EntryKind::Dir if kind == Kind::Template => {
                    if depth >= MAX_GROUP_DEPTH {
                        self.problem(&child, &nested_too_deep());
                    } else {
                        self.collect(root, &child, kind, depth + 1);
                    }
                    continue;
                }
                EntryKind::Dir | EntryKind::Other => continue,
                EntryKind::File | EntryKind::Link => {}
            }
            if kind == Kind::Profile && !is_yaml(&name) {
                continue;
            }
            if let Some(id) = self.read(root, &child) {
                match kind {
                    Kind::Profile => self.profiles.push(id),
                    Kind::Template => self.templates.push(id),
                }
            }
        }
    }

    /// Reads one file, within the caps. A symbolic link is read only when
    /// it resolves to a regular file inside the tree: a link out of the
    /// tree could serve any file the process can read, and folders are
    /// never followed through links (two links can make a loop).
    fn read(&mut self, root: &Path, rel: &Path) -> Option<FileId> {
        if self.full {
            return None;
        }
        if self.files.len() >= MAX_FILES {
            self.full = true;
            self.problem(
                rel,
                &format!("the tree holds more than {MAX_FILES} files; the rest is not read"),
            );
            return None;
        }
        if let Some(text) = self.overlay.and_then(|o| o.get(rel)) {
            return Some(self.add(rel.to_path_buf(), text.clone()));
        }
        match read_capped(root, rel) {
            Ok(text) => {
                self.bytes += text.len() as u64;
                if self.bytes > MAX_TREE_BYTES {
                    self.full = true;
                    self.problem(
                        rel,
                        &format!(
                            "the tree holds more than {} MiB; the rest is not read",
                            MAX_TREE_BYTES >> 20
                        ),
                    );
                    return None;
                }
                Some(self.add(rel.to_path_buf(), text))
            }
            Err(message) => {
                self.problem(rel, &message);
                None
            }
        }
    }

    fn problem(&mut self, rel: &Path, message: &str) {
        self.problems.push(Problem {
            file: rel.to_path_buf(),
            line: None,
            message: message.into(),
        });
    }
}

/// A file's text, refusing what is too large or links out of the tree,
/// without reading more than the cap.
fn read_capped(root: &Path, rel: &Path) -> Result<String, String> {
    use std::io::Read;
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(&path).map_err(|e| format!("cannot read link: {e}"))?;
        let inside = std::fs::canonicalize(root).is_ok_and(|r| target.starts_with(r));
        if !inside {
            return Err("links outside the inventory; not read".into());
        }
        if target.is_dir() {
            return Err("links to a folder; linked folders are not followed".into());
        }
        if !target.is_file() {
            return Err("links to something that is not a file; not read".into());
        }
    }
    let file = std::fs::File::open(&path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} MiB; pxedeck reads no file that big",
            MAX_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Profile,
    Template,
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Loads and validates the inventory under `root`.
pub fn load(root: &Path, opts: &LoadOptions) -> Loaded {
    load_with_overlay(root, opts, &BTreeMap::new())
}

/// A hash of one file's path and content.
pub(super) fn file_hash(rel: &Path, text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    rel.hash(&mut hasher);
    text.hash(&mut hasher);
    hasher.finish()
}

/// The tree's fingerprint: a sum of its files' hashes, so changing one
/// file changes it by that file's difference alone (the writer patches a
/// snapshot without loading the tree again).
pub(super) fn fingerprint_of(file_hashes: &[u64]) -> u64 {
    file_hashes.iter().fold(0, |sum, h| sum.wrapping_add(*h))
}

/// Loads as if the files in `overlay` (relative paths; machine files only
/// when new) had the given contents.
pub(super) fn load_with_overlay(
    root: &Path,
    opts: &LoadOptions,
    overlay: &BTreeMap<PathBuf, String>,
) -> Loaded {
    load_with_changes(root, opts, overlay, &BTreeSet::new())
}

/// As [`load_with_overlay`], with the machine files in `removed` read as
/// if they were deleted.
pub(super) fn load_with_changes(
    root: &Path,
    opts: &LoadOptions,
    overlay: &BTreeMap<PathBuf, String>,
    removed: &BTreeSet<PathBuf>,
) -> Loaded {
    let mut walk = Walk {
        overlay: Some(overlay),
        removed: Some(removed),
        ..Default::default()
    };
    if !root.is_dir() {
        walk.problem(
            Path::new(""),
            &format!("inventory folder {} does not exist", root.display()),
        );
    } else {
        walk.dir(root, Path::new(""), 0);
    }
    for (rel, text) in overlay {
        if walk.files.iter().any(|(p, _)| p == rel) {
            continue;
        }
        // A new file is held to the walk's rules: one it would not read is
        // one the writer must not write.
        let folders: Vec<_> = rel
            .parent()
            .into_iter()
            .flat_map(Path::components)
            .collect();
        if folders.len() > MAX_GROUP_DEPTH {
            let too_deep: PathBuf = folders[..=MAX_GROUP_DEPTH].iter().collect();
            walk.problem(&too_deep, &nested_too_deep());
            continue;
        }
        let mut group = PathBuf::new();
        for part in folders {
            group.push(part);
            let g = group.to_string_lossy().into_owned();
            if !walk.groups.contains(&g) {
                walk.groups.push(g);
            }
        }
        let id = walk.add(rel.clone(), text.clone());
        walk.machines.push(id);
    }
    walk.groups.sort();
    let file_hashes: Vec<u64> = walk
        .files
        .iter()
        .map(|(path, text)| file_hash(path, text))
        .collect();
    let fingerprint = fingerprint_of(&file_hashes);
    let machine_files: HashSet<FileId> = walk.machines.iter().copied().collect();
    let common_hashes: Vec<u64> = (0..file_hashes.len())
        .filter(|&id| !machine_files.contains(&(id as FileId)))
        .map(|id| file_hashes[id])
        .collect();
    let common_fingerprint = fingerprint_of(&common_hashes);
    let mut problems = std::mem::take(&mut walk.problems);
    let files: Vec<PathBuf> = walk.files.iter().map(|(p, _)| p.clone()).collect();
    let report = |problems: &mut Vec<Problem>, origin: Origin, message: String| {
        problems.push(Problem {
            file: files[origin.file as usize].clone(),
            line: Some(origin.line),
            message,
        });
    };

    // Parse every YAML file once; a file that fails to parse is reported and
    // everything that depends on it is skipped.
    let mut parsed: HashMap<FileId, Node> = HashMap::new();
    for &id in walk
        .defaults
        .values()
        .chain(&walk.profiles)
        .chain(&walk.machines)
    {
        match yaml::parse(&walk.files[id as usize].1, id) {
            Ok(node) if node.as_map().is_some() => {
                parsed.insert(id, node);
            }
            Ok(node) => report(
                &mut problems,
                node.origin,
                format!("expected a map of keys, found {}", node.value.kind()),
            ),
            Err(e) => report(
                &mut problems,
                Origin {
                    file: id,
                    line: e.line,
                },
                format!("YAML syntax: {}", e.message),
            ),
        }
    }

    let mut templates = TemplateCheck::default();
    let template_files: BTreeMap<String, FileId> = walk
        .templates
        .iter()
        .map(|&id| {
            let rel = files[id as usize]
                .strip_prefix(TEMPLATES_DIR)
                .unwrap_or(&files[id as usize]);
            (rel.to_string_lossy().into_owned(), id)
        })
        .collect();
    for (name, &id) in &template_files {
        if let Err((line, msg)) = templates.check(&walk.files[id as usize].1) {
            report(
                &mut problems,
                Origin { file: id, line },
                format!("template {name}: {msg}"),
            );
        }
    }

    let mut profiles = BTreeMap::new();
    for &id in &walk.profiles {
        let Some(layer) = parsed.get(&id) else {
            continue;
        };
        let name = stem(&files[id as usize]);
        let boot = match layer.get("boot").map(boot_spec) {
            Some(Ok(spec)) => Some(spec),
            Some(Err(e)) => {
                report(&mut problems, e.origin, e.message);
                None
            }
            None => None,
        };
        let description = layer
            .get("description")
            .and_then(|d| d.as_str())
            .map(str::to_string);
        profiles.insert(
            name.clone(),
            Profile {
                name,
                file: id,
                description,
                boot,
                layer: layer.clone(),
            },
        );
    }

    // The merged defaults of each folder, computed from the root down.
    let mut chains: HashMap<PathBuf, Option<Node>> = HashMap::new();
    let mut machines = Vec::new();
    for &id in &walk.machines {
        let path = &files[id as usize];
        let Some(own) = parsed.get(&id) else { continue };
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let Some(mut values) = defaults_chain(&dir, &walk.defaults, &parsed, &mut chains) else {
            continue; // a broken _defaults.yaml above; already reported
        };
        let hostname = stem(path);
        if let Err(e) = check_hostname(&hostname) {
            report(
                &mut problems,
                Origin { file: id, line: 1 },
                format!("file name {e}"),
            );
            continue;
        }
        // The profile can be named by the machine or by its defaults, so look
        // at both before layering the profile in between.
        let profile_node = own
            .get("profile")
            .or_else(|| values.get("profile"))
            .cloned();
        if let Some(pn) = &profile_node {
            match pn.as_str().and_then(|name| profiles.get(name)) {
                Some(profile) => yaml::deep_merge(&mut values, &profile.layer),
                None if pn.as_str().is_some() => {
                    report(
                        &mut problems,
                        pn.origin,
                        format!(
                            "unknown profile `{}` (profiles: {})",
                            pn,
                            list(profiles.keys())
                        ),
                    );
                }
                None => {} // not a string: reported by extraction below
            }
        }
        yaml::deep_merge(&mut values, own);
        values.origin = own.origin;
        let group = dir.to_string_lossy().into_owned();
        let mut errors = Vec::new();
        let machine = extract_machine(hostname, group, id, values, &mut errors);
        for FieldError { origin, message } in errors {
            report(&mut problems, origin, message);
        }
        check_machine_templates(&machine, &template_files, &mut templates, &mut |o, m| {
            report(&mut problems, o, m)
        });
        check_identity(&machine, opts, &mut |o, m| report(&mut problems, o, m));
        machines.push(machine);
    }

    machines.sort_by(|a, b| (&a.group, &a.hostname).cmp(&(&b.group, &b.hostname)));
    check_duplicates(&machines, &files, &mut problems);

    let mut warnings = Vec::new();
    let rules = {
        let mut group_values =
            |g: &str| defaults_chain(Path::new(g), &walk.defaults, &parsed, &mut chains);
        let has_profile = |p: &str| profiles.contains_key(p);
        let mut tree = rules::Tree {
            groups: &walk.groups,
            has_profile: &has_profile,
            profiles: list(profiles.keys()),
            group_values: &mut group_values,
        };
        let found = rules::read_all(&walk.defaults, &parsed, &files, &mut tree);
        problems.extend(found.problems);
        warnings.extend(found.warnings);
        found.rules
    };
    let root_defaults = defaults_chain(Path::new(""), &walk.defaults, &parsed, &mut chains);
    let templates = template_files
        .iter()
        .map(|(name, &id)| (name.clone(), walk.files[id as usize].1.clone()))
        .collect();
    let mut inventory = Inventory {
        root: root.to_path_buf(),
        files,
        templates,
        root_defaults,
        machines,
        profiles,
        groups: walk.groups,
        file_hashes,
        fingerprint,
        common_fingerprint,
        rules,
        ..Default::default()
    };
    inventory.index();
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems.dedup();
    Loaded {
        inventory,
        problems,
        warnings,
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none defined".into()
    } else {
        v.join(", ")
    }
}

/// Merges `_defaults.yaml` files from the root down to `dir`. None when one
/// of them failed to parse.
fn defaults_chain(
    dir: &Path,
    defaults: &HashMap<PathBuf, FileId>,
    parsed: &HashMap<FileId, Node>,
    memo: &mut HashMap<PathBuf, Option<Node>>,
) -> Option<Node> {
    if let Some(done) = memo.get(dir) {
        return done.clone();
    }
    let mut base = match dir.parent() {
        Some(parent) => defaults_chain(parent, defaults, parsed, memo)?,
        None => Node::empty_map(Origin::default()),
    };
    let result = match defaults.get(dir) {
        Some(id) => parsed.get(id).map(|own| {
            yaml::deep_merge(&mut base, own);
            base
        }),
        None => Some(base),
    };
    memo.insert(dir.to_path_buf(), result.clone());
    result
}

/// Where a value of the machine was set: the line of `key`, else the
/// machine file's first line.
fn origin_of(m: &Machine, key: &str) -> Origin {
    m.values.get(key).map_or(
        Origin {
            file: m.file,
            line: 1,
        },
        |n| n.origin,
    )
}

/// Where one of the machine's MACs was set: its item in a list of them.
fn mac_origin(m: &Machine, mac: &crate::ident::Mac) -> Origin {
    match m.values.get("mac").map(|n| &n.value) {
        Some(crate::yaml::Value::Seq(items)) => items
            .iter()
            .find(|n| n.as_str().and_then(|s| s.parse().ok()) == Some(*mac))
            .map_or(origin_of(m, "mac"), |n| n.origin),
        _ => origin_of(m, "mac"),
    }
}

/// The rules of [`super::validate`] a machine's identities and address must
/// meet, reported where each was set.
fn check_identity(m: &Machine, opts: &LoadOptions, report: &mut dyn FnMut(Origin, String)) {
    for mac in &m.macs {
        if let Err(e) = check_mac(mac) {
            report(mac_origin(m, mac), e.to_string());
        }
    }
    if let Some(Err(e)) = m.uuid.as_ref().map(check_uuid) {
        report(origin_of(m, "uuid"), e.to_string());
    }
    if let Some(Err(e)) = m.ip.map(|ip| check_static_ip(ip, &opts.pools, opts.server)) {
        report(origin_of(m, "ip"), e.to_string());
    }
}

/// Reports MACs, UUIDs, serials, hostnames and IPs used by two machines, at
/// the later file, naming the earlier one. Hostnames are compared without
/// case, as DNS compares them.
fn check_duplicates(machines: &[Machine], files: &[PathBuf], problems: &mut Vec<Problem>) {
    let mut seen: HashMap<String, (usize, Origin)> = HashMap::new();
    for (i, m) in machines.iter().enumerate() {
        let mut keys: Vec<(String, String, Origin)> = Vec::new();
        for mac in &m.macs {
            keys.push(("MAC".into(), mac.to_string(), mac_origin(m, mac)));
        }
        if let Some(u) = m.uuid {
            keys.push(("UUID".into(), u.to_string(), origin_of(m, "uuid")));
        }
        if let Some(s) = &m.serial {
            keys.push(("serial".into(), s.clone(), origin_of(m, "serial")));
        }
        if let Some(a) = &m.asset {
            keys.push(("asset tag".into(), a.clone(), origin_of(m, "asset")));
        }
        if let Some(ip) = m.ip {
            keys.push(("IP".into(), ip.to_string(), origin_of(m, "ip")));
        }
        keys.push((
            "hostname".into(),
            m.hostname.clone(),
            Origin {
                file: m.file,
                line: 1,
            },
        ));
        for (kind, value, at) in keys {
            let key = match kind.as_str() {
                "hostname" => format!("{kind}\0{}", value.to_ascii_lowercase()),
                _ => format!("{kind}\0{value}"),
            };
            match seen.get(&key) {
                Some(&(j, first)) if j != i => problems.push(Problem {
                    file: files[at.file as usize].clone(),
                    line: Some(at.line),
                    message: format!(
                        "duplicate {kind} {value}: also used by {} ({}:{})",
                        machines[j].hostname,
                        files[first.file as usize].display(),
                        first.line
                    ),
                }),
                Some(_) => {}
                None => {
                    seen.insert(key, (i, at));
                }
            }
        }
    }
}

/// Compiles templates once per distinct text and remembers the outcome.
#[derive(Default)]
struct TemplateCheck {
    env: minijinja::Environment<'static>,
    done: HashMap<u64, Result<(), (u32, String)>>,
}

impl TemplateCheck {
    /// Ok, or the 1-based line within the template and the message.
    fn check(&mut self, text: &str) -> Result<(), (u32, String)> {
        let mut h = DefaultHasher::new();
        text.hash(&mut h);
        let env = &self.env;
        self.done
            .entry(h.finish())
            .or_insert_with(|| {
                env.template_from_str(text).map(|_| ()).map_err(|e| {
                    let line = e.line().unwrap_or(1) as u32;
                    (line, e.detail().unwrap_or("syntax error").to_string())
                })
            })
            .clone()
    }
}

/// Checks the syntax of every template string a machine uses (boot strings
/// and installer configs), reporting at the line that holds the template.
fn check_machine_templates(
    m: &Machine,
    template_files: &BTreeMap<String, FileId>,
    check: &mut TemplateCheck,
    report: &mut dyn FnMut(Origin, String),
) {
    let mut strings: Vec<&Node> = Vec::new();
    if let Some(boot) = m.values.get("boot").and_then(Node::as_map) {
        for e in boot {
            match &e.node.value {
                crate::yaml::Value::Seq(items) => strings.extend(items),
                _ => strings.push(&e.node),
            }
        }
    }
    let mut seen = HashSet::new();
    for node in strings {
        if let Some(text) = node.as_str() {
            if !seen.insert(node.origin) {
                continue;
            }
            if let Err((line, msg)) = check.check(text) {
                report(
                    inline_line(node.origin, text, line),
                    format!("template error: {msg}"),
                );
            }
        }
    }
    for (name, t) in &m.configs {
        match t {
            ConfigTemplate::Inline { text, origin } => {
                if let Err((line, msg)) = check.check(text) {
                    report(
                        inline_line(*origin, text, line),
                        format!("template error in config `{name}`: {msg}"),
                    );
                }
            }
            ConfigTemplate::File { path, origin } => {
                if !template_files.contains_key(path.as_str()) {
                    report(
                        *origin,
                        format!("config `{name}`: no template `{path}` in {TEMPLATES_DIR}/"),
                    );
                }
            }
        }
    }
}

/// The file line of line `line` inside an inline template: block scalars
/// (`|`) start on the line after their key.
fn inline_line(origin: Origin, text: &str, line: u32) -> Origin {
    if text.contains('\n') {
        Origin {
            line: origin.line + line,
            ..origin
        }
    } else {
        origin
    }
}
