//! The per-machine routes: the iPXE entry script, installer configs and the
//! install-done callback.
//!
//! Configs and the callback are capabilities: the script hands the machine
//! URLs with a token signed for it and that boot, and a request needs that
//! token and the machine's address. Every refusal answers the same 403,
//! whether the machine exists or not; the reason goes to the operator.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{HttpResponse, HttpState, to_v4};
use crate::boot::decide::decide_for;
use crate::boot::identity;
use crate::boot::render::{self, Script};
use crate::capability::{Boot, Purpose, Refused};
use crate::event::{EventKind, Level};
use crate::ident::Mac;
use crate::inventory::{Inventory, Machine, Stamp};

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn ipxe(body: String) -> Response {
    text(StatusCode::OK, "text/plain; charset=utf-8", body)
}

/// The rule an unknown machine matches once iPXE has said what hardware
/// it is: DHCP matched it without vendor and product (they are not on the
/// wire), so a rule that asks for them can only match here. The rest of
/// the sighting is what DHCP last saw of this MAC. Called only for a
/// client that holds the MAC's lease, so without pxedeck's own leases
/// (proxy mode) rules by vendor or product never match.
fn rule_by_facts(
    state: &HttpState,
    inv: &Inventory,
    mac: Mac,
    facts: &identity::Facts,
) -> Option<crate::inventory::rules::RuleHit> {
    use crate::inventory::rules::{Sighting, first_match};
    if inv.rules.is_empty() {
        return None;
    }
    let seen = state.leases.seen_of(&mac).unwrap_or_default();
    let vendor = facts
        .get("manufacturer")
        .filter(|v| identity::meaningful(v));
    let product = facts.get("product").filter(|v| identity::meaningful(v));
    let sighting: Sighting<'_> = seen.sighting(mac, vendor, product);
    first_match(&inv.rules, &sighting).map(|r| r.hit.clone())
}

/// The address a connection came to, set by the accept loop
/// (`http::conn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(pub SocketAddr);

/// With several interfaces (`interfaces`), the URLs in what a machine is
/// served name the address of its segment: the one its connection came
/// to, when that is a listed interface other than the main address.
/// Scripts are rendered (and cached) with the main base URL; this swaps
/// it, where it stands as a whole address.
fn on_segment(state: &HttpState, local: Option<Extension<LocalAddr>>, text: String) -> String {
    let Some(Extension(LocalAddr(local))) = local else {
        return text;
    };
    let config = &state.config;
    match config
        .segment_address(local.ip())
        .and_then(|here| state.urls.on_segment(config.address, here))
    {
        Some(here) => state.urls.swap_into(&text, &here),
        None => text,
    }
}

