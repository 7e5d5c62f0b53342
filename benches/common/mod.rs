//! What several benches share: a large generated inventory.

use std::fs;
use std::path::Path;

/// Writes `machines` machine files in `groups` groups, 3 profiles, each
/// machine with MAC, IP, serial and a nested map, as a real rack would have.
pub fn write_inventory(root: &Path, machines: usize, groups: usize) {
    fs::create_dir_all(root.join("_profiles")).unwrap();
    fs::write(
        root.join("_defaults.yaml"),
        "install: false\nconsole: ttyS0,115200\ndns: [10.0.0.1]\nkernel_args:\n  quiet: true\n",
    )
    .unwrap();
    for p in ["ubuntu", "talos", "rocky"] {
        fs::write(
            root.join(format!("_profiles/{p}.yaml")),
            format!("description: {p}\nboot:\n  kernel: {p}/vmlinuz\n  initrd: [{p}/initrd]\n  cmdline: console={{{{ console }}}} ip=dhcp\nconfigs:\n  meta-data: |\n    instance-id: {{{{ hostname }}}}\n"),
        )
        .unwrap();
    }
    for g in 0..groups {
        let dir = root.join(format!("rack-{g:02}"));
        fs::create_dir_all(&dir).unwrap();
        let profile = ["ubuntu", "talos", "rocky"][g % 3];
        fs::write(
            dir.join("_defaults.yaml"),
            format!("profile: {profile}\nrack: {g}\n"),
        )
        .unwrap();
    }
    for i in 0..machines {
        let g = i % groups;
        let text = format!(
            "# machine {i}\nmac: \"52:54:{:02x}:{:02x}:{:02x}:{:02x}\"\nip: 10.{}.{}.{}\nserial: \"SN{i:08}\"\ninstall: {}\nbmc:\n  address: 10.200.{}.{}\n",
            (i >> 24) & 0xff,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            10 + (i >> 16),
            (i >> 8) & 0xff,
            i & 0xff,
            i % 2 == 0,
            (i >> 8) & 0xff,
            i & 0xff,
        );
        fs::write(root.join(format!("rack-{g:02}/node-{i:05}.yaml")), text).unwrap();
    }
}
