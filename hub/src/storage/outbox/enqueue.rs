//! Queueing fiscal documents in the tax-authority outbox: in the transaction
//! that applies their event ([`enqueue`]) or writes their register off
//! ([`enqueue_write_off`]). `INSERT … ON CONFLICT DO NOTHING` on the unique
//! `doc_key` makes a replay (or a rebuild) a no-op.
//!
//! Invariant: inserts `tax_outbox` rows only; depends on the kernel alone, so
//! the decision pipeline and the fiscal module can queue without the
//! outbox's worker side.

use caja_shared::ids::{DeviceId, StoreId};

use crate::outbox;
use crate::projection::decide::Document;
use crate::storage::codec::i;
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;

/// Queues the fiscal documents an applied event issued (decided by
/// [`crate::projection::decide`]: a sale with an electronic fiscal number, a
/// return's electronic credit note).
pub(crate) fn enqueue(conn: &Conn, documents: &[Document], now: i64) -> Result<(), StorageError> {
    for d in documents {
        let added = conn
            .prepare_cached(
                // An event made before a restore of this hub may have had its
                // document sent by the lost copy: in doubt, so the authority
                // is asked before the first submission (DESIGN "Hub restore").
                "INSERT INTO tax_outbox (doc_key, doc_type, series, store_id, device_id, event_id, created_ms, state, next_attempt_ms, in_doubt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $7,
                     CASE WHEN EXISTS (SELECT 1 FROM restore_epochs r, events e WHERE e.event_id = $6 AND e.hlc_ms < r.restored_at_ms) THEN 1 ELSE 0 END)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                d.number,
                d.doc_type.as_str(),
                d.series,
                d.store.to_string(),
                d.device.to_string(),
                d.event_id.to_string(),
                now
            ])?;
        if added == 0 {
            // The same event again (a rebuild), or a second sale on the
            // number: the `duplicate_fiscal_number` conflict covers it, and
            // the authority only ever gets the first document.
            tracing::debug!(number = %d.number, event = %d.event_id, "fiscal document already queued");
        }
    }
    Ok(())
}

/// Queues the cancellation of a written-off register's outstanding
/// electronic numbers, one document per run.
pub(crate) fn enqueue_write_off(
    conn: &Conn,
    now: i64,
    store: StoreId,
    device: DeviceId,
    reports: &[crate::fiscal::SeriesReport],
) -> Result<usize, StorageError> {
    let mut queued = 0;
    for r in reports {
        if !outbox::is_electronic(&r.series.prefix) {
            continue;
        }
        for run in r.accounting.runs.iter().filter(|x| {
            x.device == Some(device) && x.status == caja_shared::fiscal::NumberStatus::WrittenOff
        }) {
            let first = r.number(run.first);
            let last = r.number(run.last);
            queued += conn
                .prepare_cached(
                    "INSERT INTO tax_outbox (doc_key, doc_type, series, store_id, device_id, event_id, first_number, last_number, created_ms, state, next_attempt_ms)
                     VALUES ($1, 'cancellation', $2, $3, $4, NULL, $5, $6, $7, 'pending', $7) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    outbox::cancellation_key(&first, &last),
                    r.series.prefix,
                    store.to_string(),
                    device.to_string(),
                    i(run.first),
                    i(run.last),
                    now
                ])?;
        }
    }
    Ok(queued)
}
