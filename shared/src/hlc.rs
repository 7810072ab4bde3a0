//! The hybrid logical clock (HLC) stamped on every event (`"hlc":{"ms":…,"n":…}`).
//!
//! An [`Hlc`] is a physical time in UTC milliseconds plus a logical counter. Its
//! order (`ms`, then `n`) extends causality: an event stamped after another was
//! created or seen carries a greater HLC, even when wall clocks disagree or jump
//! backwards. [`HlcState`] is one device's clock, a pure state machine (Kulkarni et
//! al., "Logical Physical Clocks", 2014): the caller passes `now_ms` in, nothing
//! here reads a clock.
//!
//! Two limits keep values safe:
//! - `ms` lies in `0..=2^53−1` ([`Hlc::MAX_MS`]) so it is an exact canonical JSON
//!   integer; anything else is [`HlcError::MsOutOfRange`].
//! - A remote timestamp more than `max_drift_ms` ahead of the local clock is
//!   refused ([`HlcError::RemoteTooFarAhead`]) and leaves the state untouched, so a
//!   device never moves its HLC further than a bounded drift ahead of its own clock
//!   because of a remote timestamp. (The event itself is still kept: only the clock
//!   merge is refused; the hub never rejects an event for its `hlc`.)
//!
//! Counter overflow is an error ([`HlcError::CounterOverflow`]), never a wrap and
//! never a carry into `ms`: carrying would push `ms` past both the wall clock and the
//! drift bound. It needs 2^32 stamps within one millisecond of the HLC, which only a
//! hostile remote counter can cause, and that merge is then refused.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A hybrid logical clock timestamp: physical `ms` (UTC milliseconds since the Unix
/// epoch) and logical counter `n`. Ordered by `ms`, then `n`.
///
/// On the wire it is `{"ms":<int>,"n":<int>}`. Construction and deserialization
/// check that `ms` is in `0..=`[`Hlc::MAX_MS`]; deserialization accepts only that
/// object (any key order) and rejects a missing, unknown or duplicate field, a
/// float, a string, a negative or oversized value, and the array form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Hlc {
    // Field order matters: the derived `Ord` compares `ms` first, then `n`.
    ms: i64,
    n: u32,
}

/// The names of the two fields, in wire order.
const FIELDS: &[&str] = &["ms", "n"];

/// A field name of the wire object; any other name is an error.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Ms,
    N,
}

/// Reads only the object form (not the sequence form serde derives also accept),
/// rejects unknown, duplicate and missing fields, then checks the range.
struct HlcVisitor;

impl<'de> Visitor<'de> for HlcVisitor {
    type Value = Hlc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an hlc object {"ms":<int>,"n":<int>}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Hlc, A::Error> {
        let mut ms: Option<i64> = None;
        let mut n: Option<u32> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Ms if ms.is_some() => return Err(de::Error::duplicate_field("ms")),
                Field::Ms => ms = Some(map.next_value()?),
                Field::N if n.is_some() => return Err(de::Error::duplicate_field("n")),
                Field::N => n = Some(map.next_value()?),
            }
        }
        let ms = ms.ok_or_else(|| de::Error::missing_field("ms"))?;
        let n = n.ok_or_else(|| de::Error::missing_field("n"))?;
        Hlc::new(ms, n).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hlc, D::Error> {
        deserializer.deserialize_struct("Hlc", FIELDS, HlcVisitor)
    }
}

impl Hlc {
    /// The largest `ms`: 2^53 − 1, the largest integer canonical JSON carries exactly.
    pub const MAX_MS: i64 = (1 << 53) - 1;

    /// The smallest timestamp, `{"ms":0,"n":0}`: the state of a clock that has
    /// stamped nothing yet.
    pub const ZERO: Hlc = Hlc { ms: 0, n: 0 };

