//! The SQL of conflicts: the one path that stores a conflict ([`upsert`]) and
//! the one that drops it ([`withdraw`]), each with its audit entry; listing
//! conflicts with their state; and an operator's resolution of a `manual` one
//! (a `ConflictResolved` hub event whose deps are the candidates decided on,
//! its projection row, and an audit entry naming the strategy, the candidates
//! and the winner, in one transaction).
//!
//! What to store is decided elsewhere, in pure code
//! ([`crate::projection::decide`] for ingest, [`crate::payments`] and
//! [`crate::outbox`] for card payments and rejected documents); these
//! functions only execute it.
//!
//! A conflict is resolved iff a resolution event of it covers every one of its
//! current candidates ([`crate::conflict::covers`]): a function of the set of
//! events, so a rebuild or another order finds the same state, and a candidate
//! that arrives after the resolution reopens the conflict.

use std::collections::BTreeSet;

use super::db::{params, Conn, DbError, OptionalExtension, Value as DbValue};
use crate::storage::multirow;
use caja_shared::canonical::Value;
use caja_shared::ids::{ConflictId, EventId, StoreId};
use caja_shared::kind::{ConflictResolved, EventBody};
use serde::Serialize;

use crate::audit::{self, AuditKind};
use crate::conflict::{self, ConflictReason, ResolveError, ResolveRequest};
use crate::projection::{Conflict, Subject};
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, parse, u};
use crate::storage::error::Answer;
use crate::storage::error::StorageError;
use crate::storage::ingest::hub_chain::append_to_hub_chain_with_deps;
use crate::storage::tx_cache::TxCache;
use crate::storage::writer::Env;
use crate::wire::ApiError;

/// Stores a conflict: its row once, its candidates added (or, with
/// `replace`, replacing the stored ones: its subject was re-decided over every
/// fact). When its candidates change (and `audit` is given: not in a rebuild)
/// appends a `conflict_detected` entry — `conflict_id`, `reason`, `strategy`,
/// `subject`, `events` (sorted) and `new` — the one shape of every opening.
/// Returns whether the conflict is new. The one path that writes a conflict.
pub(crate) fn upsert(
    conn: &Conn,
    audit: Option<&mut TxCache>,
    c: &Conflict,
    replace: bool,
    at_ms: i64,
) -> Result<bool, StorageError> {
    let id = c.conflict_id.to_string();
    let new = conn
        .prepare_cached(
            "INSERT INTO conflicts (conflict_id, reason, strategy, store_id, subject, detected_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            id,
            c.reason.as_str(),
            c.strategy().as_str(),
            c.store.to_string(),
            c.subject.key(),
            at_ms
        ])?
        == 1;
    let before = if new {
        BTreeSet::new()
    } else {
        candidates(conn, &id)?
    };
    if replace && !new {
        conn.prepare_cached("DELETE FROM conflict_events WHERE conflict_id = $1")?
            .execute([&id])?;
    }
    // Its events in one multi-row statement.
    multirow::insert(
        conn,
        "INSERT INTO conflict_events (conflict_id, event_id)",
        2,
        "ON CONFLICT DO NOTHING",
        c.events
            .iter()
            .map(|e| vec![DbValue::Text(id.clone()), DbValue::Text(e.to_string())])
            .collect(),
    )?;
    if let (Some(tx), true) = (audit, before != c.events) {
        append_audit(
            conn,
            tx,
            AuditKind::ConflictDetected,
            at_ms,
            Some(c.store),
            audit::data([
                ("conflict_id", audit::s(c.conflict_id)),
                ("reason", audit::s(c.reason)),
                ("strategy", audit::s(c.strategy().as_str())),
                ("subject", audit::s(&c.subject)),
                (
                    "events",
                    Value::Array(c.events.iter().map(audit::s).collect()),
                ),
                ("new", Value::Bool(new)),
            ]),
        )?;
        if new {
            tracing::warn!(conflict = %c.conflict_id, reason = %c.reason, subject = %c.subject, "conflict detected");
        } else {
            tracing::info!(conflict = %c.conflict_id, reason = %c.reason, candidates = c.events.len(), "conflict candidates changed");
        }
    }
    Ok(new)
}

