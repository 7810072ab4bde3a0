//! Prometheus metrics for `GET /metrics` (text format, admin token).
//!
//! Counted: every request by route and status, every rejection by its DESIGN
//! error code, events accepted and duplicated by pushes; gauges: writer queue
//! depth and requests in flight; a histogram of request durations per route.

use std::sync::atomic::AtomicU64;

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
    /// Request durations.
    pub durations: Family<Route, Histogram, fn() -> Histogram>,
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
        let durations =
            Family::<Route, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
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
            "Request durations by route",
            durations.clone(),
        );
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
        }
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
