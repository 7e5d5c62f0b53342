//! The console's backend inside the process that runs the boot services:
//! state from the live model, commands through [`Control`], a machine's
//! detail rendered from the served inventory snapshot. File writes and
//! template rendering run on blocking threads, never on the console's.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use crate::boot::render::{Urls, served_report};
use crate::config::UnknownPolicy;
use crate::control::Control;
use crate::event::Command;
use crate::ident::Mac;
use crate::inventory::SharedInventory;
use crate::live::LiveModel;
use crate::tui::{Backend, Feed, Origin};

pub struct EmbeddedBackend {
    live: Arc<LiveModel>,
    control: Arc<Control>,
    inventory: SharedInventory,
    policy: UnknownPolicy,
    urls: Urls,
}

impl EmbeddedBackend {
    pub fn new(
        live: Arc<LiveModel>,
        control: Arc<Control>,
        inventory: SharedInventory,
        policy: UnknownPolicy,
        urls: Urls,
    ) -> EmbeddedBackend {
        EmbeddedBackend {
            live,
            control,
            inventory,
            policy,
            urls,
        }
    }
}

impl Backend for EmbeddedBackend {
    fn origin(&self) -> Origin {
        Origin::Embedded
    }

    fn feed(&self) -> mpsc::Receiver<Feed> {
        let (tx, rx) = mpsc::channel(4096);
        let live = self.live.clone();
        tokio::spawn(async move {
            loop {
                let (model, mut events) = live.snapshot_and_subscribe();
                if tx.send(Feed::Snapshot(Box::new(model))).await.is_err() {
                    return;
                }
                loop {
                    match events.recv().await {
                        Ok(e) => {
                            if tx.send(Feed::Event(e)).await.is_err() {
                                return;
                            }
                        }
                        // Fell behind: start over from a fresh snapshot.
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        });
        rx
    }

    async fn execute(&self, command: Command) -> Result<String, String> {
        let control = self.control.clone();
        tokio::task::spawn_blocking(move || control.execute(command))
            .await
            .map_err(|e| e.to_string())?
    }

    async fn detail(&self, mac: Mac) -> String {
        let inventory = self.inventory.load_full();
        let (policy, urls) = (self.policy.clone(), self.urls.clone());
        // Rendering runs the machine's templates: keep it off the runtime.
        tokio::task::spawn_blocking(move || served_report(&inventory, &policy, &mac, &urls))
            .await
            .unwrap_or_else(|e| format!("cannot render: {e}"))
    }
}
