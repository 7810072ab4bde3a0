//! Every SQL statement of the hub (besides `migrations/hub/`). Functions that
//! write run on the writer thread inside a job's savepoint (see `mod.rs`); the
//! others run on read connections.
//!
//! Durability: WAL with `synchronous=FULL`, so a commit is on disk before the
//! writer answers; a SIGKILL or a power cut loses at most transactions that were
//! never acknowledged, and a push (one job) is committed whole or not at all.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use super::db::{params, Conn, DbError, OptionalExtension, Params, Row};
use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use caja_shared::hlc::Hlc;
use caja_shared::ids::{DeviceId, EventId, KeyId, SaleId, Seq, StoreId};
use caja_shared::key::DeviceKey;
use caja_shared::kind::EventBody;
use caja_shared::request::MAX_REQUEST_SKEW_MS;
use rusqlite::OpenFlags;

use super::{
    AlertInfo, Answer, ConflictRef, DeviceInfo, Enrollment, Env, HealthInputs, HeldInfo, HubAppend,
    OwnPage, PullPage, PushAck, RotatedKey, StoreError, StoreInfo,
};
use crate::audit::{self, AuditEntry, AuditKind};
use crate::auth::{self, DeviceRecord, KeyRecord, SignedRequest};
use crate::conflict::LwwStamp;
use crate::hubchain::{self, HubChainHead};
use crate::ingest::{
    self, Admission, Candidate, CausalIndex, ChainView, PositionReject, PushBatch, PushedEvent,
};
use crate::projection::decide::{self, ConflictChange, ShownKey, ShownRow};
use crate::projection::{self, Conflict, EventMeta, Fact, Origin, Projections, Subject};
use crate::ratelimit::{Bucket, Decision};
use crate::wire::ApiError;

/// Opens a read-write connection with the hub's pragmas.
pub fn open_connection(path: &Path) -> Result<Conn, rusqlite::Error> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A push of 500 events dirties a few thousand pages: keep them in memory
    // (32 MiB) rather than spilling to the WAL mid-transaction, and keep the
    // savepoint sub-journals in memory too.
    conn.pragma_update(None, "cache_size", -32_768)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(Conn::from_sqlite(conn))
}

/// Opens a read-only connection.
pub(super) fn open_reader(path: &Path) -> Result<Conn, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(Conn::from_sqlite(conn))
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn parse<T: FromStr>(s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(format!("{s:?}: {e}")))
}

/// A u64 as an SQLite integer (values here are seqs and counts, far below 2^63).
pub(crate) fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Records the hub's key in `hub_meta`, or checks it is the one recorded.
pub(super) fn record_hub_key(
    conn: &Conn,
    key_id: &KeyId,
    public_hex: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO hub_meta (id, hub_key_id, hub_public_key, created_at_ms) VALUES (1, $1, $2, $3) ON CONFLICT DO NOTHING",
        params![key_id.as_str(), public_hex, now_ms],
    )?;
    let recorded: String = conn.query_row(
        "SELECT hub_public_key FROM hub_meta WHERE id = 1",
        [],
        |r| r.get(0),
    )?;
    if recorded != public_hex {
        return Err(corrupt(
            "this database was initialized with another hub key than the key file holds",
        ));
    }
    Ok(())
}

pub(crate) fn append_audit(
    conn: &Conn,
    tx: &mut TxCache,
    kind: AuditKind,
    at_ms: i64,
    store: Option<StoreId>,
    data: Value,
) -> Result<u64, StoreError> {
    let next: i64 = match tx.audit_next {
        Some(n) => n,
        None => conn
            .prepare_cached("SELECT COALESCE(MAX(idx), -1) + 1 FROM audit_log")?
            .query_row([], |r| r.get(0))?,
    };
    tx.audit_next = Some(next + 1);
    let entry = AuditEntry {
        index: u(next),
        kind,
        at_ms,
        store,
        data,
    };
    let bytes = entry.canonical_bytes();
    let leaf = caja_shared::merkle::leaf_hash(&bytes);
    conn.prepare_cached(
        "INSERT INTO audit_log (idx, kind, at_ms, store_id, entry, leaf_hash) VALUES ($1, $2, $3, $4, $5, $6)",
    )?
    .execute(params![
        next,
        kind.as_str(),
        at_ms,
        store.map(|s| s.to_string()),
        bytes,
        leaf.to_hex()
    ])?;
    // The Merkle tree over the log grows in the same transaction.
    super::audit_tree::append_leaf(conn, entry.index, leaf)?;
    Ok(entry.index)
}

/// Counters read once per transaction instead of once per row. The writer
/// resets the cache at every `BEGIN`, so a rolled-back transaction never leaves
/// a stale value.
#[derive(Debug, Default)]
pub(crate) struct TxCache {
    /// Whether other hub instances write the same database (PostgreSQL):
    /// then nothing read from it is kept across transactions (`awaited`),
    /// since another instance may have changed it in between.
    shared: bool,
    /// The next audit index.
    audit_next: Option<i64>,
    /// The next apply order.
    applied_next: Option<i64>,
    /// Recently applied events (kept across transactions, bounded, cleared on
    /// any rollback): most dependencies are recent, so this spares two index
    /// lookups per event.
    recent: HashSet<EventId>,
    /// Insertion order of `recent`, to evict the oldest.
    recent_order: std::collections::VecDeque<EventId>,
    /// Every id some held event waits for (`held_missing.missing_id`), read
    /// once and then kept in step, so applying an event nobody waits for
    /// costs no query.
    awaited: Option<HashSet<EventId>>,
}

/// Most ids kept in [`TxCache::recent`].
const RECENT_APPLIED_MAX: usize = 65_536;

impl TxCache {
    /// A cache for a database of this dialect (PostgreSQL may be shared by
    /// several hub instances).
    pub(crate) fn new(dialect: super::Dialect) -> TxCache {
        TxCache {
            shared: dialect == super::Dialect::Postgres,
            ..TxCache::default()
        }
    }

    /// At `BEGIN`: counters are read again from the database (under the
    /// writers' lock, so they are exact), and so is what held events wait
    /// for when other instances may have held some since. `recent` stays:
    /// an applied event stays applied whoever applied it.
    pub(crate) fn begin(&mut self) {
        self.audit_next = None;
        self.applied_next = None;
        if self.shared {
            self.awaited = None;
        }
    }

    /// After a `ROLLBACK`: nothing cached may be trusted.
    pub(crate) fn rolled_back(&mut self) {
        *self = TxCache {
            shared: self.shared,
            ..TxCache::default()
        };
    }

    fn awaited(&mut self, conn: &Conn) -> Result<&mut HashSet<EventId>, StoreError> {
        if self.awaited.is_none() {
            let mut set = HashSet::new();
            let mut stmt = conn.prepare_cached("SELECT DISTINCT missing_id FROM held_missing")?;
            let mut rs = stmt.query([])?;
            while let Some(r) = rs.next()? {
                set.insert(parse(&r.get::<_, String>(0)?)?);
            }
            self.awaited = Some(set);
        }
        Ok(self.awaited.get_or_insert_with(HashSet::new))
    }

    fn remember_applied(&mut self, id: EventId) {
        if self.recent.insert(id) {
            self.recent_order.push_back(id);
            if self.recent_order.len() > RECENT_APPLIED_MAX {
                if let Some(old) = self.recent_order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
    }
}

pub(crate) fn raise_alert(
    conn: &Conn,
    kind: &str,
    store: Option<StoreId>,
    device: Option<DeviceId>,
    at_ms: i64,
    message: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO alerts (kind, store_id, device_id, at_ms, message) VALUES ($1, $2, $3, $4, $5)",
        params![
            kind,
            store.map(|s| s.to_string()),
            device.map(|d| d.to_string()),
            at_ms,
            message
        ],
    )?;
    Ok(())
}

pub(crate) fn load_device(
    conn: &Conn,
    device: DeviceId,
) -> Result<Option<DeviceRecord>, StoreError> {
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

pub(super) fn device_exists(conn: &Conn, device: DeviceId) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM devices WHERE device_id = $1 LIMIT 1")?
        .exists([device.to_string()])?)
}

