//! # caja-tests
//!
//! End-to-end tests that start real hubs and nodes (in `tests/`), the TCP proxy
//! they use for partitions and bad networks, and the demo binary `caja-demo`
//! that README.md's first command runs.

pub mod browser;
pub mod cluster;
pub mod day;
pub mod day_ecf;
pub mod demo;
pub mod devices;
pub mod pki;
pub mod procs;
pub mod proxy;
pub mod sim;
pub mod sweep;
pub mod tlspki;
