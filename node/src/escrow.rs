//! Stock quotas (escrow) at the register: what it may sell of each product
//! without asking anyone, kept in `escrow_quota` and changed in the same
//! transaction as the sale, void, grant import or release that changes it.
//!
//! A line of a tracked product is split against the quota left
//! (`caja_shared::escrow::split`): under `block` a line beyond it is refused
//! with the product and what is left; under `warn` it is sold and the part
//! beyond is recorded in the line (`beyond_quota_milli`), which the hub turns
//! into an oversell alert. `untracked` products need no quota. A quota is
//! usable until its latest grant expires (by the register's clock).

use caja_shared::escrow;
use caja_shared::ids::{DeviceId, GrantId, RequestId};
use caja_shared::kind::{EscrowGranted, EscrowReleased, SaleCreated};
use caja_shared::money::QtyMilli;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Most products in one quota request (the hub's limit).
pub const MAX_ITEMS: usize = 100;

/// Why a sale does not fit the quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaShort {
    /// The product.
    pub product: String,
    /// Its name.
    pub name: String,
    /// What is left of the quota.
    pub left_milli: i64,
    /// What the sale asks for.
    pub wanted_milli: i64,
}

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
        .map_or(0, |(l, exp)| if exp > now_ms { l } else { 0 }))
}

/// Splits each tracked line of `sale` against the quotas: refuses (`Err`) a
/// `block` line beyond its quota, flags a `warn` line's excess in
/// `beyond_quota_milli`, and takes the in-quota parts from the quotas.
pub fn take(
    conn: &Connection,
    sale: &mut SaleCreated,
    now_ms: i64,
) -> rusqlite::Result<Result<(), QuotaShort>> {
    // Lines of one product draw on one quota, in line order.
    let mut used: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for line in &mut sale.lines {
        let sku = line.product.as_str().to_owned();
        let pol = policy(conn, &sku)?;
        if pol == "untracked" {
            continue;
        }
        let already = used.get(&sku).copied().unwrap_or(0);
        let avail = left(conn, &sku, now_ms)? - already;
        let sp = escrow::split(line.qty_milli.0, avail);
        if sp.beyond > 0 {
            if pol == "warn" {
                line.beyond_quota_milli = Some(QtyMilli(sp.beyond));
            } else {
                return Ok(Err(QuotaShort {
                    product: sku,
                    name: line.name.clone(),
                    left_milli: avail.max(0),
                    wanted_milli: line.qty_milli.0,
                }));
            }
        }
        *used.entry(sku).or_default() += sp.in_quota;
    }
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
        let in_quota = line.qty_milli.0 - line.beyond_quota_milli.map_or(0, |b| b.0);
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
    if g.device != me {
        return Ok(false);
    }
    let Some(req) = g.request_id else {
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
        let (sku, l, exp, asked) = row?;
        let l = match (l, exp) {
            (Some(l), Some(e)) if e > now_ms => l,
            _ => 0,
        };
        if l >= low {
            continue;
        }
        if asked.is_some_and(|a| now_ms.saturating_sub(a) < quiet_ms) {
            continue;
        }
        out.push((sku, target - l));
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
    let mut list = Vec::new();
    for (sku, q) in items {
        let mut o = caja_shared::canonical::Object::new();
        o.insert(
            "product".into(),
            caja_shared::canonical::Value::String(sku.clone()),
        );
        o.insert("qty_milli".into(), caja_shared::canonical::Value::Int(*q));
        list.push(caja_shared::canonical::Value::Object(o));
    }
    let mut body = caja_shared::canonical::Object::new();
    body.insert("items".into(), caja_shared::canonical::Value::Array(list));
    body.insert(
        "request_id".into(),
        caja_shared::canonical::Value::String(id.to_string()),
    );
    let body = caja_shared::canonical::Value::Object(body).to_canonical_string();
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
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        for it in v["items"].as_array().into_iter().flatten() {
            if let Some(p) = it["product"].as_str() {
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
        }
    }
    Ok(())
}

/// One product's quota, for the status and the Z report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaLeft {
    /// Product.
    pub product: String,
    /// Quota left (0 once expired).
    pub left_milli: i64,
    /// When it lapses.
    pub expires_ms: i64,
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
            if q.expires_ms <= now_ms {
                q.left_milli = 0;
            }
            q
        })
    })
    .collect()
}
