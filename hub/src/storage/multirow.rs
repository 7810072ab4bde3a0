//! Multi-row inserts: many rows of one table in one statement
//! (`INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), …`), the same SQL on
//! SQLite and PostgreSQL, so a push's rows cost a few statements — on
//! PostgreSQL a few round trips — instead of one per row.
//!
//! Kernel: knows no table. Rows go in chunks of [`CHUNK`] and then the
//! powers of two of the remainder, so a table needs at most ten distinct
//! statements whatever the row count, and each stays cached; a chunk binds
//! at most `CHUNK × columns` parameters, far below SQLite's 32,766 and
//! PostgreSQL's 65,535 for the tables that use it (≤ 15 columns).
//!
//! Written behind ([`insert_later`]): a projection row nothing reads back
//! at once is queued on the connection ([`Conn::defer_row`]) and written
//! multi-row before the next statement of any other kind, or the commit, so
//! every read on the connection sees it as if it had been written at once
//! (a rollback drops it with the rest of the transaction).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::storage::db::{Conn, DbError, Dialect, Params, Row, Value};
use crate::storage::error::StorageError;

/// Most rows one statement carries.
pub(crate) const CHUNK: usize = 256;

/// Most rows queued by [`insert_later`] on a connection before they are
/// written anyway.
const LATER_MAX: usize = 4 * CHUNK;

/// The sizes `n` rows are inserted in: [`CHUNK`]s, then the powers of two of
/// the rest, largest first.
fn chunk_sizes(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while n >= CHUNK {
        out.push(CHUNK);
        n -= CHUNK;
    }
    let mut p = CHUNK / 2;
    while n > 0 {
        if n >= p {
            out.push(p);
            n -= p;
        }
        p /= 2;
    }
    out
}

/// `head VALUES ($1, …), (…) tail` for `rows` rows of `columns` columns
/// (`mark` `$`, or `?` for SQLite's own form, which the facade then uses
/// as it is).
fn statement(head: &str, columns: usize, rows: usize, tail: &str, mark: char) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 5);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    let mut p = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            p += 1;
            sql.push(mark);
            push_int(&mut sql, p);
        }
        sql.push(')');
    }
    if !tail.is_empty() {
        sql.push(' ');
        sql.push_str(tail);
    }
    sql
}

/// Writes `n` in decimal (no `String` per placeholder).
fn push_int(sql: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        sql.push(char::from(*d));
    }
}

/// The text of a statement: built once per thread and shape, then shared
/// (a 256-row insert is ~15 KB of SQL; the writer runs the same few shapes
/// for every push).
type Shape = (Dialect, String, usize, usize, String);

thread_local! {
    static STATEMENTS: RefCell<HashMap<Shape, Rc<str>>> = RefCell::new(HashMap::new());
}

/// Most statement texts kept per thread (a table needs at most ten).
const STATEMENTS_MAX: usize = 512;

fn cached_statement(
    dialect: Dialect,
    head: &str,
    columns: usize,
    rows: usize,
    tail: &str,
) -> Rc<str> {
    let key = (dialect, head.to_owned(), columns, rows, tail.to_owned());
    STATEMENTS.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(sql) = m.get(&key) {
            return sql.clone();
        }
        let mark = match dialect {
            Dialect::Sqlite => '?',
            Dialect::Postgres => '$',
        };
        let sql: Rc<str> = statement(head, columns, rows, tail, mark).into();
        if m.len() >= STATEMENTS_MAX {
            m.clear();
        }
        m.insert(key, sql.clone());
        sql
    })
}

/// Inserts `rows` (each `columns` values, in the order `head` names the
/// columns) with `head` (`INSERT INTO t (a, b)`) and `tail` (``, `ON
/// CONFLICT …`, `RETURNING …`), in as few statements as [`chunk_sizes`]
/// allows; returns the rows a `RETURNING` tail gave back (in no promised
/// order: name a key in it).
pub(crate) fn insert(
    conn: &Conn,
    head: &str,
    columns: usize,
    tail: &str,
    rows: Vec<Vec<Value>>,
) -> Result<Vec<Row>, StorageError> {
    Ok(insert_rows(conn, head, columns, tail, rows)?)
}

/// Queues one row of `head` (`INSERT INTO t (a, b)`, a plain insert whose
/// outcome nothing inspects) to be written multi-row before the
/// connection's next statement of another kind (see the module doc).
pub(crate) fn insert_later(
    conn: &Conn,
    head: &'static str,
    row: impl Params,
) -> Result<(), StorageError> {
    if conn.defer_row(head, row.values(), write_later) >= LATER_MAX {
        conn.flush_later()?;
    }
    Ok(())
}

fn write_later(conn: &Conn, head: &str, rows: Vec<Vec<Value>>) -> Result<(), DbError> {
    let columns = rows.first().map_or(0, Vec::len);
    insert_rows(conn, head, columns, "", rows).map(drop)
}

