use super::*;
use crate::dhcp::wire::msg;
use crate::inventory::Inventory;
use arc_swap::ArcSwap;
use std::sync::atomic::AtomicBool;

/// A journal that fails while `failing` is set (its writes, or with
/// `at_sync` its syncs), and keeps what it was given once synced. Like
/// the file journal, an empty append never fails.
struct Flaky {
    failing: Arc<AtomicBool>,
    at_sync: Arc<AtomicBool>,
    written: Arc<Mutex<Vec<Persist>>>,
    kept: Arc<Mutex<Vec<Persist>>>,
}

impl LeaseJournal for Flaky {
    fn append(&mut self, changes: &[Persist], _: &LeaseTable) -> std::io::Result<Appended> {
        if changes.is_empty() {
            return Ok(Appended::Written);
        }
        if self.failing.load(Ordering::Relaxed) && !self.at_sync.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("no space left on device"));
        }
        self.written.lock().unwrap().extend_from_slice(changes);
        Ok(Appended::Written)
    }

    fn syncer(&self) -> std::io::Result<crate::dhcp::store::Syncer> {
        let fails = self.failing.load(Ordering::Relaxed) && self.at_sync.load(Ordering::Relaxed);
        let (written, kept) = (self.written.clone(), self.kept.clone());
        Ok(Box::new(move || {
            let mut written = written.lock().unwrap();
            if fails {
                written.clear();
                return Err(std::io::Error::other("input/output error"));
            }
            kept.lock().unwrap().append(&mut written);
            Ok(())
        }))
    }
}

struct Rig {
    server: DhcpServer,
    events: tokio::sync::broadcast::Receiver<Arc<crate::event::Event>>,
    failing: Arc<AtomicBool>,
    at_sync: Arc<AtomicBool>,
    kept: Arc<Mutex<Vec<Persist>>>,
}

fn rig() -> Rig {
    let config = Config::from_text(
        "server:\n  address: 127.0.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.110\n",
        None,
    )
    .unwrap();
    let inventory = Inventory::empty(std::path::Path::new("/nonexistent"));
    let bus = Bus::default();
    let events = bus.subscribe();
    let failing = Arc::new(AtomicBool::new(false));
    let at_sync = Arc::new(AtomicBool::new(false));
    let kept = Arc::new(Mutex::new(Vec::new()));
    let journal = Flaky {
        failing: failing.clone(),
        at_sync: at_sync.clone(),
        written: Arc::default(),
        kept: kept.clone(),
    };
    let server = DhcpServer::with_journal(
        Arc::new(config),
        Arc::new(ArcSwap::from_pointee(inventory)),
        bus,
        "http://127.0.0.1:8080".into(),
        Box::new(|_: &str| true),
        (LeaseTable::default(), Box::new(journal)),
    );
    Rig {
        server,
        events,
        failing,
        at_sync,
        kept,
    }
}

const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6800);

fn discover(mac: u8) -> Packet {
    Packet::client_request([2, 0, 0, 0, 0, mac], 1, msg::DISCOVER)
}

fn request(mac: u8, ip: Ipv4Addr) -> Packet {
    let mut p = Packet::client_request([2, 0, 0, 0, 0, mac], 2, msg::REQUEST);
    p.set_option(opt::SERVER_ID, [127, 0, 0, 1]);
    p.set_option(opt::REQUESTED_IP, ip.octets());
    p
}

impl Rig {
    /// Decides one batch and waits for its sync; returns the replies
    /// that left, decoded: those sent at once, then the held ones.
    fn batch(&self, packets: &[Packet]) -> Vec<Packet> {
        let (now, settled) = self.batch_in_two(packets);
        now.into_iter().chain(settled).collect()
    }

    /// As [`Rig::batch`], the replies sent at once apart from those
    /// that waited for the sync.
    fn batch_in_two(&self, packets: &[Packet]) -> (Vec<Packet>, Vec<Packet>) {
        let bufs: Vec<Vec<u8>> = packets.iter().map(Packet::encode).collect();
        let batch: Vec<(usize, SocketAddr)> = bufs.iter().map(|b| (b.len(), CLIENT)).collect();
        decide_and_settle(
            &self.server,
            &bufs,
            &batch,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        )
    }

