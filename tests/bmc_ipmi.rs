//! IPMI against a real BMC: OpenIPMI's `ipmi_sim` on loopback (RMCP+,
//! its own config in a temp dir), driven by pxedeck's IPMI driver through
//! `ipmitool -I lanplus`, and by the running services through the API
//! (the BMC actor, `reinstall`, the power poll, `/metrics`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::ipmi_sim::{IpmiSim, PASSWORD, USER, free_udp_port, recording_chassis};
use pxedeck::bmc::{BmcError, BmcProtocol, BmcSpec, Limits, PasswordRef, PowerAction, PowerState};
use pxedeck::config::Config;
use pxedeck::services::Services;
use tower::ServiceExt;

fn spec(sim: &IpmiSim) -> BmcSpec {
    BmcSpec {
        host: sim.address.to_string(),
        port: sim.port,
        protocol: BmcProtocol::Ipmi,
        username: USER.into(),
        password: PasswordRef::File(sim.password_file.clone()),
        verify_tls: true,
        ca_file: None,
    }
}

fn sim(dir: &Path) -> IpmiSim {
    IpmiSim::start(
        dir,
        "127.0.0.1".parse().unwrap(),
        free_udp_port(),
        None,
        &recording_chassis(dir),
    )
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn every_action_reaches_the_bmc_and_power_follows() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path());
    let spec = spec(&sim);
    let limits = Limits::default();
    let run = |a| pxedeck::bmc::perform(&spec, a, limits);

    assert_eq!(run(PowerAction::Status), Ok(Some(PowerState::Off)));
    let t = Instant::now();
    assert_eq!(run(PowerAction::On), Ok(None));
    eprintln!("power on took {:?}", t.elapsed());
    assert_eq!(run(PowerAction::Status), Ok(Some(PowerState::On)));
    assert_eq!(run(PowerAction::PxeOnce), Ok(None));
    assert!(
        sim.calls().contains(&"set boot pxe".to_string()),
        "{:?}",
        sim.calls()
    );

    let before = sim.calls().len();
    assert_eq!(run(PowerAction::Cycle), Ok(None));
    // ipmi_sim powers off, then on again about a second later.
    assert!(
        wait_for(Duration::from_secs(10), || {
            let calls = sim.calls();
            let after = &calls[before..];
            let off = after.iter().position(|c| c == "set power 0");
            off.is_some_and(|i| after[i..].iter().any(|c| c == "set power 1"))
        }),
        "cycle: {:?}",
        sim.calls()
    );
    assert_eq!(run(PowerAction::Reset), Ok(None));
    assert!(sim.calls().contains(&"set reset 1".to_string()));
    assert_eq!(run(PowerAction::SoftOff), Ok(None));
    assert!(sim.calls().contains(&"set shutdown 1".to_string()));
    assert_eq!(run(PowerAction::Status), Ok(Some(PowerState::Off)));

    // A cycle of a machine that is off powers it on.
    assert_eq!(run(PowerAction::Cycle), Ok(Some(PowerState::On)));
    assert_eq!(run(PowerAction::Status), Ok(Some(PowerState::On)));
    assert_eq!(run(PowerAction::Off), Ok(None));
    assert_eq!(run(PowerAction::Status), Ok(Some(PowerState::Off)));
}

#[test]
fn a_wrong_password_or_user_is_an_auth_error() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path());
    let wrong = dir.path().join("wrong.pass");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let mut s = spec(&sim);
    s.password = PasswordRef::File(wrong);
    match pxedeck::bmc::perform(&s, PowerAction::Status, Limits::default()) {
        Err(BmcError::Auth(why)) => assert_eq!(why, "wrong password"),
        other => panic!("{other:?}"),
    }
    let mut s = spec(&sim);
    s.username = "nobody".into();
    match pxedeck::bmc::perform(&s, PowerAction::On, Limits::default()) {
        Err(BmcError::Auth(why)) => assert_eq!(why, "unknown user name"),
        other => panic!("{other:?}"),
    }
    assert!(
        !sim.calls().iter().any(|c| c.starts_with("set")),
        "nothing was done: {:?}",
        sim.calls()
    );
    // The password never reaches a command line.
    let mut s = spec(&sim);
    s.password = PasswordRef::Env("PXEDECK_TEST_NO_SUCH_PASSWORD_VAR".into());
    assert!(matches!(
        pxedeck::bmc::perform(&s, PowerAction::Status, Limits::default()),
        Err(BmcError::Password(_))
    ));
}

