//! The facts a conflict subject is decided on ([`facts_about`]), read back
//! through the families' queries, and the subjects a subject stands for
//! ([`widen`]).
//!
//! Invariant: reads only; every fact comes from its family's decoder.

use std::collections::BTreeSet;

use super::{catalog, debts, fiscal, foreign, returns, sales, voids};
use crate::projection::{Fact, Subject};
use crate::storage::codec::parse;
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;

/// The facts the conflicts of `subject` are decided on (the same as the
/// pure model's [`crate::projection::Projections::facts_about`]).
pub(crate) fn facts_about(conn: &Conn, subject: &Subject) -> Result<Vec<Fact>, StorageError> {
    match subject {
        Subject::Fiscal(series, number) => {
            // One sale alone is never a duplicate: skip reading it back.
            let n: i64 = conn
                .prepare_cached(
                    "SELECT (SELECT COUNT(*) FROM p_sales WHERE fiscal_series = $1 AND fiscal_number = $2)
                          + (SELECT COUNT(*) FROM p_credit_notes WHERE series = $1 AND number = $2)",
                )?
                .query_row(params![series, number], |r| r.get(0))?;
            if n < 2 {
                return Ok(Vec::new());
            }
            let mut out = sales::by_fiscal_number(conn, series, number)?;
            out.extend(fiscal::credit_notes_by_number(conn, series, number)?);
            Ok(out)
        }
        // One statement for the two reads (`debts::of_debt`, `voids::of_debt`).
        Subject::Debt(d) => debts::with_voids_of_debt(conn, *d),
        Subject::Event(e) => foreign::of_event(conn, *e),
        Subject::Returned(sale) => {
            let mut out: Vec<Fact> = Vec::new();
            let mut numbered = Vec::new();
            for f in sales::by_sale_id(conn, *sale)? {
                if let Fact::Sale {
                    store,
                    fiscal: Some((_, n)),
                    ..
                } = &f
                {
                    numbered.push((store.to_string(), n.clone()));
                }
                if matches!(f, Fact::Sale { .. } | Fact::SaleLine { .. }) {
                    out.push(f);
                }
            }
            out.extend(returns::lines_of_sale(conn, *sale)?);
            out.extend(returns::unlinked_of_sale(conn, *sale)?);
            for (store, number) in numbered {
                out.extend(returns::unlinked_by_reference(conn, &store, &number)?);
            }
            Ok(out)
        }
        Subject::StoreCredit(store, customer) => {
            let mut out = returns::store_credit_of(conn, *store, *customer)?;
            out.extend(voids::of_store_credit(conn, *store, *customer)?);
            Ok(out)
        }
        Subject::UnknownOriginal(e) => returns::unlinked_of_event(conn, *e),
        Subject::SalePrice(e) => {
            let mut out = Vec::new();
            for f in sales::by_event(conn, *e)? {
                if matches!(f, Fact::Sale { .. } | Fact::SaleLine { .. }) {
                    out.push(f);
                }
            }
            let prices = price_history_of(conn, &out)?;
            out.extend(prices);
            Ok(out)
        }
        // Widened by `widen` before they are decided.
        Subject::VoidedSale(_)
        | Subject::PriceChange(..)
        | Subject::ReturnedFiscal(..)
        | Subject::SaleForReturns(..) => Ok(Vec::new()),
        // Decided outside ingest, never from facts.
        Subject::CardPayment(..) | Subject::FiscalDocument(_) => Ok(Vec::new()),
    }
}

/// The price history of the products of the sale lines among `facts`.
pub(crate) fn price_history_of(conn: &Conn, facts: &[Fact]) -> Result<Vec<Fact>, StorageError> {
    let mut keys = BTreeSet::new();
    for f in facts {
        if let Fact::SaleLine { store, product, .. } = f {
            keys.insert((store.to_string(), product.as_str().to_owned()));
        }
    }
    let mut out = Vec::new();
    for (store, product) in keys {
        out.extend(catalog::price_history(conn, &store, &product)?);
    }
    Ok(out)
}