    fn drain_events(&mut self) -> Vec<EventKind> {
        std::iter::from_fn(|| self.events.try_recv().ok())
            .map(|e| e.kind.clone())
            .collect()
    }

    fn lease_of(&self, mac: u8) -> Option<Lease> {
        let guard = self.server.committer.leases();
        guard.table.of_mac(&Mac([2, 0, 0, 0, 0, mac])).cloned()
    }
}

fn decode(replies: Vec<Reply>) -> Vec<Packet> {
    replies
        .into_iter()
        .map(|(bytes, _, _, _)| Packet::decode(&bytes).unwrap())
        .collect()
}

/// What the socket loop does with one batch, synchronously.
fn decide_and_settle(
    server: &DhcpServer,
    bufs: &[Vec<u8>],
    batch: &[(usize, SocketAddr)],
    local: Option<IpAddr>,
) -> (Vec<Packet>, Vec<Packet>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let notify: Notify = Box::new(move |_, fate| {
        let _ = tx.send(fate);
    });
    let decided = server.decide(bufs, batch, Port::Dhcp, local, notify);
    let settled = decided.held.map(|held| {
        let fate = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the sync thread tells every batch its fate");
        server.settle(held, fate)
    });
    (decode(decided.now), decode(settled.unwrap_or_default()))
}

#[test]
fn a_failed_sync_withholds_replies_and_events_and_rolls_the_table_back() {
    let mut rig = rig();
    let offer = rig.batch(&[discover(1)]).remove(0);
    assert_eq!(offer.message_type(), Some(msg::OFFER));
    rig.drain_events();
    let offered = rig.lease_of(1).expect("an offer is held");

    rig.failing.store(true, Ordering::Relaxed);
    let replies = rig.batch(&[request(1, offer.yiaddr), discover(2)]);
    assert!(replies.is_empty(), "no reply of the batch leaves");
    let events = rig.drain_events();
    assert!(
        matches!(
            &events[..],
            [EventKind::Log {
                level: Level::Error,
                ..
            }]
        ),
        "only the operator is told: {events:?}"
    );
    assert_eq!(rig.lease_of(1), Some(offered), "the binding is undone");
    assert_eq!(rig.lease_of(2), None, "so is the other client's offer");
    assert_eq!(rig.server.stats.dropped.get(Unanswered::LeaseStoreError), 2);
    assert!(rig.kept.lock().unwrap().is_empty());
    assert_eq!(rig.server.stats.replies.total(), 0);

    // The disk is back: the client's retry is bound and shown.
    rig.failing.store(false, Ordering::Relaxed);
    let ack = rig.batch(&[request(1, offer.yiaddr)]).remove(0);
    assert_eq!(
        (ack.message_type(), ack.yiaddr),
        (Some(msg::ACK), offer.yiaddr)
    );
    assert_eq!(rig.lease_of(1).map(|l| l.state), Some(LeaseState::Bound));
    assert!(
        rig.drain_events()
            .iter()
            .any(|e| matches!(e, EventKind::LeaseBound { ip, .. } if *ip == offer.yiaddr))
    );
    assert!(matches!(&rig.kept.lock().unwrap()[..], [Persist::Bind(l)] if l.ip == offer.yiaddr));
}

