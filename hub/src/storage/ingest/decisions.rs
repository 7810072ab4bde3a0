//! The decision pipeline of an applied event, executed: the rows its facts
//! replace read, then what [`crate::projection::decide`] returns carried out —
//! the automatic decisions (`lww`, `server_wins`) audited, the facts written,
//! the fiscal documents queued, the sales ahead of the hub clock kept; then
//! the subjects whose conflicts may have changed widened, the facts about
//! each read, and their conflicts stored or withdrawn through
//! [`crate::storage::conflicts`].
//!
//! Invariant: decides nothing (every rule is in `projection::decide`); runs
//! only from the causal gate ([`super::causal`]) and a rebuild
//! ([`super::rebuild`]), once per applied event.

use std::collections::BTreeSet;

use caja_shared::canonical::Value;
use caja_shared::ids::StoreId;
use caja_shared::kind::EventBody;

use crate::audit::{self, AuditKind};
use crate::conflict::LwwStamp;
use crate::projection::decide::{self, ConflictChange, ShownKey, ShownRow};
use crate::projection::{self, EventMeta, Fact, Subject};
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, hlc_opt, parse, u};
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::error::StorageError;
use crate::storage::facts::read::{facts_about, price_history_cached, widen};
use crate::storage::facts::write::write_facts;
use crate::storage::ingest::index::SqlIndex;
use crate::storage::tx_cache::TxCache;

/// Executes the decisions of an applied event ([`decide`]): reads the rows
/// its facts replace (for the automatic decisions, when auditing), audits the
/// decisions, writes the facts, queues the fiscal documents, remembers the
/// sales ahead of the hub clock; then widens the subjects whose conflicts the
/// facts may change, reads the facts about each and stores or withdraws its
/// conflicts.
pub(crate) fn project(
    index: &mut SqlIndex<'_>,
    meta: &EventMeta<'_>,
    body: &EventBody,
    at_ms: i64,
) -> Result<(), StorageError> {
    let conn = index.conn;
    let facts = projection::facts(meta, body);
    let shown = if index.audit {
        shown_rows(conn, &facts)?
    } else {
        decide::Shown::new()
    };
    let mut effects = decide::event(facts, &shown, at_ms);
    effects
        .documents
        .extend(decide::issued_document(meta, body));
    for d in &effects.decisions {
        audit_decision(conn, index.tx, at_ms, meta.store, d)?;
    }
    write_facts(conn, &effects.facts)?;
    if let Some(ahead) = index.ahead.as_mut() {
        ahead.wrote(&effects.facts);
    }
    for f in &effects.facts {
        if let Fact::PriceHistory { store, product, .. } = f {
            index
                .prices
                .remove(&(store.to_string(), product.as_str().to_owned()));
        }
    }
    // Phase two of fiscal documents: queued with the event that issued them.
    crate::storage::outbox::enqueue::enqueue(conn, &effects.documents, at_ms)?;
    for a in &effects.sales_ahead {
        conn.prepare_cached(
            "INSERT INTO p_sales_ahead (event_id, store_id, hlc_ms) VALUES ($1, $2, $3)",
        )?
        .execute(params![
            a.event_id.to_string(),
            a.store.to_string(),
            a.hlc_ms
        ])?;
    }
    let mut subjects = BTreeSet::new();
    for s in &effects.subjects {
        // Read ahead by a push: no statement per sale.
        if let (Subject::SaleForReturns(store, sale, number), Some(ahead)) = (s, &index.ahead) {
            if let Some(named) = ahead.sale_named(*store, *sale, number.as_deref()) {
                if named {
                    subjects.insert(Subject::Returned(*sale));
                }
                continue;
            }
        }
        subjects.extend(widen(conn, s.clone())?);
    }
    for subject in subjects {
        let related = match &subject {
            // The sale applied now: its facts are at hand, only prices are read.
            Subject::SalePrice(e) if *e == meta.event_id => {
                let mut related: Vec<Fact> = effects
                    .facts
                    .iter()
                    .filter(|f| matches!(f, Fact::Sale { .. } | Fact::SaleLine { .. }))
                    .cloned()
                    .collect();
                related.extend(price_history_cached(conn, &related, &mut index.prices)?);
                related
            }
            // One sale alone is never a duplicate (as `facts_about`).
            Subject::Fiscal(series, number)
                if index
                    .ahead
                    .as_ref()
                    .and_then(|a| a.fiscal_count(series, number))
                    .is_some_and(|n| n < 2) =>
            {
                Vec::new()
            }
            _ => facts_about(conn, &subject)?,
        };
        for change in decide::conflict_changes(&subject, &related) {
            let audit = if index.audit {
                Some(&mut *index.tx)
            } else {
                None
            };
            match change {
                // The sale applied now for the first time: no conflict of
                // its own subject can be stored yet (its id names its event).
                ConflictChange::Withdraw {
                    subject: Subject::SalePrice(e),
                    ..
                } if index.fresh && e == meta.event_id => {}
                ConflictChange::Withdraw {
                    subject,
                    conflict_id,
                } => {
                    crate::storage::conflicts::withdraw(conn, audit, &subject, conflict_id, at_ms)?
                }
                ConflictChange::Upsert { conflict, replace } => {
                    crate::storage::conflicts::upsert(conn, audit, &conflict, replace, at_ms)?;
                    index.conflicts.push((meta.event_id, conflict));
                }
            }
        }
    }
    Ok(())
}

/// The rows an event's facts replace, as the automatic strategies compare
/// them (read before the facts are written).
fn shown_rows(conn: &Conn, facts: &[Fact]) -> Result<decide::Shown, StorageError> {
    let mut shown = decide::Shown::new();
    for key in facts.iter().filter_map(ShownKey::of) {
        let row = match &key {
            ShownKey::Customer(customer) => conn
                .prepare_cached(
                    "SELECT event_id, hlc_ms, hlc_n, device_id FROM p_customers WHERE customer_id = $1",
                )?
                .query_row([customer.to_string()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
                })
                .optional()?
                .map(|(e, ms, n, d)| {
                    Ok::<_, StorageError>(ShownRow::Lww(LwwStamp {
                        hlc: hlc_opt(Some(ms), Some(n))?
                            .ok_or_else(|| corrupt("customer hlc"))?,
                        device: parse(&d)?,
                        event_id: parse(&e)?,
                    }))
                })
                .transpose()?,
            ShownKey::CatalogItem(store, product) | ShownKey::Price(store, product) => {
                let table = match key {
                    ShownKey::CatalogItem(..) => "p_catalog",
                    _ => "p_prices",
                };
                conn.prepare_cached(&format!(
                    "SELECT event_id, hub_seq FROM {table} WHERE store_id = $1 AND product = $2"
                ))?
                .query_row(params![store.to_string(), product.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?))
                })
                .optional()?
                .map(|(e, seq)| Ok::<_, StorageError>(ShownRow::ServerWins(u(seq), parse(&e)?)))
                .transpose()?
            }
        };
        if let Some(row) = row {
            shown.insert(key, row);
        }
    }
    Ok(shown)
}

fn audit_decision(
    conn: &Conn,
    tx: &mut TxCache,
    at_ms: i64,
    store: StoreId,
    d: &crate::conflict::AutoDecision,
) -> Result<(), StorageError> {
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
