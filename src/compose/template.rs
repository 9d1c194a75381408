//! The message template: what a message looks like on paper, as HTML.
//!
//! `assets/templates/message.html` (minijinja, embedded) lays a message out
//! on a white page 384 px wide: 1 px top margin, 80 px bottom margin so the
//! end clears the tear bar, ~30 px sans body, and a centred bold uppercase
//! header line `HH:MM | DD-MON-YYYY | SENDER` (18 px) in the envelope's time
//! zone. The body's typeface is the envelope's [`MessageFont`]; the header
//! is always DejaVu Sans Bold. Text is HTML-escaped and keeps its line breaks (`pre-wrap`), long
//! words wrap anywhere; HTML goes in as the body; a picture is full width.
//! A folder given as `templates_dir` may hold its own `message.html`, which
//! then wins over the embedded one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use minijinja::{Environment, context};

use super::RenderError;

/// The embedded message template.
const MESSAGE_TEMPLATE: &str = include_str!("../../assets/templates/message.html");
const MESSAGE_NAME: &str = "message.html";

/// Who sent a message and when (the header line of the printed page), and
/// the typeface of its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub sender: String,
    pub at: jiff::Timestamp,
    pub time_zone: jiff::tz::TimeZone,
    /// The body's typeface (text, and HTML that names none of its own).
    pub font: MessageFont,
    /// How grey becomes black and white on this page: dithered (photos)
    /// or a threshold (drawings, screenshots). `None`: the server's
    /// default (`--dither`).
    pub dither: Option<crate::raster::convert::Dither>,
}

/// The typeface a message is printed in: one of the embedded DejaVu
/// families, or a family added with `--fonts`. Written as `sans`, `serif`,
/// `mono` or the family's name (print keys' `?font=`, the compose page, the
/// API); a name the renderer does not know prints in sans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum MessageFont {
    /// DejaVu Sans, the default.
    #[default]
    Sans,
    /// DejaVu Serif.
    Serif,
    /// DejaVu Sans Mono.
    Mono,
    /// A family by name, e.g. one added with `--fonts`.
    Family(String),
}

impl MessageFont {
    /// Reads a choice: `sans`, `serif`, `mono` (or the CSS names
    /// `sans-serif`, `monospace`, and the DejaVu family names), any case;
    /// anything else is a family name. An empty string is sans.
    pub fn parse(s: &str) -> MessageFont {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "" | "sans" | "sans-serif" | "dejavu sans" => MessageFont::Sans,
            "serif" | "dejavu serif" => MessageFont::Serif,
            "mono" | "monospace" | "dejavu sans mono" => MessageFont::Mono,
            _ => MessageFont::Family(s.to_owned()),
        }
    }

    /// The choice as written: `sans`, `serif`, `mono` or the family name.
    pub fn as_str(&self) -> &str {
        match self {
            MessageFont::Sans => "sans",
            MessageFont::Serif => "serif",
            MessageFont::Mono => "mono",
            MessageFont::Family(name) => name,
        }
    }
}

impl std::str::FromStr for MessageFont {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(MessageFont::parse(s))
    }
}

impl std::fmt::Display for MessageFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CSS `font-family` value for a family name: a quoted string with
/// everything but letters, digits, spaces, `-` and `_` escaped, so no name
/// can end the string or the `<style>` element.
pub(crate) fn css_family(name: &str) -> String {
    let mut out = String::from("\"");
    for c in name.chars() {
        if c.is_alphanumeric() || c == ' ' || c == '-' || c == '_' {
            out.push(c);
        } else {
            out.push_str(&format!("\\{:x} ", c as u32));
        }
    }
    out.push('"');
    out
}

impl Envelope {
    /// An envelope stamped now, in the system's time zone.
    pub fn now(sender: impl Into<String>) -> Envelope {
        Envelope {
            sender: sender.into(),
            at: jiff::Timestamp::now(),
            time_zone: jiff::tz::TimeZone::system(),
            font: MessageFont::Sans,
            dither: None,
        }
    }

    /// The header line, e.g. `09:05 | 24-NOV-2026 | KEY ABCD`.
    pub fn header(&self) -> String {
        let zoned = self.at.to_zoned_datetime(self.time_zone.clone());
        let sender = self.sender.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("{} | {}", zoned.strftime("%H:%M | %d-%b-%Y"), sender).to_uppercase()
    }
}

/// What goes into the template's body.
pub(crate) enum Body<'a> {
    Html(&'a str),
    Text(&'a str),
    /// A picture, as a URL (a `data:` URI).
    Image(&'a str),
}

fn embedded_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_template(MESSAGE_NAME, MESSAGE_TEMPLATE)
            .expect("the embedded message template parses");
        env
    })
}

