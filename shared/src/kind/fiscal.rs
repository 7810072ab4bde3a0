//! The register's record of an electronic fiscal document it signed
//! ([`FiscalDocumentIssued`]).
//!
//! Invariant: the event names each signed document by the SHA-256 of its exact
//! bytes; the bytes themselves never enter the chain — they travel beside the
//! event in the push body (`documents`, see [`crate::push`]) and the hub stores
//! them unchanged. Source: DESIGN "Electronic fiscal documents (e-CF, DGII)".

use serde::{Deserialize, Serialize};

use super::FiscalDocType;
use crate::digest::Hash256;
use crate::ids::{ReturnId, SaleId};
use crate::money::Money;

/// One signed document named by a [`FiscalDocumentIssued`] event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedDocument {
    /// `ecf` (the e-CF itself) or `rfce` (the consumer-invoice summary DGII
    /// receives for an `E32` under RD$250,000).
    pub kind: String,
    /// SHA-256 of the signed XML bytes.
    pub sha256: Hash256,
}

/// Body of [`super::EventKind::FiscalDocumentIssued`]: a register signed an
/// e-CF (and its RFCE when there is one) in the same transaction as the sale
/// or the return. `deps` = the `SaleCreated` / `SaleReturned` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiscalDocumentIssued {
    /// The e-NCF, e.g. `E320000000051`.
    pub encf: String,
    /// Invoice (a sale) or credit note (a return).
    pub doc_type: FiscalDocType,
    /// The sale, for an invoice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<SaleId>,
    /// The return, for a credit note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_id: Option<ReturnId>,
    /// The first 6 characters of the e-CF's `SignatureValue`.
    pub security_code: String,
    /// `FechaHoraFirma` as UTC ms (the register's hub-corrected clock).
    pub signed_at_ms: i64,
    /// The document's total (`MontoTotal`).
    pub total: Money,
    /// The signed documents, the e-CF first.
    pub documents: Vec<IssuedDocument>,
}

#[cfg(test)]
mod tests {
    use crate::canonical::parse;
    use crate::kind::{BodyError, EventBody, EventKind, FiscalDocType};

    const OK: &str = r#"{"doc_type":"invoice","documents":[{"kind":"ecf","sha256":"1111111111111111111111111111111111111111111111111111111111111111"},{"kind":"rfce","sha256":"2222222222222222222222222222222222222222222222222222222222222222"}],"encf":"E320000000051","sale_id":"019aaf70-dbf4-7000-8000-00000000a001","security_code":"Ab+/9z","signed_at_ms":1763880000000,"total":11800}"#;

    #[test]
    fn decodes_and_writes_the_same_bytes() {
        assert_eq!(
            EventKind::parse("FiscalDocumentIssued"),
            Some(EventKind::FiscalDocumentIssued)
        );
        let v = parse(OK.as_bytes()).unwrap();
        let body = EventBody::decode(EventKind::FiscalDocumentIssued, &v).unwrap();
        let EventBody::FiscalDocumentIssued(b) = &body else {
            panic!("kind")
        };
        assert_eq!(b.doc_type, FiscalDocType::Invoice);
        assert_eq!((b.documents.len(), b.return_id), (2, None));
        assert_eq!(body.to_value().unwrap().to_canonical_string(), OK);
    }

    #[test]
    fn decoding_is_strict() {
        let extra = OK.replace(r#""kind":"rfce","#, r#""kind":"rfce","xml":"","#);
        assert_eq!(
            EventBody::decode(
                EventKind::FiscalDocumentIssued,
                &parse(extra.as_bytes()).unwrap()
            ),
            Err(BodyError::UnknownField {
                path: "documents[1].xml".into()
            })
        );
        let bad_hash = OK.replace("2222222222222222", "zz");
        let err = EventBody::decode(
            EventKind::FiscalDocumentIssued,
            &parse(bad_hash.as_bytes()).unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.path(), "documents[1].sha256", "{err}");
        let missing = OK.replace(r#","security_code":"Ab+/9z""#, "");
        let err = EventBody::decode(
            EventKind::FiscalDocumentIssued,
            &parse(missing.as_bytes()).unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("security_code"), "{err}");
    }
}
