//! The hub's audit log as a register checks it at every sync round (DESIGN
//! "Audit log v1"): the register keeps the last signed tree head it verified
//! (`hub_audit`, migration 0008) and, each round, fetches the hub's latest one,
//! checks its Ed25519 signature with the hub key from enrollment, and checks
//! with an RFC 9162 consistency proof that the new tree extends the old one.
//!
//! A head that does not verify, a smaller tree, another root for the same size,
//! or a consistency proof that fails means the hub rewrote history it had
//! already committed to: the register marks the hub `critical` in its status,
//! keeps it so across restarts, and from then on applies no hub data (catalog,
//! prices, grants) — pushing its own events and selling go on. Network trouble
//! and malformed answers are ordinary sync failures, never `critical`.
//!
//! Once a head has been verified, the hub may not withdraw its log: a refusal
//! of the head or of a consistency proof (a 404 or any other answer that is
//! not overload, a server failure, or a refusal of this register's own
//! credentials — see [`withdraws_log`]) is as critical as an inconsistent
//! head, since a rolled-back or hostile hub would otherwise skip the proof by
//! answering "not found". Before any head was verified, a 404 means a hub from
//! before the audit log and the register stays `unverified`.

use caja_shared::canonical::Value;
use caja_shared::digest::{Hash256, Signature};
use caja_shared::merkle::{self, SignedTreeHead, TreeHead};
use rusqlite::Connection;

use super::{SyncEngine, SyncError};
use crate::sync::client::HubError;
use crate::sync::state::{self, hub_log_status};
use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;

fn previous(conn: &Connection) -> Result<Option<(u64, Hash256)>, SyncError> {
    let row = state::verified_head(conn)?;
    match row {
        Some((Some(size), Some(root))) => {
            let size = u64::try_from(size)
                .map_err(|_| SyncError::BadHubData("stored tree size is negative".into()))?;
            let root = root
                .parse()
                .map_err(|e| SyncError::BadHubData(format!("stored tree root: {e}")))?;
            Ok(Some((size, root)))
        }
        _ => Ok(None),
    }
}

/// The signed head in an answer of `GET /v1/audit/sth` (fields the register
/// does not know are ignored).
pub(super) fn parse_sth(v: &Value) -> Result<SignedTreeHead, SyncError> {
    let bad = |what: &str| SyncError::BadHubData(format!("signed tree head: {what}"));
    let int = |k: &str| v.get(k).and_then(Value::as_i64).ok_or_else(|| bad(k));
    let text = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| bad(k));
    Ok(SignedTreeHead {
        tree_size: u64::try_from(int("tree_size")?).map_err(|_| bad("tree_size"))?,
        root: text("root")?.parse().map_err(|_| bad("root"))?,
        at_ms: int("at_ms")?,
        key_id: text("key_id")?.parse().map_err(|_| bad("key_id"))?,
        signature: text("signature")?
            .parse::<Signature>()
            .map_err(|_| bad("signature"))?,
    })
}

/// Whether `e` is the hub refusing an audit-log request (as opposed to being
/// overloaded or failing — `429`, `5xx`, no answer — or refusing this
/// register itself: `401` for its key or clock, `403 device_quarantined`,
/// which every endpoint answers alike and which stop the round anyway).
pub(crate) fn withdraws_log(e: &HubError) -> bool {
    match e {
        HubError::Api { status, code, .. } => {
            !(*status == 429
                || *status >= 500
                || *status == 401
                || (*status == 403 && code == "device_quarantined"))
        }
        _ => false,
    }
}

fn parse_proof(v: &Value) -> Result<Vec<Hash256>, SyncError> {
    let bad = || SyncError::BadHubData("consistency proof: not a list of hashes".into());
    v.get("proof")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|h| h.as_str().and_then(|s| s.parse().ok()).ok_or_else(bad))
        .collect()
}

