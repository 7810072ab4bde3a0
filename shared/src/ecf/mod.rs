//! Electronic fiscal documents of the Dominican Republic (DGII e-CF), pure:
//! the issuer and environment ([`issuer`]), number and buyer rules
//! ([`numbers`]), the documents ([`document`]) in Caja's canonical XML
//! ([`xml`]), their enveloped XMLDSig signature ([`xmldsig`]) verified over
//! canonical XML of any serialization ([`c14n`]), what the
//! receipt prints ([`receipt`]) and the composition the register and the hub
//! call ([`issue`]); the signer's PKCS#12 and X.509 checks
//! ([`certificate`]).
//!
//! Invariant: nothing here does IO; every document built validates against
//! DGII's schema for its type and every signed one verifies (tests in
//! `shared/tests/ecf_*.rs` check both with `xmllint` and `xmlsec1`). Sources
//! are named in each module.

pub mod c14n;
pub mod certificate;
pub mod document;
pub mod issue;
pub mod issuer;
pub mod numbers;
pub mod receipt;
pub mod xml;
pub mod xmldsig;
