//! The cashier screen's state in the node's database (migrations `0012_ui`,
//! `0014_ui_price_override` and `0017_ui_discounts`): the sale being rung up
//! (with any price the cashier typed over the shelf price, and the line and
//! sale discounts), the operation id of its payment, the last result
//! shown, and the screen's own idempotent operations (reprints). Every change
//! is one `BEGIN IMMEDIATE` transaction, so a page reload, a closed tab or a
//! restart finds exactly what the cashier had done.
//!
//! *Invariant: the only SQL that touches the `ui_*` tables.*

use caja_shared::ids::{OpId, SaleId};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{OpError, Refusal};

/// Most lines a cart holds (a sale's own limit).
pub const MAX_CART_LINES: usize = crate::sale::MAX_LINES;

/// One line of the cart as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    /// Row id (what "remove" names).
    pub line_id: i64,
    /// SKU or barcode as entered.
    pub code: String,
    /// Thousandths of a piece, or grams.
    pub qty_milli: i64,
    /// Whether the quantity came from the scale.
    pub weighed: bool,
    /// A price typed over the shelf price (centavos per piece or per kg),
    /// sent as the line's `unit_price` when paying; `None`: the shelf price.
    pub unit_price: Option<i64>,
    /// The line's own discount in centavos (`None`: none).
    pub discount: Option<i64>,
}

fn immediate(conn: &Connection) -> rusqlite::Result<Transaction<'_>> {
    Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
}

/// The cart's lines, in the order added.
pub fn lines(conn: &Connection) -> rusqlite::Result<Vec<CartLine>> {
    conn.prepare_cached(
        "SELECT line_id, code, qty_milli, weighed, unit_price, discount FROM ui_cart_lines
         ORDER BY line_id",
    )?
    .query_map([], |r| {
        Ok(CartLine {
            line_id: r.get(0)?,
            code: r.get(1)?,
            qty_milli: r.get(2)?,
            weighed: r.get::<_, i64>(3)? == 1,
            unit_price: r.get(4)?,
            discount: r.get(5)?,
        })
    })?
    .collect()
}

