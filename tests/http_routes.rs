//! Every HTTP route that machines use, in-process (tower `oneshot`, no
//! sockets): boot scripts for each example profile (golden files),
//! identification, configs and their access check, the done callback and
//! the installers that never call back, files with ranges. The API is in
//! `tests/http_api.rs`.

#[path = "routes/fixture.rs"]
mod fixture;

use fixture::*;

// ---- scripts ----------------------------------------------------------

#[tokio::test]
async fn golden_scripts_for_every_example_profile() {
    let f = Fixture::new();
    let cases = [
        ("dev-01_ubuntu_install", DEV01),
        ("dev-03_install_false", "52:54:00:d0:00:03"),
        ("prod-01_talos_remote", "52:54:00:e0:00:01"),
        ("prod-05_local_profile", "52:54:00:e0:00:05"),
        ("unknown_hold", "52:54:00:99:00:01"),
    ];
    for (name, mac) in cases {
        let r = get(f.boot(STRANGER), &format!("/boot.ipxe?mac={mac}")).await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
        assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
        insta::assert_snapshot!(name, mask_capabilities(&r.text()));
    }
}

#[tokio::test]
async fn discover_policy_boots_the_named_profile() {
    let f = Fixture::with(
        |_| {},
        "unknown:\n  policy: discover\n  profile: ubuntu-2404\n",
    );
    let r = get(f.boot(STRANGER), "/boot.ipxe?mac=52-54-00-99-00-02").await;
    insta::assert_snapshot!("unknown_discover", r.text());
}

#[tokio::test]
async fn the_lease_address_identifies_a_machine_without_a_query() {
    let mut f = Fixture::new();
    let r = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    assert!(
        r.text().contains("is dev-01, booting ubuntu-2404"),
        "{}",
        r.text()
    );
    let served = f.drain().into_iter().find_map(|e| match e {
        EventKind::ScriptServed { kind, hostname, .. } => Some((kind, hostname)),
        _ => None,
    });
    assert_eq!(served, Some((ScriptKind::Install, Some("dev-01".into()))));
}

#[tokio::test]
async fn an_unidentified_client_is_asked_for_its_identity() {
    let f = Fixture::new();
    let r = get(f.boot(STRANGER), "/boot.ipxe").await;
    let text = r.text();
    assert!(text.starts_with("#!ipxe\n"));
    assert!(
        text.contains("http://10.99.0.1/boot.ipxe?mac=${netX/mac:hexhyp}&uuid=${uuid}&serial=${serial:uristring}"),
        "{text}"
    );
}

