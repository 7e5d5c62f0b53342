//! One read transfer as a state machine: packets and time in, what to send
//! and how it ended out. No sockets, no files, no clock of its own — the
//! server shell (and the tests) drive it.
//!
//! Blocks are counted with absolute `u64` numbers internally and put on the
//! wire modulo 65536, so files past 32 MiB at 512-byte blocks wrap to 0
//! (RFC 1350 defines no rollover; wrapping to 0 is what clients expect).
//! With a window (RFC 7440) the sender keeps up to `windowsize` blocks past
//! the last acknowledged one in flight. An ACK acknowledges everything up to
//! its block and slides the window: only blocks never sent go out, so a
//! client that ACKs every block gets each block once (resending the whole
//! window on every ACK sent a 715-block file 58 times over). A client that
//! saw a gap says so by repeating its ACK; that resends the window from the
//! gap, at most once per window's worth of progress, so repeated ACKs
//! cannot amplify either.
//!
//! Every transfer ends when its client has been silent for `max_idle`,
//! whatever timeout it asked for: a slot is never held for long by a client
//! that left.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::packet::{ErrorCode, Packet};

/// What the server accepts from clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest blksize granted (RFC 2348); clamp to the path MTU − 32.
    pub max_blksize: u16,
    pub max_windowsize: u16,
    /// Retransmit timeout when the client asks for none (RFC 2349).
    pub default_timeout: Duration,
    /// The longest timeout a client may ask for; a larger one is not
    /// acknowledged (RFC 2349 lets the server only echo or refuse it).
    pub max_timeout: Duration,
    /// A transfer whose client has not made progress for this long fails,
    /// whatever its timeout and backoff would allow.
    pub max_idle: Duration,
    /// Retransmissions of one window before giving up.
    pub max_retries: u32,
}

impl Limits {
    /// The blksize cap for a path with this MTU: 20 bytes of IPv4 header,
    /// 8 of UDP and 4 of TFTP header must fit around each block.
    pub fn clamp_to_mtu(mut self, mtu: u32) -> Limits {
        let fits = mtu.saturating_sub(32).clamp(8, 65464) as u16;
        self.max_blksize = self.max_blksize.min(fits);
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            default_timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(10),
            max_idle: Duration::from_secs(30),
            max_retries: 5,
        }
    }
}

/// The outcome of option negotiation (RFC 2347).
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    pub timeout: Duration,
    /// The client asked for `tsize`: a later abort is a size probe.
    pub tsize_asked: bool,
    /// Options to confirm in the OACK, in the client's order; empty means
    /// no OACK (send DATA 1 straight away).
    pub oack: Vec<(String, String)>,
}

/// Accepts the options we understand with values we allow: only what the
/// client asked for, blksize and windowsize lowered to our caps (never
/// raised), tsize answered with the real size.
pub fn negotiate(options: &[(String, String)], size: u64, limits: &Limits) -> Negotiated {
    let mut n = Negotiated {
        blksize: 512,
        windowsize: 1,
        timeout: limits.default_timeout,
        tsize_asked: false,
        oack: Vec::new(),
    };
    for (name, value) in options {
        let number = value.trim().parse::<u64>().ok();
        match (name.as_str(), number) {
            ("blksize", Some(v))
                if (8..=65464).contains(&v) && !n.oack.iter().any(|(k, _)| k == name) =>
            {
                n.blksize = (v as u16).min(limits.max_blksize);
                n.oack.push((name.clone(), n.blksize.to_string()));
            }
            ("tsize", Some(_)) if !n.tsize_asked => {
                n.tsize_asked = true;
                n.oack.push((name.clone(), size.to_string()));
            }
            ("timeout", Some(v))
                if (1..=255).contains(&v)
                    && Duration::from_secs(v) <= limits.max_timeout
                    && !n.oack.iter().any(|(k, _)| k == name) =>
            {
                n.timeout = Duration::from_secs(v);
                n.oack.push((name.clone(), v.to_string()));
            }
            ("windowsize", Some(v))
                if (1..=65535).contains(&v) && !n.oack.iter().any(|(k, _)| k == name) =>
            {
                n.windowsize = (v as u16).min(limits.max_windowsize);
                n.oack.push((name.clone(), n.windowsize.to_string()));
            }
            _ => {} // unknown or malformed options are simply not acknowledged
        }
    }
    n
}

