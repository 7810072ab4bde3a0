//! The statement helper the projection appliers share.
//!
//! Invariant: no table knowledge and no decision here.

use rusqlite::Connection;

/// Runs a statement through the connection's statement cache: projection
/// updates run on every sale, and re-parsing their SQL each time is measurable.
pub(super) fn exec(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(p)
}
