//! Admin-token guesses limited per client address: every request to an
//! endpoint that takes the admin token (`/v1/admin/…`, `/v1/health`,
//! `/metrics`) with a wrong or missing token takes one token from its
//! address's bucket (`admin_guess_limit`); an address whose bucket is empty
//! gets 429 with `Retry-After` *before* its token is compared, so a right
//! guess is not recognised while limited. A right token takes nothing, so
//! head office is not locked out by a neighbour behind the same address
//! unless that neighbour keeps guessing.
//!
//! Kept in memory (the admin token is 256 random bits unless chosen by hand,
//! so this bounds log noise and a hand-chosen token's exposure; the dashboard
//! login keeps its own persisted buckets). At most [`MAX_TRACKED`] addresses
//! are tracked; beyond that, refilled buckets are dropped and, if still full,
//! new addresses share one bucket.
//!
//! Invariant: the time is passed in; the map is bounded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, PoisonError};

use crate::net::peers::peer_key;
use crate::ratelimit::{Bucket, Decision, RateLimit};

/// Most addresses with a bucket at once.
pub const MAX_TRACKED: usize = 4096;

/// The key shared by addresses beyond [`MAX_TRACKED`] and by requests whose
/// address is unknown.
const SHARED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Buckets of wrong admin tokens per client address.
#[derive(Debug)]
pub struct GuessLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl GuessLimiter {
    /// Wrong tokens allowed per address: `limit.burst`, then `per_minute`.
    pub fn new(limit: RateLimit) -> GuessLimiter {
        GuessLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn key(map: &HashMap<IpAddr, Bucket>, ip: Option<IpAddr>) -> IpAddr {
        match ip.map(peer_key) {
            Some(k) if map.contains_key(&k) || map.len() < MAX_TRACKED => k,
            _ => SHARED,
        }
    }

    /// `Ok` when a token from `ip` may be compared now; else the wait in ms.
    pub fn admit(&self, ip: Option<IpAddr>, now_ms: i64) -> Result<(), i64> {
        let map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let key = GuessLimiter::key(&map, ip);
        match map.get(&key) {
            None => Ok(()),
            Some(b) => match self.limit.take(Some(*b), now_ms).1 {
                Decision::Allow => Ok(()),
                Decision::Limited { retry_after_ms } => Err(retry_after_ms),
            },
        }
    }

    /// Records a wrong or missing token from `ip`.
    pub fn failed(&self, ip: Option<IpAddr>, now_ms: i64) {
        let mut map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TRACKED {
            let cap = i64::from(self.limit.burst) * 1000;
            let limit = self.limit;
            // A bucket that is full again carries no memory.
            map.retain(|_, b| {
                let (after, decision) = limit.take(Some(*b), now_ms);
                !(decision == Decision::Allow && after.tokens_milli + 1000 >= cap)
            });
        }
        let key = GuessLimiter::key(&map, ip);
        let (bucket, _) = self.limit.take(map.get(&key).copied(), now_ms);
        map.insert(key, bucket);
    }

    /// Addresses with a bucket (tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_tokens_empty_the_bucket_then_it_refills() {
        let g = GuessLimiter::new(RateLimit {
            burst: 3,
            per_minute: 6,
        });
        let a = Some("127.0.0.2".parse().unwrap());
        let b = Some("127.0.0.1".parse().unwrap());
        let t = 1_000_000;
        for _ in 0..3 {
            assert_eq!(g.admit(a, t), Ok(()));
            g.failed(a, t);
        }
        let wait = g.admit(a, t).unwrap_err();
        assert!((9_000..=10_000).contains(&wait), "{wait}");
        assert_eq!(g.admit(b, t), Ok(()), "another address is not limited");
        assert_eq!(g.admit(a, t + wait), Ok(()));
    }

    #[test]
    fn the_map_is_bounded() {
        let g = GuessLimiter::new(RateLimit {
            burst: 1,
            per_minute: 1,
        });
        for i in 0..(u32::try_from(MAX_TRACKED).unwrap() + 10) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            g.failed(Some(ip), 0);
        }
        assert!(g.tracked() <= MAX_TRACKED + 1);
        // After a minute every bucket refilled: the next failure prunes.
        g.failed(Some("192.0.2.1".parse().unwrap()), 61_000);
        assert!(g.tracked() < 10, "{}", g.tracked());
    }
}
