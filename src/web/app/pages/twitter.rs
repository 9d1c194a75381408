//! "Sign in with Twitter" and linking Twitter to an account; only when
//! the server has Twitter credentials (see [`crate::web::app::twitter`]).
//!
//! * `POST /login/twitter` (the sign-in page's button) and
//!   `POST /invite/TOKEN/twitter` (the invite page's) ask Twitter for a
//!   request token and send the browser to Twitter.
//! * `GET /login/twitter/callback` is where Twitter sends it back. A Twitter
//!   account linked to a user signs into that user (not when disabled); one
//!   linked to nobody makes a new account — named after the screen name,
//!   suffixed when taken, without a password — only when the sign-up policy
//!   lets the person in: `open`, or arriving through an invite link (which
//!   is then used up). Otherwise the page says the account is not linked
//!   here and how to get in.
//! * `POST /account/twitter/link` and `/account/twitter/unlink` (the
//!   account page): linking goes through Twitter the same way; a Twitter
//!   account linked to someone else is refused. Unlinking is refused while
//!   the user has no password, since it would lock them out.
//!
//! Every POST is a CSRF-checked form; the callback is a GET from Twitter,
//! checked instead by the one-time request token and the cookie binding it
//! to the browser that started it. Sessions are made by
//! [`crate::web::app::auth::start_session`], as the password sign-in does.

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;
use serde_json::json;

use super::account::account_page;
use super::session::{capitalise, nobody_yet, user_agent};
use super::{not_found_page, see_other, store_failed};
use crate::bridge::hub::unix_now;
use crate::store::User;
use crate::store::twitter::{LinkOutcome, TwitterSignUp, UnlinkOutcome};
use crate::web::AppState;
use crate::web::app::SignupPolicy;
use crate::web::app::auth::{
    CsrfForm, SESSION_COOKIE, SignedIn, St, Visitor, random_token, safe_next, start_session,
};
use crate::web::app::render::page;
use crate::web::app::twitter::{Flow, Purpose, Twitter, TwitterUser};

/// The cookie that binds a sign-in under way to this browser: a random
/// value (only its SHA-256 is kept with the request token), 10 minutes.
pub const FLOW_COOKIE: &str = "sirius_twitter";

#[derive(Deserialize)]
pub struct StartForm {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct Nothing {}

#[derive(Deserialize)]
pub struct CallbackQuery {
    oauth_token: Option<String>,
    oauth_verifier: Option<String>,
    /// Twitter sends `denied=TOKEN` when the person said no.
    denied: Option<String>,
}

/// A page that explains a problem.
fn problem(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    page(
        state,
        visitor,
        status,
        "error.html",
        json!({"title": title, "text": text}),
    )
}

/// Twitter sign-in of this server, or the 404 page when it has none.
#[allow(clippy::result_large_err)] // a Response is what the handler answers
fn twitter<'a>(state: &'a AppState, visitor: &Visitor) -> Result<&'a Twitter, Response> {
    state
        .app
        .twitter
        .as_ref()
        .ok_or_else(|| not_found_page(state, visitor))
}

/// Where Twitter sends the browser back: `SIRIUS_PUBLIC_URL`, else this
/// request's own origin, plus `/login/twitter/callback`.
fn callback_url(state: &AppState, visitor: &Visitor) -> Option<String> {
    let base = state
        .public_url
        .as_deref()
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .or_else(|| visitor.origin.clone())?;
    Some(format!("{base}/login/twitter/callback"))
}

