//! Export: every event's canonical bytes as JSON Lines, in seq order.
//!
//! Invariant: read-only and streaming — one read snapshot, constant memory, the
//! stored bytes written unchanged.

use std::io::{BufWriter, Write};

use rusqlite::Connection;

use super::error::JournalError;
use super::rows::in_read_snapshot;

/// Writes every event, one per line; see `Journal::export_jsonl`.
pub(super) fn export_jsonl(conn: &Connection, out: impl Write) -> Result<u64, JournalError> {
    let mut out = BufWriter::new(out);
    let n = in_read_snapshot(conn, || {
        let mut stmt = conn.prepare("SELECT bytes FROM journal ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut n = 0u64;
        while let Some(row) = rows.next()? {
            let bytes = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            out.write_all(bytes)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        Ok(n)
    })?;
    out.flush()?;
    Ok(n)
}
