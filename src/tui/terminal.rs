//! The console's terminal: raw mode and the alternate screen, keys read on
//! a thread of their own, and letting go of a terminal that died (an SSH
//! drop, a killed tmux) without a panic and without a spinning thread.
//!
//! A hung-up tty reads as end-of-file forever and fails every write with
//! EIO. crossterm's reader loops on that end-of-file without returning
//! (crossterm 0.29, `mio.rs` and `tty.rs` alike), and ratatui's `Drop`
//! prints a failed cursor restore with `eprintln!`, which panics when
//! stderr is that same dead tty. So keys are read off the async runtime,
//! and a lost terminal is abandoned by pointing stdin at a pipe that never
//! has data and stdout and stderr at `/dev/null`, as a daemon does: the
//! reader stops spinning, and every later write anywhere succeeds quietly.

use std::io::{IsTerminal, Stdout};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossterm::event::Event as TermEvent;
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::backend::CrosstermBackend;
use ratatui::{Frame, Terminal};
use tokio::sync::mpsc;

/// How often the key reader looks up to see whether it should stop.
const KEY_POLL: Duration = Duration::from_millis(250);

/// The write end of the pipe that replaced stdin, open for the life of the
/// process: with no writer left the pipe would read as end-of-file, which
/// is what made crossterm spin in the first place.
static QUIET_STDIN_WRITER: OnceLock<OwnedFd> = OnceLock::new();

/// The terminal the console draws on, and the keys typed into it.
pub struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// Terminal events; an error or the end of the channel means the
    /// terminal cannot be read any more.
    pub keys: mpsc::Receiver<std::io::Result<TermEvent>>,
    stop_keys: Arc<AtomicBool>,
}

/// Leaves raw mode and the alternate screen; every error is ignored, since
/// this also runs on a terminal that is already gone.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        crossterm::event::DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl Screen {
    /// Takes over the terminal: raw mode, alternate screen, mouse capture
    /// (unless `mouse` is false), a panic hook that gives it back, and the
    /// key reader thread.
    pub fn open(mouse: bool) -> std::io::Result<Screen> {
        enable_raw_mode()?;
        execute!(std::io::stdout(), EnterAlternateScreen)?;
        if mouse {
            execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)?;
        }
        // A panic anywhere must leave the operator a usable terminal.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        let terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
        let (tx, keys) = mpsc::channel(64);
        let stop_keys = Arc::new(AtomicBool::new(false));
        let stop = stop_keys.clone();
        std::thread::Builder::new()
            .name("pxedeck-keys".into())
            .spawn(move || read_keys(&tx, &stop))?;
        Ok(Screen {
            terminal,
            keys,
            stop_keys,
        })
    }

    /// Draws one frame. An error means the terminal is gone.
    pub fn draw(&mut self, render: impl FnOnce(&mut Frame)) -> std::io::Result<()> {
        self.terminal.draw(render).map(|_| ())
    }

    /// Whether the terminal still answers. A hung-up tty fails the
    /// `tcgetattr` behind `isatty` with EIO, so this notices a dead
    /// terminal even when no frame has been written since it died.
    /// The screen's size now, for placing mouse clicks.
    pub fn area(&self) -> ratatui::layout::Rect {
        self.terminal
            .size()
            .map(|s| ratatui::layout::Rect::new(0, 0, s.width, s.height))
            .unwrap_or_default()
    }

    pub fn alive(&self) -> bool {
        std::io::stdout().is_terminal()
    }

    /// Gives the terminal back to the operator (the console was quit).
    /// Should it have died in the meantime, it is abandoned instead.
    pub fn close(self) {
        if !self.alive() {
            return self.abandon();
        }
        self.stop_keys.store(true, Ordering::Relaxed);
        restore_terminal();
    }

    /// Lets go of a terminal that went away: restores what can still be
    /// restored (a SIGHUP may come while the terminal lives), then detaches
    /// stdio from it so nothing in the process reads or writes it again.
    pub fn abandon(self) {
        self.stop_keys.store(true, Ordering::Relaxed);
        restore_terminal();
        if let Err(e) = detach_stdio() {
            tracing::warn!("could not detach from the lost terminal: {e}");
        }
        // Dropping the terminal now restores its cursor into /dev/null.
        drop(self.terminal);
    }
}

/// Reads terminal events until told to stop or the channel closes. On a
/// hung-up tty crossterm may not return until `detach_stdio` has run.
fn read_keys(tx: &mpsc::Sender<std::io::Result<TermEvent>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let event = match crossterm::event::poll(KEY_POLL) {
            Ok(false) => continue,
            Ok(true) => crossterm::event::read(),
            Err(e) => Err(e),
        };
        let failed = event.is_err();
        if tx.blocking_send(event).is_err() || failed {
            return;
        }
    }
}

/// Points stdin at an empty non-blocking pipe and stdout and stderr at
/// `/dev/null`. That drops the process's last references to the dead tty.
fn detach_stdio() -> std::io::Result<()> {
    use rustix::pipe::{PipeFlags, pipe_with};
    let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    rustix::stdio::dup2_stdin(&read)?;
    let _ = QUIET_STDIN_WRITER.set(write);
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(&null)?;
    Ok(())
}
