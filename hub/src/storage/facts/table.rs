//! What every fact family shares: a projection [`Table`] and its [`Family`]
//! (the entries of [`super::registry`]), and [`rows`], which reads a
//! statement's rows with a family's row decoder.
//!
//! Invariant: knows no family; families and the registry import it, never
//! the reverse.

use crate::projection::Fact;
use crate::storage::db::{Conn, Params, Row};
use crate::storage::error::StorageError;

/// Reads one projection row (the columns its statement names, in order) as
/// a fact.
pub(crate) type FactReader = fn(&Row) -> Result<Fact, StorageError>;

/// Every fact one table holds, read back.
pub(crate) type TableLoader = fn(&Conn) -> Result<Vec<Fact>, StorageError>;

/// One projection table.
#[derive(Debug)]
pub(crate) struct Table {
    /// Its name (`p_…`).
    pub(crate) name: &'static str,
    /// How its rows load back as facts; `None` for a table that holds no
    /// fact of its own (an index kept beside another table).
    pub(crate) load: Option<TableLoader>,
}

/// A fact family: the projection tables its facts are written to. A
/// rebuild empties them; the digest loads them.
#[derive(Debug)]
pub(crate) struct Family {
    /// Its tables.
    pub(crate) tables: &'static [Table],
}

/// The rows of `sql` decoded by `f`.
pub(crate) fn rows<P: Params>(
    conn: &Conn,
    sql: &str,
    params: P,
    f: FactReader,
) -> Result<Vec<Fact>, StorageError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut out = Vec::new();
    let mut rs = stmt.query(params)?;
    while let Some(r) = rs.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}
