//! Writes the seed corpus of every target into `corpus/<target>/`: a few
//! real requests each, in the framing of `frames`. Run it from `fuzz/`
//! (run.sh does) after changing a target's input format; the seeds are
//! kept in git.

mod frames;

use std::net::Ipv4Addr;
use std::path::Path;

use frames::record;
use pxedeck::dhcp::wire::{Packet, msg, opt};
use pxedeck::tftp::packet::{encode_ack, encode_error, encode_rrq};

const UEFI_CLASS: &[u8] = b"PXEClient:Arch:00007:UNDI:003016";
const BIOS_CLASS: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";
const HTTP_CLASS: &[u8] = b"HTTPClient:Arch:00016:UNDI:003001";

/// Named seed inputs of one target.
type Seeds = Vec<(&'static str, Vec<u8>)>;

fn request(mac: [u8; 6], xid: u32, kind: u8, options: &[(u8, &[u8])]) -> Vec<u8> {
    let mut p = Packet::client_request(mac, xid, kind);
    for (code, value) in options {
        p.set_option(*code, value.to_vec());
    }
    p.encode()
}

fn dhcp() -> Seeds {
    let known = [0x52, 0x54, 0, 0xd0, 0, 1];
    let unknown = [0x52, 0x54, 0, 0x99, 0, 7];
    let params: &[u8] = &[1, 3, 6, 12, 15, 43, 60, 66, 67, 93, 97, 175];
    let uefi = [
        (opt::CLIENT_ARCH, &[0u8, 7][..]),
        (opt::CLASS_ID, UEFI_CLASS),
        (opt::PARAMS, params),
        (opt::MAX_SIZE, &[5, 0xc0][..]),
    ];
    let server: &[u8] = &[10, 99, 0, 1];
    let offered: &[u8] = &[10, 99, 0, 100];
    let mut relayed = Packet::client_request(unknown, 9, msg::DISCOVER);
    relayed.giaddr = Ipv4Addr::new(10, 98, 0, 1);
    relayed.hops = 1;
    relayed.set_option(opt::CLIENT_ARCH, vec![0, 0]);
    relayed.set_option(opt::CLASS_ID, BIOS_CLASS.to_vec());
    vec![
        // A UEFI machine nobody knows: DISCOVER, then REQUEST of the offer.
        (
            "uefi-dora",
            [
                record(0, &request(unknown, 1, msg::DISCOVER, &uefi)),
                record(
                    4,
                    &request(
                        unknown,
                        1,
                        msg::REQUEST,
                        &[
                            uefi[0],
                            uefi[1],
                            (opt::REQUESTED_IP, offered),
                            (opt::SERVER_ID, server),
                        ],
                    ),
                ),
            ]
            .concat(),
        ),
        // A known BIOS machine, then its proxyDHCP request on port 4011.
        (
            "bios-known-proxy",
            [
                record(
                    0,
                    &request(
                        known,
                        2,
                        msg::DISCOVER,
                        &[(opt::CLIENT_ARCH, &[0, 0]), (opt::CLASS_ID, BIOS_CLASS)],
                    ),
                ),
                record(
                    3,
                    &request(
                        known,
                        2,
                        msg::REQUEST,
                        &[(opt::CLIENT_ARCH, &[0, 0]), (opt::CLASS_ID, BIOS_CLASS)],
                    ),
                ),
            ]
            .concat(),
        ),
        // iPXE asking again, with its user class and feature option.
        (
            "ipxe",
            record(
                0,
                &request(
                    known,
                    3,
                    msg::DISCOVER,
                    &[
                        (opt::USER_CLASS, b"iPXE"),
                        (175, &[0x13, 1, 1, 0x15, 1, 1]),
                        (opt::CLIENT_ARCH, &[0, 7]),
                    ],
                ),
            ),
        ),
        // UEFI HTTP Boot.
        (
            "http-boot",
            record(
                0,
                &request(
                    unknown,
                    4,
                    msg::DISCOVER,
                    &[(opt::CLIENT_ARCH, &[0, 16]), (opt::CLASS_ID, HTTP_CLASS)],
                ),
            ),
        ),
        // An offer declined, then a lease released.
        (
            "decline-release",
            [
                record(0, &request(unknown, 5, msg::DISCOVER, &uefi)),
                record(
                    0,
                    &request(
                        unknown,
                        5,
                        msg::DECLINE,
                        &[(opt::REQUESTED_IP, offered), (opt::SERVER_ID, server)],
                    ),
                ),
                record(
                    8,
                    &request(unknown, 6, msg::RELEASE, &[(opt::SERVER_ID, server)]),
                ),
            ]
            .concat(),
        ),
        ("relayed", record(0, &relayed.encode())),
    ]
}

fn size(bytes: u32) -> Vec<u8> {
    record(0, &bytes.to_be_bytes())
}

fn tftp() -> Seeds {
    let acks = |blocks: &[u16]| -> Vec<u8> {
        blocks
            .iter()
            .flat_map(|b| record(4, &encode_ack(*b)))
            .collect()
    };
    let options = [("blksize", "1468"), ("windowsize", "4"), ("tsize", "0")];
    vec![
        (
            "window",
            [
                size(1 << 20),
                record(0, &encode_rrq("ipxe.efi", "octet", &options)),
                acks(&[0, 4, 8, 8, 12]),
                record(3, b""),
            ]
            .concat(),
        ),
        (
            "plain",
            [
                size(70 * 1024),
                record(0, &encode_rrq("undionly.kpxe", "netascii", &[])),
                acks(&[1, 2]),
                record(1, b""),
                record(3, b""),
                acks(&[3]),
            ]
            .concat(),
        ),
        (
            "tsize-probe",
            [
                size(1 << 20),
                record(0, &encode_rrq("ipxe.efi", "octet", &[("tsize", "0")])),
                record(
                    0,
                    &encode_error(pxedeck::tftp::packet::ErrorCode::NotDefined, "probe"),
                ),
            ]
            .concat(),
        ),
        (
            "wrap",
            [
                size(40 << 20),
                record(0, &encode_rrq("big.img", "octet", &[("blksize", "512")])),
                acks(&[1, 65535, 0, 1]),
            ]
            .concat(),
        ),
    ]
}

fn http() -> Seeds {
    let pair = |ctrl: u8, range: &str, path: &str| {
        [record(ctrl, range.as_bytes()), record(0, path.as_bytes())].concat()
    };
    vec![
        ("first-bytes", pair(20 << 2, "bytes=0-99", "/ipxe.efi")),
        ("suffix", pair(24 << 2, "bytes=-500", "ubuntu/vmlinuz")),
        ("open", pair(10 << 2, "bytes=100-", "kernel")),
        ("list", pair(30 << 2, "bytes=5-1, 2-3", "/out/shadow")),
        (
            "escaped",
            pair(8 << 2, "bytes = 7 - 9", "%2e%2e/secret/shadow"),
        ),
        ("link-out", pair(0, "", "shadow")),
    ]
}

fn nodes(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../nodes")
            .join(path),
    )
    .unwrap_or_else(|e| panic!("nodes/{path}: {e}"))
}

