//! # caja-node
//!
//! The register: a durable, hash-chained journal on SQLite, the cashier's and the
//! store manager's operations (offline), and the sync client.
//!
//! Architecture invariant: the network never blocks a sale; an operation is
//! acknowledged only after its SQLite transaction is durable.

/// The text `caja-node version` prints: the binary's version and the protocol
/// formats it speaks.
pub fn version_text() -> String {
    format!(
        "caja-node {}\nevent envelope v{}\nsync protocol /v1\ncanonical JSON RFC 8785 (integers only)",
        env!("CARGO_PKG_VERSION"),
        caja_shared::event::ENVELOPE_VERSION
    )
}
