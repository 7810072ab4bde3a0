//! HTTP handlers of conflict resolution (admin only): `GET
//! /v1/admin/conflicts?state=open|resolved|all` and `POST
//! /v1/admin/conflicts/{id}/resolve` `{"winner"?, "note", "by"}`. No SQL and
//! no decision here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use caja_shared::ids::ConflictId;

use super::kernel::{answer, body_bytes, json, parse_json, query_params, store_error, AppState};
use crate::conflict::{ResolveRequest, STRATEGIES};
use crate::storage::StateFilter;
use crate::wire::ApiError;

type App = State<Arc<AppState>>;

/// `GET /v1/admin/conflicts?state=open|resolved|all` (default `all`), with
/// the strategy of every entity.
pub(crate) async fn list(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let params = query_params(&uri, &["state"])?;
        let state = match params.iter().find(|(k, _)| *k == "state").map(|(_, v)| *v) {
            None | Some("all") => StateFilter::All,
            Some("open") => StateFilter::Open,
            Some("resolved") => StateFilter::Resolved,
            Some(_) => return Err(ApiError::invalid("state", "must be open, resolved or all")),
        };
        let conflicts = app.store.conflicts(state).await.map_err(store_error)?;
        let strategies: Vec<serde_json::Value> = STRATEGIES
            .iter()
            .map(|s| {
                serde_json::json!({
                    "entity": s.entity, "fields": s.fields, "strategy": s.strategy.as_str()
                })
            })
            .collect();
        json(&serde_json::json!({ "conflicts": conflicts, "strategies": strategies }))
    }
    .await;
    app.respond("/v1/admin/conflicts", r)
}

/// `POST /v1/admin/conflicts/{id}/resolve`.
pub(crate) async fn resolve(
    State(app): App,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let id: ConflictId = id
            .parse()
            .map_err(|e: caja_shared::ids::IdError| ApiError::invalid("id", e.to_string()))?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: ResolveRequest = parse_json(&body)?;
        let c = answer(app.store.resolve_conflict(id, req).await)?;
        json(&c)
    }
    .await;
    app.respond("/v1/admin/conflicts/{id}/resolve", r)
}
