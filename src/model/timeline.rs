//! A machine's boot timeline: typed steps that carry the ids they refer to,
//! the folding of repeats, and the one function that words a step.
//!
//! Steps are state, not text: a finishing transfer finds its own step by
//! transfer id, and the wording is produced only when something shows it
//! (the console's detail view, the API's `what` field).

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::boot::ScriptKind;
use crate::boot::arch::Firmware;
use crate::boot::decide::Chain;
use crate::boot::grub::Stage;
use crate::clock::Millis;
use crate::dhcp::{DhcpMessage, DhcpReply, LeaseEnd};
use crate::event::Protocol;

/// Steps kept per machine; the oldest go first.
pub const TIMELINE_LEN: usize = 64;

/// Which boot stage sent a DHCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DhcpStage {
    /// iPXE (it reports the firmware too, but iPXE is what matters here).
    Ipxe,
    /// The firmware's own PXE client.
    Firmware(Firmware),
    /// A client that said nothing about its firmware.
    Dhcp,
}

impl DhcpStage {
    pub fn new(firmware: Option<Firmware>, ipxe: bool) -> DhcpStage {
        match (ipxe, firmware) {
            (true, _) => DhcpStage::Ipxe,
            (false, Some(f)) => DhcpStage::Firmware(f),
            (false, None) => DhcpStage::Dhcp,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DhcpStage::Ipxe => "iPXE",
            DhcpStage::Firmware(f) => f.label(),
            DhcpStage::Dhcp => "DHCP",
        }
    }
}

/// What happened at one step of a boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    DhcpSeen {
        stage: DhcpStage,
        message: DhcpMessage,
    },
    DhcpReplied {
        reply: DhcpReply,
        boot_file: Option<String>,
    },
    LeaseEnded {
        ip: Ipv4Addr,
        why: LeaseEnd,
    },
    NoFreeAddress {
        subnet: String,
    },
    /// A download; `id` is the transfer's (the newest, when repeats fold).
    Transfer {
        id: u64,
        protocol: Protocol,
        path: String,
    },
    /// A firmware asking a file's size (RRQ with tsize, aborted at OACK).
    SizeProbe {
        path: String,
    },
    /// A boot script: iPXE's, or (chain `grub`) the machine's GRUB config.
    Script {
        kind: ScriptKind,
        profile: Option<String>,
        #[serde(default)]
        chain: Chain,
    },
    /// GRUB could not take a step (`linux`, `initrd`, `boot`) and said so.
    BootFailed {
        stage: Stage,
    },
    Config {
        name: String,
    },
    InstallDone,
}

impl StepKind {
    /// Whether a new step repeats `self` and folds into it: the same words,
    /// so a ROM re-fetching a file is one step with a count whatever the
    /// transfer ids.
    fn is_repeated_by(&self, new: &StepKind) -> bool {
        match (self, new) {
            (
                StepKind::Transfer { protocol, path, .. },
                StepKind::Transfer {
                    protocol: p,
                    path: q,
                    ..
                },
            ) => protocol == p && path == q,
            _ => self == new,
        }
    }
}

/// The words the console and the API show for a step.
impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepKind::DhcpSeen { stage, message } => {
                write!(f, "{} {}", stage.label(), message.name())
            }
            StepKind::DhcpReplied {
                reply,
                boot_file: Some(file),
            } => write!(f, "{} → {file}", reply.name()),
            StepKind::DhcpReplied {
                reply,
                boot_file: None,
            } => f.write_str(reply.name()),
            StepKind::LeaseEnded { ip, why } => {
                write!(f, "lease {ip} {}", lease_end_word(*why))
            }
            StepKind::NoFreeAddress { subnet } => write!(f, "no free address in {subnet}"),
            StepKind::Transfer { protocol, path, .. } => write!(f, "{} {path}", protocol.name()),
            StepKind::SizeProbe { path } => write!(f, "TFTP size probe {path}"),
            StepKind::Script {
                kind,
                profile,
                chain,
            } => {
                let what = match chain {
                    Chain::Ipxe => "script",
                    Chain::Grub => "grub.cfg",
                };
                write!(f, "{what} {}", kind.name())?;
                match profile {
                    Some(p) => write!(f, " ({p})"),
                    None => Ok(()),
                }
            }
            StepKind::BootFailed { stage } => write!(f, "GRUB {} failed", stage.name()),
            StepKind::Config { name } => write!(f, "config {name}"),
            StepKind::InstallDone => f.write_str("install done"),
        }
    }
}

fn lease_end_word(why: LeaseEnd) -> &'static str {
    match why {
        LeaseEnd::Released => "released",
        LeaseEnd::Expired => "expired",
        LeaseEnd::Declined => "declined",
        LeaseEnd::Operator => "operator",
    }
}

/// One step in a machine's boot timeline.
///
/// Serialised with its wording as `what` beside the typed `kind`, so API
/// readers (and the firmware tests) need not know the step vocabulary;
/// `what` is ignored when read back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Step {
    pub at: Millis,
    pub kind: StepKind,
    /// How long the step took, once it finished.
    pub millis: Option<u64>,
    /// Identical consecutive steps (a ROM re-sending DISCOVER) fold into one.
    pub repeats: u32,
    pub failed: bool,
}

impl Step {
    /// The step's words, as shown.
    pub fn what(&self) -> String {
        self.kind.to_string()
    }
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            at: Millis,
            kind: &'a StepKind,
            what: String,
            millis: Option<u64>,
            repeats: u32,
            failed: bool,
        }
        Shown {
            at: self.at,
            kind: &self.kind,
            what: self.what(),
            millis: self.millis,
            repeats: self.repeats,
            failed: self.failed,
        }
        .serialize(serializer)
    }
}

