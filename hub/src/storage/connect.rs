//! Opening the database: SQLite with the hub's pragmas (WAL,
//! `synchronous=FULL`, so a commit is on disk before the writer answers) or
//! PostgreSQL over its URL; read-only connections; the offline open of
//! `caja-hub init`/`rebuild`; and the hub key recorded in `hub_meta`.
//!
//! Kernel: imports only the SQL facade, the migrator and the codecs.

use crate::storage::codec::corrupt;
use crate::storage::db::{params, Conn, Database};
use crate::storage::error::StorageError;
use crate::storage::migrate;
use caja_shared::ids::KeyId;
use rusqlite::OpenFlags;
use std::path::Path;

/// Opens a read-write connection with the hub's pragmas.
pub fn open_connection(path: &Path) -> Result<Conn, rusqlite::Error> {
    Ok(Conn::from_sqlite(sqlite_connection(path)?))
}

/// A read-write rusqlite connection with the hub's pragmas.
pub(crate) fn sqlite_connection(path: &Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    crate::crashpoint::arm_disk_faults();
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A push of 500 events dirties a few thousand pages: keep them in memory
    // (32 MiB) rather than spilling to the WAL mid-transaction, and keep the
    // savepoint sub-journals in memory too.
    conn.pragma_update(None, "cache_size", -32_768)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(128);
    plan_without_bound_values(&conn)?;
    Ok(conn)
}

/// Turns on SQLite's query planner stability guarantee: a statement's plan
/// never depends on the values bound to it. Without it SQLite marks a
/// statement to be re-prepared at every new binding when the planner looked
/// at a bound value: in a join, an equality on a parameter the chosen index
/// does not use is weighed by whether the value is 0 or 1, and a text
/// binding then expires the statement every time (the voids of a debt's
/// sale were re-prepared at nearly every call). The hub's schema has no
/// partial index, no `LIKE` on a parameter and no `ANALYZE` statistics, the
/// other things a bound value would tell the planner.
fn plan_without_bound_values(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Opens a read-only connection.
pub(crate) fn open_sqlite_reader(path: &Path) -> Result<Conn, StorageError> {
    crate::crashpoint::arm_disk_faults();
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    plan_without_bound_values(&conn)?;
    Ok(Conn::from_sqlite(conn))
}

/// Opens a read-write connection to the database (SQLite with the hub's
/// pragmas; PostgreSQL over its URL).
pub fn open(database: &Database) -> Result<Conn, StorageError> {
    match database {
        Database::Sqlite(path) => Ok(open_connection(path)?),
        Database::Postgres(url) => Ok(Conn::connect_postgres(url)?),
    }
}

/// [`open`] for use from asynchronous code (tests, tools): on PostgreSQL each
/// call runs on a thread of its own (see [`Conn::connect_postgres_detached`]).
pub fn open_detached(database: &Database) -> Result<Conn, StorageError> {
    match database {
        Database::Sqlite(path) => Ok(open_connection(path)?),
        Database::Postgres(url) => Ok(Conn::connect_postgres_detached(url)?),
    }
}

/// Opens a read connection (read-only on SQLite).
pub(crate) fn open_reader(database: &Database) -> Result<Conn, StorageError> {
    match database {
        Database::Sqlite(path) => open_sqlite_reader(path),
        Database::Postgres(url) => Ok(Conn::connect_postgres(url)?),
    }
}

/// Opens the database (creating and migrating it) without starting a writer:
/// for `caja-hub init` and `caja-hub rebuild`.
pub fn open_offline(database: &Database) -> Result<Conn, StorageError> {
    let conn = open(database)?;
    migrate::migrate(&conn)?;
    Ok(conn)
}

/// Records the hub key in a fresh database (at `caja-hub init`) in
/// `hub_meta`; checks it matches on later opens.
pub fn record_hub_key(
    conn: &Conn,
    key_id: &KeyId,
    public_hex: &str,
    now_ms: i64,
) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO hub_meta (id, hub_key_id, hub_public_key, created_at_ms) VALUES (1, $1, $2, $3) ON CONFLICT DO NOTHING",
        params![key_id.as_str(), public_hex, now_ms],
    )?;
    let recorded: String = conn.query_row(
        "SELECT hub_public_key FROM hub_meta WHERE id = 1",
        [],
        |r| r.get(0),
    )?;
    if recorded != public_hex {
        return Err(corrupt(
            "this database was initialized with another hub key than the key file holds",
        ));
    }
    Ok(())
}
