//! Prometheus metrics for `GET /metrics` (text format, admin token).
//!
//! Counted: every request by route and status, every rejection by its DESIGN
//! error code, events accepted and duplicated by pushes; gauges: writer queue
//! depth and requests in flight; a histogram of request durations by route
//! and status. The operator's gauges (`docs/metrics.md`) are set from the
//! health report's inputs at each scrape ([`Metrics::set_state`]): silent
//! registers, held events and the oldest one's age, quarantined devices,
//! open conflicts by reason, open stock alerts, fiscal numbers left per
//! series prefix, certificate days to expiry, audit log size and its last
//! signed head's age, backup age.
//!
//! Invariant: every label takes values from a bounded set — a route
//! *template* (axum's `MatchedPath`, never the raw path), an HTTP status, a
//! DESIGN error code, a conflict reason, a fiscal series prefix — never a
//! device, store or document id. A gauge whose fact is unknown (no
//! certificate, no signed head, no backup stamp) has no sample rather than
//! a made-up value.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    /// The route template, e.g. `/v1/sync/push`.
    pub route: String,
    /// HTTP status.
    pub status: String,
}

/// Labels of a rejection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Code {
    /// DESIGN error code, e.g. `replayed_nonce`.
    pub code: String,
}

/// Labels of a duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    /// The route template.
    pub route: String,
}

/// Labels of a tax-authority call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboxCall {
    /// `submit`, `lookup`, `status` or `build`.
    pub call: String,
    /// `tracked`, `decided`, `in_process`, `found`, `absent`, `not_found`,
    /// `in_doubt` or `failed`.
    pub result: String,
}

/// Labels of an open conflict count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The conflict reason, e.g. `duplicate_fiscal_number`.
    pub reason: String,
}

/// Labels of a fiscal series gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Prefix {
    /// The series prefix, e.g. `B02` or `E32` (every series with that prefix
    /// summed).
    pub prefix: String,
}

/// A gauge with no labels that may have no sample (the fact is unknown).
type Optional = Family<Vec<(String, String)>, Gauge<i64, AtomicI64>>;

/// The file in the hub's data directory where `caja-hub backup` records the
/// time of its last complete backup (Unix ms, decimal text).
pub const BACKUP_STAMP_FILE: &str = "backup-stamp";

