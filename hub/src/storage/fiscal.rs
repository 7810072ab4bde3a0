//! The SQL of fiscal series, range grants, write-offs and the fiscal reports
//! (see `crate::fiscal` for the checks and renderings and
//! `caja_shared::fiscal` for the arithmetic).
//!
//! Allocation runs on the single writer inside one transaction: it reads the
//! series' history (grants, releases, sales, write-offs), takes the lowest free
//! numbers, appends the `FiscalRangeGranted` hub events (applied, so they are
//! in the projection before the transaction ends) and records the answer under
//! the device's request id. Concurrent requests are serialized by the writer,
//! so two grants never overlap (tested with many concurrent clients).

use super::db::{params, Conn, OptionalExtension};
use caja_shared::digest::Hash256;
use caja_shared::fiscal::{self, Grant, History, Release, Use};
use caja_shared::ids::{DeviceId, GrantId, StoreId};
use caja_shared::kind::{EventBody, FiscalRangeGranted};
use caja_shared::localtime::{zone_offset, UtcOffset};

use super::device_request::{begin, record_answer, Begun};
use crate::audit::{self, AuditKind};
use crate::auth::Authentic;
use crate::fiscal::{
    MonthDocuments, RangeRequest, Return607, Sale607, SeriesInfo, SeriesReport, SeriesSpec, Void608,
};
use crate::storage::alerts::raise_alert;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::corrupt;
use crate::storage::codec::i;
use crate::storage::codec::parse;
use crate::storage::codec::u;
use crate::storage::device_auth::load_device;
use crate::storage::devices::revoke;
use crate::storage::error::Answer;
use crate::storage::error::StorageError;
use crate::storage::ingest::hub_chain::append_to_hub_chain;
use crate::storage::writer::Env;
use crate::wire::ApiError;

pub(crate) fn store_offset(conn: &Conn, store: StoreId) -> Result<UtcOffset, StorageError> {
    let tz: String = conn
        .prepare_cached("SELECT time_zone FROM stores WHERE store_id = $1")?
        .query_row([store.to_string()], |r| r.get(0))?;
    Ok(zone_offset(&tz).unwrap_or(UtcOffset::SANTO_DOMINGO))
}

