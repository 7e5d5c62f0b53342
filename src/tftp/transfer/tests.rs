//! The transfer machine driven through whole transfers, lossy networks
//! and hostile clients.

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
        move |n: u64| (n.wrapping_mul(6364136223846793005).wrapping_add(seed) >> 33) % 100 < percent
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

/// Drives a transfer with a client that answers each DATA with `acks_per`
/// ACKs of the highest in-order block; returns the DATA packets sent.
fn data_sent_to_a_chatty_client(blocks: u64, window: u16, acks_per: usize) -> u64 {
    let size = (blocks - 1) * 512 + 100;
    let limits = Limits::default();
    let n = negotiate(&opts(&[("windowsize", &window.to_string())]), size, &limits);
    let now = Instant::now();
    let (mut t, first) = Transfer::start(&n, size, &limits, now);
    assert_eq!(first, Transmit::Oack);
    let mut queue: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let push = |queue: &mut std::collections::VecDeque<u64>, send: Option<Transmit>| {
        if let Some(Transmit::Blocks(range)) = send {
            queue.extend(range);
        }
    };
    let r = t.on_packet(&Packet::Ack { block: 0 }, now);
    push(&mut queue, r.send);
    let (mut next, mut sent) = (1u64, 0u64);
    while let Some(abs) = queue.pop_front() {
        sent += 1;
        if abs == next {
            next += 1;
        }
        for _ in 0..acks_per {
            let r = t.on_packet(
                &Packet::Ack {
                    block: ((next - 1) & 0xffff) as u16,
                },
                now,
            );
            if r.status == Status::Done {
                return sent;
            }
            push(&mut queue, r.send);
        }
    }
    panic!("the transfer stalled after {sent} packets (next block {next})");
}

#[test]
fn a_client_acking_every_block_gets_each_block_once() {
    // Issue 15: 715 blocks, windowsize 64, an ACK per block: 41,728 DATA.
    assert_eq!(data_sent_to_a_chatty_client(715, 64, 1), 715);
    assert_eq!(data_sent_to_a_chatty_client(715, 1, 1), 715);
}

#[test]
fn repeated_acks_cost_at_most_one_extra_window_per_window() {
    // Every ACK sent twice: the repeats may resend, but not per ACK.
    for window in [2u16, 8, 64] {
        let sent = data_sent_to_a_chatty_client(715, window, 2);
        assert!(
            sent <= 2 * 715 + u64::from(window),
            "window {window}: {sent} DATA packets for 715 blocks"
        );
    }
}

#[test]
fn a_gap_is_resent_on_the_repeated_ack_without_waiting() {
    let limits = Limits::default();
    let now = Instant::now();
    let n = negotiate(&opts(&[("windowsize", "8")]), 100_000, &limits);
    let (mut t, _) = Transfer::start(&n, 100_000, &limits, now);
    assert_eq!(
        t.on_packet(&Packet::Ack { block: 0 }, now).send,
        Some(Transmit::Blocks(1..=8))
    );
    // Block 3 was lost: the client ACKs 2 on seeing 4, then again on 5.
    assert_eq!(
        t.on_packet(&Packet::Ack { block: 2 }, now).send,
        Some(Transmit::Blocks(9..=10)),
        "the window slides"
    );
    assert_eq!(
        t.on_packet(&Packet::Ack { block: 2 }, now).send,
        Some(Transmit::Blocks(3..=10)),
        "the repeat resends from the gap"
    );
    for _ in 0..5 {
        assert_eq!(t.on_packet(&Packet::Ack { block: 2 }, now).send, None);
    }
}

#[test]
fn a_client_that_asked_the_longest_timeout_and_left_is_dropped_soon() {
    // Issue 15: timeout=255 and backoff held a slot for about two hours.
    let limits = Limits::default();
    let n = negotiate(&opts(&[("timeout", "255")]), 1 << 20, &limits);
    assert!(
        n.oack.iter().all(|(k, _)| k != "timeout"),
        "a 255 s timeout is not acknowledged: {:?}",
        n.oack
    );
    assert!(n.timeout <= Duration::from_secs(10));
    let n = negotiate(&opts(&[("timeout", "10")]), 1 << 20, &limits);
    assert_eq!(n.oack, opts(&[("timeout", "10")]), "up to the cap it is");
    for asked in [n, negotiate(&[], 1 << 20, &limits)] {
        let t0 = Instant::now();
        let (mut t, _) = Transfer::start(&asked, 1 << 20, &limits, t0);
        let ended = loop {
            let now = t.deadline();
            assert!(now - t0 <= Duration::from_secs(3600), "never gave up");
            if t.on_timeout(now).status != Status::Running {
                break now;
            }
        };
        assert!(
            ended - t0 <= Duration::from_secs(30),
            "a silent client held its slot {:?}",
            ended - t0
        );
    }
}
