//! The HTTP shell: axum routes for the sync API (DESIGN "Sync protocol"), the
//! admin API, `/v1/health` and `/metrics`.
//!
//! Each handler reads the request, calls one pure function or one
//! [`crate::storage::Storage`] method and writes the answer. Around every route: a concurrency guard (over
//! `max_concurrent_requests` in flight → 429 `overloaded` with `Retry-After`),
//! request metrics, and the body limit (→ 413 `too_large`). Every rejection is
//! counted by code and logged with its reason.
//!
//! Layout: [`router`] here; `kernel` (the state, the guard, answers and
//! request reading every handler shares); one module of handlers per area
//! (`sync`, `admin`, `audit`, `conflict`, `escrow`, `fiscal`, `outbox`,
//! `payments`, `staff`), each importing `kernel` and nothing of this file.
//!
//! Architecture invariant: no SQL here; no business decision here either (they
//! are in `auth`, `ingest`, `projection`, `health`).

mod admin;
mod audit;
mod conflict;
mod dgii_receiver;
mod escrow;
mod fiscal;
mod kernel;
mod outbox;
mod payments;
mod restore;
mod staff;
mod sync;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

pub(crate) use kernel::{body_with_type, guard};
pub use kernel::{error_response, AppState, DEFAULT_PAGE};

/// The router with every route and layer.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.cfg.body_limit_bytes;
    Router::new()
        .route("/v1/devices/enroll", post(sync::enroll))
        .route("/v1/devices/rotate", post(sync::rotate))
        .route("/v1/sync/push", post(sync::push))
        .route("/v1/sync/pull", get(sync::pull))
        .route("/v1/sync/own", get(sync::own))
        .route("/v1/health", get(admin::health_report))
        .route("/metrics", get(admin::metrics))
        .route(
            "/v1/admin/stores",
            post(admin::create_store).get(admin::list_stores),
        )
        .route("/v1/admin/enrollment-tokens", post(admin::create_token))
        .route("/v1/admin/devices", get(admin::list_devices))
        .route("/v1/admin/devices/{device}/revoke", post(admin::revoke))
        .route(
            "/v1/admin/devices/{device}/rotate",
            post(admin::admin_rotate),
        )
        .route("/v1/admin/devices/{device}/release", post(admin::release))
        .route("/v1/admin/quarantine", get(admin::quarantined))
        .route("/v1/admin/alerts", get(admin::alerts))
        .route("/v1/admin/catalog", post(admin::load_catalog))
        .route("/v1/admin/conflicts", get(conflict::list))
        .route("/v1/admin/conflicts/{id}/resolve", post(conflict::resolve))
        .route("/v1/fiscal/ranges", post(fiscal::fiscal_ranges))
        .route("/v1/escrow/grants", post(escrow::grants))
        .route("/v1/admin/staff", post(staff::upsert))
        .route("/v1/admin/staff/activity", get(staff::activity))
        .route("/v1/admin/stock", get(escrow::stock))
        .route("/v1/admin/stock/alerts", get(escrow::alerts))
        .route("/v1/admin/stock/alerts/decide", post(escrow::decide))
        .route(
            "/v1/admin/fiscal/series",
            post(fiscal::add_series).get(fiscal::list_series),
        )
        .route("/v1/admin/fiscal/report", get(fiscal::report))
        .route("/v1/admin/fiscal/documents", get(fiscal::documents))
        .route("/v1/admin/fiscal/607", get(fiscal::dgii_607))
        .route("/v1/admin/fiscal/608", get(fiscal::dgii_608))
        .route(
            "/v1/admin/devices/{device}/write-off",
            post(fiscal::write_off),
        )
        .route("/v1/payments/intents", post(payments::intents))
        .route("/v1/payments/webhooks/{provider}", post(payments::webhook))
        .route("/v1/admin/payments", get(payments::overview))
        .route("/v1/admin/outbox", get(outbox::list))
        .route(
            "/v1/admin/outbox/{document}/correct-summary",
            post(outbox::correct_summary),
        )
        .route(
            "/v1/admin/outbox/{document}/cancel",
            post(outbox::cancel_refused),
        )
        .route("/v1/admin/payments/reconcile", post(payments::reconcile))
        .route("/v1/admin/payments/refund", post(payments::refund))
        .merge(audit::routes())
        .merge(restore::routes())
        .merge(dgii_receiver::routes(&state))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .fallback(kernel::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::admin::CreateToken;
    use super::kernel::{param_number, parse_cursor, parse_json, query_params};
    use super::sync::Empty;
    use axum::http::Uri;

    #[test]
    fn query_and_cursor_parsing() {
        let uri: Uri = "/v1/sync/pull?after=a12&limit=5".parse().unwrap();
        let p = query_params(&uri, &["after", "limit"]).unwrap();
        assert_eq!(p, vec![("after", "a12"), ("limit", "5")]);
        assert_eq!(parse_cursor("a12").unwrap(), 12);
        assert_eq!(parse_cursor("").unwrap(), 0);
        assert_eq!(
            parse_cursor("12").unwrap_err().field.as_deref(),
            Some("after")
        );
        let uri: Uri = "/v1/sync/pull?x=1".parse().unwrap();
        assert_eq!(
            query_params(&uri, &["after"]).unwrap_err().field.as_deref(),
            Some("x")
        );
        let uri: Uri = "/v1/sync/pull?after=a1&after=a2".parse().unwrap();
        assert!(query_params(&uri, &["after"]).is_err());
        assert!(param_number("limit", "-1", 10).is_err());
        assert!(param_number("limit", "11", 10).is_err());
    }

    #[test]
    fn json_bodies_name_the_bad_field() {
        let err = parse_json::<CreateToken>(br#"{"store":"nope","name":"x"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("store"));
        let err = parse_json::<CreateToken>(
            br#"{"store":"01935f4e-8a00-7000-8000-0000000000a1","name":"x","ttl_ms":1.5}"#,
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("ttl_ms"));
        let err = parse_json::<Empty>(b"{} x").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("$"));
    }
}
