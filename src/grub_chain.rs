//! The GRUB chain's generated TFTP files (`boot::grub` renders them): the
//! entry loop, each machine's config, the answers to SMBIOS claims and to
//! failure reports. This is where a GRUB request meets the live state: the
//! inventory snapshot, the lease table (who holds the asking address), the
//! capability key, the event bus.
//!
//! A machine is found as `/boot.ipxe` finds it (`boot::identity::resolve`):
//! first by wire identity (the MAC holding the lease of the asking address,
//! else the MAC in the path; the UUID DHCP saw in option 97), then by the
//! claims GRUB's `smbios` reads. A claim only selects a machine the
//! inventory holds; what it boots is its file's decision.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::boot::decide::{Chain, decide_for};
use crate::boot::grub::{self, Claim, Request};
use crate::boot::identity::{self, Query, Reported};
use crate::boot::render::Urls;
use crate::config::Config;
use crate::event::{Bus, EventKind, Level};
use crate::http::Bindings;
use crate::http::LeaseView;
use crate::http::auth::Secrets;
use crate::ident::Mac;
use crate::inventory::{Inventory, Machine, SharedInventory};
use crate::tftp::server::{Asked, Generator};

/// What the GRUB chain's files are made from.
pub struct GrubChain {
    pub config: Arc<Config>,
    pub inventory: SharedInventory,
    /// The main HTTP base; a machine on another segment gets its own.
    pub urls: Urls,
    pub secrets: Arc<Secrets>,
    pub bus: Bus,
    pub leases: Arc<dyn LeaseView>,
    /// Shared with the HTTP side: a machine known without a MAC is bound
    /// to the MAC its config was served to, whichever chain served it.
    pub bindings: Bindings,
}

impl GrubChain {
    /// The TFTP generator: answers GRUB's names, and nothing else.
    pub fn generator(self) -> Generator {
        let chain = Arc::new(self);
        Arc::new(move |asked: &Asked<'_>| chain.answer(asked).map(String::into_bytes))
    }

    fn answer(&self, asked: &Asked<'_>) -> Option<String> {
        let request = grub::parse(asked.path)?;
        // A machine on another segment is told that segment's address, for
        // TFTP and HTTP alike (as `http::boot` does for iPXE scripts).
        let config = &self.config;
        let segment = config.segment_address(asked.local);
        let server = segment.unwrap_or(config.address);
        let segment_urls = segment.and_then(|here| self.urls.on_segment(config.address, here));
        let at = Place {
            server,
            urls: segment_urls.as_ref().unwrap_or(&self.urls),
            client: asked.client,
        };
        let inv = self.inventory.load();
        Some(match request {
            Request::Entry => grub::entry(server),
            Request::Machine(mac) => {
                let (found, mac) = self
                    .resolve(&inv, asked.client, mac, Query::default())
                    .unwrap_or((None, mac));
                self.config_for(&inv, found, &mac, &at)
            }
            Request::Claim { mac, kind, value } => {
                let query = match kind {
                    Claim::Serial => Query {
                        serial: Some(value),
                        ..Default::default()
                    },
                    Claim::Asset => Query {
                        asset: Some(value),
                        ..Default::default()
                    },
                };
                match self.resolve(&inv, asked.client, mac, query) {
                    Ok((Some(found), mac)) => self.config_for(&inv, Some(found), &mac, &at),
                    Ok((None, _)) => grub::no_claim(kind, "no machine in the inventory has it"),
                    Err(refused) => grub::no_claim(kind, &refused.to_string()),
                }
            }
            Request::Failed { mac, stage } => {
                self.bus.emit(EventKind::BootFailed {
                    mac,
                    hostname: inv.by_mac(&mac).map(|m| m.hostname.clone()),
                    stage,
                    reason: stage.reason().into(),
                });
                grub::failure_noted(stage)
            }
        })
    }

    /// The machine a request from `client` names, and the MAC to render
    /// for: the lease's MAC wins over the path's, which stands where there
    /// is no lease (proxy mode). Refused when a claim breaks a bound.
    fn resolve<'a>(
        &self,
        inv: &'a Inventory,
        client: IpAddr,
        mac: Mac,
        query: Query,
    ) -> Result<(Option<&'a Machine>, Mac), identity::Refused> {
        let reported = Reported {
            mac: Some(mac),
            ..query.validate()?
        };
        let (lease_mac, lease_uuid) = self.leases.wire(client);
        let found = identity::resolve(inv, lease_mac, lease_uuid, &reported);
        Ok((found.machine, found.mac.unwrap_or(mac)))
    }

    /// One machine's config, with fresh capability tokens (each fetch is a
    /// boot of its own), announced on the bus.
    fn config_for(
        &self,
        inv: &Inventory,
        machine: Option<&Machine>,
        mac: &Mac,
        at: &Place<'_>,
    ) -> String {
        let decision = decide_for(machine, &self.config.unknown);
        let script = grub::machine(inv, machine, &decision, mac, at.urls, at.server);
        if let Some(reason) = &script.error {
            self.bus.emit(EventKind::Log {
                level: Level::Error,
                target: "grub".into(),
                message: format!("GRUB config for {mac}: {reason}"),
            });
        }
        self.bus.emit(EventKind::ScriptServed {
            client: at.client,
            mac: Some(*mac),
            hostname: machine.map(|m| m.hostname.clone()),
            kind: script.kind,
            profile: script.profile.clone(),
            chain: Chain::Grub,
        });
        let Some(m) = machine else {
            return script.text;
        };
        let boot = self.secrets.capabilities.mint(
            crate::clock::now_millis() / 1000,
            self.config.http.capability_lifetime.as_secs(),
        );
        // A machine whose file names no MAC is bound, for this boot, to
        // the MAC it was served to.
        let bound = match m.macs.first() {
            Some(own) => *own,
            None => {
                self.bindings.bind(&m.hostname, *mac);
                *mac
            }
        };
        self.secrets
            .capabilities
            .fill(&script.text, &m.hostname, Some(&bound), &boot)
    }
}

/// Where a request came from and which addresses it is told.
struct Place<'a> {
    server: Ipv4Addr,
    urls: &'a Urls,
    client: IpAddr,
}
