//! What the console needs from whatever runs the boot services, and
//! nothing more: a feed of state, a way to run a command, a machine's
//! detail, and where it is attached. The embedded services and the remote
//! API each implement it outside `tui/`, so the console imports neither.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::event::{Command, Event};
use crate::ident::Mac;
use crate::model::Model;

/// What feeds the console's model.
#[derive(Debug)]
pub enum Feed {
    /// Start over from this state (first connect, or after falling behind).
    Snapshot(Box<Model>),
    Event(Arc<Event>),
    /// The stream broke; the console says so and keeps the last state.
    Lost(String),
}

/// Where the console's state comes from, for the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// In the process that runs the boot services.
    Embedded,
    /// Attached to a running `pxedeck serve` at this API URL.
    Attached(String),
}

impl Origin {
    /// The API URL when attached.
    pub fn attached_to(&self) -> Option<&str> {
        match self {
            Origin::Embedded => None,
            Origin::Attached(url) => Some(url),
        }
    }
}

/// The console's one way to the boot services.
pub trait Backend: Send + Sync + 'static {
    fn origin(&self) -> Origin;

    /// Starts feeding the model: a snapshot, then events, starting over
    /// after a lag or a dropped connection.
    fn feed(&self) -> mpsc::Receiver<Feed>;

    /// Runs a command; the reply carries the outcome in words.
    fn execute(&self, command: Command) -> impl Future<Output = Result<String, String>> + Send;

    /// What a machine is served, as text for the detail pane.
    fn detail(&self, mac: Mac) -> impl Future<Output = String> + Send;
}
