//! `caja-hub rebuild`: the projections and conflicts rebuilt from the
//! applied events, in apply order, in one transaction.
//!
//! Invariant: the result equals what live ingest wrote (same digest).

use crate::projection::{EventMeta, Origin};
use crate::storage::codec::corrupt;
use crate::storage::db::{Conn, DbError};
use crate::storage::error::StorageError;
use crate::storage::facts::registry;
use crate::storage::ingest::decisions::project;
use crate::storage::ingest::index::SqlIndex;
use crate::storage::tx_cache::TxCache;
use caja_shared::event::Event;
use std::collections::HashSet;

/// Rebuilds the projections and conflicts from the applied events, in apply
/// order, in one transaction. Returns the number of events applied.
pub fn rebuild(conn: &Conn) -> Result<u64, StorageError> {
    conn.write_tx(|tx| {
        tx.execute_batch("DELETE FROM conflict_events; DELETE FROM conflicts;")?;
        registry::clear(tx)?;
        let hub_devices: HashSet<String> = tx
            .prepare("SELECT hub_device FROM stores")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, DbError>>()?;
        let mut count = 0u64;
        let mut cache = TxCache::new(tx.dialect());
        let mut index = SqlIndex::new(tx, 0, &mut cache);
        index.audit = false;
        tx.for_each(
            "SELECT e.bytes, e.device_id, a.applied_ms FROM applied a JOIN events e ON e.id = a.event_row ORDER BY a.applied_seq",
            [],
            |r| -> Result<(), StorageError> {
                let bytes: Vec<u8> = r.get(0)?;
                let device: String = r.get(1)?;
                let applied_ms: i64 = r.get(2)?;
                let event = Event::from_json(&bytes).map_err(corrupt)?;
                let body = event.body().map_err(corrupt)?;
                let env = event.envelope();
                let meta = EventMeta {
                    event_id: env.event_id,
                    store: env.store,
                    device: env.device,
                    seq: env.seq.get(),
                    hlc: env.hlc,
                    origin: if hub_devices.contains(&device) {
                        Origin::Hub
                    } else {
                        Origin::Register
                    },
                    deps: &env.deps,
                };
                project(&mut index, &meta, &body, applied_ms)?;
                index.conflicts.clear();
                count += 1;
                Ok(())
            },
        )?;
        // Rejected fiscal documents are not events the projection sees.
        crate::storage::outbox::restore_conflicts(tx)?;
        Ok(count)
    })
}
