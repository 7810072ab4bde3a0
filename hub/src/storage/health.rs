//! What the health report is computed from ([`HealthInputs`]): devices, held
//! events, conflicts, fiscal series, oversells, the outbox, stock alerts.
//!
//! Feature module: reads only; the report itself is [`crate::health`].

use crate::storage::codec::{i, u};
use crate::storage::db::Conn;
use crate::storage::devices::{list_devices, DeviceInfo};
use crate::storage::error::StorageError;
use crate::storage::fiscal::FiscalHealth;
use crate::storage::ingest::events::missing_of;
use crate::storage::outbox::OutboxHealth;
use serde::Serialize;

/// What the health report is computed from.
#[derive(Debug, Clone, Default)]
pub struct HealthInputs {
    /// Per device.
    pub devices: Vec<DeviceInfo>,
    /// Held events.
    pub held_events: u64,
    /// When the oldest held event was stored.
    pub oldest_held_since_ms: Option<i64>,
    /// The oldest held events (at most [`HELD_LISTED`]) with what they miss:
    /// orphans until their dependencies arrive. They are kept, never
    /// dropped, and applied when the dependencies come.
    pub held: Vec<HeldEvent>,
    /// Registers holding more events than the alert threshold (their open
    /// `held_events_threshold` alert) with how many they hold now.
    pub held_over_threshold: Vec<(String, u64)>,
    /// Conflicts resolved by an operator.
    pub conflicts_resolved: u64,
    /// Open conflicts per reason.
    pub conflicts_by_reason: std::collections::BTreeMap<String, u64>,
    /// Conflicts detected in the last 24 h.
    pub conflicts_24h: u64,
    /// Conflicts not resolved.
    pub conflicts_open: u64,
    /// Fiscal numbers used by more than one sale.
    pub fiscal_duplicates: u64,
    /// Per fiscal series: what is left, where, and until when.
    pub fiscal_series: Vec<FiscalHealth>,
    /// Products with negative stock.
    pub negative_stock: u64,
    /// Sale lines sold beyond a quota (`warn`).
    pub oversells: u64,
    /// Stock alerts nobody acknowledged or resolved yet.
    pub stock_alerts_open: u64,
    /// Open alerts (mismatches, token reuse).
    pub open_alerts: u64,
    /// The tax-authority outbox.
    pub outbox: OutboxHealth,
    /// The hub's e-CF signing certificate: not in the database; filled by
    /// `AppState::health_inputs` from the data directory (`Missing` here).
    pub certificate: crate::certificate::CertificateState,
    /// Payments: not read here (it needs the confirmation deadline); filled
    /// by `AppState::health_inputs` (empty here).
    pub payments: crate::storage::PaymentsHealth,
}

/// How many held events the health report lists.
pub const HELD_LISTED: usize = 50;

/// A held event in the health report.
#[derive(Debug, Clone, Serialize)]
pub struct HeldEvent {
    /// The event.
    pub event_id: String,
    /// Its register.
    pub device: String,
    /// Its seq.
    pub seq: u64,
    /// Its kind.
    pub kind: String,
    /// When stored.
    pub held_since_ms: i64,
    /// The dependencies it waits for.
    pub missing: Vec<String>,
}

pub(crate) fn health_inputs(conn: &Conn, now: i64) -> Result<HealthInputs, StorageError> {
    let devices = list_devices(conn, None, now)?;
    let (held_events, oldest): (i64, Option<i64>) =
        conn.query_row("SELECT COUNT(*), MIN(held_since_ms) FROM held", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let count = |sql: &str, p: &[&dyn crate::storage::db::ToValue]| -> Result<u64, StorageError> {
        Ok(u(conn.query_row(sql, p, |r| r.get(0))?))
    };
    let mut held = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT e.event_id, e.device_id, e.seq, e.kind, h.held_since_ms, h.event_row
             FROM held h JOIN events e ON e.id = h.event_row
             ORDER BY h.held_since_ms, h.event_row LIMIT $1",
        )?;
        let mut rs = stmt.query([i(HELD_LISTED as u64)])?;
        while let Some(r) = rs.next()? {
            held.push(HeldEvent {
                event_id: r.get(0)?,
                device: r.get(1)?,
                seq: u(r.get(2)?),
                kind: r.get(3)?,
                held_since_ms: r.get(4)?,
                missing: missing_of(conn, r.get(5)?)?
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            });
        }
    }
    let mut held_over_threshold = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT e.device_id, COUNT(*) FROM held h JOIN events e ON e.id = h.event_row
             WHERE e.device_id IN (SELECT device_id FROM alerts WHERE kind = $1 AND closed_ms IS NULL)
             GROUP BY e.device_id ORDER BY e.device_id",
        )?;
        let mut rs = stmt.query([crate::storage::ingest::push::HELD_ALERT])?;
        while let Some(r) = rs.next()? {
            held_over_threshold.push((r.get(0)?, u(r.get(1)?)));
        }
    }
    let all = crate::storage::conflicts::list(conn, crate::storage::conflicts::StateFilter::All)?;
    let mut conflicts_by_reason = std::collections::BTreeMap::new();
    for c in all.iter().filter(|c| c.state == "open") {
        *conflicts_by_reason
            .entry(c.reason.as_str().to_owned())
            .or_insert(0) += 1;
    }
    Ok(HealthInputs {
        devices,
        held_events: u(held_events),
        oldest_held_since_ms: oldest,
        held,
        held_over_threshold,
        conflicts_resolved: all.iter().filter(|c| c.state == "resolved").count() as u64,
        conflicts_by_reason,
        conflicts_24h: count(
            "SELECT COUNT(*) FROM conflicts WHERE detected_ms > $1",
            &[&(now - 86_400_000)],
        )?,
        conflicts_open: all.iter().filter(|c| c.state == "open").count() as u64,
        fiscal_duplicates: count(
            "SELECT COUNT(*) FROM conflicts WHERE reason = 'duplicate_fiscal_number'",
            &[],
        )?,
        fiscal_series: crate::storage::fiscal::health(conn, now)?,
        oversells: count("SELECT COUNT(*) FROM p_oversells", &[])?,
        outbox: crate::storage::outbox::health(conn)?,
        certificate: crate::certificate::CertificateState::Missing,
        payments: crate::storage::PaymentsHealth::default(),
        stock_alerts_open: crate::storage::escrow::alerts(conn)?
            .iter()
            .filter(|a| a.state == "open")
            .count() as u64,
        negative_stock: count("SELECT COUNT(*) FROM v_stock WHERE qty_milli < 0", &[])?,
        open_alerts: count("SELECT COUNT(*) FROM alerts WHERE closed_ms IS NULL", &[])?,
    })
}
