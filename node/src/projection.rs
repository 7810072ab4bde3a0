//! Projections: the register's current state (shifts, sales, payments, fiado,
//! stock, customers, catalog and prices) derived from events.
//!
//! Every operation applies its events here inside the same SQLite transaction
//! that appends them to the journal, so state and history never disagree. The
//! same functions rebuild everything from the journal and the hub chain
//! ([`rebuild`]); [`digest`] hashes every projection row so a test can prove that
//! a rebuild gives exactly the rows the incremental updates gave.
//!
//! Order: own events apply in journal order, hub events in hub-chain order. No
//! own-event update reads catalog state (a sale line carries its own price and
//! tax), so applying the two chains in any interleaving gives the same rows; that
//! is why a rebuild can apply the hub chain first and the journal second.
//!
//! Architecture invariant: the only SQL that writes projection tables is here.

use caja_shared::canonical::{Object, Value};
use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use caja_shared::kind::{EventBody, PaymentMethod, SoldBy, StockPolicy};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

/// Projection tables, in the order [`digest`] and [`rebuild`] visit them, with
/// the columns that order their rows.
pub const TABLES: &[(&str, &str)] = &[
    ("catalog_items", "sku"),
    ("barcodes", "code"),
    ("customers", "customer_id"),
    ("shifts", "shift_id"),
    ("sales", "sale_id"),
    ("sale_lines", "sale_id, line_no"),
    ("sale_payments", "sale_id, idx"),
    ("debts", "debt_id"),
    ("debt_payments", "payment_id"),
    ("stock", "sku"),
    ("fiscal_blocks", "grant_id"),
    ("staff", "staff_id"),
    ("returns", "return_id, line"),
    ("cash_moves", "movement_id"),
    ("payment_intents", "intent_id"),
    ("conflicts_resolved", "conflict_id"),
    ("store_credit", "entry_id, idx"),
    ("drawer_opens", "movement_id"),
    ("returns_unknown", "return_id, line"),
    ("fiscal_documents", "document"),
];

/// Why a projection update failed. Any of these aborts the operation's
/// transaction, so nothing is half applied.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// SQLite refused the update.
    #[error("projection update failed: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored event no longer decodes (the journal is damaged or newer).
    #[error("event at seq {seq} of the {chain} does not decode: {reason}")]
    Undecodable {
        /// `journal` or `hub chain`.
        chain: &'static str,
        /// Its seq.
        seq: i64,
        /// Why.
        reason: String,
    },
}

fn method_str(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::Cash => "cash",
        PaymentMethod::Card => "card",
        PaymentMethod::Transfer => "transfer",
        PaymentMethod::Fiado => "fiado",
        PaymentMethod::StoreCredit => "store_credit",
    }
}

fn sold_by_str(s: SoldBy) -> &'static str {
    match s {
        SoldBy::Unit => "unit",
        SoldBy::Weight => "weight",
    }
}

fn policy_str(p: StockPolicy) -> &'static str {
    match p {
        StockPolicy::Block => "block",
        StockPolicy::Warn => "warn",
        StockPolicy::Untracked => "untracked",
    }
}

/// Runs a statement through the connection's statement cache: projection
/// updates run on every sale, and re-parsing their SQL each time is measurable.
fn exec(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(p)
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
            for (i, l) in b.lines.iter().enumerate() {
                exec(
                conn,
                    "INSERT INTO sale_lines (sale_id, line_no, sku, name, qty_milli, unit_price,
                        tax_bp, discount, total, tax) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        sale_id,
                        i as i64,
                        l.product.as_str(),
                        l.name,
                        l.qty_milli.0,
                        l.unit_price.0,
                        i64::from(l.tax_bp.bp()),
                        l.discount.map_or(0, |d| d.0),
                        l.total.0,
                        l.tax.0
                    ],
                )?;
                add_stock(conn, l.product.as_str(), -l.qty_milli.0)?;
            }
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
    }
    Ok(())
}

