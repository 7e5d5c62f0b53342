//! The API in-process: commands and their token, each failure with its
//! status, edit and undo within their bounds, reads, metrics and the
//! event stream.

#[path = "routes/fixture.rs"]
mod fixture;

use fixture::*;

// ---- API --------------------------------------------------------------

#[tokio::test]
async fn api_commands_need_the_token_and_write_the_inventory() {
    let f = Fixture::new();
    let adoption = serde_json::json!({"machines": [{
        "macs": ["52:54:00:99:00:07"], "hostname": "dev-07", "group": "k8s-dev",
        "profile": "ubuntu-2404", "install": true
    }]});
    // Held before the adoption (and that script is now cached)…
    let held = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:99:00:07").await;
    assert!(
        held.text().contains("held until someone adopts it"),
        "{}",
        held.text()
    );
    let none = call(f.api(), json_post("/api/v1/adopt", None, adoption.clone())).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let wrong = call(
        f.api(),
        json_post("/api/v1/adopt", Some("nope"), adoption.clone()),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!f.nodes.join("k8s-dev/dev-07.yaml").exists());

    let ok = call(
        f.api(),
        json_post("/api/v1/adopt", Some(TOKEN), adoption.clone()),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(f.nodes.join("k8s-dev/dev-07.yaml").exists());
    // …the adopted machine boots its profile at once: a new inventory
    // snapshot is a new cache.
    let r = get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:99:00:07").await;
    assert!(
        r.text().contains("is dev-07, booting ubuntu-2404"),
        "{}",
        r.text()
    );

    let again = call(f.api(), json_post("/api/v1/adopt", Some(TOKEN), adoption)).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.text().contains("dev-07"), "{}", again.text());

    let flip = call(
        f.api(),
        json_post(
            "/api/v1/nodes/dev-07/install",
            Some(TOKEN),
            serde_json::json!({"install": false}),
        ),
    )
    .await;
    assert_eq!(flip.status, StatusCode::OK, "{}", flip.text());
    let text = std::fs::read_to_string(f.nodes.join("k8s-dev/dev-07.yaml")).unwrap();
    assert!(text.contains("install: false"), "{text}");
}

