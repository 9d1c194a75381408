//! `/printer/ID`: one printer. Its owner sees its status, history (with
//! the page pictures, reprint), queue (cancel), print keys (create,
//! revoke, uses, senders), sharing, and can rename or remove it. A user it
//! is shared with sees its status and the messages they sent to it (and
//! may print those again or cancel them). Anyone else gets the same 404 as
//! a printer that does not exist.
//!
//! Message states update live: `/printer/ID/states` answers the states of
//! the messages on the page as JSON, and `printer.js` asks every 2 s while
//! one is still on its way. Without JavaScript the page reloads itself
//! every 5 s while one is.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::capitalise;
use super::{not_found_page, see_other, store_failed};
use crate::bridge::hub::unix_now;
use crate::store::shares::{Access, ShareError};
use crate::store::{ClaimError, MessageState, PrinterRow, StoreError};
use crate::web::AppState;
use crate::web::app::auth::{CsrfForm, Signed, SignedIn, St, Visitor};
use crate::web::app::render::page;

/// Messages shown in the history.
const HISTORY: usize = 30;

#[derive(Deserialize)]
pub struct Nothing {}

#[derive(Deserialize)]
pub struct LabelForm {
    label: Option<String>,
}

#[derive(Deserialize)]
pub struct ShareForm {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
pub struct RemoveForm {
    /// The "yes, remove it" box.
    confirm: Option<String>,
}

/// The messages `signed` may see on a printer: all of them for its owner,
/// their own for someone it is shared with; newest first.
async fn visible_messages(
    state: &AppState,
    id: i64,
    access: Access,
    user_id: i64,
) -> Result<Vec<crate::store::MessageRow>, StoreError> {
    state
        .db
        .read(move |s| match access {
            Access::Owner => s.recent_messages(id, HISTORY),
            Access::Shared => s.recent_messages_from(id, user_id, HISTORY),
        })
        .await
}

/// A message of printer `id` that this user may act on (reprint, cancel,
/// see its page): the owner any, a user it is shared with their own.
async fn own_message(
    state: &AppState,
    visitor: &Visitor,
    signed: &Signed,
    id: i64,
    mid: i64,
) -> Result<crate::store::MessageRow, Response> {
    let (_, access) = access(state, visitor, signed, id).await?;
    match state.db.read(move |s| s.message(mid)).await {
        Ok(Some(m))
            if m.printer_id == id
                && (access == Access::Owner || m.sender_user_id == Some(signed.user.id)) =>
        {
            Ok(m)
        }
        Ok(_) => Err(not_found_page(state, visitor)),
        Err(e) => Err(store_failed(state, visitor, e)),
    }
}

fn message_json(m: &crate::store::MessageRow) -> Value {
    json!({"id": m.id, "sender": m.sender, "state": m.state.as_str(), "words": state_words(m.state),
           "failure": m.failure, "created_at": m.created_at, "printed": m.printed_at.is_some(),
           "queued": m.state == MessageState::Queued, "final": m.state.is_final(),
           "height": m.page_height})
}

/// The printer if this user may see it, else the 404 page.
async fn access(
    state: &AppState,
    visitor: &Visitor,
    signed: &Signed,
    id: i64,
) -> Result<(PrinterRow, Access), Response> {
    let user_id = signed.user.id;
    match state.db.read(move |s| s.printer_access(id, user_id)).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(not_found_page(state, visitor)),
        Err(e) => Err(store_failed(state, visitor, e)),
    }
}

/// The printer if this user owns it, else the 404 page.
async fn owned(
    state: &AppState,
    visitor: &Visitor,
    signed: &Signed,
    id: i64,
) -> Result<PrinterRow, Response> {
    match access(state, visitor, signed, id).await? {
        (p, Access::Owner) => Ok(p),
        _ => Err(not_found_page(state, visitor)),
    }
}

/// What a message's state means, in words.
fn state_words(state: MessageState) -> &'static str {
    match state {
        MessageState::Queued => "waiting",
        MessageState::Sent => "sent to the printer",
        MessageState::Delivered => "printed",
        MessageState::Failed => "failed",
        MessageState::TimedOut => "no answer",
        MessageState::Expired => "expired",
    }
}

fn key_base(state: &AppState, visitor: &Visitor) -> String {
    state
        .public_url
        .clone()
        .or_else(|| visitor.origin.clone())
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string()
}

