//! What can be open over a view: a prompt being typed, a dialog, the
//! help, or a question waiting for a yes.

use tui_input::Input;

use crate::event::Command;
use crate::tui::adopt::AdoptDialog;
use crate::tui::edit::EditDialog;

/// A line of text being typed at the bottom (filter or jump).
pub enum Prompt {
    Filter(Input),
    Jump(Input),
}

impl Prompt {
    /// The label drawn before the text; the cursor sits after it.
    pub fn label(&self) -> &'static str {
        match self {
            Prompt::Filter(_) => " filter ",
            Prompt::Jump(_) => " jump ",
        }
    }

    pub fn input(&self) -> &Input {
        match self {
            Prompt::Filter(i) | Prompt::Jump(i) => i,
        }
    }

    pub(super) fn input_mut(&mut self) -> &mut Input {
        match self {
            Prompt::Filter(i) | Prompt::Jump(i) => i,
        }
    }
}

/// What is open over the view; keys go to it first.
#[derive(Default)]
pub enum Modal {
    #[default]
    None,
    Prompt(Prompt),
    Adopt(AdoptDialog),
    /// The edit dialog of a known machine.
    Edit(EditDialog),
    /// The help, scrolled this many lines down.
    Help(u16),
    /// "quit anyway?" over whatever was open when quitting asked.
    ConfirmQuit(Box<Modal>),
    /// A destructive command (reimage, release, forget, a BMC action)
    /// waiting for a yes.
    Confirm(Confirmation),
}

/// A command that waits for `y` before it is sent.
pub struct Confirmation {
    /// The question, with what it does and to how many.
    pub question: String,
    pub command: Command,
    /// The status line while it runs.
    pub note: String,
    /// Whether the marked set is cleared once it is sent (a bulk BMC
    /// action is done with its marks).
    pub clears_marks: bool,
}
