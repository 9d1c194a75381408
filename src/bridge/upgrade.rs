//! The websocket upgrade at `/api/v1/connection`, by hand on hyper:
//! validate the request, answer 101 with the accept key (echoing the
//! `bergcloud-bridge-v1` subprotocol only when offered), then hand the
//! upgraded connection to a bridge session.
//!
//! Web pages may not open it. A browser always sends the `Origin` of the
//! page (`http:`/`https:`, or `null` for sandboxed and file pages), and a
//! page on any site could otherwise speak as a bridge from inside a LAN.
//! Real BERG bridges send a `ws:` Origin (`ws://HOST:5002/api/v1/connection`,
//! PROTOCOL §1), some third-party bridges none at all; both are let in, and
//! so is an `http(s):` Origin naming this very server (the `Host` the request
//! was sent to), which some websocket libraries send by default (Python's
//! websocket-client) and which no other site's page can have. Everything
//! else is refused with 403.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::hub::Hub;
use super::session;

pub const SUBPROTOCOL: &str = "bergcloud-bridge-v1";

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Whether the request's `Origin` may open a bridge connection: none, a
/// `ws:`/`wss:` one, or this server's own address.
fn origin_allowed(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(hyper::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().to_ascii_lowercase();
    if origin.starts_with("ws://") || origin.starts_with("wss://") {
        return true;
    }
    let host = headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.trim().to_ascii_lowercase());
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(a), Some(h)) => !h.is_empty() && a.trim_end_matches('/') == h,
        _ => false,
    }
}

/// Checks a bridge's upgrade request; the error is the reason for a 400.
fn validate(req: &Request<Incoming>) -> Result<String, &'static str> {
    use hyper::header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
    if req.method() != Method::GET {
        return Err("the bridge connection is a websocket: use GET with Upgrade: websocket");
    }
    let h = req.headers();
    if !has_token(h, UPGRADE, "websocket") {
        return Err("missing \"Upgrade: websocket\": this endpoint only speaks websocket");
    }
    if !has_token(h, CONNECTION, "upgrade") {
        return Err("missing \"Connection: Upgrade\"");
    }
    if h.get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err("unsupported websocket version: Sec-WebSocket-Version must be 13");
    }
    let key = h
        .get(SEC_WEBSOCKET_KEY)
        .ok_or("missing Sec-WebSocket-Key")?;
    match base64::engine::general_purpose::STANDARD.decode(key.as_bytes()) {
        Ok(k) if k.len() == 16 => {}
        _ => return Err("Sec-WebSocket-Key must be 16 bytes in base64"),
    }
    Ok(derive_accept_key(key.as_bytes()))
}

/// Answers the upgrade request and starts the session once hyper hands the
/// connection over.
pub fn upgrade(
    hub: &Arc<Hub>,
    mut req: Request<Incoming>,
    remote: SocketAddr,
) -> Response<Full<Bytes>> {
    if !origin_allowed(req.headers()) {
        hub.stats.upgrades_refused.fetch_add(1, Relaxed);
        let origin = req
            .headers()
            .get(hyper::header::ORIGIN)
            .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
            .unwrap_or_default();
        tracing::warn!(%remote, origin, "refused a bridge connection opened by a web page (its Origin is a web site's)");
        let mut resp = Response::new(Full::new(Bytes::from(
            "web pages may not open the bridge connection\n",
        )));
        *resp.status_mut() = StatusCode::FORBIDDEN;
        return resp;
    }
    let accept = match validate(&req) {
        Ok(a) => a,
        Err(reason) => {
            hub.stats.upgrades_refused.fetch_add(1, Relaxed);
            tracing::info!(%remote, "refused a websocket upgrade: {reason}");
            let mut resp = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            return resp;
        }
    };
    let offered = has_token(
        req.headers(),
        hyper::header::SEC_WEBSOCKET_PROTOCOL,
        SUBPROTOCOL,
    );
    hub.stats.connections_accepted.fetch_add(1, Relaxed);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let hub = Arc::clone(hub);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                session::run(
                    hub,
                    hyper_util::rt::TokioIo::new(upgraded),
                    remote.ip().to_string(),
                )
                .await
            }
            Err(e) => tracing::info!(%remote, "websocket upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        hyper::header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header"),
    );
    if offered {
        h.insert(
            hyper::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(hyper::header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(hyper::header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn web_pages_are_refused_bridges_are_not() {
        let host = "192.168.1.5:5002";
        // A real BERG bridge, and a bridge that sends no Origin.
        assert!(origin_allowed(&headers(
            Some("ws://192.168.1.5:5002/api/v1/connection"),
            host
        )));
        assert!(origin_allowed(&headers(Some("wss://sirius.example"), host)));
        assert!(origin_allowed(&headers(None, host)));
        // Websocket libraries that name the server itself.
        assert!(origin_allowed(&headers(
            Some("http://192.168.1.5:5002"),
            host
        )));
        assert!(origin_allowed(&headers(
            Some("HTTP://192.168.1.5:5002"),
            host
        )));
        // Any web page elsewhere, and sandboxed or file pages.
        assert!(!origin_allowed(&headers(Some("http://evil.example"), host)));
        assert!(!origin_allowed(&headers(
            Some("https://192.168.1.5:5003"),
            host
        )));
        assert!(!origin_allowed(&headers(Some("http://192.168.1.5"), host)));
        assert!(!origin_allowed(&headers(Some("null"), host)));
        assert!(!origin_allowed(&headers(Some("file://"), host)));
        assert!(!origin_allowed(&headers(
            Some("chrome-extension://abc"),
            host
        )));
        assert!(!origin_allowed(&headers(
            Some("http://192.168.1.5:5002"),
            ""
        )));
    }
}
