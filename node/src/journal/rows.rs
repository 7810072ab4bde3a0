//! SQL plumbing shared by the journal's files: reading non-negative integer
//! columns, storing a `u64` as SQLite's `i64`, and one read snapshot for a
//! group of queries.
//!
//! Invariant: no table knowledge here — these helpers name no table and make
//! no decision about the chain.

use rusqlite::Connection;

use super::error::JournalError;

/// Reads a non-negative integer column (seqs and counts are stored as SQLite's
/// signed 64-bit integers).
pub(super) fn get_u64(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

pub(super) fn get_opt_u64(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(i)?;
    v.map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v)))
        .transpose()
}

pub(super) fn to_i64(value: u64, what: &'static str) -> Result<i64, JournalError> {
    i64::try_from(value).map_err(|_| JournalError::OutOfRange { what, value })
}

/// Runs `f` inside a savepoint: one read snapshot for all its queries, whether
/// or not the caller is already in a transaction.
pub(super) fn in_read_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    conn.execute_batch("SAVEPOINT caja_read")?;
    let result = f();
    let released = conn.execute_batch("RELEASE caja_read");
    let value = result?;
    released?;
    Ok(value)
}
