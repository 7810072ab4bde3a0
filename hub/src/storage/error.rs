//! What a storage call answers: [`StorageError`] (storage failed, nothing of
//! the job was kept) and [`Answer`] (the result or a protocol rejection).
//!
//! Kernel: imports no other storage module besides the SQL facade.

use crate::hubchain::HubChainError;
use crate::storage::db::DbError;
use crate::storage::migrate::MigrateError;
use crate::wire::ApiError;

/// A result or a protocol rejection (see the module doc).
pub type Answer<T> = Result<T, ApiError>;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The writer's queue is full.
    #[error("the ingest queue is full")]
    Overloaded,
    /// The writer has stopped (shutdown).
    #[error("the store is shut down")]
    Closed,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The schema could not be migrated.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The commit of a batch failed; nothing of it was kept.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A stored row does not decode (corruption or a bug).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A hub event could not be built.
    #[error(transparent)]
    HubChain(#[from] HubChainError),
    /// A read task failed to run.
    #[error("read task failed: {0}")]
    Task(String),
    /// A writer job panicked: caught, its transaction rolled back, an alert
    /// raised; the writer goes on with the next job.
    #[error("a writer job panicked: {0}")]
    Panicked(String),
}

impl StorageError {
    /// Whether the database could not write for the disk's sake: full
    /// (SQLite `SQLITE_FULL`, PostgreSQL `53100 disk_full`) or an I/O error
    /// (`SQLITE_IOERR*`, PostgreSQL `58030 io_error`), also as the text of a
    /// failed commit. The transaction was rolled back; retrying later may work.
    pub fn is_disk_fault(&self) -> bool {
        match self {
            StorageError::Db(DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))) => matches!(
                e.code,
                rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure
            ),
            StorageError::Db(DbError::Postgres(e)) => e.code().is_some_and(|c| {
                *c == postgres::error::SqlState::DISK_FULL
                    || *c == postgres::error::SqlState::IO_ERROR
            }),
            StorageError::Commit(text) => {
                text.contains("database or disk is full")
                    || text.contains("disk I/O error")
                    || text.contains("No space left on device")
            }
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> StorageError {
        StorageError::Db(DbError::Sqlite(e))
    }
}
