//! Why a journal read or write failed, and where a broken chain breaks: the
//! first bad seq and its reason ([`Break`]), inside [`JournalError`].
//!
//! Invariant: plain data and messages only — no SQL, no I/O; every other file
//! of the journal reports through these types.

use std::fmt;
use std::io;

use caja_shared::digest::Hash256;
use caja_shared::event::EnvelopeError;
use caja_shared::hlc::HlcError;
use caja_shared::ids::{DeviceId, OpId};

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

/// A broken chain at `seq`.
pub(super) fn broken(seq: u64, reason: BreakReason) -> JournalError {
    JournalError::Broken(Break { seq, reason })
}