/// Authentication with its persisted parts: signature, key and timestamp
/// ([`auth::verify`]), then the nonce (refused if seen), then the device's rate
/// limit (its bucket persisted either way).
pub(crate) fn authenticate(
    conn: &Conn,
    env: &mut Env,
    req: &SignedRequest,
) -> Result<Answer<DeviceRecord>, StoreError> {
    let now = env.now_ms();
    let h = &req.headers;
    let record = load_device(conn, h.device)?;
    if let Err(failure) = auth::verify(req, record.as_ref(), now) {
        tracing::warn!(device = %h.device, code = failure.code(), reason = %failure, path = %req.path_and_query, "request refused");
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

fn chain_view(conn: &Conn, device: DeviceId, batch: &PushBatch) -> Result<ChainView, StoreError> {
    let head: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT seq, hash FROM events WHERE device_id = $1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([device.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut view = ChainView::default();
    if let Some((seq, hash)) = head {
        view.acked_seq = u(seq);
        view.head_hash = parse(&hash)?;
    }
    let overlap = ingest::overlap(batch, view.acked_seq);
    if let (Some(lo), Some(hi)) = (overlap.first(), overlap.last()) {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, hash FROM events WHERE device_id = $1 AND seq BETWEEN $2 AND $3",
        )?;
        let mut rows = stmt.query(params![device.to_string(), i(*lo), i(*hi)])?;
        while let Some(r) = rows.next()? {
            let hash: String = r.get(1)?;
            view.stored.insert(u(r.get(0)?), parse(&hash)?);
        }
    }
    Ok(view)
}

fn event_id_at(conn: &Conn, device: DeviceId, seq: u64) -> Result<Option<EventId>, StoreError> {
    let id: Option<String> = conn
        .prepare_cached("SELECT event_id FROM events WHERE device_id = $1 AND seq = $2")?
        .query_row(params![device.to_string(), i(seq)], |r| r.get(0))
        .optional()?;
    id.map(|s| parse(&s)).transpose()
}

fn insert_event(conn: &Conn, e: &Event, received_ms: i64) -> Result<i64, StoreError> {
    let env = e.envelope();
    Ok(conn.prepare_cached(
        "INSERT INTO events (event_id, store_id, device_id, seq, hash, prev, kind, hlc_ms, hlc_n, bytes, received_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )?
    .query_row(params![
        env.event_id.to_string(),
        env.store.to_string(),
        env.device.to_string(),
        i(env.seq.get()),
        e.hash().to_hex(),
        env.prev.to_hex(),
        env.kind.as_str(),
        env.hlc.ms(),
        i64::from(env.hlc.n()),
        e.canonical_bytes(),
        received_ms
    ], |r| r.get(0))?)
}

fn quarantine(
    conn: &Conn,
    tx: &mut TxCache,
    now: i64,
    dev: &DeviceRecord,
    reject: &PositionReject,
) -> Result<(), StoreError> {
    let PositionReject::ChainMismatch {
        seq,
        acked_seq,
        stored_hash,
        pushed_hash,
    } = reject
    else {
        return Ok(());
    };
    let reason = format!(
        "chain mismatch at seq {seq}: the hub holds {stored_hash}, the device pushed {pushed_hash}"
    );
    conn.execute(
        "UPDATE devices SET quarantined_at_ms = COALESCE(quarantined_at_ms, $2), quarantine_reason = $3 WHERE device_id = $1",
        params![dev.device.to_string(), now, reason],
    )?;
    raise_alert(
        conn,
        "chain_mismatch",
        Some(dev.store),
        Some(dev.device),
        now,
        &reason,
    )?;
    append_audit(
        conn,
        tx,
        AuditKind::ChainMismatch,
        now,
        Some(dev.store),
        audit::data([
            ("device", audit::s(dev.device)),
            ("seq", audit::n(*seq)),
            ("acked_seq", audit::n(*acked_seq)),
            ("stored_hash", audit::s(stored_hash)),
            ("pushed_hash", audit::s(pushed_hash)),
        ]),
    )?;
    tracing::error!(device = %dev.device, store = %dev.store, seq, acked_seq, "chain mismatch: device quarantined");
    Ok(())
}

/// `POST /v1/sync/push` on the writer thread (see [`crate::ingest`] for the
/// checks and their order).
pub(super) fn push(
    conn: &Conn,
    env: &mut Env,
    req: &SignedRequest,
    parsed: &Result<PushBatch, ApiError>,
) -> Result<Answer<PushAck>, StoreError> {
    let dev = match authenticate(conn, env, req)? {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    let now = env.now_ms();
    let refuse = |e: ApiError| {
        tracing::warn!(device = %dev.device, code = e.error, field = e.field.as_deref().unwrap_or(""), reason = %e.message, "push refused");
        Ok(Err(e))
    };
    if dev.quarantined {
        return refuse(ApiError::forbidden(
            "quarantined",
            "this device is quarantined after a chain mismatch; head office must review and release it",
        ));
    }
    let batch = match parsed {
        Ok(b) => b,
        Err(e) => return refuse(e.clone()),
    };
    if let Err(e) = ingest::check_scope(batch, dev.device, dev.store) {
        return refuse(e);
    }
    let view = chain_view(conn, dev.device, batch)?;
    let position = match ingest::check_position(&view, batch) {
        Ok(p) => p,
        Err(reject) => {
            quarantine(conn, &mut env.tx, now, &dev, &reject)?;
            return refuse(reject.to_api());
        }
    };
    if let Err(e) = ingest::check_continuity(batch) {
        return refuse(e);
    }
    let new_events: Vec<&ingest::PushedEvent> = batch
        .events
        .iter()
        .filter(|e| e.seq() > view.acked_seq)
        .collect();
    let mut existing = HashSet::new();
    if !new_events.is_empty() {
        // One statement for the whole batch: which of these ids exist already.
        let ids = serde_json::to_string(
            &new_events
                .iter()
                .map(|e| e.event.id().to_string())
                .collect::<Vec<_>>(),
        )
        .map_err(corrupt)?;
        let mut stmt = conn.prepare_cached(conn.pick(
            "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each($1))",
            "SELECT event_id FROM events WHERE event_id IN (SELECT json_array_elements_text($1::json))",
        ))?;
        let mut rs = stmt.query([ids])?;
        while let Some(r) = rs.next()? {
            existing.insert(parse(&r.get::<_, String>(0)?)?);
        }
    }
    if let Err(e) = ingest::check_new_ids(batch, view.acked_seq, &existing) {
        return refuse(e);
    }
    if let Err(e) = ingest::check_checkpoint(batch, |k| dev.valid_key(k, now), now) {
        return refuse(e);
    }
    debug_assert_eq!(position.new, new_events.len());

    // Every check passed: store, then offer each new event to the causal gate.
    let mut index = SqlIndex::new(conn, now, &mut env.tx);
    let mut previous = match new_events.first() {
        Some(first) if first.seq() > 1 => event_id_at(conn, dev.device, first.seq() - 1)?,
        _ => None,
    };
    for e in &new_events {
        let row = insert_event(conn, &e.event, now)?;
        index
            .known
            .insert(e.event.id(), (row, Cow::Borrowed(*e), Origin::Register));
        let mut data = audit::data([
            ("device", audit::s(dev.device)),
            ("seq", audit::n(e.seq())),
            ("event_id", audit::s(e.event.id())),
            ("hash", audit::s(e.event.hash())),
            ("kind", audit::s(e.event.envelope().kind.as_str())),
        ]);
        // Who approved what (voids, returns, paid-outs, discounts, price
        // overrides, drawer openings, closing another's shift): in the
        // entry itself, so the log shows it without the event store.
        let approvals = e.body.approvals();
        if let (false, Value::Object(o)) = (approvals.is_empty(), &mut data) {
            o.insert(
                "approvals".into(),
                Value::Array(
                    approvals
                        .iter()
                        .map(|a| {
                            audit::data([
                                ("action", audit::s(&a.action)),
                                ("staff_id", audit::s(a.staff_id)),
                                ("name", audit::s(&a.name)),
                                ("role", audit::s(projection::role_name(a.role))),
                            ])
                        })
                        .collect(),
                ),
            );
        }
        append_audit(
            conn,
            index.tx,
            AuditKind::EventAccepted,
            now,
            Some(dev.store),
            data,
        )?;
        ingest::admit(
            &mut index,
            &Candidate {
                id: e.event.id(),
                deps: &e.event.envelope().deps,
                previous,
            },
        )?;
        previous = Some(e.event.id());
    }
    let mut held = Vec::new();
    let mut conflicts = Vec::new();
    let seq_of: HashMap<EventId, u64> = batch
        .events
        .iter()
        .map(|e| (e.event.id(), e.seq()))
        .collect();
    for e in &new_events {
        if index.held_now.contains(&e.event.id()) {
            held.push(HeldInfo {
                event_id: e.event.id(),
                missing: missing_of(conn, index.known[&e.event.id()].0)?,
            });
        }
    }
    for (event, c) in &index.conflicts {
        if let Some(seq) = seq_of.get(event) {
            conflicts.push(ConflictRef {
                seq: *seq,
                conflict_id: c.conflict_id.to_string(),
                reason: c.reason.as_str().to_owned(),
            });
        }
    }
    let last = batch.last();
    let acked_seq = view.acked_seq.max(last.seq());
    if last.seq() >= view.acked_seq {
        let cp = Value::from_typed(&batch.checkpoint)
            .map_err(corrupt)?
            .to_canonical_string();
        conn.prepare_cached(
            "UPDATE devices SET last_push_ms = $2, backlog = $3, checkpoint = $4 WHERE device_id = $1",
        )?
        .execute(params![dev.device.to_string(), now, i(batch.backlog), cp])?;
    } else {
        conn.prepare_cached(
            "UPDATE devices SET last_push_ms = $2, backlog = $3 WHERE device_id = $1",
        )?
        .execute(params![dev.device.to_string(), now, i(batch.backlog)])?;
    }
    tracing::debug!(device = %dev.device, accepted = new_events.len(), duplicates = position.duplicates, held = held.len(), "push stored");
    Ok(Ok(PushAck {
        acked_seq,
        accepted: new_events.len(),
        duplicates: position.duplicates,
        held,
        conflicts,
    }))
}

fn missing_of(conn: &Conn, row: i64) -> Result<Vec<EventId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT missing_id FROM held_missing WHERE event_row = $1 ORDER BY missing_id",
    )?;
    let ids: Vec<String> = stmt
        .query_map([row], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.iter().map(|s| parse(s)).collect()
}

/// The causal gate's state in SQLite, for one job.
struct SqlIndex<'c> {
    conn: &'c Conn,
    now: i64,
    /// Per-transaction counters.
    tx: &'c mut TxCache,
    /// Events this job stored or loaded and has not applied yet: row, the
    /// event (borrowed from the push when it came in it), origin.
    known: HashMap<EventId, (i64, Cow<'c, PushedEvent>, Origin)>,
    /// Events applied by this job.
    applied: HashSet<EventId>,
    /// Events of this job held when it ends.
    held_now: HashSet<EventId>,
    /// Conflicts found while applying, with the event that triggered them.
    conflicts: Vec<(EventId, Conflict)>,
    /// Whether to write audit entries for new conflicts (not in a rebuild).
    audit: bool,
    /// Rebuild mode: `now` is the original apply time of each event.
    applied_ms: Option<i64>,
    /// Events loaded from the database because they were held.
    was_held: HashSet<EventId>,
}

impl<'c> SqlIndex<'c> {
    fn new(conn: &'c Conn, now: i64, tx: &'c mut TxCache) -> SqlIndex<'c> {
        SqlIndex {
            conn,
            now,
            tx,
            known: HashMap::new(),
            applied: HashSet::new(),
            held_now: HashSet::new(),
            conflicts: Vec::new(),
            audit: true,
            applied_ms: None,
            was_held: HashSet::new(),
        }
    }

    fn load(&mut self, id: &EventId) -> Result<(), StoreError> {
        if self.known.contains_key(id) {
            return Ok(());
        }
        let (row, bytes, device): (i64, Vec<u8>, String) = self
            .conn
            .prepare_cached("SELECT id, bytes, device_id FROM events WHERE event_id = $1")?
            .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let event = Event::from_json(&bytes).map_err(corrupt)?;
        let body = event.body().map_err(corrupt)?;
        let origin = origin_of(self.conn, &device)?;
        self.known
            .insert(*id, (row, Cow::Owned(PushedEvent { event, body }), origin));
        self.was_held.insert(*id);
        Ok(())
    }
}

fn origin_of(conn: &Conn, device: &str) -> Result<Origin, StoreError> {
    let hub: bool = conn
        .prepare_cached("SELECT 1 FROM stores WHERE hub_device = $1 LIMIT 1")?
        .exists([device])?;
    Ok(if hub { Origin::Hub } else { Origin::Register })
}

impl CausalIndex for SqlIndex<'_> {
    type Error = StoreError;

    fn is_applied(&mut self, id: &EventId) -> Result<bool, StoreError> {
        if self.applied.contains(id) || self.tx.recent.contains(id) {
            return Ok(true);
        }
        if self.known.contains_key(id) {
            // Stored by this job (or loaded when applied, then in `applied`).
            return Ok(false);
        }
        // Stored and not held is applied (see the schema).
        let row: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM events WHERE event_id = $1")?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?;
        let Some(row) = row else {
            return Ok(false);
        };
        Ok(!self
            .conn
            .prepare_cached("SELECT 1 FROM held WHERE event_row = $1")?
            .exists([row])?)
    }

    fn apply(&mut self, id: &EventId) -> Result<(), StoreError> {
        self.load(id)?;
        let (row, pushed, origin) = self
            .known
            .remove(id)
            .ok_or_else(|| corrupt("applied event not loaded"))?;
        let env = pushed.event.envelope();
        let next: i64 = match self.tx.applied_next {
            Some(n) => n,
            None => self
                .conn
                .prepare_cached("SELECT COALESCE(MAX(applied_seq), 0) + 1 FROM applied")?
                .query_row([], |r| r.get(0))?,
        };
        self.tx.applied_next = Some(next + 1);
        let at = self.applied_ms.unwrap_or(self.now);
        self.conn
            .prepare_cached(
                "INSERT INTO applied (applied_seq, event_row, store_id, device_id, applied_ms) VALUES ($1, $2, $3, $4, $5)",
            )?
            .execute(params![next, row, env.store.to_string(), env.device.to_string(), at])?;
        if self.held_now.contains(id) || self.was_held.contains(id) {
            self.conn
                .prepare_cached("DELETE FROM held WHERE event_row = $1")?
                .execute([row])?;
        }
        self.applied.insert(*id);
        self.tx.remember_applied(*id);
        self.held_now.remove(id);
        let meta = EventMeta {
            event_id: env.event_id,
            store: env.store,
            device: env.device,
            seq: env.seq.get(),
            hlc: env.hlc,
            origin,
            deps: &env.deps,
        };
        project(self, &meta, &pushed.body, at)
    }

    fn hold(&mut self, id: &EventId, missing: &[EventId]) -> Result<(), StoreError> {
        let row = self
            .known
            .get(id)
            .map(|k| k.0)
            .ok_or_else(|| corrupt("held event not stored"))?;
        self.conn
            .prepare_cached("INSERT INTO held (event_row, held_since_ms) VALUES ($1, $2)")?
            .execute(params![row, self.now])?;
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO held_missing (missing_id, event_row) VALUES ($1, $2)")?;
        for m in missing {
            stmt.execute(params![m.to_string(), row])?;
        }
        self.tx.awaited(self.conn)?.extend(missing.iter().copied());
        self.held_now.insert(*id);
        Ok(())
    }

    fn unblock(&mut self, applied: &EventId) -> Result<Vec<EventId>, StoreError> {
        if !self.tx.awaited(self.conn)?.remove(applied) {
            return Ok(Vec::new());
        }
        let rows: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT event_row FROM held_missing WHERE missing_id = $1 ORDER BY event_row",
            )?
            .query_map([applied.to_string()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.conn
            .prepare_cached("DELETE FROM held_missing WHERE missing_id = $1")?
            .execute([applied.to_string()])?;
        let mut ready = Vec::new();
        for row in rows {
            let waiting: bool = self
                .conn
                .prepare_cached("SELECT 1 FROM held_missing WHERE event_row = $1 LIMIT 1")?
                .exists([row])?;
            if !waiting {
                let id: String = self
                    .conn
                    .prepare_cached("SELECT event_id FROM events WHERE id = $1")?
                    .query_row([row], |r| r.get(0))?;
                ready.push(parse(&id)?);
            }
        }
        Ok(ready)
    }
}

/// Executes the decisions of an applied event ([`decide`]): reads the rows
/// its facts replace (for the automatic decisions, when auditing), audits the
/// decisions, writes the facts, queues the fiscal documents, remembers the
/// sales ahead of the hub clock; then widens the subjects whose conflicts the
/// facts may change, reads the facts about each and stores or withdraws its
/// conflicts.
fn project(
    index: &mut SqlIndex<'_>,
    meta: &EventMeta<'_>,
    body: &EventBody,
    at_ms: i64,
) -> Result<(), StoreError> {
    let conn = index.conn;
    let facts = projection::facts(meta, body);
    let shown = if index.audit {
        shown_rows(conn, &facts)?
    } else {
        decide::Shown::new()
    };
    let effects = decide::event(facts, &shown, at_ms);
    for d in &effects.decisions {
        audit_decision(conn, index.tx, at_ms, meta.store, d)?;
    }
    write_facts(conn, &effects.facts)?;
    // Phase two of fiscal documents: queued with the event that issued them.
    super::outbox::enqueue(conn, &effects.documents, at_ms)?;
    for a in &effects.sales_ahead {
        conn.prepare_cached("INSERT INTO p_sales_ahead VALUES ($1, $2, $3)")?
            .execute(params![
                a.event_id.to_string(),
                a.store.to_string(),
                a.hlc_ms
            ])?;
    }
    let mut subjects = BTreeSet::new();
    for s in &effects.subjects {
        subjects.extend(widen(conn, s.clone())?);
    }
    for subject in subjects {
        let related = match &subject {
            // The sale applied now: its facts are at hand, only prices are read.
            Subject::SalePrice(e) if *e == meta.event_id => {
                let mut related: Vec<Fact> = effects
                    .facts
                    .iter()
                    .filter(|f| matches!(f, Fact::Sale { .. } | Fact::SaleLine { .. }))
                    .cloned()
                    .collect();
                related.extend(price_history_of(conn, &related)?);
                related
            }
            _ => facts_about(conn, &subject)?,
        };
        for change in decide::conflict_changes(&subject, &related) {
            let audit = if index.audit {
                Some(&mut *index.tx)
            } else {
                None
            };
            match change {
                ConflictChange::Withdraw {
                    subject,
                    conflict_id,
                } => super::conflicts::withdraw(conn, audit, &subject, conflict_id, at_ms)?,
                ConflictChange::Upsert { conflict, replace } => {
                    super::conflicts::upsert(conn, audit, &conflict, replace, at_ms)?;
                    index.conflicts.push((meta.event_id, conflict));
                }
            }
        }
    }
    Ok(())
}

/// The rows an event's facts replace, as the automatic strategies compare
/// them (read before the facts are written).
fn shown_rows(conn: &Conn, facts: &[Fact]) -> Result<decide::Shown, StoreError> {
    let mut shown = decide::Shown::new();
    for key in facts.iter().filter_map(ShownKey::of) {
        let row = match &key {
            ShownKey::Customer(customer) => conn
                .prepare_cached(
                    "SELECT event_id, hlc_ms, hlc_n, device_id FROM p_customers WHERE customer_id = $1",
                )?
                .query_row([customer.to_string()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
                })
                .optional()?
                .map(|(e, ms, n, d)| {
                    Ok::<_, StoreError>(ShownRow::Lww(LwwStamp {
                        hlc: hlc_opt(Some(ms), Some(n))?
                            .ok_or_else(|| corrupt("customer hlc"))?,
                        device: parse(&d)?,
                        event_id: parse(&e)?,
                    }))
                })
                .transpose()?,
            ShownKey::CatalogItem(store, product) | ShownKey::Price(store, product) => {
                let table = match key {
                    ShownKey::CatalogItem(..) => "p_catalog",
                    _ => "p_prices",
                };
                conn.prepare_cached(&format!(
                    "SELECT event_id, hub_seq FROM {table} WHERE store_id = $1 AND product = $2"
                ))?
                .query_row(params![store.to_string(), product.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?))
                })
                .optional()?
                .map(|(e, seq)| Ok::<_, StoreError>(ShownRow::ServerWins(u(seq), parse(&e)?)))
                .transpose()?
            }
        };
        if let Some(row) = row {
            shown.insert(key, row);
        }
    }
    Ok(shown)
}

fn audit_decision(
    conn: &Conn,
    tx: &mut TxCache,
    at_ms: i64,
    store: StoreId,
    d: &crate::conflict::AutoDecision,
) -> Result<(), StoreError> {
    append_audit(
        conn,
        tx,
        AuditKind::ConflictDecided,
        at_ms,
        Some(store),
        audit::data([
            ("strategy", audit::s(d.strategy.as_str())),
            ("subject", audit::s(&d.subject)),
            (
                "candidates",
                Value::Array(d.candidates.iter().map(audit::s).collect()),
            ),
            ("winner", audit::s(d.winner)),
        ]),
    )?;
    tracing::debug!(strategy = d.strategy.as_str(), subject = %d.subject, winner = %d.winner, "automatic decision");
    Ok(())
}

fn opt_str<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

/// Writes one event's facts: a sale with its lines and payments as one
/// `p_sales` row (see the schema), every other fact as its own row.
fn write_facts(conn: &Conn, facts: &[Fact]) -> Result<(), StoreError> {
    let mut lines = Vec::new();
    let mut payments = Vec::new();
    for f in facts {
        match f {
            Fact::SaleLine {
                product,
                qty_milli,
                total,
                tax,
                unit_price,
                overridden,
                ..
            } => lines.push(if *overridden {
                // A sixth element only on overridden lines: rows written
                // before schema v9 read as not overridden.
                serde_json::json!([product.as_str(), qty_milli, total, tax, unit_price, true])
            } else {
                serde_json::json!([product.as_str(), qty_milli, total, tax, unit_price])
            }),
            Fact::Payment {
                payment_id: None,
                method,
                amount,
                ..
            } => payments.push(serde_json::json!([
                projection::method_name(*method),
                amount
            ])),
            _ => {}
        }
    }
    for f in facts {
        match f {
            Fact::SaleLine { .. }
            | Fact::Payment {
                payment_id: None, ..
            } => {}
            Fact::Sale {
                event_id,
                sale_id,
                store,
                device,
                shift_id,
                customer,
                total,
                tax,
                change,
                fiscal,
                hlc,
            } => {
                conn.prepare_cached(
                    "INSERT INTO p_sales VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )?
                .execute(params![
                    event_id.to_string(),
                    sale_id.to_string(),
                    store.to_string(),
                    device.to_string(),
                    opt_str(shift_id),
                    opt_str(customer),
                    total,
                    tax,
                    change,
                    fiscal.as_ref().map(|f| f.0.clone()),
                    fiscal.as_ref().map(|f| f.1.clone()),
                    serde_json::Value::Array(std::mem::take(&mut lines)).to_string(),
                    serde_json::Value::Array(std::mem::take(&mut payments)).to_string(),
                    hlc.map(|h| h.ms()),
                    hlc.map(|h| i64::from(h.n()))
                ])?;
            }
            other => write_fact(conn, other)?,
        }
    }
    Ok(())
}

fn write_fact(conn: &Conn, f: &Fact) -> Result<(), StoreError> {
    match f {
        Fact::Shift {
            event_id,
            shift_id,
            store,
            device,
            cashier,
            opening_float,
        } => conn
            .prepare_cached("INSERT INTO p_shifts VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                shift_id.to_string(),
                store.to_string(),
                device.to_string(),
                cashier,
                opening_float
            ])?,
        Fact::ShiftClose {
            event_id,
            shift_id,
            store,
            expected_cash,
            counted_cash,
        } => conn
            .prepare_cached("INSERT INTO p_shift_closes VALUES ($1, $2, $3, $4, $5)")?
            .execute(params![
                event_id.to_string(),
                shift_id.to_string(),
                store.to_string(),
                expected_cash,
                counted_cash
            ])?,
        // A sale, its lines and its own payments are one row: write_facts.
        Fact::Sale { .. }
        | Fact::SaleLine { .. }
        | Fact::Payment {
            payment_id: None, ..
        } => return Err(corrupt("sale facts are written by write_facts")),
        Fact::Payment {
            event_id,
            idx,
            payment_id: Some(payment_id),
            sale_id,
            store,
            method,
            amount,
        } => conn
            .prepare_cached("INSERT INTO p_payments VALUES ($1, $2, $3, $4, $5, $6, $7)")?
            .execute(params![
                event_id.to_string(),
                idx,
                payment_id.to_string(),
                sale_id.to_string(),
                store.to_string(),
                projection::method_name(*method),
                amount
            ])?,
        Fact::Void {
            event_id,
            sale_id,
            store,
        } => conn
            .prepare_cached("INSERT INTO p_voids VALUES ($1, $2, $3)")?
            .execute(params![event_id.to_string(), sale_id.to_string(), store.to_string()])?,
        Fact::Debt {
            event_id,
            debt_id,
            store,
            customer,
            amount,
            sale_id,
        } => conn
            .prepare_cached("INSERT INTO p_debts VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                debt_id.to_string(),
                store.to_string(),
                customer.to_string(),
                amount,
                opt_str(sale_id)
            ])?,
        Fact::DebtPayment {
            event_id,
            payment_id,
            debt_id,
            store,
            customer,
            amount,
        } => conn
            .prepare_cached("INSERT INTO p_debt_payments VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                payment_id.to_string(),
                debt_id.to_string(),
                store.to_string(),
                customer.to_string(),
                amount
            ])?,
        Fact::StockMove {
            event_id,
            store,
            product,
            delta_milli,
        } => conn
            .prepare_cached("INSERT INTO p_stock_moves VALUES ($1, $2, $3, $4)")?
            .execute(params![event_id.to_string(), store.to_string(), product.as_str(), delta_milli])?,
        Fact::Customer {
            customer_id,
            event_id,
            hlc,
            device,
            body,
        } => conn
            .prepare_cached(
                "INSERT INTO p_customers VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (customer_id) DO UPDATE SET event_id = excluded.event_id, hlc_ms = excluded.hlc_ms,
                   hlc_n = excluded.hlc_n, device_id = excluded.device_id, body = excluded.body
                 WHERE (excluded.hlc_ms, excluded.hlc_n, excluded.device_id, excluded.event_id)
                     > (p_customers.hlc_ms, p_customers.hlc_n, p_customers.device_id, p_customers.event_id)",
            )?
            .execute(params![
                customer_id.to_string(),
                event_id.to_string(),
                hlc.ms(),
                i64::from(hlc.n()),
                device.to_string(),
                body
            ])?,
        Fact::CatalogItem {
            store,
            product,
            event_id,
            hub_seq,
            body,
        } => conn
            .prepare_cached(
                "INSERT INTO p_catalog VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (store_id, product) DO UPDATE SET event_id = excluded.event_id,
                   hub_seq = excluded.hub_seq, body = excluded.body
                 WHERE excluded.hub_seq > p_catalog.hub_seq",
            )?
            .execute(params![store.to_string(), product.as_str(), event_id.to_string(), i(*hub_seq), body])?,
        Fact::Price {
            store,
            product,
            event_id,
            hub_seq,
            unit_price,
        } => conn
            .prepare_cached(
                "INSERT INTO p_prices VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (store_id, product) DO UPDATE SET event_id = excluded.event_id,
                   hub_seq = excluded.hub_seq, unit_price = excluded.unit_price
                 WHERE excluded.hub_seq > p_prices.hub_seq",
            )?
            .execute(params![store.to_string(), product.as_str(), event_id.to_string(), i(*hub_seq), unit_price])?,
        Fact::FiscalBlock {
            event_id,
            release,
            grant_id,
            store,
            device,
            series,
            first,
            last,
            expires_ms,
        } => conn
            .prepare_cached("INSERT INTO p_fiscal_blocks VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")?
            .execute(params![
                event_id.to_string(),
                if *release { "release" } else { "grant" },
                grant_id.to_string(),
                store.to_string(),
                device.to_string(),
                series,
                i(*first),
                i(*last),
                expires_ms
            ])?,
        Fact::Escrow {
            event_id,
            release,
            grant_id,
            store,
            device,
            product,
            qty_milli,
            expires_ms,
        } => conn
            .prepare_cached("INSERT INTO p_escrow VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")?
            .execute(params![
                event_id.to_string(),
                if *release { "release" } else { "grant" },
                grant_id.to_string(),
                store.to_string(),
                device.to_string(),
                product.as_str(),
                qty_milli,
                expires_ms
            ])?,
        Fact::Oversell {
            event_id,
            line,
            store,
            device,
            sale_id,
            product,
            beyond_milli,
        } => conn
            .prepare_cached("INSERT INTO p_oversells VALUES ($1, $2, $3, $4, $5, $6, $7)")?
            .execute(params![
                event_id.to_string(),
                line,
                store.to_string(),
                device.to_string(),
                sale_id.to_string(),
                product.as_str(),
                beyond_milli
            ])?,
        Fact::ReturnLine {
            event_id,
            line,
            store,
            sale_id,
            sale_line,
            product,
            qty_milli,
            damaged,
        } => conn
            .prepare_cached("INSERT INTO p_returns VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")?
            .execute(params![
                event_id.to_string(),
                line,
                store.to_string(),
                sale_id.to_string(),
                sale_line,
                product.as_str(),
                qty_milli,
                i64::from(*damaged)
            ])?,
        Fact::CreditNote {
            event_id,
            store,
            device,
            sale_id,
            series,
            number,
        } => conn
            .prepare_cached("INSERT INTO p_credit_notes VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                device.to_string(),
                // '' for a credit note whose original was given by fiscal
                // number only (the column predates unknown originals).
                sale_id.map(|x| x.to_string()).unwrap_or_default(),
                series,
                number
            ])?,
        Fact::PriceHistory {
            event_id,
            store,
            product,
            hub_seq,
            hlc,
            unit_price,
        } => conn
            .prepare_cached("INSERT INTO p_price_history VALUES ($1, $2, $3, $4, $5, $6, $7)")?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                product.as_str(),
                i(*hub_seq),
                hlc.ms(),
                i64::from(hlc.n()),
                unit_price
            ])?,
        Fact::Resolution {
            event_id,
            store,
            conflict_id,
            hub_seq,
            strategy,
            winner,
            resolved_by,
            note,
            covers,
        } => conn
            .prepare_cached(
                "INSERT INTO p_resolutions VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                conflict_id.to_string(),
                i(*hub_seq),
                strategy,
                opt_str(winner),
                resolved_by,
                note,
                serde_json::to_string(&covers.iter().map(ToString::to_string).collect::<Vec<_>>())
                    .map_err(corrupt)?
            ])?,
        Fact::StoreCredit {
            event_id,
            idx,
            store,
            customer,
            amount,
            sale_id,
        } => conn
            .prepare_cached("INSERT INTO p_store_credit VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                idx,
                store.to_string(),
                customer.to_string(),
                amount,
                opt_str(sale_id)
            ])?,
        Fact::UnlinkedReturn {
            event_id,
            line,
            store,
            device,
            sale_id,
            reference,
            product,
            qty_milli,
            damaged,
        } => conn
            .prepare_cached(
                "INSERT INTO p_returns_unknown VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?
            .execute(params![
                event_id.to_string(),
                line,
                store.to_string(),
                device.to_string(),
                opt_str(sale_id),
                reference,
                product.as_str(),
                qty_milli,
                i64::from(*damaged)
            ])?,
        Fact::DrawerOpen {
            event_id,
            store,
            device,
            shift_id,
            reason,
            approved_by,
        } => conn
            .prepare_cached("INSERT INTO p_drawer_opens VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                device.to_string(),
                shift_id.to_string(),
                reason,
                approved_by
            ])?,
        Fact::Approval {
            event_id,
            idx,
            store,
            device,
            action,
            staff_id,
            name,
            role,
        } => conn
            .prepare_cached("INSERT INTO p_approvals VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")?
            .execute(params![
                event_id.to_string(),
                idx,
                store.to_string(),
                device.to_string(),
                action,
                staff_id.to_string(),
                name,
                role
            ])?,
        Fact::ForeignKind {
            event_id,
            store,
            device,
            kind,
        } => conn
            .prepare_cached("INSERT INTO p_foreign_kinds VALUES ($1, $2, $3, $4)")?
            .execute(params![event_id.to_string(), store.to_string(), device.to_string(), kind])?,
    };
    Ok(())
}

