//! # caja-node
//!
//! The register: a durable, hash-chained journal on SQLite, the cashier's and the
//! store manager's operations (offline), and the sync client.
//!
//! Architecture invariant: the network never blocks a sale; an operation is
//! acknowledged only after its SQLite transaction is durable.
//!
//! Storage layer:
//! - [`db`]: opening the SQLite file (WAL, `synchronous=FULL`, busy timeout) and
//!   migrating it;
//! - [`migrate`]: the versioned migrator over `migrations/node/`;
//! - [`journal`]: the append-only, hash-chained journal of this device's events,
//!   its checkpoints, verification and export;
//! - [`keyfile`]: the owner-only device key file;
//! - [`system`]: the real clock and the OS random source.
//!
//! Operations:
//! - [`sale`] and [`zreport`]: pure sale building and Z report computation;
//! - [`projection`]: the derived tables, their rebuild and digest;
//! - [`register`]: each operation as one transaction over journal and projections;
//! - [`print`]: the durable print queue and the receipts of sales (a cash
//!   sale's original receipt opens the drawer);
//! - [`devices`]: the scale wired into selling, the running node's printer
//!   loop and the virtual scale.

pub mod config;
pub mod crashpoint;
pub mod datadir;
pub mod db;
pub mod devices;
pub mod error;
pub mod escrow;
pub mod fiscal;
pub mod import;
pub mod journal;
#[cfg(unix)]
pub mod keyfile;
pub mod messages;
pub mod migrate;
pub mod print;
pub mod projection;
pub mod queries;
pub mod register;
pub mod sale;
pub mod staff;
pub mod sync;
pub mod system;
pub mod testkit;
pub mod ui;
pub mod zreport;

/// The text `caja-node version` prints: the binary's version and the protocol
/// formats it speaks.
pub fn version_text() -> String {
    format!(
        "caja-node {}\nevent envelope v{}\nsync protocol /v1\ncanonical JSON RFC 8785 (integers only)\nnode schema v{}",
        env!("CARGO_PKG_VERSION"),
        caja_shared::event::ENVELOPE_VERSION,
        migrate::SCHEMA_VERSION
    )
}
