//! Reads for the operator's gauges of `/metrics` that the health report does
//! not carry: the audit log's size and the time of its latest signed head.
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
}

impl Storage {
    /// The audit log's size and its latest signed head, for `/metrics`.
    pub async fn audit_gauges(&self) -> Result<AuditGauges, StorageError> {
        self.read(|conn| {
            let entries = tree_size(conn)?;
            let sth = latest_sth(conn)?;
            Ok(AuditGauges {
                entries,
                signed_head_at_ms: sth.as_ref().map(|s| s.at_ms),
                signed_head_size: sth.map_or(0, |s| s.tree_size),
            })
        })
        .await
    }
}
