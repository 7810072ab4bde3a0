//! Devices: enrollment tokens, enrollment, key rotation, revocation,
//! quarantine release, and the device listing.
//!
//! Feature module: every change here is audited.

use crate::audit;
use crate::audit::AuditKind;
use crate::storage::alerts::raise_alert;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, parse, u};
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::device_auth::load_device;
use crate::storage::error::{Answer, StorageError};
use crate::storage::stores::store_exists;
use crate::storage::writer::Env;
use crate::wire::ApiError;
use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, KeyId, StoreId};
use caja_shared::key::DeviceKey;
use serde::Serialize;

/// What enrollment hands a device.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// Its store.
    pub store: StoreId,
    /// Its new id.
    pub device: DeviceId,
    /// Its key's id.
    pub key_id: KeyId,
    /// Its key (shown once).
    pub key: DeviceKey,
}

/// A rotated key.
#[derive(Debug, Clone)]
pub struct RotatedKey {
    /// The new key's id.
    pub key_id: KeyId,
    /// The new key.
    pub key: DeviceKey,
    /// The old key is refused from then on.
    pub old_key_valid_until_ms: i64,
}

/// A device, for head office.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// Id.
    pub device: DeviceId,
    /// Store.
    pub store: StoreId,
    /// Name given at token creation.
    pub name: String,
    /// Enrollment time.
    pub enrolled_at_ms: i64,
    /// Revocation time.
    pub revoked_at_ms: Option<i64>,
    /// Quarantine time.
    pub quarantined_at_ms: Option<i64>,
    /// Why quarantined.
    pub quarantine_reason: Option<String>,
    /// Last push.
    pub last_push_ms: Option<i64>,
    /// Backlog the node reported with its last push.
    pub backlog: u64,
    /// Node clock minus hub clock at the last signed request.
    pub clock_skew_ms: Option<i64>,
    /// Highest contiguous seq stored.
    pub acked_seq: u64,
    /// Keys still valid.
    pub key_ids: Vec<String>,
}

pub(crate) fn create_token(
    conn: &Conn,
    env: &mut Env,
    store: StoreId,
    device_name: &str,
    ttl_ms: i64,
) -> Result<Answer<(String, i64)>, StorageError> {
    if !store_exists(conn, store)? {
        return Ok(Err(ApiError::not_found(format!("no store {store}"))));
    }
    let now = env.now_ms();
    let token = env.rng.random_hex(32);
    let token_hash = Hash256::of(token.as_bytes()).to_hex();
    let expires = now.saturating_add(ttl_ms.max(1));
    conn.execute(
        "INSERT INTO enrollment_tokens (token_hash, store_id, device_name, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5)",
        params![token_hash, store.to_string(), device_name, now, expires],
    )?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::EnrollmentTokenCreated,
        now,
        Some(store),
        audit::data([
            ("device_name", audit::s(device_name)),
            ("token_sha256", audit::s(&token_hash)),
            ("expires_at_ms", audit::n(expires)),
        ]),
    )?;
    Ok(Ok((token, expires)))
}

