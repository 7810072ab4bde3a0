//! `POST /v1/sync/push` on the writer thread: authentication, the push's
//! weight charged to the device's volume bucket and the size caps
//! ([`crate::caps`]), the checks of [`crate::ingest`] in DESIGN's order, a
//! chain mismatch's quarantine, then each new event stored, audited and
//! offered to the causal gate; held events beyond the threshold alert.
//!
//! Invariant: a push is applied entirely or not at all (one job).

use crate::audit::AuditKind;
use crate::auth::{Authentic, DeviceRecord};
use crate::ingest::{Candidate, PositionReject, PushBatch};
use crate::projection::Origin;
use crate::ratelimit::{Bucket, Decision};
use crate::storage::alerts::raise_alert;
use crate::storage::audit_log::{self, append_audit};
use crate::storage::codec::{corrupt, i, parse, u};
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::device_auth::authenticate;
use crate::storage::error::{Answer, StorageError};
use crate::storage::ingest::documents;
use crate::storage::ingest::events::{chain_view, event_id_at, insert_events, missing_of};
use crate::storage::ingest::index::SqlIndex;
use crate::storage::ingest::read_ahead::ReadAhead;
use crate::storage::tx_cache::TxCache;
use crate::storage::writer::Env;
use crate::wire::ApiError;
use crate::{audit, ingest, projection};
use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use caja_shared::ids::EventId;
use caja_shared::kind::EventBody;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// A held event in a push answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldInfo {
    /// The held event.
    pub event_id: EventId,
    /// What it still misses.
    pub missing: Vec<EventId>,
}

/// A conflict in a push answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictRef {
    /// The pushed event's seq.
    pub seq: u64,
    /// The conflict.
    pub conflict_id: String,
    /// Why.
    pub reason: String,
}

/// The answer to an accepted push (DESIGN "Wire shapes").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushAck {
    /// Highest contiguous seq stored, held events included.
    pub acked_seq: u64,
    /// New events stored.
    pub accepted: usize,
    /// Events already held with the same hash.
    pub duplicates: usize,
    /// This push's events still held.
    pub held: Vec<HeldInfo>,
    /// Conflicts this push's applied events are part of.
    pub conflicts: Vec<ConflictRef>,
}

