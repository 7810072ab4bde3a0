//! The staff family: `p_drawer_opens` (a drawer opened without a sale),
//! `p_approvals` (who approved what, one row per approval of an event) and
//! `p_sale_drawer_opens` (a cash sale's or refund's drawer opened apart from
//! its receipt: the pulse or the key).
//!
//! Invariant: the only module that writes or decodes these rows; statements
//! name their columns.

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, parse};
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;
use crate::storage::multirow;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[
        Table {
            name: "p_drawer_opens",
            load: Some(load_drawer_opens),
        },
        Table {
            name: "p_approvals",
            load: Some(load_approvals),
        },
        Table {
            name: "p_sale_drawer_opens",
            load: Some(load_sale_drawer_opens),
        },
    ],
};

/// Writes a drawer opening or an approval.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    match f {
        Fact::DrawerOpen {
            event_id,
            store,
            device,
            shift_id,
            reason,
            approved_by,
        } => multirow::insert_later(conn, "INSERT INTO p_drawer_opens (event_id, store_id, device_id, shift_id, reason, approved_by)", params![
                event_id.to_string(),
                store.to_string(),
                device.to_string(),
                shift_id.to_string(),
                reason,
                approved_by
            ])?,
        Fact::Approval {
            event_id,
            idx,
            store,
            device,
            action,
            staff_id,
            name,
            role,
        } => multirow::insert_later(conn, "INSERT INTO p_approvals (event_id, idx, store_id, device_id, action, staff_id, name, role)", params![
                event_id.to_string(),
                idx,
                store.to_string(),
                device.to_string(),
                action,
                staff_id.to_string(),
                name,
                role
            ])?,
        Fact::SaleDrawerOpen {
            event_id,
            store,
            device,
            document,
            refund,
            how,
            opened_ms,
        } => multirow::insert_later(conn, "INSERT INTO p_sale_drawer_opens (event_id, store_id, device_id, document_id, refund, how, opened_ms)", params![
                event_id.to_string(),
                store.to_string(),
                device.to_string(),
                document,
                i64::from(*refund),
                how,
                opened_ms
            ])?,
        _ => return Err(corrupt("not a staff fact")),
    };
    Ok(())
}

fn load_drawer_opens(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, device_id, shift_id, reason, approved_by FROM p_drawer_opens",
        [],
        |r| {
            Ok(Fact::DrawerOpen {
                event_id: parse(&r.get::<_, String>(0)?)?,
                store: parse(&r.get::<_, String>(1)?)?,
                device: parse(&r.get::<_, String>(2)?)?,
                shift_id: parse(&r.get::<_, String>(3)?)?,
                reason: r.get(4)?,
                approved_by: r.get(5)?,
            })
        },
    )
}

fn load_approvals(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, idx, store_id, device_id, action, staff_id, name, role FROM p_approvals",
        [],
        |r| {
            Ok(Fact::Approval {
                event_id: parse(&r.get::<_, String>(0)?)?,
                idx: r.get(1)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                action: r.get(4)?,
                staff_id: parse(&r.get::<_, String>(5)?)?,
                name: r.get(6)?,
                role: r.get(7)?,
            })
        },
    )
}

fn load_sale_drawer_opens(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, device_id, document_id, refund, how, opened_ms FROM p_sale_drawer_opens",
        [],
        |r| {
            Ok(Fact::SaleDrawerOpen {
                event_id: parse(&r.get::<_, String>(0)?)?,
                store: parse(&r.get::<_, String>(1)?)?,
                device: parse(&r.get::<_, String>(2)?)?,
                document: r.get(3)?,
                refund: r.get::<_, i64>(4)? == 1,
                how: r.get(5)?,
                opened_ms: r.get(6)?,
            })
        },
    )
}