/// Asks Twitter for a request token, remembers the sign-in, and sends the
/// browser to Twitter.
async fn begin(state: &AppState, visitor: &Visitor, jar: CookieJar, purpose: Purpose) -> Response {
    let tw = match twitter(state, visitor) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let busy = || {
        problem(
            state,
            visitor,
            StatusCode::TOO_MANY_REQUESTS,
            "Try again in a few minutes",
            "Too many Twitter sign-ins are under way from here (or on this server). Finish the one you started, or wait 10 minutes, then try again.",
        )
    };
    if !tw.flows.has_room(visitor.ip) {
        return busy();
    }
    let Some(callback) = callback_url(state, visitor) else {
        return problem(
            state,
            visitor,
            StatusCode::BAD_REQUEST,
            "Twitter sign-in can't start",
            "This request has no Host, so the server can't tell Twitter where to come back to. The server's administrator can set SIRIUS_PUBLIC_URL.",
        );
    };
    let request_token = match tw.request_token(&callback).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("Twitter sign-in could not start: {e}");
            return problem(
                state,
                visitor,
                StatusCode::BAD_GATEWAY,
                "Twitter sign-in didn't work",
                &capitalise(&e.to_string()),
            );
        }
    };
    // One cookie per browser, reused by its sign-ins.
    let value = jar
        .get(FLOW_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| (32..=64).contains(&v.len()))
        .unwrap_or_else(|| random_token(24));
    let flow = Flow {
        token_secret: request_token.secret,
        browser_hash: crate::store::sha256_hex(&value),
        purpose,
        ip: visitor.ip,
        started: std::time::Instant::now(),
    };
    if !tw.flows.insert(request_token.token.clone(), flow) {
        return busy();
    }
    let secure = if visitor.https { "; Secure" } else { "" };
    let max_age = tw.config.flow_ttl.as_secs().max(1);
    let jar = match Cookie::parse(format!(
        "{FLOW_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    )) {
        Ok(c) => jar.add(c),
        Err(_) => jar,
    };
    (jar, see_other(&tw.authenticate_url(&request_token.token))).into_response()
}

/// `POST /login/twitter`: "Sign in with Twitter".
pub async fn start_sign_in(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<StartForm>,
) -> Response {
    if let Err(r) = twitter(&state, &visitor) {
        return r;
    }
    let next = safe_next(form.next.as_deref());
    if visitor.signed.is_some() {
        return see_other(&next);
    }
    // The first account is made with a password (it is the administrator).
    match nobody_yet(&state).await {
        Ok(true) => return see_other("/"),
        Ok(false) => {}
        Err(e) => return store_failed(&state, &visitor, e),
    }
    begin(
        &state,
        &visitor,
        jar,
        Purpose::SignIn { invite: None, next },
    )
    .await
}

/// `POST /invite/TOKEN/twitter`: make the invited account with Twitter.
pub async fn start_invite_sign_up(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    Path(token): Path<String>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    if let Err(r) = twitter(&state, &visitor) {
        return r;
    }
    let t = token.clone();
    match state.db.read(move |s| s.invite(&t, unix_now())).await {
        Ok(Ok(_)) => {}
        Ok(Err(problem_)) => {
            return problem(
                &state,
                &visitor,
                StatusCode::NOT_FOUND,
                "This invite can't be used",
                &capitalise(&problem_.to_string()),
            );
        }
        Err(e) => return store_failed(&state, &visitor, e),
    }
    let purpose = Purpose::SignIn {
        invite: Some(token),
        next: "/".into(),
    };
    begin(&state, &visitor, jar, purpose).await
}

/// `POST /account/twitter/link`.
pub async fn start_link(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    SignedIn(signed): SignedIn,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    if let Err(r) = twitter(&state, &visitor) {
        return r;
    }
    let user_id = signed.user.id;
    match state.db.read(move |s| s.twitter_identity_of(user_id)).await {
        Ok(Some(linked)) => {
            let text = format!(
                "Your account is already linked to @{}; unlink it first to link another.",
                linked.screen_name
            );
            return account_page(
                &state,
                &visitor,
                &signed,
                StatusCode::CONFLICT,
                json!({"twitter_error": text}),
            )
            .await;
        }
        Ok(None) => {}
        Err(e) => return store_failed(&state, &visitor, e),
    }
    begin(&state, &visitor, jar, Purpose::Link { user_id }).await
}

