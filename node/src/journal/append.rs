//! The write path: a new event of this device (`Journal::append`) and one of
//! its events received back from the hub (`Journal::append_received`), each
//! inserted inside the caller's transaction, with a periodic checkpoint every
//! [`CHECKPOINT_EVERY`] events.
//!
//! Invariant: append asserts `seq == last + 1` and `prev == last hash` before
//! the insert, and the HLC never stamps below the journal's last stamp. The
//! crash points `journal:before_insert`, `journal:inserted` and
//! `journal:checkpoint` mark the write path for the crash sweep.

use rusqlite::Transaction;

use caja_shared::chain::ChainHead;
use caja_shared::entropy::RandomSource;
use caja_shared::event::{Event, EventDraft};
use caja_shared::hlc::HlcState;
use caja_shared::ids::{EventId, Seq};
use caja_shared::kind::EventBody;

use super::chain::{self, check_next, insert_event, last_row};
use super::checkpoint::{CheckpointReason, CHECKPOINT_EVERY};
use super::error::JournalError;
use super::Journal;

impl Journal {
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
        check_next(chain::head(tx)?, event)?;
        if env.hlc > self.hlc.last() {
            self.hlc = HlcState::restore(env.hlc, self.hlc.max_drift_ms())?;
        }
        insert_event(tx, event)?;
        if event.seq().get() % CHECKPOINT_EVERY == 0 {
            self.write_checkpoint(tx, CheckpointReason::Periodic, now_ms)?;
        }
        Ok(())
    }
}