#[tokio::test]
async fn uuid_or_serial_identify_a_known_machine_with_a_new_nic() {
    let f = Fixture::new();
    let r = get(
        f.boot(STRANGER),
        "/boot.ipxe?mac=02-00-00-00-00-09&uuid=4c4c4544-0051-3010-8057-b4c04f4a4d01",
    )
    .await;
    assert!(
        r.text().contains("is prod-01, booting talos-worker"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn a_template_error_gives_an_error_script_and_an_event() {
    let mut f = Fixture::with(
        |nodes| {
            let p = nodes.join("k8s-dev/dev-01.yaml");
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(
                &p,
                format!("{text}boot:\n  kernel: k\n  cmdline: root={{{{ no_such_value }}}}\n"),
            )
            .unwrap();
        },
        "",
    );
    let r = get(f.boot(STRANGER), &format!("/boot.ipxe?mac={DEV01}")).await;
    let text = r.text();
    assert!(
        text.contains("echo pxedeck: cannot boot 52:54:00:d0:00:01: boot.cmdline: undefined value"),
        "{text}"
    );
    assert!(
        !text.contains("kernel "),
        "never a half-rendered script: {text}"
    );
    assert!(text.contains(
        "chain --replace --autofree http://10.99.0.1/boot.ipxe?mac=52:54:00:d0:00:01 || goto wait"
    ));
    let events = f.drain();
    assert!(events.iter().any(|e| matches!(
        e,
        EventKind::ScriptServed {
            kind: ScriptKind::Error,
            ..
        }
    )));
    assert!(events.iter().any(
        |e| matches!(e, EventKind::Log { message, .. } if message.contains("undefined value"))
    ));
}

// ---- configs ----------------------------------------------------------

#[tokio::test]
async fn configs_are_rendered_for_the_lease_holder_only() {
    let mut f = Fixture::new();
    let dev01 = f.granted(Purpose::Config, "dev-01");
    let r = get(f.boot(DEV01_LEASE), &format!("{dev01}/user-data")).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(text.starts_with("#cloud-config\n"));
    assert!(text.contains("hostname: dev-01"));
    assert!(text.contains("curl -fsS -X POST http://10.99.0.1/done/dev-01"));
    assert!(text.contains("name: lvm"), "profile values merged: {text}");
    assert!(
        text.contains("timezone: Etc/UTC"),
        "root defaults merged: {text}"
    );
    let meta = get(f.boot(DEV01_LEASE), &format!("{dev01}/meta-data")).await;
    assert_eq!(meta.text(), "instance-id: dev-01\nlocal-hostname: dev-01\n");
    assert!(matches!(
        f.drain().as_slice(),
        [
            EventKind::ConfigServed { .. },
            EventKind::ConfigServed { .. }
        ]
    ));

    let denied = get(f.boot(STRANGER), &format!("{dev01}/user-data")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(!denied.text().contains("cloud-config"));
    assert!(matches!(
        f.drain().as_slice(),
        [EventKind::AccessDenied { path, .. }] if path == "/config/dev-01/user-data"
    ));
    // Issue 15 item 3: an unknown machine answers as a refused one does
    // (it was 404), so a prober cannot list hostnames.
    assert_eq!(
        get(f.boot(DEV01_LEASE), "/config/nobody/user-data")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(f.boot(DEV01_LEASE), &format!("{dev01}/kickstart"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_static_address_and_the_allow_list_may_read_configs() {
    let f = Fixture::with(|_| {}, "  config_allow: [192.0.2.0/24]\n");
    // prod-01 has ip: 10.99.0.31 and no lease in the fake table.
    let prod01 = f.granted(Purpose::Config, "prod-01");
    let r = get(f.boot("10.99.0.31"), &format!("{prod01}/machine.yaml")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("hostname: prod-01"));
    assert!(r.text().contains("disk: /dev/sda"));
    let r = get(f.boot("192.0.2.7"), &format!("{prod01}/machine.yaml")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn ignition_must_render_to_json() {
    let f = Fixture::with(
        |nodes| {
            let p = nodes.join("k8s-dev/dev-01.yaml");
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(
                &p,
                format!("{text}configs:\n  good.ign: '{{\"ignition\": {{\"version\": \"3.4.0\"}}, \"h\": \"{{{{ hostname }}}}\"}}'\n  bad.ign: 'not json {{{{ hostname }}}}'\n"),
            )
            .unwrap();
        },
        "",
    );
    let dev01 = f.granted(Purpose::Config, "dev-01");
    let good = get(f.boot(DEV01_LEASE), &format!("{dev01}/good.ign")).await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.text());
    assert_eq!(good.header(header::CONTENT_TYPE), "application/json");
    assert!(good.text().contains("\"h\": \"dev-01\""));
    let bad = get(f.boot(DEV01_LEASE), &format!("{dev01}/bad.ign")).await;
    assert_eq!(bad.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(bad.text().contains("not valid JSON"), "{}", bad.text());
}

// ---- done callback -----------------------------------------------------

#[tokio::test]
async fn the_done_callback_flips_install_and_nothing_else() {
    let mut f = Fixture::new();
    let path = f.nodes.join("k8s-dev/dev-01.yaml");
    let before = std::fs::read_to_string(&path).unwrap();
    let done = f.granted(Purpose::Done, "dev-01");
    let post = |from| {
        let router = f.boot(from);
        let req = Request::post(done.as_str()).body(Body::empty()).unwrap();
        async move { call(router, req).await }
    };
    let denied = post(STRANGER).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    let ok = post(DEV01_LEASE).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after, before.replace("install: true", "install: false"));
    assert_ne!(after, before);
    let events = f.drain();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "dev-01"))
    );
    // The served snapshot changed too: the next script boots the disk.
    let r = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    assert!(r.text().contains("dev-01: local disk"), "{}", r.text());
}

#[tokio::test]
async fn an_installer_that_never_calls_back_is_done_when_it_has_its_config() {
    let mut f = Fixture::new();
    let path = f.nodes.join("k8s-prod/prod-01.yaml");
    let before = std::fs::read_to_string(&path).unwrap();
    let prod01 = f.granted(Purpose::Config, "prod-01");
    let r = get(f.boot("10.99.0.31"), &format!("{prod01}/machine.yaml")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The flip runs beside the response: wait for its event (bounded).
    let mut events = Vec::new();
    for _ in 0..100 {
        events.extend(f.drain());
        if events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "prod-01"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "prod-01")),
        "{events:?}"
    );
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after, before.replace("install: true", "install: false"));
    let r = get(f.boot("10.99.0.31"), "/boot.ipxe?mac=52:54:00:e0:00:01").await;
    assert!(r.text().contains("prod-01: local disk"), "{}", r.text());
    // A profile without the key waits for its callback.
    let dev01 = f.granted(Purpose::Config, "dev-01");
    let r = get(f.boot(DEV01_LEASE), &format!("{dev01}/user-data")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let dev = std::fs::read_to_string(f.nodes.join("k8s-dev/dev-01.yaml")).unwrap();
    assert!(dev.contains("install: true"), "{dev}");
}

/// A mass boot's done callbacks must cost O(1) each: the callback tells
/// consumers about its one machine, and every other machine's cached
/// script stays cached.
#[tokio::test]
async fn a_done_callback_changes_one_machine_and_keeps_the_other_scripts() {
    let mut f = Fixture::new();
    let others = [
        "52:54:00:d0:00:02",
        "52:54:00:d0:00:03",
        "52:54:00:99:00:07",
    ];
    for mac in others {
        get(f.boot(STRANGER), &format!("/boot.ipxe?mac={mac}")).await;
    }
    let dev01 = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    assert!(
        !dev01.text().contains("dev-01: local disk"),
        "{}",
        dev01.text()
    );
    let rendered = f.state.scripts.renders();
    assert_eq!(rendered, 4);
    f.drain();

    let ok = call(
        f.boot(DEV01_LEASE),
        Request::post(f.granted(Purpose::Done, "dev-01"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let events = f.drain();
    let changed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::InventoryMachineChanged { machine } => Some(machine),
            _ => None,
        })
        .collect();
    assert_eq!(changed.len(), 1, "{events:?}");
    assert_eq!(
        (changed[0].hostname.as_str(), changed[0].install),
        ("dev-01", false)
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, EventKind::InventoryReloaded { .. })),
        "no whole-inventory event for one machine: {events:?}"
    );

    for mac in others {
        get(f.boot(STRANGER), &format!("/boot.ipxe?mac={mac}")).await;
    }
    assert_eq!(
        f.state.scripts.renders(),
        rendered,
        "the others stay cached"
    );
    let dev01 = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    assert!(
        dev01.text().contains("dev-01: local disk"),
        "{}",
        dev01.text()
    );
    assert_eq!(f.state.scripts.renders(), rendered + 1);
}

/// The cache keeps a script only while what it was rendered from is
/// unchanged: a shared file (a profile) re-renders every machine, a
/// machine's own file re-renders that machine.
#[tokio::test]
async fn an_edited_file_re_renders_exactly_the_scripts_it_feeds() {
    let f = Fixture::new();
    let script = |mac: &'static str| {
        let router = f.boot(STRANGER);
        async move { get(router, &format!("/boot.ipxe?mac={mac}")).await.text() }
    };
    let reload = || {
        call(
            f.api(),
            json_post(
                "/api/v1/commands",
                Some(TOKEN),
                serde_json::json!({"command": "reload_inventory"}),
            ),
        )
    };
    let (dev01, dev02) = ("52:54:00:d0:00:01", "52:54:00:d0:00:02");
    assert!(script(dev01).await.contains("autoinstall"));
    assert!(script(dev02).await.contains("autoinstall"));

    let profile = f.nodes.join("_profiles/ubuntu-2404.yaml");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        text.replace("autoinstall\n", "autoinstall quiet\n"),
    )
    .unwrap();
    assert_eq!(reload().await.status, StatusCode::OK);
    assert!(script(dev01).await.contains("autoinstall quiet"));
    assert!(script(dev02).await.contains("autoinstall quiet"));

    let own = f.nodes.join("k8s-dev/dev-02.yaml");
    let text = std::fs::read_to_string(&own).unwrap();
    std::fs::write(&own, text.replace("install: true", "install: false")).unwrap();
    let before = f.state.scripts.renders();
    assert_eq!(reload().await.status, StatusCode::OK);
    assert!(script(dev02).await.contains("dev-02: local disk"));
    assert!(script(dev01).await.contains("autoinstall quiet"));
    assert_eq!(f.state.scripts.renders(), before + 1, "only dev-02's again");
}

// ---- files ------------------------------------------------------------

fn ranged(uri: &str, range: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::RANGE, range)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn files_whole_ranged_head_and_refused() {
    let mut f = Fixture::new();
    let kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let whole = get(f.boot(DEV01_LEASE), "/ubuntu-24.04/vmlinuz").await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body, kernel);
    assert_eq!(whole.header(header::CONTENT_LENGTH), "100000");
    assert_eq!(whole.header(header::ACCEPT_RANGES), "bytes");
    let events = f.drain();
    assert!(matches!(
        &events[0],
        EventKind::TransferStarted {
            size: Some(100_000),
            mac: Some(_),
            ..
        }
    ));
    assert!(matches!(
        &events[1],
        EventKind::TransferDone { bytes: 100_000, .. }
    ));

    let part = call(
        f.boot(STRANGER),
        ranged("/ubuntu-24.04/vmlinuz", "bytes=10-19"),
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, &kernel[10..20]);
    assert_eq!(part.header(header::CONTENT_RANGE), "bytes 10-19/100000");
    let open = call(
        f.boot(STRANGER),
        ranged("/ubuntu-24.04/vmlinuz", "bytes=99990-"),
    )
    .await;
    assert_eq!(open.body, &kernel[99_990..]);
    let suffix = call(
        f.boot(STRANGER),
        ranged("/ubuntu-24.04/vmlinuz", "bytes=-5"),
    )
    .await;
    assert_eq!(suffix.body, &kernel[99_995..]);
    let beyond = call(
        f.boot(STRANGER),
        ranged("/ubuntu-24.04/vmlinuz", "bytes=100000-"),
    )
    .await;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.header(header::CONTENT_RANGE), "bytes */100000");

    let head = call(
        f.boot(STRANGER),
        Request::head("/ipxe.efi").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header(header::CONTENT_TYPE), "application/efi");
    assert_eq!(head.header(header::CONTENT_LENGTH), "11");
    assert!(head.body.is_empty());
    let empty = get(f.boot(STRANGER), "/zero").await;
    assert_eq!((empty.status, empty.body.len()), (StatusCode::OK, 0));

    for (uri, status) in [
        ("/missing", StatusCode::NOT_FOUND),
        ("/../secret", StatusCode::FORBIDDEN),
        ("/%2e%2e/secret", StatusCode::FORBIDDEN),
        ("/empty-dir", StatusCode::FORBIDDEN),
        ("/etc/passwd", StatusCode::NOT_FOUND),
        ("/%zz", StatusCode::BAD_REQUEST),
    ] {
        let r = get(f.boot(STRANGER), uri).await;
        assert_eq!(r.status, status, "{uri}");
        assert!(!r.text().contains("not for you"));
        assert!(r.headers.get(header::LOCATION).is_none(), "no redirects");
    }
    let post = call(
        f.boot(STRANGER),
        Request::builder()
            .method(Method::POST)
            .uri("/ipxe.efi")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// `done_on_next_boot` (the example's disk-image profile): the boot after
/// the installer is the done callback, answered with the local disk.
#[tokio::test]
async fn an_installer_without_callback_or_config_is_done_on_the_next_boot() {
    let mut f = Fixture::with(
        |nodes| {
            std::fs::write(
                nodes.join("k8s-dev/img-01.yaml"),
                "# imaged, never calls back\nmac: \"52:54:00:77:00:41\"\nprofile: disk-image\ninstall: true\n",
            )
            .unwrap();
        },
        "unknown:\n  policy: hold\n",
    );
    let path = f.nodes.join("k8s-dev/img-01.yaml");
    let first = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:77:00:41").await;
    assert!(
        first.text().contains("imager/vmlinuz"),
        "the installer: {}",
        first.text()
    );
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("install: true")
    );
    let next = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:77:00:41").await;
    assert!(
        next.text().contains("img-01: local disk"),
        "{}",
        next.text()
    );
    let mut events = Vec::new();
    for _ in 0..100 {
        events.extend(f.drain());
        if events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "img-01"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::InstallDone { hostname, .. } if hostname == "img-01")),
        "{events:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# imaged, never calls back\n") && text.contains("install: false"),
        "{text}"
    );
    // And it stays on its disk.
    let again = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:77:00:41").await;
    assert!(
        again.text().contains("img-01: local disk"),
        "{}",
        again.text()
    );
    // A profile without the key is served its installer every time.
    for _ in 0..2 {
        let r = get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
        assert!(r.text().contains("autoinstall"), "{}", r.text());
    }
}
