//! `sirius key create|list|revoke`: print keys from the command line.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use super::{Outcome, find_printer, open_store};
use crate::bridge::hub::unix_now;
use crate::web::print_key::new_secret;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make a print key for a printer (by id or address); prints its URL.
    Create {
        printer: String,
        /// What the key is for ("Phone app", "IFTTT"): shown in lists and
        /// printed as the sender when a print names none.
        #[arg(long)]
        label: Option<String>,
        /// The server's public URL for the printed link.
        #[arg(
            long,
            env = "SIRIUS_PUBLIC_URL",
            default_value = "http://localhost:5002"
        )]
        public_url: String,
    },
    /// List print keys: id, printer, the secret's first characters, label,
    /// created, uses, senders (only a hash of each secret is kept).
    List,
    /// Revoke a key (its secret, its URL or its id).
    Revoke { key: String },
}

fn url(public: &str, secret: &str) -> String {
    format!("{}/printkey/{secret}", public.trim_end_matches('/'))
}

pub fn run(cmd: KeyCommand, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let store = open_store(db)?;
    match cmd {
        KeyCommand::Create {
            printer,
            label,
            public_url,
        } => {
            let row = find_printer(&store, &printer)?;
            let secret = new_secret();
            let key =
                store.create_print_key(row.id, &secret, label.as_deref(), None, unix_now())?;
            let link = url(&public_url, &secret);
            if json {
                println!(
                    "{}",
                    json!({"id": key.id, "secret": secret, "url": link, "printer": row.address.to_string()})
                );
            } else {
                println!("{link}");
                eprintln!(
                    "(only a hash of the key is kept: copy the link now, it is not shown again)"
                );
            }
        }
        KeyCommand::List => {
            let printers = store.list_printers()?;
            for k in store.list_print_keys()? {
                let p = printers.iter().find(|p| p.id == k.printer_id);
                let printer = p
                    .map(|p| p.name.clone().unwrap_or_else(|| p.address.to_string()))
                    .unwrap_or_default();
                let created = jiff::Timestamp::from_second(k.created_at)
                    .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                if json {
                    println!(
                        "{}",
                        json!({"id": k.id, "printer": printer, "printer_address": p.map(|p| p.address.to_string()),
                               "prefix": k.prefix, "label": k.label, "created_at": k.created_at,
                               "revoked": k.revoked_at.is_some(), "uses": k.uses, "senders": k.senders})
                    );
                } else {
                    println!(
                        "{:>4}  {:<20} {}…  {:<16} created {}  uses {}  senders: {}{}",
                        k.id,
                        printer,
                        k.prefix,
                        k.label.as_deref().unwrap_or("-"),
                        created,
                        k.uses,
                        if k.senders.is_empty() {
                            "-".to_string()
                        } else {
                            k.senders.join(", ")
                        },
                        if k.revoked_at.is_some() {
                            "  (revoked)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        KeyCommand::Revoke { key } => {
            let key = key.trim().trim_end_matches('/');
            let key = key.rsplit('/').next().unwrap_or(key);
            if !store.revoke_print_key(key, unix_now())? {
                bail!("no working print key {key:?}; `sirius key list` shows them");
            }
            if json {
                println!("{}", json!({"revoked": key}));
            } else {
                println!("revoked {key}");
            }
        }
    }
    Ok(Outcome::AllValid)
}