#[test]
fn a_bmc_that_does_not_answer_fails_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("p");
    std::fs::write(&password, PASSWORD).unwrap();
    let spec = BmcSpec {
        host: "127.0.0.1".into(),
        port: free_udp_port(),
        protocol: BmcProtocol::Ipmi,
        username: USER.into(),
        password: PasswordRef::File(password),
        verify_tls: true,
        ca_file: None,
    };
    let limits = Limits {
        timeout: Duration::from_secs(3),
    };
    let t = Instant::now();
    let result = pxedeck::bmc::perform(&spec, PowerAction::Status, limits);
    let took = t.elapsed();
    assert!(
        matches!(result, Err(BmcError::Timeout(_) | BmcError::Unreachable(_))),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_refusal_that_ipmitool_exits_0_on_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // The chassis refuses every power change; reads work.
    let refusing = format!(
        "#!/bin/sh\nif [ \"$1\" = get ]; then echo power:0; exit 0; fi\necho no >> {}/calls\nexit 1\n",
        dir.path().display()
    );
    let sim = IpmiSim::start(
        dir.path(),
        "127.0.0.1".parse().unwrap(),
        free_udp_port(),
        None,
        &refusing,
    );
    match pxedeck::bmc::perform(&spec(&sim), PowerAction::On, Limits::default()) {
        Err(BmcError::Refused(m)) => assert!(m.contains("power on"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The services with one machine whose BMC is the simulator.
async fn services(dir: &Path, sim: &IpmiSim) -> Services {
    let nodes = dir.join("nodes");
    std::fs::create_dir_all(nodes.join("_profiles")).unwrap();
    std::fs::create_dir_all(nodes.join("rack")).unwrap();
    std::fs::write(nodes.join("_profiles/p.yaml"), "boot:\n  kernel: k\n").unwrap();
    std::fs::write(
        nodes.join("rack/_defaults.yaml"),
        format!(
            "profile: p\nbmc:\n  protocol: ipmi\n  username: {USER}\n  password_file: {}\n",
            sim.password_file.display()
        ),
    )
    .unwrap();
    std::fs::write(
        nodes.join("rack/node-1.yaml"),
        format!(
            "mac: \"52:54:00:bb:00:01\"\ninstall: false\nbmc:\n  address: \"127.0.0.1:{}\"\n",
            sim.port
        ),
    )
    .unwrap();
    // A machine without a BMC (a group whose defaults name none).
    std::fs::create_dir_all(nodes.join("other")).unwrap();
    std::fs::write(
        nodes.join("other/plain.yaml"),
        "mac: \"52:54:00:bb:00:02\"\n",
    )
    .unwrap();
    let text = format!(
        "server:\n  address: 127.0.0.1\n\
         dhcp:\n  mode: off\n  lease_file: {leases}\n\
         tftp:\n  port: 0\nhttp:\n  port: 0\n  api_listen: 127.0.0.1:0\n  api_token: full-token\n  api_read_token: read-token\n\
         bmc:\n  poll_interval: 1s\n  max_concurrent: 2\n  timeout: 5s\n\
         boot_root: {root}\ninventory: {nodes}\n",
        leases = dir.join("leases.jsonl").display(),
        root = dir.display(),
        nodes = nodes.display(),
    );
    Services::start(Config::from_text(&text, None).unwrap())
        .await
        .expect("services start")
}

async fn api(
    services: &Services,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (StatusCode, String) {
    let router = pxedeck::http::api::router(services.http.clone());
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn power_of(services: &Services, mac: &str) -> Option<pxedeck::model::PowerView> {
    let model = services.live.lock();
    model.machine(&mac.parse().unwrap())?.power.clone()
}

async fn wait_async(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinstall_through_the_api_writes_the_flag_then_boots_from_network() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(&dir.path().join("bmc"));
    let services = services(dir.path(), &sim).await;
    const MAC: &str = "52:54:00:bb:00:01";

    // The poll finds the machine off.
    assert!(
        wait_async(Duration::from_secs(10), || {
            power_of(&services, MAC).is_some_and(|p| p.state == Some(PowerState::Off))
        })
        .await,
        "{:?}\n{:#?}",
        power_of(&services, MAC),
        services.live.lock().log
    );

    // Commands need the full token; a read token may not power machines.
    let (status, _) = api(
        &services,
        "POST",
        "/api/v1/nodes/node-1/reinstall",
        "read-token",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api(
        &services,
        "POST",
        "/api/v1/nodes/node-1/reinstall",
        "nope",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!sim.calls().iter().any(|c| c.starts_with("set")));

    // Errors say what is wrong, with the status that fits.
    let (status, body) = api(
        &services,
        "POST",
        "/api/v1/nodes/plain/reinstall",
        "full-token",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("plain has no bmc:"), "{body}");
    let (status, _) = api(
        &services,
        "POST",
        "/api/v1/nodes/ghost/power",
        "full-token",
        Some(r#"{"action":"on"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api(
        &services,
        "POST",
        "/api/v1/nodes/node-1/power",
        "full-token",
        Some(r#"{"action":"explode"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, body) = api(
        &services,
        "POST",
        "/api/v1/nodes/node-1/reinstall",
        "full-token",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // install: true is in the file before the BMC is touched.
    let file = std::fs::read_to_string(dir.path().join("nodes/rack/node-1.yaml")).unwrap();
    assert!(file.contains("install: true"), "{file}");
    assert!(
        wait_async(Duration::from_secs(15), || {
            power_of(&services, MAC).is_some_and(|p| p.state == Some(PowerState::On))
        })
        .await,
        "{:?}",
        power_of(&services, MAC)
    );
    let sets: Vec<String> = sim
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("set"))
        .collect();
    assert_eq!(
        sets,
        ["set boot pxe", "set power 1"],
        "boot device first, then power"
    );
    let view = power_of(&services, MAC).unwrap();
    assert_eq!(view.last_action.as_deref(), Some("reinstall: done"));

    // The same through the generic command route, for a set of machines.
    let (status, body) = api(
        &services,
        "POST",
        "/api/v1/commands",
        "full-token",
        Some(r#"{"command":"power","hostnames":["node-1","node-1"],"action":"off"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("for 1 machine(s)"),
        "duplicates count once: {body}"
    );
    assert!(
        wait_async(Duration::from_secs(10), || {
            power_of(&services, MAC).is_some_and(|p| p.state == Some(PowerState::Off))
        })
        .await
    );

    // The state shows in the API, and the reachability in /metrics.
    let (_, machines) = api(&services, "GET", "/api/v1/machines", "read-token", None).await;
    assert!(machines.contains(r#""power":{"state":"off""#), "{machines}");
    let (_, metrics) = api(&services, "GET", "/metrics", "", None).await;
    assert!(
        metrics.contains("pxedeck_bmc_reachable{state=\"reachable\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("pxedeck_bmc_reachable{state=\"unreachable\"} 0"));
    let ok_polls = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pxedeck_bmc_polls_total{outcome=\"ok\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(ok_polls >= 1, "{metrics}");
    assert!(
        metrics.contains("pxedeck_bmc_actions_total{outcome=\"ok\"} 3"),
        "{metrics}"
    );
    services.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bmc_shows_as_an_error_and_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(&dir.path().join("bmc"));
    let services = services(dir.path(), &sim).await;
    // Stop the BMC: the next polls go unanswered.
    drop(sim);
    const MAC: &str = "52:54:00:bb:00:01";
    let t = Instant::now();
    // The API answers at once while the BMC times out.
    let (status, _) = api(&services, "GET", "/api/v1/state", "read-token", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(
        wait_async(Duration::from_secs(20), || {
            power_of(&services, MAC).is_some_and(|p| p.error.is_some())
        })
        .await,
        "{:?}",
        power_of(&services, MAC)
    );
    let view = power_of(&services, MAC).unwrap();
    assert_eq!(view.state, None);
    let error = view.error.unwrap();
    assert!(
        error.contains("unreachable") || error.contains("timed out"),
        "{error}"
    );
    let (_, metrics) = api(&services, "GET", "/metrics", "", None).await;
    assert!(
        metrics.contains("pxedeck_bmc_reachable{state=\"unreachable\"} 1"),
        "{metrics}"
    );
    services.shutdown().await;
}
