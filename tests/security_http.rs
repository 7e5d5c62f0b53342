//! Issue 15, "secrets and trust", over real sockets on loopback: the API
//! tells nothing without its token, a machine's configs and done callback
//! are capabilities (a lease taken with the machine's MAC is not enough),
//! every refusal of a config looks the same, and an adoption cannot take
//! an address another MAC holds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use pxedeck::capability::Purpose;
use pxedeck::dhcp::wire::{Packet, msg, opt};
use pxedeck::ident::Mac;
use pxedeck::services::Services;
use pxedeck::sim::world::{World, WorldSpec, sim_mac};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, UdpSocket};

const FULL: &str = "full-t0ken";
const READER: &str = "read-t0ken";
/// Holds no lease: outside the world's pool range.
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 99, 255, 254);

struct Lab {
    _dir: tempfile::TempDir,
    world: World,
    services: Services,
}

impl Lab {
    /// Two known machines (`install: true`), a full and a read-only token.
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut world = World::create(
            dir.path(),
            &WorldSpec {
                known: 2,
                api_token: FULL.into(),
                ..WorldSpec::default()
            },
        )
        .unwrap();
        world.config.http.api_read_token = Some(READER.into());
        let services = Services::start(world.config.clone()).await.unwrap();
        Lab {
            _dir: dir,
            world,
            services,
        }
    }

    fn api(&self) -> SocketAddr {
        self.services.bound.api
    }

    fn http(&self) -> SocketAddr {
        self.services.bound.http
    }

    fn victim(&self) -> Mac {
        self.world.known[0].mac
    }

    fn install_flag(&self, host: &str) -> bool {
        let path = self.world.dir.join(format!("nodes/rack1/{host}.yaml"));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("install: "), "{text}");
        text.contains("install: true")
    }

    /// A token signed with the server's own key, for tests that need one
    /// that is expired or for the wrong machine.
    fn token(&self, purpose: Purpose, host: &str, mac: Mac, now: u64, lifetime: u64) -> String {
        let key = &self.services.http.secrets.capabilities;
        key.token(purpose, host, Some(&mac), &key.mint(now, lifetime))
    }
}

/// One response, read whole (or, for a stream, as far as it came).
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body: String,
}

/// Sends `request` from `from` (any loopback address) and reads the answer
/// until the server closes or 500 ms pass (the event stream never ends).
async fn raw(to: SocketAddr, from: Option<Ipv4Addr>, request: String) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).unwrap();
    }
    let mut stream = socket.connect(to).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Answer { status, body }
}

/// A request with the `Authorization` value given verbatim.
fn request(method: &str, path: &str, authorization: Option<&str>, body: Option<&str>) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: pxedeck\r\nConnection: close\r\n");
    if let Some(a) = authorization {
        r.push_str(&format!("Authorization: {a}\r\n"));
    }
    match body {
        Some(b) => r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => r.push_str("\r\n"),
    }
    r
}

async fn get(to: SocketAddr, from: Option<Ipv4Addr>, path: &str) -> Answer {
    raw(to, from, request("GET", path, None, None)).await
}

async fn post(to: SocketAddr, from: Option<Ipv4Addr>, path: &str) -> Answer {
    raw(to, from, request("POST", path, None, None)).await
}

/// DISCOVER → OFFER → REQUEST → ACK with `mac` as chaddr, as any machine
/// on the segment can do with any MAC: DHCP has no authentication.
async fn lease_as(dhcp: SocketAddr, mac: Mac) -> Ipv4Addr {
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let exchange = |p: Packet| {
        let client = &client;
        async move {
            client.send_to(&p.encode(), dhcp).await.unwrap();
            let mut buf = [0u8; 1500];
            let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf))
                .await
                .expect("a DHCP reply")
                .unwrap();
            Packet::decode(&buf[..n]).unwrap()
        }
    };
    let mut d = Packet::client_request(mac.0, 0x5ec, msg::DISCOVER);
    d.set_option(opt::CLASS_ID, b"PXEClient:Arch:00007:UNDI:003016".to_vec());
    d.set_option(opt::CLIENT_ARCH, [0, 7]);
    let offer = exchange(d).await;
    assert_eq!(offer.message_type(), Some(msg::OFFER));
    let mut r = Packet::client_request(mac.0, 0x5ed, msg::REQUEST);
    r.set_option(opt::SERVER_ID, [127, 0, 0, 1]);
    r.set_option(opt::REQUESTED_IP, offer.yiaddr.octets());
    let ack = exchange(r).await;
    assert_eq!(ack.message_type(), Some(msg::ACK));
    ack.yiaddr
}

/// The `/config/<host>/<token>` prefix in a script's kernel command line.
fn config_prefix(script: &str, host: &str) -> Option<String> {
    let start = script.find(&format!("/config/{host}/"))?;
    let rest = &script[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('/').to_string())
}

