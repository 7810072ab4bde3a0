//! The SQL of escrow stock: per-product state (stock, outstanding quotas,
//! available), quota grants, stock alerts and the operator's decisions on them.
//!
//! Grants run on the single writer, in one transaction with their hub events,
//! so concurrent requests are serialized and the sum of outstanding quotas of
//! a product never exceeds its stock (asserted before every grant).

use std::collections::BTreeMap;

use super::db::{params, Conn, OptionalExtension, Params};
use caja_shared::digest::Hash256;
use caja_shared::escrow;
use caja_shared::ids::{DeviceId, GrantId, Sku, StoreId};
use caja_shared::kind::{EscrowGranted, EventBody};
use caja_shared::money::QtyMilli;

use super::device_request::{begin, record_answer, Begun};
use crate::audit::{self, AuditKind};
use crate::auth::Authentic;
use crate::escrow::{AlertDecision, ProductStock, QuotaRequest, StockAlert};
use crate::storage::audit_log::append_audit;
use crate::storage::codec::corrupt;
use crate::storage::codec::parse;
use crate::storage::error::Answer;
use crate::storage::error::StorageError;
use crate::storage::ingest::hub_chain::append_to_hub_chain;
use crate::storage::writer::Env;
use crate::wire::ApiError;

/// Sales of the last week count towards a register's share.
const VELOCITY_WINDOW_MS: i64 = 7 * 86_400_000;

fn sums_by_device(
    conn: &Conn,
    sql: &str,
    p: impl Params,
) -> Result<BTreeMap<DeviceId, i64>, StorageError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(p)?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let d: String = r.get(0)?;
        let n: Option<i64> = r.get(1)?;
        out.insert(parse(&d)?, n.unwrap_or(0));
    }
    Ok(out)
}

/// The policy of a product in a store's catalog (`None`: not in it).
fn policy(conn: &Conn, store: StoreId, product: &Sku) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached(conn.pick(
            "SELECT json_extract(body, '$.policy') FROM p_catalog WHERE store_id = $1 AND product = $2",
            "SELECT body::jsonb->>'policy' FROM p_catalog WHERE store_id = $1 AND product = $2",
        ))?
        .query_row(params![store.to_string(), product.as_str()], |r| r.get(0))
        .optional()?)
}

/// How a product is sold (`unit`, `weight`), from the store's catalog.
fn sold_by(conn: &Conn, store: StoreId, product: &Sku) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached(conn.pick(
            "SELECT json_extract(body, '$.sold_by') FROM p_catalog WHERE store_id = $1 AND product = $2",
            "SELECT body::jsonb->>'sold_by' FROM p_catalog WHERE store_id = $1 AND product = $2",
        ))?
        .query_row(params![store.to_string(), product.as_str()], |r| r.get(0))
        .optional()?)
}

