//! # caja-node
//!
//! The register: a durable, hash-chained journal on SQLite, the cashier's and the
//! store manager's operations (offline), and the sync client.
//!
//! Architecture invariant: the network never blocks a sale; an operation is
//! acknowledged only after its SQLite transaction is durable.
//!
//! Storage layer (the only modules with SQL, with the queue and state
//! stores named below):
//! - [`db`]: opening the SQLite file (WAL, `synchronous=FULL`, busy timeout),
//!   migrating it, and the backup's SQLite calls;
//! - [`checkpointer`]: WAL checkpoints on a thread of their own, off the
//!   sale's commit, with the WAL bounded;
//! - [`migrate`]: the versioned migrator over `migrations/node/`;
//! - [`journal`]: the append-only, hash-chained journal of this device's events,
//!   its checkpoints, verification and export;
//! - [`projection`]: the derived tables, their rebuild and digest;
//! - [`queries`]: the read queries shared by the register, the CLI, the
//!   cashier's screen and the devices;
//! - [`keyfile`]: the owner-only device key file;
//! - [`datadir`]: the data directory's paths, init, backup and restore;
//! - [`system`]: the real clock and the OS random source.
//!
//! Operations:
//! - [`error`]: why an operation did not happen, refused or failed;
//! - [`sale`] and [`zreport`]: pure sale building and Z report computation;
//! - [`register`]: each operation as one transaction over journal and
//!   projections, split by area behind the one `Register` type;
//! - [`fiscal`], [`escrow`] and [`staff`]: fiscal number blocks, stock quotas,
//!   staff and PIN checks (their tables and rules);
//! - [`import`]: verified hub pages and other registers' events;
//! - [`print`](mod@print): the durable print queue and the receipts of sales (a cash
//!   sale's original receipt opens the drawer);
//! - [`devices`]: the scale wired into selling, the running node's printer
//!   loop and the virtual scale;
//! - [`sync`]: the sync client and engine;
//! - [`ui`]: the cashier's screen (HTTP handlers and its cart);
//! - [`messages`]: every Spanish sentence people see.

pub mod checkpointer;
pub mod config;
pub mod crashpoint;
pub mod datadir;
pub mod db;
pub mod devices;
pub mod drawer_journal;
pub mod ecf;
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
