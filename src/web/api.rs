//! The earlier server's API for scripts, kept so they keep working:
//! `POST /ext_api/v1/printer/ID/print_html`.
//!
//! * The caller is a user, known by their API key (made on `/account`):
//!   `Authorization: Bearer KEY`, or `?api_key=KEY` as the earlier server
//!   took it. A missing or unknown key (or a disabled account) is `401`.
//! * The printer must be theirs or shared with them; any other id is `404`,
//!   the same as a printer that does not exist.
//! * The body is JSON `{"message": HTML, "face": "default"|"noface"}`, with
//!   an optional `"font": "sans"|"serif"|"mono"`. Any content type is
//!   accepted (the earlier server's clients often send none).
//! * It answers like a print key: `{"status": "sent"|"queued",
//!   "message_id"}`, or `{"message": what went wrong}` with `400`, `413`,
//!   `422`, `429` (60 prints a minute per user, or the printer's queue is
//!   full) or `503`. The message's sender is the user's name.
//!
//! Like print keys it sits outside the web app's sessions: no cookie, no
//! CSRF token (a key in a header is not sent by a browser on its own).

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::print_key::{
    RATE_PER_MINUTE, admit_and_read, message, over_the_limit, print_outcome, print_response,
    too_long,
};
use super::{AppState, Body};
use crate::compose::{Content, MessageFont};
use crate::printing::PrintOptions;
use crate::store::User;

/// Handles a path under `/ext_api/`.
pub async fn handle(state: &AppState, req: Request<Incoming>, path: &str) -> Response<Body> {
    let Some(id) = path
        .strip_prefix("/ext_api/v1/printer/")
        .and_then(|p| p.strip_suffix("/print_html"))
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return message(
            StatusCode::NOT_FOUND,
            "not found: the API is POST /ext_api/v1/printer/ID/print_html",
        );
    };
    if req.method() != Method::POST {
        let mut r = message(
            StatusCode::METHOD_NOT_ALLOWED,
            "this address only answers POST",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let user = match caller(state, &req).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let user_id = user.id;
    match state.db.read(move |s| s.printer_access(id, user_id)).await {
        Ok(Some((printer, _))) => print(state, req, &user, &printer).await,
        Ok(None) => message(StatusCode::NOT_FOUND, "there is no such printer of yours"),
        Err(e) => {
            tracing::error!("ext_api: the database could not be read: {e}");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the database could not be read; see the server log",
            )
        }
    }
}

/// The API key from `Authorization: Bearer KEY` or `?api_key=KEY`.
fn api_key(req: &Request<Incoming>) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, key) = v.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim().to_string());
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query()?).ok()?;
    pairs
        .into_iter()
        .find_map(|(k, v)| (k == "api_key").then(|| v.trim().to_string()))
}

/// The user whose key this is, else a `401` saying what to send.
async fn caller(state: &AppState, req: &Request<Incoming>) -> Result<User, Response<Body>> {
    let unauthorized = |text: &str| {
        let mut r = message(StatusCode::UNAUTHORIZED, text);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sirius\""),
        );
        r
    };
    let Some(key) = api_key(req).filter(|k| !k.is_empty() && k.len() <= 128) else {
        return Err(unauthorized(
            "send your API key (from your account page) as \"Authorization: Bearer KEY\" or ?api_key=KEY",
        ));
    };
    match state.db.read(move |s| s.user_by_api_key(&key)).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(unauthorized(
            "that API key is not known here (it may have been regenerated, or the account disabled); make a new one on your account page",
        )),
        Err(e) => {
            tracing::error!("ext_api: the database could not be read: {e}");
            Err(message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the database could not be read; see the server log",
            ))
        }
    }
}

/// What the JSON body asks to print.
struct Task {
    html: String,
    no_face: bool,
    font: MessageFont,
}

fn parse_task(body: &[u8]) -> Result<Task, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let html = match v.get("message") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("\"message\" is empty: nothing to print".into()),
        _ => {
            return Err("the JSON must be an object with a \"message\" field holding HTML".into());
        }
    };
    let no_face = match v.get("face") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "default" => false,
        Some(Value::String(f)) if f == "noface" || f == "none" => true,
        Some(other) => {
            return Err(format!(
                "\"face\" must be \"default\" or \"noface\", not {other}"
            ));
        }
    };
    let font = match v.get("font") {
        Some(Value::String(f)) => MessageFont::parse(f),
        _ => MessageFont::Sans,
    };
    Ok(Task {
        html,
        no_face,
        font,
    })
}

async fn print(
    state: &AppState,
    req: Request<Incoming>,
    user: &User,
    printer: &crate::store::PrinterRow,
) -> Response<Body> {
    if let Some(r) = too_long(&req) {
        return r;
    }
    if let Err(wait) = state.api_limiter.check(user.id) {
        return over_the_limit(
            &format!("you printed {RATE_PER_MINUTE} messages in the last minute"),
            wait,
        );
    }
    let (admission, body) = match admit_and_read(state, req).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let task = match parse_task(&body) {
        Ok(t) => t,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    let options = PrintOptions {
        sender_user_id: Some(user.id),
        no_face: task.no_face,
        font: task.font,
        ..PrintOptions::default()
    };
    let result = state
        .printing
        .print_admitted(
            admission,
            printer,
            Content::Html(task.html),
            &user.username,
            options,
        )
        .await;
    if let Ok(sent) = &result {
        tracing::info!(message_id = sent.message_id, user = %user.username, "message sent through the API");
    }
    let (status, body) = print_outcome(result);
    print_response(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_is_read_as_the_earlier_server_wrote_it() {
        let t = parse_task(br#"{"message": "<b>hi</b>", "face": "noface"}"#).unwrap();
        assert_eq!(t.html, "<b>hi</b>");
        assert!(t.no_face);
        let t = parse_task(br#"{"message": "hi", "face": "default", "font": "mono"}"#).unwrap();
        assert!(!t.no_face);
        assert_eq!(t.font, MessageFont::Mono);
        assert!(!parse_task(br#"{"message": "hi"}"#).unwrap().no_face);
        for bad in [
            &br#"{"face": "noface"}"#[..],
            br#"{"message": "  "}"#,
            br#"{"message": "hi", "face": "sideways"}"#,
            br#"{"message": 3}"#,
            b"not json",
        ] {
            assert!(parse_task(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
