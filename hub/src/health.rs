//! The health report of `GET /v1/health` (DESIGN.md "Health report"): `overall`
//! (`healthy | degraded | critical`), with sections sync, consistency,
//! conflicts, fiscal and stock (plus tax_authority and payments), and the
//! reasons behind `overall`.
//!
//! Rules: **critical** when a fiscal number is used twice or a device is
//! quarantined (history was contradicted), or when electronic series (`E…`)
//! are loaded and the hub's e-CF certificate is missing, unreadable, expired
//! or not yet valid (head office could not sign an `ANECF` or DGII's seed);
//! **degraded** when the certificate expires within
//! [`caja_shared::ecf::certificate::EXPIRY_WARNING_DAYS`] days (or is
//! unusable while no electronic series is loaded), when events are held
//! for more than [`HELD_AGE_DEGRADED_MS`], conflicts are open, a device's clock
//! is more than [`SKEW_DEGRADED_MS`] off, stock is negative or an alert is open,
//! a payment intent is pending past the confirmation deadline, an offline
//! card confirmation matches no recorded payment, or a payment webhook was
//! rejected in the last 24 h for a reason a person must look at;
//! otherwise **healthy**.
//!
//! Architecture invariant: pure; computed from [`HealthInputs`] and `now_ms`.

use serde::Serialize;

use crate::storage::HealthInputs;

/// Held events older than this degrade health.
pub const HELD_AGE_DEGRADED_MS: i64 = 5 * 60_000;
/// A device clock further off than this degrades health.
pub const SKEW_DEGRADED_MS: i64 = 60_000;
/// A device silent for longer is shown with an open circuit (hub's view).
pub const SILENT_MS: i64 = 15 * 60_000;
/// A fiscal document still undecided by the tax authority after this long
/// degrades health (the authority or the link to it is failing).
pub const OUTBOX_AGE_DEGRADED_MS: i64 = 15 * 60_000;
/// A fiscal series this close to its valid-until date degrades health.
pub const FISCAL_EXPIRY_WARN_DAYS: i64 = 15;

/// `healthy | degraded | critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    /// All good.
    Healthy,
    /// Something needs attention.
    Degraded,
    /// Something is wrong now.
    Critical,
}

/// One device in the sync section.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceHealth {
    /// Device.
    pub device: String,
    /// Store.
    pub store: String,
    /// Name.
    pub name: String,
    /// Last push.
    pub last_push_ms: Option<i64>,
    /// Unsynced events the node reported with its last push.
    pub backlog: u64,
    /// Node clock minus hub clock at its last signed request.
    pub clock_skew_ms: Option<i64>,
    /// Hub-side view of the link: `closed` (pushing), `open` (silent for more
    /// than 15 min or never pushed). The node's own breaker state is not sent.
    pub circuit: &'static str,
    /// `active`, `quarantined` or `revoked`.
    pub status: &'static str,
    /// Highest contiguous seq the hub holds.
    pub acked_seq: u64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The summary.
    pub overall: Overall,
    /// Why `overall` is not healthy.
    pub reasons: Vec<String>,
    /// The hub's clock.
    pub hub_time_ms: i64,
    /// Per device.
    pub sync: serde_json::Value,
    /// Held events and quarantines.
    pub consistency: serde_json::Value,
    /// Conflicts.
    pub conflicts: serde_json::Value,
    /// Fiscal numbers.
    pub fiscal: serde_json::Value,
    /// Stock.
    pub stock: serde_json::Value,
    /// The tax-authority outbox: documents per state, the backlog, the age
    /// of the oldest undecided one, rejections.
    pub tax_authority: serde_json::Value,
    /// Card and QR payments: intents pending past the confirmation deadline,
    /// offline confirmations no recorded payment claims, webhook rejections,
    /// offline card payments per verdict.
    pub payments: serde_json::Value,
}

/// Computes the report, a device silent for more than [`SILENT_MS`] shown
/// with an open circuit.
pub fn report(inputs: &HealthInputs, now_ms: i64) -> HealthReport {
    report_with(inputs, now_ms, SILENT_MS)
}

