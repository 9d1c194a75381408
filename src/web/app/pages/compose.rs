//! Printing from the web: `/printer/ID/print` (the compose page and its
//! form) and `/printer/ID/preview` (the exact page that would print, as a
//! PNG, with its length on paper). The owner and the users the printer is
//! shared with may print; anyone else gets the 404 page.
//!
//! The form is `multipart/form-data` (a picture may come with it): fields
//! `csrf` (checked like every form), `message` (text, or HTML when
//! `format=html`), `image` (a PNG, JPEG, GIF or WebP), `face` (`default`
//! or `noface`: print without the printer's face), `font` (`sans`,
//! `serif`, `mono` or a family added with `--fonts`) and `picture`
//! (`photo`: dithered, the default; `drawing`: a plain threshold, crisp
//! for line art and screenshots). Everything goes
//! through [`crate::printing::Printing::print`], as print keys do. When
//! sending fails, the page comes back with what was typed.

use std::sync::Arc;

use axum::extract::{Multipart, Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{not_found_page, see_other, store_failed};
use crate::compose::{Content, Envelope, MessageFont};
use crate::printing::PrintOptions;
use crate::raster::Dither;
use crate::store::PrinterRow;
use crate::web::AppState;
use crate::web::app::auth::{SignedIn, St, Visitor, check_origin, same_token};
use crate::web::app::render::page;

/// Printer dots per centimetre of paper (8 per mm).
const DOTS_PER_CM: f64 = 80.0;

/// What the compose form sent.
#[derive(Debug, Default)]
struct Compose {
    csrf: Option<String>,
    message: String,
    html: bool,
    image: Option<Vec<u8>>,
    no_face: bool,
    font: String,
    drawing: bool,
}

impl Compose {
    fn font(&self) -> MessageFont {
        MessageFont::parse(&self.font)
    }

    fn dither(&self) -> Dither {
        if self.drawing {
            Dither::Threshold
        } else {
            Dither::FloydSteinberg
        }
    }

    /// The content to print: the picture if there is one, else the message.
    fn content(&self) -> Option<Content> {
        if let Some(img) = &self.image {
            return Some(Content::Image(img.clone()));
        }
        let text = self.message.trim();
        if text.is_empty() {
            None
        } else if self.html {
            Some(Content::Html(text.to_string()))
        } else {
            Some(Content::Text(text.to_string()))
        }
    }
}

/// Reads the form, checking the token and the origin headers first.
async fn read_form(
    visitor: &Visitor,
    public_url: Option<&str>,
    req: Request,
) -> Result<Compose, Response> {
    check_origin(visitor, public_url, req.headers())?;
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(IntoResponse::into_response)?;
    let mut form = Compose::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(IntoResponse::into_response)?
    {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "csrf" => form.csrf = Some(field.text().await.map_err(IntoResponse::into_response)?),
            "message" => form.message = field.text().await.map_err(IntoResponse::into_response)?,
            "format" => {
                form.html = field.text().await.map_err(IntoResponse::into_response)? == "html"
            }
            "face" => {
                let v = field.text().await.map_err(IntoResponse::into_response)?;
                form.no_face = matches!(v.as_str(), "noface" | "none");
            }
            "font" => {
                let v = field.text().await.map_err(IntoResponse::into_response)?;
                form.font = v.chars().take(64).collect();
            }
            "picture" => {
                form.drawing = field.text().await.map_err(IntoResponse::into_response)? == "drawing"
            }
            "image" => {
                let bytes = field.bytes().await.map_err(IntoResponse::into_response)?;
                if !bytes.is_empty() {
                    form.image = Some(bytes.to_vec());
                }
            }
            _ => {}
        }
    }
    let ok = match (form.csrf.as_deref(), visitor.csrf_token()) {
        (Some(got), Some(want)) => !got.is_empty() && same_token(got, want),
        _ => false,
    };
    if !ok {
        return Err(super::plain(
            StatusCode::FORBIDDEN,
            "This form can't be accepted: its form token is missing or out of date. Go back, reload the page and try again.",
        ));
    }
    Ok(form)
}

use axum::extract::FromRequest as _;