pub(crate) fn enroll(
    conn: &Conn,
    env: &mut Env,
    token: &str,
) -> Result<Answer<Enrollment>, StorageError> {
    let now = env.now_ms();
    let invalid = || {
        ApiError::unauthorized(
            "invalid_token",
            "the enrollment token is unknown, expired or already used",
            now,
        )
    };
    let well_formed = token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        tracing::warn!("enrollment refused: malformed token");
        return Ok(Err(invalid()));
    }
    let token_hash = Hash256::of(token.as_bytes()).to_hex();
    type TokenRow = (String, String, i64, Option<i64>, Option<String>);
    let row: Option<TokenRow> = conn
        .query_row(
            "SELECT store_id, device_name, expires_at_ms, used_at_ms, device_id FROM enrollment_tokens WHERE token_hash = $1",
            [&token_hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((store, name, expires, used, used_by)) = row else {
        tracing::warn!("enrollment refused: unknown token");
        return Ok(Err(invalid()));
    };
    let store: StoreId = parse(&store)?;
    if used.is_some() {
        // Replays answer the same refusal every time, but are recorded at
        // most once per token and window: a loop of replays cannot grow the
        // audit log and the alerts without bound.
        if !replay_recorded_now(conn, &token_hash, now, env.cfg.caps.enroll_replay_window_ms)? {
            tracing::debug!(store = %store, "enrollment refused: token reused (already recorded in this window)");
            return Ok(Err(invalid()));
        }
        let msg = format!(
            "an enrollment token already used by device {} was presented again",
            used_by.as_deref().unwrap_or("?")
        );
        raise_alert(
            conn,
            "enrollment_token_reused",
            Some(store),
            None,
            now,
            &msg,
        )?;
        append_audit(
            conn,
            &mut env.tx,
            AuditKind::EnrollmentTokenReused,
            now,
            Some(store),
            audit::data([
                ("token_sha256", audit::s(&token_hash)),
                ("used_by", used_by.map_or(Value::Null, audit::s)),
            ]),
        )?;
        tracing::warn!(store = %store, "enrollment refused: token reused");
        return Ok(Err(invalid()));
    }
    if now >= expires {
        tracing::warn!(store = %store, "enrollment refused: token expired");
        return Ok(Err(invalid()));
    }
    let mut rng = &mut *env.rng;
    let device = DeviceId::new_v7(now, &mut rng).map_err(corrupt)?;
    let key = DeviceKey::generate(&mut rng);
    let key_id: KeyId = parse("k1")?;
    conn.execute(
        "INSERT INTO devices (device_id, store_id, name, enrolled_at_ms) VALUES ($1, $2, $3, $4)",
        params![device.to_string(), store.to_string(), name, now],
    )?;
    conn.execute(
        "INSERT INTO device_keys (device_id, key_id, key_hex, created_at_ms) VALUES ($1, $2, $3, $4)",
        params![device.to_string(), key_id.as_str(), key.to_hex().as_str(), now],
    )?;
    conn.execute(
        "UPDATE enrollment_tokens SET used_at_ms = $2, device_id = $3 WHERE token_hash = $1",
        params![token_hash, now, device.to_string()],
    )?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::DeviceEnrolled,
        now,
        Some(store),
        audit::data([
            ("device", audit::s(device)),
            ("name", audit::s(&name)),
            ("key_id", audit::s(&key_id)),
            ("token_sha256", audit::s(&token_hash)),
        ]),
    )?;
    tracing::info!(device = %device, store = %store, "device enrolled");
    Ok(Ok(Enrollment {
        store,
        device,
        key_id,
        key,
    }))
}

/// How long the keys a rotation replaces stay valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grace {
    /// `key_grace_ms` of the configuration (a planned rotation).
    Configured,
    /// None: refused from the rotation on (a compromised key).
    None,
}

pub(crate) fn rotate_key(
    conn: &Conn,
    env: &mut Env,
    device: DeviceId,
    by: &str,
    grace: Grace,
) -> Result<RotatedKey, StorageError> {
    let now = env.now_ms();
    let until = match grace {
        Grace::Configured => now.saturating_add(env.cfg.key_grace_ms),
        // `valid_until_ms` is exclusive: a key valid until `now` is refused now.
        Grace::None => now,
    };
    let count: i64 = conn.query_row(
        "SELECT COUNT(*) FROM device_keys WHERE device_id = $1",
        [device.to_string()],
        |r| r.get(0),
    )?;
    let key_id: KeyId = parse(&format!("k{}", count + 1))?;
    let mut rng = &mut *env.rng;
    let key = DeviceKey::generate(&mut rng);
    conn.execute(
        "UPDATE device_keys SET valid_until_ms = CASE WHEN valid_until_ms IS NOT NULL AND valid_until_ms < $2 THEN valid_until_ms ELSE $2 END
         WHERE device_id = $1 AND (valid_until_ms IS NULL OR valid_until_ms > $3)",
        params![device.to_string(), until, now],
    )?;
    conn.execute(
        "INSERT INTO device_keys (device_id, key_id, key_hex, created_at_ms) VALUES ($1, $2, $3, $4)",
        params![device.to_string(), key_id.as_str(), key.to_hex().as_str(), now],
    )?;
    let store: String = conn.query_row(
        "SELECT store_id FROM devices WHERE device_id = $1",
        [device.to_string()],
        |r| r.get(0),
    )?;
    let mut data = audit::data([
        ("device", audit::s(device)),
        ("key_id", audit::s(&key_id)),
        ("old_key_valid_until_ms", audit::n(until)),
        ("by", audit::s(by)),
    ]);
    if let (Grace::None, Value::Object(o)) = (grace, &mut data) {
        o.insert("no_grace".to_owned(), Value::Bool(true));
    }
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::KeyRotated,
        now,
        Some(parse(&store)?),
        data,
    )?;
    tracing::info!(device = %device, key_id = %key_id, by, no_grace = grace == Grace::None, "device key rotated");
    Ok(RotatedKey {
        key_id,
        key,
        old_key_valid_until_ms: until,
    })
}

