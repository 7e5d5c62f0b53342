//! Committing the inventory's changes when it lives in a git work tree:
//! every write pxedeck makes (adoption, install flip, edit, undo) becomes a
//! commit of its own, with a message that says what changed and the
//! configured author, optionally pushed to the branch's upstream.
//!
//! It runs the operator's `git` (their keys, signing config and hooks
//! apply) on a thread of its own, each command with a timeout, so no write
//! and no packet ever waits for git. Writes queue (bounded); when the queue
//! is full, further changes are gathered and committed together, so none
//! is lost. A failed commit or push is an event (the Log view and the
//! Inventory line show it); the commit stays, and the next push sends it.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::GitConfig;
use crate::event::{Bus, EventKind, GitState, Level};
use crate::inventory::WriteRecorder;

/// Commits waiting for the git thread; past this they are gathered.
const QUEUE: usize = 256;
/// How often the status is looked at again without a write (an operator's
/// own commit, a pull, a push from elsewhere).
const STATUS_EVERY: Duration = Duration::from_secs(30);
/// Bytes of a git command's output kept (status of a huge tree).
const OUTPUT_CAP: usize = 1 << 20;

/// Why a git command did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("git {command} took longer than {} s and was stopped", .timeout.as_secs())]
    Timeout { command: String, timeout: Duration },
    #[error("git {command} failed: {message}")]
    Failed { command: String, message: String },
}

/// A work tree and how to run git in it.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The inventory folder (git runs here; paths are relative to it).
    dir: PathBuf,
    timeout: Duration,
    /// git has no identity of its own here (a service user without a
    /// gitconfig): the author commits as committer too.
    committer_from_author: bool,
}

impl Repo {
    /// The work tree `dir` is in, if it is in one (and git is installed).
    pub fn discover(dir: &Path, timeout: Duration) -> Option<Repo> {
        let mut repo = Repo {
            dir: dir.to_path_buf(),
            timeout,
            committer_from_author: false,
        };
        let inside = repo.run(&["rev-parse", "--is-inside-work-tree"]).ok()?;
        if inside.trim() != "true" {
            return None;
        }
        repo.committer_from_author = repo.run(&["config", "user.email"]).is_err();
        Some(repo)
    }

    /// Runs one git command; stdout on success. Never prompts (no
    /// terminal), never inherits systemd's notify socket.
    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let command = args.first().copied().unwrap_or("").to_string();
        let mut child = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(GitError::Spawn)?;
        // Read both pipes on threads so a chatty command cannot fill one
        // and hang while we wait.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                if let Some(p) = pipe {
                    let _ = p.take(OUTPUT_CAP as u64).read_to_end(&mut out);
                }
                String::from_utf8_lossy(&out).into_owned()
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait().map_err(GitError::Spawn)? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(GitError::Timeout {
                        command,
                        timeout: self.timeout,
                    });
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let (out, err) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        if status.success() {
            Ok(out)
        } else {
            let said = if err.trim().is_empty() { &out } else { &err };
            Err(GitError::Failed {
                command,
                message: last_lines(said),
            })
        }
    }

    /// Stages `paths` (new, changed or removed) and commits exactly them,
    /// leaving anything else the operator staged alone. Returns the short
    /// hash, or None when the files already matched HEAD.
    pub fn commit(
        &self,
        paths: &[PathBuf],
        message: &str,
        author: &str,
    ) -> Result<Option<String>, GitError> {
        let rel: Vec<String> = paths
            .iter()
            .map(|p| {
                p.strip_prefix(&self.dir)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let mut add = vec!["add", "-A", "--"];
        add.extend(rel.iter().map(String::as_str));
        self.run(&add)?;
        let mut check = vec!["diff", "--cached", "--quiet", "--"];
        check.extend(rel.iter().map(String::as_str));
        if self.run(&check).is_ok() {
            return Ok(None); // nothing staged for these paths
        }
        let author_arg = format!("--author={author}");
        let (name, email) = author
            .split_once(" <")
            .map(|(n, e)| (n.trim(), e.trim_end_matches('>')))
            .unwrap_or((author, ""));
        let (user_name, user_email) = (format!("user.name={name}"), format!("user.email={email}"));
        let mut commit = vec![];
        if self.committer_from_author {
            commit.extend(["-c", &user_name, "-c", &user_email]);
        }
        commit.extend([
            "commit",
            "--quiet",
            "--no-edit",
            &author_arg,
            "-m",
            message,
            "--",
        ]);
        commit.extend(rel.iter().map(String::as_str));
        self.run(&commit)?;
        let hash = self.run(&["rev-parse", "--short", "HEAD"])?;
        Ok(Some(hash.trim().to_string()))
    }

    /// Pushes the branch to its upstream; Ok(false) when it has none.
    pub fn push(&self) -> Result<bool, GitError> {
        if self
            .run(&[
                "rev-parse",
                "--abbrev-ref",
                "--symbolic-full-name",
                "@{upstream}",
            ])
            .is_err()
        {
            return Ok(false);
        }
        self.run(&["push", "--quiet"]).map(|_| true)
    }

    /// Branch, upstream, ahead/behind and uncommitted files, from
    /// `git status --porcelain=v2 --branch`.
    pub fn status(&self) -> Result<GitState, GitError> {
        let out = self.run(&["status", "--porcelain=v2", "--branch", "--", "."])?;
        Ok(parse_status(&out))
    }
}

/// The last few lines git said, as one line.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    let joined = tail.join(" / ");
    if joined.chars().count() > 300 {
        joined.chars().take(300).collect::<String>() + "…"
    } else {
        joined
    }
}