/// Computes the report, a device silent for more than `silent_ms` shown with
/// an open circuit (`register_silent_ms` in the hub's configuration).
pub fn report_with(inputs: &HealthInputs, now_ms: i64, silent_ms: i64) -> HealthReport {
    let mut overall = Overall::Healthy;
    let mut reasons = Vec::new();
    let mut flag = |level: Overall, why: String, overall: &mut Overall| {
        *overall = (*overall).max(level);
        reasons.push(why);
    };
    let mut devices = Vec::new();
    let mut quarantined = Vec::new();
    for d in &inputs.devices {
        let status = if d.revoked_at_ms.is_some() {
            "revoked"
        } else if d.quarantined_at_ms.is_some() {
            "quarantined"
        } else {
            "active"
        };
        if status == "quarantined" {
            quarantined.push(d.device.to_string());
        }
        let pushing = d.last_push_ms.is_some_and(|t| now_ms - t <= silent_ms);
        if status == "active" {
            if let Some(skew) = d.clock_skew_ms.filter(|s| s.abs() > SKEW_DEGRADED_MS) {
                flag(
                    Overall::Degraded,
                    format!("device {} clock is {skew} ms off", d.device),
                    &mut overall,
                );
            }
        }
        devices.push(DeviceHealth {
            device: d.device.to_string(),
            store: d.store.to_string(),
            name: d.name.clone(),
            last_push_ms: d.last_push_ms,
            backlog: d.backlog,
            clock_skew_ms: d.clock_skew_ms,
            circuit: if pushing { "closed" } else { "open" },
            status,
            acked_seq: d.acked_seq,
        });
    }
    if !quarantined.is_empty() {
        flag(
            Overall::Critical,
            format!(
                "{} device(s) quarantined after a chain mismatch",
                quarantined.len()
            ),
            &mut overall,
        );
    }
    if inputs.fiscal_duplicates > 0 {
        flag(
            Overall::Critical,
            format!("{} fiscal number(s) used twice", inputs.fiscal_duplicates),
            &mut overall,
        );
    }
    let oldest_age = inputs.oldest_held_since_ms.map(|t| (now_ms - t).max(0));
    if let Some(age) = oldest_age.filter(|a| *a > HELD_AGE_DEGRADED_MS) {
        flag(
            Overall::Degraded,
            format!(
                "{} event(s) held for dependencies, oldest for {age} ms",
                inputs.held_events
            ),
            &mut overall,
        );
    }
    for (device, held) in &inputs.held_over_threshold {
        flag(
            Overall::Degraded,
            format!("register {device} holds {held} event(s) waiting for dependencies, beyond the alert threshold"),
            &mut overall,
        );
    }
    if inputs.conflicts_open > 0 {
        flag(
            Overall::Degraded,
            format!("{} open conflict(s)", inputs.conflicts_open),
            &mut overall,
        );
    }
    for s in &inputs.fiscal_series {
        if s.days_to_expiry >= 0 && s.days_to_expiry < FISCAL_EXPIRY_WARN_DAYS {
            flag(
                Overall::Degraded,
                format!(
                    "fiscal series {} ({}) expires in {} day(s)",
                    s.prefix, s.series_id, s.days_to_expiry
                ),
                &mut overall,
            );
        }
    }
    if inputs.stock_alerts_open > 0 {
        flag(
            Overall::Degraded,
            format!("{} open stock alert(s)", inputs.stock_alerts_open),
            &mut overall,
        );
    }
    if inputs.negative_stock > 0 {
        flag(
            Overall::Degraded,
            format!("{} product(s) with negative stock", inputs.negative_stock),
            &mut overall,
        );
    }
    if inputs.open_alerts > 0 {
        flag(
            Overall::Degraded,
            format!("{} open alert(s)", inputs.open_alerts),
            &mut overall,
        );
    }
    let outbox = &inputs.outbox;
    let outbox_age = outbox.oldest_pending_since_ms.map(|t| (now_ms - t).max(0));
    if let Some(age) = outbox_age.filter(|a| *a > OUTBOX_AGE_DEGRADED_MS) {
        flag(
            Overall::Degraded,
            format!(
                "{} fiscal document(s) not yet decided by the tax authority, oldest for {age} ms",
                outbox.backlog
            ),
            &mut overall,
        );
    }
    if outbox.rejected > 0 {
        flag(
            Overall::Degraded,
            format!(
                "{} fiscal document(s) rejected by the tax authority",
                outbox.rejected
            ),
            &mut overall,
        );
    }
    let pay = &inputs.payments;
    if pay.intents_pending_past_deadline > 0 {
        flag(
            Overall::Degraded,
            format!(
                "{} payment intent(s) pending past the {} ms confirmation deadline",
                pay.intents_pending_past_deadline, pay.deadline_ms
            ),
            &mut overall,
        );
    }
    if pay.unmatched_confirmations > 0 {
        flag(
            Overall::Degraded,
            format!(
                "{} offline card confirmation(s) from the provider match no recorded payment",
                pay.unmatched_confirmations
            ),
            &mut overall,
        );
    }
    if pay.webhook_rejections_alerting_24h > 0 {
        flag(
            Overall::Degraded,
            format!(
                "{} payment webhook(s) rejected in the last 24 h for a person to look at",
                pay.webhook_rejections_alerting_24h
            ),
            &mut overall,
        );
    }
    let electronic = inputs
        .fiscal_series
        .iter()
        .any(|s| s.days_to_expiry >= 0 && s.prefix.starts_with('E'));
    let certificate = inputs.certificate.health(now_ms);
    let unusable = if electronic {
        Overall::Critical
    } else {
        Overall::Degraded
    };
    match certificate.status {
        "expires_soon" => flag(
            Overall::Degraded,
            format!(
                "the hub's e-CF certificate expires in {} day(s)",
                certificate.days_left.unwrap_or(0)
            ),
            &mut overall,
        ),
        "missing" if electronic => flag(
            Overall::Critical,
            "no e-CF certificate installed on the hub while electronic series are loaded".into(),
            &mut overall,
        ),
        "expired" | "not_yet_valid" | "unreadable" => flag(
            unusable,
            format!("the hub's e-CF certificate is {}", certificate.status),
            &mut overall,
        ),
        _ => {}
    }
    HealthReport {
        overall,
        reasons,
        hub_time_ms: now_ms,
        sync: serde_json::json!({ "devices": devices }),
        consistency: serde_json::json!({
            "held_events": inputs.held_events,
            "oldest_held_age_ms": oldest_age,
            "held": inputs.held.iter().map(|h| serde_json::json!({
                "event_id": h.event_id,
                "device": h.device,
                "seq": h.seq,
                "kind": h.kind,
                "age_ms": (now_ms - h.held_since_ms).max(0),
                "missing": h.missing,
            })).collect::<Vec<_>>(),
            "quarantined_devices": quarantined,
            "held_over_threshold": inputs.held_over_threshold.iter().map(|(device, held)| serde_json::json!({
                "device": device,
                "held": held,
            })).collect::<Vec<_>>(),
        }),
        conflicts: serde_json::json!({
            "last_24h": inputs.conflicts_24h,
            "open": inputs.conflicts_open,
            "resolved": inputs.conflicts_resolved,
            "open_by_reason": inputs.conflicts_by_reason,
        }),
        fiscal: serde_json::json!({
            "active_series": inputs.fiscal_series.iter().filter(|s| s.days_to_expiry >= 0).count(),
            "series": inputs.fiscal_series,
            "duplicates": inputs.fiscal_duplicates,
            "certificate": certificate,
        }),
        stock: serde_json::json!({
            "oversells": inputs.oversells,
            "negative_products": inputs.negative_stock,
            "open_alerts": inputs.stock_alerts_open,
        }),
        tax_authority: serde_json::json!({
            "backlog": outbox.backlog,
            "oldest_pending_age_ms": outbox_age,
            "rejected": outbox.rejected,
            "failing": outbox.failing,
            "by_state": outbox.by_state,
        }),
        payments: serde_json::json!({
            "deadline_ms": pay.deadline_ms,
            "intents_pending": pay.intents_pending,
            "intents_pending_past_deadline": pay.intents_pending_past_deadline,
            "oldest_pending_age_ms": pay.oldest_pending_created_ms.map(|t| (now_ms - t).max(0)),
            "unmatched_confirmations": pay.unmatched_confirmations,
            "webhook_rejections": pay.webhook_rejections,
            "webhook_rejections_alerting_24h": pay.webhook_rejections_alerting_24h,
            "rejections_by_reason": pay.rejections_by_reason,
            "card_checks": pay.card_checks,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_follows_the_rules() {
        let now = 1_000_000_000;
        let mut inputs = HealthInputs::default();
        assert_eq!(report(&inputs, now).overall, Overall::Healthy);
        inputs.held_events = 2;
        inputs.oldest_held_since_ms = Some(now - 1000);
        assert_eq!(report(&inputs, now).overall, Overall::Healthy);
        inputs.oldest_held_since_ms = Some(now - HELD_AGE_DEGRADED_MS - 1);
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Degraded);
        assert_eq!(
            r.consistency["oldest_held_age_ms"],
            HELD_AGE_DEGRADED_MS + 1
        );
        inputs.fiscal_duplicates = 1;
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Critical);
        assert_eq!(r.reasons.len(), 2);
    }

    fn series(prefix: &str) -> crate::storage::FiscalHealth {
        crate::storage::FiscalHealth {
            prefix: prefix.into(),
            series_id: "s1".into(),
            valid_until: "2099-12-31".into(),
            days_to_expiry: 100,
            free: 10,
            outstanding_by_device: Default::default(),
            duplicates: 0,
        }
    }

    #[test]
    fn the_certificate_section_and_its_states() {
        use crate::certificate::CertificateState;
        use caja_shared::ecf::certificate::CertInfo;
        const DAY: i64 = 86_400_000;
        let now = 1_000 * DAY;
        let cert = |not_after_ms| {
            CertificateState::Installed(CertInfo {
                subject: "CN=Firmante".into(),
                issuer: "CN=CA".into(),
                serial_hex: "01".into(),
                not_before_ms: now - 10 * DAY,
                not_after_ms,
                subject_tax_id: None,
            })
        };
        let mut inputs = HealthInputs::default();
        // No certificate and no electronic series: nothing to say.
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Healthy);
        assert_eq!(r.fiscal["certificate"]["present"], false);
        assert_eq!(r.fiscal["certificate"]["status"], "missing");
        inputs.fiscal_series.push(series("B02"));
        assert_eq!(report(&inputs, now).overall, Overall::Healthy);
        // Electronic series loaded: missing is critical.
        inputs.fiscal_series.push(series("E32"));
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Critical);
        assert!(
            r.reasons[0].contains("no e-CF certificate"),
            "{:?}",
            r.reasons
        );
        // Valid for long: healthy, facts shown.
        inputs.certificate = cert(now + 200 * DAY);
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Healthy);
        let c = &r.fiscal["certificate"];
        assert_eq!(c["present"], true);
        assert_eq!(c["subject"], "CN=Firmante");
        assert_eq!(c["not_after_ms"], now + 200 * DAY);
        assert_eq!(c["days_left"], 200);
        assert_eq!(c["status"], "valid");
        // 30 days or fewer: degraded.
        inputs.certificate = cert(now + 30 * DAY);
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Degraded);
        assert_eq!(r.fiscal["certificate"]["status"], "expires_soon");
        inputs.certificate = cert(now + 31 * DAY);
        assert_eq!(report(&inputs, now).overall, Overall::Healthy);
        // Expired: critical with electronic series, degraded without.
        inputs.certificate = cert(now - DAY);
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Critical);
        assert_eq!(r.fiscal["certificate"]["status"], "expired");
        assert_eq!(r.fiscal["certificate"]["days_left"], -1);
        inputs.fiscal_series.retain(|s| !s.prefix.starts_with('E'));
        assert_eq!(report(&inputs, now).overall, Overall::Degraded);
        inputs.certificate = CertificateState::Unreadable("mode 0644".into());
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Degraded);
        assert_eq!(r.fiscal["certificate"]["error"], "mode 0644");
    }

    #[test]
    fn the_outbox_degrades_when_old_or_rejected() {
        let now = 1_000_000_000;
        let mut inputs = HealthInputs::default();
        inputs.outbox.backlog = 3;
        inputs.outbox.oldest_pending_since_ms = Some(now - 1000);
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Healthy);
        assert_eq!(r.tax_authority["backlog"], 3);
        assert_eq!(r.tax_authority["oldest_pending_age_ms"], 1000);
        inputs.outbox.oldest_pending_since_ms = Some(now - OUTBOX_AGE_DEGRADED_MS - 1);
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Degraded);
        assert!(r.reasons[0].contains("not yet decided"), "{:?}", r.reasons);
        inputs.outbox.oldest_pending_since_ms = None;
        inputs.outbox.rejected = 1;
        let r = report(&inputs, now);
        assert_eq!(r.overall, Overall::Degraded);
        assert_eq!(r.tax_authority["rejected"], 1);
    }
}
