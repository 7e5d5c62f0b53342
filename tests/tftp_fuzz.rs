//! Property tests standing in for a fuzzer: arbitrary bytes through the
//! decoder and arbitrary packet/time sequences through the transfer state
//! machine must never panic, and whatever the machine asks to send must stay
//! inside the file.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use pxedeck::tftp::packet::{self, Packet};
use pxedeck::tftp::transfer::{Limits, Status, Transfer, Transmit, negotiate};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = Packet::decode(&bytes);
    }

    #[test]
    fn rrq_like_bytes_never_panic(name in ".{0,300}", mode in "(octet|netascii|OCTET|mail|)", opts in proptest::collection::vec(("[a-z]{0,12}", "[0-9a-z]{0,8}"), 0..40)) {
        let refs: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let bytes = packet::encode_rrq(&name, &mode, &refs);
        if let Ok(Packet::Rrq { options, .. }) = Packet::decode(&bytes) {
            prop_assert!(options.len() <= packet::MAX_OPTIONS);
        }
    }

    #[test]
    fn the_transfer_machine_survives_any_input(
        size in 0u64..200_000,
        options in proptest::collection::vec((prop_oneof!["blksize", "windowsize", "tsize", "timeout", "x"], "[0-9]{0,6}"), 0..6),
        inputs in proptest::collection::vec((0u8..4, any::<u16>(), 0u64..5000), 0..300),
    ) {
        let limits = Limits::default();
        let opts: Vec<(String, String)> = options.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let n = negotiate(&opts, size, &limits);
        let t0 = Instant::now();
        let (mut t, first) = Transfer::start(&n, size, &limits, t0);
        let check = |send: &Option<Transmit>, t: &Transfer| -> Result<(), TestCaseError> {
            if let Some(Transmit::Blocks(r)) = send {
                for abs in r.clone() {
                    let (off, len, _) = t.block(abs);
                    prop_assert!(off + len as u64 <= size, "block {abs} outside the file");
                }
            }
            Ok(())
        };
        check(&Some(first), &t)?;
        let mut now = t0;
        for (kind, block, dt) in inputs {
            now += Duration::from_millis(dt);
            let r = match kind {
                0 | 1 => t.on_packet(&Packet::Ack { block }, now),
                2 => t.on_packet(&Packet::Error { code: block, message: String::new() }, now),
                _ => t.on_timeout(now),
            };
            check(&r.send, &t)?;
            prop_assert!(t.bytes_acked() <= size);
            if r.status != Status::Running {
                break;
            }
        }
    }
}