#[tokio::test]
async fn api_commands_are_refused_without_a_configured_token() {
    let f = Fixture::new();
    let mut config = (*f.state.config).clone();
    config.http.api_token = None;
    let secrets = Secrets::ephemeral(&config).unwrap();
    let state = Arc::new(HttpState {
        config: Arc::new(config),
        inventory: f.state.inventory.clone(),
        bus: f.state.bus.clone(),
        fs: f.state.fs.clone(),
        progress: f.state.progress.clone(),
        leases: Arc::new(FakeLeases(HashMap::new())),
        urls: f.state.urls.clone(),
        stats: Default::default(),
        control: f.state.control.clone(),
        model: f.state.model.clone(),
        dhcp: None,
        tftp: None,
        scripts: Default::default(),
        files: Default::default(),
        secrets: secrets.into(),
        next_boot: Default::default(),
    });
    let api = http::api::router(state);
    let r = call(
        api,
        json_post(
            "/api/v1/commands",
            Some(TOKEN),
            serde_json::json!({"command": "reload_inventory"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("api_token"));
}

#[tokio::test]
async fn api_reads_metrics_and_event_stream() {
    let f = Fixture::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(
        f.state
            .model
            .clone()
            .run(f.state.bus.clone(), cancel.clone()),
    );
    // Some traffic for the model to fold.
    get(f.boot(DEV01_LEASE), "/boot.ipxe").await;
    get(f.boot(DEV01_LEASE), "/ubuntu-24.04/vmlinuz").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let machines = api_get(f.api(), "/api/v1/machines").await;
    let rows: serde_json::Value = serde_json::from_slice(&machines.body).unwrap();
    assert_eq!(rows[0]["mac"], DEV01);
    assert_eq!(rows[0]["hostname"], "dev-01");
    let nodes: serde_json::Value =
        serde_json::from_slice(&api_get(f.api(), "/api/v1/nodes").await.body).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 10);
    let profiles: serde_json::Value =
        serde_json::from_slice(&api_get(f.api(), "/api/v1/profiles").await.body).unwrap();
    assert_eq!(profiles[0]["name"], "disk-image");
    assert_eq!(profiles[1]["name"], "local");
    let transfers: serde_json::Value =
        serde_json::from_slice(&api_get(f.api(), "/api/v1/transfers").await.body).unwrap();
    assert_eq!(transfers["recent"][0]["bytes"], 100_000);
    assert_eq!(get(f.api(), "/healthz").await.text(), "ok\n");

    let metrics = get(f.api(), "/metrics").await.text();
    for needle in [
        "pxedeck_http_requests_total 2",
        "pxedeck_http_bytes_total 100000",
        "pxedeck_http_responses_total{kind=\"script\"} 1",
        "pxedeck_http_responses_total{kind=\"file_done\"} 1",
        "# TYPE pxedeck_inventory_reloads_total counter",
        "pxedeck_machines_by_state{state=\"loading\"} 1",
        "pxedeck_machines_by_state{state=\"stuck\"} 0",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }

    // The stream opens with the snapshot, then carries new events.
    let res = f
        .api()
        .oneshot(
            Request::get("/api/v1/events")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body().into_data_stream();
    use futures_util::StreamExt;
    let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: snapshot\ndata: {"), "{first}");
    assert!(first.contains("\"hostname\":\"dev-01\""));
    get(f.boot(STRANGER), "/boot.ipxe?mac=52:54:00:99:00:01").await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let next = String::from_utf8(next.to_vec()).unwrap();
    assert!(next.starts_with("event: event\ndata: {"), "{next}");
    assert!(next.contains("\"type\":\"script_served\""), "{next}");
    cancel.cancel();
}

#[tokio::test]
async fn forget_drops_an_unknown_machine_and_refuses_a_known_one() {
    let mut f = Fixture::new();
    let forget = |mac: &str| {
        call(
            f.api(),
            json_post(
                "/api/v1/commands",
                Some(TOKEN),
                serde_json::json!({"command": "forget", "mac": mac}),
            ),
        )
    };
    let known = forget(DEV01).await;
    assert_eq!(
        known.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        known.text()
    );
    assert!(
        known.text().contains("dev-01 in the inventory"),
        "{}",
        known.text()
    );
    let stranger = "52:54:00:99:00:42";
    let ok = forget(stranger).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(
        f.drain().iter().any(
            |e| matches!(e, EventKind::MachineForgotten { mac } if mac.to_string() == stranger)
        )
    );
}

/// Edit and undo over the API: the same commands as the console's keys,
/// each input bounded with a clear refusal (unknown keys, a name past
/// the bound, a body past axum's limit), and undo refused once nothing
/// is left to undo or the file changed.
#[tokio::test]
async fn api_edits_a_machine_and_undoes_the_last_adoption_within_bounds() {
    let f = Fixture::new();
    let post = |uri: &str, body| call(f.api(), json_post(uri, Some(TOKEN), body));
    let ok = post(
        "/api/v1/nodes/dev-03/edit",
        serde_json::json!({"profile": "talos-worker", "install": true}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(
        ok.text()
            .contains("dev-03: profile talos-worker, install true"),
        "{}",
        ok.text()
    );
    let text = std::fs::read_to_string(f.nodes.join("k8s-dev/dev-03.yaml")).unwrap();
    assert!(
        text.contains("profile: talos-worker") && text.contains("install: true"),
        "{text}"
    );
    assert!(
        text.contains("storage_layout: direct   # one small disk"),
        "{text}"
    );
    // The same through the generic commands route.
    let ok = post(
        "/api/v1/commands",
        serde_json::json!({"command": "edit", "hostname": "dev-03", "group": "k8s-prod"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(f.nodes.join("k8s-prod/dev-03.yaml").exists());
    assert!(!f.nodes.join("k8s-dev/dev-03.yaml").exists());

    let misspelt = post(
        "/api/v1/nodes/dev-01/edit",
        serde_json::json!({"profil": "x"}),
    )
    .await;
    assert_eq!(
        misspelt.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        misspelt.text()
    );
    assert!(
        misspelt.text().contains("unknown field `profil`"),
        "{}",
        misspelt.text()
    );
    let long = post(
        "/api/v1/nodes/dev-01/edit",
        serde_json::json!({"group": "g".repeat(5000)}),
    )
    .await;
    assert_eq!(
        long.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        long.text()
    );
    assert!(long.text().contains("at most 128"), "{}", long.text());
    assert!(
        long.text().len() < 300,
        "no echo of the input: {}",
        long.text()
    );
    let huge = post(
        "/api/v1/nodes/dev-01/edit",
        serde_json::json!({"profile": "p".repeat(3 << 20)}),
    )
    .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    let bad_ip = post(
        "/api/v1/nodes/dev-01/edit",
        serde_json::json!({"ip": "10.99.0.300"}),
    )
    .await;
    assert_eq!(
        bad_ip.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_ip.text()
    );
    let ghost = post(
        "/api/v1/nodes/ghost/edit",
        serde_json::json!({"install": true}),
    )
    .await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND, "{}", ghost.text());

    let nothing = post("/api/v1/adopt/undo", serde_json::json!({})).await;
    assert_eq!(nothing.status, StatusCode::CONFLICT, "{}", nothing.text());
    assert!(
        nothing.text().contains("no adoption to undo"),
        "{}",
        nothing.text()
    );
    let adoption = serde_json::json!({"machines": [{
        "macs": ["52:54:00:99:00:07"], "hostname": "dev-07", "group": "k8s-dev",
        "profile": "ubuntu-2404", "install": false
    }]});
    assert_eq!(
        post("/api/v1/adopt", adoption.clone()).await.status,
        StatusCode::OK
    );
    let undone = post("/api/v1/adopt/undo", serde_json::json!({})).await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.text());
    assert!(!f.nodes.join("k8s-dev/dev-07.yaml").exists());
    assert_eq!(post("/api/v1/adopt", adoption).await.status, StatusCode::OK);
    std::fs::write(
        f.nodes.join("k8s-dev/dev-07.yaml"),
        "mac: \"52:54:00:99:00:07\"\n",
    )
    .unwrap();
    let changed = post(
        "/api/v1/commands",
        serde_json::json!({"command": "undo_adoption"}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::CONFLICT, "{}", changed.text());
    assert!(
        changed.text().contains("changed since it was adopted"),
        "{}",
        changed.text()
    );
    assert!(f.nodes.join("k8s-dev/dev-07.yaml").exists());
}

/// Command failures answer with what kind they are: the request (422), a
/// name (404), the state on disk (409), or pxedeck itself (500).
#[tokio::test]
async fn api_command_errors_answer_with_their_kind() {
    let f = Fixture::new();
    let adopt = |host: &str, group: &str| {
        serde_json::json!({"machines": [{
            "macs": ["52:54:00:99:00:08"], "hostname": host, "group": group,
            "profile": "ubuntu-2404", "install": true
        }]})
    };
    let post = |uri: &str, body| call(f.api(), json_post(uri, Some(TOKEN), body));

    let invalid = post("/api/v1/adopt", adopt("Not_A_Name", "k8s-dev")).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        invalid.text().contains("not a valid hostname"),
        "{}",
        invalid.text()
    );

    let missing = post(
        "/api/v1/nodes/ghost/install",
        serde_json::json!({"install": true}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    assert!(missing.text().contains("ghost"), "{}", missing.text());

    // A plain file where the group folder would go: the write fails.
    std::fs::write(f.nodes.join("rack9"), "not a folder").unwrap();
    let io = post("/api/v1/adopt", adopt("web-09", "rack9")).await;
    assert_eq!(
        io.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        io.text()
    );
    std::fs::remove_file(f.nodes.join("rack9")).unwrap();

    // Someone's typo elsewhere in the tree: adoptions wait for the fix.
    std::fs::write(f.nodes.join("broken.yaml"), "mac: [\n").unwrap();
    let conflict = post("/api/v1/adopt", adopt("web-09", "k8s-dev")).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.text());
    assert!(
        conflict.text().contains("fix them first"),
        "{}",
        conflict.text()
    );
    assert!(!f.nodes.join("k8s-dev/web-09.yaml").exists());
}
