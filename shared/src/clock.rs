//! Injected wall clocks.
//!
//! Nothing in `caja-shared` reads the system clock: code that needs the time takes
//! a [`Clock`] (or simply a `now_ms: i64`) from its caller. The real system clock
//! lives in the IO crates (node, hub); tests and the deterministic simulation use
//! [`ManualClock`], whose time only moves when they move it, so a run can be
//! replayed exactly from its seed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of wall-clock time: UTC milliseconds since the Unix epoch.
///
/// Readings are not assumed to be monotonic: a real clock can be set backwards
/// (NTP, a cashier fixing the date), and every consumer must cope with that (the
/// hybrid logical clock in [`crate::hlc`] does).
pub trait Clock {
    /// The current time, in UTC milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// A shared reference to a clock is a clock, so `&clock` can be passed where an
/// owned clock is expected.
impl<T: Clock + ?Sized> Clock for &T {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

/// A shared clock (`Arc<ManualClock>`, `Arc<dyn Clock + Send + Sync>`) is a clock,
/// so one clock can be handed to several components of a node or a simulation.
impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

/// A boxed clock (`Box<dyn Clock>`) is a clock, for components that pick their
/// clock at run time.
impl<T: Clock + ?Sized> Clock for Box<T> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

/// A clock that only moves when told to, for tests and the simulation.
///
/// It uses an atomic, so it is `Send + Sync` and can be moved or set through a
/// shared reference (typically an `Arc<ManualClock>` held by both the test and the
/// code under test). It can be set or advanced backwards to simulate clock jumps.
/// Arithmetic saturates at the ends of `i64` instead of wrapping or panicking.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock that reads `start_ms` until it is set or advanced.
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock {
            now_ms: AtomicI64::new(start_ms),
        }
    }

    /// Sets the time to `ms` (earlier or later than the current reading).
    pub fn set(&self, ms: i64) {
        self.now_ms.store(ms, Ordering::SeqCst);
    }

    /// Moves the time by `delta_ms` (negative to jump backwards) and returns the
    /// new reading. Saturates at `i64::MIN` / `i64::MAX`.
    pub fn advance(&self, delta_ms: i64) -> i64 {
        let step = |ms: i64| Some(ms.saturating_add(delta_ms));
        // The closure never returns `None`, so `fetch_update` always succeeds;
        // both arms carry the previous value.
        let previous = match self
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, step)
        {
            Ok(previous) | Err(previous) => previous,
        };
        previous.saturating_add(delta_ms)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<C: Clock>(clock: C) -> i64 {
        clock.now_ms()
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn manual_clock_reads_what_it_was_given() {
        let clock = ManualClock::new(1_700_000_000_000);
        assert_eq!(clock.now_ms(), 1_700_000_000_000);
        assert_eq!(
            clock.now_ms(),
            1_700_000_000_000,
            "reading does not move it"
        );
        assert_eq!(ManualClock::default().now_ms(), 0);
    }

    #[test]
    fn set_and_advance_move_forwards_and_backwards() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.advance(250), 1_250);
        assert_eq!(clock.now_ms(), 1_250);
        assert_eq!(clock.advance(-1_000), 250, "a backward jump");
        assert_eq!(clock.now_ms(), 250);
        clock.set(-5);
        assert_eq!(clock.now_ms(), -5);
        clock.set(42);
        assert_eq!(clock.now_ms(), 42);
    }

    #[test]
    fn advance_saturates_instead_of_overflowing() {
        let clock = ManualClock::new(i64::MAX - 1);
        assert_eq!(clock.advance(10), i64::MAX);
        assert_eq!(clock.now_ms(), i64::MAX);
        clock.set(i64::MIN + 1);
        assert_eq!(clock.advance(i64::MIN), i64::MIN);
        assert_eq!(clock.now_ms(), i64::MIN);
    }

    #[test]
    fn blanket_impls_forward_to_the_clock() {
        let clock = Arc::new(ManualClock::new(7));
        assert_eq!(read(&*clock), 7);
        assert_eq!(read(&clock), 7);
        assert_eq!(read(Arc::clone(&clock)), 7);
        let dynamic: Arc<dyn Clock + Send + Sync> = clock.clone();
        assert_eq!(read(&dynamic), 7);
        let boxed: Box<dyn Clock> = Box::new(ManualClock::new(9));
        assert_eq!(read(&boxed), 9);
        assert_eq!(read(boxed), 9);
        clock.advance(3);
        assert_eq!(dynamic.now_ms(), 10, "every handle sees the same clock");
    }

    #[test]
    fn manual_clock_is_shared_across_threads() {
        assert_send_sync::<ManualClock>();
        let clock = Arc::new(ManualClock::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = Arc::clone(&clock);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        clock.advance(1);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread finished");
        }
        assert_eq!(clock.now_ms(), 4_000, "no advance is lost");
    }
}
