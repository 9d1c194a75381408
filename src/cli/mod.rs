//! The command line: `sirius inspect …`, `sirius render …` and, in later
//! issues, `serve`, `fake`, `emulate`, `user`. Thin: parse, call one
//! function of the library, present the answer.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

pub mod assets;
pub mod backup;
pub mod config;
pub mod emulate;
pub mod import;
pub mod inspect;
pub mod keys;
pub mod messages;
pub mod printers;
pub mod render;
pub mod serve;
pub mod users;

/// Sirius: the server that keeps BERG's Little Printer alive.
#[derive(Debug, Parser)]
#[command(name = "sirius", version, about, long_about = None)]
pub struct Cli {
    /// Print one JSON object per line instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,

    /// The SQLite database file (created if missing).
    #[arg(long, global = true, env = "SIRIUS_DB", default_value = "sirius.db")]
    pub db: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: bridges on /api/v1/connection, the status page on /.
    Serve(serve::ServeArgs),
    /// Local user accounts.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Printers: list them, claim one.
    #[command(subcommand)]
    Printer(printers::PrinterCommand),
    /// A printer's message history; reprint a message.
    #[command(subcommand)]
    Message(messages::MessageCommand),
    /// Print keys: secret URLs that print to one printer.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Make test printers, users and claims without hardware.
    #[command(subcommand)]
    Fake(printers::FakeCommand),
    /// Look inside claim codes, addresses, bridge messages and printer payloads.
    #[command(subcommand)]
    Inspect(inspect::Inspect),
    /// Turn images into pages and a DeviceCommand, as the server would send it.
    Render(render::RenderArgs),
    /// Emulate a bridge and printer, or generate load, against a server.
    #[command(subcommand)]
    Emulate(emulate::Emulate),
    /// Bring users, printers, print keys and messages over from the earlier
    /// (Python) Sirius server's database.
    Import(import::ImportArgs),
    /// The settings `serve` would use and where each came from (takes the
    /// same flags as `serve`).
    Config(config::ConfigArgs),
    /// Copy the database while the server runs (a consistent snapshot).
    Backup(backup::BackupArgs),
    /// Put a backup in place of the database (the server must be stopped).
    Restore(backup::RestoreArgs),
    /// Write the man pages and shell completions into a folder (for packaging).
    #[command(hide = true)]
    GenerateAssets(assets::AssetsArgs),
}

/// Runs the command line and turns the outcome into an exit code: 0 when
/// every input was fine, 1 when any was invalid (after answering all of
/// them), 2 when the command itself could not run.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging();
    config::warn_unknown_env();
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(args, &cli.db),
        Command::User(cmd) => users::run(cmd, &cli.db, cli.json),
        Command::Printer(cmd) => printers::printer(cmd, &cli.db, cli.json),
        Command::Fake(cmd) => printers::fake(cmd, &cli.db, cli.json),
        Command::Key(cmd) => keys::run(cmd, &cli.db, cli.json),
        Command::Message(cmd) => messages::run(cmd, &cli.db, cli.json),
        Command::Inspect(cmd) => inspect::run(cmd, cli.json),
        Command::Render(args) => render::run(args, cli.json),
        Command::Emulate(cmd) => emulate::run(cmd, cli.json),
        Command::Import(args) => import::run(args, &cli.db, cli.json),
        Command::Config(args) => config::run(args, &cli.db, cli.json, &matches),
        Command::Backup(args) => backup::backup(args, &cli.db, cli.json),
        Command::Restore(args) => backup::restore(args, &cli.db, cli.json),
        Command::GenerateAssets(args) => assets::run(args, cli.json),
    };
    match outcome {
        Ok(Outcome::AllValid) => ExitCode::SUCCESS,
        Ok(Outcome::SomeInvalid) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sirius: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether every input a tool was given was valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    AllValid,
    SomeInvalid,
}

impl Outcome {
    pub fn from_invalid(any_invalid: bool) -> Self {
        if any_invalid {
            Outcome::SomeInvalid
        } else {
            Outcome::AllValid
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(config::LOG_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: under systemd the journal gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &str) -> anyhow::Result<Vec<u8>> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("could not read standard input")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("could not read {path}"))
    }
}

/// Opens the database for a command-line tool.
pub fn open_store(db: &Path) -> anyhow::Result<crate::store::Store> {
    crate::store::Store::open(db)
        .with_context(|| format!("could not open the database {}", db.display()))
}

/// A printer named by its id or its device address.
pub fn find_printer(
    store: &crate::store::Store,
    printer: &str,
) -> anyhow::Result<crate::store::PrinterRow> {
    let row = match printer.parse::<i64>() {
        Ok(id) if printer.len() < 16 => store.printer_by_id(id)?,
        _ => {
            let addr =
                crate::protocol::DeviceAddress::parse(printer.trim()).with_context(|| {
                    format!("{printer:?} is neither a printer id nor a device address")
                })?;
            store.printer_by_address(addr)?
        }
    };
    row.with_context(|| {
        format!("there is no printer {printer:?}; `sirius printer list` shows them")
    })
}
