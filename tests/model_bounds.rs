//! The model under a hostile segment, over real sockets on loopback: a
//! flood of invented MACs through DHCP stays at the cap on unknown rows,
//! `/boot.ipxe?mac=` floods add no rows, and event-stream clients share one
//! snapshot (RSS from /proc) up to a cap, past which they get 503; boot
//! connections are dealt to their lanes in turn.
//!
//! The tests take turns (one lock): the RSS figures must not include
//! another test's allocations.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use pxedeck::boot::BootDecision;
use pxedeck::boot::render::Urls;
use pxedeck::bootfs::BootFs;
use pxedeck::config::Config;
use pxedeck::dhcp::handler::Port;
use pxedeck::dhcp::server::DhcpServer;
use pxedeck::dhcp::wire::{Packet, msg, opt};
use pxedeck::dhcp::{DhcpMessage, DhcpReply};
use pxedeck::event::{Bus, DhcpSeen, Event, EventKind, KnownMachine};
use pxedeck::http::{self, HttpState, LeaseView};
use pxedeck::ident::Mac;
use pxedeck::inventory::{LoadOptions, SharedInventory, load};
use pxedeck::live::LiveModel;
use pxedeck::model::Model;
use pxedeck::progress::ProgressTable;
use pxedeck::services::Lane;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// Each test has a runtime of its own, so the turn is an async lock.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DEV01: &str = "52:54:00:d0:00:01";

fn nodes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes")
}

/// The API token the event-stream clients present.
const TOKEN: &str = "bounds-token";

fn config(extra: &str) -> Arc<Config> {
    let dir = std::env::temp_dir();
    let text = format!(
        "server:\n  address: 127.0.0.1\ndhcp:\n  lease_file: {}/pxedeck-bounds-{}.jsonl\n  pools:\n    - subnet: 10.99.0.0/16\n      range: 10.99.1.1-10.99.250.250\n{extra}",
        dir.display(),
        std::process::id(),
    );
    let mut config = Config::from_text(&text, None).unwrap();
    config.http.api_token = Some(TOKEN.into());
    Arc::new(config)
}

fn inventory(config: &Config) -> SharedInventory {
    let opts = LoadOptions {
        pools: config.dhcp.pools.clone(),
        ..Default::default()
    };
    Arc::new(ArcSwap::from_pointee(load(&nodes(), &opts).inventory))
}

/// A live model folding `bus`, under `cap` unknown rows.
fn live_model(cap: usize, bus: &Bus, cancel: &CancellationToken) -> Arc<LiveModel> {
    let live = Arc::new(LiveModel::new(Model::with_unknown_cap(cap)));
    tokio::spawn(live.clone().run(bus.clone(), cancel.clone()));
    live
}

