//! The foreign family: `p_foreign_kinds`, an event of a kind only the hub
//! may write that a register wrote (kept, decided as a conflict).
//!
//! Invariant: the only module that writes or decodes a `p_foreign_kinds`
//! row; statements name their columns.

use caja_shared::ids::EventId;

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, parse};
use crate::storage::db::{params, Conn, Row};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[Table {
        name: "p_foreign_kinds",
        load: Some(load),
    }],
};

/// Writes a foreign kind.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    let Fact::ForeignKind {
        event_id,
        store,
        device,
        kind,
    } = f
    else {
        return Err(corrupt("not a foreign-kind fact"));
    };
    multirow::insert_later(
        conn,
        "INSERT INTO p_foreign_kinds (event_id, store_id, device_id, kind)",
        params![
            event_id.to_string(),
            store.to_string(),
            device.to_string(),
            kind
        ],
    )?;
    Ok(())
}

/// Decodes `event_id, store_id, device_id, kind`.
fn foreign_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::ForeignKind {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        device: parse(&r.get::<_, String>(2)?)?,
        kind: r.get(3)?,
    })
}

fn load(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, device_id, kind FROM p_foreign_kinds",
        [],
        foreign_from_row,
    )
}

/// The foreign kind written by one event.
pub(crate) fn of_event(conn: &Conn, event: EventId) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, device_id, kind FROM p_foreign_kinds WHERE event_id = $1",
        [event.to_string()],
        foreign_from_row,
    )
}
