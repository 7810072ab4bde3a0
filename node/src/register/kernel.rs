//! The one [`Register`] type and how an operation runs: opening the data
//! directory (chain verified from the last checkpoint), the operation
//! transaction (`Register::run`: retried op ids answered with their first
//! result, the restored-backup guard, the op record, one commit), the
//! per-transaction context operations append through (`OpCtx`), and the
//! supervisor approval check.
//!
//! Invariant: an operation is acknowledged only after its transaction is
//! durable; this file knows no operation area (the areas build on it).

use caja_shared::canonical::Value;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{CustomerId, EventId, OpId, ShiftId};
use caja_shared::kind::EventBody;
use caja_shared::money::Money;
use rusqlite::{Connection, Transaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::datadir::DataDir;
use crate::db::Db;
use crate::error::{OpError, Refusal};
use crate::journal::{self, DeviceRecord, Journal, JournalError, OpRecord};
use crate::keyfile;
use crate::projection;
use crate::queries;
use crate::sale::{CatalogItem, CreditStanding};

/// Longest free text (names, reasons, references) accepted.
pub const MAX_TEXT_LEN: usize = 200;

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> OpError {
    OpError::invalid(field, reason)
}

pub(super) fn text(field: &'static str, s: &str, required: bool) -> Result<String, OpError> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if t.chars().count() > MAX_TEXT_LEN {
        return Err(invalid(
            field,
            format!("longer than {MAX_TEXT_LEN} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(t.to_owned())
}

/// Result of a void, a stock movement, a customer change: the seq written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// Journal seqs written, in order.
    pub seqs: Vec<u64>,
}

/// An open register: its database, journal writer, clock and random source.
#[derive(Debug)]
pub struct Register<C: Clock, R: RandomSource> {
    pub(super) db: Db,
    pub(super) journal: Journal,
    pub(super) clock: C,
    pub(super) rng: R,
    pub(super) config: crate::config::NodeConfig,
    /// Who signs this register's e-CF, or why nobody can (asked only when an
    /// `E` series is used).
    pub(super) ecf: crate::ecf::IssuerSlot,
    /// The checkpointer's policy while one was started
    /// ([`Register::start_checkpointer`]): a connection opened again after a
    /// disk fault gets one too.
    pub(super) checkpoint: Option<crate::checkpointer::CheckpointPolicy>,
}

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// Opens an initialized data directory. Verifies the chain from the last
    /// checkpoint: a journal whose history was changed is refused here, with
    /// the first bad seq, so a broken register cannot sell.
    pub fn open(dir: &DataDir, clock: C, rng: R) -> Result<Self, OpError> {
        if !dir.db_path().exists() {
            return Err(JournalError::NotInitialized.into());
        }
        let config = crate::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())?;
        let db = Db::open(dir.db_path())?;
        let key = keyfile::read_key_file(&dir.key_path())?;
        let journal = Journal::open(db.conn(), key, config.max_hlc_drift_ms)?;
        let ecf = crate::ecf::configured::load(dir, &config);
        Ok(Register {
            db,
            journal,
            clock,
            rng,
            config,
            ecf,
            checkpoint: None,
        })
    }

    /// Moves the WAL's checkpoints off this register's commits to a thread
    /// of their own (`checkpointer`): for a process that sells for long (the
    /// cashier's screen, `sell --repeat`). `Ok(false)` when not started (one
    /// runs, or the disk-fault tests armed a fault). Stopped and joined with
    /// [`Register::stop_checkpointer`] or when the register is dropped.
    pub fn start_checkpointer(
        &mut self,
        policy: crate::checkpointer::CheckpointPolicy,
    ) -> Result<bool, OpError> {
        let started = self.db.start_checkpointer(policy)?;
        if started {
            self.checkpoint = Some(policy);
        }
        Ok(started)
    }

    /// Stops the checkpointer, if one runs; what it did.
    pub fn stop_checkpointer(&mut self) -> Option<crate::checkpointer::CheckpointStats> {
        self.checkpoint = None;
        self.db.stop_checkpointer()
    }

    /// Asks the running checkpointer's thread for a pass now (tests and
    /// diagnostics); nothing without one.
    pub fn request_checkpoint(&self) {
        if let Some(c) = self.db.checkpointer() {
            c.request();
        }
    }

    /// What the running checkpointer did so far.
    pub fn checkpoint_stats(&self) -> Option<crate::checkpointer::CheckpointStats> {
        self.db
            .checkpointer()
            .map(crate::checkpointer::Checkpointer::stats)
    }

    /// Replaces the register's e-CF issuer (tests and the demo inject one made
    /// from a throwaway certificate; `open` loads the configured one).
    pub fn set_ecf_issuer(&mut self, slot: crate::ecf::IssuerSlot) {
        self.ecf = slot;
    }

    /// The e-CF issuer, or why there is none.
    pub(super) fn ecf_issuer(
        &self,
    ) -> Result<std::sync::Arc<dyn crate::ecf::EcfIssuer>, crate::ecf::EcfUnavailable> {
        self.ecf.clone()
    }

    /// The database connection, for reads.
    pub fn conn(&self) -> &Connection {
        self.db.conn()
    }

    /// The connection, mutable: for diagnostics such as a statement trace
    /// (benchmarks). Writes belong in operations, which run in their own
    /// transactions.
    pub fn conn_mut(&mut self) -> &mut Connection {
        self.db.conn_mut()
    }

    /// The configuration read when the register was opened.
    pub fn config(&self) -> &crate::config::NodeConfig {
        &self.config
    }

    /// The register's clock now (UTC ms).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The device identity.
    pub fn device(&self) -> &DeviceRecord {
        self.journal.device()
    }

    /// Runs one operation in one transaction, answering a retried op id with its
    /// first result.
    pub(super) fn run<T, F>(
        &mut self,
        op_id: OpId,
        kind: &str,
        request: &impl Serialize,
        f: F,
    ) -> Result<T, OpError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&mut OpCtx<'_, '_, R>) -> Result<T, OpError>,
    {
        let request_hash = request_hash(kind, request)?;
        let now_ms = self.clock.now_ms();
        let tx = self.db.write_tx()?;
        crate::crashpoint::hit("op:begun");
        if let Some(prior) = journal::find_op(&tx, &op_id)? {
            if prior.request_hash != request_hash || prior.kind != kind {
                return Err(OpError::Refused(Refusal::OpIdReused(op_id)));
            }
            return Ok(serde_json::from_str(&prior.result)?);
        }
        let mut ctx = OpCtx {
            tx: &tx,
            journal: &mut self.journal,
            rng: &mut self.rng,
            now_ms,
            last_seq: None,
        };
        // Read under the write lock: a sync process may have just cleared it.
        if journal::restored_from_backup(ctx.tx)? {
            return Err(OpError::Refused(Refusal::RestoredNeedsSync));
        }
        let result = f(&mut ctx)?;
        let last_seq = ctx.last_seq;
        journal::record_op(
            &tx,
            &OpRecord {
                op_id,
                kind: kind.to_owned(),
                request_hash,
                result: serde_json::to_string(&result)?,
                seq: last_seq,
                at_ms: now_ms,
            },
        )?;
        crate::crashpoint::hit("op:recorded");
        if let Err(e) = tx.commit() {
            let e = OpError::from(e);
            if e.is_disk_fault() {
                // A failed write or fsync leaves what reached the disk
                // unknown: the connection is not trusted again, the next
                // operation runs on a new one (it keeps this one if the disk
                // cannot even open).
                if let Ok(db) = Db::open(self.db.path()) {
                    self.db = db;
                    if let Some(policy) = self.checkpoint {
                        // Best effort: without it the new connection
                        // checkpoints by itself, as every other one does.
                        let _ = self.db.start_checkpointer(policy);
                    }
                }
            }
            return Err(e);
        }
        crate::crashpoint::hit("op:committed");
        Ok(result)
    }

    /// Checks a member of staff's PIN and role in a transaction of its own,
    /// so a refusal moves only the failure counter.
    pub(super) fn approve(
        &mut self,
        cred: &crate::staff::Credentials,
        needed: caja_shared::kind::Role,
        action: &'static str,
    ) -> Result<caja_shared::kind::Approval, OpError> {
        let now = self.clock.now_ms();
        let tx = self.db.write_tx()?;
        let r = crate::staff::check(&tx, cred, needed, action, now)?;
        tx.commit()?;
        Ok(r?)
    }

    /// The supervisor's approval an action needs on a register that has
    /// staff (`None` on a register without staff: nothing to check against).
    pub(super) fn approval_for(
        &mut self,
        cred: Option<&crate::staff::Credentials>,
        action: &'static str,
    ) -> Result<Option<caja_shared::kind::Approval>, OpError> {
        if !crate::staff::has_staff(self.conn())? {
            return Ok(None);
        }
        let cred = cred.ok_or(OpError::Refused(Refusal::ApprovalRequired(action)))?;
        self.approve(cred, caja_shared::kind::Role::Supervisor, action)
            .map(Some)
    }
}

