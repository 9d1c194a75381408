//! Drawing pages: the app's minijinja templates (embedded, overridable from
//! `--templates DIR`) and its static files (embedded, cached by hash).

use std::path::PathBuf;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use rust_embed::RustEmbed;
use serde_json::{Value, json};

use super::auth::Visitor;
use crate::web::AppState;

#[derive(RustEmbed)]
#[folder = "assets/templates/app"]
struct Embedded;

#[derive(RustEmbed)]
#[folder = "assets/static"]
struct Static;

/// The app's template environment.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Templates from `dir` where it has a file of the same name, the
    /// embedded ones otherwise.
    pub fn new(dir: Option<PathBuf>) -> Templates {
        let mut env = Environment::new();
        env.set_loader(move |name| {
            if name.contains("..") || name.contains('/') {
                return Ok(None);
            }
            if let Some(dir) = &dir {
                let path = dir.join(name);
                if path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::TemplateNotFound,
                            format!("could not read {}: {e}", path.display()),
                        )
                    });
                }
            }
            Ok(Embedded::get(name).map(|f| String::from_utf8_lossy(&f.data).into_owned()))
        });
        env.add_filter("ago", ago);
        env.add_filter("datetime", datetime);
        env.add_function("asset", asset_url);
        Templates { env }
    }

    /// Renders `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, minijinja::Error> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(minijinja::value::Serde(ctx)))
    }
}

/// A page: `name` rendered with `ctx` plus what every page knows (who is
/// signed in, the form token, the sign-up policy, whether Twitter sign-in
/// is on), status `status`.
pub fn page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    name: &str,
    mut ctx: Value,
) -> Response {
    if let Value::Object(map) = &mut ctx {
        let me = visitor.signed.as_ref().map(
            |s| json!({"id": s.user.id, "username": s.user.username, "is_admin": s.user.is_admin}),
        );
        map.entry("me").or_insert(me.into());
        map.entry("csrf")
            .or_insert(visitor.csrf_token().unwrap_or("").into());
        map.entry("signup")
            .or_insert(state.app.config.signup.as_str().into());
        map.entry("version")
            .or_insert(env!("CARGO_PKG_VERSION").into());
        map.entry("twitter")
            .or_insert(state.app.twitter.is_some().into());
    }
    match state.app.templates.render(name, &ctx) {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            );
            r
        }
        Err(e) => {
            tracing::error!("the page {name} could not be drawn: {e:#}");
            super::pages::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be drawn; see the server log.",
            )
            .into_response()
        }
    }
}

/// The URL of a static file, with its content hash so browsers may keep
/// it for a year.
fn asset_url(name: &str) -> String {
    match Static::get(name) {
        Some(f) => format!("/static/{name}?v={}", &hex(&f.metadata.sha256_hash())[..12]),
        None => format!("/static/{name}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(serde::Deserialize)]
pub struct Version {
    v: Option<String>,
}

/// `/static/NAME`: an embedded file, with an ETag; cached for a year when
/// asked for by its hashed URL.
pub async fn static_file(
    Path(name): Path<String>,
    Query(q): Query<Version>,
    headers: HeaderMap,
) -> Response {
    let Some(file) = Static::get(&name) else {
        return super::pages::plain(StatusCode::NOT_FOUND, "No such file.").into_response();
    };
    let hash = hex(&file.metadata.sha256_hash());
    let etag = format!("\"{}\"", &hash[..16]);
    let cache = if q
        .v
        .as_deref()
        .is_some_and(|v| hash.starts_with(v) && !v.is_empty())
    {
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    };
    let mime = match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, mime)], file.data.into_owned()).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    r
}

/// Unix seconds as a UTC date and time.
fn datetime(secs: Option<i64>) -> String {
    match secs.and_then(|s| jiff::Timestamp::from_second(s).ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        None => "never".into(),
    }
}

/// Unix seconds as "just now", "5 min ago", "3 days ago"; future times
/// as "in 6 days".
fn ago(secs: Option<i64>) -> String {
    let Some(s) = secs else {
        return "never".into();
    };
    let d = crate::bridge::hub::unix_now() - s;
    let (n, future) = if d < 0 { (-d, true) } else { (d, false) };
    let text = match n {
        0..=9 if !future => return "just now".into(),
        0..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=86399 => format!("{} h", n / 3600),
        _ => format!("{} days", n / 86400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}
