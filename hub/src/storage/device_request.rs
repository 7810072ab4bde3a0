//! Idempotent device requests (`POST /v1/fiscal/ranges`, `/v1/escrow/grants`,
//! `/v1/payments/intents`): the prologue they share — authentication (the
//! writer's part, quarantine included; the request was admitted before its
//! body was parsed), the body, its own checks, the request id — and the
//! stored answers in `device_requests`. DESIGN: the same `request_id` with the same canonical
//! body returns the first answer; with another body, 409
//! `request_id_conflict`.

use super::db::{params, Conn, OptionalExtension};
use caja_shared::digest::Hash256;
use caja_shared::ids::DeviceId;

use crate::auth::{Authentic, DeviceRecord};
use crate::storage::codec::corrupt;
use crate::storage::device_auth::authenticate;
use crate::storage::error::Answer;
use crate::storage::error::StorageError;
use crate::storage::writer::Env;
use crate::wire::ApiError;

/// What such a request answers: the hub events' canonical bytes.
pub(crate) type Events = Answer<Vec<Vec<u8>>>;

/// A request that passed the prologue and was not answered before.
pub(crate) struct Begun<T> {
    /// The authenticated device.
    pub(crate) who: DeviceRecord,
    /// The parsed, checked body.
    pub(crate) request: T,
    /// SHA-256 of the body's canonical form.
    pub(crate) body_hash: Hash256,
    /// The request id.
    pub(crate) request_id: String,
}

/// Authentication first, then the body and `check`, then the request id:
/// `Ok(begun)` to go on, `Err(answer)` to answer at once (a refusal, or the
/// first answer to this request id).
pub(crate) fn begin<T>(
    conn: &Conn,
    env: &mut Env,
    req: &Authentic,
    parsed: Result<(T, Hash256), ApiError>,
    endpoint: &str,
    check: impl FnOnce(&T) -> Result<(), ApiError>,
    request_id: impl FnOnce(&T) -> String,
) -> Result<Result<Begun<T>, Events>, StorageError> {
    let who = match authenticate(conn, env, req)? {
        Ok(d) => d,
        Err(e) => return Ok(Err(Err(e))),
    };
    let (request, body_hash) = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(Err(Err(e))),
    };
    if let Err(e) = check(&request) {
        return Ok(Err(Err(e)));
    }
    let request_id = request_id(&request);
    if let Some(prior) = prior_answer(conn, who.device, &request_id, endpoint, body_hash)? {
        return Ok(Err(prior));
    }
    Ok(Ok(Begun {
        who,
        request,
        body_hash,
        request_id,
    }))
}

/// The stored answer of a request id: the same body gets it again; another
/// body (or endpoint) is `request_id_conflict`.
pub(crate) fn prior_answer(
    conn: &Conn,
    device: DeviceId,
    request_id: &str,
    endpoint: &str,
    body_hash: Hash256,
) -> Result<Option<Events>, StorageError> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached(
            "SELECT endpoint, body_hash, answer FROM device_requests WHERE device_id = $1 AND request_id = $2",
        )?
        .query_row(params![device.to_string(), request_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((ep, hash, answer)) = row else {
        return Ok(None);
    };
    if ep != endpoint || hash != body_hash.to_hex() {
        return Ok(Some(Err(ApiError::new(
            409,
            "request_id_conflict",
            "this request_id was used before with another body",
        ))));
    }
    let events: Vec<String> = serde_json::from_str(&answer).map_err(corrupt)?;
    Ok(Some(Ok(events
        .into_iter()
        .map(String::into_bytes)
        .collect())))
}

pub(crate) fn record_answer(
    conn: &Conn,
    device: DeviceId,
    request_id: &str,
    endpoint: &str,
    body_hash: Hash256,
    events: &[Vec<u8>],
    now: i64,
) -> Result<(), StorageError> {
    let as_text: Vec<String> = events
        .iter()
        .map(|b| String::from_utf8(b.clone()).map_err(corrupt))
        .collect::<Result<_, _>>()?;
    conn.execute(
        "INSERT INTO device_requests (device_id, request_id, endpoint, body_hash, answer, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        params![
            device.to_string(),
            request_id,
            endpoint,
            body_hash.to_hex(),
            serde_json::to_string(&as_text).map_err(corrupt)?,
            now
        ],
    )?;
    Ok(())
}
