//! The sync engine's pure parts: retry backoff, the circuit breaker and the
//! clock-skew estimate. No IO and no clock: `now_ms` and the random source are
//! passed in, so the simulation can replay them. The HTTP shell that uses them
//! arrives with the Sync issue (#6).

pub mod backoff;
pub mod breaker;
pub mod skew;
