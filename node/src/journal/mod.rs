//! The register's journal: its own events, append-only and hash-chained, with
//! checkpoints, in the node database.
//!
//! Writes take a [`rusqlite::Transaction`] from the caller, so that a sale, its
//! fiscal number, its projection rows and its client operation id commit in one
//! transaction with its event — or not at all. Reads take a [`Connection`] (a
//! transaction derefs to one) and run inside a read snapshot, so a verification
//! sees one consistent journal while the register keeps selling.
//!
//! What protects history, from the cheapest check to the strongest:
//! - SQL triggers (migration 0001) abort UPDATE and DELETE of journal and
//!   checkpoint rows, and an INSERT that is not the next seq or does not name the
//!   last hash as `prev`;
//! - [`Journal::append`] checks `seq == last + 1` and `prev == last hash` in code;
//! - [`Journal::startup_check`] (run by [`Journal::open`]) finds a deleted row
//!   anywhere, verifies the last checkpoint's MAC and its hash against the journal,
//!   and re-hashes every event after it;
//! - [`Journal::verify`] re-hashes the whole chain and checks every checkpoint.
//!
//! A broken chain is a [`Break`]: the first bad seq and why.
//!
//! The files, each below the ones it uses: `error` (the error and [`Break`]
//! types), `rows` (column helpers and the read snapshot), `device` (the device
//! row and client operation records), `chain` (the `journal` table: head,
//! insert, reads, the hub's acknowledged seq), `checkpoint`, `scan` (pure
//! envelope field readers), `verify`, `export`; this file holds the [`Journal`]
//! type, its write path and the public surface.

mod append;
mod chain;
mod checkpoint;
mod device;
mod error;
mod export;
mod rehash;
mod rows;
mod scan;
mod verify;

#[cfg(test)]
mod tests;

use std::io::Write;

use rusqlite::{Connection, Transaction};

use caja_shared::chain::ChainHead;
use caja_shared::checkpoint::Checkpoint;
use caja_shared::event::Event;
use caja_shared::hlc::{Hlc, HlcState};
use caja_shared::key::DeviceKey;

pub use chain::MAX_EVENTS_PER_READ;
pub use checkpoint::{CheckpointReason, StoredCheckpoint, CHECKPOINT_EVERY};
pub use device::{
    find_op, insert_device, load_device, record_op, restored_from_backup, set_key_id,
    set_restored_from_backup, DeviceRecord, OpRecord,
};
pub use error::{Break, BreakReason, JournalError};
pub use verify::{StartupReport, PROGRESS_EVERY};

/// The device's journal writer: its identity, its key and its hybrid logical
/// clock. Obtain one with [`Journal::open`], which refuses a broken journal.
#[derive(Debug)]
pub struct Journal {
    device: DeviceRecord,
    key: DeviceKey,
    hlc: HlcState,
    startup: StartupReport,
}

impl Journal {
    /// Opens the journal for writing: loads the device row, runs
    /// [`Journal::startup_check`] (a broken chain is an error naming its first
    /// bad seq: the node must refuse to sell) and restores the HLC from the last
    /// event, so every new stamp is greater than every stamp in the journal.
    pub fn open(
        conn: &Connection,
        key: DeviceKey,
        max_drift_ms: i64,
    ) -> Result<Journal, JournalError> {
        let device = load_device(conn)?.ok_or(JournalError::NotInitialized)?;
        let startup = Journal::startup_check(conn, &key)?;
        let last = Journal::last_hlc(conn)?.unwrap_or(Hlc::ZERO);
        let hlc = HlcState::restore(last, max_drift_ms)?;
        Ok(Journal {
            device,
            key,
            hlc,
            startup,
        })
    }

    /// The device row read at open.
    pub fn device(&self) -> &DeviceRecord {
        &self.device
    }

    /// What the start-up check verified.
    pub fn startup(&self) -> StartupReport {
        self.startup
    }

    /// The device's clock.
    pub fn hlc(&self) -> &HlcState {
        &self.hlc
    }

    /// Merges a remote timestamp into the device's clock (sync), so the next
    /// local event is stamped after it.
    pub fn observe(&mut self, remote: Hlc, now_ms: i64) -> Result<Hlc, JournalError> {
        Ok(self.hlc.observe(remote, now_ms)?)
    }

    /// The head of the journal: last seq and its hash (genesis when empty).
    pub fn head(conn: &Connection) -> Result<ChainHead, JournalError> {
        chain::head(conn)
    }

    /// The HLC of the last event, read from its bytes (not from the index
    /// columns); `None` when empty. Lenient about the rest of the envelope, so
    /// an event of a kind this version does not know cannot stop the clock.
    pub fn last_hlc(conn: &Connection) -> Result<Option<Hlc>, JournalError> {
        chain::last_hlc(conn)
    }

