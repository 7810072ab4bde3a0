//! Why the register cannot sign an e-CF now, or could not sign one
//! document: typed, each naming its cause (a leaf: the node's error type
//! refers to it).

/// Why a register cannot issue e-CF now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcfUnavailable {
    /// No `[ecf]` section (issuer RNC, legal name, address, environment).
    #[error("ecf: the [ecf] issuer configuration is missing")]
    NoIssuer,
    /// No certificate installed.
    #[error("ecf: no signing certificate is installed")]
    NoCertificate,
    /// The certificate expired (or is not valid yet) at the signing time.
    #[error("ecf: the signing certificate is not valid at {at_ms} (valid {not_before_ms}..{not_after_ms})")]
    CertificateNotValid {
        /// The signing time.
        at_ms: i64,
        /// Validity start.
        not_before_ms: i64,
        /// Validity end.
        not_after_ms: i64,
    },
    /// The certificate or the configuration could not be read.
    #[error("ecf: {0}")]
    Broken(String),
}

/// Why a document was not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct IssueFailed {
    /// The field of the document (or of the sale) at fault.
    pub field: String,
    /// Why.
    pub reason: String,
}
