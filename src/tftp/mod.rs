//! TFTP (RFC 1350, with RFC 2347/2348/2349 options and RFC 7440 windows):
//! read-only, for first-stage boot loaders.

pub mod client;
pub mod packet;
pub mod server;
pub mod source;
pub mod transfer;

pub use server::{Asked, Generator, TftpServer, TftpSettings, TftpStats};
