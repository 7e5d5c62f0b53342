//! The API: JSON under `/api/v1`, the event stream `pxedeck attach` reads,
//! Prometheus metrics and a health check.
//!
//! Only `/healthz` and `/metrics` (counts, no names, MACs or values) are
//! open. Every route that shows inventory values, leases, machines or the
//! event stream needs `Authorization: Bearer` with the API token or the
//! read-only token; commands (they change the inventory or the leases) need
//! the API token itself. The checks are a layer over each group of routes
//! ([`super::auth`]), so a new route cannot forget them.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::{HttpState, auth};
use crate::control::{CommandError, Failure};
use crate::event::Command;
use crate::inventory::{Adoption, MachineEdit};
use crate::live::SubscriberSlot;

/// The API routes (mounted on their own listener).
pub fn router(state: Arc<HttpState>) -> Router {
    let reads = Router::new()
        .route("/api/v1/state", get(full_state))
        .route("/api/v1/machines", get(machines))
        .route("/api/v1/machines/{mac}/served", get(served))
        .route("/api/v1/leases", get(leases))
        .route("/api/v1/transfers", get(transfers))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/profiles", get(profiles))
        .route("/api/v1/events", get(events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_read,
        ));
    let commands = Router::new()
        .route("/api/v1/commands", post(command))
        .route("/api/v1/adopt", post(adopt))
        .route("/api/v1/nodes/{hostname}/install", post(set_install))
        .route("/api/v1/leases/{ip}/release", post(release))
        .route("/api/v1/nodes/{hostname}/power", post(power))
        .route("/api/v1/nodes/{hostname}/reinstall", post(reinstall))
        .route("/api/v1/nodes/{hostname}/edit", post(edit))
        .route("/api/v1/adopt/undo", post(undo_adoption))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_command,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(reads)
        .merge(commands)
        .with_state(state)
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /api/v1/state`: the whole model, the same shared bytes the event
/// stream's snapshot carries (serialised once per model generation).
async fn full_state(State(s): State<Arc<HttpState>>) -> Response {
    match s.model.shared_snapshot() {
        Ok(snapshot) => (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(snapshot.json()),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn machines(State(s): State<Arc<HttpState>>) -> Response {
    Json(&s.model.lock().machines).into_response()
}

/// What a machine is served: decision, script, configs, effective values.
/// Config and done URLs show their capability slot, never a live token:
/// a read-only token must not be able to mint a done callback.
async fn served(State(s): State<Arc<HttpState>>, Path(mac): Path<String>) -> Response {
    let Ok(mac) = mac.parse::<crate::ident::Mac>() else {
        return (StatusCode::BAD_REQUEST, "not a MAC address\n").into_response();
    };
    let inv = s.inventory.load();
    crate::boot::render::served_report(&inv, &s.config.unknown, &mac, &s.urls).into_response()
}

async fn leases(State(s): State<Arc<HttpState>>) -> Response {
    let model = s.model.lock();
    Json(model.leases.values().collect::<Vec<_>>()).into_response()
}

async fn transfers(State(s): State<Arc<HttpState>>) -> Response {
    let model = s.model.lock();
    Json(serde_json::json!({
        "live": model.transfers.values().collect::<Vec<_>>(),
        "recent": model.recent,
    }))
    .into_response()
}

async fn nodes(State(s): State<Arc<HttpState>>) -> Response {
    let inv = s.inventory.load();
    let nodes: Vec<serde_json::Value> = inv
        .machines
        .iter()
        .map(|m| {
            serde_json::json!({
                "hostname": m.hostname,
                "group": m.group,
                "file": inv.file(m.file),
                "macs": m.macs,
                "uuid": m.uuid,
                "serial": m.serial,
                "ip": m.ip,
                "profile": m.profile,
                "install": m.install,
                "boots": m.boot.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    Json(nodes).into_response()
}

async fn profiles(State(s): State<Arc<HttpState>>) -> Response {
    let inv = s.inventory.load();
    let profiles: Vec<serde_json::Value> = inv
        .profiles
        .values()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "description": p.description,
                "file": inv.file(p.file),
                "boots": p.boot.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    Json(profiles).into_response()
}

/// How long an idle event stream waits before a keep-alive comment (as
/// axum's SSE default): a client or proxy that went away is found out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/v1/events`: Server-Sent Events. The first event (`snapshot`)
/// is the whole model; every later one (`event`) is one [`crate::event::Event`]
/// folded after it. A client that falls behind is disconnected and
/// reconnects for a fresh snapshot, so it never shows a state with holes.
///
/// The snapshot is the model's shared serialisation: clients that connect
/// at the same generation send the same bytes, and no client holds a copy
/// of the model. At most `http.max_subscribers` streams run at once; the
/// next is refused with 503 and counted.
async fn events(State(s): State<Arc<HttpState>>) -> Response {
    let cap = s.config.http.max_subscribers;
    let Some(slot) = s.model.subscribers.join(cap) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!(
                "too many event-stream clients: {cap} connected (http.max_subscribers); \
                 try again later\n"
            ),
        )
            .into_response();
    };
    let (snapshot, rx) = match s.model.shared_snapshot_and_subscribe() {
        Ok(subscribed) => subscribed,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let stream = EventStream {
        first: Some(snapshot.sse_event()),
        rx,
        _slot: slot,
    };
    let body = stream::unfold(stream, |mut st| async move {
        let frame = st.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), st))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// One client's event stream: the shared snapshot, then its channel; it
