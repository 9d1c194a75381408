//! `sirius backup FILE` and `sirius restore FILE`: the command-line edge of
//! [`crate::backup`].

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::Outcome;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (a new file).
    pub file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to put in place of the database.
    pub file: PathBuf,
}

/// Sizes for people: bytes, kB or MB.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 10_000 => format!("{b} bytes"),
        b if b < 10_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}

pub fn backup(args: BackupArgs, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let report = crate::backup::backup(db, &args.file, args.force)?;
    if json {
        println!(
            "{}",
            json!({
                "database": db,
                "backup": args.file,
                "bytes": report.bytes,
                "seconds": report.elapsed.as_secs_f64(),
            })
        );
    } else {
        println!(
            "backed up {} to {}: {} in {:.2} s",
            db.display(),
            args.file.display(),
            size(report.bytes),
            report.elapsed.as_secs_f64()
        );
    }
    Ok(Outcome::AllValid)
}

pub fn restore(args: RestoreArgs, db: &Path, json: bool) -> anyhow::Result<Outcome> {
    let report = crate::backup::restore(db, &args.file)?;
    if json {
        println!(
            "{}",
            json!({
                "database": db,
                "restored_from": args.file,
                "bytes": report.bytes,
                "schema_version": report.schema_version,
                "previous": report.previous,
            })
        );
    } else {
        println!(
            "restored {} into {} ({}, schema version {}{})",
            args.file.display(),
            db.display(),
            size(report.bytes),
            report.schema_version,
            if report.schema_version < crate::store::SCHEMA_VERSION {
                format!(
                    "; the server brings it to version {} when it starts",
                    crate::store::SCHEMA_VERSION
                )
            } else {
                String::new()
            }
        );
        match &report.previous {
            Some(p) => println!("the database it replaced is kept as {}", p.display()),
            None => println!("there was no database there before"),
        }
        println!("start the server again (for the service: systemctl start sirius)");
    }
    Ok(Outcome::AllValid)
}
