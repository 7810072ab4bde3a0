//! The checker: DESIGN.md's invariants held against the world, cheaply at
//! every step and in full once the liveness phase converged. It uses the
//! project's own verifiers (journal verify, chain verifier, audit export and
//! verify, projection digests and rebuilds, fiscal accounting) rather than
//! re-implementing them; what it adds is the record of what the cashiers
//! were told, kept outside the nodes.

use std::collections::{BTreeSet, HashMap};

use caja_hub::projection::{EventMeta, Origin, Projections};
use caja_hub::storage::db::OptionalExtension;
use caja_hub::storage::{Conn, DbError};
use caja_node::journal::Journal;
use caja_shared::chain::{ChainHead, ChainVerifier};
use caja_shared::digest::Hash256;
use caja_shared::entropy::RandomSource;
use caja_shared::event::Event;
use caja_shared::ids::{DeviceId, EventId};

use super::net::lock;
use super::world::{World, SERIES};
use super::SimError;

fn fail(msg: impl Into<String>) -> SimError {
    SimError(msg.into())
}

/// A register's database error.
fn sql(e: rusqlite::Error) -> SimError {
    SimError(format!("register db: {e}"))
}

/// The hub's database error (either dialect).
fn db(e: DbError) -> SimError {
    SimError(format!("hub db: {e}"))
}

/// Cheap checks after every step: every open register's journal is sound
/// at its head (the hub never acknowledged beyond it), and no fiscal number
/// was printed twice on what the cashiers were told.
pub fn every_step(w: &mut World) -> Result<(), SimError> {
    for r in &w.regs {
        if let Some(ops) = &r.ops {
            let head = Journal::head(ops.conn()).map_err(|e| fail(format!("{}: {e}", r.name)))?;
            let acked = Journal::acked_seq(ops.conn()).map_err(|e| fail(e.to_string()))?;
            w.checks += 1;
            if acked > head.seq {
                return Err(fail(format!(
                    "{}: hub acknowledged seq {acked} beyond the head {}",
                    r.name, head.seq
                )));
            }
        }
    }
    fiscal_numbers_unique(w)
}

/// Invariant 2 on what was printed: no fiscal number on two acknowledged
/// sales, including sales lost with a machine (their paper exists).
fn fiscal_numbers_unique(w: &mut World) -> Result<(), SimError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, a) in w.acked.iter().enumerate() {
        if let Some(n) = &a.fiscal {
            if let Some(j) = seen.insert(n.as_str(), i) {
                let b = &w.acked[j];
                return Err(fail(format!(
                    "invariant 2: fiscal number {n} printed twice (r{} step {}, r{} step {})",
                    b.reg, b.step, a.reg, a.step
                )));
            }
        }
    }
    w.checks += 1;
    Ok(())
}

/// Periodic checks against the hub (when it is up): fiscal accounting,
/// stock under `block`, alerts for every negative.
pub fn periodic(w: &mut World) -> Result<(), SimError> {
    if !lock(&w.net).hub.is_up() {
        return Ok(());
    }
    fiscal_report(w, false)?;
    stock(w)
}

/// The hub's fiscal report: every number accounted once (totals add up to
/// the series size), no duplicate, no anomaly; at the end, every
/// acknowledged sale is there, and the numbers of sales lost with a machine
/// are never free to be granted again.
fn fiscal_report(w: &mut World, complete: bool) -> Result<(), SimError> {
    for series in std::iter::once(SERIES).chain(super::ecf::ECF_SERIES) {
        series_report(w, series, complete)?;
    }
    Ok(())
}

