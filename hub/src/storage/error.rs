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

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> StorageError {
        StorageError::Db(DbError::Sqlite(e))
    }
}
