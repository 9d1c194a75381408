//! `sirius emulate`: an emulated bridge and printer (`printer`), and a load
//! generator of many bridges and printers (`load`), both against a running
//! server. Thin: parse, run [`crate::emulator`], print what happens.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use super::Outcome;
use crate::emulator::{
    EmulatorEvent, LoadOptions, PrinterIdentity, PrinterOptions, run_load, run_printer,
};
use crate::protocol::{BridgeAddress, ClaimCode};

#[derive(Debug, Subcommand)]
pub enum Emulate {
    /// Run one bridge with one printer, from a printer file, until Ctrl-C.
    Printer(PrinterArgs),
    /// Open many bridges with many heartbeating printers for a while and
    /// report what the server did.
    Load(LoadArgs),
    /// Send many concurrent POSTs to a print key and report the answers.
    PostLoad(PostLoadArgs),
    /// Load the web app as people use it (page views, previews or
    /// sign-ins) and report the latencies.
    Web(WebArgs),
}

#[derive(Debug, Args)]
pub struct WebArgs {
    /// The server, e.g. http://127.0.0.1:5002.
    pub url: String,
    /// Whose pages: a user with printers (and a password).
    #[arg(long)]
    pub user: String,
    /// Their password.
    #[arg(long)]
    pub password: String,
    /// What to do.
    #[arg(long, value_enum, default_value = "pages")]
    pub mode: crate::emulator::web_load::WebLoadMode,
    /// Browsers at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds to keep going.
    #[arg(long, default_value = "20", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Seconds to wait for one answer.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct PostLoadArgs {
    /// The print key's URL, e.g. http://127.0.0.1:5002/printkey/SECRET.
    pub url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 50)]
    pub count: usize,
    /// Bodies to send in turn: TYPE=FILE (e.g. image/jpeg=photo.jpg,
    /// text/html=page.html). Default: a short HTML message.
    #[arg(long = "body", value_name = "TYPE=FILE")]
    pub bodies: Vec<String>,
    /// Seconds to wait for one answer.
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct PrinterArgs {
    /// The printer file (`<address>.printer`, as `sirius fake printer` writes).
    pub file: PathBuf,
    /// The server's bridge endpoint, e.g. ws://127.0.0.1:5002/api/v1/connection.
    pub url: String,
    /// Where printed pages are written, as `{command_id}-{n}.png`.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Seconds between two key requests while the printer has no key.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    pub key_interval: Duration,
    /// Seconds between two heartbeats.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub heartbeat_interval: Duration,
    /// The bridge's address (16 hex digits); random by default.
    #[arg(long = "bridge", value_name = "ADDR", value_parser = parse_bridge)]
    pub bridge: Option<BridgeAddress>,
    /// Answer print commands with this return code instead of 0 (e.g. 0x30
    /// for busy); no did_print follows.
    #[arg(long, value_name = "N", value_parser = parse_code)]
    pub answer_code: Option<u32>,
    /// Never answer print commands (to test delivery timeouts).
    #[arg(long, conflicts_with = "answer_code")]
    pub never_answer: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The server's bridge endpoint, e.g. ws://127.0.0.1:5002/api/v1/connection.
    pub url: String,
    /// How many bridge connections.
    #[arg(long, value_name = "N")]
    pub bridges: usize,
    /// How many printers behind each bridge.
    #[arg(long, value_name = "M")]
    pub printers_per_bridge: usize,
    /// How long the run lasts, in seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Open the connections evenly over this many seconds.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_seconds_or_zero)]
    pub ramp: Duration,
    /// Seconds between two heartbeats of one printer.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub heartbeat_interval: Duration,
    /// Send heartbeats as fast as the connections take them.
    #[arg(long)]
    pub flood: bool,
    /// A claimed code: every printer gets an address with its hardware xor,
    /// so the server answers their key requests.
    #[arg(long, value_name = "CODE", value_parser = parse_claim_code)]
    pub claim_code: Option<ClaimCode>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    match parse_seconds_or_zero(s)? {
        d if d.is_zero() => Err("must be more than 0 seconds".into()),
        d => Ok(d),
    }
}

fn parse_seconds_or_zero(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds (like 10 or 0.05)"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is not a usable number of seconds"))
}

fn parse_bridge(s: &str) -> Result<BridgeAddress, String> {
    BridgeAddress::parse(s).map_err(|e| e.to_string())
}

fn parse_code(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a return code (a number like 48 or 0x30)"))
}

fn parse_claim_code(s: &str) -> Result<ClaimCode, String> {
    ClaimCode::parse(s).map_err(|e| e.to_string())
}

/// Runs an `emulate` subcommand on its own tokio runtime.
pub fn run(cmd: Emulate, json: bool) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    match cmd {
        Emulate::Printer(args) => runtime.block_on(printer(args, json)),
        Emulate::Load(args) => runtime.block_on(load(args, json)),
        Emulate::PostLoad(args) => runtime.block_on(post_load(args, json)),
        Emulate::Web(args) => runtime.block_on(web(args, json)),
    }
}

async fn web(args: WebArgs, json: bool) -> anyhow::Result<Outcome> {
    let report =
        crate::emulator::web_load::run_web_load(crate::emulator::web_load::WebLoadOptions {
            url: args.url,
            username: args.user,
            password: args.password,
            mode: args.mode,
            concurrency: args.concurrency,
            duration: args.duration,
            timeout: args.timeout,
        })
        .await?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    let ok_status = |s: &u16| match args.mode {
        crate::emulator::web_load::WebLoadMode::Logins => *s == 303,
        _ => *s == 200,
    };
    let all_ok = report.transport_errors == 0 && report.by_status.keys().all(ok_status);
    Ok(Outcome::from_invalid(!all_ok))
}

