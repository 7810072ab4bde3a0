//! The shifts family: `p_shifts` (a shift opened) and `p_shift_closes` (a
//! shift closed with its cash count).
//!
//! Invariant: the only module that writes or decodes these rows; statements
//! name their columns.

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, parse};
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[
        Table {
            name: "p_shifts",
            load: Some(load_shifts),
        },
        Table {
            name: "p_shift_closes",
            load: Some(load_closes),
        },
    ],
};

/// Writes a shift opening or closing.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    match f {
        Fact::Shift {
            event_id,
            shift_id,
            store,
            device,
            cashier,
            opening_float,
        } => multirow::insert_later(conn, "INSERT INTO p_shifts (event_id, shift_id, store_id, device_id, cashier, opening_float)", params![
                event_id.to_string(),
                shift_id.to_string(),
                store.to_string(),
                device.to_string(),
                cashier,
                opening_float
            ])?,
        Fact::ShiftClose {
            event_id,
            shift_id,
            store,
            expected_cash,
            counted_cash,
        } => multirow::insert_later(conn, "INSERT INTO p_shift_closes (event_id, shift_id, store_id, expected_cash, counted_cash)", params![
                event_id.to_string(),
                shift_id.to_string(),
                store.to_string(),
                expected_cash,
                counted_cash
            ])?,
        _ => return Err(corrupt("not a shift fact")),
    };
    Ok(())
}

fn load_shifts(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, shift_id, store_id, device_id, cashier, opening_float FROM p_shifts",
        [],
        |r| {
            Ok(Fact::Shift {
                event_id: parse(&r.get::<_, String>(0)?)?,
                shift_id: parse(&r.get::<_, String>(1)?)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                cashier: r.get(4)?,
                opening_float: r.get(5)?,
            })
        },
    )
}

fn load_closes(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, shift_id, store_id, expected_cash, counted_cash FROM p_shift_closes",
        [],
        |r| {
            Ok(Fact::ShiftClose {
                event_id: parse(&r.get::<_, String>(0)?)?,
                shift_id: parse(&r.get::<_, String>(1)?)?,
                store: parse(&r.get::<_, String>(2)?)?,
                expected_cash: r.get(3)?,
                counted_cash: r.get(4)?,
            })
        },
    )
}