fn id_opt<T: FromStr>(s: Option<String>) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.map(|s| parse(&s)).transpose()
}

fn sale_from_row(r: &Row) -> Result<Fact, StoreError> {
    let series: Option<String> = r.get(9)?;
    let number: Option<String> = r.get(10)?;
    Ok(Fact::Sale {
        event_id: parse(&r.get::<_, String>(0)?)?,
        sale_id: parse(&r.get::<_, String>(1)?)?,
        store: parse(&r.get::<_, String>(2)?)?,
        device: parse(&r.get::<_, String>(3)?)?,
        shift_id: id_opt(r.get(4)?)?,
        customer: id_opt(r.get(5)?)?,
        total: r.get(6)?,
        tax: r.get(7)?,
        change: r.get(8)?,
        fiscal: series.zip(number),
        hlc: hlc_opt(r.get(13)?, r.get(14)?)?,
    })
}

fn hlc_opt(ms: Option<i64>, n: Option<i64>) -> Result<Option<Hlc>, StoreError> {
    match (ms, n) {
        (Some(ms), Some(n)) => Ok(Some(
            Hlc::new(ms, u32::try_from(n).map_err(corrupt)?).map_err(corrupt)?,
        )),
        _ => Ok(None),
    }
}

fn price_history_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::PriceHistory {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        product: parse(&r.get::<_, String>(2)?)?,
        hub_seq: u(r.get(3)?),
        hlc: hlc_opt(r.get(4)?, r.get(5)?)?.ok_or_else(|| corrupt("price history hlc"))?,
        unit_price: r.get(6)?,
    })
}