async fn post_load(args: PostLoadArgs, json: bool) -> anyhow::Result<Outcome> {
    let mut bodies = Vec::new();
    for spec in &args.bodies {
        let (ctype, file) = spec
            .split_once('=')
            .with_context(|| format!("--body {spec:?}: expected TYPE=FILE"))?;
        let bytes = std::fs::read(file).with_context(|| format!("could not read {file}"))?;
        bodies.push((ctype.to_string(), bytes));
    }
    if bodies.is_empty() {
        bodies.push((
            "text/html".to_string(),
            b"<h1>Load test</h1><p>One of many messages sent at once.</p><ul><li>one</li><li>two</li></ul>".to_vec(),
        ));
    }
    let report = crate::emulator::posts::run_post_load(crate::emulator::posts::PostLoadOptions {
        url: args.url,
        concurrency: args.concurrency,
        count: args.count,
        bodies,
        timeout: args.timeout,
    })
    .await?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    let all_ok = report.transport_errors == 0 && report.by_status.keys().all(|s| *s == 200);
    Ok(Outcome::from_invalid(!all_ok))
}

async fn printer(args: PrinterArgs, json: bool) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&args.file).with_context(|| {
        format!(
            "could not read the printer file {} (make one with `sirius fake printer`)",
            args.file.display()
        )
    })?;
    let identity = PrinterIdentity::parse(&text)
        .with_context(|| format!("{} is not a valid printer file", args.file.display()))?;
    let mut opts = PrinterOptions::new(args.url, args.out);
    opts.key_interval = args.key_interval;
    opts.heartbeat_interval = args.heartbeat_interval;
    opts.bridge_address = Some(
        args.bridge
            .unwrap_or_else(crate::emulator::wire::process_bridge_address),
    );
    opts.answer_code = args.answer_code;
    opts.never_answer = args.never_answer;

    let bridge = opts.bridge_address.expect("set above");
    if json {
        println!(
            "{}",
            json!({
                "event": "starting",
                "bridge_address": bridge.to_string(),
                "device_address": identity.address.to_string(),
                "hardware_xor": identity.hardware_xor().value(),
                "claim_code": identity.claim_code().to_string(),
                "url": opts.url,
            })
        );
    } else {
        println!(
            "printer {} (claim code {}) behind bridge {}, connecting to {}; Ctrl-C stops",
            identity.address,
            identity.claim_code(),
            bridge,
            opts.url
        );
    }

    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<EmulatorEvent>();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut emulator = tokio::spawn(run_printer(identity, opts, Some(events_tx), stop));
    let print = |event: &EmulatorEvent| {
        if json {
            println!("{}", event.to_json());
        } else {
            println!("{event}");
        }
    };
    loop {
        tokio::select! {
            Some(event) = events.recv() => print(&event),
            result = &mut emulator => {
                while let Ok(event) = events.try_recv() {
                    print(&event);
                }
                result.context("the emulator crashed")??;
                return Ok(Outcome::AllValid);
            }
            signal = tokio::signal::ctrl_c() => {
                signal.context("could not listen for Ctrl-C")?;
                let _ = stop_tx.send(true);
            }
        }
    }
}

async fn load(args: LoadArgs, json: bool) -> anyhow::Result<Outcome> {
    let mut opts = LoadOptions::new(
        args.url,
        args.bridges,
        args.printers_per_bridge,
        args.duration,
    );
    opts.ramp = args.ramp;
    opts.heartbeat_interval = args.heartbeat_interval;
    opts.flood = args.flood;
    opts.claim_xor = args.claim_code.map(|c| c.hardware_xor());
    let report = run_load(opts).await?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(Outcome::AllValid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Emulate,
    }

    #[test]
    fn parses_fractional_seconds_and_codes() {
        let cli = Cli::try_parse_from([
            "x",
            "printer",
            "a.printer",
            "ws://127.0.0.1:5002/api/v1/connection",
            "--key-interval",
            "0.05",
            "--answer-code",
            "0x30",
            "--bridge",
            "000D6F0002FF7A91",
        ])
        .unwrap();
        let Emulate::Printer(args) = cli.cmd else {
            panic!()
        };
        assert_eq!(args.key_interval, Duration::from_millis(50));
        assert_eq!(args.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(args.answer_code, Some(0x30));
        assert_eq!(args.out, PathBuf::from("."));
        assert_eq!(args.bridge.unwrap().to_string(), "000d6f0002ff7a91");

        let cli = Cli::try_parse_from([
            "x",
            "load",
            "ws://h/",
            "--bridges",
            "3",
            "--printers-per-bridge",
            "2",
            "--duration",
            "1.5",
            "--claim-code",
            "n5ry-p6x6-kth7-7hc4",
        ])
        .unwrap();
        let Emulate::Load(args) = cli.cmd else {
            panic!()
        };
        assert_eq!(args.duration, Duration::from_millis(1500));
        assert_eq!(args.ramp, Duration::ZERO);
        assert_eq!(args.claim_code.unwrap().hardware_xor().value(), 7586148);

        for bad in [
            vec![
                "x",
                "load",
                "ws://h/",
                "--bridges",
                "1",
                "--printers-per-bridge",
                "1",
            ],
            vec![
                "x",
                "load",
                "ws://h/",
                "--bridges",
                "1",
                "--printers-per-bridge",
                "1",
                "--duration",
                "0",
            ],
            vec![
                "x",
                "printer",
                "f",
                "ws://h/",
                "--heartbeat-interval",
                "soon",
            ],
            vec![
                "x",
                "printer",
                "f",
                "ws://h/",
                "--answer-code",
                "1",
                "--never-answer",
            ],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }
}
