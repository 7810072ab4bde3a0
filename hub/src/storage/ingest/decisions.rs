//! The decision pipeline of an applied event: its facts written, the
//! automatic decisions they make (`lww`, `server_wins`) audited, its fiscal
//! documents queued, and the conflicts of its subjects recorded, re-decided
//! or withdrawn.
//!
//! Invariant: runs only from the causal gate ([`super::causal`]) and a
//! rebuild ([`super::rebuild`]), once per applied event.

use crate::audit::AuditKind;
use crate::projection::{Conflict, EventMeta, Fact, Subject};
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, hlc_opt, parse, u};
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::error::StoreError;
use crate::storage::facts::read::{facts_about, price_history_of, widen};
use crate::storage::facts::write::write_facts;
use crate::storage::ingest::index::SqlIndex;
use crate::storage::tx_cache::TxCache;
use crate::{audit, projection};
use caja_shared::canonical::Value;
use caja_shared::ids::{EventId, StoreId};
use caja_shared::kind::EventBody;
use std::collections::BTreeSet;

/// Writes an applied event's facts, audits the automatic decisions they
/// make (`lww`, `server_wins`) and decides the conflicts of their subjects.
pub(crate) fn project(
    index: &mut SqlIndex<'_>,
    meta: &EventMeta<'_>,
    body: &EventBody,
    at_ms: i64,
) -> Result<(), StoreError> {
    let conn = index.conn;
    let facts = projection::facts(meta, body);
    if index.audit {
        for f in &facts {
            if let Some(d) = auto_decision(conn, f)? {
                audit_decision(conn, index.tx, at_ms, meta.store, &d)?;
            }
        }
    }
    write_facts(conn, &facts)?;
    // Phase two of fiscal documents: queued with the event that issued them.
    crate::storage::outbox::enqueue::enqueue_facts(conn, &facts, at_ms)?;
    for f in &facts {
        if let Fact::Sale {
            event_id,
            store,
            hlc: Some(h),
            ..
        } = f
        {
            if h.ms() >= at_ms.saturating_add(crate::conflict::STALE_PRICE_GRACE_MS) {
                conn.prepare_cached("INSERT INTO p_sales_ahead VALUES ($1, $2, $3)")?
                    .execute(params![event_id.to_string(), store.to_string(), h.ms()])?;
            }
        }
    }
    let mut subjects = BTreeSet::new();
    for s in facts.iter().flat_map(projection::subjects) {
        subjects.extend(widen(conn, s)?);
    }
    for subject in subjects {
        let related = match &subject {
            // The sale applied now: its facts are at hand, only prices are read.
            Subject::SalePrice(e) if *e == meta.event_id => {
                let mut related: Vec<Fact> = facts
                    .iter()
                    .filter(|f| matches!(f, Fact::Sale { .. } | Fact::SaleLine { .. }))
                    .cloned()
                    .collect();
                related.extend(price_history_of(conn, &related)?);
                related
            }
            _ => facts_about(conn, &subject)?,
        };
        let found = projection::conflict_of(&subject, &related);
        if subject.retractable() {
            for id in projection::possible_conflicts(&subject) {
                if !found.iter().any(|c| c.conflict_id == id) {
                    withdraw(index, &subject, id, at_ms)?;
                }
            }
        }
        for c in found {
            record_conflict(index, meta.event_id, c, subject.retractable(), at_ms)?;
        }
    }
    Ok(())
}

/// Stores a conflict (its row once, its candidates added, or replaced when
/// its subject is re-decided) and audits it when new.
fn record_conflict(
    index: &mut SqlIndex<'_>,
    event: EventId,
    c: Conflict,
    replace: bool,
    at_ms: i64,
) -> Result<(), StoreError> {
    let conn = index.conn;
    let new = conn
        .prepare_cached(
            "INSERT INTO conflicts (conflict_id, reason, strategy, store_id, subject, detected_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            c.conflict_id.to_string(),
            c.reason,
            c.strategy,
            c.store.to_string(),
            c.subject,
            at_ms
        ])?
        == 1;
    let before = if new {
        BTreeSet::new()
    } else {
        conflict_candidates(conn, &c.conflict_id.to_string())?
    };
    if replace && !new {
        conn.prepare_cached("DELETE FROM conflict_events WHERE conflict_id = $1")?
            .execute([c.conflict_id.to_string()])?;
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO conflict_events (conflict_id, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )?;
    for e in &c.events {
        stmt.execute(params![c.conflict_id.to_string(), e.to_string()])?;
    }
    if index.audit && before != c.events {
        append_audit(
            conn,
            index.tx,
            AuditKind::ConflictDetected,
            at_ms,
            Some(c.store),
            audit::data([
                ("conflict_id", audit::s(c.conflict_id)),
                ("reason", audit::s(c.reason)),
                ("strategy", audit::s(c.strategy)),
                ("subject", audit::s(&c.subject)),
                (
                    "events",
                    Value::Array(c.events.iter().map(audit::s).collect()),
                ),
                ("new", Value::Bool(new)),
            ]),
        )?;
        if new {
            tracing::warn!(conflict = %c.conflict_id, reason = c.reason, subject = %c.subject, "conflict detected");
        } else {
            tracing::info!(conflict = %c.conflict_id, reason = c.reason, candidates = c.events.len(), "conflict candidates changed");
        }
    }
    index.conflicts.push((event, c));
    Ok(())
}

