//! The register's quota rules, from values: a quota's usable part by the
//! register's clock, a sale's lines split against the quotas, whether a grant
//! is this register's, which products to ask for and the request's body.
//!
//! Invariant: pure — no SQL, no clock, no I/O; the caller loads the quotas
//! and stores the outcome.

use std::collections::BTreeMap;

use caja_shared::canonical::{Object, Value};
use caja_shared::escrow;
use caja_shared::ids::{DeviceId, RequestId};
use caja_shared::kind::{EscrowGranted, SaleCreated, SaleLine};
use caja_shared::money::QtyMilli;
use serde::Serialize;

/// Most products in one quota request (the hub's limit).
pub const MAX_ITEMS: usize = 100;

/// Why a sale does not fit the quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaShort {
    /// The product.
    pub product: String,
    /// Its name.
    pub name: String,
    /// What is left of the quota.
    pub left_milli: i64,
    /// What the sale asks for.
    pub wanted_milli: i64,
}

/// A quota's usable part at `now_ms`: what is left until it expires, then 0.
pub(super) fn usable(left_milli: i64, expires_ms: i64, now_ms: i64) -> i64 {
    if expires_ms > now_ms {
        left_milli
    } else {
        0
    }
}

/// A product of a sale as the quotas see it: its catalog policy and the
/// quota usable now (0 for `untracked`, which needs none).
pub(super) struct Quota {
    /// `block`, `warn` or `untracked`.
    pub(super) policy: String,
    /// The usable quota.
    pub(super) left_milli: i64,
}

/// Splits each tracked line of `sale` against `quotas` (which holds every
/// product of the sale): refuses (`Err`) a `block` line beyond its quota, flags a `warn`
/// line's excess in `beyond_quota_milli`, and returns the in-quota amount to
/// take from each product's quota. Lines of one product draw on one quota, in
/// line order.
pub(super) fn split_sale(
    sale: &mut SaleCreated,
    quotas: &BTreeMap<String, Quota>,
) -> Result<BTreeMap<String, i64>, QuotaShort> {
    let mut used: BTreeMap<String, i64> = BTreeMap::new();
    for line in &mut sale.lines {
        let sku = line.product.as_str().to_owned();
        let quota = &quotas[&sku];
        if quota.policy == "untracked" {
            continue;
        }
        let already = used.get(&sku).copied().unwrap_or(0);
        let avail = quota.left_milli - already;
        let sp = escrow::split(line.qty_milli.0, avail);
        if sp.beyond > 0 {
            if quota.policy == "warn" {
                line.beyond_quota_milli = Some(QtyMilli(sp.beyond));
            } else {
                return Err(QuotaShort {
                    product: sku,
                    name: line.name.clone(),
                    left_milli: avail.max(0),
                    wanted_milli: line.qty_milli.0,
                });
            }
        }
        *used.entry(sku).or_default() += sp.in_quota;
    }
    Ok(used)
}

/// The part of a sold line that came out of the quota (what a void gives
/// back).
pub(super) fn in_quota(line: &SaleLine) -> i64 {
    line.qty_milli.0 - line.beyond_quota_milli.map_or(0, |b| b.0)
}

/// The request a grant answers, when the grant is for this device and names
/// one (whether this database made it is for the caller to look up).
pub(super) fn grant_request(me: DeviceId, g: &EscrowGranted) -> Option<RequestId> {
    if g.device != me {
        return None;
    }
    g.request_id
}

/// A tracked product's quota row, as stored (`None` where it has none yet).
pub(super) struct Stock {
    /// The product.
    pub(super) sku: String,
    /// Its quota left.
    pub(super) left_milli: Option<i64>,
    /// When its quota lapses.
    pub(super) expires_ms: Option<i64>,
    /// When it was last asked for, unless it was sold from or released since.
    pub(super) asked_ms: Option<i64>,
}

/// Whether to ask for `stock`, and how much: up to `target` when its usable
/// quota is below `low`, unless it was asked for within `quiet_ms` (see
/// `wanted`).
pub(super) fn want(
    stock: Stock,
    low: i64,
    target: i64,
    now_ms: i64,
    quiet_ms: i64,
) -> Option<(String, i64)> {
    let l = match (stock.left_milli, stock.expires_ms) {
        (Some(l), Some(e)) => usable(l, e, now_ms),
        _ => 0,
    };
    if l >= low {
        return None;
    }
    if stock
        .asked_ms
        .is_some_and(|a| now_ms.saturating_sub(a) < quiet_ms)
    {
        return None;
    }
    Some((stock.sku, target - l))
}

/// The canonical body of a quota request for `items` (product, quantity).
pub(super) fn request_body(id: RequestId, items: &[(String, i64)]) -> String {
    let mut list = Vec::new();
    for (sku, q) in items {
        let mut o = Object::new();
        o.insert("product".into(), Value::String(sku.clone()));
        o.insert("qty_milli".into(), Value::Int(*q));
        list.push(Value::Object(o));
    }
    let mut body = Object::new();
    body.insert("items".into(), Value::Array(list));
    body.insert("request_id".into(), Value::String(id.to_string()));
    Value::Object(body).to_canonical_string()
}

/// The products a sent request's body asked for (none if it does not parse).
pub(super) fn asked_products(body: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|it| it["product"].as_str().map(str::to_owned))
        .collect()
}

/// One product's quota, for the status and the Z report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaLeft {
    /// Product.
    pub product: String,
    /// Quota left (0 once expired).
    pub left_milli: i64,
    /// When it lapses.
    pub expires_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(left_milli: Option<i64>, expires_ms: Option<i64>, asked_ms: Option<i64>) -> Stock {
        Stock {
            sku: "SKU-1".into(),
            left_milli,
            expires_ms,
            asked_ms,
        }
    }

    #[test]
    fn a_quota_is_usable_until_it_expires() {
        assert_eq!(usable(500, 2_000, 1_999), 500);
        assert_eq!(usable(500, 2_000, 2_000), 0);
    }

    #[test]
    fn a_product_low_on_quota_is_asked_for_up_to_the_target_once_per_quiet_time() {
        let want = |s| want(s, 1_000, 5_000, 10_000, 3_000);
        assert_eq!(want(stock(None, None, None)), Some(("SKU-1".into(), 5_000)));
        assert_eq!(
            want(stock(Some(400), Some(20_000), None)),
            Some(("SKU-1".into(), 4_600))
        );
        assert_eq!(
            want(stock(Some(400), Some(9_000), None)),
            Some(("SKU-1".into(), 5_000)),
            "an expired quota counts as none"
        );
        assert_eq!(want(stock(Some(1_000), Some(20_000), None)), None);
        assert_eq!(want(stock(Some(0), Some(20_000), Some(8_000))), None);
        assert!(want(stock(Some(0), Some(20_000), Some(7_000))).is_some());
    }

    #[test]
    fn a_request_body_names_the_products_it_asks_for() {
        let id: RequestId = "019aaf70-dc00-7000-8000-0000000000b1".parse().expect("id");
        let body = request_body(id, &[("A".into(), 1_000), ("B".into(), 2_000)]);
        assert_eq!(
            body,
            "{\"items\":[{\"product\":\"A\",\"qty_milli\":1000},{\"product\":\"B\",\"qty_milli\":2000}],\
             \"request_id\":\"019aaf70-dc00-7000-8000-0000000000b1\"}"
        );
        assert_eq!(asked_products(&body), ["A", "B"]);
        assert!(asked_products("not json").is_empty());
    }
}
