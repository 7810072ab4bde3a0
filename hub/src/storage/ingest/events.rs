//! The `events` table as ingest sees it: a device chain's stored head and
//! overlap, one stored event, what a held event still misses.
//!
//! Invariant: events are inserted once and never changed.

use crate::ingest;
use crate::ingest::{ChainView, PushBatch};
use crate::storage::codec::{corrupt, i, parse, u};
use crate::storage::db::{params, Conn, OptionalExtension, Value};
use crate::storage::error::StorageError;
use crate::storage::multirow;
use caja_shared::event::Event;
use caja_shared::ids::{DeviceId, EventId};
use std::collections::HashMap;

pub(crate) fn chain_view(
    conn: &Conn,
    device: DeviceId,
    batch: &PushBatch,
) -> Result<ChainView, StorageError> {
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

pub(crate) fn event_id_at(
    conn: &Conn,
    device: DeviceId,
    seq: u64,
) -> Result<Option<EventId>, StorageError> {
    let id: Option<String> = conn
        .prepare_cached("SELECT event_id FROM events WHERE device_id = $1 AND seq = $2")?
        .query_row(params![device.to_string(), i(seq)], |r| r.get(0))
        .optional()?;
    id.map(|s| parse(&s)).transpose()
}

pub(crate) fn insert_event(conn: &Conn, e: &Event, received_ms: i64) -> Result<i64, StorageError> {
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

/// Stores a push's new events with multi-row statements
/// ([`crate::storage::multirow`]); returns their rows, in the order given.
pub(crate) fn insert_events(
    conn: &Conn,
    events: &[&Event],
    received_ms: i64,
) -> Result<Vec<i64>, StorageError> {
    let rows: Vec<Vec<Value>> = events
        .iter()
        .map(|e| {
            let env = e.envelope();
            vec![
                Value::Text(env.event_id.to_string()),
                Value::Text(env.store.to_string()),
                Value::Text(env.device.to_string()),
                Value::Int(i(env.seq.get())),
                Value::Text(e.hash().to_hex()),
                Value::Text(env.prev.to_hex()),
                Value::Text(env.kind.as_str().to_owned()),
                Value::Int(env.hlc.ms()),
                Value::Int(i64::from(env.hlc.n())),
                Value::Blob(e.canonical_bytes().to_vec()),
                Value::Int(received_ms),
            ]
        })
        .collect();
    let back = multirow::insert(
        conn,
        "INSERT INTO events (event_id, store_id, device_id, seq, hash, prev, kind, hlc_ms, hlc_n, bytes, received_ms)",
        11,
        "RETURNING id, event_id",
        rows,
    )?;
    let mut ids: HashMap<EventId, i64> = HashMap::with_capacity(back.len());
    for r in &back {
        ids.insert(parse(&r.get::<_, String>(1)?)?, r.get(0)?);
    }
    events
        .iter()
        .map(|e| {
            ids.get(&e.id())
                .copied()
                .ok_or_else(|| corrupt("an inserted event returned no row"))
        })
        .collect()
}

pub(crate) fn missing_of(conn: &Conn, row: i64) -> Result<Vec<EventId>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT missing_id FROM held_missing WHERE event_row = $1 ORDER BY missing_id",
    )?;
    let ids: Vec<String> = stmt
        .query_map([row], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.iter().map(|s| parse(s)).collect()
}
