//! `sirius inspect`: look inside claim codes, addresses, bridge messages and
//! printer payloads.
//!
//! Every tool answers every input — one JSON object per line with `--json`,
//! a line of text otherwise — and exits 1 if any input was invalid.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Outcome, read_input};
use crate::protocol::commands::decode_device_command;
use crate::protocol::{ClaimCode, ClaimSecret, DeviceAddress, HardwareXor, decode_text};
use crate::raster::page_to_png;

#[derive(Debug, Subcommand)]
pub enum Inspect {
    /// Decode claim codes (arguments, or one per line on standard input), or
    /// encode one with --xor and --secret.
    ClaimCode(ClaimCodeArgs),
    /// The hardware xor of device addresses (arguments, or standard input).
    Address {
        /// 16 hex digits each; `-` reads them from standard input.
        addresses: Vec<String>,
    },
    /// Decode bridge messages: a file holding one JSON message (pretty or
    /// not), or one message per line.
    Message {
        /// Files to read; `-` (the default) is standard input.
        files: Vec<String>,
    },
    /// Decode printer payloads: a DeviceCommand JSON, or bare base64.
    Payload(PayloadArgs),
}

#[derive(Debug, Args)]
pub struct ClaimCodeArgs {
    /// Claim codes like n5ry-p6x6-kth7-7hc4; `-` reads them from standard input.
    pub codes: Vec<String>,
    /// Encode: the printer's hardware xor (decimal, or hex with 0x).
    #[arg(long, requires = "secret", conflicts_with = "codes")]
    pub xor: Option<String>,
    /// Encode: the 40-bit secret as hex (up to 10 digits).
    #[arg(long, requires = "xor")]
    pub secret: Option<String>,
}

#[derive(Debug, Args)]
pub struct PayloadArgs {
    /// Files to read; `-` (the default) is standard input.
    pub files: Vec<String>,
    /// Write each page as a PNG into this folder, named FILEID-N.png.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// Lay pages out this many pixels wide (a real printer: 384).
    #[arg(long, default_value_t = crate::protocol::payload::DEFAULT_DECODE_WIDTH)]
    pub width: u32,
}

pub fn run(cmd: Inspect, json: bool) -> anyhow::Result<Outcome> {
    let mut out = Printer::new(json);
    match cmd {
        Inspect::ClaimCode(args) => claim_codes(args, &mut out)?,
        Inspect::Address { addresses } => {
            for input in expand_args(addresses)? {
                match DeviceAddress::parse(input.trim()) {
                    Ok(a) => out.ok(
                        json!({"device_address": a.to_string(), "hardware_xor": a.hardware_xor().value()}),
                        format!("{a}  hardware xor {}", a.hardware_xor()),
                    )?,
                    Err(e) => out.invalid(&input, &e.to_string())?,
                }
            }
        }
        Inspect::Message { files } => {
            for file in default_stdin(files) {
                for message in split_messages(&read_text(&file)?) {
                    let event = decode_text(&message);
                    let value = event.to_json();
                    let text = human_line(&value);
                    if event.kind() == "malformed" {
                        out.any_invalid = true;
                    }
                    out.line(&value, &text)?;
                }
            }
        }
        Inspect::Payload(args) => payloads(args, &mut out)?,
    }
    Ok(Outcome::from_invalid(out.any_invalid))
}

fn claim_codes(args: ClaimCodeArgs, out: &mut Printer) -> anyhow::Result<()> {
    if let (Some(xor), Some(secret)) = (&args.xor, &args.secret) {
        let input = format!("--xor {xor} --secret {secret}");
        let parsed_xor = parse_number(xor)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(HardwareXor::new);
        let parsed_secret = ClaimSecret::parse_hex(secret);
        match (parsed_xor, parsed_secret) {
            (Some(x), Some(s)) => claim_code_answer(ClaimCode::new(x, s), out)?,
            (None, _) => out.invalid(
                &input,
                "the hardware xor must be a number from 0 to 16777215 (24 bits)",
            )?,
            (_, None) => out.invalid(
                &input,
                "the secret must be 1 to 10 hex digits (40 bits), like eb1ba696a0",
            )?,
        }
        return Ok(());
    }
    for input in expand_args(args.codes)? {
        match ClaimCode::parse(&input) {
            Ok(code) => claim_code_answer(code, out)?,
            Err(e) => out.invalid(&input, &e.to_string())?,
        }
    }
    Ok(())
}

