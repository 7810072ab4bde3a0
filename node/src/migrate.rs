//! A small versioned migrator for the node database.
//!
//! Migrations are the SQL files of `migrations/node/NNNN_name.sql`, compiled into
//! the binary. The table `schema_version` records, per applied migration, its
//! version, name and the SHA-256 of its SQL. Each migration runs in its own
//! `BEGIN IMMEDIATE` transaction together with its `schema_version` row, so a
//! crash leaves the database at the previous version, never half-migrated, and two
//! processes opening a fresh database at once apply each migration exactly once
//! (the second waits for the write lock, then sees the version already there).
//!
//! A database whose recorded version is newer than this binary knows is refused
//! ([`MigrateError::TooNew`]): an old `caja-node` must not write into a schema it
//! does not understand. A database whose recorded migrations differ from the
//! compiled ones (an edited migration file) is refused too.

use rusqlite::{Connection, TransactionBehavior};

use caja_shared::digest::Hash256;

/// One schema migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its version: 1, 2, 3, … without gaps.
    pub version: u32,
    /// Its name (the file name without number and extension).
    pub name: &'static str,
    /// The SQL, applied with `execute_batch`.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL, recorded in `schema_version` to detect an edited file.
    pub fn checksum(&self) -> Hash256 {
        Hash256::of(self.sql.as_bytes())
    }
}

/// The node's migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "journal",
        sql: include_str!("../../migrations/node/0001_journal.sql"),
    },
    Migration {
        version: 2,
        name: "projections",
        sql: include_str!("../../migrations/node/0002_projections.sql"),
    },
    Migration {
        version: 3,
        name: "sync",
        sql: include_str!("../../migrations/node/0003_sync.sql"),
    },
    Migration {
        version: 4,
        name: "print",
        sql: include_str!("../../migrations/node/0004_print.sql"),
    },
    Migration {
        version: 5,
        name: "fiscal",
        sql: include_str!("../../migrations/node/0005_fiscal.sql"),
    },
    Migration {
        version: 6,
        name: "escrow",
        sql: include_str!("../../migrations/node/0006_escrow.sql"),
    },
    Migration {
        version: 7,
        name: "staff",
        sql: include_str!("../../migrations/node/0007_staff.sql"),
    },
    Migration {
        version: 8,
        name: "audit_sth",
        sql: include_str!("../../migrations/node/0008_audit_sth.sql"),
    },
    Migration {
        version: 9,
        name: "payments",
        sql: include_str!("../../migrations/node/0009_payments.sql"),
    },
    Migration {
        version: 10,
        name: "conflicts",
        sql: include_str!("../../migrations/node/0010_conflicts.sql"),
    },
    Migration {
        version: 11,
        name: "store_credit_drawer",
        sql: include_str!("../../migrations/node/0011_store_credit_drawer.sql"),
    },
    Migration {
        version: 12,
        name: "ui",
        sql: include_str!("../../migrations/node/0012_ui.sql"),
    },
    Migration {
        version: 13,
        name: "fiscal_documents",
        sql: include_str!("../../migrations/node/0013_fiscal_documents.sql"),
    },
    Migration {
        version: 14,
        name: "ui_price_override",
        sql: include_str!("../../migrations/node/0014_ui_price_override.sql"),
    },
    Migration {
        version: 15,
        name: "signed_documents",
        sql: include_str!("../../migrations/node/0015_signed_documents.sql"),
    },
    Migration {
        version: 16,
        name: "drawer_openings",
        sql: include_str!("../../migrations/node/0016_drawer_openings.sql"),
    },
    Migration {
        version: 17,
        name: "ui_discounts",
        sql: include_str!("../../migrations/node/0017_ui_discounts.sql"),
    },
    Migration {
        version: 18,
        name: "intent_refunds",
        sql: include_str!("../../migrations/node/0018_intent_refunds.sql"),
    },
    Migration {
        version: 19,
        name: "restore_epoch",
        sql: include_str!("../../migrations/node/0019_restore_epoch.sql"),
    },
    Migration {
        version: 20,
        name: "return_slips",
        sql: include_str!("../../migrations/node/0020_return_slips.sql"),
    },
    Migration {
        version: 21,
        name: "drawer_journal",
        sql: include_str!("../../migrations/node/0021_drawer_journal.sql"),
    },
    // — ECFSALE —
    Migration {
        version: 22,
        name: "signed_documents_in_order",
        sql: include_str!("../../migrations/node/0022_signed_documents_in_order.sql"),
    },
];

/// The schema version this binary writes: the last of [`MIGRATIONS`].
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The table that records applied migrations.
const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version  INTEGER PRIMARY KEY CHECK (version >= 1),
    name     TEXT NOT NULL,
    checksum TEXT NOT NULL CHECK (length(checksum) = 64)
) STRICT";

