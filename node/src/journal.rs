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

use std::fmt;
use std::io::{self, BufWriter, Write};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use caja_shared::canonical::{self, Value};
use caja_shared::chain::ChainHead;
use caja_shared::checkpoint::Checkpoint;
use caja_shared::digest::{Hash256, Mac};
use caja_shared::entropy::RandomSource;
use caja_shared::event::{EnvelopeError, Event, EventDraft};
use caja_shared::hlc::{Hlc, HlcError, HlcState};
use caja_shared::ids::{DeviceId, EventId, KeyId, OpId, Seq, StoreId};
use caja_shared::key::{DeviceKey, HubPublicKey};
use caja_shared::kind::EventBody;

/// A checkpoint is written automatically whenever an append reaches a seq that
/// is a multiple of this (DESIGN.md: "at least every 100 events").
pub const CHECKPOINT_EVERY: u64 = 100;

/// [`Journal::verify`] reports progress every this many events.
pub const PROGRESS_EVERY: u64 = 1_024;

/// Most events [`Journal::events_after`] returns in one call.
pub const MAX_EVENTS_PER_READ: usize = 1_000;

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

/// The register this database belongs to (the one `device` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Its store.
    pub store: StoreId,
    /// Its device id (the `device` of its events).
    pub device: DeviceId,
    /// The id of its current device key.
    pub key_id: KeyId,
    /// The hub's Ed25519 public key, once enrollment gave it.
    pub hub_public_key: Option<HubPublicKey>,
    /// When the row was written (UTC ms).
    pub created_at_ms: i64,
    /// Set in a copy made by `backup`: a database restored from it issues no
    /// fiscal number and sells no escrowed stock until it has synced.
    pub restored_from_backup: bool,
}

/// The first result of a client operation (DESIGN.md invariant 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// The client's operation id.
    pub op_id: OpId,
    /// What operation it was (e.g. `sell`).
    pub kind: String,
    /// SHA-256 of the canonical request, to tell a retry from another request
    /// reusing the id.
    pub request_hash: Hash256,
    /// The answer given the first time, as JSON text.
    pub result: String,
    /// The last journal seq the operation wrote, if any.
    pub seq: Option<u64>,
    /// When it was applied (UTC ms).
    pub at_ms: i64,
}

/// What [`Journal::startup_check`] verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupReport {
    /// The verified head of the journal.
    pub head: ChainHead,
    /// The checkpoint verification started from (`None`: from the first event).
    pub from_checkpoint: Option<u64>,
    /// How many events were re-hashed (those after the checkpoint).
    pub rehashed: u64,
}

/// Why the chain is broken at [`Break::seq`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakReason {
    /// The row at this position carries another seq: a row was deleted or rows
    /// were reordered. `found` is the seq found there, when readable.
    SeqGap {
        /// The seq found where this one belongs.
        found: Option<u64>,
    },
    /// `prev` is not the hash of the previous event.
    PrevMismatch,
    /// The stored bytes do not hash to the stored hash: the event was edited.
    HashMismatch,
    /// The stored bytes are not JSON, or lack a readable `seq` or `prev`.
    BadField {
        /// `json`, `seq`, `prev` or `bytes`.
        field: &'static str,
    },
    /// An index column (`seq`, `prev`, `hash`, `event_id`, `kind`, `hlc_ms`,
    /// `hlc_n`) disagrees with the event's bytes.
    ColumnMismatch {
        /// The column.
        column: &'static str,
    },
    /// A checkpoint's MAC does not verify under the device key.
    BadCheckpoint,
    /// A checkpoint's hash differs from the journal event at its seq (or there
    /// is no event at its seq).
    CheckpointMismatch,
    /// The hub acknowledged more events than the journal holds: its tail was
    /// cut off.
    Truncated {
        /// The seq the hub acknowledged.
        acked_seq: u64,
    },
}

impl BreakReason {
    /// A stable reason code for scripts and tests: `seq_gap`, `prev_mismatch`,
    /// `hash_mismatch`, `bad_field`, `column_mismatch`, `bad_checkpoint`,
    /// `checkpoint_mismatch`, `truncated`.
    pub fn code(&self) -> &'static str {
        match self {
            BreakReason::SeqGap { .. } => "seq_gap",
            BreakReason::PrevMismatch => "prev_mismatch",
            BreakReason::HashMismatch => "hash_mismatch",
            BreakReason::BadField { .. } => "bad_field",
            BreakReason::ColumnMismatch { .. } => "column_mismatch",
            BreakReason::BadCheckpoint => "bad_checkpoint",
            BreakReason::CheckpointMismatch => "checkpoint_mismatch",
            BreakReason::Truncated { .. } => "truncated",
        }
    }
}

