//! The one list of fact families and their projection tables: a rebuild
//! empties exactly these tables ([`tables`]) and the digest loads exactly
//! these ([`super::load`]); a test checks the list against the migrated
//! schema.
//!
//! Invariant: every `p_*` table of the schema belongs to exactly one family
//! listed here.

use super::table::{Family, Table};
use super::{catalog, customers, debts, fiscal, foreign, payments, resolutions, returns, sales};
use super::{shifts, staff, stock, voids};

/// Every fact family.
pub(crate) const FAMILIES: [&Family; 13] = [
    &sales::FAMILY,
    &payments::FAMILY,
    &shifts::FAMILY,
    &staff::FAMILY,
    &voids::FAMILY,
    &debts::FAMILY,
    &stock::FAMILY,
    &customers::FAMILY,
    &catalog::FAMILY,
    &fiscal::FAMILY,
    &returns::FAMILY,
    &resolutions::FAMILY,
    &foreign::FAMILY,
];

/// Every projection table, family by family.
pub(crate) fn tables() -> impl Iterator<Item = &'static Table> {
    FAMILIES.iter().flat_map(|f| f.tables.iter())
}

/// Empties every projection table (a rebuild starts so).
pub(crate) fn clear(conn: &crate::storage::db::Conn) -> Result<(), crate::storage::db::DbError> {
    let sql: String = tables()
        .map(|t| format!("DELETE FROM {};", t.name))
        .collect::<Vec<_>>()
        .join(" ");
    conn.execute_batch(&sql)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::storage::db::Conn;

    /// Every `p_*` table of the migrated schema is in the registry once, and
    /// every registered table exists.
    #[test]
    fn the_registry_lists_every_projection_table_once() {
        let conn = Conn::from_sqlite(rusqlite::Connection::open_in_memory().unwrap());
        crate::storage::migrate::migrate(&conn).unwrap();
        let schema: BTreeSet<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'p\\_%' ESCAPE '\\'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let listed: Vec<&str> = tables().map(|t| t.name).collect();
        let unique: BTreeSet<String> = listed.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            unique.len(),
            listed.len(),
            "a table is listed twice: {listed:?}"
        );
        assert_eq!(unique, schema);
        for (i, f) in FAMILIES.iter().enumerate() {
            assert!(!f.tables.is_empty(), "family {i} has no table");
        }
    }
}
