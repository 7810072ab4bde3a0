//! A push's conflict look-ups read ahead ([`ReadAhead`]): before the causal
//! gate, one statement counts the rows of every fiscal number the push's
//! sales carry (the duplicate-number check) and one reads which of its sales
//! a return without its original names (the returns check); while the push
//! applies its events the answers are kept in step with the facts it
//! writes, so each sale's checks cost no statement.
//!
//! Invariant: an answer is given only for a key read ahead, and equals what
//! the look-up it replaces ([`crate::storage::facts::read`]'s fiscal count,
//! `widen` of `SaleForReturns`) would read at that point of the push: every
//! fact the push writes into `p_sales`, `p_credit_notes` or
//! `p_returns_unknown` passes through [`ReadAhead::wrote`]. Any other key is
//! looked up in SQL as before.

use std::collections::{BTreeSet, HashMap};

use caja_shared::ids::{SaleId, StoreId};
use caja_shared::kind::EventBody;

use crate::ingest::PushedEvent;
use crate::projection::Fact;
use crate::storage::codec::{corrupt, parse};
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;

/// The read-ahead answers of one push.
#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    /// Rows in `p_sales` and `p_credit_notes` per (series, number).
    fiscal: HashMap<(String, String), i64>,
    /// Per sale: whether a `p_returns_unknown` row names it by sale id.
    sales: HashMap<SaleId, bool>,
    /// Per (store, fiscal number): whether a `p_returns_unknown` row without
    /// a sale id gives that reference.
    refs: HashMap<(StoreId, String), bool>,
}

impl ReadAhead {
    /// Reads ahead for the sales among `events` (two statements; none when
    /// there is no sale).
    pub(crate) fn read(conn: &Conn, events: &[&PushedEvent]) -> Result<ReadAhead, StorageError> {
        let mut ahead = ReadAhead::default();
        let mut numbers = BTreeSet::new();
        let mut store = None;
        for e in events {
            if let EventBody::SaleCreated(b) = &e.body {
                let s = e.event.envelope().store;
                store.get_or_insert(s);
                ahead.sales.insert(b.sale_id, false);
                if let Some(f) = &b.fiscal {
                    numbers.insert((f.series.clone(), f.number.clone()));
                    if Some(s) == store {
                        ahead.refs.insert((s, f.number.clone()), false);
                    }
                }
            }
        }
        let Some(store) = store else {
            return Ok(ahead);
        };
        if !numbers.is_empty() {
            let keys =
                serde_json::to_string(&numbers.iter().collect::<Vec<_>>()).map_err(corrupt)?;
            let mut stmt = conn.prepare_cached(conn.pick(
                "SELECT json_extract(k.value, '$[0]'), json_extract(k.value, '$[1]'),
                   (SELECT COUNT(*) FROM p_sales
                     WHERE fiscal_series = json_extract(k.value, '$[0]') AND fiscal_number = json_extract(k.value, '$[1]'))
                   + (SELECT COUNT(*) FROM p_credit_notes
                     WHERE series = json_extract(k.value, '$[0]') AND number = json_extract(k.value, '$[1]'))
                 FROM json_each($1) k",
                "SELECT k->>0, k->>1,
                   (SELECT COUNT(*) FROM p_sales WHERE fiscal_series = k->>0 AND fiscal_number = k->>1)
                   + (SELECT COUNT(*) FROM p_credit_notes WHERE series = k->>0 AND number = k->>1)
                 FROM json_array_elements($1::json) k",
            ))?;
            let mut rs = stmt.query([keys])?;
            while let Some(r) = rs.next()? {
                ahead.fiscal.insert((r.get(0)?, r.get(1)?), r.get(2)?);
            }
        }
        let sales = serde_json::to_string(
            &ahead
                .sales
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .map_err(corrupt)?;
        let refs = serde_json::to_string(&ahead.refs.keys().map(|k| &k.1).collect::<Vec<_>>())
            .map_err(corrupt)?;
        let mut stmt = conn.prepare_cached(conn.pick(
            "SELECT sale_id, reference FROM p_returns_unknown
              WHERE sale_id IN (SELECT value FROM json_each($1))
                 OR (sale_id IS NULL AND store_id = $2 AND reference IN (SELECT value FROM json_each($3)))",
            "SELECT sale_id, reference FROM p_returns_unknown
              WHERE sale_id IN (SELECT json_array_elements_text($1::json))
                 OR (sale_id IS NULL AND store_id = $2 AND reference IN (SELECT json_array_elements_text($3::json)))",
        ))?;
        let mut rs = stmt.query(params![sales, store.to_string(), refs])?;
        while let Some(r) = rs.next()? {
            match r.get::<_, Option<String>>(0)? {
                Some(sale) => {
                    if let Some(named) = ahead.sales.get_mut(&parse::<SaleId>(&sale)?) {
                        *named = true;
                    }
                }
                None => {
                    if let Some(named) = ahead.refs.get_mut(&(store, r.get::<_, String>(1)?)) {
                        *named = true;
                    }
                }
            }
        }
        Ok(ahead)
    }

    /// The rows holding `series`/`number`, if read ahead.
    pub(crate) fn fiscal_count(&self, series: &str, number: &str) -> Option<i64> {
        self.fiscal
            .get(&(series.to_owned(), number.to_owned()))
            .copied()
    }

    /// Whether a return without its original names the sale (by its id, or
    /// by its fiscal `number` in its store), if read ahead.
    pub(crate) fn sale_named(
        &self,
        store: StoreId,
        sale: SaleId,
        number: Option<&str>,
    ) -> Option<bool> {
        if *self.sales.get(&sale)? {
            return Some(true);
        }
        match number {
            None => Some(false),
            Some(n) => self.refs.get(&(store, n.to_owned())).copied(),
        }
    }

    /// Keeps the answers in step with facts the push has just written.
    pub(crate) fn wrote(&mut self, facts: &[Fact]) {
        for f in facts {
            match f {
                Fact::Sale {
                    fiscal: Some((series, number)),
                    ..
                }
                | Fact::CreditNote { series, number, .. } => {
                    if let Some(n) = self.fiscal.get_mut(&(series.clone(), number.clone())) {
                        *n += 1;
                    }
                }
                Fact::UnlinkedReturn {
                    store,
                    sale_id,
                    reference,
                    ..
                } => {
                    let named = match sale_id {
                        Some(s) => self.sales.get_mut(s),
                        None => self.refs.get_mut(&(*store, reference.clone())),
                    };
                    if let Some(named) = named {
                        *named = true;
                    }
                }
                _ => {}
            }
        }
    }
}
