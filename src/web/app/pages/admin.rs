//! `/admin`, for administrators only (anyone else gets the 404 page):
//! users (add, reset a password, disable, delete, make admin), invites,
//! every bridge (connected now, IP, firmware, its log), every printer, and
//! the server's settings — what the old status page showed, behind a
//! sign-in.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{capitalise, hashed_new_password};
use super::{not_found_page, see_other, store_failed};
use crate::bridge::hub::unix_now;
use crate::protocol::BridgeAddress;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::app::auth::{Admin, CsrfForm, St, Visitor, random_token};
use crate::web::app::render::page;

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct InviteForm {
    make_admin: Option<String>,
}

#[derive(Deserialize)]
pub struct AddUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    make_admin: Option<String>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    confirm: Option<String>,
}

#[derive(Deserialize)]
pub struct Nothing {}

fn human_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86399 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days", secs / 86400),
    }
}

/// The admin page, with whatever one action wants to say.
async fn admin_page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    extra: Value,
) -> Response {
    let now = unix_now();
    let read = state
        .db
        .read(move |s| {
            Ok::<_, StoreError>((
                s.list_users()?,
                s.list_invites(now)?,
                s.list_bridges()?,
                s.list_printers()?,
            ))
        })
        .await;
    let (users, invites, bridges, printers) = match read {
        Ok(r) => r,
        Err(e) => return store_failed(state, visitor, e),
    };
    let hub = &state.hub;
    let live = hub.live_bridges();
    let users: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({"id": u.id, "username": u.username, "is_admin": u.is_admin, "disabled": u.disabled_at.is_some(),
                   "printers": u.printer_count, "created_at": u.created_at, "has_password": u.has_password})
        })
        .collect();
    let invites: Vec<Value> = invites
        .iter()
        .map(|i| {
            json!({"id": i.id, "by": i.created_by_name, "make_admin": i.make_admin, "created_at": i.created_at,
                   "expires_at": i.expires_at, "used_at": i.used_at, "used_by": i.used_by_name,
                   "expired": i.used_at.is_none() && i.expires_at <= now})
        })
        .collect();
    let bridges: Vec<Value> = bridges
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
                "last_seen": if conn.is_some() { now } else { b.last_seen },
            })
        })
        .collect();
    let printers: Vec<Value> = printers
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "owner": p.owner,
                "address": p.address.to_string(),
                "online": hub.is_online(p.address),
                "last_heard": hub.last_heard(p.address).or(p.last_heard),
            })
        })
        .collect();
    let printing = state.printing.config();
    let render = state.printing.renderer().config();
    let app = &state.app.config;
    let settings = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": human_duration(hub.uptime().as_secs()),
        "port": state.port,
        "public_url": state.public_url,
        "signup": app.signup.as_str(),
        "trusted_proxies": app.trusted_proxies.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "templates_dir": app.templates_dir.as_ref().map(|d| d.display().to_string()),
        "twitter": app.twitter.as_ref().map(|t| t.api_url.clone()),
        "history": printing.history,
        "hold_days": printing.hold_limit.as_secs() / 86400,
        "time_zone": printing.time_zone.iana_name().unwrap_or("system"),
        "fetch_images": format!("{:?}", render.fetch_images).to_lowercase(),
        "bridges_connected": hub.bridges_connected(),
        "printers_online": hub.printers_online(),
    });
    let mut ctx = json!({
        "users": users, "invites": invites, "bridges": bridges, "printers": printers,
        "settings": settings,
    });
    if let (Some(map), Value::Object(extra)) = (ctx.as_object_mut(), extra) {
        map.extend(extra);
    }
    page(state, visitor, status, "admin.html", ctx)
}

/// `GET /admin`.
pub async fn admin(St(state): St, visitor: Visitor, _: Admin, Query(q): Query<Done>) -> Response {
    admin_page(&state, &visitor, StatusCode::OK, json!({"done": q.done})).await
}

