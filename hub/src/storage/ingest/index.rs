//! [`SqlIndex`]: the causal gate's state for one writer job (events stored
//! or loaded and not yet applied, events applied, held, and the conflicts
//! found), over the `events`, `applied` and `held` tables.
//!
//! Invariant: holds state only; the gate's operations are in
//! [`super::causal`].

use crate::ingest::PushedEvent;
use crate::projection::{Conflict, Fact, Origin};
use crate::storage::codec::corrupt;
use crate::storage::db::{Conn, Value};
use crate::storage::error::StorageError;
use crate::storage::ingest::read_ahead::ReadAhead;
use crate::storage::multirow;
use crate::storage::tx_cache::TxCache;
use caja_shared::event::Event;
use caja_shared::ids::EventId;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// The causal gate's state in SQLite, for one job.
pub(crate) struct SqlIndex<'c> {
    pub(crate) conn: &'c Conn,
    pub(crate) now: i64,
    /// Per-transaction counters.
    pub(crate) tx: &'c mut TxCache,
    /// Events this job stored or loaded and has not applied yet: row, the
    /// event (borrowed from the push when it came in it), origin.
    pub(crate) known: HashMap<EventId, (i64, Cow<'c, PushedEvent>, Origin)>,
    /// Events applied by this job.
    pub(crate) applied: HashSet<EventId>,
    /// Events of this job held when it ends.
    pub(crate) held_now: HashSet<EventId>,
    /// Conflicts found while applying, with the event that triggered them.
    pub(crate) conflicts: Vec<(EventId, Conflict)>,
    /// Whether to write audit entries for new conflicts (not in a rebuild).
    pub(crate) audit: bool,
    /// Rebuild mode: `now` is the original apply time of each event.
    pub(crate) applied_ms: Option<i64>,
    /// Events loaded from the database because they were held.
    pub(crate) was_held: HashSet<EventId>,
    /// When a push batches: the `applied` rows waiting for
    /// [`SqlIndex::flush`] (nothing in a push reads `applied`); `None`
    /// writes each row at once.
    pub(crate) applied_rows: Option<Vec<Vec<Value>>>,
    /// A push: every event this job applies is applied for the first time
    /// (its id was new to the hub, or it was held), so no conflict naming
    /// its own sale can be stored yet.
    pub(crate) fresh: bool,
    /// Price history read by this job, per (store, product): sales of a
    /// push mostly sell the same products; a price fact written by the job
    /// drops its entry.
    pub(crate) prices: HashMap<(String, String), Vec<Fact>>,
    /// A push: its fiscal-number and returns look-ups, read ahead.
    pub(crate) ahead: Option<ReadAhead>,
}

impl<'c> SqlIndex<'c> {
    pub(crate) fn new(conn: &'c Conn, now: i64, tx: &'c mut TxCache) -> SqlIndex<'c> {
        SqlIndex {
            conn,
            now,
            tx,
            known: HashMap::new(),
            applied: HashSet::new(),
            held_now: HashSet::new(),
            conflicts: Vec::new(),
            audit: true,
            applied_ms: None,
            was_held: HashSet::new(),
            applied_rows: None,
            fresh: false,
            prices: HashMap::new(),
            ahead: None,
        }
    }

    /// Writes the `applied` rows batched so far (multi-row).
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        if let Some(rows) = self.applied_rows.as_mut() {
            let rows = std::mem::take(rows);
            multirow::insert(
                self.conn,
                "INSERT INTO applied (applied_seq, event_row, store_id, device_id, applied_ms)",
                5,
                "",
                rows,
            )?;
        }
        Ok(())
    }

    pub(crate) fn load(&mut self, id: &EventId) -> Result<(), StorageError> {
        if self.known.contains_key(id) {
            return Ok(());
        }
        let (row, bytes, device): (i64, Vec<u8>, String) = self
            .conn
            .prepare_cached("SELECT id, bytes, device_id FROM events WHERE event_id = $1")?
            .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let event = Event::from_json(&bytes).map_err(corrupt)?;
        let body = event.body().map_err(corrupt)?;
        let origin = origin_of(self.conn, &device)?;
        self.known
            .insert(*id, (row, Cow::Owned(PushedEvent { event, body }), origin));
        self.was_held.insert(*id);
        Ok(())
    }
}

pub(crate) fn origin_of(conn: &Conn, device: &str) -> Result<Origin, StorageError> {
    let hub: bool = conn
        .prepare_cached("SELECT 1 FROM stores WHERE hub_device = $1 LIMIT 1")?
        .exists([device])?;
    Ok(if hub { Origin::Hub } else { Origin::Register })
}
