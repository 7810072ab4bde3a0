//! The real clock and the OS random source: the IO edges the pure modules are
//! kept free of.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use ring::rand::{SecureRandom, SystemRandom};

/// The system wall clock, UTC ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            // A clock before 1970 reads as 0; the HLC and the skew check cope.
            .unwrap_or(0)
    }
}

/// ring's `SystemRandom` (the OS CSPRNG) as a [`RandomSource`]: device keys,
/// enrollment tokens, the hub seed and ids come from here.
#[derive(Debug)]
pub struct OsRandom(SystemRandom);

impl OsRandom {
    /// The OS random source.
    pub fn new() -> OsRandom {
        OsRandom(SystemRandom::new())
    }
}

impl Default for OsRandom {
    fn default() -> OsRandom {
        OsRandom::new()
    }
}

impl RandomSource for OsRandom {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // The OS source fails only if the kernel has none; nothing can be keyed then.
        if self.0.fill(dest).is_err() {
            panic!("the operating system's random source failed");
        }
    }
}
