//! Following a hub restored from a backup (DESIGN "Hub restore (disaster
//! recovery)"): every hub answer carries the hub's restore epoch; when it is
//! newer than the one this register followed last, the register asks the hub
//! what it holds (`POST /v1/sync/hub-events` with no events: the store's hub
//! chain head, this register's acknowledged seq, the signed head of the
//! audit tree the hub restarted from), re-bases its trust in the audit log
//! on that signed head, pushes again what of its own chain the hub lacks,
//! returns the hub events it holds beyond the hub's head (with the hub
//! checkpoint it verified when it pulled them), reports, and starts pulling
//! from the beginning again.
//!
//! Invariant: nothing is trusted that the hub key did not sign: the
//! restarted-from head must verify (else the hub is `critical`), and the
//! hub events returned are only those this register verified when it
//! pulled them. The epoch is recorded only once all of it succeeded, so an
//! interrupted attempt is redone whole at the next round (every step is
//! idempotent at the hub). The discontinuity stays a warning in `status`
//! until head office acknowledges it.

use caja_shared::canonical::Value;
use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;

use super::{RoundReport, SyncEngine, SyncError};
use crate::journal::Journal;
use crate::sync::state;

/// Attempts to report before giving up for this round (sales made between
/// the push and the report move the head).
const REPORT_ATTEMPTS: usize = 3;

fn count(v: &Value, k: &str) -> Result<u64, SyncError> {
    v.get(k)
        .and_then(Value::as_i64)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| SyncError::BadHubData(format!("hub-events answer lacks {k}")))
}

impl<C: Clock, R: RandomSource> SyncEngine<C, R> {
    /// The hub's restore epoch when it is newer than the one followed last.
    pub(super) fn new_restore_epoch(&self) -> Result<Option<u64>, SyncError> {
        let Some(seen) = self.client.restore_epoch() else {
            return Ok(None);
        };
        let followed = state::hub_restore(self.db.conn())?.map_or(0, |r| r.epoch);
        Ok((seen > followed).then_some(seen))
    }

    fn hub_events_call(&mut self, body: Vec<u8>) -> Result<Value, SyncError> {
        Ok(self.request("POST", "/v1/sync/hub-events", body)?)
    }

    /// Follows a restored hub (see the module doc).
    pub(super) fn follow_restore(&mut self, report: &mut RoundReport) -> Result<(), SyncError> {
        let probe = self.hub_events_call(b"{\"events\":[]}".to_vec())?;
        let epoch = count(&probe, "restore_epoch")?;
        let hub_seq = count(&probe, "hub_seq")?;
        let hub_acked = count(&probe, "acked_seq")?;
        tracing::warn!(
            epoch,
            hub_seq,
            hub_acked,
            "the hub was restored from a backup: returning what it lacks"
        );
        let restarted = self.rebase_hub_log(&probe)?;
        let now = self.clock.now_ms();
        // What the hub acknowledged after its backup is lost with it.
        state::rewind_acked_seq(self.db.conn(), hub_acked, now)?;
        self.push_all(report)?;
        let mut reported = self.return_hub_events(hub_seq)?;
        for _ in 1..REPORT_ATTEMPTS {
            if reported {
                break;
            }
            self.push_all(report)?;
            let head = Journal::head(self.db.conn())?.seq;
            let v =
                self.hub_events_call(format!("{{\"events\":[],\"own_seq\":{head}}}").into_bytes())?;
            reported = v.get("reported") == Some(&Value::Bool(true));
        }
        if !reported {
            return Err(SyncError::BadHubData(
                "the restored hub did not record this register's report; retried next round".into(),
            ));
        }
        let tx = self.db.write_tx()?;
        state::set_hub_restore(
            &tx,
            epoch,
            self.clock.now_ms(),
            restarted.as_ref().map(|(size, _)| *size),
            restarted.as_ref().map(|(_, root)| root.as_str()),
        )?;
        // Everything the hub sends is offered again from the start: what is
        // held already is skipped, what the restored hub ordered anew comes.
        state::set_pull_cursor(&tx, "")?;
        tx.commit()?;
        Ok(())
    }