/// The `/done/<host>/<token>` path a rendered config calls.
fn done_path(config: &str, host: &str) -> Option<String> {
    let start = config.find(&format!("/done/{host}/"))?;
    let rest = &config[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

fn now_secs() -> u64 {
    pxedeck::clock::now_millis() / 1000
}

// ---- item 1: the API ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_that_tells_anything_needs_its_token() {
    let lab = Lab::start().await;
    let victim = lab.victim();
    let reads = [
        "/api/v1/state".to_string(),
        "/api/v1/machines".into(),
        format!("/api/v1/machines/{victim}/served"),
        "/api/v1/leases".into(),
        "/api/v1/transfers".into(),
        "/api/v1/nodes".into(),
        "/api/v1/profiles".into(),
        "/api/v1/events".into(),
    ];
    let api = lab.api();
    let full = format!("Bearer {FULL}");
    let read = format!("Bearer {READER}");
    for path in &reads {
        let status = |auth: Option<&str>| {
            let req = request("GET", path, auth, None);
            async move { raw(api, None, req).await.status }
        };
        assert_eq!(status(None).await, 401, "{path} without a token");
        assert_eq!(
            status(Some("Bearer guess")).await,
            401,
            "{path} wrong token"
        );
        assert_eq!(status(Some(&read)).await, 200, "{path} read-only token");
        assert_eq!(status(Some(&full)).await, 200, "{path} full token");
    }
    let reload = r#"{"command":"reload_inventory"}"#;
    let install = r#"{"install":true}"#;
    let commands = [
        ("/api/v1/commands", reload),
        ("/api/v1/nodes/node-001/install", install),
    ];
    for (path, body) in commands {
        let status = |auth: Option<&str>| {
            let req = request("POST", path, auth, Some(body));
            async move { raw(api, None, req).await.status }
        };
        assert_eq!(status(None).await, 401, "{path} without a token");
        assert_eq!(
            status(Some("Bearer guess")).await,
            401,
            "{path} wrong token"
        );
        assert_eq!(
            status(Some(&read)).await,
            403,
            "{path}: reading is not commanding"
        );
        assert_eq!(status(Some(&full)).await, 200, "{path} full token");
    }
    // What a reader would have seen: MACs, hostnames, values.
    let nodes = raw(lab.api(), None, request("GET", "/api/v1/nodes", None, None)).await;
    assert!(!nodes.body.contains(&victim.to_string()), "{}", nodes.body);
    let served = raw(
        lab.api(),
        None,
        request(
            "GET",
            &format!("/api/v1/machines/{victim}/served"),
            Some(&read),
            None,
        ),
    )
    .await;
    assert!(served.body.contains("node-001"), "{}", served.body);
    assert!(
        served
            .body
            .contains("/config/node-001/pxedeck-capability-config/"),
        "the served view shows the capability slot, never a live token: {}",
        served.body
    );

    // Open: health and metrics, and metrics name nothing.
    assert_eq!(get(lab.api(), None, "/healthz").await.status, 200);
    let target = pxedeck::sim::Target::new(
        lab.services.bound.dhcp.unwrap(),
        lab.services.bound.tftp.port(),
    );
    let run = pxedeck::sim::boot(&lab.world.known[1], &target, 1).await;
    assert_eq!(run.outcome, pxedeck::sim::Outcome::Installed, "{run:?}");
    let metrics = get(lab.api(), None, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("pxedeck_http_requests_total"));
    for secret in [
        lab.world.known[1].mac.to_string(),
        "node-002".into(),
        FULL.into(),
        READER.into(),
    ] {
        assert!(!metrics.body.contains(&secret), "{secret} in /metrics");
    }
    lab.services.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_and_nothing_may_follow_the_token() {
    let lab = Lab::start().await;
    let api = lab.api();
    let status = |auth: String| {
        let req = request("GET", "/api/v1/nodes", Some(&auth), None);
        async move { raw(api, None, req).await.status }
    };
    assert_eq!(status(format!("Bearer {FULL}")).await, 200);
    assert_eq!(status(format!("bearer {FULL}")).await, 200);
    assert_eq!(status(format!("BEARER {FULL}")).await, 200);
    assert_eq!(
        status(format!("Bearer  {FULL}")).await,
        200,
        "1*SP (RFC 7235)"
    );
    // On the wire HTTP/1.1 drops whitespace after a field value (RFC 9110
    // §5.5: it is not part of the value), so `Bearer <token> ` reaches no
    // handler with its space; a value that keeps one is refused in
    // a_value_with_anything_after_the_token_is_refused and `auth`'s tests.
    assert_eq!(
        status(format!("Bearer {FULL} x")).await,
        401,
        "a second word"
    );
    assert_eq!(status(format!("Bearer {FULL} {FULL}")).await, 401, "twice");
    assert_eq!(
        status(format!("Bearer {FULL}x")).await,
        401,
        "a longer token"
    );
    assert_eq!(status(format!("Basic {FULL}")).await, 401, "another scheme");
    lab.services.shutdown().await;
}

/// The header value as the handler sees it (in-process, so nothing strips
/// it first): a trailing space or tab after the token must not pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_with_anything_after_the_token_is_refused() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt as _;
    let lab = Lab::start().await;
    let status = |value: String| {
        let router = pxedeck::http::api::router(lab.services.http.clone());
        let req = Request::get("/api/v1/nodes")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap();
        async move { router.oneshot(req).await.unwrap().status() }
    };
    for ok in [
        format!("Bearer {FULL}"),
        format!("bearer {FULL}"),
        format!("BeArEr {FULL}"),
    ] {
        assert_eq!(status(ok.clone()).await, StatusCode::OK, "{ok:?}");
    }
    for refused in [
        format!("Bearer {FULL} "),
        format!("Bearer {FULL}\t"),
        format!("Bearer {FULL} x"),
        format!("Bearer {FULL}x"),
        format!("Bearer\t{FULL}"),
        format!("Basic {FULL}"),
        FULL.to_string(),
    ] {
        assert_eq!(
            status(refused.clone()).await,
            StatusCode::UNAUTHORIZED,
            "{refused:?}"
        );
    }
    lab.services.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_server_makes_one_only_its_user_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::create(dir.path(), &WorldSpec::default()).unwrap();
    world.config.http.api_token = None;
    let file = world.config.http.api_token_file.clone();
    assert_eq!(file, dir.path().join("api.token"), "beside the leases");
    let services = Services::start(world.config.clone()).await.unwrap();
    let api = services.bound.api;
    assert_eq!(get(api, None, "/api/v1/nodes").await.status, 401);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(token.len(), 64);
    let auth = format!("Bearer {token}");
    let nodes = raw(
        api,
        None,
        request("GET", "/api/v1/nodes", Some(&auth), None),
    )
    .await;
    assert_eq!(nodes.status, 200);
    let commanded = raw(
        api,
        None,
        request(
            "POST",
            "/api/v1/commands",
            Some(&auth),
            Some(r#"{"command":"reload_inventory"}"#),
        ),
    )
    .await;
    assert_eq!(commanded.status, 200, "{}", commanded.body);
    // The log says where it is.
    let said =
        services.live.lock().log.iter().any(|l| {
            l.message.contains(&file.display().to_string()) && !l.message.contains(&token)
        });
    assert!(said, "the log names the token file, never the token");
    services.shutdown().await;

    // A restart keeps it: attached consoles and scripts keep working.
    let again = Services::start(world.config.clone()).await.unwrap();
    let nodes = raw(
        again.bound.api,
        None,
        request("GET", "/api/v1/nodes", Some(&auth), None),
    )
    .await;
    assert_eq!(nodes.status, 200);
    again.shutdown().await;
}

// ---- item 2: capabilities -----------------------------------------------

/// The adversarial pass: a REQUEST with the victim's chaddr got the
/// victim's lease, and from that address the attacker read the victim's
/// user-data and called `/done`. The address alone is no longer enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_with_a_victims_mac_reads_nothing_without_the_capability() {
    let lab = Lab::start().await;
    let victim = lab.victim();
    let hijacked = lease_as(lab.services.bound.dhcp.unwrap(), victim).await;
    let from = Some(hijacked);
    let http = lab.http();
    let forged = format!("{:x}.{:016x}.{}", now_secs() + 3600, 1, "0".repeat(32));

    for path in [
        "/config/node-001/user-data".to_string(),
        format!("/config/node-001/{forged}/user-data"),
    ] {
        let r = get(http, from, &path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(!r.body.contains("cloud-config"), "{}", r.body);
    }
    for path in [
        "/done/node-001".to_string(),
        format!("/done/node-001/{forged}"),
    ] {
        assert_eq!(post(http, from, &path).await.status, 403, "{path}");
    }
    assert!(
        lab.install_flag("node-001"),
        "no done without the capability"
    );

    // Expired, tampered and another machine's tokens, from the lease.
    let now = now_secs();
    let expired = lab.token(Purpose::Config, "node-001", victim, now - 7200, 3600);
    let good = lab.token(Purpose::Config, "node-001", victim, now, 3600);
    let (expiry, rest) = good.split_once('.').unwrap();
    let stretched = format!(
        "{:x}.{rest}",
        u64::from_str_radix(expiry, 16).unwrap() + 86400
    );
    let other = lab.token(
        Purpose::Config,
        "node-002",
        lab.world.known[1].mac,
        now,
        3600,
    );
    let done_as_config = lab.token(Purpose::Done, "node-001", victim, now, 3600);
    for (what, token) in [
        ("expired", &expired),
        ("tampered", &stretched),
        ("another machine's", &other),
        ("a done token", &done_as_config),
    ] {
        let r = get(http, from, &format!("/config/node-001/{token}/user-data")).await;
        assert_eq!(r.status, 403, "{what}: {}", r.body);
    }
    // A good token is not enough from an address that is not the machine's.
    let r = get(
        http,
        Some(STRANGER),
        &format!("/config/node-001/{good}/user-data"),
    )
    .await;
    assert_eq!(r.status, 403, "the address stays a second factor");

    // The boot itself: the script hands out the URLs with the capability,
    // and they work, configs and done callback alike.
    let script = get(http, from, &format!("/boot.ipxe?mac={victim}")).await;
    let prefix = config_prefix(&script.body, "node-001").expect(&script.body);
    let user_data = get(http, from, &format!("{prefix}/user-data")).await;
    assert_eq!(user_data.status, 200, "{}", user_data.body);
    assert!(user_data.body.contains("#cloud-config"));
    let done = done_path(&user_data.body, "node-001").expect(&user_data.body);
    assert_eq!(post(http, from, &done).await.status, 200);
    assert!(!lab.install_flag("node-001"));

    // Installed: the script the lease now gets hands out no capability.
    let script = get(http, from, &format!("/boot.ipxe?mac={victim}")).await;
    assert!(script.body.contains("local disk"), "{}", script.body);
    assert!(!script.body.contains("/config/"), "{}", script.body);
    lab.services.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_served_is_a_boot_with_tokens_of_its_own() {
    let lab = Lab::start().await;
    let victim = lab.victim();
    let ip = lease_as(lab.services.bound.dhcp.unwrap(), victim).await;
    let path = format!("/boot.ipxe?mac={victim}");
    let first = get(lab.http(), Some(ip), &path).await.body;
    let second = get(lab.http(), Some(ip), &path).await.body;
    let (a, b) = (
        config_prefix(&first, "node-001").unwrap(),
        config_prefix(&second, "node-001").unwrap(),
    );
    assert_ne!(a, b, "a cached script still gets fresh tokens");
    assert!(
        !first.contains("pxedeck-capability"),
        "every slot filled: {first}"
    );
    for prefix in [a, b] {
        let r = get(lab.http(), Some(ip), &format!("{prefix}/meta-data")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    lab.services.shutdown().await;
}

// ---- item 3: one answer for every refusal --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_and_a_refused_one_get_the_same_answer() {
    let lab = Lab::start().await;
    let http = lab.http();
    let token = lab.token(Purpose::Config, "nobody", lab.victim(), now_secs(), 3600);
    let paths = [
        "/config/nobody/user-data".to_string(),
        format!("/config/nobody/{token}/user-data"),
        "/config/node-001/user-data".into(),
        format!("/config/node-001/{token}/user-data"),
    ];
    let mut answers = Vec::new();
    for path in &paths {
        answers.push(get(http, Some(STRANGER), path).await);
    }
    assert_eq!(answers[0].status, 403, "{:?}", answers[0]);
    for (path, answer) in paths.iter().zip(&answers) {
        assert_eq!(answer, &answers[0], "{path}");
    }
    let done_unknown = post(http, Some(STRANGER), "/done/nobody").await;
    let done_known = post(http, Some(STRANGER), "/done/node-001").await;
    assert_eq!(done_unknown, done_known);
    assert_eq!(done_known, answers[0]);
    lab.services.shutdown().await;
}

// ---- item 2: adoption and held addresses ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adoption_may_not_take_an_address_another_mac_holds() {
    let lab = Lab::start().await;
    let holder = sim_mac(0xcc, 1);
    let held = lease_as(lab.services.bound.dhcp.unwrap(), holder).await;
    let auth = format!("Bearer {FULL}");
    let api = lab.api();
    let adopt = |mac: Mac, host: &str| {
        let body = serde_json::json!({"machines": [{
            "macs": [mac.to_string()], "hostname": host, "group": "rack1",
            "profile": "sim-install", "ip": held.to_string(), "install": true
        }]})
        .to_string();
        let req = request("POST", "/api/v1/adopt", Some(&auth), Some(&body));
        async move { raw(api, None, req).await }
    };
    let taken = adopt(sim_mac(0xcc, 2), "node-050").await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(taken.body.contains(&held.to_string()), "{}", taken.body);
    assert!(taken.body.contains(&holder.to_string()), "{}", taken.body);
    assert!(!lab.world.dir.join("nodes/rack1/node-050.yaml").exists());
    // The holder itself may be adopted at the address it holds.
    let own = adopt(holder, "node-051").await;
    assert_eq!(own.status, 200, "{}", own.body);
    lab.services.shutdown().await;
}
