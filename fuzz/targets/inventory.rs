//! The inventory loader on one tree: a copy of the example inventory in
//! which the fuzzer writes a machine file (record 0), a profile (record 1)
//! and a group's `_defaults.yaml` (record 2) — a missing record removes
//! the file — then walks, merges and validates the whole tree as `check`
//! and a reload do. A panic is a crash; a slow load shows up as a hang.

mod frames;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pxedeck::inventory::{LoadOptions, load};

struct Tree {
    root: PathBuf,
    slots: [PathBuf; 3],
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = frames::scratch("inventory").join("nodes");
        copy(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../nodes"),
            &root,
        );
        std::fs::create_dir_all(root.join("fuzz")).unwrap();
        let slots = [
            root.join("fuzz/fuzz-01.yaml"),
            root.join("_profiles/fuzz.yaml"),
            root.join("fuzz/_defaults.yaml"),
        ];
        Tree { root, slots }
    })
}

fn run(input: &[u8]) {
    let tree = tree();
    let mut records = frames::records(input);
    for slot in &tree.slots {
        match records.next() {
            Some((_, text)) => std::fs::write(slot, text).unwrap(),
            None => {
                let _ = std::fs::remove_file(slot);
            }
        }
    }
    let loaded = load(&tree.root, &LoadOptions::default());
    // Every machine that loaded has a name; every problem says where.
    for m in &loaded.inventory.machines {
        assert!(!m.hostname.is_empty(), "a machine without a hostname");
    }
    for p in &loaded.problems {
        let _ = p.to_string();
    }
}

fn main() {
    tree();
    afl::fuzz!(|data: &[u8]| run(data));
}
