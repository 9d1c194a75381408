//! `/account`: change my password, my API key (shown once when made,
//! stored hashed), and the browsers signed in as me, each of which I can
//! sign out — or all of them at once ("sign out everywhere"); the linked
//! Twitter account ([`super::twitter`] links and unlinks it). An account
//! made with Twitter has no password: it sets one without a current one.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;
use serde_json::json;

use super::session::{capitalise, hashed_new_password};
use super::{see_other, store_failed};
use crate::bridge::hub::unix_now;
use crate::web::AppState;
use crate::web::app::auth::{
    CsrfForm, SESSION_COOKIE, Signed, SignedIn, St, Visitor, random_token,
};
use crate::web::app::render::page;

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct SessionForm {
    #[serde(default)]
    session: String,
}

#[derive(Deserialize)]
pub struct Nothing {}

/// The account page, with whatever one action wants to say.
pub(crate) async fn account_page(
    state: &AppState,
    visitor: &Visitor,
    signed: &Signed,
    status: StatusCode,
    extra: serde_json::Value,
) -> Response {
    let user_id = signed.user.id;
    let read = state
        .db
        .read(move |s| {
            Ok::<_, crate::store::StoreError>((
                s.sessions_of(user_id, unix_now())?,
                s.user_by_id(user_id)?,
                s.twitter_identity_of(user_id)?,
            ))
        })
        .await;
    let (sessions, user, twitter) = match read {
        Ok((sessions, Some(user), twitter)) => (sessions, user, twitter),
        Ok((_, None, _)) => return see_other("/login"),
        Err(e) => return store_failed(state, visitor, e),
    };
    let sessions: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id_hash,
                "this": s.id_hash == signed.session.id_hash,
                "created_at": s.created_at,
                "last_seen_at": s.last_seen_at,
                "user_agent": s.user_agent.as_deref().map(describe_agent),
                "ip": s.ip,
            })
        })
        .collect();
    let mut ctx = json!({
        "user": {"username": user.username, "is_admin": user.is_admin, "created_at": user.created_at,
                 "api_key_prefix": user.api_key_prefix, "has_password": user.has_password},
        "sessions": sessions,
        "twitter_link": twitter.map(|t| t.screen_name),
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (ctx.as_object_mut(), extra) {
        map.extend(extra);
    }
    page(state, visitor, status, "account.html", ctx)
}

/// "Firefox on Android" from a User-Agent, roughly; the raw text if
/// nothing is recognised.
fn describe_agent(ua: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_string(),
        _ => ua.chars().take(60).collect(),
    }
}

/// `GET /account`.
pub async fn account(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Query(q): Query<Done>,
) -> Response {
    account_page(
        &state,
        &visitor,
        &signed,
        StatusCode::OK,
        json!({"done": q.done}),
    )
    .await
}

/// `POST /account/password`: needs the current password; signs out every
/// other browser.
pub async fn change_password(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Response {
    let username = signed.user.username.clone();
    // An account made with Twitter has no password to give.
    let needs_current = signed.user.has_password;
    if needs_current && let Some(wait) = state.app.throttle.wait(&username, visitor.ip) {
        let text = format!(
            "Too many wrong passwords. Wait {} seconds, then try again.",
            wait.as_secs().max(1)
        );
        return account_page(
            &state,
            &visitor,
            &signed,
            StatusCode::TOO_MANY_REQUESTS,
            json!({"password_error": text}),
        )
        .await;
    }
    let ok = !needs_current
        || match crate::web::app::auth::verify_password(&state, &username, form.current_password)
            .await
        {
            Ok(found) => found.is_some_and(|u| u.id == signed.user.id),
            Err(e) => return store_failed(&state, &visitor, e),
        };
    if !ok {
        state.app.throttle.failed(&username, visitor.ip);
        return account_page(
            &state,
            &visitor,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"password_error": "Your current password is not right; nothing was changed."}),
        )
        .await;
    }
    let hash = match hashed_new_password(form.password).await {
        Ok(h) => h,
        Err(e) => {
            return account_page(
                &state,
                &visitor,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"password_error": capitalise(&e)}),
            )
            .await;
        }
    };
    let (user_id, keep) = (signed.user.id, signed.session.id_hash.clone());
    let done = state
        .db
        .write(move |s| {
            s.set_password_hash(user_id, Some(&hash))?;
            s.delete_sessions_of(user_id, Some(&keep))
        })
        .await;
    match done {
        Ok(_) => see_other("/account?done=password"),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /account/api-key`: a new API key, shown once; the old one stops
/// working.
pub async fn regenerate_api_key(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    let key = random_token(24);
    let (user_id, k) = (signed.user.id, key.clone());
    if let Err(e) = state.db.write(move |s| s.set_api_key(user_id, &k)).await {
        return store_failed(&state, &visitor, e);
    }
    account_page(
        &state,
        &visitor,
        &signed,
        StatusCode::OK,
        json!({"new_api_key": key}),
    )
    .await
}

/// `POST /account/sessions/end`: signs one of my browsers out.
pub async fn end_session(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    SignedIn(signed): SignedIn,
    CsrfForm(form): CsrfForm<SessionForm>,
) -> Response {
    let (user_id, target) = (signed.user.id, form.session.clone());
    let ended = state
        .db
        .write(move |s| {
            // Only one of my own sessions.
            let mine = s.sessions_of(user_id, unix_now())?;
            if mine.iter().any(|m| m.id_hash == target) {
                s.delete_session_by_hash(&target)
            } else {
                Ok(false)
            }
        })
        .await;
    match ended {
        Ok(_) if form.session == signed.session.id_hash => (
            jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
            see_other("/"),
        )
            .into_response(),
        Ok(_) => see_other("/account?done=signed-out"),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /account/sessions/end-all`: signs out everywhere, this browser
/// too.
pub async fn end_all_sessions(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    SignedIn(signed): SignedIn,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    let user_id = signed.user.id;
    match state
        .db
        .write(move |s| s.delete_sessions_of(user_id, None))
        .await
    {
        Ok(n) => {
            tracing::info!(user = %signed.user.username, sessions = n, "signed out everywhere");
            (
                jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
                see_other("/"),
            )
                .into_response()
        }
        Err(e) => store_failed(&state, &visitor, e),
    }
}
