//! Who is asking: sessions, CSRF, sign-in throttling, and the client's
//! address behind a trusted proxy.
//!
//! * **Sessions.** Signing in makes a random 256-bit id from the OS
//!   generator; the cookie `sirius_session` holds it (`HttpOnly;
//!   SameSite=Lax; Path=/`, `Secure` when the site is https, 30 days), the
//!   database only its SHA-256 ([`crate::store::sessions`]). Each use
//!   pushes the expiry 30 days on (written at most once an hour). A
//!   disabled user's sessions stop at once.
//! * **https** is when `SIRIUS_PUBLIC_URL` starts with `https:`, or a
//!   trusted proxy (`--trusted-proxy`) says `X-Forwarded-Proto: https`.
//! * **CSRF.** Every state-changing form carries a token: the session's
//!   (`sessions.csrf_token`) when signed in, else the `sirius_form` cookie's
//!   (a random value set by the page with the form: double submit). A POST
//!   whose token is missing or wrong, whose `Origin` is another site (or
//!   `null`), or whose `Sec-Fetch-Site` is `cross-site`/`same-site` is
//!   answered 403 before anything changes ([`CsrfForm`]).
//! * **Throttling.** After 5 failed sign-ins an account waits 30 s, then
//!   twice as long after each further failure (at most 15 min); an address
//!   gets the same after 20 failures across any accounts. Failures older
//!   than 15 minutes are forgotten; a success clears the account's count.
//!   While waiting, the password is not even checked, and the page says
//!   how long ([`LoginThrottle`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine as _;
use rand::TryRngCore as _;
use serde::de::DeserializeOwned;

use crate::bridge::hub::unix_now;
use crate::store::User;
use crate::store::sessions::{SESSION_DAYS, SessionRow};
use crate::web::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "sirius_session";
/// The signed-out forms' CSRF cookie.
pub const FORM_COOKIE: &str = "sirius_form";

/// `bytes` random bytes from the operating system, URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .expect("the operating system's random generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A signed-in browser: its session and user.
#[derive(Debug, Clone)]
pub struct Signed {
    pub user: User,
    pub session: SessionRow,
}

/// Everything known about the client before any handler runs. Every
/// request of the app carries one (see [`visitor_layer`]).
#[derive(Debug, Clone)]
pub struct Visitor {
    pub signed: Option<Arc<Signed>>,
    /// The client's address (from `X-Forwarded-For` behind a trusted proxy).
    pub ip: IpAddr,
    /// Whether the site is reached over https (cookies get `Secure`).
    pub https: bool,
    /// The signed-out forms' CSRF cookie, if the browser has one.
    pub form_token: Option<String>,
    /// The request's own origin (`http://HOST`), for the `Origin` check.
    pub origin: Option<String>,
}

impl Visitor {
    /// The token this browser's forms carry: the session's when signed
    /// in, else the form cookie's (`None`: the page must set one).
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.signed {
            Some(s) => Some(&s.session.csrf_token),
            None => self.form_token.as_deref(),
        }
    }

    /// A cookie with the attributes every cookie of the app has.
    pub fn cookie(&self, name: &'static str, value: String, max_age_days: i64) -> Cookie<'static> {
        // Values are URL-safe base64: nothing to escape.
        let secure = if self.https { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            max_age_days * 86400
        );
        Cookie::parse(text).unwrap_or_else(|_| {
            let mut c = Cookie::new(name, "");
            c.set_path("/");
            c.set_http_only(true);
            c.set_same_site(SameSite::Lax);
            c
        })
    }

    /// Makes sure a signed-out browser has a form token, setting the
    /// cookie on `jar` if it has none; returns the token.
    pub fn ensure_form_token(&self, jar: CookieJar) -> (CookieJar, String) {
        if let Some(t) = self.csrf_token() {
            return (jar, t.to_string());
        }
        let t = random_token(24);
        (jar.add(self.cookie(FORM_COOKIE, t.clone(), 1)), t)
    }
}

/// The client's address and whether it came over https: from the socket,
/// or from `X-Forwarded-For`/`-Proto` when the socket is a trusted proxy.
fn client(state: &AppState, remote: IpAddr, headers: &HeaderMap) -> (IpAddr, bool) {
    let public_https = state
        .public_url
        .as_deref()
        .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https:"));
    if !state.app.config.trusted_proxies.contains(&remote) {
        return (remote, public_https);
    }
    // The last address the proxy appended is the one it saw.
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back();
    let proto_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    (forwarded.unwrap_or(remote), public_https || proto_https)
}

