//! The register's identity and its client operations: the one `device` row
//! (store, device id, key id, hub key, the restored-from-backup mark) and the
//! `ops` table that answers a retried operation id with its first result.
//!
//! Invariant: the device row is written once (`insert_device` refuses a second)
//! and an op id is recorded once (`record_op` refuses a duplicate); nothing here
//! touches the journal or checkpoint tables.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, KeyId, OpId, StoreId};
use caja_shared::key::HubPublicKey;

use super::error::JournalError;
use super::rows::{get_opt_u64, to_i64};

/// The register this database belongs to (the one `device` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Its store.
    pub store: StoreId,
    /// Its device id (the `device` of its events).
    pub device: DeviceId,
    /// The id of its current device key.
    pub key_id: KeyId,
    /// The hub's Ed25519 public key, once enrollment gave it.
    pub hub_public_key: Option<HubPublicKey>,
    /// When the row was written (UTC ms).
    pub created_at_ms: i64,
    /// Set in a copy made by `backup`: a database restored from it issues no
    /// fiscal number and sells no escrowed stock until it has synced.
    pub restored_from_backup: bool,
}

/// The first result of a client operation (DESIGN.md invariant 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// The client's operation id.
    pub op_id: OpId,
    /// What operation it was (e.g. `sell`).
    pub kind: String,
    /// SHA-256 of the canonical request, to tell a retry from another request
    /// reusing the id.
    pub request_hash: Hash256,
    /// The answer given the first time, as JSON text.
    pub result: String,
    /// The last journal seq the operation wrote, if any.
    pub seq: Option<u64>,
    /// When it was applied (UTC ms).
    pub at_ms: i64,
}

/// Whether the device row says this database was restored from a backup and
/// has not synced since (`false` when there is no row yet). Every operation
/// asks under the write lock; one column, nothing parsed.
pub fn restored_from_backup(conn: &Connection) -> Result<bool, JournalError> {
    let flag: Option<bool> = conn
        .prepare_cached("SELECT restored_from_backup FROM device WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(flag.unwrap_or(false))
}

/// Reads the device row, if the database has been initialized.
pub fn load_device(conn: &Connection) -> Result<Option<DeviceRecord>, JournalError> {
    // Cached: every operation reads it under the write lock.
    let row: Option<(String, String, String, Option<String>, i64, bool)> = conn
        .prepare_cached(
            "SELECT store_id, device_id, key_id, hub_public_key, created_at_ms, restored_from_backup
             FROM device WHERE id = 1",
        )?
        .query_row(
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?;
    let Some((store, device, key_id, hub, created_at_ms, restored_from_backup)) = row else {
        return Ok(None);
    };
    let bad = |column: &'static str, detail: String| JournalError::BadRow {
        table: "device",
        column,
        detail,
    };
    Ok(Some(DeviceRecord {
        store: store.parse().map_err(|e| bad("store_id", format!("{e}")))?,
        device: device
            .parse()
            .map_err(|e| bad("device_id", format!("{e}")))?,
        key_id: key_id.parse().map_err(|e| bad("key_id", format!("{e}")))?,
        hub_public_key: hub
            .map(|h| HubPublicKey::from_hex(&h))
            .transpose()
            .map_err(|e| bad("hub_public_key", format!("{e}")))?,
        created_at_ms,
        restored_from_backup,
    }))
}

/// Writes the device row (at `init`). Refuses if the database already has one.
pub fn insert_device(tx: &Transaction<'_>, device: &DeviceRecord) -> Result<(), JournalError> {
    if let Some(existing) = load_device(tx)? {
        return Err(JournalError::AlreadyInitialized(existing.device));
    }
    tx.execute(
        "INSERT INTO device (id, store_id, device_id, key_id, hub_public_key, created_at_ms,
                             restored_from_backup)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            device.store.to_string(),
            device.device.to_string(),
            device.key_id.as_str(),
            device.hub_public_key.map(|k| k.to_hex()),
            device.created_at_ms,
            device.restored_from_backup,
        ],
    )?;
    Ok(())
}

/// Sets or clears the "restored from a backup" mark of the device row (set in a
/// backup copy; cleared once the node has synced with the hub).
pub fn set_restored_from_backup(conn: &Connection, restored: bool) -> Result<(), JournalError> {
    let n = conn.execute(
        "UPDATE device SET restored_from_backup = ?1 WHERE id = 1",
        [restored],
    )?;
    if n == 0 {
        return Err(JournalError::NotInitialized);
    }
    Ok(())
}

/// Records the key id head office gave this register when it re-keyed it
/// (a hub restored from a backup lost the key; the key file is written
/// beside). Checkpoints keep the key id they were made with.
pub fn set_key_id(conn: &Connection, key_id: &caja_shared::ids::KeyId) -> Result<(), JournalError> {
    let n = conn.execute(
        "UPDATE device SET key_id = ?1 WHERE id = 1",
        [key_id.as_str()],
    )?;
    if n == 0 {
        return Err(JournalError::NotInitialized);
    }
    Ok(())
}

/// The recorded first result of a client operation, if it was applied.
pub fn find_op(conn: &Connection, op_id: &OpId) -> Result<Option<OpRecord>, JournalError> {
    let row: Option<(String, String, String, Option<u64>, i64)> = conn
        .prepare_cached("SELECT kind, request_hash, result, seq, at_ms FROM ops WHERE op_id = ?1")?
        .query_row([op_id.to_string()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                get_opt_u64(r, 3)?,
                r.get(4)?,
            ))
        })
        .optional()?;
    let Some((kind, request_hash, result, seq, at_ms)) = row else {
        return Ok(None);
    };
    Ok(Some(OpRecord {
        op_id: *op_id,
        kind,
        request_hash: request_hash.parse().map_err(|e| JournalError::BadRow {
            table: "ops",
            column: "request_hash",
            detail: format!("{e}"),
        })?,
        result,
        seq,
        at_ms,
    }))
}

/// Records a client operation's first result, in the transaction that applied
/// it. Refuses an op id already recorded (look it up with [`find_op`] first).
pub fn record_op(tx: &Transaction<'_>, op: &OpRecord) -> Result<(), JournalError> {
    let seq = op.seq.map(|s| to_i64(s, "seq")).transpose()?;
    // The primary key refuses a second record of the op id: one statement,
    // no lookup before it.
    let inserted = tx
        .prepare_cached(
            "INSERT INTO ops (op_id, kind, request_hash, result, seq, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (op_id) DO NOTHING",
        )?
        .execute(params![
            op.op_id.to_string(),
            op.kind,
            op.request_hash.to_hex(),
            op.result,
            seq,
            op.at_ms,
        ])?;
    if inserted == 0 {
        return Err(JournalError::DuplicateOp(op.op_id));
    }
    Ok(())
}
