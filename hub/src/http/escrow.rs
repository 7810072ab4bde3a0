//! HTTP handlers of escrow stock: `POST /v1/escrow/grants` (signed, for
//! registers) and the admin endpoints (stock per product, stock alerts and the
//! operator's decisions). No SQL and no decision here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use caja_shared::ids::StoreId;

use super::kernel::{
    admitted, answer, body_bytes, json, json_bytes, parse_json, query_params, store_error, AppState,
};
use super::kernel::{events_answer, parse_canonical};
use crate::escrow::{AlertDecision, QuotaRequest};

type App = State<Arc<AppState>>;

pub(crate) async fn grants(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req = admitted(&app, &method, &uri, &headers, body.clone()).await?;
        let parsed = parse_canonical::<QuotaRequest>(&body);
        let events = answer(
            app.store
                .grant_quota(req, parsed, app.cfg.escrow_quota_ttl_ms)
                .await,
        )?;
        if events.is_empty() {
            let out = format!("{{\"events\":[],\"hub_time_ms\":{}}}", app.store.now_ms());
            return Ok(json_bytes(out.into_bytes()));
        }
        events_answer(&app, &events)
    }
    .await;
    app.respond("/v1/escrow/grants", r)
}

/// `GET /v1/admin/stock?store=<id>`.
pub(crate) async fn stock(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let params = query_params(&uri, &["store"])?;
        let store: StoreId = params
            .iter()
            .find(|(k, _)| *k == "store")
            .map(|(_, v)| *v)
            .ok_or_else(|| crate::wire::ApiError::invalid("store", "required"))?
            .parse()
            .map_err(|_| crate::wire::ApiError::invalid("store", "not a store id"))?;
        let products = app.store.stock(store).await.map_err(store_error)?;
        json(&serde_json::json!({ "products": products }))
    }
    .await;
    app.respond("/v1/admin/stock", r)
}

pub(crate) async fn alerts(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let alerts = app.store.stock_alerts().await.map_err(store_error)?;
        json(&serde_json::json!({ "alerts": alerts }))
    }
    .await;
    app.respond("/v1/admin/stock/alerts", r)
}

pub(crate) async fn decide(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let d: AlertDecision = parse_json(&body)?;
        let alert = answer(app.store.decide_stock_alert(d).await)?;
        json(&alert)
    }
    .await;
    app.respond("/v1/admin/stock/alerts/decide", r)
}