/// Loads the session (one read), works out the client, and hands the
/// [`Visitor`] to the handler. A session used more than an hour ago gets
/// its expiry pushed on (a write nobody waits for).
pub async fn visitor_layer(mut req: Request, next: Next) -> Response {
    let Some(state) = req.extensions().get::<Arc<AppState>>().cloned() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // Static files need no session.
    if req.uri().path().starts_with("/static/") {
        return next.run(req).await;
    }
    let remote = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let (ip, https) = client(&state, remote, req.headers());
    let jar = CookieJar::from_headers(req.headers());
    let form_token = jar
        .get(FORM_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| v.len() >= 16 && v.len() <= 64);
    let signed = match jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) {
        Some(id) if !id.is_empty() && id.len() <= 128 => {
            let now = unix_now();
            match state.db.read(move |s| s.session(&id, now)).await {
                Ok(Some((session, user))) => {
                    if session.needs_touch(now) {
                        let hash = session.id_hash.clone();
                        let ip = ip.to_string();
                        state.db.write_detached("record a session's use", move |s| {
                            s.touch_session(&hash, now, Some(&ip))
                        });
                    }
                    Some(Arc::new(Signed { user, session }))
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::error!("could not read a session: {e}");
                    return super::pages::plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The database could not be read; try again in a moment.",
                    )
                    .into_response();
                }
            }
        }
        _ => None,
    };
    let origin = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("{}://{h}", if https { "https" } else { "http" }));
    req.extensions_mut().insert(Visitor {
        signed,
        ip,
        https,
        form_token,
        origin,
    });
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = StatusCode;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Visitor>()
            .cloned()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The server state, from the request.
pub struct St(pub Arc<AppState>);

impl<S: Send + Sync> FromRequestParts<S> for St {
    type Rejection = StatusCode;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<AppState>>()
            .cloned()
            .map(St)
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// A signed-in user. Signed out, the request is sent to the sign-in page
/// (which comes back here afterwards).
pub struct SignedIn(pub Arc<Signed>);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let visitor = parts
            .extensions
            .get::<Visitor>()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        match &visitor.signed {
            Some(s) => Ok(SignedIn(Arc::clone(s))),
            None => Err(to_login(parts)),
        }
    }
}

/// A signed-in administrator. Anyone else signed in gets the same 404 as a
/// page that does not exist; signed out, the sign-in page.
pub struct Admin(pub Arc<Signed>);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let SignedIn(signed) = SignedIn::from_request_parts(parts, s).await?;
        if signed.user.is_admin {
            Ok(Admin(signed))
        } else {
            Err(super::pages::not_found_for(parts).await)
        }
    }
}