    /// Returns the hub events held beyond `hub_seq`, with `own_seq`; whether
    /// the hub recorded the report.
    fn return_hub_events(&mut self, hub_seq: u64) -> Result<bool, SyncError> {
        let conn = self.db.conn();
        let held = state::hub_events_head(conn)?;
        let own = Journal::head(conn)?.seq;
        let mut body = b"{\"events\":[".to_vec();
        if held > hub_seq {
            let Some((cp_seq, cp)) = state::held_hub_checkpoint(conn)?.filter(|(s, _)| *s == held)
            else {
                return Err(SyncError::BadHubData(format!(
                    "this register holds hub events to seq {held} the hub lacks (from {}), but no hub checkpoint of seq {held} to prove them",
                    hub_seq + 1
                )));
            };
            let events = state::hub_events_between(conn, hub_seq, cp_seq)?;
            for (i, e) in events.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e);
            }
            body.extend_from_slice(b"],\"hub_checkpoint\":");
            body.extend_from_slice(cp.as_bytes());
        } else {
            body.push(b']');
        }
        body.extend_from_slice(format!(",\"own_seq\":{own}}}").as_bytes());
        let v = self.hub_events_call(body)?;
        tracing::info!(
            accepted = count(&v, "accepted")?,
            duplicates = count(&v, "duplicates")?,
            "hub events returned to the restored hub"
        );
        Ok(v.get("reported") == Some(&Value::Bool(true)))
    }

    /// Verifies the signed head the hub restarted from and, when this
    /// register had trusted a larger (or another) tree, re-bases its trust on
    /// it; the next audit check then proves the restored log extends it.
    /// Returns the restarted-from size and root.
    fn rebase_hub_log(&mut self, probe: &Value) -> Result<Option<(u64, String)>, SyncError> {
        let Some(sth) = probe
            .get("restored")
            .filter(|r| **r != Value::Null)
            .and_then(|r| r.get("sth"))
        else {
            return Ok(None);
        };
        let sth = super::audit::parse_sth(sth)?;
        let Some(hub_key) = self.device.hub_public_key else {
            return Ok(Some((sth.tree_size, sth.root.to_hex())));
        };
        let head = match sth.verify(&hub_key) {
            Ok(h) => h,
            Err(e) => {
                return self
                    .distrust(format!(
                        "the head the hub says it restarted from ({} entries) does not verify with the hub key: {e}",
                        sth.tree_size
                    ))
                    .map(|()| None)
            }
        };
        let before = state::verified_head(self.db.conn())?;
        let rebase = match before {
            Some((Some(size), Some(root))) => {
                let size = u64::try_from(size).unwrap_or(0);
                size > head.tree_size || (size == head.tree_size && root != head.root.to_hex())
            }
            _ => false,
        };
        if rebase {
            tracing::warn!(
                tree_size = head.tree_size,
                "the hub's audit log restarted from an older head (restored backup): trust re-based on its signed head"
            );
            self.trust(&head, &sth)?;
        }
        Ok(Some((head.tree_size, head.root.to_hex())))
    }

    /// Records head office's acknowledgement seen in a pull answer.
    pub(super) fn note_restore_ack(&self, v: &Value) -> Result<(), SyncError> {
        if v.get("restore_acknowledged") != Some(&Value::Bool(true)) {
            return Ok(());
        }
        let Some(epoch) = v
            .get("restore_epoch")
            .and_then(Value::as_i64)
            .and_then(|n| u64::try_from(n).ok())
        else {
            return Ok(());
        };
        if let Some(r) = state::hub_restore(self.db.conn())? {
            if r.epoch == epoch && !r.acknowledged {
                state::acknowledge_hub_restore(self.db.conn(), epoch)?;
            }
        }
        Ok(())
    }
}
