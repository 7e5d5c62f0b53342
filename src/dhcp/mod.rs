//! DHCP and proxyDHCP for PXE firmware and iPXE (RFC 2131/2132/4578 and
//! the PXE specification).

pub mod classify;
pub mod handler;
pub mod leases;
pub mod server;
pub mod store;
pub mod wire;