/// `GET /boot.ipxe`: the script every iPXE is pointed at.
pub async fn script(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    local: Option<Extension<LocalAddr>>,
    Query(query): Query<identity::Query>,
) -> Response {
    state.stats.request();
    let client = to_v4(peer.ip());
    let reported = match query.validate() {
        Ok(r) => r,
        Err(refused) => {
            state.stats.answered(HttpResponse::Refused);
            state.bus.emit(EventKind::Log {
                level: Level::Warn,
                target: "http".into(),
                message: format!("boot script for {client} refused: {refused}"),
            });
            return text(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                format!("pxedeck: {refused}\n"),
            );
        }
    };
    state.stats.answered(HttpResponse::Script);
    let inv = state.inventory.load();
    let (lease_mac, lease_uuid) = state.leases.wire(client);
    let found = identity::resolve(&inv, lease_mac, lease_uuid, &reported);
    // A client no wire identity names, that has not said what it knows
    // yet (the boot file DHCP gave carries no query), is asked for it all:
    // its serial may be in the inventory, and its facts go to the console.
    let known_on_wire = found.via.is_some_and(identity::Via::is_wire);
    let Some(mac) = found.mac.filter(|_| known_on_wire || reported.asked) else {
        return ipxe(on_segment(
            &state,
            local,
            render::identify_script(&state.urls),
        ));
    };
    let machine = found.machine;
    if !reported.facts.is_empty() {
        // Only for a MAC this client holds the lease of: the facts are
        // the query's word, and a claim must not make another machine
        // (say, one an `install: true` rule would not match) match a rule.
        let proven = lease_mac == Some(mac);
        let rule = match machine {
            None if proven => rule_by_facts(&state, &inv, mac, &reported.facts),
            _ => None,
        };
        state.bus.emit(EventKind::FactsReported {
            mac,
            facts: reported.facts.clone(),
            rule,
        });
    }
    let key = (mac, machine.map(|m| m.hostname.clone()));
    let cached = state.scripts.get_or_render(&inv, key, machine, || {
        let decision = decide_for(machine, &state.config.unknown);
        Cached {
            script: render::script(&inv, machine, &decision, &mac, &state.urls),
            hostname: machine.map(|m| m.hostname.clone()),
        }
    });
    // `done_on_next_boot`: the boot after the installer is the done
    // callback, answered with the local disk at once.
    let after_install = cached.hostname.as_deref().and_then(|h| {
        let m = inv.by_hostname(h)?;
        (cached.script.kind == crate::boot::ScriptKind::Install
            && m.done_on_next_boot
            && state
                .next_boot
                .install_requested(h, crate::clock::now_millis()))
        .then_some(m)
    });
    let local_disk;
    let script = match after_install {
        Some(m) => {
            // A machine known by serial alone is the MAC it booted from.
            mark_done(
                &state,
                m.hostname.clone(),
                m.macs.first().copied().or(Some(mac)),
            );
            local_disk = render::script(
                &inv,
                Some(m),
                &crate::boot::BootDecision::Local,
                &mac,
                &state.urls,
            );
            &local_disk
        }
        None => &cached.script,
    };
    if let Some(reason) = &script.error {
        state.stats.answered(HttpResponse::RenderError);
        state.bus.emit(EventKind::Log {
            level: Level::Error,
            target: "http".into(),
            message: format!("boot script for {mac}: {reason}"),
        });
    }
    state.bus.emit(EventKind::ScriptServed {
        client,
        mac: Some(mac),
        hostname: cached.hostname.clone(),
        kind: script.kind,
        profile: script.profile.clone(),
        chain: crate::boot::decide::Chain::Ipxe,
    });
    // Each script served is a boot of its own: fresh tokens in its URLs.
    let text = match cached.hostname.as_deref() {
        Some(hostname) => {
            let boot = state
                .secrets
                .capabilities
                .mint(now_secs(), state.config.http.capability_lifetime.as_secs());
            // A machine whose file names no MAC (known by serial, asset
            // tag or UUID) is bound, for this boot, to the MAC it was
            // served from: its configs go to that MAC's lease only.
            let own = inv.by_hostname(hostname).and_then(|m| m.macs.first());
            let bound = match own {
                Some(m) => Some(*m),
                None => {
                    state.scripts.bind(hostname, mac);
                    Some(mac)
                }
            };
            state
                .secrets
                .capabilities
                .fill(&script.text, hostname, bound.as_ref(), &boot)
        }
        None => script.text.clone(),
    };
    ipxe(on_segment(&state, local, text))
}

fn now_secs() -> u64 {
    crate::clock::now_millis() / 1000
}

/// Refuses a config or callback. The answer is the same whatever the
/// reason, so it tells a prober nothing (not even whether the machine
/// exists); the reason goes to the operator as an event.
fn deny(state: &HttpState, client: IpAddr, path: String, reason: &str) -> Response {
    state.stats.answered(HttpResponse::Denied);
    state.bus.emit(EventKind::AccessDenied {
        client,
        path,
        reason: reason.into(),
    });
    text(
        StatusCode::FORBIDDEN,
        "text/plain; charset=utf-8",
        "forbidden\n".into(),
    )
}

fn not_found(state: &HttpState, what: String) -> Response {
    state.stats.answered(HttpResponse::NotFound);
    text(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        format!("{what}\n"),
    )
}

const NOT_THE_MACHINE: &str = "the client does not hold this machine's address";
const NO_SUCH_MACHINE: &str = "no machine by that name";

/// The machine a config or callback URL names, when its capability and
/// the client's address both check out; else why not. The token is checked
/// even for a name that does not exist, so both take the same time.
fn authorise<'a>(
    state: &HttpState,
    inv: &'a Inventory,
    client: IpAddr,
    purpose: Purpose,
    hostname: &str,
    capability: &str,
) -> Result<(&'a Machine, Boot), String> {
    let machine = inv.by_hostname(hostname);
    let bound = machine.and_then(|m| {
        m.macs
            .first()
            .copied()
            .or_else(|| state.scripts.bound(&m.hostname))
    });
    let verdict = state.secrets.capabilities.verify(
        purpose,
        hostname,
        bound.as_ref(),
        capability,
        now_secs(),
    );
    let Some(m) = machine else {
        return Err(NO_SUCH_MACHINE.into());
    };
    let boot = verdict.map_err(|e| e.to_string())?;
    let macs: Vec<Mac> = match m.macs.as_slice() {
        [] => bound.into_iter().collect(),
        own => own.to_vec(),
    };
    if !state.may_access(client, &macs, m.ip) {
        return Err(NOT_THE_MACHINE.into());
    }
    Ok((m, boot))
}

