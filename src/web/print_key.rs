//! The print-key API: `/printkey/SECRET`, a secret URL that prints to one
//! printer — how the Little Printers phone app, IFTTT-style services and
//! scripts reach a printer.
//!
//! * `GET`: the printer's card, as JSON (`{"name", "owner", "status"}`) or,
//!   for a browser that prefers HTML, a page with API documentation.
//! * `POST ?from=NAME[&face=none]`: prints the body — `text/html`,
//!   `image/*` (sniffed), other `text/*`, or `application/json` with `html`
//!   or `text`. A render slot is taken before the body is read, and the
//!   body must arrive within 30 s (`HttpLimits::body_deadline`).
//! * `OPTIONS`: CORS preflight. Every answer carries
//!   `Access-Control-Allow-Origin: *`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde_json::{Value, json};

use super::{AppState, Body, json_response, templates};
use crate::bridge::hub::unix_now;
use crate::compose::{Admission, Content, RenderError};
use crate::printing::{PrintError, PrintOptions};

/// Largest body a print accepts.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// Prints per key per minute.
pub const RATE_PER_MINUTE: usize = 60;
/// Length of new secrets (at least 20).
pub const SECRET_LEN: usize = 24;

/// A new print-key secret: [a-z0-9] from the OS random generator, by
/// rejection sampling so every character is equally likely.
pub fn new_secret() -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(SECRET_LEN);
    let mut buf = [0u8; 64];
    while out.len() < SECRET_LEN {
        OsRng
            .try_fill_bytes(&mut buf)
            .expect("the operating system's random generator failed");
        for &b in &buf {
            if b < 252 && out.len() < SECRET_LEN {
                out.push(ALPHABET[(b % 36) as usize] as char);
            }
        }
    }
    out
}

fn looks_like_secret(s: &str) -> bool {
    (20..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Prints per key in the last minute.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<i64, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// Counts a print; `Err(wait)` when the key is over its limit.
    pub fn check(&self, key_id: i64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let q = w.entry(key_id).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            q.pop_front();
        }
        if q.len() >= RATE_PER_MINUTE {
            let wait = Duration::from_secs(60).saturating_sub(now.duration_since(q[0]));
            return Err(wait);
        }
        q.push_back(now);
        Ok(())
    }
}

fn cors(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

pub(super) fn message(status: StatusCode, text: &str) -> Response<Body> {
    json_response(status, &json!({ "message": text }))
}

/// Handles `/printkey/SECRET`.
pub async fn handle(state: &AppState, req: Request<Incoming>, secret: &str) -> Response<Body> {
    cors(route(state, req, secret).await)
}

async fn route(state: &AppState, req: Request<Incoming>, secret: &str) -> Response<Body> {
    if req.method() == Method::OPTIONS {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        let asked = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static("Content-Type"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return r;
    }
    let found = if looks_like_secret(secret) {
        let secret = secret.to_string();
        state.db.read(move |s| s.print_key(&secret)).await
    } else {
        Ok(None)
    };
    let (key, printer) = match found {
        Ok(Some(kp)) => kp,
        Ok(None) => {
            const GONE: &str = "no such print key: it may have been revoked; ask the printer's owner for a new one";
            if req.method() == Method::GET && prefers_html(&req) {
                // A person following a link: a page, not JSON.
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>No such print key</title><h1>No such print key</h1><p>This print key does not work (any more): it may have been revoked. Ask the printer's owner for a new one.</p>\n",
                )));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                return r;
            }
            return message(StatusCode::NOT_FOUND, GONE);
        }
        Err(e) => {
            tracing::error!("print key lookup failed: {e}");
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server's database failed; try again later",
            );
        }
    };
    match *req.method() {
        Method::GET | Method::HEAD => card(state, &req, secret, &key, &printer),
        Method::POST => post(state, req, &key, &printer).await,
        _ => message(
            StatusCode::METHOD_NOT_ALLOWED,
            "a print key answers GET (its card) and POST (print)",
        ),
    }
}