/// Drops a re-decided conflict that no longer holds (a `stale_price` whose
/// price in force changed), with an audit entry.
fn withdraw(
    index: &mut SqlIndex<'_>,
    subject: &Subject,
    id: caja_shared::ids::ConflictId,
    at_ms: i64,
) -> Result<(), StoreError> {
    let conn = index.conn;
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
    if index.audit {
        append_audit(
            conn,
            index.tx,
            AuditKind::ConflictWithdrawn,
            at_ms,
            Some(parse(&store)?),
            audit::data([
                ("conflict_id", audit::s(id)),
                ("subject", audit::s(subject.key())),
            ]),
        )?;
        tracing::info!(conflict = %id, subject = %subject.key(), "conflict withdrawn: no longer holds");
    }
    Ok(())
}

pub(crate) fn conflict_candidates(conn: &Conn, id: &str) -> Result<BTreeSet<EventId>, StoreError> {
    let ids: Vec<String> = conn
        .prepare_cached("SELECT event_id FROM conflict_events WHERE conflict_id = $1")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.iter().map(|s| parse(s)).collect()
}

/// The automatic decision a fact makes against the row it meets, if any:
/// `lww` for a customer written by another register, `server_wins` for a
/// catalog item or price written again by the hub.
fn auto_decision(
    conn: &Conn,
    f: &Fact,
) -> Result<Option<crate::conflict::AutoDecision>, StoreError> {
    use crate::conflict::{lww, server_wins, LwwStamp};
    match f {
        Fact::Customer {
            customer_id,
            event_id,
            hlc,
            device,
            ..
        } => {
            let shown: Option<(String, i64, i64, String)> = conn
                .prepare_cached(
                    "SELECT event_id, hlc_ms, hlc_n, device_id FROM p_customers WHERE customer_id = $1",
                )?
                .query_row([customer_id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let Some((e, ms, n, d)) = shown else {
                return Ok(None);
            };
            let shown = LwwStamp {
                hlc: hlc_opt(Some(ms), Some(n))?.ok_or_else(|| corrupt("customer hlc"))?,
                device: parse(&d)?,
                event_id: parse(&e)?,
            };
            let new = LwwStamp {
                hlc: *hlc,
                device: *device,
                event_id: *event_id,
            };
            Ok(lww(format!("customer:{customer_id}"), shown, new))
        }
        Fact::CatalogItem {
            store,
            product,
            event_id,
            hub_seq,
            ..
        }
        | Fact::Price {
            store,
            product,
            event_id,
            hub_seq,
            ..
        } => {
            let (table, what) = match f {
                Fact::CatalogItem { .. } => ("p_catalog", "catalog_item"),
                _ => ("p_prices", "price"),
            };
            let shown: Option<(String, i64)> = conn
                .prepare_cached(&format!(
                    "SELECT event_id, hub_seq FROM {table} WHERE store_id = $1 AND product = $2"
                ))?
                .query_row(params![store.to_string(), product.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((e, seq)) = shown else {
                return Ok(None);
            };
            Ok(server_wins(
                format!("{what}:{store}:{product}"),
                (u(seq), parse(&e)?),
                (*hub_seq, *event_id),
            ))
        }
        _ => Ok(None),
    }
}

fn audit_decision(
    conn: &Conn,
    tx: &mut TxCache,
    at_ms: i64,
    store: StoreId,
    d: &crate::conflict::AutoDecision,
) -> Result<(), StoreError> {
    append_audit(
        conn,
        tx,
        AuditKind::ConflictDecided,
        at_ms,
        Some(store),
        audit::data([
            ("strategy", audit::s(d.strategy.as_str())),
            ("subject", audit::s(&d.subject)),
            (
                "candidates",
                Value::Array(d.candidates.iter().map(audit::s).collect()),
            ),
            ("winner", audit::s(d.winner)),
        ]),
    )?;
    tracing::debug!(strategy = d.strategy.as_str(), subject = %d.subject, winner = %d.winner, "automatic decision");
    Ok(())
}
