//! Signing in and out, and making an account: `/login`, `/logout`,
//! `/signup` (the first account, or anyone under `--signup open`), and
//! `/invite/TOKEN`. Forms use the fields `username` and `password`.

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;
use serde_json::json;

use super::{see_other, store_failed};
use crate::bridge::hub::unix_now;
use crate::store::StoreError;
use crate::store::users::{check_new_password, hash_password};
use crate::web::AppState;
use crate::web::app::SignupPolicy;
use crate::web::app::auth::{
    CsrfForm, FORM_COOKIE, SESSION_COOKIE, St, Visitor, safe_next, start_session,
};
use crate::web::app::render::page;

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct Nothing {}

/// The User-Agent, for the account page's list of sessions.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The sign-in page (or the first-account page while nobody has one).
pub fn login_form(
    state: &AppState,
    visitor: &Visitor,
    jar: CookieJar,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<String>,
) -> Response {
    let (jar, csrf) = visitor.ensure_form_token(jar);
    let ctx = json!({"next": next, "username": username, "error": error, "csrf": csrf,
        "open_signup": state.app.config.signup == SignupPolicy::Open});
    (jar, page(state, visitor, status, "login.html", ctx)).into_response()
}

fn first_account_form(
    state: &AppState,
    visitor: &Visitor,
    jar: CookieJar,
    status: StatusCode,
    username: &str,
    error: Option<String>,
) -> Response {
    let (jar, csrf) = visitor.ensure_form_token(jar);
    let ctx = json!({"username": username, "error": error, "csrf": csrf});
    (jar, page(state, visitor, status, "first.html", ctx)).into_response()
}

/// Whether no account exists yet.
pub async fn nobody_yet(state: &AppState) -> Result<bool, StoreError> {
    Ok(state.db.read(|s| s.user_count()).await? == 0)
}

