//! The fiscal tables: the usable part of `fiscal_blocks` (the next number,
//! what is left, what to release) and the register's own `fiscal_requests`
//! (ask once, retry with the same id, refusals, staleness after a restore).
//!
//! Invariant: loads and stores only; what a row means is decided in `rules`.
//! A request is recorded before it is sent.

use caja_shared::entropy::RandomSource;
use caja_shared::ids::{DeviceId, RequestId};
use caja_shared::kind::{FiscalNumbersReleased, FiscalRef};
use rusqlite::{params, Connection, OptionalExtension};

use super::rules::{self, Remainder, SeriesLeft};

/// The usable part of a block: `[next, end]`.
const USABLE: &str = "SELECT b.grant_id, b.series, b.digits, b.next,
        min(b.last, coalesce(b.released_from - 1, b.last)) AS end_, b.expires_ms, b.valid_until
     FROM fiscal_blocks b JOIN fiscal_requests r ON r.request_id = b.request_id AND r.state = 'active'
     WHERE b.device_id = ?1 AND b.series = ?2 AND b.expires_ms > ?3
       AND b.next <= min(b.last, coalesce(b.released_from - 1, b.last))";

/// The number the next sale of `series` gets, without using it (the sale's
/// projection update does): lowest usable block first.
pub fn next_number(
    conn: &Connection,
    device: DeviceId,
    series: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<FiscalRef>> {
    let row: Option<(i64, i64, String)> = conn
        .prepare_cached(&format!("{USABLE} ORDER BY b.next LIMIT 1"))?
        .query_row(params![device.to_string(), series, now_ms], |r| {
            Ok((r.get(2)?, r.get(3)?, r.get(6)?))
        })
        .optional()?;
    Ok(row.and_then(|(digits, next, valid_until)| {
        rules::number_of(series, digits, next, valid_until)
    }))
}

/// Numbers of `series` this register may still issue.
pub fn numbers_left(
    conn: &Connection,
    device: DeviceId,
    series: &str,
    now_ms: i64,
) -> rusqlite::Result<u64> {
    let n: i64 = conn
        .prepare_cached(&format!(
            "SELECT coalesce(sum(end_ - next + 1), 0) FROM ({USABLE})"
        ))?
        .query_row(params![device.to_string(), series, now_ms], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// What is left of one block, to release.
fn remainders(
    conn: &Connection,
    device: DeviceId,
    now_ms: i64,
    only_expired: bool,
) -> rusqlite::Result<Vec<FiscalNumbersReleased>> {
    // Active requests only: blocks held before a restore are never released
    // (a lost copy may have used them); head office writes them off.
    let mut stmt = conn.prepare_cached(
        "SELECT b.grant_id, b.series, b.next, min(b.last, coalesce(b.released_from - 1, b.last)), b.expires_ms
         FROM fiscal_blocks b JOIN fiscal_requests r ON r.request_id = b.request_id AND r.state = 'active'
         WHERE b.device_id = ?1 AND b.next <= min(b.last, coalesce(b.released_from - 1, b.last))
         ORDER BY b.series, b.first",
    )?;
    let rows = stmt.query_map([device.to_string()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (grant, series, next, end, expires_ms) = row?;
        let block = Remainder {
            grant,
            series,
            next,
            end,
            expires_ms,
        };
        out.extend(rules::release_of(block, now_ms, only_expired));
    }
    Ok(out)
}

/// The unused numbers to give back: of expired blocks, or of every block
/// when `all`.
pub fn to_release(
    conn: &Connection,
    device: DeviceId,
    now_ms: i64,
    all: bool,
) -> rusqlite::Result<Vec<FiscalNumbersReleased>> {
    remainders(conn, device, now_ms, !all)
}

/// The request id to ask the hub with for more numbers of `series`: the one
/// still unanswered (so a retry after a crash or a timeout asks the same
/// question and gets the same answer), else a new one, recorded first.
pub fn request_for(
    conn: &Connection,
    series: &str,
    count: u64,
    now_ms: i64,
    rng: &mut impl RandomSource,
) -> rusqlite::Result<(RequestId, u64)> {
    let pending: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT r.request_id, r.count FROM fiscal_requests r
             WHERE r.series = ?1 AND r.state = 'active'
               AND NOT EXISTS (SELECT 1 FROM fiscal_blocks b WHERE b.request_id = r.request_id)
             ORDER BY r.made_ms LIMIT 1",
        )?
        .query_row([series], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((id, n)) = pending {
        if let Ok(id) = id.parse() {
            return Ok((id, u64::try_from(n).unwrap_or(count)));
        }
    }
    let id = RequestId::new_v7(now_ms, rng).map_err(|e| {
        rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(e.to_string())))
    })?;
    record_request(conn, id, series, count, now_ms)?;
    Ok((id, count))
}

/// Records a request this database makes (before it is sent), so the block
/// that answers it is usable here.
pub fn record_request(
    conn: &Connection,
    id: RequestId,
    series: &str,
    count: u64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO fiscal_requests (request_id, series, count, made_ms, state) VALUES (?1, ?2, ?3, ?4, 'active')",
        params![id.to_string(), series, i64::try_from(count).unwrap_or(1), now_ms],
    )?;
    Ok(())
}

/// Records the hub's refusal of a request (series exhausted or missing).
pub fn refused(conn: &Connection, request: RequestId, error: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE fiscal_requests SET state = 'refused', error = ?2 WHERE request_id = ?1",
        params![request.to_string(), error],
    )?;
    Ok(())
}

/// When the hub last refused `series`, if it did after its last grant.
pub fn last_refusal(conn: &Connection, series: &str) -> rusqlite::Result<Option<(i64, String)>> {
    conn.prepare_cached(
        "SELECT made_ms, coalesce(error, '') FROM fiscal_requests
         WHERE series = ?1 AND state = 'refused'
           AND made_ms >= coalesce((SELECT max(a.made_ms) FROM fiscal_requests a
               WHERE a.series = ?1 AND a.state = 'active'
                 AND EXISTS (SELECT 1 FROM fiscal_blocks b WHERE b.request_id = a.request_id)), 0)
         ORDER BY made_ms DESC LIMIT 1",
    )?
    .query_row([series], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// After a restore: every request this database made before becomes stale,
/// so the blocks it held are never used again.
pub fn forget_requests_after_restore(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE fiscal_requests SET state = 'stale' WHERE state != 'stale'",
        [],
    )
}

/// The series of `documents` as this register sees them.
pub fn status(
    conn: &Connection,
    device: DeviceId,
    documents: &[String],
    low_water: u64,
    now_ms: i64,
) -> rusqlite::Result<Vec<SeriesLeft>> {
    let mut out = Vec::new();
    for series in documents {
        let (blocks, expiry): (i64, Option<i64>) = conn
            .prepare_cached(&format!("SELECT count(*), min(expires_ms) FROM ({USABLE})"))?
            .query_row(params![device.to_string(), series, now_ms], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let left = numbers_left(conn, device, series, now_ms)?;
        out.push(SeriesLeft {
            series: series.clone(),
            left,
            blocks: u64::try_from(blocks).unwrap_or(0),
            next_expiry_ms: expiry,
            low: left < low_water,
            refused: last_refusal(conn, series)?.map(|(_, e)| e),
        });
    }
    Ok(out)
}
