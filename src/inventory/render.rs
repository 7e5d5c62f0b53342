//! Printing effective values as YAML, each leaf annotated with the file and
//! line that set it — the answer to "why does this machine get that?".

use std::fmt::Write;

use super::Inventory;
use crate::yaml::{Node, Value};

/// Block-style YAML of `node`, with `# file:line` after every scalar.
pub fn annotated_yaml(inv: &Inventory, node: &Node) -> String {
    let mut out = String::new();
    if let Value::Map(entries) = &node.value {
        for e in entries {
            emit_entry(inv, &mut out, 0, &e.key, &e.node);
        }
    }
    out
}

fn emit_entry(inv: &Inventory, out: &mut String, indent: usize, key: &str, node: &Node) {
    let pad = "  ".repeat(indent);
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => {
            let _ = writeln!(out, "{pad}{key}:");
            for e in entries {
                emit_entry(inv, out, indent + 1, &e.key, &e.node);
            }
        }
        Value::Seq(items) if !items.is_empty() => {
            let _ = writeln!(out, "{pad}{key}:");
            for item in items {
                emit_item(inv, out, indent + 1, item);
            }
        }
        Value::Str(s) if s.contains('\n') => {
            let _ = writeln!(out, "{pad}{key}: |  # {}", inv.locate(node.origin));
            for line in s.lines() {
                let _ = writeln!(out, "{pad}  {line}");
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "{pad}{key}: {}  # {}",
                scalar(node),
                inv.locate(node.origin)
            );
        }
    }
}

fn emit_item(inv: &Inventory, out: &mut String, indent: usize, node: &Node) {
    let pad = "  ".repeat(indent);
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => {
            let _ = writeln!(out, "{pad}-");
            for e in entries {
                emit_entry(inv, out, indent + 1, &e.key, &e.node);
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "{pad}- {}  # {}",
                scalar(node),
                inv.locate(node.origin)
            );
        }
    }
}

/// A scalar in flow form, quoted when YAML would read it as something else.
fn scalar(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => {
            let plain_safe = !s.is_empty()
                && !s.starts_with(|c: char| " -?:,[]{}#&*!|>'\"%@`".contains(c))
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.ends_with(' ')
                && crate::yaml::parse(&format!("v: {s}"), 0)
                    .ok()
                    .and_then(|n| n.get("v").map(|v| v.value == node.value))
                    .unwrap_or(false);
            if plain_safe {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        Value::Map(_) => "{}".into(),
        Value::Seq(_) => "[]".into(),
        _ => node.to_string(),
    }
}