/// The printer page, with whatever one action wants to say.
async fn printer_page(
    state: &AppState,
    visitor: &Visitor,
    signed: &Signed,
    id: i64,
    status: StatusCode,
    extra: Value,
) -> Response {
    let (printer, access) = match access(state, visitor, signed, id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let online = state.hub.is_online(printer.address);
    let mut ctx = json!({
        "printer": {
            "id": printer.id,
            "name": printer.name,
            "owner": printer.owner,
            "address": printer.address.to_string(),
            "online": online,
            "last_heard": state.hub.last_heard(printer.address).or(printer.last_heard),
            "bridge": printer.last_bridge.map(|b| b.to_string()),
        },
        "owner": access == Access::Owner,
    });
    let messages = match visible_messages(state, id, access, signed.user.id).await {
        Ok(m) => m,
        Err(e) => return store_failed(state, visitor, e),
    };
    if let Some(map) = ctx.as_object_mut() {
        map.insert(
            "pending".into(),
            messages.iter().any(|m| !m.state.is_final()).into(),
        );
        map.insert(
            "messages".into(),
            messages.iter().map(message_json).collect::<Vec<_>>().into(),
        );
    }
    if access == Access::Owner {
        let read = state
            .db
            .read(move |s| {
                Ok::<_, StoreError>((s.print_keys_of(id)?, s.shares_of(id)?, s.queued_count(id)?))
            })
            .await;
        let (keys, shares, queued) = match read {
            Ok(r) => r,
            Err(e) => return store_failed(state, visitor, e),
        };
        let keys: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({"id": k.id, "prefix": k.prefix, "label": k.label, "created_at": k.created_at,
                       "revoked": k.revoked_at.is_some(), "uses": k.uses, "last_used_at": k.last_used_at,
                       "senders": k.senders})
            })
            .collect();
        let shares: Vec<Value> = shares
            .iter()
            .map(|s| json!({"user_id": s.user_id, "username": s.username, "since": s.created_at}))
            .collect();
        if let Some(map) = ctx.as_object_mut() {
            map.insert("keys".into(), keys.into());
            map.insert("shares".into(), shares.into());
            map.insert("queued".into(), queued.into());
        }
    }
    if let (Some(map), Value::Object(extra)) = (ctx.as_object_mut(), extra) {
        map.extend(extra);
    }
    page(state, visitor, status, "printer.html", ctx)
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /printer/ID`.
pub async fn printer(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
    axum::extract::Query(q): axum::extract::Query<Done>,
) -> Response {
    printer_page(
        &state,
        &visitor,
        &signed,
        id,
        StatusCode::OK,
        json!({"done": q.done}),
    )
    .await
}

/// `GET /printer/ID/states`: the state of every message on the printer
/// page (the same ones), and whether the printer is online, as JSON, for
/// the page to update itself.
pub async fn states(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
) -> Response {
    let (printer, access) = match access(&state, &visitor, &signed, id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let messages = match visible_messages(&state, id, access, signed.user.id).await {
        Ok(m) => m,
        Err(e) => return store_failed(&state, &visitor, e),
    };
    let body = json!({
        "online": state.hub.is_online(printer.address),
        "messages": messages.iter().map(message_json).collect::<Vec<_>>(),
    });
    let mut r = axum::Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /printer/ID/message/MID.png`: the page as it printed. The owner
