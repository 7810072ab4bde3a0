//! The payments family: `p_payments`, a payment taken after its sale
//! (payments taken with the sale are in its `p_sales` row, see
//! [`super::sales`]).
//!
//! Invariant: the only module that writes or decodes a `p_payments` row;
//! statements name their columns.

use super::table::{rows, Family, Table};
use crate::projection::{self, Fact};
use crate::storage::codec::{corrupt, id_opt, parse};
use crate::storage::db::{params, Conn, Row};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[Table {
        name: "p_payments",
        load: Some(load),
    }],
};

/// Writes a payment taken after its sale.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    let Fact::Payment {
        event_id,
        idx,
        payment_id: Some(payment_id),
        sale_id,
        store,
        method,
        amount,
    } = f
    else {
        return Err(corrupt("not a payment taken after its sale"));
    };
    multirow::insert_later(
        conn,
        "INSERT INTO p_payments (event_id, idx, payment_id, sale_id, store_id, method, amount)",
        params![
            event_id.to_string(),
            idx,
            payment_id.to_string(),
            sale_id.to_string(),
            store.to_string(),
            projection::method_name(*method),
            amount
        ],
    )?;
    Ok(())
}

/// Decodes `event_id, idx, payment_id, sale_id, store_id, method, amount`.
fn payment_from_row(r: &Row) -> Result<Fact, StorageError> {
    let method: String = r.get(5)?;
    Ok(Fact::Payment {
        event_id: parse(&r.get::<_, String>(0)?)?,
        idx: r.get(1)?,
        payment_id: id_opt(r.get(2)?)?,
        sale_id: parse(&r.get::<_, String>(3)?)?,
        store: parse(&r.get::<_, String>(4)?)?,
        method: projection::parse_method(&method).ok_or_else(|| corrupt(&method))?,
        amount: r.get(6)?,
    })
}

fn load(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, idx, payment_id, sale_id, store_id, method, amount FROM p_payments",
        [],
        payment_from_row,
    )
}
