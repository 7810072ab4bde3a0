//! Connections counted per client address: at most `max_connections_per_ip`
//! open at once from one IPv4 address or one IPv6 /64 (a single host usually
//! holds a whole /64, so counting single IPv6 addresses would be no cap).
//!
//! Invariant: a count exists only while a [`PeerSlot`] for it is alive, so the
//! map never holds more entries than there are open connections.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// The address connections are counted under: an IPv4 address (also when it
/// arrives IPv4-mapped on an IPv6 socket), or the /64 of an IPv6 address.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Open connections per client address, capped.
#[derive(Debug)]
pub struct PeerSlots {
    max_per_peer: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of a client address; dropping it frees the slot.
#[derive(Debug)]
pub struct PeerSlot {
    slots: Arc<PeerSlots>,
    key: IpAddr,
}

impl PeerSlots {
    /// At most `max_per_peer` connections per address (at least one).
    pub fn new(max_per_peer: usize) -> Arc<PeerSlots> {
        Arc::new(PeerSlots {
            max_per_peer: max_per_peer.max(1),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a connection from `ip`, or `None` when its address has
    /// `max_per_peer` open already.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        let key = peer_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(key).or_insert(0);
        if *n >= self.max_per_peer {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            slots: self.clone(),
            key,
        })
    }

    /// Open connections of `ip`'s address.
    pub fn open(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&peer_key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self
            .slots
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_grouped_and_slots_freed() {
        let v4: IpAddr = "127.0.0.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(peer_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(c));

        let slots = PeerSlots::new(2);
        let s1 = slots.try_take(v4).unwrap();
        let s2 = slots.try_take(mapped).unwrap();
        assert!(slots.try_take(v4).is_none(), "third from one address");
        assert!(slots.try_take("127.0.0.1".parse().unwrap()).is_some());
        drop(s1);
        assert_eq!(slots.open(v4), 1);
        let _s3 = slots.try_take(v4).unwrap();
        drop(s2);
        drop(_s3);
        assert_eq!(slots.open(v4), 0);
        assert!(slots.counts.lock().unwrap().is_empty());
    }
}
