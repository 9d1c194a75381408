//! Emulated bridges and printers, for trying the server without hardware and
//! for measuring it. [`run_printer`] is one bridge with one printer that
//! behaves like the real pair: it asks for its link key, checks it against
//! its own secret, heartbeats, prints what it is sent into PNG files and
//! reconnects when the server goes away. [`run_load`] opens many bridges,
//! each with many heartbeating printers, for a bounded time and reports
//! what it measured. [`PrinterIdentity`] is the printer file both the
//! emulator and `sirius fake printer` use.
//!
//! * [`identity`]: the `<address>.printer` file.
//! * [`wire`]: the messages a bridge sends and the commands it reads.
//! * [`printer`]: the bridge-and-printer emulator.
//! * [`load`]: the load generator.

use std::path::PathBuf;

use serde_json::{Value, json};

pub mod identity;
pub mod load;
pub mod posts;
pub mod printer;
pub mod web_load;
pub mod wire;

pub use identity::{IdentityError, PrinterIdentity};
pub use load::{LoadOptions, LoadReport, run_load};
pub use printer::{PrinterOptions, run_printer};

/// What an emulated printer went through, reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmulatorEvent {
    /// The websocket is open; `power_on` follows.
    Connected,
    /// An `encryption_key_required` was sent.
    KeyRequested,
    /// The server sent the link key of this printer's secret.
    KeyAccepted,
    /// The server sent a key that is not the link key of this printer's
    /// secret; the printer refused it and keeps asking.
    KeyRejected { reason: String },
    /// A DeviceCommand was decoded and its pages written as PNG files.
    Printed {
        command_id: u32,
        /// The command's protocol name, e.g. `set_delivery_and_print`.
        command: String,
        pages: Vec<PathBuf>,
    },
    /// The connection was lost, refused or could not be opened; the
    /// emulator will try again after a back-off.
    Disconnected { reason: String },
}

impl EmulatorEvent {
    /// A short snake_case name: `connected`, `key_requested`, …
    pub fn kind(&self) -> &'static str {
        match self {
            EmulatorEvent::Connected => "connected",
            EmulatorEvent::KeyRequested => "key_requested",
            EmulatorEvent::KeyAccepted => "key_accepted",
            EmulatorEvent::KeyRejected { .. } => "key_rejected",
            EmulatorEvent::Printed { .. } => "printed",
            EmulatorEvent::Disconnected { .. } => "disconnected",
        }
    }

    /// A flat JSON object with `event` (the kind) and the fields.
    pub fn to_json(&self) -> Value {
        match self {
            EmulatorEvent::KeyRejected { reason } | EmulatorEvent::Disconnected { reason } => {
                json!({"event": self.kind(), "reason": reason})
            }
            EmulatorEvent::Printed {
                command_id,
                command,
                pages,
            } => json!({
                "event": self.kind(),
                "command_id": command_id,
                "command": command,
                "pages": pages.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            }),
            _ => json!({"event": self.kind()}),
        }
    }
}

impl std::fmt::Display for EmulatorEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmulatorEvent::Connected => f.write_str("connected"),
            EmulatorEvent::KeyRequested => f.write_str("asked for the link key"),
            EmulatorEvent::KeyAccepted => f.write_str("link key accepted"),
            EmulatorEvent::KeyRejected { reason } => write!(f, "link key REFUSED: {reason}"),
            EmulatorEvent::Printed {
                command_id,
                command,
                pages,
            } => {
                write!(f, "printed command {command_id} ({command}):")?;
                for p in pages {
                    write!(f, " {}", p.display())?;
                }
                Ok(())
            }
            EmulatorEvent::Disconnected { reason } => write!(f, "disconnected: {reason}"),
        }
    }
}
