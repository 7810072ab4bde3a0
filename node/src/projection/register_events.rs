//! Applying register events — this register's own (`apply_own`, in journal
//! order) and its peers' pulled from the hub (`apply_peer`) — to the sales,
//! payments, fiado, stock, customer, shift, cash and return tables.
//!
//! Invariant: an own-event update reads no catalog state (a sale line carries
//! its own price and tax), so the two chains apply in any interleaving; shifts
//! stay per register (a peer's are not applied).

use caja_shared::event::Event;
use caja_shared::kind::{EventBody, PaymentMethod};
use std::sync::OnceLock;

use rusqlite::{params, Connection};

use super::sql::exec;

fn method_str(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::Cash => "cash",
        PaymentMethod::Card => "card",
        PaymentMethod::Transfer => "transfer",
        PaymentMethod::Fiado => "fiado",
        PaymentMethod::StoreCredit => "store_credit",
    }
}

fn add_stock(conn: &Connection, sku: &str, delta_milli: i64) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO stock (sku, qty_milli) VALUES (?1, ?2)
         ON CONFLICT (sku) DO UPDATE SET qty_milli = qty_milli + excluded.qty_milli",
        params![sku, delta_milli],
    )?;
    Ok(())
}

/// Rows per multi-row statement: a sale's lines, and its stock moves, are
/// written `ROWS_PER_STATEMENT` at a time (a 3-line sale: one statement each
/// instead of three), one cached statement per chunk size.
const ROWS_PER_STATEMENT: usize = 8;

/// `head` followed by `rows` groups of `cols` anonymous parameters, then `tail`.
fn values_sql(head: &str, cols: usize, rows: usize, tail: &str) -> String {
    let group = format!("({})", vec!["?"; cols].join(", "));
    format!("{head} {}{tail}", vec![group; rows].join(", "))
}

/// The sale's lines, in order (`line_no` from 0), and what they take from
/// stock: the same rows as one insert and one stock update per line.
fn insert_lines_and_take_stock(
    conn: &Connection,
    sale_id: &str,
    lines: &[caja_shared::kind::SaleLine],
) -> rusqlite::Result<()> {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    static STOCK: OnceLock<Vec<String>> = OnceLock::new();
    let lines_sql = LINES.get_or_init(|| {
        (1..=ROWS_PER_STATEMENT)
            .map(|n| {
                values_sql(
                    "INSERT INTO sale_lines (sale_id, line_no, sku, name, qty_milli, unit_price,
                        tax_bp, discount, total, tax) VALUES",
                    10,
                    n,
                    "",
                )
            })
            .collect()
    });
    let stock_sql = STOCK.get_or_init(|| {
        (1..=ROWS_PER_STATEMENT)
            .map(|n| {
                values_sql(
                    "INSERT INTO stock (sku, qty_milli) VALUES",
                    2,
                    n,
                    " ON CONFLICT (sku) DO UPDATE SET qty_milli = qty_milli + excluded.qty_milli",
                )
            })
            .collect()
    });
    for (c, chunk) in lines.chunks(ROWS_PER_STATEMENT).enumerate() {
        let mut stmt = conn.prepare_cached(&lines_sql[chunk.len() - 1])?;
        for (j, l) in chunk.iter().enumerate() {
            let line_no = i64::try_from(c * ROWS_PER_STATEMENT + j)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let at = j * 10;
            stmt.raw_bind_parameter(at + 1, sale_id)?;
            stmt.raw_bind_parameter(at + 2, line_no)?;
            stmt.raw_bind_parameter(at + 3, l.product.as_str())?;
            stmt.raw_bind_parameter(at + 4, l.name.as_str())?;
            stmt.raw_bind_parameter(at + 5, l.qty_milli.0)?;
            stmt.raw_bind_parameter(at + 6, l.unit_price.0)?;
            stmt.raw_bind_parameter(at + 7, i64::from(l.tax_bp.bp()))?;
            stmt.raw_bind_parameter(at + 8, l.discount.map_or(0, |d| d.0))?;
            stmt.raw_bind_parameter(at + 9, l.total.0)?;
            stmt.raw_bind_parameter(at + 10, l.tax.0)?;
        }
        stmt.raw_execute()?;
        let mut stmt = conn.prepare_cached(&stock_sql[chunk.len() - 1])?;
        for (j, l) in chunk.iter().enumerate() {
            stmt.raw_bind_parameter(j * 2 + 1, l.product.as_str())?;
            stmt.raw_bind_parameter(j * 2 + 2, -l.qty_milli.0)?;
        }
        stmt.raw_execute()?;
    }
    Ok(())
}