    /// A timestamp from its parts.
    ///
    /// # Errors
    /// [`HlcError::MsOutOfRange`] if `ms` is negative or above [`Hlc::MAX_MS`].
    pub fn new(ms: i64, n: u32) -> Result<Hlc, HlcError> {
        if (0..=Hlc::MAX_MS).contains(&ms) {
            Ok(Hlc { ms, n })
        } else {
            Err(HlcError::MsOutOfRange { ms })
        }
    }

    /// The physical part: UTC milliseconds since the Unix epoch.
    pub fn ms(&self) -> i64 {
        self.ms
    }

    /// The logical counter, which orders timestamps sharing the same `ms`.
    pub fn n(&self) -> u32 {
        self.n
    }
}

/// Written as `ms:n`, e.g. `1700000000000:3`.
impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ms, self.n)
    }
}

/// Why an HLC value could not be built, stamped or merged. A failed operation
/// leaves the [`HlcState`] unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    /// `ms` is negative or above 2^53 − 1 (from a wire value, or a wall clock
    /// reading that far in the future).
    #[error("hlc ms {ms} is out of range: must be between 0 and {max} (2^53-1)", max = Hlc::MAX_MS)]
    MsOutOfRange {
        /// The offending milliseconds.
        ms: i64,
    },
    /// The counter would pass `u32::MAX` within one millisecond.
    #[error("hlc counter overflow at ms {ms}: counter n is already {max}", max = u32::MAX)]
    CounterOverflow {
        /// The millisecond whose counter is exhausted.
        ms: i64,
    },
    /// A remote timestamp is further ahead of the local clock than allowed; the
    /// clock was not merged.
    #[error(
        "remote hlc {remote} is more than {max_drift_ms} ms ahead of the local clock ({now_ms} ms); refusing to merge it"
    )]
    RemoteTooFarAhead {
        /// The refused remote timestamp.
        remote: Hlc,
        /// The local wall clock at the time.
        now_ms: i64,
        /// The allowed drift.
        max_drift_ms: i64,
    },
    /// The configured drift bound is negative.
    #[error("hlc max_drift_ms must not be negative, got {max_drift_ms}")]
    NegativeMaxDrift {
        /// The configured value.
        max_drift_ms: i64,
    },
}

/// One device's hybrid logical clock: the last timestamp it issued or merged, and
/// the bound on how far a remote timestamp may pull it ahead of the wall clock.
///
/// Every successful [`tick`](HlcState::tick) or [`observe`](HlcState::observe)
/// returns a timestamp strictly greater than every one before it; a failed one
/// changes nothing. Persist [`last`](HlcState::last) (it is in the journal) and
/// [`restore`](HlcState::restore) from it after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlcState {
    last: Hlc,
    max_drift_ms: i64,
}

impl HlcState {
    /// A clock that has issued nothing (its last value is [`Hlc::ZERO`]) and
    /// refuses remote timestamps more than `max_drift_ms` ahead of the wall clock.
    ///
    /// # Errors
    /// [`HlcError::NegativeMaxDrift`] if `max_drift_ms` is negative.
    pub fn new(max_drift_ms: i64) -> Result<HlcState, HlcError> {
        HlcState::restore(Hlc::ZERO, max_drift_ms)
    }

    /// A clock resuming after `last`, the greatest timestamp it issued or merged
    /// before (read back from the journal after a restart).
    ///
    /// # Errors
    /// [`HlcError::NegativeMaxDrift`] if `max_drift_ms` is negative.
    pub fn restore(last: Hlc, max_drift_ms: i64) -> Result<HlcState, HlcError> {
        if max_drift_ms < 0 {
            return Err(HlcError::NegativeMaxDrift { max_drift_ms });
        }
        Ok(HlcState { last, max_drift_ms })
    }

    /// The last timestamp issued or merged; every later one is greater.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// How far ahead of the wall clock a remote timestamp may be and still merge.
    pub fn max_drift_ms(&self) -> i64 {
        self.max_drift_ms
    }

