//! HTTP handlers of the tax-authority outbox for head office (admin only):
//! `GET /v1/admin/outbox?state=pending|submitted|accepted|accepted_conditional|rejected|all&limit=`
//! → `{"health": {…counts…}, "documents": […newest first…]}`, and
//! `POST /v1/admin/outbox/{document}/correct-summary` `{"by","note"}` → the
//! correction of a rejected RFCE (`storage::outbox::correct`): the summary
//! rebuilt from the e-CF the hub holds, signed with the hub's installed
//! certificate; and `POST /v1/admin/outbox/{document}/cancel` `{"by","note"}`
//! → the cancellation (ANECF of that one number, signed by the hub when a
//! worker builds it) of a document refused before sending
//! (`storage::outbox::cancel`). No SQL and no decision here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use serde::Deserialize;

use super::kernel::{answer, body_bytes, json, parse_json, query_params, store_error, AppState};
use crate::outbox::DocState;
use crate::wire::ApiError;

type App = State<Arc<AppState>>;

/// Most documents one listing returns.
pub const MAX_LISTED: usize = 1000;

/// `GET /v1/admin/outbox`.
pub(crate) async fn list(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let params = query_params(&uri, &["state", "limit"])?;
        let get = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let state = match get("state") {
            None | Some("all") => None,
            Some(s) => Some(DocState::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    "must be pending, submitted, accepted, accepted_conditional, rejected or all",
                )
            })?),
        };
        let limit = match get("limit") {
            None => 100,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LISTED).contains(n))
                .ok_or_else(|| ApiError::invalid("limit", "must be 1 to 1000"))?,
        };
        let health = app.store.outbox_health().await.map_err(store_error)?;
        let documents = app
            .store
            .outbox_list(state, limit)
            .await
            .map_err(store_error)?;
        json(&serde_json::json!({ "health": health, "documents": documents }))
    }
    .await;
    app.respond("/v1/admin/outbox", r)
}

/// The body of a correction: who decides and why (both required).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectBody {
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
}

/// The summary rebuilt from `ecf` and signed with the hub's installed
/// certificate (blocking: reads the data directory).
fn rebuild_and_sign(data_dir: &std::path::Path, ecf: &[u8]) -> Result<Vec<u8>, ApiError> {
    let creds = crate::certificate::load_credentials(data_dir)
        .map_err(|e| ApiError::new(409, "certificate", format!("the hub's certificate: {e}")))?
        .ok_or_else(|| {
            ApiError::new(
                409,
                "no_certificate",
                "the hub has no installed e-CF certificate to sign the correction (caja-hub fiscal certificate install)",
            )
        })?;
    let signer = creds
        .signer()
        .map_err(|e| ApiError::new(409, "certificate", format!("the hub's certificate: {e}")))?;
    let unsigned = crate::taxgw::dgii_signed::summary_of_invoice(ecf)
        .map_err(|e| ApiError::new(409, "not_a_summary", e))?;
    caja_shared::ecf::xmldsig::sign(&unsigned, &signer)
        .map_err(|e| ApiError::new(409, "certificate", format!("signing the correction: {e}")))
}

/// `POST /v1/admin/outbox/{document}/correct-summary`.
pub(crate) async fn correct_summary(
    State(app): App,
    headers: HeaderMap,
    Path(document): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: CorrectBody = parse_json(&body)?;
        if req.by.trim().is_empty() {
            return Err(ApiError::invalid("by", "who decides is required"));
        }
        if req.note.trim().is_empty() {
            return Err(ApiError::invalid("note", "why is required"));
        }
        let src = answer(app.store.outbox_correction_source(document.clone()).await)?;
        let dir = app.data_dir.clone();
        let signed = tokio::task::spawn_blocking(move || rebuild_and_sign(&dir, &src.ecf))
            .await
            .map_err(|e| ApiError::new(500, "internal", e.to_string()))??;
        let c = answer(
            app.store
                .outbox_correct_summary(document, src.rejected_hash, signed, req.by, req.note)
                .await,
        )?;
        json(&c)
    }
    .await;
    app.respond("/v1/admin/outbox/{document}/correct-summary", r)
}

/// `POST /v1/admin/outbox/{document}/cancel`.
pub(crate) async fn cancel_refused(
    State(app): App,
    headers: HeaderMap,
    Path(document): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: CorrectBody = parse_json(&body)?;
        let c = answer(
            app.store
                .outbox_cancel_refused(document, req.by, req.note)
                .await,
        )?;
        json(&c)
    }
    .await;
    app.respond("/v1/admin/outbox/{document}/cancel", r)
}