/// Every series, ordered by prefix and first number.
pub(crate) fn list_series(conn: &Conn) -> Result<Vec<SeriesInfo>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT series_id, prefix, digits, first, last, valid_until FROM fiscal_series ORDER BY prefix, first",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(SeriesInfo {
            series_id: r.get(0)?,
            prefix: r.get(1)?,
            digits: u8::try_from(r.get::<_, i64>(2)?).map_err(corrupt)?,
            first: u(r.get(3)?),
            last: u(r.get(4)?),
            valid_until: r.get(5)?,
            stores: vec![],
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT store_id FROM fiscal_series_stores WHERE series_id = $1 ORDER BY store_id",
    )?;
    for s in &mut out {
        let ids: Vec<String> = stmt
            .query_map([&s.series_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        s.stores = ids.iter().map(|x| parse(x)).collect::<Result<_, _>>()?;
    }
    Ok(out)
}

/// Admin: loads a series. Refused (nothing written) when a field is wrong, a
/// store is unknown, or it overlaps a series of the same prefix.
pub(crate) fn add_series(
    conn: &Conn,
    env: &mut Env,
    spec: &SeriesSpec,
) -> Result<Answer<SeriesInfo>, StorageError> {
    if let Err(e) = spec.check() {
        return Ok(Err(e));
    }
    for (k, s) in spec.stores.iter().enumerate() {
        let known = conn
            .prepare_cached("SELECT 1 FROM stores WHERE store_id = $1")?
            .exists([s.to_string()])?;
        if !known {
            return Ok(Err(ApiError::invalid(
                format!("stores[{k}]"),
                format!("no store {s}"),
            )));
        }
    }
    let overlapping: Option<(String, i64, i64)> = conn
        .prepare_cached(
            "SELECT series_id, first, last FROM fiscal_series WHERE prefix = $1 AND first <= $3 AND last >= $2 LIMIT 1",
        )?
        .query_row(params![spec.prefix, i(spec.first), i(spec.last)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if let Some((id, a, b)) = overlapping {
        return Ok(Err(ApiError::new(
            409,
            "series_overlap",
            format!(
                "{} {}..{} overlaps series {id} ({a}..{b}) of the same prefix",
                spec.prefix, spec.first, spec.last
            ),
        )));
    }
    let now = env.now_ms();
    let mut rng = &mut *env.rng;
    let series_id = caja_shared::ids::uuid_v7(now, &mut rng)
        .map_err(|e| corrupt(format!("series id: {e}")))?
        .to_string();
    conn.execute(
        "INSERT INTO fiscal_series (series_id, prefix, digits, first, last, valid_until, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        params![series_id, spec.prefix, i64::from(spec.digits), i(spec.first), i(spec.last), spec.valid_until, now],
    )?;
    let mut stores = spec.stores.clone();
    stores.sort();
    stores.dedup();
    for s in &stores {
        conn.execute(
            "INSERT INTO fiscal_series_stores (series_id, store_id) VALUES ($1, $2)",
            params![series_id, s.to_string()],
        )?;
    }
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::FiscalSeriesLoaded,
        now,
        None,
        audit::data([
            ("series_id", audit::s(&series_id)),
            ("prefix", audit::s(&spec.prefix)),
            ("digits", audit::n(spec.digits)),
            ("first", audit::n(spec.first)),
            ("last", audit::n(spec.last)),
            ("valid_until", audit::s(&spec.valid_until)),
            (
                "stores",
                caja_shared::canonical::Value::Array(stores.iter().map(audit::s).collect()),
            ),
        ]),
    )?;
    tracing::info!(series = %series_id, prefix = %spec.prefix, first = spec.first, last = spec.last, "fiscal series loaded");
    Ok(Ok(SeriesInfo {
        series_id,
        prefix: spec.prefix.clone(),
        digits: spec.digits,
        first: spec.first,
        last: spec.last,
        valid_until: spec.valid_until.clone(),
        stores,
    }))
}

/// Everything the hub knows about one series' numbers.
pub(crate) fn history(conn: &Conn, s: &SeriesInfo) -> Result<History, StorageError> {
    let mut h = History::default();
    let mut stmt = conn.prepare_cached(
        "SELECT what, grant_id, device_id, first, last FROM p_fiscal_blocks
         WHERE series = $1 AND first >= $2 AND last <= $3",
    )?;
    let mut rows = stmt.query(params![s.prefix, i(s.first), i(s.last)])?;
    while let Some(r) = rows.next()? {
        let what: String = r.get(0)?;
        let grant_id: GrantId = parse(&r.get::<_, String>(1)?)?;
        let device: DeviceId = parse(&r.get::<_, String>(2)?)?;
        let (first, last) = (u(r.get(3)?), u(r.get(4)?));
        if what == "grant" {
            h.grants.push(Grant {
                grant_id,
                device,
                first,
                last,
            });
        } else {
            h.releases.push(Release {
                grant_id,
                device,
                first,
                last,
            });
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT s.fiscal_number, s.device_id, s.sale_id, s.event_id, e.hlc_ms,
                EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = s.store_id AND v.sale_id = s.sale_id)
         FROM p_sales s JOIN events e ON e.event_id = s.event_id
         WHERE s.fiscal_series = $1",
    )?;
    let mut rows = stmt.query([&s.prefix])?;
    while let Some(r) = rows.next()? {
        let printed: String = r.get(0)?;
        let Some(number) = fiscal::parse_number(&s.prefix, &printed) else {
            continue;
        };
        if number < s.first || number > s.last {
            continue;
        }
        h.uses.push(Use {
            number,
            device: parse(&r.get::<_, String>(1)?)?,
            sale: parse(&r.get::<_, String>(2)?)?,
            event_id: parse(&r.get::<_, String>(3)?)?,
            at_ms: r.get(4)?,
            voided: r.get(5)?,
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT c.number, c.device_id, c.sale_id, c.event_id, e.hlc_ms
         FROM p_credit_notes c JOIN events e ON e.event_id = c.event_id
         WHERE c.series = $1",
    )?;
    let mut rows = stmt.query([&s.prefix])?;
    while let Some(r) = rows.next()? {
        let printed: String = r.get(0)?;
        let Some(number) = fiscal::parse_number(&s.prefix, &printed) else {
            continue;
        };
        if number < s.first || number > s.last {
            continue;
        }
        h.uses.push(Use {
            number,
            device: parse(&r.get::<_, String>(1)?)?,
            sale: parse(&r.get::<_, String>(2)?)?,
            event_id: parse(&r.get::<_, String>(3)?)?,
            at_ms: r.get(4)?,
            voided: false,
        });
    }
    let mut stmt = conn.prepare_cached("SELECT device_id FROM write_offs")?;
    let ids: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for d in ids {
        h.written_off.insert(parse(&d)?);
    }
    Ok(h)
}

/// The accounting of every series of `prefix` (every series when `None`).
pub(crate) fn reports(
    conn: &Conn,
    prefix: Option<&str>,
) -> Result<Vec<SeriesReport>, StorageError> {
    let mut out = Vec::new();
    for s in list_series(conn)? {
        if prefix.is_some_and(|p| p != s.prefix) {
            continue;
        }
        let h = history(conn, &s)?;
        let accounting = fiscal::account(s.first, s.last, &h);
        out.push(SeriesReport {
            series: s,
            accounting,
        });
    }
    Ok(out)
}

/// `POST /v1/fiscal/ranges`: authentication, the body check, the request id,
/// then the grant. Answers the appended hub events' canonical bytes.
pub(crate) fn grant_range(
    conn: &Conn,
    env: &mut Env,
    req: &Authentic,
    parsed: Result<(RangeRequest, Hash256), ApiError>,
    block_ttl_ms: i64,
) -> Result<Answer<Vec<Vec<u8>>>, StorageError> {
    let Begun {
        who,
        request,
        body_hash,
        request_id,
    } = match begin(
        conn,
        env,
        req,
        parsed,
        "fiscal_ranges",
        RangeRequest::check,
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
    let now = env.now_ms();
    let offset = store_offset(conn, who.store)?;
    let candidates: Vec<SeriesInfo> = list_series(conn)?
        .into_iter()
        .filter(|s| {
            s.prefix == request.series && s.serves(who.store) && s.valid_until_ms(offset) > now
        })
        .collect();
    if candidates.is_empty() {
        return Ok(Err(ApiError::new(
            409,
            "no_fiscal_series",
            format!("no valid series {} serves this store", request.series),
        )));
    }
    // A device may hold only so many numbers of a series at once: one stolen
    // register cannot drain it. Its own top-up asks far below this.
    let mut accounts = Vec::with_capacity(candidates.len());
    let mut outstanding = 0u64;
    for s in &candidates {
        let acc = fiscal::account(s.first, s.last, &history(conn, s)?);
        outstanding = outstanding.saturating_add(
            acc.runs
                .iter()
                .filter(|r| {
                    r.status == fiscal::NumberStatus::Outstanding && r.device == Some(who.device)
                })
                .map(|r| r.last - r.first + 1)
                .sum::<u64>(),
        );
        accounts.push(acc);
    }
    let caps = env.cfg.caps;
    if !caps.fiscal_grant_fits(outstanding, request.count) {
        tracing::warn!(device = %who.device, series = %request.series, outstanding, count = request.count, cap = caps.max_outstanding_fiscal, "fiscal range refused: outstanding cap");
        return Ok(Err(ApiError::overloaded(
            format!(
                "this register already holds {outstanding} unused numbers of series {}; with {} more it would exceed the limit of {} (use or release numbers first)",
                request.series, request.count, caps.max_outstanding_fiscal
            ),
            FISCAL_CAP_RETRY_S,
        )));
    }
    let mut bodies = Vec::new();
    for (s, acc) in candidates.iter().zip(accounts) {
        let blocks = fiscal::allocate(&acc.free_runs(), request.count);
        if blocks.is_empty() {
            continue;
        }
        let expires_ms = now
            .saturating_add(block_ttl_ms)
            .min(s.valid_until_ms(offset));
        for (first, last) in blocks {
            let mut rng = &mut *env.rng;
            let grant_id =
                GrantId::new_v7(now, &mut rng).map_err(|e| corrupt(format!("grant id: {e}")))?;
            bodies.push(EventBody::FiscalRangeGranted(FiscalRangeGranted {
                grant_id,
                device: who.device,
                request_id: request.request_id,
                series: s.prefix.clone(),
                digits: s.digits,
                first,
                last,
                expires_ms,
                valid_until: s.valid_until.clone(),
            }));
        }
        break;
    }
    if bodies.is_empty() {
        return Ok(Err(ApiError::new(
            409,
            "fiscal_series_exhausted",
            format!(
                "series {} has no numbers left for this store",
                request.series
            ),
        )));
    }
    let events = append_to_hub_chain(conn, env, who.store, &bodies)?;
    for body in &bodies {
        if let EventBody::FiscalRangeGranted(g) = body {
            append_audit(
                conn,
                &mut env.tx,
                AuditKind::FiscalRangeGranted,
                now,
                Some(who.store),
                audit::data([
                    ("grant_id", audit::s(g.grant_id)),
                    ("device", audit::s(g.device)),
                    ("request_id", audit::s(g.request_id)),
                    ("series", audit::s(&g.series)),
                    ("first", audit::n(g.first)),
                    ("last", audit::n(g.last)),
                    ("expires_ms", audit::n(g.expires_ms)),
                ]),
            )?;
            tracing::info!(device = %g.device, series = %g.series, first = g.first, last = g.last, "fiscal range granted");
        }
    }
    let bytes: Vec<Vec<u8>> = events
        .iter()
        .map(|e| e.canonical_bytes().to_vec())
        .collect();
    crate::crashpoint::hit("hub:fiscal_granted");
    record_answer(
        conn,
        who.device,
        &request_id,
        "fiscal_ranges",
        body_hash,
        &bytes,
        now,
    )?;
    Ok(Ok(bytes))
}

/// `Retry-After` of a range refused for the outstanding cap: numbers come
/// back as the register's sales and releases are pushed.
const FISCAL_CAP_RETRY_S: u64 = 300;

/// What a write-off did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteOff {
    /// The register.
    pub device: DeviceId,
    /// Whether it was written off before (then nothing changed).
    pub already: bool,
    /// Fiscal numbers it held that will never be issued.
    pub fiscal_numbers_written_off: u64,
}

/// Admin: writes a register off (lost, stolen, dead): revokes its keys, and
/// its outstanding fiscal numbers become `written_off`, never issued again.
/// Audited, alerted; idempotent.
pub(crate) fn write_off(
    conn: &Conn,
    env: &mut Env,
    device: DeviceId,
    reason: &str,
) -> Result<Answer<WriteOff>, StorageError> {
    if reason.trim().is_empty() {
        return Ok(Err(ApiError::invalid(
            "reason",
            "a write-off needs a reason",
        )));
    }
    let Some(rec) = load_device(conn, device)? else {
        return Ok(Err(ApiError::not_found("no such device")));
    };
    let exists = conn
        .prepare_cached("SELECT 1 FROM write_offs WHERE device_id = $1")?
        .exists([device.to_string()])?;
    let count_outstanding = |conn: &Conn| -> Result<u64, StorageError> {
        let mut n = 0;
        for r in reports(conn, None)? {
            n += r
                .accounting
                .runs
                .iter()
                .filter(|x| {
                    x.device == Some(device) && x.status == fiscal::NumberStatus::WrittenOff
                })
                .map(|x| x.last - x.first + 1)
                .sum::<u64>();
        }
        Ok(n)
    };
    if exists {
        return Ok(Ok(WriteOff {
            device,
            already: true,
            fiscal_numbers_written_off: count_outstanding(conn)?,
        }));
    }
    let now = env.now_ms();
    if let Err(e) = revoke(conn, env, device, &format!("written off: {reason}"))? {
        return Ok(Err(e));
    }
    conn.execute(
        "INSERT INTO write_offs (device_id, at_ms, reason) VALUES ($1, $2, $3)",
        params![device.to_string(), now, reason],
    )?;
    let numbers = count_outstanding(conn)?;
    // Electronic numbers that will never be issued are cancelled at the tax
    // authority (phase two, through the outbox), in this transaction.
    let cancellations = super::outbox::enqueue::enqueue_write_off(
        conn,
        now,
        rec.store,
        device,
        &reports(conn, None)?,
    )?;
    if cancellations > 0 {
        tracing::info!(device = %device, cancellations, "cancellations of written-off e-CF numbers queued");
    }
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::DeviceWrittenOff,
        now,
        Some(rec.store),
        audit::data([
            ("device", audit::s(device)),
            ("reason", audit::s(reason)),
            ("fiscal_numbers_written_off", audit::n(numbers)),
        ]),
    )?;
    raise_alert(
        conn,
        "device_written_off",
        Some(rec.store),
        Some(device),
        now,
        &format!("register written off ({reason}); {numbers} fiscal numbers it held will never be issued"),
    )?;
    tracing::warn!(device = %device, numbers, "register written off");
    Ok(Ok(WriteOff {
        device,
        already: false,
        fiscal_numbers_written_off: numbers,
    }))
}

/// The fiscal documents of a store in a month of its local time, decoded
/// from their events, for the 607 and 608 reports: sales that stand,
/// credit notes, and voided numbers.
pub(crate) fn month_documents(
    conn: &Conn,
    store: StoreId,
    month: caja_shared::localtime::LocalDate,
) -> Result<Answer<(UtcOffset, MonthDocuments)>, StorageError> {
    let known = conn
        .prepare_cached("SELECT 1 FROM stores WHERE store_id = $1")?
        .exists([store.to_string()])?;
    if !known {
        return Ok(Err(ApiError::not_found(format!("no store {store}"))));
    }
    // The month in the store's own time zone.
    let offset = store_offset(conn, store)?;
    let from_ms = month.start_utc_ms(offset);
    let to_ms = month.first_of_next_month().start_utc_ms(offset);
    let mut docs = MonthDocuments::default();
    let mut stmt = conn.prepare_cached(
        "SELECT e.bytes, e.hlc_ms FROM p_sales s JOIN events e ON e.event_id = s.event_id
         WHERE s.store_id = $1 AND s.fiscal_number IS NOT NULL
           AND e.hlc_ms >= $2 AND e.hlc_ms < $3
           AND NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = s.store_id AND v.sale_id = s.sale_id)",
    )?;
    let mut rows = stmt.query(params![store.to_string(), from_ms, to_ms])?;
    while let Some(r) = rows.next()? {
        let bytes: Vec<u8> = r.get(0)?;
        let at_ms: i64 = r.get(1)?;
        let event = caja_shared::event::Event::from_json(&bytes).map_err(corrupt)?;
        if let EventBody::SaleCreated(sale) = event.body().map_err(corrupt)? {
            docs.sales.push(Sale607 { sale, at_ms });
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT e.bytes, e.hlc_ms FROM events e JOIN applied a ON a.event_row = e.id
         WHERE e.store_id = $1 AND e.kind = 'SaleReturned'
           AND e.hlc_ms >= $2 AND e.hlc_ms < $3",
    )?;
    let mut rows = stmt.query(params![store.to_string(), from_ms, to_ms])?;
    while let Some(r) = rows.next()? {
        let bytes: Vec<u8> = r.get(0)?;
        let at_ms: i64 = r.get(1)?;
        let event = caja_shared::event::Event::from_json(&bytes).map_err(corrupt)?;
        if let EventBody::SaleReturned(ret) = event.body().map_err(corrupt)? {
            if ret.credit_note.is_some() {
                docs.returns.push(Return607 { ret, at_ms });
            }
        }
    }
    // Voided in the month (the void's time), dated by the sale.
    let mut stmt = conn.prepare_cached(
        "SELECT s.fiscal_number, se.hlc_ms FROM p_voids v
         JOIN events ve ON ve.event_id = v.event_id
         JOIN p_sales s ON s.store_id = v.store_id AND s.sale_id = v.sale_id
         JOIN events se ON se.event_id = s.event_id
         WHERE v.store_id = $1 AND s.fiscal_number IS NOT NULL
           AND ve.hlc_ms >= $2 AND ve.hlc_ms < $3",
    )?;
    let mut rows = stmt.query(params![store.to_string(), from_ms, to_ms])?;
    while let Some(r) = rows.next()? {
        docs.voided.push(Void608 {
            number: r.get(0)?,
            issued_ms: r.get(1)?,
        });
    }
    Ok(Ok((offset, docs)))
}

/// One fiscal series in the health report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FiscalHealth {
    /// Prefix.
    pub prefix: String,
    /// Series id.
    pub series_id: String,
    /// Last local day of use.
    pub valid_until: String,
    /// Whole days from now to the end of `valid_until` (negative once expired).
    pub days_to_expiry: i64,
    /// Numbers the hub can still grant.
    pub free: u64,
    /// Numbers granted and not used or released, per register.
    pub outstanding_by_device: std::collections::BTreeMap<String, u64>,
    /// Sales beyond the first on one number (must be 0).
    pub duplicates: u64,
}

/// The fiscal section of the health report: per series, days to expiry (in
/// Santo Domingo time; a series may serve stores of several zones), numbers
/// still free, outstanding per register, duplicates.
pub(crate) fn health(conn: &Conn, now: i64) -> Result<Vec<FiscalHealth>, StorageError> {
    let mut out = Vec::new();
    for r in reports(conn, None)? {
        let a = &r.accounting;
        let mut by_device = std::collections::BTreeMap::new();
        for run in &a.runs {
            if run.status == fiscal::NumberStatus::Outstanding {
                if let Some(d) = run.device {
                    *by_device.entry(d.to_string()).or_insert(0) += run.last - run.first + 1;
                }
            }
        }
        let end = r.series.valid_until_ms(UtcOffset::SANTO_DOMINGO);
        out.push(FiscalHealth {
            prefix: r.series.prefix.clone(),
            series_id: r.series.series_id.clone(),
            valid_until: r.series.valid_until.clone(),
            days_to_expiry: end.saturating_sub(now).div_euclid(86_400_000),
            free: a.free_runs().iter().map(|(x, y)| y - x + 1).sum(),
            outstanding_by_device: by_device,
            duplicates: a.duplicates,
        });
    }
    Ok(out)
}
