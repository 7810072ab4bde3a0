//! Applying the store's hub chain: catalog, prices, barcodes, staff, fiscal
//! blocks and documents, payment intents, conflict resolutions.
//!
//! Invariant: applied in hub-chain order, so a later verdict or resolution
//! replaces an earlier one; nothing here reads the journal.

use caja_shared::kind::{EventBody, SoldBy, StockPolicy};
use rusqlite::{params, Connection};

use super::sql::exec;

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

/// Applies one event of the store's hub chain (catalog, prices, fiscal
/// blocks, conflict resolutions; other hub kinds are applied by the modules
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
                "INSERT INTO payment_intents (intent_id, sale_id, device_id, provider, method, amount, state, auth_code, provider_event_id, refunded)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (intent_id) DO UPDATE SET state = excluded.state,
                    auth_code = excluded.auth_code, provider_event_id = excluded.provider_event_id,
                    refunded = excluded.refunded",
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
                    b.provider_event_id,
                    b.refunded.map_or(0, |m| m.0)
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
