//! The quota tables: `escrow_quota` (taken by a sale, given back by a void,
//! added by an imported grant, emptied by a release or a restore) and the
//! register's own `escrow_requests` (recorded before sending, retried with the
//! same id and body).
//!
//! Invariant: loads and stores only; what a row means is decided in `rules`.
//! Every change is made in the caller's transaction.

use std::collections::BTreeMap;

use caja_shared::ids::{DeviceId, GrantId, RequestId};
use caja_shared::kind::{EscrowGranted, EscrowReleased, SaleCreated};
use caja_shared::money::QtyMilli;
use rusqlite::{params, Connection, OptionalExtension};

use super::rules::{self, Quota, QuotaLeft, QuotaShort, Stock};

/// The policy of a product in the register's catalog.
fn policy(conn: &Connection, sku: &str) -> rusqlite::Result<String> {
    Ok(conn
        .prepare_cached("SELECT policy FROM catalog_items WHERE sku = ?1")?
        .query_row([sku], |r| r.get(0))
        .optional()?
        .unwrap_or_else(|| "block".into()))
}

/// The quota left of a product now (0 once its latest grant expired).
pub fn left(conn: &Connection, sku: &str, now_ms: i64) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached("SELECT left_milli, expires_ms FROM escrow_quota WHERE product = ?1")?
        .query_row([sku], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
        .map_or(0, |(l, exp)| rules::usable(l, exp, now_ms)))
}

/// Splits each tracked line of `sale` against the quotas: refuses (`Err`) a
/// `block` line beyond its quota, flags a `warn` line's excess in
/// `beyond_quota_milli`, and takes the in-quota parts from the quotas.
pub fn take(
    conn: &Connection,
    sale: &mut SaleCreated,
    now_ms: i64,
) -> rusqlite::Result<Result<(), QuotaShort>> {
    let mut quotas: BTreeMap<String, Quota> = BTreeMap::new();
    for line in &sale.lines {
        let sku = line.product.as_str();
        if quotas.contains_key(sku) {
            continue;
        }
        let policy = policy(conn, sku)?;
        let left_milli = if policy == "untracked" {
            0
        } else {
            left(conn, sku, now_ms)?
        };
        quotas.insert(sku.to_owned(), Quota { policy, left_milli });
    }
    let used = match rules::split_sale(sale, &quotas) {
        Ok(used) => used,
        Err(short) => return Ok(Err(short)),
    };
    for (sku, q) in used {
        if q > 0 {
            // Selling is new demand: the product may be asked for again at
            // once (see `wanted`).
            conn.execute(
                "UPDATE escrow_quota SET left_milli = left_milli - ?2, asked_ms = NULL WHERE product = ?1",
                params![sku, q],
            )?;
        }
    }
    Ok(Ok(()))
}

/// A void of this register's own sale gives its in-quota parts back.
pub fn give_back(conn: &Connection, sale: &SaleCreated) -> rusqlite::Result<()> {
    for line in &sale.lines {
        let in_quota = rules::in_quota(line);
        if in_quota > 0 {
            conn.execute(
                "UPDATE escrow_quota SET left_milli = left_milli + ?2 WHERE product = ?1",
                params![line.product.as_str(), in_quota],
            )?;
        }
    }
    Ok(())
}

/// Imports a grant from the hub chain: counted only if it is for this device
/// and answers a request this database made since its last restore.
pub fn on_grant(conn: &Connection, me: DeviceId, g: &EscrowGranted) -> rusqlite::Result<bool> {
    let Some(req) = rules::grant_request(me, g) else {
        return Ok(false);
    };
    let ours = conn
        .prepare_cached("SELECT 1 FROM escrow_requests WHERE request_id = ?1 AND state != 'stale'")?
        .exists([req.to_string()])?;
    if !ours {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO escrow_quota (product, left_milli, expires_ms, last_grant) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (product) DO UPDATE SET left_milli = left_milli + excluded.left_milli,
            expires_ms = max(expires_ms, excluded.expires_ms), last_grant = excluded.last_grant",
        params![g.product.as_str(), g.qty_milli.0, g.expires_ms, g.grant_id.to_string()],
    )?;
    Ok(true)
}

/// What to give back: every quota left (at shift close, or on request).
pub fn to_release(conn: &Connection) -> rusqlite::Result<Vec<EscrowReleased>> {
    let mut stmt = conn.prepare_cached(
        "SELECT product, left_milli, last_grant FROM escrow_quota WHERE left_milli > 0 ORDER BY product",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (product, qty, grant) = row?;
        let (Ok(product), Ok(grant_id)) = (product.parse(), grant.parse::<GrantId>()) else {
            continue;
        };
        out.push(EscrowReleased {
            grant_id,
            product,
            qty_milli: QtyMilli(qty),
        });
    }
    Ok(out)
}

