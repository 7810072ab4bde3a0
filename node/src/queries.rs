//! Read queries over the node's database, shared by the register's
//! operations, the command line, the cashier's screen and sync: the catalog
//! lookup, sales and their lines, customers, debts, stock, shifts.
//!
//! Each function takes a `&Connection` (a `Transaction` derefs to one, so an
//! operation reads under its write lock) and returns plain rows or domain
//! types.
//!
//! Invariant: only `SELECT`s; nothing here writes, and nothing here knows an
//! operation, a screen or the sync protocol (they call down into it).

use caja_shared::ids::{CustomerId, SaleId, ShiftId, Sku};
use caja_shared::kind::SoldBy;
use caja_shared::money::{Money, TaxRateBp};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::OpError;
use crate::sale::CatalogItem;

/// Looks up an item by SKU or barcode.
pub fn lookup_item(conn: &Connection, code: &str) -> Result<Option<CatalogItem>, OpError> {
    let row: Option<(String, String, i64, String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT sku, name, tax_bp, sold_by, unit_price FROM catalog_items
             WHERE sku = ?1 OR sku = (SELECT sku FROM barcodes WHERE code = ?1)",
        )?
        .query_row([code], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((sku, name, bp, sold_by, price)) = row else {
        return Ok(None);
    };
    let sku: Sku = sku
        .parse()
        .map_err(|_| OpError::invalid("sku", "stored sku unreadable"))?;
    let bp = u16::try_from(bp)
        .ok()
        .and_then(|b| TaxRateBp::new(b).ok())
        .ok_or_else(|| OpError::invalid("tax_bp", "stored tax rate unreadable"))?;
    Ok(Some(CatalogItem {
        sku,
        name,
        tax_bp: bp,
        sold_by: if sold_by == "weight" {
            SoldBy::Weight
        } else {
            SoldBy::Unit
        },
        unit_price: price.map(Money),
    }))
}

/// How `code` (SKU or barcode) is sold: `Some("weight")`, `Some("unit")`,
/// or `None` for an unknown product.
pub fn sold_by(conn: &Connection, code: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT sold_by FROM catalog_items
         WHERE sku = ?1 OR sku = (SELECT sku FROM barcodes WHERE code = ?1)
         LIMIT 1",
    )?
    .query_row([code], |r| r.get(0))
    .optional()
}

/// The SKUs sold by weight, by name (the screen's default quick keys).
pub fn weighed_skus(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT sku FROM catalog_items WHERE sold_by = 'weight' ORDER BY name LIMIT ?1",
    )?
    .query_map([limit], |r| r.get(0))?
    .collect()
}

/// The event id stored at a journal seq (the index column, checked against
/// the event's bytes by `verify`).
pub fn event_id_at(conn: &Connection, seq: i64) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT event_id FROM journal WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()
}

/// The events of a seq range, `(seq, bytes)` in order.
pub fn journal_range(
    conn: &Connection,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    let mut stmt =
        conn.prepare("SELECT seq, bytes FROM journal WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq")?;
    let rows = stmt.query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// A customer's credit limit (`None`: no such customer).
pub fn credit_limit(conn: &Connection, customer: &CustomerId) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT credit_limit FROM customers WHERE customer_id = ?1")?
        .query_row([customer.to_string()], |r| r.get(0))
        .optional()
}