/// A conflict head office resolved (from the hub chain).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedConflict {
    /// The conflict.
    pub conflict_id: String,
    /// The strategy named (`manual` for an operator's decision).
    pub strategy: String,
    /// The winning event, if one.
    pub winner: Option<String>,
    /// Who decided.
    pub resolved_by: String,
    /// What was decided.
    pub note: String,
}

/// The conflict resolutions this register holds, by conflict id.
pub fn conflicts_resolved(conn: &Connection) -> rusqlite::Result<Vec<ResolvedConflict>> {
    let mut stmt = conn.prepare(
        "SELECT conflict_id, strategy, winner, resolved_by, note FROM conflicts_resolved ORDER BY conflict_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ResolvedConflict {
            conflict_id: r.get(0)?,
            strategy: r.get(1)?,
            winner: r.get(2)?,
            resolved_by: r.get(3)?,
            note: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Applies one event of the store's hub chain (catalog, prices, fiscal
/// blocks, conflict resolutions; other hub kinds are applied by the issues
/// that own them).
pub fn apply_hub(conn: &Connection, body: &EventBody) -> rusqlite::Result<()> {
    match body {
        EventBody::ConflictResolved(b) => {
            // Hub-chain order: a later resolution of a reopened conflict replaces it.
            exec(
                conn,
                "INSERT INTO conflicts_resolved (conflict_id, strategy, winner, resolved_by, note)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (conflict_id) DO UPDATE SET strategy = excluded.strategy,
                    winner = excluded.winner, resolved_by = excluded.resolved_by, note = excluded.note",
                params![
                    b.conflict_id.to_string(),
                    b.strategy,
                    b.winner.map(|w| w.to_string()),
                    b.resolved_by,
                    b.note
                ],
            )?;
        }
        EventBody::CatalogItemUpserted(b) => {
            exec(
                conn,
                "INSERT INTO catalog_items (sku, name, tax_bp, sold_by, policy) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (sku) DO UPDATE SET name = excluded.name, tax_bp = excluded.tax_bp,
                    sold_by = excluded.sold_by, policy = excluded.policy",
                params![
                    b.product.as_str(),
                    b.name,
                    i64::from(b.tax_bp.bp()),
                    sold_by_str(b.sold_by),
                    policy_str(b.policy)
                ],
            )?;
            exec(
                conn,
                "DELETE FROM barcodes WHERE sku = ?1",
                [b.product.as_str()],
            )?;
            for code in &b.barcodes {
                exec(
                    conn,
                    "INSERT INTO barcodes (code, sku) VALUES (?1, ?2)
                     ON CONFLICT (code) DO UPDATE SET sku = excluded.sku",
                    params![code.as_str(), b.product.as_str()],
                )?;
            }
        }
        EventBody::StaffUpserted(b) => {
            exec(
                conn,
                "INSERT INTO staff (staff_id, name, role, pin, active) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (staff_id) DO UPDATE SET name = excluded.name, role = excluded.role,
                    pin = excluded.pin, active = excluded.active",
                params![
                    b.staff_id.to_string(),
                    b.name,
                    match b.role {
                        caja_shared::kind::Role::Cashier => "cashier",
                        caja_shared::kind::Role::Supervisor => "supervisor",
                        caja_shared::kind::Role::Manager => "manager",
                    },
                    serde_json::to_string(&b.pin).unwrap_or_default(),
                    i64::from(b.active)
                ],
            )?;
        }
        EventBody::FiscalRangeGranted(b) => {
            exec(
                conn,
                "INSERT OR IGNORE INTO fiscal_blocks (grant_id, device_id, request_id, series, digits,
                    first, last, next, expires_ms, valid_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6, ?8, ?9)",
                params![
                    b.grant_id.to_string(),
                    b.device.to_string(),
                    b.request_id.to_string(),
                    b.series,
                    i64::from(b.digits),
                    i64::try_from(b.first).unwrap_or(i64::MAX),
                    i64::try_from(b.last).unwrap_or(i64::MAX),
                    b.expires_ms,
                    b.valid_until
                ],
            )?;
        }
        EventBody::PaymentIntentUpdated(b) => {
            exec(
                conn,
                "INSERT INTO payment_intents (intent_id, sale_id, device_id, provider, method, amount, state, auth_code, provider_event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (intent_id) DO UPDATE SET state = excluded.state,
                    auth_code = excluded.auth_code, provider_event_id = excluded.provider_event_id",
                params![
                    b.intent_id.to_string(),
                    b.sale_id.to_string(),
                    b.device.to_string(),
                    b.provider,
                    serde_json::to_value(b.method)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    b.amount.0,
                    b.state.as_str(),
                    b.auth_code,
                    b.provider_event_id
                ],
            )?;
        }
        EventBody::FiscalDocumentAccepted(b) => {
            upsert_fiscal_document(
                conn,
                &FiscalDocRow {
                    document: &b.document,
                    doc_type: b.doc_type.as_str(),
                    series: &b.series,
                    device: b.device.to_string(),
                    event_id: b.event_id.map(|e| e.to_string()),
                    status: if b.conditional {
                        "accepted_conditional"
                    } else {
                        "accepted"
                    },
                    authority: &b.authority,
                    track_id: b.track_id.as_deref(),
                    security_code: b.security_code.as_deref(),
                    verify_url: b.verify_url.as_deref(),
                    messages: serde_json::to_string(&b.messages).unwrap_or_default(),
                },
            )?;
        }
        EventBody::FiscalDocumentRejected(b) => {
            upsert_fiscal_document(
                conn,
                &FiscalDocRow {
                    document: &b.document,
                    doc_type: b.doc_type.as_str(),
                    series: &b.series,
                    device: b.device.to_string(),
                    event_id: b.event_id.map(|e| e.to_string()),
                    status: "rejected",
                    authority: &b.authority,
                    track_id: b.track_id.as_deref(),
                    security_code: None,
                    verify_url: None,
                    messages: serde_json::to_string(&b.messages).unwrap_or_default(),
                },
            )?;
        }
        EventBody::PriceSet(b) => {
            // A price for an item the catalog does not know yet waits in a row
            // with placeholder fields until its CatalogItemUpserted arrives.
            exec(
                conn,
                "INSERT INTO catalog_items (sku, name, tax_bp, sold_by, policy, unit_price)
                 VALUES (?1, ?1, 0, 'unit', 'block', ?2)
                 ON CONFLICT (sku) DO UPDATE SET unit_price = excluded.unit_price",
                params![b.product.as_str(), b.unit_price.0],
            )?;
        }
        _ => {}
    }
    Ok(())
}

struct FiscalDocRow<'a> {
    document: &'a str,
    doc_type: &'a str,
    series: &'a str,
    device: String,
    event_id: Option<String>,
    status: &'a str,
    authority: &'a str,
    track_id: Option<&'a str>,
    security_code: Option<&'a str>,
    verify_url: Option<&'a str>,
    messages: String,
}

