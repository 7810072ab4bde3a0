//! The projection state in memory: [`Projections`] keeps every fact under a
//! key ([`wins`] decides `lww` / `server_wins` replacements), so applying
//! the same set of facts in any order gives the same state; it answers
//! [`Projections::facts_about`] a subject, the conflicts, the summary and
//! the digest the store's rebuild is compared against.
//!
//! Architecture invariant: pure; no `crate::storage`, no SQL, no IO. The
//! highest file of the projection: it imports its siblings, none imports it.

use std::collections::{BTreeMap, BTreeSet};

use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;
use caja_shared::ids::{ConflictId, SaleId, ShiftId, Sku, StoreId};
use caja_shared::kind::{EventBody, PaymentMethod};

use super::conflict::{conflict_of, settling, Conflict, ConflictState};
use super::fact::{facts, EventMeta, Fact};
use super::subject::{subjects, Subject};
use super::summary::Summary;
use super::value::{fact_value, obj, opt};

/// Projection state in memory: every fact, keyed so that applying the same set
/// of facts in any order gives the same state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projections {
    rows: BTreeMap<(u8, String), Fact>,
}

pub(super) fn rank(f: &Fact) -> (u8, String) {
    match f {
        Fact::Shift { event_id, .. } => (0, event_id.to_string()),
        Fact::ShiftClose { event_id, .. } => (1, event_id.to_string()),
        Fact::Sale { event_id, .. } => (2, event_id.to_string()),
        Fact::SaleLine { event_id, line, .. } => (3, format!("{event_id}/{line:010}")),
        Fact::Payment { event_id, idx, .. } => (4, format!("{event_id}/{idx:010}")),
        Fact::Void { event_id, .. } => (5, event_id.to_string()),
        Fact::Debt { event_id, .. } => (6, event_id.to_string()),
        Fact::DebtPayment { event_id, .. } => (7, event_id.to_string()),
        Fact::StockMove { event_id, .. } => (8, event_id.to_string()),
        Fact::Customer { customer_id, .. } => (9, customer_id.to_string()),
        Fact::CatalogItem { store, product, .. } => (10, format!("{store}/{product}")),
        Fact::Price { store, product, .. } => (11, format!("{store}/{product}")),
        Fact::ForeignKind { event_id, .. } => (12, event_id.to_string()),
        Fact::FiscalBlock { event_id, .. } => (13, event_id.to_string()),
        Fact::Escrow { event_id, .. } => (14, event_id.to_string()),
        Fact::Oversell { event_id, line, .. } => (15, format!("{event_id}/{line:010}")),
        Fact::ReturnLine { event_id, line, .. } => (16, format!("{event_id}/{line:010}")),
        Fact::CreditNote { event_id, .. } => (17, event_id.to_string()),
        Fact::PriceHistory { event_id, .. } => (18, event_id.to_string()),
        Fact::Resolution { event_id, .. } => (19, event_id.to_string()),
        Fact::StoreCredit { event_id, idx, .. } => (20, format!("{event_id}/{idx:010}")),
        Fact::UnlinkedReturn { event_id, line, .. } => (21, format!("{event_id}/{line:010}")),
        Fact::DrawerOpen { event_id, .. } => (22, event_id.to_string()),
        Fact::Approval { event_id, idx, .. } => (23, format!("{event_id}/{idx:010}")),
        Fact::SaleDrawerOpen { event_id, .. } => (24, event_id.to_string()),
    }
}

/// Whether `new` replaces `old` under the same key (`lww` / `server_wins`).
pub fn wins(new: &Fact, old: &Fact) -> bool {
    match (new, old) {
        (
            Fact::Customer {
                hlc,
                device,
                event_id,
                ..
            },
            Fact::Customer {
                hlc: h0,
                device: d0,
                event_id: e0,
                ..
            },
        ) => (hlc, device, event_id) > (h0, d0, e0),
        (Fact::CatalogItem { hub_seq, .. }, Fact::CatalogItem { hub_seq: s0, .. })
        | (Fact::Price { hub_seq, .. }, Fact::Price { hub_seq: s0, .. }) => hub_seq > s0,
        // Facts keyed by their event are written once.
        _ => false,
    }
}

