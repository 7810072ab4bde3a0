//! The head-office dashboard (issue #14), served by `caja-hub serve` under
//! `/ui/`: server-rendered HTML (maud, compiled into the binary), charts as
//! inline SVG, one small script, every asset inside the binary.
//!
//! Sign-in is with the hub's admin token (the one admin credential the hub
//! has; see ARCHITECTURE.md "Dashboard") and the operator's name, which
//! becomes the `by` of their decisions. Sessions live in `ui_sessions`
//! (hashed ids, HttpOnly + SameSite=Strict cookies, `Secure` unless
//! `ui_secure_cookie = false`); every form is a POST carrying the session's
//! CSRF token; logins are rate-limited per client address and overall with
//! the hub's persisted token buckets.
//!
//! One module per page or concept: `login`, `overview`, `stores`, `sync`,
//! `held`, `conflicts`, `stock`, `fiscal`, `outbox`, `audit`; the pure parts
//! are `form`, `session`, `chart`, `tar`; every Spanish sentence is in
//! `text`.
//!
//! Architecture invariant: no SQL here (the store's methods, and
//! `storage::dashboard` for the dashboard's own reads); no business decision
//! here (they are the same store methods the admin API calls); a GET never
//! changes state.

pub mod chart;
pub mod form;
pub mod session;
pub mod tar;
pub mod text;

mod audit;
mod conflicts;
mod fiscal;
mod held;
mod layout;
mod login;
mod outbox;
mod overview;
mod stock;
mod stores;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use caja_shared::digest::Hash256;
use caja_shared::localtime::UtcOffset;

pub use stores::qr_svg;

use crate::http::AppState;
use crate::storage::StoreError;
use form::Form;
use layout::error;

/// Largest form body the dashboard accepts.
pub const FORM_LIMIT_BYTES: usize = 64 * 1024;

/// The zone times are shown in when no store is concerned (head office's).
pub const HEAD_OFFICE_OFFSET: UtcOffset = UtcOffset::SANTO_DOMINGO;

/// What the dashboard's handlers share.
#[derive(Debug)]
pub struct UiState {
    /// The hub's handler state (store, configuration, admin token, key).
    pub app: Arc<AppState>,
    /// The hub's data directory (for the audit export).
    pub data_dir: PathBuf,
}

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The name they signed in with.
    pub name: String,
    /// Their session's CSRF token.
    pub csrf: String,
    /// Their session (its stored hash).
    pub session: Hash256,
}

/// The dashboard's routes, with their own state, body limit and headers; the
/// hub's concurrency guard and request metrics around each.
pub fn router(app: Arc<AppState>, data_dir: PathBuf) -> Router {
    let state = Arc::new(UiState {
        app: app.clone(),
        data_dir,
    });
    Router::new()
        .route("/ui", get(|| async { layout::redirect("/ui/") }))
        .route("/ui/", get(overview::page))
        .route("/ui/assets/style.css", get(style))
        .route("/ui/assets/app.js", get(script))
        .route("/ui/login", get(login::page).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/health.json", get(sync::health_json))
        .route("/ui/stores", get(stores::page).post(stores::create_store))
        .route("/ui/stores/enroll", post(stores::enroll))
        .route("/ui/devices/{device}/revoke", post(stores::revoke))
        .route("/ui/devices/{device}/rotate", post(stores::rotate))
        .route("/ui/sync", get(sync::page))
        .route("/ui/held", get(held::page))
        .route("/ui/devices/{device}/release", post(held::release))
        .route("/ui/conflicts", get(conflicts::list))
        .route("/ui/conflicts/{id}", get(conflicts::detail))
        .route("/ui/conflicts/{id}/resolve", post(conflicts::resolve))
        .route("/ui/stock", get(stock::page))
        .route("/ui/stock/decide", post(stock::decide))
        .route("/ui/fiscal", get(fiscal::page))
        .route("/ui/fiscal/{series}", get(fiscal::series))
        .route("/ui/fiscal/{series}/report.csv", get(fiscal::csv))
        .route("/ui/outbox", get(outbox::page))
        .route("/ui/audit", get(audit::page))
        .route("/ui/audit/verify", post(audit::verify))
        .route("/ui/audit/sign", post(audit::sign))
        .route("/ui/audit/export", post(audit::export))
        .layer(middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(FORM_LIMIT_BYTES))
        .route_layer(middleware::from_fn_with_state(app, crate::http::guard))
        .with_state(state)
}

/// Headers on every dashboard answer: nothing from elsewhere may load
/// (content security policy), no framing, no caching of pages, no sniffing.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    r
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = crate::http::body_with_type(body, content_type);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    r
}

