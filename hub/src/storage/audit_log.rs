//! Appending to the audit log: one canonical entry per call, its index the
//! next in the log (gapless, read once per transaction), its leaf added to
//! the Merkle tree ([`super::audit_tree`]) in the same transaction.
//!
//! Kernel: the only writer of `audit_log`; imports no feature module.

use crate::audit::{AuditEntry, AuditKind};
use crate::storage::codec::u;
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;
use crate::storage::tx_cache::TxCache;
use caja_shared::canonical::Value;
use caja_shared::ids::StoreId;

pub(crate) fn append_audit(
    conn: &Conn,
    tx: &mut TxCache,
    kind: AuditKind,
    at_ms: i64,
    store: Option<StoreId>,
    data: Value,
) -> Result<u64, StorageError> {
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
    crate::storage::audit_tree::append_leaf(conn, entry.index, leaf)?;
    crate::crashpoint::hit("hub:audit_appended");
    Ok(entry.index)
}
