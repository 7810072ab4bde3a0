//! The per-transaction cache of the writer ([`TxCache`]): counters read once
//! per transaction (next audit index, next apply order), recently applied
//! events, and what held events wait for.
//!
//! Kernel: reset at every `BEGIN`, cleared on any rollback, so it never
//! outlives what the database holds.

use crate::storage::codec::parse;
use crate::storage::db::Conn;
use crate::storage::error::StorageError;
use caja_shared::ids::EventId;
use std::collections::HashSet;

/// Counters read once per transaction instead of once per row. The writer
/// resets the cache at every `BEGIN`, so a rolled-back transaction never leaves
/// a stale value.
#[derive(Debug, Default)]
pub(crate) struct TxCache {
    /// Whether other hub instances write the same database (PostgreSQL):
    /// then nothing read from it is kept across transactions (`awaited`),
    /// since another instance may have changed it in between.
    pub(crate) shared: bool,
    /// The next audit index.
    pub(crate) audit_next: Option<i64>,
    /// The next apply order.
    pub(crate) applied_next: Option<i64>,
    /// The end (exclusive) of the block of apply orders this transaction
    /// took (PostgreSQL: `applied_blocks`, see [`TxCache::next_applied`]).
    pub(crate) applied_end: i64,
    /// Audit entries staged by this transaction (PostgreSQL; see
    /// `super::audit_log`): a job that staged waits for the sequencer.
    pub(crate) staged: u64,
    /// Staged rows a deferring push has not written yet (PostgreSQL; written
    /// multi-row by `audit_log::flush`).
    pub(crate) staged_pending: Vec<Vec<crate::storage::db::Value>>,
    /// The locks this transaction holds (PostgreSQL, `super::serial`).
    pub(crate) held: crate::storage::serial::Held,
    /// Recently applied events (kept across transactions, bounded, cleared on
    /// any rollback): most dependencies are recent, so this spares two index
    /// lookups per event.
    pub(crate) recent: HashSet<EventId>,
    /// Insertion order of `recent`, to evict the oldest.
    pub(crate) recent_order: std::collections::VecDeque<EventId>,
    /// Every id some held event waits for (`held_missing.missing_id`), read
    /// once and then kept in step, so applying an event nobody waits for
    /// costs no query.
    pub(crate) awaited: Option<HashSet<EventId>>,
    /// Audit entries a push deferred, written by its end
    /// ([`crate::storage::audit_log::flush`]); `None` when not deferring.
    pub(crate) audit_pending: Option<Vec<PendingAudit>>,
}

/// An audit entry appended while deferred: its index, its row's first five
/// columns and its leaf (written by [`crate::storage::audit_log::flush`]).
#[derive(Debug)]
pub(crate) struct PendingAudit {
    pub(crate) index: u64,
    pub(crate) row: Vec<crate::storage::db::Value>,
    pub(crate) leaf: caja_shared::digest::Hash256,
}

/// Most ids kept in [`TxCache::recent`].
const RECENT_APPLIED_MAX: usize = 65_536;

impl TxCache {
    /// A cache for a database of this dialect (PostgreSQL may be shared by
    /// several hub instances).
    pub(crate) fn new(dialect: crate::storage::db::Dialect) -> TxCache {
        TxCache {
            shared: dialect == crate::storage::db::Dialect::Postgres,
            ..TxCache::default()
        }
    }

    /// At `BEGIN`: counters are read again from the database (under the
    /// writers' lock, so they are exact), and so is what held events wait
    /// for when other instances may have held some since. `recent` stays:
    /// an applied event stays applied whoever applied it.
    pub(crate) fn begin(&mut self) {
        self.audit_next = None;
        self.applied_next = None;
        self.audit_pending = None;
        self.applied_end = 0;
        self.staged = 0;
        self.staged_pending.clear();
        self.held = crate::storage::serial::Held::default();
        if self.shared {
            self.awaited = None;
        }
    }

    /// After a `ROLLBACK`: nothing cached may be trusted.
    pub(crate) fn rolled_back(&mut self) {
        *self = TxCache {
            shared: self.shared,
            ..TxCache::default()
        };
    }

    pub(crate) fn awaited(&mut self, conn: &Conn) -> Result<&mut HashSet<EventId>, StorageError> {
        if self.awaited.is_none() {
            let mut set = HashSet::new();
            let mut stmt = conn.prepare_cached("SELECT DISTINCT missing_id FROM held_missing")?;
            let mut rs = stmt.query([])?;
            while let Some(r) = rs.next()? {
                set.insert(parse(&r.get::<_, String>(0)?)?);
            }
            self.awaited = Some(set);
        }
        Ok(self.awaited.get_or_insert_with(HashSet::new))
    }

    /// The next apply order of this transaction. SQLite: the largest plus
    /// one, read once per transaction (one writer). PostgreSQL: from a block
    /// of 1024 taken with one `nextval` (transactions of different stores
    /// apply at once; a store's blocks are taken under its lock, so its
    /// orders grow in commit order; gaps are allowed).
    pub(crate) fn next_applied(&mut self, conn: &Conn) -> Result<i64, StorageError> {
        if let Some(n) = self.applied_next {
            if !self.shared || n < self.applied_end {
                self.applied_next = Some(n + 1);
                return Ok(n);
            }
        }
        let first: i64 = if self.shared {
            let b: i64 = conn
                .prepare_cached("SELECT nextval('applied_blocks')")?
                .query_row([], |r| r.get(0))?;
            self.applied_end = b + 1024;
            b
        } else {
            conn.prepare_cached("SELECT COALESCE(MAX(applied_seq), 0) + 1 FROM applied")?
                .query_row([], |r| r.get(0))?
        };
        self.applied_next = Some(first + 1);
        Ok(first)
    }

    pub(crate) fn remember_applied(&mut self, id: EventId) {
        if self.recent.insert(id) {
            self.recent_order.push_back(id);
            if self.recent_order.len() > RECENT_APPLIED_MAX {
                if let Some(old) = self.recent_order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
    }
}
