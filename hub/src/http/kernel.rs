//! What every HTTP handler module shares: the state ([`AppState`]), the
//! concurrency guard, error and JSON answers, request reading (body limit,
//! signed requests, JSON and canonical bodies, query parameters, cursors)
//! and the hub-events answer of signed device requests.
//!
//! Invariant: imports no handler module; handler modules and the router
//! import it.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use caja_shared::ids::DeviceId;
use caja_shared::key::HubSigningKey;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::auth::{self, AdminToken, Authentic, SignedRequest};
use crate::config::HubConfig;
use crate::hubchain;
use crate::metrics::{Metrics, RouteStatus};
use crate::storage::{Answer, DeviceCtx, Storage, StorageError};
use crate::wire::ApiError;
use caja_shared::canonical;
use caja_shared::digest::Hash256;

/// Default page size of pull and own.
pub const DEFAULT_PAGE: usize = 500;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Storage.
    pub store: Storage,
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
    /// The hub's data directory (its installed e-CF certificate).
    pub data_dir: std::path::PathBuf,
    /// The trusted certification authorities of `[tax_authority]
    /// trusted_ca`, read at start; `None` when not configured.
    pub trust_store: Option<Arc<caja_shared::ecf::certificate::TrustStore>>,
    /// Wrong admin tokens per client address.
    pub admin_guesses: crate::net::guesses::GuessLimiter,
    /// Memory for request bodies being read, in all and per address.
    pub body_budget: Arc<crate::net::budget::BodyBudget>,
}

pub(crate) type App = State<Arc<AppState>>;

pub(crate) type Reply = Result<Response, ApiError>;

/// Whether a route takes the admin token (its wrong guesses are limited per
/// client address).
fn takes_admin_token(route: &str) -> bool {
    route.starts_with("/v1/admin/") || route == "/v1/health" || route == "/metrics"
}

