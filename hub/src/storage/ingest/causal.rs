//! The causal gate over SQL ([`crate::ingest::CausalIndex`] for
//! [`SqlIndex`]): is an event applied, apply it (apply order, then its
//! projection), hold it on what it misses, release what waited for it.
//!
//! Invariant: an event is applied once, after everything it depends on.

use crate::ingest::CausalIndex;
use crate::projection::EventMeta;
use crate::storage::codec::{corrupt, parse};
use crate::storage::db::{params, OptionalExtension, Value};
use crate::storage::error::StorageError;
use crate::storage::ingest::decisions::project;
use crate::storage::ingest::index::SqlIndex;
use caja_shared::ids::EventId;

impl CausalIndex for SqlIndex<'_> {
    type Error = StorageError;

    fn is_applied(&mut self, id: &EventId) -> Result<bool, StorageError> {
        if self.applied.contains(id) || self.tx.recent.contains(id) {
            return Ok(true);
        }
        if self.known.contains_key(id) {
            // Stored by this job (or loaded when applied, then in `applied`).
            return Ok(false);
        }
        // Stored and not held is applied (see the schema).
        let row: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM events WHERE event_id = $1")?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?;
        let Some(row) = row else {
            return Ok(false);
        };
        Ok(!self
            .conn
            .prepare_cached("SELECT 1 FROM held WHERE event_row = $1")?
            .exists([row])?)
    }

    fn apply(&mut self, id: &EventId) -> Result<(), StorageError> {
        self.load(id)?;
        let (row, pushed, origin) = self
            .known
            .remove(id)
            .ok_or_else(|| corrupt("applied event not loaded"))?;
        let env = pushed.event.envelope();
        let next = self.tx.next_applied(self.conn)?;
        let at = self.applied_ms.unwrap_or(self.now);
        if let Some(rows) = self.applied_rows.as_mut() {
            rows.push(vec![
                Value::Int(next),
                Value::Int(row),
                Value::Text(env.store.to_string()),
                Value::Text(env.device.to_string()),
                Value::Int(at),
            ]);
        } else {
            self.conn
                .prepare_cached(
                    "INSERT INTO applied (applied_seq, event_row, store_id, device_id, applied_ms) VALUES ($1, $2, $3, $4, $5)",
                )?
                .execute(params![next, row, env.store.to_string(), env.device.to_string(), at])?;
        }
        if self.held_now.contains(id) || self.was_held.contains(id) {
            self.conn
                .prepare_cached("DELETE FROM held WHERE event_row = $1")?
                .execute([row])?;
        }
        self.applied.insert(*id);
        self.tx.remember_applied(*id);
        self.held_now.remove(id);
        let meta = EventMeta {
            event_id: env.event_id,
            store: env.store,
            device: env.device,
            seq: env.seq.get(),
            hlc: env.hlc,
            origin,
            deps: &env.deps,
        };
        project(self, &meta, &pushed.body, at)
    }

    fn hold(&mut self, id: &EventId, missing: &[EventId]) -> Result<(), StorageError> {
        let row = self
            .known
            .get(id)
            .map(|k| k.0)
            .ok_or_else(|| corrupt("held event not stored"))?;
        self.conn
            .prepare_cached("INSERT INTO held (event_row, held_since_ms) VALUES ($1, $2)")?
            .execute(params![row, self.now])?;
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO held_missing (missing_id, event_row) VALUES ($1, $2)")?;
        for m in missing {
            stmt.execute(params![m.to_string(), row])?;
        }
        self.tx.awaited(self.conn)?.extend(missing.iter().copied());
        self.held_now.insert(*id);
        crate::crashpoint::hit("hub:held");
        Ok(())
    }

    fn unblock(&mut self, applied: &EventId) -> Result<Vec<EventId>, StorageError> {
        if !self.tx.awaited(self.conn)?.remove(applied) {
            return Ok(Vec::new());
        }
        let rows: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT event_row FROM held_missing WHERE missing_id = $1 ORDER BY event_row",
            )?
            .query_map([applied.to_string()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.conn
            .prepare_cached("DELETE FROM held_missing WHERE missing_id = $1")?
            .execute([applied.to_string()])?;
        let mut ready = Vec::new();
        for row in rows {
            let waiting: bool = self
                .conn
                .prepare_cached("SELECT 1 FROM held_missing WHERE event_row = $1 LIMIT 1")?
                .exists([row])?;
            if !waiting {
                let id: String = self
                    .conn
                    .prepare_cached("SELECT event_id FROM events WHERE id = $1")?
                    .query_row([row], |r| r.get(0))?;
                ready.push(parse(&id)?);
            }
        }
        crate::crashpoint::hit("hub:released");
        Ok(ready)
    }
}
