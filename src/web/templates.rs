//! Templates, embedded in the binary (minijinja + rust-embed).

use std::sync::OnceLock;

use minijinja::Environment;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/templates"]
struct Templates;

/// The template environment, built once.
pub fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_loader(|name| {
            Ok(Templates::get(name).map(|f| String::from_utf8_lossy(&f.data).into_owned()))
        });
        env.add_filter("datetime", datetime);
        env.add_filter("ago", ago);
        env
    })
}

/// Unix seconds as a UTC date and time.
fn datetime(secs: Option<i64>) -> String {
    match secs.and_then(|s| jiff::Timestamp::from_second(s).ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => "never".into(),
    }
}

/// Unix seconds as "3 s ago", "5 min ago", …
fn ago(secs: Option<i64>) -> String {
    let Some(s) = secs else {
        return "never".into();
    };
    let d = (crate::bridge::hub::unix_now() - s).max(0);
    match d {
        0..=59 => format!("{d} s ago"),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=86399 => format!("{} h ago", d / 3600),
        _ => format!("{} days ago", d / 86400),
    }
}