/// `GET /login`.
pub async fn login_page(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Response {
    if visitor.signed.is_some() {
        return see_other(&safe_next(q.next.as_deref()));
    }
    match nobody_yet(&state).await {
        Ok(true) => return see_other("/"),
        Ok(false) => {}
        Err(e) => return store_failed(&state, &visitor, e),
    }
    login_form(
        &state,
        &visitor,
        jar,
        StatusCode::OK,
        &safe_next(q.next.as_deref()),
        "",
        None,
    )
}

fn wait_text(wait: std::time::Duration) -> String {
    let secs = wait.as_secs().max(1);
    let span = if secs < 90 {
        format!("{secs} seconds")
    } else {
        format!("{} minutes", secs.div_ceil(60))
    };
    format!("Too many failed sign-ins. Wait {span}, then try again.")
}

/// `POST /login`.
pub async fn login(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let username = form.username.trim().to_string();
    let throttle = &state.app.throttle;
    if let Some(wait) = throttle.wait(&username, visitor.ip) {
        let mut r = login_form(
            &state,
            &visitor,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            &username,
            Some(wait_text(wait)),
        );
        if let Ok(v) = wait.as_secs().max(1).to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let verified = crate::web::app::auth::verify_password(&state, &username, form.password).await;
    let user = match verified {
        Ok(Some(user)) => user,
        Ok(None) => {
            let error = match throttle.failed(&username, visitor.ip) {
                Some(wait) => wait_text(wait),
                None => {
                    "That username and password don't match an account. Check both and try again."
                        .to_string()
                }
            };
            tracing::info!(ip = %visitor.ip, "a sign-in failed");
            return login_form(
                &state,
                &visitor,
                jar,
                StatusCode::UNAUTHORIZED,
                &next,
                &username,
                Some(error),
            );
        }
        Err(e) => return store_failed(&state, &visitor, e),
    };
    throttle.succeeded(&username);
    if user.disabled_at.is_some() {
        return login_form(
            &state,
            &visitor,
            jar,
            StatusCode::FORBIDDEN,
            &next,
            &username,
            Some("This account is disabled. Ask an administrator of this server.".into()),
        );
    }
    match start_session(&state, &visitor, jar, &user, user_agent(&headers)).await {
        Ok(jar) => {
            tracing::info!(user = %user.username, "signed in");
            (jar, see_other(&next)).into_response()
        }
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /logout`: ends this browser's session.
pub async fn logout(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    if let Some(id) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string())
        && let Err(e) = state.db.write(move |s| s.delete_session(&id)).await
    {
        return store_failed(&state, &visitor, e);
    }
    let jar = jar
        .remove(Cookie::build(SESSION_COOKIE).path("/"))
        .remove(Cookie::build(FORM_COOKIE).path("/"));
    (jar, see_other("/")).into_response()
}

/// Checks and hashes a new account's password off the async threads.
pub async fn hashed_new_password(password: String) -> Result<String, String> {
    check_new_password(&password).map_err(|e| e.to_string())?;
    crate::web::app::auth::password_work(move || hash_password(&password))
        .await
        .map_err(|e| format!("could not hash the password: {e}"))?
        .map_err(|e| e.to_string())
}

/// What to tell a person whose new account was refused.
fn signup_error(e: StoreError) -> Result<String, StoreError> {
    match e {
        StoreError::InvalidUsername(_)
        | StoreError::UsernameTaken(_)
        | StoreError::InvalidPassword(_) => Ok(capitalise(&e.to_string())),
        other => Err(other),
    }
}

pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn signup_form(
    state: &AppState,
    visitor: &Visitor,
    jar: CookieJar,
    status: StatusCode,
    action: &str,
    username: &str,
    error: Option<String>,
    invite_admin: bool,
) -> Response {
    let (jar, csrf) = visitor.ensure_form_token(jar);
    let ctx = json!({"action": action, "username": username, "error": error, "csrf": csrf,
        "invite_admin": invite_admin});
    (jar, page(state, visitor, status, "signup.html", ctx)).into_response()
}

/// `GET /signup`.
pub async fn signup_page(St(state): St, visitor: Visitor, jar: CookieJar) -> Response {
    match nobody_yet(&state).await {
        Ok(true) => return see_other("/"),
        Ok(false) => {}
        Err(e) => return store_failed(&state, &visitor, e),
    }
    if visitor.signed.is_some() {
        return see_other("/");
    }
    match state.app.config.signup {
        SignupPolicy::Open => signup_form(
            &state,
            &visitor,
            jar,
            StatusCode::OK,
            "/signup",
            "",
            None,
            false,
        ),
        policy => signup_closed(&state, &visitor, policy),
    }
}

fn signup_closed(state: &AppState, visitor: &Visitor, policy: SignupPolicy) -> Response {
    let text = match policy {
        SignupPolicy::Invite => {
            "New accounts on this server are made with an invite link. Ask its administrator for one."
        }
        _ => "This server does not take new accounts. Its administrator can add you.",
    };
    page(
        state,
        visitor,
        StatusCode::FORBIDDEN,
        "error.html",
        json!({"title": "Sign-up is closed", "text": text}),
    )
}

/// `POST /signup`: the first account (an administrator), or anyone while
/// sign-up is open.
pub async fn signup(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> Response {
    let first = match nobody_yet(&state).await {
        Ok(first) => first,
        Err(e) => return store_failed(&state, &visitor, e),
    };
    let policy = state.app.config.signup;
    if !first && policy != SignupPolicy::Open {
        return signup_closed(&state, &visitor, policy);
    }
    let username = form.username.trim().to_string();
    let refuse = |jar, error: String| {
        if first {
            first_account_form(
                &state,
                &visitor,
                jar,
                StatusCode::UNPROCESSABLE_ENTITY,
                &username,
                Some(error),
            )
        } else {
            signup_form(
                &state,
                &visitor,
                jar,
                StatusCode::UNPROCESSABLE_ENTITY,
                "/signup",
                &username,
                Some(error),
                false,
            )
        }
    };
    let hash = match hashed_new_password(form.password).await {
        Ok(h) => h,
        Err(e) => return refuse(jar, capitalise(&e)),
    };
    let name = username.clone();
    let created = state
        .db
        .write(move |s| s.create_user_hashed(&name, Some(&hash), first, first, unix_now()))
        .await;
    let user = match created {
        Ok(Some(u)) => u,
        // Someone made the first account a moment ago: this one is not it.
        Ok(None) => return signup_closed(&state, &visitor, policy),
        Err(e) => match signup_error(e) {
            Ok(text) => return refuse(jar, text),
            Err(e) => return store_failed(&state, &visitor, e),
        },
    };
    tracing::info!(user = %user.username, admin = user.is_admin, "account created on the web");
    match start_session(&state, &visitor, jar, &user, user_agent(&headers)).await {
        Ok(jar) => (jar, see_other("/")).into_response(),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `/` for a signed-out visitor while no account exists.
pub fn first_account(state: &AppState, visitor: &Visitor, jar: CookieJar) -> Response {
    first_account_form(state, visitor, jar, StatusCode::OK, "", None)
}

/// `GET /invite/TOKEN`.
pub async fn invite_page(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    Path(token): Path<String>,
) -> Response {
    let t = token.clone();
    match state.db.read(move |s| s.invite(&t, unix_now())).await {
        Ok(Ok(invite)) => signup_form(
            &state,
            &visitor,
            jar,
            StatusCode::OK,
            &format!("/invite/{}", crate::web::app::auth::percent_encode(&token)),
            "",
            None,
            invite.make_admin,
        ),
        Ok(Err(problem)) => page(
            &state,
            &visitor,
            StatusCode::NOT_FOUND,
            "error.html",
            json!({"title": "This invite can't be used", "text": capitalise(&problem.to_string())}),
        ),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /invite/TOKEN`: makes the account and uses the invite up.
pub async fn invite_signup(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    headers: HeaderMap,
    Path(token): Path<String>,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> Response {
    let action = format!("/invite/{}", crate::web::app::auth::percent_encode(&token));
    let username = form.username.trim().to_string();
    let hash = match hashed_new_password(form.password).await {
        Ok(h) => h,
        Err(e) => {
            return signup_form(
                &state,
                &visitor,
                jar,
                StatusCode::UNPROCESSABLE_ENTITY,
                &action,
                &username,
                Some(capitalise(&e)),
                false,
            );
        }
    };
    let name = username.clone();
    let result = state
        .db
        .write(move |s| s.sign_up_with_invite(&token, &name, &hash, unix_now()))
        .await;
    let user = match result {
        Ok(Ok(user)) => user,
        Ok(Err(problem)) => {
            return page(
                &state,
                &visitor,
                StatusCode::NOT_FOUND,
                "error.html",
                json!({"title": "This invite can't be used", "text": capitalise(&problem.to_string())}),
            );
        }
        Err(e) => match signup_error(e) {
            Ok(text) => {
                return signup_form(
                    &state,
                    &visitor,
                    jar,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &action,
                    &username,
                    Some(text),
                    false,
                );
            }
            Err(e) => return store_failed(&state, &visitor, e),
        },
    };
    tracing::info!(user = %user.username, admin = user.is_admin, "account created with an invite");
    // Whoever was signed in on this browser is signed out of it.
    if let Some(old) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) {
        let _ = state.db.write(move |s| s.delete_session(&old)).await;
    }
    match start_session(&state, &visitor, jar, &user, user_agent(&headers)).await {
        Ok(jar) => (jar, see_other("/")).into_response(),
        Err(e) => store_failed(&state, &visitor, e),
    }
}
