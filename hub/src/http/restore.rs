//! Hub restore over HTTP (DESIGN "Hub restore (disaster recovery)"):
//! `POST /v1/sync/hub-events` (registers return hub events the restored hub
//! lacks, and report), and head office's `GET /v1/admin/restore`,
//! `POST /v1/admin/restore/ack` and `POST /v1/admin/restore/override`.
//!
//! Invariant: reads the request, calls one pure check ([`crate::restore`])
//! and one store method, writes the answer; no SQL and no decision here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use caja_shared::ids::StoreId;
use serde::Deserialize;

use super::kernel::{
    admitted, answer, authenticated, body_bytes, json, parse_json, store_error, App, AppState,
};
use crate::wire::ApiError;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sync/hub-events", post(hub_events))
        .route("/v1/admin/restore", get(status))
        .route("/v1/admin/restore/ack", post(acknowledge))
        .route("/v1/admin/restore/override", post(override_store))
}

async fn hub_events(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req = admitted(&app, &method, &uri, &headers, body.clone()).await?;
        let who = authenticated(&app, req).await?;
        let hub_key = app.hub_key.public_key();
        let store = who.store;
        // Parsing, hashing and verifying the checkpoint is CPU work: off
        // the executor.
        let batch = tokio::task::spawn_blocking(move || {
            crate::restore::parse_hub_events(&body, store, &hub_key)
        })
        .await
        .map_err(|_| ApiError::internal())??;
        let ack = answer(app.store.hub_events(who, batch).await)?;
        let mut v = serde_json::to_value(&ack).map_err(|_| ApiError::internal())?;
        v["hub_time_ms"] = app.store.now_ms().into();
        json(&v)
    }
    .await;
    app.respond("/v1/sync/hub-events", r)
}

async fn status(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let s = app.store.restore_status().await.map_err(store_error)?;
        json(&s)
    }
    .await;
    app.respond("/v1/admin/restore", r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
    #[serde(default)]
    note: String,
}

fn who(by: &str) -> Result<String, ApiError> {
    let by = by.trim();
    if by.is_empty() || by.len() > 200 {
        return Err(ApiError::invalid("by", "who decides: 1 to 200 characters"));
    }
    Ok(by.to_owned())
}

async fn acknowledge(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: AckBody = parse_json(&body)?;
        let by = who(&req.by)?;
        let info = answer(app.store.restore_acknowledge(by, req.note).await)?;
        json(&info)
    }
    .await;
    app.respond("/v1/admin/restore/ack", r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    store: StoreId,
    by: String,
    note: String,
}

async fn override_store(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: OverrideBody = parse_json(&body)?;
        let by = who(&req.by)?;
        if req.note.trim().is_empty() {
            return Err(ApiError::invalid("note", "say why the gate is lifted"));
        }
        let gate = answer(app.store.restore_override(req.store, by, req.note).await)?;
        json(&gate)
    }
    .await;
    app.respond("/v1/admin/restore/override", r)
}