fn quarantine(
    conn: &Conn,
    tx: &mut TxCache,
    now: i64,
    dev: &DeviceRecord,
    reject: &PositionReject,
) -> Result<(), StorageError> {
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
pub(crate) fn push(
    conn: &Conn,
    env: &mut Env,
    req: &Authentic,
    parsed: &Result<PushBatch, ApiError>,
) -> Result<Answer<PushAck>, StorageError> {
    let dev = match authenticate(conn, env, req)? {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    let now = env.now_ms();
    let refuse = |e: ApiError| {
        tracing::warn!(device = %dev.device, code = e.error, field = e.field.as_deref().unwrap_or(""), reason = %e.message, "push refused");
        Ok(Err(e))
    };
    // A quarantined device was refused by `authenticate`.
    debug_assert!(!dev.quarantined);
    // Locked as admitted (`serial::for_device_in`): a device never moves.
    if !env.tx.held.covers_store(dev.store) {
        return Err(corrupt(
            "the pushing device's store is not the store locked",
        ));
    }
    // The device's volume bucket: a push weighs by its events and bytes (a
    // malformed one by its bytes), charged before any further work.
    let events = parsed.as_ref().map_or(0, |b| b.events.len());
    if let Err(e) = charge_volume(conn, env, &dev, events, req.request().body.len())? {
        return refuse(e);
    }
    let batch = match parsed {
        Ok(b) => b,
        Err(e) => return refuse(e.clone()),
    };
    if let Err(e) = ingest::check_scope(batch, dev.device, dev.store) {
        return refuse(e);
    }
    if let Err(e) = env.cfg.caps.check_push_sizes(batch) {
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
    // The signed documents beside the events: each named by an event of the
    // batch (or held), each one a new event names pushed or held.
    let mut hashes: Vec<Hash256> = batch.documents.iter().map(|d| d.sha256).collect();
    for e in &batch.events {
        if let EventBody::FiscalDocumentIssued(b) = &e.body {
            hashes.extend(b.documents.iter().map(|d| d.sha256));
        }
    }
    let held = documents::held(conn, &hashes)?;
    let to_store = match ingest::check_documents(batch, view.acked_seq, &held) {
        Ok(d) => d,
        Err(e) => return refuse(e),
    };
    documents::insert_pushed(conn, dev.store, dev.device, &to_store, now)?;

    // Every check passed: store, then offer each new event to the causal gate.
    let mut index = SqlIndex::new(conn, now, &mut env.tx);
    let mut previous = match new_events.first() {
        Some(first) if first.seq() > 1 => event_id_at(conn, dev.device, first.seq() - 1)?,
        _ => None,
    };
    // Batched: the events in multi-row statements, the `applied` rows and
    // the audit entries (indexes taken in order) written together at the end.
    index.applied_rows = Some(Vec::new());
    index.fresh = true;
    audit_log::defer(index.tx);
    let stored: Vec<&Event> = new_events.iter().map(|e| &e.event).collect();
    let rows = insert_events(conn, &stored, now)?;
    index.ahead = Some(ReadAhead::read(conn, &new_events)?);
    for (e, row) in new_events.iter().zip(rows) {
        crate::crashpoint::hit("hub:event_stored");
        index
            .known
            .insert(e.event.id(), (row, Cow::Borrowed(*e), Origin::Register));
    }
    for e in &new_events {
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
        crate::crashpoint::hit("hub:event_admitted");
        previous = Some(e.event.id());
    }
    index.flush()?;
    audit_log::flush(conn, index.tx)?;
    if !index.held_now.is_empty() {
        alert_if_held_beyond_threshold(conn, now, &dev, env.cfg.caps.held_alert_threshold)?;
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
    crate::crashpoint::hit("hub:push_recorded");
    tracing::debug!(device = %dev.device, accepted = new_events.len(), duplicates = position.duplicates, held = held.len(), "push stored");
    Ok(Ok(PushAck {
        acked_seq,
        accepted: new_events.len(),
        duplicates: position.duplicates,
        held,
        conflicts,
    }))
}

/// The key of a device's push-volume bucket in `rate_limits` (beside its
/// request bucket, keyed by the bare device id).
fn volume_key(dev: &DeviceRecord) -> String {
    format!("push-volume:{}", dev.device)
}

/// Charges a push's weight ([`crate::caps::Caps::push_weight`]) to the
/// device's volume bucket, persisted either way: 429 `overloaded` with
/// `Retry-After` when the bucket lacks it.
fn charge_volume(
    conn: &Conn,
    env: &mut Env,
    dev: &DeviceRecord,
    events: usize,
    body_bytes: usize,
) -> Result<Answer<()>, StorageError> {
    let now = env.now_ms();
    let caps = env.cfg.caps;
    let weight = caps.push_weight(events, body_bytes);
    let key = volume_key(dev);
    let bucket: Option<Bucket> = conn
        .prepare_cached("SELECT tokens_milli, updated_ms FROM rate_limits WHERE device_id = $1")?
        .query_row([&key], |r| {
            Ok(Bucket {
                tokens_milli: r.get(0)?,
                updated_ms: r.get(1)?,
            })
        })
        .optional()?;
    let (bucket, decision) = caps.push_rate_limit.take_units(bucket, now, weight);
    conn.prepare_cached(
        "INSERT INTO rate_limits (device_id, tokens_milli, updated_ms) VALUES ($1, $2, $3)
         ON CONFLICT (device_id) DO UPDATE SET tokens_milli = excluded.tokens_milli, updated_ms = excluded.updated_ms",
    )?
    .execute(params![key, bucket.tokens_milli, bucket.updated_ms])?;
    match decision {
        Decision::Allow => Ok(Ok(())),
        Decision::Limited { retry_after_ms } => Ok(Err(ApiError::overloaded(
            format!(
                "this device pushes more than its volume limit ({} units a minute; this push weighs {weight})",
                caps.push_rate_limit.per_minute
            ),
            u((retry_after_ms + 999) / 1000),
        ))),
    }
}

/// Held events are stored, never refused; beyond the threshold head office
/// gets one alert per device until it closes it (the health report lists
/// the device while the alert is open and events are held).
fn alert_if_held_beyond_threshold(
    conn: &Conn,
    now: i64,
    dev: &DeviceRecord,
    threshold: u64,
) -> Result<(), StorageError> {
    let held: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM held h JOIN events e ON e.id = h.event_row WHERE e.device_id = $1",
        )?
        .query_row([dev.device.to_string()], |r| r.get(0))?;
    if u(held) <= threshold {
        return Ok(());
    }
    let open = conn
        .prepare_cached(
            "SELECT 1 FROM alerts WHERE kind = $1 AND device_id = $2 AND closed_ms IS NULL LIMIT 1",
        )?
        .exists(params![HELD_ALERT, dev.device.to_string()])?;
    if open {
        return Ok(());
    }
    let message = format!(
        "register {} has {held} events held for missing dependencies (alert threshold {threshold}); they are stored and applied when what they wait for arrives",
        dev.device
    );
    raise_alert(
        conn,
        HELD_ALERT,
        Some(dev.store),
        Some(dev.device),
        now,
        &message,
    )?;
    tracing::warn!(device = %dev.device, held, threshold, "held events beyond the alert threshold");
    Ok(())
}

/// The alert kind of a device holding more events than the threshold.
pub(crate) const HELD_ALERT: &str = "held_events_threshold";
