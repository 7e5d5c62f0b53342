//! One read transfer as a state machine: packets and time in, what to send
//! and how it ended out. No sockets, no files, no clock of its own — the
//! server shell (and the tests) drive it.
//!
//! Blocks are counted with absolute `u64` numbers internally and put on the
//! wire modulo 65536, so files past 32 MiB at 512-byte blocks wrap to 0
//! (RFC 1350 defines no rollover; wrapping to 0 is what clients expect).
//! With a window (RFC 7440) the sender sends up to
//! `windowsize` blocks past the last acknowledged one; an ACK acknowledges
//! everything up to its block and the next window starts right after it.

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
                if (1..=255).contains(&v) && !n.oack.iter().any(|(k, _)| k == name) =>
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
    /// Highest absolute block sent in the current window.
    sent: u64,
    phase: Phase,
    retries: u32,
    max_retries: u32,
    base_timeout: Duration,
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
            phase: Phase::Oack,
            retries: 0,
            max_retries: limits.max_retries,
            base_timeout: n.timeout,
            deadline: now + n.timeout,
            tsize_asked: n.tsize_asked,
        };
        if n.oack.is_empty() {
            let first = t.next_window(now);
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

    fn next_window(&mut self, now: Instant) -> Transmit {
        self.phase = Phase::Data;
        let from = self.acked + 1;
        self.sent = (self.acked + self.window).min(self.last);
        self.deadline = now + self.timeout();
        Transmit::Blocks(from..=self.sent)
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
                Reaction::running(Some(self.next_window(now)))
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
                    // Duplicate ACK: never retransmit on it (Sorcerer's
                    // Apprentice); the timeout covers real loss.
                    return Reaction::running(None);
                }
                self.acked = abs;
                self.retries = 0;
                if self.acked == self.last {
                    self.phase = Phase::Finished;
                    return Reaction {
                        send: None,
                        status: Status::Done,
                    };
                }
                // The next window starts right after the ACKed block, also
                // when only part of the window was acknowledged (RFC 7440:
                // the client saw a gap and asks for a resend from there).
                Reaction::running(Some(self.next_window(now)))
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

    /// Called when `deadline` has passed without progress.
    pub fn on_timeout(&mut self, now: Instant) -> Reaction {
        if self.phase == Phase::Finished || now < self.deadline {
            return Reaction::running(None);
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
        self.deadline = now + self.timeout();
        match self.phase {
            Phase::Oack => Reaction::running(Some(Transmit::Oack)),
            _ => Reaction::running(Some(Transmit::Blocks(self.acked + 1..=self.sent))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::packet::Packet;

    fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn mtu_clamp() {
        assert_eq!(Limits::default().clamp_to_mtu(1500).max_blksize, 1468);
        assert_eq!(
            Limits::default().clamp_to_mtu(9000).max_blksize,
            1468,
            "the configured cap still holds"
        );
        assert_eq!(
            Limits {
                max_blksize: 65464,
                ..Limits::default()
            }
            .clamp_to_mtu(9000)
            .max_blksize,
            8968
        );
        assert_eq!(Limits::default().clamp_to_mtu(1280).max_blksize, 1248);
    }

    #[test]
    fn negotiation_accepts_only_what_was_asked_and_never_raises() {
        let l = Limits::default();
        let n = negotiate(&opts(&[("blksize", "1432"), ("tsize", "0")]), 4242, &l);
        assert_eq!(n.oack, opts(&[("blksize", "1432"), ("tsize", "4242")]));
        assert_eq!((n.blksize, n.windowsize), (1432, 1));
        let n = negotiate(&opts(&[("blksize", "65464"), ("windowsize", "500")]), 1, &l);
        assert_eq!(n.oack, opts(&[("blksize", "1468"), ("windowsize", "64")]));
        let n = negotiate(
            &opts(&[
                ("blksize", "7"),
                ("timeout", "0"),
                ("multicast", ""),
                ("windowsize", "x"),
            ]),
            1,
            &l,
        );
        assert!(
            n.oack.is_empty(),
            "invalid values and unknown options are not acknowledged: {:?}",
            n.oack
        );
        assert_eq!(n.blksize, 512);
        let n = negotiate(&opts(&[("timeout", "3")]), 1, &l);
        assert_eq!(
            (n.timeout, n.oack.clone()),
            (Duration::from_secs(3), opts(&[("timeout", "3")]))
        );
    }

    /// A receiver as RFC 1350/7440 clients behave: ACK every `window`
    /// in-order blocks (and the last one); on a gap, ACK the last in-order
    /// block; on a duplicate, re-ACK.
    struct Client {
        window: u64,
        next: u64,
        since_ack: u64,
        data: Vec<u8>,
        done: bool,
        blksize: usize,
    }

    impl Client {
        fn receive(&mut self, abs: u64, payload: &[u8]) -> Option<u16> {
            if abs != self.next {
                self.since_ack = 0;
                return Some(((self.next - 1) & 0xffff) as u16);
            }
            self.data.extend_from_slice(payload);
            self.next += 1;
            self.since_ack += 1;
            let last = payload.len() < self.blksize;
            if last {
                self.done = true;
            }
            if last || self.since_ack == self.window {
                self.since_ack = 0;
                return Some(((abs) & 0xffff) as u16);
            }
            None
        }
    }

    /// Runs a whole transfer through a lossy "network": `drop_data(n)` and
    /// `drop_ack(n)` decide, per packet sequence number, what is lost.
    fn run(
        size: usize,
        blksize: u16,
        window: u16,
        drop_data: impl Fn(u64) -> bool,
        drop_ack: impl Fn(u64) -> bool,
    ) -> (Vec<u8>, u64) {
        let file: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
        let limits = Limits {
            max_blksize: 65464,
            max_windowsize: 1024,
            max_retries: 50,
            ..Limits::default()
        };
        let n = negotiate(
            &opts(&[
                ("blksize", &blksize.to_string()),
                ("windowsize", &window.to_string()),
            ]),
            size as u64,
            &limits,
        );
        let mut now = Instant::now();
        let (mut t, first) = Transfer::start(&n, size as u64, &limits, now);
        let mut client = Client {
            window: u64::from(window),
            next: 1,
            since_ack: 0,
            data: Vec::new(),
            done: false,
            blksize: usize::from(blksize),
        };
        let (mut data_seq, mut ack_seq, mut sent_packets) = (0u64, 0u64, 0u64);
        let mut pending = Some(first);
        for _round in 0..1_000_000 {
            let mut acks = Vec::new();
            match pending.take() {
                Some(Transmit::Oack) => {
                    sent_packets += 1;
                    acks.push(0u16);
                }
                Some(Transmit::Blocks(range)) => {
                    for abs in range {
                        sent_packets += 1;
                        data_seq += 1;
                        if drop_data(data_seq) {
                            continue;
                        }
                        let (off, len, wire) = t.block(abs);
                        assert_eq!((abs & 0xffff) as u16, wire);
                        let payload = &file[off as usize..off as usize + len];
                        if let Some(a) = client.receive(abs, payload) {
                            acks.push(a);
                        }
                    }
                }
                Some(Transmit::Error(..)) => panic!("server sent an error"),
                None => {}
            }
            let mut progressed = false;
            for a in acks {
                ack_seq += 1;
                if drop_ack(ack_seq) {
                    continue;
                }
                let r = t.on_packet(&Packet::Ack { block: a }, now);
                match r.status {
                    Status::Done => return (client.data, sent_packets),
                    Status::Failed { reason, .. } => panic!("{reason}"),
                    Status::Running => {}
                }
                if r.send.is_some() {
                    pending = r.send;
                    progressed = true;
                }
            }
            if !progressed && pending.is_none() {
                now = t.deadline();
                let r = t.on_timeout(now);
                assert_eq!(r.status, Status::Running, "gave up");
                pending = r.send;
            }
        }
        panic!("transfer did not finish");
    }

    fn check(
        size: usize,
        blksize: u16,
        window: u16,
        drop_data: impl Fn(u64) -> bool,
        drop_ack: impl Fn(u64) -> bool,
    ) {
        let (got, _) = run(size, blksize, window, drop_data, drop_ack);
        let want: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
        assert!(
            got == want,
            "size {size} blksize {blksize} window {window}: got {} bytes",
            got.len()
        );
    }

    #[test]
    fn sizes_around_block_boundaries() {
        for size in [0, 1, 511, 512, 513, 1024, 1468 * 3, 100_000] {
            for window in [1, 4] {
                check(size, 512, window, |_| false, |_| false);
                check(size, 1468, window, |_| false, |_| false);
            }
        }
    }

    #[test]
    fn loss_of_every_position_in_a_window_is_recovered() {
        for window in [1u16, 2, 4, 8, 16] {
            for lost in 1..=u64::from(window) * 2 + 1 {
                check(20_000, 512, window, |n| n == lost, |_| false);
                check(20_000, 512, window, |_| false, |n| n == lost);
                check(
                    20_000,
                    512,
                    window,
                    |n| n % u64::from(window + 1) == lost % u64::from(window + 1),
                    |_| false,
                );
            }
        }
    }

    #[test]
    fn heavy_random_loss_still_delivers_byte_exact() {
        // A fixed pseudo-random pattern: about 20% of DATA and 10% of ACKs lost.
        let lose = |seed: u64, percent: u64| {
            move |n: u64| {
                (n.wrapping_mul(6364136223846793005).wrapping_add(seed) >> 33) % 100 < percent
            }
        };
        for window in [1, 8, 64] {
            check(300_000, 1468, window, lose(1, 20), lose(2, 10));
        }
    }

    #[test]
    fn block_numbers_wrap_past_65535() {
        // 65536 blocks of 512 bytes + a bit: the wire numbers wrap to 0.
        let size = 512 * 65_540 + 17;
        let (got, sent) = run(size, 512, 8, |n| n == 65_537, |_| false);
        assert_eq!(got.len(), size);
        assert!(sent > 65_541);
        let t = Transfer::start(
            &negotiate(&[], size as u64, &Limits::default()),
            size as u64,
            &Limits::default(),
            Instant::now(),
        )
        .0;
        assert_eq!(t.block(65_536).2, 0);
        assert_eq!(t.block(65_537).2, 1);
    }

    #[test]
    fn duplicate_acks_do_not_trigger_retransmission() {
        let limits = Limits::default();
        let now = Instant::now();
        let (mut t, first) = Transfer::start(&negotiate(&[], 2000, &limits), 2000, &limits, now);
        assert_eq!(first, Transmit::Blocks(1..=1));
        assert_eq!(
            t.on_packet(&Packet::Ack { block: 1 }, now).send,
            Some(Transmit::Blocks(2..=2))
        );
        for _ in 0..3 {
            assert_eq!(
                t.on_packet(&Packet::Ack { block: 1 }, now),
                Reaction::running(None)
            );
        }
    }

    #[test]
    fn timeouts_back_off_then_give_up() {
        let limits = Limits {
            max_retries: 3,
            ..Limits::default()
        };
        let t0 = Instant::now();
        let (mut t, _) = Transfer::start(&negotiate(&[], 10_000, &limits), 10_000, &limits, t0);
        assert_eq!(t.on_timeout(t0), Reaction::running(None), "not yet");
        let mut gaps = Vec::new();
        let mut now = t0;
        for _ in 0..3 {
            let before = now;
            now = t.deadline();
            gaps.push((now - before).as_secs());
            assert_eq!(t.on_timeout(now).send, Some(Transmit::Blocks(1..=1)));
        }
        assert_eq!(gaps, [1, 2, 4]);
        let r = t.on_timeout(t.deadline());
        assert_eq!(
            r.status,
            Status::Failed {
                reason: "timed out waiting for the ACK of block 1 after 4 tries".into(),
                probe: false
            }
        );
    }

    #[test]
    fn oack_flow_and_size_probe() {
        let limits = Limits::default();
        let now = Instant::now();
        let n = negotiate(&opts(&[("tsize", "0"), ("blksize", "1432")]), 5000, &limits);
        let (mut t, first) = Transfer::start(&n, 5000, &limits, now);
        assert_eq!(first, Transmit::Oack);
        // Intel UNDI: reads the size from the OACK, then aborts.
        let r = t.on_packet(
            &Packet::Error {
                code: 0,
                message: "TFTP Aborted".into(),
            },
            now,
        );
        assert!(
            matches!(r.status, Status::Failed { probe: true, .. }),
            "{r:?}"
        );
        assert_eq!(r.send, None, "an ERROR reply to the OACK ends quietly");
        // Without tsize, refusing the OACK is a (clean) failure.
        let n = negotiate(&opts(&[("blksize", "1432")]), 5000, &limits);
        let (mut t, _) = Transfer::start(&n, 5000, &limits, now);
        let r = t.on_packet(
            &Packet::Error {
                code: 8,
                message: "bad options".into(),
            },
            now,
        );
        assert!(
            matches!(r.status, Status::Failed { probe: false, .. }),
            "{r:?}"
        );
        // ACK 0 accepts the OACK and starts the data.
        let (mut t, _) = Transfer::start(&n, 5000, &limits, now);
        assert_eq!(
            t.on_packet(&Packet::Ack { block: 0 }, now).send,
            Some(Transmit::Blocks(1..=1))
        );
    }

    #[test]
    fn client_error_mid_transfer_fails_it() {
        let limits = Limits::default();
        let now = Instant::now();
        let (mut t, _) = Transfer::start(&negotiate(&[], 5000, &limits), 5000, &limits, now);
        let r = t.on_packet(
            &Packet::Error {
                code: 3,
                message: "disk full".into(),
            },
            now,
        );
        assert_eq!(
            r.status,
            Status::Failed {
                reason: "client error 3: disk full".into(),
                probe: false
            }
        );
        assert_eq!(
            t.on_timeout(t.deadline()),
            Reaction::running(None),
            "finished transfers stay quiet"
        );
    }
}
