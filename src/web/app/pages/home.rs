//! `/`: signed out, the sign-in page (or "create the first account" while
//! nobody has one); signed in, my printers — name, online or not, last
//! heard, messages waiting — and the printers shared with me.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{first_account, login_form, nobody_yet};
use super::store_failed;
use crate::store::PrinterRow;
use crate::web::AppState;
use crate::web::app::auth::{St, Visitor};
use crate::web::app::render::page;

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// One printer row for a list: the newest address of each printer
/// (a reset printer has several), with what the hub knows now.
pub fn printer_cards(state: &AppState, rows: Vec<PrinterRow>, queued: &[(i64, u64)]) -> Vec<Value> {
    let mut newest: Vec<PrinterRow> = Vec::new();
    for row in rows {
        match newest
            .iter_mut()
            .find(|p| p.hardware_xor == row.hardware_xor)
        {
            Some(p) if p.id < row.id => *p = row,
            Some(_) => {}
            None => newest.push(row),
        }
    }
    newest
        .iter()
        .map(|p| {
            let online = state.hub.is_online(p.address);
            json!({
                "id": p.id,
                "name": p.name.clone().unwrap_or_else(|| "(unnamed)".into()),
                "owner": p.owner,
                "address": p.address.to_string(),
                "online": online,
                "last_heard": state.hub.last_heard(p.address).or(p.last_heard),
                "queued": queued.iter().find(|q| q.0 == p.id).map(|q| q.1).unwrap_or(0),
            })
        })
        .collect()
}

/// `GET /`.
pub async fn home(
    St(state): St,
    visitor: Visitor,
    jar: CookieJar,
    Query(q): Query<Done>,
) -> Response {
    let Some(signed) = visitor.signed.clone() else {
        return match nobody_yet(&state).await {
            Ok(true) => first_account(&state, &visitor, jar),
            Ok(false) => login_form(&state, &visitor, jar, StatusCode::OK, "/", "", None),
            Err(e) => store_failed(&state, &visitor, e),
        };
    };
    let user_id = signed.user.id;
    let read = state
        .db
        .read(move |s| {
            let mine = s.printers_owned_by(user_id)?;
            let shared = s.printers_shared_with(user_id)?;
            let waiting = s.claims_waiting(user_id)?;
            let mut queued = Vec::new();
            for p in mine.iter().chain(shared.iter()) {
                queued.push((p.id, s.queued_count(p.id)?));
            }
            Ok::<_, crate::store::StoreError>((mine, shared, waiting, queued))
        })
        .await;
    let (mine, shared, waiting, queued) = match read {
        Ok(r) => r,
        Err(e) => return store_failed(&state, &visitor, e),
    };
    let waiting: Vec<Value> = waiting
        .into_iter()
        .map(|(id, name, at)| json!({"id": id, "name": name, "claimed_at": at}))
        .collect();
    let ctx = json!({
        "mine": printer_cards(&state, mine, &queued),
        "shared": printer_cards(&state, shared, &queued),
        "waiting": waiting,
        "done": q.done,
    });
    page(&state, &visitor, StatusCode::OK, "home.html", ctx)
}
