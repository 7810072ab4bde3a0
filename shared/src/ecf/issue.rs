//! Issuing at the register: build and sign the e-CF of a sale (and, for a
//! consumer invoice under DOP$250,000.00, its RFCE summary), the credit note
//! of a return, and — at the hub — the cancellation of unused numbers.
//!
//! Invariant: the e-CF is signed first and the RFCE carries that signed
//! e-CF's security code (DGII "Formato Resumen Factura Consumo Electrónica
//! v1.0", `CodigoSeguridadeCF`); every returned document is signed and
//! verifies ([`super::xmldsig::verify`]) — checked here before returning, so
//! a signing bug refuses the sale instead of printing a receipt for a
//! document DGII would refuse. The QR address follows DGII "Descripción
//! técnica" (see [`super::receipt`]).

use crate::digest::Hash256;
use crate::kind::{SaleCreated, SaleReturned};
use crate::localtime::{LocalDate, LocalDateTime, UtcOffset};
use crate::money::Money;

use super::document::{self, Built, DocumentError};
pub use super::document::{ModificationCode, ModifiedDocument, SaleContextEcf};
use super::issuer::Issuer;
use super::numbers;
use super::receipt::{self, TimbreParams};
use super::xmldsig::{self, SignError, Signer, VerifyError};

/// What a signed document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignedKind {
    /// An e-CF (31, 32, 34).
    Ecf,
    /// A consumer-invoice summary.
    Rfce,
    /// A cancellation of unused numbers.
    Anecf,
}

impl SignedKind {
    /// `ecf` | `rfce` | `anecf`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SignedKind::Ecf => "ecf",
            SignedKind::Rfce => "rfce",
            SignedKind::Anecf => "anecf",
        }
    }

    /// The inverse of [`SignedKind::as_str`].
    pub fn parse(s: &str) -> Option<SignedKind> {
        match s {
            "ecf" => Some(SignedKind::Ecf),
            "rfce" => Some(SignedKind::Rfce),
            "anecf" => Some(SignedKind::Anecf),
            _ => None,
        }
    }
}

/// A signed document's bytes and their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDocument {
    /// What it is.
    pub kind: SignedKind,
    /// The signed bytes, exactly as stored and submitted.
    pub xml: Vec<u8>,
    /// SHA-256 of `xml`.
    pub sha256: Hash256,
}

impl SignedDocument {
    fn new(kind: SignedKind, xml: Vec<u8>) -> SignedDocument {
        SignedDocument {
            kind,
            sha256: Hash256::of(&xml),
            xml,
        }
    }
}

/// An issued e-CF: what the receipt prints and the event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The e-NCF.
    pub encf: String,
    /// The e-CF type (31, 32, 34).
    pub ecf_type: u8,
    /// The security code (first 6 characters of the e-CF's `SignatureValue`).
    pub security_code: String,
    /// Signing time (UTC ms), as written in `FechaHoraFirma`.
    pub signed_at_ms: i64,
    /// `MontoTotal`.
    pub total: Money,
    /// The e-CF first, then its RFCE when there is one.
    pub documents: Vec<SignedDocument>,
    /// The QR's address.
    pub qr_url: String,
}

/// Why a document cannot be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The event does not fit the document.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The document just signed does not verify (a bug: nothing is issued).
    #[error("the document just signed does not verify: {0}")]
    SelfCheck(VerifyError),
}

fn sign_checked(
    kind: SignedKind,
    unsigned: &[u8],
    signer: &Signer,
) -> Result<(SignedDocument, String), IssueError> {
    let signed = xmldsig::sign(unsigned, signer)?;
    let v = xmldsig::verify(&signed).map_err(IssueError::SelfCheck)?;
    Ok((
        SignedDocument::new(kind, signed),
        xmldsig::code_of(&v.signature_value),
    ))
}

