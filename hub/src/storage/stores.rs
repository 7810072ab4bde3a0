//! Stores: creating one (and its hub chain's device), whether one exists,
//! listing them with their hub chain's seq.
//!
//! Feature module: imports only the kernel.

use crate::audit;
use crate::audit::AuditKind;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, parse, u};
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;
use crate::storage::writer::Env;
use caja_shared::ids::{DeviceId, StoreId};
use serde::Serialize;

/// A store, for head office.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    /// Id.
    pub store: StoreId,
    /// Name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Device id of its hub chain.
    pub hub_device: DeviceId,
    /// Events in its hub chain.
    pub hub_seq: u64,
}

pub(crate) fn create_store(
    conn: &Conn,
    env: &mut Env,
    name: &str,
    time_zone: &str,
) -> Result<StoreInfo, StorageError> {
    let now = env.now_ms();
    let mut rng = &mut *env.rng;
    let store = StoreId::new_v7(now, &mut rng).map_err(corrupt)?;
    let hub_device = DeviceId::new_v7(now, &mut rng).map_err(corrupt)?;
    conn.execute(
        "INSERT INTO stores (store_id, name, time_zone, hub_device, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        params![store.to_string(), name, time_zone, hub_device.to_string(), now],
    )?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::StoreCreated,
        now,
        Some(store),
        audit::data([
            ("name", audit::s(name)),
            ("time_zone", audit::s(time_zone)),
            ("hub_device", audit::s(hub_device)),
        ]),
    )?;
    Ok(StoreInfo {
        store,
        name: name.to_owned(),
        time_zone: time_zone.to_owned(),
        hub_device,
        hub_seq: 0,
    })
}

pub(crate) fn store_exists(conn: &Conn, store: StoreId) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM stores WHERE store_id = $1 LIMIT 1")?
        .exists([store.to_string()])?)
}

pub(crate) fn list_stores(conn: &Conn) -> Result<Vec<StoreInfo>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.store_id, s.name, s.time_zone, s.hub_device,
                COALESCE((SELECT MAX(seq) FROM events e WHERE e.device_id = s.hub_device), 0)
         FROM stores s ORDER BY s.created_at_ms, s.store_id",
    )?;
    let mut out = Vec::new();
    let mut rs = stmt.query([])?;
    while let Some(r) = rs.next()? {
        out.push(StoreInfo {
            store: parse(&r.get::<_, String>(0)?)?,
            name: r.get(1)?,
            time_zone: r.get(2)?,
            hub_device: parse(&r.get::<_, String>(3)?)?,
            hub_seq: u(r.get(4)?),
        });
    }
    Ok(out)
}
