//! Reading projection rows back as facts: the facts a conflict subject is
//! decided on ([`facts_about`], [`widen`]), every fact of the projections
//! ([`load_projections`]) and their [`digest`].
//!
//! Invariant: reads only; a row that does not decode is
//! [`StoreError::Corrupt`].

use crate::projection::{Fact, Projections, Subject};
use crate::storage::codec::{corrupt, hlc_opt, id_opt, parse, u};
use crate::storage::db::{params, Conn, Params, Row};
use crate::storage::error::StoreError;
use crate::{audit, projection};
use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;
use caja_shared::hlc::Hlc;
use caja_shared::ids::SaleId;
use std::collections::BTreeSet;

fn sale_from_row(r: &Row) -> Result<Fact, StoreError> {
    let series: Option<String> = r.get(9)?;
    let number: Option<String> = r.get(10)?;
    Ok(Fact::Sale {
        event_id: parse(&r.get::<_, String>(0)?)?,
        sale_id: parse(&r.get::<_, String>(1)?)?,
        store: parse(&r.get::<_, String>(2)?)?,
        device: parse(&r.get::<_, String>(3)?)?,
        shift_id: id_opt(r.get(4)?)?,
        customer: id_opt(r.get(5)?)?,
        total: r.get(6)?,
        tax: r.get(7)?,
        change: r.get(8)?,
        fiscal: series.zip(number),
        hlc: hlc_opt(r.get(13)?, r.get(14)?)?,
    })
}

fn price_history_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::PriceHistory {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        product: parse(&r.get::<_, String>(2)?)?,
        hub_seq: u(r.get(3)?),
        hlc: hlc_opt(r.get(4)?, r.get(5)?)?.ok_or_else(|| corrupt("price history hlc"))?,
        unit_price: r.get(6)?,
    })
}

fn resolution_from_row(r: &Row) -> Result<Fact, StoreError> {
    let covers: Vec<String> = serde_json::from_str(&r.get::<_, String>(8)?).map_err(corrupt)?;
    Ok(Fact::Resolution {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        conflict_id: parse(&r.get::<_, String>(2)?)?,
        hub_seq: u(r.get(3)?),
        strategy: r.get(4)?,
        winner: id_opt(r.get(5)?)?,
        resolved_by: r.get(6)?,
        note: r.get(7)?,
        covers: covers.iter().map(|c| parse(c)).collect::<Result<_, _>>()?,
    })
}

fn void_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::Void {
        event_id: parse(&r.get::<_, String>(0)?)?,
        sale_id: parse(&r.get::<_, String>(1)?)?,
        store: parse(&r.get::<_, String>(2)?)?,
    })
}

fn debt_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::Debt {
        event_id: parse(&r.get::<_, String>(0)?)?,
        debt_id: parse(&r.get::<_, String>(1)?)?,
        store: parse(&r.get::<_, String>(2)?)?,
        customer: parse(&r.get::<_, String>(3)?)?,
        amount: r.get(4)?,
        sale_id: id_opt(r.get(5)?)?,
    })
}

fn debt_payment_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::DebtPayment {
        event_id: parse(&r.get::<_, String>(0)?)?,
        payment_id: parse(&r.get::<_, String>(1)?)?,
        debt_id: parse(&r.get::<_, String>(2)?)?,
        store: parse(&r.get::<_, String>(3)?)?,
        customer: parse(&r.get::<_, String>(4)?)?,
        amount: r.get(5)?,
    })
}

fn fiscal_block_from_row(r: &Row) -> Result<Fact, StoreError> {
    let what: String = r.get(1)?;
    Ok(Fact::FiscalBlock {
        event_id: parse(&r.get::<_, String>(0)?)?,
        release: what == "release",
        grant_id: parse(&r.get::<_, String>(2)?)?,
        store: parse(&r.get::<_, String>(3)?)?,
        device: parse(&r.get::<_, String>(4)?)?,
        series: r.get(5)?,
        first: u(r.get(6)?),
        last: u(r.get(7)?),
        expires_ms: r.get(8)?,
    })
}

fn credit_note_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::CreditNote {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        device: parse(&r.get::<_, String>(2)?)?,
        sale_id: id_opt(Some(r.get::<_, String>(3)?).filter(|x| !x.is_empty()))?,
        series: r.get(4)?,
        number: r.get(5)?,
    })
}