/// [`fiscal_report`] for one series.
fn series_report(w: &mut World, series: &str, complete: bool) -> Result<(), SimError> {
    let v = lock(&w.net).hub.admin(
        "GET",
        &format!("/v1/admin/fiscal/report?series={series}"),
        None,
    )?;
    let r = &v["reports"][0];
    let size = r["size"].as_u64().unwrap_or(0);
    let total: u64 = r["totals"].as_object().map_or(0, |o| {
        o.values().filter_map(serde_json::Value::as_u64).sum()
    });
    w.checks += 1;
    if size == 0 || total != size {
        return Err(fail(format!(
            "invariant 2: fiscal totals {total} do not add up to the series size {size}: {}",
            r["totals"]
        )));
    }
    if r["duplicates"].as_u64() != Some(0) {
        return Err(fail(format!(
            "invariant 2: the hub counts {} duplicate fiscal numbers",
            r["duplicates"]
        )));
    }
    if r["anomalies"].as_array().is_some_and(|a| !a.is_empty()) {
        return Err(fail(format!("fiscal anomalies: {}", r["anomalies"])));
    }
    if !complete {
        return Ok(());
    }
    // Runs in order: (first, last, status, sale ids).
    let mut runs: Vec<(u64, u64, String, Vec<String>)> = Vec::new();
    for run in r["runs"].as_array().into_iter().flatten() {
        let sales: Vec<String> = run["sales"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["sale"].as_str().map(str::to_owned))
            .collect();
        runs.push((
            number_of(series, run["first"].as_str().unwrap_or("")),
            number_of(series, run["last"].as_str().unwrap_or("")),
            run["status"].as_str().unwrap_or("").to_owned(),
            sales,
        ));
    }
    runs.sort_by_key(|r| r.0);
    let status = |n: u64| {
        let i = runs.partition_point(|r| r.1 < n);
        runs.get(i)
            .filter(|r| r.0 <= n)
            .map(|r| (r.2.clone(), r.3.clone()))
    };
    for a in &w.acked {
        let (Some(number), Some(sale)) = (&a.fiscal, a.sale) else {
            continue;
        };
        if !number.starts_with(series) {
            continue;
        }
        let n = number_of(series, number);
        let Some((st, sales)) = status(n) else {
            return Err(fail(format!(
                "fiscal number {number} is outside the report"
            )));
        };
        w.checks += 1;
        if a.lost {
            if st == "never_allocated" || st == "released_unused" {
                return Err(fail(format!(
                    "invariant 2: {number}, printed by r{} on a machine since lost, is {st} at the hub and could be issued again",
                    a.reg
                )));
            }
        } else if !sales.contains(&sale.to_string()) || !(st == "used" || st == "voided") {
            return Err(fail(format!(
                "fiscal number {number} of acknowledged sale {sale} (r{}) is {st} at the hub with sales {sales:?}",
                a.reg
            )));
        }
    }
    Ok(())
}

