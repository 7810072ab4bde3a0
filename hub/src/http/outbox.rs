//! HTTP handler of the tax-authority outbox for head office (admin only):
//! `GET /v1/admin/outbox?state=pending|submitted|accepted|accepted_conditional|rejected|all&limit=`
//! → `{"health": {…counts…}, "documents": […newest first…]}`. No SQL and no
//! decision here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use super::kernel::{json, query_params, store_error, AppState};
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