#[test]
fn a_failed_sync_undoes_the_batch_but_its_offers_have_left() {
    let mut rig = rig();
    let offer = rig.batch(&[discover(1)]).remove(0);
    rig.drain_events();
    let offered = rig.lease_of(1).expect("an offer is held");

    rig.failing.store(true, Ordering::Relaxed);
    rig.at_sync.store(true, Ordering::Relaxed);
    let (now, settled) = rig.batch_in_two(&[request(1, offer.yiaddr), discover(2)]);
    assert!(
        matches!(&now[..], [o] if o.message_type() == Some(msg::OFFER) && o.chaddr[5] == 2),
        "the offer needs nothing durable and left at once: {now:?}"
    );
    assert!(settled.is_empty(), "the ACK never leaves");
    let events = rig.drain_events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, EventKind::LeaseBound { .. })),
        "no binding is shown: {events:?}"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        EventKind::Log {
            level: Level::Error,
            ..
        }
    )));
    assert_eq!(rig.lease_of(1), Some(offered), "the binding is undone");
    assert_eq!(rig.server.stats.dropped.get(Unanswered::LeaseStoreError), 1);
    assert!(rig.kept.lock().unwrap().is_empty());

    rig.failing.store(false, Ordering::Relaxed);
    let ack = rig.batch(&[request(1, offer.yiaddr)]).remove(0);
    assert_eq!(ack.message_type(), Some(msg::ACK));
    assert!(matches!(&rig.kept.lock().unwrap()[..], [Persist::Bind(l)] if l.ip == offer.yiaddr));
}