/// Drops a stored conflict that a re-decided `subject` no longer has (a
/// `stale_price` whose price in force changed, a store credit no longer
/// overdrawn), with a `conflict_withdrawn` entry when `audit` is given; a
/// conflict not stored is left alone. The one path that removes a conflict.
pub(crate) fn withdraw(
    conn: &Conn,
    audit: Option<&mut TxCache>,
    subject: &Subject,
    id: ConflictId,
    at_ms: i64,
) -> Result<(), StorageError> {
    let store: Option<String> = conn
        .prepare_cached("SELECT store_id FROM conflicts WHERE conflict_id = $1")?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?;
    let Some(store) = store else {
        return Ok(());
    };
    conn.prepare_cached("DELETE FROM conflict_events WHERE conflict_id = $1")?
        .execute([id.to_string()])?;
    conn.prepare_cached("DELETE FROM conflicts WHERE conflict_id = $1")?
        .execute([id.to_string()])?;
    if let Some(tx) = audit {
        append_audit(
            conn,
            tx,
            AuditKind::ConflictWithdrawn,
            at_ms,
            Some(parse(&store)?),
            audit::data([
                ("conflict_id", audit::s(id)),
                ("subject", audit::s(subject)),
            ]),
        )?;
        tracing::info!(conflict = %id, %subject, "conflict withdrawn: no longer holds");
    }
    Ok(())
}

/// The stored candidates of a conflict.
pub(crate) fn candidates(conn: &Conn, id: &str) -> Result<BTreeSet<EventId>, StorageError> {
    let ids: Vec<String> = conn
        .prepare_cached("SELECT event_id FROM conflict_events WHERE conflict_id = $1")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.iter().map(|s| parse(s)).collect()
}

/// A conflict as head office sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictInfo {
    /// Its id.
    pub conflict_id: ConflictId,
    /// Why, e.g. `payment_on_voided_debt`.
    pub reason: ConflictReason,
    /// The named strategy (`manual`).
    pub strategy: String,
    /// Store.
    pub store: StoreId,
    /// What about, e.g. `debt:<id>`.
    pub subject: Subject,
    /// When the hub found it.
    pub detected_ms: i64,
    /// Every candidate event.
    pub candidates: BTreeSet<EventId>,
    /// `open` or `resolved`.
    pub state: &'static str,
    /// The settling resolution, when resolved.
    pub resolution: Option<ResolutionInfo>,
}

/// A resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolutionInfo {
    /// The `ConflictResolved` hub event.
    pub event_id: EventId,
    /// Its seq in the store's hub chain.
    pub hub_seq: u64,
    /// The winning candidate, if one.
    pub winner: Option<EventId>,
    /// Who decided.
    pub by: String,
    /// Why.
    pub note: String,
}

/// Which conflicts to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Every conflict.
    All,
    /// Not resolved.
    Open,
    /// Resolved.
    Resolved,
}

type ConflictRow = (String, String, String, String, String, i64);

fn info(conn: &Conn, row: ConflictRow) -> Result<ConflictInfo, StorageError> {
    let (id, reason, strategy, store, subject, detected_ms) = row;
    let candidates = candidates(conn, &id)?;
    let mut settling: Option<ResolutionInfo> = None;
    let mut stmt = conn.prepare_cached(
        "SELECT event_id, hub_seq, winner, resolved_by, note, covers FROM p_resolutions WHERE conflict_id = $1",
    )?;
    let mut rs = stmt.query([&id])?;
    while let Some(r) = rs.next()? {
        let covers: Vec<String> = serde_json::from_str(&r.get::<_, String>(5)?).map_err(corrupt)?;
        let covers: BTreeSet<EventId> =
            covers.iter().map(|c| parse(c)).collect::<Result<_, _>>()?;
        if !conflict::covers(&covers, &candidates) {
            continue;
        }
        let hub_seq = u(r.get(1)?);
        if settling.as_ref().is_some_and(|s| s.hub_seq >= hub_seq) {
            continue;
        }
        let winner: Option<String> = r.get(2)?;
        settling = Some(ResolutionInfo {
            event_id: parse(&r.get::<_, String>(0)?)?,
            hub_seq,
            winner: winner.map(|w| parse(&w)).transpose()?,
            by: r.get(3)?,
            note: r.get(4)?,
        });
    }
    Ok(ConflictInfo {
        conflict_id: parse(&id)?,
        reason: ConflictReason::parse(&reason)
            .ok_or_else(|| corrupt(format!("conflict {id}: unknown reason {reason}")))?,
        strategy,
        store: parse(&store)?,
        subject: Subject::parse_key(&subject)
            .ok_or_else(|| corrupt(format!("conflict {id}: unknown subject {subject}")))?,
        detected_ms,
        candidates,
        state: if settling.is_some() {
            "resolved"
        } else {
            "open"
        },
        resolution: settling,
    })
}