/// [`price_history_of`] through `cache` (per store and product; the caller
/// drops an entry when it writes a price fact for it).
pub(crate) fn price_history_cached(
    conn: &Conn,
    facts: &[Fact],
    cache: &mut std::collections::HashMap<(String, String), Vec<Fact>>,
) -> Result<Vec<Fact>, StorageError> {
    let mut keys = BTreeSet::new();
    for f in facts {
        if let Fact::SaleLine { store, product, .. } = f {
            keys.insert((store.to_string(), product.as_str().to_owned()));
        }
    }
    let mut out = Vec::new();
    for key in keys {
        if !cache.contains_key(&key) {
            let rows = catalog::price_history(conn, &key.0, &key.1)?;
            cache.insert(key.clone(), rows);
        }
        out.extend(cache[&key].iter().cloned());
    }
    Ok(out)
}

/// The subjects a fact's subject stands for: a voided sale stands for the
/// debts opened for it; a price change for the sales of the store made at or
/// after it (plus the grace) that sold the product — of those applied before
/// it, only sales in `p_sales_ahead` can be (see the schema).
pub(crate) fn widen(conn: &Conn, subject: Subject) -> Result<Vec<Subject>, StorageError> {
    match subject {
        Subject::VoidedSale(sale) => {
            // The debts opened for it and (a voided sale that spent store
            // credit gives it back) the credit it spent: one statement.
            let rows: Vec<(i64, String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT CAST(0 AS BIGINT), debt_id, CAST(NULL AS TEXT) FROM p_debts WHERE sale_id = $1
                     UNION ALL
                     SELECT CAST(1 AS BIGINT), store_id, customer_id FROM p_store_credit WHERE sale_id = $1",
                )?
                .query_map([sale.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for (_, debt, _) in rows.iter().filter(|r| r.0 == 0) {
                out.push(Subject::Debt(parse(debt)?));
            }
            for (_, store, customer) in rows.iter().filter(|r| r.0 == 1) {
                let customer = customer.as_deref().unwrap_or_default();
                let s = Subject::StoreCredit(parse(store)?, parse(customer)?);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Ok(out)
        }
        Subject::ReturnedFiscal(store, number) => {
            let sales: Vec<String> = conn
                .prepare_cached(
                    "SELECT sale_id FROM p_sales WHERE fiscal_number = $1 AND store_id = $2",
                )?
                .query_map(params![number, store.to_string()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            sales
                .iter()
                .map(|s| Ok(Subject::Returned(parse(s)?)))
                .collect()
        }
        Subject::SaleForReturns(store, sale, number) => {
            // Only when a return made without the original names this sale
            // (one indexed look-up per sale applied, on a small table).
            let named: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM p_returns_unknown WHERE sale_id = $1)
                         OR EXISTS (SELECT 1 FROM p_returns_unknown
                                    WHERE store_id = $2 AND reference = $3 AND sale_id IS NULL)",
                )?
                .query_row(params![sale.to_string(), store.to_string(), number], |r| {
                    r.get(0)
                })?;
            Ok(if named {
                vec![Subject::Returned(sale)]
            } else {
                Vec::new()
            })
        }
        Subject::PriceChange(store, product, hlc) => {
            let from = hlc
                .ms()
                .saturating_add(crate::conflict::STALE_PRICE_GRACE_MS);
            let sales: Vec<String> = conn
                .prepare_cached(conn.pick(
                    "SELECT s.event_id FROM p_sales_ahead a JOIN p_sales s ON s.event_id = a.event_id
                     WHERE a.store_id = $1 AND a.hlc_ms >= $2
                       AND EXISTS (SELECT 1 FROM json_each(s.lines) l WHERE json_extract(l.value, '$[0]') = $3)",
                    "SELECT s.event_id FROM p_sales_ahead a JOIN p_sales s ON s.event_id = a.event_id
                     WHERE a.store_id = $1 AND a.hlc_ms >= $2
                       AND EXISTS (SELECT 1 FROM jsonb_array_elements(s.lines::jsonb) l WHERE l.value->>0 = $3)",
                ))?
                .query_map(params![store.to_string(), from, product.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            sales
                .iter()
                .map(|e| Ok(Subject::SalePrice(parse(e)?)))
                .collect()
        }
        other => Ok(vec![other]),
    }
}