/// A journal whose syncs wait at a gate, to hold a batch mid-sync.
struct Gated {
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl LeaseJournal for Gated {
    fn append(&mut self, _: &[Persist], _: &LeaseTable) -> std::io::Result<Appended> {
        Ok(Appended::Written)
    }

    fn syncer(&self) -> std::io::Result<crate::dhcp::store::Syncer> {
        let gate = self.gate.clone();
        Ok(Box::new(move || {
            let (open, cv) = &*gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Ok(())
        }))
    }
}

#[test]
fn offers_and_later_batches_do_not_wait_for_a_sync_in_flight() {
    let rig = rig();
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let server = DhcpServer::with_journal(
        rig.server.config.clone(),
        rig.server.inventory.clone(),
        Bus::default(),
        "http://127.0.0.1:8080".into(),
        Box::new(|_: &str| true),
        (
            LeaseTable::default(),
            Box::new(Gated { gate: gate.clone() }),
        ),
    );
    let one = |p: &Packet| {
        let buf = vec![p.encode()];
        let batch = vec![(buf[0].len(), CLIENT)];
        (buf, batch)
    };
    let local = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (buf, batch) = one(&discover(1));
    let (offers, _) = decide_and_settle(&server, &buf, &batch, local);
    // The REQUEST's ACK is held while its sync waits at the gate...
    let (tx, rx) = std::sync::mpsc::channel();
    let (buf, batch) = one(&request(1, offers[0].yiaddr));
    let first = server.decide(
        &buf,
        &batch,
        Port::Dhcp,
        local,
        Box::new(move |t, f| {
            let _ = tx.send((t, f));
        }),
    );
    assert!(first.now.is_empty() && first.held.is_some());
    // ...and meanwhile other batches are decided and answered, one of
    // them durable too (it joins the next sync).
    let (buf, batch) = one(&discover(2));
    let second_offer = server.decide(&buf, &batch, Port::Dhcp, local, Box::new(|_, _| {}));
    assert_eq!(
        decode(second_offer.now).len(),
        1,
        "an OFFER leaves mid-sync"
    );
    let (tx2, rx2) = std::sync::mpsc::channel();
    let offer2 = server
        .committer
        .leases()
        .table
        .of_mac(&Mac([2, 0, 0, 0, 0, 2]))
        .map(|l| l.ip)
        .unwrap();
    let (buf, batch) = one(&request(2, offer2));
    let third = server.decide(
        &buf,
        &batch,
        Port::Dhcp,
        local,
        Box::new(move |t, f| {
            let _ = tx2.send((t, f));
        }),
    );
    assert!(third.held.is_some());
    assert!(
        rx.try_recv().is_err(),
        "not durable before the sync returns"
    );
    assert_eq!(server.committer.leases().table.pending(), 2);
    let (open, cv) = &*gate;
    *open.lock().unwrap() = true;
    cv.notify_all();
    let wait = std::time::Duration::from_secs(10);
    let (t1, f1) = rx.recv_timeout(wait).unwrap();
    let (t3, f3) = rx2.recv_timeout(wait).unwrap();
    assert_eq!((f1, f3), (Fate::Durable, Fate::Durable));
    assert!(t1 < t3, "tickets follow the order of decisions");
    let acks = decode(server.settle(first.held.unwrap(), Fate::Durable));
    assert_eq!(acks[0].message_type(), Some(msg::ACK));
    assert_eq!(server.committer.leases().table.pending(), 0);
}

#[test]
fn an_operator_release_that_cannot_be_recorded_keeps_the_lease() {
    let mut rig = rig();
    let offer = rig.batch(&[discover(1)]).remove(0);
    rig.batch(&[request(1, offer.yiaddr)]);
    rig.drain_events();
    rig.failing.store(true, Ordering::Relaxed);
    assert!(rig.server.release(offer.yiaddr).is_err());
    assert!(rig.server.bound_lease_at(offer.yiaddr).is_some());
    assert!(rig.drain_events().is_empty());
    rig.failing.store(false, Ordering::Relaxed);
    assert!(rig.server.release(offer.yiaddr).unwrap());
    assert!(rig.server.bound_lease_at(offer.yiaddr).is_none());
}

#[test]
fn counters_count_requests_by_type_and_drops_by_reason() {
    let rig = rig();
    let offer = rig.batch(&[discover(1), discover(2)]);
    rig.batch(&[request(1, offer[0].yiaddr)]);
    let bufs = vec![vec![0u8; 10]];
    decide_and_settle(&rig.server, &bufs, &[(10, CLIENT)], None);
    let s = &rig.server.stats;
    assert_eq!(s.received.load(Ordering::Relaxed), 4);
    assert_eq!(
        (
            s.requests.get(DhcpMessage::Discover),
            s.requests.get(DhcpMessage::Request)
        ),
        (2, 1)
    );
    assert_eq!(s.dropped.get(Unanswered::TooShort), 1);
}

#[test]
fn loaders_are_probed_up_front_and_on_refresh_only() {
    let calls = Arc::new(AtomicU64::new(0));
    let present = Arc::new(AtomicBool::new(false));
    let rig = rig();
    let (c, p) = (calls.clone(), present.clone());
    let server = DhcpServer::with_journal(
        rig.server.config.clone(),
        rig.server.inventory.clone(),
        Bus::default(),
        "http://127.0.0.1:8080".into(),
        Box::new(move |name: &str| {
            c.fetch_add(1, Ordering::Relaxed);
            p.load(Ordering::Relaxed) && name == crate::boot::decide::LOADER_UEFI_X64
        }),
        (LeaseTable::default(), Box::new(LeaseTableOnly)),
    );
    let probed = calls.load(Ordering::Relaxed);
    assert!(probed > 0 && !server.loaders().contains("ipxe.efi"));
    let pxe = |mac| {
        let mut d = discover(mac);
        d.set_option(opt::CLASS_ID, b"PXEClient:Arch:00007:UNDI:003016".to_vec());
        d.set_option(opt::CLIENT_ARCH, [0, 7]);
        d.encode()
    };
    let bufs = vec![pxe(1), pxe(2)];
    let batch: Vec<_> = bufs.iter().map(|b| (b.len(), CLIENT)).collect();
    let (replies, _) = decide_and_settle(&server, &bufs, &batch, None);
    assert_eq!(calls.load(Ordering::Relaxed), probed, "no disk per packet");
    let offer = &replies[0];
    assert_eq!(offer.option(opt::BOOTFILE), None, "no loader yet");
    present.store(true, Ordering::Relaxed);
    server.refresh_loaders();
    let (replies, _) = decide_and_settle(&server, &bufs, &batch, None);
    let offer = &replies[0];
    assert_eq!(offer.option(opt::BOOTFILE), Some(&b"ipxe.efi"[..]));
}

/// A journal that keeps nothing (offers are never persisted anyway).
struct LeaseTableOnly;

impl LeaseJournal for LeaseTableOnly {
    fn append(&mut self, _: &[Persist], _: &LeaseTable) -> std::io::Result<Appended> {
        Ok(Appended::Written)
    }

    fn syncer(&self) -> std::io::Result<crate::dhcp::store::Syncer> {
        Ok(Box::new(|| Ok(())))
    }
}
