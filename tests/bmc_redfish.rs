//! Redfish against a real Redfish service: sushy-emulator (sushy-tools
//! from PyPI) with its `--fake` driver, over HTTPS with a self-signed
//! certificate and basic auth, driven by pxedeck's Redfish driver.
//!
//! The fake driver keeps state only: a power change lands 1-11 s after
//! the request, so the test polls; it reads a `Once` boot override back as
//! `Continuous`. Skips loudly when sushy-emulator is not installed or does
//! not start (`.ci/run` installs it).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pxedeck::bmc::redfish::Redfish;
use pxedeck::bmc::{BmcError, BmcProtocol, BmcSpec, Limits, PasswordRef, PowerAction, PowerState};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-redfish";

struct Sushy {
    child: std::process::Child,
    port: u16,
    /// The CA that signed the emulator's certificate.
    ca: std::path::PathBuf,
    password_file: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts sushy-emulator on HTTPS, or says why it cannot.
fn sushy(dir: &Path) -> Result<Sushy, String> {
    // A site CA, and the BMC's certificate signed by it: what `ca_file:`
    // names.
    let ca_key = dir.join("ca-key.pem");
    let ca = dir.join("ca.pem");
    let key = dir.join("key.pem");
    let csr = dir.join("bmc.csr");
    let cert = dir.join("bmc.pem");
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let p = |p: &std::path::PathBuf| p.display().to_string();
    for args in [
        format!(
            "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pxedeck-test-ca -keyout {} -out {}",
            p(&ca_key),
            p(&ca)
        ),
        format!(
            "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {} -out {}",
            p(&key),
            p(&csr)
        ),
        format!(
            "x509 -req -days 2 -in {} -CA {} -CAkey {} -CAcreateserial -extfile {} -out {}",
            p(&csr),
            p(&ca),
            p(&ca_key),
            p(&ext),
            p(&cert)
        ),
    ] {
        let out = Command::new("openssl")
            .args(args.split(' '))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("openssl (Debian package openssl): {e}"))?;
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // sushy accepts bcrypt digests only; bcrypt comes with sushy-tools.
    let hash = Command::new("python3")
        .args(["-c", "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())", PASSWORD])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !hash.status.success() {
        return Err(format!(
            "python3 has no bcrypt (pip install sushy-tools): {}",
            String::from_utf8_lossy(&hash.stderr).trim()
        ));
    }
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{USER}:{}", String::from_utf8_lossy(&hash.stdout).trim()),
    )
    .unwrap();
    let conf = dir.join("sushy.conf");
    std::fs::write(
        &conf,
        format!("SUSHY_EMULATOR_AUTH_FILE = '{}'\n", htpasswd.display()),
    )
    .unwrap();
    let password_file = dir.join("bmc.pass");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let port = free_tcp_port();
    let log = dir.join("sushy.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("sushy-emulator")
        .arg("--config")
        .arg(&conf)
        .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
        .arg("--ssl-certificate")
        .arg(&cert)
        .arg("--ssl-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .map_err(|e| format!("sushy-emulator (pip install sushy-tools): {e}"))?;
    let mut sushy = Sushy {
        child,
        port,
        ca,
        password_file,
        log,
    };
    // Python takes a while to import on a busy machine.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(sushy);
        }
        if let Ok(Some(status)) = sushy.child.try_wait() {
            return Err(format!(
                "sushy-emulator exited ({status}):\n{}",
                std::fs::read_to_string(&sushy.log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err("sushy-emulator did not listen within 60 s".into())
}

fn spec(s: &Sushy) -> BmcSpec {
    BmcSpec {
        host: "127.0.0.1".into(),
        port: s.port,
        protocol: BmcProtocol::Redfish,
        username: USER.into(),
        password: PasswordRef::File(s.password_file.clone()),
        verify_tls: true,
        ca_file: Some(s.ca.clone()),
    }
}

fn wait_for_power(spec: &BmcSpec, want: PowerState) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if pxedeck::bmc::perform(spec, PowerAction::Status, Limits::default()) == Ok(Some(want)) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("power did not become {want:?} within 30 s");
}

#[test]
fn status_power_actions_and_the_boot_override_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let sushy = match sushy(dir.path()) {
        Ok(s) => s,
        Err(why) => {
            eprintln!(
                "SKIPPED {}: sushy-emulator cannot start ({why})",
                module_path!()
            );
            return;
        }
    };
    let limits = Limits::default();
    let spec = spec(&sushy);

    // Verification is on by default: a self-signed certificate without
    // its CA is refused, with what to set.
    let mut no_ca = spec.clone();
    no_ca.ca_file = None;
    match pxedeck::bmc::perform(&no_ca, PowerAction::Status, limits) {
        Err(BmcError::Tls(m)) => {
            assert!(
                m.contains("verify_tls: false") && m.contains("ca_file"),
                "{m}"
            )
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // verify_tls: false lets the self-signed BMC in.
    let mut unverified = no_ca.clone();
    unverified.verify_tls = false;
    assert!(pxedeck::bmc::perform(&unverified, PowerAction::Status, limits).is_ok());
    // A wrong password is an auth error.
    let wrong = dir.path().join("wrong.pass");
    std::fs::write(&wrong, "nope").unwrap();
    let mut bad = spec.clone();
    bad.password = PasswordRef::File(wrong);
    let refused = pxedeck::bmc::perform(&bad, PowerAction::Status, limits);
    assert!(matches!(refused, Err(BmcError::Auth(_))), "{refused:?}");

    // The fake system starts in either state: begin from off.
    if pxedeck::bmc::perform(&spec, PowerAction::Status, limits) == Ok(Some(PowerState::On)) {
        assert_eq!(
            pxedeck::bmc::perform(&spec, PowerAction::Off, limits),
            Ok(None)
        );
        wait_for_power(&spec, PowerState::Off);
    }
    // Boot once from the network: the override reads back as Pxe.
    assert_eq!(
        pxedeck::bmc::perform(&spec, PowerAction::PxeOnce, limits),
        Ok(None)
    );
    let password = std::fs::read_to_string(&sushy.password_file).unwrap();
    let client = Redfish::connect(&spec, &password, limits).unwrap();
    let (target, enabled) = client.boot_override().unwrap();
    assert_eq!(target, "Pxe");
    // sushy's fake driver reads Once back as Continuous.
    assert!(enabled == "Once" || enabled == "Continuous", "{enabled}");

    // A cycle of a machine that is off powers it on.
    assert_eq!(
        pxedeck::bmc::perform(&spec, PowerAction::Cycle, limits),
        Ok(Some(PowerState::On))
    );
    let took = wait_for_power(&spec, PowerState::On);
    eprintln!("power on landed after {took:?}");
    // Reset and a graceful shutdown are offered; a hard off ends it.
    assert_eq!(
        pxedeck::bmc::perform(&spec, PowerAction::Reset, limits),
        Ok(None)
    );
    assert_eq!(
        pxedeck::bmc::perform(&spec, PowerAction::Off, limits),
        Ok(None)
    );
    let took = wait_for_power(&spec, PowerState::Off);
    eprintln!("power off landed after {took:?}");
    assert_eq!(
        pxedeck::bmc::perform(&spec, PowerAction::On, limits),
        Ok(None)
    );
    wait_for_power(&spec, PowerState::On);
    assert_eq!(
        pxedeck::bmc::perform(&spec, PowerAction::SoftOff, limits),
        Ok(None)
    );
    wait_for_power(&spec, PowerState::Off);
}

#[test]
fn a_service_that_does_not_answer_times_out() {
    // A TCP listener that accepts and never speaks: the TLS handshake
    // waits, the driver's timeout ends it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("p");
    std::fs::write(&password, "x").unwrap();
    let spec = BmcSpec {
        host: "127.0.0.1".into(),
        port,
        protocol: BmcProtocol::Redfish,
        username: USER.into(),
        password: PasswordRef::File(password),
        verify_tls: true,
        ca_file: None,
    };
    let limits = Limits {
        timeout: Duration::from_secs(2),
    };
    let t = Instant::now();
    let result = pxedeck::bmc::perform(&spec, PowerAction::Status, limits);
    assert!(matches!(result, Err(BmcError::Timeout(_))), "{result:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    drop(listener);
}