/// The latest verdict on a document (hub-chain order) replaces an earlier one.
fn upsert_fiscal_document(conn: &Connection, r: &FiscalDocRow<'_>) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO fiscal_documents (document, doc_type, series, device_id, event_id, status, authority,
            track_id, security_code, verify_url, messages)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (document) DO UPDATE SET status = excluded.status, track_id = excluded.track_id,
            security_code = excluded.security_code, verify_url = excluded.verify_url,
            messages = excluded.messages, authority = excluded.authority",
        params![
            r.document,
            r.doc_type,
            r.series,
            r.device,
            r.event_id,
            r.status,
            r.authority,
            r.track_id,
            r.security_code,
            r.verify_url,
            r.messages
        ],
    )
    .map(|_| ())
}

/// This register's fiscal documents by the tax authority's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FiscalDocCounts {
    /// Accepted.
    pub accepted: u64,
    /// Accepted with conditions.
    pub accepted_conditional: u64,
    /// Rejected (head office must act).
    pub rejected: u64,
    /// Electronic sales (series `E…`) with no verdict yet.
    pub awaiting: u64,
}

/// The counts of `device`'s documents (`caja-node fiscal status`).
pub fn fiscal_doc_counts(conn: &Connection, device: &str) -> rusqlite::Result<FiscalDocCounts> {
    let mut c = FiscalDocCounts::default();
    let mut stmt = conn.prepare_cached(
        "SELECT status, COUNT(*) FROM fiscal_documents WHERE device_id = ?1 GROUP BY status",
    )?;
    let rows = stmt.query_map([device], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (status, n) = row?;
        let n = u64::try_from(n).unwrap_or(0);
        match status.as_str() {
            "accepted" => c.accepted = n,
            "accepted_conditional" => c.accepted_conditional = n,
            "rejected" => c.rejected = n,
            _ => {}
        }
    }
    c.awaiting = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM sales s WHERE s.device = ?1 AND s.fiscal_series LIKE 'E%'
               AND NOT EXISTS (SELECT 1 FROM fiscal_documents d WHERE d.document = s.fiscal_number)",
        )?
        .query_row([device], |r| r.get::<_, i64>(0))
        .map(|n| u64::try_from(n).unwrap_or(0))?;
    Ok(c)
}

