//! The resolutions family: `p_resolutions`, a conflict resolved by an
//! operator (a `ConflictResolved` hub event).
//!
//! Invariant: the only module that writes or decodes a `p_resolutions` row;
//! statements name their columns.

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, i, id_opt, opt_str, parse, u};
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[Table {
        name: "p_resolutions",
        load: Some(load),
    }],
};

/// Writes a resolution.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    let Fact::Resolution {
        event_id,
        store,
        conflict_id,
        hub_seq,
        strategy,
        winner,
        resolved_by,
        note,
        covers,
    } = f
    else {
        return Err(corrupt("not a resolution fact"));
    };
    multirow::insert_later(conn, "INSERT INTO p_resolutions (event_id, store_id, conflict_id, hub_seq, strategy, winner, resolved_by, note, covers)", params![
        event_id.to_string(),
        store.to_string(),
        conflict_id.to_string(),
        i(*hub_seq),
        strategy,
        opt_str(winner),
        resolved_by,
        note,
        serde_json::to_string(&covers.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(corrupt)?
    ])?;
    Ok(())
}

fn load(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, conflict_id, hub_seq, strategy, winner, resolved_by, note, covers
         FROM p_resolutions",
        [],
        |r| {
            let covers: Vec<String> =
                serde_json::from_str(&r.get::<_, String>(8)?).map_err(corrupt)?;
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
        },
    )
}
