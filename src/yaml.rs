//! A YAML tree that remembers where every value came from.
//!
//! Configuration and inventory errors must name a file and a line, and merged
//! inventory values must still know which of several files set them. saphyr's
//! parser gives positions; this module builds from its events a small owned
//! tree whose nodes carry an [`Origin`] (file id + line), and offers the
//! deep-merge rule the inventory uses.

use std::collections::{HashMap, HashSet};
use std::fmt;

use saphyr::ScalarOwned;
use saphyr_parser::{Event, Span};

/// Index of a source file in a table owned by whoever parsed it.
pub type FileId = u32;

/// Where a value was written: which file (by id) and which line (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Origin {
    pub file: FileId,
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order. Keys are strings; other key types are refused
    /// at parse time because nothing in pxedeck's files needs them.
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    /// The line of the key itself (a block value starts on a later line).
    pub key_line: u32,
    pub node: Node,
}

/// A syntax or structure error, with the line (and column) it was found at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl Value {
    /// A short name of the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

impl Node {
    pub fn new(value: Value, origin: Origin) -> Self {
        Node { value, origin }
    }

    /// An empty map, for files that are empty or hold only comments.
    pub fn empty_map(origin: Origin) -> Self {
        Node::new(Value::Map(Vec::new()), origin)
    }

    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Looks up a key in a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.node)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|e| e.key == key)
    }

    /// Follows a dotted path of map keys (`boot.kernel`).
    pub fn path(&self, dotted: &str) -> Option<&Node> {
        dotted.split('.').try_fold(self, |node, key| node.get(key))
    }

    /// Converts to JSON for serde deserialisation and template contexts.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.node.to_json()))
                    .collect(),
            ),
        }
    }

    /// The line a path points at: each segment is a map key, or an index
    /// when the node is a list. Stops at the deepest node that exists, so a
    /// missing key still points at its closest ancestor.
    pub fn line_at<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> u32 {
        let mut node = self;
        let mut line = self.origin.line;
        for segment in path {
            let next = match (&node.value, segment.parse::<usize>()) {
                (Value::Seq(items), Ok(i)) => items.get(i).inspect(|n| line = n.origin.line),
                _ => node.entry(segment).map(|e| {
                    line = e.key_line;
                    &e.node
                }),
            };
            let Some(n) = next else { break };
            if !matches!(n.value, Value::Map(_) | Value::Seq(_)) {
                line = n.origin.line;
            }
            node = n;
        }
        line
    }

    /// The line of a serde path, as `serde_path_to_error` reports it.
    pub fn line_of_serde_path(&self, path: &serde_path_to_error::Path) -> u32 {
        use serde_path_to_error::Segment;
        let segments: Vec<String> = path
            .iter()
            .map(|s| match s {
                Segment::Map { key } => key.clone(),
                Segment::Seq { index } => index.to_string(),
                _ => String::new(),
            })
            .collect();
        self.line_at(segments.iter().map(String::as_str))
    }
}

/// Merges `over` onto `base`: maps merge key by key, recursively; anything
/// else (scalars, lists, and a map meeting a non-map) is replaced by `over`.
pub fn deep_merge(base: &mut Node, over: &Node) {
    match (&mut base.value, &over.value) {
        (Value::Map(base_entries), Value::Map(over_entries)) => {
            // An index of the base's keys keeps a merge linear: a search per
            // key made a 40,000-key file take seconds.
            let mut index: HashMap<String, usize> = base_entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.key.clone(), i))
                .collect();
            for o in over_entries {
                match index.get(&o.key) {
                    Some(&i) => {
                        let b = &mut base_entries[i];
                        b.key_line = o.key_line;
                        deep_merge(&mut b.node, &o.node);
                    }
                    None => {
                        index.insert(o.key.clone(), base_entries.len());
                        base_entries.push(o.clone());
                    }
                }
            }
            base.origin = over.origin;
        }
        _ => *base = over.clone(),
    }
}

/// Nesting deeper than this is refused: nothing in pxedeck's files needs
/// more than a handful of levels, and a deep tree costs stack to walk.
pub const MAX_DEPTH: usize = 64;

