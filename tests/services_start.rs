//! Starting the services half-way and failing must not leave anything
//! running: TFTP and DHCP have threads of their own (lanes), which would
//! otherwise outlive the error. Alone in its file, because it counts the
//! process's threads.

use std::time::Duration;

use pxedeck::config::Config;
use pxedeck::services::Services;

fn lane_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("pxedeck-"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_stops_the_lanes_it_started() {
    // DHCP's port is taken, so the start fails after the TFTP lane (and
    // the DHCP lane) are up.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dhcp_port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nodes")).unwrap();
    let text = format!(
        "server:\n  address: 127.0.0.1\n\
         dhcp:\n  port: {dhcp_port}\n  proxy_port: 0\n  lease_file: {leases}\n  pools:\n    - subnet: 127.98.0.0/16\n      range: 127.98.1.1-127.98.1.100\n\
         tftp:\n  port: 0\nhttp:\n  port: 0\n  api_listen: 127.0.0.1:0\n\
         boot_root: {root}\ninventory: {nodes}\n",
        leases = dir.path().join("leases.jsonl").display(),
        root = dir.path().display(),
        nodes = dir.path().join("nodes").display(),
    );
    let config = Config::from_text(&text, None).unwrap();
    let err = Services::start(config)
        .await
        .err()
        .expect("the start fails");
    assert!(err.to_string().contains("127.0.0.1"), "{err:#}");
    let mut left = lane_threads();
    for _ in 0..50 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = lane_threads();
    }
    assert_eq!(left, 0, "lane threads still running after the failed start");
}
