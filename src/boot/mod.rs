//! What a machine boots: firmware classification and (later) the decision
//! and template rendering shared by the DHCP and HTTP sides.

pub mod arch;
pub mod decide;
