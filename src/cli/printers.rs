//! `sirius fake …` and `sirius printer …`: printers, claims and test users
//! from the command line.

use std::path::Path;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use super::{Outcome, open_store};
use crate::bridge::hub::unix_now;
use crate::emulator::PrinterIdentity;
use crate::protocol::{ClaimCode, DeviceAddress};

#[derive(Debug, Subcommand)]
pub enum FakeCommand {
    /// Create an unclaimed printer with a random address and secret; print
    /// its claim code and write ADDRESS.printer for `sirius emulate printer`.
    Printer {
        /// Folder for the .printer file.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Create a user without a password.
    User { name: String },
    /// Claim a printer in someone's name (the user is created if missing).
    Claim {
        address: String,
        owner: String,
        code: String,
        name: String,
    },
    /// Give someone (created if missing) many claimed printers, each with
    /// a full history of delivered messages (one real rendered page,
    /// stored again and again): the data the page benchmarks need.
    Histories {
        owner: String,
        /// Printers to make.
        #[arg(long, default_value_t = 20)]
        printers: usize,
        /// Delivered messages per printer.
        #[arg(long, default_value_t = 100)]
        messages: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrinterCommand {
    /// List printers.
    List,
    /// Claim a printer with the code it printed.
    Claim {
        #[arg(long)]
        owner: String,
        code: String,
        name: String,
    },
}

pub fn fake(cmd: FakeCommand, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let store = open_store(db)?;
    let now = unix_now();
    match cmd {
        FakeCommand::Printer { dir } => {
            let mut identity = PrinterIdentity::random();
            let row = store.ensure_printer(identity.address, now)?;
            identity.db_id = Some(row.id);
            let text = identity.format();
            let path = dir.join(format!("{}.printer", identity.address));
            std::fs::write(&path, &text)
                .with_context(|| format!("could not write {}", path.display()))?;
            if json {
                println!(
                    "{}",
                    json!({
                        "address": identity.address.to_string(),
                        "db_id": row.id,
                        "secret": identity.secret.to_string(),
                        "xor": identity.hardware_xor().value(),
                        "claim_code": identity.claim_code().to_string(),
                        "file": path.display().to_string(),
                    })
                );
            } else {
                print!("{text}");
                eprintln!("(written to {})", path.display());
            }
        }
        FakeCommand::User { name } => {
            let user = store.create_user(&name, None, now)?;
            if json {
                println!("{}", json!({"id": user.id, "username": user.username}));
            } else {
                println!(
                    "created user {} (id {}, no password)",
                    user.username, user.id
                );
            }
        }
        FakeCommand::Claim {
            address,
            owner,
            code,
            name,
        } => {
            let address = DeviceAddress::parse(address.trim())
                .with_context(|| format!("{address:?} is not a device address"))?;
            let code = ClaimCode::parse(&code).with_context(|| format!("claim code {code:?}"))?;
            if code.hardware_xor() != address.hardware_xor() {
                anyhow::bail!(
                    "claim code {code} is for hardware xor {}, but printer {address} has xor {}",
                    code.hardware_xor(),
                    address.hardware_xor()
                );
            }
            let user = match store.user_by_name(&owner)? {
                Some(u) => u,
                None => store.create_user(&owner, None, now)?,
            };
            store.ensure_printer(address, now)?;
            let outcome = store.claim(user.id, &code, &name, now)?;
            report_claim(json, &owner, &name, &code, &outcome.printers_linked);
        }
        FakeCommand::Histories {
            owner,
            printers,
            messages,
        } => {
            let user = match store.user_by_name(&owner)? {
                Some(u) => u,
                None => store.create_user(&owner, None, now)?,
            };
            let renderer = crate::compose::Renderer::new(Default::default());
            let rendered = renderer
                .render_message_blocking(
                    &crate::compose::Content::Text(
                        "A message from the history: about as long as a typical one, \
                         with a line or two of text and an emoji 🙂."
                            .into(),
                    ),
                    &crate::compose::Envelope::now("Fake"),
                )
                .context("could not render the history's page")?;
            let png = crate::raster::page_to_png(&rendered.page);
            let mut command_id = 1u32;
            let mut made = Vec::new();
            for i in 0..printers {
                let identity = PrinterIdentity::random();
                let printer = store.ensure_printer(identity.address, now)?;
                store.claim(
                    user.id,
                    &identity.claim_code(),
                    &format!("Printer {}", i + 1),
                    now,
                )?;
                for m in 0..messages {
                    let id = store.insert_message(
                        &crate::store::NewMessage {
                            printer_id: printer.id,
                            sender: "Fake",
                            content_kind: "text",
                            command_kind: "set_delivery_and_print",
                            page_png: &png,
                            page_width: rendered.page.width(),
                            page_height: rendered.page.height(),
                            truncated: false,
                            created_at: now - ((messages - m) as i64) * 60,
                            print_key_id: None,
                            sender_user_id: Some(user.id),
                            reprint_of: None,
                        },
                        messages,
                        usize::MAX,
                    )?;
                    store.mark_sent(id, command_id, now)?;
                    store.mark_answered(id, 0, None, now)?;
                    command_id += 1;
                }
                made.push(printer.id);
            }
            if json {
                println!(
                    "{}",
                    json!({"owner": owner, "printers": made, "messages_each": messages})
                );
            } else {
                println!(
                    "{owner} owns {printers} new printers with {messages} delivered messages each"
                );
            }
        }
    }
    Ok(Outcome::AllValid)
}

fn report_claim(json: bool, owner: &str, name: &str, code: &ClaimCode, linked: &[DeviceAddress]) {
    if json {
        println!(
            "{}",
            json!({"owner": owner, "name": name, "code": code.to_string(),
                   "printers": linked.iter().map(|a| a.to_string()).collect::<Vec<_>>()})
        );
    } else if linked.is_empty() {
        println!(
            "{owner} claimed {name:?} with {code}; the printer is linked as soon as it calls home"
        );
    } else {
        let addrs: Vec<String> = linked.iter().map(|a| a.to_string()).collect();
        println!("{owner} claimed {name:?} ({})", addrs.join(", "));
    }
}

pub fn printer(cmd: PrinterCommand, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let store = open_store(db)?;
    match cmd {
        PrinterCommand::List => {
            for p in store.list_printers()? {
                let last = p
                    .last_heard
                    .and_then(|s| jiff::Timestamp::from_second(s).ok())
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string());
                if json {
                    println!(
                        "{}",
                        json!({"id": p.id, "name": p.name, "owner": p.owner,
                               "address": p.address.to_string(), "xor": p.hardware_xor.value(),
                               "last_heard": p.last_heard})
                    );
                } else {
                    println!(
                        "{:>5}  {:<20} {:<16} {}  xor {:<8}  last heard {}",
                        p.id,
                        p.name.as_deref().unwrap_or("(unclaimed)"),
                        p.owner.as_deref().unwrap_or("-"),
                        p.address,
                        p.hardware_xor.value(),
                        last.as_deref().unwrap_or("never")
                    );
                }
            }
        }
        PrinterCommand::Claim { owner, code, name } => {
            let code = ClaimCode::parse(&code).with_context(|| format!("claim code {code:?}"))?;
            let user = store.user_by_name(&owner)?.with_context(|| {
                format!("there is no user {owner:?}; create one with `sirius user add {owner}`")
            })?;
            let outcome = store.claim(user.id, &code, &name, unix_now())?;
            report_claim(json, &owner, &name, &code, &outcome.printers_linked);
        }
    }
    Ok(Outcome::AllValid)
}