fn number_of(series: &str, printed: &str) -> u64 {
    printed
        .strip_prefix(series)
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// Invariant 3: a `block` product goes below zero only as deep as stock
/// counts lowered it (sales from quotas never take more than the hub had
/// when it granted them; a count may reveal a shortfall), and never has an
/// oversell; every negative product has an open alert; one oversell alert
/// per line sold beyond quota; every product of the workload is listed.
fn stock(w: &mut World) -> Result<(), SimError> {
    for store in w.stores.clone() {
        store_stock(w, &store.to_string())?;
    }
    Ok(())
}

/// [`stock`] for one store: its products, alerts, oversells and counts
/// only (stock is per store; another store's sales never move it).
fn store_stock(w: &mut World, store: &str) -> Result<(), SimError> {
    let mut n = lock(&w.net);
    let v = n
        .hub
        .admin("GET", &format!("/v1/admin/stock?store={store}"), None)?;
    let all_alerts = n.hub.admin("GET", "/v1/admin/stock/alerts", None)?;
    let conn = n.hub.conn()?;
    drop(n);
    let alerts: Vec<&serde_json::Value> = all_alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["store"] == store)
        .collect();
    let oversold_by_product: HashMap<String, i64> = conn
        .prepare("SELECT product, count(*) FROM p_oversells WHERE store_id = $1 GROUP BY product")
        .map_err(db)?
        .query_map([store], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let oversold: i64 = oversold_by_product.values().sum();
    // How deep the counts the hub applied lowered each product, in all.
    let counted_down: HashMap<String, i64> = conn
        .prepare(
            "SELECT m.product, CAST(SUM(-m.delta_milli) AS BIGINT) FROM p_stock_moves m \
             JOIN events e ON e.event_id = m.event_id \
             WHERE e.kind = 'StockCounted' AND m.delta_milli < 0 AND m.store_id = $1 \
             GROUP BY m.product",
        )
        .map_err(db)?
        .query_map([store], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    drop(conn);
    // One alert for every line sold beyond its quota under `warn`.
    let oversell_alerts = alerts.iter().filter(|a| a["kind"] == "oversell").count();
    w.checks += 1;
    if oversell_alerts as i64 != oversold {
        return Err(fail(format!(
            "invariant 3: store {store}: {oversold} lines sold beyond quota, {oversell_alerts} oversell alerts"
        )));
    }
    let products: Vec<&serde_json::Value> =
        v["products"].as_array().into_iter().flatten().collect();
    for (sku, _, _) in super::workload::PRODUCTS {
        w.checks += 1;
        if !products.iter().any(|p| p["product"] == sku) {
            return Err(fail(format!(
                "invariant 3: product {sku} is missing from store {store}'s stock ({} listed)",
                products.len()
            )));
        }
    }
    for p in products {
        let sku = p["product"].as_str().unwrap_or("");
        let stock = p["stock_milli"]
            .as_i64()
            .ok_or_else(|| fail(format!("stock of {sku} unreadable: {p}")))?;
        w.checks += 1;
        if p["policy"] == "block" {
            let allowed = counted_down.get(sku).copied().unwrap_or(0);
            if stock < -allowed {
                return Err(fail(format!(
                    "invariant 3: block product {sku} at {stock}, deeper than the {allowed} counts took off"
                )));
            }
            if let Some(n) = oversold_by_product.get(sku) {
                return Err(fail(format!(
                    "invariant 3: block product {sku} has {n} oversold line(s)"
                )));
            }
        }
        if stock < 0 {
            let alerted = alerts.iter().any(|a| {
                a["kind"] == "negative_stock" && a["product"] == sku && a["state"] == "open"
            });
            if !alerted {
                return Err(fail(format!(
                    "invariant 3: {sku} at {stock} in store {store} has no open negative-stock alert"
                )));
            }
        }
    }
    Ok(())
}

/// Whether everything converged: the hub up with nothing in flight, every
/// register open, fully acknowledged, not waiting for its own chain, and
/// holding every other register's events and the whole hub chain.
pub fn converged(w: &World) -> Result<Option<String>, SimError> {
    let n = lock(&w.net);
    if !n.hub.all_up() || n.in_flight() > 0 {
        return Ok(Some("hub down or requests in flight".into()));
    }
    let conn = n.hub.conn()?;
    drop(n);
    let hub_seq = |device: &str| -> Result<u64, SimError> {
        let s: Option<i64> = conn
            .query_row(
                "SELECT max(seq) FROM events WHERE device_id = $1",
                [device],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok(s.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    };
    let held: i64 = conn
        .query_row("SELECT count(*) FROM held", [], |r| r.get(0))
        .map_err(db)?;
    if held > 0 {
        return Ok(Some(format!("{held} events held at the hub")));
    }
    // Each store's hub chain, by the world's store index.
    let mut hub_chain_seqs = Vec::new();
    for store in &w.stores {
        let hub_chain: String = conn
            .query_row(
                "SELECT hub_device FROM stores WHERE store_id = $1",
                [store.to_string()],
                |r| r.get(0),
            )
            .map_err(db)?;
        hub_chain_seqs.push(hub_seq(&hub_chain)?);
    }
    let mut heads = Vec::new();
    for r in &w.regs {
        let Some(ops) = &r.ops else {
            return Ok(Some(format!("{} closed", r.name)));
        };
        let head = Journal::head(ops.conn())
            .map_err(|e| fail(e.to_string()))?
            .seq;
        let acked = Journal::acked_seq(ops.conn()).map_err(|e| fail(e.to_string()))?;
        let st = ops.status().map_err(|e| fail(e.to_string()))?;
        let at_hub = hub_seq(&r.device.to_string())?;
        if acked != head || st.restored_from_backup || at_hub != head {
            return Ok(Some(format!(
                "{}: head {head}, acknowledged {acked}, at the hub {at_hub}, restored {}",
                r.name, st.restored_from_backup
            )));
        }
        let hub_chain_seq = hub_chain_seqs[r.store];
        if st.hub_events != hub_chain_seq {
            return Ok(Some(format!(
                "{}: holds {} hub events of {hub_chain_seq}",
                r.name, st.hub_events
            )));
        }
        heads.push((r.device.to_string(), head, r.store));
    }

    for r in &w.regs {
        let Some(ops) = &r.ops else {
            return Ok(Some(format!("{} closed", r.name)));
        };
        for (device, head, store) in &heads {
            if *device == r.device.to_string() {
                continue;
            }
            if *store != r.store {
                // Another store's registers are never pulled here.
                let have: i64 = ops
                    .conn()
                    .query_row(
                        "SELECT count(*) FROM peer_events WHERE device = ?1",
                        [device],
                        |x| x.get(0),
                    )
                    .map_err(sql)?;
                if have != 0 {
                    return Err(fail(format!(
                        "{} holds {have} events of {device}, a register of another store",
                        r.name
                    )));
                }
                continue;
            }
            let have: i64 = ops
                .conn()
                .query_row(
                    "SELECT count(*) FROM peer_events WHERE device = ?1",
                    [device],
                    |x| x.get(0),
                )
                .map_err(sql)?;
            if u64::try_from(have).unwrap_or(0) != *head {
                return Ok(Some(format!(
                    "{} holds {have} events of {device} (head {head})",
                    r.name
                )));
            }
        }
    }
    // Last: the outbox (so an outbox waiting is the only thing left).
    if let Some(why) = super::ecf::settled(w)? {
        return Ok(Some(why));
    }
    Ok(None)
}

/// Every invariant, once the run converged.
pub fn complete(w: &mut World) -> Result<(), SimError> {
    fiscal_numbers_unique(w)?;
    fiscal_report(w, true)?;
    stock(w)?;
    let conn = lock(&w.net).hub.conn()?;
    let quarantined: i64 = conn
        .query_row(
            "SELECT count(*) FROM devices WHERE quarantined_at_ms IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    w.checks += 1;
    if quarantined > 0 {
        return Err(fail(format!(
            "{quarantined} register(s) quarantined in a run without tampering"
        )));
    }
    acknowledged_at_hub(w, &conn)?;
    registers(w)?;
    hub_chains(w, &conn)?;
    causal_order_and_projections(w, &conn)?;
    audit(w, &conn)?;
    resolutions(w, &conn)?;
    super::pay::check(w, &conn)?;
    drop(conn);
    super::ecf::check(w)?;
    hub_rebuild(w)
}

/// Operators' resolutions: each is a `ConflictResolved` event of a store's
/// hub chain (so in the audit log and, once converged, at every register of
/// the store), and its conflict stays resolved unless a candidate the
/// operator never saw arrived since (which reopens it).
fn resolutions(w: &mut World, conn: &Conn) -> Result<(), SimError> {
    if w.resolutions.is_empty() {
        return Ok(());
    }
    let v = lock(&w.net)
        .hub
        .admin("GET", "/v1/admin/conflicts?state=all", None)?;
    let all: Vec<serde_json::Value> = v["conflicts"].as_array().cloned().unwrap_or_default();
    for r in &w.resolutions {
        let Some(c) = all.iter().find(|c| c["conflict_id"] == r.conflict.as_str()) else {
            return Err(fail(format!(
                "operator: resolved conflict {} is gone",
                r.conflict
            )));
        };
        // In the hub chain of the conflict's own store (so at its registers
        // once converged), not merely in some store's.
        let store = c["store"].as_str().unwrap_or_default();
        let kind: Option<String> = conn
            .query_row(
                "SELECT e.kind FROM events e JOIN stores s ON s.hub_device = e.device_id \
                 WHERE e.event_id = $1 AND s.store_id = $2",
                [r.event.as_str(), store],
                |x| x.get(0),
            )
            .optional()
            .map_err(db)?;
        w.checks += 2;
        if kind.as_deref() != Some("ConflictResolved") {
            return Err(fail(format!(
                "operator: resolution {} of conflict {} is {kind:?} in store {store}'s hub chain",
                r.event, r.conflict
            )));
        }
        let now: Vec<&str> = c["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .collect();
        let grew = now.iter().any(|x| !r.candidates.iter().any(|y| y == x));
        if c["state"] != "resolved" && !grew {
            return Err(fail(format!(
                "operator: conflict {} is {} again with no new candidate",
                r.conflict, c["state"]
            )));
        }
    }
    Ok(())
}

/// Invariant 1: every operation a cashier saw done (and not lost with its
/// machine) is at the hub exactly once with the register's hash, and in the
/// register's journal; the hub holds each (device, seq) once and the
/// register's whole chain.
fn acknowledged_at_hub(w: &mut World, conn: &Conn) -> Result<(), SimError> {
    let mut at_hub: HashMap<(String, u64), String> = HashMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT device_id, seq, hash FROM events")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (d, s, h) = row.map_err(db)?;
            let key = (d, u64::try_from(s).unwrap_or(0));
            if at_hub.insert(key.clone(), h).is_some() {
                return Err(fail(format!(
                    "invariant 1: the hub holds {}/{} twice",
                    key.0, key.1
                )));
            }
        }
    }
    let mut checked = 0;
    for a in w.acked.iter().filter(|a| !a.lost) {
        let r = &w.regs[a.reg];
        let ops = r
            .ops
            .as_ref()
            .ok_or_else(|| fail(format!("{} closed at the end", r.name)))?;
        for (seq, hash) in &a.events {
            let key = (r.device.to_string(), *seq);
            match at_hub.get(&key) {
                Some(h) if *h == hash.to_hex() => {}
                other => {
                    return Err(fail(format!(
                        "invariant 1: {} {} seq {seq} (step {}) acknowledged with hash {hash} is at the hub as {other:?}",
                        r.name, a.kind, a.step
                    )))
                }
            }
            let mine = Journal::event(ops.conn(), *seq)
                .map_err(|e| fail(e.to_string()))?
                .map(|e| e.hash());
            if mine != Some(*hash) {
                return Err(fail(format!(
                    "invariant 1: {} {} seq {seq} acknowledged with hash {hash} is {mine:?} in its journal",
                    r.name, a.kind
                )));
            }
            checked += 1;
        }
    }
    // Each register's whole chain, byte for byte.
    for r in &w.regs {
        let ops = r.ops.as_ref().ok_or_else(|| fail("closed register"))?;
        let head = Journal::head(ops.conn())
            .map_err(|e| fail(e.to_string()))?
            .seq;
        let mut events = Vec::new();
        loop {
            let page = Journal::events_after(ops.conn(), events.len() as u64, 1000)
                .map_err(|e| fail(e.to_string()))?;
            if page.is_empty() {
                break;
            }
            events.extend(page);
        }
        if events.len() as u64 != head {
            return Err(fail(format!(
                "{}: journal holds {} of {head}",
                r.name,
                events.len()
            )));
        }
        for e in events {
            let key = (r.device.to_string(), e.seq().get());
            if at_hub.get(&key) != Some(&e.hash().to_hex()) {
                return Err(fail(format!(
                    "invariant 1/4: {} seq {} differs at the hub",
                    r.name, key.1
                )));
            }
        }
    }
    w.checks += checked + 1;
    Ok(())
}

/// Each register: its whole journal verifies (every checkpoint too), and its
/// projections equal a rebuild from the journal and the hub chain.
fn registers(w: &mut World) -> Result<(), SimError> {
    for r in &mut w.regs {
        let key = caja_node::keyfile::read_key_file(&r.data.key_path())
            .map_err(|e| fail(format!("{}: key: {e}", r.name)))?;
        let ops = r.ops.as_mut().ok_or_else(|| fail("closed register"))?;
        Journal::verify(ops.conn(), &key, None, |_, _| {}).map_err(|e| {
            fail(format!(
                "invariant 4: {} journal does not verify: {e}",
                r.name
            ))
        })?;
        let (live, rebuilt) = ops
            .rebuild()
            .map_err(|e| fail(format!("{}: rebuild: {e}", r.name)))?;
        w.checks += 2;
        if live != rebuilt {
            return Err(fail(format!(
                "{}: projections {live} differ from a rebuild {rebuilt}",
                r.name
            )));
        }
    }
    Ok(())
}

/// Invariant 4 at the hub: every chain it holds (registers' and its own)
/// verifies from genesis with the chain verifier.
fn hub_chains(w: &mut World, conn: &Conn) -> Result<(), SimError> {
    let mut stmt = conn
        .prepare("SELECT device_id, bytes, hash FROM events ORDER BY device_id, seq")
        .map_err(db)?;
    let mut rows = stmt.query([]).map_err(db)?;
    let mut current: Option<(String, ChainVerifier)> = None;
    // The HLC of the chain's previous event: clocks jump (registers' and the
    // hub's, forward and back) but no chain's stamps may go back.
    let mut last_hlc: Option<caja_shared::hlc::Hlc> = None;
    while let Some(row) = rows.next().map_err(db)? {
        let device: String = row.get(0).map_err(db)?;
        let bytes: Vec<u8> = row.get(1).map_err(db)?;
        let hash: Hash256 = row
            .get::<_, String>(2)
            .map_err(db)?
            .parse()
            .map_err(|_| fail("stored hash"))?;
        if current.as_ref().is_none_or(|(d, _)| *d != device) {
            current = Some((device.clone(), ChainVerifier::new(ChainHead::GENESIS)));
            last_hlc = None;
        }
        let event = Event::from_json(&bytes).map_err(|e| fail(format!("stored event: {e}")))?;
        let hlc = event.envelope().hlc;
        w.checks += 1;
        if last_hlc.is_some_and(|h| h >= hlc) {
            return Err(fail(format!(
                "hlc: the chain of {device} goes back at seq {} ({last_hlc:?} then {hlc:?})",
                event.seq().get()
            )));
        }
        last_hlc = Some(hlc);
        if let Some((_, v)) = current.as_mut() {
            v.check_bytes(&bytes, &hash)
                .map_err(|e| fail(format!("invariant 4: hub chain of {device}: {e:?}")))?;
        }
        w.checks += 1;
    }
    Ok(())
}

/// Invariants 5 and 6: every stored event is applied, each after all its
/// deps and its own seq − 1; the pure projections of the applied events are
/// the same in apply order and in another causal order drawn from the seed.
fn causal_order_and_projections(w: &mut World, conn: &Conn) -> Result<(), SimError> {
    let hub_devices: BTreeSet<String> = conn
        .prepare("SELECT hub_device FROM stores")
        .map_err(db)?
        .query_map([], |r| r.get(0))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .map_err(db)?;
    let mut stmt = conn
        .prepare(
            "SELECT e.bytes, e.device_id FROM applied a JOIN events e ON e.id = a.event_row ORDER BY a.applied_seq",
        )
        .map_err(db)?;
    let applied: Vec<(Event, bool)> = stmt
        .query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(db)?
        .map(|row| {
            let (bytes, device) = row.map_err(db)?;
            let e = Event::from_json(&bytes).map_err(|e| fail(format!("stored event: {e}")))?;
            Ok((e, hub_devices.contains(&device)))
        })
        .collect::<Result<_, SimError>>()?;
    let distinct: i64 = conn
        .query_row("SELECT count(DISTINCT event_row) FROM applied", [], |r| {
            r.get(0)
        })
        .map_err(db)?;
    w.checks += 2;
    if distinct != applied.len() as i64 {
        return Err(fail(format!(
            "invariant 1: {} applications of {distinct} events: an event applied twice",
            applied.len()
        )));
    }
    if applied.len() as i64 != stored {
        return Err(fail(format!(
            "invariant 6: {} events applied of {stored} stored after convergence",
            applied.len()
        )));
    }
    // Deps first.
    let mut position: HashMap<EventId, usize> = HashMap::new();
    let mut by_seq: HashMap<(DeviceId, u64), usize> = HashMap::new();
    for (i, (e, _)) in applied.iter().enumerate() {
        let env = e.envelope();
        for d in &env.deps {
            w.checks += 1;
            if !position.contains_key(d) {
                return Err(fail(format!(
                    "invariant 6: {} applied before its dependency {d}",
                    env.event_id
                )));
            }
        }
        if env.seq.get() > 1 && !by_seq.contains_key(&(env.device, env.seq.get() - 1)) {
            return Err(fail(format!(
                "invariant 6: {} seq {} applied before seq {}",
                env.device,
                env.seq.get(),
                env.seq.get() - 1
            )));
        }
        position.insert(env.event_id, i);
        by_seq.insert((env.device, env.seq.get()), i);
    }
    // Another causal order: repeatedly take a random event whose deps and
    // predecessor are already taken.
    let fold = |order: &[usize]| -> Result<Hash256, SimError> {
        let mut p = Projections::default();
        for &i in order {
            let (e, hub) = &applied[i];
            let env = e.envelope();
            let body = e.body().map_err(|e| fail(format!("body: {e}")))?;
            let meta = EventMeta {
                event_id: env.event_id,
                store: env.store,
                device: env.device,
                seq: env.seq.get(),
                hlc: env.hlc,
                origin: if *hub { Origin::Hub } else { Origin::Register },
                deps: &env.deps,
            };
            p.apply_event(&meta, &body);
        }
        Ok(p.digest())
    };
    let in_apply_order: Vec<usize> = (0..applied.len()).collect();
    let mut shuffled = Vec::with_capacity(applied.len());
    let mut taken: BTreeSet<usize> = BTreeSet::new();
    let mut ready: Vec<usize> = Vec::new();
    let waits = |i: usize, taken: &BTreeSet<usize>| -> bool {
        let env = applied[i].0.envelope();
        env.deps.iter().any(|d| !taken.contains(&position[d]))
            || (env.seq.get() > 1 && !taken.contains(&by_seq[&(env.device, env.seq.get() - 1)]))
    };
    let mut pending: Vec<usize> = in_apply_order.clone();
    while !pending.is_empty() || !ready.is_empty() {
        let (now_ready, still): (Vec<usize>, Vec<usize>) =
            pending.iter().partition(|i| !waits(**i, &taken));
        ready.extend(now_ready);
        pending = still;
        if ready.is_empty() {
            return Err(fail("invariant 6: a dependency cycle among applied events"));
        }
        let k = usize::try_from(w.rng.next_u64() % ready.len() as u64).unwrap_or(0);
        let i = ready.swap_remove(k);
        taken.insert(i);
        shuffled.push(i);
    }
    let a = fold(&in_apply_order)?;
    let b = fold(&shuffled)?;
    w.checks += 1;
    if a != b {
        return Err(fail(format!(
            "invariant 5: projections depend on order ({a} in apply order, {b} in another causal order)"
        )));
    }
    Ok(())
}

/// Invariant 7: the exported audit log verifies (signed head, every entry
/// leads to it), every stored event and every conflict is in it.
fn audit(w: &mut World, conn: &Conn) -> Result<(), SimError> {
    let (dir, up) = {
        let n = lock(&w.net);
        (n.hub.dir().to_path_buf(), n.hub.is_up())
    };
    if up {
        lock(&w.net).hub.sign_head()?;
    }
    staged_sequenced(conn)?;
    let out = w.root.join(format!("audit-export-{}", w.step));
    caja_hub::audit_export::export(&dir, &out, w.now_ms)
        .map_err(|e| fail(format!("audit export: {e}")))?;
    caja_hub::audit_export::verify(&out)
        .map_err(|e| fail(format!("invariant 7: the audit log does not verify: {e}")))?;
    let mut logged: BTreeSet<String> = BTreeSet::new();
    let mut conflicts_logged: BTreeSet<String> = BTreeSet::new();
    // (device, seq) → the approvals its entry names.
    let mut approvals: HashMap<(String, u64), Vec<serde_json::Value>> = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT kind, entry FROM audit_log ORDER BY idx")
        .map_err(db)?;
    let mut rows = stmt.query([]).map_err(db)?;
    while let Some(r) = rows.next().map_err(db)? {
        let kind: String = r.get(0).map_err(db)?;
        let entry: Vec<u8> = r.get(1).map_err(db)?;
        let v: serde_json::Value = serde_json::from_slice(&entry).unwrap_or_default();
        match kind.as_str() {
            "event_accepted" | "hub_event_appended" => {
                if let Some(id) = v["data"]["event_id"].as_str() {
                    if !logged.insert(id.to_owned()) {
                        return Err(fail(format!("invariant 7: event {id} logged twice")));
                    }
                }
                if let (Some(d), Some(seq), Some(list)) = (
                    v["data"]["device"].as_str(),
                    v["data"]["seq"].as_u64(),
                    v["data"]["approvals"].as_array(),
                ) {
                    approvals.insert((d.to_owned(), seq), list.clone());
                }
            }
            "conflict_detected" => {
                if let Some(id) = v["data"]["conflict_id"].as_str() {
                    conflicts_logged.insert(id.to_owned());
                }
            }
            _ => {}
        }
    }
    let ids: Vec<String> = conn
        .prepare("SELECT event_id FROM events")
        .map_err(db)?
        .query_map([], |r| r.get(0))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    for id in &ids {
        if !logged.contains(id) {
            return Err(fail(format!(
                "invariant 7: event {id} is not in the audit log"
            )));
        }
    }
    let conflicts: Vec<String> = conn
        .prepare("SELECT conflict_id FROM conflicts")
        .map_err(db)?
        .query_map([], |r| r.get(0))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    for c in &conflicts {
        if !conflicts_logged.contains(c) {
            return Err(fail(format!(
                "invariant 7: conflict {c} has no conflict_detected entry"
            )));
        }
    }
    w.checks += ids.len() as u64 + conflicts.len() as u64 + 1;
    staff_approvals(w, &approvals)
}

/// Staff at the hub: every approval an accepted event names is by a member
/// of staff head office created, under their name, with a supervisor's role
/// for anything but closing one's own shift; and every operation the
/// workload acknowledged with a supervisor's approval carries it, for that
/// action, by the supervisor who typed the PIN.
fn staff_approvals(
    w: &mut World,
    approvals: &HashMap<(String, u64), Vec<serde_json::Value>>,
) -> Result<(), SimError> {
    use super::world::{staff_id, STAFF};
    for ((device, seq), list) in approvals {
        for a in list {
            let who = (0..STAFF.len()).find(|i| a["staff_id"] == staff_id(*i).to_string());
            let Some(i) = who else {
                return Err(fail(format!(
                    "staff: {device}/{seq} approved by someone head office never created: {a}"
                )));
            };
            let own_close = a["action"] == "close_own_shift";
            w.checks += 1;
            if a["name"] != STAFF[i].0 || (!own_close && a["role"] == "cashier") {
                return Err(fail(format!(
                    "staff: {device}/{seq} carries an approval that does not match {}: {a}",
                    STAFF[i].0
                )));
            }
        }
    }
    let supervisor = staff_id(2).to_string();
    for a in w.acked.iter().filter(|a| !a.lost) {
        let Some(action) = a.approved else {
            continue;
        };
        let device = w.regs[a.reg].device.to_string();
        let found = a.events.iter().any(|(seq, _)| {
            approvals
                .get(&(device.clone(), *seq))
                .into_iter()
                .flatten()
                .any(|x| x["action"] == action && x["staff_id"] == supervisor.as_str())
        });
        w.checks += 1;
        if !found {
            return Err(fail(format!(
                "staff: r{} {} (step {}) was acknowledged with a supervisor's {action}, which no audit entry carries",
                a.reg, a.kind, a.step
            )));
        }
    }
    Ok(())
}

/// Waits (a few seconds at most) until the audit sequencer has moved every
/// staged entry into the log (PostgreSQL: entries are staged by the write
/// and sequenced by a thread of each instance within
/// `caja_hub::storage::SEQUENCE_DELAY_MS`; SQLite stages none).
fn staged_sequenced(conn: &Conn) -> Result<(), SimError> {
    if conn.dialect() != caja_hub::storage::Dialect::Postgres {
        return Ok(());
    }
    let bound = std::time::Duration::from_millis(
        u64::try_from(2 * caja_hub::storage::SEQUENCE_DELAY_MS).unwrap_or(10_000),
    );
    let started = std::time::Instant::now();
    loop {
        let staged: i64 = conn
            .query_row("SELECT count(*) FROM audit_staged", [], |r| r.get(0))
            .map_err(db)?;
        if staged == 0 {
            return Ok(());
        }
        if started.elapsed() > bound {
            return Err(fail(format!(
                "invariant 7: {staged} audit entries still staged after {bound:?}"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Invariant 5 in storage: the hub's projection tables equal a rebuild from
/// its applied events (the hub is stopped for it, then opened again).
fn hub_rebuild(w: &mut World) -> Result<(), SimError> {
    // Card payments' conflicts come from the provider's webhooks, not from
    // events: a rebuild drops them and the next reconciliation finds them
    // again (`storage::payments::reconcile`). So the live projections are
    // compared without them, and the reconciliation after the rebuild must
    // find the same ones in the same states as one just before it (a
    // report that came before its sale reached the hub is judged only by a
    // reconciliation after the sale).
    lock(&w.net)
        .hub
        .admin("POST", "/v1/admin/payments/reconcile", None)?;
    let before = card_payment_conflicts(w)?;
    let conn = {
        let mut n = lock(&w.net);
        n.hub.close();
        n.hub.store_conn()?
    };
    // The live projections without those conflicts: deleted in a
    // transaction that is rolled back.
    conn.begin_unlocked().map_err(db)?;
    let live = conn
        .execute_batch(
            "DELETE FROM conflict_events WHERE conflict_id IN \
               (SELECT conflict_id FROM conflicts WHERE reason LIKE 'card_payment_%'); \
             DELETE FROM conflicts WHERE reason LIKE 'card_payment_%';",
        )
        .map_err(db)
        .and_then(|()| caja_hub::storage::digest(&conn).map_err(|e| fail(e.to_string())));
    conn.rollback().map_err(db)?;
    let live = live?;
    caja_hub::storage::rebuild(&conn).map_err(|e| fail(e.to_string()))?;
    let rebuilt = caja_hub::storage::digest(&conn).map_err(|e| fail(e.to_string()))?;
    drop(conn);
    w.checks += 1;
    if live != rebuilt {
        return Err(fail(format!(
            "invariant 5: hub projections {live} differ from a rebuild {rebuilt}"
        )));
    }
    if before.is_empty() {
        return Ok(());
    }
    let seed = w.rng.next_u64();
    lock(&w.net).hub.open(seed)?;
    lock(&w.net)
        .hub
        .admin("POST", "/v1/admin/payments/reconcile", None)?;
    let after = card_payment_conflicts(w)?;
    lock(&w.net).hub.close();
    w.checks += 1;
    if before != after {
        return Err(fail(format!(
            "payments: card payment conflicts before a rebuild {before:?}, after it and a reconciliation {after:?}"
        )));
    }
    Ok(())
}

/// The card payments' conflicts at the hub: (id, reason, state).
fn card_payment_conflicts(w: &World) -> Result<Vec<(String, String, String)>, SimError> {
    let v = lock(&w.net)
        .hub
        .admin("GET", "/v1/admin/conflicts?state=all", None)?;
    let mut out: Vec<(String, String, String)> = v["conflicts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("card_payment_"))
        })
        .map(|c| {
            (
                c["conflict_id"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}
