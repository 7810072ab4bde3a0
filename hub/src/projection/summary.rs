//! Sums derived from the facts: [`Summary`] with [`StoreTotals`] per store
//! and [`ZTotals`] per shift, and their canonical JSON.
//!
//! Architecture invariant: pure; no `crate::storage`, no SQL, no IO. Imports
//! only [`super::fact`] and [`super::value`]; the sums are computed by
//! [`super::Projections::summary`].

use std::collections::BTreeMap;

use caja_shared::canonical::{Object, Value};
use caja_shared::ids::{CustomerId, ShiftId, Sku, StoreId};
use caja_shared::kind::PaymentMethod;

use super::fact::method_name;
use super::value::{int, obj};

/// Sums derived from the facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Per store.
    pub stores: BTreeMap<StoreId, StoreTotals>,
    /// Z totals per (store, shift).
    pub shifts: BTreeMap<(StoreId, ShiftId), ZTotals>,
    /// Stock per (store, product), in thousandths.
    pub stock: BTreeMap<(StoreId, Sku), i128>,
    /// Debt balance per (store, customer).
    pub debts: BTreeMap<(StoreId, CustomerId), i128>,
    /// Store-credit balance per (store, customer): refunds as store credit
    /// less what sales not voided spent (`pn_counter`).
    pub store_credit: BTreeMap<(StoreId, CustomerId), i128>,
}

/// A store's sales.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTotals {
    /// Sales not voided.
    pub sales_count: u64,
    /// Their total.
    pub sales_total: i128,
    /// Their tax.
    pub tax_total: i128,
    /// Voided sales.
    pub voided_count: u64,
    /// Their total.
    pub voided_total: i128,
}

/// A shift's Z totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZTotals {
    /// Cash float at opening.
    pub opening_float: i128,
    /// Whether a close was recorded.
    pub closed: bool,
    /// Sales not voided.
    pub sales_count: u64,
    /// Their total.
    pub sales_total: i128,
    /// Their tax.
    pub tax_total: i128,
    /// Voided sales' total.
    pub voided_total: i128,
    /// Payments per method (cash net of change).
    pub by_method: BTreeMap<PaymentMethod, i128>,
    /// Drawer openings without a sale.
    pub drawer_opens: u64,
    /// Sale lines sold at an overridden price (voided sales included: the
    /// override was approved).
    pub price_overrides: u64,
    /// Cash the register expected at close.
    pub expected_cash: i128,
    /// Cash counted at close.
    pub counted_cash: i128,
}

impl Summary {
    /// As canonical JSON.
    pub fn to_value(&self) -> Value {
        let stores = Value::Array(
            self.stores
                .iter()
                .map(|(store, t)| {
                    obj([
                        ("store", Value::String(store.to_string())),
                        ("sales_count", int(i128::from(t.sales_count))),
                        ("sales_total", int(t.sales_total)),
                        ("tax_total", int(t.tax_total)),
                        ("voided_count", int(i128::from(t.voided_count))),
                        ("voided_total", int(t.voided_total)),
                    ])
                })
                .collect(),
        );
        let shifts = Value::Array(
            self.shifts
                .iter()
                .map(|((store, shift), z)| {
                    let mut by = Object::new();
                    for (m, v) in &z.by_method {
                        by.insert(method_name(*m).into(), int(*v));
                    }
                    obj([
                        ("store", Value::String(store.to_string())),
                        ("shift", Value::String(shift.to_string())),
                        ("opening_float", int(z.opening_float)),
                        ("closed", Value::Bool(z.closed)),
                        ("sales_count", int(i128::from(z.sales_count))),
                        ("sales_total", int(z.sales_total)),
                        ("tax_total", int(z.tax_total)),
                        ("voided_total", int(z.voided_total)),
                        ("by_method", Value::Object(by)),
                        ("expected_cash", int(z.expected_cash)),
                        ("counted_cash", int(z.counted_cash)),
                        ("drawer_opens", int(i128::from(z.drawer_opens))),
                        ("price_overrides", int(i128::from(z.price_overrides))),
                    ])
                })
                .collect(),
        );
        let stock = Value::Array(
            self.stock
                .iter()
                .map(|((store, product), q)| {
                    obj([
                        ("store", Value::String(store.to_string())),
                        ("product", Value::String(product.to_string())),
                        ("qty_milli", int(*q)),
                    ])
                })
                .collect(),
        );
        let debts = Value::Array(
            self.debts
                .iter()
                .map(|((store, customer), b)| {
                    obj([
                        ("store", Value::String(store.to_string())),
                        ("customer", Value::String(customer.to_string())),
                        ("balance", int(*b)),
                    ])
                })
                .collect(),
        );
        let store_credit = Value::Array(
            self.store_credit
                .iter()
                .map(|((store, customer), b)| {
                    obj([
                        ("store", Value::String(store.to_string())),
                        ("customer", Value::String(customer.to_string())),
                        ("balance", int(*b)),
                    ])
                })
                .collect(),
        );
        obj([
            ("stores", stores),
            ("shifts", shifts),
            ("stock", stock),
            ("debts", debts),
            ("store_credit", store_credit),
        ])
    }
}