/// Parses one YAML document. An empty document (or one holding only
/// comments) is an empty map. More than one document is an error.
///
/// The tree is built straight from the parser's events, in one pass and
/// linear in the input: anchors and aliases are refused when the parser
/// meets them (a loader that expands aliases first lets a 1 MB file grow
/// to gigabytes), duplicate keys are found with a hash set per map, and
/// nesting is capped at [`MAX_DEPTH`].
pub fn parse(text: &str, file: FileId) -> Result<Node, ParseError> {
    let mut builder = Builder {
        file,
        stack: Vec::new(),
        document: None,
        documents: 0,
    };
    for item in saphyr_parser::Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| ParseError {
            line: e.marker().line() as u32,
            column: e.marker().col() as u32 + 1,
            message: e.info().to_string(),
        })?;
        builder.event(event, span)?;
    }
    Ok(builder
        .document
        .unwrap_or_else(|| Node::empty_map(Origin { file, line: 1 })))
}

/// A collection being read, with what it holds so far.
enum Open {
    Seq(Vec<Node>),
    Map {
        entries: Vec<Entry>,
        keys: HashSet<String>,
        /// The key read, waiting for its value.
        key: Option<(String, u32)>,
    },
}

struct Builder {
    file: FileId,
    stack: Vec<(Open, Origin)>,
    document: Option<Node>,
    documents: u32,
}

