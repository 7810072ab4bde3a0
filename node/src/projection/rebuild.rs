//! The projection tables as a whole: their list ([`TABLES`]), their rebuild
//! from the journal and the imported events in first-applied order, the import
//! position, and the digest that proves a rebuild equals the incremental rows.
//!
//! Invariant: a rebuild runs inside the caller's transaction and applies
//! through the same functions as the operations, never its own updates.

use caja_shared::canonical::{Object, Value};
use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use caja_shared::kind::EventBody;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::hub_events::apply_hub;
use super::register_events::{apply_own, apply_peer};

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