/// The first bad position of the journal: the seq where the chain stops being
/// trustworthy and why. Everything before `seq` verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Break {
    /// The first bad seq: where the event with this seq should be.
    pub seq: u64,
    /// Why it is bad.
    pub reason: BreakReason,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        write!(f, "journal broken at seq {seq}: {}", self.reason.code())?;
        match &self.reason {
            BreakReason::SeqGap { found: Some(found) } => {
                write!(f, " (found seq {found} where seq {seq} belongs)")
            }
            BreakReason::SeqGap { found: None } => write!(f, " (seq {seq} is missing)"),
            BreakReason::PrevMismatch => write!(
                f,
                " (its prev is not the hash of seq {})",
                seq.saturating_sub(1)
            ),
            BreakReason::HashMismatch => {
                write!(f, " (its bytes do not hash to its stored hash: edited)")
            }
            BreakReason::BadField { field } => write!(f, " (unreadable {field})"),
            BreakReason::ColumnMismatch { column } => {
                write!(f, " (column {column} disagrees with the event's bytes)")
            }
            BreakReason::BadCheckpoint => {
                write!(
                    f,
                    " (the checkpoint's MAC does not verify with the device key)"
                )
            }
            BreakReason::CheckpointMismatch => write!(
                f,
                " (the checkpoint's hash differs from the journal's event at that seq)"
            ),
            BreakReason::Truncated { acked_seq } => write!(
                f,
                " (the hub acknowledged seq {acked_seq} but the journal ends at seq {})",
                seq.saturating_sub(1)
            ),
        }
    }
}

/// What can go wrong reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// History was changed: the node must not sell until this is resolved.
    #[error("{0}; refusing to sell until the journal is repaired or restored")]
    Broken(Break),
    /// The database has no device row yet.
    #[error("the node database has no device identity yet (run `caja-node init`)")]
    NotInitialized,
    /// `insert_device` on a database that already has one.
    #[error("the node database already belongs to device {0}")]
    AlreadyInitialized(DeviceId),
    /// A column of the device, checkpoint or ops tables does not parse.
    #[error("the {table} row has an unreadable {column}: {detail}")]
    BadRow {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// Why.
        detail: String,
    },
    /// An append would not be the next link of the chain (a bug, or a received
    /// event that does not follow the local head).
    #[error(
        "append out of order: expected seq {expected_seq} with prev {expected_prev}, \
         got seq {seq} with prev {prev}"
    )]
    OutOfOrder {
        /// `last seq + 1`.
        expected_seq: u64,
        /// The last hash.
        expected_prev: Hash256,
        /// The event's seq.
        seq: u64,
        /// The event's prev.
        prev: Hash256,
    },
    /// A received event belongs to another store or device.
    #[error("event belongs to another {field} ({found}) than this register ({expected})")]
    ForeignEvent {
        /// `store` or `device`.
        field: &'static str,
        /// This register's.
        expected: String,
        /// The event's.
        found: String,
    },
    /// A checkpoint was requested of an empty journal.
    #[error("the journal is empty: there is nothing to checkpoint")]
    EmptyJournal,
    /// The event could not be built or a stored event does not parse.
    #[error("event: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The hybrid logical clock refused to stamp.
    #[error("clock: {0}")]
    Hlc(#[from] HlcError),
    /// An acknowledged seq that moves backwards or beyond the head.
    #[error("cannot set the hub's acknowledged seq to {acked_seq}: {why}")]
    BadAck {
        /// The refused value.
        acked_seq: u64,
        /// Why.
        why: String,
    },
    /// A number too large to store (a seq beyond 2^63 − 1).
    #[error("{what} {value} is out of range")]
    OutOfRange {
        /// What it is.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// The operation id was already recorded.
    #[error("client operation {0} is already recorded")]
    DuplicateOp(OpId),
    /// Writing an export failed.
    #[error("writing the export failed: {0}")]
    Io(#[from] io::Error),
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

impl JournalError {
    /// The first bad seq, when this error is a broken chain.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            JournalError::Broken(b) => Some(b.seq),
            _ => None,
        }
    }
}

fn broken(seq: u64, reason: BreakReason) -> JournalError {
    JournalError::Broken(Break { seq, reason })
}

/// Reads a non-negative integer column (seqs and counts are stored as SQLite's
/// signed 64-bit integers).
fn get_u64(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

fn get_opt_u64(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(i)?;
    v.map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v)))
        .transpose()
}