fn resolution_from_row(r: &Row) -> Result<Fact, StoreError> {
    let covers: Vec<String> = serde_json::from_str(&r.get::<_, String>(8)?).map_err(corrupt)?;
    Ok(Fact::Resolution {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        conflict_id: parse(&r.get::<_, String>(2)?)?,
        hub_seq: u(r.get(3)?),
        strategy: r.get(4)?,
        winner: id_opt(r.get(5)?)?,
        resolved_by: r.get(6)?,
        note: r.get(7)?,
        covers: covers.iter().map(|c| parse(c)).collect::<Result<_, _>>()?,
    })
}

fn void_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::Void {
        event_id: parse(&r.get::<_, String>(0)?)?,
        sale_id: parse(&r.get::<_, String>(1)?)?,
        store: parse(&r.get::<_, String>(2)?)?,
    })
}

fn debt_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::Debt {
        event_id: parse(&r.get::<_, String>(0)?)?,
        debt_id: parse(&r.get::<_, String>(1)?)?,
        store: parse(&r.get::<_, String>(2)?)?,
        customer: parse(&r.get::<_, String>(3)?)?,
        amount: r.get(4)?,
        sale_id: id_opt(r.get(5)?)?,
    })
}

fn debt_payment_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::DebtPayment {
        event_id: parse(&r.get::<_, String>(0)?)?,
        payment_id: parse(&r.get::<_, String>(1)?)?,
        debt_id: parse(&r.get::<_, String>(2)?)?,
        store: parse(&r.get::<_, String>(3)?)?,
        customer: parse(&r.get::<_, String>(4)?)?,
        amount: r.get(5)?,
    })
}

fn fiscal_block_from_row(r: &Row) -> Result<Fact, StoreError> {
    let what: String = r.get(1)?;
    Ok(Fact::FiscalBlock {
        event_id: parse(&r.get::<_, String>(0)?)?,
        release: what == "release",
        grant_id: parse(&r.get::<_, String>(2)?)?,
        store: parse(&r.get::<_, String>(3)?)?,
        device: parse(&r.get::<_, String>(4)?)?,
        series: r.get(5)?,
        first: u(r.get(6)?),
        last: u(r.get(7)?),
        expires_ms: r.get(8)?,
    })
}

