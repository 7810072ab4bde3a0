//! The admin API (stores, enrollment tokens, devices, quarantine, alerts,
//! catalog loads), `/v1/health` and `/metrics`.
//!
//! Invariant: reads the request, calls one store method, writes the answer;
//! no SQL and no decision here.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use caja_shared::ids::StoreId;
use caja_shared::kind::{CatalogItemUpserted, EventBody, PriceSet};
use serde::Deserialize;

use super::kernel::{
    answer, body_bytes, body_with_type, device_param, json, parse_json, query_params, store_error,
    App,
};
use crate::health;
use crate::wire::ApiError;

pub(crate) async fn health_report(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let inputs = app.health_inputs().await.map_err(store_error)?;
        let report = health::report_with(&inputs, app.store.now_ms(), app.cfg.register_silent_ms);
        let mut v = serde_json::to_value(&report).map_err(|_| ApiError::internal())?;
        let restore = app.store.restore_status().await.map_err(store_error)?;
        v["restore"] = restore_health(&restore);
        json(&v)
    }
    .await;
    app.respond("/v1/health", r)
}

/// The `restore` section of the health report: the epoch, whether head
/// office acknowledged the latest restore (`true` when never restored), and
/// the stores still gated with the registers each waits for.
fn restore_health(s: &crate::storage::restore::RestoreStatus) -> serde_json::Value {
    let gated: Vec<serde_json::Value> = s
        .stores
        .iter()
        .filter(|g| g.gated)
        .map(|g| serde_json::json!({"store": g.store, "waiting": g.waiting}))
        .collect();
    serde_json::json!({
        "epoch": s.epoch,
        "restored_at_ms": s.restore.as_ref().map(|r| r.restored_at_ms),
        "acknowledged": s.restore.as_ref().is_none_or(|r| r.acked_at_ms.is_some()),
        "acked_by": s.restore.as_ref().and_then(|r| r.acked_by.clone()),
        "gated_stores": gated,
    })
}

pub(crate) async fn metrics(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        app.metrics
            .queue_depth
            .set(i64::try_from(app.store.queue_depth()).unwrap_or(i64::MAX));
        app.metrics
            .writer_busy_ms
            .set(i64::try_from(app.store.writer_busy_us() / 1000).unwrap_or(i64::MAX));
        app.metrics
            .writer_jobs
            .set(i64::try_from(app.store.writer_jobs()).unwrap_or(i64::MAX));
        app.metrics
            .writer_panics
            .set(i64::try_from(app.store.writer_panics()).unwrap_or(i64::MAX));
        let outbox = app.store.outbox_health().await.map_err(store_error)?;
        let now = app.store.now_ms();
        app.metrics
            .outbox_backlog
            .set(i64::try_from(outbox.backlog).unwrap_or(i64::MAX));
        app.metrics.outbox_oldest_pending_seconds.set(
            outbox
                .oldest_pending_since_ms
                .map_or(0, |t| (now - t).max(0) / 1000),
        );
        app.metrics
            .outbox_rejected
            .set(i64::try_from(outbox.rejected).unwrap_or(i64::MAX));
        let state = crate::metrics::StateInputs {
            health: app.health_inputs().await.map_err(store_error)?,
            audit: app.store.audit_gauges().await.map_err(store_error)?,
            last_backup_ms: crate::metrics::read_backup_stamp(&app.data_dir),
            register_silent_ms: app.cfg.register_silent_ms,
        };
        app.metrics.set_state(&state, app.store.now_ms());
        Ok(body_with_type(
            app.metrics.encode(),
            "text/plain; version=0.0.4; charset=utf-8",
        ))
    }
    .await;
    app.respond("/metrics", r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateStore {
    name: String,
    #[serde(default)]
    time_zone: Option<String>,
}

pub(crate) async fn create_store(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: CreateStore = parse_json(&body)?;
        if req.name.trim().is_empty() || req.name.len() > 200 {
            return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
        }
        let tz = req
            .time_zone
            .unwrap_or_else(|| "America/Santo_Domingo".into());
        if caja_shared::localtime::zone_offset(&tz).is_none() {
            return Err(ApiError::invalid(
                "time_zone",
                format!("{tz} is not a zone this hub knows (fixed-offset zones such as America/Santo_Domingo)"),
            ));
        }
        let info = app
            .store
            .create_store(req.name, tz)
            .await
            .map_err(store_error)?;
        json(&info)
    }
    .await;
    app.respond("/v1/admin/stores", r)
}

