//! `sirius render`: images → pages → the DeviceCommand the server would
//! send, plus a 1-bit preview of exactly what the printer will print.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::{Outcome, read_input};
use crate::protocol::commands::device_command_json;
use crate::protocol::payload::encode_payload;
use crate::protocol::{BridgeAddress, CommandKind, DeviceAddress};
use crate::raster::{
    Dither, Page, decode_image, page_from_image, page_to_png, raw_page_from_image,
};

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// An image (PNG, JPEG, GIF or WebP; `-` is standard input). Repeat for
    /// commands that carry several.
    #[arg(long = "image", value_name = "FILE", required = true)]
    pub images: Vec<String>,
    /// The print command, as named in the protocol.
    #[arg(long, value_name = "KIND", default_value = "set_delivery_and_print", value_parser = parse_command)]
    pub command: CommandKind,
    /// The command id (and file id); never 0.
    #[arg(long, default_value_t = 1, value_parser = parse_command_id)]
    pub command_id: u32,
    /// The printer's address, as the bridge announced it.
    #[arg(long, value_name = "ADDR", default_value = "0000000000000000")]
    pub device: String,
    /// The bridge's address, as it announced it.
    #[arg(long, value_name = "ADDR", default_value = "0000000000000000")]
    pub bridge: String,
    /// Plain threshold at 50 % grey instead of Floyd–Steinberg dithering.
    #[arg(long)]
    pub threshold: bool,
    /// Encode pure black-and-white images exactly as given, whatever their
    /// width: no scaling, padding or dithering; any grey pixel is an error.
    #[arg(long, conflicts_with = "threshold")]
    pub raw: bool,
    /// Write the 1-bit preview here (several pages are stacked top to bottom).
    #[arg(short = 'o', long = "output", value_name = "PNG")]
    pub output: Option<PathBuf>,
}

fn parse_command(s: &str) -> Result<CommandKind, String> {
    CommandKind::from_name(s).ok_or_else(|| {
        let names: Vec<_> = CommandKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown command {s:?}; one of: {}", names.join(", "))
    })
}

fn parse_command_id(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err(
            "command ids start at 1: a printer answers id 0 with filesystem_invalid_id (0x90)"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a number from 1 to 4294967295")),
    }
}

pub fn run(args: RenderArgs, json: bool) -> anyhow::Result<Outcome> {
    let dither = if args.threshold {
        Dither::Threshold
    } else {
        Dither::FloydSteinberg
    };
    let mut pages = Vec::new();
    let mut failed = false;
    for input in &args.images {
        match page_for(input, args.raw, dither) {
            Ok((page, truncated)) => {
                if truncated {
                    eprintln!(
                        "warning: {input} is taller than 10,000 rows once scaled; it was cut"
                    );
                }
                pages.push(page);
            }
            Err(e) => {
                failed = true;
                if json {
                    println!("{}", json!({"input": input, "error": format!("{e:#}")}));
                } else {
                    eprintln!("{input}: {e:#}");
                }
            }
        }
    }
    if failed {
        return Ok(Outcome::SomeInvalid);
    }
    for (flag, value, valid) in [
        (
            "--bridge",
            &args.bridge,
            BridgeAddress::parse(&args.bridge).is_ok(),
        ),
        (
            "--device",
            &args.device,
            DeviceAddress::parse(&args.device).is_ok(),
        ),
    ] {
        if !valid {
            eprintln!(
                "warning: {flag} {value:?} is not 16 hex digits; a real bridge only takes the address it announced"
            );
        }
    }
    let payload = match encode_payload(args.command, args.command_id, &pages) {
        Ok(p) => p,
        Err(e) => {
            if json {
                println!("{}", json!({"input": args.images, "error": e.to_string()}));
            } else {
                eprintln!("{e}");
            }
            return Ok(Outcome::SomeInvalid);
        }
    };
    if let Some(path) = &args.output {
        let preview = Page::stack(&pages).context("pages of different widths cannot be stacked")?;
        std::fs::write(path, page_to_png(&preview))
            .with_context(|| format!("could not write the preview to {}", path.display()))?;
    }
    let command = device_command_json(&args.bridge, &args.device, args.command_id, &payload);
    if json {
        println!("{command}");
    } else {
        println!("{}", serde_json::to_string_pretty(&command)?);
        for (page, role) in pages.iter().zip(args.command.image_roles()) {
            eprintln!("{role}: {} × {} pixels", page.width(), page.height());
        }
        eprintln!(
            "{}: {} bytes of payload{}",
            args.command,
            payload.len(),
            args.output
                .as_ref()
                .map(|p| format!(", preview in {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(Outcome::AllValid)
}

fn page_for(input: &str, raw: bool, dither: Dither) -> anyhow::Result<(Page, bool)> {
    let bytes = read_input(input)?;
    let image = decode_image(&bytes)?;
    if raw {
        Ok((raw_page_from_image(&image)?, false))
    } else {
        let out = page_from_image(&image, dither);
        Ok((out.page, out.truncated))
    }
}