    /// Writes a checkpoint of the current head with the device key (at shift
    /// close, with a push, after a key rotation). If one with the same key
    /// already covers the head, returns it unchanged.
    pub fn write_checkpoint(
        &self,
        tx: &Transaction<'_>,
        reason: CheckpointReason,
        now_ms: i64,
    ) -> Result<StoredCheckpoint, JournalError> {
        checkpoint::write(tx, &self.key, &self.device, reason, now_ms)
    }

    /// The newest checkpoint (any key), if any.
    pub fn latest_checkpoint(conn: &Connection) -> Result<Option<StoredCheckpoint>, JournalError> {
        checkpoint::latest(conn)
    }

    /// The event at `seq`, if any.
    pub fn event(conn: &Connection, seq: u64) -> Result<Option<Event>, JournalError> {
        chain::event(conn, seq)
    }

    /// Up to `limit` (at most [`MAX_EVENTS_PER_READ`]) events after `after_seq`,
    /// in seq order: what a push sends.
    pub fn events_after(
        conn: &Connection,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, JournalError> {
        chain::events_after(conn, after_seq, limit)
    }

    /// Verifies the journal in seq order, streaming (constant memory), and
    /// returns its head.
    ///
    /// With `from = None` the whole chain is re-hashed from the first event;
    /// with a checkpoint, its MAC and its hash against the journal's event at its
    /// seq are checked and only the events after it are re-hashed. Then every
    /// checkpoint after the starting point is checked against the journal (and
    /// its MAC, when made with the current key), and the hub's acknowledged seq
    /// must not lie beyond the head.
    ///
    /// For each event, as in DESIGN.md: seq = previous + 1, `prev` = previous
    /// hash, SHA-256 of the stored bytes = stored hash; then the index columns
    /// must agree with the bytes. `progress(done, total)` is called at the start,
    /// every [`PROGRESS_EVERY`] events and at the end.
    pub fn verify(
        conn: &Connection,
        key: &DeviceKey,
        from: Option<&Checkpoint>,
        progress: impl FnMut(u64, u64),
    ) -> Result<ChainHead, JournalError> {
        verify::verify(conn, key, from, progress, verify::PARALLEL_FROM)
    }

    /// [`Journal::verify`] with every check on the calling thread, as it ran
    /// before the checks moved to a second thread: the same result, for
    /// benchmarks to compare the two in one run.
    #[doc(hidden)]
    pub fn verify_on_one_thread(
        conn: &Connection,
        key: &DeviceKey,
        from: Option<&Checkpoint>,
        progress: impl FnMut(u64, u64),
    ) -> Result<ChainHead, JournalError> {
        verify::verify(conn, key, from, progress, u64::MAX)
    }

    /// The start-up recovery check (run by [`Journal::open`]): the journal has
    /// no missing seq anywhere; the newest checkpoint made with the current key
    /// verifies (MAC, and its hash equals the journal's event at its seq); every
    /// event after it verifies as in [`Journal::verify`]; and the hub has not
    /// acknowledged more than the journal holds. Without a checkpoint, the whole
    /// chain is re-hashed.
    ///
    /// It costs the events since the last checkpoint (fewer than
    /// [`CHECKPOINT_EVERY`] between pushes and shift closes) plus one index scan.
    /// An event edited *before* the last checkpoint is found by the full
    /// [`Journal::verify`] (and by the hub, which holds those events), not here.
    pub fn startup_check(
        conn: &Connection,
        key: &DeviceKey,
    ) -> Result<StartupReport, JournalError> {
        verify::startup_check(conn, key)
    }

    /// Writes every event's canonical bytes, one per line in seq order, to
    /// `out` (JSON Lines; canonical JSON contains no raw newline). Streams in
    /// constant memory from one read snapshot; returns how many were written.
    pub fn export_jsonl(conn: &Connection, out: impl Write) -> Result<u64, JournalError> {
        export::export_jsonl(conn, out)
    }

    /// The highest seq the hub has durably acknowledged (0 before the first push).
    pub fn acked_seq(conn: &Connection) -> Result<u64, JournalError> {
        chain::acked_seq(conn)
    }

    /// Records the hub's `acked_seq`. It never moves backwards and never beyond
    /// the journal's head.
    pub fn set_acked_seq(
        tx: &Transaction<'_>,
        acked_seq: u64,
        now_ms: i64,
    ) -> Result<(), JournalError> {
        chain::set_acked_seq(tx, acked_seq, now_ms)
    }

    /// Events not yet acknowledged by the hub.
    pub fn unsynced(conn: &Connection) -> Result<u64, JournalError> {
        chain::unsynced(conn)
    }
}
