//! Electronic fiscal documents (e-CF) at the register: what a sale or a
//! return of an `E` series signs in its own transaction, and the rules the
//! register applies before it signs.
//!
//! Invariant: an e-CF sale or return is written with its signed documents and
//! its `FiscalDocumentIssued` event in ONE SQLite transaction, or not at all
//! (no crashpoint between them is needed: there is no "between"). A register
//! without an issuer (no `[ecf]` configuration, no certificate, an expired one)
//! refuses an `E` series before anything is written.
//!
//! The signing time is the register's hub-corrected clock (local clock plus the
//! skew the sync engine measured and saved), so it is never the hub's later
//! build time and never ahead of the hub by more than the skew estimate's error
//! (half a round trip). Source: DESIGN "Electronic fiscal documents (e-CF,
//! DGII)"; DGII "Formato e-CF" (FechaHoraFirma, FechaNCFModificado,
//! CodigoModificacion) and "Informe Técnico e-CF" (buyer on E31 and on an E32
//! of RD$250,000 or more).
//!
//! The signing itself is behind [`EcfIssuer`] (the node's configuration and
//! certificate make one, tests inject one); `store` holds the two tables
//! (`signed_documents`, `issued_ecf`) and is the only file here with SQL.

pub mod beside;
pub mod configured;
pub mod error;
pub mod store;

pub use error::{EcfUnavailable, IssueFailed};

use caja_shared::digest::Hash256;
use caja_shared::kind::{SaleCreated, SaleReturned};
use caja_shared::localtime::LocalDate;
use caja_shared::money::Money;

/// RD$250,000.00 in centavos: from this total on, an `E32` names its buyer
/// (RNC or cédula and name) and DGII receives the e-CF itself instead of an
/// RFCE. Source: DGII "Informe Técnico e-CF" (consumer invoices).
pub const E32_BUYER_THRESHOLD: Money = Money(25_000_000);

/// Whether a series is electronic (`E` + 2 digits).
pub fn is_electronic(series: &str) -> bool {
    series.starts_with('E')
}

/// Whether a document of `series` with `total` must name its buyer (tax id and
/// name): `E31` always, `E32` from [`E32_BUYER_THRESHOLD`] on.
pub fn buyer_required(series: &str, total: Money) -> bool {
    match series {
        "E31" => true,
        "E32" => total >= E32_BUYER_THRESHOLD,
        _ => false,
    }
}

/// One signed document: its kind (`ecf` or `rfce`), the exact bytes and their
/// SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedDoc {
    /// `ecf` or `rfce`.
    pub kind: String,
    /// The signed XML, byte for byte.
    pub xml: Vec<u8>,
    /// SHA-256 of `xml`.
    pub sha256: Hash256,
}

impl std::fmt::Debug for SignedDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedDoc")
            .field("kind", &self.kind)
            .field("bytes", &self.xml.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// A sale's documents being signed beside its transaction
/// ([`beside::Pending`]).
pub type PendingSale = beside::Pending<IssuedEcf>;

/// What signing one e-CF gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedEcf {
    /// The e-NCF.
    pub encf: String,
    /// First 6 characters of the e-CF's `SignatureValue`.
    pub security_code: String,
    /// `FechaHoraFirma`, UTC ms.
    pub signed_at_ms: i64,
    /// `MontoTotal`.
    pub total: Money,
    /// The e-CF first, then its RFCE if any.
    pub documents: Vec<SignedDoc>,
    /// The QR code's data (DGII's `ConsultaTimbre` / `ConsultaTimbreFC`).
    pub qr_url: String,
}

/// The times and buyer of one document to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signing<'a> {
    /// `FechaEmision`'s instant (UTC ms), the hub-corrected clock.
    pub issued_ms: i64,
    /// `FechaHoraFirma` (UTC ms), the hub-corrected clock.
    pub signed_at_ms: i64,
    /// The series' `FechaVencimientoSecuencia`, `yyyy-mm-dd`.
    pub series_valid_until: Option<&'a str>,
    /// `RazonSocialComprador`, when the buyer is named.
    pub buyer_name: Option<&'a str>,
}