/// The mutable parts one operation works with inside its transaction.
pub(super) struct OpCtx<'t, 'c, R> {
    pub(super) tx: &'t Transaction<'c>,
    pub(super) journal: &'t mut Journal,
    pub(super) rng: &'t mut R,
    pub(super) now_ms: i64,
    pub(super) last_seq: Option<u64>,
}

impl<R: RandomSource> OpCtx<'_, '_, R> {
    /// Appends an event and applies it to the projections.
    pub(super) fn append(&mut self, body: EventBody, deps: Vec<EventId>) -> Result<u64, OpError> {
        let event =
            self.journal
                .append(self.tx, body.clone(), deps, &mut *self.rng, self.now_ms)?;
        let seq = event.seq().get();
        let seq_i = i64::try_from(seq).map_err(|_| invalid("seq", "out of range"))?;
        projection::apply_own(self.tx, seq_i, &event, &body)?;
        crate::crashpoint::hit("projection:applied");
        self.last_seq = Some(seq);
        Ok(seq)
    }

    pub(super) fn open_shift(&self) -> Result<(ShiftId, String, i64), OpError> {
        let (shift, cashier, seq) =
            projection::open_shift(self.tx)?.ok_or(OpError::Refused(Refusal::ShiftNotOpen))?;
        let shift: ShiftId = shift
            .parse()
            .map_err(|_| invalid("shift", "stored shift id unreadable"))?;
        Ok((shift, cashier, seq))
    }