/// `POST /account/twitter/unlink`.
pub async fn unlink(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    let user_id = signed.user.id;
    match state.db.write(move |s| s.unlink_twitter(user_id)).await {
        Ok(UnlinkOutcome::Unlinked(name)) => {
            tracing::info!(user = %signed.user.username, twitter = %name, "unlinked Twitter");
            see_other("/account?done=twitter-unlinked")
        }
        Ok(UnlinkOutcome::NotLinked) => see_other("/account"),
        Ok(UnlinkOutcome::NeedsPassword) => {
            account_page(
                &state,
                &visitor,
                &signed,
                StatusCode::CONFLICT,
                json!({"twitter_error": "Twitter is the only way into this account: set a password below first, then unlink Twitter."}),
            )
            .await
        }
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `GET /login/twitter/callback`: Twitter sends the browser back here.
pub async fn callback(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let tw = match twitter(&state, &visitor) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Some(denied) = q.denied {
        tw.flows.forget(&denied);
        return problem(
            &state,
            &visitor,
            StatusCode::OK,
            "Twitter sign-in cancelled",
            "You did not let this server see your Twitter account, so nothing happened. Sign in with your password, or try Twitter again.",
        );
    }
    let (Some(token), Some(verifier)) = (q.oauth_token, q.oauth_verifier) else {
        return problem(
            &state,
            &visitor,
            StatusCode::BAD_REQUEST,
            "Twitter sign-in can't be finished",
            "The address lacks what Twitter adds to it (oauth_token and oauth_verifier). Start again from the sign-in page.",
        );
    };
    let cookie = jar.get(FLOW_COOKIE).map(|c| c.value().to_string());
    let flow = match tw.flows.take(&token, cookie.as_deref()) {
        Ok(f) => f,
        Err(p) => {
            tracing::info!(ip = %visitor.ip, "refused a Twitter callback: {p}");
            return problem(
                &state,
                &visitor,
                StatusCode::BAD_REQUEST,
                "Twitter sign-in can't be finished",
                &capitalise(&p.to_string()),
            );
        }
    };
    let who = match tw.finish(&token, &flow.token_secret, &verifier).await {
        Ok(who) => who,
        Err(e) => {
            tracing::warn!("Twitter sign-in could not be finished: {e}");
            return problem(
                &state,
                &visitor,
                StatusCode::BAD_GATEWAY,
                "Twitter sign-in didn't work",
                &capitalise(&e.to_string()),
            );
        }
    };
    match flow.purpose {
        Purpose::SignIn { invite, next } => {
            sign_in(&state, &visitor, jar, &headers, who, invite, &next).await
        }
        Purpose::Link { user_id } => link(&state, &visitor, who, user_id).await,
    }
}

/// Signs in as the user linked to `who`, or makes one where the sign-up
/// policy allows.
async fn sign_in(
    state: &AppState,
    visitor: &Visitor,
    jar: CookieJar,
    headers: &HeaderMap,
    who: TwitterUser,
    invite: Option<String>,
    next: &str,
) -> Response {
    let id = who.id.clone();
    let linked = match state.db.read(move |s| s.user_by_twitter_id(&id)).await {
        Ok(u) => u,
        Err(e) => return store_failed(state, visitor, e),
    };
    let (user, next) = match linked {
        Some(user) => {
            let (id, name) = (who.id.clone(), who.screen_name.clone());
            state
                .db
                .write_detached("record a Twitter screen name", move |s| {
                    s.refresh_twitter_screen_name(&id, &name).map(|_| ())
                });
            (user, next.to_string())
        }
        None => {
            let policy = state.app.config.signup;
            if invite.is_none() && policy != SignupPolicy::Open {
                tracing::info!(twitter = %who.screen_name, "a Twitter account linked to nobody tried to sign in");
                let how = match policy {
                    SignupPolicy::Invite => {
                        "If you have an account here, sign in with your password and link Twitter on your account page. Otherwise, ask the person who runs this server for an invite link, and sign up with Twitter from it."
                    }
                    _ => {
                        "If you have an account here, sign in with your password and link Twitter on your account page. This server does not take new accounts; its administrator can add you."
                    }
                };
                return problem(
                    state,
                    visitor,
                    StatusCode::FORBIDDEN,
                    "This Twitter account isn't linked here",
                    &format!(
                        "The Twitter account @{} isn't linked to any account on this server. {how}",
                        who.screen_name
                    ),
                );
            }
            let (id, name) = (who.id.clone(), who.screen_name.clone());
            let made = state
                .db
                .write(move |s| s.sign_up_with_twitter(&id, &name, invite.as_deref(), unix_now()))
                .await;
            match made {
                Ok(TwitterSignUp::Created(user)) => {
                    tracing::info!(user = %user.username, twitter = %who.screen_name, admin = user.is_admin, "account created with Twitter");
                    (user, "/".to_string())
                }
                Ok(TwitterSignUp::AlreadyLinked(user)) => (user, next.to_string()),
                Ok(TwitterSignUp::Invite(p)) => {
                    return problem(
                        state,
                        visitor,
                        StatusCode::NOT_FOUND,
                        "This invite can't be used",
                        &capitalise(&p.to_string()),
                    );
                }
                Err(e) => return store_failed(state, visitor, e),
            }
        }
    };
    start(state, visitor, jar, headers, &user, &next).await
}

/// Starts a session for `user` (as the password sign-in does) and goes to
/// `next`; a disabled user is refused.
async fn start(
    state: &AppState,
    visitor: &Visitor,
    jar: CookieJar,
    headers: &HeaderMap,
    user: &User,
    next: &str,
) -> Response {
    if user.disabled_at.is_some() {
        return problem(
            state,
            visitor,
            StatusCode::FORBIDDEN,
            "This account is disabled",
            "This account is disabled. Ask an administrator of this server.",
        );
    }
    // Whoever was signed in on this browser is signed out of it.
    if let Some(old) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string())
        && let Err(e) = state.db.write(move |s| s.delete_session(&old)).await
    {
        return store_failed(state, visitor, e);
    }
    match start_session(state, visitor, jar, user, user_agent(headers)).await {
        Ok(jar) => {
            tracing::info!(user = %user.username, "signed in with Twitter");
            (jar, see_other(next)).into_response()
        }
        Err(e) => store_failed(state, visitor, e),
    }
}

/// Links `who` to the user who started linking, if that user is still the
/// one signed in on this browser.
async fn link(state: &AppState, visitor: &Visitor, who: TwitterUser, user_id: i64) -> Response {
    let signed = match &visitor.signed {
        Some(s) if s.user.id == user_id => s.clone(),
        _ => {
            return problem(
                state,
                visitor,
                StatusCode::FORBIDDEN,
                "Twitter was not linked",
                "This browser is no longer signed in as the account that asked to link Twitter. Sign in again, and link Twitter from the account page.",
            );
        }
    };
    let (id, name) = (who.id.clone(), who.screen_name.clone());
    let outcome = state
        .db
        .write(move |s| s.link_twitter(user_id, &id, &name, unix_now()))
        .await;
    let refused = |text: String| {
        account_page(
            state,
            visitor,
            &signed,
            StatusCode::CONFLICT,
            json!({"twitter_error": text}),
        )
    };
    match outcome {
        Ok(LinkOutcome::Linked) | Ok(LinkOutcome::AlreadyYours) => {
            tracing::info!(user = %signed.user.username, twitter = %who.screen_name, "linked Twitter");
            see_other("/account?done=twitter-linked")
        }
        Ok(LinkOutcome::TakenByOther) => {
            refused(format!(
                "The Twitter account @{} is already linked to another account on this server, so it was not linked to yours. Sign in with Twitter to use that account, or unlink it there first.",
                who.screen_name
            ))
            .await
        }
        Ok(LinkOutcome::UserHasAnother(other)) => {
            refused(format!(
                "Your account is already linked to @{other}; unlink it first to link @{}.",
                who.screen_name
            ))
            .await
        }
        Ok(LinkOutcome::NoSuchUser) => see_other("/login"),
        Err(e) => store_failed(state, visitor, e),
    }
}
