//! `sirius user add|list`: local accounts.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Outcome, open_store};
use crate::bridge::hub::unix_now;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; asks for a password (or reads one line from stdin).
    Add {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
}

pub fn run(cmd: UserCommand, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let store = open_store(db)?;
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("could not read the password from standard input")?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                let first = rpassword::prompt_password(format!("Password for {name}: ")).context(
                    "could not read a password from the terminal (use --password-stdin)",
                )?;
                let again = rpassword::prompt_password("Again: ")?;
                if first != again {
                    bail!("the two passwords differ; nothing was changed");
                }
                first
            };
            if password.is_empty() {
                bail!(
                    "the password is empty; nothing was changed (use `sirius fake user` for a user without one)"
                );
            }
            let user = store.create_user(&name, Some(&password), unix_now())?;
            if json {
                println!("{}", json!({"id": user.id, "username": user.username}));
            } else {
                println!("created user {} (id {})", user.username, user.id);
            }
        }
        UserCommand::List => {
            let users = store.list_users()?;
            for u in users {
                if json {
                    println!(
                        "{}",
                        json!({"id": u.id, "username": u.username, "has_password": u.has_password, "created_at": u.created_at})
                    );
                } else {
                    println!(
                        "{:>5}  {:<24} {}",
                        u.id,
                        u.username,
                        if u.has_password {
                            "password set"
                        } else {
                            "no password"
                        }
                    );
                }
            }
        }
    }
    Ok(Outcome::AllValid)
}
