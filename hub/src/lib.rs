//! # caja-hub
//!
//! Head office's hub: enrollment, the authenticated sync API, exactly-once causal
//! ingest, projections, health and the audit entries.
//!
//! Sans-IO core, thin IO shell. The pure modules decide: [`auth`] (is a request
//! authentic), [`ingest`] (does a push fit, what is held), [`projection`] (what
//! an event changes, which conflicts exist), [`ratelimit`], [`hubchain`],
//! [`audit`], [`health`]. The shell does IO: [`storage`] (all SQL, one writer
//! thread), [`http`] (axum handlers), [`net`] (the serve loop and its limits),
//! [`tls`], [`server`], [`config`], [`datadir`],
//! [`metrics`], [`admin_client`], and [`ui`] (the head-office dashboard).
//!
//! Architecture invariant: handlers never touch SQL; storage sits behind one
//! module ([`storage`]), on SQLite or PostgreSQL.
//!
//! Test support exists only in the crate's own unit tests and with the
//! `testkit` feature (the hub's integration tests, `caja-tests`, `caja-bench`),
//! never in a release build: `testpg` (a throwaway PostgreSQL server),
//! `workload` (deterministic registers' chains), `dgii_emulator` and
//! `provider_emulator`.

// `ApiError` (152 bytes) is the Err of most shell functions; rejections are
// the rare path and boxing every one would only add noise.
#![allow(clippy::result_large_err)]

pub mod acecf_worker;
pub mod admin_client;
pub mod audit;
pub mod audit_export;
pub mod audit_tree;
pub mod auth;
pub mod caps;
pub mod catalog_csv;
pub mod certificate;
pub mod certification;
pub mod cli_purchases;
pub mod config;
pub mod conflict;
pub mod crashpoint;
pub mod datadir;
#[cfg(any(test, feature = "testkit"))]
pub mod dgii_emulator;
#[cfg(any(test, feature = "testkit"))]
pub mod dgii_partner;
pub mod escrow;
pub mod fiscal;
pub mod health;
pub mod http;
pub mod hubchain;
pub mod ingest;
pub mod logsafe;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod outbox_worker;
pub mod payments;
pub mod payments_client;
pub mod projection;
#[cfg(any(test, feature = "testkit"))]
pub mod provider_emulator;
pub mod ratelimit;
pub mod receiver;
pub mod representation;
pub mod restore;
pub mod server;
pub mod storage;
pub mod system;
pub mod taxgw;
#[cfg(any(test, feature = "testkit"))]
pub mod testpg;
pub mod tls;
pub mod ui;
pub mod wire;
#[cfg(any(test, feature = "testkit"))]
pub mod workload;

/// The text `caja-hub version` prints: the binary's version and the protocol
/// formats it speaks.
pub fn version_text() -> String {
    format!(
        "caja-hub {}\nevent envelope v{}\nsync protocol /v1\ncanonical JSON RFC 8785 (integers only)\naudit log v1 (RFC 9162 Merkle tree, Ed25519 signed tree heads)",
        env!("CARGO_PKG_VERSION"),
        caja_shared::event::ENVELOPE_VERSION
    )
}
