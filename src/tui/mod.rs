//! The terminal console: the same views whether embedded in the process
//! that runs the boot services or attached to a headless `pxedeck serve`
//! over its API.
//!
//! The console never touches a socket of the boot services: it folds events
//! into its own [`Model`] (from a [`Feed`]) and sends [`Command`]s back.
//! It redraws only when something changed, at most 20 times a second, and
//! once a second for ages and throughput; ratatui's diff keeps what reaches
//! the terminal small.

pub mod adopt;
pub mod app;
pub mod draw;
pub mod oui;
pub mod theme;

use std::io::Stdout;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::boot::render::{Urls, served_report};
use crate::clock::now_millis;
use crate::config::UnknownPolicy;
use crate::control::Control;
use crate::event::{Command, Event};
use crate::http::client;
use crate::inventory::SharedInventory;
use crate::live::LiveModel;
use crate::model::Model;
use app::{Action, App, Reply};
use theme::Theme;

/// Frames are at least this far apart (≤ 20 fps).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(50);

/// What feeds the console's model.
#[derive(Debug)]
pub enum Feed {
    /// Start over from this state (first connect, or after falling behind).
    Snapshot(Box<Model>),
    Event(Arc<Event>),
    /// The stream broke; the console says so and keeps the last state.
    Lost(String),
}

/// Where the console gets its state and sends commands.
#[derive(Clone)]
pub enum Source {
    Embedded {
        live: Arc<LiveModel>,
        control: Arc<Control>,
        inventory: SharedInventory,
        policy: UnknownPolicy,
        urls: Urls,
    },
    Attached {
        /// The API base URL (`http://127.0.0.1:8081`).
        url: String,
        token: Option<String>,
    },
}

impl Source {
    pub fn label(&self) -> String {
        match self {
            Source::Embedded { .. } => "embedded".into(),
            Source::Attached { url, .. } => url.clone(),
        }
    }

    /// Starts feeding the model: a snapshot, then events, resubscribing
    /// after a lag or a dropped connection.
    pub fn feed(&self) -> mpsc::Receiver<Feed> {
        let (tx, rx) = mpsc::channel(4096);
        match self.clone() {
            Source::Embedded { live, .. } => {
                tokio::spawn(async move {
                    loop {
                        let (model, mut events) = live.snapshot_and_subscribe();
                        if tx.send(Feed::Snapshot(Box::new(model))).await.is_err() {
                            return;
                        }
                        loop {
                            match events.recv().await {
                                Ok(e) => {
                                    if tx.send(Feed::Event(e)).await.is_err() {
                                        return;
                                    }
                                }
                                Err(broadcast::error::RecvError::Lagged(_)) => break,
                                Err(broadcast::error::RecvError::Closed) => return,
                            }
                        }
                    }
                });
            }
            Source::Attached { url, .. } => {
                tokio::spawn(async move {
                    loop {
                        let why = match follow_stream(&url, &tx).await {
                            Ok(()) => "the event stream ended".to_string(),
                            Err(e) => e,
                        };
                        if tx.send(Feed::Lost(why)).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                });
            }
        }
        rx
    }

    /// Runs a command; the reply carries the outcome in words.
    pub async fn execute(&self, command: Command) -> Result<String, String> {
        match self {
            Source::Embedded { control, .. } => {
                let control = control.clone();
                tokio::task::spawn_blocking(move || control.execute(command))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Source::Attached { url, token } => {
                let body = serde_json::to_vec(&command).map_err(|e| e.to_string())?;
                let opts = client::Options {
                    bearer: token.clone(),
                    timeout: Some(Duration::from_secs(30)),
                    ..Default::default()
                };
                let text = client::post(&format!("{url}/api/v1/commands"), Some(body), &opts)
                    .await
                    .map_err(|e| match e {
                        client::ClientError::Status(_, body) => api_message(&body),
                        other => other.to_string(),
                    })?;
                Ok(api_message(&text))
            }
        }
    }

    /// What a machine is served, as text for the detail pane.
    pub async fn detail(&self, mac: crate::ident::Mac) -> String {
        match self {
            Source::Embedded {
                inventory,
                policy,
                urls,
                ..
            } => served_report(&inventory.load(), policy, &mac, urls),
            Source::Attached { url, .. } => {
                let opts = client::Options {
                    timeout: Some(Duration::from_secs(10)),
                    ..Default::default()
                };
                client::get_text(&format!("{url}/api/v1/machines/{mac}/served"), &opts)
                    .await
                    .unwrap_or_else(|e| format!("cannot fetch: {e}"))
            }
        }
    }
}

/// The `message` or `error` of an API JSON answer, else the text itself.
fn api_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.trim().to_string())
}

