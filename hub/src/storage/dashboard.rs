//! The SQL of the head-office dashboard (`hub::ui`): its sessions,
//! its login rate limit, and the few reads no admin endpoint had (sales per
//! hour, the events a conflict is about).
//!
//! Everything else the dashboard shows comes from the store methods the admin
//! API already uses. Kept small and in this one file; written once for SQLite and PostgreSQL
//! (`storage::db`).

use super::db::{params, Conn, OptionalExtension};
use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, EventId, StoreId};

use crate::ratelimit::{Bucket, Decision, RateLimit};
use crate::storage::codec::parse;
use crate::storage::codec::u;
use crate::storage::error::StorageError;
use crate::storage::writer::Env;
use crate::storage::writer::Storage;

/// A signed-in operator's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// The name the operator signed in with (the `by` of their decisions).
    pub operator: String,
    /// The session's anti-forgery token (64 hex characters).
    pub csrf: String,
    /// When the session ends (UTC ms).
    pub expires_ms: i64,
}

/// Net sales of one store in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlySales {
    /// The store.
    pub store: StoreId,
    /// Hours after the `since_ms` asked for (0 = the first hour).
    pub hour: i64,
    /// Sales not voided.
    pub count: u64,
    /// Their total (centavos).
    pub total: i64,
}

/// An event as the dashboard shows it (a conflict's candidate).
#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    /// Its id.
    pub event_id: EventId,
    /// Its store.
    pub store: String,
    /// The device that wrote it (a register, or a store's hub chain).
    pub device: String,
    /// Its seq in that device's chain.
    pub seq: u64,
    /// Its kind.
    pub kind: String,
    /// Its HLC time (UTC ms).
    pub hlc_ms: i64,
    /// When the hub received it.
    pub received_ms: i64,
    /// The envelope's `body`.
    pub body: serde_json::Value,
    /// Still held for its dependencies.
    pub held: bool,
}

/// The lowest UUID v7 text whose time part is `ms` or later: event ids are
/// UUID v7 whose time part is their HLC ms, and lowercase hex sorts by time,
/// so a range on an `event_id` key is a range in time.
fn uuid_v7_floor(ms: i64) -> String {
    let ms = u(ms.max(0)) & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

fn take_token(
    conn: &Conn,
    key: &str,
    limit: &RateLimit,
    now_ms: i64,
) -> Result<Decision, StorageError> {
    let bucket: Option<Bucket> = conn
        .prepare_cached("SELECT tokens_milli, updated_ms FROM rate_limits WHERE device_id = $1")?
        .query_row([key], |r| {
            Ok(Bucket {
                tokens_milli: r.get(0)?,
                updated_ms: r.get(1)?,
            })
        })
        .optional()?;
    let (bucket, decision) = limit.take(bucket, now_ms);
    conn.prepare_cached(
        "INSERT INTO rate_limits (device_id, tokens_milli, updated_ms) VALUES ($1, $2, $3)
         ON CONFLICT (device_id) DO UPDATE SET tokens_milli = excluded.tokens_milli, updated_ms = excluded.updated_ms",
    )?
    .execute(params![key, bucket.tokens_milli, bucket.updated_ms])?;
    Ok(decision)
}

fn login_attempt(
    conn: &Conn,
    env: &mut Env,
    client_key: &str,
    global_key: &str,
    per_client: &RateLimit,
    global: &RateLimit,
) -> Result<Decision, StorageError> {
    let now = env.now_ms();
    // The client's own bucket first: a client over its limit does not drain
    // the bucket every client shares.
    match take_token(conn, client_key, per_client, now)? {
        Decision::Allow => take_token(conn, global_key, global, now),
        limited => Ok(limited),
    }
}

fn create_session(
    conn: &Conn,
    env: &mut Env,
    session: Hash256,
    operator: &str,
    csrf: &str,
    ttl_ms: i64,
) -> Result<i64, StorageError> {
    let now = env.now_ms();
    conn.execute("DELETE FROM ui_sessions WHERE expires_ms <= $1", [now])?;
    let expires = now.saturating_add(ttl_ms);
    conn.execute(
        "INSERT INTO ui_sessions (session_hash, operator, csrf, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)",
        params![session.to_hex(), operator, csrf, now, expires],
    )?;
    Ok(expires)
}

fn session(conn: &Conn, session: Hash256, now_ms: i64) -> Result<Option<UiSession>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT operator, csrf, expires_ms FROM ui_sessions WHERE session_hash = $1 AND expires_ms > $2",
        )?
        .query_row(params![session.to_hex(), now_ms], |r| {
            Ok(UiSession {
                operator: r.get(0)?,
                csrf: r.get(1)?,
                expires_ms: r.get(2)?,
            })
        })
        .optional()?)
}

fn sales_by_hour(conn: &Conn, since_ms: i64) -> Result<Vec<HourlySales>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.store_id, (e.hlc_ms - $1) / 3600000 AS h, COUNT(*), CAST(SUM(s.total) AS BIGINT)
         FROM p_sales s JOIN events e ON e.event_id = s.event_id
         WHERE s.event_id >= $2 AND e.hlc_ms >= $1
           AND NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = s.store_id AND v.sale_id = s.sale_id)
         GROUP BY s.store_id, h ORDER BY s.store_id, h",
    )?;
    let rows = stmt.query_map(params![since_ms, uuid_v7_floor(since_ms)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (store, hour, count, total) = row?;
        out.push(HourlySales {
            store: parse(&store)?,
            hour,
            count: u(count),
            total,
        });
    }
    Ok(out)
}