fn issued(
    b: Built,
    ecf: SignedDocument,
    code: String,
    ctx: &SaleContextEcf<'_>,
    rfce: Option<SignedDocument>,
) -> Issued {
    let summarized = rfce.is_some();
    let qr_url = receipt::qr_url(
        ctx.environment,
        summarized,
        &TimbreParams {
            rnc: &ctx.issuer.rnc,
            buyer_rnc: b.buyer_rnc.as_deref(),
            encf: &b.encf,
            issued: LocalDate::from_utc_ms(ctx.issued_ms, ctx.offset),
            total: b.total,
            signed_at: LocalDateTime::from_utc_ms(ctx.signed_at_ms, ctx.offset),
            code: &code,
        },
    );
    let mut documents = vec![ecf];
    documents.extend(rfce);
    Issued {
        encf: b.encf,
        ecf_type: b.ecf_type,
        security_code: code,
        signed_at_ms: ctx.signed_at_ms,
        total: b.total,
        documents,
        qr_url,
    }
}

/// Builds and signs a sale's e-CF (31 or 32), then for an `E32` under
/// DOP$250,000.00 its RFCE carrying the e-CF's code.
pub fn issue_sale(
    sale: &SaleCreated,
    ctx: &SaleContextEcf<'_>,
    signer: &Signer,
) -> Result<Issued, IssueError> {
    issue_sale_replacing(sale, ctx, None, signer)
}

/// [`issue_sale`] for a sale first issued on a `B` number in a declared
/// contingency: the e-CF names it (`CodigoModificacion` 4).
pub fn issue_sale_replacing(
    sale: &SaleCreated,
    ctx: &SaleContextEcf<'_>,
    replaced: Option<&ModifiedDocument>,
    signer: &Signer,
) -> Result<Issued, IssueError> {
    issue_sale_joined(sale, ctx, replaced, signer, &InOrder)
}

/// Runs two pieces of work and returns when both are done: one after the
/// other ([`InOrder`]), or the first on another thread while the second runs
/// here (the caller's choice: this crate starts no thread).
pub trait Join {
    /// Runs `beside` and `here`, in any order or at once.
    fn join(&self, beside: &mut (dyn FnMut() + Send), here: &mut dyn FnMut());
}

/// [`Join`] one after the other, on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct InOrder;

impl Join for InOrder {
    fn join(&self, beside: &mut (dyn FnMut() + Send), here: &mut dyn FnMut()) {
        beside();
        here();
    }
}

/// [`issue_sale_replacing`], with the e-CF's check (it verifies) handed to
/// `join` beside the building and signing of its RFCE, which needs only the
/// e-CF's security code: the same documents, the same checks, and the same
/// first error (the e-CF's check before anything about the RFCE).
pub fn issue_sale_joined(
    sale: &SaleCreated,
    ctx: &SaleContextEcf<'_>,
    replaced: Option<&ModifiedDocument>,
    signer: &Signer,
    join: &dyn Join,
) -> Result<Issued, IssueError> {
    let ecf = sign_sale_ecf(sale, ctx, replaced, signer)?;
    let mut checked = None;
    let mut rfce = None;
    let mut check = || checked = Some(check_ecf(&ecf.signed, &ecf.value));
    if ecf.summarized() {
        let mut summarize = || {
            rfce = Some(ecf.sign_summary(sale, ctx, signer).and_then(|doc| {
                if let Some(d) = &doc {
                    check_signed(d)?;
                }
                Ok(doc)
            }));
        };
        join.join(&mut check, &mut summarize);
    } else {
        check();
    }
    checked.unwrap_or(Err(IssueError::SelfCheck(VerifyError::Profile(
        "the check did not run",
    ))))?;
    let rfce = rfce.transpose()?.flatten();
    Ok(ecf.into_issued_unchecked(ctx, rfce))
}

/// A sale's e-CF built and signed, its check not run yet: the first step of
/// [`issue_sale_joined`] for a caller that runs the steps on threads of its
/// own (the register signs beside its transaction's SQL). The steps give
/// the same bytes as [`issue_sale`]; the caller runs [`check_ecf`] on the
/// e-CF and [`check_signed`] on its RFCE before it keeps either.
#[derive(Debug, Clone)]
pub struct SignedEcf {
    built: Built,
    signed: Vec<u8>,
    value: String,
    code: String,
}

/// Builds and signs a sale's e-CF (31 or 32), naming the `B` document it
/// replaces if any; the check is [`check_ecf`].
pub fn sign_sale_ecf(
    sale: &SaleCreated,
    ctx: &SaleContextEcf<'_>,
    replaced: Option<&ModifiedDocument>,
    signer: &Signer,
) -> Result<SignedEcf, IssueError> {
    let built = document::invoice_replacing(sale, ctx, replaced)?;
    let (signed, value) = xmldsig::sign_with_value(&built.xml, signer)?;
    let code = xmldsig::code_of(&value);
    Ok(SignedEcf {
        built,
        signed,
        value,
        code,
    })
}

