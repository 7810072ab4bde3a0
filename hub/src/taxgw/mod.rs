//! Tax-authority gateways: one module per country behind [`TaxGateway`], so
//! the outbox workers (`crate::outbox_worker`) never know which authority
//! they talk to. The Dominican Republic's DGII e-CF services are the first
//! ([`dgii`] builds and reads the documents, pure; [`dgii_http`] talks to the
//! services).
//!
//! A gateway does four things: build a document's bytes once (pure, from the
//! register's event), submit them, ask for the verdict by tracking id, and —
//! after a submission whose answer was lost — look up what the authority
//! holds for the document's number, so nothing is sent twice.

pub mod dgii;
pub mod dgii_http;
pub mod dgii_signed;
pub mod multipart;
pub mod xml;

use std::future::Future;
use std::pin::Pin;

use caja_shared::kind::{FiscalDocType, SaleCreated, SaleReturned};
use caja_shared::localtime::UtcOffset;

use crate::outbox::{Claimed, Prepared, Verdict};

/// A boxed future of a gateway call.
pub type GwFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A document a register signed, as the hub stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSource {
    /// `ecf` or `rfce`.
    pub kind: String,
    /// The exact signed bytes.
    pub xml: Vec<u8>,
    /// The security code the register's event gave.
    pub security_code: Option<String>,
}

/// What a document is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceBody {
    /// The documents a register signed for the number (the e-CF, and an
    /// E32's RFCE): submitted as they are, never rebuilt.
    Signed(Vec<SignedSource>),
    /// A sale (an invoice).
    Sale(SaleCreated),
    /// A return (a credit note).
    Return(SaleReturned),
    /// Numbers that will never be issued: `first..=last` printed numbers,
    /// `count` of them.
    Cancellation {
        /// First printed number.
        first: String,
        /// Last printed number.
        last: String,
        /// How many.
        count: u64,
    },
}

/// Everything a gateway needs to build a document, read by the worker from
/// the hub's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentSource {
    /// The document's key (its number, or a cancellation key).
    pub doc_key: String,
    /// Invoice, credit note or cancellation.
    pub doc_type: FiscalDocType,
    /// Series prefix.
    pub series: String,
    /// The register event's body (or the cancelled range).
    pub body: SourceBody,
    /// When it was issued (the event's HLC time, or the write-off), UTC ms.
    pub issued_ms: i64,
    /// The store's offset from UTC (dates on documents are local).
    pub offset: UtcOffset,
    /// For a credit note: when the modified document was issued, if the hub
    /// holds it.
    pub modified_issued_ms: Option<i64>,
    /// When the document is built (its signing time), UTC ms.
    pub built_ms: i64,
    /// For a signed credit note: the number it modifies and that number's
    /// outbox state (`None` when the hub has not queued it).
    pub modified: Option<(String, Option<crate::outbox::DocState>)>,
}

/// Why a document cannot be built (the register's event does not fit the
/// authority's format). The document stays pending with this error; head
/// office sees it in the outbox listing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A line's tax rate has no place in the authority's format.
    #[error("lines[{line}].tax_bp: {bp} basis points is not a rate the tax authority knows")]
    UnsupportedTaxRate {
        /// The line.
        line: usize,
        /// Its rate.
        bp: u16,
    },
    /// Something the format requires is missing.
    #[error("{0} is required by the tax authority's format and missing")]
    Missing(&'static str),
    /// A sum overflowed.
    #[error("amount overflow in {0}")]
    Overflow(&'static str),
    /// The series is not one this gateway submits.
    #[error("series {0} is not an electronic series this gateway submits")]
    NotSubmitted(String),
    /// The source does not match the document type.
    #[error("a {doc_type} cannot be built from {what}")]
    WrongSource {
        /// The document type.
        doc_type: &'static str,
        /// What was given.
        what: &'static str,
    },
    /// The event does not fit the document (the message names the field).
    #[error("{0}")]
    Document(String),
    /// The configured issuer cannot go on documents (configuration).
    #[error("tax authority configuration: {0}")]
    Issuer(String),
    /// A signed document fails the checks before its first submission
    /// (signature, certificate chain, issuer, structure): it is never sent;
    /// head office decides (a `manual` conflict).
    #[error("refused before sending: {0}")]
    Invalid(String),
    /// Not yet: something must happen first (a credit note waits for the
    /// document it modifies to be accepted). Retried with backoff.
    #[error("waiting: {0}")]
    Wait(String),
}

/// Why a call to the authority failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No answer in time: the request may have been processed.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The connection could not be made: nothing was sent.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection broke after the request may have been sent.
    #[error("transport failed: {0}")]
    Transport(String),
    /// The authority failed (5xx): it may have processed the request.
    #[error("the tax authority answered {status}: {detail}")]
    Server {
        /// HTTP status.
        status: u16,
        /// What it said.
        detail: String,
    },
    /// The authority refused the request without processing it (4xx).
    #[error("the tax authority refused the request ({status}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// What it said.
        detail: String,
    },
    /// Authentication failed.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A 2xx answer that does not read as the documented shape.
    #[error("unreadable answer: {0}")]
    Answer(String),
}

impl GatewayError {
    /// Whether the authority may hold what was sent (so the next attempt
    /// must look before sending again).
    pub fn in_doubt(&self) -> bool {
        matches!(
            self,
            GatewayError::Timeout(_)
                | GatewayError::Transport(_)
                | GatewayError::Server { .. }
                | GatewayError::Answer(_)
        )
    }
}

/// What a submission (or a lookup) came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Taken, decided later: poll this tracking id.
    Tracked(String),
    /// Decided at once (summaries, cancellations, or a lookup that found a
    /// decided document).
    Decided(Verdict),
}

/// The answer to a status query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusAnswer {
    /// `En Proceso`.
    InProcess,
    /// Decided.
    Final(Verdict),
    /// The authority does not know the tracking id.
    NotFound,
}

/// A tax authority's services, as the outbox workers use them.
pub trait TaxGateway: Send + Sync + std::fmt::Debug {
    /// The authority's short name, recorded in results (`dgii`).
    fn authority(&self) -> &'static str;

    /// Builds a document's bytes (pure; called once per document).
    fn build(&self, src: &DocumentSource) -> Result<Prepared, BuildError>;

    /// Submits a prepared document (`doc.prepared` is set).
    fn submit<'a>(&'a self, doc: &'a Claimed) -> GwFuture<'a, Result<Submitted, GatewayError>>;

    /// Asks for the verdict on a tracked submission.
    fn status<'a>(
        &'a self,
        doc: &'a Claimed,
        track_id: &'a str,
    ) -> GwFuture<'a, Result<StatusAnswer, GatewayError>>;

    /// What the authority holds for this document's number (after a
    /// submission whose answer was lost); `None` when nothing.
    fn lookup<'a>(
        &'a self,
        doc: &'a Claimed,
    ) -> GwFuture<'a, Result<Option<Submitted>, GatewayError>>;
}
