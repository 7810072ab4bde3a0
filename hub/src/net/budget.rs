//! Memory for request bodies being read, bounded: the concurrency permit is
//! taken only once a body has arrived, so bodies in arrival are bounded
//! here instead — at most `max_buffered_body_bytes` in all and
//! `max_buffered_body_bytes_per_ip` from one address (IPv4, or IPv6 /64),
//! counted as bytes arrive (a client that announces 8 MB and sends one byte
//! holds one byte). A body that would go over either gets 429 `overloaded`
//! with `Retry-After` at once, and its connection closes.
//!
//! Invariant: every reserved byte is released when its [`Reservation`] is
//! dropped (after the answer), so the totals return to zero when idle.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};

use crate::net::peers::peer_key;

/// The budget of body bytes held in memory.
#[derive(Debug)]
pub struct BodyBudget {
    total_max: usize,
    per_peer_max: usize,
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// Bytes one request holds; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BodyBudget>,
    peer: IpAddr,
    bytes: usize,
}

impl BodyBudget {
    /// At most `total_max` bytes in all and `per_peer_max` per address.
    pub fn new(total_max: usize, per_peer_max: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            total_max,
            per_peer_max,
            used: Mutex::new(Used::default()),
        })
    }

    /// An empty reservation for a request from `ip` (unknown: one shared key).
    pub fn start(self: &Arc<Self>, ip: Option<IpAddr>) -> Reservation {
        Reservation {
            budget: self.clone(),
            peer: ip.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), peer_key),
            bytes: 0,
        }
    }

    /// Bytes held now, in all and by `ip`'s address.
    pub fn used(&self, ip: IpAddr) -> (usize, usize) {
        let u = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        (u.total, u.per_peer.get(&peer_key(ip)).copied().unwrap_or(0))
    }
}

impl Reservation {
    /// Takes `n` more bytes; `false` (nothing taken) when over a limit.
    pub fn grow(&mut self, n: usize) -> bool {
        let b = &self.budget;
        let mut u = b.used.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = u.per_peer.get(&self.peer).copied().unwrap_or(0);
        if u.total.saturating_add(n) > b.total_max || mine.saturating_add(n) > b.per_peer_max {
            return false;
        }
        u.total += n;
        u.per_peer.insert(self.peer, mine + n);
        self.bytes += n;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut u = self
            .budget
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        u.total = u.total.saturating_sub(self.bytes);
        if let Some(m) = u.per_peer.get_mut(&self.peer) {
            *m = m.saturating_sub(self.bytes);
            if *m == 0 {
                u.per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_bounded_per_address_and_in_all_and_given_back() {
        let budget = BodyBudget::new(100, 60);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let mut r1 = budget.start(Some(a));
        assert!(r1.grow(50));
        let mut r2 = budget.start(Some(a));
        assert!(!r2.grow(11), "over the address's 60");
        assert!(r2.grow(10));
        let mut r3 = budget.start(Some(b));
        assert!(!r3.grow(41), "over the 100 in all");
        assert!(r3.grow(40));
        assert_eq!(budget.used(a), (100, 60));
        drop(r1);
        drop(r2);
        assert_eq!(budget.used(a), (40, 0));
        drop(r3);
        assert_eq!(budget.used(b), (0, 0));
        assert!(budget.used.lock().unwrap().per_peer.is_empty());
    }
}
