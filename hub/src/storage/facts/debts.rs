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
use crate::storage::multirow;

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
        } => multirow::insert_later(conn, "INSERT INTO p_debts (event_id, debt_id, store_id, customer_id, amount, sale_id)", params![
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
        } => multirow::insert_later(conn, "INSERT INTO p_debt_payments (event_id, payment_id, debt_id, store_id, customer_id, amount)", params![
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

/// A debt's facts and the voids of the sale it was opened for (what
/// [`of_debt`] and then [`super::voids::of_debt`] read), in one statement:
/// the debt's rows first, then its payments, then the voids, as those two
/// read them.
pub(crate) fn with_voids_of_debt(conn: &Conn, debt: DebtId) -> Result<Vec<Fact>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT CAST(0 AS BIGINT), event_id, debt_id, store_id, customer_id, amount, sale_id
           FROM p_debts WHERE debt_id = $1
         UNION ALL
         SELECT CAST(1 AS BIGINT), event_id, payment_id, store_id, customer_id, amount, debt_id
           FROM p_debt_payments WHERE debt_id = $1
         UNION ALL
         SELECT CAST(2 AS BIGINT), v.event_id, v.sale_id, v.store_id, CAST(NULL AS TEXT),
                CAST(NULL AS BIGINT), CAST(NULL AS TEXT)
           FROM p_debts d JOIN p_voids v ON v.store_id = d.store_id AND v.sale_id = d.sale_id
          WHERE d.debt_id = $1",
    )?;
    let mut rs = stmt.query([debt.to_string()])?;
    let mut out: Vec<(i64, Fact)> = Vec::new();
    while let Some(r) = rs.next()? {
        let part: i64 = r.get(0)?;
        let event_id = parse(&r.get::<_, String>(1)?)?;
        let store = parse(&r.get::<_, String>(3)?)?;
        let fact = match part {
            0 => Fact::Debt {
                event_id,
                debt_id: parse(&r.get::<_, String>(2)?)?,
                store,
                customer: parse(&r.get::<_, String>(4)?)?,
                amount: r.get(5)?,
                sale_id: id_opt(r.get(6)?)?,
            },
            1 => Fact::DebtPayment {
                event_id,
                payment_id: parse(&r.get::<_, String>(2)?)?,
                debt_id: parse(&r.get::<_, String>(6)?)?,
                store,
                customer: parse(&r.get::<_, String>(4)?)?,
                amount: r.get(5)?,
            },
            _ => Fact::Void {
                event_id,
                sale_id: parse(&r.get::<_, String>(2)?)?,
                store,
            },
        };
        out.push((part, fact));
    }
    // Stable: each part keeps the order it was read in.
    out.sort_by_key(|(part, _)| *part);
    Ok(out.into_iter().map(|(_, f)| f).collect())
}

/// A debt and its payments.
/// (Tests: what [`super::debts::with_voids_of_debt`] must read in one
/// statement.)
#[cfg(test)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::connect::open_connection;

    fn id<T: std::str::FromStr>(n: u64) -> T
    where
        T::Err: std::fmt::Debug,
    {
        format!("01935f4e-8a00-7000-8000-{n:012x}").parse().unwrap()
    }

    /// Debts with and without payments, for a sale voided once, twice or
    /// not at all, and a void of another store's sale of the same id.
    fn fill(conn: &Conn) {
        let (s1, s2) = (id(901), id(902));
        let mut facts = Vec::new();
        for d in 1..=4u64 {
            facts.push(Fact::Debt {
                event_id: id(100 + d),
                debt_id: id(d),
                store: s1,
                customer: id(500 + d),
                amount: i64::try_from(d).unwrap() * 1_000,
                sale_id: (d != 4).then(|| id(200 + d)),
            });
            for p in 0..d {
                facts.push(Fact::DebtPayment {
                    event_id: id(300 + 10 * d + p),
                    payment_id: id(400 + 10 * d + p),
                    debt_id: id(d),
                    store: s1,
                    customer: id(500 + d),
                    amount: 10,
                });
            }
        }
        for (n, sale, store) in [(1u64, 201u64, s1), (2, 202, s1), (3, 202, s1), (4, 203, s2)] {
            facts.push(Fact::Void {
                event_id: id(600 + n),
                sale_id: id(sale),
                store,
            });
        }
        crate::storage::facts::write::write_facts(conn, &facts).unwrap();
        conn.flush_later().unwrap();
    }

    fn same_as_the_two_reads(conn: &Conn) {
        fill(conn);
        for d in 1..=5u64 {
            let mut two = of_debt(conn, id(d)).unwrap();
            two.extend(super::super::voids::of_debt(conn, id(d)).unwrap());
            let one = with_voids_of_debt(conn, id(d)).unwrap();
            let key = |f: &Fact| format!("{f:?}");
            let (mut a, mut b): (Vec<_>, Vec<_>) =
                (two.iter().map(key).collect(), one.iter().map(key).collect());
            // Each part in the order it was read; parts in the same order.
            let kinds = |v: &[Fact]| v.iter().map(std::mem::discriminant).collect::<Vec<_>>();
            assert_eq!(kinds(&two), kinds(&one), "debt {d}");
            a.sort();
            b.sort();
            assert_eq!(a, b, "debt {d}");
        }
        let all = with_voids_of_debt(conn, id(2)).unwrap();
        assert_eq!(all.len(), 1 + 2 + 2, "{all:?}");
    }

    #[test]
    fn a_debt_s_facts_and_voids_in_one_statement_are_the_two_reads_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("x.db")).unwrap();
        crate::storage::migrate::migrate(&conn).unwrap();
        same_as_the_two_reads(&conn);
    }

    #[test]
    fn a_debt_s_facts_and_voids_in_one_statement_are_the_two_reads_on_postgres() {
        let Some(url) = crate::testpg::fresh_database() else {
            return;
        };
        let conn = Conn::connect_postgres(&url).unwrap();
        crate::storage::migrate::migrate(&conn).unwrap();
        same_as_the_two_reads(&conn);
    }
}