/// Customers by name (at most `limit`): id, name, credit limit.
pub fn customers(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<(String, String, i64)>> {
    conn.prepare("SELECT customer_id, name, credit_limit FROM customers ORDER BY name LIMIT ?1")?
        .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// A customer's name, phone, RNC/cédula and credit limit.
pub type CustomerFields = (String, Option<String>, Option<String>, i64);

/// One customer's fields as this register knows them.
pub fn customer_fields(
    conn: &Connection,
    customer: &CustomerId,
) -> rusqlite::Result<Option<CustomerFields>> {
    conn.prepare_cached(
        "SELECT name, phone, tax_id, credit_limit FROM customers WHERE customer_id = ?1",
    )?
    .query_row([customer.to_string()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .optional()
}

/// A customer's open debts, oldest first: debt id, its event id, what is
/// left to pay.
pub fn open_debts(
    conn: &Connection,
    customer: &CustomerId,
) -> rusqlite::Result<Vec<(String, String, i64)>> {
    conn.prepare(
        "SELECT debt_id, event_id, amount - paid FROM debts
         WHERE customer_id = ?1 AND voided = 0 AND amount > paid
         ORDER BY event_id",
    )?
    .query_map([customer.to_string()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .collect()
}

/// The stock the register holds of a SKU (`None`: never moved).
pub fn stock_qty(conn: &Connection, sku: &Sku) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT qty_milli FROM stock WHERE sku = ?1",
        [sku.as_str()],
        |r| r.get(0),
    )
    .optional()
}

/// A sale of this store found by id or fiscal number.
#[derive(Debug, Clone)]
pub struct SaleRef {
    /// The sale id (as stored).
    pub sale_id: String,
    /// Its `SaleCreated` event id (as stored).
    pub event_id: String,
    /// The void's seq, when voided.
    pub voided_seq: Option<i64>,
    /// Its fiscal number, if any.
    pub fiscal_number: Option<String>,
    /// Its customer (as stored), if any.
    pub customer_id: Option<String>,
}

/// The sale with this id or fiscal number (the first one, by seq).
pub fn sale_by_ref(conn: &Connection, reference: &str) -> rusqlite::Result<Option<SaleRef>> {
    conn.query_row(
        "SELECT sale_id, event_id, voided_seq, fiscal_number, customer_id FROM sales
         WHERE sale_id = ?1 OR fiscal_number = ?1 ORDER BY seq LIMIT 1",
        [reference],
        |r| {
            Ok(SaleRef {
                sale_id: r.get(0)?,
                event_id: r.get(1)?,
                voided_seq: r.get(2)?,
                fiscal_number: r.get(3)?,
                customer_id: r.get(4)?,
            })
        },
    )
    .optional()
}

/// One of `device`'s sales: its event id and its void's seq, if voided.
pub fn device_sale(
    conn: &Connection,
    sale: SaleId,
    device: &str,
) -> rusqlite::Result<Option<(String, Option<i64>)>> {
    conn.query_row(
        "SELECT event_id, voided_seq FROM sales WHERE sale_id = ?1 AND device = ?2",
        [sale.to_string(), device.to_owned()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// The journal seq of a sale's `SaleCreated`.
pub fn sale_seq(conn: &Connection, sale: SaleId) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT seq FROM sales WHERE sale_id = ?1",
        [sale.to_string()],
        |r| r.get(0),
    )
}

/// The seq of one of this register's own sales (`None`: not one of its own).
pub fn own_sale_seq(conn: &Connection, sale: &SaleId) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT seq FROM sales WHERE sale_id = ?1
         AND device = (SELECT device_id FROM device WHERE id = 1)",
        [sale.to_string()],
        |r| r.get(0),
    )
    .optional()
}

/// A sale's fiscal number, if it has one.
pub fn sale_fiscal_number(conn: &Connection, sale: SaleId) -> rusqlite::Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT fiscal_number FROM sales WHERE sale_id = ?1",
            [sale.to_string()],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// One line of a sale as sold: SKU, quantity, total, tax.
pub fn sale_line(
    conn: &Connection,
    sale: &str,
    line: u32,
) -> rusqlite::Result<Option<(String, i64, i64, i64)>> {
    conn.query_row(
        "SELECT sku, qty_milli, total, tax FROM sale_lines WHERE sale_id = ?1 AND line_no = ?2",
        params![sale, i64::from(line)],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .optional()
}

/// What was already returned of a sale's line: quantity, total, tax.
pub fn line_returned(
    conn: &Connection,
    sale: &str,
    line: u32,
) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(
        "SELECT coalesce(sum(qty_milli), 0), coalesce(sum(total), 0), coalesce(sum(tax), 0)
         FROM returns WHERE sale_id = ?1 AND sale_line = ?2",
        params![sale, i64::from(line)],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Of a product in a sale: sold, returned by line, and returned without the
/// original (matched by the sale's id or its fiscal number).
pub fn product_returned(
    conn: &Connection,
    sale: &str,
    sku: &str,
    fiscal_number: Option<&str>,
) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(
        "SELECT (SELECT coalesce(sum(qty_milli), 0) FROM sale_lines WHERE sale_id = ?1 AND sku = ?2),
                (SELECT coalesce(sum(qty_milli), 0) FROM returns WHERE sale_id = ?1 AND product = ?2),
                (SELECT coalesce(sum(qty_milli), 0) FROM returns_unknown
                  WHERE product = ?2 AND (sale_id = ?1 OR reference = ?1 OR reference = ?3))",
        params![sale, sku, fiscal_number],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// A sale of the recent list: id, fiscal number, total, void seq, time.
pub type RecentSale = (String, Option<String>, i64, Option<i64>, i64);

/// `device`'s latest sales, newest first (at most `limit`).
pub fn recent_sales(
    conn: &Connection,
    device: &str,
    limit: u32,
) -> rusqlite::Result<Vec<RecentSale>> {
    conn.prepare(
        "SELECT s.sale_id, s.fiscal_number, s.total, s.voided_seq, j.hlc_ms
         FROM sales s JOIN journal j ON j.seq = s.seq
         WHERE s.device = ?1 ORDER BY s.seq DESC LIMIT ?2",
    )?
    .query_map(params![device, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?
    .collect()
}

/// A sale's line for display: number, name, quantity, total, and whether
/// its product is sold by weight.
pub type ShownLine = (i64, String, i64, i64, bool);

/// A sale's lines for display, in order.
pub fn sale_lines_shown(conn: &Connection, sale: &str) -> rusqlite::Result<Vec<ShownLine>> {
    conn.prepare_cached(
        "SELECT l.line_no, l.name, l.qty_milli, l.total, c.sold_by
         FROM sale_lines l LEFT JOIN catalog_items c ON c.sku = l.sku
         WHERE l.sale_id = ?1 ORDER BY l.line_no",
    )?
    .query_map([sale], |r| {
        let by_weight = r.get::<_, Option<String>>(4)?.as_deref() == Some("weight");
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, by_weight))
    })?
    .collect()
}

/// The seqs that open and (when closed) close a shift: the one with this
/// id, or the open one.
pub fn shift_seqs(
    conn: &Connection,
    shift: Option<ShiftId>,
) -> rusqlite::Result<Option<(i64, Option<i64>)>> {
    match shift {
        Some(s) => conn
            .query_row(
                "SELECT opened_seq, closed_seq FROM shifts WHERE shift_id = ?1",
                [s.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional(),
        None => conn
            .query_row(
                "SELECT opened_seq, closed_seq FROM shifts WHERE closed_seq IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional(),
    }
}

/// How many hub chain events and other registers' events are held.
pub fn held_events(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let hub: i64 = conn.query_row("SELECT count(*) FROM hub_events", [], |r| r.get(0))?;
    let peer: i64 = conn.query_row("SELECT count(*) FROM peer_events", [], |r| r.get(0))?;
    Ok((hub, peer))
}

/// The journal seq of `device`'s sale (`None`: not one of its sales).
pub fn device_sale_seq(
    conn: &Connection,
    sale: SaleId,
    device: &str,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT seq FROM sales WHERE sale_id = ?1 AND device = ?2")?
        .query_row([sale.to_string(), device.to_owned()], |r| r.get(0))
        .optional()
}

/// The journal seq of a drawer opening, by its movement id.
pub fn drawer_open_seq(conn: &Connection, movement: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT seq FROM drawer_opens WHERE movement_id = ?1")?
        .query_row([movement], |r| r.get(0))
        .optional()
}

/// A customer's name (`None`: unknown here).
pub fn customer_name(conn: &Connection, customer: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT name FROM customers WHERE customer_id = ?1")?
        .query_row([customer], |r| r.get(0))
        .optional()
}

/// How a SKU (not a barcode) is sold: `Some("weight")`, `Some("unit")`, or
/// `None` when the catalog does not have it.
pub fn sku_sold_by(conn: &Connection, sku: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT sold_by FROM catalog_items WHERE sku = ?1")?
        .query_row([sku], |r| r.get(0))
        .optional()
}

/// The HLC ms of the event at a journal seq (`None`: no event there).
pub fn event_hlc_ms(conn: &Connection, seq: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT hlc_ms FROM journal WHERE seq = ?1", [seq], |r| {
        r.get(0)
    })
    .optional()
}
