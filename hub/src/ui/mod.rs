//! The head-office dashboard, served by `caja-hub serve` under
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
//! `held`, `conflicts`, `stock`, `fiscal`, `outbox`, `audit`; what they share
//! is `state` (the handlers' state, the operator's checks) and `layout` (the
//! page shell and how values are written); the pure parts are `form`,
//! `session`, `chart`, `tar`; every Spanish sentence is in `text`. This file
//! holds the router only: no page module imports it.
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
mod purchases;
mod state;
mod stock;
mod stores;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use session::Operator;
pub use state::{UiState, FORM_LIMIT_BYTES, HEAD_OFFICE_OFFSET};
pub use stores::qr_svg;

use crate::http::AppState;

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
        .route("/ui/sessions/end-all", post(login::end_all))
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
        .route("/ui/purchases", get(purchases::page))
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
