//! The HTTP shell: axum routes for the sync API (DESIGN "Sync protocol"), the
//! admin API, `/v1/health` and `/metrics`.
//!
//! Each handler reads the request, calls one pure function or one [`Store`]
//! method and writes the answer. Around every route: a concurrency guard (over
//! `max_concurrent_requests` in flight → 429 `overloaded` with `Retry-After`),
//! request metrics, and the body limit (→ 413 `too_large`). Every rejection is
//! counted by code and logged with its reason.
//!
//! Architecture invariant: no SQL here; no business decision here either (they
//! are in `auth`, `ingest`, `projection`, `health`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use caja_shared::ids::{DeviceId, StoreId};
use caja_shared::key::HubSigningKey;
use caja_shared::kind::{CatalogItemUpserted, EventBody, PriceSet};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::auth::{self, AdminToken, SignedRequest};
use crate::config::HubConfig;
use crate::health;
use crate::hubchain;
use crate::ingest;
use crate::metrics::{Metrics, Route, RouteStatus};
use crate::storage::{Answer, DeviceCtx, Store, StoreError};
use crate::wire::ApiError;

mod audit;

/// Default page size of pull and own.
pub const DEFAULT_PAGE: usize = 500;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Storage.
    pub store: Store,
    /// Configuration.
    pub cfg: Arc<HubConfig>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The admin token check.
    pub admin: AdminToken,
    /// The hub's Ed25519 key (signs hub checkpoints).
    pub hub_key: HubSigningKey,
    /// Requests in flight.
    pub limiter: Arc<Semaphore>,
    /// Push bodies being parsed at once (about one per core): bounds the CPU
    /// and the memory that parsed-but-not-yet-written batches take.
    pub parsers: Arc<Semaphore>,
}

type App = State<Arc<AppState>>;
type Reply = Result<Response, ApiError>;