/// The client address the serve loop recorded (absent when the router is
/// called without a socket, as in the simulation).
fn peer_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Refuses an address that has used up its wrong admin tokens (before the
/// token is compared), and counts a wrong or missing one.
fn admin_guess(app: &AppState, req: &Request) -> Result<(), ApiError> {
    let ip = peer_ip(req);
    let now = app.store.now_ms();
    if let Err(wait_ms) = app.admin_guesses.admit(ip, now) {
        let wait_s = u64::try_from((wait_ms + 999) / 1000).unwrap_or(60);
        tracing::warn!(peer = ?ip, wait_s, "admin token refused unchecked: too many wrong tokens");
        return Err(ApiError::overloaded(
            "too many wrong admin tokens from this address",
            wait_s,
        ));
    }
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !app.admin.check(value) {
        app.admin_guesses.failed(ip, now);
    }
    Ok(())
}

/// Reads the whole body (at most `body_limit_bytes`, within
/// `body_timeout_ms`, its bytes counted against the body budget as they
/// arrive) before anything else holds a resource for it.
async fn buffered(
    app: &AppState,
    req: Request,
    held: &mut crate::net::budget::Reservation,
) -> Result<Request, ApiError> {
    let limit = app.cfg.body_limit_bytes;
    let (parts, mut body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(ApiError::too_large(limit));
    }
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
            let frame = frame.map_err(|_| ApiError::invalid("$", "the body could not be read"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len().saturating_add(data.len()) > limit {
                return Err(ApiError::too_large(limit));
            }
            if !held.grow(data.len()) {
                return Err(ApiError::overloaded(
                    "the hub is reading too many request bodies at once",
                    1,
                ));
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    };
    let wait = std::time::Duration::from_millis(app.cfg.body_timeout_ms);
    match tokio::time::timeout(wait, read).await {
        Err(_) => Err(ApiError::timeout(
            "the request body did not arrive within the body timeout",
        )),
        Ok(r) => r.map(|bytes| Request::from_parts(parts, Body::from(bytes))),
    }
}

/// Around every matched route: the admin-token guess limit, the body read
/// in full, then the concurrency limit, and request metrics. The permit is
/// taken only once the body is here, so slow senders never hold one.
pub(crate) async fn guard(State(app): App, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    let admitted = if takes_admin_token(&route) {
        admin_guess(&app, &req)
    } else {
        Ok(())
    };
    // The body's bytes stay counted until the answer is made.
    let mut held = app.body_budget.start(peer_ip(&req));
    let ready = match admitted {
        Ok(()) => buffered(&app, req, &mut held).await,
        Err(e) => Err(e),
    };
    let response = match ready {
        Err(e) => {
            app.metrics.reject(e.error);
            tracing::warn!(route, status = e.status, code = e.error, reason = %e.message, "request refused before its handler");
            error_response(&e)
        }
        Ok(req) => match app.limiter.clone().try_acquire_owned() {
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
        },
    };
    drop(held);
    let mut response = response;
    if route.starts_with("/v1/") {
        // DESIGN "Hub restore": the restore epoch in every answer, errors
        // included, so a register notices a restored hub at once.
        response.headers_mut().insert(
            crate::restore::EPOCH_HEADER,
            HeaderValue::from(app.store.restore_epoch()),
        );
    }
    let labels = RouteStatus {
        route,
        status: response.status().as_u16().to_string(),
    };
    app.metrics.requests.get_or_create(&labels).inc();
    app.metrics
        .durations
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

pub(crate) async fn not_found() -> Response {
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
    /// The health report's inputs: the store's, and the state of the hub's
    /// e-CF certificate read from the data directory now (it may have been
    /// installed while the hub runs).
    pub async fn health_inputs(&self) -> Result<crate::storage::HealthInputs, StorageError> {
        let mut inputs = self.store.health_inputs().await?;
        inputs.payments = self
            .store
            .payments_health(self.cfg.payment_confirm_deadline_ms)
            .await?;
        let dir = self.data_dir.clone();
        inputs.certificate =
            tokio::task::spawn_blocking(move || crate::certificate::CertificateState::read(&dir))
                .await
                .map_err(|e| StorageError::Task(e.to_string()))?;
        Ok(inputs)
    }

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
pub(crate) fn store_error(e: StorageError) -> ApiError {
    match e {
        StorageError::Overloaded => ApiError::overloaded("the ingest queue is full", 1),
        StorageError::Closed => ApiError::unavailable(),
        e if e.is_disk_fault() => {
            tracing::error!(error = %e, "the database cannot write (disk full or failing); answered 503");
            ApiError::storage_unavailable()
        }
        other => {
            tracing::error!(error = %other, "storage failure");
            ApiError::internal()
        }
    }
}

pub(crate) fn answer<T>(r: Result<Answer<T>, StorageError>) -> Result<T, ApiError> {
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

fn signed_request(
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

pub(crate) fn param_number(name: &str, v: &str, max: u64) -> Result<u64, ApiError> {
    let ok = !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| v.parse::<u64>().ok())
        .flatten()
        .filter(|n| *n <= max)
        .ok_or_else(|| ApiError::invalid(name, format!("must be an integer from 0 to {max}")))
}

pub(crate) fn page_limit(app: &AppState, params: &[(&str, &str)]) -> Result<usize, ApiError> {
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
pub(crate) fn parse_cursor(v: &str) -> Result<u64, ApiError> {
    if v.is_empty() {
        return Ok(0);
    }
    v.strip_prefix('a')
        .and_then(|n| param_number("after", n, 1 << 53).ok())
        .ok_or_else(|| ApiError::invalid("after", "not a cursor this hub returned"))
}

/// A device-signed request, authenticated before anything reads its body:
/// the signing headers, then the device's key, signature, timestamp and
/// quarantine checked on a read connection ([`Storage::preauthenticate`]).
/// A request refused here costs no parsing and no writer job; the nonce and
/// the rate limit are checked by the writer job the handler then runs.
pub(crate) async fn admitted(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Authentic, ApiError> {
    let req = signed_request(app, method, uri, headers, body)?;
    answer(app.store.preauthenticate(req).await)
}

/// The writer's part of authentication for a request with no other writer
/// job (pull, own, audit reads): the nonce and the rate limit.
pub(crate) async fn authenticated(app: &AppState, req: Authentic) -> Result<DeviceCtx, ApiError> {
    answer(app.store.authenticate(req).await)
}

pub(crate) fn device_param(s: &str) -> Result<DeviceId, ApiError> {
    s.parse()
        .map_err(|e: caja_shared::ids::IdError| ApiError::invalid("device", e.to_string()))
}

/// Writes `{"events":[…],"hub_checkpoint":{…}}` for hub events (their stored
/// bytes, unchanged) with a checkpoint signed over the last one.
pub(crate) fn events_answer(app: &AppState, events: &[Vec<u8>]) -> Result<Response, ApiError> {
    let last = events.last().ok_or_else(ApiError::internal)?;
    let event = caja_shared::event::Event::from_json(last).map_err(|_| ApiError::internal())?;
    let cp = hubchain::checkpoint(
        &app.hub_key,
        event.envelope().device,
        event.seq(),
        event.hash(),
    );
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.extend_from_slice(b"],\"hub_checkpoint\":");
    out.extend_from_slice(&serde_json::to_vec(&cp).map_err(|_| ApiError::internal())?);
    out.extend_from_slice(format!(",\"hub_time_ms\":{}}}", app.store.now_ms()).as_bytes());
    Ok(json_bytes(out))
}

/// Parses a body and hashes its canonical form (the idempotency check
/// compares bodies by that hash, so key order and spacing do not matter).
pub(crate) fn parse_canonical<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<(T, Hash256), ApiError> {
    let v = canonical::parse(body).map_err(|e| ApiError::invalid("$", e.to_string()))?;
    let parsed: T = parse_json(body)?;
    Ok((parsed, Hash256::of(&v.to_canonical_bytes())))
}
