//! Sync with the hub.
//!
//! The pure parts — retry backoff, the circuit breaker and the clock-skew
//! estimate — take `now_ms` and the random source as inputs, so the simulation
//! can replay them. `client` is the HTTP shell (signed requests, DESIGN's wire
//! shapes) and `engine` the loop that pushes, pulls and recovers, on its own
//! SQLite connection so selling never waits for the network; `state` its
//! rows in the database; `batch` bounds a push in events and bytes; `trust`
//! whom the register believes is its hub (https, CA, pinned certificate);
//! `pipeline` keeps several pushes in flight.

pub mod backoff;
pub mod batch;
pub mod breaker;
pub mod client;
pub mod engine;
pub mod intents;
pub mod pipeline;
pub mod skew;
pub mod state;
pub mod trust;
