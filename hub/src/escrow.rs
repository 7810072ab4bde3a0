//! Escrow stock at the hub: the registers' quota requests, the per-product
//! state head office reads, and stock alerts (oversells and negative stock).
//!
//! The arithmetic is `caja_shared::escrow`. Alerts are derived from the set
//! of events (DESIGN "Escrow stock"): one per sale line sold beyond its
//! register's quota under `warn`, and one per product whose stock is negative
//! now; an operator's acknowledgement or resolution is kept beside them (and
//! audited), never changes them. Architecture invariant: pure; no SQL.

use caja_shared::ids::{DeviceId, RequestId, Sku, StoreId};
use serde::{Deserialize, Serialize};

use crate::wire::ApiError;

/// Most products in one quota request.
pub const MAX_ITEMS: usize = 100;

/// One product asked for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaItem {
    /// Product.
    pub product: Sku,
    /// Quantity asked for (thousandths; grams for weighed items).
    pub qty_milli: i64,
}

/// `POST /v1/escrow/grants`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaRequest {
    /// The register's id for this request (idempotency key).
    pub request_id: RequestId,
    /// What it asks for.
    pub items: Vec<QuotaItem>,
}

impl QuotaRequest {
    /// Checks the fields (not the catalog: the store does).
    pub fn check(&self) -> Result<(), ApiError> {
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(ApiError::invalid(
                "items",
                format!("1 to {MAX_ITEMS} products per request"),
            ));
        }
        for (i, it) in self.items.iter().enumerate() {
            if it.qty_milli <= 0 || it.qty_milli > 1_000_000_000 {
                return Err(ApiError::invalid(
                    format!("items[{i}].qty_milli"),
                    "must be from 1 to 1000000000",
                ));
            }
            if self.items[..i].iter().any(|o| o.product == it.product) {
                return Err(ApiError::invalid(
                    format!("items[{i}].product"),
                    "each product once per request",
                ));
            }
        }
        Ok(())
    }
}

/// One product of a store, for head office and the allocator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductStock {
    /// Store.
    pub store: StoreId,
    /// Product.
    pub product: Sku,
    /// `block`, `warn` or `untracked` (from the catalog; `block` when unknown).
    pub policy: String,
    /// Stock: the sum of signed deltas (receipts, counts, sales, voids).
    pub stock_milli: i64,
    /// Outstanding quota per register (written-off registers excluded).
    pub outstanding: Vec<(DeviceId, i64)>,
    /// Stock minus every outstanding quota (never below zero).
    pub available_milli: i64,
}

impl ProductStock {
    /// The sum of outstanding quotas.
    pub fn outstanding_total(&self) -> i64 {
        self.outstanding.iter().map(|(_, q)| q).sum()
    }
}

/// A stock alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockAlert {
    /// Stable key: `oversell:<event>:<line>` or `negative:<store>:<product>`.
    pub key: String,
    /// `oversell` or `negative_stock`.
    pub kind: &'static str,
    /// Store.
    pub store: StoreId,
    /// Product.
    pub product: Sku,
    /// The registers involved (the one that oversold; those that sold it).
    pub registers: Vec<DeviceId>,
    /// Quantity beyond the quota, or below zero (thousandths).
    pub amount_milli: i64,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    /// Who acknowledged or resolved it, and their note.
    pub by: Option<String>,
    /// The note.
    pub note: Option<String>,
}

/// `POST /v1/admin/stock/alerts/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDecision {
    /// The alert's key.
    pub key: String,
    /// `acknowledged` or `resolved`.
    pub state: String,
    /// The operator.
    pub by: String,
    /// Why, for the auditor.
    #[serde(default)]
    pub note: String,
}

impl AlertDecision {
    /// Checks the fields.
    pub fn check(&self) -> Result<(), ApiError> {
        if !(self.key.starts_with("oversell:") || self.key.starts_with("negative:")) {
            return Err(ApiError::invalid("key", "not a stock alert key"));
        }
        if self.state != "acknowledged" && self.state != "resolved" {
            return Err(ApiError::invalid("state", "acknowledged or resolved"));
        }
        if self.by.trim().is_empty() || self.by.len() > 200 {
            return Err(ApiError::invalid(
                "by",
                "the operator's name, 1 to 200 characters",
            ));
        }
        if self.note.len() > 1000 {
            return Err(ApiError::invalid("note", "at most 1000 characters"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_decisions_name_the_bad_field() {
        let item = |p: &str, q| QuotaItem {
            product: p.parse().unwrap(),
            qty_milli: q,
        };
        let mut r = QuotaRequest {
            request_id: "019aaf70-dbf4-7000-8000-00000000a001".parse().unwrap(),
            items: vec![item("ARROZ", 1000), item("ARROZ", 1000)],
        };
        assert_eq!(
            r.check().unwrap_err().field.as_deref(),
            Some("items[1].product")
        );
        r.items = vec![item("ARROZ", 0)];
        assert_eq!(
            r.check().unwrap_err().field.as_deref(),
            Some("items[0].qty_milli")
        );
        r.items = vec![];
        assert_eq!(r.check().unwrap_err().field.as_deref(), Some("items"));
        let mut d = AlertDecision {
            key: "negative:x:y".into(),
            state: "resolved".into(),
            by: "marta".into(),
            note: String::new(),
        };
        d.check().unwrap();
        d.state = "gone".into();
        assert_eq!(d.check().unwrap_err().field.as_deref(), Some("state"));
        d.state = "resolved".into();
        d.key = "other".into();
        assert_eq!(d.check().unwrap_err().field.as_deref(), Some("key"));
    }
}
