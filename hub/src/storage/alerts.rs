//! Raising an operator alert (`alerts` table).
//!
//! Kernel: the one place that inserts an alert; listing them is
//! [`super::reports`].

use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;
use caja_shared::ids::{DeviceId, StoreId};

pub(crate) fn raise_alert(
    conn: &Conn,
    kind: &str,
    store: Option<StoreId>,
    device: Option<DeviceId>,
    at_ms: i64,
    message: &str,
) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO alerts (kind, store_id, device_id, at_ms, message) VALUES ($1, $2, $3, $4, $5)",
        params![
            kind,
            store.map(|s| s.to_string()),
            device.map(|d| d.to_string()),
            at_ms,
            message
        ],
    )?;
    Ok(())
}