fn return_line_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::ReturnLine {
        event_id: parse(&r.get::<_, String>(0)?)?,
        line: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        sale_id: parse(&r.get::<_, String>(3)?)?,
        sale_line: r.get(4)?,
        product: parse(&r.get::<_, String>(5)?)?,
        qty_milli: r.get(6)?,
        damaged: r.get::<_, i64>(7)? == 1,
    })
}

fn store_credit_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::StoreCredit {
        event_id: parse(&r.get::<_, String>(0)?)?,
        idx: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        customer: parse(&r.get::<_, String>(3)?)?,
        amount: r.get(4)?,
        sale_id: id_opt(r.get(5)?)?,
    })
}

fn unlinked_return_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::UnlinkedReturn {
        event_id: parse(&r.get::<_, String>(0)?)?,
        line: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        device: parse(&r.get::<_, String>(3)?)?,
        sale_id: id_opt(r.get(4)?)?,
        reference: r.get(5)?,
        product: parse(&r.get::<_, String>(6)?)?,
        qty_milli: r.get(7)?,
        damaged: r.get::<_, i64>(8)? == 1,
    })
}

fn foreign_from_row(r: &Row) -> Result<Fact, StoreError> {
    Ok(Fact::ForeignKind {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        device: parse(&r.get::<_, String>(2)?)?,
        kind: r.get(3)?,
    })
}

/// Reads one projection row as a fact.
type FactReader = fn(&Row) -> Result<Fact, StoreError>;

fn rows<P: Params>(
    conn: &Conn,
    sql: &str,
    params: P,
    f: FactReader,
) -> Result<Vec<Fact>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut out = Vec::new();
    let mut rs = stmt.query(params)?;
    while let Some(r) = rs.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

