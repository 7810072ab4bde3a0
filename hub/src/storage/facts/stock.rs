//! The stock family: `p_stock_moves` (a quantity in or out), `p_escrow`
//! (stock quotas granted to and released by registers) and `p_oversells`
//! (a sale line beyond its register's quota).
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
            name: "p_stock_moves",
            load: Some(load_moves),
        },
        Table {
            name: "p_escrow",
            load: Some(load_escrow),
        },
        Table {
            name: "p_oversells",
            load: Some(load_oversells),
        },
    ],
};

/// Writes a stock move, a quota grant or release, or an oversell.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    match f {
        Fact::StockMove {
            event_id,
            store,
            product,
            delta_milli,
        } => multirow::insert_later(conn, "INSERT INTO p_stock_moves (event_id, store_id, product, delta_milli)", params![event_id.to_string(), store.to_string(), product.as_str(), delta_milli])?,
        Fact::Escrow {
            event_id,
            release,
            grant_id,
            store,
            device,
            product,
            qty_milli,
            expires_ms,
        } => multirow::insert_later(conn, "INSERT INTO p_escrow (event_id, what, grant_id, store_id, device_id, product, qty_milli, expires_ms)", params![
                event_id.to_string(),
                if *release { "release" } else { "grant" },
                grant_id.to_string(),
                store.to_string(),
                device.to_string(),
                product.as_str(),
                qty_milli,
                expires_ms
            ])?,
        Fact::Oversell {
            event_id,
            line,
            store,
            device,
            sale_id,
            product,
            beyond_milli,
        } => multirow::insert_later(conn, "INSERT INTO p_oversells (event_id, line, store_id, device_id, sale_id, product, beyond_milli)", params![
                event_id.to_string(),
                line,
                store.to_string(),
                device.to_string(),
                sale_id.to_string(),
                product.as_str(),
                beyond_milli
            ])?,
        _ => return Err(corrupt("not a stock fact")),
    };
    Ok(())
}

fn load_moves(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, product, delta_milli FROM p_stock_moves",
        [],
        |r| {
            Ok(Fact::StockMove {
                event_id: parse(&r.get::<_, String>(0)?)?,
                store: parse(&r.get::<_, String>(1)?)?,
                product: parse(&r.get::<_, String>(2)?)?,
                delta_milli: r.get(3)?,
            })
        },
    )
}

fn load_escrow(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, what, grant_id, store_id, device_id, product, qty_milli, expires_ms FROM p_escrow",
        [],
        |r| {
            let what: String = r.get(1)?;
            Ok(Fact::Escrow {
                event_id: parse(&r.get::<_, String>(0)?)?,
                release: what == "release",
                grant_id: parse(&r.get::<_, String>(2)?)?,
                store: parse(&r.get::<_, String>(3)?)?,
                device: parse(&r.get::<_, String>(4)?)?,
                product: parse(&r.get::<_, String>(5)?)?,
                qty_milli: r.get(6)?,
                expires_ms: r.get(7)?,
            })
        },
    )
}

fn load_oversells(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, line, store_id, device_id, sale_id, product, beyond_milli FROM p_oversells",
        [],
        |r| {
            Ok(Fact::Oversell {
                event_id: parse(&r.get::<_, String>(0)?)?,
                line: r.get(1)?,
                store: parse(&r.get::<_, String>(2)?)?,
                device: parse(&r.get::<_, String>(3)?)?,
                sale_id: parse(&r.get::<_, String>(4)?)?,
                product: parse(&r.get::<_, String>(5)?)?,
                beyond_milli: r.get(6)?,
            })
        },
    )
}
