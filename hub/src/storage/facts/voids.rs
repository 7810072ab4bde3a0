//! The voids family: `p_voids`, one row per voided sale.
//!
//! Invariant: the only module that writes or decodes a `p_voids` row;
//! statements name their columns.

use caja_shared::ids::{CustomerId, StoreId};

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, parse};
use crate::storage::db::{params, Conn, Row};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[Table {
        name: "p_voids",
        load: Some(load),
    }],
};

/// Writes a void.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    let Fact::Void {
        event_id,
        sale_id,
        store,
    } = f
    else {
        return Err(corrupt("not a void fact"));
    };
    multirow::insert_later(
        conn,
        "INSERT INTO p_voids (event_id, sale_id, store_id)",
        params![event_id.to_string(), sale_id.to_string(), store.to_string()],
    )?;
    Ok(())
}

/// Decodes `event_id, sale_id, store_id`.
fn void_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::Void {
        event_id: parse(&r.get::<_, String>(0)?)?,
        sale_id: parse(&r.get::<_, String>(1)?)?,
        store: parse(&r.get::<_, String>(2)?)?,
    })
}

fn load(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, sale_id, store_id FROM p_voids",
        [],
        void_from_row,
    )
}

/// The voids of the sale a debt was opened for.
/// (Tests: what [`super::debts::with_voids_of_debt`] must read in one
/// statement.)
#[cfg(test)]
pub(crate) fn of_debt(
    conn: &Conn,
    debt: caja_shared::ids::DebtId,
) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT v.event_id, v.sale_id, v.store_id FROM p_debts d
         JOIN p_voids v ON v.store_id = d.store_id AND v.sale_id = d.sale_id
         WHERE d.debt_id = $1",
        [debt.to_string()],
        void_from_row,
    )
}

/// The voids of the sales that spent a customer's store credit.
pub(crate) fn of_store_credit(
    conn: &Conn,
    store: StoreId,
    customer: CustomerId,
) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT v.event_id, v.sale_id, v.store_id FROM p_voids v WHERE v.store_id = $1 AND v.sale_id IN
           (SELECT sale_id FROM p_store_credit WHERE store_id = $1 AND customer_id = $2 AND sale_id IS NOT NULL)",
        params![store.to_string(), customer.to_string()],
        void_from_row,
    )
}
