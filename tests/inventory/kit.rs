//! What the inventory test files share: trees from (path, text) pairs,
//! the pools they are validated against, and a writer on a tree.

use std::fs;

use pxedeck::config::Config;
use pxedeck::inventory::{Adoption, InventoryService, LoadOptions, load};

/// Builds an inventory tree from (path, text) pairs.
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

pub fn pools() -> LoadOptions {
    let c = Config::from_text(
        "server:\n  address: 10.99.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.199\n",
        None,
    )
    .unwrap();
    LoadOptions {
        pools: c.dhcp.pools,
        server: Some(c.address),
    }
}

pub fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tree(files);
    load(dir.path(), &pools())
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

pub const PROFILE: (&str, &str) = (
    "_profiles/p.yaml",
    "boot:\n  kernel: k\n  cmdline: console={{ console }}\nlevel: profile\nm:\n  from_profile: 1\n",
);

pub fn writer_on(files: &[(&str, &str)]) -> (tempfile::TempDir, InventoryService) {
    let dir = tree(files);
    let loaded = load(dir.path(), &pools());
    let writer = InventoryService::new(dir.path(), pools(), loaded.inventory);
    (dir, writer)
}

pub fn adoption(host: &str, mac: &str) -> Adoption {
    Adoption {
        macs: vec![mac.parse().unwrap()],
        uuid: None,
        hostname: host.into(),
        group: "rack1".into(),
        profile: "p".into(),
        ip: Some("10.99.0.50".parse().unwrap()),
        install: true,
        ..Default::default()
    }
}
