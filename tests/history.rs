//! A machine's boot history survives a restart: a graceful one, a
//! `kill -9` of a real `pxedeck serve` (at most the last second lost), and
//! a garbled history file, which is refused clearly while the leases stay.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pxedeck::demo::DemoWorld;
use pxedeck::history::{self, Bounds};
use pxedeck::ident::Mac;
use pxedeck::services::Services;
use pxedeck::sim::{SimMachine, Target};

const DEV01: &str = "52:54:00:d0:00:01";

fn mac() -> Mac {
    DEV01.parse().unwrap()
}

async fn boot(dhcp: SocketAddr, tftp: u16) {
    let m = SimMachine::new(mac(), pxedeck::boot::arch::Firmware::UefiX64);
    let run = tokio::time::timeout(
        Duration::from_secs(30),
        pxedeck::sim::boot(&m, &Target::new(dhcp, tftp), 7),
    )
    .await
    .expect("the simulated boot hung");
    assert_eq!(
        run.outcome,
        pxedeck::sim::report::Outcome::Installed,
        "{run:?}"
    );
}

/// (at, repeats) of each step of dev-01's timeline.
fn timeline(services: &Services) -> Vec<(u64, u32)> {
    let model = services.live.lock();
    let row = model.machine(&mac()).expect("dev-01 in the model");
    row.timeline.iter().map(|s| (s.at, s.repeats)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_timeline_and_a_garbled_file_is_refused_with_the_leases_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let world = DemoWorld::create(&tmp.path().join("w"), 0).unwrap();
    let services = Services::start(world.config.clone()).await.unwrap();
    boot(services.bound.dhcp.unwrap(), services.bound.tftp.port()).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the fold
    let before = timeline(&services);
    assert!(before.len() >= 5, "{before:?}");
    services.shutdown().await;

    let again = Services::start(world.config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(timeline(&again), before, "the timeline came back as it was");
    {
        let model = again.live.lock();
        assert!(
            model
                .log
                .iter()
                .any(|l| l.message.starts_with("boot history: ")
                    && l.message.contains("restored from")),
            "{:?}",
            model.log
        );
        // Replayed transfers are over: none shows as running.
        assert!(model.transfers.is_empty(), "{:?}", model.transfers);
    }
    again.shutdown().await;

    // Garbage in the middle: refused, moved aside, said so; leases kept.
    let file = world.config.history.file.clone();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, "{\"at\": garbage");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let third = Services::start(world.config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let model = third.live.lock();
        let said = model
            .log
            .iter()
            .find(|l| l.message.starts_with("boot history refused"))
            .unwrap_or_else(|| panic!("nothing said: {:?}", model.log));
        assert!(
            said.message.contains(&format!("{}:3: ", file.display())),
            "{}",
            said.message
        );
        assert!(
            said.message.contains("leases are not affected"),
            "{}",
            said.message
        );
        assert!(
            model.leases.values().any(|l| l.mac == mac()),
            "the lease was lost: {:?}",
            model.leases
        );
    }
    let aside = file.with_file_name("history.jsonl.unreadable");
    assert!(aside.exists(), "the refused file was not kept");
    third.shutdown().await;
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on the world; returns it and the addresses it said.
fn serve(config: &Path) -> (Serve, SocketAddr, u16, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .arg("-c")
        .arg(config)
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let line = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("serve never said where it serves");
        if l.contains("serving: DHCP") {
            break l;
        }
    };
    let after = |what: &str| -> String {
        let rest = &line[line.find(what).unwrap() + what.len() + 1..];
        rest.split([' ', ',']).next().unwrap().to_string()
    };
    let dhcp: SocketAddr = after("DHCP").parse().unwrap();
    let tftp: SocketAddr = after("TFTP").parse().unwrap();
    let api: SocketAddr = after("API").parse().unwrap();
    (Serve(child), dhcp, tftp.port(), api)
}

/// dev-01's timeline length from the API's state.
fn api_timeline(api: SocketAddr) -> usize {
    let mut s = std::net::TcpStream::connect(api).unwrap();
    write!(
        s,
        "GET /api/v1/state HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    // Chunked or not, the JSON object is the one body.
    let body = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mac"] == DEV01)
        .map_or(0, |m| m["timeline"].as_array().unwrap().len())
}

#[test]
fn kill_9_loses_at_most_the_last_unflushed_second() {
    let tmp = tempfile::tempdir().unwrap();
    let world = DemoWorld::create(&tmp.path().join("w"), 0).unwrap();
    let config = world.dir.join("pxedeck.yaml");
    let (server, dhcp, tftp, _) = serve(&config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(boot(dhcp, tftp));
    // Wait for the batch to reach the disk, then kill -9.
    let bounds = Bounds {
        per_machine: world.config.history.per_machine,
        total: world.config.history.total,
    };
    let file = world.config.history.file.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let on_disk = loop {
        let n = history::load(&file, bounds).map_or(0, |l| l.events.len());
        if n >= 10 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "history never reached the disk ({n})"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let started = Instant::now();
    let mut server = server;
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    eprintln!("{on_disk} events on disk before kill -9");

    let (_again, _, _, api) = serve(&config);
    let deadline = Instant::now() + Duration::from_secs(10);
    let steps = loop {
        let n = api_timeline(api);
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        steps >= 5,
        "dev-01's timeline after kill -9 and restart: {steps} steps"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}
