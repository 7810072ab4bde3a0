//! # caja-tests
//!
//! End-to-end tests that start real hubs and nodes (in `tests/`), and the demo
//! binary `caja-demo` that README.md's first command runs.

pub mod demo;