/// holds the client's subscriber slot until it is dropped.
struct EventStream {
    first: Option<Bytes>,
    rx: broadcast::Receiver<Arc<crate::event::Event>>,
    _slot: SubscriberSlot,
}

impl EventStream {
    /// The next SSE frame, or None when the stream ends (the client fell
    /// behind, or the model stopped).
    async fn next_frame(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        match tokio::time::timeout(KEEP_ALIVE, self.rx.recv()).await {
            Err(_idle) => Some(Bytes::from_static(b":\n\n")),
            Ok(Ok(event)) => {
                let mut frame = b"event: event\ndata: ".to_vec();
                serde_json::to_writer(&mut frame, &*event).ok()?;
                frame.extend_from_slice(b"\n\n");
                Some(Bytes::from(frame))
            }
            Ok(Err(
                broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed,
            )) => None,
        }
    }
}

/// Runs a command (its token was checked by the layer over the route).
async fn run(s: &Arc<HttpState>, command: Command) -> Response {
    let Some(control) = s.control.clone() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no inventory writer\n").into_response();
    };
    match tokio::task::spawn_blocking(move || control.run(&command)).await {
        Ok(Ok(message)) => {
            Json(serde_json::json!({ "ok": true, "message": message })).into_response()
        }
        Ok(Err(error)) => (
            status_of(&error),
            Json(serde_json::json!({ "ok": false, "error": error.to_string() })),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The status a failed command answers with: 422 for a request that breaks
/// a rule, 404 for a name that does not exist, 409 when the state on disk
/// or of the server prevents it, 500 when pxedeck itself failed (I/O).
pub fn status_of(error: &CommandError) -> StatusCode {
    match error.failure() {
        Failure::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        Failure::NotFound => StatusCode::NOT_FOUND,
        Failure::Conflict => StatusCode::CONFLICT,
        Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn command(State(s): State<Arc<HttpState>>, Json(command): Json<Command>) -> Response {
    run(&s, command).await
}

#[derive(Deserialize)]
struct AdoptBody {
    machines: Vec<Adoption>,
}

async fn adopt(State(s): State<Arc<HttpState>>, Json(body): Json<AdoptBody>) -> Response {
    let mut machines = body.machines;
    // An adoption that brings no facts keeps what the machine reported
    // (as the console's adopt dialog does), so its file says which box
    // it is whoever adopted it.
    {
        let model = s.model.lock();
        for a in machines.iter_mut().filter(|a| a.facts.is_empty()) {
            if let Some(row) = a.macs.iter().find_map(|m| model.machine(m)) {
                a.facts = row.facts.clone();
            }
        }
    }
    run(&s, Command::Adopt { machines }).await
}

#[derive(Deserialize)]
struct InstallBody {
    install: bool,
}

async fn set_install(
    State(s): State<Arc<HttpState>>,
    Path(hostname): Path<String>,
    Json(body): Json<InstallBody>,
) -> Response {
    let command = Command::SetInstall {
        hostname,
        install: body.install,
    };
    run(&s, command).await
}

async fn release(State(s): State<Arc<HttpState>>, Path(ip): Path<Ipv4Addr>) -> Response {
    run(&s, Command::ReleaseLease { ip }).await
}

#[derive(Deserialize)]
struct PowerBody {
    /// `status`, `on`, `off`, `soft`, `cycle`, `reset` or `pxe`.
    action: String,
}

/// `POST /api/v1/nodes/<hostname>/power`: one BMC action, queued; the
/// outcome arrives as events and in the machine's `power`.
async fn power(
    State(s): State<Arc<HttpState>>,
    Path(hostname): Path<String>,
    Json(body): Json<PowerBody>,
) -> Response {
    let Some(action) = crate::bmc::PowerAction::parse(&body.action) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "ok": false,
                "error": "action must be status, on, off, soft, cycle, reset or pxe",
            })),
        )
            .into_response();
    };
    let command = Command::Power {
        hostnames: vec![hostname],
        action,
    };
    run(&s, command).await
}