/// The tax authority's confirmation of a document, when accepted: its
/// security code and verification address (`None` before the verdict, or
/// when rejected).
pub fn fiscal_confirmation(
    conn: &Connection,
    document: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached(
        "SELECT security_code, verify_url FROM fiscal_documents
         WHERE document = ?1 AND status IN ('accepted', 'accepted_conditional')
           AND security_code IS NOT NULL AND verify_url IS NOT NULL",
    )?
    .query_row([document], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// Deletes every projection row and applies every event again in the order it
/// was first applied: the journal in seq order, and each imported event (hub
/// chain or other register) right after the own event that was the journal head
/// when it was imported, in import order. Runs inside the caller's transaction.
pub fn rebuild(conn: &Connection) -> Result<(), ProjectionError> {
    for (table, _) in TABLES {
        conn.execute(&format!("DELETE FROM {table}"), [])?;
    }
    // Imports are few next to the journal: their keys fit in memory.
    let mut imports: Vec<(i64, i64, bool, Vec<u8>)> = Vec::new();
    for (table, hub) in [("hub_events", true), ("peer_events", false)] {
        let mut stmt = conn.prepare(&format!(
            "SELECT after_own_seq, ord, bytes FROM {table} WHERE applied = 1"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, hub, r.get(2)?)))?;
        for row in rows {
            imports.push(row?);
        }
    }
    imports.sort_by_key(|(after, ord, _, _)| (*after, *ord));
    let mut pending = imports.into_iter().peekable();
    let mut apply_imports_through = |head: i64| -> Result<(), ProjectionError> {
        while let Some((_, ord, hub, bytes)) = pending.next_if(|(after, ..)| *after <= head) {
            if hub {
                let body = decode("hub chain", ord, &bytes)?.1;
                apply_hub(conn, &body)?;
            } else {
                let (event, body) = decode("peer events", ord, &bytes)?;
                let seq = i64::try_from(event.seq().get()).unwrap_or(i64::MAX);
                apply_peer(conn, seq, &event, &body)?;
            }
        }
        Ok(())
    };
    apply_imports_through(0)?;
    let mut stmt = conn.prepare("SELECT seq, bytes FROM journal ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let bytes: Vec<u8> = row.get(1)?;
        let (event, body) = decode("journal", seq, &bytes)?;
        apply_own(conn, seq, &event, &body)?;
        apply_imports_through(seq)?;
    }
    apply_imports_through(i64::MAX)?;
    Ok(())
}

/// The next import order number and the journal head, for an import
/// transaction.
pub fn import_position(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT coalesce((SELECT max(ord) FROM (SELECT ord FROM hub_events UNION ALL SELECT ord FROM peer_events)), 0) + 1,
                coalesce((SELECT max(seq) FROM journal), 0)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn decode(
    chain: &'static str,
    seq: i64,
    bytes: &[u8],
) -> Result<(Event, EventBody), ProjectionError> {
    let bad = |reason: String| ProjectionError::Undecodable { chain, seq, reason };
    let event = Event::from_json(bytes).map_err(|e| bad(e.to_string()))?;
    let body = event.body().map_err(|e| bad(e.to_string()))?;
    Ok((event, body))
}

/// SHA-256 over every projection row, table by table in [`TABLES`] order, rows
/// in key order, each row as canonical JSON of its columns. Two databases with
/// the same projection rows have the same digest.
pub fn digest(conn: &Connection) -> Result<Hash256, ProjectionError> {
    let mut all = Vec::new();
    for (table, order) in TABLES {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let mut obj = Object::new();
            obj.insert("table".into(), Value::String((*table).to_owned()));
            for (i, name) in names.iter().enumerate() {
                let v = match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::String(hex_of(b)),
                    // Projection tables are STRICT and have no REAL columns.
                    ValueRef::Real(_) => Value::Null,
                };
                obj.insert(name.clone(), v);
            }
            all.extend_from_slice(&Value::Object(obj).to_canonical_bytes());
            all.push(b'\n');
        }
    }
    Ok(Hash256::of(&all))
}

