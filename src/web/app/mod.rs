//! The web app people use: accounts, claiming, their printers, the admin
//! page. An axum [`Router`] with its layers, reached from
//! [`crate::web::handle`] for every path that is not the bridge endpoint,
//! a print key, `/healthz` or `/_/stats` (those stay plain hyper routes,
//! outside sessions).
//!
//! * [`auth`]: sessions (server-side rows, hashed ids, a rolling 30-day
//!   cookie), CSRF (a per-session token in every form, plus `Origin` and
//!   `Sec-Fetch-Site`), sign-in throttling, who the client is (trusted
//!   proxies).
//! * [`pages`]: one file per page family.
//! * [`twitter`]: "Sign in with Twitter" (OAuth 1.0a), when configured.
//! * Templates are minijinja, embedded from `assets/templates/app/` and
//!   overridable: a file of the same name in `--templates DIR` wins.
//!   CSS and the little JavaScript are embedded from `assets/static/` and
//!   served under `/static/NAME?v=HASH` with an ETag and a year's cache.
//!   No CDN; every page works without JavaScript.
//!
//! Handlers reach SQLite only through [`crate::store::Db`] and hash
//! passwords on the blocking pool.

pub mod auth;
pub mod pages;
mod render;
pub mod twitter;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::Full;
use hyper::StatusCode;
use hyper::body::{Bytes, Incoming};
use tower::ServiceExt as _;

use super::AppState;

pub use render::Templates;

/// Form bodies are at most this big.
pub const FORM_LIMIT: usize = 64 * 1024;
/// Uploads (pictures to print) are at most this big.
pub const UPLOAD_LIMIT: usize = 10 * 1024 * 1024;
/// A page request that takes longer is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Who may make an account (`--signup`, `SIRIUS_SIGNUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignupPolicy {
    /// Only with a one-time invite link from an administrator (default).
    #[default]
    Invite,
    /// Anyone who can reach the server (public instances).
    Open,
    /// Nobody: administrators add people (admin page, `sirius user add`).
    Closed,
}

impl SignupPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SignupPolicy::Invite => "invite",
            SignupPolicy::Open => "open",
            SignupPolicy::Closed => "closed",
        }
    }
}

impl std::str::FromStr for SignupPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "invite" => Ok(SignupPolicy::Invite),
            "open" => Ok(SignupPolicy::Open),
            "closed" => Ok(SignupPolicy::Closed),
            other => Err(format!(
                "{other:?} is not a sign-up policy; use invite, open or closed"
            )),
        }
    }
}

impl std::fmt::Display for SignupPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The web app's settings.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Who may make an account.
    pub signup: SignupPolicy,
    /// Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto`
    /// are believed (`--trusted-proxy`, `SIRIUS_TRUSTED_PROXY`). From any
    /// other address those headers are ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// A folder whose templates replace the embedded ones of the same name.
    pub templates_dir: Option<PathBuf>,
    /// "Sign in with Twitter": on when set (`TWITTER_CONSUMER_KEY` and
    /// `TWITTER_CONSUMER_SECRET`).
    pub twitter: Option<twitter::TwitterConfig>,
}

/// The web app of one server: settings, templates, the sign-in throttle
/// and the router.
pub struct App {
    pub config: WebConfig,
    pub templates: Templates,
    pub throttle: auth::LoginThrottle,
    /// Twitter sign-in, when configured.
    pub twitter: Option<twitter::Twitter>,
    router: Router,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(config: WebConfig) -> App {
        App {
            templates: Templates::new(config.templates_dir.clone()),
            twitter: config.twitter.clone().map(twitter::Twitter::new),
            config,
            throttle: auth::LoginThrottle::default(),
            router: router(),
        }
    }
}

/// Every route of the web app. The router holds no state: each request
/// carries the server's [`AppState`] as an extension (see [`handle`]).
fn router() -> Router {
    use pages::{account, admin, compose, home, printer, printers, session, twitter};
    Router::new()
        .route("/", get(home::home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/signup", get(session::signup_page).post(session::signup))
        .route(
            "/invite/{token}",
            get(session::invite_page).post(session::invite_signup),
        )
        .route("/login/twitter", post(twitter::start_sign_in))
        .route("/login/twitter/callback", get(twitter::callback))
        .route(
            "/invite/{token}/twitter",
            post(twitter::start_invite_sign_up),
        )
        .route("/account/twitter/link", post(twitter::start_link))
        .route("/account/twitter/unlink", post(twitter::unlink))
        .route("/claim", get(printers::claim_page).post(printers::claim))
        .route("/printer/{id}", get(printer::printer))
        .route(
            "/printer/{id}/print",
            get(compose::compose)
                .post(compose::print)
                .layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route(
            "/printer/{id}/preview",
            post(compose::preview).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route("/printer/{id}/message/{file}", get(printer::message_png))
        .route(
            "/printer/{id}/message/{mid}/reprint",
            post(printer::reprint),
        )
        .route("/printer/{id}/message/{mid}/cancel", post(printer::cancel))
        .route("/printer/{id}/printkey/add", post(printer::add_key))
        .route(
            "/printer/{id}/printkey/{kid}/delete",
            post(printer::revoke_key),
        )
        .route("/printer/{id}/share", post(printer::share))
        .route("/printer/{id}/share/{uid}/delete", post(printer::unshare))
        .route("/printer/{id}/rename", post(printer::rename))
        .route("/printer/{id}/remove", post(printer::remove))
        .route("/printer/{id}/states", get(printer::states))
        .route("/account", get(account::account))
        .route("/account/password", post(account::change_password))
        .route("/account/api-key", post(account::regenerate_api_key))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/sessions/end-all", post(account::end_all_sessions))
        .route("/admin", get(admin::admin))
        .route("/admin/invites", post(admin::create_invite))
        .route("/admin/invites/{id}/delete", post(admin::delete_invite))
        .route("/admin/users", post(admin::add_user))
        .route("/admin/users/{id}/password", post(admin::reset_password))
        .route("/admin/users/{id}/disable", post(admin::disable_user))
        .route("/admin/users/{id}/enable", post(admin::enable_user))
        .route("/admin/users/{id}/admin", post(admin::make_admin))
        .route("/admin/users/{id}/unadmin", post(admin::remove_admin))
        .route("/admin/users/{id}/delete", post(admin::delete_user))
        .route("/admin/bridges/{address}", get(admin::bridge))
        .route("/static/{name}", get(render::static_file))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(auth::visitor_layer))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(UPLOAD_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a page handler panicked");
                pages::plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong; see the server log.",
                )
            },
        ))
}

/// Answers one request with the web app: the hook from
/// [`crate::web::handle`]. The body is streamed into the router and the
/// answer collected (pages and pictures are small).
pub async fn handle(
    state: Arc<AppState>,
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let mut req: Request = req.map(axum::body::Body::new);
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(remote));
    req.extensions_mut().insert(Arc::clone(&state));
    let router = state.app.router.clone();
    let resp: Response = match router.oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => Ok(hyper::Response::from_parts(parts, Full::new(bytes))),
        Err(e) => {
            tracing::warn!("a page's body failed: {e}");
            let r =
                pages::plain(StatusCode::INTERNAL_SERVER_ERROR, "the page failed").into_response();
            let (parts, _) = r.into_parts();
            Ok(hyper::Response::from_parts(parts, Full::new(Bytes::new())))
        }
    }
}
