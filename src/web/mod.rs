//! HTTP: the bridge websocket endpoint, `/healthz` and `/_/stats` — a
//! plain function per route, no framework — and every other path handed to
//! the web app ([`app`], an axum router with sessions).

pub mod api;
pub mod app;
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
    /// Prints per user per minute through `/ext_api`.
    pub api_limiter: print_key::RateLimiter,
    /// The web app (pages for people): [`app`].
    pub app: app::App,
    /// The same print twice within 30 s prints once.
    pub print_dedupe: print_key::Dedupe,
    /// Time for a whole request body to arrive.
    pub body_deadline: std::time::Duration,
    /// Whether `/metrics` answers other addresses than loopback.
    pub metrics_public: bool,
}

pub type Body = Full<Bytes>;

/// Routes one request, and counts it for `/metrics`.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let class = crate::metrics::route_class(req.uri().path());
    let resp = route(state, req, remote).await?;
    crate::metrics::count_request(class, resp.status().as_u16());
    Ok(resp)
}

/// `/metrics`, for the machine's own monitoring (see [`crate::metrics`]).
async fn metrics_page(
    state: &AppState,
    req: &Request<Incoming>,
    remote: SocketAddr,
) -> Response<Body> {
    let direct_local = remote.ip().is_loopback() && !req.headers().contains_key("x-forwarded-for");
    if !(direct_local || state.metrics_public) {
        return text_response(
            StatusCode::NOT_FOUND,
            "not found (/metrics answers only this machine; start the server with --metrics-public to open it)\n",
        );
    }
    let snapshot = state
        .db
        .read(|s| s.message_counts())
        .await
        .map(
            |(messages, printers_with_queue)| crate::metrics::StoreSnapshot {
                messages,
                printers_with_queue,
            },
        )
        .unwrap_or_else(|e| {
            tracing::error!("metrics: could not read the database: {e}");
            Default::default()
        });
    let body = crate::metrics::render(&state.hub, &snapshot, state.db.writes_waiting());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn route(
    state: Arc<AppState>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/metrics" {
        return Ok(metrics_page(&state, &req, remote).await);
    }
    if let Some(secret) = path.strip_prefix("/printkey/") {
        let secret = secret.to_string();
        return Ok(print_key::handle(&state, req, &secret).await);
    }
    if path.starts_with("/ext_api/") {
        return Ok(api::handle(&state, req, &path).await);
    }
    let resp = match (req.method(), path.as_str()) {
        (_, "/api/v1/connection") => upgrade::upgrade(&state.hub, req, remote),
        (&Method::GET | &Method::HEAD, "/healthz") => {
            json_response(StatusCode::OK, &healthz(&state))
        }
        (&Method::GET | &Method::HEAD, "/_/stats") => json_response(StatusCode::OK, &stats(&state)),
        (_, "/healthz" | "/_/stats") => text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "this address only answers GET\n",
        ),
        // Everything else is the web app (sessions, pages).
        _ => return app::handle(state, req, remote).await,
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