fn credit_note_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::CreditNote {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        device: parse(&r.get::<_, String>(2)?)?,
        sale_id: id_opt(Some(r.get::<_, String>(3)?).filter(|x| !x.is_empty()))?,
        series: r.get(4)?,
        number: r.get(5)?,
    })
}

fn return_line_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::ReturnLine {
        event_id: parse(&r.get::<_, String>(0)?)?,
        line: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        sale_id: parse(&r.get::<_, String>(3)?)?,
        sale_line: r.get(4)?,
        product: parse(&r.get::<_, String>(5)?)?,
        qty_milli: r.get(6)?,
        damaged: r.get::<_, i64>(7)? == 1,
    })
}

fn store_credit_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::StoreCredit {
        event_id: parse(&r.get::<_, String>(0)?)?,
        idx: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        customer: parse(&r.get::<_, String>(3)?)?,
        amount: r.get(4)?,
        sale_id: id_opt(r.get(5)?)?,
    })
}

fn unlinked_return_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::UnlinkedReturn {
        event_id: parse(&r.get::<_, String>(0)?)?,
        line: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        device: parse(&r.get::<_, String>(3)?)?,
        sale_id: id_opt(r.get(4)?)?,
        reference: r.get(5)?,
        product: parse(&r.get::<_, String>(6)?)?,
        qty_milli: r.get(7)?,
        damaged: r.get::<_, i64>(8)? == 1,
    })
}

fn foreign_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::ForeignKind {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        device: parse(&r.get::<_, String>(2)?)?,
        kind: r.get(3)?,
    })
}

/// Reads one projection row as a fact.
type FactReader = fn(&Row) -> Result<Fact, StoreError>;

fn rows<P: Params>(
    conn: &Conn,
    sql: &str,
    params: P,
    f: FactReader,
) -> Result<Vec<Fact>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut out = Vec::new();
    let mut rs = stmt.query(params)?;
    while let Some(r) = rs.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

fn facts_about(conn: &Conn, subject: &Subject) -> Result<Vec<Fact>, StoreError> {
    match subject {
        Subject::Fiscal(series, number) => {
            // One sale alone is never a duplicate: skip reading it back.
            let n: i64 = conn
                .prepare_cached(
                    "SELECT (SELECT COUNT(*) FROM p_sales WHERE fiscal_series = $1 AND fiscal_number = $2)
                          + (SELECT COUNT(*) FROM p_credit_notes WHERE series = $1 AND number = $2)",
                )?
                .query_row(params![series, number], |r| r.get(0))?;
            if n < 2 {
                return Ok(Vec::new());
            }
            let mut out = rows(
                conn,
                "SELECT * FROM p_sales WHERE fiscal_series = $1 AND fiscal_number = $2",
                params![series, number],
                sale_from_row,
            )?;
            out.extend(rows(
                conn,
                "SELECT * FROM p_credit_notes WHERE series = $1 AND number = $2",
                params![series, number],
                credit_note_from_row,
            )?);
            Ok(out)
        }
        Subject::Debt(d) => {
            let mut out = rows(
                conn,
                "SELECT * FROM p_debts WHERE debt_id = $1",
                [d.to_string()],
                debt_from_row,
            )?;
            out.extend(rows(
                conn,
                "SELECT * FROM p_debt_payments WHERE debt_id = $1",
                [d.to_string()],
                debt_payment_from_row,
            )?);
            out.extend(rows(
                conn,
                "SELECT v.* FROM p_debts d
                 JOIN p_voids v ON v.store_id = d.store_id AND v.sale_id = d.sale_id
                 WHERE d.debt_id = $1",
                [d.to_string()],
                void_from_row,
            )?);
            Ok(out)
        }
        Subject::Event(e) => rows(
            conn,
            "SELECT * FROM p_foreign_kinds WHERE event_id = $1",
            [e.to_string()],
            foreign_from_row,
        ),
        Subject::Returned(sale) => {
            let mut out: Vec<Fact> = Vec::new();
            let mut numbered = Vec::new();
            for f in sales_by_id(conn, *sale)? {
                if let Fact::Sale {
                    store,
                    fiscal: Some((_, n)),
                    ..
                } = &f
                {
                    numbered.push((store.to_string(), n.clone()));
                }
                if matches!(f, Fact::Sale { .. } | Fact::SaleLine { .. }) {
                    out.push(f);
                }
            }
            out.extend(rows(
                conn,
                "SELECT * FROM p_returns WHERE sale_id = $1",
                [sale.to_string()],
                return_line_from_row,
            )?);
            out.extend(rows(
                conn,
                "SELECT * FROM p_returns_unknown WHERE sale_id = $1",
                [sale.to_string()],
                unlinked_return_from_row,
            )?);
            for (store, number) in numbered {
                out.extend(rows(
                    conn,
                    "SELECT * FROM p_returns_unknown WHERE store_id = $1 AND reference = $2 AND sale_id IS NULL",
                    params![store, number],
                    unlinked_return_from_row,
                )?);
            }
            Ok(out)
        }
        Subject::StoreCredit(store, customer) => {
            let mut out = rows(
                conn,
                "SELECT * FROM p_store_credit WHERE store_id = $1 AND customer_id = $2",
                params![store.to_string(), customer.to_string()],
                store_credit_from_row,
            )?;
            out.extend(rows(
                conn,
                "SELECT v.* FROM p_voids v WHERE v.store_id = $1 AND v.sale_id IN
                   (SELECT sale_id FROM p_store_credit WHERE store_id = $1 AND customer_id = $2 AND sale_id IS NOT NULL)",
                params![store.to_string(), customer.to_string()],
                void_from_row,
            )?);
            Ok(out)
        }
        Subject::UnknownOriginal(e) => rows(
            conn,
            "SELECT * FROM p_returns_unknown WHERE event_id = $1",
            [e.to_string()],
            unlinked_return_from_row,
        ),
        Subject::SalePrice(e) => {
            let mut out = Vec::new();
            for f in load_sale_rows(
                conn,
                "SELECT * FROM p_sales WHERE event_id = $1",
                [e.to_string()],
            )? {
                if matches!(f, Fact::Sale { .. } | Fact::SaleLine { .. }) {
                    out.push(f);
                }
            }
            let prices = price_history_of(conn, &out)?;
            out.extend(prices);
            Ok(out)
        }
        // Widened by `widen` before they are decided.
        Subject::VoidedSale(_)
        | Subject::PriceChange(..)
        | Subject::ReturnedFiscal(..)
        | Subject::SaleForReturns(..) => Ok(Vec::new()),
        // Decided outside ingest, never from facts.
        Subject::CardPayment(..) | Subject::FiscalDocument(_) => Ok(Vec::new()),
    }
}

/// The price history of the products of the sale lines among `facts`.
fn price_history_of(conn: &Conn, facts: &[Fact]) -> Result<Vec<Fact>, StoreError> {
    let mut keys = BTreeSet::new();
    for f in facts {
        if let Fact::SaleLine { store, product, .. } = f {
            keys.insert((store.to_string(), product.as_str().to_owned()));
        }
    }
    let mut out = Vec::new();
    for (store, product) in keys {
        out.extend(rows(
            conn,
            "SELECT * FROM p_price_history WHERE store_id = $1 AND product = $2",
            params![store, product],
            price_history_from_row,
        )?);
    }
    Ok(out)
}

