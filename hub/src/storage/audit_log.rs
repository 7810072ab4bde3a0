//! Appending to the audit log: one canonical entry per call, its index the
//! next in the log (gapless, read once per transaction), its leaf added to
//! the Merkle tree ([`super::audit_tree`]) in the same transaction.
//!
//! A push defers its entries ([`defer`]): they get their indexes at once,
//! in call order, and are written together by [`flush`] with multi-row
//! statements, leaves and tree nodes included, before the push's job ends.
//!
//! Kernel: the only writer of `audit_log`; imports no feature module.

use crate::audit::{AuditEntry, AuditKind};
use crate::storage::codec::u;
use crate::storage::db::{params, Conn, Value as Sql};
use crate::storage::error::StorageError;
use crate::storage::multirow;
use crate::storage::tx_cache::{PendingAudit, TxCache};
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
    if let Some(pending) = &mut tx.audit_pending {
        pending.push(PendingAudit {
            index: entry.index,
            row: vec![
                Sql::Int(next),
                Sql::Text(kind.as_str().to_owned()),
                Sql::Int(at_ms),
                store.map_or(Sql::Null, |s| Sql::Text(s.to_string())),
                Sql::Blob(bytes),
            ],
            leaf,
        });
        crate::crashpoint::hit("hub:audit_appended");
        return Ok(entry.index);
    }
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

/// From now on in this transaction, entries wait in `tx` for [`flush`].
pub(crate) fn defer(tx: &mut TxCache) {
    tx.audit_pending.get_or_insert_with(Vec::new);
}

/// Writes the deferred entries (multi-row), their leaves and the subtrees
/// they complete, and stops deferring.
pub(crate) fn flush(conn: &Conn, tx: &mut TxCache) -> Result<(), StorageError> {
    let Some(pending) = tx.audit_pending.take() else {
        return Ok(());
    };
    let Some(first) = pending.first().map(|p| p.index) else {
        return Ok(());
    };
    let leaves: Vec<_> = pending.iter().map(|p| p.leaf).collect();
    let rows = pending
        .into_iter()
        .map(|p| {
            let mut row = p.row;
            row.push(Sql::Text(p.leaf.to_hex()));
            row
        })
        .collect();
    multirow::insert(
        conn,
        "INSERT INTO audit_log (idx, kind, at_ms, store_id, entry, leaf_hash)",
        6,
        "",
        rows,
    )?;
    crate::storage::audit_tree::append_leaves(conn, first, &leaves)
}
