//! DHCP: datagrams through the path a socket's datagram takes — decode →
//! classify → handle — in full and proxy mode, on ports 67 and 4011,
//! against one lease table that lives through the input. Each record is a
//! datagram; its control byte picks the mode (bit 0), the port (bit 1) and
//! how much time passes before it (bits 2–7, 10 s each). A panic, an offer
//! outside the pools, a reply that does not decode again or an address held
//! by two MACs is a crash.

mod frames;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

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
        .expect("the fuzz config parses");
        // The example inventory: known machines, reservations, profiles.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nodes");
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

fn run(input: &[u8]) {
    let w = world();
    let mut leases = LeaseTable::default();
    let mut now = 1_000_000u64;
    for (ctrl, datagram) in frames::records(input) {
        now += u64::from(ctrl >> 2) * 10_000;
        let Ok(packet) = Packet::decode(datagram) else {
            continue;
        };
        let Ok(req) = classify(&packet) else {
            continue;
        };
        let ctx = Ctx {
            mode: if ctrl & 1 == 1 {
                DhcpMode::Proxy
            } else {
                DhcpMode::Full
            },
            pools: &w.config.dhcp.pools,
            inventory: &w.inventory,
            unknown: &w.config.unknown,
            unknown_gets_address: w.config.unknown_gets_address,
            unknown_chain: w.config.unknown_chain,
            server_ip: Ipv4Addr::new(10, 99, 0, 1),
            http_base: "http://10.99.0.1",
            loaders: Loaders::only(["undionly.kpxe", "ipxe.efi"]),
            firmware_lease_ms: None,
            port: if ctrl & 2 == 2 {
                Port::Proxy
            } else {
                Port::Dhcp
            },
            now,
        };
        let src = SocketAddr::from(([10, 99, 0, 150], 68));
        let out = handle(&req, src, &mut leases, &ctx);
        if let Some(reply) = out.reply.as_ref().map(|r| &r.packet) {
            let kind = reply.message_type();
            if kind == Some(msg::OFFER) || kind == Some(msg::ACK) {
                let ip = reply.yiaddr;
                assert!(
                    ip.is_unspecified()
                        || w.config.dhcp.pools.iter().any(|p| p.contains(ip))
                        || w.inventory.machines.iter().any(|m| m.ip == Some(ip)),
                    "offered {ip} outside the pools"
                );
            }
            assert!(
                Packet::decode(&reply.encode()).is_ok(),
                "a reply that does not decode"
            );
        }
        let mut holders = HashMap::new();
        for lease in leases.iter() {
            if let Some(other) = holders.insert(lease.ip, lease.mac) {
                assert!(other == lease.mac, "{} held by two MACs", lease.ip);
            }
        }
    }
}

fn main() {
    world();
    afl::fuzz!(|data: &[u8]| run(data));
}