/// Applies one of this register's own events (already appended at `seq`).
pub fn apply_own(
    conn: &Connection,
    seq: i64,
    event: &Event,
    body: &EventBody,
) -> rusqlite::Result<()> {
    apply_register_event(conn, seq, event, body, true)
}

/// Applies an event of another register of the store (pulled from the hub):
/// its sales, voids, fiado and stock movements, and customer changes. Shifts
/// are per register and stay out.
pub fn apply_peer(
    conn: &Connection,
    seq: i64,
    event: &Event,
    body: &EventBody,
) -> rusqlite::Result<()> {
    apply_register_event(conn, seq, event, body, false)
}

fn apply_register_event(
    conn: &Connection,
    seq: i64,
    event: &Event,
    body: &EventBody,
    own: bool,
) -> rusqlite::Result<()> {
    let event_id = event.id().to_string();
    let env = event.envelope();
    let device = env.device.to_string();
    match body {
        EventBody::ShiftOpened(_) | EventBody::ShiftClosed(_) if !own => {}
        EventBody::ShiftOpened(b) => {
            exec(
                conn,
                "INSERT INTO shifts (shift_id, cashier, opening_float, opened_seq) VALUES (?1, ?2, ?3, ?4)",
                params![b.shift_id.to_string(), b.cashier, b.opening_float.0, seq],
            )?;
        }
        EventBody::ShiftClosed(b) => {
            exec(
                conn,
                "UPDATE shifts SET closed_seq = ?2, expected_cash = ?3, counted_cash = ?4 WHERE shift_id = ?1",
                params![b.shift_id.to_string(), seq, b.expected_cash.0, b.counted_cash.0],
            )?;
        }
        EventBody::SaleCreated(b) => {
            let sale_id = b.sale_id.to_string();
            exec(
                conn,
                "INSERT INTO sales (sale_id, device, seq, event_id, shift_id, cashier, customer_id,
                    fiscal_series, fiscal_number, total, tax, change)
                 VALUES (?1, ?12, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    sale_id,
                    seq,
                    event_id,
                    b.shift_id.map(|s| s.to_string()),
                    b.cashier,
                    b.customer.map(|c| c.to_string()),
                    b.fiscal.as_ref().map(|f| f.series.clone()),
                    b.fiscal.as_ref().map(|f| f.number.clone()),
                    b.total.0,
                    b.tax.0,
                    b.change.0,
                    device
                ],
            )?;
            insert_lines_and_take_stock(conn, &sale_id, &b.lines)?;
            if let Some(f) = &b.fiscal {
                // The number is used: the block's next number moves past it.
                exec(
                    conn,
                    "UPDATE fiscal_blocks SET next = max(next, ?3 + 1)
                     WHERE device_id = ?1 AND series = ?2 AND first <= ?3 AND last >= ?3",
                    params![
                        device,
                        f.series,
                        caja_shared::fiscal::parse_number(&f.series, &f.number)
                            .and_then(|n| i64::try_from(n).ok())
                            .unwrap_or(-1)
                    ],
                )?;
            }
            for (i, p) in b.payments.iter().enumerate() {
                exec(
                    conn,
                    "INSERT INTO sale_payments (sale_id, idx, method, amount, reference)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        sale_id,
                        i as i64,
                        method_str(p.method),
                        p.amount.0,
                        p.reference
                    ],
                )?;
                if let (PaymentMethod::StoreCredit, Some(customer)) = (p.method, b.customer) {
                    exec(
                        conn,
                        "INSERT INTO store_credit (entry_id, idx, customer_id, amount, sale_id, event_id, device)
                         VALUES (?1, ?2, ?3, ?4, ?1, ?5, ?6)",
                        params![
                            sale_id,
                            i as i64,
                            customer.to_string(),
                            -p.amount.0,
                            event_id,
                            device
                        ],
                    )?;
                }
            }
        }
        EventBody::SaleVoided(b) => {
            let sale_id = b.sale_id.to_string();
            let changed = exec(
                conn,
                "UPDATE sales SET voided_seq = ?2, void_event_id = ?3, void_reason = ?4
                 WHERE sale_id = ?1 AND voided_seq IS NULL",
                params![sale_id, seq, event_id, b.reason],
            )?;
            if changed == 1 {
                let lines: Vec<(String, i64)> = conn
                    .prepare(
                        "SELECT sku, qty_milli FROM sale_lines WHERE sale_id = ?1 ORDER BY line_no",
                    )?
                    .query_map([&sale_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (sku, qty) in lines {
                    add_stock(conn, &sku, qty)?;
                }
                exec(
                    conn,
                    "UPDATE debts SET voided = 1 WHERE sale_id = ?1",
                    [&sale_id],
                )?;
            }
        }
        EventBody::PaymentTaken(b) => {
            let idx: i64 = conn.query_row(
                "SELECT coalesce(max(idx), -1) + 1 FROM sale_payments WHERE sale_id = ?1",
                [b.sale_id.to_string()],
                |r| r.get(0),
            )?;
            exec(
                conn,
                "INSERT INTO sale_payments (sale_id, idx, method, amount, reference) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![b.sale_id.to_string(), idx, method_str(b.method), b.amount.0, b.reference],
            )?;
        }
        EventBody::DebtOpened(b) => {
            exec(
                conn,
                "INSERT INTO debts (debt_id, customer_id, sale_id, event_id, amount) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    b.debt_id.to_string(),
                    b.customer.to_string(),
                    b.sale_id.map(|s| s.to_string()),
                    event_id,
                    b.amount.0
                ],
            )?;
        }
        EventBody::DebtPaymentTaken(b) => {
            exec(
                conn,
                "INSERT INTO debt_payments (payment_id, debt_id, customer_id, method, amount, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    b.payment_id.to_string(),
                    b.debt_id.to_string(),
                    b.customer.to_string(),
                    method_str(b.method),
                    b.amount.0,
                    seq
                ],
            )?;
            exec(
                conn,
                "UPDATE debts SET paid = paid + ?2 WHERE debt_id = ?1",
                params![b.debt_id.to_string(), b.amount.0],
            )?;
        }
        EventBody::StockReceived(b) => add_stock(conn, b.product.as_str(), b.qty_milli.0)?,
        EventBody::StockCounted(b) => add_stock(conn, b.product.as_str(), b.delta_milli.0)?,
        EventBody::CustomerUpserted(b) => {
            // Last writer wins by (HLC, device): order-independent across registers.
            exec(
                conn,
                "INSERT INTO customers (customer_id, name, phone, tax_id, credit_limit, hlc_ms, hlc_n, device)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, phone = excluded.phone,
                    tax_id = excluded.tax_id, credit_limit = excluded.credit_limit,
                    hlc_ms = excluded.hlc_ms, hlc_n = excluded.hlc_n, device = excluded.device
                 WHERE (excluded.hlc_ms, excluded.hlc_n, excluded.device) > (customers.hlc_ms, customers.hlc_n, customers.device)",
                params![
                    b.customer_id.to_string(),
                    b.name,
                    b.phone,
                    b.tax_id,
                    b.credit_limit.0,
                    env.hlc.ms(),
                    i64::from(env.hlc.n()),
                    device
                ],
            )?;
        }
        EventBody::SaleReturned(b) => {
            for (i, l) in b.lines.iter().enumerate() {
                match (&b.original_unknown, l.line, b.sale_id) {
                    (None, Some(line), Some(sale)) => exec(
                        conn,
                        "INSERT INTO returns (return_id, line, sale_id, sale_line, product, qty_milli, total, tax, damaged, device)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![
                            b.return_id.to_string(),
                            i as i64,
                            sale.to_string(),
                            i64::from(line),
                            l.product.as_str(),
                            l.qty_milli.0,
                            l.total.0,
                            l.tax.0,
                            i64::from(l.damaged),
                            device
                        ],
                    )?,
                    // The original was unknown (or the line names no sale
                    // line): kept by the reference the cashier gave.
                    _ => exec(
                        conn,
                        "INSERT INTO returns_unknown (return_id, line, reference, sale_id, product, qty_milli, total, tax, damaged, device)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![
                            b.return_id.to_string(),
                            i as i64,
                            b.original_unknown
                                .as_ref()
                                .map(|u| u.reference.clone())
                                .or_else(|| b.sale_id.map(|s| s.to_string()))
                                .unwrap_or_default(),
                            b.sale_id.map(|s| s.to_string()),
                            l.product.as_str(),
                            l.qty_milli.0,
                            l.total.0,
                            l.tax.0,
                            i64::from(l.damaged),
                            device
                        ],
                    )?,
                };
                if !l.damaged {
                    add_stock(conn, l.product.as_str(), l.qty_milli.0)?;
                }
            }
            if let (PaymentMethod::StoreCredit, Some(customer)) = (b.refund, b.customer) {
                if b.total.0 != 0 {
                    exec(
                        conn,
                        "INSERT INTO store_credit (entry_id, idx, customer_id, amount, sale_id, event_id, device)
                         VALUES (?1, 0, ?2, ?3, NULL, ?4, ?5)",
                        params![
                            b.return_id.to_string(),
                            customer.to_string(),
                            b.total.0,
                            event_id,
                            device
                        ],
                    )?;
                }
            }
            if let Some(f) = &b.credit_note {
                exec(
                    conn,
                    "UPDATE fiscal_blocks SET next = max(next, ?3 + 1)
                     WHERE device_id = ?1 AND series = ?2 AND first <= ?3 AND last >= ?3",
                    params![
                        device,
                        f.series,
                        caja_shared::fiscal::parse_number(&f.series, &f.number)
                            .and_then(|n| i64::try_from(n).ok())
                            .unwrap_or(-1)
                    ],
                )?;
            }
        }
        EventBody::DrawerOpened(b) if own => {
            exec(
                conn,
                "INSERT INTO drawer_opens (movement_id, shift_id, reason, seq, approved_by)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    b.movement_id.to_string(),
                    b.shift_id.to_string(),
                    b.reason,
                    seq,
                    b.approval.as_ref().map(|a| a.name.clone())
                ],
            )?;
        }
        EventBody::CashMoved(b) if own => {
            exec(
                conn,
                "INSERT INTO cash_moves (movement_id, shift_id, kind, amount, reason, seq, approved_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    b.movement_id.to_string(),
                    b.shift_id.to_string(),
                    match b.kind {
                        caja_shared::kind::CashMovement::PaidIn => "paid_in",
                        caja_shared::kind::CashMovement::PaidOut => "paid_out",
                        caja_shared::kind::CashMovement::Drop => "drop",
                    },
                    b.amount.0,
                    b.reason,
                    seq,
                    b.approval.as_ref().map(|a| a.name.clone())
                ],
            )?;
        }
        EventBody::FiscalNumbersReleased(b) => {
            exec(
                conn,
                "UPDATE fiscal_blocks SET released_from = min(coalesce(released_from, ?2), ?2)
                 WHERE grant_id = ?1 AND device_id = ?3",
                params![
                    b.grant_id.to_string(),
                    i64::try_from(b.first).unwrap_or(i64::MAX),
                    device
                ],
            )?;
        }
        // Hub kinds change no register projection here; escrow gets tables
        // of its own with its issue.
        EventBody::CatalogItemUpserted(_)
        | EventBody::PriceSet(_)
        | EventBody::FiscalRangeGranted(_)
        | EventBody::StaffUpserted(_)
        | EventBody::CashMoved(_)
        | EventBody::DrawerOpened(_)
        | EventBody::EscrowGranted(_)
        | EventBody::EscrowReleased(_)
        | EventBody::ConflictResolved(_)
        | EventBody::PaymentIntentUpdated(_)
        | EventBody::FiscalDocumentAccepted(_)
        | EventBody::FiscalDocumentRejected(_) => {}
        // A sale's drawer opened apart from its receipt: its row is in
        // `drawer_openings` already (the print queue's), with this seq.
        EventBody::SaleDrawerOpened(_) => {}
        // The issuing register stores its signed documents in the sale's own
        // transaction (`signed_documents`); other registers only keep the event.
        EventBody::FiscalDocumentIssued(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use caja_shared::kind::SaleLine;
    use caja_shared::money::{Money, QtyMilli, TaxRateBp};
    use rusqlite::Connection;

    fn line(sku: &str, qty_milli: i64) -> SaleLine {
        SaleLine {
            product: sku.parse().expect("sku"),
            name: format!("item {sku}"),
            qty_milli: QtyMilli(qty_milli),
            unit_price: Money(100),
            tax_bp: TaxRateBp::new(1800).expect("rate"),
            discount: None,
            total: Money(qty_milli / 10),
            tax: Money(1),
            beyond_quota_milli: None,
            price_override: None,
        }
    }

    /// More lines than one statement holds, a product on two lines: every
    /// line is a row numbered from 0 in order, and each product's stock goes
    /// down by the sum of its lines (as one statement per line did).
    #[test]
    fn a_sales_lines_and_stock_moves_are_those_of_one_statement_per_line() {
        let mut conn = Connection::open_in_memory().expect("db");
        crate::migrate::migrate(&mut conn).expect("schema");
        conn.execute("INSERT INTO stock (sku, qty_milli) VALUES ('A', 50000)", [])
            .expect("stock");
        let mut lines: Vec<SaleLine> = (0..super::ROWS_PER_STATEMENT + 3)
            .map(|i| line(&format!("P{i}"), 1000 * (i as i64 + 1)))
            .collect();
        lines[2] = line("A", 2000);
        lines[super::ROWS_PER_STATEMENT + 1] = line("A", 455);
        let sale = "01935f4e-8a00-7000-8000-000000000001";
        super::insert_lines_and_take_stock(&conn, sale, &lines).expect("apply");
        let rows: Vec<(i64, String, i64)> = conn
            .prepare("SELECT line_no, sku, qty_milli FROM sale_lines WHERE sale_id = ?1 ORDER BY line_no")
            .expect("prepare")
            .query_map([sale], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let expected: Vec<(i64, String, i64)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i as i64, l.product.as_str().to_owned(), l.qty_milli.0))
            .collect();
        assert_eq!(rows, expected);
        let stock = |sku: &str| -> i64 {
            conn.query_row("SELECT qty_milli FROM stock WHERE sku = ?1", [sku], |r| {
                r.get(0)
            })
            .expect("stock row")
        };
        assert_eq!(stock("A"), 50_000 - 2_000 - 455);
        assert_eq!(stock("P0"), -1_000);
        assert_eq!(
            stock(&format!("P{}", super::ROWS_PER_STATEMENT + 2)),
            -11_000
        );
    }
}
