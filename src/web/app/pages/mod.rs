//! The pages, one file per family: [`home`] (`/`), [`session`] (sign in,
//! sign up, invites, sign out), [`printers`] (claiming), [`printer`] (one printer), [`compose`] (printing and
//! the live preview), [`account`], [`twitter`] (Twitter sign-in and linking),
//! [`admin`]. Shared here: the plain answers (404, errors) every family
//! uses.

pub mod account;
pub mod admin;
pub mod compose;
pub mod home;
pub mod printer;
pub mod printers;
pub mod session;
pub mod twitter;

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{St, Visitor};
use super::render::page;
use crate::web::AppState;

/// A short plain-text answer (for the few cases a page can't be drawn).
pub fn plain(status: StatusCode, text: &str) -> Response {
    let mut r = (status, format!("{text}\n")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The 404 page: for paths that don't exist, and for printers, users and
/// pages this visitor may not see (they look the same).
pub fn not_found_page(state: &AppState, visitor: &Visitor) -> Response {
    page(
        state,
        visitor,
        StatusCode::NOT_FOUND,
        "error.html",
        json!({"title": "Not found", "text": "There is nothing here. Check the address, or go back to your printers."}),
    )
}

/// The fallback route.
pub async fn not_found(St(state): St, visitor: Visitor) -> Response {
    not_found_page(&state, &visitor)
}

/// The 404 page from inside an extractor.
pub async fn not_found_for(parts: &Parts) -> Response {
    let state = parts.extensions.get::<Arc<AppState>>().cloned();
    let visitor = parts.extensions.get::<Visitor>().cloned();
    match (state, visitor) {
        (Some(s), Some(v)) => not_found_page(&s, &v),
        _ => plain(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// The page for a database failure (the details go to the log).
pub fn store_failed(state: &AppState, visitor: &Visitor, e: impl std::fmt::Display) -> Response {
    tracing::error!("a page could not use the database: {e}");
    page(
        state,
        visitor,
        StatusCode::SERVICE_UNAVAILABLE,
        "error.html",
        json!({"title": "Try again", "text": "The database could not be reached just now (it may be busy). Try again in a moment; if it keeps happening, the server log says why."}),
    )
}

/// `303 See Other` to `to`: after a form, the browser loads the page.
pub fn see_other(to: &str) -> Response {
    axum::response::Redirect::to(to).into_response()
}