/// Reads the SSE stream until it ends: `snapshot` then `event`s.
async fn follow_stream(url: &str, tx: &mpsc::Sender<Feed>) -> Result<(), String> {
    use http_body_util::BodyExt;
    let res = client::send(
        hyper::Method::GET,
        &format!("{url}/api/v1/events"),
        None,
        &client::Options::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("the server answered {}", res.status()));
    }
    let mut body = res.into_body();
    let mut parser = SseParser::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for (kind, data) in parser.push(&data) {
            let feed = match kind.as_str() {
                "snapshot" => {
                    let mut model: Model =
                        serde_json::from_str(&data).map_err(|e| format!("snapshot: {e}"))?;
                    model.reindex();
                    Feed::Snapshot(Box::new(model))
                }
                "event" => Feed::Event(Arc::new(
                    serde_json::from_str(&data).map_err(|e| format!("event: {e}"))?,
                )),
                _ => continue,
            };
            if tx.send(feed).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Splits a byte stream of Server-Sent Events into (event, data) pairs.
#[derive(Default)]
pub struct SseParser {
    buf: String,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buf.push_str(&String::from_utf8_lossy(bytes));
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut kind = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                }
            }
            if !data.is_empty() {
                out.push((kind, data.join("\n")));
            }
        }
        out
    }
}

/// Why the console stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The operator quit.
    Quit,
    /// The terminal went away (SSH dropped, SIGHUP).
    TerminalLost,
}

type Term = Terminal<CrosstermBackend<Stdout>>;

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

fn setup_terminal() -> std::io::Result<Term> {
    enable_raw_mode()?;
    execute!(std::io::stdout(), EnterAlternateScreen)?;
    // A panic anywhere must leave the operator a usable terminal.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    Terminal::new(CrosstermBackend::new(std::io::stdout()))
}

/// Runs the console until the operator quits or the terminal goes away.
pub async fn run(source: Source, theme: Theme) -> anyhow::Result<Exit> {
    let mut terminal = setup_terminal()?;
    let exit = event_loop(&mut terminal, source, theme).await;
    if exit.as_ref().is_ok_and(|e| *e == Exit::TerminalLost) {
        let _ = disable_raw_mode();
    } else {
        restore_terminal();
    }
    exit
}

async fn event_loop(terminal: &mut Term, source: Source, theme: Theme) -> anyhow::Result<Exit> {
    let mut app = App::new(Model::default(), theme, source.label());
    app.tick(now_millis());
    let mut feed = source.feed();
    let (reply_tx, mut replies) = mpsc::channel::<Reply>(64);
    let mut keys = EventStream::new();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut dirty = true;
    let mut next_frame = Instant::now();
    loop {
        if dirty && Instant::now() >= next_frame {
            if terminal.draw(|f| draw::draw(f, &app)).is_err() {
                return Ok(Exit::TerminalLost);
            }
            dirty = false;
            next_frame = Instant::now() + FRAME_INTERVAL;
        }
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                    for action in app.on_key(k) {
                        match action {
                            Action::Quit => return Ok(Exit::Quit),
                            Action::Send(command) => {
                                let (source, tx) = (source.clone(), reply_tx.clone());
                                tokio::spawn(async move {
                                    let r = source.execute(command).await;
                                    let _ = tx.send(Reply::Command(r)).await;
                                });
                            }
                            Action::FetchDetail(mac) => {
                                let (source, tx) = (source.clone(), reply_tx.clone());
                                tokio::spawn(async move {
                                    let text = source.detail(mac).await;
                                    let _ = tx.send(Reply::Detail { mac, text }).await;
                                });
                            }
                        }
                    }
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ok(Exit::TerminalLost),
            },
            got = feed.recv() => {
                let Some(first) = got else { return Ok(Exit::Quit) };
                // Fold everything already queued before the next frame.
                let mut next = Some(first);
                let mut n = 0;
                while let Some(f) = next {
                    match f {
                        Feed::Snapshot(model) => app.model = *model,
                        Feed::Event(e) => app.apply(&e),
                        Feed::Lost(why) => app.set_status(format!("disconnected: {why}; retrying"), true),
                    }
                    n += 1;
                    next = if n < 10_000 { feed.try_recv().ok() } else { None };
                }
                dirty = true;
            }
            Some(reply) = replies.recv() => {
                app.on_reply(reply);
                dirty = true;
            }
            _ = tick.tick() => {
                app.tick(now_millis());
                dirty = true;
            }
            _ = hangup.recv() => return Ok(Exit::TerminalLost),
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_split_across_reads() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: snapshot\ndata: {\"a\"").is_empty());
        let got = p.push(b":1}\n\n: keep-alive\n\nevent: event\ndata: 2\n\n");
        assert_eq!(
            got,
            vec![
                ("snapshot".into(), "{\"a\":1}".into()),
                ("event".into(), "2".into())
            ]
        );
    }

    #[test]
    fn api_messages() {
        assert_eq!(
            api_message(r#"{"ok":true,"message":"adopted 1 machine(s)"}"#),
            "adopted 1 machine(s)"
        );
        assert_eq!(api_message(r#"{"ok":false,"error":"dup"}"#), "dup");
        assert_eq!(api_message("plain\n"), "plain");
    }
}