/// Waits until `done` holds of the model (or 10 s pass).
async fn until(live: &LiveModel, done: impl Fn(&Model) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&live.lock()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn random_mac(n: u32) -> [u8; 6] {
    // Locally administered, distinct for every n.
    let b = n.to_be_bytes();
    [0x02, 0x5e, b[0], b[1], b[2], b[3]]
}

fn unknown_rows(m: &Model) -> usize {
    m.machines.iter().filter(|r| r.is_unknown()).count()
}

fn dev01_known() -> Event {
    Event {
        at: 0,
        kind: EventKind::InventoryReloaded {
            machines: vec![KnownMachine {
                hostname: "dev-01".into(),
                group: "k8s-dev".into(),
                macs: vec![DEV01.parse().unwrap()],
                ip: Some("10.99.0.21".parse().unwrap()),
                profile: Some("ubuntu-2404".into()),
                install: true,
            }],
            profiles: vec![],
            groups: vec![],
            group_info: vec![],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_invented_macs_through_dhcp_stays_at_the_cap() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const CAP: usize = 64;
    const FLOOD: u32 = 3_000;
    let config = config("");
    let bus = Bus::default();
    let cancel = CancellationToken::new();
    let live = live_model(CAP, &bus, &cancel);
    live.lock().apply(&dev01_known());
    let server = Arc::new(
        DhcpServer::new(
            config.clone(),
            inventory(&config),
            bus.clone(),
            "http://127.0.0.1:8080".into(),
            Box::new(|_: &str| true),
        )
        .unwrap(),
    );
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = socket.local_addr().unwrap();
    tokio::spawn(server.clone().serve(socket, Port::Dhcp, cancel.clone()));

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dev01: Mac = DEV01.parse().unwrap();
    let mut packets = vec![Packet::client_request(dev01.0, 1, msg::DISCOVER)];
    packets.extend((0..FLOOD).map(|n| {
        let mut d = Packet::client_request(random_mac(n), n, msg::DISCOVER);
        d.set_option(opt::CLASS_ID, b"PXEClient:Arch:00007:UNDI:003016".to_vec());
        d
    }));
    for (i, p) in packets.iter().enumerate() {
        client.send_to(&p.encode(), to).await.unwrap();
        if i % 200 == 199 {
            // Paced by the server, so the socket drops (almost) nothing
            // even on a loaded machine: every MAC is folded. A datagram the
            // kernel dropped never arrives, hence the bound on the wait.
            let sent = i as u64 + 1;
            let give_up = tokio::time::Instant::now() + Duration::from_secs(2);
            while server
                .stats
                .received
                .load(std::sync::atomic::Ordering::Relaxed)
                < sent
                && tokio::time::Instant::now() < give_up
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let discovers = |m: &Model| {
        m.counters
            .dhcp_in
            .get(&DhcpMessage::Discover)
            .copied()
            .unwrap_or(0)
    };
    // Settled: the count stops moving (a loaded loopback may drop a few
    // datagrams; every one that was answered is folded).
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = discovers(&live.lock());
        if now == last {
            break;
        }
        last = now;
    }

    let m = live.lock();
    let folded = discovers(&m);
    assert!(
        folded > u64::from(FLOOD) / 2,
        "only {folded} DISCOVERs got through"
    );
    let unknown = unknown_rows(&m);
    assert!(unknown <= CAP, "{unknown} unknown rows over a cap of {CAP}");
    assert!(unknown >= CAP - CAP / 16, "{unknown}: the cap is used");
    assert_eq!(
        m.unknown.dropped + unknown as u64,
        folded - 1,
        "every invented MAC is listed or counted as dropped"
    );
    let known = m.machine(&dev01).expect("the known machine stays");
    assert_eq!(known.hostname.as_deref(), Some("dev-01"));
    assert!(known.last_seen.is_some());
    // The first invented MACs went.
    assert!(m.machine(&Mac(random_mac(0))).is_none());
    drop(m);
    cancel.cancel();
}

/// No leases (the machines under test hold none).
struct NoLeases;

impl LeaseView for NoLeases {
    fn mac_at(&self, _: Ipv4Addr) -> Option<Mac> {
        None
    }
    fn ip_of(&self, _: &Mac) -> Option<Ipv4Addr> {
        None
    }
}

fn http_state(config: Arc<Config>, bus: Bus, model: Arc<LiveModel>, boot: PathBuf) -> HttpState {
    HttpState {
        secrets: pxedeck::http::auth::Secrets::ephemeral(&config)
            .unwrap()
            .into(),
        inventory: inventory(&config),
        config,
        bus,
        fs: BootFs::new([boot]),
        progress: Arc::new(ProgressTable::default()),
        leases: Arc::new(NoLeases),
        urls: Urls::new("http://127.0.0.1"),
        stats: Default::default(),
        control: None,
        model,
        dhcp: None,
        tftp: None,
        scripts: Default::default(),
        files: Default::default(),
        next_boot: Default::default(),
    }
}

/// Serves `router` on a loopback port until `cancel`, its connections on
/// `lanes` (none: this runtime).
async fn serve(
    state: &Arc<HttpState>,
    router: axum::Router,
    cancel: &CancellationToken,
    lanes: Vec<tokio::runtime::Handle>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = http::ConnLimits::api(&state.config.http);
    tokio::spawn(http::serve_on(
        listener,
        router,
        limits,
        state.clone(),
        cancel.clone(),
        lanes,
    ));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_mac_queries_adds_no_rows() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const FLOOD: u32 = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::default();
    let cancel = CancellationToken::new();
    let live = live_model(100_000, &bus, &cancel);
    live.lock().apply(&dev01_known());
    let state = Arc::new(http_state(
        config(""),
        bus,
        live.clone(),
        dir.path().to_path_buf(),
    ));
    let addr = serve(
        &state,
        http::boot_router(state.clone()),
        &cancel,
        Vec::new(),
    )
    .await;
    let opts = http::client::Options::default();
    for n in 0..FLOOD {
        let mac = Mac(random_mac(n));
        let url = format!("http://{addr}/boot.ipxe?mac={mac}");
        let script = http::client::get_text(&url, &opts).await.unwrap();
        assert!(script.starts_with("#!ipxe"), "{script}");
    }
    // The known machine's own script still updates its row.
    let url = format!("http://{addr}/boot.ipxe?mac={DEV01}");
    http::client::get_text(&url, &opts).await.unwrap();
    until(&live, |m| m.counters.scripts > u64::from(FLOOD)).await;

    let m = live.lock();
    assert_eq!(
        m.counters.scripts,
        u64::from(FLOOD) + 1,
        "every script counted"
    );
    assert_eq!(m.machines.len(), 1, "only dev-01 is listed");
    assert!(
        m.machine(&DEV01.parse().unwrap())
            .unwrap()
            .last_seen
            .is_some()
    );
    assert_eq!(
        m.unknown.dropped, 0,
        "nothing was listed, so nothing dropped"
    );
    drop(m);
    cancel.cancel();
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Folds `rows` unknown machines, each with a DISCOVER and an OFFER.
fn fill(live: &LiveModel, rows: u32) {
    let mut m = live.lock();
    for n in 0..rows {
        let mac = Mac(random_mac(n));
        let at = 1_000 + u64::from(n);
        m.apply(&Event {
            at,
            kind: EventKind::DhcpSeen(DhcpSeen {
                mac,
                xid: n,
                message: DhcpMessage::Discover,
                firmware: None,
                ipxe: false,
                vendor_class: Some("PXEClient:Arch:00007:UNDI:003016".into()),
                uuid: None,
                relay: None,
                relay_agent: None,
                interface: None,
                rule: None,
                hostname: None,
                decision: BootDecision::Hold,
            }),
        });
        m.apply(&Event {
            at,
            kind: EventKind::DhcpReplied {
                mac,
                reply: DhcpReply::Offer,
                ip: Some(Ipv4Addr::from(0x0a63_0000 + n)),
                boot_file: Some("ipxe.efi".into()),
                proxy: false,
            },
        });
    }
}

/// Opens the event stream and reads until the status line and headers
/// are in; then reads no more (an idle client). Returns the stream and
/// what was read.
async fn subscribe(api: SocketAddr) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(api).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /api/v1/events HTTP/1.1\r\nHost: pxedeck\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    (stream, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_clients_share_one_snapshot_up_to_a_cap() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const ROWS: u32 = 50_000;
    const CLIENTS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::default();
    let cancel = CancellationToken::new();
    let live = live_model(100_000, &bus, &cancel);
    let empty = rss_bytes();
    fill(&live, ROWS);
    let filled = rss_bytes();
    let snapshot_len = serde_json::to_vec(&*live.lock()).unwrap().len() as u64;
    println!(
        "model: {ROWS} rows, RSS +{} bytes/row, snapshot {} bytes/row ({:.1} MB)",
        filled.saturating_sub(empty) / u64::from(ROWS),
        snapshot_len / u64::from(ROWS),
        snapshot_len as f64 / 1e6
    );

    let state = Arc::new(http_state(
        config(&format!("http:\n  max_subscribers: {CLIENTS}\n")),
        bus,
        live.clone(),
        dir.path().to_path_buf(),
    ));
    let api = serve(
        &state,
        http::api::router(state.clone()),
        &cancel,
        Vec::new(),
    )
    .await;
    let before = rss_bytes();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (stream, head) = subscribe(api).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        clients.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes();
    let grew = after.saturating_sub(before);
    println!(
        "{CLIENTS} idle subscribers: RSS {:.0} -> {:.0} MB (+{:.1} MB, snapshot {:.1} MB)",
        before as f64 / 1e6,
        after as f64 / 1e6,
        grew as f64 / 1e6,
        snapshot_len as f64 / 1e6
    );
    // One shared snapshot (plus the buffers of ten connections), not ten.
    assert!(
        grew < 2 * snapshot_len,
        "{CLIENTS} subscribers grew RSS by {grew} bytes; one snapshot is {snapshot_len}"
    );
    assert_eq!(live.subscribers.active(), CLIENTS);

    // One more is refused, clearly, and counted.
    let (mut extra, head) = subscribe(api).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let mut body = head;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut rest = String::new();
        let _ = extra.read_to_string(&mut rest).await;
        body.push_str(&rest);
    })
    .await;
    assert!(body.contains("too many event-stream clients"), "{body}");
    assert!(body.contains("http.max_subscribers"), "{body}");
    assert_eq!(live.subscribers.refused(), 1);

    // Clients that leave give their place back.
    drop(clients);
    let left = Instant::now();
    let deadline = left + Duration::from_secs(20);
    while live.subscribers.active() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live.subscribers.active(), 0, "places freed");
    println!("places freed {:?} after the clients left", left.elapsed());
    let (_again, head) = subscribe(api).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    cancel.cancel();
}

/// One request on a kept-alive connection: the body of the answer.
async fn ask(conn: &mut TcpStream, path: &str) -> String {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("no answer in 10 s")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("a content-length");
        if body.len() >= length {
            return body[..length].to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_dealt_to_the_lanes_in_turn_and_stay_there() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::default();
    let cancel = CancellationToken::new();
    let live = live_model(1_000, &bus, &cancel);
    let state = Arc::new(http_state(config(""), bus, live, dir.path().to_path_buf()));
    let mut tasks = tokio::task::JoinSet::new();
    let lanes = ["lane-0", "lane-1"]
        .map(|name| Lane::start(name, &cancel, &mut tasks).unwrap().handle())
        .to_vec();
    let who = axum::Router::new().route(
        "/who",
        axum::routing::get(|| async { std::thread::current().name().unwrap_or("?").to_string() }),
    );
    let addr = serve(&state, who, &cancel, lanes).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(TcpStream::connect(addr).await.unwrap());
    }
    // Accepted in order of connection: 0, 1, 0, 1.
    let mut first = Vec::new();
    for c in &mut conns {
        first.push(ask(c, "/who").await);
    }
    assert_eq!(first, ["lane-0", "lane-1", "lane-0", "lane-1"]);
    // A kept-alive connection is served where it was dealt.
    for (c, was) in conns.iter_mut().zip(&first).rev() {
        assert_eq!(&ask(c, "/who").await, was);
    }
    cancel.cancel();
}
