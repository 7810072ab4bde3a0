//! The catalog family: `p_catalog` (an item per store and product) and
//! `p_prices` (the price in force), both written by the hub (`server_wins`
//! on the hub chain's seq), and `p_price_history` (every price change, for
//! the `stale_price` rule).
//!
//! Invariant: the only module that writes or decodes these rows; statements
//! name their columns.

use super::table::{rows, Family, Table};
use crate::projection::Fact;
use crate::storage::codec::{corrupt, hlc_opt, i, parse, u};
use crate::storage::db::{params, Conn, Row};
use crate::storage::error::StorageError;

/// The family's tables.
pub(crate) const FAMILY: Family = Family {
    tables: &[
        Table {
            name: "p_catalog",
            load: Some(load_catalog),
        },
        Table {
            name: "p_prices",
            load: Some(load_prices),
        },
        Table {
            name: "p_price_history",
            load: Some(load_history),
        },
    ],
};

/// Writes a catalog item or a price (unless the row holds a later hub
/// event), or a price change's history row.
pub(crate) fn write(conn: &Conn, f: &Fact) -> Result<(), StorageError> {
    match f {
        Fact::CatalogItem {
            store,
            product,
            event_id,
            hub_seq,
            body,
        } => conn
            .prepare_cached(
                "INSERT INTO p_catalog (store_id, product, event_id, hub_seq, body) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (store_id, product) DO UPDATE SET event_id = excluded.event_id,
                   hub_seq = excluded.hub_seq, body = excluded.body
                 WHERE excluded.hub_seq > p_catalog.hub_seq",
            )?
            .execute(params![store.to_string(), product.as_str(), event_id.to_string(), i(*hub_seq), body])?,
        Fact::Price {
            store,
            product,
            event_id,
            hub_seq,
            unit_price,
        } => conn
            .prepare_cached(
                "INSERT INTO p_prices (store_id, product, event_id, hub_seq, unit_price) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (store_id, product) DO UPDATE SET event_id = excluded.event_id,
                   hub_seq = excluded.hub_seq, unit_price = excluded.unit_price
                 WHERE excluded.hub_seq > p_prices.hub_seq",
            )?
            .execute(params![store.to_string(), product.as_str(), event_id.to_string(), i(*hub_seq), unit_price])?,
        Fact::PriceHistory {
            event_id,
            store,
            product,
            hub_seq,
            hlc,
            unit_price,
        } => conn
            .prepare_cached(
                "INSERT INTO p_price_history (event_id, store_id, product, hub_seq, hlc_ms, hlc_n, unit_price)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                product.as_str(),
                i(*hub_seq),
                hlc.ms(),
                i64::from(hlc.n()),
                unit_price
            ])?,
        _ => return Err(corrupt("not a catalog fact")),
    };
    Ok(())
}

/// Decodes `event_id, store_id, product, hub_seq, hlc_ms, hlc_n, unit_price`.
fn price_history_from_row(r: &Row) -> Result<Fact, StorageError> {
    Ok(Fact::PriceHistory {
        event_id: parse(&r.get::<_, String>(0)?)?,
        store: parse(&r.get::<_, String>(1)?)?,
        product: parse(&r.get::<_, String>(2)?)?,
        hub_seq: u(r.get(3)?),
        hlc: hlc_opt(r.get(4)?, r.get(5)?)?.ok_or_else(|| corrupt("price history hlc"))?,
        unit_price: r.get(6)?,
    })
}

fn load_catalog(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT store_id, product, event_id, hub_seq, body FROM p_catalog",
        [],
        |r| {
            Ok(Fact::CatalogItem {
                store: parse(&r.get::<_, String>(0)?)?,
                product: parse(&r.get::<_, String>(1)?)?,
                event_id: parse(&r.get::<_, String>(2)?)?,
                hub_seq: u(r.get(3)?),
                body: r.get(4)?,
            })
        },
    )
}

fn load_prices(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT store_id, product, event_id, hub_seq, unit_price FROM p_prices",
        [],
        |r| {
            Ok(Fact::Price {
                store: parse(&r.get::<_, String>(0)?)?,
                product: parse(&r.get::<_, String>(1)?)?,
                event_id: parse(&r.get::<_, String>(2)?)?,
                hub_seq: u(r.get(3)?),
                unit_price: r.get(4)?,
            })
        },
    )
}

fn load_history(conn: &Conn) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, product, hub_seq, hlc_ms, hlc_n, unit_price FROM p_price_history",
        [],
        price_history_from_row,
    )
}

/// The price history of one product in one store.
pub(crate) fn price_history(
    conn: &Conn,
    store: &str,
    product: &str,
) -> Result<Vec<Fact>, StorageError> {
    rows(
        conn,
        "SELECT event_id, store_id, product, hub_seq, hlc_ms, hlc_n, unit_price FROM p_price_history
         WHERE store_id = $1 AND product = $2",
        params![store, product],
        price_history_from_row,
    )
}