fn to_i64(value: u64, what: &'static str) -> Result<i64, JournalError> {
    i64::try_from(value).map_err(|_| JournalError::OutOfRange { what, value })
}

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
        Ok(last_row(conn)?.map_or(ChainHead::GENESIS, |r| r.head))
    }

    /// The HLC of the last event, read from its bytes (not from the index
    /// columns); `None` when empty. Lenient about the rest of the envelope, so
    /// an event of a kind this version does not know cannot stop the clock.
    pub fn last_hlc(conn: &Connection) -> Result<Option<Hlc>, JournalError> {
        let row: Option<(u64, Vec<u8>)> = conn
            .query_row(
                "SELECT seq, bytes FROM journal ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((get_u64(r, 0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((seq, bytes)) = row else {
            return Ok(None);
        };
        let hlc = canonical::parse(&bytes).ok().and_then(|v| {
            let hlc = v.get("hlc")?;
            let ms = hlc.get("ms").and_then(Value::as_i64)?;
            let n = hlc.get("n").and_then(Value::as_i64)?;
            Hlc::new(ms, u32::try_from(n).ok()?).ok()
        });
        hlc.map(Some)
            .ok_or_else(|| broken(seq, BreakReason::BadField { field: "hlc" }))
    }

    /// Appends a new event of this device inside `tx`: stamps it with the HLC
    /// (never below the journal's last stamp, even if another process appended
    /// since this one opened), builds it with the next seq and the last hash,
    /// checks it is the next link, inserts it, and writes a periodic checkpoint
    /// when its seq is a multiple of [`CHECKPOINT_EVERY`].
    ///
    /// Nothing is durable until the caller commits `tx`; on rollback the HLC
    /// may have advanced, which is harmless (it only has to increase).
    pub fn append(
        &mut self,
        tx: &Transaction<'_>,
        body: EventBody,
        deps: Vec<EventId>,
        rng: &mut impl RandomSource,
        now_ms: i64,
    ) -> Result<Event, JournalError> {
        let last = last_row(tx)?;
        let head = last.map_or(ChainHead::GENESIS, |r| r.head);
        if let Some(stored) = last.map(|r| r.hlc) {
            if stored > self.hlc.last() {
                self.hlc = HlcState::restore(stored, self.hlc.max_drift_ms())?;
            }
        }
        let stamp = self.hlc.tick(now_ms)?;
        let next = head
            .seq
            .checked_add(1)
            .and_then(|n| Seq::new(n).ok())
            .ok_or(JournalError::OutOfRange {
                what: "seq",
                value: head.seq,
            })?;
        let event = Event::build(
            EventDraft {
                store: self.device.store,
                device: self.device.device,
                seq: next,
                prev: head.hash,
                hlc: stamp,
                deps,
                body,
            },
            rng,
        )?;
        let linked = check_next(head, &event);
        debug_assert!(linked.is_ok(), "append built a non-next event: {linked:?}");
        linked?;
        crate::crashpoint::hit("journal:before_insert");
        insert_event(tx, &event)?;
        crate::crashpoint::hit("journal:inserted");
        if next.get() % CHECKPOINT_EVERY == 0 {
            self.write_checkpoint(tx, CheckpointReason::Periodic, now_ms)?;
            crate::crashpoint::hit("journal:checkpoint");
        }
        Ok(event)
    }

    /// Appends an event of this device that was made elsewhere: one the hub
    /// returns from `/v1/sync/own` to a database restored from a backup. It must
    /// be this device's, the next seq and name the last hash; its bytes are kept
    /// exactly as received. The caller verifies the hub's checkpoint first.
    pub fn append_received(
        &mut self,
        tx: &Transaction<'_>,
        event: &Event,
        now_ms: i64,
    ) -> Result<(), JournalError> {
        let env = event.envelope();
        if env.store != self.device.store {
            return Err(JournalError::ForeignEvent {
                field: "store",
                expected: self.device.store.to_string(),
                found: env.store.to_string(),
            });
        }
        if env.device != self.device.device {
            return Err(JournalError::ForeignEvent {
                field: "device",
                expected: self.device.device.to_string(),
                found: env.device.to_string(),
            });
        }
        check_next(Journal::head(tx)?, event)?;
        if env.hlc > self.hlc.last() {
            self.hlc = HlcState::restore(env.hlc, self.hlc.max_drift_ms())?;
        }
        insert_event(tx, event)?;
        if event.seq().get() % CHECKPOINT_EVERY == 0 {
            self.write_checkpoint(tx, CheckpointReason::Periodic, now_ms)?;
        }
        Ok(())
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
        let head = Journal::head(tx)?;
        let seq = Seq::new(head.seq).map_err(|_| JournalError::EmptyJournal)?;
        let existing = query_checkpoints(
            tx,
            "WHERE c.seq = ?1 AND c.key_id = ?2",
            params![to_i64(head.seq, "seq")?, self.device.key_id.as_str()],
        )?;
        if let Some(cp) = existing.into_iter().next() {
            return Ok(cp);
        }
        let checkpoint = Checkpoint::sign(
            &self.key,
            self.device.key_id.clone(),
            self.device.device,
            seq,
            head.hash,
        );
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
    pub fn latest_checkpoint(conn: &Connection) -> Result<Option<StoredCheckpoint>, JournalError> {
        Ok(
            query_checkpoints(conn, "ORDER BY c.seq DESC, c.id DESC LIMIT 1", [])?
                .into_iter()
                .next(),
        )
    }

    /// The event at `seq`, if any.
    pub fn event(conn: &Connection, seq: u64) -> Result<Option<Event>, JournalError> {
        let bytes: Option<Vec<u8>> = conn
            .query_row(
                "SELECT bytes FROM journal WHERE seq = ?1",
                [to_i64(seq, "seq")?],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match bytes {
            Some(b) => Some(Event::from_json(&b)?),
            None => None,
        })
    }

    /// Up to `limit` (at most [`MAX_EVENTS_PER_READ`]) events after `after_seq`,
    /// in seq order: what a push sends.
    pub fn events_after(
        conn: &Connection,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, JournalError> {
        let limit = limit.min(MAX_EVENTS_PER_READ);
        let mut stmt =
            conn.prepare_cached("SELECT bytes FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let mut rows = stmt.query(params![
            to_i64(after_seq, "seq")?,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ])?;
        let mut out = Vec::with_capacity(limit.min(64));
        while let Some(row) = rows.next()? {
            let bytes = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            out.push(Event::from_json(bytes)?);
        }
        Ok(out)
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

    /// Writes every event's canonical bytes, one per line in seq order, to
    /// `out` (JSON Lines; canonical JSON contains no raw newline). Streams in
    /// constant memory from one read snapshot; returns how many were written.
    pub fn export_jsonl(conn: &Connection, out: impl Write) -> Result<u64, JournalError> {
        let mut out = BufWriter::new(out);
        let n = in_read_snapshot(conn, || {
            let mut stmt = conn.prepare("SELECT bytes FROM journal ORDER BY seq")?;
            let mut rows = stmt.query([])?;
            let mut n = 0u64;
            while let Some(row) = rows.next()? {
                let bytes = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                out.write_all(bytes)?;
                out.write_all(b"\n")?;
                n += 1;
            }
            Ok(n)
        })?;
        out.flush()?;
        Ok(n)
    }

    /// The highest seq the hub has durably acknowledged (0 before the first push).
    pub fn acked_seq(conn: &Connection) -> Result<u64, JournalError> {
        Ok(
            conn.query_row("SELECT acked_seq FROM sync_state WHERE id = 1", [], |r| {
                get_u64(r, 0)
            })?,
        )
    }

    /// Records the hub's `acked_seq`. It never moves backwards and never beyond
    /// the journal's head.
    pub fn set_acked_seq(
        tx: &Transaction<'_>,
        acked_seq: u64,
        now_ms: i64,
    ) -> Result<(), JournalError> {
        let current = Journal::acked_seq(tx)?;
        let head = Journal::head(tx)?;
        if acked_seq < current {
            return Err(JournalError::BadAck {
                acked_seq,
                why: format!("the hub already acknowledged seq {current}"),
            });
        }
        if acked_seq > head.seq {
            return Err(JournalError::BadAck {
                acked_seq,
                why: format!("the journal ends at seq {}", head.seq),
            });
        }
        tx.execute(
            "UPDATE sync_state SET acked_seq = ?1, updated_at_ms = ?2 WHERE id = 1",
            params![to_i64(acked_seq, "acked_seq")?, now_ms],
        )?;
        Ok(())
    }

    /// Events not yet acknowledged by the hub.
    pub fn unsynced(conn: &Connection) -> Result<u64, JournalError> {
        let head = Journal::head(conn)?;
        Ok(head.seq.saturating_sub(Journal::acked_seq(conn)?))
    }
}

/// Whether `event` is the next link after `head`: `seq == last + 1` and
/// `prev == last hash`.
fn check_next(head: ChainHead, event: &Event) -> Result<(), JournalError> {
    let env = event.envelope();
    let expected_seq = head.seq.checked_add(1);
    if Some(env.seq.get()) != expected_seq || env.prev != head.hash {
        return Err(JournalError::OutOfOrder {
            expected_seq: expected_seq.unwrap_or(u64::MAX),
            expected_prev: head.hash,
            seq: env.seq.get(),
            prev: env.prev,
        });
    }
    Ok(())
}

fn insert_event(tx: &Transaction<'_>, event: &Event) -> Result<(), JournalError> {
    let env = event.envelope();
    tx.prepare_cached(
        "INSERT INTO journal (seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        to_i64(env.seq.get(), "seq")?,
        env.event_id.to_string(),
        event.hash().to_hex(),
        env.prev.to_hex(),
        env.kind.as_str(),
        env.hlc.ms(),
        env.hlc.n(),
        event.canonical_bytes(),
    ])?;
    Ok(())
}

