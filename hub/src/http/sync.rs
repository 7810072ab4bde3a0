//! The sync API of registers: enrollment, key rotation, push, pull, own
//! (DESIGN "Sync protocol").
//!
//! Invariant: reads the request, calls one store method, writes the answer;
//! no SQL and no decision here.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::Deserialize;

use super::kernel::{
    admitted, answer, authenticated, body_bytes, json, json_bytes, page_limit, param_number,
    parse_cursor, parse_json, query_params, store_error, App,
};
use crate::hubchain;
use crate::ingest;
use crate::wire::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    token: String,
}

pub(crate) async fn enroll(State(app): App, body: Result<Bytes, BytesRejection>) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: EnrollBody = parse_json(&body)?;
        // A guessed token costs a read, not a writer job.
        answer(app.store.enrollment_precheck(&req.token).await)?;
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
pub(crate) struct Empty {}

pub(crate) async fn rotate(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req = admitted(&app, &method, &uri, &headers, body.clone()).await?;
        let parsed = parse_json::<Empty>(&body);
        // The nonce, the current key and quarantine are checked first,
        // inside the rotation's writer job.
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

pub(crate) async fn push(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        // Authenticated before the body is parsed: a forged push costs a
        // key read and a hash, never a parse or a writer job.
        let req = admitted(&app, &method, &uri, &headers, body).await?;
        let bytes = req.request().body.clone();
        let max = app.cfg.max_events_per_push;
        app.metrics.pushes_parsed.inc();
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
        v["restore_epoch"] = app.store.restore_epoch().into();
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

pub(crate) async fn pull(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let req = admitted(&app, &method, &uri, &headers, Bytes::new()).await?;
        let who = authenticated(&app, req).await?;
        let params = query_params(&uri, &["after", "limit"])?;
        let after = match params.iter().find(|(k, _)| *k == "after") {
            Some((_, v)) => parse_cursor(v)?,
            None => 0,
        };
        let limit = page_limit(&app, &params)?;
        let page = app
            .store
            .pull(who, after, limit, app.cfg.max_page_bytes)
            .await
            .map_err(store_error)?;
        let mut out = Vec::with_capacity(page.events.iter().map(Vec::len).sum::<usize>() + 512);
        push_events(&mut out, &page.events);
        out.extend_from_slice(
            format!(
                ",\"next\":\"a{}\",\"more\":{},\"restore_epoch\":{},\"restore_acknowledged\":{}",
                page.next,
                page.more,
                app.store.restore_epoch(),
                app.store.restore_acknowledged()
            )
            .as_bytes(),
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

pub(crate) async fn own(State(app): App, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let r = async {
        let req = admitted(&app, &method, &uri, &headers, Bytes::new()).await?;
        let who = authenticated(&app, req).await?;
        let params = query_params(&uri, &["after_seq", "limit"])?;
        let after_seq = match params.iter().find(|(k, _)| *k == "after_seq") {
            Some((_, v)) => param_number("after_seq", v, 1 << 53)?,
            None => 0,
        };
        let limit = page_limit(&app, &params)?;
        let page = app
            .store
            .own(who, after_seq, limit, app.cfg.max_page_bytes)
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
