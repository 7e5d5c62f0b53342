//! Property tests standing in for a fuzzer: raw bytes, and client requests
//! with arbitrary options, truncations and bit flips, go through the same
//! path as a datagram from the socket — decode → classify → handle — in
//! full and proxy mode, on ports 67 and 4011, against one lease table that
//! lives through the whole sequence. Nothing may panic, no address may be
//! offered outside the pools, and no address may be held by two MACs.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use pxedeck::config::{Config, DhcpMode};
use pxedeck::dhcp::classify::classify;
use pxedeck::dhcp::handler::{Ctx, Port, handle};
use pxedeck::dhcp::leases::LeaseTable;
use pxedeck::dhcp::loaders::Loaders;
use pxedeck::dhcp::wire::{Packet, msg};
use pxedeck::inventory::{Inventory, LoadOptions, load};

struct World {
    config: Config,
    inventory: Inventory,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let config = Config::from_text(
            "server:\n  address: 10.99.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.105\n    - subnet: 10.98.0.0/24\n      range: 10.98.0.10-10.98.0.12\n",
            None,
        )
        .unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes");
        let inventory = load(
            &root,
            &LoadOptions {
                pools: config.dhcp.pools.clone(),
                ..Default::default()
            },
        )
        .inventory;
        World { config, inventory }
    })
}

/// One datagram: raw bytes, or a client request with arbitrary options
/// that may then be cut short and have a byte flipped.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..700),
        (
            0u8..6,
            prop_oneof![1u8..=8, any::<u8>()],
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just(50u8),
                        Just(54),
                        Just(60),
                        Just(77),
                        Just(93),
                        Just(97),
                        Just(175),
                        any::<u8>()
                    ],
                    proptest::collection::vec(any::<u8>(), 0..300),
                ),
                0..12,
            ),
            prop_oneof![Just([0u8; 4]), Just([10, 99, 0, 101]), any::<[u8; 4]>()],
            prop_oneof![Just([0u8; 4]), Just([10, 98, 0, 1]), any::<[u8; 4]>()],
            proptest::option::of(0usize..600),
            proptest::option::of((0usize..600, any::<u8>())),
        )
            .prop_map(|(mac, message, options, ciaddr, giaddr, cut, flip)| {
                let mut p = Packet::client_request([0x52, 0x54, 0, 0xf0, 0, mac], 7, message);
                p.ciaddr = Ipv4Addr::from(ciaddr);
                p.giaddr = Ipv4Addr::from(giaddr);
                for (code, value) in options {
                    p.set_option(code, value);
                }
                let mut b = p.encode();
                if let Some(n) = cut {
                    b.truncate(n);
                }
                if let Some((at, x)) = flip
                    && let Some(byte) = b.get_mut(at)
                {
                    *byte ^= x;
                }
                b
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn any_datagram_sequence_is_handled_safely(
        steps in proptest::collection::vec((datagram(), any::<bool>(), any::<bool>(), 0u64..600_000), 1..40)
    ) {
        let w = world();
        let mut leases = LeaseTable::default();
        let mut now = 1_000_000u64;
        for (d, proxy_mode, proxy_port, dt) in steps {
            now += dt;
            let Ok(packet) = Packet::decode(&d) else { continue };
            let Ok(req) = classify(&packet) else { continue };
            let ctx = Ctx {
                mode: if proxy_mode { DhcpMode::Proxy } else { DhcpMode::Full },
                pools: &w.config.dhcp.pools,
                inventory: &w.inventory,
                unknown: &w.config.unknown,
                unknown_gets_address: w.config.unknown_gets_address,
                unknown_chain: w.config.unknown_chain,
                server_ip: Ipv4Addr::new(10, 99, 0, 1),
                http_base: "http://10.99.0.1",
                loaders: Loaders::only(["undionly.kpxe", "ipxe.efi"]),
                firmware_lease_ms: None,
                port: if proxy_port { Port::Proxy } else { Port::Dhcp },
                now,
            };
            let src = SocketAddr::from(([10, 99, 0, 150], 68));
            let out = handle(&req, src, &mut leases, &ctx);
            if let Some(reply) = out.reply.as_ref().map(|r| &r.packet) {
                let yiaddr = reply.yiaddr;
                let kind = reply.message_type();
                if kind == Some(msg::OFFER) || kind == Some(msg::ACK) {
                    prop_assert!(
                        yiaddr.is_unspecified()
                            || w.config.dhcp.pools.iter().any(|p| p.contains(yiaddr))
                            || w.inventory.machines.iter().any(|m| m.ip == Some(yiaddr)),
                        "offered {yiaddr} outside the pools"
                    );
                }
                // What we send must decode again.
                prop_assert!(Packet::decode(&reply.encode()).is_ok());
            }
            let mut holders: HashMap<Ipv4Addr, _> = HashMap::new();
            for lease in leases.iter() {
                if let Some(other) = holders.insert(lease.ip, lease.mac) {
                    prop_assert!(other == lease.mac, "{} held by two MACs", lease.ip);
                }
            }
        }
    }
}
