//! Printers: claiming one with the code it printed (`/claim`).
//!
//! Claim errors are precise: which character of the code is wrong (from
//! [`ClaimCode::parse`]), a code someone else claimed, an old code.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::session::capitalise;
use super::{see_other, store_failed};
use crate::bridge::hub::unix_now;
use crate::protocol::ClaimCode;
use crate::store::ClaimError;
use crate::web::AppState;
use crate::web::app::auth::{CsrfForm, SignedIn, St, Visitor};
use crate::web::app::render::page;

#[derive(Deserialize)]
pub struct ClaimForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
}

fn claim_form(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    code: &str,
    name: &str,
    code_error: Option<String>,
    name_error: Option<String>,
) -> Response {
    page(
        state,
        visitor,
        status,
        "claim.html",
        json!({"code": code, "name": name, "code_error": code_error, "name_error": name_error}),
    )
}

/// `GET /claim`.
pub async fn claim_page(St(state): St, visitor: Visitor, _: SignedIn) -> Response {
    claim_form(
        &state,
        &visitor,
        StatusCode::OK,
        "",
        "Little Printer",
        None,
        None,
    )
}

/// `POST /claim`.
pub async fn claim(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    CsrfForm(form): CsrfForm<ClaimForm>,
) -> Response {
    let code_text = form.code.trim().to_string();
    let name = form.name.trim().to_string();
    let refuse = |code_error: Option<String>, name_error: Option<String>| {
        claim_form(
            &state,
            &visitor,
            StatusCode::UNPROCESSABLE_ENTITY,
            &code_text,
            &name,
            code_error,
            name_error,
        )
    };
    if code_text.is_empty() {
        return refuse(
            Some(
                "Type the code your printer printed after it was reset, like n5ry-p6x6-kth7-7hc4."
                    .into(),
            ),
            None,
        );
    }
    let code = match ClaimCode::parse(&code_text) {
        Ok(c) => c,
        Err(e) => return refuse(Some(capitalise(&e.to_string()) + "."), None),
    };
    let user_id = signed.user.id;
    let n = name.clone();
    let claimed = state
        .db
        .write(move |s| s.claim(user_id, &code, &n, unix_now()))
        .await;
    match claimed {
        Ok(outcome) => {
            tracing::info!(user = %signed.user.username, printers = outcome.printers_linked.len(), "printer claimed on the web");
            if outcome.printers_linked.is_empty() {
                see_other("/?done=claimed-waiting")
            } else {
                see_other("/?done=claimed")
            }
        }
        Err(ClaimError::InvalidName) => refuse(
            None,
            Some(capitalise(&ClaimError::InvalidName.to_string()) + "."),
        ),
        Err(e @ (ClaimError::AlreadyClaimed | ClaimError::Superseded)) => {
            refuse(Some(capitalise(&e.to_string()) + "."), None)
        }
        Err(ClaimError::UnknownUser) => see_other("/login"),
        Err(ClaimError::Store(e)) => store_failed(&state, &visitor, e),
    }
}