fn last_seen(conn: &Conn) -> Result<Vec<(DeviceId, i64)>, StorageError> {
    // A nonce is kept for every signed request inside the ±5 min replay
    // window; its timestamp is the device's clock, brought to the hub's by
    // the skew measured at the device's last request.
    let mut stmt = conn.prepare_cached(
        "SELECT d.device_id, MAX(n.timestamp_ms) - COALESCE(d.clock_skew_ms, 0)
         FROM nonces n JOIN devices d ON d.device_id = n.device_id GROUP BY d.device_id, d.clock_skew_ms",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (device, at) = row?;
        out.push((parse(&device)?, at));
    }
    Ok(out)
}

fn events(conn: &Conn, ids: &[EventId]) -> Result<Vec<EventSummary>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.store_id, e.device_id, e.seq, e.kind, e.hlc_ms, e.received_ms, e.bytes,
                EXISTS (SELECT 1 FROM held h WHERE h.event_row = e.id)
         FROM events e WHERE e.event_id = $1",
    )?;
    let mut out = Vec::new();
    for id in ids {
        let row = stmt
            .query_row([id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })
            .optional()?;
        let Some((store, device, seq, kind, hlc_ms, received_ms, bytes, held)) = row else {
            continue;
        };
        let envelope: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| crate::storage::codec::corrupt(format!("event {id}: {e}")))?;
        out.push(EventSummary {
            event_id: *id,
            store,
            device,
            seq: u(seq),
            kind,
            hlc_ms,
            received_ms,
            body: envelope.get("body").cloned().unwrap_or_default(),
            held,
        });
    }
    Ok(out)
}

impl Storage {
    /// Takes a login attempt from the client's bucket (`client_key`) and,
    /// when it has one, from the bucket all clients share (`global_key`):
    /// the hub's persisted token buckets (`rate_limits`), so a restart grants
    /// no fresh burst of guesses.
    pub async fn ui_login_attempt(
        &self,
        client_key: String,
        global_key: String,
        per_client: RateLimit,
        global: RateLimit,
    ) -> Result<Decision, StorageError> {
        self.write(move |conn, env| {
            login_attempt(conn, env, &client_key, &global_key, &per_client, &global)
        })
        .await
    }

    /// Records a new session (by the SHA-256 of its id); prunes expired
    /// ones. Returns when it expires.
    pub async fn ui_create_session(
        &self,
        session_hash: Hash256,
        operator: String,
        csrf: String,
        ttl_ms: i64,
    ) -> Result<i64, StorageError> {
        self.write(move |conn, env| {
            create_session(conn, env, session_hash, &operator, &csrf, ttl_ms)
        })
        .await
    }

    /// The live session with this hash, if any.
    pub async fn ui_session(
        &self,
        session_hash: Hash256,
    ) -> Result<Option<UiSession>, StorageError> {
        let now = self.now_ms();
        self.read(move |conn| session(conn, session_hash, now))
            .await
    }

    /// Ends a session (logout). Whether there was one.
    pub async fn ui_end_session(&self, session_hash: Hash256) -> Result<bool, StorageError> {
        self.write(move |conn, _env| {
            Ok(conn.execute(
                "DELETE FROM ui_sessions WHERE session_hash = $1",
                [session_hash.to_hex()],
            )? > 0)
        })
        .await
    }

    /// Ends every session ("sign out everyone"). How many there were.
    pub async fn ui_end_all_sessions(&self) -> Result<usize, StorageError> {
        self.write(move |conn, _env| Ok(conn.execute("DELETE FROM ui_sessions", [])?))
            .await
    }

    /// Net sales (voided ones left out) per store and hour from `since_ms`.
    pub async fn ui_sales_by_hour(&self, since_ms: i64) -> Result<Vec<HourlySales>, StorageError> {
        self.read(move |conn| sales_by_hour(conn, since_ms)).await
    }

    /// When each device last made a signed request (push, pull, grant…),
    /// in the hub's time, for the devices seen within the replay window
    /// (5 min; nonces older than that are pruned). A register that is online
    /// but has nothing to push pulls at every round: this, not the last
    /// push, says whether the hub hears from it.
    pub async fn ui_last_seen(&self) -> Result<Vec<(DeviceId, i64)>, StorageError> {
        self.read(last_seen).await
    }

    /// The events with these ids the hub holds (unknown ids are left out).
    pub async fn ui_events(&self, ids: Vec<EventId>) -> Result<Vec<EventSummary>, StorageError> {
        self.read(move |conn| events(conn, &ids)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_floor_sorts_with_v7_ids_of_that_time() {
        let ms = 1_763_880_000_123;
        let floor = uuid_v7_floor(ms);
        let mut rng = caja_shared::entropy::SeededRandom::new(7);
        let at = EventId::new_v7(ms, &mut rng).unwrap().to_string();
        let before = EventId::new_v7(ms - 1, &mut rng).unwrap().to_string();
        assert!(floor <= at, "{floor} {at}");
        assert!(before < floor, "{before} {floor}");
        assert_eq!(floor.len(), 36);
    }
}