/// Fills the message template. `font_family` is the body's CSS
/// `font-family` value, trusted (the renderer makes it from the envelope's
/// font). A `message.html` in `templates_dir`, when there is one, replaces
/// the embedded template.
pub(crate) fn render_message_html(
    body: Body<'_>,
    envelope: &Envelope,
    font_family: &str,
    templates_dir: Option<&Path>,
) -> Result<String, RenderError> {
    let (kind, html, text, image_src) = match body {
        Body::Html(h) => ("html", h, "", ""),
        Body::Text(t) => ("text", "", t, ""),
        Body::Image(src) => ("image", "", "", src),
    };
    let ctx = context! {
        header => envelope.header(),
        sender => &envelope.sender,
        font => envelope.font.as_str(),
        font_family => minijinja::Value::from_safe_string(font_family.to_owned()),
        kind => kind,
        html => html,
        text => text,
        image_src => image_src,
    };
    let template_err = |e: minijinja::Error| RenderError::Template(format!("{e:#}"));
    if let Some(source) = templates_dir.and_then(override_source) {
        let mut env = Environment::new();
        env.add_template_owned(MESSAGE_NAME, source)
            .map_err(template_err)?;
        return env
            .get_template(MESSAGE_NAME)
            .and_then(|t| t.render(ctx))
            .map_err(template_err);
    }
    embedded_env()
        .get_template(MESSAGE_NAME)
        .and_then(|t| t.render(ctx))
        .map_err(template_err)
}

fn override_source(dir: &Path) -> Option<String> {
    let path: PathBuf = dir.join(MESSAGE_NAME);
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(sender: &str) -> Envelope {
        Envelope {
            sender: sender.into(),
            at: "2026-11-24T09:05:00Z".parse().unwrap(),
            time_zone: jiff::tz::TimeZone::get("Europe/London").unwrap(),
            font: MessageFont::Sans,
            dither: None,
        }
    }

    const SANS: &str = "sans-serif";

    #[test]
    fn header_line() {
        assert_eq!(
            envelope("Key abcd").header(),
            "09:05 | 24-NOV-2026 | KEY ABCD"
        );
        let mut e = envelope("x");
        e.time_zone = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(e.header(), "18:05 | 24-NOV-2026 | X");
    }

    #[test]
    fn text_is_escaped_html_is_not() {
        let t = render_message_html(Body::Text("<b>hi</b>"), &envelope("a"), SANS, None).unwrap();
        assert!(t.contains("&lt;b&gt;hi&lt;"), "{t}");
        assert!(!t.contains("<b>"));
        let h = render_message_html(Body::Html("<b>hi</b>"), &envelope("a"), SANS, None).unwrap();
        assert!(h.contains("<b>hi</b>"));
        let s = render_message_html(Body::Text("x"), &envelope("<script>"), SANS, None).unwrap();
        assert!(s.contains("&lt;SCRIPT&gt;"));
    }

    #[test]
    fn a_folder_overrides_the_template() {
        let dir = std::env::temp_dir().join(format!("sirius-tpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("message.html"), "<p>{{ header }}</p>").unwrap();
        let out = render_message_html(Body::Text("x"), &envelope("a"), SANS, Some(&dir)).unwrap();
        assert_eq!(out, "<p>09:05 | 24-NOV-2026 | A</p>");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn font_choices_read_and_written() {
        assert_eq!(MessageFont::parse("sans"), MessageFont::Sans);
        assert_eq!(MessageFont::parse(""), MessageFont::Sans);
        assert_eq!(MessageFont::parse("Serif"), MessageFont::Serif);
        assert_eq!(MessageFont::parse("monospace"), MessageFont::Mono);
        assert_eq!(MessageFont::parse("DejaVu Sans Mono"), MessageFont::Mono);
        assert_eq!(
            MessageFont::parse(" Noto Sans CJK JP "),
            MessageFont::Family("Noto Sans CJK JP".into())
        );
        for f in ["sans", "serif", "mono", "Fira Code"] {
            assert_eq!(MessageFont::parse(f).as_str(), f);
        }
    }

    #[test]
    fn family_names_cannot_break_out_of_css() {
        assert_eq!(css_family("Fira Code"), "\"Fira Code\"");
        let evil = css_family("x\"; } </style><script>");
        assert!(
            !evil[1..evil.len() - 1].contains(['"', '<', '>', '}', ';']),
            "{evil}"
        );
        let html = render_message_html(
            Body::Text("hi"),
            &envelope("a"),
            &format!("{evil}, sans-serif"),
            None,
        )
        .unwrap();
        assert!(!html.contains("<script>"), "{html}");
    }
}
