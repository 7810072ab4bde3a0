//! The customers family: `p_customers`, one row per customer, the last
//! write winning (`lww` on HLC, device, event).
//!
//! Invariant: the only module that writes or decodes a `p_customers` row;
//! statements name their columns.

use caja_shared::hlc::Hlc;

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, parse};
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[Table {
        name: "p_customers",
        load: Some(load),
    }],
};

/// Writes a customer unless the row holds a later write.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    let Fact::Customer {
        customer_id,
        event_id,
        hlc,
        device,
        body,
    } = f
    else {
        return Err(corrupt("not a customer fact"));
    };
    conn.prepare_cached(
        "INSERT INTO p_customers (customer_id, event_id, hlc_ms, hlc_n, device_id, body) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (customer_id) DO UPDATE SET event_id = excluded.event_id, hlc_ms = excluded.hlc_ms,
           hlc_n = excluded.hlc_n, device_id = excluded.device_id, body = excluded.body
         WHERE (excluded.hlc_ms, excluded.hlc_n, excluded.device_id, excluded.event_id)
             > (p_customers.hlc_ms, p_customers.hlc_n, p_customers.device_id, p_customers.event_id)",
    )?
    .execute(params![
        customer_id.to_string(),
        event_id.to_string(),
        hlc.ms(),
        i64::from(hlc.n()),
        device.to_string(),
        body
    ])?;
    Ok(())
}

fn load(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT customer_id, event_id, hlc_ms, hlc_n, device_id, body FROM p_customers",
        [],
        |r| {
            let n: i64 = r.get(3)?;
            Ok(Fact::Customer {
                customer_id: parse(&r.get::<_, String>(0)?)?,
                event_id: parse(&r.get::<_, String>(1)?)?,
                hlc: Hlc::new(r.get(2)?, u32::try_from(n).map_err(corrupt)?).map_err(corrupt)?,
                device: parse(&r.get::<_, String>(4)?)?,
                body: r.get(5)?,
            })
        },
    )
}
