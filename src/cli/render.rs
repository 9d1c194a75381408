//! `sirius render`: HTML, text and images → pages → the DeviceCommand the
//! server would send, plus a 1-bit preview of exactly what the printer will
//! print. HTML and text (and images given with `--from`) go through the
//! message template and Blitz, exactly as the server renders messages;
//! `--bare` renders an HTML document as given; an `--image` alone is the
//! picture as a page (scaled, padded, dithered).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::{Outcome, read_input};
use crate::compose::{Content, Envelope, FetchPolicy, MessageFont, RenderConfig, Renderer};
use crate::protocol::commands::device_command_json;
use crate::protocol::payload::encode_payload;
use crate::protocol::{BridgeAddress, CommandKind, DeviceAddress};
use crate::raster::{
    Dither, MAX_HEIGHT, Page, decode_image, page_from_image, page_to_png, raw_page_from_image,
};

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// An image (PNG, JPEG, GIF or WebP; `-` is standard input). Repeat for
    /// commands that carry several.
    #[arg(long = "image", value_name = "FILE", required_unless_present_any = ["html", "text"])]
    pub images: Vec<String>,
    /// An HTML file (`-` is standard input), rendered through the message
    /// template (or as given with `--bare`).
    #[arg(long, value_name = "FILE")]
    pub html: Option<String>,
    /// Plain text, rendered through the message template.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// The sender shown in the header (default "Sirius"). With --from, an
    /// --image becomes a message with the header too.
    #[arg(long = "from", value_name = "NAME")]
    pub from: Option<String>,
    /// Render the HTML document as given, without the message template.
    #[arg(long, requires = "html")]
    pub bare: bool,
    /// The time in the header: RFC 3339 or unix seconds (default now).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<jiff::Timestamp>,
    /// The time zone of the header, e.g. Europe/London (default the system's).
    #[arg(long, value_name = "NAME", value_parser = parse_time_zone)]
    pub time_zone: Option<jiff::tz::TimeZone>,
    /// The typeface of the message body: sans (DejaVu Sans, the default),
    /// serif, mono, or the name of a family from --fonts (an unknown name
    /// prints in sans, with a warning).
    #[arg(long, value_name = "FONT", default_value = "sans")]
    pub font: MessageFont,
    /// A folder of TTF/OTF/TTC fonts to use besides the embedded ones
    /// (a file that cannot be read is a warning).
    #[arg(long, env = "SIRIUS_FONTS", value_name = "DIR")]
    pub fonts: Option<PathBuf>,
    /// Which remote pictures in HTML may be fetched.
    #[arg(long, value_name = "POLICY", default_value = "public")]
    pub fetch_images: FetchPolicy,
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
    #[arg(long, conflicts_with_all = ["threshold", "html", "text", "from"])]
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

fn parse_time(s: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(secs) = s.parse::<i64>() {
        return jiff::Timestamp::from_second(secs).map_err(|e| e.to_string());
    }
    s.parse::<jiff::Timestamp>()
        .map_err(|e| format!("{s:?} is neither RFC 3339 nor unix seconds: {e}"))
}

fn parse_time_zone(s: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(s).map_err(|e| format!("unknown time zone {s:?}: {e}"))
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
    let report = |input: &str, e: &anyhow::Error| {
        if json {
            println!("{}", json!({"input": input, "error": format!("{e:#}")}));
        } else {
            eprintln!("{input}: {e:#}");
        }
    };
    let templated = args.html.is_some() || args.text.is_some() || args.from.is_some();
    if templated {
        let renderer = Renderer::new(RenderConfig {
            fetch_images: args.fetch_images,
            dither,
            fonts_dir: args.fonts.clone(),
            ..Default::default()
        });
        if !renderer
            .font_families()
            .iter()
            .any(|f| f.font == args.font || f.name.eq_ignore_ascii_case(args.font.as_str()))
        {
            let known: Vec<_> = renderer
                .font_families()
                .into_iter()
                .map(|f| f.font.to_string())
                .collect();
            eprintln!(
                "warning: no font family {:?}; printing in sans (known: {})",
                args.font.as_str(),
                known.join(", ")
            );
        }
        let envelope = Envelope {
            sender: args.from.clone().unwrap_or_else(|| "Sirius".into()),
            at: args.at.unwrap_or_else(jiff::Timestamp::now),
            time_zone: args
                .time_zone
                .clone()
                .unwrap_or_else(jiff::tz::TimeZone::system),
            font: args.font.clone(),
            dither: None,
        };
        let mut contents: Vec<(String, anyhow::Result<Content>)> = Vec::new();
        if let Some(path) = &args.html {
            let html = read_input(path).and_then(|b| {
                String::from_utf8(b).map_err(|_| anyhow::anyhow!("{path} is not UTF-8 text"))
            });
            contents.push((path.clone(), html.map(Content::Html)));
        }
        if let Some(text) = &args.text {
            contents.push(("--text".into(), Ok(Content::Text(text.clone()))));
        }
        for input in &args.images {
            contents.push((input.clone(), read_input(input).map(Content::Image)));
        }
        for (input, content) in contents {
            let rendered = content.and_then(|c| {
                let r = match (&c, args.bare) {
                    (Content::Html(h), true) => renderer.render_document(h),
                    _ => renderer.render_message_blocking(&c, &envelope),
                };
                Ok(r?)
            });
            match rendered {
                Ok(r) => {
                    if r.truncated {
                        eprintln!("warning: {input} is taller than 10,000 rows; it was cut");
                    }
                    pages.push(r.page);
                }
                Err(e) => {
                    failed = true;
                    report(&input, &e);
                }
            }
        }
    }
    for input in args.images.iter().filter(|_| !templated) {
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
                report(input, &e);
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
    // A one-page command given several contents prints them as one page,
    // top to bottom (html, text, images), cut at 10,000 rows.
    if pages.len() > 1 && args.command.image_roles().len() == 1 {
        let stacked = Page::stack(&pages).context("pages of different widths cannot be stacked")?;
        let stacked = if stacked.height() > MAX_HEIGHT {
            eprintln!("warning: the pages together are taller than 10,000 rows; cut");
            let src = stacked;
            Page::from_fn(src.width(), MAX_HEIGHT, |x, y| src.is_black(x, y))?
        } else {
            stacked
        };
        pages = vec![stacked];
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