    /// The open shift and the event id of its `ShiftOpened` (what a sale
    /// depends on), read together.
    pub(super) fn open_shift_event(&self) -> Result<(ShiftId, String, EventId), OpError> {
        let (shift, cashier, seq, event) = projection::open_shift_event(self.tx)?
            .ok_or(OpError::Refused(Refusal::ShiftNotOpen))?;
        let shift: ShiftId = shift
            .parse()
            .map_err(|_| invalid("shift", "stored shift id unreadable"))?;
        let event = event
            .ok_or_else(|| invalid("seq", format!("no event at seq {seq}")))?
            .parse()
            .map_err(|_| invalid("seq", format!("unreadable event id at seq {seq}")))?;
        Ok((shift, cashier, event))
    }

    pub(super) fn event_id_at(&self, seq: impl TryInto<u64>) -> Result<EventId, OpError> {
        // The index column, checked against the event's bytes by `verify`.
        let seq: u64 = seq.try_into().map_err(|_| invalid("seq", "out of range"))?;
        let seq_i = i64::try_from(seq).map_err(|_| invalid("seq", "out of range"))?;
        let id: String = queries::event_id_at(self.tx, seq_i)?
            .ok_or_else(|| invalid("seq", format!("no event at seq {seq}")))?;
        id.parse()
            .map_err(|_| invalid("seq", format!("unreadable event id at seq {seq}")))
    }

    pub(super) fn customer_exists(&self, c: &CustomerId) -> Result<i64, OpError> {
        queries::credit_limit(self.tx, c)?.ok_or(OpError::Refused(Refusal::UnknownCustomer(*c)))
    }

    pub(super) fn credit(&self, c: &CustomerId) -> Result<CreditStanding, OpError> {
        let limit = self.customer_exists(c)?;
        let balance = projection::customer_balance(self.tx, &c.to_string())?;
        let store_credit = projection::store_credit_balance(self.tx, &c.to_string())?;
        Ok(CreditStanding {
            limit: Money(limit),
            balance: Money(balance),
            store_credit: Money(store_credit),
        })
    }

    pub(super) fn item(&self, code: &str) -> Result<CatalogItem, OpError> {
        queries::lookup_item(self.tx, code)?.ok_or_else(|| {
            OpError::Refused(Refusal::UnknownProduct(code.chars().take(64).collect()))
        })
    }
}

/// SHA-256 of the canonical JSON of `{"kind": kind, "request": request}`,
/// written in its key order (`kind` sorts before `request`) without building
/// the outer object: the same bytes, one copy of the request fewer.
fn request_hash(kind: &str, request: &impl Serialize) -> Result<Hash256, OpError> {
    let request = Value::from_typed(request).map_err(|e| invalid("request", e.to_string()))?;
    let mut bytes = Vec::with_capacity(512);
    bytes.extend_from_slice(b"{\"kind\":");
    bytes.extend_from_slice(&Value::String(kind.to_owned()).to_canonical_bytes());
    bytes.extend_from_slice(b",\"request\":");
    bytes.extend_from_slice(&request.to_canonical_bytes());
    bytes.push(b'}');
    Ok(Hash256::of(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash a retried operation is compared by must not change with how
    /// it is computed: the bytes are those of the whole object.
    #[test]
    fn request_hash_is_that_of_the_canonical_object() {
        let request = serde_json::json!({"lines": [{"code": "ARROZ", "qty_milli": 2000}], "z": null, "a": "ñ"});
        let whole = Value::from_serde(serde_json::json!({"kind": "sell", "request": request}))
            .expect("canonical");
        assert_eq!(
            request_hash("sell", &request).expect("hash"),
            Hash256::of(&whole.to_canonical_bytes())
        );
    }
}
