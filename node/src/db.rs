//! Opening the node database: one SQLite file per register, in WAL mode with
//! `synchronous=FULL`, foreign keys on and a busy timeout, migrated to this
//! binary's schema.
//!
//! Several processes may open the same file at once: the long-running node (sync
//! daemon, later the local API) and short-lived CLI commands. WAL lets readers run
//! beside the one writer; every write transaction starts with `BEGIN IMMEDIATE`
//! (taking the write lock up front, so a read never has to be upgraded to a write
//! and fail with `SQLITE_BUSY` mid-transaction), and a writer that finds the lock
//! taken waits up to [`BUSY_TIMEOUT_MS`] before giving up.
//!
//! Durability: with WAL and `synchronous=FULL` SQLite fsyncs the WAL at every
//! commit, so a transaction whose `COMMIT` returned survives a process crash and
//! a power cut (given a disk that honours fsync). See ARCHITECTURE.md.
//! A long-running register moves the WAL's checkpoints off its commits
//! ([`Db::start_checkpointer`], `checkpointer`); other connections keep
//! SQLite's automatic checkpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::checkpointer::{CheckpointError, CheckpointPolicy, CheckpointStats, Checkpointer};
use crate::migrate::{self, MigrateError, MigrationReport};

/// How long a connection waits for another process's write lock before a
/// statement fails with `SQLITE_BUSY`. A sale commits in milliseconds; five
/// seconds covers a slow disk or a backup step without hanging a cashier for
/// long.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The file name of the node database inside the data directory.
pub const DB_FILE_NAME: &str = "caja-node.sqlite3";

/// Why the node database cannot be opened. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite could not open or create the file.
    #[error("cannot open the node database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A connection setting could not be applied.
    #[error("cannot set {pragma} on the node database {path}: {source}")]
    Pragma {
        /// The database file.
        path: PathBuf,
        /// Which setting.
        pragma: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite refused a setting this node relies on for durability or
    /// concurrency (e.g. WAL on a file system without shared memory).
    #[error(
        "the node database {path} runs with {pragma} = {actual}, but caja-node needs {wanted}"
    )]
    Setting {
        /// The database file.
        path: PathBuf,
        /// Which setting.
        pragma: &'static str,
        /// What caja-node asked for.
        wanted: &'static str,
        /// What SQLite reports.
        actual: String,
    },
    /// The schema could not be brought to this binary's version.
    #[error("node database {path}: {source}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: MigrateError,
    },
    /// The WAL checkpointer could not start.
    #[error("node database {path}: {source}")]
    Checkpointer {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: CheckpointError,
    },
    /// A write transaction could not begin (typically the lock stayed taken
    /// longer than [`BUSY_TIMEOUT_MS`]).
    #[error("cannot begin a write transaction on the node database {path}: {source}")]
    Begin {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
}

/// An open, migrated node database.
#[derive(Debug)]
pub struct Db {
    /// Declared before `conn`: dropped (its thread stopped) first.
    checkpointer: Option<Checkpointer>,
    conn: Connection,
    path: PathBuf,
    migration: MigrationReport,
}

