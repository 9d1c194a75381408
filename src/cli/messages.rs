//! `sirius message list|reprint`: a printer's history from the command
//! line. A reprint is queued in the database; a running server sends it
//! within a minute (or at once when the printer next comes online).

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use super::{Outcome, find_printer, open_store};
use crate::bridge::hub::unix_now;

#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// A printer's recent messages, newest first.
    List {
        /// The printer: its id or its address.
        printer: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Print a stored message again, as a new message.
    Reprint {
        /// The message id (`sirius message list` shows them).
        id: i64,
        /// The sender's name on the new message.
        #[arg(long = "from", default_value = "reprint")]
        sender: String,
        /// Messages kept per printer (as the server's --history).
        #[arg(long, env = "SIRIUS_HISTORY", default_value_t = 100)]
        history: usize,
        /// Messages waiting per printer at most (as the server's
        /// --queue-limit).
        #[arg(long, env = "SIRIUS_QUEUE_LIMIT", default_value_t = 100)]
        queue_limit: usize,
    },
}

pub fn run(cmd: MessageCommand, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let store = open_store(db)?;
    match cmd {
        MessageCommand::List { printer, limit } => {
            let p = find_printer(&store, &printer)?;
            for m in store.recent_messages(p.id, limit)? {
                let when = jiff::Timestamp::from_second(m.created_at)
                    .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                if json {
                    println!(
                        "{}",
                        json!({"id": m.id, "sender": m.sender, "kind": m.content_kind,
                               "state": m.state.as_str(), "created_at": m.created_at,
                               "attempts": m.attempts, "command_id": m.command_id,
                               "failure": m.failure, "printed_at": m.printed_at,
                               "height": m.page_height, "truncated": m.truncated})
                    );
                } else {
                    println!(
                        "{:>6}  {}  {:<10} {:<8} from {:<16} {} rows{}{}",
                        m.id,
                        when,
                        m.state.as_str(),
                        m.content_kind,
                        m.sender,
                        m.page_height,
                        if m.printed_at.is_some() {
                            ", printed"
                        } else {
                            ""
                        },
                        m.failure.map(|f| format!(" ({f})")).unwrap_or_default()
                    );
                }
            }
        }
        MessageCommand::Reprint {
            id,
            sender,
            history,
            queue_limit,
        } => {
            let Some((new_id, _)) = store.reprint_message(
                id,
                &sender,
                None,
                unix_now(),
                history.max(1),
                queue_limit.max(1),
            )?
            else {
                bail!("there is no message {id} (it may have left the history)");
            };
            if json {
                println!(
                    "{}",
                    json!({"message_id": new_id, "status": "queued", "reprint_of": id})
                );
            } else {
                println!(
                    "message {new_id} queued (a reprint of {id}); a running server sends it within a minute"
                );
            }
        }
    }
    Ok(Outcome::AllValid)
}
