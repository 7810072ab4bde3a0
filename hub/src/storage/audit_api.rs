//! The audit log's typed methods on [`Storage`]: signing a head on the
//! writer, the latest head, inclusion and consistency proofs (a register
//! reads only its own store's entries). The tree's SQL is in the kernel
//! ([`super::audit_tree`]); this feature module only calls it.

use super::audit_tree::{consistency, inclusion, latest_sth, sign_head, InclusionAnswer};
use super::db::{Conn, OptionalExtension};
use caja_shared::digest::Hash256;
use caja_shared::key::HubSigningKey;
use caja_shared::merkle::SignedTreeHead;

use crate::storage::error::{Answer, StorageError};
use crate::storage::writer::Storage;
use crate::wire::ApiError;

impl Storage {
    /// Signs the current tree (see [`sign_head`]) on the writer.
    pub async fn audit_sign_head(
        &self,
        key: HubSigningKey,
        force: bool,
    ) -> Result<SignedTreeHead, StorageError> {
        self.write(move |conn, env| sign_head(conn, &key, env.now_ms(), force))
            .await
    }

    /// The latest signed tree head.
    pub async fn audit_latest_sth(&self) -> Result<Option<SignedTreeHead>, StorageError> {
        self.read(latest_sth).await
    }

    /// `GET /v1/audit/inclusion`.
    pub async fn audit_inclusion(
        &self,
        index: u64,
        size: u64,
        scope: Option<caja_shared::ids::StoreId>,
    ) -> Result<Answer<InclusionAnswer>, StorageError> {
        self.read(move |conn| {
            // A register reads only its own store's entries; an auditor
            // with the admin token (no scope) reads every entry.
            if let Some(store) = scope {
                match entry_store(conn, index)? {
                    Some(Some(s)) if s == store.to_string() => {}
                    Some(_) => {
                        return Ok(Err(ApiError::forbidden(
                            "wrong_store",
                            "this audit entry is not of the register's store",
                        )))
                    }
                    None => {}
                }
            }
            inclusion(conn, index, size)
        })
        .await
    }

    /// `GET /v1/audit/consistency`.
    pub async fn audit_consistency(
        &self,
        first: u64,
        second: u64,
    ) -> Result<Answer<Vec<Hash256>>, StorageError> {
        self.read(move |conn| consistency(conn, first, second))
            .await
    }
}

/// The store of entry `index`: `None` when there is no such entry,
/// `Some(None)` for an entry of no store (hub-wide operator actions).
/// Scopes what a register may read of the log.
fn entry_store(conn: &Conn, index: u64) -> Result<Option<Option<String>>, StorageError> {
    let Ok(idx) = i64::try_from(index) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT store_id FROM audit_log WHERE idx = $1")?
        .query_row([idx], |r| r.get(0))
        .optional()?)
}