pub(crate) fn facts_about(conn: &Conn, subject: &Subject) -> Result<Vec<Fact>, StoreError> {
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
            let mut out = rows(
                conn,
                "SELECT * FROM p_sales WHERE fiscal_series = $1 AND fiscal_number = $2",
                params![series, number],
                sale_from_row,
            )?;
            out.extend(rows(
                conn,
                "SELECT * FROM p_credit_notes WHERE series = $1 AND number = $2",
                params![series, number],
                credit_note_from_row,
            )?);
            Ok(out)
        }
        Subject::Debt(d) => {
            let mut out = rows(
                conn,
                "SELECT * FROM p_debts WHERE debt_id = $1",
                [d.to_string()],
                debt_from_row,
            )?;
            out.extend(rows(
                conn,
                "SELECT * FROM p_debt_payments WHERE debt_id = $1",
                [d.to_string()],
                debt_payment_from_row,
            )?);
            out.extend(rows(
                conn,
                "SELECT v.* FROM p_debts d
                 JOIN p_voids v ON v.store_id = d.store_id AND v.sale_id = d.sale_id
                 WHERE d.debt_id = $1",
                [d.to_string()],
                void_from_row,
            )?);
            Ok(out)
        }
        Subject::Event(e) => rows(
            conn,
            "SELECT * FROM p_foreign_kinds WHERE event_id = $1",
            [e.to_string()],
            foreign_from_row,
        ),
        Subject::Returned(sale) => {
            let mut out: Vec<Fact> = Vec::new();
            let mut numbered = Vec::new();
            for f in sales_by_id(conn, *sale)? {
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
            out.extend(rows(
                conn,
                "SELECT * FROM p_returns WHERE sale_id = $1",
                [sale.to_string()],
                return_line_from_row,
            )?);
            out.extend(rows(
                conn,
                "SELECT * FROM p_returns_unknown WHERE sale_id = $1",
                [sale.to_string()],
                unlinked_return_from_row,
            )?);
            for (store, number) in numbered {
                out.extend(rows(
                    conn,
                    "SELECT * FROM p_returns_unknown WHERE store_id = $1 AND reference = $2 AND sale_id IS NULL",
                    params![store, number],
                    unlinked_return_from_row,
                )?);
            }
            Ok(out)
        }
        Subject::StoreCredit(store, customer) => {
            let mut out = rows(
                conn,
                "SELECT * FROM p_store_credit WHERE store_id = $1 AND customer_id = $2",
                params![store.to_string(), customer.to_string()],
                store_credit_from_row,
            )?;
            out.extend(rows(
                conn,
                "SELECT v.* FROM p_voids v WHERE v.store_id = $1 AND v.sale_id IN
                   (SELECT sale_id FROM p_store_credit WHERE store_id = $1 AND customer_id = $2 AND sale_id IS NOT NULL)",
                params![store.to_string(), customer.to_string()],
                void_from_row,
            )?);
            Ok(out)
        }
        Subject::UnknownOriginal(e) => rows(
            conn,
            "SELECT * FROM p_returns_unknown WHERE event_id = $1",
            [e.to_string()],
            unlinked_return_from_row,
        ),
        Subject::SalePrice(e) => {
            let mut out = Vec::new();
            for f in load_sale_rows(
                conn,
                "SELECT * FROM p_sales WHERE event_id = $1",
                [e.to_string()],
            )? {
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
pub(crate) fn price_history_of(conn: &Conn, facts: &[Fact]) -> Result<Vec<Fact>, StoreError> {
    let mut keys = BTreeSet::new();
    for f in facts {
        if let Fact::SaleLine { store, product, .. } = f {
            keys.insert((store.to_string(), product.as_str().to_owned()));
        }
    }
    let mut out = Vec::new();
    for (store, product) in keys {
        out.extend(rows(
            conn,
            "SELECT * FROM p_price_history WHERE store_id = $1 AND product = $2",
            params![store, product],
            price_history_from_row,
        )?);
    }
    Ok(out)
}

/// The subjects a fact's subject stands for: a voided sale stands for the
/// debts opened for it; a price change for the sales of the store made at or
/// after it (plus the grace) that sold the product — of those applied before
/// it, only sales in `p_sales_ahead` can be (see the schema).
pub(crate) fn widen(conn: &Conn, subject: Subject) -> Result<Vec<Subject>, StoreError> {
    match subject {
        Subject::VoidedSale(sale) => {
            let debts: Vec<String> = conn
                .prepare_cached("SELECT debt_id FROM p_debts WHERE sale_id = $1")?
                .query_map([sale.to_string()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out: Vec<Subject> = debts
                .iter()
                .map(|d| Ok(Subject::Debt(parse(d)?)))
                .collect::<Result<_, StoreError>>()?;
            // A voided sale that spent store credit gives it back.
            let credits: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT store_id, customer_id FROM p_store_credit WHERE sale_id = $1",
                )?
                .query_map([sale.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (store, customer) in credits {
                let s = Subject::StoreCredit(parse(&store)?, parse(&customer)?);
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

/// A `p_sales.lines` array: `[product, qty_milli, total, tax, unit_price]`
/// per line, and a sixth element `true` on an overridden line (rows projected
/// before schema v4 lack the unit price).
#[allow(clippy::type_complexity)]
fn sale_lines(json: &str) -> Result<Vec<(String, i64, i64, i64, Option<i64>, bool)>, StoreError> {
    let raw: Vec<Vec<serde_json::Value>> = serde_json::from_str(json).map_err(corrupt)?;
    raw.into_iter()
        .map(|l| {
            let int = |i: usize| l.get(i).and_then(serde_json::Value::as_i64);
            let product = l
                .first()
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| corrupt("p_sales line product"))?;
            let n = |i: usize| int(i).ok_or_else(|| corrupt("p_sales line amount"));
            let overridden = l.get(5).and_then(serde_json::Value::as_bool) == Some(true);
            Ok((product.to_owned(), n(1)?, n(2)?, n(3)?, int(4), overridden))
        })
        .collect()
}

/// The facts of one sale (by sale id), with its lines and payments.
fn sales_by_id(conn: &Conn, sale: SaleId) -> Result<Vec<Fact>, StoreError> {
    load_sale_rows(
        conn,
        "SELECT * FROM p_sales WHERE sale_id = $1",
        [sale.to_string()],
    )
}

/// The `p_sales` rows as facts: each sale, its lines and its own payments.
fn load_sales(conn: &Conn) -> Result<Vec<Fact>, StoreError> {
    load_sale_rows(conn, "SELECT * FROM p_sales", [])
}

fn load_sale_rows<P: Params>(conn: &Conn, sql: &str, params: P) -> Result<Vec<Fact>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rs = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rs.next()? {
        let sale = sale_from_row(r)?;
        let Fact::Sale {
            event_id,
            sale_id,
            store,
            ..
        } = sale
        else {
            return Err(corrupt("p_sales row"));
        };
        out.push(sale);
        for (i, l) in sale_lines(&r.get::<_, String>(11)?)?
            .into_iter()
            .enumerate()
        {
            out.push(Fact::SaleLine {
                event_id,
                line: u32::try_from(i).map_err(corrupt)?,
                sale_id,
                store,
                product: parse(&l.0)?,
                qty_milli: l.1,
                total: l.2,
                tax: l.3,
                unit_price: l.4,
                overridden: l.5,
            });
        }
        let payments: Vec<(String, i64)> =
            serde_json::from_str(&r.get::<_, String>(12)?).map_err(corrupt)?;
        for (i, (method, amount)) in payments.into_iter().enumerate() {
            out.push(Fact::Payment {
                event_id,
                idx: u32::try_from(i).map_err(corrupt)?,
                payment_id: None,
                sale_id,
                store,
                method: projection::parse_method(&method).ok_or_else(|| corrupt(&method))?,
                amount,
            });
        }
    }
    Ok(out)
}

/// Every fact of the projection tables, read back into [`Projections`].
pub fn load_projections(conn: &Conn) -> Result<Projections, StoreError> {
    let mut p = Projections::default();
    for fact in load_sales(conn)? {
        p.apply(fact);
    }
    let all: [(&str, FactReader); 22] = [
        ("SELECT * FROM p_credit_notes", credit_note_from_row),
        ("SELECT * FROM p_store_credit", store_credit_from_row),
        ("SELECT * FROM p_returns_unknown", unlinked_return_from_row),
        ("SELECT * FROM p_drawer_opens", |r| {
            Ok(Fact::DrawerOpen {
                event_id: parse(&r.get::<_, String>(0)?)?,
                store: parse(&r.get::<_, String>(1)?)?,
                device: parse(&r.get::<_, String>(2)?)?,
                shift_id: parse(&r.get::<_, String>(3)?)?,
                reason: r.get(4)?,
                approved_by: r.get(5)?,
            })
        }),
        ("SELECT * FROM p_approvals", |r| {
            Ok(Fact::Approval {
                event_id: parse(&r.get::<_, String>(0)?)?,
                idx: r.get(1)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                action: r.get(4)?,
                staff_id: parse(&r.get::<_, String>(5)?)?,
                name: r.get(6)?,
                role: r.get(7)?,
            })
        }),
        ("SELECT * FROM p_returns", return_line_from_row),
        ("SELECT * FROM p_price_history", price_history_from_row),
        ("SELECT * FROM p_resolutions", resolution_from_row),
        ("SELECT * FROM p_escrow", |r| {
            let what: String = r.get(1)?;
            Ok(Fact::Escrow {
                event_id: parse(&r.get::<_, String>(0)?)?,
                release: what == "release",
                grant_id: parse(&r.get::<_, String>(2)?)?,
                store: parse(&r.get::<_, String>(3)?)?,
                device: parse(&r.get::<_, String>(4)?)?,
                product: parse(&r.get::<_, String>(5)?)?,
                qty_milli: r.get(6)?,
                expires_ms: r.get(7)?,
            })
        }),
        ("SELECT * FROM p_oversells", |r| {
            Ok(Fact::Oversell {
                event_id: parse(&r.get::<_, String>(0)?)?,
                line: r.get(1)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                sale_id: parse(&r.get::<_, String>(4)?)?,
                product: parse(&r.get::<_, String>(5)?)?,
                beyond_milli: r.get(6)?,
            })
        }),
        ("SELECT * FROM p_fiscal_blocks", fiscal_block_from_row),
        ("SELECT * FROM p_debts", debt_from_row),
        ("SELECT * FROM p_debt_payments", debt_payment_from_row),
        ("SELECT * FROM p_foreign_kinds", foreign_from_row),
        ("SELECT * FROM p_shifts", |r| {
            Ok(Fact::Shift {
                event_id: parse(&r.get::<_, String>(0)?)?,
                shift_id: parse(&r.get::<_, String>(1)?)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                cashier: r.get(4)?,
                opening_float: r.get(5)?,
            })
        }),
        ("SELECT * FROM p_shift_closes", |r| {
            Ok(Fact::ShiftClose {
                event_id: parse(&r.get::<_, String>(0)?)?,
                shift_id: parse(&r.get::<_, String>(1)?)?,
                store: parse(&r.get::<_, String>(2)?)?,
                expected_cash: r.get(3)?,
                counted_cash: r.get(4)?,
            })
        }),
        ("SELECT * FROM p_payments", |r| {
            let method: String = r.get(5)?;
            Ok(Fact::Payment {
                event_id: parse(&r.get::<_, String>(0)?)?,
                idx: r.get(1)?,
                payment_id: id_opt(r.get(2)?)?,
                sale_id: parse(&r.get::<_, String>(3)?)?,
                store: parse(&r.get::<_, String>(4)?)?,
                method: projection::parse_method(&method).ok_or_else(|| corrupt(&method))?,
                amount: r.get(6)?,
            })
        }),
        ("SELECT * FROM p_voids", void_from_row),
        ("SELECT * FROM p_stock_moves", |r| {
            Ok(Fact::StockMove {
                event_id: parse(&r.get::<_, String>(0)?)?,
                store: parse(&r.get::<_, String>(1)?)?,
                product: parse(&r.get::<_, String>(2)?)?,
                delta_milli: r.get(3)?,
            })
        }),
        ("SELECT * FROM p_customers", |r| {
            let n: i64 = r.get(3)?;
            Ok(Fact::Customer {
                customer_id: parse(&r.get::<_, String>(0)?)?,
                event_id: parse(&r.get::<_, String>(1)?)?,
                hlc: Hlc::new(r.get(2)?, u32::try_from(n).map_err(corrupt)?).map_err(corrupt)?,
                device: parse(&r.get::<_, String>(4)?)?,
                body: r.get(5)?,
            })
        }),
        ("SELECT * FROM p_catalog", |r| {
            Ok(Fact::CatalogItem {
                store: parse(&r.get::<_, String>(0)?)?,
                product: parse(&r.get::<_, String>(1)?)?,
                event_id: parse(&r.get::<_, String>(2)?)?,
                hub_seq: u(r.get(3)?),
                body: r.get(4)?,
            })
        }),
        ("SELECT * FROM p_prices", |r| {
            Ok(Fact::Price {
                store: parse(&r.get::<_, String>(0)?)?,
                product: parse(&r.get::<_, String>(1)?)?,
                event_id: parse(&r.get::<_, String>(2)?)?,
                hub_seq: u(r.get(3)?),
                unit_price: r.get(4)?,
            })
        }),
    ];
    for (sql, f) in all {
        for fact in rows(conn, sql, [], f)? {
            p.apply(fact);
        }
    }
    Ok(p)
}

/// Digest of the projections: the canonical JSON of every fact, the derived
/// summary and the conflicts (as the pure code computes them and as the
/// `conflicts` tables hold them). Live ingest and a rebuild must agree on it.
pub fn digest(conn: &Conn) -> Result<Hash256, StoreError> {
    let p = load_projections(conn)?;
    let mut stmt = conn.prepare(conn.pick(
        "SELECT c.conflict_id, c.reason, c.strategy, c.subject, c.detected_ms,
                (SELECT group_concat(event_id, ',') FROM (SELECT event_id FROM conflict_events e WHERE e.conflict_id = c.conflict_id ORDER BY event_id))
         FROM conflicts c ORDER BY c.conflict_id",
        "SELECT c.conflict_id, c.reason, c.strategy, c.subject, c.detected_ms,
                (SELECT string_agg(event_id, ',' ORDER BY event_id) FROM conflict_events e WHERE e.conflict_id = c.conflict_id)
         FROM conflicts c ORDER BY c.conflict_id",
    ))?;
    let conflicts: Vec<Value> = stmt
        .query_map([], |r| {
            Ok(Value::Array(vec![
                Value::String(r.get(0)?),
                Value::String(r.get(1)?),
                Value::String(r.get(2)?),
                Value::String(r.get(3)?),
                Value::Int(r.get(4)?),
                Value::String(r.get::<_, Option<String>>(5)?.unwrap_or_default()),
            ]))
        })?
        .collect::<Result<_, _>>()?;
    let whole = audit::data([
        ("projections", p.to_value()),
        ("conflict_rows", Value::Array(conflicts)),
    ]);
    Ok(Hash256::of(&whole.to_canonical_bytes()))
}
