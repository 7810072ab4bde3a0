//! Hash-chain verification: every event names the hash of the device's previous
//! event, so editing, deleting or reordering history breaks the chain at a
//! position a verifier can name.
//!
//! For each event, in this order (DESIGN.md and `vectors/event_chain.json`):
//! 1. `seq` must be the previous seq + 1 → else `seq_gap`;
//! 2. `prev` must equal the previous event's hash → else `prev_mismatch`;
//! 3. the stored hash must equal SHA-256 of the canonical envelope → else
//!    `hash_mismatch`.
//!
//! Positions are 1-based in the list given.

use std::fmt;

use crate::canonical::Value;
use crate::digest::Hash256;

/// Where a chain stands: the last verified seq (0 for an empty chain) and its hash
/// (zeros for an empty chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Last seq, 0 when empty.
    pub seq: u64,
    /// Hash of the event at `seq`, zeros when empty.
    pub hash: Hash256,
}

impl ChainHead {
    /// The head of an empty chain.
    pub const GENESIS: ChainHead = ChainHead {
        seq: 0,
        hash: Hash256::ZERO,
    };
}

/// Why the chain breaks at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainFault {
    /// `seq` is not the previous seq + 1.
    SeqGap {
        /// The seq that should have been there.
        expected: u64,
    },
    /// `prev` is not the previous event's hash.
    PrevMismatch,
    /// The stored hash is not the hash of the stored bytes.
    HashMismatch,
    /// The envelope lacks a readable `seq` or `prev`.
    BadField(&'static str),
}

impl ChainFault {
    /// The reason code a verifier reports: `seq_gap`, `prev_mismatch`,
    /// `hash_mismatch` or `bad_field`.
    pub fn code(&self) -> &'static str {
        match self {
            ChainFault::SeqGap { .. } => "seq_gap",
            ChainFault::PrevMismatch => "prev_mismatch",
            ChainFault::HashMismatch => "hash_mismatch",
            ChainFault::BadField(_) => "bad_field",
        }
    }
}

/// The first bad position of a chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ChainBreak {
    /// 1-based position in the list verified.
    pub position: u64,
    /// The seq found at that position, when readable.
    pub seq: Option<u64>,
    /// Why it is bad.
    pub fault: ChainFault,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.fault, self.seq) {
            (ChainFault::SeqGap { expected }, Some(seq)) => write!(
                f,
                "chain broken at position {} (seq {seq}): seq_gap, expected seq {expected}",
                self.position
            ),
            (ChainFault::BadField(field), _) => write!(
                f,
                "chain broken at position {}: bad_field {field}",
                self.position
            ),
            (fault, Some(seq)) => write!(
                f,
                "chain broken at position {} (seq {seq}): {}",
                self.position,
                fault.code()
            ),
            (fault, None) => write!(
                f,
                "chain broken at position {}: {}",
                self.position,
                fault.code()
            ),
        }
    }
}

/// Verifies a chain one event at a time, so a journal of millions of events can
/// be checked in constant memory (and with a progress bar).
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    head: ChainHead,
    position: u64,
}

impl ChainVerifier {
    /// Starts after `head` (use [`ChainHead::GENESIS`] for a whole chain, or a
    /// verified checkpoint to check only what follows it).
    pub fn new(head: ChainHead) -> ChainVerifier {
        ChainVerifier { head, position: 0 }
    }

    /// The last verified position.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// How many events were verified.
    pub fn verified(&self) -> u64 {
        self.position
    }

    /// Checks one event given its `seq`, `prev`, the hash recomputed from its
    /// canonical bytes and the hash that was stored beside it.
    pub fn check(
        &mut self,
        seq: u64,
        prev: &Hash256,
        computed: &Hash256,
        stored: &Hash256,
    ) -> Result<(), ChainBreak> {
        let position = self.position + 1;
        let expected = self.head.seq + 1;
        let fail = |fault| ChainBreak {
            position,
            seq: Some(seq),
            fault,
        };
        if seq != expected {
            return Err(fail(ChainFault::SeqGap { expected }));
        }
        if *prev != self.head.hash {
            return Err(fail(ChainFault::PrevMismatch));
        }
        if computed != stored {
            return Err(fail(ChainFault::HashMismatch));
        }
        self.head = ChainHead { seq, hash: *stored };
        self.position = position;
        Ok(())
    }

    /// Checks one event given as a JSON envelope and the hash stored beside it.
    pub fn check_value(&mut self, envelope: &Value, stored: &Hash256) -> Result<(), ChainBreak> {
        let (seq, prev) = seq_and_prev(envelope, self.position + 1)?;
        let computed = Hash256::of(&envelope.to_canonical_bytes());
        self.check(seq, &prev, &computed, stored)
    }
}

impl ChainVerifier {
    /// Checks one event given as its stored canonical bytes and stored hash: the
    /// hash is recomputed over the bytes exactly as stored. Bytes that are not
    /// JSON at all are reported as `bad_field` at this position.
    pub fn check_bytes(&mut self, bytes: &[u8], stored: &Hash256) -> Result<(), ChainBreak> {
        let position = self.position + 1;
        let value = crate::canonical::parse(bytes).map_err(|_| ChainBreak {
            position,
            seq: None,
            fault: ChainFault::BadField("json"),
        })?;
        let (seq, prev) = seq_and_prev(&value, position)?;
        self.check(seq, &prev, &Hash256::of(bytes), stored)
    }
}

fn seq_and_prev(envelope: &Value, position: u64) -> Result<(u64, Hash256), ChainBreak> {
    let seq = envelope
        .get("seq")
        .and_then(Value::as_i64)
        .and_then(|n| u64::try_from(n).ok());
    let bad = |field| ChainBreak {
        position,
        seq,
        fault: ChainFault::BadField(field),
    };
    let seq = seq.ok_or_else(|| bad("seq"))?;
    let prev: Hash256 = envelope
        .get("prev")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("prev"))?;
    Ok((seq, prev))
}

/// Verifies a whole list of (envelope, stored hash) from `start`, returning the
/// new head or the first bad position.
pub fn verify_chain<'a>(
    start: ChainHead,
    events: impl IntoIterator<Item = (&'a Value, &'a Hash256)>,
) -> Result<ChainHead, ChainBreak> {
    let mut v = ChainVerifier::new(start);
    for (envelope, stored) in events {
        v.check_value(envelope, stored)?;
    }
    Ok(v.head())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_chain_verifies_to_genesis() {
        assert_eq!(verify_chain(ChainHead::GENESIS, []), Ok(ChainHead::GENESIS));
    }

    #[test]
    fn missing_seq_is_a_bad_field() {
        let v = Value::Object(Default::default());
        let err = verify_chain(ChainHead::GENESIS, [(&v, &Hash256::ZERO)]).unwrap_err();
        assert_eq!(err.fault, ChainFault::BadField("seq"));
        assert_eq!(err.position, 1);
        assert!(err.to_string().contains("bad_field"));
    }
}
