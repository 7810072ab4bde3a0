//! Appending to the audit log, and the audit sequencer.
//!
//! On SQLite (one writer) an entry is appended directly: its index the next
//! in the log (gapless, read once per transaction), its leaf added to the
//! Merkle tree ([`super::audit_tree`]) in the same transaction.
//!
//! On PostgreSQL, where instances write at once under finer locks
//! ([`super::serial`]), the transaction *stages* the entry (`audit_staged`:
//! kind, time, store, canonical `data`; no index yet) and commits with it; the
//! **sequencer** moves staged entries into `audit_log` and the tree, in
//! staging order, under one lock ([`super::serial::SEQUENCER_LOCK`]), so the
//! log keeps one gapless order and one tree — as an RFC 9162 log integrates
//! submitted entries within its maximum merge delay. Each instance runs a
//! sequencer thread ([`Sequencer`]): a round after every write job that staged
//! entries (the job is answered once a round that began after its commit
//! ends, so an answered write's entries are in the tree) and every
//! [`SEQUENCER_TICK_MS`] otherwise (entries of an instance that died between
//! commit and answer). Bound: an entry is in the tree within
//! [`SEQUENCE_DELAY_MS`] of its `at_ms` while any instance runs; each round is
//! recorded in `audit_rounds` with the age of its oldest entry.
//!
//! A push defers its entries ([`defer`]): they get their indexes at once,
//! in call order, and are written together by [`flush`] with multi-row
//! statements, leaves and tree nodes included, before the push's job ends.
//!
//! Kernel: the only writer of `audit_log`; imports no feature module.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::audit::{entry_bytes, AuditKind};
use crate::storage::codec::{parse, u};
use crate::storage::connect::open;
use crate::storage::db::{params, Conn, Database, Dialect, Value as Sql, SEQUENCER_LOCK};
use crate::storage::error::StorageError;
use crate::storage::multirow;
use crate::storage::tx_cache::{PendingAudit, TxCache};
use caja_shared::canonical::Value;
use caja_shared::clock::Clock;
use caja_shared::ids::StoreId;

/// How often an idle sequencer looks for staged entries.
pub const SEQUENCER_TICK_MS: u64 = 200;
/// The documented bound: an entry staged at `at_ms` is in the tree by
/// `at_ms + SEQUENCE_DELAY_MS` while any instance runs (its transaction's
/// time, one tick and one round, with room for a loaded machine).
pub const SEQUENCE_DELAY_MS: i64 = 5_000;
/// A staged entry: id, kind, `at_ms`, store, canonical `data`.
type Staged = (i64, String, i64, Option<String>, Vec<u8>);

/// Staged entries moved per statement by a round.
const ROUND_CHUNK: i64 = 2_000;

pub(crate) fn append_audit(
    conn: &Conn,
    tx: &mut TxCache,
    kind: AuditKind,
    at_ms: i64,
    store: Option<StoreId>,
    data: Value,
) -> Result<(), StorageError> {
    if tx.shared && tx.audit_pending.is_some() {
        // A deferring push: staged multi-row by `flush`, like SQLite's entries.
        tx.staged_pending.push(vec![
            Sql::Text(kind.as_str().to_owned()),
            Sql::Int(at_ms),
            store.map_or(Sql::Null, |s| Sql::Text(s.to_string())),
            Sql::Blob(data.to_canonical_bytes()),
        ]);
        tx.staged += 1;
        crate::crashpoint::hit("hub:audit_appended");
        return Ok(());
    }
    if tx.shared {
        conn.prepare_cached(
            "INSERT INTO audit_staged (kind, at_ms, store_id, data) VALUES ($1, $2, $3, $4)",
        )?
        .execute(params![
            kind.as_str(),
            at_ms,
            store.map(|s| s.to_string()),
            data.to_canonical_bytes()
        ])?;
        tx.staged += 1;
        crate::crashpoint::hit("hub:audit_appended");
        return Ok(());
    }
    append_entry(
        conn,
        tx,
        kind.as_str(),
        at_ms,
        store,
        &data.to_canonical_bytes(),
    )?;
    crate::crashpoint::hit("hub:audit_appended");
    Ok(())
}