/// The router with every route and layer.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.cfg.body_limit_bytes;
    Router::new()
        .route("/v1/devices/enroll", post(enroll))
        .route("/v1/devices/rotate", post(rotate))
        .route("/v1/sync/push", post(push))
        .route("/v1/sync/pull", get(pull))
        .route("/v1/sync/own", get(own))
        .route("/v1/health", get(health_report))
        .route("/metrics", get(metrics))
        .route("/v1/admin/stores", post(create_store).get(list_stores))
        .route("/v1/admin/enrollment-tokens", post(create_token))
        .route("/v1/admin/devices", get(list_devices))
        .route("/v1/admin/devices/{device}/revoke", post(revoke))
        .route("/v1/admin/devices/{device}/rotate", post(admin_rotate))
        .route("/v1/admin/devices/{device}/release", post(release))
        .route("/v1/admin/quarantine", get(quarantined))
        .route("/v1/admin/alerts", get(alerts))
        .route("/v1/admin/catalog", post(load_catalog))
        .route("/v1/admin/conflicts", get(crate::http_conflict::list))
        .route(
            "/v1/admin/conflicts/{id}/resolve",
            post(crate::http_conflict::resolve),
        )
        .route("/v1/fiscal/ranges", post(crate::http_fiscal::fiscal_ranges))
        .route("/v1/escrow/grants", post(crate::http_escrow::grants))
        .route("/v1/admin/staff", post(crate::http_staff::upsert))
        .route("/v1/admin/staff/activity", get(crate::http_staff::activity))
        .route("/v1/admin/stock", get(crate::http_escrow::stock))
        .route("/v1/admin/stock/alerts", get(crate::http_escrow::alerts))
        .route(
            "/v1/admin/stock/alerts/decide",
            post(crate::http_escrow::decide),
        )
        .route(
            "/v1/admin/fiscal/series",
            post(crate::http_fiscal::add_series).get(crate::http_fiscal::list_series),
        )
        .route("/v1/admin/fiscal/report", get(crate::http_fiscal::report))
        .route("/v1/admin/fiscal/607", get(crate::http_fiscal::dgii_607))
        .route(
            "/v1/admin/devices/{device}/write-off",
            post(crate::http_fiscal::write_off),
        )
        .route("/v1/payments/intents", post(crate::http_payments::intents))
        .route(
            "/v1/payments/webhooks/{provider}",
            post(crate::http_payments::webhook),
        )
        .route("/v1/admin/payments", get(crate::http_payments::overview))
        .route("/v1/admin/outbox", get(crate::http_outbox::list))
        .route(
            "/v1/admin/payments/reconcile",
            post(crate::http_payments::reconcile),
        )
        .merge(audit::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Concurrency limit and request metrics around every matched route.
pub(crate) async fn guard(State(app): App, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    let response = match app.limiter.clone().try_acquire_owned() {
        Err(_) => {
            let e = ApiError::overloaded("too many requests in flight", 1);
            app.metrics.reject(e.error);
            tracing::warn!(route, "request refused: concurrency limit");
            error_response(&e)
        }
        Ok(permit) => {
            app.metrics.in_flight.inc();
            let r = next.run(req).await;
            app.metrics.in_flight.dec();
            drop(permit);
            r
        }
    };
    app.metrics
        .requests
        .get_or_create(&RouteStatus {
            route: route.clone(),
            status: response.status().as_u16().to_string(),
        })
        .inc();
    app.metrics
        .durations
        .get_or_create(&Route { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn not_found() -> Response {
    error_response(&ApiError::not_found("no such endpoint"))
}

/// An error answer: JSON body, `Retry-After` for 429/503.
pub fn error_response(e: &ApiError) -> Response {
    let mut r = Response::new(Body::from(e.to_json()));
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(s) = e.retry_after_s {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

pub(crate) fn json_bytes(body: Vec<u8>) -> Response {
    body_with_type(body, "application/json")
}

/// A 200 answer with `body` as `content_type`.
pub(crate) fn body_with_type(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Reply {
    serde_json::to_vec(v)
        .map(json_bytes)
        .map_err(|_| ApiError::internal())
}

impl AppState {
    /// Turns a handler's result into the answer, counting and logging rejections.
    pub(crate) fn respond(&self, route: &str, r: Reply) -> Response {
        match r {
            Ok(resp) => resp,
            Err(e) => {
                self.metrics.reject(e.error);
                if e.status >= 500 {
                    tracing::error!(route, code = e.error, "request failed");
                } else {
                    tracing::warn!(route, status = e.status, code = e.error, field = e.field.as_deref().unwrap_or(""), reason = %e.message, "request rejected");
                }
                error_response(&e)
            }
        }
    }

    pub(crate) fn admin_only(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if self.admin.check(value) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "bad_admin_token",
                "this endpoint needs Authorization: Bearer <admin token>",
                self.store.now_ms(),
            ))
        }
    }
}

/// Maps a storage failure to an answer (the cause is logged).
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Overloaded => ApiError::overloaded("the ingest queue is full", 1),
        StoreError::Closed => ApiError::unavailable(),
        other => {
            tracing::error!(error = %other, "storage failure");
            ApiError::internal()
        }
    }
}

pub(crate) fn answer<T>(r: Result<Answer<T>, StoreError>) -> Result<T, ApiError> {
    r.map_err(store_error)?
}

pub(crate) fn body_bytes(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid("$", "the body could not be read")
        }
    })
}

pub(crate) fn signed_request(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<SignedRequest, ApiError> {
    let get = |name: &'static str| headers.get(name).and_then(|v| v.to_str().ok());
    let parsed = auth::parse_headers(get).map_err(|f| f.to_api(app.store.now_ms()))?;
    Ok(SignedRequest {
        method: method.as_str().to_owned(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parsed,
        body: Arc::from(body.as_ref()),
    })
}

/// Parses a JSON body strictly into `T`, naming the field at fault.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.is_empty() {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "$".to_owned() } else { path };
        ApiError::invalid(field, e.inner().to_string())
    })?;
    de.end()
        .map_err(|e| ApiError::invalid("$", e.to_string()))?;
    Ok(v)
}

