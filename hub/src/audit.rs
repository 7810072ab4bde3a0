//! Audit log entries (DESIGN.md "Audit log v1"): the canonical JSON
//! `{"index","kind","at_ms","store","data"}` and its RFC 9162 leaf hash.
//!
//! The store appends one entry, in the same transaction, for every accepted
//! event, rejected tampered chain, enrollment, reused enrollment token,
//! revocation, rotation, detected conflict and admin action; the table is
//! append-only (SQL triggers) and keeps the leaf hash beside each entry so the
//! Audit issue can build the Merkle tree and its proofs over it.
//!
//! Architecture invariant: pure; entries are built from values, not read from
//! the database or the clock.

use caja_shared::canonical::{Object, Value};
use caja_shared::digest::Hash256;
use caja_shared::ids::StoreId;
use caja_shared::merkle;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A register's event was stored (held or applied).
    EventAccepted,
    /// The hub appended an event to a store's hub chain.
    HubEventAppended,
    /// A push contradicted stored history; the device was quarantined.
    ChainMismatch,
    /// A device enrolled with a one-time token.
    DeviceEnrolled,
    /// Someone presented a used or expired enrollment token.
    EnrollmentTokenReused,
    /// Head office revoked a device.
    DeviceRevoked,
    /// A device key was rotated (by the device or by head office).
    KeyRotated,
    /// A conflict was detected between accepted events (or its candidates changed).
    ConflictDetected,
    /// An automatic strategy (`lww`, `server_wins`) chose between candidates.
    ConflictDecided,
    /// A re-decided conflict no longer holds (a `stale_price` whose price in force changed).
    ConflictWithdrawn,
    /// An operator resolved a `manual` conflict.
    ConflictResolved,
    /// Head office created a store.
    StoreCreated,
    /// Head office created an enrollment token.
    EnrollmentTokenCreated,
    /// Head office released a quarantine.
    QuarantineReleased,
    /// Head office loaded a fiscal number series.
    FiscalSeriesLoaded,
    /// The hub granted a register a block of fiscal numbers.
    FiscalRangeGranted,
    /// Head office wrote a register off (lost, stolen, dead).
    DeviceWrittenOff,
    /// The hub granted a register a stock quota.
    EscrowGranted,
    /// An operator acknowledged or resolved a stock alert.
    StockAlertDecided,
    /// A register created a payment intent.
    PaymentIntentCreated,
    /// A provider's webhook moved a payment intent to a new state.
    PaymentIntentTransition,
    /// A provider's webhook was held, rejected (never applied) or recorded
    /// without an intent (an offline card payment's confirmation).
    PaymentWebhookDecided,
    /// A fiscal document's bytes were built for the tax authority (once;
    /// every submission sends them).
    FiscalDocumentPrepared,
    /// The tax authority decided on a fiscal document.
    FiscalDocumentDecided,
    /// Head office replaced a rejected summary (RFCE) with one the hub
    /// rebuilt from the e-CF and signed: the one second content of an e-NCF.
    FiscalSummaryCorrected,
    /// Head office cancelled (ANECF) the number of a document refused before
    /// sending; the document is never sent.
    FiscalDocumentCancelled,
    // — RESTORE —
    /// The database was restored from a backup: a new restore epoch,
    /// naming the audit tree's size and root it restarted from.
    Restored,
    /// A register returned a hub-chain event the restored hub lacked
    /// (verified with the hub key).
    HubEventRecovered,
    /// Head office acknowledged a restore's discontinuity.
    RestoreAcknowledged,
    /// Head office lifted a store's restore gate before all its registers
    /// reported.
    RestoreOverridden,
    // — RECV —
    /// A supplier's e-CF addressed to us was received and acknowledged
    /// (ARECF, DGII receiver service).
    SupplierInvoiceReceived,
    /// A buyer's commercial approval or rejection (ACECF) of an e-CF we
    /// issued was received.
    CommercialApprovalReceived,
    /// Head office approved or rejected a supplier's e-CF (ACECF signed by
    /// the hub).
    SupplierInvoiceDecided,
    // — COUNTER —
    /// Head office asked a payment provider to refund (part of) a captured
    /// intent; the refund itself arrives as the provider's webhook.
    PaymentRefundRequested,
}