/// The redirect to the sign-in page, coming back to a GET page after.
fn to_login(parts: &Parts) -> Response {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let next = percent_encode(path);
        Redirect::to(&format!("/login?next={next}")).into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Only local paths are followed after signing in (`/…`, not `//host`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// Why a form was refused before its handler ran.
fn forbidden(why: &str) -> Response {
    tracing::info!("refused a form: {why}");
    super::pages::plain(
        StatusCode::FORBIDDEN,
        &format!("This form can't be accepted: {why}. Go back, reload the page and try again."),
    )
    .into_response()
}

/// Checks the headers a browser sends with a form: an `Origin` of another
/// site (or `null`) or a cross-site `Sec-Fetch-Site` is refused. Clients
/// that send neither (curl, old browsers) rely on the token alone.
#[allow(clippy::result_large_err)] // a Response is what axum rejections are
pub fn check_origin(
    visitor: &Visitor,
    public_url: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Response> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(forbidden("it came from another site"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null").trim_end_matches('/');
        let own = visitor
            .origin
            .as_deref()
            .map(|o| o.eq_ignore_ascii_case(origin))
            == Some(true);
        let public = public_url
            .map(|u| u.trim().trim_end_matches('/'))
            .is_some_and(|u| u.eq_ignore_ascii_case(origin));
        // Behind a proxy that terminates TLS, the browser's origin is
        // https while the request looks like http.
        let own_other_scheme = visitor.origin.as_deref().is_some_and(|o| {
            o.split_once("://").map(|x| x.1) == origin.split_once("://").map(|x| x.1)
        });
        if !(own || public || own_other_scheme) {
            return Err(forbidden("it came from another site"));
        }
    }
    Ok(())
}

/// Compares two tokens in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(serde::Deserialize)]
struct TokenField {
    csrf: Option<String>,
}

/// A URL-encoded form (at most [`super::FORM_LIMIT`]) that passed the CSRF
/// checks: headers, and its `csrf` field equals this browser's token.
/// Every state-changing form handler takes one, so a forged or stale form
/// is a 403 that changes nothing.
pub struct CsrfForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = Response;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let visitor = req
            .extensions()
            .get::<Visitor>()
            .cloned()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let public_url = req
            .extensions()
            .get::<Arc<AppState>>()
            .and_then(|s| s.public_url.clone());
        check_origin(&visitor, public_url.as_deref(), req.headers())?;
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token: TokenField = form_from(&bytes)?;
        let expected = visitor.csrf_token();
        match (token.csrf.as_deref(), expected) {
            (Some(got), Some(want)) if same_token(got, want) => {}
            (None, _) | (Some(""), _) => return Err(forbidden("it carries no form token")),
            (_, None) => {
                return Err(forbidden(
                    "this browser has no form token (are cookies off?)",
                ));
            }
            _ => return Err(forbidden("its form token is out of date")),
        }
        Ok(CsrfForm(form_from(&bytes)?))
    }
}

/// Decodes a URL-encoded body with axum's form decoder.
#[allow(clippy::result_large_err)] // a Response is what axum rejections are
fn form_from<T: DeserializeOwned>(bytes: &axum::body::Bytes) -> Result<T, Response> {
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(bytes.clone()))
        .map_err(|_| StatusCode::BAD_REQUEST.into_response())?;
    futures_util::FutureExt::now_or_never(axum::Form::<T>::from_request(req, &()))
        .expect("decoding a buffered form does not wait")
        .map(|f| f.0)
        .map_err(|e| {
            super::pages::plain(
                StatusCode::BAD_REQUEST,
                &format!("The form is not valid: {e}"),
            )
            .into_response()
        })
}

/// One key's record of failed sign-ins.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Failures forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The first wait once the threshold is passed; doubles each failure.
const FIRST_WAIT: Duration = Duration::from_secs(30);
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Failures an account may have before it waits.
pub const ACCOUNT_FAILURES: u32 = 5;
/// Failures an address may have (across accounts) before it waits.
pub const ADDRESS_FAILURES: u32 = 20;
/// Keys remembered at most per map (old ones are dropped first).
const MAX_KEYS: usize = 10_000;

/// Sign-in throttling, in memory (a restart forgets it): per account
/// (lowercased username) and per client address. See the module doc.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Strikes>>,
    addresses: Mutex<HashMap<IpAddr, Strikes>>,
}

impl LoginThrottle {
    /// How long this sign-in must wait, if it must: the longer of the
    /// account's and the address's waits.
    pub fn wait(&self, username: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let account = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&username.trim().to_lowercase())
            .and_then(|s| s.blocked_until)
            .and_then(|u| u.checked_duration_since(now));
        let address = self
            .addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ip)
            .and_then(|s| s.blocked_until)
            .and_then(|u| u.checked_duration_since(now));
        account.max(address).filter(|d| !d.is_zero())
    }

    /// Records a failed sign-in; returns the wait it now causes, if any.
    pub fn failed(&self, username: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let a = strike(
            &mut self.accounts.lock().unwrap_or_else(|e| e.into_inner()),
            username.trim().to_lowercase(),
            ACCOUNT_FAILURES,
            now,
        );
        let b = strike(
            &mut self.addresses.lock().unwrap_or_else(|e| e.into_inner()),
            ip,
            ADDRESS_FAILURES,
            now,
        );
        a.max(b)
    }

    /// A successful sign-in clears the account's failures (not the
    /// address's: one good account must not unlock guessing at others).
    pub fn succeeded(&self, username: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&username.trim().to_lowercase());
    }
}

