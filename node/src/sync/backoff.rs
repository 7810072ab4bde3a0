//! Exponential backoff with full jitter and a cap (the "full jitter" of the AWS
//! architecture blog): attempt `k` waits a uniformly random time in
//! `0..=min(cap, base × 2^k)`. A `Retry-After` from the hub is a floor: the wait
//! is never shorter than what the hub asked for.

use caja_shared::entropy::RandomSource;

/// Backoff limits (named in the node's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first ceiling, ms.
    pub base_ms: u64,
    /// The largest ceiling, ms.
    pub cap_ms: u64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base_ms: 250,
            cap_ms: 60_000,
        }
    }
}

/// The retry state of one kind of request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// A fresh state (next failure waits up to `base_ms`).
    pub fn new(policy: BackoffPolicy) -> Backoff {
        assert!(
            policy.base_ms > 0 && policy.base_ms <= policy.cap_ms,
            "backoff policy"
        );
        Backoff { policy, attempt: 0 }
    }

    /// Consecutive failures so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The current ceiling: `min(cap, base × 2^attempt)`, without overflow.
    pub fn ceiling_ms(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt.min(63)).unwrap_or(u64::MAX);
        self.policy
            .base_ms
            .saturating_mul(factor)
            .min(self.policy.cap_ms)
    }

    /// After a failure: how long to wait before the next try. `retry_after_ms`
    /// is the hub's `Retry-After`, if it sent one.
    pub fn on_failure(&mut self, retry_after_ms: Option<u64>, rng: &mut impl RandomSource) -> u64 {
        let ceiling = self.ceiling_ms();
        let jittered = rng.next_u64() % (ceiling + 1);
        self.attempt = self.attempt.saturating_add(1);
        let wait = match retry_after_ms {
            Some(floor) => jittered.max(floor.min(self.policy.cap_ms.saturating_mul(10))),
            None => jittered,
        };
        debug_assert!(retry_after_ms.is_some() || wait <= self.policy.cap_ms);
        wait
    }

    /// After a success: start over.
    pub fn on_success(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::entropy::SeededRandom;
    use proptest::prelude::*;

    #[test]
    fn ceilings_double_up_to_the_cap_and_reset_on_success() {
        let mut b = Backoff::new(BackoffPolicy {
            base_ms: 100,
            cap_ms: 1000,
        });
        let mut rng = SeededRandom::new(1);
        let ceilings: Vec<u64> = (0..6)
            .map(|_| {
                let c = b.ceiling_ms();
                b.on_failure(None, &mut rng);
                c
            })
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        b.on_success();
        assert_eq!(b.ceiling_ms(), 100);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut b = Backoff::new(BackoffPolicy::default());
        let mut rng = SeededRandom::new(2);
        for _ in 0..50 {
            assert!(b.on_failure(Some(30_000), &mut rng) >= 30_000);
        }
    }

    proptest! {
        /// Waits stay within the ceiling, and attempts never overflow.
        #[test]
        fn waits_are_within_the_ceiling(base in 1u64..10_000, extra in 0u64..1_000_000, fails in 0usize..200, seed in any::<u64>()) {
            let policy = BackoffPolicy { base_ms: base, cap_ms: base + extra };
            let mut b = Backoff::new(policy);
            let mut rng = SeededRandom::new(seed);
            for _ in 0..fails {
                let ceiling = b.ceiling_ms();
                let wait = b.on_failure(None, &mut rng);
                prop_assert!(wait <= ceiling && ceiling <= policy.cap_ms);
            }
        }
    }
}