impl<C: Clock, R: RandomSource> SyncEngine<C, R> {
    /// The audit check of a round (see the module doc). `Ok` when the hub's
    /// log extends what this register saw before (or the hub has no audit log
    /// yet); [`SyncError::HubLogRewritten`] when it does not, or did before.
    pub(super) fn check_hub_log(&mut self) -> Result<(), SyncError> {
        let status = hub_log_status(self.db.conn())?;
        if status.trust == "critical" {
            return Err(SyncError::HubLogRewritten(
                status.problem.unwrap_or_else(|| "marked critical".into()),
            ));
        }
        let Some(hub_key) = self.device.hub_public_key else {
            // Enrolled before the hub handed out its key: nothing to verify with.
            return Ok(());
        };
        let before = previous(self.db.conn())?;
        let v = match self.request("GET", "/v1/audit/sth", Vec::new()) {
            Ok(v) => v,
            Err(e) if before.is_some() && withdraws_log(&e) => {
                let old_size = before.as_ref().map_or(0, |(size, _)| *size);
                return self.distrust(format!(
                    "the hub refused its signed tree head ({e}) after this register had verified one of {old_size} entries: a hub may not withdraw its audit log"
                ));
            }
            // A hub from before the audit log: stay unverified.
            Err(HubError::Api { status: 404, .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        // A restored hub's log restarts from an older head: follow the
        // restore first (it re-bases trust on the signed restarted-from head).
        if self.new_restore_epoch()?.is_some() {
            return Err(SyncError::NewRestoreEpoch);
        }
        let sth = parse_sth(&v)?;
        let head = match sth.verify(&hub_key) {
            Ok(h) => h,
            Err(e) => {
                return self.distrust(format!(
                    "the hub's signed tree head of {} entries does not verify: {e}",
                    sth.tree_size
                ))
            }
        };
        if let Some((old_size, old_root)) = before {
            if head.tree_size < old_size {
                return self.distrust(format!(
                    "the hub's audit log shrank from {old_size} to {} entries",
                    head.tree_size
                ));
            }
            let proof = if head.tree_size == old_size {
                Vec::new()
            } else {
                let path = format!(
                    "/v1/audit/consistency?first={old_size}&second={}",
                    head.tree_size
                );
                match self.request("GET", &path, Vec::new()) {
                    Ok(v) => parse_proof(&v)?,
                    Err(e) if withdraws_log(&e) => {
                        return self.distrust(format!(
                            "the hub refused the consistency proof from {old_size} to {} entries ({e}): a hub may not withdraw its audit log",
                            head.tree_size
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            if let Err(e) =
                merkle::verify_consistency(old_size, head.tree_size, &old_root, &head.root, &proof)
            {
                return self.distrust(format!(
                    "the hub's audit log of {} entries does not extend the {old_size} entries it signed before ({e}): history was rewritten",
                    head.tree_size
                ));
            }
        }
        self.trust(&head, &sth)
    }

    pub(super) fn trust(&self, head: &TreeHead, sth: &SignedTreeHead) -> Result<(), SyncError> {
        state::trust_head(
            self.db.conn(),
            &state::VerifiedHead {
                tree_size: i64::try_from(head.tree_size).unwrap_or(i64::MAX),
                root: &head.root.to_hex(),
                at_ms: head.at_ms,
                key_id: head.key_id.as_str(),
                signature: &sth.signature.to_hex(),
                verified_ms: self.clock.now_ms(),
            },
        )?;
        crate::crashpoint::hit("sync:hub_head_stored");
        Ok(())
    }

    pub(super) fn distrust(&self, problem: String) -> Result<(), SyncError> {
        tracing::error!(%problem, "hub audit log check failed: the hub is no longer trusted");
        state::distrust(self.db.conn(), &problem, self.clock.now_ms())?;
        Err(SyncError::HubLogRewritten(problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> HubError {
        HubError::Api {
            status,
            code: code.into(),
            message: String::new(),
            expected_seq: None,
            acked_seq: None,
            hub_time_ms: None,
            retry_after_ms: None,
        }
    }

    #[test]
    fn which_answers_withdraw_the_log() {
        for (e, withdraws) in [
            (api(404, "http_404"), true),
            (api(410, "gone"), true),
            (api(400, "bad_request"), true),
            (api(403, "forbidden"), true),
            (api(302, "http_302"), true),
            (api(403, "device_quarantined"), false),
            (api(401, "bad_signature"), false),
            (api(429, "rate_limited"), false),
            (api(500, "internal"), false),
            (api(503, "unavailable"), false),
            (HubError::Unreachable("reset".into()), false),
            (HubError::BadAnswer("junk".into()), false),
        ] {
            assert_eq!(withdraws_log(&e), withdraws, "{e}");
        }
    }
}