/// `GET /config/<hostname>/<name>`: the URL without a capability that
/// pxedeck once handed out; refused like any other bad token.
pub async fn config_without_capability(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((hostname, name)): Path<(String, String)>,
) -> Response {
    state.stats.request();
    let reason = Refused::Missing.to_string();
    deny(
        &state,
        to_v4(peer.ip()),
        format!("/config/{hostname}/{name}"),
        &reason,
    )
}

/// `GET /config/<hostname>/<capability>/<name>`: an installer config,
/// rendered for the machine, served only to it.
pub async fn config(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    local: Option<Extension<LocalAddr>>,
    Path((hostname, capability, name)): Path<(String, String, String)>,
) -> Response {
    state.stats.request();
    let client = to_v4(peer.ip());
    let inv = state.inventory.load();
    // Logged without the token: it is a secret until it expires.
    let path = format!("/config/{hostname}/{name}");
    let (m, boot) = match authorise(
        &state,
        &inv,
        client,
        Purpose::Config,
        &hostname,
        &capability,
    ) {
        Ok(granted) => granted,
        Err(reason) => return deny(&state, client, path, &reason),
    };
    match render::config(&inv, m, &name, &state.urls) {
        None => not_found(&state, format!("{hostname} has no config named {name}")),
        Some(Ok(rendered)) => {
            state.stats.answered(HttpResponse::Config);
            // An installer that never calls back (Talos) is done once
            // it has the config the profile names.
            if m.install && m.done_on_config.as_deref() == Some(name.as_str()) {
                mark_done(&state, hostname.clone(), m.macs.first().copied());
            }
            state.bus.emit(EventKind::ConfigServed {
                client,
                hostname: hostname.clone(),
                name,
            });
            // The config's own URLs (the done callback) belong to the
            // same boot as the URL it was fetched with.
            let body =
                state
                    .secrets
                    .capabilities
                    .fill(&rendered.text, &m.hostname, m.macs.first(), &boot);
            let body = on_segment(&state, local, body);
            text(StatusCode::OK, rendered.content_type, body)
        }
        Some(Err(e)) => {
            state.stats.answered(HttpResponse::RenderError);
            state.bus.emit(EventKind::Log {
                level: Level::Error,
                target: "http".into(),
                message: e.to_string(),
            });
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("pxedeck: {e}\n"),
            )
        }
    }
}

/// The done callback on the installer's behalf (`done_on_config`): the
/// same install flip and event as `/done`, in the background so the
/// config goes out at once; a failed write is logged, and the machine
/// stays `install: true` as if it had never called.
fn mark_done(state: &Arc<HttpState>, hostname: String, mac: Option<crate::ident::Mac>) {
    let Some(control) = state.control.clone() else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        let written = control
            .set_install_off_thread(hostname.clone(), false)
            .await;
        match written {
            Ok(Ok(())) => state.bus.emit(EventKind::InstallDone { hostname, mac }),
            Ok(Err(e)) => state.bus.emit(EventKind::Log {
                level: Level::Error,
                target: "http".into(),
                message: format!("{hostname}: marking the install done after its config: {e}"),
            }),
            Err(e) => state.bus.emit(EventKind::Log {
                level: Level::Error,
                target: "http".into(),
                message: format!("{hostname}: marking the install done: {e}"),
            }),
        }
    });
}

/// `/done/<hostname>` without a capability: refused.
pub async fn done_without_capability(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(hostname): Path<String>,
) -> Response {
    state.stats.request();
    let reason = Refused::Missing.to_string();
    deny(
        &state,
        to_v4(peer.ip()),
        format!("/done/{hostname}"),
        &reason,
    )
}