/// Parses a query string of known parameters (`name=value&…`, no encoding).
pub(crate) fn query_params<'q>(
    uri: &'q Uri,
    known: &[&str],
) -> Result<Vec<(&'q str, &'q str)>, ApiError> {
    let mut out = Vec::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !known.contains(&k) {
            return Err(ApiError::invalid(k, "unknown query parameter"));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(ApiError::invalid(k, "repeated query parameter"));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn param_number(name: &str, v: &str, max: u64) -> Result<u64, ApiError> {
    let ok = !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| v.parse::<u64>().ok())
        .flatten()
        .filter(|n| *n <= max)
        .ok_or_else(|| ApiError::invalid(name, format!("must be an integer from 0 to {max}")))
}

fn page_limit(app: &AppState, params: &[(&str, &str)]) -> Result<usize, ApiError> {
    let max = app.cfg.max_page;
    match params.iter().find(|(k, _)| *k == "limit") {
        None => Ok(DEFAULT_PAGE.min(max)),
        Some((_, v)) => {
            let n = param_number("limit", v, u64::try_from(max).unwrap_or(u64::MAX))?;
            if n == 0 {
                return Err(ApiError::invalid("limit", "must be at least 1"));
            }
            Ok(usize::try_from(n).unwrap_or(max))
        }
    }
}

/// Pull cursors are `a<applied order>`; clients treat them as opaque.
fn parse_cursor(v: &str) -> Result<u64, ApiError> {
    if v.is_empty() {
        return Ok(0);
    }
    v.strip_prefix('a')
        .and_then(|n| param_number("after", n, 1 << 53).ok())
        .ok_or_else(|| ApiError::invalid("after", "not a cursor this hub returned"))
}

async fn authenticated(app: &AppState, req: SignedRequest) -> Result<DeviceCtx, ApiError> {
    answer(app.store.authenticate(req).await)
}

// ---- Sync API ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    token: String,
}

async fn enroll(State(app): App, body: Result<Bytes, BytesRejection>) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: EnrollBody = parse_json(&body)?;
        let e = answer(app.store.enroll(req.token).await)?;
        json(&serde_json::json!({
            "store": e.store,
            "device": e.device,
            "key_id": e.key_id,
            "key": e.key.to_hex().as_str(),
            "hub_key": app.hub_key.public_key().to_hex(),
            "hub_time_ms": app.store.now_ms(),
        }))
    }
    .await;
    app.respond("/v1/devices/enroll", r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn rotate(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req = signed_request(&app, &method, &uri, &headers, body.clone())?;
        let parsed = parse_json::<Empty>(&body);
        // Authentication is checked first, inside the same writer job.
        let rotated = answer(app.store.rotate_checked(req, parsed.map(|_| ())).await)?;
        json(&serde_json::json!({
            "key_id": rotated.key_id,
            "key": rotated.key.to_hex().as_str(),
            "old_key_valid_until_ms": rotated.old_key_valid_until_ms,
        }))
    }
    .await;
    app.respond("/v1/devices/rotate", r)
}

async fn push(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req = signed_request(&app, &method, &uri, &headers, body)?;
        let bytes = req.body.clone();
        let max = app.cfg.max_events_per_push;
        // Parsing and hashing hundreds of events is CPU work: off the executor,
        // a bounded number at a time.
        let permit = app
            .parsers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable())?;
        let parsed = tokio::task::spawn_blocking(move || {
            let parsed = ingest::parse_push(&bytes, max);
            drop(permit);
            parsed
        })
        .await
        .map_err(|_| ApiError::internal())?;
        let ack = answer(app.store.push(req, parsed).await)?;
        app.metrics.events_accepted.inc_by(ack.accepted as u64);
        app.metrics.events_duplicate.inc_by(ack.duplicates as u64);
        app.metrics.events_held.inc_by(ack.held.len() as u64);
        let mut v = serde_json::to_value(&ack).map_err(|_| ApiError::internal())?;
        v["hub_time_ms"] = app.store.now_ms().into();
        json(&v)
    }
    .await;
    app.respond("/v1/sync/push", r)
}

