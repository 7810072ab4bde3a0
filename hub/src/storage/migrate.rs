//! The hub's versioned migrator: the SQL files of `migrations/hub/NNNN_name.sql`,
//! compiled in. `schema_version` records each applied migration's version, name
//! and SHA-256; each migration runs in one `BEGIN IMMEDIATE` transaction with its
//! row, so a crash leaves the previous version, never half a migration. A
//! database newer than this binary, or whose recorded migrations differ from the
//! compiled ones, is refused.
//!
//! Each migration exists twice, with the same version and name: the SQLite
//! file `migrations/hub/NNNN_name.sql` and the PostgreSQL file
//! `migrations/hub/postgres/NNNN_name.sql` (the same tables, columns in the
//! same order, indexes and views in that dialect). A database records the
//! checksum of the file of its own dialect. On PostgreSQL each migration runs
//! under the writers' advisory lock, so hub instances starting together
//! migrate one after the other.

use super::db::{params, Conn, DbError, Dialect};

use caja_shared::digest::Hash256;

/// One migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, … without gaps.
    pub version: u32,
    /// The file name without number and extension.
    pub name: &'static str,
    /// The SQL for SQLite.
    pub sql: &'static str,
    /// The SQL for PostgreSQL.
    pub postgres: &'static str,
}

impl Migration {
    /// The SQL of `dialect`.
    pub fn sql_for(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sql,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// The hub's migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "hub",
        sql: include_str!("../../../migrations/hub/0001_hub.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0001_hub.sql"),
    },
    Migration {
        version: 2,
        name: "fiscal",
        sql: include_str!("../../../migrations/hub/0002_fiscal.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0002_fiscal.sql"),
    },
    Migration {
        version: 3,
        name: "escrow",
        sql: include_str!("../../../migrations/hub/0003_escrow.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0003_escrow.sql"),
    },
    Migration {
        version: 4,
        name: "audit_tree",
        sql: include_str!("../../../migrations/hub/0004_audit_tree.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0004_audit_tree.sql"),
    },
    Migration {
        version: 5,
        name: "returns",
        sql: include_str!("../../../migrations/hub/0005_returns.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0005_returns.sql"),
    },
    Migration {
        version: 6,
        name: "payments",
        sql: include_str!("../../../migrations/hub/0006_payments.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0006_payments.sql"),
    },
    Migration {
        version: 7,
        name: "conflicts",
        sql: include_str!("../../../migrations/hub/0007_conflicts.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0007_conflicts.sql"),
    },
    Migration {
        version: 8,
        name: "conflicts_ahead",
        sql: include_str!("../../../migrations/hub/0008_conflicts_ahead.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0008_conflicts_ahead.sql"),
    },
    Migration {
        version: 9,
        name: "store_credit_drawer",
        sql: include_str!("../../../migrations/hub/0009_store_credit_drawer.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0009_store_credit_drawer.sql"),
    },
    Migration {
        version: 10,
        name: "tax_outbox",
        sql: include_str!("../../../migrations/hub/0010_tax_outbox.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0010_tax_outbox.sql"),
    },
    Migration {
        version: 11,
        name: "ui_sessions",
        sql: include_str!("../../../migrations/hub/0011_ui_sessions.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0011_ui_sessions.sql"),
    },
    Migration {
        version: 12,
        name: "signed_documents",
        sql: include_str!("../../../migrations/hub/0012_signed_documents.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0012_signed_documents.sql"),
    },
    Migration {
        version: 13,
        name: "summary_corrections",
        sql: include_str!("../../../migrations/hub/0013_summary_corrections.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0013_summary_corrections.sql"),
    },
    Migration {
        version: 14,
        name: "card_matching",
        sql: include_str!("../../../migrations/hub/0014_card_matching.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0014_card_matching.sql"),
    },
    Migration {
        version: 15,
        name: "restore_epoch",
        sql: include_str!("../../../migrations/hub/0015_restore_epoch.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0015_restore_epoch.sql"),
    },
    Migration {
        version: 16,
        name: "dgii_receiver",
        sql: include_str!("../../../migrations/hub/0016_dgii_receiver.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0016_dgii_receiver.sql"),
    },
    Migration {
        version: 17,
        name: "sale_drawer_opens",
        sql: include_str!("../../../migrations/hub/0017_sale_drawer_opens.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0017_sale_drawer_opens.sql"),
    },
    // — PGLOCK —
    Migration {
        version: 18,
        name: "audit_sequencer",
        sql: include_str!("../../../migrations/hub/0018_audit_sequencer.sql"),
        postgres: include_str!("../../../migrations/hub/postgres/0018_audit_sequencer.sql"),
    },
    // — HUBPG —
    Migration {
        version: 19,
        name: "audit_gapless_per_statement",
        sql: include_str!("../../../migrations/hub/0019_audit_gapless_per_statement.sql"),
        postgres: include_str!(
            "../../../migrations/hub/postgres/0019_audit_gapless_per_statement.sql"
        ),
    },
];