    /// Stamps a local event (the HLC send rule): `ms = max(last.ms, now_ms)`, and
    /// `n = last.n + 1` if `ms` did not move, else 0. When the wall clock jumps
    /// backwards `ms` stays put and the counter runs, so the result is still
    /// greater than `last`.
    ///
    /// # Errors
    /// The state is left unchanged on every error.
    /// - [`HlcError::CounterOverflow`] if `ms` did not move and `n` is `u32::MAX`.
    /// - [`HlcError::MsOutOfRange`] if `now_ms` is beyond [`Hlc::MAX_MS`].
    pub fn tick(&mut self, now_ms: i64) -> Result<Hlc, HlcError> {
        let last = self.last;
        let ms = last.ms.max(now_ms);
        let n = if ms == last.ms {
            last.n
                .checked_add(1)
                .ok_or(HlcError::CounterOverflow { ms })?
        } else {
            0
        };
        let next = Hlc::new(ms, n)?;
        debug_assert!(next > last, "tick must move forward: {last} -> {next}");
        debug_assert!(next.ms == last.ms || next.ms == now_ms);
        self.last = next;
        Ok(next)
    }

    /// Merges a timestamp received from another device (the HLC receive rule) and
    /// returns the new local timestamp, greater than both `last` and `remote`:
    /// `ms = max(last.ms, remote.ms, now_ms)`, and `n` is one more than the greatest
    /// counter among those with that `ms` (0 if only the wall clock has it).
    ///
    /// # Errors
    /// The state is left unchanged on every error.
    /// - [`HlcError::RemoteTooFarAhead`] if `remote.ms > now_ms + max_drift_ms`.
    ///   The caller still keeps the remote event; only the clock merge is refused.
    /// - [`HlcError::CounterOverflow`] if the counter to increment is `u32::MAX`.
    /// - [`HlcError::MsOutOfRange`] if `now_ms` is beyond [`Hlc::MAX_MS`].
    pub fn observe(&mut self, remote: Hlc, now_ms: i64) -> Result<Hlc, HlcError> {
        let last = self.last;
        if remote.ms > now_ms.saturating_add(self.max_drift_ms) {
            return Err(HlcError::RemoteTooFarAhead {
                remote,
                now_ms,
                max_drift_ms: self.max_drift_ms,
            });
        }
        let ms = last.ms.max(remote.ms).max(now_ms);
        let counter = match (ms == last.ms, ms == remote.ms) {
            (true, true) => Some(last.n.max(remote.n)),
            (true, false) => Some(last.n),
            (false, true) => Some(remote.n),
            (false, false) => None,
        };
        let n = match counter {
            Some(c) => c.checked_add(1).ok_or(HlcError::CounterOverflow { ms })?,
            None => 0,
        };
        let next = Hlc::new(ms, n)?;
        debug_assert!(next > last, "observe must move forward: {last} -> {next}");
        debug_assert!(
            next > remote,
            "observe must pass the remote: {remote} -> {next}"
        );
        debug_assert!(
            next.ms <= last.ms.max(now_ms.saturating_add(self.max_drift_ms)),
            "a remote timestamp moved the clock past the drift bound"
        );
        self.last = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hlc(ms: i64, n: u32) -> Hlc {
        Hlc::new(ms, n).expect("valid test hlc")
    }

    fn state(last: Hlc, max_drift_ms: i64) -> HlcState {
        HlcState::restore(last, max_drift_ms).expect("valid drift")
    }

    const T: i64 = 1_700_000_000_000;

    #[test]
    fn new_checks_the_ms_range() {
        assert_eq!(hlc(0, 0), Hlc::ZERO);
        assert_eq!(hlc(Hlc::MAX_MS, u32::MAX).ms(), 9_007_199_254_740_991);
        for ms in [-1, i64::MIN, Hlc::MAX_MS + 1, i64::MAX] {
            assert_eq!(Hlc::new(ms, 0), Err(HlcError::MsOutOfRange { ms }));
        }
    }

    #[test]
    fn order_is_ms_then_counter() {
        let mut sorted = vec![hlc(2, 0), hlc(1, 5), hlc(1, 0), hlc(0, u32::MAX), hlc(2, 1)];
        sorted.sort();
        assert_eq!(
            sorted,
            [hlc(0, u32::MAX), hlc(1, 0), hlc(1, 5), hlc(2, 0), hlc(2, 1)]
        );
        assert_eq!(Hlc::default(), Hlc::ZERO);
    }

    #[test]
    fn display_is_ms_colon_n() {
        assert_eq!(hlc(T, 3).to_string(), "1700000000000:3");
        assert_eq!(Hlc::ZERO.to_string(), "0:0");
    }

    #[test]
    fn serializes_as_ms_and_n() {
        let json = serde_json::to_string(&hlc(T, 7)).expect("serializes");
        assert_eq!(json, r#"{"ms":1700000000000,"n":7}"#);
        let back: Hlc = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, hlc(T, 7));
        let max: Hlc = serde_json::from_str(r#"{"n":4294967295,"ms":9007199254740991}"#)
            .expect("largest value parses");
        assert_eq!(max, hlc(Hlc::MAX_MS, u32::MAX));
    }

    #[test]
    fn deserialization_rejects_bad_values() {
        let cases = [
            (r#"{"ms":-1,"n":0}"#, "out of range"),
            (r#"{"ms":9007199254740992,"n":0}"#, "out of range"),
            (r#"{"ms":1,"n":-1}"#, "invalid value"),
            (r#"{"ms":1,"n":4294967296}"#, "invalid value"),
            (r#"{"ms":1.0,"n":0}"#, "invalid type"),
            (r#"{"ms":1,"n":0.5}"#, "invalid type"),
            (r#"{"ms":"1","n":0}"#, "invalid type"),
            (r#"{"ms":1}"#, "missing field `n`"),
            (r#"{"n":1}"#, "missing field `ms`"),
            (r#"{"ms":1,"n":0,"x":0}"#, "unknown field `x`"),
            (r#"{"ms":1,"n":0,"ms":2}"#, "duplicate field `ms`"),
            (r#"{"ms":1,"n":0,"n":2}"#, "duplicate field `n`"),
            (r#"[1,0]"#, "invalid type: sequence"),
            (r#"null"#, "invalid type: null"),
            (r#""1:0""#, "invalid type: string"),
        ];
        for (json, expected) in cases {
            let err = serde_json::from_str::<Hlc>(json).expect_err(json);
            assert!(
                err.to_string().contains(expected),
                "{json}: expected {expected:?}, got {err}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        let cases = [
            (
                HlcError::MsOutOfRange { ms: -5 },
                "hlc ms -5 is out of range: must be between 0 and 9007199254740991 (2^53-1)",
            ),
            (
                HlcError::CounterOverflow { ms: 12 },
                "hlc counter overflow at ms 12: counter n is already 4294967295",
            ),
            (
                HlcError::RemoteTooFarAhead {
                    remote: hlc(10_000, 2),
                    now_ms: 1_000,
                    max_drift_ms: 5_000,
                },
                "remote hlc 10000:2 is more than 5000 ms ahead of the local clock (1000 ms); refusing to merge it",
            ),
            (
                HlcError::NegativeMaxDrift { max_drift_ms: -1 },
                "hlc max_drift_ms must not be negative, got -1",
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn constructors_check_the_drift() {
        let fresh = HlcState::new(5_000).expect("valid");
        assert_eq!(fresh.last(), Hlc::ZERO);
        assert_eq!(fresh.max_drift_ms(), 5_000);
        assert_eq!(HlcState::new(0).map(|s| s.max_drift_ms()), Ok(0));
        assert_eq!(
            HlcState::new(-1),
            Err(HlcError::NegativeMaxDrift { max_drift_ms: -1 })
        );
        assert_eq!(
            HlcState::restore(hlc(T, 4), i64::MIN),
            Err(HlcError::NegativeMaxDrift {
                max_drift_ms: i64::MIN
            })
        );
        assert_eq!(state(hlc(T, 4), 10).last(), hlc(T, 4));
    }

    /// The send rule, step by step: (now_ms, expected result).
    #[test]
    fn tick_table() {
        let mut clock = HlcState::new(1_000).expect("valid");
        let steps = [
            (T, hlc(T, 0)),              // the wall clock moves ms
            (T, hlc(T, 1)),              // same ms: the counter runs
            (T, hlc(T, 2)),              //
            (T + 5, hlc(T + 5, 0)),      // forwards: counter resets
            (T - 60_000, hlc(T + 5, 1)), // a backward jump: ms holds
            (T + 4, hlc(T + 5, 2)),      // still behind
            (T + 6, hlc(T + 6, 0)),      // caught up
            (-1, hlc(T + 6, 1)),         // a nonsense reading is a backward jump
            (i64::MIN, hlc(T + 6, 2)),   //
        ];
        for (now_ms, expected) in steps {
            assert_eq!(clock.tick(now_ms), Ok(expected), "tick({now_ms})");
            assert_eq!(clock.last(), expected);
        }
    }

    #[test]
    fn first_tick_at_time_zero_is_after_zero() {
        let mut clock = HlcState::new(0).expect("valid");
        assert_eq!(clock.tick(0), Ok(hlc(0, 1)));
        let mut clock = HlcState::new(0).expect("valid");
        assert_eq!(clock.tick(-10), Ok(hlc(0, 1)));
    }

    /// The receive rule: (last, remote, now_ms, expected result).
    #[test]
    fn observe_table() {
        let cases = [
            // The wall clock is ahead of both: counter resets.
            (hlc(T, 3), hlc(T - 1, 9), T + 1, hlc(T + 1, 0)),
            // The remote is ahead (within drift): take its ms, its counter + 1.
            (hlc(T, 3), hlc(T + 500, 9), T, hlc(T + 500, 10)),
            // Local is ahead of both: local counter + 1.
            (hlc(T + 9, 3), hlc(T, 9), T, hlc(T + 9, 4)),
            // Local and remote share the ms: greatest counter + 1.
            (hlc(T, 3), hlc(T, 9), T - 1, hlc(T, 10)),
            (hlc(T, 12), hlc(T, 9), T - 1, hlc(T, 13)),
            // All three share the ms.
            (hlc(T, 3), hlc(T, 3), T, hlc(T, 4)),
            // The wall clock equals local's ms, remote behind.
            (hlc(T, 3), hlc(T - 5, 0), T, hlc(T, 4)),
            // The wall clock equals remote's ms, local behind.
            (hlc(T - 5, 3), hlc(T, 7), T, hlc(T, 8)),
            // Exactly at the drift bound is accepted.
            (hlc(T, 0), hlc(T + 1_000, 0), T, hlc(T + 1_000, 1)),
            // An old remote after a backward wall-clock jump.
            (hlc(T, 0), hlc(5, 0), -3, hlc(T, 1)),
        ];
        for (last, remote, now_ms, expected) in cases {
            let mut clock = state(last, 1_000);
            assert_eq!(
                clock.observe(remote, now_ms),
                Ok(expected),
                "observe({remote}, {now_ms}) from {last}"
            );
            assert_eq!(clock.last(), expected);
        }
    }

    #[test]
    fn observe_refuses_a_remote_beyond_the_drift_and_changes_nothing() {
        let mut clock = state(hlc(T, 3), 1_000);
        let remote = hlc(T + 1_001, 0);
        assert_eq!(
            clock.observe(remote, T),
            Err(HlcError::RemoteTooFarAhead {
                remote,
                now_ms: T,
                max_drift_ms: 1_000
            })
        );
        assert_eq!(clock.last(), hlc(T, 3));
        // Once the wall clock catches up, the same remote merges.
        assert_eq!(clock.observe(remote, T + 1), Ok(hlc(T + 1_001, 1)));
        // With zero drift, only remotes not ahead of the wall clock merge.
        let mut strict = state(Hlc::ZERO, 0);
        assert!(strict.observe(hlc(T + 1, 0), T).is_err());
        assert_eq!(strict.observe(hlc(T, 0), T), Ok(hlc(T, 1)));
        // A wall clock reading far in the past does not overflow the check.
        let mut clock = state(hlc(T, 3), i64::MAX);
        assert_eq!(clock.observe(hlc(T, 0), -10), Ok(hlc(T, 4)));
        assert!(
            clock.observe(hlc(T, 0), i64::MIN).is_err(),
            "MIN + MAX = -1"
        );
        let mut clock = state(hlc(T, 3), 5);
        assert!(clock.observe(hlc(0, 0), i64::MIN).is_err());
        assert_eq!(clock.last(), hlc(T, 3));
    }

    #[test]
    fn counter_overflow_is_an_error_and_changes_nothing() {
        let full = hlc(T, u32::MAX);
        let mut clock = state(full, 1_000);
        assert_eq!(clock.tick(T), Err(HlcError::CounterOverflow { ms: T }));
        assert_eq!(clock.tick(T - 1), Err(HlcError::CounterOverflow { ms: T }));
        assert_eq!(
            clock.observe(hlc(T, 0), T),
            Err(HlcError::CounterOverflow { ms: T })
        );
        assert_eq!(clock.last(), full);
        // The next millisecond of the wall clock frees it.
        assert_eq!(clock.tick(T + 1), Ok(hlc(T + 1, 0)));

        // A remote with an exhausted counter cannot be merged at its ms...
        let mut clock = state(hlc(T, 0), 1_000);
        let hostile = hlc(T + 10, u32::MAX);
        assert_eq!(
            clock.observe(hostile, T),
            Err(HlcError::CounterOverflow { ms: T + 10 })
        );
        assert_eq!(clock.last(), hlc(T, 0));
        // ...but merges once the wall clock has passed it.
        assert_eq!(clock.observe(hostile, T + 11), Ok(hlc(T + 11, 0)));
    }

    #[test]
    fn wall_clock_beyond_the_json_range_is_an_error_and_changes_nothing() {
        let mut clock = state(hlc(T, 1), i64::MAX);
        let too_far = Hlc::MAX_MS + 1;
        assert_eq!(
            clock.tick(too_far),
            Err(HlcError::MsOutOfRange { ms: too_far })
        );
        assert_eq!(
            clock.tick(i64::MAX),
            Err(HlcError::MsOutOfRange { ms: i64::MAX })
        );
        assert_eq!(
            clock.observe(hlc(T, 0), i64::MAX),
            Err(HlcError::MsOutOfRange { ms: i64::MAX })
        );
        assert_eq!(clock.last(), hlc(T, 1));
        assert_eq!(clock.tick(Hlc::MAX_MS), Ok(hlc(Hlc::MAX_MS, 0)));
    }

    // ---- Property tests -------------------------------------------------------

    /// One step of a random schedule.
    #[derive(Debug, Clone)]
    enum Op {
        Tick { now_ms: i64 },
        Observe { remote: Hlc, now_ms: i64 },
    }

    /// Base time of the schedules; values cluster near it so ms collide often.
    const BASE: i64 = 1_700_000_000_000;

    fn now_ms_strategy() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => BASE - 50..=BASE + 50,
            1 => any::<i64>(),
            1 => prop::sample::select(vec![
                i64::MIN, -1, 0, BASE - 86_400_000, Hlc::MAX_MS, Hlc::MAX_MS + 1, i64::MAX,
            ]),
        ]
    }

    fn counter_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![
            6 => 0u32..4,
            2 => (u32::MAX - 3)..=u32::MAX,
            1 => any::<u32>(),
        ]
    }

    fn remote_strategy() -> impl Strategy<Value = Hlc> {
        let ms = prop_oneof![
            8 => BASE - 60..=BASE + 120,
            1 => 0..=Hlc::MAX_MS,
            1 => prop::sample::select(vec![0, Hlc::MAX_MS]),
        ];
        (ms, counter_strategy()).prop_map(|(ms, n)| hlc(ms, n))
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            (now_ms_strategy()).prop_map(|now_ms| Op::Tick { now_ms }),
            (remote_strategy(), now_ms_strategy())
                .prop_map(|(remote, now_ms)| Op::Observe { remote, now_ms }),
        ]
    }

    fn start_strategy() -> impl Strategy<Value = (Hlc, i64)> {
        let last = prop_oneof![
            2 => Just(Hlc::ZERO),
            3 => remote_strategy(),
        ];
        let drift = prop_oneof![
            4 => 0i64..=40,
            1 => prop::sample::select(vec![0, 1_000, 86_400_000, i64::MAX]),
        ];
        (last, drift)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Runs a random schedule of ticks (with backward jumps) and merges, and
        /// checks every invariant after every step.
        #[test]
        fn prop_schedule_keeps_every_invariant(
            (start, max_drift_ms) in start_strategy(),
            ops in prop::collection::vec(op_strategy(), 1..60),
        ) {
            let mut clock = state(start, max_drift_ms);
            // The greatest wall-clock reading seen or remote ms accepted so far;
            // the HLC's ms never exceeds it (nor the restored start).
            let mut ceiling_ms = start.ms();
            for op in ops {
                let before = clock.clone();
                let prev = before.last();
                let result = match op {
                    Op::Tick { now_ms } => {
                        let result = clock.tick(now_ms);
                        if let Ok(next) = result {
                            ceiling_ms = ceiling_ms.max(now_ms);
                            prop_assert!(next.ms() == prev.ms().max(now_ms));
                        }
                        // Tick fails only on overflow or an out-of-range clock.
                        if let Err(err) = &result {
                            prop_assert!(match err {
                                HlcError::CounterOverflow { ms } =>
                                    *ms == prev.ms() && prev.n() == u32::MAX && now_ms <= prev.ms(),
                                HlcError::MsOutOfRange { ms } =>
                                    *ms == now_ms && now_ms > Hlc::MAX_MS,
                                _ => false,
                            }, "unexpected tick error {err}");
                        }
                        result
                    }
                    Op::Observe { remote, now_ms } => {
                        let result = clock.observe(remote, now_ms);
                        let too_far =
                            i128::from(remote.ms()) > i128::from(now_ms) + i128::from(max_drift_ms);
                        // Drift refusal happens exactly when the remote is too far ahead.
                        prop_assert_eq!(
                            matches!(result, Err(HlcError::RemoteTooFarAhead { .. })),
                            too_far
                        );
                        if let Ok(next) = result {
                            ceiling_ms = ceiling_ms.max(now_ms).max(remote.ms());
                            prop_assert!(next > remote, "{} not after remote {}", next, remote);
                            prop_assert_eq!(next.ms(), prev.ms().max(remote.ms()).max(now_ms));
                            // A remote timestamp never pulls the clock past the drift bound.
                            prop_assert!(
                                i128::from(next.ms())
                                    <= i128::from(prev.ms())
                                        .max(i128::from(now_ms) + i128::from(max_drift_ms))
                            );
                        }
                        if let Err(err) = &result {
                            prop_assert!(match err {
                                HlcError::RemoteTooFarAhead { remote: r, now_ms: t, max_drift_ms: d } =>
                                    *r == remote && *t == now_ms && *d == max_drift_ms,
                                HlcError::CounterOverflow { ms } =>
                                    *ms == prev.ms().max(remote.ms()).max(now_ms),
                                HlcError::MsOutOfRange { ms } =>
                                    *ms == now_ms && now_ms > Hlc::MAX_MS,
                                HlcError::NegativeMaxDrift { .. } => false,
                            }, "unexpected observe error {err}");
                        }
                        result
                    }
                };
                match result {
                    Ok(next) => {
                        prop_assert!(next > prev, "{} not after {}", next, prev);
                        prop_assert_eq!(clock.last(), next);
                    }
                    Err(_) => prop_assert_eq!(&clock, &before, "a failed operation changed the state"),
                }
                prop_assert!(clock.last().ms() <= ceiling_ms);
                prop_assert!((0..=Hlc::MAX_MS).contains(&clock.last().ms()));
                prop_assert_eq!(clock.max_drift_ms(), max_drift_ms);
            }
        }

        /// Without remote timestamps, the HLC's ms is the greatest wall-clock
        /// reading (or the restored start): counters never carry into ms.
        #[test]
        fn prop_ticks_track_the_wall_clock(
            start in remote_strategy(),
            readings in prop::collection::vec(BASE - 100..=BASE + 100, 1..80),
        ) {
            let mut clock = state(start, 0);
            let mut previous = start;
            for now_ms in readings {
                match clock.tick(now_ms) {
                    Ok(next) => {
                        prop_assert!(next > previous);
                        prop_assert_eq!(next.ms(), previous.ms().max(now_ms));
                        previous = next;
                    }
                    Err(err) => {
                        prop_assert_eq!(err, HlcError::CounterOverflow { ms: previous.ms() });
                        prop_assert_eq!(clock.last(), previous);
                    }
                }
            }
        }

        /// Two devices exchanging timestamps: whatever their clock skew, an event
        /// stamped after receiving another is ordered after it.
        #[test]
        fn prop_causality_across_devices(
            skew_ms in -30i64..=30,
            steps in prop::collection::vec((any::<bool>(), 0i64..=3), 1..60),
        ) {
            let max_drift_ms = 40;
            let mut a = state(Hlc::ZERO, max_drift_ms);
            let mut b = state(Hlc::ZERO, max_drift_ms);
            let mut wall_ms = BASE;
            for (a_sends, elapsed_ms) in steps {
                wall_ms += elapsed_ms;
                let (sender, receiver, send_now, recv_now) = if a_sends {
                    (&mut a, &mut b, wall_ms, wall_ms + skew_ms)
                } else {
                    (&mut b, &mut a, wall_ms + skew_ms, wall_ms)
                };
                let sent = sender.tick(send_now).expect("no overflow in short runs");
                let received = receiver.observe(sent, recv_now).expect("skew within drift");
                let reply = receiver.tick(recv_now).expect("no overflow in short runs");
                prop_assert!(sent < received && received < reply);
            }
        }

        /// `{"ms","n"}` round-trips, and the order is the (ms, n) tuple order.
        #[test]
        fn prop_serde_round_trip_and_order(a in remote_strategy(), b in remote_strategy()) {
            let json = serde_json::to_string(&a).expect("serializes");
            prop_assert_eq!(&json, &format!(r#"{{"ms":{},"n":{}}}"#, a.ms(), a.n()));
            prop_assert_eq!(serde_json::from_str::<Hlc>(&json).expect("parses"), a);
            prop_assert_eq!(a.cmp(&b), (a.ms(), a.n()).cmp(&(b.ms(), b.n())));
        }

        /// Any (ms, n) pair either builds a valid timestamp or is rejected, never
        /// panics, through the constructor and through JSON alike.
        #[test]
        fn prop_any_wire_value_is_checked(ms in any::<i64>(), n in any::<u32>()) {
            let built = Hlc::new(ms, n);
            let parsed = serde_json::from_str::<Hlc>(&format!(r#"{{"ms":{ms},"n":{n}}}"#));
            let valid = (0..=Hlc::MAX_MS).contains(&ms);
            prop_assert_eq!(built.is_ok(), valid);
            prop_assert_eq!(parsed.is_ok(), valid);
            if let (Ok(built), Ok(parsed)) = (built, parsed) {
                prop_assert_eq!(built, parsed);
            }
        }
    }
}
