//! Device authentication with its persisted parts, in two steps.
//!
//! 1. [`Storage::preauthenticate`], off the writer and before the body is
//!    parsed: the device and its keys read on a read connection, then the
//!    key, signature and timestamp ([`crate::auth::admit`]; the body is hashed
//!    only once a valid key exists), then quarantine. A request that fails
//!    here never reaches the writer and its body is never parsed.
//! 2. [`authenticate`], the first thing of every device writer job: the key's
//!    standing re-read in the write transaction ([`crate::auth::recheck`]),
//!    the nonce (refused if seen, pruned when out of the replay window),
//!    quarantine again (it may have begun in between), and the device's rate
//!    limit bucket.
//!
//! Kernel: every device-facing write starts here; imports no feature
//! module.

use crate::auth;
use crate::auth::{Authentic, DeviceRecord, KeyRecord, SignedRequest};
use crate::ratelimit::{Bucket, Decision};
use crate::storage::codec::{corrupt, parse, u};
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::error::{Answer, StorageError};
use crate::storage::writer::{Env, Storage};
use crate::wire::ApiError;
use caja_shared::ids::{DeviceId, StoreId};
use caja_shared::key::DeviceKey;
use caja_shared::request::MAX_REQUEST_SKEW_MS;

/// An authenticated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCtx {
    /// The device.
    pub device: DeviceId,
    /// Its store.
    pub store: StoreId,
}

pub(crate) fn load_device(
    conn: &Conn,
    device: DeviceId,
) -> Result<Option<DeviceRecord>, StorageError> {
    let row: Option<(String, Option<i64>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT store_id, revoked_at_ms, quarantined_at_ms FROM devices WHERE device_id = $1",
        )?
        .query_row([device.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((store, revoked, quarantined)) = row else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT key_id, key_hex, valid_until_ms FROM device_keys WHERE device_id = $1",
    )?;
    let mut keys = Vec::new();
    let mut rows = stmt.query([device.to_string()])?;
    while let Some(r) = rows.next()? {
        let key_id: String = r.get(0)?;
        let key_hex: String = r.get(1)?;
        keys.push(KeyRecord {
            key_id: parse(&key_id)?,
            key: DeviceKey::from_hex(&key_hex).map_err(corrupt)?,
            valid_until_ms: r.get(2)?,
        });
    }
    Ok(Some(DeviceRecord {
        device,
        store: parse(&store)?,
        revoked: revoked.is_some(),
        quarantined: quarantined.is_some(),
        keys,
    }))
}

pub(crate) fn device_exists(conn: &Conn, device: DeviceId) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM devices WHERE device_id = $1 LIMIT 1")?
        .exists([device.to_string()])?)
}

/// Bodies at least this large are hashed on a blocking thread, not on the
/// async executor.
const HASH_INLINE_MAX_BYTES: usize = 64 * 1024;

impl Storage {
    /// Step 1 of device authentication (module doc): a read of the device,
    /// then [`auth::admit`], then quarantine, with no writer job and before
    /// anything parses the body. The nonce and the rate limit are the
    /// writer's ([`authenticate`]).
    pub async fn preauthenticate(
        &self,
        req: SignedRequest,
    ) -> Result<Answer<Authentic>, StorageError> {
        let device = req.headers.device;
        let record = self.read(move |conn| load_device(conn, device)).await?;
        let now = self.now_ms();
        let admitted = if req.body.len() < HASH_INLINE_MAX_BYTES {
            admit_logged(req, record.as_ref(), now)
        } else {
            let record = record.clone();
            tokio::task::spawn_blocking(move || admit_logged(req, record.as_ref(), now))
                .await
                .map_err(|e| StorageError::Task(e.to_string()))?
        };
        let a = match admitted {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        if record.is_some_and(|r| r.quarantined) {
            tracing::warn!(device = %device, path = %a.request().path_and_query, "request refused: device quarantined");
            return Ok(Err(auth::quarantined()));
        }
        Ok(Ok(a))
    }
}

impl Storage {
    /// Enrollment before the writer: a malformed, unknown or expired token
    /// is refused (401 `invalid_token`, the answer enrollment gives) on a
    /// read, with no writer job. A token that exists, unexpired, goes on to
    /// the writer, which enrolls, or audits a reused one.
    pub async fn enrollment_precheck(&self, token: &str) -> Result<Answer<()>, StorageError> {
        let now = self.now_ms();
        let well_formed = token.len() == 64
            && token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            tracing::warn!("enrollment refused: malformed token");
            return Ok(Err(auth::invalid_token(now)));
        }
        let token_hash = caja_shared::digest::Hash256::of(token.as_bytes()).to_hex();
        let expires: Option<i64> = self
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT expires_at_ms FROM enrollment_tokens WHERE token_hash = $1",
                    )?
                    .query_row([token_hash], |r| r.get(0))
                    .optional()?)
            })
            .await?;
        match expires {
            None => {
                tracing::warn!("enrollment refused: unknown token");
                Ok(Err(auth::invalid_token(now)))
            }
            Some(until) if now >= until => {
                tracing::warn!("enrollment refused: token expired");
                Ok(Err(auth::invalid_token(now)))
            }
            Some(_) => Ok(Ok(())),
        }
    }
}