fn push_events(out: &mut Vec<u8>, events: &[Vec<u8>]) {
    out.extend_from_slice(b"{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.push(b']');
}

async fn pull(State(app): App, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let r = async {
        let req = signed_request(&app, &method, &uri, &headers, Bytes::new())?;
        let who = authenticated(&app, req).await?;
        let params = query_params(&uri, &["after", "limit"])?;
        let after = match params.iter().find(|(k, _)| *k == "after") {
            Some((_, v)) => parse_cursor(v)?,
            None => 0,
        };
        let limit = page_limit(&app, &params)?;
        let page = app
            .store
            .pull(who, after, limit)
            .await
            .map_err(store_error)?;
        let mut out = Vec::with_capacity(page.events.iter().map(Vec::len).sum::<usize>() + 512);
        push_events(&mut out, &page.events);
        out.extend_from_slice(
            format!(",\"next\":\"a{}\",\"more\":{}", page.next, page.more).as_bytes(),
        );
        if let Some((device, seq, hash)) = page.last_hub {
            let cp = hubchain::checkpoint(&app.hub_key, device, seq, hash);
            out.extend_from_slice(b",\"hub_checkpoint\":");
            out.extend_from_slice(&serde_json::to_vec(&cp).map_err(|_| ApiError::internal())?);
        }
        out.push(b'}');
        Ok(json_bytes(out))
    }
    .await;
    app.respond("/v1/sync/pull", r)
}

async fn own(State(app): App, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let r = async {
        let req = signed_request(&app, &method, &uri, &headers, Bytes::new())?;
        let who = authenticated(&app, req).await?;
        let params = query_params(&uri, &["after_seq", "limit"])?;
        let after_seq = match params.iter().find(|(k, _)| *k == "after_seq") {
            Some((_, v)) => param_number("after_seq", v, 1 << 53)?,
            None => 0,
        };
        let limit = page_limit(&app, &params)?;
        let page = app
            .store
            .own(who, after_seq, limit)
            .await
            .map_err(store_error)?;
        let mut out = Vec::new();
        push_events(&mut out, &page.events);
        out.extend_from_slice(b",\"checkpoint\":");
        out.extend_from_slice(page.checkpoint.as_deref().unwrap_or("null").as_bytes());
        out.extend_from_slice(format!(",\"more\":{}}}", page.more).as_bytes());
        Ok(json_bytes(out))
    }
    .await;
    app.respond("/v1/sync/own", r)
}

// ---- Health and metrics ----------------------------------------------------

async fn health_report(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let inputs = app.store.health_inputs().await.map_err(store_error)?;
        json(&health::report_with(
            &inputs,
            app.store.now_ms(),
            app.cfg.register_silent_ms,
        ))
    }
    .await;
    app.respond("/v1/health", r)
}

async fn metrics(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        app.metrics
            .queue_depth
            .set(i64::try_from(app.store.queue_depth()).unwrap_or(i64::MAX));
        app.metrics
            .writer_busy_ms
            .set(i64::try_from(app.store.writer_busy_us() / 1000).unwrap_or(i64::MAX));
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
        Ok(body_with_type(
            app.metrics.encode(),
            "text/plain; version=0.0.4; charset=utf-8",
        ))
    }
    .await;
    app.respond("/metrics", r)
}

// ---- Admin API ---------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateStore {
    name: String,
    #[serde(default)]
    time_zone: Option<String>,
}

async fn create_store(
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

async fn list_stores(State(app): App, headers: HeaderMap) -> Response {
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
struct CreateToken {
    store: StoreId,
    name: String,
    #[serde(default)]
    ttl_ms: Option<i64>,
}

async fn create_token(
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

async fn list_devices(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
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

pub(crate) fn device_param(s: &str) -> Result<DeviceId, ApiError> {
    s.parse()
        .map_err(|e: caja_shared::ids::IdError| ApiError::invalid("device", e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

async fn revoke(
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

async fn admin_rotate(State(app): App, headers: HeaderMap, Path(device): Path<String>) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let device = device_param(&device)?;
        let rotated = answer(app.store.admin_rotate(device).await)?;
        json(&serde_json::json!({
            "device": device,
            "key_id": rotated.key_id,
            "key": rotated.key.to_hex().as_str(),
            "old_key_valid_until_ms": rotated.old_key_valid_until_ms,
        }))
    }
    .await;
    app.respond("/v1/admin/devices/{device}/rotate", r)
}

async fn release(
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

async fn quarantined(State(app): App, headers: HeaderMap) -> Response {
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

async fn alerts(State(app): App, headers: HeaderMap) -> Response {
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

async fn load_catalog(
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

#[cfg(test)]
mod tests {
    use super::*;

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
