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

use caja_shared::canonical::{self, Value};
use caja_shared::chain::ChainHead;
use caja_shared::checkpoint::Checkpoint;
use caja_shared::digest::{Hash256, Mac};
use caja_shared::ids::Seq;
use caja_shared::key::DeviceKey;

use super::chain;
use super::checkpoint::query_checkpoints;
use super::device::{load_device, DeviceRecord};
use super::error::{broken, BreakReason, JournalError};
use super::rows::{get_opt_u64, get_u64, in_read_snapshot, to_i64};
use super::scan::{hex64, is_lower_hex64, parse_hash, skim, tail, Fields};

/// `Journal::verify` reports progress every this many events.
pub const PROGRESS_EVERY: u64 = 1_024;

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
) -> Result<ChainHead, JournalError> {
    let device = load_device(conn)?.ok_or(JournalError::NotInitialized)?;
    in_read_snapshot(conn, || {
        let start = match from {
            Some(cp) => check_checkpoint(conn, key, &device, cp)?,
            None => ChainHead::GENESIS,
        };
        let head = verify_events(conn, start, &mut progress)?;
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

/// Re-hashes every event after `start`, in seq order, one row at a time.
fn verify_events(
    conn: &Connection,
    start: ChainHead,
    progress: &mut dyn FnMut(u64, u64),
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
    let mut stmt = conn.prepare(
        "SELECT seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes
         FROM journal WHERE seq > ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([after])?;
    // The chain is checked in the hex domain (stored hashes and `prev` are hex
    // text): the same three checks as `ChainVerifier`, in the same order, without
    // parsing two hashes per event.
    let mut head_seq = start.seq;
    let mut head_hex = hex64(&start.hash);
    let mut done = 0u64;
    while let Some(row) = rows.next()? {
        let here = head_seq + 1;
        let column = |column| broken(here, BreakReason::ColumnMismatch { column });
        let bytes = row
            .get_ref(7)?
            .as_blob()
            .map_err(|_| broken(here, BreakReason::BadField { field: "bytes" }))?;
        let stored = row.get_ref(2)?.as_bytes().map_err(|_| column("hash"))?;
        // The chain fields and the values the index columns are checked
        // against: read from the fixed-shape tail of canonical bytes, else by a
        // scan of the top level, else by the strict parser.
        let parsed: Value;
        let fields = match tail::envelope_fields(bytes).or_else(|| skim::envelope_fields(bytes)) {
            Some(fields) => fields,
            None => {
                parsed = canonical::parse(bytes)
                    .map_err(|_| broken(here, BreakReason::BadField { field: "json" }))?;
                Fields::of(&parsed)
            }
        };
        let bad_field = |field| broken(here, BreakReason::BadField { field });
        let seq = fields.seq.ok_or_else(|| bad_field("seq"))?;
        let prev = fields
            .prev_hex
            .map(str::as_bytes)
            .ok_or_else(|| bad_field("prev"))?;
        if seq != here {
            return Err(broken(here, BreakReason::SeqGap { found: Some(seq) }));
        }
        // Equal to the (valid) previous hash, or else classified: the hex
        // checks run only on the failure path.
        if prev != head_hex {
            return Err(if is_lower_hex64(prev) {
                broken(here, BreakReason::PrevMismatch)
            } else {
                bad_field("prev")
            });
        }
        if hex64(&Hash256::of(bytes)) != stored {
            return Err(if is_lower_hex64(stored) {
                broken(here, BreakReason::HashMismatch)
            } else {
                column("hash")
            });
        }
        check_columns(row, &fields, seq).map_err(column)?;
        head_hex.copy_from_slice(stored);
        head_seq = seq;
        done += 1;
        if done % PROGRESS_EVERY == 0 {
            progress(done, total);
        }
    }
    progress(done, total);
    let hash = std::str::from_utf8(&head_hex)
        .ok()
        .and_then(parse_hash)
        .ok_or_else(|| broken(head_seq, BreakReason::ColumnMismatch { column: "hash" }))?;
    Ok(ChainHead {
        seq: head_seq,
        hash,
    })
}

/// The index columns of a verified row must say what its bytes say.
fn check_columns(
    row: &rusqlite::Row<'_>,
    fields: &Fields<'_>,
    seq: u64,
) -> Result<(), &'static str> {
    // Compared as bytes: the fields are ASCII, so no UTF-8 check is needed.
    let text = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_bytes().ok());
    let int = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_i64().ok());
    if int(0).and_then(|s| u64::try_from(s).ok()) != Some(seq) {
        return Err("seq");
    }
    // Each column read once (reading one decodes it again).
    let prev = text(3);
    if prev.is_none() || prev != fields.prev_hex.map(str::as_bytes) {
        return Err("prev");
    }
    let event_id = text(1);
    if event_id.is_none() || event_id != fields.event_id.map(str::as_bytes) {
        return Err("event_id");
    }
    let kind = text(4);
    if kind.is_none() || kind != fields.kind.map(str::as_bytes) {
        return Err("kind");
    }
    let hlc_ms = int(5);
    if hlc_ms.is_none() || hlc_ms != fields.hlc_ms {
        return Err("hlc_ms");
    }
    let hlc_n = int(6);
    if hlc_n.is_none() || hlc_n != fields.hlc_n {
        return Err("hlc_n");
    }
    Ok(())
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