/// What the operator's gauges are set from at a scrape.
#[derive(Debug, Clone, Default)]
pub struct StateInputs {
    /// The health report's inputs (with the certificate read).
    pub health: crate::storage::HealthInputs,
    /// The audit log.
    pub audit: crate::storage::AuditGauges,
    /// The last backup's time from [`BACKUP_STAMP_FILE`], if any.
    pub last_backup_ms: Option<i64>,
    /// `register_silent_ms` of the configuration.
    pub register_silent_ms: i64,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The hub's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RouteStatus, Counter>,
    /// Rejections by code.
    pub rejections: Family<Code, Counter>,
    /// Events newly stored by pushes.
    pub events_accepted: Counter,
    /// Events pushed again.
    pub events_duplicate: Counter,
    /// Events held for dependencies at the end of their push.
    pub events_held: Counter,
    /// Push bodies parsed (each after its request was authenticated).
    pub pushes_parsed: Counter,
    /// Jobs the writer ran (set when scraped).
    pub writer_jobs: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Writer jobs that panicked (caught, rolled back, answered 500; set
    /// when scraped).
    pub writer_panics: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Writer queue depth (set when scraped).
    pub queue_depth: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Requests in flight.
    pub in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Milliseconds the writer spent in transactions (set when scraped); its
    /// rate near 1000 per second means the writer is saturated.
    pub writer_busy_ms: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Request durations by route template and status.
    pub durations: Family<RouteStatus, Histogram, fn() -> Histogram>,
    /// Payment webhooks by outcome (`applied`, `held`, `rejected`,
    /// `recorded`, `duplicate`; the label is named `code`).
    pub payment_webhooks: Family<Code, Counter>,
    /// Tax-authority calls of the outbox workers by call and result.
    pub outbox_calls: Family<OutboxCall, Counter>,
    /// Fiscal documents not yet decided by the tax authority (set when
    /// scraped).
    pub outbox_backlog: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Age of the oldest undecided fiscal document, seconds (set when
    /// scraped; 0 when none).
    pub outbox_oldest_pending_seconds: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Fiscal documents the tax authority rejected (set when scraped).
    pub outbox_rejected: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// The operator's gauges, set at each scrape.
    pub state: StateGauges,
}

/// The operator's gauges (`docs/metrics.md`), set from [`StateInputs`].
#[derive(Debug, Default)]
pub struct StateGauges {
    registers_active: Gauge<i64, AtomicI64>,
    registers_silent: Gauge<i64, AtomicI64>,
    devices_quarantined: Gauge<i64, AtomicI64>,
    held_events: Gauge<i64, AtomicI64>,
    held_oldest_age: Gauge<i64, AtomicI64>,
    conflicts_open: Family<Reason, Gauge<i64, AtomicI64>>,
    stock_alerts_open: Gauge<i64, AtomicI64>,
    negative_stock: Gauge<i64, AtomicI64>,
    fiscal_duplicates: Gauge<i64, AtomicI64>,
    fiscal_free: Family<Prefix, Gauge<i64, AtomicI64>>,
    fiscal_outstanding: Family<Prefix, Gauge<i64, AtomicI64>>,
    fiscal_days_to_expiry: Family<Prefix, Gauge<i64, AtomicI64>>,
    certificate_days: Optional,
    audit_entries: Gauge<i64, AtomicI64>,
    audit_unsigned: Gauge<i64, AtomicI64>,
    audit_head_age: Optional,
    backup_age: Optional,
    // — HUBPERF —
    audit_staged: Gauge<i64, AtomicI64>,
    audit_staged_oldest_age: Gauge<i64, AtomicI64>,
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn seconds(ms: i64) -> i64 {
    ms.max(0) / 1000
}

fn set_optional(g: &Optional, v: Option<i64>) {
    g.clear();
    if let Some(v) = v {
        g.get_or_create(&Vec::new()).set(v);
    }
}

impl StateGauges {
    fn register(&self, r: &mut Registry) {
        let gauges: [(&str, &str, &Gauge<i64, AtomicI64>); 10] = [
            (
                "registers_active",
                "Registers neither revoked nor quarantined",
                &self.registers_active,
            ),
            (
                "registers_silent",
                "Active registers with no push for longer than register_silent_ms (or never)",
                &self.registers_silent,
            ),
            (
                "devices_quarantined",
                "Devices quarantined after a chain mismatch",
                &self.devices_quarantined,
            ),
            (
                "held_events",
                "Events held now for their causal dependencies",
                &self.held_events,
            ),
            (
                "held_events_oldest_age_seconds",
                "Age of the oldest held event (0 when none)",
                &self.held_oldest_age,
            ),
            (
                "stock_alerts_open",
                "Stock alerts nobody acknowledged or resolved",
                &self.stock_alerts_open,
            ),
            (
                "stock_negative_products",
                "Products with negative stock",
                &self.negative_stock,
            ),
            (
                "fiscal_duplicate_numbers",
                "Fiscal numbers used by more than one sale (must be 0)",
                &self.fiscal_duplicates,
            ),
            (
                "audit_log_entries",
                "Entries in the audit log",
                &self.audit_entries,
            ),
            (
                "audit_log_unsigned_entries",
                "Audit entries after the latest signed tree head",
                &self.audit_unsigned,
            ),
        ];
        for (name, help, g) in gauges {
            r.register(name, help, g.clone());
        }
        r.register(
            "conflicts_open",
            "Open conflicts by reason",
            self.conflicts_open.clone(),
        );
        r.register(
            "fiscal_numbers_free",
            "Fiscal numbers the hub can still grant, per series prefix (series not expired)",
            self.fiscal_free.clone(),
        );
        r.register(
            "fiscal_numbers_outstanding",
            "Fiscal numbers granted to registers and not yet used or released, per series prefix",
            self.fiscal_outstanding.clone(),
        );
        r.register(
            "fiscal_series_days_to_expiry",
            "Days until the soonest-expiring unexpired series of the prefix ends",
            self.fiscal_days_to_expiry.clone(),
        );
        r.register(
            "certificate_days_to_expiry",
            "Days until the hub's e-CF certificate expires (no sample: none installed or unreadable)",
            self.certificate_days.clone(),
        );
        r.register(
            "audit_signed_head_age_seconds",
            "Age of the latest signed tree head (no sample: none signed yet)",
            self.audit_head_age.clone(),
        );
        r.register(
            "backup_age_seconds",
            "Age of the last complete backup from the data directory's backup-stamp (no sample: never recorded)",
            self.backup_age.clone(),
        );
        // — HUBPERF —
        r.register(
            "audit_staged_entries",
            "Audit entries staged and not yet sequenced into the log (PostgreSQL; 0 on SQLite)",
            self.audit_staged.clone(),
        );
        r.register(
            "audit_staged_oldest_age_seconds",
            "Age of the oldest staged audit entry (0 when none; the bound is 5 s)",
            self.audit_staged_oldest_age.clone(),
        );
    }

    /// Sets every gauge from `s` at `now_ms`.
    pub fn set(&self, s: &StateInputs, now_ms: i64) {
        let h = &s.health;
        let active = h
            .devices
            .iter()
            .filter(|d| d.revoked_at_ms.is_none() && d.quarantined_at_ms.is_none());
        let (mut n_active, mut silent) = (0, 0);
        for d in active {
            n_active += 1;
            if d.last_push_ms
                .is_none_or(|t| now_ms - t > s.register_silent_ms)
            {
                silent += 1;
            }
        }
        self.registers_active.set(n_active);
        self.registers_silent.set(silent);
        self.devices_quarantined.set(int(h
            .devices
            .iter()
            .filter(|d| d.revoked_at_ms.is_none() && d.quarantined_at_ms.is_some())
            .count() as u64));
        self.held_events.set(int(h.held_events));
        self.held_oldest_age
            .set(h.oldest_held_since_ms.map_or(0, |t| seconds(now_ms - t)));
        // Every reason has a sample (0 when none is open): a bounded set.
        self.conflicts_open.clear();
        for r in crate::conflict::ConflictReason::ALL {
            self.conflicts_open
                .get_or_create(&Reason {
                    reason: r.as_str().to_owned(),
                })
                .set(0);
        }
        for (reason, n) in &h.conflicts_by_reason {
            self.conflicts_open
                .get_or_create(&Reason {
                    reason: reason.clone(),
                })
                .set(int(*n));
        }
        self.stock_alerts_open.set(int(h.stock_alerts_open));
        self.negative_stock.set(int(h.negative_stock));
        self.fiscal_duplicates.set(int(h.fiscal_duplicates));
        let mut free: BTreeMap<&str, u64> = BTreeMap::new();
        let mut outstanding: BTreeMap<&str, u64> = BTreeMap::new();
        let mut expiry: BTreeMap<&str, i64> = BTreeMap::new();
        for f in h.fiscal_series.iter().filter(|f| f.days_to_expiry >= 0) {
            *free.entry(&f.prefix).or_default() += f.free;
            *outstanding.entry(&f.prefix).or_default() +=
                f.outstanding_by_device.values().sum::<u64>();
            let e = expiry.entry(&f.prefix).or_insert(f.days_to_expiry);
            *e = (*e).min(f.days_to_expiry);
        }
        for g in [
            &self.fiscal_free,
            &self.fiscal_outstanding,
            &self.fiscal_days_to_expiry,
        ] {
            g.clear();
        }
        let label = |p: &str| Prefix {
            prefix: p.to_owned(),
        };
        for (p, n) in free {
            self.fiscal_free.get_or_create(&label(p)).set(int(n));
        }
        for (p, n) in outstanding {
            self.fiscal_outstanding.get_or_create(&label(p)).set(int(n));
        }
        for (p, d) in expiry {
            self.fiscal_days_to_expiry.get_or_create(&label(p)).set(d);
        }
        set_optional(
            &self.certificate_days,
            match &h.certificate {
                crate::certificate::CertificateState::Installed(_) => {
                    h.certificate.health(now_ms).days_left
                }
                _ => None,
            },
        );
        self.audit_entries.set(int(s.audit.entries));
        self.audit_unsigned.set(int(s
            .audit
            .entries
            .saturating_sub(s.audit.signed_head_size)));
        set_optional(
            &self.audit_head_age,
            s.audit.signed_head_at_ms.map(|t| seconds(now_ms - t)),
        );
        set_optional(
            &self.backup_age,
            s.last_backup_ms.map(|t| seconds(now_ms - t)),
        );
        // — HUBPERF —
        self.audit_staged.set(int(s.audit.staged));
        self.audit_staged_oldest_age.set(
            s.audit
                .staged_oldest_at_ms
                .map_or(0, |t| seconds(now_ms - t)),
        );
    }
}

/// The last backup's time recorded in `data_dir`'s [`BACKUP_STAMP_FILE`]:
/// `None` when there is none or it holds no number. The stamp is decimal
/// Unix ms; a `last_backup_ms = N` line or a JSON object with
/// `"last_backup_ms"` is read too.
pub fn read_backup_stamp(data_dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(data_dir.join(BACKUP_STAMP_FILE)).ok()?;
    parse_backup_stamp(&text)
}

fn parse_backup_stamp(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Some(ms).filter(|ms| *ms > 0);
    }
    let after = &t[t.find("last_backup_ms")? + "last_backup_ms".len()..];
    let start = after.find(|c: char| c.is_ascii_digit())?;
    if !after[..start]
        .chars()
        .all(|c| matches!(c, ' ' | '=' | ':' | '"'))
    {
        return None;
    }
    let digits: String = after[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|ms: &i64| *ms > 0)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("caja_hub");
        let requests = Family::<RouteStatus, Counter>::default();
        let rejections = Family::<Code, Counter>::default();
        let events_accepted: Counter<u64, AtomicU64> = Counter::default();
        let events_duplicate: Counter<u64, AtomicU64> = Counter::default();
        let events_held: Counter<u64, AtomicU64> = Counter::default();
        let queue_depth = Gauge::default();
        let pushes_parsed: Counter<u64, AtomicU64> = Counter::default();
        let writer_jobs = Gauge::default();
        let writer_panics = Gauge::default();
        registry.register(
            "pushes_parsed",
            "Push bodies parsed (only after the request authenticated)",
            pushes_parsed.clone(),
        );
        registry.register(
            "writer_jobs",
            "Jobs the writer thread ran",
            writer_jobs.clone(),
        );
        registry.register(
            "writer_panics",
            "Writer jobs that panicked (rolled back, answered 500)",
            writer_panics.clone(),
        );
        let in_flight = Gauge::default();
        let writer_busy_ms = Gauge::default();
        let durations = Family::<RouteStatus, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        registry.register(
            "requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "rejections",
            "Rejected requests by error code",
            rejections.clone(),
        );
        registry.register(
            "events_accepted",
            "Events newly stored by pushes",
            events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events pushed again (no change)",
            events_duplicate.clone(),
        );
        registry.register(
            "events_held",
            "Pushed events held for their dependencies",
            events_held.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Jobs waiting for the SQLite writer",
            queue_depth.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being handled",
            in_flight.clone(),
        );
        registry.register(
            "writer_busy_milliseconds",
            "Time the SQLite writer spent in transactions",
            writer_busy_ms.clone(),
        );
        let payment_webhooks = Family::<Code, Counter>::default();
        registry.register(
            "payment_webhooks",
            "Payment provider webhooks by outcome",
            payment_webhooks.clone(),
        );
        let outbox_calls = Family::<OutboxCall, Counter>::default();
        registry.register(
            "outbox_calls",
            "Tax-authority calls of the outbox workers by call and result",
            outbox_calls.clone(),
        );
        let outbox_backlog = Gauge::default();
        registry.register(
            "outbox_backlog",
            "Fiscal documents not yet decided by the tax authority",
            outbox_backlog.clone(),
        );
        let outbox_oldest_pending_seconds = Gauge::default();
        registry.register(
            "outbox_oldest_pending_seconds",
            "Age of the oldest fiscal document not yet decided",
            outbox_oldest_pending_seconds.clone(),
        );
        let outbox_rejected = Gauge::default();
        registry.register(
            "outbox_rejected",
            "Fiscal documents the tax authority rejected",
            outbox_rejected.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request durations by route template and status",
            durations.clone(),
        );
        let state = StateGauges::default();
        state.register(&mut registry);
        Metrics {
            registry,
            requests,
            rejections,
            events_accepted,
            events_duplicate,
            events_held,
            queue_depth,
            pushes_parsed,
            writer_jobs,
            writer_panics,
            in_flight,
            writer_busy_ms,
            durations,
            payment_webhooks,
            outbox_calls,
            outbox_backlog,
            outbox_oldest_pending_seconds,
            outbox_rejected,
            state,
        }
    }

    /// Sets the operator's gauges before a scrape.
    pub fn set_state(&self, s: &StateInputs, now_ms: i64) {
        self.state.set(s, now_ms);
    }

    /// Counts a tax-authority call of an outbox worker.
    pub fn outbox_call(&self, call: &str, result: &str) {
        self.outbox_calls
            .get_or_create(&OutboxCall {
                call: call.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts a rejection.
    pub fn reject(&self, code: &str) {
        self.rejections
            .get_or_create(&Code {
                code: code.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_stamp_forms() {
        assert_eq!(
            parse_backup_stamp("1765000000000\n"),
            Some(1_765_000_000_000)
        );
        assert_eq!(parse_backup_stamp("last_backup_ms = 42\n"), Some(42));
        assert_eq!(
            parse_backup_stamp(r#"{"last_backup_ms": 42, "file": "x"}"#),
            Some(42)
        );
        assert_eq!(parse_backup_stamp(""), None);
        assert_eq!(parse_backup_stamp("0"), None);
        assert_eq!(parse_backup_stamp("last_backup_ms = soon 42"), None);
        assert_eq!(parse_backup_stamp("yesterday"), None);
    }

    #[test]
    fn the_staged_audit_backlog_is_a_gauge() {
        let m = Metrics::new();
        let mut s = StateInputs::default();
        s.audit.staged = 7;
        s.audit.staged_oldest_at_ms = Some(1_000);
        m.set_state(&s, 4_500);
        let text = m.encode();
        assert!(text.contains("caja_hub_audit_staged_entries 7"), "{text}");
        assert!(
            text.contains("caja_hub_audit_staged_oldest_age_seconds 3"),
            "{text}"
        );
        m.set_state(&StateInputs::default(), 4_500);
        let text = m.encode();
        assert!(text.contains("caja_hub_audit_staged_entries 0"), "{text}");
        assert!(
            text.contains("caja_hub_audit_staged_oldest_age_seconds 0"),
            "{text}"
        );
    }

    #[test]
    fn text_exposition_names_the_metrics() {
        let m = Metrics::new();
        m.reject("replayed_nonce");
        m.events_accepted.inc_by(3);
        let text = m.encode();
        assert!(
            text.contains("caja_hub_rejections_total{code=\"replayed_nonce\"} 1"),
            "{text}"
        );
        assert!(text.contains("caja_hub_events_accepted_total 3"), "{text}");
        assert!(
            text.contains("caja_hub_writer_busy_milliseconds 0"),
            "{text}"
        );
    }
}