pub(crate) async fn list_stores(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let stores = app.store.stores().await.map_err(store_error)?;
        json(&serde_json::json!({ "stores": stores }))
    }
    .await;
    app.respond("/v1/admin/stores", r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    store: StoreId,
    name: String,
    #[serde(default)]
    ttl_ms: Option<i64>,
}

pub(crate) async fn create_token(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: CreateToken = parse_json(&body)?;
        let ttl = req.ttl_ms.unwrap_or(app.cfg.token_ttl_ms);
        if ttl <= 0 {
            return Err(ApiError::invalid("ttl_ms", "must be positive"));
        }
        let (token, expires) = answer(app.store.create_token(req.store, req.name, ttl).await)?;
        json(&serde_json::json!({ "token": token, "store": req.store, "expires_at_ms": expires }))
    }
    .await;
    app.respond("/v1/admin/enrollment-tokens", r)
}

pub(crate) async fn list_devices(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let params = query_params(&uri, &["store"])?;
        let store = match params.first() {
            Some((_, v)) => Some(
                v.parse::<StoreId>()
                    .map_err(|e| ApiError::invalid("store", e.to_string()))?,
            ),
            None => None,
        };
        let devices = app.store.devices(store).await.map_err(store_error)?;
        json(&serde_json::json!({ "devices": devices }))
    }
    .await;
    app.respond("/v1/admin/devices", r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

pub(crate) async fn revoke(
    State(app): App,
    headers: HeaderMap,
    Path(device): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let device = device_param(&device)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: Reason = parse_json(&body)?;
        answer(
            app.store
                .revoke(device, req.reason.unwrap_or_default())
                .await,
        )?;
        json(&serde_json::json!({ "device": device, "revoked": true }))
    }
    .await;
    app.respond("/v1/admin/devices/{device}/revoke", r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// A compromised key: every old key is refused at once (no grace period).
    #[serde(default)]
    no_grace: bool,
}

/// `POST /v1/admin/devices/{device}/rotate` `{"no_grace"?: bool}` (an empty
/// body is a planned rotation with the configured grace period).
pub(crate) async fn admin_rotate(
    State(app): App,
    headers: HeaderMap,
    Path(device): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let device = device_param(&device)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: RotateBody = parse_json(&body)?;
        let rotated = answer(app.store.admin_rotate_with(device, req.no_grace).await)?;
        json(&serde_json::json!({
            "device": device,
            "key_id": rotated.key_id,
            "key": rotated.key.to_hex().as_str(),
            "old_key_valid_until_ms": rotated.old_key_valid_until_ms,
            "no_grace": req.no_grace,
        }))
    }
    .await;
    app.respond("/v1/admin/devices/{device}/rotate", r)
}

pub(crate) async fn release(
    State(app): App,
    headers: HeaderMap,
    Path(device): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let device = device_param(&device)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: Reason = parse_json(&body)?;
        answer(
            app.store
                .release_quarantine(device, req.note.or(req.reason).unwrap_or_default())
                .await,
        )?;
        json(&serde_json::json!({ "device": device, "quarantined": false }))
    }
    .await;
    app.respond("/v1/admin/devices/{device}/release", r)
}

pub(crate) async fn quarantined(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let devices: Vec<_> = app
            .store
            .devices(None)
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(|d| d.quarantined_at_ms.is_some())
            .collect();
        json(&serde_json::json!({ "devices": devices }))
    }
    .await;
    app.respond("/v1/admin/quarantine", r)
}

pub(crate) async fn alerts(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let alerts = app.store.alerts().await.map_err(store_error)?;
        json(&serde_json::json!({ "alerts": alerts }))
    }
    .await;
    app.respond("/v1/admin/alerts", r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogLoad {
    #[serde(default)]
    stores: Vec<StoreId>,
    #[serde(default)]
    items: Vec<CatalogItemUpserted>,
    #[serde(default)]
    prices: Vec<PriceSet>,
}

pub(crate) async fn load_catalog(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: CatalogLoad = parse_json(&body)?;
        let mut bodies: Vec<EventBody> = req
            .items
            .into_iter()
            .map(EventBody::CatalogItemUpserted)
            .collect();
        bodies.extend(req.prices.into_iter().map(EventBody::PriceSet));
        if bodies.is_empty() {
            return Err(ApiError::invalid("items", "nothing to load"));
        }
        if bodies.len() > app.cfg.max_events_per_push {
            return Err(ApiError::invalid(
                "items",
                format!(
                    "at most {} items and prices per load",
                    app.cfg.max_events_per_push
                ),
            ));
        }
        let appended = answer(app.store.append_hub_events(req.stores, bodies).await)?;
        json(&serde_json::json!({ "stores": appended }))
    }
    .await;
    app.respond("/v1/admin/catalog", r)
}
