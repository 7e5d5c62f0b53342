//! What a machine boots: firmware classification, the decision shared by
//! the DHCP and HTTP sides, and rendering of scripts and installer configs.

pub mod arch;
pub mod decide;
pub mod render;
