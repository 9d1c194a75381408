//! HTTP: the bridge websocket endpoint, the status page, `/healthz` and
//! `/_/stats`. A plain function per route, no framework.

pub mod print_key;
pub mod templates;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::bridge::Hub;
use crate::bridge::upgrade;
use crate::printing::Printing;

/// What every route can reach.
pub struct AppState {
    /// The database, for async code (see [`crate::store::db`]).
    pub db: crate::store::Db,
    pub hub: Arc<Hub>,
    pub printing: Arc<Printing>,
    /// The port we listen on, for the hints on the status page.
    pub port: u16,
    /// `SIRIUS_PUBLIC_URL`: how people reach this server, for examples.
    pub public_url: Option<String>,
    pub print_key_limiter: print_key::RateLimiter,
    /// Time for a whole request body to arrive.
    pub body_deadline: std::time::Duration,
}

pub type Body = Full<Bytes>;

/// Routes one request.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(secret) = path.strip_prefix("/printkey/") {
        let secret = secret.to_string();
        return Ok(print_key::handle(&state, req, &secret).await);
    }
    if let Some(id) = path
        .strip_prefix("/_/messages/")
        .and_then(|p| p.strip_suffix(".png"))
    {
        return Ok(message_png(&state, id).await);
    }
    let resp = match (req.method(), path.as_str()) {
        (_, "/api/v1/connection") => upgrade::upgrade(&state.hub, req, remote),
        (&Method::GET | &Method::HEAD, "/") => status_page(&state).await,
        (&Method::GET | &Method::HEAD, "/healthz") => {
            json_response(StatusCode::OK, &healthz(&state))
        }
        (&Method::GET | &Method::HEAD, "/_/stats") => json_response(StatusCode::OK, &stats(&state)),
        (_, "/" | "/healthz" | "/_/stats") => text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "this address only answers GET\n",
        ),
        _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(resp)
}

pub fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn text_response(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn html_response(html: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(html)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// A message's page, as it printed (for thumbnails on the status page).
async fn message_png(state: &AppState, id: &str) -> Response<Body> {
    let Ok(id) = id.parse::<i64>() else {
        return text_response(StatusCode::NOT_FOUND, "not found\n");
    };
    match state.db.read(move |s| s.message_page(id)).await {
        Ok(Some(png)) => {
            let mut r = Response::new(Full::new(Bytes::from(png)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
            r
        }
        Ok(None) => text_response(StatusCode::NOT_FOUND, "no such message\n"),
        Err(e) => {
            tracing::error!("message page: {e}");
            text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the database could not be read\n",
            )
        }
    }
}

fn healthz(state: &AppState) -> Value {
    let hub = &state.hub;
    json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": hub.uptime().as_secs(),
        "bridges_connected": hub.bridges_connected(),
        "printers_online": hub.printers_online(),
    })
}

fn stats(state: &AppState) -> Value {
    let hub = &state.hub;
    let mut v = hub.stats.to_json();
    v["store_writes"] = state.db.store().writes().into();
    v["store_writes_waiting"] = state.db.writes_waiting().into();
    v["store_writes_dropped"] = state.db.writes_dropped().into();
    v["bridges_connected"] = hub.bridges_connected().into();
    v["printers_online"] = hub.printers_online().into();
    v["bridge_sessions"] = hub.live_sessions().into();
    v
}

fn human_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86399 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days", secs / 86400),
    }
}

async fn status_page(state: &AppState) -> Response<Body> {
    let hub = &state.hub;
    let live = hub.live_bridges();
    let read = state
        .db
        .read(|s| {
            let bridges = s.list_bridges()?;
            let printers = s.list_printers()?;
            let mut messages = Vec::with_capacity(printers.len());
            for p in &printers {
                messages.push(s.recent_messages(p.id, 5)?);
            }
            Ok::<_, crate::store::StoreError>((bridges, printers, messages))
        })
        .await;
    let (stored, printers, recent) = match read {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("status page: could not read the database: {e}");
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the database could not be read; see the server log\n",
            );
        }
    };
    let bridges: Vec<Value> = stored
        .iter()
        .map(|b| {
            let conn = live.iter().find(|l| l.0 == b.address);
            json!({
                "address": b.address.to_string(),
                "connected": conn.is_some(),
                "ip": conn.map(|c| c.1.clone()).or_else(|| b.remote_ip.clone()),
                "firmware": conn.and_then(|c| c.2.clone()).or_else(|| b.firmware_version.clone()),
                "model": b.model,
                "connected_since": conn.map(|c| c.3),
                "last_seen": if conn.is_some() { crate::bridge::hub::unix_now() } else { b.last_seen },
            })
        })
        .collect();
    let printers: Vec<Value> = printers
        .iter()
        .zip(&recent)
        .map(|(p, recent)| {
            let messages: Vec<Value> = recent
                .iter()
                .map(|m| {
                    json!({
                        "id": m.id,
                        "sender": m.sender,
                        "state": m.state.as_str(),
                        "created_at": m.created_at,
                        "failure": m.failure,
                        "printed": m.printed_at.is_some(),
                    })
                })
                .collect();
            json!({
                "name": p.name,
                "owner": p.owner,
                "address": p.address.to_string(),
                "online": hub.is_online(p.address),
                "last_heard": hub.last_heard(p.address).or(p.last_heard),
                "messages": messages,
            })
        })
        .collect();
    let ctx = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": human_duration(hub.uptime().as_secs()),
        "bridges_connected": hub.bridges_connected(),
        "printers_online": hub.printers_online(),
        "bridges": bridges,
        "printers": printers,
        "port": state.port,
    });
    match templates::env()
        .get_template("status.html")
        .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
    {
        Ok(html) => html_response(html),
        Err(e) => {
            tracing::error!("status page template failed: {e:#}");
            text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn; see the server log\n",
            )
        }
    }
}
