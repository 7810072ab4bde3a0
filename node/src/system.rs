//! The real clock and the real random source: the IO side of the
//! [`Clock`] and [`RandomSource`] traits that `caja-shared` takes as inputs.
//! Tests and the simulation pass `ManualClock` and `SeededRandom` instead.

use std::time::{SystemTime, UNIX_EPOCH};

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use ring::rand::{SecureRandom, SystemRandom};

/// The operating system's wall clock, in UTC milliseconds since the Unix epoch.
///
/// Not monotonic: the clock may be set backwards, and consumers (the HLC) cope
/// with that. A time before 1970 reads as a negative number; one beyond
/// `i64::MAX` ms saturates.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        }
    }
}

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RngFailure;

/// Cryptographically secure randomness from the operating system
/// (`ring::rand::SystemRandom`: `getrandom(2)` on Linux).
///
/// The [`RandomSource`] trait cannot return an error, and there is no safe
/// fallback: event ids, nonces and keys made from predictable bytes would be
/// worse than stopping. So:
/// - [`OsRandom::new`] draws once and returns [`RngFailure`] if the OS source
///   does not work, so start-up can report it as a clear error;
/// - [`OsRandom::try_fill_bytes`] returns the error to callers that can handle
///   it;
/// - [`RandomSource::fill_bytes`] **panics** if the OS source fails later. A
///   panic inside a write transaction unwinds through the `Transaction`, which
///   rolls back, so nothing half-done is committed.
#[derive(Debug)]
pub struct OsRandom {
    rng: SystemRandom,
}

impl OsRandom {
    /// Opens the OS random source and checks that it delivers bytes.
    pub fn new() -> Result<OsRandom, RngFailure> {
        let r = OsRandom {
            rng: SystemRandom::new(),
        };
        let mut probe = [0u8; 16];
        r.try_fill_bytes(&mut probe)?;
        Ok(r)
    }

    /// Fills `dest` with secure random bytes, or reports that the OS source failed.
    pub fn try_fill_bytes(&self, dest: &mut [u8]) -> Result<(), RngFailure> {
        self.rng.fill(dest).map_err(|_| RngFailure)
    }
}

impl RandomSource for OsRandom {
    /// # Panics
    /// If the operating system's random source fails (see [`OsRandom`]): there
    /// is no secure way to continue.
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if let Err(e) = self.try_fill_bytes(dest) {
            panic!("{e}; refusing to continue without secure randomness");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_reads_a_plausible_utc_time() {
        let now = SystemClock.now_ms();
        // After 2024-01-01 and before 2100-01-01.
        assert!(now > 1_704_067_200_000 && now < 4_102_444_800_000, "{now}");
    }

    #[test]
    fn os_random_fills_bytes_that_differ_between_draws() {
        let mut rng = OsRandom::new().expect("the OS random source works");
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut a);
        rng.fill_bytes(&mut b);
        assert_ne!(a, b);
        assert_eq!(rng.random_hex(8).len(), 16);
    }
}
