//! The fiscal family: `p_fiscal_blocks` (blocks of fiscal numbers granted
//! to and released by registers) and `p_credit_notes` (a return's credit
//! note and its number).
//!
//! Invariant: the only module that writes or decodes these rows; statements
//! name their columns.

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, i, id_opt, parse, u};
use crate::storage::db::{params, Conn, Row};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[
        Table {
            name: "p_fiscal_blocks",
            load: Some(load_blocks),
        },
        Table {
            name: "p_credit_notes",
            load: Some(load_credit_notes),
        },
    ],
};

/// Writes a fiscal block's grant or release, or a credit note.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    match f {
        Fact::FiscalBlock {
            event_id,
            release,
            grant_id,
            store,
            device,
            series,
            first,
            last,
            expires_ms,
        } => multirow::insert_later(conn, "INSERT INTO p_fiscal_blocks (event_id, what, grant_id, store_id, device_id, series, first, last, expires_ms)", params![
                event_id.to_string(),
                if *release { "release" } else { "grant" },
                grant_id.to_string(),
                store.to_string(),
                device.to_string(),
                series,
                i(*first),
                i(*last),
                expires_ms
            ])?,
        Fact::CreditNote {
            event_id,
            store,
            device,
            sale_id,
            series,
            number,
        } => multirow::insert_later(conn, "INSERT INTO p_credit_notes (event_id, store_id, device_id, sale_id, series, number)", params![
                event_id.to_string(),
                store.to_string(),
                device.to_string(),
                // '' for a credit note whose original was given by fiscal
                // number only (the column predates unknown originals).
                sale_id.map(|x| x.to_string()).unwrap_or_default(),
                series,
                number
            ])?,
        _ => return Err(corrupt("not a fiscal fact")),
    };
    Ok(())
}

/// Decodes `event_id, what, grant_id, store_id, device_id, series, first,
/// last, expires_ms`.
fn fiscal_block_from_row(r: &Row) -> Result<Fact, StorageError> {
    let what: String = r.get(1)?;
    Ok(Fact::FiscalBlock {
        event_id: parse(&r.get::<_, String>(0)?)?,
        release: what == "release",
        grant_id: parse(&r.get::<_, String>(2)?)?,
        store: parse(&r.get::<_, String>(3)?)?,
        device: parse(&r.get::<_, String>(4)?)?,
        series: r.get(5)?,
        first: u(r.get(6)?),
        last: u(r.get(7)?),
        expires_ms: r.get(8)?,
    })
}

/// Decodes `event_id, store_id, device_id, sale_id, series, number`.
fn credit_note_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::CreditNote {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        device: parse(&r.get::<_, String>(2)?)?,
        sale_id: id_opt(Some(r.get::<_, String>(3)?).filter(|x| !x.is_empty()))?,
        series: r.get(4)?,
        number: r.get(5)?,
    })
}

fn load_blocks(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, what, grant_id, store_id, device_id, series, first, last, expires_ms
         FROM p_fiscal_blocks",
        [],
        fiscal_block_from_row,
    )
}

fn load_credit_notes(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, device_id, sale_id, series, number FROM p_credit_notes",
        [],
        credit_note_from_row,
    )
}

/// The credit notes that carry one fiscal number.
pub(crate) fn credit_notes_by_number(
    conn: &Conn,
    series: &str,
    number: &str,
) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, device_id, sale_id, series, number FROM p_credit_notes
         WHERE series = $1 AND number = $2",
        params![series, number],
        credit_note_from_row,
    )
}