/// The printer if this user may print to it.
async fn printable(
    state: &AppState,
    visitor: &Visitor,
    user_id: i64,
    id: i64,
) -> Result<PrinterRow, Response> {
    match state.db.read(move |s| s.printer_access(id, user_id)).await {
        Ok(Some((p, _))) => Ok(p),
        Ok(None) => Err(not_found_page(state, visitor)),
        Err(e) => Err(store_failed(state, visitor, e)),
    }
}

fn compose_page(
    state: &AppState,
    visitor: &Visitor,
    printer: &PrinterRow,
    status: StatusCode,
    form: &Compose,
    error: Option<String>,
) -> Response {
    page(
        state,
        visitor,
        status,
        "print.html",
        json!({
            "printer": {"id": printer.id, "name": printer.name, "online": state.hub.is_online(printer.address)},
            "message": form.message, "html": form.html, "error": error,
            "noface": form.no_face, "drawing": form.drawing, "font": form.font().as_str(),
            "fonts": state.printing.renderer().font_families().iter()
                .map(|f| json!({"value": f.font.as_str(), "name": f.name}))
                .collect::<Vec<_>>(),
        }),
    )
}

/// `GET /printer/ID/print`.
pub async fn compose(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
) -> Response {
    match printable(&state, &visitor, signed.user.id, id).await {
        Ok(p) => compose_page(
            &state,
            &visitor,
            &p,
            StatusCode::OK,
            &Compose::default(),
            None,
        ),
        Err(r) => r,
    }
}

/// `POST /printer/ID/print`: prints, then shows the printer.
pub async fn print(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let printer = match printable(&state, &visitor, signed.user.id, id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let form = match read_form(&visitor, state.public_url.as_deref(), req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(content) = form.content() else {
        return compose_page(
            &state,
            &visitor,
            &printer,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            Some("Write a message or choose a picture.".into()),
        );
    };
    let printing = Arc::clone(&state.printing);
    match printing
        .print(
            &printer,
            content,
            &signed.user.username,
            PrintOptions {
                sender_user_id: Some(signed.user.id),
                no_face: form.no_face,
                font: form.font(),
                dither: Some(form.dither()),
                ..PrintOptions::default()
            },
        )
        .await
    {
        Ok(sent) => {
            tracing::info!(message_id = sent.message_id, user = %signed.user.username, "message sent from the web");
            see_other(&format!("/printer/{id}?done=sent"))
        }
        Err(crate::printing::PrintError::Store(e)) => store_failed(&state, &visitor, e),
        Err(e) => compose_page(
            &state,
            &visitor,
            &printer,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            Some(super::session::capitalise(&e.to_string()) + ". Nothing was sent."),
        ),
    }
}

/// `POST /printer/ID/preview`: the page exactly as it would print, as a
/// PNG; `X-Page-Length-Cm` says how long it is on paper.
pub async fn preview(
    St(state): St,
    visitor: Visitor,
    SignedIn(signed): SignedIn,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    if let Err(r) = printable(&state, &visitor, signed.user.id, id).await {
        return r;
    }
    let form = match read_form(&visitor, state.public_url.as_deref(), req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let content = form.content().unwrap_or(Content::Text(String::new()));
    let envelope = Envelope {
        sender: signed.user.username.clone(),
        at: jiff::Timestamp::now(),
        time_zone: state.printing.config().time_zone.clone(),
        font: form.font(),
        dither: Some(form.dither()),
    };
    let rendered = match state
        .printing
        .renderer()
        .render_message(content, envelope)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return super::plain(
                StatusCode::UNPROCESSABLE_ENTITY,
                &super::session::capitalise(&e.to_string()),
            );
        }
    };
    let height = rendered.page.height();
    let png = match tokio::task::spawn_blocking(move || crate::raster::page_to_png(&rendered.page))
        .await
    {
        Ok(png) => png,
        Err(e) => return store_failed(&state, &visitor, e),
    };
    let mut r = ([(header::CONTENT_TYPE, "image/png")], png).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("{:.1}", f64::from(height) / DOTS_PER_CM)) {
        h.insert("x-page-length-cm", v);
    }
    if let Ok(v) = HeaderValue::from_str(&height.to_string()) {
        h.insert("x-page-height", v);
    }
    r
}
