//! HTTP handlers of the DGII receiver services every electronic issuer
//! exposes (DGII "Descripción técnica de facturación electrónica" v1.6,
//! "Comunicación Emisor-Receptor"), and head office's reads and decisions on
//! what they received:
//! - `GET /fe/autenticacion/api/semilla` → the seed XML (`SemillaModel`);
//! - `POST /fe/autenticacion/api/validacioncertificado` (the signed seed, as
//!   the `xml` field of a multipart form or the raw body) →
//!   `{"token","expira","expedido"}`; a seed works once;
//! - `POST /fe/recepcion/api/ecf` (a supplier's e-CF) → a signed ARECF
//!   (200, `application/xml`), received or not with its reason code; a body
//!   naming no issuer and e-NCF → 400 `invalid`;
//! - `POST /fe/aprobacioncomercial/api/ecf` (a buyer's ACECF of an e-CF we
//!   issued) → 200 `{"encf","state","stored"}`;
//! - `GET /v1/admin/purchases`, `GET /v1/admin/commercial-approvals`,
//!   `POST /v1/admin/purchases/{issuer}/{encf}/decide` (admin only).
//!
//! Guessed (DGII does not say): the HTTP status of an ARECF that says "not
//! received" (200: the ARECF is the answer), the JSON answer of Aprobación
//! Comercial, 401 for a missing, forged or expired token. Every route is
//! behind the router's guard (body limit, in-flight limit, metrics) and a
//! per-address rate limit (`receiver_rate_limit`). The checks are
//! `crate::receiver`; storage is `storage::received`. No SQL here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use caja_shared::ecf::xmldsig::Signer;
use caja_shared::entropy::RandomSource;
use serde::Deserialize;

use super::kernel::{
    answer, body_bytes, body_with_type, json, parse_json, query_params, store_error, AppState,
};
use crate::net::guesses::GuessLimiter;
use crate::receiver::auth;
use crate::receiver::documents::{self, Approval, NotReceived};
use crate::wire::ApiError;

type App = State<Arc<AppState>>;

/// The receiver's per-address limiter.
#[derive(Debug)]
pub(crate) struct Limits(GuessLimiter);

type Peer = axum::http::Extensions;

/// The routes, with their per-address limiter.
pub(super) fn routes(state: &AppState) -> Router<Arc<AppState>> {
    let limits = Arc::new(Limits(GuessLimiter::new(state.cfg.receiver_rate_limit)));
    Router::new()
        .route("/fe/autenticacion/api/semilla", get(seed))
        .route(
            "/fe/autenticacion/api/validacioncertificado",
            post(validate),
        )
        .route("/fe/recepcion/api/ecf", post(reception))
        .route("/fe/aprobacioncomercial/api/ecf", post(approval))
        .route("/v1/admin/purchases", get(purchases))
        .route("/v1/admin/commercial-approvals", get(approvals))
        .route("/v1/admin/purchases/{issuer}/{encf}/decide", post(decide))
        .route(
            "/v1/admin/fiscal/representation/{encf}",
            get(representation),
        )
        .layer(Extension(limits))
}

/// One call of this address: 429 when its bucket is empty.
fn admit(app: &AppState, limits: &Limits, peer: &Peer) -> Result<(), ApiError> {
    let ip = peer
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let now = app.store.now_ms();
    if let Err(wait_ms) = limits.0.admit(ip, now) {
        let wait_s = u64::try_from((wait_ms + 999) / 1000).unwrap_or(60);
        return Err(ApiError::overloaded(
            "too many calls to the receiver services from this address",
            wait_s,
        ));
    }
    limits.0.failed(ip, now);
    Ok(())
}

/// Our RNC (`[tax_authority] rnc`); 503 when the hub is not configured as
/// a taxpayer.
fn our_rnc(app: &AppState) -> Result<String, ApiError> {
    app.cfg
        .tax_authority
        .as_ref()
        .map(|t| t.rnc.clone())
        .ok_or_else(|| {
            ApiError::new(
                503,
                "not_configured",
                "the receiver services need [tax_authority] (the taxpayer's RNC) in hub.toml",
            )
        })
}

/// The hub's signer (blocking: reads the data directory); 503 without one.
async fn signer(app: &AppState) -> Result<Signer, ApiError> {
    let dir = app.data_dir.clone();
    let unusable = |e: String| ApiError::new(503, "no_certificate", e);
    tokio::task::spawn_blocking(move || {
        let creds = crate::certificate::load_credentials(&dir)
            .map_err(|e| unusable(format!("the hub's certificate: {e}")))?
            .ok_or_else(|| {
                unusable(
                    "the hub has no installed e-CF certificate to sign its answers (caja-hub fiscal certificate install)"
                        .into(),
                )
            })?;
        creds
            .signer()
            .map_err(|e| unusable(format!("the hub's certificate: {e}")))
    })
    .await
    .map_err(|_| ApiError::internal())?
}

/// The XML of a request: the `xml` field of a multipart form, else the body.
fn xml_of<'a>(headers: &HeaderMap, body: &'a [u8]) -> &'a [u8] {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.trim_start().starts_with("multipart/form-data") {
        crate::taxgw::multipart::field(ct, body, "xml").unwrap_or(b"")
    } else {
        body
    }
}

fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    crate::system::OsRandom::new().fill_bytes(&mut n);
    n
}

/// The bearer token, when the services demand one.
fn token_ok(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !app.cfg.receiver_require_token {
        return Ok(());
    }
    let now = app.store.now_ms();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "bad_token",
                "this service needs Authorization: Bearer <token of /fe/autenticacion>",
                now,
            )
        })?;
    auth::check_token(&app.hub_key.public_key(), token.trim(), now)
        .map_err(|e| ApiError::unauthorized("bad_token", e.to_string(), now))
}

/// `GET /fe/autenticacion/api/semilla`.
async fn seed(State(app): App, Extension(limits): Extension<Arc<Limits>>, peer: Peer) -> Response {
    let r = (|| {
        admit(&app, &limits, &peer)?;
        let now = app.store.now_ms();
        let valor = auth::new_seed(&app.hub_key, nonce(), now);
        Ok(body_with_type(
            auth::seed_document(&valor, now),
            "application/xml",
        ))
    })();
    app.respond("/fe/autenticacion/api/semilla", r)
}

/// `POST /fe/autenticacion/api/validacioncertificado`.
async fn validate(
    State(app): App,
    Extension(limits): Extension<Arc<Limits>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        admit(&app, &limits, &peer)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let now = app.store.now_ms();
        let valor = auth::validate_signed_seed(
            xml_of(&headers, &body),
            &app.hub_key.public_key(),
            app.trust_store.as_deref(),
            now,
        )
        .map_err(|e| ApiError::unauthorized("bad_seed", e.to_string(), now))?;
        if !app
            .store
            .receiver_use_seed(valor)
            .await
            .map_err(store_error)?
        {
            return Err(ApiError::unauthorized(
                "seed_used",
                "this seed was already used; ask for a new one",
                now,
            ));
        }
        let token = auth::issue_token(&app.hub_key, nonce(), now, app.cfg.receiver_token_ttl_ms);
        let expira = auth::token_expiry(&token).unwrap_or(now);
        json(&serde_json::json!({
            "token": token,
            "expira": auth::iso_local(expira),
            "expedido": auth::iso_local(now),
        }))
    }
    .await;
    app.respond("/fe/autenticacion/api/validacioncertificado", r)
}

/// `POST /fe/recepcion/api/ecf`.
async fn reception(
    State(app): App,
    Extension(limits): Extension<Arc<Limits>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        admit(&app, &limits, &peer)?;
        token_ok(&app, &headers)?;
        let ours = our_rnc(&app)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let xml = xml_of(&headers, &body).to_vec();
        let Some((issuer, encf, buyer)) = documents::identify(&xml) else {
            return Err(ApiError::invalid(
                "xml",
                "not an e-CF: no Emisor/RNCEmisor and IdDoc/eNCF could be read",
            ));
        };
        let signer = signer(&app).await?;
        let now = app.store.now_ms();
        let trust = app.trust_store.clone();
        let checked = documents::check_ecf(&xml, &ours, trust.as_deref(), now);
        let buyer_for_answer = buyer.unwrap_or_else(|| ours.clone());
        let sign = |refusal: Option<&NotReceived>| {
            documents::arecf(&issuer, &buyer_for_answer, &encf, refusal, now, &signer)
                .map_err(|e| ApiError::new(503, "no_certificate", format!("signing the ARECF: {e}")))
        };
        let refusal = match checked {
            Err(refusal) => refusal,
            Ok(doc) => {
                let received = sign(None)?;
                if app
                    .store
                    .receive_ecf(doc, xml.clone(), received.clone())
                    .await
                    .map_err(store_error)?
                {
                    tracing::info!(issuer, encf, "supplier e-CF received");
                    return Ok(body_with_type(received, "application/xml"));
                }
                NotReceived::Duplicate
            }
        };
        tracing::warn!(issuer, encf, code = refusal.code(), reason = %crate::logsafe::Escaped(&refusal.reason()), "supplier e-CF not received");
        Ok(body_with_type(sign(Some(&refusal))?, "application/xml"))
    }
    .await;
    app.respond("/fe/recepcion/api/ecf", r)
}

/// `POST /fe/aprobacioncomercial/api/ecf`.
async fn approval(
    State(app): App,
    Extension(limits): Extension<Arc<Limits>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        admit(&app, &limits, &peer)?;
        token_ok(&app, &headers)?;
        let ours = our_rnc(&app)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let xml = xml_of(&headers, &body).to_vec();
        let now = app.store.now_ms();
        let a =
            documents::check_acecf(&xml, &ours, app.trust_store.as_deref(), now).map_err(|e| {
                match e {
                    documents::ApprovalError::Specification(_) => {
                        ApiError::invalid("xml", e.to_string())
                    }
                    documents::ApprovalError::Signature(_) => {
                        ApiError::new(400, "bad_signature", e.to_string())
                    }
                    documents::ApprovalError::NotOurs(_) => {
                        ApiError::new(400, "not_ours", e.to_string())
                    }
                }
            })?;
        let (encf, accepted) = (a.encf.clone(), a.accepted);
        let stored = answer(app.store.receive_approval(a, xml).await)?;
        if accepted {
            tracing::info!(encf, ?stored, "commercial approval received");
        } else {
            tracing::warn!(encf, ?stored, "commercial REJECTION received");
        }
        json(&serde_json::json!({
            "encf": encf,
            "state": if accepted { "approved" } else { "rejected" },
            "stored": stored,
        }))
    }
    .await;
    app.respond("/fe/aprobacioncomercial/api/ecf", r)
}