const SELECT: &str =
    "SELECT conflict_id, reason, strategy, store_id, subject, detected_ms FROM conflicts";

fn read_row(r: &super::db::Row) -> Result<ConflictRow, DbError> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// One conflict, if it exists.
pub(super) fn get(conn: &Conn, id: ConflictId) -> Result<Option<ConflictInfo>, StorageError> {
    let row = conn
        .prepare_cached(&format!("{SELECT} WHERE conflict_id = $1"))?
        .query_row([id.to_string()], read_row)
        .optional()?;
    row.map(|r| info(conn, r)).transpose()
}

/// Every conflict in the state asked for, oldest first.
pub(super) fn list(conn: &Conn, state: StateFilter) -> Result<Vec<ConflictInfo>, StorageError> {
    let rows: Vec<ConflictRow> = conn
        .prepare(&format!("{SELECT} ORDER BY detected_ms, conflict_id"))?
        .query_map([], read_row)?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for r in rows {
        let c = info(conn, r)?;
        let keep = match state {
            StateFilter::All => true,
            StateFilter::Open => c.state == "open",
            StateFilter::Resolved => c.state == "resolved",
        };
        if keep {
            out.push(c);
        }
    }
    Ok(out)
}

fn refusal(e: ResolveError) -> ApiError {
    match e {
        ResolveError::Unknown(_) => ApiError::not_found(e.to_string()),
        ResolveError::AlreadyResolved(_) => ApiError::new(409, "already_resolved", e.to_string()),
        ResolveError::TooManyCandidates(_) => {
            ApiError::new(409, "too_many_candidates", e.to_string())
        }
        ResolveError::NotACandidate(_) => ApiError::invalid("winner", e.to_string()),
        ResolveError::Invalid { field, reason } => ApiError::invalid(field, reason),
    }
}

/// An operator resolves a conflict: checks, then appends the
/// `ConflictResolved` event (deps = the candidates) to the store's hub chain,
/// so it reaches the registers, and audits the decision. A refusal writes
/// nothing.
pub(super) fn resolve(
    conn: &Conn,
    env: &mut Env,
    id: ConflictId,
    req: &ResolveRequest,
) -> Result<Answer<ConflictInfo>, StorageError> {
    let Some(c) = get(conn, id)? else {
        return Ok(Err(refusal(ResolveError::Unknown(id.to_string()))));
    };
    if let Err(e) =
        conflict::check_resolution(&c.candidates, c.resolution.is_some(), req, &id.to_string())
    {
        tracing::warn!(conflict = %id, reason = %e, "resolution refused");
        return Ok(Err(refusal(e)));
    }
    let body = EventBody::ConflictResolved(ConflictResolved {
        conflict_id: id,
        strategy: c.strategy.clone(),
        winner: req.winner,
        resolved_by: req.by.trim().to_owned(),
        note: req.note.trim().to_owned(),
    });
    if let Some(pending) = crate::storage::restore::gate(conn, c.store)? {
        return Ok(Err(pending));
    }
    let deps: Vec<EventId> = c.candidates.iter().copied().collect();
    let events = append_to_hub_chain_with_deps(conn, env, c.store, &[(body, deps)])?;
    let event = events
        .first()
        .ok_or_else(|| corrupt("no resolution event appended"))?;
    let now = env.now_ms();
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::ConflictResolved,
        now,
        Some(c.store),
        audit::data([
            ("conflict_id", audit::s(id)),
            ("reason", audit::s(c.reason)),
            ("strategy", audit::s(&c.strategy)),
            ("subject", audit::s(&c.subject)),
            (
                "candidates",
                Value::Array(c.candidates.iter().map(audit::s).collect()),
            ),
            ("winner", req.winner.map_or(Value::Null, audit::s)),
            ("by", audit::s(req.by.trim())),
            ("note", audit::s(req.note.trim())),
            ("event_id", audit::s(event.id())),
            ("hub_seq", audit::n(event.seq().get())),
        ]),
    )?;
    tracing::info!(conflict = %id, reason = %c.reason, winner = ?req.winner, by = %req.by, "conflict resolved");
    let after = get(conn, id)?.ok_or_else(|| corrupt("resolved conflict vanished"))?;
    debug_assert_eq!(after.state, "resolved");
    Ok(Ok(after))
}

