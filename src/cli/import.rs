//! `sirius import --from URL`: moving over from the earlier (Python)
//! server. Reads its database (changing nothing there), brings users,
//! printers, claims, print keys, shares and messages into ours in one
//! transaction, and says what it brought over and what it skipped.

use std::path::Path;

use anyhow::Context as _;
use clap::Args;

use super::{Outcome, open_store};
use crate::bridge::hub::unix_now;
use crate::store::import::{ImportReport, read_earlier};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The earlier server's database, as its DATABASE_URL gave it:
    /// sqlite:////absolute/path, sqlite:///relative/path,
    /// postgresql://user:password@host[:port]/dbname (or postgres://).
    #[arg(long = "from", value_name = "URL")]
    pub from: String,
    /// Read everything and report what would be imported, then write
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: ImportArgs, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let data = read_earlier(&args.from).context("could not read the earlier server's database")?;
    let store = open_store(db)?;
    let report = store
        .import_earlier(&data, unix_now(), args.dry_run)
        .with_context(|| format!("the import into {} failed and wrote nothing", db.display()))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", describe(&report, db));
    }
    Ok(Outcome::AllValid)
}

/// The report for people.
pub fn describe(report: &ImportReport, db: &Path) -> String {
    let mut out = String::new();
    let revision = report
        .revision
        .as_deref()
        .map(|r| format!(" (revision {r})"))
        .unwrap_or_default();
    out.push_str(&format!(
        "{} {}{revision} into {}\n",
        if report.dry_run {
            "Dry run, nothing written: would import from"
        } else {
            "Imported from"
        },
        report.source,
        db.display()
    ));
    for (what, t) in report.tallies() {
        out.push_str(&format!(
            "  {what:<17} {:>5} brought over, {:>5} already here, {:>5} skipped\n",
            t.added,
            t.already,
            t.skipped_total()
        ));
        for (reason, n) in &t.skipped {
            out.push_str(&format!("      skipped {n}: {reason}\n"));
        }
    }
    for note in &report.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    if report.added_total() == 0 && !report.dry_run {
        out.push_str("Nothing new: everything was already here.\n");
    } else if report.users.added > 0 && !report.dry_run {
        out.push_str(
            "Imported users have no password: they sign in with Twitter, or an admin sets one.\n",
        );
    }
    out
}