/// Why a database cannot be brought to this binary's schema.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database was written by a newer `caja-node`.
    #[error(
        "the database has schema version {found}, newer than the {known} this caja-node knows; \
         upgrade caja-node instead of opening this database with an older one"
    )]
    TooNew {
        /// The version recorded in the database.
        found: u32,
        /// The newest version this binary knows ([`SCHEMA_VERSION`]).
        known: u32,
    },
    /// An applied migration differs from the compiled one of the same version.
    #[error(
        "schema migration {version} recorded in the database ({recorded_name}, sha256 {recorded}) \
         differs from the one compiled into this caja-node ({name}, sha256 {compiled}); \
         migrations must never be edited after release"
    )]
    Mismatch {
        /// The version.
        version: u32,
        /// The name recorded in the database.
        recorded_name: String,
        /// The checksum recorded in the database.
        recorded: String,
        /// The compiled name.
        name: &'static str,
        /// The compiled checksum.
        compiled: String,
    },
    /// The recorded versions are not 1, 2, … without gaps.
    #[error("schema_version is not contiguous: expected version {expected}, found {found}")]
    Gap {
        /// The version that should come next.
        expected: u32,
        /// The version found instead.
        found: u32,
    },
    /// The migration list itself is malformed (a bug in this binary).
    #[error("the compiled migration list is not 1, 2, …: {0}")]
    BadList(String),
    /// Applying migration `version` failed; nothing of it was kept.
    #[error("schema migration {version} ({name}) failed: {source}")]
    Apply {
        /// The version.
        version: u32,
        /// Its name.
        name: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing `schema_version` failed.
    #[error("reading schema_version failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// The version before.
    pub from: u32,
    /// The version after.
    pub to: u32,
}

/// The highest applied version, 0 for a database with no `schema_version` table
/// or an empty one.
pub fn current_version(conn: &Connection) -> Result<u32, MigrateError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let v: Option<u32> =
        conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?;
    Ok(v.unwrap_or(0))
}

/// Brings the database to [`SCHEMA_VERSION`] with [`MIGRATIONS`].
pub fn migrate(conn: &mut Connection) -> Result<MigrationReport, MigrateError> {
    migrate_with(conn, MIGRATIONS)
}

/// Brings the database to the last version of `migrations` (which must be
/// numbered 1, 2, … without gaps). Exposed for tests that need a database from a
/// "newer" binary; production code calls [`migrate`].
pub fn migrate_with(
    conn: &mut Connection,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    check_list(migrations)?;
    let known = migrations.last().map_or(0, |m| m.version);
    let from = current_version(conn)?;
    // Refuse before writing anything, even the schema_version table.
    if from > known {
        return Err(MigrateError::TooNew { found: from, known });
    }
    // Read-only when nothing is to be applied: opening an up-to-date database
    // takes no write lock.
    check_recorded(conn, migrations)?;
    for m in migrations.iter().filter(|m| m.version > from) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(CREATE_SCHEMA_VERSION)?;
        // Re-read under the write lock: another process may have migrated.
        let newest = current_version(&tx)?;
        if newest > known {
            return Err(MigrateError::TooNew {
                found: newest,
                known,
            });
        }
        if newest >= m.version {
            tx.commit()?;
            continue;
        }
        if newest + 1 != m.version {
            return Err(MigrateError::Gap {
                expected: newest + 1,
                found: m.version,
            });
        }
        let apply = |e| MigrateError::Apply {
            version: m.version,
            name: m.name,
            source: e,
        };
        tx.execute_batch(m.sql).map_err(apply)?;
        tx.execute(
            "INSERT INTO schema_version (version, name, checksum) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, m.checksum().to_hex()],
        )
        .map_err(apply)?;
        tx.commit().map_err(apply)?;
    }
    let to = current_version(conn)?;
    if to > known {
        // A newer binary migrated between our first read and now.
        return Err(MigrateError::TooNew { found: to, known });
    }
    check_recorded(conn, migrations)?;
    debug_assert_eq!(to, known, "every compiled migration is applied");
    Ok(MigrationReport { from, to })
}

fn check_list(migrations: &[Migration]) -> Result<(), MigrateError> {
    for (i, m) in migrations.iter().enumerate() {
        let expected =
            u32::try_from(i + 1).map_err(|_| MigrateError::BadList("too many".into()))?;
        if m.version != expected {
            return Err(MigrateError::BadList(format!(
                "position {i} has version {}, expected {expected}",
                m.version
            )));
        }
    }
    Ok(())
}

/// Checks that the recorded migrations are 1, 2, … and each equals the compiled
/// one of its version (name and checksum). Versions beyond `migrations` are the
/// caller's [`MigrateError::TooNew`] check.
fn check_recorded(conn: &Connection, migrations: &[Migration]) -> Result<(), MigrateError> {
    if current_version(conn)? == 0 {
        return Ok(());
    }
    let mut stmt =
        conn.prepare("SELECT version, name, checksum FROM schema_version ORDER BY version")?;
    let mut rows = stmt.query([])?;
    let mut expected = 1u32;
    while let Some(row) = rows.next()? {
        let found: u32 = row.get(0)?;
        if found != expected {
            return Err(MigrateError::Gap { expected, found });
        }
        let Some(m) = migrations.iter().find(|m| m.version == found) else {
            break;
        };
        let recorded_name: String = row.get(1)?;
        let recorded: String = row.get(2)?;
        let compiled = m.checksum().to_hex();
        if recorded != compiled || recorded_name != m.name {
            return Err(MigrateError::Mismatch {
                version: found,
                recorded_name,
                recorded,
                name: m.name,
                compiled,
            });
        }
        expected += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_list_is_contiguous_and_schema_version_is_its_last() {
        check_list(MIGRATIONS).expect("contiguous");
        assert_eq!(
            usize::try_from(SCHEMA_VERSION).expect("small"),
            MIGRATIONS.len()
        );
    }

    #[test]
    fn a_malformed_list_is_refused() {
        let m = Migration {
            version: 2,
            name: "x",
            sql: "",
        };
        assert!(matches!(check_list(&[m]), Err(MigrateError::BadList(_))));
    }
}