/// Everything about one product of a store, from the set of applied events.
pub(crate) fn product_stock(
    conn: &Conn,
    store: StoreId,
    product: &Sku,
) -> Result<ProductStock, StorageError> {
    let (s, p) = (store.to_string(), product.as_str().to_owned());
    let stock: i64 = conn
        .prepare_cached("SELECT qty_milli FROM v_stock WHERE store_id = $1 AND product = $2")?
        .query_row(params![s, p], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let granted = sums_by_device(
        conn,
        "SELECT device_id, CAST(SUM(qty_milli) AS BIGINT) FROM p_escrow WHERE store_id = $1 AND product = $2 AND what = 'grant' GROUP BY device_id",
        params![s, p],
    )?;
    let released = sums_by_device(
        conn,
        "SELECT device_id, CAST(SUM(qty_milli) AS BIGINT) FROM p_escrow WHERE store_id = $1 AND product = $2 AND what = 'release' GROUP BY device_id",
        params![s, p],
    )?;
    let sold = sums_by_device(
        conn,
        conn.pick(
            "SELECT s.device_id, SUM(json_extract(l.value, '$[1]')) FROM p_sales s, json_each(s.lines) l
             WHERE s.store_id = $1 AND json_extract(l.value, '$[0]') = $2
               AND NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = s.store_id AND v.sale_id = s.sale_id)
             GROUP BY s.device_id",
            "SELECT s.device_id, CAST(SUM(CAST(l.value->>1 AS BIGINT)) AS BIGINT)
             FROM p_sales s CROSS JOIN LATERAL jsonb_array_elements(s.lines::jsonb) l
             WHERE s.store_id = $1 AND l.value->>0 = $2
               AND NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = s.store_id AND v.sale_id = s.sale_id)
             GROUP BY s.device_id",
        ),
        params![s, p],
    )?;
    let beyond = sums_by_device(
        conn,
        "SELECT o.device_id, CAST(SUM(o.beyond_milli) AS BIGINT) FROM p_oversells o
         WHERE o.store_id = $1 AND o.product = $2
           AND NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = o.store_id AND v.sale_id = o.sale_id)
         GROUP BY o.device_id",
        params![s, p],
    )?;
    let written_off: Vec<String> = conn
        .prepare_cached("SELECT device_id FROM write_offs")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut outstanding = Vec::new();
    for (device, g) in &granted {
        if written_off.contains(&device.to_string()) {
            continue;
        }
        let in_quota =
            sold.get(device).copied().unwrap_or(0) - beyond.get(device).copied().unwrap_or(0);
        let o = escrow::outstanding(*g, released.get(device).copied().unwrap_or(0), in_quota);
        if o > 0 {
            outstanding.push((*device, o));
        }
    }
    let total: i64 = outstanding.iter().map(|(_, q)| q).sum();
    Ok(ProductStock {
        store,
        product: product.clone(),
        policy: policy(conn, store, product)?.unwrap_or_else(|| "block".into()),
        stock_milli: stock,
        available_milli: escrow::available(stock, total),
        outstanding,
    })
}