/// Whether the client prefers HTML to JSON (no Accept, or */*, means JSON).
fn prefers_html(req: &Request<Incoming>) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (mut html, mut json) = (0.0f32, 0.0f32);
    for part in accept.split(',') {
        let mut it = part.split(';');
        let media = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" | "*/*" | "application/*" => json = json.max(q),
            _ => {}
        }
    }
    html > json
}

/// The server's public URL: `SIRIUS_PUBLIC_URL`, else the request's Host.
fn public_url(state: &AppState, req: &Request<Incoming>) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .map(String::from)
        .unwrap_or_else(|| format!("localhost:{}", state.port));
    format!("http://{host}")
}

fn card(
    state: &AppState,
    req: &Request<Incoming>,
    secret: &str,
    key: &crate::store::PrintKeyRow,
    printer: &crate::store::PrinterRow,
) -> Response<Body> {
    let online = state.hub.is_online(printer.address);
    let status = if online { "online" } else { "offline" };
    if !prefers_html(req) {
        return json_response(
            StatusCode::OK,
            &json!({"name": printer.name, "owner": printer.owner, "status": status}),
        );
    }
    let url = format!("{}/printkey/{secret}", public_url(state, req));
    let ctx = json!({
        "name": printer.name,
        "owner": printer.owner,
        "status": status,
        "url": url,
        "default_sender": key.default_sender(),
    });
    match templates::env()
        .get_template("printkey.html")
        .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
    {
        Ok(html) => {
            let mut r = Response::new(Full::new(Bytes::from(html)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(e) => {
            tracing::error!("print key page template failed: {e:#}");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn",
            )
        }
    }
}

/// The `from` query parameter, decoded; at most 64 characters.
fn sender_from_query(query: Option<&str>) -> Option<String> {
    let query = query?;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "from" {
            let name: String = percent_decode(v).trim().chars().take(64).collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}

/// Decodes `%XX` escapes and `+` (a space, in query strings).
fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn post(
    state: &AppState,
    req: Request<Incoming>,
    key: &crate::store::PrintKeyRow,
    printer: &crate::store::PrinterRow,
) -> Response<Body> {
    let key_id = key.id;
    let query = req.uri().query().map(str::to_string);
    let sender = sender_from_query(query.as_deref()).unwrap_or_else(|| key.default_sender());
    if let Some(r) = too_long(&req) {
        return r;
    }
    let mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let is_supported =
        mime == "application/json" || mime.starts_with("text/") || mime.starts_with("image/");
    if !is_supported {
        return message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send text/html, text/plain (or any text/*), an image/* (PNG, JPEG, GIF or WebP), or application/json with \"html\" or \"text\"",
        );
    }
    if let Err(wait) = state.print_key_limiter.check(key_id) {
        return over_the_limit(
            &format!("this key printed {RATE_PER_MINUTE} messages in the last minute"),
            wait,
        );
    }
    let (admission, body) = match admit_and_read(state, req).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let no_face = face_from_query(query.as_deref());
    let font = font_from_query(query.as_deref());
    let fingerprint = Dedupe::fingerprint(key_id, &mime, &sender, no_face, font.as_str(), &body);
    let content = if mime == "text/html" {
        Content::Html(String::from_utf8_lossy(&body).into_owned())
    } else if mime.starts_with("image/") {
        Content::Image(Vec::from(body))
    } else if mime.starts_with("text/") {
        Content::Text(String::from_utf8_lossy(&body).into_owned())
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match (v.get("html"), v.get("text")) {
                (Some(Value::String(h)), _) => Content::Html(h.clone()),
                (_, Some(Value::String(t))) => Content::Text(t.clone()),
                _ => {
                    return message(
                        StatusCode::BAD_REQUEST,
                        "the JSON must be an object with an \"html\" or a \"text\" field holding a string",
                    );
                }
            },
            Err(e) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    &format!("the body is not valid JSON: {e}"),
                );
            }
        }
    };
    // The same content sent again within 30 s (a phone app's share sheet
    // firing twice) gets the first message's answer, and prints once.
    let (cell, first) = state.print_dedupe.entry(fingerprint);
    let answer = cell
        .get_or_init(|| async {
            let options = PrintOptions {
                print_key_id: Some(key_id),
                no_face,
                font,
                ..Default::default()
            };
            let result = state
                .printing
                .print_admitted(admission, printer, content, &sender, options)
                .await;
            print_answer(state, key_id, &sender, result)
        })
        .await
        .clone();
    if answer.0 != StatusCode::OK {
        // Only successes are remembered: a failed print may be retried.
        state.print_dedupe.forget(&fingerprint);
    } else if !first {
        tracing::info!(
            key_id,
            "the same content again within 30 s: answered with the first message, not printed twice"
        );
    }
    print_response(answer.0, &answer.1)
}

/// `429` for a caller over its per-minute limit: what it did, how long to
/// wait, and the wait in `Retry-After`.
pub(super) fn over_the_limit(what: &str, wait: Duration) -> Response<Body> {
    let secs = wait.as_secs().max(1);
    let mut r = message(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("{what}; wait {secs} s"),
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&secs.to_string()).expect("digits"),
    );
    r
}

/// The answer to a print, from [`print_outcome`]: a full queue (`429`)
/// says to come back in a minute.
pub(super) fn print_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = json_response(status, body);
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    r
}

/// The refusal of a body whose declared length is over [`MAX_BODY`],
/// before any of it is read.
pub(super) fn too_long(req: &Request<Incoming>) -> Option<Response<Body>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Some(message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than 10 MiB; send a smaller picture",
        ));
    }
    None
}

/// Takes a render place, then reads the print's body: at most
/// [`MAX_BODY`], within the body deadline. The place comes first, so at
/// most a few bodies are held at once.
pub(super) async fn admit_and_read(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<(Admission, Bytes), Response<Body>> {
    let admission = match state.printing.renderer().admit().await {
        Ok(a) => a,
        Err(e) => return Err(message(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())),
    };
    Ok((admission, read_body(state, req).await?))
}

async fn read_body(state: &AppState, req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    let body = Limited::new(req.into_body(), MAX_BODY).collect();
    match tokio::time::timeout(state.body_deadline, body).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body is larger than 10 MiB; send a smaller picture",
                ));
            }
            Err(message(
                StatusCode::BAD_REQUEST,
                "the body could not be read",
            ))
        }
        Err(_) => Err(message(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the body did not arrive within {} s; send it again over a faster connection",
                state.body_deadline.as_secs()
            ),
        )),
    }
}

/// The status and JSON a print key answers for a print's outcome.
fn print_answer(
    state: &AppState,
    key_id: i64,
    sender: &str,
    result: Result<crate::printing::Submitted, PrintError>,
) -> (StatusCode, Value) {
    if result.is_ok() {
        let who = sender.to_string();
        state.db.write_detached("count a print key use", move |s| {
            s.record_print_key_use(key_id, &who, unix_now())
        });
    }
    print_outcome(result)
}

/// The status and JSON of a print's outcome, for the APIs (print keys,
/// `/ext_api`): `{"status": "sent"|"queued", "message_id"}` or
/// `{"message": what went wrong}`.
pub(super) fn print_outcome(
    result: Result<crate::printing::Submitted, PrintError>,
) -> (StatusCode, Value) {
    let msg = |status, text: String| (status, json!({ "message": text }));
    match result {
        Ok(sub) => (
            StatusCode::OK,
            json!({"status": sub.handed.as_str(), "message_id": sub.message_id}),
        ),
        Err(PrintError::Render(e @ (RenderError::Busy | RenderError::ShuttingDown))) => {
            msg(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(PrintError::Render(e)) => msg(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e @ PrintError::QueueFull(_)) => msg(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        Err(e) => {
            tracing::error!("print failed: {e}");
            msg(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// Remembers, for 30 s, what each print answered, by key and content.
#[derive(Debug, Default)]
pub struct Dedupe {
    recent: Mutex<HashMap<[u8; 32], (Instant, DedupeCell)>>,
}

type DedupeCell = std::sync::Arc<tokio::sync::OnceCell<(StatusCode, Value)>>;

/// How long a print's answer is reused for the same content.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(30);

impl Dedupe {
    fn fingerprint(
        key_id: i64,
        mime: &str,
        sender: &str,
        no_face: bool,
        font: &str,
        body: &[u8],
    ) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(key_id.to_le_bytes());
        for part in [
            mime.as_bytes(),
            sender.as_bytes(),
            &[no_face as u8],
            font.as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(body);
        h.finalize().into()
    }

    /// The answer cell for this content, and whether this request is the
    /// first to ask (within the window).
    fn entry(&self, fingerprint: [u8; 32]) -> (DedupeCell, bool) {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() > 256 {
            recent.retain(|_, (at, _)| now.duration_since(*at) < DEDUPE_WINDOW);
        }
        match recent.get(&fingerprint) {
            Some((at, cell)) if now.duration_since(*at) < DEDUPE_WINDOW => (cell.clone(), false),
            _ => {
                let cell = DedupeCell::default();
                recent.insert(fingerprint, (now, cell.clone()));
                (cell, true)
            }
        }
    }

    fn forget(&self, fingerprint: &[u8; 32]) {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(fingerprint);
    }
}

/// `?font=sans|serif|mono` (or a family added with `--fonts`) for the
/// body; sans when absent or unknown to the renderer.
fn font_from_query(query: Option<&str>) -> crate::compose::MessageFont {
    query
        .and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == "font").then(|| crate::compose::MessageFont::parse(&percent_decode(v)))
            })
        })
        .unwrap_or_default()
}

/// `?face=none` (or `noface`): print without the printer's face.
fn face_from_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == "face" && matches!(v, "none" | "noface")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_lowercase_alphanumerics_and_differ() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.len(), SECRET_LEN);
        assert!(looks_like_secret(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn sender_names_are_decoded() {
        assert_eq!(
            sender_from_query(Some("from=Ada%20L.")),
            Some("Ada L.".into())
        );
        assert_eq!(sender_from_query(Some("x=1&from=a+b")), Some("a b".into()));
        assert_eq!(sender_from_query(Some("from=")), None);
        assert_eq!(sender_from_query(Some("from=%e2%9c%93")), Some("✓".into()));
        assert_eq!(sender_from_query(Some("from=100%")), Some("100%".into()));
        assert_eq!(sender_from_query(None), None);
    }

    #[test]
    fn rate_limit_60_a_minute() {
        let l = RateLimiter::default();
        for _ in 0..60 {
            assert!(l.check(1).is_ok());
        }
        assert!(l.check(1).is_err());
        assert!(l.check(2).is_ok());
    }
}