/// sees every message of the printer, a user it is shared with their own;
/// nobody else sees any.
pub async fn message_png(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path((id, file)): Path<(i64, String)>,
) -> Response {
    let Some(mid) = file
        .strip_suffix(".png")
        .and_then(|m| m.parse::<i64>().ok())
    else {
        return not_found_page(&state, &visitor);
    };
    if let Err(r) = own_message(&state, &visitor, &signed, id, mid).await {
        return r;
    }
    let read = state.db.read(move |s| s.message_page(mid)).await;
    match read {
        Ok(Some(png)) => {
            let mut r = ([(header::CONTENT_TYPE, "image/png")], png).into_response();
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400"),
            );
            r
        }
        Ok(None) => not_found_page(&state, &visitor),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /printer/ID/message/MID/reprint`: the same page again.
pub async fn reprint(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path((id, mid)): Path<(i64, i64)>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    if let Err(r) = own_message(&state, &visitor, &signed, id, mid).await {
        return r;
    }
    let done = state
        .printing
        .reprint(mid, &signed.user.username, Some(signed.user.id))
        .await;
    match done {
        Ok(_) => see_other(&format!("/printer/{id}?done=reprinted#history")),
        Err(crate::printing::PrintError::QueueFull(n)) => {
            printer_page(
                &state,
                &visitor,
                &signed,
                id,
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": format!("The queue is full: {n} messages are waiting. Nothing was added; try again when some have printed.")}),
            )
            .await
        }
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /printer/ID/message/MID/cancel`: takes a waiting message out of
/// the queue.
pub async fn cancel(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path((id, mid)): Path<(i64, i64)>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    if let Err(r) = own_message(&state, &visitor, &signed, id, mid).await {
        return r;
    }
    match state.db.write(move |s| s.cancel_queued(id, mid)).await {
        Ok(true) => see_other(&format!("/printer/{id}?done=cancelled#history")),
        Ok(false) => see_other(&format!("/printer/{id}?done=not-cancelled#history")),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /printer/ID/printkey/add`: a new key; its URL is shown once.
pub async fn add_key(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<LabelForm>,
) -> Response {
    if let Err(r) = owned(&state, &visitor, &signed, id).await {
        return r;
    }
    let secret = crate::web::print_key::new_secret();
    let (s2, by) = (secret.clone(), signed.user.id);
    let label = form.label;
    match state
        .db
        .write(move |s| s.create_print_key(id, &s2, label.as_deref(), Some(by), unix_now()))
        .await
    {
        Ok(_) => {
            let url = format!("{}/printkey/{secret}", key_base(&state, &visitor));
            printer_page(
                &state,
                &visitor,
                &signed,
                id,
                StatusCode::OK,
                json!({"new_key": url}),
            )
            .await
        }
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /printer/ID/printkey/KID/delete`: revokes a key of this printer.
pub async fn revoke_key(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path((id, kid)): Path<(i64, i64)>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    if let Err(r) = owned(&state, &visitor, &signed, id).await {
        return r;
    }
    let result = state
        .db
        .write(move |s| {
            if s.print_keys_of(id)?.iter().any(|k| k.id == kid) {
                s.revoke_print_key(&kid.to_string(), unix_now()).map(Some)
            } else {
                Ok(None)
            }
        })
        .await;
    match result {
        Ok(Some(_)) => see_other(&format!("/printer/{id}?done=key-revoked#keys")),
        Ok(None) => not_found_page(&state, &visitor),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /printer/ID/share`: lets another user print to it.
pub async fn share(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<ShareForm>,
) -> Response {
    if let Err(r) = owned(&state, &visitor, &signed, id).await {
        return r;
    }
    let by = signed.user.id;
    let name = form.username.clone();
    match state
        .db
        .write(move |s| s.share_printer(id, &name, by, unix_now()))
        .await
    {
        Ok(_) => see_other(&format!("/printer/{id}?done=shared#sharing")),
        Err(ShareError::Store(e)) => store_failed(&state, &visitor, e),
        Err(e) => {
            printer_page(&state, &visitor, &signed, id, StatusCode::UNPROCESSABLE_ENTITY,
                json!({"share_error": capitalise(&e.to_string()) + ".", "share_username": form.username})).await
        }
    }
}

/// `POST /printer/ID/share/UID/delete`: stops sharing with a user.
pub async fn unshare(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path((id, uid)): Path<(i64, i64)>,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Response {
    if let Err(r) = owned(&state, &visitor, &signed, id).await {
        return r;
    }
    match state.db.write(move |s| s.unshare_printer(id, uid)).await {
        Ok(_) => see_other(&format!("/printer/{id}?done=unshared#sharing")),
        Err(e) => store_failed(&state, &visitor, e),
    }
}

/// `POST /printer/ID/rename`.
pub async fn rename(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Response {
    if let Err(r) = owned(&state, &visitor, &signed, id).await {
        return r;
    }
    let name = form.name.clone();
    match state.db.write(move |s| s.rename_printer(id, &name)).await {
        Ok(_) => see_other(&format!("/printer/{id}?done=renamed")),
        Err(ClaimError::Store(e)) => store_failed(&state, &visitor, e),
        Err(e) => {
            printer_page(
                &state,
                &visitor,
                &signed,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"rename_error": capitalise(&e.to_string()) + "."}),
            )
            .await
        }
    }
}

/// `POST /printer/ID/remove`: the owner gives the printer up (with the
/// "yes" box ticked): it becomes unclaimed, its keys stop working, its
/// shares end and its history is deleted ([`crate::store::Store::release_printer`]).
pub async fn remove(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Response {
    let printer = match owned(&state, &visitor, &signed, id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if form.confirm.as_deref() != Some("yes") {
        return printer_page(
            &state,
            &visitor,
            &signed,
            id,
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"remove_error": "Tick the box to say you really mean to remove it. Nothing was changed."}),
        )
        .await;
    }
    let owner = signed.user.id;
    match state
        .db
        .write(move |s| s.release_printer(id, owner, unix_now()))
        .await
    {
        Ok(true) => {
            tracing::info!(printer = %printer.address, user = %signed.user.username, "printer removed by its owner");
            see_other("/?done=removed")
        }
        Ok(false) => not_found_page(&state, &visitor),
        Err(e) => store_failed(&state, &visitor, e),
    }
}
