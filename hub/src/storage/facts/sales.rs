//! The sales family: a sale with its lines and its own payments as one
//! `p_sales` row (lines and payments as JSON arrays, see the schema), and
//! `p_sales_ahead`, the index of sales made ahead of the hub's clock that
//! a later price change may re-decide (written by the decision pipeline).
//!
//! Invariant: the only module that knows the layout of a `p_sales` row;
//! statements name their columns.

use caja_shared::ids::{EventId, SaleId};

use super::table::{rows, Family, Table};
use crate::projection::{self, Fact};
use crate::storage::codec::{corrupt, hlc_opt, id_opt, opt_str, parse};
use crate::storage::db::{params, Conn, Params, Row};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[
        Table {
            name: "p_sales",
            load: Some(load),
        },
        Table {
            name: "p_sales_ahead",
            load: None,
        },
    ],
};

/// The `p_sales.lines` and `p_sales.payments` arrays of one event's facts:
/// `[product, qty_milli, total, tax, unit_price]` per line (and a sixth
/// element `true` on an overridden line), `[method, amount]` per payment
/// taken with the sale.
pub(crate) fn lines_and_payments(
    facts: &[Fact],
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let mut lines = Vec::new();
    let mut payments = Vec::new();
    for f in facts {
        match f {
            Fact::SaleLine {
                product,
                qty_milli,
                total,
                tax,
                unit_price,
                overridden,
                ..
            } => lines.push(if *overridden {
                // A sixth element only on overridden lines: rows written
                // before schema v9 read as not overridden.
                serde_json::json!([product.as_str(), qty_milli, total, tax, unit_price, true])
            } else {
                serde_json::json!([product.as_str(), qty_milli, total, tax, unit_price])
            }),
            Fact::Payment {
                payment_id: None,
                method,
                amount,
                ..
            } => payments.push(serde_json::json!([
                projection::method_name(*method),
                amount
            ])),
            _ => {}
        }
    }
    (lines, payments)
}

/// Writes a sale's row with its lines and payments (see
/// [`lines_and_payments`]).
pub(crate) fn write_sale(
    conn: &Conn,
    f: &Fact,
    lines: Vec<serde_json::Value>,
    payments: Vec<serde_json::Value>,
) -> Result<(), StorageError> {
    let Fact::Sale {
        event_id,
        sale_id,
        store,
        device,
        shift_id,
        customer,
        total,
        tax,
        change,
        fiscal,
        hlc,
    } = f
    else {
        return Err(corrupt("not a sale fact"));
    };
    multirow::insert_later(conn, "INSERT INTO p_sales (event_id, sale_id, store_id, device_id, shift_id, customer_id, total, tax,
           change, fiscal_series, fiscal_number, lines, payments, hlc_ms, hlc_n)", params![
        event_id.to_string(),
        sale_id.to_string(),
        store.to_string(),
        device.to_string(),
        opt_str(shift_id),
        opt_str(customer),
        total,
        tax,
        change,
        fiscal.as_ref().map(|f| f.0.clone()),
        fiscal.as_ref().map(|f| f.1.clone()),
        serde_json::Value::Array(lines).to_string(),
        serde_json::Value::Array(payments).to_string(),
        hlc.map(|h| h.ms()),
        hlc.map(|h| i64::from(h.n()))
    ])?;
    Ok(())
}

fn sale_from_row(r: &Row) -> Result<Fact, StorageError> {
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

/// A `p_sales.lines` array: `[product, qty_milli, total, tax, unit_price]`
/// per line, and a sixth element `true` on an overridden line (rows projected
/// before schema v4 lack the unit price).
#[allow(clippy::type_complexity)]
fn sale_lines(json: &str) -> Result<Vec<(String, i64, i64, i64, Option<i64>, bool)>, StorageError> {
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
pub(crate) fn by_sale_id(conn: &Conn, sale: SaleId) -> Result<Vec<Fact>, StorageError> {
    read_rows(
        conn,
        "SELECT event_id, sale_id, store_id, device_id, shift_id, customer_id, total, tax, change,
                fiscal_series, fiscal_number, lines, payments, hlc_ms, hlc_n
         FROM p_sales WHERE sale_id = $1",
        [sale.to_string()],
    )
}

/// The facts of the sale applied by one event, with its lines and payments.
pub(crate) fn by_event(conn: &Conn, event: EventId) -> Result<Vec<Fact>, StorageError> {
    read_rows(
        conn,
        "SELECT event_id, sale_id, store_id, device_id, shift_id, customer_id, total, tax, change,
                fiscal_series, fiscal_number, lines, payments, hlc_ms, hlc_n
         FROM p_sales WHERE event_id = $1",
        [event.to_string()],
    )
}

/// The sales (their `Sale` facts alone, without lines or payments) that
/// carry one fiscal number.
pub(crate) fn by_fiscal_number(
    conn: &Conn,
    series: &str,
    number: &str,
) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, sale_id, store_id, device_id, shift_id, customer_id, total, tax, change,
                fiscal_series, fiscal_number, lines, payments, hlc_ms, hlc_n
         FROM p_sales WHERE fiscal_series = $1 AND fiscal_number = $2",
        params![series, number],
        sale_from_row,
    )
}

/// The `p_sales` rows as facts: each sale, its lines and its own payments.
fn load(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    read_rows(
        conn,
        "SELECT event_id, sale_id, store_id, device_id, shift_id, customer_id, total, tax, change,
                fiscal_series, fiscal_number, lines, payments, hlc_ms, hlc_n
         FROM p_sales",
        [],
    )
}

/// `p_sales` rows as facts; `sql` selects `event_id, sale_id, store_id,
/// device_id, shift_id, customer_id, total, tax, change, fiscal_series,
/// fiscal_number, lines, payments, hlc_ms, hlc_n` in this order, as every
/// `SELECT` of this module does.
fn read_rows<P: Params>(conn: &Conn, sql: &str, params: P) -> Result<Vec<Fact>, StorageError> {
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
