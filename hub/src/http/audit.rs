//! The audit log's endpoints (DESIGN "Audit log v1"; ARCHITECTURE "hub"):
//!
//! ```text
//! GET  /v1/audit/sth                                  → sth.json of the latest signed tree head
//! GET  /v1/audit/inclusion?index=<i>&tree_size=<n>    → {"entry","index","leaf_hash","proof","tree_size"}
//! GET  /v1/audit/consistency?first=<m>&second=<n>     → {"first","proof","second"}
//! POST /v1/admin/audit/sth                            → signs a head of the current tree now
//! ```
//!
//! The `GET`s answer registers (signed requests, as pull) and auditors
//! (`Authorization: Bearer <admin token>`); the `POST` is admin only. A
//! register reads inclusion proofs of its own store's entries only (403
//! `wrong_store` for another store's or a hub-wide entry); an auditor reads
//! every entry. Proofs are
//! lowercase hex hashes in RFC 9162 order; `entry` is the entry's canonical JSON
//! as stored, so its leaf hash is SHA-256(0x00 ‖ its bytes).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use caja_shared::digest::Hash256;
use caja_shared::ids::StoreId;

use super::kernel::{
    admitted, answer, authenticated, json_bytes, param_number, query_params, store_error, App,
    AppState, Reply,
};
use crate::audit_tree::MAX_TREE_SIZE;
use crate::wire::ApiError;

/// The audit routes, merged into the main router (under its guard).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/audit/sth", get(sth))
        .route("/v1/audit/inclusion", get(inclusion))
        .route("/v1/audit/consistency", get(consistency))
        .route("/v1/admin/audit/sth", post(sign_now))
}

/// An auditor with the admin token (`None`: every entry), or a register's
/// signed request (`Some(its store)`: the entries it may read).
async fn reader(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<StoreId>, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return app.admin_only(headers).map(|()| None);
    }
    let req = admitted(app, method, uri, headers, Bytes::new()).await?;
    authenticated(app, req).await.map(|who| Some(who.store))
}

fn sth_response(sth: &caja_shared::merkle::SignedTreeHead) -> Reply {
    let text = sth.to_json().map_err(|_| ApiError::internal())?;
    Ok(json_bytes(text.into_bytes()))
}

fn hex_list(out: &mut Vec<u8>, hashes: &[Hash256]) {
    out.push(b'[');
    for (i, h) in hashes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(h.to_hex().as_bytes());
        out.push(b'"');
    }
    out.push(b']');
}

fn required(params: &[(&str, &str)], name: &str) -> Result<u64, ApiError> {
    let (_, v) = params
        .iter()
        .find(|(k, _)| *k == name)
        .ok_or_else(|| ApiError::invalid(name, "required"))?;
    param_number(name, v, MAX_TREE_SIZE)
}

async fn sth(State(app): App, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let r = async {
        reader(&app, &method, &uri, &headers).await?;
        query_params(&uri, &[])?;
        match app.store.audit_latest_sth().await.map_err(store_error)? {
            Some(sth) => sth_response(&sth),
            None => {
                // Only before the first start-up signed one; sign it now.
                let sth = app
                    .store
                    .audit_sign_head(app.hub_key.clone(), false)
                    .await
                    .map_err(store_error)?;
                sth_response(&sth)
            }
        }
    }
    .await;
    app.respond("/v1/audit/sth", r)
}

async fn inclusion(State(app): App, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let r = async {
        let scope = reader(&app, &method, &uri, &headers).await?;
        let params = query_params(&uri, &["index", "tree_size"])?;
        let index = required(&params, "index")?;
        let tree_size = required(&params, "tree_size")?;
        let a = answer(app.store.audit_inclusion(index, tree_size, scope).await)?;
        let mut out = Vec::with_capacity(a.entry.len() + 64 * (a.proof.len() + 2) + 128);
        out.extend_from_slice(b"{\"entry\":");
        out.extend_from_slice(&a.entry);
        out.extend_from_slice(
            format!(
                ",\"index\":{index},\"leaf_hash\":\"{}\",\"proof\":",
                a.leaf_hash
            )
            .as_bytes(),
        );
        hex_list(&mut out, &a.proof);
        out.extend_from_slice(format!(",\"tree_size\":{tree_size}}}").as_bytes());
        Ok(json_bytes(out))
    }
    .await;
    app.respond("/v1/audit/inclusion", r)
}

async fn consistency(State(app): App, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let r = async {
        reader(&app, &method, &uri, &headers).await?;
        let params = query_params(&uri, &["first", "second"])?;
        let first = required(&params, "first")?;
        let second = required(&params, "second")?;
        let proof = answer(app.store.audit_consistency(first, second).await)?;
        let mut out = format!("{{\"first\":{first},\"proof\":").into_bytes();
        hex_list(&mut out, &proof);
        out.extend_from_slice(format!(",\"second\":{second}}}").as_bytes());
        Ok(json_bytes(out))
    }
    .await;
    app.respond("/v1/audit/consistency", r)
}

async fn sign_now(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let sth = app
            .store
            .audit_sign_head(app.hub_key.clone(), true)
            .await
            .map_err(store_error)?;
        tracing::info!(tree_size = sth.tree_size, root = %sth.root, "tree head signed on demand");
        sth_response(&sth)
    }
    .await;
    app.respond("/v1/admin/audit/sth", r)
}
