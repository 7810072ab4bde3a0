//! Per-device rate limit: a token bucket in integer thousandths of a token.
//!
//! The bucket's state is persisted by the store with every request it admits or
//! refuses, so a restart does not refill it: a device that exhausted its bucket
//! before a crash finds it just as empty after (no burst from a cold start).
//! A device seen for the first time starts with a full bucket.
//!
//! Architecture invariant: pure arithmetic; the time is passed in.

/// Milli-tokens per token.
const MILLI: i64 = 1000;
/// Milliseconds per minute.
const MS_PER_MIN: i64 = 60_000;

/// The limit: at most `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Bucket size in requests.
    pub burst: u32,
    /// Refill rate in requests per minute.
    pub per_minute: u32,
}

/// A device's bucket as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens left, in thousandths.
    pub tokens_milli: i64,
    /// When `tokens_milli` was computed (UTC ms).
    pub updated_ms: i64,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted.
    Allow,
    /// Refused; a token will be available after this many ms.
    Limited {
        /// Wait before retrying.
        retry_after_ms: i64,
    },
}

impl RateLimit {
    /// Takes one token from `bucket` (or a full new bucket) at `now_ms`; returns
    /// the bucket to persist and the decision. A clock that went backwards
    /// refills nothing.
    pub fn take(&self, bucket: Option<Bucket>, now_ms: i64) -> (Bucket, Decision) {
        self.take_units(bucket, now_ms, 1)
    }

    /// Takes `units` tokens at once (a weighted request: a push costs by its
    /// events and bytes); the wait when refused is until that many are
    /// back. A cost above the burst is charged as the burst, so a request
    /// the bucket can never hold still passes once it is full.
    pub fn take_units(
        &self,
        bucket: Option<Bucket>,
        now_ms: i64,
        units: u32,
    ) -> (Bucket, Decision) {
        let cap = i64::from(self.burst) * MILLI;
        let cost = i64::from(units.clamp(1, self.burst.max(1))) * MILLI;
        let mut b = bucket.unwrap_or(Bucket {
            tokens_milli: cap,
            updated_ms: now_ms,
        });
        let elapsed_ms = now_ms.saturating_sub(b.updated_ms).max(0);
        // per_minute tokens per 60 000 ms = per_minute milli-tokens per 60 ms.
        let refill = elapsed_ms
            .saturating_mul(i64::from(self.per_minute))
            .saturating_mul(MILLI)
            / MS_PER_MIN;
        b.tokens_milli = b.tokens_milli.saturating_add(refill).min(cap);
        b.updated_ms = b.updated_ms.max(now_ms);
        if b.tokens_milli >= cost {
            b.tokens_milli -= cost;
            (b, Decision::Allow)
        } else if self.per_minute == 0 {
            (
                b,
                Decision::Limited {
                    retry_after_ms: MS_PER_MIN,
                },
            )
        } else {
            let short = cost - b.tokens_milli;
            let per_min_milli = i64::from(self.per_minute) * MILLI;
            let retry_after_ms = (short * MS_PER_MIN + per_min_milli - 1) / per_min_milli;
            (b, Decision::Limited { retry_after_ms })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let rl = RateLimit {
            burst: 3,
            per_minute: 60,
        };
        let mut b = None;
        for _ in 0..3 {
            let (nb, d) = rl.take(b, 1000);
            assert_eq!(d, Decision::Allow);
            b = Some(nb);
        }
        let (nb, d) = rl.take(b, 1000);
        assert_eq!(
            d,
            Decision::Limited {
                retry_after_ms: 1000
            }
        );
        // One token per second.
        let (nb, d) = rl.take(Some(nb), 2000);
        assert_eq!(d, Decision::Allow);
        // A clock that went backwards refills nothing.
        let (_, d) = rl.take(Some(nb), 0);
        assert!(matches!(d, Decision::Limited { .. }));
        // Long idle refills to the burst, not beyond.
        let (nb, _) = rl.take(Some(nb), 10_000_000);
        assert_eq!(nb.tokens_milli, 2000);
    }

    #[test]
    fn weighted_takes_wait_for_their_whole_cost() {
        let rl = RateLimit {
            burst: 100,
            per_minute: 6000,
        };
        let (b, d) = rl.take_units(None, 0, 60);
        assert_eq!(d, Decision::Allow);
        assert_eq!(b.tokens_milli, 40_000);
        // 60 more need 20 more tokens: 200 ms at 100 a second.
        let (b, d) = rl.take_units(Some(b), 0, 60);
        assert_eq!(
            d,
            Decision::Limited {
                retry_after_ms: 200
            }
        );
        let (_, d) = rl.take_units(Some(b), 200, 60);
        assert_eq!(d, Decision::Allow);
        // A cost beyond the burst is charged as the burst.
        let (b, d) = rl.take_units(None, 0, 1_000_000);
        assert_eq!(d, Decision::Allow);
        assert_eq!(b.tokens_milli, 0);
    }

    #[test]
    fn a_persisted_empty_bucket_stays_empty() {
        let rl = RateLimit {
            burst: 2,
            per_minute: 1,
        };
        let empty = Bucket {
            tokens_milli: 0,
            updated_ms: 5000,
        };
        let (_, d) = rl.take(Some(empty), 5001);
        assert!(matches!(d, Decision::Limited { retry_after_ms } if retry_after_ms > 59_000));
        let (_, d) = rl.take(None, 5001);
        assert_eq!(d, Decision::Allow);
    }
}