/// The subjects a fact's subject stands for: a voided sale stands for the
/// debts opened for it; a price change for the sales of the store made at or
/// after it (plus the grace) that sold the product — of those applied before
/// it, only sales in `p_sales_ahead` can be (see the schema).
fn widen(conn: &Conn, subject: Subject) -> Result<Vec<Subject>, StoreError> {
    match subject {
        Subject::VoidedSale(sale) => {
            let debts: Vec<String> = conn
                .prepare_cached("SELECT debt_id FROM p_debts WHERE sale_id = $1")?
                .query_map([sale.to_string()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out: Vec<Subject> = debts
                .iter()
                .map(|d| Ok(Subject::Debt(parse(d)?)))
                .collect::<Result<_, StoreError>>()?;
            // A voided sale that spent store credit gives it back.
            let credits: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT store_id, customer_id FROM p_store_credit WHERE sale_id = $1",
                )?
                .query_map([sale.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (store, customer) in credits {
                let s = Subject::StoreCredit(parse(&store)?, parse(&customer)?);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Ok(out)
        }
        Subject::ReturnedFiscal(store, number) => {
            let sales: Vec<String> = conn
                .prepare_cached(
                    "SELECT sale_id FROM p_sales WHERE fiscal_number = $1 AND store_id = $2",
                )?
                .query_map(params![number, store.to_string()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            sales
                .iter()
                .map(|s| Ok(Subject::Returned(parse(s)?)))
                .collect()
        }
        Subject::SaleForReturns(store, sale, number) => {
            // Only when a return made without the original names this sale
            // (one indexed look-up per sale applied, on a small table).
            let named: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM p_returns_unknown WHERE sale_id = $1)
                         OR EXISTS (SELECT 1 FROM p_returns_unknown
                                    WHERE store_id = $2 AND reference = $3 AND sale_id IS NULL)",
                )?
                .query_row(params![sale.to_string(), store.to_string(), number], |r| {
                    r.get(0)
                })?;
            Ok(if named {
                vec![Subject::Returned(sale)]
            } else {
                Vec::new()
            })
        }
        Subject::PriceChange(store, product, hlc) => {
            let from = hlc
                .ms()
                .saturating_add(crate::conflict::STALE_PRICE_GRACE_MS);
            let sales: Vec<String> = conn
                .prepare_cached(conn.pick(
                    "SELECT s.event_id FROM p_sales_ahead a JOIN p_sales s ON s.event_id = a.event_id
                     WHERE a.store_id = $1 AND a.hlc_ms >= $2
                       AND EXISTS (SELECT 1 FROM json_each(s.lines) l WHERE json_extract(l.value, '$[0]') = $3)",
                    "SELECT s.event_id FROM p_sales_ahead a JOIN p_sales s ON s.event_id = a.event_id
                     WHERE a.store_id = $1 AND a.hlc_ms >= $2
                       AND EXISTS (SELECT 1 FROM jsonb_array_elements(s.lines::jsonb) l WHERE l.value->>0 = $3)",
                ))?
                .query_map(params![store.to_string(), from, product.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            sales
                .iter()
                .map(|e| Ok(Subject::SalePrice(parse(e)?)))
                .collect()
        }
        other => Ok(vec![other]),
    }
}

/// A `p_sales.lines` array: `[product, qty_milli, total, tax, unit_price]`
/// per line, and a sixth element `true` on an overridden line (rows projected
/// before schema v4 lack the unit price).
#[allow(clippy::type_complexity)]
fn sale_lines(json: &str) -> Result<Vec<(String, i64, i64, i64, Option<i64>, bool)>, StoreError> {
    let raw: Vec<Vec<serde_json::Value>> = serde_json::from_str(json).map_err(corrupt)?;
    raw.into_iter()
        .map(|l| {
            let int = |i: usize| l.get(i).and_then(serde_json::Value::as_i64);
            let product = l
                .first()
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| corrupt("p_sales line product"))?;
            let n = |i: usize| int(i).ok_or_else(|| corrupt("p_sales line amount"));
            let overridden = l.get(5).and_then(serde_json::Value::as_bool) == Some(true);
            Ok((product.to_owned(), n(1)?, n(2)?, n(3)?, int(4), overridden))
        })
        .collect()
}

/// The facts of one sale (by sale id), with its lines and payments.
fn sales_by_id(conn: &Conn, sale: SaleId) -> Result<Vec<Fact>, StoreError> {
    load_sale_rows(
        conn,
        "SELECT * FROM p_sales WHERE sale_id = $1",
        [sale.to_string()],
    )
}

/// The `p_sales` rows as facts: each sale, its lines and its own payments.
fn load_sales(conn: &Conn) -> Result<Vec<Fact>, StoreError> {
    load_sale_rows(conn, "SELECT * FROM p_sales", [])
}

fn load_sale_rows<P: Params>(conn: &Conn, sql: &str, params: P) -> Result<Vec<Fact>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rs = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rs.next()? {
        let sale = sale_from_row(r)?;
        let Fact::Sale {
            event_id,
            sale_id,
            store,
            ..
        } = sale
        else {
            return Err(corrupt("p_sales row"));
        };
        out.push(sale);
        for (i, l) in sale_lines(&r.get::<_, String>(11)?)?
            .into_iter()
            .enumerate()
        {
            out.push(Fact::SaleLine {
                event_id,
                line: u32::try_from(i).map_err(corrupt)?,
                sale_id,
                store,
                product: parse(&l.0)?,
                qty_milli: l.1,
                total: l.2,
                tax: l.3,
                unit_price: l.4,
                overridden: l.5,
            });
        }
        let payments: Vec<(String, i64)> =
            serde_json::from_str(&r.get::<_, String>(12)?).map_err(corrupt)?;
        for (i, (method, amount)) in payments.into_iter().enumerate() {
            out.push(Fact::Payment {
                event_id,
                idx: u32::try_from(i).map_err(corrupt)?,
                payment_id: None,
                sale_id,
                store,
                method: projection::parse_method(&method).ok_or_else(|| corrupt(&method))?,
                amount,
            });
        }
    }
    Ok(out)
}

/// Every fact of the projection tables, read back into [`Projections`].
pub fn load_projections(conn: &Conn) -> Result<Projections, StoreError> {
    let mut p = Projections::default();
    for fact in load_sales(conn)? {
        p.apply(fact);
    }
    let all: [(&str, FactReader); 22] = [
        ("SELECT * FROM p_credit_notes", credit_note_from_row),
        ("SELECT * FROM p_store_credit", store_credit_from_row),
        ("SELECT * FROM p_returns_unknown", unlinked_return_from_row),
        ("SELECT * FROM p_drawer_opens", |r| {
            Ok(Fact::DrawerOpen {
                event_id: parse(&r.get::<_, String>(0)?)?,
                store: parse(&r.get::<_, String>(1)?)?,
                device: parse(&r.get::<_, String>(2)?)?,
                shift_id: parse(&r.get::<_, String>(3)?)?,
                reason: r.get(4)?,
                approved_by: r.get(5)?,
            })
        }),
        ("SELECT * FROM p_approvals", |r| {
            Ok(Fact::Approval {
                event_id: parse(&r.get::<_, String>(0)?)?,
                idx: r.get(1)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                action: r.get(4)?,
                staff_id: parse(&r.get::<_, String>(5)?)?,
                name: r.get(6)?,
                role: r.get(7)?,
            })
        }),
        ("SELECT * FROM p_returns", return_line_from_row),
        ("SELECT * FROM p_price_history", price_history_from_row),
        ("SELECT * FROM p_resolutions", resolution_from_row),
        ("SELECT * FROM p_escrow", |r| {
            let what: String = r.get(1)?;
            Ok(Fact::Escrow {
                event_id: parse(&r.get::<_, String>(0)?)?,
                release: what == "release",
                grant_id: parse(&r.get::<_, String>(2)?)?,
                store: parse(&r.get::<_, String>(3)?)?,
                device: parse(&r.get::<_, String>(4)?)?,
                product: parse(&r.get::<_, String>(5)?)?,
                qty_milli: r.get(6)?,
                expires_ms: r.get(7)?,
            })
        }),
        ("SELECT * FROM p_oversells", |r| {
            Ok(Fact::Oversell {
                event_id: parse(&r.get::<_, String>(0)?)?,
                line: r.get(1)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                sale_id: parse(&r.get::<_, String>(4)?)?,
                product: parse(&r.get::<_, String>(5)?)?,
                beyond_milli: r.get(6)?,
            })
        }),
        ("SELECT * FROM p_fiscal_blocks", fiscal_block_from_row),
        ("SELECT * FROM p_debts", debt_from_row),
        ("SELECT * FROM p_debt_payments", debt_payment_from_row),
        ("SELECT * FROM p_foreign_kinds", foreign_from_row),
        ("SELECT * FROM p_shifts", |r| {
            Ok(Fact::Shift {
                event_id: parse(&r.get::<_, String>(0)?)?,
                shift_id: parse(&r.get::<_, String>(1)?)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                cashier: r.get(4)?,
                opening_float: r.get(5)?,
            })
        }),
        ("SELECT * FROM p_shift_closes", |r| {
            Ok(Fact::ShiftClose {
                event_id: parse(&r.get::<_, String>(0)?)?,
                shift_id: parse(&r.get::<_, String>(1)?)?,
                store: parse(&r.get::<_, String>(2)?)?,
                expected_cash: r.get(3)?,
                counted_cash: r.get(4)?,
            })
        }),
        ("SELECT * FROM p_payments", |r| {
            let method: String = r.get(5)?;
            Ok(Fact::Payment {
                event_id: parse(&r.get::<_, String>(0)?)?,
                idx: r.get(1)?,
                payment_id: id_opt(r.get(2)?)?,
                sale_id: parse(&r.get::<_, String>(3)?)?,
                store: parse(&r.get::<_, String>(4)?)?,
                method: projection::parse_method(&method).ok_or_else(|| corrupt(&method))?,
                amount: r.get(6)?,
            })
        }),
        ("SELECT * FROM p_voids", void_from_row),
        ("SELECT * FROM p_stock_moves", |r| {
            Ok(Fact::StockMove {
                event_id: parse(&r.get::<_, String>(0)?)?,
                store: parse(&r.get::<_, String>(1)?)?,
                product: parse(&r.get::<_, String>(2)?)?,
                delta_milli: r.get(3)?,
            })
        }),
        ("SELECT * FROM p_customers", |r| {
            let n: i64 = r.get(3)?;
            Ok(Fact::Customer {
                customer_id: parse(&r.get::<_, String>(0)?)?,
                event_id: parse(&r.get::<_, String>(1)?)?,
                hlc: Hlc::new(r.get(2)?, u32::try_from(n).map_err(corrupt)?).map_err(corrupt)?,
                device: parse(&r.get::<_, String>(4)?)?,
                body: r.get(5)?,
            })
        }),
        ("SELECT * FROM p_catalog", |r| {
            Ok(Fact::CatalogItem {
                store: parse(&r.get::<_, String>(0)?)?,
                product: parse(&r.get::<_, String>(1)?)?,
                event_id: parse(&r.get::<_, String>(2)?)?,
                hub_seq: u(r.get(3)?),
                body: r.get(4)?,
            })
        }),
        ("SELECT * FROM p_prices", |r| {
            Ok(Fact::Price {
                store: parse(&r.get::<_, String>(0)?)?,
                product: parse(&r.get::<_, String>(1)?)?,
                event_id: parse(&r.get::<_, String>(2)?)?,
                hub_seq: u(r.get(3)?),
                unit_price: r.get(4)?,
            })
        }),
    ];
    for (sql, f) in all {
        for fact in rows(conn, sql, [], f)? {
            p.apply(fact);
        }
    }
    Ok(p)
}

/// Digest of the projections: the canonical JSON of every fact, the derived
/// summary and the conflicts (as the pure code computes them and as the
/// `conflicts` tables hold them). Live ingest and a rebuild must agree on it.
pub fn digest(conn: &Conn) -> Result<Hash256, StoreError> {
    let p = load_projections(conn)?;
    let mut stmt = conn.prepare(conn.pick(
        "SELECT c.conflict_id, c.reason, c.strategy, c.subject, c.detected_ms,
                (SELECT group_concat(event_id, ',') FROM (SELECT event_id FROM conflict_events e WHERE e.conflict_id = c.conflict_id ORDER BY event_id))
         FROM conflicts c ORDER BY c.conflict_id",
        "SELECT c.conflict_id, c.reason, c.strategy, c.subject, c.detected_ms,
                (SELECT string_agg(event_id, ',' ORDER BY event_id) FROM conflict_events e WHERE e.conflict_id = c.conflict_id)
         FROM conflicts c ORDER BY c.conflict_id",
    ))?;
    let conflicts: Vec<Value> = stmt
        .query_map([], |r| {
            Ok(Value::Array(vec![
                Value::String(r.get(0)?),
                Value::String(r.get(1)?),
                Value::String(r.get(2)?),
                Value::String(r.get(3)?),
                Value::Int(r.get(4)?),
                Value::String(r.get::<_, Option<String>>(5)?.unwrap_or_default()),
            ]))
        })?
        .collect::<Result<_, _>>()?;
    let whole = audit::data([
        ("projections", p.to_value()),
        ("conflict_rows", Value::Array(conflicts)),
    ]);
    Ok(Hash256::of(&whole.to_canonical_bytes()))
}

/// Rebuilds the projections and conflicts from the applied events, in apply
/// order, in one transaction. Returns the number of events applied.
pub fn rebuild(conn: &Conn) -> Result<u64, StoreError> {
    conn.write_tx(|tx| {
        tx.execute_batch(
            "DELETE FROM conflict_events; DELETE FROM conflicts;
             DELETE FROM p_shifts; DELETE FROM p_shift_closes; DELETE FROM p_sales;
             DELETE FROM p_payments; DELETE FROM p_voids; DELETE FROM p_debts; DELETE FROM p_debt_payments;
             DELETE FROM p_stock_moves; DELETE FROM p_customers; DELETE FROM p_catalog; DELETE FROM p_prices;
             DELETE FROM p_foreign_kinds; DELETE FROM p_fiscal_blocks;
             DELETE FROM p_escrow; DELETE FROM p_oversells; DELETE FROM p_returns;
             DELETE FROM p_credit_notes; DELETE FROM p_price_history; DELETE FROM p_resolutions;
             DELETE FROM p_sales_ahead; DELETE FROM p_store_credit; DELETE FROM p_returns_unknown;
             DELETE FROM p_drawer_opens; DELETE FROM p_approvals;",
        )?;
        let hub_devices: HashSet<String> = tx
            .prepare("SELECT hub_device FROM stores")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, DbError>>()?;
        let mut count = 0u64;
        let mut cache = TxCache::new(tx.dialect());
        let mut index = SqlIndex::new(tx, 0, &mut cache);
        index.audit = false;
        tx.for_each(
            "SELECT e.bytes, e.device_id, a.applied_ms FROM applied a JOIN events e ON e.id = a.event_row ORDER BY a.applied_seq",
            [],
            |r| -> Result<(), StoreError> {
                let bytes: Vec<u8> = r.get(0)?;
                let device: String = r.get(1)?;
                let applied_ms: i64 = r.get(2)?;
                let event = Event::from_json(&bytes).map_err(corrupt)?;
                let body = event.body().map_err(corrupt)?;
                let env = event.envelope();
                let meta = EventMeta {
                    event_id: env.event_id,
                    store: env.store,
                    device: env.device,
                    seq: env.seq.get(),
                    hlc: env.hlc,
                    origin: if hub_devices.contains(&device) {
                        Origin::Hub
                    } else {
                        Origin::Register
                    },
                    deps: &env.deps,
                };
                project(&mut index, &meta, &body, applied_ms)?;
                index.conflicts.clear();
                count += 1;
                Ok(())
            },
        )?;
        // Rejected fiscal documents are not events the projection sees.
        super::outbox::restore_conflicts(tx)?;
        Ok(count)
    })
}

fn hub_head(
    conn: &Conn,
    store: StoreId,
) -> Result<Option<(HubChainHead, Option<EventId>)>, StoreError> {
    let hub: Option<String> = conn
        .prepare_cached("SELECT hub_device FROM stores WHERE store_id = $1")?
        .query_row([store.to_string()], |r| r.get(0))
        .optional()?;
    let Some(hub) = hub else {
        return Ok(None);
    };
    let mut head = HubChainHead {
        store,
        device: parse(&hub)?,
        seq: 0,
        hash: Hash256::ZERO,
        last_hlc: Hlc::ZERO,
    };
    let last: Option<(i64, String, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT seq, hash, hlc_ms, hlc_n, event_id FROM events WHERE device_id = $1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([hub], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let mut last_id = None;
    if let Some((seq, hash, ms, n, id)) = last {
        head.seq = u(seq);
        head.hash = parse(&hash)?;
        head.last_hlc = Hlc::new(ms, u32::try_from(n).map_err(corrupt)?).map_err(corrupt)?;
        last_id = Some(parse(&id)?);
    }
    Ok(Some((head, last_id)))
}

/// Appends hub events (catalog items, prices) to the hub chains of `stores`
/// (all stores when empty); each is applied at once (a hub event depends only
/// on its predecessor) and may release held register events.
pub(super) fn append_hub_events(
    conn: &Conn,
    env: &mut Env,
    stores: &[StoreId],
    bodies: &[EventBody],
) -> Result<Answer<Vec<HubAppend>>, StoreError> {
    let targets: Vec<StoreId> = if stores.is_empty() {
        list_stores(conn)?.into_iter().map(|s| s.store).collect()
    } else {
        stores.to_vec()
    };
    // Every target is checked before anything is written: a rejection keeps nothing.
    for store in &targets {
        if !store_exists(conn, *store)? {
            return Ok(Err(ApiError::not_found(format!("no store {store}"))));
        }
    }
    let mut out = Vec::new();
    for store in targets {
        let events = append_to_hub_chain(conn, env, store, bodies)?;
        out.push(HubAppend {
            store,
            events: events.len(),
            hub_seq: events.last().map_or(0, |e| e.seq().get()),
        });
    }
    Ok(Ok(out))
}

/// Appends `bodies` to one store's hub chain; each event is applied at once (a
/// hub event depends only on its predecessor) and may release held register
/// events. Returns the events appended.
pub(crate) fn append_to_hub_chain(
    conn: &Conn,
    env: &mut Env,
    store: StoreId,
    bodies: &[EventBody],
) -> Result<Vec<Event>, StoreError> {
    let with: Vec<(EventBody, Vec<EventId>)> = bodies.iter().map(|b| (b.clone(), vec![])).collect();
    append_to_hub_chain_with_deps(conn, env, store, &with)
}

/// [`append_to_hub_chain`] with causal deps per event (every dep must be
/// applied already: the event is applied at once).
pub(crate) fn append_to_hub_chain_with_deps(
    conn: &Conn,
    env: &mut Env,
    store: StoreId,
    bodies: &[(EventBody, Vec<EventId>)],
) -> Result<Vec<Event>, StoreError> {
    let now = env.now_ms();
    let Some((mut head, mut previous)) = hub_head(conn, store)? else {
        return Err(corrupt(format!("store {store} vanished")));
    };
    let mut appended = Vec::with_capacity(bodies.len());
    let mut index = SqlIndex::new(conn, now, &mut env.tx);
    for (body, deps) in bodies {
        let mut rng = &mut *env.rng;
        let (event, next) =
            hubchain::next_event_with_deps(&head, body.clone(), deps.clone(), now, &mut rng)?;
        let row = insert_event(conn, &event, now)?;
        index.known.insert(
            event.id(),
            (
                row,
                Cow::Owned(PushedEvent {
                    event: event.clone(),
                    body: body.clone(),
                }),
                Origin::Hub,
            ),
        );
        append_audit(
            conn,
            index.tx,
            AuditKind::HubEventAppended,
            now,
            Some(store),
            audit::data([
                ("device", audit::s(head.device)),
                ("seq", audit::n(next.seq)),
                ("event_id", audit::s(event.id())),
                ("hash", audit::s(event.hash())),
                ("kind", audit::s(body.kind().as_str())),
            ]),
        )?;
        let admitted = ingest::admit(
            &mut index,
            &Candidate {
                id: event.id(),
                deps,
                previous,
            },
        )?;
        debug_assert!(matches!(admitted, Admission::Applied { .. }));
        previous = Some(event.id());
        head = next;
        appended.push(event);
    }
    Ok(appended)
}

pub(super) fn create_store(
    conn: &Conn,
    env: &mut Env,
    name: &str,
    time_zone: &str,
) -> Result<StoreInfo, StoreError> {
    let now = env.now_ms();
    let mut rng = &mut *env.rng;
    let store = StoreId::new_v7(now, &mut rng).map_err(corrupt)?;
    let hub_device = DeviceId::new_v7(now, &mut rng).map_err(corrupt)?;
    conn.execute(
        "INSERT INTO stores (store_id, name, time_zone, hub_device, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        params![store.to_string(), name, time_zone, hub_device.to_string(), now],
    )?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::StoreCreated,
        now,
        Some(store),
        audit::data([
            ("name", audit::s(name)),
            ("time_zone", audit::s(time_zone)),
            ("hub_device", audit::s(hub_device)),
        ]),
    )?;
    Ok(StoreInfo {
        store,
        name: name.to_owned(),
        time_zone: time_zone.to_owned(),
        hub_device,
        hub_seq: 0,
    })
}

fn store_exists(conn: &Conn, store: StoreId) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM stores WHERE store_id = $1 LIMIT 1")?
        .exists([store.to_string()])?)
}

pub(super) fn create_token(
    conn: &Conn,
    env: &mut Env,
    store: StoreId,
    device_name: &str,
    ttl_ms: i64,
) -> Result<Answer<(String, i64)>, StoreError> {
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

pub(super) fn enroll(
    conn: &Conn,
    env: &mut Env,
    token: &str,
) -> Result<Answer<Enrollment>, StoreError> {
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

pub(super) fn rotate_key(
    conn: &Conn,
    env: &mut Env,
    device: DeviceId,
    by: &str,
) -> Result<RotatedKey, StoreError> {
    let now = env.now_ms();
    let until = now.saturating_add(env.cfg.key_grace_ms);
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
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::KeyRotated,
        now,
        Some(parse(&store)?),
        audit::data([
            ("device", audit::s(device)),
            ("key_id", audit::s(&key_id)),
            ("old_key_valid_until_ms", audit::n(until)),
            ("by", audit::s(by)),
        ]),
    )?;
    tracing::info!(device = %device, key_id = %key_id, by, "device key rotated");
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
) -> Result<Answer<()>, StoreError> {
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

pub(super) fn release_quarantine(
    conn: &Conn,
    env: &mut Env,
    device: DeviceId,
    note: &str,
) -> Result<Answer<()>, StoreError> {
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

pub(super) fn prune_nonces(conn: &Conn, env: &mut Env) -> Result<usize, StoreError> {
    let cutoff = env.now_ms().saturating_sub(MAX_REQUEST_SKEW_MS);
    Ok(conn.execute("DELETE FROM nonces WHERE timestamp_ms < $1", [cutoff])?)
}

pub(super) fn pull_page(
    conn: &Conn,
    who: super::DeviceCtx,
    after: u64,
    limit: usize,
) -> Result<PullPage, StoreError> {
    let hub: Option<String> = conn
        .prepare_cached("SELECT hub_device FROM stores WHERE store_id = $1")?
        .query_row([who.store.to_string()], |r| r.get(0))
        .optional()?;
    let mut stmt = conn.prepare_cached(
        "SELECT a.applied_seq, e.device_id, e.seq, e.hash, e.bytes FROM applied a JOIN events e ON e.id = a.event_row
         WHERE a.store_id = $1 AND a.applied_seq > $2 AND a.device_id != $3 ORDER BY a.applied_seq LIMIT $4",
    )?;
    let mut rs = stmt.query(params![
        who.store.to_string(),
        i(after),
        who.device.to_string(),
        i(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
    ])?;
    let mut page = PullPage {
        events: Vec::new(),
        next: after,
        more: false,
        last_hub: None,
    };
    while let Some(r) = rs.next()? {
        if page.events.len() == limit {
            page.more = true;
            break;
        }
        let device: String = r.get(1)?;
        if hub.as_deref() == Some(device.as_str()) {
            let seq = Seq::new(u(r.get(2)?)).map_err(corrupt)?;
            let hash: String = r.get(3)?;
            page.last_hub = Some((parse(&device)?, seq, parse(&hash)?));
        }
        page.next = u(r.get(0)?);
        page.events.push(r.get(4)?);
    }
    Ok(page)
}

pub(super) fn own_page(
    conn: &Conn,
    device: DeviceId,
    after_seq: u64,
    limit: usize,
) -> Result<OwnPage, StoreError> {
    let checkpoint: Option<String> = conn
        .prepare_cached("SELECT checkpoint FROM devices WHERE device_id = $1")?
        .query_row([device.to_string()], |r| r.get(0))
        .optional()?
        .flatten();
    let mut stmt = conn.prepare_cached(
        "SELECT bytes FROM events WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )?;
    let mut events: Vec<Vec<u8>> = stmt
        .query_map(
            params![
                device.to_string(),
                i(after_seq),
                i(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let more = events.len() > limit;
    events.truncate(limit);
    Ok(OwnPage {
        events,
        checkpoint,
        more,
    })
}

pub(super) fn list_stores(conn: &Conn) -> Result<Vec<StoreInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.store_id, s.name, s.time_zone, s.hub_device,
                COALESCE((SELECT MAX(seq) FROM events e WHERE e.device_id = s.hub_device), 0)
         FROM stores s ORDER BY s.created_at_ms, s.store_id",
    )?;
    let mut out = Vec::new();
    let mut rs = stmt.query([])?;
    while let Some(r) = rs.next()? {
        out.push(StoreInfo {
            store: parse(&r.get::<_, String>(0)?)?,
            name: r.get(1)?,
            time_zone: r.get(2)?,
            hub_device: parse(&r.get::<_, String>(3)?)?,
            hub_seq: u(r.get(4)?),
        });
    }
    Ok(out)
}

pub(super) fn list_devices(
    conn: &Conn,
    store: Option<StoreId>,
    now: i64,
) -> Result<Vec<DeviceInfo>, StoreError> {
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

pub(super) fn list_alerts(conn: &Conn) -> Result<Vec<AlertInfo>, StoreError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT kind, store_id, device_id, at_ms, message, closed_ms FROM alerts ORDER BY alert_id",
    )?;
    let mut rs = stmt.query([])?;
    while let Some(r) = rs.next()? {
        out.push(AlertInfo {
            kind: r.get(0)?,
            store: r.get(1)?,
            device: r.get(2)?,
            at_ms: r.get(3)?,
            message: r.get(4)?,
            open: r.get::<_, Option<i64>>(5)?.is_none(),
        });
    }
    for c in super::conflicts::list(conn, super::StateFilter::All)? {
        let open = c.state == "open";
        out.push(AlertInfo {
            kind: "conflict".into(),
            store: Some(c.store.to_string()),
            device: None,
            at_ms: c.detected_ms,
            message: format!(
                "{} on {}: {} events (conflict {}, strategy {}), {}",
                c.reason,
                c.subject,
                c.candidates.len(),
                c.conflict_id,
                c.strategy,
                match &c.resolution {
                    Some(r) => format!("resolved by {}", r.by),
                    None => "manual resolution needed".to_owned(),
                }
            ),
            open,
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT store_id, product, qty_milli FROM v_stock WHERE qty_milli < 0 ORDER BY store_id, product",
    )?;
    let mut rs = stmt.query([])?;
    while let Some(r) = rs.next()? {
        let product: String = r.get(1)?;
        let qty: i64 = r.get(2)?;
        out.push(AlertInfo {
            kind: "negative_stock".into(),
            store: r.get(0)?,
            device: None,
            at_ms: 0,
            message: format!("stock of {product} is {qty} thousandths"),
            open: true,
        });
    }
    Ok(out)
}

pub(super) fn health_inputs(conn: &Conn, now: i64) -> Result<HealthInputs, StoreError> {
    let devices = list_devices(conn, None, now)?;
    let (held_events, oldest): (i64, Option<i64>) =
        conn.query_row("SELECT COUNT(*), MIN(held_since_ms) FROM held", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let count = |sql: &str, p: &[&dyn super::db::ToValue]| -> Result<u64, StoreError> {
        Ok(u(conn.query_row(sql, p, |r| r.get(0))?))
    };
    let mut held = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT e.event_id, e.device_id, e.seq, e.kind, h.held_since_ms, h.event_row
             FROM held h JOIN events e ON e.id = h.event_row
             ORDER BY h.held_since_ms, h.event_row LIMIT $1",
        )?;
        let mut rs = stmt.query([i(super::HELD_LISTED as u64)])?;
        while let Some(r) = rs.next()? {
            held.push(super::HeldEvent {
                event_id: r.get(0)?,
                device: r.get(1)?,
                seq: u(r.get(2)?),
                kind: r.get(3)?,
                held_since_ms: r.get(4)?,
                missing: missing_of(conn, r.get(5)?)?
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            });
        }
    }
    let all = super::conflicts::list(conn, super::StateFilter::All)?;
    let mut conflicts_by_reason = std::collections::BTreeMap::new();
    for c in all.iter().filter(|c| c.state == "open") {
        *conflicts_by_reason
            .entry(c.reason.as_str().to_owned())
            .or_insert(0) += 1;
    }
    Ok(HealthInputs {
        devices,
        held_events: u(held_events),
        oldest_held_since_ms: oldest,
        held,
        conflicts_resolved: all.iter().filter(|c| c.state == "resolved").count() as u64,
        conflicts_by_reason,
        conflicts_24h: count(
            "SELECT COUNT(*) FROM conflicts WHERE detected_ms > $1",
            &[&(now - 86_400_000)],
        )?,
        conflicts_open: all.iter().filter(|c| c.state == "open").count() as u64,
        fiscal_duplicates: count(
            "SELECT COUNT(*) FROM conflicts WHERE reason = 'duplicate_fiscal_number'",
            &[],
        )?,
        fiscal_series: super::fiscal::health(conn, now)?,
        oversells: count("SELECT COUNT(*) FROM p_oversells", &[])?,
        outbox: super::outbox::health(conn)?,
        stock_alerts_open: super::escrow::alerts(conn)?
            .iter()
            .filter(|a| a.state == "open")
            .count() as u64,
        negative_stock: count("SELECT COUNT(*) FROM v_stock WHERE qty_milli < 0", &[])?,
        open_alerts: count("SELECT COUNT(*) FROM alerts WHERE closed_ms IS NULL", &[])?,
    })
}

/// What head office sees of a store's staff actions and store credit
/// (`GET /v1/admin/staff/activity`): every approval with its event's kind and
/// time (HLC ms), the drawer openings without a sale, the returns made without
/// the original, and every customer's store-credit balance.
pub(super) fn staff_activity(conn: &Conn, store: StoreId) -> Result<serde_json::Value, StoreError> {
    let st = store.to_string();
    let mut approvals = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT a.event_id, a.device_id, a.action, a.staff_id, a.name, a.role, e.kind, e.hlc_ms
             FROM p_approvals a JOIN events e ON e.event_id = a.event_id
             WHERE a.store_id = $1 ORDER BY e.hlc_ms, a.event_id, a.idx",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            approvals.push(serde_json::json!({
                "event_id": r.get::<_, String>(0)?, "device": r.get::<_, String>(1)?,
                "action": r.get::<_, String>(2)?, "staff_id": r.get::<_, String>(3)?,
                "name": r.get::<_, String>(4)?, "role": r.get::<_, String>(5)?,
                "kind": r.get::<_, String>(6)?, "at_ms": r.get::<_, i64>(7)?,
            }));
        }
    }
    let mut drawer_opens = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT d.event_id, d.device_id, d.shift_id, d.reason, d.approved_by, e.hlc_ms
             FROM p_drawer_opens d JOIN events e ON e.event_id = d.event_id
             WHERE d.store_id = $1 ORDER BY e.hlc_ms, d.event_id",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            drawer_opens.push(serde_json::json!({
                "event_id": r.get::<_, String>(0)?, "device": r.get::<_, String>(1)?,
                "shift_id": r.get::<_, String>(2)?, "reason": r.get::<_, String>(3)?,
                "approved_by": r.get::<_, Option<String>>(4)?, "at_ms": r.get::<_, i64>(5)?,
            }));
        }
    }
    let mut returns_unknown = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT event_id, line, device_id, sale_id, reference, product, qty_milli, damaged
             FROM p_returns_unknown WHERE store_id = $1 ORDER BY event_id, line",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            returns_unknown.push(serde_json::json!({
                "event_id": r.get::<_, String>(0)?, "line": r.get::<_, i64>(1)?,
                "device": r.get::<_, String>(2)?, "sale_id": r.get::<_, Option<String>>(3)?,
                "reference": r.get::<_, String>(4)?, "product": r.get::<_, String>(5)?,
                "qty_milli": r.get::<_, i64>(6)?, "damaged": r.get::<_, i64>(7)? == 1,
            }));
        }
    }
    let mut store_credit = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT customer_id, balance FROM v_store_credit WHERE store_id = $1 ORDER BY customer_id",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            store_credit.push(serde_json::json!({
                "customer": r.get::<_, String>(0)?, "balance": r.get::<_, i64>(1)?,
            }));
        }
    }
    Ok(serde_json::json!({
        "approvals": approvals,
        "drawer_opens": drawer_opens,
        "returns_unknown": returns_unknown,
        "store_credit": store_credit,
    }))
}

