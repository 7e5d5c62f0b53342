//! TFTP: the packet decoder and the read-transfer state machine, fed
//! packets and time. Record 0 holds the file size (4 bytes, big-endian);
//! record 1 is the request datagram, whose options are negotiated. Every
//! later record is a datagram the client sends (control bit 0 clear) or a
//! timeout (bit 0 set; bit 1 set: exactly at the machine's deadline),
//! after `ctrl >> 2` × 50 ms. A panic, a block outside the file, more than
//! one window at once, or more bytes acknowledged than the file holds is a
//! crash.

mod frames;

use std::time::{Duration, Instant};

use pxedeck::tftp::packet::Packet;
use pxedeck::tftp::transfer::{Limits, Status, Transfer, Transmit, negotiate};

fn check(send: Option<&Transmit>, t: &Transfer, size: u64, window: u16) {
    if let Some(Transmit::Blocks(range)) = send {
        let count = range.end().saturating_sub(*range.start()) + 1;
        assert!(
            count <= u64::from(window),
            "{count} blocks at once with windowsize {window}"
        );
        for abs in range.clone() {
            let (offset, len, _) = t.block(abs);
            assert!(offset + len as u64 <= size, "block {abs} outside the file");
        }
    }
}

fn run(input: &[u8]) {
    let mut records = frames::records(input);
    let Some((_, head)) = records.next() else {
        return;
    };
    let size = match head {
        [a, b, c, d, ..] => u64::from(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => head.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)),
    };
    // Whatever the first datagram is, the decoder sees it; only a read
    // request starts a transfer.
    let options = match records.next().map(|(_, d)| Packet::decode(d)) {
        Some(Ok(Packet::Rrq { options, .. })) => options,
        Some(_) => Vec::new(),
        None => return,
    };
    let limits = Limits::default();
    let n = negotiate(&options, size, &limits);
    let t0 = Instant::now();
    let (mut t, first) = Transfer::start(&n, size, &limits, t0);
    check(Some(&first), &t, size, n.windowsize);
    let mut now = t0;
    for (ctrl, datagram) in records {
        now += Duration::from_millis(u64::from(ctrl >> 2) * 50);
        let reaction = if ctrl & 1 == 0 {
            let Ok(packet) = Packet::decode(datagram) else {
                continue;
            };
            t.on_packet(&packet, now)
        } else {
            if ctrl & 2 == 2 {
                now = now.max(t.deadline());
            }
            t.on_timeout(now)
        };
        check(reaction.send.as_ref(), &t, size, n.windowsize);
        assert!(t.bytes_acked() <= size, "more acknowledged than the file");
        if reaction.status != Status::Running {
            break;
        }
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}