/// Every product of a store's catalog with stock or quota.
pub(crate) fn store_stock(conn: &Conn, store: StoreId) -> Result<Vec<ProductStock>, StorageError> {
    let products: Vec<String> = conn
        .prepare_cached(
            "SELECT product FROM p_catalog WHERE store_id = $1
             UNION SELECT product FROM v_stock WHERE store_id = $1 ORDER BY 1",
        )?
        .query_map([store.to_string()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    products
        .iter()
        .map(|p| product_stock(conn, store, &parse(p)?))
        .collect()
}

/// `POST /v1/escrow/grants`: authentication, body, request id, then a quota
/// per product of what is available (shared by sales velocity). Answers the
/// appended hub events (none when nothing is available).
pub(crate) fn grant_quota(
    conn: &Conn,
    env: &mut Env,
    req: &Authentic,
    parsed: Result<(QuotaRequest, Hash256), ApiError>,
    ttl_ms: i64,
) -> Result<Answer<Vec<Vec<u8>>>, StorageError> {
    let Begun {
        who,
        request,
        body_hash,
        request_id: rid,
    } = match begin(
        conn,
        env,
        req,
        parsed,
        "escrow_grants",
        QuotaRequest::check,
        |r| r.request_id.to_string(),
    )? {
        Ok(b) => b,
        Err(answer) => return Ok(answer),
    };
    // After a restore, no grant before the store's registers have returned
    // what they hold (DESIGN "Hub restore").
    if let Some(pending) = crate::storage::restore::gate(conn, who.store)? {
        return Ok(Err(pending));
    }
    for (i, it) in request.items.iter().enumerate() {
        match policy(conn, who.store, &it.product)?.as_deref() {
            None => {
                return Ok(Err(ApiError::invalid(
                    format!("items[{i}].product"),
                    format!("{} is not in this store's catalog", it.product),
                )))
            }
            Some("untracked") => {
                return Ok(Err(ApiError::invalid(
                    format!("items[{i}].product"),
                    format!("{} is not stock-tracked", it.product),
                )))
            }
            Some(_) => {}
        }
    }
    let now = env.now_ms();
    // The registers that share the stock: those of the store that asked for
    // or held quota (a back-office register that never sells from quota does
    // not count), and the one asking.
    let registers: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM devices d WHERE d.store_id = $1 AND d.revoked_at_ms IS NULL
               AND (d.device_id = $2
                    OR EXISTS (SELECT 1 FROM p_escrow e
                        WHERE e.device_id = d.device_id AND e.store_id = d.store_id AND e.what = 'grant')
                    OR EXISTS (SELECT 1 FROM device_requests q
                        WHERE q.device_id = d.device_id AND q.endpoint = 'escrow_grants'))",
        )?
        .query_row(params![who.store.to_string(), who.device.to_string()], |r| r.get(0))?;
    let mut bodies = Vec::new();
    for it in &request.items {
        let state = product_stock(conn, who.store, &it.product)?;
        let recent = sums_by_device(
            conn,
            conn.pick(
                "SELECT s.device_id, SUM(json_extract(l.value, '$[1]'))
                 FROM p_sales s JOIN events e ON e.event_id = s.event_id, json_each(s.lines) l
                 WHERE s.store_id = $1 AND json_extract(l.value, '$[0]') = $2 AND e.hlc_ms >= $3
                 GROUP BY s.device_id",
                "SELECT s.device_id, CAST(SUM(CAST(l.value->>1 AS BIGINT)) AS BIGINT)
                 FROM p_sales s JOIN events e ON e.event_id = s.event_id
                 CROSS JOIN LATERAL jsonb_array_elements(s.lines::jsonb) l
                 WHERE s.store_id = $1 AND l.value->>0 = $2 AND e.hlc_ms >= $3
                 GROUP BY s.device_id",
            ),
            params![
                who.store.to_string(),
                it.product.as_str(),
                now - VELOCITY_WINDOW_MS
            ],
        )?;
        let store_recent: i64 = recent.values().sum();
        let g = escrow::grant_amount(
            it.qty_milli,
            state.available_milli,
            recent.get(&who.device).copied().unwrap_or(0),
            store_recent,
            u32::try_from(registers.max(1)).unwrap_or(1),
        );
        // Items sold by the piece get whole pieces.
        let g = if sold_by(conn, who.store, &it.product)?.as_deref() == Some("unit") {
            escrow::whole_units(g, state.available_milli)
        } else {
            g
        };
        // DESIGN invariant 3: what is promised never exceeds the stock.
        assert!(
            state.outstanding_total() + g <= state.stock_milli.max(0) || g == 0,
            "escrow grant of {g} would promise more than the stock of {}",
            it.product
        );
        if g == 0 {
            continue;
        }
        let mut rng = &mut *env.rng;
        let grant_id =
            GrantId::new_v7(now, &mut rng).map_err(|e| corrupt(format!("grant id: {e}")))?;
        bodies.push(EventBody::EscrowGranted(EscrowGranted {
            grant_id,
            device: who.device,
            request_id: Some(request.request_id),
            product: it.product.clone(),
            qty_milli: QtyMilli(g),
            expires_ms: now.saturating_add(ttl_ms),
        }));
    }
    let events = if bodies.is_empty() {
        Vec::new()
    } else {
        append_to_hub_chain(conn, env, who.store, &bodies)?
    };
    for body in &bodies {
        if let EventBody::EscrowGranted(g) = body {
            append_audit(
                conn,
                &mut env.tx,
                AuditKind::EscrowGranted,
                now,
                Some(who.store),
                audit::data([
                    ("grant_id", audit::s(g.grant_id)),
                    ("device", audit::s(g.device)),
                    ("request_id", audit::s(&rid)),
                    ("product", audit::s(&g.product)),
                    ("qty_milli", audit::n(g.qty_milli.0)),
                    ("expires_ms", audit::n(g.expires_ms)),
                ]),
            )?;
            tracing::info!(device = %g.device, product = %g.product, qty_milli = g.qty_milli.0, "escrow quota granted");
        }
    }
    let bytes: Vec<Vec<u8>> = events
        .iter()
        .map(|e| e.canonical_bytes().to_vec())
        .collect();
    crate::crashpoint::hit("hub:escrow_granted");
    record_answer(
        conn,
        who.device,
        &rid,
        "escrow_grants",
        body_hash,
        &bytes,
        now,
    )?;
    Ok(Ok(bytes))
}

fn decision(conn: &Conn, key: &str) -> Result<Option<(String, String, String)>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT state, by_whom, note FROM stock_alert_acks WHERE alert_key = $1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

/// Every stock alert, derived from the applied events: one per line sold
/// beyond a quota, one per product whose stock is negative now; with the
/// operator's decision, if any.
pub(crate) fn alerts(conn: &Conn) -> Result<Vec<StockAlert>, StorageError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT event_id, line, store_id, device_id, product, beyond_milli FROM p_oversells ORDER BY event_id, line",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let key = format!(
            "oversell:{}:{}",
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?
        );
        let d = decision(conn, &key)?;
        out.push(StockAlert {
            kind: "oversell",
            store: parse(&r.get::<_, String>(2)?)?,
            product: parse(&r.get::<_, String>(4)?)?,
            registers: vec![parse(&r.get::<_, String>(3)?)?],
            amount_milli: r.get(5)?,
            state: d.as_ref().map_or("open".into(), |x| x.0.clone()),
            by: d.as_ref().map(|x| x.1.clone()),
            note: d.map(|x| x.2),
            key,
        });
    }
    let negative: Vec<(String, String, i64)> = conn
        .prepare_cached("SELECT store_id, product, qty_milli FROM v_stock WHERE qty_milli < 0 ORDER BY store_id, product")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (store, product, qty) in negative {
        let sellers = sums_by_device(
            conn,
            conn.pick(
                "SELECT s.device_id, COUNT(*) FROM p_sales s, json_each(s.lines) l
                 WHERE s.store_id = $1 AND json_extract(l.value, '$[0]') = $2 GROUP BY s.device_id",
                "SELECT s.device_id, COUNT(*) FROM p_sales s
                 CROSS JOIN LATERAL jsonb_array_elements(s.lines::jsonb) l
                 WHERE s.store_id = $1 AND l.value->>0 = $2 GROUP BY s.device_id",
            ),
            params![store, product],
        )?;
        let key = format!("negative:{store}:{product}");
        let d = decision(conn, &key)?;
        out.push(StockAlert {
            kind: "negative_stock",
            store: parse(&store)?,
            product: parse(&product)?,
            registers: sellers.into_keys().collect(),
            amount_milli: -qty,
            state: d.as_ref().map_or("open".into(), |x| x.0.clone()),
            by: d.as_ref().map(|x| x.1.clone()),
            note: d.map(|x| x.2),
            key,
        });
    }
    Ok(out)
}

