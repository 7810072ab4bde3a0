//! The debts family: `p_debts` (a debt opened for a customer, maybe for a
//! sale) and `p_debt_payments` (a payment against one).
//!
//! Invariant: the only module that writes or decodes these rows; statements
//! name their columns.

use caja_shared::ids::DebtId;

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, id_opt, opt_str, parse};
use crate::storage::db::{params, Conn, Row};
use crate::storage::error::StorageError;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[
        Table {
            name: "p_debts",
            load: Some(load_debts),
        },
        Table {
            name: "p_debt_payments",
            load: Some(load_payments),
        },
    ],
};

/// Writes a debt or a debt payment.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    match f {
        Fact::Debt {
            event_id,
            debt_id,
            store,
            customer,
            amount,
            sale_id,
        } => conn
            .prepare_cached(
                "INSERT INTO p_debts (event_id, debt_id, store_id, customer_id, amount, sale_id)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )?
            .execute(params![
                event_id.to_string(),
                debt_id.to_string(),
                store.to_string(),
                customer.to_string(),
                amount,
                opt_str(sale_id)
            ])?,
        Fact::DebtPayment {
            event_id,
            payment_id,
            debt_id,
            store,
            customer,
            amount,
        } => conn
            .prepare_cached(
                "INSERT INTO p_debt_payments (event_id, payment_id, debt_id, store_id, customer_id, amount)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )?
            .execute(params![
                event_id.to_string(),
                payment_id.to_string(),
                debt_id.to_string(),
                store.to_string(),
                customer.to_string(),
                amount
            ])?,
        _ => return Err(corrupt("not a debt fact")),
    };
    Ok(())
}

/// Decodes `event_id, debt_id, store_id, customer_id, amount, sale_id`.
fn debt_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::Debt {
        event_id: parse(&r.get::<_, String>(0)?)?,
        debt_id: parse(&r.get::<_, String>(1)?)?,
        store: parse(&r.get::<_, String>(2)?)?,
        customer: parse(&r.get::<_, String>(3)?)?,
        amount: r.get(4)?,
        sale_id: id_opt(r.get(5)?)?,
    })
}

/// Decodes `event_id, payment_id, debt_id, store_id, customer_id, amount`.
fn debt_payment_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::DebtPayment {
        event_id: parse(&r.get::<_, String>(0)?)?,
        payment_id: parse(&r.get::<_, String>(1)?)?,
        debt_id: parse(&r.get::<_, String>(2)?)?,
        store: parse(&r.get::<_, String>(3)?)?,
        customer: parse(&r.get::<_, String>(4)?)?,
        amount: r.get(5)?,
    })
}

fn load_debts(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, debt_id, store_id, customer_id, amount, sale_id FROM p_debts",
        [],
        debt_from_row,
    )
}

fn load_payments(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, payment_id, debt_id, store_id, customer_id, amount FROM p_debt_payments",
        [],
        debt_payment_from_row,
    )
}

/// A debt and its payments.
pub(crate) fn of_debt(conn: &Conn, debt: DebtId) -> Result<Vec<Fact>, StorageError> {
    let mut out = rows(
        conn,
        "SELECT event_id, debt_id, store_id, customer_id, amount, sale_id FROM p_debts WHERE debt_id = $1",
        [debt.to_string()],
        debt_from_row,
    )?;
    out.extend(rows(
        conn,
        "SELECT event_id, payment_id, debt_id, store_id, customer_id, amount FROM p_debt_payments
         WHERE debt_id = $1",
        [debt.to_string()],
        debt_payment_from_row,
    )?);
    Ok(out)
}