impl Db {
    /// Opens (creating if absent) the node database at `path`, applies the
    /// connection settings ([`configure`]) and migrates it to
    /// [`migrate::SCHEMA_VERSION`]. Refuses a database written by a newer
    /// `caja-node`.
    pub fn open(path: impl AsRef<Path>) -> Result<Db, DbError> {
        let path = path.as_ref().to_path_buf();
        #[cfg(feature = "crashpoints")]
        crate::crashpoint::arm_disk_faults();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(&path, flags).map_err(|source| DbError::Open {
                path: path.clone(),
                source,
            })?;
        configure(&conn, &path)?;
        // An operation runs a few dozen distinct statements (a sale about
        // twenty); rusqlite's default cache of 16 would re-prepare some on
        // every sale.
        conn.set_prepared_statement_cache_capacity(128);
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
        let migration = migrate::migrate(&mut conn).map_err(|source| DbError::Migrate {
            path: path.clone(),
            source,
        })?;
        #[cfg(feature = "crashpoints")]
        disk_full_seam(&conn);
        Ok(Db {
            checkpointer: None,
            conn,
            path,
            migration,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the migrator did when this database was opened.
    pub fn migration(&self) -> MigrationReport {
        self.migration
    }

    /// The connection, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for callers that manage transactions themselves. Its
    /// default transaction behaviour is `IMMEDIATE`.
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`): the write lock is taken
    /// now, waiting up to [`BUSY_TIMEOUT_MS`] for another process to release
    /// it. Everything an operation writes — its events, checkpoint, projections,
    /// op id — goes into one such transaction; dropping it without `commit`
    /// rolls all of it back.
    pub fn write_tx(&mut self) -> Result<Transaction<'_>, DbError> {
        let path = &self.path;
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| DbError::Begin {
                path: path.clone(),
                source,
            })
    }

    /// Moves this connection's WAL checkpoints to a thread of its own
    /// ([`Checkpointer`]); a no-op answering `Ok(false)` when one runs
    /// already, or when a disk fault is armed for the disk-fault tests (the
    /// `crashpoints` feature: their fault counts the n-th write of the
    /// process, which a thread's writes would make depend on timing).
    pub fn start_checkpointer(&mut self, policy: CheckpointPolicy) -> Result<bool, DbError> {
        if self.checkpointer.is_some() || crate::crashpoint::disk_faults_armed() {
            return Ok(false);
        }
        let own = open_for_checkpoints(&self.path)?;
        let c = Checkpointer::start(&mut self.conn, own, policy).map_err(|source| {
            DbError::Checkpointer {
                path: self.path.clone(),
                source,
            }
        })?;
        self.checkpointer = Some(c);
        Ok(true)
    }

    /// Stops the checkpointer (joining its thread) and gives the connection
    /// SQLite's automatic checkpoint back; what it did, if one ran.
    pub fn stop_checkpointer(&mut self) -> Option<CheckpointStats> {
        let c = self.checkpointer.take()?;
        Some(c.stop(&mut self.conn))
    }

    /// The running checkpointer, if any.
    pub fn checkpointer(&self) -> Option<&Checkpointer> {
        self.checkpointer.as_ref()
    }

    /// Gives up the wrapper and returns the connection (the checkpointer
    /// stopped, SQLite's automatic checkpoint back).
    pub fn into_connection(mut self) -> Connection {
        let _ = self.stop_checkpointer();
        self.conn
    }
}

/// Opens a second connection to the existing database at `path` with the
/// node's settings ([`configure`]), for a checkpointer's thread.
pub fn open_for_checkpoints(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| DbError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    configure(&conn, path)?;
    Ok(conn)
}

/// Applies the node's connection settings to `conn` (opened on `path`): busy
/// timeout, `journal_mode=WAL`, `synchronous=FULL`, `foreign_keys=ON`, and checks
/// SQLite accepted each. Public so that benchmarks can give a baseline
/// connection exactly the same settings.
pub fn configure(conn: &Connection, path: &Path) -> Result<(), DbError> {
    let pragma_err = |pragma: &'static str| {
        let path = path.to_path_buf();
        move |source| DbError::Pragma {
            path,
            pragma,
            source,
        }
    };
    // First, so that the journal_mode switch and migrations wait for a busy
    // database instead of failing.
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(pragma_err("busy_timeout"))?;
    // Switching a fresh file to WAL can answer SQLITE_BUSY at once, without
    // the busy handler, while another process switches it too: retry for as
    // long as the busy timeout.
    let mut waited_ms = 0;
    let mode: String = loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && waited_ms < BUSY_TIMEOUT_MS =>
            {
                std::thread::sleep(Duration::from_millis(20));
                waited_ms += 20;
            }
            other => break other.map_err(pragma_err("journal_mode"))?,
        }
    };
    expect_setting(path, "journal_mode", "wal", mode.to_ascii_lowercase())?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(pragma_err("synchronous"))?;
    let sync: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .map_err(pragma_err("synchronous"))?;
    // 2 = FULL.
    expect_setting(path, "synchronous", "2 (FULL)", sync_name(sync))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(pragma_err("foreign_keys"))?;
    let fk: i64 = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .map_err(pragma_err("foreign_keys"))?;
    expect_setting(path, "foreign_keys", "1 (ON)", fk_name(fk))?;
    Ok(())
}

fn sync_name(v: i64) -> String {
    match v {
        2 => "2 (FULL)".into(),
        other => other.to_string(),
    }
}

fn fk_name(v: i64) -> String {
    match v {
        1 => "1 (ON)".into(),
        other => other.to_string(),
    }
}

fn expect_setting(
    path: &Path,
    pragma: &'static str,
    wanted: &'static str,
    actual: String,
) -> Result<(), DbError> {
    if actual == wanted {
        Ok(())
    } else {
        Err(DbError::Setting {
            path: path.to_path_buf(),
            pragma,
            wanted,
            actual,
        })
    }
}

/// Copies the database behind `src` into a new file at `dest` with SQLite's
/// online backup API: a consistent snapshot even while another connection
/// writes.
pub fn snapshot_to(src: &Connection, dest: &Path) -> rusqlite::Result<()> {
    let mut dst = Connection::open(dest)?;
    let b = rusqlite::backup::Backup::new(src, &mut dst)?;
    b.run_to_completion(256, Duration::from_millis(0), None)
}

/// Folds the WAL into the file and leaves it in rollback-journal mode: a
/// single self-contained file, no `-wal` beside it.
pub fn make_self_contained(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
}

/// Folds the WAL of the database file at `path` into it, best effort (so a
/// copy of the file alone is complete).
pub fn fold_wal(path: &Path) {
    if let Ok(old) = Connection::open(path) {
        let _ = old.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }
}
/// The disk-fault tests' seam (only with the `crashpoints` feature): with
/// [`crate::crashpoint::DISK_FULL_ENV`] set, the database may not grow past
/// its size at open (`PRAGMA max_page_count`), so every write that needs a
/// new page fails with `SQLITE_FULL` as on a full disk.
#[cfg(feature = "crashpoints")]
fn disk_full_seam(conn: &Connection) {
    if std::env::var_os(crate::crashpoint::DISK_FULL_ENV).is_some() {
        // Best effort: a test seam; the test sees whether writes fail.
        let _ = conn.query_row("PRAGMA max_page_count = 1", [], |r| r.get::<_, i64>(0));
    }
}