#[derive(Clone, Copy)]
struct LastRow {
    head: ChainHead,
    hlc: Hlc,
}

fn last_row(conn: &Connection) -> Result<Option<LastRow>, JournalError> {
    let row: Option<(u64, String, i64, u32)> = conn
        .prepare_cached("SELECT seq, hash, hlc_ms, hlc_n FROM journal ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok((get_u64(r, 0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((seq, hash, ms, n)) = row else {
        return Ok(None);
    };
    let hash = hash
        .parse()
        .map_err(|_| broken(seq, BreakReason::ColumnMismatch { column: "hash" }))?;
    let hlc = Hlc::new(ms, n)
        .map_err(|_| broken(seq, BreakReason::ColumnMismatch { column: "hlc_ms" }))?;
    Ok(Some(LastRow {
        head: ChainHead { seq, hash },
        hlc,
    }))
}

/// Runs `f` inside a savepoint: one read snapshot for all its queries, whether
/// or not the caller is already in a transaction.
fn in_read_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    conn.execute_batch("SAVEPOINT caja_read")?;
    let result = f();
    let released = conn.execute_batch("RELEASE caja_read");
    let value = result?;
    released?;
    Ok(value)
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

/// Lowercase hex of a hash into a fixed buffer.
fn hex64(h: &Hash256) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(h.0) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

/// 64 lowercase hex characters.
fn is_lower_hex64(b: &[u8]) -> bool {
    b.len() == 64 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses 64 lowercase hex characters (a stored hash or `prev`) without the
/// general-purpose checks of `Hash256::from_str`: this runs twice per event
/// when a whole journal is verified.
fn parse_hash(s: &str) -> Option<Hash256> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(Hash256(out))
}

/// The envelope fields verification reads: `seq` and `prev` for the chain (as
/// the shared verifier reads them), the rest to check the index columns.
/// `None` where a field is missing or malformed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields<'a> {
    seq: Option<u64>,
    prev_hex: Option<&'a str>,
    event_id: Option<&'a str>,
    kind: Option<&'a str>,
    hlc_ms: Option<i64>,
    hlc_n: Option<i64>,
}

