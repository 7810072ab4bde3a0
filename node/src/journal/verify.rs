//! Verification: the full re-hash of the chain (`verify`), the start-up check
//! from the last checkpoint (`startup_check`), and the checks they share —
//! every event's seq, `prev`, hash and index columns, checkpoints against the
//! journal and the device key, no missing seq, nothing acknowledged beyond the
//! head.
//!
//! Invariant: read-only, inside one read snapshot; the first failure is
//! returned as a `Break` naming the first bad seq, and everything before it
//! verified.

use rusqlite::{Connection, OptionalExtension};

use caja_shared::chain::ChainHead;
use caja_shared::checkpoint::Checkpoint;
use caja_shared::digest::{Hash256, Mac};
use caja_shared::ids::Seq;
use caja_shared::key::DeviceKey;

use super::chain;
use super::checkpoint::query_checkpoints;
use super::device::{load_device, DeviceRecord};
use super::error::{broken, BreakReason, JournalError};
use super::rehash::{self, HandError};
use super::rows::{get_opt_u64, get_u64, in_read_snapshot, to_i64};

/// `Journal::verify` reports progress every this many events (one batch).
pub const PROGRESS_EVERY: u64 = 1_024;
const _: () = assert!(PROGRESS_EVERY == rehash::BATCH_ROWS as u64);

/// From this many events to re-hash on, the checks run on a second thread.
pub(super) const PARALLEL_FROM: u64 = rehash::PARALLEL_FROM;

/// What `Journal::startup_check` verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupReport {
    /// The verified head of the journal.
    pub head: ChainHead,
    /// The checkpoint verification started from (`None`: from the first event).
    pub from_checkpoint: Option<u64>,
    /// How many events were re-hashed (those after the checkpoint).
    pub rehashed: u64,
}

/// Verifies the journal from `from` (or the first event); see
/// `Journal::verify`.
pub(super) fn verify(
    conn: &Connection,
    key: &DeviceKey,
    from: Option<&Checkpoint>,
    mut progress: impl FnMut(u64, u64),
    parallel_from: u64,
) -> Result<ChainHead, JournalError> {
    let device = load_device(conn)?.ok_or(JournalError::NotInitialized)?;
    in_read_snapshot(conn, || {
        let start = match from {
            Some(cp) => check_checkpoint(conn, key, &device, cp)?,
            None => ChainHead::GENESIS,
        };
        let head = verify_events_from(conn, start, &mut progress, parallel_from)?;
        check_checkpoints_after(conn, key, &device, start.seq)?;
        check_acked(conn, head)?;
        Ok(head)
    })
}

/// The start-up recovery check; see `Journal::startup_check`.
pub(super) fn startup_check(
    conn: &Connection,
    key: &DeviceKey,
) -> Result<StartupReport, JournalError> {
    let device = load_device(conn)?.ok_or(JournalError::NotInitialized)?;
    in_read_snapshot(conn, || {
        check_gapless(conn)?;
        let newest = query_checkpoints(
            conn,
            "WHERE c.key_id = ?1 ORDER BY c.seq DESC, c.id DESC LIMIT 1",
            [device.key_id.as_str()],
        )?
        .into_iter()
        .next();
        let start = match &newest {
            Some(cp) => check_checkpoint(conn, key, &device, &cp.checkpoint)?,
            None => ChainHead::GENESIS,
        };
        let head = verify_events(conn, start, &mut |_, _| {})?;
        check_acked(conn, head)?;
        Ok(StartupReport {
            head,
            from_checkpoint: newest.map(|cp| cp.checkpoint.seq.get()),
            rehashed: head.seq - start.seq,
        })
    })
}