/// Why the database cannot be brought to this binary's schema.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Written by a newer `caja-hub`.
    #[error("the database has schema version {found}, newer than the {known} this caja-hub knows; upgrade caja-hub")]
    TooNew {
        /// Recorded version.
        found: u32,
        /// Newest known.
        known: u32,
    },
    /// A recorded migration differs from the compiled one.
    #[error("schema migration {version} recorded in the database differs from the one compiled into this caja-hub; migrations must never be edited after release")]
    Mismatch {
        /// The version.
        version: u32,
    },
    /// The database failed.
    #[error("schema migration failed: {0}")]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> MigrateError {
        MigrateError::Db(DbError::Sqlite(e))
    }
}

const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version  INTEGER PRIMARY KEY CHECK (version >= 1),
    name     TEXT NOT NULL,
    checksum TEXT NOT NULL CHECK (length(checksum) = 64)
) STRICT";

const CREATE_SCHEMA_VERSION_PG: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version  BIGINT PRIMARY KEY CHECK (version >= 1),
    name     TEXT NOT NULL,
    checksum TEXT NOT NULL CHECK (length(checksum) = 64)
)";

/// Brings the database to the last of [`MIGRATIONS`]; returns the version.
pub fn migrate(conn: &Conn) -> Result<u32, MigrateError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    for m in MIGRATIONS {
        conn.write_tx(|tx| one(tx, m, known))?;
    }
    Ok(known)
}

/// Applies `m` unless it is recorded (then checks its checksum).
fn one(tx: &Conn, m: &Migration, known: u32) -> Result<(), MigrateError> {
    tx.execute_batch(tx.pick(CREATE_SCHEMA_VERSION, CREATE_SCHEMA_VERSION_PG))?;
    let newest: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let newest = u32::try_from(newest).unwrap_or(u32::MAX);
    if newest > known {
        return Err(MigrateError::TooNew {
            found: newest,
            known,
        });
    }
    let sql = m.sql_for(tx.dialect());
    let checksum = Hash256::of(sql.as_bytes()).to_hex();
    if newest >= m.version {
        let recorded: String = tx.query_row(
            "SELECT checksum FROM schema_version WHERE version = $1",
            [i64::from(m.version)],
            |r| r.get(0),
        )?;
        if recorded != checksum {
            return Err(MigrateError::Mismatch { version: m.version });
        }
        return Ok(());
    }
    tx.execute_batch(sql)?;
    tx.execute(
        "INSERT INTO schema_version (version, name, checksum) VALUES ($1, $2, $3)",
        params![i64::from(m.version), m.name, checksum],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Conn {
        Conn::from_sqlite(rusqlite::Connection::open_in_memory().unwrap())
    }

    #[test]
    fn both_dialects_have_every_migration() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(!m.sql.trim().is_empty() && !m.postgres.trim().is_empty());
            assert_ne!(m.sql, m.postgres, "{}", m.name);
        }
    }

    #[test]
    fn migrating_twice_is_a_no_op_and_an_edited_schema_is_refused() {
        let conn = memory();
        let last = MIGRATIONS.last().map_or(0, |m| m.version);
        assert_eq!(migrate(&conn).unwrap(), last);
        assert_eq!(migrate(&conn).unwrap(), last);
        conn.execute(
            "UPDATE schema_version SET checksum = $1 WHERE version = 1",
            [&"0".repeat(64)],
        )
        .unwrap();
        assert!(matches!(
            migrate(&conn),
            Err(MigrateError::Mismatch { version: 1 })
        ));
        let next = MIGRATIONS.last().map_or(0, |m| m.version) + 1;
        conn.execute(
            "INSERT INTO schema_version (version, name, checksum) VALUES ($1, 'x', $2)",
            params![next, "0".repeat(64)],
        )
        .unwrap();
        assert!(matches!(
            migrate(&conn),
            Err(MigrateError::TooNew { found, .. }) if found == next
        ));
    }

    #[test]
    fn the_audit_log_and_events_are_append_only() {
        let conn = memory();
        migrate(&conn).unwrap();
        let h = "a".repeat(64);
        conn.execute(
            "INSERT INTO audit_log (idx, kind, at_ms, store_id, entry, leaf_hash)
             VALUES (0, 'k', 1, NULL, x'00', $1)",
            [&h],
        )
        .unwrap();
        assert!(conn
            .execute(
                "INSERT INTO audit_log (idx, kind, at_ms, store_id, entry, leaf_hash)
                 VALUES (2, 'k', 1, NULL, x'00', $1)",
                [&h]
            )
            .is_err());
        assert!(conn.execute("UPDATE audit_log SET at_ms = 2", []).is_err());
        assert!(conn.execute("DELETE FROM audit_log", []).is_err());
        conn.execute(
            "INSERT INTO events (event_id, store_id, device_id, seq, hash, prev, kind, hlc_ms, hlc_n, bytes, received_ms)
             VALUES ($1, 's', 'd', 1, ?2, ?2, 'k', 0, 0, x'00', 0)",
            [&"e".repeat(36), &h],
        )
        .unwrap();
        assert!(conn.execute("UPDATE events SET seq = 2", []).is_err());
        assert!(conn.execute("DELETE FROM events", []).is_err());
    }
}
