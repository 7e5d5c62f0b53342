use super::*;
use crate::dhcp::{DhcpMessage, DhcpSeen};

fn seen(at: u64, mac: &str) -> Event {
    Event {
        at,
        kind: EventKind::DhcpSeen(DhcpSeen {
            mac: mac.parse().unwrap(),
            xid: 1,
            message: DhcpMessage::Discover,
            firmware: None,
            ipxe: false,
            vendor_class: None,
            uuid: None,
            relay: None,
            relay_agent: None,
            interface: None,
            rule: None,
            hostname: None,
            decision: crate::boot::BootDecision::Hold,
        }),
    }
}

fn started(at: u64, id: u64, mac: &str) -> Event {
    Event {
        at,
        kind: EventKind::TransferStarted {
            id,
            protocol: crate::event::Protocol::Tftp,
            client: "10.0.0.5:1000".parse().unwrap(),
            mac: Some(mac.parse().unwrap()),
            path: "ipxe.efi".into(),
            size: Some(1),
            blksize: None,
            windowsize: None,
        },
    }
}

fn file_of(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("history.jsonl");
    let mut text = format!("{HEADER}\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn json(e: &Event) -> String {
    serde_json::to_string(e).unwrap()
}

const WIDE: Bounds = Bounds {
    per_machine: 100,
    total: 1000,
};

#[test]
fn the_newest_are_kept_per_machine_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![];
    for i in 0..10 {
        lines.push(json(&seen(i, "52:54:00:00:00:01")));
    }
    for i in 10..13 {
        lines.push(json(&seen(i, "52:54:00:00:00:02")));
    }
    let path = file_of(dir.path(), &lines);
    let l = load(
        &path,
        Bounds {
            per_machine: 4,
            total: 1000,
        },
    )
    .unwrap();
    let ats: Vec<u64> = l.events.iter().map(|e| e.at).collect();
    assert_eq!(ats, vec![6, 7, 8, 9, 10, 11, 12]);
    assert_eq!(l.lines, 13);
    let l = load(
        &path,
        Bounds {
            per_machine: 100,
            total: 5,
        },
    )
    .unwrap();
    assert_eq!(
        l.events.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![8, 9, 10, 11, 12]
    );
}

#[test]
fn a_torn_last_line_is_skipped_but_a_garbled_middle_refuses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = json(&seen(1, "52:54:00:00:00:01"));
    let torn = good[..good.len() / 2].to_string();
    let path = dir.path().join("h");
    std::fs::write(&path, format!("{HEADER}\n{good}\n{torn}")).unwrap();
    let l = load(&path, WIDE).unwrap();
    assert!(l.torn);
    assert_eq!(l.events.len(), 1);

    std::fs::write(&path, format!("{HEADER}\n{good}\n{torn}\n{good}\n")).unwrap();
    let e = load(&path, WIDE).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:3: ", path.display())), "{e}");

    std::fs::write(&path, format!("{good}\n")).unwrap();
    let e = load(&path, WIDE).unwrap_err().to_string();
    assert!(e.contains(":1: not a pxedeck history"), "{e}");

    std::fs::write(
        &path,
        format!("{HEADER}\n{}\n{good}\n", "x".repeat(MAX_LINE + 10)),
    )
    .unwrap();
    let e = load(&path, WIDE).unwrap_err().to_string();
    assert!(e.contains("longer than"), "{e}");

    assert!(
        load(&dir.path().join("none"), WIDE)
            .unwrap()
            .events
            .is_empty()
    );
}

#[test]
fn replay_moves_transfer_ids_aside_and_ends_what_never_ended() {
    let mac = "52:54:00:00:00:01";
    let events = vec![
        started(1, 1, mac),
        Event {
            at: 2,
            kind: EventKind::TransferDone {
                id: 1,
                bytes: 1,
                millis: 1,
            },
        },
        started(3, 2, mac),
        // An end whose start the bounds cut.
        Event {
            at: 4,
            kind: EventKind::TransferDone {
                id: 9,
                bytes: 1,
                millis: 1,
            },
        },
    ];
    let out = replay(events);
    assert_eq!(out.len(), 4);
    let ids: Vec<u64> = out
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TransferStarted { id, .. }
            | EventKind::TransferDone { id, .. }
            | EventKind::TransferFailed { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            REPLAYED_IDS,
            REPLAYED_IDS,
            REPLAYED_IDS + 1,
            REPLAYED_IDS + 1
        ]
    );
    assert!(matches!(
        &out[3].kind,
        EventKind::TransferFailed { reason, .. } if reason.contains("stopped")
    ));
}

#[tokio::test]
async fn the_recorder_writes_history_in_batches_and_leaves_leases_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let bus = Bus::new(64);
    let (replayed, recorder) = restore(&path, WIDE, &bus);
    assert!(replayed.is_empty());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(recorder.run(cancel.clone()));
    bus.emit(seen(0, "52:54:00:00:00:01").kind);
    bus.emit(EventKind::LeaseBound {
        mac: "52:54:00:00:00:01".parse().unwrap(),
        ip: "10.0.0.5".parse().unwrap(),
        hostname: None,
        expires: 0,
        fixed: false,
    });
    // A transfer without a MAC is nobody's history, nor its end.
    bus.emit(EventKind::TransferDone {
        id: 77,
        bytes: 1,
        millis: 1,
    });
    cancel.cancel();
    task.await.unwrap();
    let l = load(&path, WIDE).unwrap();
    assert_eq!(l.events.len(), 1, "{:?}", l.events);
    assert!(matches!(l.events[0].kind, EventKind::DhcpSeen(_)));
}

#[test]
fn a_flooding_machine_is_sampled_per_second_and_others_are_not() {
    let bus = Bus::new(64);
    let dir = tempfile::tempdir().unwrap();
    let mut r = Recorder::new(&dir.path().join("h.jsonl"), WIDE, &bus, 0);
    let limit = REPEATS_PER_SECOND as usize;
    let recorded = |r: &mut Recorder, e: Event| r.line_of(&e).is_some();
    // 1,000 DHCP packets of one machine within one second: the first
    // `limit` are history, the rest are counted.
    let first = (0..1000)
        .filter(|i| recorded(&mut r, seen(5_000 + i, "52:54:00:00:00:01")))
        .count();
    assert_eq!(first, limit);
    // Another machine in the same second is not held back by it.
    assert!(recorded(&mut r, seen(5_500, "52:54:00:00:00:02")));
    // A transfer of the flooding machine is always history.
    assert!(recorded(&mut r, started(5_600, 9, "52:54:00:00:00:01")));
    // The next second starts afresh.
    let next = (0..100)
        .filter(|i| recorded(&mut r, seen(6_000 + i, "52:54:00:00:00:01")))
        .count();
    assert_eq!(next, limit);
    // A late event of the second before does not start a fresh count.
    assert!(!recorded(&mut r, seen(5_999, "52:54:00:00:00:01")));
    // Said once, then not again within the minute.
    let skipped = (1000 - limit + 100 - limit + 1) as u64;
    assert_eq!(r.flood.report(100_000), Some(skipped));
    assert!(!recorded(&mut r, seen(6_500, "52:54:00:00:00:01")));
    assert_eq!(r.flood.report(100_001), None);
    assert_eq!(r.flood.report(160_000), Some(1));
}