/// Admin: an operator acknowledges or resolves a stock alert (audited). The
/// alert must exist now; a resolved alert is not reopened by acknowledging.
pub(crate) fn decide(
    conn: &Conn,
    env: &mut Env,
    d: &AlertDecision,
) -> Result<Answer<StockAlert>, StorageError> {
    if let Err(e) = d.check() {
        return Ok(Err(e));
    }
    let Some(mut alert) = alerts(conn)?.into_iter().find(|a| a.key == d.key) else {
        return Ok(Err(ApiError::not_found(format!(
            "no stock alert {}",
            d.key
        ))));
    };
    if alert.state == "resolved" && d.state == "acknowledged" {
        return Ok(Err(ApiError::new(
            409,
            "already_resolved",
            "this alert is resolved",
        )));
    }
    let now = env.now_ms();
    conn.execute(
        "INSERT INTO stock_alert_acks (alert_key, state, by_whom, note, at_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (alert_key) DO UPDATE SET state = excluded.state, by_whom = excluded.by_whom,
            note = excluded.note, at_ms = excluded.at_ms",
        params![d.key, d.state, d.by, d.note, now],
    )?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::StockAlertDecided,
        now,
        Some(alert.store),
        audit::data([
            ("key", audit::s(&d.key)),
            ("state", audit::s(&d.state)),
            ("by", audit::s(&d.by)),
            ("note", audit::s(&d.note)),
        ]),
    )?;
    alert.state = d.state.clone();
    alert.by = Some(d.by.clone());
    alert.note = Some(d.note.clone());
    Ok(Ok(alert))
}