impl<'a> Fields<'a> {
    /// From a fully parsed envelope.
    fn of(envelope: &'a Value) -> Fields<'a> {
        let hlc = |k: &str| {
            envelope
                .get("hlc")
                .and_then(|h| h.get(k))
                .and_then(Value::as_i64)
        };
        Fields {
            seq: envelope
                .get("seq")
                .and_then(Value::as_i64)
                .and_then(|n| u64::try_from(n).ok()),
            prev_hex: envelope.get("prev").and_then(Value::as_str),
            event_id: envelope.get("event_id").and_then(Value::as_str),
            kind: envelope.get("kind").and_then(Value::as_str),
            hlc_ms: hlc("ms"),
            hlc_n: hlc("n"),
        }
    }
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
    if text(3).is_none() || text(3) != fields.prev_hex.map(str::as_bytes) {
        return Err("prev");
    }
    if text(1).is_none() || text(1) != fields.event_id.map(str::as_bytes) {
        return Err("event_id");
    }
    if text(4).is_none() || text(4) != fields.kind.map(str::as_bytes) {
        return Err("kind");
    }
    if int(5).is_none() || int(5) != fields.hlc_ms {
        return Err("hlc_ms");
    }
    if int(6).is_none() || int(6) != fields.hlc_n {
        return Err("hlc_n");
    }
    Ok(())
}

/// Reads the top-level fields from the end of canonical envelope bytes, in
/// constant time. In canonical order the envelope ends with
/// `"event_id":"<36>","hlc":{"ms":<int>,"n":<int>},"kind":"<name>","prev":"<64>","seq":<int>,"store":"<36>","v":1}`
/// (only `body`, `deps` and `device` sort before `event_id`), and every event the
/// journal holds was validated to have exactly the envelope's fields when it was
/// appended. An unescaped `"` cannot occur inside a JSON string, so a tail of
/// this shape is the real top level. Anything else gives `None` and the caller
/// falls back to the scan and then the strict parser. The bytes themselves are
/// bound by their hash and the chain links.
mod tail {
    use super::Fields;

    struct Back<'a> {
        b: &'a [u8],
        end: usize,
    }

    impl<'a> Back<'a> {
        fn lit(&mut self, pat: &[u8]) -> Option<()> {
            let start = self.end.checked_sub(pat.len())?;
            (self.b.get(start..self.end)? == pat).then(|| self.end = start)
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let start = self.end.checked_sub(n)?;
            let s = self.b.get(start..self.end)?;
            self.end = start;
            Some(s)
        }

        /// A canonical non-negative integer (no leading zero, at most 16 digits).
        fn uint(&mut self) -> Option<i64> {
            let mut start = self.end;
            while start > 0 && self.b.get(start - 1)?.is_ascii_digit() {
                start -= 1;
            }
            let digits = self.b.get(start..self.end)?;
            if digits.is_empty() || digits.len() > 16 || (digits.len() > 1 && digits[0] == b'0') {
                return None;
            }
            self.end = start;
            let n: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
            (n <= caja_shared::canonical::MAX_SAFE_INTEGER).then_some(n)
        }

        fn word(&mut self) -> Option<&'a str> {
            let mut start = self.end;
            while start > 0 && self.b.get(start - 1)?.is_ascii_alphabetic() {
                start -= 1;
            }
            let w = self.b.get(start..self.end)?;
            if w.is_empty() {
                return None;
            }
            self.end = start;
            std::str::from_utf8(w).ok()
        }
    }

    pub(super) fn envelope_fields(bytes: &[u8]) -> Option<Fields<'_>> {
        let mut c = Back {
            b: bytes,
            end: bytes.len(),
        };
        c.lit(b",\"v\":1}")?;
        c.lit(b"\"")?;
        c.take(36)?;
        c.lit(b",\"store\":\"")?;
        let seq = c.uint()?;
        c.lit(b",\"seq\":")?;
        c.lit(b"\"")?;
        let prev = std::str::from_utf8(c.take(64)?).ok()?;
        c.lit(b",\"prev\":\"")?;
        c.lit(b"\"")?;
        let kind = c.word()?;
        c.lit(b",\"kind\":\"")?;
        c.lit(b"}")?;
        let n = c.uint()?;
        c.lit(b",\"n\":")?;
        let ms = c.uint()?;
        c.lit(b",\"hlc\":{\"ms\":")?;
        c.lit(b"\"")?;
        let event_id = std::str::from_utf8(c.take(36)?).ok()?;
        c.lit(b",\"event_id\":\"")?;
        // What precedes must be the object's start and its first members.
        if bytes.first() != Some(&b'{') || c.end < 1 {
            return None;
        }
        Some(Fields {
            seq: u64::try_from(seq).ok(),
            prev_hex: Some(prev),
            event_id: Some(event_id),
            kind: Some(kind),
            hlc_ms: Some(ms),
            hlc_n: Some(n),
        })
    }
}

/// A single pass over canonical envelope bytes that reads the top-level fields
/// verification needs without building a JSON tree — verifying a long journal
/// costs little more than reading and hashing it.
///
/// It accepts only the canonical shape: no whitespace, top-level keys sorted and
/// unique, the fields it reads in their plain form (`seq` a safe integer,
/// `prev`, `event_id` and `kind` strings without escapes, `hlc` exactly
/// `{"ms":<int>,"n":<int>}`). Anything else gives `None`, and the caller falls
/// back to the strict parser, which then decides. It does not validate the
/// body: the chain is checked by the hash of the bytes and the links, and
/// bodies are validated where they are applied.
mod skim {
    use caja_shared::canonical::{MAX_DEPTH, MAX_SAFE_INTEGER};