/// The address people open an invite at.
fn invite_url(state: &AppState, visitor: &Visitor, token: &str) -> String {
    let base = state
        .public_url
        .clone()
        .or_else(|| visitor.origin.clone())
        .unwrap_or_default();
    format!("{}/invite/{token}", base.trim_end_matches('/'))
}

/// `POST /admin/invites`: a new one-time link, shown once.
pub async fn create_invite(
    St(state): St,
    visitor: Visitor,
    Admin(admin): Admin,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Response {
    let token = random_token(24);
    let make_admin = form.make_admin.is_some();
    let (t, by) = (token.clone(), admin.user.id);
    match state
        .db
        .write(move |s| s.create_invite(&t, Some(by), make_admin, unix_now()))
        .await
    {
        Ok(_) => {
            let url = invite_url(&state, &visitor, &token);
            admin_page(
                &state,
                &visitor,
                StatusCode::OK,
                json!({"new_invite": url, "new_invite_admin": make_admin}),
            )
            .await
        }
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /admin/invites/ID/delete`: withdraws an unused invite.
pub async fn delete_invite(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    match state.db.write(move |s| s.delete_invite(id)).await {
        Ok(_) => see_other("/admin?done=invite-withdrawn#invites"),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /admin/users`: adds an account (how people get in while sign-up
/// is closed).
pub async fn add_user(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    CsrfForm(form): CsrfForm<AddUserForm>,
) -> Response {
    let username = form.username.trim().to_string();
    let refuse = |text: String| {
        let state = &state;
        let visitor = &visitor;
        let username = username.clone();
        async move {
            admin_page(
                state,
                visitor,
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"add_error": text, "add_username": username}),
            )
            .await
        }
    };
    let hash = match hashed_new_password(form.password).await {
        Ok(h) => h,
        Err(e) => return refuse(capitalise(&e)).await,
    };
    let (name, make_admin) = (username.clone(), form.make_admin.is_some());
    match state
        .db
        .write(move |s| s.create_user_hashed(&name, Some(&hash), make_admin, false, unix_now()))
        .await
    {
        Ok(_) => see_other("/admin?done=user-added#users"),
        Err(e @ (StoreError::InvalidUsername(_) | StoreError::UsernameTaken(_))) => {
            refuse(capitalise(&e.to_string())).await
        }
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// Looks a user up for an action; `None` (then 404) if there is none.
async fn existing_user(
    state: &AppState,
    id: i64,
) -> Result<Option<crate::store::User>, StoreError> {
    state.db.read(move |s| s.user_by_id(id)).await
}

/// The outcome of a user action: back to the page, or the reason it was
/// refused.
async fn after(
    state: &AppState,
    visitor: &Visitor,
    result: Result<bool, StoreError>,
    done: &str,
) -> Response {
    match result {
        Ok(true) => see_other(&format!("/admin?done={done}#users")),
        Ok(false) => not_found_page(state, visitor),
        Err(StoreError::LastAdmin) => {
            admin_page(
                state,
                visitor,
                StatusCode::CONFLICT,
                json!({"user_error": capitalise(&StoreError::LastAdmin.to_string()) + "."}),
            )
            .await
        }
        Err(e) => store_failed(state, visitor, e),
    }
}

/// `POST /admin/users/ID/password`: sets a new password and signs the user
/// out everywhere.
pub async fn reset_password(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Response {
    let hash = match hashed_new_password(form.password).await {
        Ok(h) => h,
        Err(e) => {
            return admin_page(
                &state,
                &visitor,
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"user_error": capitalise(&e)}),
            )
            .await;
        }
    };
    let result = state
        .db
        .write(move |s| {
            let found = s.set_password_hash(id, Some(&hash))?;
            s.delete_sessions_of(id, None)?;
            Ok(found)
        })
        .await;
    after(&state, &visitor, result, "password-reset").await
}

/// `POST /admin/users/ID/disable`.
pub async fn disable_user(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    let result = state
        .db
        .write(move |s| s.set_disabled(id, Some(unix_now())))
        .await;
    after(&state, &visitor, result, "disabled").await
}

/// `POST /admin/users/ID/enable`.
pub async fn enable_user(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    let result = state.db.write(move |s| s.set_disabled(id, None)).await;
    after(&state, &visitor, result, "enabled").await
}

/// `POST /admin/users/ID/admin`.
pub async fn make_admin(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    let result = state.db.write(move |s| s.set_admin(id, true)).await;
    after(&state, &visitor, result, "made-admin").await
}

/// `POST /admin/users/ID/unadmin`.
pub async fn remove_admin(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    let result = state.db.write(move |s| s.set_admin(id, false)).await;
    after(&state, &visitor, result, "admin-removed").await
}

/// `POST /admin/users/ID/delete`: without `confirm=yes`, a page that says
/// what happens to their printers and asks; with it, the account goes.
pub async fn delete_user(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Response {
    let user = match existing_user(&state, id).await {
        Ok(Some(u)) => u,
        Ok(None) => return not_found_page(&state, &visitor),
        Err(e) => return store_failed(&state, &visitor, e),
    };
    if form.confirm.as_deref() != Some("yes") {
        let printers = match state.db.read(move |s| s.printers_owned_by(id)).await {
            Ok(p) => p,
            Err(e) => return store_failed(&state, &visitor, e),
        };
        let names: Vec<String> = printers
            .iter()
            .map(|p| format!("{} ({})", p.name.clone().unwrap_or_default(), p.address))
            .collect();
        return page(
            &state,
            &visitor,
            StatusCode::OK,
            "admin_delete.html",
            json!({"user": {"id": user.id, "username": user.username}, "printers": names}),
        );
    }
    let result = state.db.write(move |s| s.delete_user(id, unix_now())).await;
    if result.as_ref().is_ok_and(|d| *d) {
        tracing::info!(user = %user.username, "account deleted on the admin page");
    }
    after(&state, &visitor, result, "deleted").await
}

/// `GET /admin/bridges/ADDRESS`: one bridge and its newest log lines.
pub async fn bridge(
    St(state): St,
    visitor: Visitor,
    _: Admin,
    Path(address): Path<String>,
) -> Response {
    let Ok(address) = BridgeAddress::parse(&address) else {
        return not_found_page(&state, &visitor);
    };
    let read = state
        .db
        .read(move |s| Ok::<_, StoreError>((s.list_bridges()?, s.bridge_log(address, 300)?)))
        .await;
    let (bridges, log) = match read {
        Ok(r) => r,
        Err(e) => return store_failed(&state, &visitor, e),
    };
    let Some(b) = bridges.into_iter().find(|b| b.address == address) else {
        return not_found_page(&state, &visitor);
    };
    let live = state.hub.live_bridges();
    let conn = live.iter().find(|l| l.0 == address);
    let log: Vec<Value> = log
        .iter()
        .map(|l| json!({"at": l.created.map(|c| c as i64).unwrap_or(l.received_at), "level": l.level, "logger": l.logger, "message": l.message}))
        .collect();
    page(
        &state,
        &visitor,
        StatusCode::OK,
        "admin_bridge.html",
        json!({
            "bridge": {
                "address": b.address.to_string(), "connected": conn.is_some(),
                "ip": conn.map(|c| c.1.clone()).or(b.remote_ip), "firmware": conn.and_then(|c| c.2.clone()).or(b.firmware_version),
                "model": b.model, "ncp_version": b.ncp_version, "local_ip": b.local_ip_address, "mac": b.mac_address,
                "first_seen": b.first_seen, "last_power_on": b.last_power_on, "last_seen": b.last_seen,
                "connected_since": conn.map(|c| c.3),
            },
            "log": log,
        }),
    )
}
