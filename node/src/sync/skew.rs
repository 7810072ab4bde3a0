//! How far this machine's clock is from the hub's, estimated from the hub's
//! answers (`hub_time_ms`, also sent with a 401 `stale_timestamp`), without ever
//! touching the machine clock.
//!
//! One sample: `hub_time_ms − (sent_ms + received_ms) / 2` (the hub stamped its
//! answer about half way through the round trip). The estimate is the median of
//! the last [`SAMPLES`] samples, so one slow round trip does not move it. The node
//! signs requests with `local time + skew`, so a register whose clock is far off
//! still syncs.

/// Samples kept.
pub const SAMPLES: usize = 9;

/// The skew estimator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkewEstimate {
    samples: Vec<i64>,
}

impl SkewEstimate {
    /// Adds one round trip: when it was sent and received by the local clock, and
    /// the time the hub reported.
    pub fn observe(&mut self, sent_ms: i64, received_ms: i64, hub_time_ms: i64) {
        if received_ms < sent_ms {
            return; // the local clock jumped back mid-request: no information
        }
        let mid = sent_ms + (received_ms - sent_ms) / 2;
        let sample = hub_time_ms.saturating_sub(mid);
        if self.samples.len() == SAMPLES {
            self.samples.remove(0);
        }
        self.samples.push(sample);
    }

    /// Starts again from one round trip whose answer was the hub's 401
    /// `stale_timestamp`: the estimate is then wrong by more than the hub's
    /// ±5 min window, which no slow round trip explains — the local clock
    /// jumped — so the older samples are dropped instead of out-voting the
    /// new one for the next [`SAMPLES`]/2 rounds (found by the simulation,
    /// seed 5038: a register whose clock jumped failed several rounds).
    pub fn restart(&mut self, sent_ms: i64, received_ms: i64, hub_time_ms: i64) {
        if received_ms < sent_ms {
            return;
        }
        self.samples.clear();
        self.observe(sent_ms, received_ms, hub_time_ms);
    }

    /// Hub time minus local time, ms; 0 before any sample.
    pub fn skew_ms(&self) -> i64 {
        if self.samples.is_empty() {
            return 0;
        }
        let mut s = self.samples.clone();
        s.sort_unstable();
        s[s.len() / 2]
    }

    /// The hub's time now, by the local clock and the estimate.
    pub fn hub_now(&self, local_ms: i64) -> i64 {
        local_ms.saturating_add(self.skew_ms())
    }

    /// Samples so far.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there is no sample yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ignores_one_slow_round_trip() {
        let mut s = SkewEstimate::default();
        assert_eq!(s.skew_ms(), 0);
        // Local clock 10 minutes behind the hub.
        for t in 0..5 {
            s.observe(t * 1000, t * 1000 + 40, t * 1000 + 600_020);
        }
        s.observe(10_000, 19_000, 610_100); // a 9 s round trip
        assert_eq!(s.skew_ms(), 600_000);
        assert_eq!(s.hub_now(1_000), 601_000);
        s.observe(5, 1, 0); // clock went back mid-request: ignored
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn regression_seed_5038_a_stale_timestamp_answer_restarts_the_estimate() {
        let mut s = SkewEstimate::default();
        for t in 0..SAMPLES as i64 {
            s.observe(t * 1000, t * 1000 + 40, t * 1000 + 20);
        }
        assert_eq!(s.skew_ms(), 0);
        // The local clock jumped 6 minutes back: the hub refuses the
        // request and says its time; the next request must be in time.
        s.restart(10_000, 10_040, 370_020);
        assert_eq!(s.skew_ms(), 360_000);
        assert_eq!(s.len(), 1);
    }
}