fn yaml() -> Seeds {
    vec![
        (
            "defaults-and-group",
            [
                record(0, &nodes("_defaults.yaml")),
                record(0, &nodes("k8s-dev/_defaults.yaml")),
            ]
            .concat(),
        ),
        (
            "profile-and-machine",
            [
                record(0, &nodes("_profiles/talos-worker.yaml")),
                record(0, &nodes("k8s-prod/prod-04.yaml")),
            ]
            .concat(),
        ),
        (
            "flow-and-anchor",
            [
                record(0, b"a: {b: [1, 2, {c: d}]}\nx: &x 1\ny: *x\n"),
                record(0, b"a:\n  b: ~\n  \"q\": 'it''s'\n"),
            ]
            .concat(),
        ),
    ]
}

fn inventory() -> Seeds {
    let machine = b"mac: \"52:54:00:f0:00:01\"\nip: 10.99.0.31\ninstall: true\nprofile: fuzz\n";
    vec![
        (
            "machine-profile-group",
            [
                record(0, machine),
                record(0, &nodes("_profiles/ubuntu-2404.yaml")),
                record(0, &nodes("k8s-dev/_defaults.yaml")),
            ]
            .concat(),
        ),
        (
            "talos",
            [
                record(0, &nodes("k8s-prod/prod-01.yaml")),
                record(0, &nodes("_profiles/talos-worker.yaml")),
            ]
            .concat(),
        ),
        ("machine-only", record(0, &nodes("k8s-dev/dev-03.yaml"))),
    ]
}

fn main() {
    let targets: [(&str, Seeds); 5] = [
        ("dhcp", dhcp()),
        ("tftp", tftp()),
        ("http", http()),
        ("yaml", yaml()),
        ("inventory", inventory()),
    ];
    for (target, seeds) in targets {
        let dir = Path::new("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        println!("corpus/{target}: written");
    }
}
