//! Every fact of the projection tables read back ([`load_projections`],
//! table by table as the [`super::registry`] lists them) and their
//! [`digest`], which live ingest and a rebuild must agree on.
//!
//! Invariant: reads only; knows no table but through the registry (and the
//! `conflicts` tables the digest covers).

use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;

use super::registry;
use crate::audit;
use crate::projection::Projections;
use crate::storage::db::Conn;
use crate::storage::error::StorageError;

/// Every fact of the projection tables, read back into [`Projections`].
pub fn load_projections(conn: &Conn) -> Result<Projections, StorageError> {
    let mut p = Projections::default();
    for table in registry::tables() {
        if let Some(load) = table.load {
            for fact in load(conn)? {
                p.apply(fact);
            }
        }
    }
    Ok(p)
}

/// Digest of the projections: the canonical JSON of every fact, the derived
/// summary and the conflicts (as the pure code computes them and as the
/// `conflicts` tables hold them). Live ingest and a rebuild must agree on it.
pub fn digest(conn: &Conn) -> Result<Hash256, StorageError> {
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