    use super::Fields;

    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        /// A string with no escape and no control character.
        fn plain_string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            loop {
                match self.peek()? {
                    b'"' => break,
                    b'\\' => return None,
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
            let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
            self.i += 1;
            Some(s)
        }

        /// An integer in canonical form (no leading zero, no sign on zero)
        /// within ±(2^53 − 1).
        fn int(&mut self) -> Option<i64> {
            let negative = self.eat(b'-').is_some();
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = &self.b[start..self.i];
            let canonical = match digits {
                [] => false,
                [b'0'] => !negative,
                [b'0', ..] => false,
                _ => digits.len() <= 16,
            };
            if !canonical {
                return None;
            }
            let mut n: i64 = 0;
            for d in digits {
                n = n * 10 + i64::from(d - b'0');
            }
            (n <= MAX_SAFE_INTEGER).then_some(if negative { -n } else { n })
        }

        /// Skips any string, escapes included.
        fn skip_string(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                match self.peek()? {
                    b'"' => {
                        self.i += 1;
                        return Some(());
                    }
                    b'\\' => self.i += 2,
                    _ => self.i += 1,
                }
            }
        }

        /// Skips one value of the body or another field not read here.
        fn skip_value(&mut self, depth: usize) -> Option<()> {
            match self.peek()? {
                b'"' => self.skip_string(),
                open @ (b'{' | b'[') => {
                    if depth >= MAX_DEPTH {
                        return None;
                    }
                    let close = if open == b'{' { b'}' } else { b']' };
                    self.i += 1;
                    if self.eat(close).is_some() {
                        return Some(());
                    }
                    loop {
                        if open == b'{' {
                            self.skip_string()?;
                            self.eat(b':')?;
                        }
                        self.skip_value(depth + 1)?;
                        match self.peek()? {
                            b',' => self.i += 1,
                            c if c == close => {
                                self.i += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                _ => {
                    let start = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b'"' | b'{' | b'['))
                    {
                        self.i += 1;
                    }
                    (self.i > start).then_some(())
                }
            }
        }

        fn hlc(&mut self) -> Option<(i64, i64)> {
            self.eat(b'{')?;
            (self.plain_string()? == "ms").then_some(())?;
            self.eat(b':')?;
            let ms = self.int()?;
            self.eat(b',')?;
            (self.plain_string()? == "n").then_some(())?;
            self.eat(b':')?;
            let n = self.int()?;
            self.eat(b'}')?;
            Some((ms, n))
        }
    }

    /// The fields of canonical envelope bytes, or `None` if the bytes are not
    /// in the canonical shape this scan reads.
    pub(super) fn envelope_fields(bytes: &[u8]) -> Option<Fields<'_>> {
        let mut c = Cursor { b: bytes, i: 0 };
        let mut f = Fields::default();
        let mut last_key: Option<&str> = None;
        c.eat(b'{')?;
        loop {
            let key = c.plain_string()?;
            // ASCII keys: byte order is UTF-16 order. Sorted and unique.
            if !key.is_ascii() || last_key.is_some_and(|last| last >= key) {
                return None;
            }
            last_key = Some(key);
            c.eat(b':')?;
            match key {
                "seq" => f.seq = Some(u64::try_from(c.int()?).ok()?),
                "prev" => {
                    f.prev_hex = Some(c.plain_string()?);
                }
                "event_id" => f.event_id = Some(c.plain_string()?),
                "kind" => f.kind = Some(c.plain_string()?),
                "hlc" => {
                    let (ms, n) = c.hlc()?;
                    f.hlc_ms = Some(ms);
                    f.hlc_n = Some(n);
                }
                _ => c.skip_value(1)?,
            }
            match c.peek()? {
                b',' => c.i += 1,
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        (c.i == bytes.len()).then_some(f)
    }
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
    let acked_seq = Journal::acked_seq(conn)?;
    if acked_seq > head.seq {
        return Err(broken(head.seq + 1, BreakReason::Truncated { acked_seq }));
    }
    Ok(())
}

fn query_checkpoints<P: rusqlite::Params>(
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

/// Reads the device row, if the database has been initialized.
pub fn load_device(conn: &Connection) -> Result<Option<DeviceRecord>, JournalError> {
    let row: Option<(String, String, String, Option<String>, i64, bool)> = conn
        .query_row(
            "SELECT store_id, device_id, key_id, hub_public_key, created_at_ms, restored_from_backup
             FROM device WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?;
    let Some((store, device, key_id, hub, created_at_ms, restored_from_backup)) = row else {
        return Ok(None);
    };
    let bad = |column: &'static str, detail: String| JournalError::BadRow {
        table: "device",
        column,
        detail,
    };
    Ok(Some(DeviceRecord {
        store: store.parse().map_err(|e| bad("store_id", format!("{e}")))?,
        device: device
            .parse()
            .map_err(|e| bad("device_id", format!("{e}")))?,
        key_id: key_id.parse().map_err(|e| bad("key_id", format!("{e}")))?,
        hub_public_key: hub
            .map(|h| HubPublicKey::from_hex(&h))
            .transpose()
            .map_err(|e| bad("hub_public_key", format!("{e}")))?,
        created_at_ms,
        restored_from_backup,
    }))
}

/// Writes the device row (at `init`). Refuses if the database already has one.
pub fn insert_device(tx: &Transaction<'_>, device: &DeviceRecord) -> Result<(), JournalError> {
    if let Some(existing) = load_device(tx)? {
        return Err(JournalError::AlreadyInitialized(existing.device));
    }
    tx.execute(
        "INSERT INTO device (id, store_id, device_id, key_id, hub_public_key, created_at_ms,
                             restored_from_backup)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            device.store.to_string(),
            device.device.to_string(),
            device.key_id.as_str(),
            device.hub_public_key.map(|k| k.to_hex()),
            device.created_at_ms,
            device.restored_from_backup,
        ],
    )?;
    Ok(())
}

/// Sets or clears the "restored from a backup" mark of the device row (set in a
/// backup copy; cleared once the node has synced with the hub).
pub fn set_restored_from_backup(conn: &Connection, restored: bool) -> Result<(), JournalError> {
    let n = conn.execute(
        "UPDATE device SET restored_from_backup = ?1 WHERE id = 1",
        [restored],
    )?;
    if n == 0 {
        return Err(JournalError::NotInitialized);
    }
    Ok(())
}

/// The recorded first result of a client operation, if it was applied.
pub fn find_op(conn: &Connection, op_id: &OpId) -> Result<Option<OpRecord>, JournalError> {
    let row: Option<(String, String, String, Option<u64>, i64)> = conn
        .prepare_cached("SELECT kind, request_hash, result, seq, at_ms FROM ops WHERE op_id = ?1")?
        .query_row([op_id.to_string()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                get_opt_u64(r, 3)?,
                r.get(4)?,
            ))
        })
        .optional()?;
    let Some((kind, request_hash, result, seq, at_ms)) = row else {
        return Ok(None);
    };
    Ok(Some(OpRecord {
        op_id: *op_id,
        kind,
        request_hash: request_hash.parse().map_err(|e| JournalError::BadRow {
            table: "ops",
            column: "request_hash",
            detail: format!("{e}"),
        })?,
        result,
        seq,
        at_ms,
    }))
}