impl Projections {
    /// Applies one fact.
    pub fn apply(&mut self, fact: Fact) {
        let key = rank(&fact);
        match self.rows.get(&key) {
            Some(old) if !wins(&fact, old) => {}
            _ => {
                self.rows.insert(key, fact);
            }
        }
    }

    /// Applies every fact of an event.
    pub fn apply_event(&mut self, meta: &EventMeta<'_>, body: &EventBody) {
        for f in facts(meta, body) {
            self.apply(f);
        }
    }

    /// Every fact, in key order.
    pub fn all(&self) -> impl Iterator<Item = &Fact> {
        self.rows.values()
    }

    /// The facts a subject's conflicts depend on (the same as the store's
    /// query for it): a debt with its payments and the voids of its sales; a
    /// sale with its lines and the price history of its products.
    pub fn facts_about(&self, subject: &Subject) -> Vec<Fact> {
        match subject {
            Subject::Debt(d) => {
                let mut out: Vec<Fact> = self
                    .rows
                    .values()
                    .filter(|f| {
                        matches!(f, Fact::Debt { debt_id, .. } | Fact::DebtPayment { debt_id, .. } if debt_id == d)
                    })
                    .cloned()
                    .collect();
                let sales: BTreeSet<SaleId> = out
                    .iter()
                    .filter_map(|f| match f {
                        Fact::Debt { sale_id, .. } => *sale_id,
                        _ => None,
                    })
                    .collect();
                out.extend(
                    self.rows
                        .values()
                        .filter(
                            |f| matches!(f, Fact::Void { sale_id, .. } if sales.contains(sale_id)),
                        )
                        .cloned(),
                );
                out
            }
            Subject::SalePrice(e) => {
                let mut out: Vec<Fact> = self
                    .rows
                    .values()
                    .filter(|f| {
                        matches!(f, Fact::Sale { event_id, .. } | Fact::SaleLine { event_id, .. } if event_id == e)
                    })
                    .cloned()
                    .collect();
                let keys: BTreeSet<(StoreId, Sku)> = out
                    .iter()
                    .filter_map(|f| match f {
                        Fact::SaleLine { store, product, .. } => Some((*store, product.clone())),
                        _ => None,
                    })
                    .collect();
                out.extend(
                    self.rows
                        .values()
                        .filter(|f| {
                            matches!(f, Fact::PriceHistory { store, product, .. } if keys.contains(&(*store, product.clone())))
                        })
                        .cloned(),
                );
                out
            }
            Subject::Returned(sale) => {
                // The sale, its lines, its returns by line, and the returns
                // made without the original that name it (by id, or by its
                // fiscal number in its store).
                let mut out: Vec<Fact> = self
                    .rows
                    .values()
                    .filter(|f| match f {
                        Fact::Sale { sale_id, .. }
                        | Fact::SaleLine { sale_id, .. }
                        | Fact::ReturnLine { sale_id, .. } => sale_id == sale,
                        Fact::UnlinkedReturn {
                            sale_id: Some(s), ..
                        } => s == sale,
                        _ => false,
                    })
                    .cloned()
                    .collect();
                let numbered: Vec<(StoreId, String)> = out
                    .iter()
                    .filter_map(|f| match f {
                        Fact::Sale {
                            store,
                            fiscal: Some((_, n)),
                            ..
                        } => Some((*store, n.clone())),
                        _ => None,
                    })
                    .collect();
                out.extend(
                    self.rows
                        .values()
                        .filter(|f| {
                            matches!(f, Fact::UnlinkedReturn { sale_id: None, store, reference, .. }
                                if numbered.iter().any(|(s, n)| s == store && n == reference))
                        })
                        .cloned(),
                );
                out
            }
            Subject::StoreCredit(store, customer) => {
                let mut out: Vec<Fact> = self
                    .rows
                    .values()
                    .filter(|f| {
                        matches!(f, Fact::StoreCredit { store: s, customer: c, .. } if s == store && c == customer)
                    })
                    .cloned()
                    .collect();
                let sales: BTreeSet<SaleId> = out
                    .iter()
                    .filter_map(|f| match f {
                        Fact::StoreCredit { sale_id, .. } => *sale_id,
                        _ => None,
                    })
                    .collect();
                out.extend(
                    self.rows
                        .values()
                        .filter(|f| {
                            matches!(f, Fact::Void { sale_id, store: s, .. } if s == store && sales.contains(sale_id))
                        })
                        .cloned(),
                );
                out
            }
            _ => self
                .rows
                .values()
                .filter(|f| subjects(f).contains(subject))
                .cloned()
                .collect(),
        }
    }

