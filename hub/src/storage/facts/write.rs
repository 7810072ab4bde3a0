//! Writing an applied event's facts into the projection tables: each fact
//! goes to its family's module (a sale with its lines and own payments as
//! one `p_sales` row, see [`super::sales`]).
//!
//! Invariant: writes only `p_*` tables; decides nothing. The match in
//! [`write_fact`] names every kind of fact, so a new one does not compile
//! until its family writes it.

use super::{catalog, customers, debts, fiscal, foreign, payments, resolutions, returns, sales};
use super::{shifts, staff, stock, voids};
use crate::projection::Fact;
use crate::storage::codec::corrupt;
use crate::storage::db::Conn;
use crate::storage::error::StorageError;

/// Writes one event's facts: a sale with its lines and payments as one
/// `p_sales` row (see the schema), every other fact as its own row.
pub(crate) fn write_facts(conn: &Conn, facts: &[Fact]) -> Result<(), StorageError> {
    let (mut lines, mut payments) = sales::lines_and_payments(facts);
    for f in facts {
        match f {
            Fact::SaleLine { .. }
            | Fact::Payment {
                payment_id: None, ..
            } => {}
            Fact::Sale { .. } => sales::write_sale(
                conn,
                f,
                std::mem::take(&mut lines),
                std::mem::take(&mut payments),
            )?,
            other => write_fact(conn, other)?,
        }
    }
    Ok(())
}

fn write_fact(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    match f {
        // A sale, its lines and its own payments are one row: write_facts.
        Fact::Sale { .. }
        | Fact::SaleLine { .. }
        | Fact::Payment {
            payment_id: None, ..
        } => Err(corrupt("sale facts are written by write_facts")),
        Fact::Payment { .. } => payments::write(conn, f),
        Fact::Shift { .. } | Fact::ShiftClose { .. } => shifts::write(conn, f),
        Fact::DrawerOpen { .. } | Fact::Approval { .. } | Fact::SaleDrawerOpen { .. } => {
            staff::write(conn, f)
        }
        Fact::Void { .. } => voids::write(conn, f),
        Fact::Debt { .. } | Fact::DebtPayment { .. } => debts::write(conn, f),
        Fact::StockMove { .. } | Fact::Escrow { .. } | Fact::Oversell { .. } => {
            stock::write(conn, f)
        }
        Fact::Customer { .. } => customers::write(conn, f),
        Fact::CatalogItem { .. } | Fact::Price { .. } | Fact::PriceHistory { .. } => {
            catalog::write(conn, f)
        }
        Fact::FiscalBlock { .. } | Fact::CreditNote { .. } => fiscal::write(conn, f),
        Fact::ReturnLine { .. } | Fact::StoreCredit { .. } | Fact::UnlinkedReturn { .. } => {
            returns::write(conn, f)
        }
        Fact::Resolution { .. } => resolutions::write(conn, f),
        Fact::ForeignKind { .. } => foreign::write(conn, f),
    }
}