/// What the shell should send now.
#[derive(Debug, Clone, PartialEq)]
pub enum Transmit {
    Oack,
    /// DATA for these absolute block numbers (see [`Transfer::block`]).
    Blocks(RangeInclusive<u64>),
    Error(ErrorCode, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Running,
    Done,
    Failed {
        reason: String,
        /// A firmware size probe (tsize asked, aborted after the OACK).
        probe: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    pub send: Option<Transmit>,
    pub status: Status,
}

impl Reaction {
    fn running(send: Option<Transmit>) -> Reaction {
        Reaction {
            send,
            status: Status::Running,
        }
    }

    fn failed(reason: String, probe: bool) -> Reaction {
        Reaction {
            send: None,
            status: Status::Failed { reason, probe },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// OACK sent, waiting for ACK 0.
    Oack,
    Data,
    Finished,
}

#[derive(Debug, Clone)]
pub struct Transfer {
    size: u64,
    blksize: u64,
    window: u64,
    /// The absolute number of the final (short, maybe empty) block.
    last: u64,
    acked: u64,
    /// Highest absolute block sent so far (at most a window past `acked`).
    sent: u64,
    /// A repeated ACK resends the window only once `acked` has reached
    /// this: the end of the last window resent that way.
    resend_guard: u64,
    phase: Phase,
    retries: u32,
    max_retries: u32,
    base_timeout: Duration,
    /// When the client last made progress (or the transfer started).
    progressed: Instant,
    max_idle: Duration,
    deadline: Instant,
    tsize_asked: bool,
}

impl Transfer {
    /// Starts a transfer of `size` bytes; returns it with what to send first.
    pub fn start(n: &Negotiated, size: u64, limits: &Limits, now: Instant) -> (Transfer, Transmit) {
        let blksize = u64::from(n.blksize);
        let mut t = Transfer {
            size,
            blksize,
            window: u64::from(n.windowsize.max(1)),
            last: size / blksize + 1,
            acked: 0,
            sent: 0,
            resend_guard: 0,
            phase: Phase::Oack,
            retries: 0,
            max_retries: limits.max_retries,
            base_timeout: n.timeout,
            progressed: now,
            max_idle: limits.max_idle,
            deadline: now,
            tsize_asked: n.tsize_asked,
        };
        t.arm(now);
        if n.oack.is_empty() {
            // The first window is never empty: the last block is >= 1.
            let first = t.next_window(now).unwrap_or(Transmit::Blocks(1..=1));
            (t, first)
        } else {
            (t, Transmit::Oack)
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn blksize(&self) -> u16 {
        self.blksize as u16
    }

    /// Bytes the client has acknowledged.
    pub fn bytes_acked(&self) -> u64 {
        (self.acked * self.blksize).min(self.size)
    }

    /// Where an absolute block lies in the file, and its wire number.
    pub fn block(&self, abs: u64) -> (u64, usize, u16) {
        let offset = (abs - 1) * self.blksize;
        let len = self.size.saturating_sub(offset).min(self.blksize) as usize;
        (offset, len, (abs & 0xffff) as u16)
    }

    /// The next retransmission, never past the idle limit.
    fn arm(&mut self, now: Instant) {
        self.deadline = (now + self.timeout()).min(self.progressed + self.max_idle);
    }

    /// Fills the window after `acked` with blocks not sent yet.
    fn next_window(&mut self, now: Instant) -> Option<Transmit> {
        self.phase = Phase::Data;
        let from = self.sent.max(self.acked) + 1;
        let to = (self.acked + self.window).min(self.last);
        self.arm(now);
        (from <= to).then(|| {
            self.sent = to;
            Transmit::Blocks(from..=to)
        })
    }

    fn timeout(&self) -> Duration {
        // Exponential backoff, capped at eight times the negotiated timeout.
        self.base_timeout * (1u32 << self.retries.min(3))
    }

    /// Maps a wire block number onto the blocks in flight.
    fn absolute(&self, wire: u16) -> Option<u64> {
        (self.acked..=self.sent)
            .rev()
            .find(|&abs| (abs & 0xffff) as u16 == wire)
    }

    pub fn on_packet(&mut self, packet: &Packet<'_>, now: Instant) -> Reaction {
        match (self.phase, packet) {
            (Phase::Finished, _) => Reaction::running(None),
            (Phase::Oack, Packet::Ack { block: 0 }) => {
                self.retries = 0;
                self.progressed = now;
                Reaction::running(self.next_window(now))
            }
            (Phase::Oack, Packet::Error { code, message }) => {
                self.phase = Phase::Finished;
                if self.tsize_asked {
                    Reaction::failed(
                        format!("size probe (client ended after OACK: {code} {message})"),
                        true,
                    )
                } else {
                    Reaction::failed(
                        format!("client refused the options: {code} {message}"),
                        false,
                    )
                }
            }
            (Phase::Data, Packet::Ack { block }) => {
                let Some(abs) = self.absolute(*block) else {
                    return Reaction::running(None); // stale or foreign ACK
                };
                if abs == self.acked {
                    return Reaction::running(self.on_repeated_ack(now));
                }
                self.acked = abs;
                self.retries = 0;
                self.progressed = now;
                if self.acked == self.last {
                    self.phase = Phase::Finished;
                    return Reaction {
                        send: None,
                        status: Status::Done,
                    };
                }
                // The window slides past the ACKed block. Blocks after it
                // that are still in flight are not sent again here: a
                // client that ACKs every block would otherwise get each
                // one `windowsize` times.
                Reaction::running(self.next_window(now))
            }
            (_, Packet::Error { code, message }) => {
                self.phase = Phase::Finished;
                Reaction::failed(format!("client error {code}: {message}"), false)
            }
            (
                _,
                Packet::Rrq { .. } | Packet::Wrq { .. } | Packet::Data { .. } | Packet::Oack { .. },
            ) => Reaction::running(Some(Transmit::Error(
                ErrorCode::IllegalOperation,
                "unexpected packet".into(),
            ))),
            (Phase::Oack, Packet::Ack { .. }) => Reaction::running(None),
        }
    }

    /// The client ACKed `acked` again. With windowsize 1 that is the
    /// Sorcerer's Apprentice case: never retransmit on it, the timeout
    /// covers real loss. With a window it is how a receiver reports a gap
    /// (RFC 7440 §4): resend what is in flight after `acked`, but only once
    /// the previous resend of this kind has been acknowledged, so repeated
    /// ACKs cost at most one extra window per window of progress.
    fn on_repeated_ack(&mut self, now: Instant) -> Option<Transmit> {
        if self.window == 1 || self.sent <= self.acked || self.acked < self.resend_guard {
            return None;
        }
        self.resend_guard = self.sent;
        self.arm(now);
        Some(Transmit::Blocks(self.acked + 1..=self.sent))
    }

    /// Called when `deadline` has passed without progress.
    pub fn on_timeout(&mut self, now: Instant) -> Reaction {
        if self.phase == Phase::Finished || now < self.deadline {
            return Reaction::running(None);
        }
        if now >= self.progressed + self.max_idle {
            self.phase = Phase::Finished;
            return Reaction::failed(
                format!(
                    "the client went silent for {} s",
                    self.max_idle.as_secs_f64().round()
                ),
                false,
            );
        }
        self.retries += 1;
        if self.retries > self.max_retries {
            let what = match self.phase {
                Phase::Oack => "the OACK".to_string(),
                _ => format!("block {}", self.acked + 1),
            };
            self.phase = Phase::Finished;
            return Reaction::failed(
                format!(
                    "timed out waiting for the ACK of {what} after {} tries",
                    self.max_retries + 1
                ),
                false,
            );
        }
        self.arm(now);
        match self.phase {
            Phase::Oack => Reaction::running(Some(Transmit::Oack)),
            _ => Reaction::running(Some(Transmit::Blocks(self.acked + 1..=self.sent))),
        }
    }
}

#[cfg(test)]
mod tests;
