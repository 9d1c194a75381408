//! The websocket upgrade at `/api/v1/connection`, by hand on hyper:
//! validate the request, answer 101 with the accept key (echoing the
//! `bergcloud-bridge-v1` subprotocol only when offered), then hand the
//! upgraded connection to a bridge session.

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
            Ok(upgraded) => session::run(hub, upgraded, remote.ip().to_string()).await,
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
