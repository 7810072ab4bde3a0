//! Head office's listings: alerts (stored ones, open conflicts, negative
//! stock) and a store's staff activity.
//!
//! Feature module: reads only.

use crate::storage::db::Conn;
use crate::storage::error::StorageError;
use caja_shared::ids::StoreId;
use serde::Serialize;

/// An alert, for head office.
#[derive(Debug, Clone, Serialize)]
pub struct AlertInfo {
    /// `chain_mismatch`, `enrollment_token_reused`, `conflict`, `negative_stock`.
    pub kind: String,
    /// Store.
    pub store: Option<String>,
    /// Device, when one is concerned.
    pub device: Option<String>,
    /// When raised.
    pub at_ms: i64,
    /// For a person.
    pub message: String,
    /// Still open.
    pub open: bool,
}

pub(crate) fn list_alerts(conn: &Conn) -> Result<Vec<AlertInfo>, StorageError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT kind, store_id, device_id, at_ms, message, closed_ms FROM alerts ORDER BY alert_id",
    )?;
    let mut rs = stmt.query([])?;
    while let Some(r) = rs.next()? {
        out.push(AlertInfo {
            kind: r.get(0)?,
            store: r.get(1)?,
            device: r.get(2)?,
            at_ms: r.get(3)?,
            message: r.get(4)?,
            open: r.get::<_, Option<i64>>(5)?.is_none(),
        });
    }
    for c in crate::storage::conflicts::list(conn, crate::storage::conflicts::StateFilter::All)? {
        let open = c.state == "open";
        out.push(AlertInfo {
            kind: "conflict".into(),
            store: Some(c.store.to_string()),
            device: None,
            at_ms: c.detected_ms,
            message: format!(
                "{} on {}: {} events (conflict {}, strategy {}), {}",
                c.reason,
                c.subject,
                c.candidates.len(),
                c.conflict_id,
                c.strategy,
                match &c.resolution {
                    Some(r) => format!("resolved by {}", r.by),
                    None => "manual resolution needed".to_owned(),
                }
            ),
            open,
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT store_id, product, qty_milli FROM v_stock WHERE qty_milli < 0 ORDER BY store_id, product",
    )?;
    let mut rs = stmt.query([])?;
    while let Some(r) = rs.next()? {
        let product: String = r.get(1)?;
        let qty: i64 = r.get(2)?;
        out.push(AlertInfo {
            kind: "negative_stock".into(),
            store: r.get(0)?,
            device: None,
            at_ms: 0,
            message: format!("stock of {product} is {qty} thousandths"),
            open: true,
        });
    }
    Ok(out)
}

/// What head office sees of a store's staff actions and store credit
/// (`GET /v1/admin/staff/activity`): every approval with its event's kind and
/// time (HLC ms), the drawer openings without a sale, the cash sales' and
/// refunds' drawers opened apart from their receipts, the returns made without
/// the original, and every customer's store-credit balance.
pub(crate) fn staff_activity(
    conn: &Conn,
    store: StoreId,
) -> Result<serde_json::Value, StorageError> {
    let st = store.to_string();
    let mut approvals = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT a.event_id, a.device_id, a.action, a.staff_id, a.name, a.role, e.kind, e.hlc_ms
             FROM p_approvals a JOIN events e ON e.event_id = a.event_id
             WHERE a.store_id = $1 ORDER BY e.hlc_ms, a.event_id, a.idx",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            approvals.push(serde_json::json!({
                "event_id": r.get::<_, String>(0)?, "device": r.get::<_, String>(1)?,
                "action": r.get::<_, String>(2)?, "staff_id": r.get::<_, String>(3)?,
                "name": r.get::<_, String>(4)?, "role": r.get::<_, String>(5)?,
                "kind": r.get::<_, String>(6)?, "at_ms": r.get::<_, i64>(7)?,
            }));
        }
    }
    let mut drawer_opens = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT d.event_id, d.device_id, d.shift_id, d.reason, d.approved_by, e.hlc_ms
             FROM p_drawer_opens d JOIN events e ON e.event_id = d.event_id
             WHERE d.store_id = $1 ORDER BY e.hlc_ms, d.event_id",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            drawer_opens.push(serde_json::json!({
                "event_id": r.get::<_, String>(0)?, "device": r.get::<_, String>(1)?,
                "shift_id": r.get::<_, String>(2)?, "reason": r.get::<_, String>(3)?,
                "approved_by": r.get::<_, Option<String>>(4)?, "at_ms": r.get::<_, i64>(5)?,
            }));
        }
    }
    let mut sale_drawer_opens = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT d.event_id, d.device_id, d.document_id, d.refund, d.how, d.opened_ms
             FROM p_sale_drawer_opens d WHERE d.store_id = $1 ORDER BY d.opened_ms, d.event_id",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            let refund = r.get::<_, i64>(3)? == 1;
            let doc = r.get::<_, String>(2)?;
            sale_drawer_opens.push(serde_json::json!({
                "event_id": r.get::<_, String>(0)?, "device": r.get::<_, String>(1)?,
                "sale_id": (!refund).then(|| doc.clone()), "return_id": refund.then_some(doc),
                "how": r.get::<_, String>(4)?, "opened_ms": r.get::<_, i64>(5)?,
            }));
        }
    }
    let mut returns_unknown = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT event_id, line, device_id, sale_id, reference, product, qty_milli, damaged
             FROM p_returns_unknown WHERE store_id = $1 ORDER BY event_id, line",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            returns_unknown.push(serde_json::json!({
                "event_id": r.get::<_, String>(0)?, "line": r.get::<_, i64>(1)?,
                "device": r.get::<_, String>(2)?, "sale_id": r.get::<_, Option<String>>(3)?,
                "reference": r.get::<_, String>(4)?, "product": r.get::<_, String>(5)?,
                "qty_milli": r.get::<_, i64>(6)?, "damaged": r.get::<_, i64>(7)? == 1,
            }));
        }
    }
    let mut store_credit = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT customer_id, balance FROM v_store_credit WHERE store_id = $1 ORDER BY customer_id",
        )?;
        let mut rs = stmt.query([&st])?;
        while let Some(r) = rs.next()? {
            store_credit.push(serde_json::json!({
                "customer": r.get::<_, String>(0)?, "balance": r.get::<_, i64>(1)?,
            }));
        }
    }
    Ok(serde_json::json!({
        "approvals": approvals,
        "drawer_opens": drawer_opens,
        "sale_drawer_opens": sale_drawer_opens,
        "returns_unknown": returns_unknown,
        "store_credit": store_credit,
    }))
}