/// Re-hashes every event after `start`, in seq order: this thread reads the
/// rows, a second one checks them (`rehash`) once there are enough to be
/// worth it, so SQLite's reading and the hashing overlap.
fn verify_events(
    conn: &Connection,
    start: ChainHead,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ChainHead, JournalError> {
    verify_events_from(conn, start, progress, PARALLEL_FROM)
}

/// [`verify_events`], checking on a second thread from `parallel_from`
/// expected rows on.
fn verify_events_from(
    conn: &Connection,
    start: ChainHead,
    progress: &mut dyn FnMut(u64, u64),
    parallel_from: u64,
) -> Result<ChainHead, JournalError> {
    let after = to_i64(start.seq, "seq")?;
    // The expected number of events (a gap is reported when reached). Not
    // count(*): counting rows after a seq walks the whole table, which would
    // read the journal twice.
    let last = conn.query_row("SELECT coalesce(max(seq), 0) FROM journal", [], |r| {
        get_u64(r, 0)
    })?;
    let total = last.saturating_sub(start.seq);
    progress(0, total);
    let threaded = total >= parallel_from;
    let checker = rehash::run(start, threaded, |sink, mut batch| {
        let mut stmt = conn.prepare(
            "SELECT seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes
             FROM journal WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([after])?;
        while let Some(row) = rows.next()? {
            rehash::push_row(&mut batch, row)?;
            if batch.is_full() {
                batch = match sink.hand(batch) {
                    Ok(next) => next,
                    Err(HandError::Break(e)) => return Err(e),
                    Err(HandError::CheckerStopped) => return Ok(()),
                };
                progress(sink.verified(), total);
            }
        }
        match sink.hand(batch) {
            Ok(_) | Err(HandError::CheckerStopped) => Ok(()),
            Err(HandError::Break(e)) => Err(e),
        }
    })?;
    progress(checker.done(), total);
    checker.head()
}

/// Checks a checkpoint against the device key and the journal; returns the
/// head it vouches for.
fn check_checkpoint(
    conn: &Connection,
    key: &DeviceKey,
    device: &DeviceRecord,
    cp: &Checkpoint,
) -> Result<ChainHead, JournalError> {
    let seq = cp.seq.get();
    if cp.device != device.device || cp.verify(key).is_err() {
        return Err(broken(seq, BreakReason::BadCheckpoint));
    }
    let row: Option<(String, Vec<u8>)> = conn
        .query_row(
            "SELECT hash, bytes FROM journal WHERE seq = ?1",
            [to_i64(seq, "seq")?],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        Some((hash, bytes)) if Hash256::of(&bytes) == cp.hash && hash == cp.hash.to_hex() => {
            Ok(ChainHead { seq, hash: cp.hash })
        }
        _ => Err(broken(seq, BreakReason::CheckpointMismatch)),
    }
}

/// Every checkpoint after `after_seq` must equal the (already verified)
/// journal hash at its seq; those made with the current key must verify.
fn check_checkpoints_after(
    conn: &Connection,
    key: &DeviceKey,
    device: &DeviceRecord,
    after_seq: u64,
) -> Result<(), JournalError> {
    let mut stmt = conn.prepare(
        "SELECT c.seq, c.hash, c.key_id, c.mac, j.hash
         FROM checkpoints c LEFT JOIN journal j ON j.seq = c.seq
         WHERE c.seq > ?1 ORDER BY c.seq, c.id",
    )?;
    let mut rows = stmt.query([to_i64(after_seq, "seq")?])?;
    while let Some(row) = rows.next()? {
        let seq = get_u64(row, 0)?;
        let hash: String = row.get(1)?;
        let key_id: String = row.get(2)?;
        let mac: String = row.get(3)?;
        let journal_hash: Option<String> = row.get(4)?;
        // The MAC first (it covers seq and hash), as in `check_checkpoint`.
        if key_id == device.key_id.as_str() {
            let cp = Checkpoint {
                device: device.device,
                seq: Seq::new(seq).map_err(|_| broken(seq, BreakReason::BadCheckpoint))?,
                hash: hash
                    .parse()
                    .map_err(|_| broken(seq, BreakReason::BadCheckpoint))?,
                key_id: device.key_id.clone(),
                mac: mac
                    .parse::<Mac>()
                    .map_err(|_| broken(seq, BreakReason::BadCheckpoint))?,
            };
            if cp.verify(key).is_err() {
                return Err(broken(seq, BreakReason::BadCheckpoint));
            }
        }
        if journal_hash.as_deref() != Some(hash.as_str()) {
            return Err(broken(seq, BreakReason::CheckpointMismatch));
        }
    }
    Ok(())
}

/// No seq is missing between 1 and the last: a deleted row anywhere is found
/// with one index scan, without re-hashing.
fn check_gapless(conn: &Connection) -> Result<(), JournalError> {
    let (count, max): (u64, u64) = conn.query_row(
        "SELECT count(*), coalesce(max(seq), 0) FROM journal",
        [],
        |r| Ok((get_u64(r, 0)?, get_u64(r, 1)?)),
    )?;
    if count == max {
        return Ok(());
    }
    let missing = conn.query_row(
        "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM journal WHERE seq = 1) THEN 1
                ELSE (SELECT j.seq + 1 FROM journal j
                      WHERE NOT EXISTS (SELECT 1 FROM journal n WHERE n.seq = j.seq + 1)
                      ORDER BY j.seq LIMIT 1) END",
        [],
        |r| get_u64(r, 0),
    )?;
    let found = conn.query_row(
        "SELECT min(seq) FROM journal WHERE seq > ?1",
        [to_i64(missing, "seq")?],
        |r| get_opt_u64(r, 0),
    )?;
    Err(broken(missing, BreakReason::SeqGap { found }))
}

fn check_acked(conn: &Connection, head: ChainHead) -> Result<(), JournalError> {
    let acked_seq = chain::acked_seq(conn)?;
    if acked_seq > head.seq {
        return Err(broken(head.seq + 1, BreakReason::Truncated { acked_seq }));
    }
    Ok(())
}
