//! # caja-hub
//!
//! Head office's hub. Built in the Hub issue: enrollment, the authenticated sync
//! API, exactly-once causal ingest, projections, health and the audit log.
//!
//! Architecture invariant: handlers never touch SQL; storage sits behind one
//! module so a PostgreSQL backend can be added without touching them.

/// The text `caja-hub version` prints: the binary's version and the protocol
/// formats it speaks.
pub fn version_text() -> String {
    format!(
        "caja-hub {}\nevent envelope v{}\nsync protocol /v1\ncanonical JSON RFC 8785 (integers only)\naudit log v1 (RFC 9162 Merkle tree, Ed25519 signed tree heads)",
        env!("CARGO_PKG_VERSION"),
        caja_shared::event::ENVELOPE_VERSION
    )
}