/// Reads `git status --porcelain=v2 --branch`.
pub fn parse_status(out: &str) -> GitState {
    let mut state = GitState::default();
    for line in out.lines() {
        if let Some(head) = line.strip_prefix("# branch.head ") {
            state.branch = (head != "(detached)").then(|| head.to_string());
        } else if let Some(up) = line.strip_prefix("# branch.upstream ") {
            state.upstream = Some(up.to_string());
        } else if let Some(ab) = line.strip_prefix("# branch.ab ") {
            let mut parts = ab.split_whitespace();
            let num = |p: Option<&str>| {
                p.and_then(|s| s.trim_start_matches(['+', '-']).parse().ok())
                    .unwrap_or(0)
            };
            state.ahead = num(parts.next());
            state.behind = num(parts.next());
        } else if !line.starts_with('#') && !line.is_empty() {
            state.uncommitted += 1;
        }
    }
    state
}

enum Job {
    Commit {
        paths: Vec<PathBuf>,
        message: String,
    },
    /// Look at the status again (after a reload).
    Status,
}

/// The writer's git side: queues commits for the git thread.
pub struct GitRecorder {
    tx: SyncSender<Job>,
    /// Changes that did not fit in the queue, committed together next.
    overflow: Arc<Mutex<BTreeSet<PathBuf>>>,
}

impl GitRecorder {
    /// Starts the git thread for the inventory at `dir`, or returns None
    /// (and says why on the bus) when there is nothing to do: commits off,
    /// or the folder is not in a work tree.
    pub fn start(dir: &Path, config: &GitConfig, bus: Bus) -> Option<Arc<GitRecorder>> {
        if !config.commit {
            return None;
        }
        let repo = Repo::discover(dir, config.timeout)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let overflow = Arc::new(Mutex::new(BTreeSet::new()));
        let worker = Worker {
            repo,
            author: config.author.clone(),
            push: config.push,
            bus,
            overflow: overflow.clone(),
            last_commit: None,
            error: None,
        };
        std::thread::Builder::new()
            .name("pxedeck-git".into())
            .spawn(move || worker.run(rx))
            .ok()?;
        Some(Arc::new(GitRecorder { tx, overflow }))
    }

    /// Asks for a fresh status (the watcher reloaded: maybe a pull).
    pub fn refresh(&self) {
        let _ = self.tx.try_send(Job::Status);
    }
}