/// `POST /api/v1/nodes/<hostname>/reinstall`: `install: true`, boot once
/// from the network, power cycle.
async fn reinstall(State(s): State<Arc<HttpState>>, Path(hostname): Path<String>) -> Response {
    let command = Command::Reinstall {
        hostnames: vec![hostname],
    };
    run(&s, command).await
}

/// `POST /api/v1/nodes/<hostname>/edit` with `{"profile": …, "ip": …,
/// "install": …, "group": …}` (each optional; unknown keys refused).
async fn edit(
    State(s): State<Arc<HttpState>>,
    Path(hostname): Path<String>,
    Json(edit): Json<EditBody>,
) -> Response {
    let command = Command::Edit {
        hostname,
        edit: edit.0,
    };
    run(&s, command).await
}

/// An edit's body: the fields of [`MachineEdit`] and nothing else, so a
/// misspelt key is refused rather than ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditFields {
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    ip: Option<Ipv4Addr>,
    #[serde(default)]
    install: Option<bool>,
    #[serde(default)]
    group: Option<String>,
}

struct EditBody(MachineEdit);

impl<'de> Deserialize<'de> for EditBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EditBody, D::Error> {
        let f = EditFields::deserialize(d)?;
        Ok(EditBody(MachineEdit {
            profile: f.profile,
            ip: f.ip,
            install: f.install,
            group: f.group,
        }))
    }
}

/// `POST /api/v1/adopt/undo`: removes the last adoption's files while
/// they are unchanged (409 otherwise).
async fn undo_adoption(State(s): State<Arc<HttpState>>) -> Response {
    run(&s, Command::UndoAdoption).await
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(s): State<Arc<HttpState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&s),
    )
        .into_response()
}