fn admit_logged(
    req: SignedRequest,
    record: Option<&DeviceRecord>,
    now: i64,
) -> Result<Authentic, ApiError> {
    let (device, path) = (req.headers.device, req.path_and_query.clone());
    auth::admit(req, record, now).map_err(|failure| {
        tracing::warn!(device = %device, code = failure.code(), reason = %failure, path = %path, "request refused");
        failure.to_api(now)
    })
}

/// Step 2 of device authentication (module doc), in the writer's
/// transaction: the key's standing again, the nonce (refused if seen),
/// quarantine, then the device's rate limit (its bucket persisted either
/// way).
pub(crate) fn authenticate(
    conn: &Conn,
    env: &mut Env,
    a: &Authentic,
) -> Result<Answer<DeviceRecord>, StorageError> {
    let now = env.now_ms();
    let h = a.headers();
    let record = load_device(conn, h.device)?;
    if let Err(failure) = auth::recheck(a, record.as_ref(), now) {
        tracing::warn!(device = %h.device, code = failure.code(), reason = %failure, path = %a.request().path_and_query, "request refused");
        return Ok(Err(failure.to_api(now)));
    }
    let Some(record) = record else {
        return Ok(Err(auth::AuthFailure::UnknownKey.to_api(now)));
    };
    let fresh = conn
        .prepare_cached(
            "INSERT INTO nonces (device_id, nonce, timestamp_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![h.device.to_string(), h.nonce, h.timestamp_ms])?;
    if fresh == 0 {
        let failure = auth::AuthFailure::ReplayedNonce;
        tracing::warn!(device = %h.device, code = failure.code(), "request refused: nonce replayed");
        return Ok(Err(failure.to_api(now)));
    }
    if record.quarantined {
        tracing::warn!(device = %h.device, path = %a.request().path_and_query, "request refused: device quarantined");
        return Ok(Err(auth::quarantined()));
    }
    let bucket: Option<Bucket> = conn
        .prepare_cached("SELECT tokens_milli, updated_ms FROM rate_limits WHERE device_id = $1")?
        .query_row([h.device.to_string()], |r| {
            Ok(Bucket {
                tokens_milli: r.get(0)?,
                updated_ms: r.get(1)?,
            })
        })
        .optional()?;
    let (bucket, decision) = env.cfg.rate_limit.take(bucket, now);
    conn.prepare_cached(
        "INSERT INTO rate_limits (device_id, tokens_milli, updated_ms) VALUES ($1, $2, $3)
         ON CONFLICT (device_id) DO UPDATE SET tokens_milli = excluded.tokens_milli, updated_ms = excluded.updated_ms",
    )?
    .execute(params![h.device.to_string(), bucket.tokens_milli, bucket.updated_ms])?;
    if let Decision::Limited { retry_after_ms } = decision {
        tracing::warn!(device = %h.device, retry_after_ms, "request refused: device rate limit");
        return Ok(Err(ApiError::overloaded(
            "this device sends requests faster than its rate limit",
            u((retry_after_ms + 999) / 1000),
        )));
    }
    conn.prepare_cached("UPDATE devices SET clock_skew_ms = $2 WHERE device_id = $1")?
        .execute(params![
            h.device.to_string(),
            h.timestamp_ms.saturating_sub(now)
        ])?;
    Ok(Ok(record))
}

pub(crate) fn prune_nonces(conn: &Conn, env: &mut Env) -> Result<usize, StorageError> {
    let cutoff = env.now_ms().saturating_sub(MAX_REQUEST_SKEW_MS);
    Ok(conn.execute("DELETE FROM nonces WHERE timestamp_ms < $1", [cutoff])?)
}
