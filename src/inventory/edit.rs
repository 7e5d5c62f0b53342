//! Text-level YAML edits, kept behind two functions so the editor crate
//! (yaml-edit, a lossless rowan tree) can be swapped without touching the
//! writer. Everything not edited stays byte-for-byte: comments, order,
//! quoting, keys pxedeck does not know.

use std::str::FromStr;

/// A scalar value to set.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Str(String),
}

impl Scalar {
    fn matches(&self, value: &crate::yaml::Value) -> bool {
        use crate::yaml::Value;
        match (self, value) {
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            (Scalar::Str(a), Value::Str(b)) => a == b,
            _ => false,
        }
    }
}

/// Sets top-level keys of a YAML map (replacing a value in place, or
/// appending the key at the end), then checks that the edited text reads
/// back with exactly those values.
pub fn set_top_level(text: &str, changes: &[(&str, Scalar)]) -> Result<String, String> {
    let doc = yaml_edit::Document::from_str(text).map_err(|e| format!("cannot edit: {e}"))?;
    let map = doc
        .as_mapping()
        .ok_or_else(|| "cannot edit: the file is not a map".to_string())?;
    for (key, value) in changes {
        match value {
            Scalar::Bool(b) => map.set(*key, *b),
            Scalar::Str(s) => map.set(*key, s.as_str()),
        }
    }
    let mut out = doc.to_string();
    if text.ends_with('\n') && !out.ends_with('\n') {
        out.push('\n');
    }
    let check =
        crate::yaml::parse(&out, 0).map_err(|e| format!("edit produced invalid YAML: {e}"))?;
    for (key, value) in changes {
        match check.get(key) {
            Some(n) if value.matches(&n.value) => {}
            other => {
                return Err(format!(
                    "edit of `{key}` did not read back as intended (got {})",
                    other.map_or("nothing".into(), |n| n.to_string())
                ));
            }
        }
    }
    Ok(out)
}

/// Quotes a string for YAML (double quotes, JSON escapes are valid YAML).
pub fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# node-07 — rack B3, slot 12\n\
mac: \"52:54:00:aa:bb:07\"   # onboard NIC\n\
profile: ubuntu-2404\n\
install: true  # flipped by the done callback\n\
\n\
disks:\n  root: /dev/nvme0n1   # keep me\n\
owner: team-storage   # a key pxedeck does not know\n";

    #[test]
    fn replacing_a_value_changes_only_that_line() {
        let out = set_top_level(FILE, &[("install", Scalar::Bool(false))]).unwrap();
        let before: Vec<&str> = FILE.lines().collect();
        let after: Vec<&str> = out.lines().collect();
        assert_eq!(before.len(), after.len());
        let changed: Vec<usize> = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        assert_eq!(changed, vec![3]);
        assert_eq!(after[3], "install: false  # flipped by the done callback");
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn adding_a_key_appends_one_line() {
        let out = set_top_level(FILE, &[("ip", Scalar::Str("10.99.0.21".into()))]).unwrap();
        assert!(
            out.starts_with(FILE),
            "everything before stays byte-for-byte:\n{out}"
        );
        assert_eq!(&out[FILE.len()..], "ip: 10.99.0.21\n");
    }

    #[test]
    fn strings_that_look_like_other_types_are_refused_or_quoted() {
        // Either the editor quotes it or the read-back check refuses it;
        // never a silent `profile: true` boolean.
        match set_top_level("a: 1\n", &[("profile", Scalar::Str("true".into()))]) {
            Ok(out) => assert_eq!(
                crate::yaml::parse(&out, 0)
                    .unwrap()
                    .get("profile")
                    .unwrap()
                    .as_str(),
                Some("true")
            ),
            Err(e) => assert!(e.contains("did not read back"), "{e}"),
        }
    }
}