impl Builder {
    fn fail(line: u32, column: u32, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), ParseError> {
        let line = span.start.line() as u32;
        let column = span.start.col() as u32 + 1;
        let origin = Origin {
            file: self.file,
            line,
        };
        let anchored = |anchor: usize| {
            if anchor > 0 {
                Err(Self::fail(
                    line,
                    column,
                    "YAML anchors and aliases are not supported here",
                ))
            } else {
                Ok(())
            }
        };
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Self::fail(
                        line,
                        1,
                        "only one YAML document per file is allowed",
                    ));
                }
            }
            Event::Alias(_) => anchored(1)?,
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                anchored(anchor)?;
                if self.stack.len() >= MAX_DEPTH {
                    return Err(Self::fail(
                        line,
                        column,
                        format!("nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                self.key_must_be_scalar(line, column)?;
                let open = if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(Vec::new())
                } else {
                    Open::Map {
                        entries: Vec::new(),
                        keys: HashSet::new(),
                        key: None,
                    }
                };
                self.stack.push((open, origin));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((open, origin)) = self.stack.pop() else {
                    return Err(Self::fail(line, column, "unbalanced collection"));
                };
                let value = match open {
                    Open::Seq(items) => Value::Seq(items),
                    Open::Map { entries, .. } => Value::Map(entries),
                };
                self.insert(Node { value, origin }, column)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                anchored(anchor)?;
                let scalar = ScalarOwned::parse_from_cow_and_metadata(text, style, tag.as_ref())
                    .ok_or_else(|| Self::fail(line, column, "value could not be read"))?;
                let value = match scalar {
                    ScalarOwned::Null => Value::Null,
                    ScalarOwned::Boolean(b) => Value::Bool(b),
                    ScalarOwned::Integer(i) => Value::Int(i),
                    ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
                    ScalarOwned::String(s) => Value::Str(s),
                };
                self.insert(Node { value, origin }, column)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// A collection where a map expects a key: refused, keys are strings.
    fn key_must_be_scalar(&self, line: u32, column: u32) -> Result<(), ParseError> {
        match self.stack.last() {
            Some((Open::Map { key: None, .. }, _)) => {
                Err(Self::fail(line, column, "map keys must be plain strings"))
            }
            _ => Ok(()),
        }
    }

    /// Places a finished node: the document itself, a list item, a map key
    /// or a map value.
    fn insert(&mut self, node: Node, column: u32) -> Result<(), ParseError> {
        let Some((open, _)) = self.stack.last_mut() else {
            self.document = Some(node);
            return Ok(());
        };
        match open {
            Open::Seq(items) => items.push(node),
            Open::Map { entries, keys, key } => match key.take() {
                None => {
                    let line = node.origin.line;
                    let text = match node.value {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(Self::fail(line, column, "map keys must be plain strings"));
                        }
                    };
                    if !keys.insert(text.clone()) {
                        return Err(Self::fail(
                            line,
                            column,
                            format!("duplicate key {text:?} in this map"),
                        ));
                    }
                    *key = Some((text, line));
                }
                Some((key, key_line)) => entries.push(Entry {
                    key,
                    key_line,
                    node,
                }),
            },
        }
        Ok(())
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            other => write!(
                f,
                "{}",
                serde_json::to_string(&self.to_json()).unwrap_or_else(|_| other.kind().into())
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(text, 0).unwrap()
    }

    #[test]
    fn lines_are_recorded_for_keys_and_values() {
        let n = p("# comment\na: 1\nb:\n  c: x\n  d: [1, 2]\n");
        assert_eq!(n.entry("a").unwrap().key_line, 2);
        assert_eq!(n.entry("b").unwrap().key_line, 3);
        assert_eq!(n.path("b.c").unwrap().origin.line, 4);
        assert_eq!(n.path("b.d").unwrap().origin.line, 5);
    }

    #[test]
    fn empty_and_comment_only_documents_are_empty_maps() {
        assert_eq!(p("").as_map().unwrap().len(), 0);
        assert_eq!(p("# nothing\n").as_map().unwrap().len(), 0);
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n", 0).unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        let dup = parse("a: 1\na: 2\n", 0).unwrap_err();
        assert_eq!(dup.line, 2);
        assert!(dup.message.contains("duplicate"), "{dup:?}");
    }

    #[test]
    fn two_documents_are_refused() {
        let err = parse("a: 1\n---\nb: 2\n", 0).unwrap_err();
        assert!(err.message.contains("one YAML document"));
    }

    #[test]
    fn yaml_1_2_reads_colon_separated_hex_as_strings() {
        // YAML 1.1 would read 12:34:56 as a base-60 integer; 1.2 does not.
        let n = p("mac: 12:34:56:12:34:56\nno: no\n");
        assert_eq!(n.get("mac").unwrap().as_str(), Some("12:34:56:12:34:56"));
        assert_eq!(n.get("no").unwrap().as_str(), Some("no"));
    }

    #[test]
    fn merge_maps_deeply_and_replaces_lists_and_scalars() {
        let mut base = p("a: 1\nm: {x: 1, y: 2}\nl: [1, 2]\n");
        let over = p("a: 2\nm: {y: 3, z: 4}\nl: [9]\nn: new\n");
        deep_merge(&mut base, &over);
        let want = serde_json::json!({"a": 2, "m": {"x": 1, "y": 3, "z": 4}, "l": [9], "n": "new"});
        assert_eq!(base.to_json(), want);
    }

    #[test]
    fn merged_values_remember_the_file_that_set_them() {
        let mut base = parse("a: 1\nm:\n  x: 1\n", 1).unwrap();
        let over = parse("m:\n  y: 2\n", 2).unwrap();
        deep_merge(&mut base, &over);
        assert_eq!(
            base.path("m.x").unwrap().origin,
            Origin { file: 1, line: 3 }
        );
        assert_eq!(
            base.path("m.y").unwrap().origin,
            Origin { file: 2, line: 2 }
        );
    }

    #[test]
    fn anchors_and_aliases_are_refused_before_anything_is_expanded() {
        // A 1 MB string aliased a thousand times would be a gigabyte once
        // expanded; the parser stops at the anchor.
        let mut text = format!("big: &a \"{}\"\nrefs:\n", "x".repeat(1 << 20));
        for _ in 0..1000 {
            text.push_str("  - *a\n");
        }
        let err = parse(&text, 0).unwrap_err();
        assert_eq!(err.line, 1, "{err:?}");
        assert!(err.message.contains("anchors and aliases"), "{err:?}");
        let alias_only = parse("a: 1\nb: *nowhere\n", 0).unwrap_err();
        assert_eq!(alias_only.line, 2, "{alias_only:?}");
        let on_a_map = parse("m: &m {a: 1}\n", 0).unwrap_err();
        assert!(on_a_map.message.contains("anchors"), "{on_a_map:?}");
    }

    #[test]
    fn nesting_is_capped() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = parse(&deep, 0).unwrap_err();
        assert!(err.message.contains("nested deeper than 64"), "{err:?}");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok, 0).is_ok());
    }

    #[test]
    fn keys_must_be_scalars() {
        let err = parse("? [a, b]\n: 1\n", 0).unwrap_err();
        assert!(
            err.message.contains("map keys must be plain strings"),
            "{err:?}"
        );
        let n = p("1: one\ntrue: yes\n");
        assert_eq!(n.get("1").unwrap().as_str(), Some("one"));
        assert_eq!(n.get("true").unwrap().as_str(), Some("yes"));
    }

    #[test]
    fn a_map_of_many_keys_reads_in_one_pass() {
        let text: String = (0..40_000).map(|i| format!("k{i}: {i}\n")).collect();
        let n = p(&text);
        assert_eq!(n.as_map().unwrap().len(), 40_000);
        assert_eq!(n.entry("k39999").unwrap().key_line, 40_000);
        let dup = format!("{text}k7: again\n");
        let err = parse(&dup, 0).unwrap_err();
        assert_eq!(err.line, 40_001, "{err:?}");
    }
}
