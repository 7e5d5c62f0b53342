//! pxedeck: DHCP, TFTP and HTTP boot services with a live terminal console.
//!
//! Everything the console shows is a fold over one stream of [`event::Event`]s;
//! see `docs/architecture.md`.

pub mod auto_adopt;
pub mod bmc;
pub mod boot;
pub mod bootfs;
pub mod capability;
pub mod clock;
pub mod config;
pub mod control;
pub mod counters;
pub mod demo;
pub mod dhcp;
pub mod embedded;
pub mod event;
pub mod filecache;
pub mod git;
pub mod grub_chain;
pub mod history;
pub mod http;
pub mod ident;
pub mod inventory;
pub mod live;
pub mod logging;
pub mod model;
pub mod net;
pub mod progress;
pub mod services;
pub mod sim;
pub mod systemd;
pub mod tftp;
pub mod tui;
pub mod yaml;