/// Every state's count (zeros too, so a series never vanishes), a
/// machine stuck at `now` counted as `stuck` rather than its state.
fn machines_by_state(m: &crate::model::Model, now: crate::clock::Millis) -> Vec<(String, u64)> {
    use crate::model::MachineState as S;
    let states = [
        S::Known,
        S::Discovered,
        S::Held,
        S::Booting,
        S::Loading,
        S::Installing,
        S::Installed,
        S::Local,
        S::Failed,
    ];
    let mut counts: Vec<(&str, u64)> = states.iter().map(|s| (s.label(), 0)).collect();
    counts.push(("stuck", 0));
    for row in &m.machines {
        let label = if m.stuck_at(row, now).is_some() {
            "stuck"
        } else {
            row.state.label()
        };
        if let Some(c) = counts.iter_mut().find(|(l, _)| *l == label) {
            c.1 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(l, n)| (format!("{{state=\"{l}\"}}"), n))
        .collect()
}

fn render_metrics(s: &HttpState) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    // Copy out the few numbers needed; the model is not cloned per scrape.
    let (counters, problems, machines, dropped, http_active, by_state) = {
        let m = s.model.lock();
        let by_state = machines_by_state(&m, crate::clock::now_millis());
        let http_active = m
            .transfers
            .values()
            .filter(|t| t.protocol == crate::event::Protocol::Http)
            .count();
        (
            m.counters.clone(),
            m.inventory.problems.len(),
            m.machines.len(),
            m.unknown.dropped,
            http_active,
            by_state,
        )
    };
    // DHCP and TFTP counts come from the servers' own counters, exact
    // whatever the event bus had to drop.
    if let Some(dhcp) = &s.dhcp {
        let d = &dhcp.stats;
        family(
            "pxedeck_dhcp_datagrams_total",
            "counter",
            "Datagrams read on the DHCP sockets.",
            one(d.received.load(Ordering::Relaxed)),
        );
        family(
            "pxedeck_dhcp_requests_total",
            "counter",
            "DHCP requests received, by message type.",
            d.requests.samples("type"),
        );
        family(
            "pxedeck_dhcp_replies_total",
            "counter",
            "DHCP replies sent, by message type.",
            d.replies.samples("type"),
        );
        family(
            "pxedeck_dhcp_dropped_total",
            "counter",
            "DHCP packets not answered, by reason.",
            d.dropped.samples("reason"),
        );
        family(
            "pxedeck_dhcp_rogue_servers_seen_total",
            "counter",
            "OFFERs and ACKs seen from other DHCP servers.",
            one(dhcp.stats.rogue_seen.load(Ordering::Relaxed)),
        );
        family(
            "pxedeck_dhcp_options_dropped_total",
            "counter",
            "Options left out of replies to fit the client's maximum message size (option 57).",
            one(dhcp.stats.options_dropped.load(Ordering::Relaxed)),
        );
        family(
            "pxedeck_dhcp_leases",
            "gauge",
            "Addresses per pool range: used (bound or offered), quarantined (declined) and free.",
            dhcp.lease_samples(),
        );
    }
    if let Some(tftp) = &s.tftp {
        let t = &tftp.stats;
        family(
            "pxedeck_tftp_requests_total",
            "counter",
            "TFTP read requests.",
            one(t.requests.load(Ordering::Relaxed)),
        );
        family(
            "pxedeck_tftp_bytes_total",
            "counter",
            "TFTP bytes acknowledged by clients.",
            one(t.bytes.load(Ordering::Relaxed)),
        );
        family(
            "pxedeck_tftp_transfers_total",
            "counter",
            "Finished TFTP transfers, by outcome.",
            vec![
                ("{outcome=\"done\"}".into(), t.done.load(Ordering::Relaxed)),
                (
                    "{outcome=\"failed\"}".into(),
                    t.failed.load(Ordering::Relaxed),
                ),
                (
                    "{outcome=\"probe\"}".into(),
                    t.probes.load(Ordering::Relaxed),
                ),
            ],
        );
        family(
            "pxedeck_tftp_dropped_total",
            "counter",
            "TFTP packets and requests not served, by reason.",
            t.dropped.samples("reason"),
        );
        family(
            "pxedeck_tftp_active_transfers",
            "gauge",
            "TFTP transfers running now.",
            one(tftp.active_transfers() as u64),
        );
    }
    let h = &s.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    family(
        "pxedeck_http_requests_total",
        "counter",
        "HTTP requests on the boot routes.",
        one(load(&h.requests)),
    );
    family(
        "pxedeck_http_bytes_total",
        "counter",
        "File bytes handed to HTTP connections.",
        one(load(&h.bytes)),
    );
    family(
        "pxedeck_http_responses_total",
        "counter",
        "Boot-route responses by kind.",
        h.responses.samples("kind"),
    );
    family(
        "pxedeck_http_active_transfers",
        "gauge",
        "HTTP file downloads running now.",
        one(http_active as u64),
    );
    family(
        "pxedeck_errors_total",
        "counter",
        "Errors logged and commands that failed.",
        one(counters.errors),
    );
    family(
        "pxedeck_inventory_reloads_total",
        "counter",
        "Inventory snapshots published (start, edits, adoptions).",
        one(counters.inventory_reloads),
    );
    family(
        "pxedeck_inventory_problems",
        "gauge",
        "Problems in the inventory tree on disk (the last good one serves).",
        one(problems as u64),
    );
    family(
        "pxedeck_machines",
        "gauge",
        "Machines seen or in the inventory.",
        one(machines as u64),
    );
    family(
        "pxedeck_machines_by_state",
        "gauge",
        "Machines by state; `stuck` ones (idle past their stage's stuck_after) counted there instead.",
        by_state,
    );
    family(
        "pxedeck_machines_dropped_total",
        "counter",
        "Unknown machines dropped from the model over unknown.max_machines.",
        one(dropped),
    );
    if let Some(auto) = s.control.as_ref().map(|c| c.auto_adopt_stats()) {
        family(
            "pxedeck_auto_adoptions_total",
            "counter",
            "Unknown machines adopted on sight by an `auto` rule (outcome=adopted), or refused: past 20 a minute or the write refused (outcome=refused).",
            vec![
                (
                    "{outcome=\"adopted\"}".into(),
                    auto.adopted.load(Ordering::Relaxed),
                ),
                (
                    "{outcome=\"refused\"}".into(),
                    auto.refused.load(Ordering::Relaxed),
                ),
            ],
        );
    }
    if let Some(bmc) = s.control.as_ref().and_then(|c| c.bmc_stats()) {
        family(
            "pxedeck_bmc_polls_total",
            "counter",
            "BMC power polls, by outcome (ok, auth, timeout, unreachable, tls, …).",
            bmc.polls.samples("outcome"),
        );
        family(
            "pxedeck_bmc_actions_total",
            "counter",
            "BMC action calls (power on/off/cycle, boot once from network), by outcome.",
            bmc.actions.samples("outcome"),
        );
        family(
            "pxedeck_bmc_reachable",
            "gauge",
            "BMCs whose last poll answered (state=reachable) or did not (state=unreachable).",
            vec![
                (
                    "{state=\"reachable\"}".into(),
                    bmc.reachable.load(Ordering::Relaxed),
                ),
                (
                    "{state=\"unreachable\"}".into(),
                    bmc.unreachable.load(Ordering::Relaxed),
                ),
            ],
        );
        family(
            "pxedeck_bmc_jobs_refused_total",
            "counter",
            "BMC jobs refused because the queue was full.",
            one(bmc.refused.load(Ordering::Relaxed)),
        );
    }
    family(
        "pxedeck_api_subscribers",
        "gauge",
        "Event-stream clients connected now.",
        one(s.model.subscribers.active() as u64),
    );
    family(
        "pxedeck_api_subscribers_refused_total",
        "counter",
        "Event-stream clients refused over http.max_subscribers.",
        one(s.model.subscribers.refused()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, KnownMachine};

    #[test]
    fn a_stuck_machine_is_counted_as_stuck_not_by_its_state() {
        let mut m = crate::model::Model::default();
        let mac: crate::ident::Mac = "52:54:00:00:00:01".parse().unwrap();
        m.apply(&Event {
            at: 0,
            kind: EventKind::InventoryReloaded {
                machines: vec![KnownMachine {
                    hostname: "dev-01".into(),
                    group: "g".into(),
                    macs: vec![mac],
                    ip: Some("10.0.0.5".parse().unwrap()),
                    profile: Some("p".into()),
                    install: true,
                }],
                profiles: vec![],
                groups: vec![],
                group_info: vec![],
            },
        });
        m.apply(&Event {
            at: 1_000,
            kind: EventKind::ScriptServed {
                client: "10.0.0.5".parse().unwrap(),
                mac: Some(mac),
                hostname: Some("dev-01".into()),
                kind: crate::boot::ScriptKind::Install,
                profile: Some("p".into()),
                chain: crate::boot::decide::Chain::Ipxe,
            },
        });
        let count = |now, state: &str| {
            machines_by_state(&m, now)
                .into_iter()
                .find(|(l, _)| l == &format!("{{state=\"{state}\"}}"))
                .map(|(_, n)| n)
        };
        assert_eq!(
            (count(2_000, "booting"), count(2_000, "stuck")),
            (Some(1), Some(0))
        );
        let late = 1_000 + m.stage_timeouts.script + 1;
        assert_eq!(
            (count(late, "booting"), count(late, "stuck")),
            (Some(0), Some(1))
        );
    }
}