fn insert_rows(
    conn: &Conn,
    head: &str,
    columns: usize,
    tail: &str,
    rows: Vec<Vec<Value>>,
) -> Result<Vec<Row>, DbError> {
    debug_assert!(rows.iter().all(|r| r.len() == columns));
    let mut returned = Vec::new();
    let mut rest = rows.into_iter();
    for size in chunk_sizes(rest.len()) {
        let values: Vec<Value> = rest.by_ref().take(size).flatten().collect();
        let sql = cached_statement(conn.dialect(), head, columns, size, tail);
        let mut stmt = conn.prepare_cached(&sql)?;
        if tail.contains("RETURNING") {
            let mut rs = stmt.query(values)?;
            while let Some(r) = rs.next()? {
                returned.push(r.clone());
            }
        } else {
            stmt.execute(values)?;
        }
    }
    Ok(returned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cover_every_row_with_few_distinct_statements() {
        for n in 0..2000 {
            let sizes = chunk_sizes(n);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|s| s.is_power_of_two() && *s <= CHUNK));
        }
        assert_eq!(chunk_sizes(500), vec![256, 128, 64, 32, 16, 4]);
        assert_eq!(
            statement("INSERT INTO t (a, b)", 2, 2, "RETURNING a", '$'),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a"
        );
        assert_eq!(
            statement("INSERT INTO t (a, b, c, d, e)", 5, 3, "", '?'),
            "INSERT INTO t (a, b, c, d, e) VALUES (?1, ?2, ?3, ?4, ?5), (?6, ?7, ?8, ?9, ?10), (?11, ?12, ?13, ?14, ?15)"
        );
    }

    #[test]
    fn rows_written_behind_are_seen_by_the_next_statement_and_dropped_by_a_rollback() {
        let c = Conn::from_sqlite(rusqlite::Connection::open_in_memory().unwrap());
        c.execute_batch(
            "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT); CREATE TABLE u (x INTEGER)",
        )
        .unwrap();
        let count = |table: &str| -> i64 {
            c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        c.begin_write().unwrap();
        let before = c.statements();
        for i in 0..5 {
            insert_later(
                &c,
                "INSERT INTO t (a, b)",
                vec![Value::Int(i), Value::Text("x".into())],
            )
            .unwrap();
        }
        insert_later(&c, "INSERT INTO u (x)", vec![Value::Int(7)]).unwrap();
        assert_eq!(c.statements(), before, "queued, not sent");
        // The next statement of another kind sees them: 5 rows in 2
        // statements (4 + 1), 1 row of `u`, then the read.
        assert_eq!(count("t"), 5);
        assert_eq!(c.statements(), before + 4);
        assert_eq!(count("u"), 1);
        // A held statement flushes too.
        let mut stmt = c.prepare_cached("SELECT COUNT(*) FROM t").unwrap();
        insert_later(&c, "INSERT INTO t (a, b)", vec![Value::Int(9), Value::Null]).unwrap();
        assert_eq!(stmt.query_row([], |r| r.get::<_, i64>(0)).unwrap(), 6);
        drop(stmt);
        // A rollback drops what is queued; a commit writes it.
        insert_later(
            &c,
            "INSERT INTO t (a, b)",
            vec![Value::Int(10), Value::Null],
        )
        .unwrap();
        c.rollback().unwrap();
        assert_eq!(count("t"), 0);
        c.begin_write().unwrap();
        insert_later(
            &c,
            "INSERT INTO t (a, b)",
            vec![Value::Int(11), Value::Null],
        )
        .unwrap();
        c.commit().unwrap();
        assert_eq!(count("t"), 1);
        // A row that cannot be written fails the statement that writes it.
        c.begin_write().unwrap();
        insert_later(
            &c,
            "INSERT INTO t (a, b)",
            vec![Value::Int(11), Value::Null],
        )
        .unwrap();
        assert!(c.commit().is_err(), "a duplicate key fails at the commit");
        c.rollback().unwrap();
    }

    #[test]
    fn rows_are_inserted_and_returned() {
        let c = Conn::from_sqlite(rusqlite::Connection::open_in_memory().unwrap());
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
            .unwrap();
        let rows: Vec<Vec<Value>> = (0..300)
            .map(|i| vec![Value::Int(i), Value::Text(format!("r{i}"))])
            .collect();
        let back = insert(&c, "INSERT INTO t (a, b)", 2, "RETURNING id, a", rows).unwrap();
        assert_eq!(back.len(), 300);
        let mut a: Vec<i64> = back.iter().map(|r| r.get(1).unwrap()).collect();
        a.sort_unstable();
        assert_eq!(a, (0..300).collect::<Vec<_>>());
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM t WHERE b = 'r' || a", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 300);
    }
}