/// Records a client operation's first result, in the transaction that applied
/// it. Refuses an op id already recorded (look it up with [`find_op`] first).
pub fn record_op(tx: &Transaction<'_>, op: &OpRecord) -> Result<(), JournalError> {
    if find_op(tx, &op.op_id)?.is_some() {
        return Err(JournalError::DuplicateOp(op.op_id));
    }
    let seq = op.seq.map(|s| to_i64(s, "seq")).transpose()?;
    tx.prepare_cached(
        "INSERT INTO ops (op_id, kind, request_hash, result, seq, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        op.op_id.to_string(),
        op.kind,
        op.request_hash.to_hex(),
        op.result,
        seq,
        op.at_ms,
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::entropy::SeededRandom;
    use caja_shared::kind::ShiftOpened;
    use caja_shared::money::Money;

    fn event(seq: u64, prev: Hash256) -> Event {
        let draft = EventDraft {
            store: "01935f4e-8a00-7000-8000-000000000001".parse().expect("id"),
            device: "01935f4e-8a00-7000-8000-0000000000d1".parse().expect("id"),
            seq: Seq::new(seq).expect("seq"),
            prev,
            hlc: Hlc::new(1_763_880_000_000, 0).expect("hlc"),
            deps: vec![],
            body: EventBody::ShiftOpened(ShiftOpened {
                shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
                cashier: "ana".into(),
                opening_float: Money(0),
                staff_id: None,
            }),
        };
        Event::build(draft, &mut SeededRandom::new(1)).expect("event")
    }

    #[test]
    fn check_next_accepts_only_the_next_link() {
        let first = event(1, Hash256::ZERO);
        assert!(check_next(ChainHead::GENESIS, &first).is_ok());
        let head = ChainHead {
            seq: 1,
            hash: first.hash(),
        };
        assert!(check_next(head, &event(2, first.hash())).is_ok());
        let err = check_next(head, &event(3, first.hash())).unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::OutOfOrder {
                    expected_seq: 2,
                    seq: 3,
                    ..
                }
            ),
            "{err}"
        );
        let err = check_next(head, &event(2, Hash256::of(b"other"))).unwrap_err();
        assert!(matches!(err, JournalError::OutOfOrder { .. }), "{err}");
    }

    /// The scan and the strict parser must read the same fields from every
    /// canonical envelope, whatever its body holds.
    fn assert_skim_agrees(e: &Event) {
        let bytes = e.canonical_bytes();
        let parsed = canonical::parse(bytes).expect("canonical");
        let full = Fields::of(&parsed);
        assert_eq!(full.seq, Some(e.seq().get()));
        assert_eq!(
            tail::envelope_fields(bytes).as_ref(),
            Some(&full),
            "tail: {}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(
            skim::envelope_fields(bytes),
            Some(full),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }

    #[test]
    fn the_tail_gives_up_on_any_other_shape() {
        let e = event(1, Hash256::ZERO);
        let text = String::from_utf8(e.canonical_bytes().to_vec()).expect("utf8");
        assert!(tail::envelope_fields(text.as_bytes()).is_some());
        for bad in [
            format!("{text} "),
            text[..text.len() - 1].to_owned(),
            text.replacen("\"seq\":1", "\"seq\":01", 1),
            text.replacen("\"seq\":1", "\"seq\":1.0", 1),
            text.replacen("\"v\":1}", "\"v\":1,\"w\":2}", 1),
            text.replacen("\"hlc\":{\"ms\"", "\"hlc\":{\"n\":0,\"ms\"", 1),
            text.replacen("\"kind\":\"", "\"kind\":\"\\u0053", 1),
            text.replacen("\"prev\":\"0", "\"prev\":\"\\u0030", 1),
            "{}".to_owned(),
            String::new(),
        ] {
            assert_eq!(tail::envelope_fields(bad.as_bytes()), None, "{bad}");
        }
    }

    fn event_with(body: EventBody, seq: u64, hlc: Hlc) -> Event {
        let draft = EventDraft {
            store: "01935f4e-8a00-7000-8000-000000000001".parse().expect("id"),
            device: "01935f4e-8a00-7000-8000-0000000000d1".parse().expect("id"),
            seq: Seq::new(seq).expect("seq"),
            prev: if seq == 1 {
                Hash256::ZERO
            } else {
                Hash256::of(b"p")
            },
            hlc,
            deps: vec!["019aaf70-dc00-7000-8000-0000000000a1".parse().expect("id")],
            body,
        };
        Event::build(draft, &mut SeededRandom::new(seq)).expect("event")
    }

    #[test]
    fn the_scan_reads_what_the_parser_reads() {
        for (i, text) in [
            "ana",
            "",
            "quote \" and backslash \\ and slash /",
            "braces { } [ ] , : inside",
            "\"seq\":99,\"prev\":\"x\"",
            "control \u{1} \n \t \u{1f}",
            "ñandú 🧾 \u{7f}",
        ]
        .iter()
        .enumerate()
        {
            let seq = u64::try_from(i).expect("small") + 1;
            let body = EventBody::ShiftOpened(ShiftOpened {
                shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
                cashier: (*text).to_owned(),
                opening_float: Money(-5),
                staff_id: None,
            });
            assert_skim_agrees(&event_with(body, seq, Hlc::new(0, 0).expect("hlc")));
            let body = EventBody::ShiftOpened(ShiftOpened {
                shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
                cashier: (*text).to_owned(),
                opening_float: Money(9_007_199_254_740_991),
                staff_id: None,
            });
            assert_skim_agrees(&event_with(
                body,
                9_007_199_254_740_991 - seq,
                Hlc::new((1 << 48) - 1, u32::MAX).expect("hlc"),
            ));
        }
    }

    #[test]
    fn the_scan_gives_up_on_anything_not_canonical() {
        let e = event(1, Hash256::ZERO);
        let text = String::from_utf8(e.canonical_bytes().to_vec()).expect("utf8");
        assert!(skim::envelope_fields(text.as_bytes()).is_some());
        for bad in [
            text.replacen("{", "{ ", 1),
            text.replacen("\"seq\":1", "\"seq\":01", 1),
            text.replacen("\"seq\":1", "\"seq\":1.0", 1),
            text.replacen("\"seq\":1", "\"seq\":1,\"seq\":1", 1),
            text.replacen("\"body\"", "\"zbody\"", 1),
            text.replacen("\"prev\":\"0", "\"prev\":\"\\u0030", 1),
            text.replacen("\"hlc\":{\"ms\"", "\"hlc\":{\"n\":0,\"ms\"", 1),
            format!("{text} "),
            text[..text.len() - 1].to_owned(),
        ] {
            assert_eq!(skim::envelope_fields(bad.as_bytes()), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn prop_the_scan_agrees_with_the_parser(
            cashier in "\\PC{0,40}",
            reference in proptest::option::of("[\\x00-\\x7f]{0,30}"),
            qty in 1i64..=9_007_199_254_740_991,
            seq in 1u64..=9_007_199_254_740_991,
            ms in 0i64..(1 << 48),
            n: u32,
        ) {
            let hlc = Hlc::new(ms, n).expect("hlc");
            let body = EventBody::ShiftOpened(ShiftOpened {
                shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
                cashier,
                opening_float: Money(qty),
                staff_id: None,
            });
            assert_skim_agrees(&event_with(body, seq, hlc));
            let body = EventBody::StockReceived(caja_shared::kind::StockReceived {
                product: "SKU-1".parse().expect("sku"),
                qty_milli: caja_shared::money::QtyMilli(-qty),
                reference,
            });
            assert_skim_agrees(&event_with(body, seq, hlc));
        }
    }

    #[test]
    fn checkpoint_reasons_round_trip() {
        for r in [
            CheckpointReason::Periodic,
            CheckpointReason::ShiftClose,
            CheckpointReason::Push,
            CheckpointReason::KeyRotation,
        ] {
            assert_eq!(CheckpointReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(CheckpointReason::parse("other"), None);
    }

    #[test]
    fn break_messages_name_the_first_bad_seq_and_reason() {
        let b = Break {
            seq: 150,
            reason: BreakReason::SeqGap { found: Some(151) },
        };
        assert_eq!(
            b.to_string(),
            "journal broken at seq 150: seq_gap (found seq 151 where seq 150 belongs)"
        );
        let e = broken(42, BreakReason::HashMismatch);
        assert_eq!(e.first_bad_seq(), Some(42));
        assert!(e
            .to_string()
            .starts_with("journal broken at seq 42: hash_mismatch"));
        assert!(e.to_string().contains("refusing to sell"));
    }
}
