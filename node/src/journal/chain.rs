//! The `journal` table: its head, its rows in and out, and the hub's
//! acknowledged seq (`sync_state`) measured against it.
//!
//! Invariant: a row is inserted only as the next link — `check_next` asserts
//! `seq == last + 1` and `prev == last hash` before `insert_event` (the
//! migration's triggers assert it again); nothing here updates or deletes a
//! journal row.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use caja_shared::canonical::{self, Value};
use caja_shared::chain::ChainHead;
use caja_shared::event::Event;
use caja_shared::hlc::Hlc;

use super::error::{broken, BreakReason, JournalError};
use super::rows::{get_u64, to_i64};

/// Most events `Journal::events_after` returns in one call.
pub const MAX_EVENTS_PER_READ: usize = 1_000;

/// The head: last seq and its hash (genesis when empty).
pub(super) fn head(conn: &Connection) -> Result<ChainHead, JournalError> {
    Ok(last_row(conn)?.map_or(ChainHead::GENESIS, |r| r.head))
}

/// The HLC of the last event, read from its bytes.
pub(super) fn last_hlc(conn: &Connection) -> Result<Option<Hlc>, JournalError> {
    let row: Option<(u64, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, bytes FROM journal ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((get_u64(r, 0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, bytes)) = row else {
        return Ok(None);
    };
    let hlc = canonical::parse(&bytes).ok().and_then(|v| {
        let hlc = v.get("hlc")?;
        let ms = hlc.get("ms").and_then(Value::as_i64)?;
        let n = hlc.get("n").and_then(Value::as_i64)?;
        Hlc::new(ms, u32::try_from(n).ok()?).ok()
    });
    hlc.map(Some)
        .ok_or_else(|| broken(seq, BreakReason::BadField { field: "hlc" }))
}

/// The event at `seq`, if any.
pub(super) fn event(conn: &Connection, seq: u64) -> Result<Option<Event>, JournalError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT bytes FROM journal WHERE seq = ?1",
            [to_i64(seq, "seq")?],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match bytes {
        Some(b) => Some(Event::from_json(&b)?),
        None => None,
    })
}

/// Up to `limit` (at most [`MAX_EVENTS_PER_READ`]) events after `after_seq`.
pub(super) fn events_after(
    conn: &Connection,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<Event>, JournalError> {
    let limit = limit.min(MAX_EVENTS_PER_READ);
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let mut rows = stmt.query(params![
        to_i64(after_seq, "seq")?,
        i64::try_from(limit).unwrap_or(i64::MAX)
    ])?;
    let mut out = Vec::with_capacity(limit.min(64));
    while let Some(row) = rows.next()? {
        let bytes = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
        out.push(Event::from_json(bytes)?);
    }
    Ok(out)
}

/// The highest seq the hub has durably acknowledged.
pub(super) fn acked_seq(conn: &Connection) -> Result<u64, JournalError> {
    Ok(
        conn.query_row("SELECT acked_seq FROM sync_state WHERE id = 1", [], |r| {
            get_u64(r, 0)
        })?,
    )
}

/// Records the hub's `acked_seq`: never backwards, never beyond the head.
pub(super) fn set_acked_seq(
    tx: &Transaction<'_>,
    acked_seq: u64,
    now_ms: i64,
) -> Result<(), JournalError> {
    let current = self::acked_seq(tx)?;
    let head = head(tx)?;
    if acked_seq < current {
        return Err(JournalError::BadAck {
            acked_seq,
            why: format!("the hub already acknowledged seq {current}"),
        });
    }
    if acked_seq > head.seq {
        return Err(JournalError::BadAck {
            acked_seq,
            why: format!("the journal ends at seq {}", head.seq),
        });
    }
    tx.execute(
        "UPDATE sync_state SET acked_seq = ?1, updated_at_ms = ?2 WHERE id = 1",
        params![to_i64(acked_seq, "acked_seq")?, now_ms],
    )?;
    Ok(())
}

/// Events not yet acknowledged by the hub.
pub(super) fn unsynced(conn: &Connection) -> Result<u64, JournalError> {
    let head = head(conn)?;
    Ok(head.seq.saturating_sub(acked_seq(conn)?))
}

/// Whether `event` is the next link after `head`: `seq == last + 1` and
/// `prev == last hash`.
pub(super) fn check_next(head: ChainHead, event: &Event) -> Result<(), JournalError> {
    let env = event.envelope();
    let expected_seq = head.seq.checked_add(1);
    if Some(env.seq.get()) != expected_seq || env.prev != head.hash {
        return Err(JournalError::OutOfOrder {
            expected_seq: expected_seq.unwrap_or(u64::MAX),
            expected_prev: head.hash,
            seq: env.seq.get(),
            prev: env.prev,
        });
    }
    Ok(())
}

pub(super) fn insert_event(tx: &Transaction<'_>, event: &Event) -> Result<(), JournalError> {
    let env = event.envelope();
    tx.prepare_cached(
        "INSERT INTO journal (seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        to_i64(env.seq.get(), "seq")?,
        env.event_id.to_string(),
        event.hash().to_hex(),
        env.prev.to_hex(),
        env.kind.as_str(),
        env.hlc.ms(),
        env.hlc.n(),
        event.canonical_bytes(),
    ])?;
    Ok(())
}

#[derive(Clone, Copy)]
pub(super) struct LastRow {
    pub(super) head: ChainHead,
    pub(super) hlc: Hlc,
}

pub(super) fn last_row(conn: &Connection) -> Result<Option<LastRow>, JournalError> {
    let row: Option<(u64, String, i64, u32)> = conn
        .prepare_cached("SELECT seq, hash, hlc_ms, hlc_n FROM journal ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok((get_u64(r, 0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((seq, hash, ms, n)) = row else {
        return Ok(None);
    };
    let hash = hash
        .parse()
        .map_err(|_| broken(seq, BreakReason::ColumnMismatch { column: "hash" }))?;
    let hlc = Hlc::new(ms, n)
        .map_err(|_| broken(seq, BreakReason::ColumnMismatch { column: "hlc_ms" }))?;
    Ok(Some(LastRow {
        head: ChainHead { seq, hash },
        hlc,
    }))
}
