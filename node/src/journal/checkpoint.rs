//! Checkpoints: the device-key MAC over a seq and its hash, written every
//! [`CHECKPOINT_EVERY`] events, at shift close, with a push and after a key
//! rotation, and read back for verification and the hub.
//!
//! Invariant: a checkpoint covers the current head and is written at most once
//! per head and key (an existing one is returned unchanged); rows are only
//! inserted, never changed.

use rusqlite::{params, Connection, Transaction};

use caja_shared::checkpoint::Checkpoint;
use caja_shared::ids::Seq;
use caja_shared::key::DeviceKey;

use super::chain;
use super::device::DeviceRecord;
use super::error::JournalError;
use super::rows::{get_u64, to_i64};

/// A checkpoint is written automatically whenever an append reaches a seq that
/// is a multiple of this (DESIGN.md: "at least every 100 events").
pub const CHECKPOINT_EVERY: u64 = 100;

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointReason {
    /// Every [`CHECKPOINT_EVERY`] events.
    Periodic,
    /// At a shift close.
    ShiftClose,
    /// With a push to the hub.
    Push,
    /// Right after a key rotation, so the newest checkpoint carries the new key.
    KeyRotation,
}

impl CheckpointReason {
    /// The name stored in the `reason` column.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointReason::Periodic => "periodic",
            CheckpointReason::ShiftClose => "shift_close",
            CheckpointReason::Push => "push",
            CheckpointReason::KeyRotation => "key_rotation",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<CheckpointReason> {
        [
            CheckpointReason::Periodic,
            CheckpointReason::ShiftClose,
            CheckpointReason::Push,
            CheckpointReason::KeyRotation,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A checkpoint as stored: the DESIGN record plus when and why it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// `{device, seq, hash, key_id, mac}`.
    pub checkpoint: Checkpoint,
    /// When it was written (UTC ms, from the caller's clock).
    pub at_ms: i64,
    /// Why it was written.
    pub reason: CheckpointReason,
}

/// Writes a checkpoint of the current head with `key` (see
/// `Journal::write_checkpoint`).
pub(super) fn write(
    tx: &Transaction<'_>,
    key: &DeviceKey,
    device: &DeviceRecord,
    reason: CheckpointReason,
    now_ms: i64,
) -> Result<StoredCheckpoint, JournalError> {
    let head = chain::head(tx)?;
    let seq = Seq::new(head.seq).map_err(|_| JournalError::EmptyJournal)?;
    let existing = query_checkpoints(
        tx,
        "WHERE c.seq = ?1 AND c.key_id = ?2",
        params![to_i64(head.seq, "seq")?, device.key_id.as_str()],
    )?;
    if let Some(cp) = existing.into_iter().next() {
        return Ok(cp);
    }
    let checkpoint = Checkpoint::sign(key, device.key_id.clone(), device.device, seq, head.hash);
    tx.prepare_cached(
        "INSERT INTO checkpoints (seq, hash, key_id, mac, at_ms, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        to_i64(head.seq, "seq")?,
        checkpoint.hash.to_hex(),
        checkpoint.key_id.as_str(),
        checkpoint.mac.to_hex(),
        now_ms,
        reason.as_str(),
    ])?;
    Ok(StoredCheckpoint {
        checkpoint,
        at_ms: now_ms,
        reason,
    })
}

/// The newest checkpoint (any key), if any.
pub(super) fn latest(conn: &Connection) -> Result<Option<StoredCheckpoint>, JournalError> {
    Ok(
        query_checkpoints(conn, "ORDER BY c.seq DESC, c.id DESC LIMIT 1", [])?
            .into_iter()
            .next(),
    )
}

pub(super) fn query_checkpoints<P: rusqlite::Params>(
    conn: &Connection,
    tail: &str,
    params: P,
) -> Result<Vec<StoredCheckpoint>, JournalError> {
    let sql = format!(
        "SELECT c.seq, c.hash, c.key_id, c.mac, c.at_ms, c.reason, d.device_id
         FROM checkpoints c JOIN device d ON d.id = 1 {tail}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let bad = |column: &'static str, detail: String| JournalError::BadRow {
            table: "checkpoints",
            column,
            detail,
        };
        let seq = get_u64(row, 0)?;
        let hash: String = row.get(1)?;
        let key_id: String = row.get(2)?;
        let mac: String = row.get(3)?;
        let reason: String = row.get(5)?;
        let device: String = row.get(6)?;
        out.push(StoredCheckpoint {
            checkpoint: Checkpoint {
                device: device.parse().map_err(|e| bad("device", format!("{e}")))?,
                seq: Seq::new(seq).map_err(|e| bad("seq", format!("{e}")))?,
                hash: hash.parse().map_err(|e| bad("hash", format!("{e}")))?,
                key_id: key_id.parse().map_err(|e| bad("key_id", format!("{e}")))?,
                mac: mac.parse().map_err(|e| bad("mac", format!("{e}")))?,
            },
            at_ms: row.get(4)?,
            reason: CheckpointReason::parse(&reason)
                .ok_or_else(|| bad("reason", format!("unknown reason {reason:?}")))?,
        });
    }
    Ok(out)
}
