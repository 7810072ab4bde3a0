//! Resource caps one register may not exceed, and their pure checks: the
//! size of one event and of one signed document in a push, the bytes of a
//! pull page, a push's weight in the device's volume bucket, the fiscal
//! numbers outstanding on one device per series, and how often a replayed
//! enrollment token is recorded.
//!
//! Invariant: every cap's default sits above what a register following its
//! own rules produces (the largest event and signed document of a 500-line
//! sale, the register's own fiscal top-up, a full-speed catch-up), so a
//! well-behaved register never meets one; `hub/tests/caps.rs` measures the
//! register-side numbers against these defaults. Held events are never capped
//! (a chained event is a fact): beyond [`Caps::held_alert_threshold`] they
//! only raise an alert. Pure values and arithmetic; no SQL, no clock.
//! The threat model is in `docs/security.md`.

use crate::ingest::PushBatch;
use crate::ratelimit::RateLimit;
use crate::wire::ApiError;

/// The caps of the store's writer jobs and of the pull pages, from the hub's
/// configuration (`hub.toml`, [`crate::config::HubConfig::caps`]; see
/// [`crate::config::HubConfig`] for each field's meaning and why its default
/// is what it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Largest canonical event in a push.
    pub max_event_bytes: usize,
    /// Largest signed document (XML bytes, decoded) in a push.
    pub max_document_bytes: usize,
    /// Largest pull or own page, in event bytes (at least one event).
    pub max_page_bytes: usize,
    /// Per-device volume bucket, in weight units (see [`Caps::push_weight`]).
    pub push_rate_limit: RateLimit,
    /// Bytes of a push body that weigh as much as one event.
    pub push_bytes_per_unit: usize,
    /// Fiscal numbers granted and not yet used or released, per device and
    /// series prefix, beyond which a range request is refused.
    pub max_outstanding_fiscal: u64,
    /// Held events per device beyond which head office is alerted.
    pub held_alert_threshold: u64,
    /// A replayed enrollment token is audited and alerted at most once per
    /// token in this window.
    pub enroll_replay_window_ms: i64,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps::DEFAULT
    }
}

/// Why a push breaks a size cap: the 413 answer.
fn too_large(field: String, what: &str, size: usize, limit: usize) -> ApiError {
    ApiError::too_large_field(
        field,
        format!("{what} is {size} bytes, over the limit of {limit} bytes"),
    )
}

impl Caps {
    /// The defaults of `hub.toml` (the reasons are on the fields of
    /// [`crate::config::HubConfig`]).
    pub const DEFAULT: Caps = Caps {
        max_event_bytes: 1024 * 1024,
        max_document_bytes: 1024 * 1024,
        max_page_bytes: 4 * 1024 * 1024,
        push_rate_limit: RateLimit {
            burst: 100_000,
            per_minute: 1_800_000,
        },
        push_bytes_per_unit: 2048,
        max_outstanding_fiscal: 5_000,
        held_alert_threshold: 1_000,
        enroll_replay_window_ms: 3_600_000,
    };

    /// 413 `too_large` naming the first event (`events[i]`) or signed
    /// document (`documents[j].xml`) over its cap.
    pub fn check_push_sizes(&self, batch: &PushBatch) -> Result<(), ApiError> {
        for (i, e) in batch.events.iter().enumerate() {
            let size = e.event.canonical_bytes().len();
            if size > self.max_event_bytes {
                return Err(too_large(
                    format!("events[{i}]"),
                    "the event",
                    size,
                    self.max_event_bytes,
                ));
            }
        }
        for (j, d) in batch.documents.iter().enumerate() {
            if d.xml.len() > self.max_document_bytes {
                return Err(too_large(
                    format!("documents[{j}].xml"),
                    "the signed document",
                    d.xml.len(),
                    self.max_document_bytes,
                ));
            }
        }
        Ok(())
    }

    /// A push's weight in the device's volume bucket: one unit per event
    /// plus one per `push_bytes_per_unit` bytes of body (rounded up), never
    /// more than the bucket holds (so one push within the body limit can
    /// always pass once the bucket is full).
    pub fn push_weight(&self, events: usize, body_bytes: usize) -> u32 {
        let per = self.push_bytes_per_unit.max(1);
        let by_bytes = body_bytes.div_ceil(per);
        let units = events.saturating_add(by_bytes);
        u32::try_from(units)
            .unwrap_or(u32::MAX)
            .min(self.push_rate_limit.burst)
            .max(1)
    }

    /// Whether a device holding `outstanding` numbers of a series may be
    /// granted `count` more.
    pub fn fiscal_grant_fits(&self, outstanding: u64, count: u64) -> bool {
        outstanding.saturating_add(count) <= self.max_outstanding_fiscal
    }
}

/// Whether a page already holding `page_bytes` in `events` events may take
/// one more of `next_bytes`: always the first, then while the page stays
/// within `max_page_bytes` ([`Caps::max_page_bytes`]).
pub fn page_takes(
    max_page_bytes: usize,
    events: usize,
    page_bytes: usize,
    next_bytes: usize,
) -> bool {
    events == 0 || page_bytes.saturating_add(next_bytes) <= max_page_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_counts_events_and_bytes_within_the_bucket() {
        let caps = Caps {
            push_bytes_per_unit: 1000,
            push_rate_limit: RateLimit {
                burst: 5000,
                per_minute: 1,
            },
            ..Caps::default()
        };
        assert_eq!(caps.push_weight(0, 0), 1);
        assert_eq!(caps.push_weight(10, 1), 11);
        assert_eq!(caps.push_weight(10, 1000), 11);
        assert_eq!(caps.push_weight(10, 1001), 12);
        assert_eq!(
            caps.push_weight(5000, 8 << 20),
            5000,
            "clamped to the bucket"
        );
    }

    #[test]
    fn a_page_takes_its_first_event_whatever_its_size() {
        assert!(page_takes(100, 0, 0, 1_000_000));
        assert!(page_takes(100, 1, 60, 40));
        assert!(!page_takes(100, 1, 60, 41));
    }

    #[test]
    fn outstanding_fiscal_numbers_are_bounded() {
        let caps = Caps {
            max_outstanding_fiscal: 100,
            ..Caps::default()
        };
        assert!(caps.fiscal_grant_fits(0, 100));
        assert!(caps.fiscal_grant_fits(60, 40));
        assert!(!caps.fiscal_grant_fits(61, 40));
        assert!(!caps.fiscal_grant_fits(u64::MAX, 1));
    }
}
