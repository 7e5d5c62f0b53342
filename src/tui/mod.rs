//! The terminal console: the same views whether embedded in the process
//! that runs the boot services or attached to a headless `pxedeck serve`
//! over its API.
//!
//! The console never touches a socket of the boot services: it folds events
//! into its own [`Model`] (from a [`Feed`]) and sends commands back, all
//! through a [`Backend`]; it imports neither the services nor the API.
//! It redraws only when something changed, at most 20 times a second, and
//! once a second for ages and throughput; ratatui's diff keeps what reaches
//! the terminal small.

pub mod adopt;
pub mod app;
pub mod backend;
pub mod draw;
pub mod keymap;
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
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock::now_millis;
use crate::model::Model;
use app::{Action, App, Reply};
pub use backend::{Backend, Feed, Origin};
use theme::Theme;

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
pub async fn run<B: Backend>(backend: Arc<B>, theme: Theme) -> anyhow::Result<Exit> {
    let mut terminal = setup_terminal()?;
    let exit = event_loop(&mut terminal, backend, theme).await;
    if exit.as_ref().is_ok_and(|e| *e == Exit::TerminalLost) {
        let _ = disable_raw_mode();
    } else {
        restore_terminal();
    }
    exit
}

async fn event_loop<B: Backend>(
    terminal: &mut Term,
    backend: Arc<B>,
    theme: Theme,
) -> anyhow::Result<Exit> {
    let mut app = App::new(Model::default(), theme, backend.origin());
    app.tick(now_millis());
    let mut feed = backend.feed();
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
                                let (backend, tx) = (backend.clone(), reply_tx.clone());
                                tokio::spawn(async move {
                                    let r = backend.execute(command).await;
                                    let _ = tx.send(Reply::Command(r)).await;
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