/// Appends one entry to `audit_log` and its leaf to the tree.
fn append_entry(
    conn: &Conn,
    tx: &mut TxCache,
    kind: &str,
    at_ms: i64,
    store: Option<StoreId>,
    data: &[u8],
) -> Result<u64, StorageError> {
    let next: i64 = match tx.audit_next {
        Some(n) => n,
        None => conn
            .prepare_cached("SELECT COALESCE(MAX(idx), -1) + 1 FROM audit_log")?
            .query_row([], |r| r.get(0))?,
    };
    tx.audit_next = Some(next + 1);
    let index = u(next);
    let bytes = entry_bytes(index, kind, at_ms, store, data);
    let leaf = caja_shared::merkle::leaf_hash(&bytes);
    if let Some(pending) = &mut tx.audit_pending {
        pending.push(PendingAudit {
            index,
            row: vec![
                Sql::Int(next),
                Sql::Text(kind.to_owned()),
                Sql::Int(at_ms),
                store.map_or(Sql::Null, |s| Sql::Text(s.to_string())),
                Sql::Blob(bytes),
            ],
            leaf,
        });
        return Ok(index);
    }
    conn.prepare_cached(
        "INSERT INTO audit_log (idx, kind, at_ms, store_id, entry, leaf_hash) VALUES ($1, $2, $3, $4, $5, $6)",
    )?
    .execute(params![
        next,
        kind,
        at_ms,
        store.map(|s| s.to_string()),
        bytes,
        leaf.to_hex()
    ])?;
    // The Merkle tree over the log grows in the same transaction.
    crate::storage::audit_tree::append_leaf(conn, index, leaf)?;
    Ok(index)
}

/// One sequencer round's work, in a transaction holding the sequencer's
/// lock ([`Conn::begin_write`] takes it too): every staged entry, oldest
/// first, moved into the log and the tree; the round recorded. Returns how
/// many entries moved. Nothing to do on SQLite.
pub(crate) fn integrate_staged(conn: &Conn, now_ms: i64) -> Result<usize, StorageError> {
    if conn.dialect() == Dialect::Sqlite {
        return Ok(0);
    }
    let mut tx = TxCache::default();
    // A round's entries are written together, multi-row, like a push's.
    defer(&mut tx);
    let (mut moved, mut first, mut oldest) = (0usize, None, i64::MAX);
    loop {
        let mut rows: Vec<Staged> = conn
            .prepare_cached(
                "DELETE FROM audit_staged WHERE staged_id IN
                   (SELECT staged_id FROM audit_staged ORDER BY staged_id LIMIT $1)
                 RETURNING staged_id, kind, at_ms, store_id, data",
            )?
            .query_map([ROUND_CHUNK], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            break;
        }
        rows.sort_by_key(|r| r.0);
        for (_, kind, at_ms, store, data) in &rows {
            let store = store.as_deref().map(parse).transpose()?;
            let index = append_entry(conn, &mut tx, kind, *at_ms, store, data)?;
            first.get_or_insert(index);
            oldest = oldest.min(*at_ms);
        }
        moved += rows.len();
        if i64::try_from(rows.len()).unwrap_or(i64::MAX) < ROUND_CHUNK {
            break;
        }
    }
    flush(conn, &mut tx)?;
    if let Some(first) = first {
        conn.prepare_cached(
            "INSERT INTO audit_rounds (first_idx, entries, oldest_at_ms, sequenced_ms) VALUES ($1, $2, $3, $4)",
        )?
        .execute(params![
            crate::storage::codec::i(first),
            i64::try_from(moved).unwrap_or(i64::MAX),
            oldest,
            now_ms
        ])?;
        let delay = now_ms.saturating_sub(oldest);
        if delay > SEQUENCE_DELAY_MS {
            tracing::warn!(
                delay_ms = delay,
                bound_ms = SEQUENCE_DELAY_MS,
                "an audit entry waited longer than the sequencing bound"
            );
        }
    }
    Ok(moved)
}