/// Adds a line under the request's op id; the same op id again adds nothing.
/// Refuses a cart already at [`MAX_CART_LINES`].
pub fn add_line(
    conn: &Connection,
    op: OpId,
    code: &str,
    qty_milli: i64,
    weighed: bool,
    now_ms: i64,
) -> Result<(), OpError> {
    let tx = immediate(conn)?;
    let n: i64 = tx.query_row("SELECT count(*) FROM ui_cart_lines", [], |r| r.get(0))?;
    let seen: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM ui_cart_lines WHERE op_id = ?1)",
        [op.to_string()],
        |r| r.get(0),
    )?;
    if !seen {
        if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_CART_LINES {
            return Err(OpError::Refused(Refusal::Invalid {
                field: "lines",
                reason: format!("a sale has at most {MAX_CART_LINES} lines"),
            }));
        }
        tx.execute(
            "INSERT INTO ui_cart_lines (op_id, code, qty_milli, weighed, added_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![op.to_string(), code, qty_milli, i64::from(weighed), now_ms],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Removes a line (removing it again is a no-op).
pub fn remove_line(conn: &Connection, line_id: i64) -> Result<(), OpError> {
    let tx = immediate(conn)?;
    tx.execute("DELETE FROM ui_cart_lines WHERE line_id = ?1", [line_id])?;
    tx.commit()?;
    Ok(())
}

/// Sets (or, with `None`, takes back) the price of a line. Refuses a
/// negative price and a line no longer in the cart; setting the same price
/// again changes nothing.
pub fn set_price(conn: &Connection, line_id: i64, unit_price: Option<i64>) -> Result<(), OpError> {
    if unit_price.is_some_and(|p| p < 0) {
        return Err(OpError::Refused(Refusal::Invalid {
            field: "unit_price",
            reason: "must not be negative".into(),
        }));
    }
    let tx = immediate(conn)?;
    let n = tx.execute(
        "UPDATE ui_cart_lines SET unit_price = ?2 WHERE line_id = ?1",
        params![line_id, unit_price],
    )?;
    if n == 0 {
        return Err(OpError::Refused(Refusal::Invalid {
            field: "line",
            reason: format!("line {line_id} is not in the cart"),
        }));
    }
    tx.commit()?;
    Ok(())
}

/// Sets (or, with `None`, takes back) a line's own discount. Refuses a
/// discount that is not positive and a line no longer in the cart (whether
/// it fits the line's amount is the sale's rule, checked when paying).
pub fn set_line_discount(
    conn: &Connection,
    line_id: i64,
    discount: Option<i64>,
) -> Result<(), OpError> {
    if discount.is_some_and(|d| d <= 0) {
        return Err(OpError::Refused(Refusal::Invalid {
            field: "discount",
            reason: "must be positive".into(),
        }));
    }
    let tx = immediate(conn)?;
    let n = tx.execute(
        "UPDATE ui_cart_lines SET discount = ?2 WHERE line_id = ?1",
        params![line_id, discount],
    )?;
    if n == 0 {
        return Err(OpError::Refused(Refusal::Invalid {
            field: "line",
            reason: format!("line {line_id} is not in the cart"),
        }));
    }
    tx.commit()?;
    Ok(())
}

/// Sets (or, with `None`, takes back) the discount on the whole sale.
pub fn set_sale_discount(conn: &Connection, discount: Option<i64>) -> Result<(), OpError> {
    if discount.is_some_and(|d| d <= 0) {
        return Err(OpError::Refused(Refusal::Invalid {
            field: "discount",
            reason: "must be positive".into(),
        }));
    }
    let tx = immediate(conn)?;
    tx.execute(
        "UPDATE ui_cart SET discount = ?1 WHERE id = 1",
        params![discount],
    )?;
    tx.commit()?;
    Ok(())
}

/// The discount on the whole sale, if any.
pub fn sale_discount(conn: &Connection) -> Result<Option<i64>, OpError> {
    Ok(
        conn.query_row("SELECT discount FROM ui_cart WHERE id = 1", [], |r| {
            r.get(0)
        })?,
    )
}

/// Empties the cart (its sale discount too) and forgets a payment in
/// progress.
pub fn clear(conn: &Connection) -> Result<(), OpError> {
    let tx = immediate(conn)?;
    tx.execute("DELETE FROM ui_cart_lines", [])?;
    tx.execute(
        "UPDATE ui_cart SET pay_op = NULL, discount = NULL WHERE id = 1",
        [],
    )?;
    tx.commit()?;
    Ok(())
}

/// The op id of the payment in progress, if any.
pub fn pay_op(conn: &Connection) -> Result<Option<OpId>, OpError> {
    let v: Option<String> =
        conn.query_row("SELECT pay_op FROM ui_cart WHERE id = 1", [], |r| r.get(0))?;
    v.map(|s| {
        s.parse().map_err(|_| {
            OpError::Refused(Refusal::Invalid {
                field: "pay_op",
                reason: "stored operation id unreadable".into(),
            })
        })
    })
    .transpose()
}

/// The op id that pays the cart: the one chosen at the first attempt, else
/// `op` (recorded now, before the sale is attempted).
pub fn begin_pay(conn: &Connection, op: OpId) -> Result<OpId, OpError> {
    let tx = immediate(conn)?;
    tx.execute(
        "UPDATE ui_cart SET pay_op = ?1 WHERE id = 1 AND pay_op IS NULL",
        [op.to_string()],
    )?;
    tx.commit()?;
    pay_op(conn)?.ok_or(OpError::Refused(Refusal::Invalid {
        field: "pay_op",
        reason: "not recorded".into(),
    }))
}

/// The sale `op` paid the cart: empties it (lines and sale discount) and
/// keeps `shown` as the last result, in one transaction (only if `op` is
/// still the cart's payment).
pub fn finish_pay(conn: &Connection, op: OpId, shown: &serde_json::Value) -> Result<(), OpError> {
    let tx = immediate(conn)?;
    let n = tx.execute(
        "UPDATE ui_cart SET pay_op = NULL, discount = NULL, last_sale = ?2
         WHERE id = 1 AND pay_op = ?1",
        params![op.to_string(), shown.to_string()],
    )?;
    if n == 1 {
        tx.execute("DELETE FROM ui_cart_lines", [])?;
    }
    tx.commit()?;
    Ok(())
}

/// Replaces the last result shown (a closed shift's Z report, …).
pub fn set_shown(conn: &Connection, shown: &serde_json::Value) -> Result<(), OpError> {
    let tx = immediate(conn)?;
    tx.execute(
        "UPDATE ui_cart SET last_sale = ?1 WHERE id = 1",
        [shown.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

/// The last result shown.
pub fn shown(conn: &Connection) -> Result<Option<serde_json::Value>, OpError> {
    let v: Option<String> =
        conn.query_row("SELECT last_sale FROM ui_cart WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    Ok(v.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Runs `act` once per (op id, `kind`) in one immediate transaction, keeping
/// its answer in `ui_ops`: a retry with the same op id answers the first
/// result again without acting twice.
fn once_per_op<T>(
    conn: &Connection,
    op: OpId,
    kind: &'static str,
    now_ms: i64,
    act: impl FnOnce(&Transaction<'_>) -> Result<T, OpError>,
) -> Result<T, OpError>
where
    T: std::str::FromStr + ToString,
{
    let tx = immediate(conn)?;
    let prior: Option<String> = tx
        .query_row(
            "SELECT result FROM ui_ops WHERE op_id = ?1 AND kind = ?2",
            params![op.to_string(), kind],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(answer) = prior {
        return answer.parse().map_err(|_| {
            OpError::Refused(Refusal::Invalid {
                field: "op",
                reason: "stored answer unreadable".into(),
            })
        });
    }
    let answer = act(&tx)?;
    tx.execute(
        "INSERT INTO ui_ops (op_id, kind, result, at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![op.to_string(), kind, answer.to_string(), now_ms],
    )?;
    tx.commit()?;
    Ok(answer)
}

/// Queues a reprint ("COPIA") of `sale` once per op id; the first answer's
/// job id again for a retry.
pub fn reprint_once(
    conn: &Connection,
    op: OpId,
    sale: SaleId,
    now_ms: i64,
) -> Result<u64, OpError> {
    once_per_op(conn, op, "reprint", now_ms, |tx| {
        Ok(crate::print::enqueue_copy(tx, sale, now_ms)?.0)
    })
}

/// Records a drawer opened by hand ([`crate::print::record_manual_opening`])
/// once per op id: a retry answers the first opening's time again.
pub fn manual_drawer_once(
    conn: &Connection,
    op: OpId,
    sale: SaleId,
    now_ms: i64,
) -> Result<i64, OpError> {
    once_per_op(conn, op, "drawer_manual", now_ms, |tx| {
        Ok(crate::print::record_manual_opening(tx, sale, now_ms)?.opened_ms)
    })
}

// — COUNTER —

/// What the screen said of a sale's payment intents the first time it asked
/// for them (kept in `ui_ops` under the sale's id), so a retried payment
/// whose sale was already made shows it again instead of asking again.
pub fn intents_said(conn: &Connection, sale: SaleId) -> Result<Option<String>, OpError> {
    Ok(conn
        .query_row(
            "SELECT result FROM ui_ops WHERE op_id = ?1 AND kind = 'intents'",
            [sale.to_string()],
            |r| r.get(0),
        )
        .optional()?)
}

/// Keeps what the screen said of a sale's payment intents (the first answer
/// stands).
pub fn record_intents_said(
    conn: &Connection,
    sale: SaleId,
    said: &str,
    now_ms: i64,
) -> Result<(), OpError> {
    conn.execute(
        "INSERT OR IGNORE INTO ui_ops (op_id, kind, result, at_ms) VALUES (?1, 'intents', ?2, ?3)",
        params![sale.to_string(), said, now_ms],
    )?;
    Ok(())
}