fn claim_code_answer(code: ClaimCode, out: &mut Printer) -> anyhow::Result<()> {
    out.ok(
        json!({
            "code": code.to_string(),
            "hardware_xor": code.hardware_xor().value(),
            "secret": code.secret().to_string(),
            "link_key": code.link_key().to_base64(),
        }),
        format!(
            "{code}  hardware xor {}  secret {}  link key {}",
            code.hardware_xor(),
            code.secret(),
            code.link_key()
        ),
    )
}

fn payloads(args: PayloadArgs, out: &mut Printer) -> anyhow::Result<()> {
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    for file in default_stdin(args.files) {
        for input in split_messages(&read_text(&file)?) {
            match decode_device_command(&input, args.width) {
                Ok(cmd) => {
                    let p = &cmd.payload;
                    let mut written = Vec::new();
                    if let Some(dir) = &args.out {
                        for (i, page) in p.pages.iter().enumerate() {
                            let path = dir.join(page_file_name(p.file_id, i));
                            std::fs::write(&path, page_to_png(page))
                                .with_context(|| format!("could not write {}", path.display()))?;
                            written.push(path.display().to_string());
                        }
                    }
                    let pages: Vec<Value> = p
                        .pages
                        .iter()
                        .map(|pg| json!({"width": pg.width(), "height": pg.height()}))
                        .collect();
                    let sizes: Vec<String> = p
                        .pages
                        .iter()
                        .map(|pg| format!("{} × {}", pg.width(), pg.height()))
                        .collect();
                    let mut text = format!(
                        "{}  file id {}  {} page(s): {}",
                        p.command,
                        p.file_id,
                        p.pages.len(),
                        sizes.join(", ")
                    );
                    if !written.is_empty() {
                        text.push_str(&format!("  → {}", written.join(", ")));
                    }
                    out.ok(
                        json!({"command": p.command.name(), "file_id": p.file_id, "pages": pages}),
                        text,
                    )?;
                }
                Err(e) => out.invalid(&shorten(&input), &e.to_string())?,
            }
        }
    }
    Ok(())
}

/// The file name of page `index` (0-based) of a payload: `FILEID-N.png`,
/// N from 1. The emulator names its pages the same way.
pub fn page_file_name(file_id: u32, index: usize) -> String {
    format!("{file_id}-{}.png", index + 1)
}

/// Writes answers and remembers whether any input was invalid.
struct Printer {
    json: bool,
    any_invalid: bool,
    stdout: std::io::StdoutLock<'static>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Printer {
            json,
            any_invalid: false,
            stdout: std::io::stdout().lock(),
        }
    }

    fn line(&mut self, value: &Value, text: &str) -> anyhow::Result<()> {
        if self.json {
            writeln!(self.stdout, "{value}")?;
        } else {
            writeln!(self.stdout, "{text}")?;
        }
        Ok(())
    }

    fn ok(&mut self, value: Value, text: String) -> anyhow::Result<()> {
        self.line(&value, &text)
    }

    fn invalid(&mut self, input: &str, error: &str) -> anyhow::Result<()> {
        self.any_invalid = true;
        self.line(
            &json!({"input": input, "error": error}),
            &format!("{input}: {error}"),
        )
    }
}

/// Arguments, where `-` (or no arguments at all) means one input per line
/// of standard input.
fn expand_args(args: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for arg in default_stdin(args) {
        if arg == "-" {
            let text = read_text("-")?;
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
        } else {
            out.push(arg);
        }
    }
    Ok(out)
}

fn default_stdin(args: Vec<String>) -> Vec<String> {
    if args.is_empty() {
        vec!["-".to_string()]
    } else {
        args
    }
}

fn read_text(path: &str) -> anyhow::Result<String> {
    let bytes = read_input(path)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A whole input that is one JSON value (pretty-printed or not) is one
/// message; otherwise every line is one (a blank line in the middle is an
/// input too, and is reported).
fn split_messages(text: &str) -> Vec<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok() {
        return vec![trimmed.to_string()];
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect()
}

fn human_line(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    let mut parts = vec![
        obj.get("kind")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    ];
    for (k, val) in obj.iter().filter(|(k, _)| *k != "kind") {
        let shown = match val {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        parts.push(format!("{k}={shown}"));
    }
    parts.join("  ")
}

fn parse_number(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// Long inputs are quoted by their start in error lines.
fn shorten(input: &str) -> String {
    match input.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &input[..i]),
        None => input.to_string(),
    }
}
