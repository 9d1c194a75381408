//! `sirius user add|list|passwd|remove|invite`: local accounts from the
//! server's own terminal — how the first administrator is made on a
//! closed server, how a forgotten password is reset, how someone is
//! removed (after saying what happens to their printers, and asking).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Outcome, open_store};
use crate::bridge::hub::unix_now;
use crate::store::users::{check_new_password, hash_password};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; asks for a password (or reads one line from stdin).
    Add {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Make the user an administrator (manages users, invites, sees
        /// every bridge and printer).
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Set a user's password (and sign them out everywhere).
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user. Says what happens to their printers and asks first.
    Remove {
        name: String,
        /// Don't ask (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Make a one-time invite link (valid 7 days) for someone to make an
    /// account on the web app.
    Invite {
        /// Whoever signs up with it is an administrator.
        #[arg(long)]
        admin: bool,
        /// How people reach the server, for the link (default: a path to
        /// put after your server's address).
        #[arg(long, env = "SIRIUS_PUBLIC_URL")]
        public_url: Option<String>,
    },
}

/// A new password: from stdin's first line, or asked twice on the
/// terminal. Checked for length.
fn read_new_password(name: &str, from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("could not read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password(format!("Password for {name}: "))
            .context("could not read a password from the terminal (use --password-stdin)")?;
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
    check_new_password(&password).context("nothing was changed")?;
    Ok(password)
}

pub fn run(cmd: UserCommand, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let store = open_store(db)?;
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
            admin,
        } => {
            if store.user_by_name(&name)?.is_some() {
                bail!(crate::store::StoreError::UsernameTaken(
                    name.trim().to_string()
                ));
            }
            let password = read_new_password(&name, password_stdin)?;
            let hash = hash_password(&password)?;
            let user = store
                .create_user_hashed(&name, Some(&hash), admin, false, unix_now())?
                .context("the user was not created")?;
            if json {
                println!(
                    "{}",
                    json!({"id": user.id, "username": user.username, "is_admin": user.is_admin})
                );
            } else {
                println!(
                    "created user {} (id {}){}",
                    user.username,
                    user.id,
                    if admin { ", an administrator" } else { "" }
                );
            }
        }
        UserCommand::List => {
            let users = store.list_users()?;
            for u in users {
                if json {
                    println!(
                        "{}",
                        json!({"id": u.id, "username": u.username, "has_password": u.has_password,
                               "created_at": u.created_at, "is_admin": u.is_admin,
                               "disabled": u.disabled_at.is_some(), "printers": u.printer_count})
                    );
                } else {
                    let mut notes = vec![if u.has_password {
                        "password set"
                    } else {
                        "no password"
                    }];
                    if u.is_admin {
                        notes.push("admin");
                    }
                    if u.disabled_at.is_some() {
                        notes.push("disabled");
                    }
                    println!(
                        "{:>5}  {:<24} {} printer(s), {}",
                        u.id,
                        u.username,
                        u.printer_count,
                        notes.join(", ")
                    );
                }
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let user = store.user_by_name(&name)?.with_context(|| {
                format!("there is no user called {name:?} (see `sirius user list`)")
            })?;
            let password = read_new_password(&user.username, password_stdin)?;
            let hash = hash_password(&password)?;
            store.set_password_hash(user.id, Some(&hash))?;
            let ended = store.delete_sessions_of(user.id, None)?;
            if json {
                println!(
                    "{}",
                    json!({"id": user.id, "username": user.username, "sessions_ended": ended})
                );
            } else {
                println!(
                    "password of {} changed; {ended} signed-in browser(s) signed out",
                    user.username
                );
            }
        }
        UserCommand::Remove { name, yes } => {
            let user = store.user_by_name(&name)?.with_context(|| {
                format!("there is no user called {name:?} (see `sirius user list`)")
            })?;
            let printers = store.printers_owned_by(user.id)?;
            if !json || !yes {
                if printers.is_empty() {
                    eprintln!("{} owns no printer.", user.username);
                } else {
                    eprintln!(
                        "{} owns {} printer(s); they become unclaimed (their print keys stop working, sharing ends, anyone with the printer's current claim code can claim it; message history stays with the printer):",
                        user.username,
                        printers.len()
                    );
                    for p in &printers {
                        eprintln!(
                            "  {}  {}",
                            p.address,
                            p.name.as_deref().unwrap_or("(no name)")
                        );
                    }
                }
            }
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "not deleting {} without --yes (standard input is not a terminal to ask on)",
                        user.username
                    );
                }
                eprint!("Delete {}? [y/N] ", user.username);
                std::io::stderr().flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
                    eprintln!("nothing was changed");
                    return Ok(Outcome::AllValid);
                }
            }
            store.delete_user(user.id, unix_now())?;
            if json {
                println!(
                    "{}",
                    json!({"deleted": user.username, "printers_unclaimed": printers.iter().map(|p| p.address.to_string()).collect::<Vec<_>>()})
                );
            } else {
                println!(
                    "deleted {}; {} printer(s) unclaimed",
                    user.username,
                    printers.len()
                );
            }
        }
        UserCommand::Invite { admin, public_url } => {
            let token = crate::web::app::auth::random_token(24);
            let invite = store.create_invite(&token, None, admin, unix_now())?;
            let path = format!("/invite/{token}");
            let url = public_url
                .as_deref()
                .map(|u| format!("{}{path}", u.trim().trim_end_matches('/')));
            if json {
                println!(
                    "{}",
                    json!({"path": path, "url": url, "make_admin": admin, "expires_at": invite.expires_at})
                );
            } else {
                match url {
                    Some(url) => println!("{url}"),
                    None => println!("http://THIS-SERVER:5002{path}"),
                }
                eprintln!(
                    "one-time invite{}, valid 7 days{}",
                    if admin { " for an administrator" } else { "" },
                    if public_url.is_none() {
                        "; put your server's address in place of THIS-SERVER:5002 (or set SIRIUS_PUBLIC_URL)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(Outcome::AllValid)
}
