//! Reads other modules make of the projection tables: balances, the open
//! shift, fiscal document verdicts, payment intents and conflict resolutions.
//!
//! Invariant: read-only.

use rusqlite::{Connection, OptionalExtension};

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
    /// Refunded so far, in centavos (partial refunds).
    pub refunded: i64,
}

/// The payment intents of `device` (from the hub chain), oldest first.
pub fn payment_intents(conn: &Connection, device: &str) -> rusqlite::Result<Vec<IntentLine>> {
    let mut stmt = conn.prepare_cached(
        "SELECT intent_id, sale_id, provider, amount, state, refunded FROM payment_intents
         WHERE device_id = ?1 ORDER BY intent_id",
    )?;
    let rows = stmt.query_map([device], |r| {
        Ok(IntentLine {
            intent_id: r.get(0)?,
            sale_id: r.get(1)?,
            provider: r.get(2)?,
            amount: r.get(3)?,
            state: r.get(4)?,
            refunded: r.get(5)?,
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

/// The open shift with its `ShiftOpened` event id: (shift_id, cashier,
/// opened_seq, event_id).
pub type OpenShiftEvent = (String, String, i64, Option<String>);

/// The open shift (id, cashier, seq of its `ShiftOpened`) and the event id
/// at that seq (the journal's index column, which `verify` checks against
/// the bytes): what a sale names as its dependency, in one statement.
pub fn open_shift_event(conn: &Connection) -> rusqlite::Result<Option<OpenShiftEvent>> {
    conn.prepare_cached(
        "SELECT s.shift_id, s.cashier, s.opened_seq, j.event_id
         FROM shifts s LEFT JOIN journal j ON j.seq = s.opened_seq
         WHERE s.closed_seq IS NULL",
    )?
    .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
    .optional()
}
