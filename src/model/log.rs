//! The log ring and the fold of events that are only worth a line in it
//! (start, denials, inventory writes, failed commands, log records).

use serde::{Deserialize, Serialize};

use super::Model;
use crate::clock::Millis;
use crate::event::{Level, ServerInfo};

/// Log lines kept; the oldest go first.
pub const LOG_LINES: usize = 2000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: Millis,
    pub level: Level,
    pub target: String,
    pub message: String,
}

impl Model {
    pub(super) fn log(&mut self, at: Millis, level: Level, target: &str, message: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(LogLine {
            at,
            level,
            target: target.into(),
            message,
        });
    }

    pub(super) fn started(&mut self, at: Millis, info: &ServerInfo) {
        self.server = Some(info.clone());
        self.log(at, Level::Info, "pxedeck", "boot services started".into());
    }

    pub(super) fn access_denied(
        &mut self,
        at: Millis,
        client: std::net::IpAddr,
        path: &str,
        reason: &str,
    ) {
        self.counters.denied += 1;
        let line = format!("denied {path} to {client}: {reason}");
        self.log(at, Level::Warn, "http", line);
    }

    pub(super) fn inventory_written(
        &mut self,
        at: Millis,
        hostname: &str,
        path: &str,
        change: &str,
    ) {
        let line = format!("{hostname}: {change} ({path})");
        self.log(at, Level::Info, "inventory", line);
    }

    pub(super) fn command_failed(&mut self, at: Millis, command: &str, error: &str) {
        self.counters.errors += 1;
        self.log(at, Level::Error, "command", format!("{command}: {error}"));
    }

    pub(super) fn log_record(&mut self, at: Millis, level: Level, target: &str, message: &str) {
        if level == Level::Error {
            self.counters.errors += 1;
        }
        self.log(at, level, target, message.to_string());
    }
}
