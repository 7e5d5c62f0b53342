//! The inventory against hostile trees (links, loops, oversized and
//! aliased files, forty thousand keys), and one validator for writes and
//! for `check`.

use std::fs;
use std::path::Path;

use pxedeck::inventory::{Adoption, load};
use test_case::test_case;

#[path = "inventory/kit.rs"]
mod kit;
use kit::*;

// ---- hostile trees -----------------------------------------------------

#[test]
fn symlinked_folders_are_never_followed_so_loops_end() {
    let dir = tree(&[
        ("a.yaml", "mac: \"52:54:00:00:00:01\"\n"),
        ("_templates/t.txt", "hello\n"),
    ]);
    let t = dir.path().join("_templates");
    std::os::unix::fs::symlink(&t, t.join("loop1")).unwrap();
    std::os::unix::fs::symlink(dir.path(), t.join("loop2")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("group-loop")).unwrap();
    // The load ends, says why the links were not read, and reads the rest.
    let loaded = load(dir.path(), &pools());
    let texts: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "_templates/loop1: links to a folder; linked folders are not followed",
            "_templates/loop2: links to a folder; linked folders are not followed",
        ]
    );
    assert_eq!(loaded.inventory.machines.len(), 1);
    assert_eq!(loaded.inventory.templates.len(), 1);
}

#[test]
fn a_link_out_of_the_tree_is_refused_and_one_inside_is_read() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(
        outside.path().join("secret.yaml"),
        "mac: \"52:54:00:00:00:09\"\n",
    )
    .unwrap();
    let dir = tree(&[("real.yaml", "mac: \"52:54:00:00:00:01\"\n")]);
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        dir.path().join("stolen.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path().join("real.yaml"), dir.path().join("_alias.yaml"))
        .unwrap();
    fs::create_dir(dir.path().join("g")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("real.yaml"), dir.path().join("g/twin.yaml"))
        .unwrap();
    let loaded = load(dir.path(), &pools());
    let texts: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert!(
        texts
            .iter()
            .any(|p| p == "stolen.yaml: links outside the inventory; not read"),
        "{texts:?}"
    );
    // The link inside the tree was read (and is a duplicate MAC).
    assert!(texts.iter().any(|p| p.contains("g/twin.yaml")), "{texts:?}");
}

#[test]
fn an_oversized_file_is_refused_with_its_name() {
    let big = format!(
        "mac: \"52:54:00:00:00:01\"\nblob: \"{}\"\n",
        "x".repeat(3 << 20)
    );
    let texts = problems(&[
        ("big.yaml", &big),
        ("ok.yaml", "mac: \"52:54:00:00:00:02\"\n"),
    ]);
    assert_eq!(
        texts,
        ["big.yaml: larger than 2 MiB; pxedeck reads no file that big"]
    );
}

#[test]
fn aliases_in_an_inventory_file_are_refused_at_their_line() {
    let texts = problems(&[(
        "a.yaml",
        "mac: \"52:54:00:00:00:01\"\nbase: &b {x: 1}\nother: *b\n",
    )]);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].starts_with("a.yaml:2:") && texts[0].contains("anchors and aliases"),
        "{texts:?}"
    );
}

#[test]
fn a_machine_file_with_forty_thousand_keys_loads() {
    let mut text = String::from("mac: \"52:54:00:00:00:01\"\n");
    for i in 0..40_000 {
        text.push_str(&format!("k{i}: {i}\n"));
    }
    let dir = tree(&[("_defaults.yaml", "k1: base\n"), ("a.yaml", &text)]);
    let loaded = load(dir.path(), &pools());
    assert!(loaded.is_ok(), "{:?}", loaded.problems);
    let m = &loaded.inventory.machines[0];
    assert_eq!(m.values.get("k39999").unwrap().to_string(), "39999");
    assert_eq!(m.values.get("k1").unwrap().to_string(), "1");
}

// ---- one validator for writes and for `check` (issue 15, item 10) ------

/// A group folder 17 levels deep: one more than the loader reads.
fn seventeen_levels() -> String {
    (1..=17)
        .map(|n| format!("g{n}"))
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn an_adoption_too_deep_for_check_is_refused_in_checks_words() {
    let deep = seventeen_levels();
    // What `check` says of a machine file in such a folder.
    let by_hand = tree(&[
        PROFILE,
        (
            &format!("{deep}/web-01.yaml"),
            "mac: \"52:54:00:00:00:09\"\n",
        ),
    ]);
    let check: Vec<String> = load(by_hand.path(), &pools())
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(check.len(), 1, "{check:?}");

    let (dir, w) = writer_on(&[PROFILE]);
    let mut a = adoption("web-01", "52:54:00:00:00:09");
    a.group = deep.clone();
    let adopted = w.adopt(&[a]);
    let after = load(dir.path(), &pools()).problems;
    let mut second = adoption("web-02", "52:54:00:00:00:0a");
    second.ip = Some("10.99.0.51".parse().unwrap());
    let later = w.adopt(&[second]);
    eprintln!(
        "17-level adoption: {:?}; check after it: {:?}; a later adoption: {:?}",
        adopted.as_ref().map_err(ToString::to_string),
        after.iter().map(ToString::to_string).collect::<Vec<_>>(),
        later.as_ref().map_err(ToString::to_string)
    );
    assert_eq!(adopted.unwrap_err().to_string(), check[0]);
    assert!(after.is_empty(), "nothing written: {after:?}");
    assert!(later.is_ok(), "later adoptions still work");
}

/// Each rule `check` applies to a machine file, applied to an adoption:
/// refused in the same words, and nothing written.
#[test_case(|a: &mut Adoption| a.group = seventeen_levels() ; "group too deep")]
#[test_case(|a: &mut Adoption| a.macs = vec!["ff:ff:ff:ff:ff:ff".parse().unwrap()] ; "broadcast mac")]
#[test_case(|a: &mut Adoption| a.macs.push("00:00:00:00:00:00".parse().unwrap()) ; "zero mac")]
#[test_case(|a: &mut Adoption| a.uuid = Some("00000000-0000-0000-0000-000000000000".parse().unwrap()) ; "zero uuid")]
#[test_case(|a: &mut Adoption| a.ip = Some("10.99.0.1".parse().unwrap()) ; "ip of the server")]
#[test_case(|a: &mut Adoption| a.ip = Some("10.99.0.0".parse().unwrap()) ; "ip of the network")]
#[test_case(|a: &mut Adoption| a.ip = Some("10.99.0.255".parse().unwrap()) ; "ip of the broadcast")]
#[test_case(|a: &mut Adoption| a.ip = Some("192.0.2.1".parse().unwrap()) ; "ip outside pools")]
fn adopt_refuses_what_check_refuses(change: fn(&mut Adoption)) {
    let mut a = adoption("web-01", "52:54:00:00:00:09");
    change(&mut a);
    // What `check` says of the file this adoption would write.
    let rel = Path::new(&a.group).join("web-01.yaml");
    let text = pxedeck::inventory::machine_file_text(&a);
    let by_hand = tree(&[PROFILE, (rel.to_str().unwrap(), &text)]);
    let check = load(by_hand.path(), &pools()).problems;
    assert_eq!(check.len(), 1, "{check:?}");

    let (dir, w) = writer_on(&[PROFILE]);
    let err = w.adopt(&[a]).unwrap_err().to_string();
    assert!(
        err.contains(&check[0].message),
        "check says {:?}, adopt {err:?}",
        check[0].to_string()
    );
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing written beside _profiles"
    );
}