async fn style() -> Response {
    asset(include_str!("assets/style.css"), "text/css; charset=utf-8")
}

async fn script() -> Response {
    asset(
        include_str!("assets/app.js"),
        "text/javascript; charset=utf-8",
    )
}

impl UiState {
    /// The signed-in operator, or the answer that sends the browser to the
    /// login page.
    pub(crate) async fn operator(&self, headers: &HeaderMap) -> Result<Operator, Response> {
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let Some(id) =
            session::cookie(cookies, session::SESSION_COOKIE).filter(|v| session::is_secret(v))
        else {
            return Err(layout::redirect("/ui/login"));
        };
        let hash = session::session_hash(id);
        match self.app.store.ui_session(hash).await {
            Ok(Some(s)) => Ok(Operator {
                name: s.operator,
                csrf: s.csrf,
                session: hash,
            }),
            Ok(None) => Err(layout::redirect("/ui/login")),
            Err(e) => Err(self.failure(None, e)),
        }
    }

    /// A form of a signed-in operator whose CSRF token matches; otherwise the
    /// refusal (nothing is changed).
    pub(crate) async fn form(
        &self,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<(Operator, Form), Response> {
        let op = self.operator(headers).await?;
        let body = body.map_err(|rej| {
            let status = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            error(status, Some(&op), text::FORM_MALFORMED)
        })?;
        let form = Form::parse(&body)
            .map_err(|e| error(StatusCode::BAD_REQUEST, Some(&op), &e.for_person()))?;
        if !session::tokens_match(&op.csrf, form.get("csrf").unwrap_or("")) {
            tracing::warn!(operator = %op.name, "dashboard form refused: missing or wrong CSRF token");
            return Err(error(StatusCode::FORBIDDEN, Some(&op), text::CSRF_REFUSED));
        }
        Ok((op, form))
    }

    /// The answer to a storage failure (logged; the person gets a sentence).
    pub(crate) fn failure(&self, op: Option<&Operator>, e: StoreError) -> Response {
        match e {
            StoreError::Overloaded => error(StatusCode::TOO_MANY_REQUESTS, op, text::BUSY),
            StoreError::Closed => error(StatusCode::SERVICE_UNAVAILABLE, op, text::BUSY),
            other => {
                tracing::error!(error = %other, "dashboard: storage failure");
                error(StatusCode::INTERNAL_SERVER_ERROR, op, text::STORAGE_FAILED)
            }
        }
    }

    /// The answer to a refusal of the store (an `ApiError`): its status, and
    /// its message in the person's words where we have them.
    pub(crate) fn refused(&self, op: &Operator, e: &crate::wire::ApiError) -> Response {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        error(
            status,
            Some(op),
            &text::refusal(e.error, e.field.as_deref(), &e.message),
        )
    }
}

/// The notice a redirect after a form asks for (`?ok=<code>`): only known
/// codes are shown, nothing from the URL is echoed.
pub(crate) fn notice(query: Option<&str>) -> Option<&'static str> {
    let code = query?.split('&').find_map(|p| p.strip_prefix("ok="))?;
    text::notice(code)
}