#[cfg(test)]
mod tests {
    //! The executor of conflict changes: what it stores and when it audits.

    use super::*;
    use crate::storage::connect::open_connection;

    const STORE: &str = "01935f4e-8a00-7000-8000-0000000000a1";

    fn id(n: u8) -> EventId {
        format!("019aaf70-d618-7000-8000-0000000000{n:02x}")
            .parse()
            .unwrap()
    }

    /// Every `conflict_*` audit entry: (kind, data).
    fn entries(conn: &Conn) -> Vec<(String, serde_json::Value)> {
        let rows: Vec<(String, Vec<u8>)> = conn
            .prepare("SELECT kind, entry FROM audit_log WHERE kind LIKE 'conflict_%' ORDER BY idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.into_iter()
            .map(|(k, e)| {
                let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
                (k, v["data"].clone())
            })
            .collect()
    }

    #[test]
    fn upsert_and_withdraw_audit_only_what_changes_in_one_shape() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("x.db")).unwrap();
        crate::storage::migrate::migrate(&conn).unwrap();
        conn.execute(
            "INSERT INTO stores (store_id, name, time_zone, hub_device, created_at_ms) VALUES ($1, 's', 'America/Santo_Domingo', $2, 0)",
            params![STORE, "01935f4e-8a00-7000-8000-0000000000b1"],
        )
        .unwrap();
        let mut tx = TxCache::default();
        let store: StoreId = STORE.parse().unwrap();
        let subject = Subject::SalePrice(id(1));
        let c = |events: &[u8]| {
            Conflict::new(
                ConflictReason::StalePrice,
                subject.clone(),
                store,
                events.iter().map(|n| id(*n)).collect(),
            )
        };
        let key = c(&[]).conflict_id.to_string();
        // New: stored and audited.
        assert!(upsert(&conn, Some(&mut tx), &c(&[1, 9]), true, 5).unwrap());
        // The same candidates again: nothing to audit.
        assert!(!upsert(&conn, Some(&mut tx), &c(&[1, 9]), true, 6).unwrap());
        // Re-decided with other candidates: replaced, audited as not new.
        assert!(!upsert(&conn, Some(&mut tx), &c(&[1, 8]), true, 7).unwrap());
        assert_eq!(candidates(&conn, &key).unwrap(), [id(1), id(8)].into());
        // Added to (a monotone subject's upsert): the union is stored.
        assert!(!upsert(&conn, Some(&mut tx), &c(&[1, 9]), false, 8).unwrap());
        assert_eq!(
            candidates(&conn, &key).unwrap(),
            [id(1), id(8), id(9)].into()
        );
        // Not audited (a rebuild): stored all the same.
        let other = Conflict::new(
            ConflictReason::CardPaymentUnconfirmed,
            Subject::CardPayment(id(2), 0),
            store,
            [id(2)].into(),
        );
        assert!(upsert(&conn, None, &other, false, 9).unwrap());
        withdraw(&conn, Some(&mut tx), &subject, c(&[]).conflict_id, 10).unwrap();
        assert!(candidates(&conn, &key).unwrap().is_empty());
        assert!(get(&conn, c(&[]).conflict_id).unwrap().is_none());
        // Withdrawing what is not stored does nothing.
        withdraw(&conn, Some(&mut tx), &subject, c(&[]).conflict_id, 11).unwrap();

        let got = entries(&conn);
        let kinds: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "conflict_detected",
                "conflict_detected",
                "conflict_detected",
                "conflict_withdrawn"
            ]
        );
        for (_, data) in &got[..3] {
            let fields: Vec<&str> = data
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                fields,
                [
                    "conflict_id",
                    "events",
                    "new",
                    "reason",
                    "strategy",
                    "subject"
                ]
            );
            assert_eq!(data["conflict_id"], key.as_str());
            assert_eq!(data["reason"], "stale_price");
            assert_eq!(data["strategy"], "manual");
            assert_eq!(data["subject"], subject.key());
        }
        assert_eq!(got[0].1["new"], true);
        assert_eq!(got[1].1["new"], false);
        assert_eq!(got[1].1["events"], serde_json::json!([id(1), id(8)]));
        assert_eq!(got[3].1["subject"], subject.key());
        // The stored row reads back typed.
        let listed = get(&conn, other.conflict_id).unwrap().unwrap();
        assert_eq!(
            (listed.reason, listed.subject, listed.strategy.as_str()),
            (other.reason, other.subject, "manual")
        );
    }
}