#[cfg(test)]
mod conflict_order;

/// Statements SQLite re-prepares at each new binding cost a parse per call (a
/// partial index or a join planned against table sizes did so): this pins that
/// none of the push path's statements is re-prepared more than a few times.
#[cfg(test)]
mod reprepare_probe {
    use super::*;
    use crate::store::StoreConfig;
    use caja_shared::clock::{Clock, ManualClock};
    use caja_shared::entropy::SeededRandom;
    use std::sync::Arc;

    #[test]
    fn hot_statements_are_not_reprepared_at_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let conn = open_connection(&path).unwrap();
        crate::store::migrate::migrate(&conn).unwrap();
        let clock = Arc::new(ManualClock::new(1_763_880_000_000));
        let mut env = Env {
            clock: clock.clone(),
            rng: Box::new(SeededRandom::new(1)),
            cfg: StoreConfig {
                database: crate::store::Database::Sqlite(path.clone()),
                queue_capacity: 1,
                max_batch_jobs: 1,
                read_connections: 1,
                key_grace_ms: 1,
                rate_limit: crate::ratelimit::RateLimit {
                    burst: 1000,
                    per_minute: 100000,
                },
            },
            tx: TxCache::default(),
        };
        conn.execute_batch("BEGIN").unwrap();
        let st = create_store(&conn, &mut env, "s", "tz").unwrap();
        let (tok, _) = create_token(&conn, &mut env, st.store, "d", 1_000_000)
            .unwrap()
            .unwrap();
        let e = enroll(&conn, &mut env, &tok).unwrap().unwrap();
        let reg = crate::workload::Register::new(e.device, e.key.clone(), e.key_id.clone());
        let mut w = crate::workload::Workload::new(3, st.store, vec![reg]);
        for _ in 0..4 {
            let evs: Vec<Event> = (0..50).map(|_| w.next(0, clock.now_ms())).collect();
            let r = &w.registers[0];
            let last = evs.last().unwrap();
            let cp = caja_shared::checkpoint::Checkpoint::sign(
                &r.key,
                r.key_id.clone(),
                r.device,
                last.seq(),
                last.hash(),
            );
            let body = caja_shared::push::push_body(r.device, &evs, &cp, 0).unwrap();
            let h = caja_shared::request::SignedHeaders::sign(
                &r.key,
                r.device,
                r.key_id.clone(),
                "POST",
                "/p",
                &body,
                clock.now_ms(),
                &mut SeededRandom::new(u64::try_from(clock.now_ms()).unwrap()),
            );
            let req = SignedRequest {
                method: "POST".into(),
                path_and_query: "/p".into(),
                headers: crate::auth::AuthHeaders {
                    device: h.device,
                    key_id: h.key_id,
                    timestamp_ms: h.timestamp_ms,
                    nonce: h.nonce,
                    signature: h.signature.to_hex(),
                },
                body: body.clone().into(),
            };
            let parsed = ingest::parse_push(&body, 1000);
            let out = push(&conn, &mut env, &req, &parsed).unwrap().unwrap();
            assert_eq!(out.accepted, 50);
            clock.advance(10);
        }
        let src = include_str!("sqlite.rs");
        let mut n = 0;
        for chunk in src.split("prepare_cached(").skip(1) {
            let Some(start) = chunk.find('"') else {
                continue;
            };
            let rest = &chunk[start + 1..];
            let Some(end) = rest.find("\")").or_else(|| rest.find("\",")) else {
                continue;
            };
            let sql = rest[..end].replace("\\n", "\n");
            if sql.contains('{') {
                continue;
            }
            if let Ok(mut stmt) = conn.prepare_cached(&sql) {
                let (rp, runs) = stmt.sqlite_status().unwrap();
                assert!(rp <= 5, "re-prepared {rp} times in {runs} steps: {sql}");
                n += 1;
            }
        }
        assert!(n > 30, "only {n} statements found in the source");
    }
}