impl AuditKind {
    /// The name written in the entry's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::EventAccepted => "event_accepted",
            AuditKind::HubEventAppended => "hub_event_appended",
            AuditKind::ChainMismatch => "chain_mismatch",
            AuditKind::DeviceEnrolled => "device_enrolled",
            AuditKind::EnrollmentTokenReused => "enrollment_token_reused",
            AuditKind::DeviceRevoked => "device_revoked",
            AuditKind::KeyRotated => "key_rotated",
            AuditKind::ConflictDetected => "conflict_detected",
            AuditKind::ConflictDecided => "conflict_decided",
            AuditKind::ConflictWithdrawn => "conflict_withdrawn",
            AuditKind::ConflictResolved => "conflict_resolved",
            AuditKind::StoreCreated => "store_created",
            AuditKind::EnrollmentTokenCreated => "enrollment_token_created",
            AuditKind::QuarantineReleased => "quarantine_released",
            AuditKind::FiscalSeriesLoaded => "fiscal_series_loaded",
            AuditKind::FiscalRangeGranted => "fiscal_range_granted",
            AuditKind::DeviceWrittenOff => "device_written_off",
            AuditKind::EscrowGranted => "escrow_granted",
            AuditKind::StockAlertDecided => "stock_alert_decided",
            AuditKind::PaymentIntentCreated => "payment_intent_created",
            AuditKind::PaymentIntentTransition => "payment_intent_transition",
            AuditKind::PaymentWebhookDecided => "payment_webhook_decided",
            AuditKind::FiscalDocumentPrepared => "fiscal_document_prepared",
            AuditKind::FiscalDocumentDecided => "fiscal_document_decided",
            AuditKind::FiscalSummaryCorrected => "fiscal_summary_corrected",
            AuditKind::FiscalDocumentCancelled => "fiscal_document_cancelled",
            AuditKind::Restored => "restored",
            AuditKind::HubEventRecovered => "hub_event_recovered",
            AuditKind::RestoreAcknowledged => "restore_acknowledged",
            AuditKind::RestoreOverridden => "restore_overridden",
            AuditKind::SupplierInvoiceReceived => "supplier_invoice_received",
            AuditKind::CommercialApprovalReceived => "commercial_approval_received",
            AuditKind::SupplierInvoiceDecided => "supplier_invoice_decided",
            AuditKind::PaymentRefundRequested => "payment_refund_requested",
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the log, from 0, gapless.
    pub index: u64,
    /// What happened.
    pub kind: AuditKind,
    /// When (hub clock, UTC ms).
    pub at_ms: i64,
    /// The store concerned (`null` for hub-wide actions).
    pub store: Option<StoreId>,
    /// Details; a canonical-JSON object.
    pub data: Value,
}

impl AuditEntry {
    /// The entry's canonical bytes: one line of `entries.jsonl`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        entry_bytes(
            self.index,
            self.kind.as_str(),
            self.at_ms,
            self.store,
            &self.data.to_canonical_bytes(),
        )
    }

    /// The same bytes built through the canonical serializer (the reference
    /// [`entry_bytes`] is tested against).
    #[cfg(test)]
    fn canonical_bytes_reference(&self) -> Vec<u8> {
        let mut o = Object::new();
        // The index is far below 2^53 (one entry per event).
        o.insert(
            "index".into(),
            Value::Int(i64::try_from(self.index).unwrap_or(i64::MAX)),
        );
        o.insert("kind".into(), Value::String(self.kind.as_str().into()));
        o.insert("at_ms".into(), Value::Int(self.at_ms));
        o.insert(
            "store".into(),
            self.store
                .map_or(Value::Null, |s| Value::String(s.to_string())),
        );
        o.insert("data".into(), self.data.clone());
        Value::Object(o).to_canonical_bytes()
    }

    /// RFC 9162 leaf hash of the canonical bytes.
    pub fn leaf_hash(&self) -> Hash256 {
        merkle::leaf_hash(&self.canonical_bytes())
    }
}

/// An entry's canonical bytes from its parts, `data` already canonical JSON
/// (as staged on PostgreSQL: the sequencer gives the index later). The keys
/// in canonical order: `at_ms`, `data`, `index`, `kind`, `store`.
pub fn entry_bytes(
    index: u64,
    kind: &str,
    at_ms: i64,
    store: Option<StoreId>,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 120);
    out.extend_from_slice(b"{\"at_ms\":");
    out.extend_from_slice(at_ms.to_string().as_bytes());
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data);
    out.extend_from_slice(b",\"index\":");
    out.extend_from_slice(index.to_string().as_bytes());
    out.extend_from_slice(b",\"kind\":");
    out.extend_from_slice(&Value::String(kind.to_owned()).to_canonical_bytes());
    out.extend_from_slice(b",\"store\":");
    match store {
        Some(s) => out.extend_from_slice(&Value::String(s.to_string()).to_canonical_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    out
}

/// Builds a `data` object from (key, value) pairs.
pub fn data<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut o = Object::new();
    for (k, v) in pairs {
        o.insert(k.to_owned(), v);
    }
    Value::Object(o)
}

/// A string value.
pub fn s(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

/// An integer value (saturating at the canonical-JSON limit).
pub fn n(v: impl TryInto<i64>) -> Value {
    Value::Int(
        v.try_into()
            .unwrap_or(caja_shared::canonical::MAX_SAFE_INTEGER)
            .min(caja_shared::canonical::MAX_SAFE_INTEGER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_bytes_are_canonical_and_leaf_hashed() {
        let e = AuditEntry {
            index: 0,
            kind: AuditKind::DeviceEnrolled,
            at_ms: 5,
            store: Some("01935f4e-8a00-7000-8000-0000000000a1".parse().unwrap()),
            data: data([("device", s("d")), ("key_id", s("k1"))]),
        };
        let text = String::from_utf8(e.canonical_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"at_ms":5,"data":{"device":"d","key_id":"k1"},"index":0,"kind":"device_enrolled","store":"01935f4e-8a00-7000-8000-0000000000a1"}"#
        );
        assert_eq!(e.leaf_hash(), merkle::leaf_hash(text.as_bytes()));
        assert_eq!(e.canonical_bytes(), e.canonical_bytes_reference());
        let odd = AuditEntry {
            index: 1 << 40,
            at_ms: -3,
            data: data([("é\n\"", Value::Array(vec![n(1), s("\u{1F600}")]))]),
            ..e.clone()
        };
        assert_eq!(odd.canonical_bytes(), odd.canonical_bytes_reference());
        let hubwide = AuditEntry { store: None, ..e };
        assert_eq!(
            hubwide.canonical_bytes(),
            hubwide.canonical_bytes_reference()
        );
        assert!(String::from_utf8(hubwide.canonical_bytes())
            .unwrap()
            .contains(r#""store":null"#));
    }
}