fn hex_of(b: &[u8]) -> String {
    Hash256::of(b).to_hex()
}

/// A customer's fiado balance: what the non-voided debts still owe.
pub fn customer_balance(conn: &Connection, customer_id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT coalesce(sum(amount - paid), 0) FROM debts WHERE customer_id = ?1 AND voided = 0",
    )?
    .query_row([customer_id], |r| r.get(0))
}

/// A customer's store-credit balance as this register knows it: credits
/// from returns refunded as store credit, less what sales not voided spent.
pub fn store_credit_balance(conn: &Connection, customer_id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT coalesce(sum(c.amount), 0) FROM store_credit c
         LEFT JOIN sales s ON s.sale_id = c.sale_id
         WHERE c.customer_id = ?1 AND (c.sale_id IS NULL OR s.voided_seq IS NULL)",
    )?
    .query_row([customer_id], |r| r.get(0))
}

/// A payment intent of this register as the hub last reported it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IntentLine {
    /// The intent.
    pub intent_id: String,
    /// The sale.
    pub sale_id: String,
    /// The provider.
    pub provider: String,
    /// Amount in centavos.
    pub amount: i64,
    /// `pending`, `authorized`, `captured`, `refunded`, `voided` or `failed`.
    pub state: String,
}

/// The payment intents of `device` (from the hub chain), oldest first.
pub fn payment_intents(conn: &Connection, device: &str) -> rusqlite::Result<Vec<IntentLine>> {
    let mut stmt = conn.prepare_cached(
        "SELECT intent_id, sale_id, provider, amount, state FROM payment_intents
         WHERE device_id = ?1 ORDER BY intent_id",
    )?;
    let rows = stmt.query_map([device], |r| {
        Ok(IntentLine {
            intent_id: r.get(0)?,
            sale_id: r.get(1)?,
            provider: r.get(2)?,
            amount: r.get(3)?,
            state: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The open shift, if any: (shift_id, cashier, opened_seq).
pub fn open_shift(conn: &Connection) -> rusqlite::Result<Option<(String, String, i64)>> {
    conn.prepare_cached(
        "SELECT shift_id, cashier, opened_seq FROM shifts WHERE closed_seq IS NULL",
    )?
    .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .optional()
}