/// Appends a step, folding it into the last one when it repeats it.
pub(super) fn record(timeline: &mut VecDeque<Step>, at: Millis, kind: StepKind, failed: bool) {
    if let Some(last) = timeline.back_mut()
        && last.failed == failed
        && last.kind.is_repeated_by(&kind)
    {
        last.repeats += 1;
        last.at = at;
        // A folded transfer step now stands for the newest transfer.
        last.kind = kind;
        return;
    }
    if timeline.len() == TIMELINE_LEN {
        timeline.pop_front();
    }
    timeline.push_back(Step {
        at,
        kind,
        millis: None,
        repeats: 1,
        failed,
    });
}

/// The step of transfer `id`, newest first.
pub(super) fn transfer_step(timeline: &mut VecDeque<Step>, id: u64) -> Option<&mut Step> {
    timeline
        .iter_mut()
        .rev()
        .find(|s| matches!(s.kind, StepKind::Transfer { id: i, .. } if i == id))
}

/// Rewords transfer `id`'s step as a size probe: the probe is normal
/// firmware behaviour, not a download. When it is the last step it is
/// recorded afresh, so a firmware probing the same file twice shows one
/// step with a count.
pub(super) fn mark_size_probe(timeline: &mut VecDeque<Step>, at: Millis, id: u64) {
    let is_last = timeline
        .back()
        .is_some_and(|s| matches!(s.kind, StepKind::Transfer { id: i, .. } if i == id));
    let Some(step) = transfer_step(timeline, id) else {
        return;
    };
    let StepKind::Transfer { path, .. } = &step.kind else {
        return;
    };
    let probe = StepKind::SizeProbe { path: path.clone() };
    if is_last {
        timeline.pop_back();
        record(timeline, at, probe, false);
    } else {
        step.kind = probe;
        step.failed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_worded_as_the_console_shows_it() {
        let cases = [
            (
                StepKind::DhcpSeen {
                    stage: DhcpStage::new(Some(Firmware::UefiX64), false),
                    message: DhcpMessage::Discover,
                },
                "UEFI DISCOVER",
            ),
            (
                StepKind::DhcpSeen {
                    stage: DhcpStage::new(Some(Firmware::UefiX64), true),
                    message: DhcpMessage::Request,
                },
                "iPXE REQUEST",
            ),
            (
                StepKind::DhcpReplied {
                    reply: DhcpReply::Offer,
                    boot_file: Some("ipxe.efi".into()),
                },
                "OFFER → ipxe.efi",
            ),
            (
                StepKind::LeaseEnded {
                    ip: Ipv4Addr::new(10, 99, 0, 100),
                    why: LeaseEnd::Released,
                },
                "lease 10.99.0.100 released",
            ),
            (
                StepKind::SizeProbe {
                    path: "undionly.kpxe".into(),
                },
                "TFTP size probe undionly.kpxe",
            ),
            (StepKind::InstallDone, "install done"),
            (
                StepKind::Script {
                    kind: ScriptKind::Install,
                    profile: Some("sb".into()),
                    chain: Chain::Grub,
                },
                "grub.cfg install (sb)",
            ),
            (
                StepKind::Script {
                    kind: ScriptKind::Hold,
                    profile: None,
                    chain: Chain::Ipxe,
                },
                "script hold",
            ),
            (
                StepKind::BootFailed {
                    stage: Stage::Kernel,
                },
                "GRUB kernel failed",
            ),
        ];
        for (kind, words) in cases {
            assert_eq!(kind.to_string(), words);
        }
    }

    #[test]
    fn a_step_reads_back_from_its_json_with_its_words_beside_it() {
        let mut timeline = VecDeque::new();
        record(
            &mut timeline,
            5,
            StepKind::Transfer {
                id: 3,
                protocol: Protocol::Tftp,
                path: "ipxe.efi".into(),
            },
            false,
        );
        let json = serde_json::to_value(&timeline[0]).unwrap();
        assert_eq!(json["what"], "TFTP ipxe.efi");
        let back: Step = serde_json::from_value(json).unwrap();
        assert_eq!(back, timeline[0]);
    }

    #[test]
    fn a_refetched_file_folds_and_its_step_follows_the_newest_transfer() {
        let mut timeline = VecDeque::new();
        let fetch = |id| StepKind::Transfer {
            id,
            protocol: Protocol::Tftp,
            path: "ipxe.efi".into(),
        };
        record(&mut timeline, 1, fetch(1), false);
        record(&mut timeline, 2, fetch(2), false);
        assert_eq!((timeline.len(), timeline[0].repeats), (1, 2));
        assert!(transfer_step(&mut timeline, 2).is_some());
        assert!(transfer_step(&mut timeline, 1).is_none());
    }

    #[test]
    fn a_probe_behind_later_steps_is_reworded_in_place() {
        let mut timeline = VecDeque::new();
        record(
            &mut timeline,
            1,
            StepKind::Transfer {
                id: 9,
                protocol: Protocol::Tftp,
                path: "undionly.kpxe".into(),
            },
            false,
        );
        record(
            &mut timeline,
            2,
            StepKind::DhcpSeen {
                stage: DhcpStage::Dhcp,
                message: DhcpMessage::Request,
            },
            false,
        );
        mark_size_probe(&mut timeline, 3, 9);
        let words: Vec<String> = timeline.iter().map(Step::what).collect();
        assert_eq!(words, ["TFTP size probe undionly.kpxe", "DHCP REQUEST"]);
    }
}