pub(crate) fn revoke(
    conn: &Conn,
    env: &mut Env,
    device: DeviceId,
    reason: &str,
) -> Result<Answer<()>, StorageError> {
    let Some(rec) = load_device(conn, device)? else {
        return Ok(Err(ApiError::not_found("no such device")));
    };
    if rec.revoked {
        return Ok(Ok(()));
    }
    let now = env.now_ms();
    conn.execute(
        "UPDATE devices SET revoked_at_ms = $2 WHERE device_id = $1",
        params![device.to_string(), now],
    )?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::DeviceRevoked,
        now,
        Some(rec.store),
        audit::data([("device", audit::s(device)), ("reason", audit::s(reason))]),
    )?;
    tracing::warn!(device = %device, reason, "device revoked");
    Ok(Ok(()))
}

pub(crate) fn release_quarantine(
    conn: &Conn,
    env: &mut Env,
    device: DeviceId,
    note: &str,
) -> Result<Answer<()>, StorageError> {
    let Some(rec) = load_device(conn, device)? else {
        return Ok(Err(ApiError::not_found("no such device")));
    };
    if !rec.quarantined {
        return Ok(Ok(()));
    }
    let now = env.now_ms();
    conn.execute(
        "UPDATE devices SET quarantined_at_ms = NULL, quarantine_reason = NULL WHERE device_id = $1",
        [device.to_string()],
    )?;
    conn.execute(
        "UPDATE alerts SET closed_ms = $2 WHERE device_id = $1 AND kind = 'chain_mismatch' AND closed_ms IS NULL",
        params![device.to_string(), now],
    )?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::QuarantineReleased,
        now,
        Some(rec.store),
        audit::data([("device", audit::s(device)), ("note", audit::s(note))]),
    )?;
    tracing::info!(device = %device, "quarantine released");
    Ok(Ok(()))
}

pub(crate) fn list_devices(
    conn: &Conn,
    store: Option<StoreId>,
    now: i64,
) -> Result<Vec<DeviceInfo>, StorageError> {
    let now_valid = conn.pick(
        "SELECT group_concat(key_id, ',') FROM device_keys k WHERE k.device_id = d.device_id",
        "SELECT string_agg(key_id, ',' ORDER BY key_id) FROM device_keys k WHERE k.device_id = d.device_id",
    );
    let sql = format!(
        "SELECT d.device_id, d.store_id, d.name, d.enrolled_at_ms, d.revoked_at_ms, d.quarantined_at_ms,
                d.quarantine_reason, d.last_push_ms, d.backlog, d.clock_skew_ms,
                COALESCE((SELECT MAX(seq) FROM events e WHERE e.device_id = d.device_id), 0),
                ({now_valid} AND (k.valid_until_ms IS NULL OR k.valid_until_ms > $2))
         FROM devices d WHERE (CAST($1 AS TEXT) IS NULL OR d.store_id = $1) ORDER BY d.enrolled_at_ms, d.device_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = Vec::new();
    let mut rs = stmt.query(params![store.map(|s| s.to_string()), now])?;
    while let Some(r) = rs.next()? {
        let keys: Option<String> = r.get(11)?;
        out.push(DeviceInfo {
            device: parse(&r.get::<_, String>(0)?)?,
            store: parse(&r.get::<_, String>(1)?)?,
            name: r.get(2)?,
            enrolled_at_ms: r.get(3)?,
            revoked_at_ms: r.get(4)?,
            quarantined_at_ms: r.get(5)?,
            quarantine_reason: r.get(6)?,
            last_push_ms: r.get(7)?,
            backlog: u(r.get(8)?),
            clock_skew_ms: r.get(9)?,
            acked_seq: u(r.get(10)?),
            key_ids: keys
                .map(|k| k.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Whether a replay of the used token `token_hash` at `now` is the first in
/// its window (then it is recorded, and the window starts again). The last
/// recorded replay is kept in `rate_limits` under `enroll-replay:<sha256>`.
fn replay_recorded_now(
    conn: &Conn,
    token_hash: &str,
    now: i64,
    window_ms: i64,
) -> Result<bool, StorageError> {
    let key = format!("enroll-replay:{token_hash}");
    let last: Option<i64> = conn
        .prepare_cached("SELECT updated_ms FROM rate_limits WHERE device_id = $1")?
        .query_row([&key], |r| r.get(0))
        .optional()?;
    if last.is_some_and(|at| now >= at && now - at < window_ms) {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO rate_limits (device_id, tokens_milli, updated_ms) VALUES ($1, 0, $2)
         ON CONFLICT (device_id) DO UPDATE SET tokens_milli = excluded.tokens_milli, updated_ms = excluded.updated_ms",
    )?
    .execute(params![key, now])?;
    Ok(true)
}
