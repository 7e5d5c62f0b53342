//! The terminal console: the same views whether embedded in the process
//! that runs the boot services or attached to a headless `pxedeck serve`
//! over its API.
//!
//! The console never touches a socket of the boot services: it folds events
//! into its own [`Model`] (from a [`Feed`]) and sends commands back, all
//! through a [`Backend`]; it imports neither the services nor the API.
//! It redraws only when something changed, at most 20 times a second, and
//! once a second for ages and throughput; ratatui's diff keeps what reaches
//! the terminal small. A terminal that dies ends the console, never the
//! process: see [`terminal`].

pub mod adopt;
pub mod app;
pub mod backend;
pub mod draw;
pub mod edit;
pub mod keymap;
pub mod oui;
pub mod terminal;
pub mod theme;

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyEventKind};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock::now_millis;
use crate::model::Model;
use app::{Action, App, Reply};
pub use backend::{Backend, Feed, Origin};
use terminal::Screen;
use theme::Theme;

/// Set (non-empty) to leave the mouse to the terminal: no click or wheel.
pub const NO_MOUSE: &str = "PXEDECK_NO_MOUSE";

/// Frames are at least this far apart (≤ 20 fps).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(50);

/// Why the console stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The operator quit.
    Quit,
    /// The terminal went away (SSH dropped, SIGHUP).
    TerminalLost,
}

/// Runs the console until the operator quits or the terminal goes away.
/// A lost terminal is let go of (see [`terminal`]): the caller's services
/// keep running, and nothing written afterwards can panic.
pub async fn run<B: Backend>(backend: Arc<B>, theme: Theme) -> anyhow::Result<Exit> {
    // Before the terminal is taken: a hangup from here on is ours to handle.
    let hangup = signal(SignalKind::hangup())?;
    // Mouse capture stops a terminal's own selection; some operators mind.
    let mouse = std::env::var_os(NO_MOUSE).is_none_or(|v| v.is_empty());
    let mut screen = Screen::open(mouse)?;
    let exit = event_loop(&mut screen, hangup, backend, theme).await;
    match exit {
        Ok(Exit::TerminalLost) => screen.abandon(),
        Ok(Exit::Quit) | Err(_) => screen.close(),
    }
    exit
}

async fn event_loop<B: Backend>(
    screen: &mut Screen,
    mut hangup: Signal,
    backend: Arc<B>,
    theme: Theme,
) -> anyhow::Result<Exit> {
    let mut app = App::new(Model::default(), theme, backend.origin());
    app.tick(now_millis());
    let mut feed = backend.feed();
    let (reply_tx, mut replies) = mpsc::channel::<Reply>(64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut dirty = true;
    let mut next_frame = Instant::now();
    loop {
        if dirty && Instant::now() >= next_frame {
            app.size = screen.area();
            if screen.draw(|f| draw::draw(f, &app)).is_err() {
                return Ok(Exit::TerminalLost);
            }
            dirty = false;
            next_frame = Instant::now() + FRAME_INTERVAL;
        }
        tokio::select! {
            key = screen.keys.recv() => match key {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                    for action in app.on_key(k) {
                        match action {
                            Action::Quit => return Ok(Exit::Quit),
                            Action::Send(command) => {
                                let (backend, tx) = (backend.clone(), reply_tx.clone());
                                let edited = match &command {
                                    crate::event::Command::Edit { hostname, .. } => Some(hostname.clone()),
                                    _ => None,
                                };
                                tokio::spawn(async move {
                                    let result = backend.execute(command).await;
                                    let reply = match edited {
                                        Some(hostname) => Reply::Edit { hostname, result },
                                        None => Reply::Command(result),
                                    };
                                    let _ = tx.send(reply).await;
                                });
                            }
                            Action::FetchDetail(mac) => {
                                let (backend, tx) = (backend.clone(), reply_tx.clone());
                                tokio::spawn(async move {
                                    let text = backend.detail(mac).await;
                                    let _ = tx.send(Reply::Detail { mac, text }).await;
                                });
                            }
                        }
                    }
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(TermEvent::Mouse(m))) => {
                    for action in app.on_mouse(m, screen.area()) {
                        if let Action::FetchDetail(mac) = action {
                            let (backend, tx) = (backend.clone(), reply_tx.clone());
                            tokio::spawn(async move {
                                let text = backend.detail(mac).await;
                                let _ = tx.send(Reply::Detail { mac, text }).await;
                            });
                        }
                    }
                    dirty = true;
                }
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
                // An unchanged frame writes nothing, so a quiet console
                // would not notice a dead terminal by drawing.
                if !screen.alive() {
                    return Ok(Exit::TerminalLost);
                }
                app.tick(now_millis());
                dirty = true;
            }
            _ = hangup.recv() => return Ok(Exit::TerminalLost),
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
        }
    }
}