/// [`Signing`] with its own strings, for work that outlives the caller's
/// borrow (signing on another thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningOwned {
    /// `FechaEmision`'s instant (UTC ms).
    pub issued_ms: i64,
    /// `FechaHoraFirma` (UTC ms).
    pub signed_at_ms: i64,
    /// The series' `FechaVencimientoSecuencia`.
    pub series_valid_until: Option<String>,
    /// `RazonSocialComprador`.
    pub buyer_name: Option<String>,
}

impl SigningOwned {
    /// The borrowed form.
    pub fn signing(&self) -> Signing<'_> {
        Signing {
            issued_ms: self.issued_ms,
            signed_at_ms: self.signed_at_ms,
            series_valid_until: self.series_valid_until.as_deref(),
            buyer_name: self.buyer_name.as_deref(),
        }
    }
}

/// Whether a credit note cancels the whole document it modifies or part of it
/// (DGII `CodigoModificacion` 1 and 3; 4 replaces a contingency B document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modification {
    /// `CodigoModificacion` 1: cancels the document in full.
    Full,
    /// `CodigoModificacion` 3: corrects amounts (a partial return).
    Partial,
}

/// The document a credit note modifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modified {
    /// Its e-NCF or NCF (`NCFModificado`).
    pub ncf: String,
    /// Its date (`FechaNCFModificado`).
    pub issued_date: LocalDate,
    /// Full or partial.
    pub modification: Modification,
}

/// Builds and signs the register's e-CF. The real one wraps the configured
/// issuer, environment and certificate; tests inject their own.
pub trait EcfIssuer: std::fmt::Debug + Send + Sync {
    /// Whether documents may be signed at `at_ms` (certificate validity).
    fn check(&self, at_ms: i64) -> Result<(), EcfUnavailable>;
    /// Signs a sale's e-CF (and its RFCE for an `E32` under
    /// [`E32_BUYER_THRESHOLD`]).
    fn issue_sale(&self, sale: &SaleCreated, at: &Signing<'_>) -> Result<IssuedEcf, IssueFailed>;
    /// Starts signing a sale's documents, so that the caller's transaction
    /// goes on with the SQL that does not need them; the caller takes them
    /// with [`PendingSale::documents`] and commits only after
    /// [`PendingSale::finish`]. The default signs here, at once, with
    /// [`EcfIssuer::issue_sale`].
    fn start_sale(&self, sale: SaleCreated, at: SigningOwned) -> PendingSale {
        PendingSale::ready(self.issue_sale(&sale, &at.signing()))
    }
    /// Signs a return's credit note (`E34`).
    fn issue_credit_note(
        &self,
        ret: &SaleReturned,
        modified: &Modified,
        at: &Signing<'_>,
    ) -> Result<IssuedEcf, IssueFailed>;
}

/// The register's e-CF issuer as loaded at open: one, or why there is none
/// (reported only when an `E` series is used).
pub type IssuerSlot = Result<std::sync::Arc<dyn EcfIssuer>, EcfUnavailable>;

/// The hub-corrected time: the local clock plus the measured skew (hub −
/// local). Saturating: a garbage skew never overflows.
pub fn hub_corrected(local_ms: i64, skew_ms: i64) -> i64 {
    local_ms.saturating_add(skew_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buyer_rules_follow_the_series_and_the_threshold() {
        assert!(buyer_required("E31", Money(1)));
        assert!(!buyer_required("E32", Money(24_999_999)));
        assert!(buyer_required("E32", Money(25_000_000)));
        assert!(!buyer_required("B02", Money(25_000_000)));
        assert!(is_electronic("E34") && !is_electronic("B04"));
        assert_eq!(hub_corrected(1_000, -300), 700);
        assert_eq!(hub_corrected(i64::MAX, 5), i64::MAX);
    }
}