impl WriteRecorder for GitRecorder {
    fn record(&self, paths: Vec<PathBuf>, message: String) {
        match self.tx.try_send(Job::Commit { paths, message }) {
            Ok(()) => {}
            Err(TrySendError::Full(Job::Commit { paths, .. })) => {
                let mut o = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
                o.extend(paths);
            }
            Err(_) => {} // the git thread is gone: files are on disk regardless
        }
    }
}

struct Worker {
    repo: Repo,
    author: String,
    push: bool,
    bus: Bus,
    overflow: Arc<Mutex<BTreeSet<PathBuf>>>,
    last_commit: Option<String>,
    error: Option<String>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        self.publish_status();
        loop {
            match rx.recv_timeout(STATUS_EVERY) {
                Ok(job) => {
                    // Everything queued meanwhile first, then one status.
                    let mut next = Some(job);
                    while let Some(job) = next {
                        if let Job::Commit { paths, message } = job {
                            self.commit(&paths, &message);
                        }
                        self.commit_overflow();
                        next = rx.try_recv().ok();
                    }
                    self.publish_status();
                }
                Err(RecvTimeoutError::Timeout) => self.publish_status(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn commit(&mut self, paths: &[PathBuf], message: &str) {
        match self.repo.commit(paths, message, &self.author) {
            Ok(Some(hash)) => {
                self.last_commit = Some(format!("{hash} {message}"));
                self.error = None;
                self.log(Level::Info, format!("git: committed {hash} {message}"));
                if self.push {
                    self.push();
                }
            }
            Ok(None) => {}
            Err(e) => {
                let said = format!("git commit of \"{message}\" failed (the file is written): {e}");
                self.error = Some(said.clone());
                self.log(Level::Warn, said);
            }
        }
    }

    fn push(&mut self) {
        match self.repo.push() {
            Ok(true) => self.log(Level::Info, "git: pushed".into()),
            Ok(false) => {}
            Err(e) => {
                let said =
                    format!("git push failed (the commit is kept, the next push sends it): {e}");
                self.error = Some(said.clone());
                self.log(Level::Warn, said);
            }
        }
    }

    fn commit_overflow(&mut self) {
        let gathered: Vec<PathBuf> = {
            let mut o = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *o).into_iter().collect()
        };
        if !gathered.is_empty() {
            let message = format!(
                "{} more inventory changes (gathered while git was busy)",
                gathered.len()
            );
            self.commit(&gathered, &message);
        }
    }

    fn publish_status(&mut self) {
        match self.repo.status() {
            Ok(mut state) => {
                state.last_commit = self.last_commit.clone();
                state.error = self.error.clone();
                self.bus.emit(EventKind::GitStatus(state));
            }
            Err(e) => self.log(Level::Warn, format!("git status failed: {e}")),
        }
    }

    fn log(&self, level: Level, message: String) {
        self.bus.emit(EventKind::Log {
            level,
            target: "git".into(),
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_branch_upstream_ahead_behind_and_counts_files() {
        let out = "# branch.oid 0123\n# branch.head main\n# branch.upstream origin/main\n\
                   # branch.ab +2 -1\n1 .M N... 100644 100644 100644 a b rack1/a.yaml\n\
                   ? notes.txt\n";
        let s = parse_status(out);
        assert_eq!(s.branch.as_deref(), Some("main"));
        assert_eq!(s.upstream.as_deref(), Some("origin/main"));
        assert_eq!((s.ahead, s.behind, s.uncommitted), (2, 1, 2));
        let detached = parse_status("# branch.oid 0123\n# branch.head (detached)\n");
        assert_eq!(detached.branch, None);
        assert_eq!(detached.upstream, None);
    }

    #[test]
    fn git_errors_keep_only_the_last_lines_and_a_bound() {
        let said = last_lines("hint: a\nhint: b\n\nfatal: x\nerror: y\n");
        assert_eq!(said, "hint: b / fatal: x / error: y");
        assert!(last_lines(&"z".repeat(10_000)).chars().count() <= 301);
    }
}