    /// Every conflict, computed over all facts (sorted by id).
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut by_subject: BTreeMap<Subject, Vec<Fact>> = BTreeMap::new();
        let mut wide: BTreeSet<Subject> = BTreeSet::new();
        for f in self.rows.values() {
            for s in subjects(f) {
                match s {
                    Subject::Debt(_)
                    | Subject::SalePrice(_)
                    | Subject::Returned(_)
                    | Subject::StoreCredit(..) => {
                        wide.insert(s);
                    }
                    Subject::VoidedSale(_)
                    | Subject::PriceChange(..)
                    | Subject::SaleForReturns(..)
                    | Subject::CardPayment(..)
                    | Subject::FiscalDocument(_) => {}
                    // Returns naming a fiscal number stand for the sales of
                    // their store with that number (as the store widens them).
                    Subject::ReturnedFiscal(store, number) => {
                        for g in self.rows.values() {
                            if let Fact::Sale {
                                store: st,
                                sale_id,
                                fiscal: Some((_, n)),
                                ..
                            } = g
                            {
                                if *st == store && *n == number {
                                    wide.insert(Subject::Returned(*sale_id));
                                }
                            }
                        }
                    }
                    // Fiscal numbers, foreign kinds and unknown originals
                    // depend only on their own facts.
                    _ => by_subject.entry(s).or_default().push(f.clone()),
                }
            }
        }
        let mut out: BTreeMap<ConflictId, Conflict> = BTreeMap::new();
        for (s, related) in &by_subject {
            for c in conflict_of(s, related) {
                out.insert(c.conflict_id, c);
            }
        }
        for s in &wide {
            for c in conflict_of(s, &self.facts_about(s)) {
                out.insert(c.conflict_id, c);
            }
        }
        out.into_values().collect()
    }

    /// Every conflict with the resolution that settles it, if any.
    pub fn conflict_states(&self) -> Vec<ConflictState> {
        let resolutions: Vec<&Fact> = self
            .rows
            .values()
            .filter(|f| matches!(f, Fact::Resolution { .. }))
            .collect();
        self.conflicts()
            .into_iter()
            .map(|conflict| ConflictState {
                resolution: settling(&conflict, resolutions.iter().copied()),
                conflict,
            })
            .collect()
    }

    /// The derived summary: per store sales, voids, stock and debt balances; per
    /// shift the Z totals.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        let voided: BTreeSet<(StoreId, SaleId)> = self
            .all()
            .filter_map(|f| match f {
                Fact::Void { store, sale_id, .. } => Some((*store, *sale_id)),
                _ => None,
            })
            .collect();
        let mut sale_shift: BTreeMap<(StoreId, SaleId), ShiftId> = BTreeMap::new();
        for f in self.all() {
            if let Fact::Sale {
                store,
                sale_id,
                shift_id: Some(shift),
                ..
            } = f
            {
                sale_shift.insert((*store, *sale_id), *shift);
            }
        }
        for f in self.all() {
            match f {
                Fact::Shift {
                    store,
                    shift_id,
                    opening_float,
                    ..
                } => {
                    let z = s.shifts.entry((*store, *shift_id)).or_default();
                    z.opening_float += i128::from(*opening_float);
                }
                Fact::ShiftClose {
                    store,
                    shift_id,
                    expected_cash,
                    counted_cash,
                    ..
                } => {
                    let z = s.shifts.entry((*store, *shift_id)).or_default();
                    z.closed = true;
                    z.expected_cash += i128::from(*expected_cash);
                    z.counted_cash += i128::from(*counted_cash);
                }
                Fact::Sale {
                    store,
                    sale_id,
                    shift_id,
                    total,
                    tax,
                    change,
                    ..
                } => {
                    let st = s.stores.entry(*store).or_default();
                    let is_void = voided.contains(&(*store, *sale_id));
                    if is_void {
                        st.voided_count += 1;
                        st.voided_total += i128::from(*total);
                    } else {
                        st.sales_count += 1;
                        st.sales_total += i128::from(*total);
                        st.tax_total += i128::from(*tax);
                    }
                    if let Some(shift) = shift_id {
                        let z = s.shifts.entry((*store, *shift)).or_default();
                        if is_void {
                            z.voided_total += i128::from(*total);
                        } else {
                            z.sales_count += 1;
                            z.sales_total += i128::from(*total);
                            z.tax_total += i128::from(*tax);
                            *z.by_method.entry(PaymentMethod::Cash).or_default() -=
                                i128::from(*change);
                        }
                    }
                }
                Fact::SaleLine {
                    store,
                    sale_id,
                    product,
                    qty_milli,
                    ..
                } if !voided.contains(&(*store, *sale_id)) => {
                    *s.stock.entry((*store, product.clone())).or_default() -=
                        i128::from(*qty_milli);
                }
                Fact::Payment {
                    store,
                    sale_id,
                    method,
                    amount,
                    ..
                } if !voided.contains(&(*store, *sale_id)) => {
                    if let Some(shift) = sale_shift.get(&(*store, *sale_id)) {
                        let z = s.shifts.entry((*store, *shift)).or_default();
                        *z.by_method.entry(*method).or_default() += i128::from(*amount);
                    }
                }
                Fact::Debt {
                    store,
                    customer,
                    amount,
                    ..
                } => {
                    *s.debts.entry((*store, *customer)).or_default() += i128::from(*amount);
                }
                Fact::DebtPayment {
                    store,
                    customer,
                    amount,
                    ..
                } => {
                    *s.debts.entry((*store, *customer)).or_default() -= i128::from(*amount);
                }
                Fact::StockMove {
                    store,
                    product,
                    delta_milli,
                    ..
                } => {
                    *s.stock.entry((*store, product.clone())).or_default() +=
                        i128::from(*delta_milli);
                }
                Fact::ReturnLine {
                    store,
                    product,
                    qty_milli,
                    damaged: false,
                    ..
                }
                | Fact::UnlinkedReturn {
                    store,
                    product,
                    qty_milli,
                    damaged: false,
                    ..
                } => {
                    *s.stock.entry((*store, product.clone())).or_default() +=
                        i128::from(*qty_milli);
                }
                Fact::StoreCredit {
                    store,
                    customer,
                    amount,
                    sale_id,
                    ..
                } => {
                    let spent_by_void = sale_id.is_some_and(|x| voided.contains(&(*store, x)));
                    let b = s.store_credit.entry((*store, *customer)).or_default();
                    if !spent_by_void {
                        *b += i128::from(*amount);
                    }
                }
                Fact::DrawerOpen {
                    store, shift_id, ..
                } => {
                    s.shifts
                        .entry((*store, *shift_id))
                        .or_default()
                        .drawer_opens += 1;
                }
                Fact::SaleLine {
                    store,
                    sale_id,
                    overridden: true,
                    ..
                } => {
                    if let Some(shift) = sale_shift.get(&(*store, *sale_id)) {
                        s.shifts
                            .entry((*store, *shift))
                            .or_default()
                            .price_overrides += 1;
                    }
                }
                _ => {}
            }
        }
        s
    }

    /// SHA-256 of the canonical JSON of every fact, the summary and the
    /// conflicts: equal digests mean equal projections.
    pub fn digest(&self) -> Hash256 {
        Hash256::of(&self.to_value().to_canonical_bytes())
    }

    /// The state as one canonical-JSON value (what [`Projections::digest`] hashes).
    pub fn to_value(&self) -> Value {
        let facts = Value::Array(self.all().map(fact_value).collect());
        let conflicts = Value::Array(
            self.conflict_states()
                .iter()
                .map(|st| {
                    let c = &st.conflict;
                    obj([
                        ("id", Value::String(c.conflict_id.to_string())),
                        ("reason", Value::String(c.reason.as_str().into())),
                        ("subject", Value::String(c.subject.key())),
                        ("resolution", opt(&st.resolution)),
                        (
                            "events",
                            Value::Array(
                                c.events
                                    .iter()
                                    .map(|e| Value::String(e.to_string()))
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect(),
        );
        obj([
            ("facts", facts),
            ("summary", self.summary().to_value()),
            ("conflicts", conflicts),
        ])
    }
}