/// One round in a transaction of its own: waits for the sequencer's lock
/// (another instance's round ends first), then moves what is staged.
fn round(conn: &Conn, clock: &dyn Clock) -> Result<usize, StorageError> {
    let (ns, key) = SEQUENCER_LOCK;
    conn.begin_unlocked()?;
    let ran = conn
        .execute_batch(&format!("SELECT pg_advisory_xact_lock({ns}, {key})"))
        .map_err(StorageError::from)
        .and_then(|()| integrate_staged(conn, clock.now_ms()));
    match ran {
        Ok(n) => {
            conn.commit()?;
            Ok(n)
        }
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}

/// What the writer side and the sequencer thread share.
#[derive(Debug)]
struct Shared {
    /// Rounds asked for (a round that begins after the ask covers it).
    requested: AtomicU64,
    wake: Mutex<()>,
    bell: Condvar,
    stop: AtomicBool,
    /// The last round completed.
    completed: tokio::sync::watch::Sender<u64>,
}

/// The handle of an instance's sequencer thread (PostgreSQL only).
#[derive(Debug)]
pub(crate) struct Sequencer {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Sequencer {
    /// Starts the thread on its own connection to `database`.
    pub(crate) fn start(
        database: Database,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<Sequencer, StorageError> {
        let conn = open(&database)?;
        let (completed, _) = tokio::sync::watch::channel(0u64);
        let shared = Arc::new(Shared {
            requested: AtomicU64::new(0),
            wake: Mutex::new(()),
            bell: Condvar::new(),
            stop: AtomicBool::new(false),
            completed,
        });
        let weak = Arc::downgrade(&shared);
        let thread = std::thread::Builder::new()
            .name("caja-hub-audit-sequencer".into())
            .spawn(move || sequencer_loop(conn, database, clock, weak))
            .map_err(|e| StorageError::Task(e.to_string()))?;
        Ok(Sequencer {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Asks for a round and waits (at most [`SEQUENCE_DELAY_MS`]) until one
    /// that began after this call has ended: the caller's committed entries
    /// are then in the tree, integrated by this instance or another.
    pub(crate) async fn sequenced(&self) {
        let mut rx = self.shared.completed.subscribe();
        let target = self.shared.requested.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let _g = self.shared.wake.lock();
            self.shared.bell.notify_one();
        }
        let wait = rx.wait_for(|done| *done >= target);
        let bound = Duration::from_millis(u64::try_from(SEQUENCE_DELAY_MS).unwrap_or(0));
        if tokio::time::timeout(bound, wait).await.is_err() {
            tracing::warn!("the audit sequencer did not finish a round in time; answering anyway (the entries are staged and will be integrated)");
        }
    }

    /// Stops the thread after its current round.
    pub(crate) fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.wake.lock();
            self.shared.bell.notify_all();
        }
        let handle = self.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

fn sequencer_loop(
    mut conn: Conn,
    database: Database,
    clock: Arc<dyn Clock + Send + Sync>,
    weak: Weak<Shared>,
) {
    let mut done = 0u64;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        {
            let guard = shared.wake.lock().unwrap_or_else(|p| p.into_inner());
            if shared.requested.load(Ordering::SeqCst) <= done {
                let _ = shared
                    .bell
                    .wait_timeout(guard, Duration::from_millis(SEQUENCER_TICK_MS));
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let target = shared.requested.load(Ordering::SeqCst);
        if conn.is_broken() {
            match open(&database) {
                Ok(c) => conn = c,
                Err(e) => {
                    tracing::error!(error = %e, "the audit sequencer cannot reconnect");
                    drop(shared);
                    std::thread::sleep(Duration::from_millis(SEQUENCER_TICK_MS));
                    continue;
                }
            }
        }
        match round(&conn, clock.as_ref()) {
            Ok(_) => {
                done = done.max(target);
                shared.completed.send_replace(done);
            }
            Err(e) => {
                tracing::error!(error = %e, "an audit sequencer round failed; retrying");
                drop(shared);
                std::thread::sleep(Duration::from_millis(SEQUENCER_TICK_MS));
            }
        }
    }
}

/// From now on in this transaction, entries wait in `tx` for [`flush`].
pub(crate) fn defer(tx: &mut TxCache) {
    tx.audit_pending.get_or_insert_with(Vec::new);
}

/// Writes the deferred entries (multi-row), their leaves and the subtrees
/// they complete, and stops deferring.
pub(crate) fn flush(conn: &Conn, tx: &mut TxCache) -> Result<(), StorageError> {
    let staged = std::mem::take(&mut tx.staged_pending);
    if !staged.is_empty() {
        multirow::insert(
            conn,
            "INSERT INTO audit_staged (kind, at_ms, store_id, data)",
            4,
            "",
            staged,
        )?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends entries `idx` in one multi-row statement of its own
    /// transaction: whether the database took them.
    fn appended(conn: &Conn, idx: &[i64]) -> bool {
        conn.begin_unlocked().unwrap();
        let rows = idx
            .iter()
            .map(|i| {
                vec![
                    Sql::Int(*i),
                    Sql::Text("test".into()),
                    Sql::Int(0),
                    Sql::Null,
                    Sql::Blob(vec![1]),
                    Sql::Text("0".repeat(64)),
                ]
            })
            .collect();
        let head = "INSERT INTO audit_log (idx, kind, at_ms, store_id, entry, leaf_hash)";
        let ok = multirow::insert(conn, head, 6, "", rows).is_ok();
        if ok {
            conn.commit().unwrap();
        } else {
            conn.rollback().unwrap();
        }
        ok
    }

    fn the_log_stays_gapless(conn: &Conn) {
        crate::storage::migrate::migrate(conn).unwrap();
        assert!(!appended(conn, &[1]), "the log starts at 0");
        assert!(appended(conn, &[0, 1, 2]));
        assert!(!appended(conn, &[4]), "a gap");
        assert!(!appended(conn, &[3, 5]), "a gap inside the statement");
        assert!(!appended(conn, &[2]), "an index taken");
        assert!(appended(conn, &[3]));
        assert!(appended(conn, &[4, 5, 6, 7]));
        assert!(!appended(conn, &[9, 10]), "a gap before the statement");
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 8);
    }

    #[test]
    fn multi_row_appends_keep_the_log_gapless_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::storage::connect::open_connection(&dir.path().join("x.db")).unwrap();
        the_log_stays_gapless(&conn);
    }

    #[test]
    fn multi_row_appends_keep_the_log_gapless_on_postgres() {
        let Some(url) = crate::testpg::fresh_database() else {
            return;
        };
        the_log_stays_gapless(&Conn::connect_postgres(&url).unwrap());
    }
}