fn strike<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Strikes>,
    key: K,
    threshold: u32,
    now: Instant,
) -> Option<Duration> {
    if map.len() >= MAX_KEYS {
        map.retain(|_, s| now.duration_since(s.last) < FORGET_AFTER);
        if map.len() >= MAX_KEYS {
            // Still full: a flood of keys. Forget the oldest half.
            let mut lasts: Vec<Instant> = map.values().map(|s| s.last).collect();
            lasts.sort();
            let cut = lasts[lasts.len() / 2];
            map.retain(|_, s| s.last > cut);
        }
    }
    let s = map.entry(key).or_insert(Strikes {
        failures: 0,
        last: now,
        blocked_until: None,
    });
    if now.duration_since(s.last) >= FORGET_AFTER && s.blocked_until.is_none_or(|u| u <= now) {
        s.failures = 0;
    }
    s.failures += 1;
    s.last = now;
    if s.failures >= threshold {
        let doublings = (s.failures - threshold).min(10);
        let wait = (FIRST_WAIT * 2u32.pow(doublings)).min(MAX_WAIT);
        s.blocked_until = Some(now + wait);
        Some(wait)
    } else {
        None
    }
}

/// Signs `user` in: a new session row, and the cookie for it.
pub async fn start_session(
    state: &AppState,
    visitor: &Visitor,
    jar: CookieJar,
    user: &User,
    user_agent: Option<String>,
) -> Result<CookieJar, crate::store::StoreError> {
    let id = random_token(32);
    let csrf = random_token(24);
    let (user_id, ip, id2) = (user.id, visitor.ip.to_string(), id.clone());
    state
        .db
        .write(move |s| {
            s.create_session(
                &id2,
                user_id,
                &csrf,
                user_agent.as_deref(),
                Some(&ip),
                unix_now(),
            )
        })
        .await?;
    Ok(jar
        .add(visitor.cookie(SESSION_COOKIE, id, SESSION_DAYS))
        .remove(Cookie::build(FORM_COOKIE).path("/")))
}

/// Password hashing (argon2, tens of milliseconds of one core each) runs
/// on the blocking pool, at most half the cores at once (at least one):
/// twenty people signing in together queue for a core instead of taking
/// both, and never hold the database's read places while they hash — the
/// bridges' key requests go on being answered at once.
pub async fn password_work<R, F>(f: F) -> Result<R, String>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(tokio::sync::Semaphore::new((cores / 2).max(1)))
    });
    let permit = Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(|e| format!("password checks are shut down: {e}"))?;
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(permit);
        out
    })
    .await
    .map_err(|e| format!("the password check failed: {e}"))
}

/// Checks `username`'s password: the hash is read from the database, and
/// compared under [`password_work`].
pub async fn verify_password(
    state: &crate::web::AppState,
    username: &str,
    password: String,
) -> Result<Option<crate::store::User>, crate::store::StoreError> {
    let name = username.to_string();
    let found = state.db.read(move |s| s.password_hash_of(&name)).await?;
    password_work(move || crate::store::users::check_password(found, &password))
        .await
        .map_err(crate::store::StoreError::PasswordHash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_waits_after_five_failures_and_longer_after_more() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..4 {
            assert_eq!(t.failed("Ada", ip), None);
        }
        assert_eq!(t.wait("ada", ip), None);
        assert_eq!(t.failed("ada", ip), Some(Duration::from_secs(30)));
        let w = t.wait("ADA", "10.0.0.2".parse().unwrap()).unwrap();
        assert!(w > Duration::from_secs(29) && w <= Duration::from_secs(30));
        assert_eq!(t.failed("ada", ip), Some(Duration::from_secs(60)));
        assert_eq!(t.wait("bob", "10.0.0.2".parse().unwrap()), None);
        t.succeeded("ada");
        assert_eq!(t.wait("ada", "10.0.0.2".parse().unwrap()), None);
    }

    #[test]
    fn one_address_trying_many_accounts_waits_too() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for n in 0..19 {
            assert_eq!(t.failed(&format!("user{n}"), ip), None);
        }
        assert_eq!(t.failed("user19", ip), Some(Duration::from_secs(30)));
        assert!(t.wait("someone-else", ip).is_some());
        assert!(
            t.wait("someone-else", "10.0.0.9".parse().unwrap())
                .is_none()
        );
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/printer/3")), "/printer/3");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
