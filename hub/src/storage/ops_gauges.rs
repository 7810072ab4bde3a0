//! Reads for the operator's gauges of `/metrics` that the health report does
//! not carry: the audit log's size, the time of its latest signed head and
//! the backlog of entries staged for the sequencer.
//!
//! Feature module: SELECTs only, on a read connection; decides nothing.

use crate::storage::audit_tree::{latest_sth, tree_size};
use crate::storage::error::StorageError;
use crate::storage::Storage;

/// The audit log as `/metrics` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditGauges {
    /// Entries in the audit log (leaves of its Merkle tree).
    pub entries: u64,
    /// When the latest signed tree head was signed (Unix ms), if any.
    pub signed_head_at_ms: Option<i64>,
    /// Entries the latest signed head covers (0 when none).
    pub signed_head_size: u64,
    /// Entries staged and not yet sequenced into the log (PostgreSQL; always
    /// 0 on SQLite, which appends directly).
    pub staged: u64,
    /// When the oldest staged entry was staged (its `at_ms`), if any.
    pub staged_oldest_at_ms: Option<i64>,
}

impl Storage {
    /// The audit log's size and its latest signed head, for `/metrics`.
    pub async fn audit_gauges(&self) -> Result<AuditGauges, StorageError> {
        self.read(|conn| {
            let entries = tree_size(conn)?;
            let sth = latest_sth(conn)?;
            let (staged, staged_oldest_at_ms): (i64, Option<i64>) = conn
                .prepare_cached("SELECT COUNT(*), MIN(at_ms) FROM audit_staged")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(AuditGauges {
                entries,
                signed_head_at_ms: sth.as_ref().map(|s| s.at_ms),
                signed_head_size: sth.map_or(0, |s| s.tree_size),
                staged: u64::try_from(staged).unwrap_or(0),
                staged_oldest_at_ms,
            })
        })
        .await
    }
}