impl SignedEcf {
    /// The signed bytes.
    pub fn signed(&self) -> &[u8] {
        &self.signed
    }

    /// The `SignatureValue` written (base64).
    pub fn signature_value(&self) -> &str {
        &self.value
    }

    /// The security code (first characters of the signature value).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Whether an RFCE summarizes this e-CF (an `E32` under DOP$250,000.00).
    pub fn summarized(&self) -> bool {
        numbers::uses_summary(self.built.ecf_type, self.built.total)
    }

    /// Builds and signs the RFCE carrying this e-CF's code (`None` when the
    /// e-CF is not summarized); the check is [`check_signed`].
    pub fn sign_summary(
        &self,
        sale: &SaleCreated,
        ctx: &SaleContextEcf<'_>,
        signer: &Signer,
    ) -> Result<Option<SignedDocument>, IssueError> {
        if !self.summarized() {
            return Ok(None);
        }
        let unsigned = document::summary(sale, ctx, &self.code)?;
        let signed = xmldsig::sign(&unsigned, signer)?;
        Ok(Some(SignedDocument::new(SignedKind::Rfce, signed)))
    }

    /// What the receipt prints and the event records, with the RFCE given.
    /// Whether the documents were checked is the caller's to know: nothing
    /// is verified here.
    pub fn into_issued_unchecked(
        self,
        ctx: &SaleContextEcf<'_>,
        rfce: Option<SignedDocument>,
    ) -> Issued {
        let ecf = SignedDocument::new(SignedKind::Ecf, self.signed);
        issued(self.built, ecf, self.code, ctx, rfce)
    }
}

/// The e-CF's check: the signed bytes verify, and the signature value that
/// verified is the one written (so the code printed is the verified one's).
pub fn check_ecf(signed: &[u8], signature_value: &str) -> Result<(), IssueError> {
    let verified = xmldsig::verify(signed).map_err(IssueError::SelfCheck)?;
    if verified.signature_value != signature_value {
        return Err(IssueError::SelfCheck(VerifyError::Signature));
    }
    Ok(())
}

/// A signed document's check: it verifies.
pub fn check_signed(doc: &SignedDocument) -> Result<(), IssueError> {
    xmldsig::verify(&doc.xml)
        .map(|_| ())
        .map_err(IssueError::SelfCheck)
}

/// Builds and signs a return's credit note (e-CF 34).
pub fn issue_credit_note(
    ret: &SaleReturned,
    modified: &ModifiedDocument,
    ctx: &SaleContextEcf<'_>,
    signer: &Signer,
) -> Result<Issued, IssueError> {
    issue_credit_note_named(ret, modified, ctx, None, signer)
}

/// [`issue_credit_note`] with the returned lines' names (see
/// [`document::credit_note_named`]).
pub fn issue_credit_note_named(
    ret: &SaleReturned,
    modified: &ModifiedDocument,
    ctx: &SaleContextEcf<'_>,
    names: Option<&[String]>,
    signer: &Signer,
) -> Result<Issued, IssueError> {
    let b = document::credit_note_named(ret, modified, ctx, names)?;
    let (ecf, code) = sign_checked(SignedKind::Ecf, &b.xml, signer)?;
    Ok(issued(b, ecf, code, ctx, None))
}

/// Builds and signs the cancellation (ANECF) of unused ranges of a series
/// (`first`, `last` e-NCF, inclusive), dated `at_ms` (signed by the hub).
pub fn cancellation(
    issuer: &Issuer,
    series: &str,
    ranges: &[(&str, &str)],
    at_ms: i64,
    offset: UtcOffset,
    signer: &Signer,
) -> Result<SignedDocument, IssueError> {
    let unsigned = document::cancellation(
        issuer,
        series,
        ranges,
        LocalDateTime::from_utc_ms(at_ms, offset),
    )?;
    Ok(sign_checked(SignedKind::Anecf, &unsigned, signer)?.0)
}
