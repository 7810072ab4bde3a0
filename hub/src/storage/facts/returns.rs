//! The returns family: `p_returns` (a line returned against its original
//! sale), `p_store_credit` (store credit given or spent) and
//! `p_returns_unknown` (a line returned without the original, by reference).
//!
//! Invariant: the only module that writes or decodes these rows; statements
//! name their columns.

use caja_shared::ids::{CustomerId, EventId, SaleId, StoreId};

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, id_opt, opt_str, parse};
use crate::storage::db::{params, Conn, Row};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[
        Table {
            name: "p_returns",
            load: Some(load_returns),
        },
        Table {
            name: "p_store_credit",
            load: Some(load_store_credit),
        },
        Table {
            name: "p_returns_unknown",
            load: Some(load_unlinked),
        },
    ],
};

/// Writes a returned line, a store-credit movement or a return made
/// without the original.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    match f {
        Fact::ReturnLine {
            event_id,
            line,
            store,
            sale_id,
            sale_line,
            product,
            qty_milli,
            damaged,
        } => multirow::insert_later(conn, "INSERT INTO p_returns (event_id, line, store_id, sale_id, sale_line, product, qty_milli, damaged)", params![
                event_id.to_string(),
                line,
                store.to_string(),
                sale_id.to_string(),
                sale_line,
                product.as_str(),
                qty_milli,
                i64::from(*damaged)
            ])?,
        Fact::StoreCredit {
            event_id,
            idx,
            store,
            customer,
            amount,
            sale_id,
        } => multirow::insert_later(conn, "INSERT INTO p_store_credit (event_id, idx, store_id, customer_id, amount, sale_id)", params![
                event_id.to_string(),
                idx,
                store.to_string(),
                customer.to_string(),
                amount,
                opt_str(sale_id)
            ])?,
        Fact::UnlinkedReturn {
            event_id,
            line,
            store,
            device,
            sale_id,
            reference,
            product,
            qty_milli,
            damaged,
        } => multirow::insert_later(conn, "INSERT INTO p_returns_unknown (event_id, line, store_id, device_id, sale_id, reference, product,
                   qty_milli, damaged)", params![
                event_id.to_string(),
                line,
                store.to_string(),
                device.to_string(),
                opt_str(sale_id),
                reference,
                product.as_str(),
                qty_milli,
                i64::from(*damaged)
            ])?,
        _ => return Err(corrupt("not a returns fact")),
    };
    Ok(())
}

/// Decodes `event_id, line, store_id, sale_id, sale_line, product,
/// qty_milli, damaged`.
fn return_line_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::ReturnLine {
        event_id: parse(&r.get::<_, String>(0)?)?,
        line: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        sale_id: parse(&r.get::<_, String>(3)?)?,
        sale_line: r.get(4)?,
        product: parse(&r.get::<_, String>(5)?)?,
        qty_milli: r.get(6)?,
        damaged: r.get::<_, i64>(7)? == 1,
    })
}

/// Decodes `event_id, idx, store_id, customer_id, amount, sale_id`.
fn store_credit_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::StoreCredit {
        event_id: parse(&r.get::<_, String>(0)?)?,
        idx: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        customer: parse(&r.get::<_, String>(3)?)?,
        amount: r.get(4)?,
        sale_id: id_opt(r.get(5)?)?,
    })
}

/// Decodes `event_id, line, store_id, device_id, sale_id, reference,
/// product, qty_milli, damaged`.
fn unlinked_return_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::UnlinkedReturn {
        event_id: parse(&r.get::<_, String>(0)?)?,
        line: r.get(1)?,
        store: parse(&r.get::<_, String>(2)?)?,
        device: parse(&r.get::<_, String>(3)?)?,
        sale_id: id_opt(r.get(4)?)?,
        reference: r.get(5)?,
        product: parse(&r.get::<_, String>(6)?)?,
        qty_milli: r.get(7)?,
        damaged: r.get::<_, i64>(8)? == 1,
    })
}

fn load_returns(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, line, store_id, sale_id, sale_line, product, qty_milli, damaged FROM p_returns",
        [],
        return_line_from_row,
    )
}

fn load_store_credit(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, idx, store_id, customer_id, amount, sale_id FROM p_store_credit",
        [],
        store_credit_from_row,
    )
}

fn load_unlinked(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, line, store_id, device_id, sale_id, reference, product, qty_milli, damaged
         FROM p_returns_unknown",
        [],
        unlinked_return_from_row,
    )
}

/// The lines returned against one sale.
pub(crate) fn lines_of_sale(conn: &Conn, sale: SaleId) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, line, store_id, sale_id, sale_line, product, qty_milli, damaged FROM p_returns
         WHERE sale_id = $1",
        [sale.to_string()],
        return_line_from_row,
    )
}

/// The returns made without the original that name one sale by id.
pub(crate) fn unlinked_of_sale(conn: &Conn, sale: SaleId) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, line, store_id, device_id, sale_id, reference, product, qty_milli, damaged
         FROM p_returns_unknown WHERE sale_id = $1",
        [sale.to_string()],
        unlinked_return_from_row,
    )
}

/// The returns made without the original that name a sale of a store by
/// its fiscal number only.
pub(crate) fn unlinked_by_reference(
    conn: &Conn,
    store: &str,
    number: &str,
) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, line, store_id, device_id, sale_id, reference, product, qty_milli, damaged
         FROM p_returns_unknown WHERE store_id = $1 AND reference = $2 AND sale_id IS NULL",
        params![store, number],
        unlinked_return_from_row,
    )
}

/// The lines of one return made without the original.
pub(crate) fn unlinked_of_event(conn: &Conn, event: EventId) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, line, store_id, device_id, sale_id, reference, product, qty_milli, damaged
         FROM p_returns_unknown WHERE event_id = $1",
        [event.to_string()],
        unlinked_return_from_row,
    )
}

/// A customer's store-credit movements in a store.
pub(crate) fn store_credit_of(
    conn: &Conn,
    store: StoreId,
    customer: CustomerId,
) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, idx, store_id, customer_id, amount, sale_id FROM p_store_credit
         WHERE store_id = $1 AND customer_id = $2",
        params![store.to_string(), customer.to_string()],
        store_credit_from_row,
    )
}