/// After appending a release: the quota is 0.
pub fn released(conn: &Connection, r: &EscrowReleased) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE escrow_quota SET left_milli = max(0, left_milli - ?2), asked_ms = NULL WHERE product = ?1",
        params![r.product.as_str(), r.qty_milli.0],
    )?;
    Ok(())
}

/// After a restore: nothing held before is usable (a lost copy may have sold
/// it), and earlier requests are stale.
pub fn forget_after_restore(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE escrow_quota SET left_milli = 0, asked_ms = NULL",
        [],
    )?;
    conn.execute(
        "UPDATE escrow_requests SET state = 'stale' WHERE state != 'stale'",
        [],
    )?;
    Ok(())
}

/// Whether a quota request is still active (sent, not yet answered).
pub fn request_pending(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM escrow_requests WHERE state = 'active')",
        [],
        |r| r.get(0),
    )
}

/// The tracked products whose quota is below `low` (what to ask for), with
/// how much to ask: up to `target`. Products asked for within `quiet_ms`
/// are skipped unless the register sold from their quota or released it
/// since (which clears the mark): a grant smaller than asked was this
/// register's share of what the hub had, and asking again at once would
/// only get a smaller share of the rest. (Found by the simulation, seed
/// 5038 with five registers: idle registers asked every round and the hub
/// granted ever smaller parts of a weighed product's stock, down to single
/// grams, each a hub event every register pulled.)
pub fn wanted(
    conn: &Connection,
    low: i64,
    target: i64,
    now_ms: i64,
    quiet_ms: i64,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.sku, q.left_milli, q.expires_ms, q.asked_ms FROM catalog_items c
         LEFT JOIN escrow_quota q ON q.product = c.sku
         WHERE c.policy != 'untracked' ORDER BY c.sku",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (sku, left_milli, expires_ms, asked_ms) = row?;
        let stock = Stock {
            sku,
            left_milli,
            expires_ms,
            asked_ms,
        };
        out.extend(rules::want(stock, low, target, now_ms, quiet_ms));
    }
    Ok(out)
}

/// The request to send for `items`: an unanswered one first (same id, same
/// body), else a new one recorded before it is sent.
pub fn request_for(
    conn: &Connection,
    items: &[(String, i64)],
    now_ms: i64,
    rng: &mut impl caja_shared::entropy::RandomSource,
) -> rusqlite::Result<(RequestId, String)> {
    let pending: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT request_id, body FROM escrow_requests WHERE state = 'active' ORDER BY made_ms LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((id, body)) = pending {
        if let Ok(id) = id.parse() {
            return Ok((id, body));
        }
    }
    let id = RequestId::new_v7(now_ms, rng).map_err(|e| {
        rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(e.to_string())))
    })?;
    let body = rules::request_body(id, items);
    conn.execute(
        "INSERT INTO escrow_requests (request_id, body, made_ms, state) VALUES (?1, ?2, ?3, 'active')",
        params![id.to_string(), body, now_ms],
    )?;
    Ok((id, body))
}

/// After the hub answered a request: it is done, and its products were asked.
pub fn answered(conn: &Connection, id: RequestId, body: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE escrow_requests SET state = 'answered' WHERE request_id = ?1",
        [id.to_string()],
    )?;
    for p in rules::asked_products(body) {
        conn.execute(
            "UPDATE escrow_quota SET asked_ms = ?2 WHERE product = ?1",
            params![p, now_ms],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO escrow_quota (product, left_milli, expires_ms, last_grant, asked_ms)
             VALUES (?1, 0, 0, '00000000-0000-0000-0000-000000000000', ?2)",
            params![p, now_ms],
        )?;
    }
    Ok(())
}

/// Every quota this register holds.
pub fn status(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<QuotaLeft>> {
    let mut stmt = conn.prepare_cached(
        "SELECT product, left_milli, expires_ms FROM escrow_quota WHERE expires_ms > 0 ORDER BY product",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(QuotaLeft {
            product: r.get(0)?,
            left_milli: r.get(1)?,
            expires_ms: r.get(2)?,
        })
    })?;
    rows.map(|q| {
        q.map(|mut q| {
            q.left_milli = rules::usable(q.left_milli, q.expires_ms, now_ms);
            q
        })
    })
    .collect()
}