/// `POST /done/<hostname>/<capability>` (GET accepted for installers that
/// can only fetch): the install finished; the machine boots its disk from
/// now on.
pub async fn done(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    Path((hostname, capability)): Path<(String, String)>,
) -> Response {
    state.stats.request();
    if method != Method::POST && method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let client = to_v4(peer.ip());
    let macs = {
        let inv = state.inventory.load();
        match authorise(&state, &inv, client, Purpose::Done, &hostname, &capability) {
            Ok((m, _)) => match m.macs.as_slice() {
                [] => state.scripts.bound(&m.hostname).into_iter().collect(),
                own => own.to_vec(),
            },
            Err(reason) => return deny(&state, client, format!("/done/{hostname}"), &reason),
        }
    };
    let Some(control) = state.control.clone() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let failed = |status: StatusCode, e: String| {
        text(
            status,
            "text/plain; charset=utf-8",
            format!("pxedeck: {e}\n"),
        )
    };
    let written = control
        .set_install_off_thread(hostname.clone(), false)
        .await;
    match written {
        Ok(Ok(())) => {
            state.bus.emit(EventKind::InstallDone {
                hostname,
                mac: macs.first().copied(),
            });
            text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
        }
        Ok(Err(e)) => failed(super::api::status_of(&e), e.to_string()),
        Err(e) => failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Rendered entry scripts, kept across inventory snapshots.
///
/// A mass boot asks for the same few hundred scripts again and again (the
/// hold loop every 5 s, retries). A script depends only on the files all
/// machines share, the client's own machine (if known) and the MAC, so
/// each entry keeps the [`Stamp`] of what it was rendered from and
/// is used while the current snapshot gives the same stamp. A done callback
/// changes one machine's stamp: that machine's script is rendered again and
/// every other one stays.
#[derive(Default)]
pub struct ScriptCache {
    inner: std::sync::Mutex<std::collections::HashMap<ScriptKey, Entry>>,
    renders: std::sync::atomic::AtomicU64,
    /// Machines without a MAC in their file, bound to the MAC their last
    /// script went to (see [`ScriptCache::bind`]).
    bound: Bindings,
}

/// Machines whose file names no MAC, each bound to the MAC its last boot
/// script or GRUB config was served to (see [`ScriptCache::bind`]). Shared
/// by the iPXE (HTTP) and GRUB (TFTP) chains: a clone is the same table.
#[derive(Default, Clone)]
pub struct Bindings(Arc<std::sync::Mutex<std::collections::HashMap<String, Mac>>>);

impl Bindings {
    /// See [`ScriptCache::bind`].
    pub fn bind(&self, hostname: &str, mac: Mac) {
        let mut bound = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if bound.len() >= CACHE_LIMIT && !bound.contains_key(hostname) {
            bound.clear();
        }
        bound.insert(hostname.to_string(), mac);
    }

    /// The MAC a machine without one of its own was last served from.
    pub fn bound(&self, hostname: &str) -> Option<Mac> {
        let bound = self.0.lock().unwrap_or_else(|e| e.into_inner());
        bound.get(hostname).copied()
    }
}

struct Entry {
    stamp: Stamp,
    cached: Arc<Cached>,
}

/// A script's cache key: the MAC it is rendered for and the machine it
/// was identified as (by MAC, UUID, serial or asset tag).
pub type ScriptKey = (Mac, Option<String>);

/// A rendered script and who it was for.
pub struct Cached {
    pub script: Script,
    pub hostname: Option<String>,
}

/// More distinct clients than this is not a rack; start over rather than
/// grow without bound.
const CACHE_LIMIT: usize = 20_000;

impl ScriptCache {
    /// The cached script for `key` when `inv` still gives what it was
    /// rendered from, else `render`'s (rendered outside the lock: a slow
    /// template must not stall others).
    pub fn get_or_render(
        &self,
        inv: &Inventory,
        key: ScriptKey,
        machine: Option<&Machine>,
        render: impl FnOnce() -> Cached,
    ) -> Arc<Cached> {
        let stamp = inv.stamp(machine);
        {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = inner.get(&key).filter(|e| e.stamp == stamp) {
                return hit.cached.clone();
            }
        }
        self.renders
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fresh = Arc::new(render());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.len() >= CACHE_LIMIT && !inner.contains_key(&key) {
            inner.clear();
        }
        inner.insert(
            key,
            Entry {
                stamp,
                cached: fresh.clone(),
            },
        );
        fresh
    }

    /// Binds a machine whose file names no MAC (known by serial, asset tag
    /// or UUID) to the MAC its script was just served to: the capabilities
    /// in that script are signed for that MAC, and its configs and done
    /// callback are served to that MAC's lease only. The latest boot wins;
    /// past [`CACHE_LIMIT`] machines the table starts over.
    pub fn bind(&self, hostname: &str, mac: Mac) {
        self.bound.bind(hostname, mac);
    }

    /// The MAC a machine without one of its own was last served from.
    pub fn bound(&self, hostname: &str) -> Option<Mac> {
        self.bound.bound(hostname)
    }

    /// The bindings table, to share with the GRUB chain.
    pub fn bindings(&self) -> Bindings {
        self.bound.clone()
    }

    /// How many scripts were rendered (not served from the cache).
    pub fn renders(&self) -> u64 {
        self.renders.load(std::sync::atomic::Ordering::Relaxed)
    }
}