fn limit_param(uri: &Uri) -> Result<usize, ApiError> {
    let params = query_params(uri, &["limit"])?;
    match params.first() {
        None => Ok(100),
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "must be 1 to 1000")),
    }
}

/// `GET /v1/admin/purchases?limit=`.
async fn purchases(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let limit = limit_param(&uri)?;
        let list = app.store.purchases(limit).await.map_err(store_error)?;
        let deliveries = app.store.acecf_deliveries().await.map_err(store_error)?;
        json(&serde_json::json!({ "purchases": list, "deliveries": deliveries }))
    }
    .await;
    app.respond("/v1/admin/purchases", r)
}

/// `GET /v1/admin/commercial-approvals?limit=`.
async fn approvals(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let limit = limit_param(&uri)?;
        let list = app
            .store
            .commercial_approvals(limit)
            .await
            .map_err(store_error)?;
        let e31 = app.store.ecf_deliveries().await.map_err(store_error)?;
        json(&serde_json::json!({ "approvals": list, "e31_deliveries": e31 }))
    }
    .await;
    app.respond("/v1/admin/commercial-approvals", r)
}

/// Head office's decision on a supplier's e-CF.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    /// `approve` or `reject`.
    decision: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
}

/// `POST /v1/admin/purchases/{issuer}/{encf}/decide` `{"decision","by","note"}`.
async fn decide(
    State(app): App,
    headers: HeaderMap,
    Path((issuer, encf)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: DecideBody = parse_json(&body)?;
        let accepted = match req.decision.as_str() {
            "approve" => true,
            "reject" => false,
            _ => return Err(ApiError::invalid("decision", "must be approve or reject")),
        };
        if req.by.trim().is_empty() {
            return Err(ApiError::invalid("by", "who decides is required"));
        }
        if !accepted && req.note.trim().is_empty() {
            return Err(ApiError::invalid("note", "a rejection needs its reason"));
        }
        let d = answer(
            app.store
                .purchase_to_decide(issuer.clone(), encf.clone())
                .await,
        )?;
        let signer = signer(&app).await?;
        let a = Approval {
            issuer_rnc: issuer.clone(),
            encf: encf.clone(),
            issued_date: d.issued_date,
            total_text: documents::amount_text(d.total),
            buyer_rnc: d.buyer_rnc,
            accepted,
            reason: (!accepted).then(|| req.note.trim().to_owned()),
            decided_at: documents::dgii_time(app.store.now_ms()),
        };
        let acecf = documents::acecf(&a, &signer)
            .map_err(|e| ApiError::new(503, "no_certificate", format!("signing the ACECF: {e}")))?;
        answer(
            app.store
                .decide_purchase(
                    issuer.clone(),
                    encf.clone(),
                    accepted,
                    req.by.trim().to_owned(),
                    req.note.trim().to_owned(),
                    acecf.clone(),
                )
                .await,
        )?;
        json(&serde_json::json!({
            "issuer_rnc": issuer,
            "encf": encf,
            "decision": if accepted { "approved" } else { "rejected" },
            "acecf": String::from_utf8_lossy(&acecf),
        }))
    }
    .await;
    app.respond("/v1/admin/purchases/{issuer}/{encf}/decide", r)
}

/// The environment of the configured DGII address (its QR base).
fn environment(app: &AppState) -> caja_shared::ecf::issuer::Environment {
    use caja_shared::ecf::issuer::Environment;
    let base = app
        .cfg
        .tax_authority
        .as_ref()
        .map(|t| t.ecf_base_url.as_str())
        .unwrap_or("");
    if base.contains("/testecf") {
        Environment::Test
    } else if base.contains("/certecf") {
        Environment::Certification
    } else {
        Environment::Production
    }
}

/// `GET /v1/admin/fiscal/representation/{encf}` → `{"encf","pdf"}` (the
/// printed representation, base64).
async fn representation(State(app): App, headers: HeaderMap, Path(encf): Path<String>) -> Response {
    use base64::Engine as _;
    let r = async {
        app.admin_only(&headers)?;
        let xml = app
            .store
            .signed_ecf(encf.clone())
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found(format!("no signed e-CF {encf}")))?;
        let env = environment(&app);
        let pdf = tokio::task::spawn_blocking(move || crate::representation::pdf(&xml, env))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| ApiError::new(409, "not_representable", e.to_string()))?;
        json(&serde_json::json!({
            "encf": encf,
            "pdf": base64::engine::general_purpose::STANDARD.encode(pdf),
        }))
    }
    .await;
    app.respond("/v1/admin/fiscal/representation/{encf}", r)
}
