//! Conflicts between accepted events: [`Conflict`] and its stable id,
//! [`conflict_of`] (the monotone predicates over the facts of one subject),
//! [`possible_conflicts`] and [`settling`] (the resolution that covers a
//! conflict).
//!
//! Architecture invariant: pure; no `crate::storage`, no SQL, no IO. Imports
//! only [`super::fact`] and [`super::subject`] (and the conflict vocabulary
//! of [`crate::conflict`]).

use std::collections::{BTreeMap, BTreeSet};

use caja_shared::digest::Hash256;
use caja_shared::ids::{ConflictId, CustomerId, DebtId, EventId, SaleId, Sku, StoreId};

use super::fact::Fact;
use super::subject::Subject;
use crate::conflict::{ConflictReason, Strategy};

/// A conflict between accepted events, kept until an operator resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Stable id: a function of `reason` and the subject's key.
    pub conflict_id: ConflictId,
    /// Why, e.g. `duplicate_fiscal_number`.
    pub reason: ConflictReason,
    /// The store of the first event involved.
    pub store: StoreId,
    /// What it is about, e.g. `fiscal:B02:B0200000051`.
    pub subject: Subject,
    /// Every candidate event (sorted).
    pub events: BTreeSet<EventId>,
}

impl Conflict {
    /// A conflict of `reason` about `subject` (its id follows from both).
    pub fn new(
        reason: ConflictReason,
        subject: Subject,
        store: StoreId,
        events: BTreeSet<EventId>,
    ) -> Conflict {
        Conflict {
            conflict_id: Conflict::id_of(reason, &subject),
            reason,
            store,
            subject,
            events,
        }
    }

    /// The id a conflict of `reason` about `subject` has.
    pub fn id_of(reason: ConflictReason, subject: &Subject) -> ConflictId {
        conflict_id(reason.as_str(), &subject.key())
    }

    /// The named strategy that settles it (`manual` for every reason).
    pub fn strategy(&self) -> Strategy {
        self.reason.strategy()
    }
}

/// The conflict id of a reason and subject: a UUID (version 8) from SHA-256, so
/// a rebuild or another hub finds the same id.
pub fn conflict_id(reason: &str, subject: &str) -> ConflictId {
    let h = Hash256::of(format!("caja/conflict/v1\n{reason}\n{subject}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.0[..16]);
    b[6] = 0x80 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    ConflictId::from_uuid(uuid::Uuid::from_bytes(b))
}

fn manual(
    reason: ConflictReason,
    subject: &Subject,
    store: StoreId,
    events: BTreeSet<EventId>,
) -> Conflict {
    debug_assert!(reason.is_manual(), "{reason} is decided automatically");
    Conflict::new(reason, subject.clone(), store, events)
}

/// The conflicts a subject may have, with the ids they would have: a store
/// re-deciding a [`Subject::retractable`] subject drops those no longer found.
pub fn possible_conflicts(subject: &Subject) -> Vec<ConflictId> {
    let reasons: &[ConflictReason] = match subject {
        Subject::SalePrice(_) => &[ConflictReason::StalePrice],
        Subject::StoreCredit(..) => &[ConflictReason::StoreCreditOverdrawn],
        _ => &[],
    };
    reasons
        .iter()
        .map(|r| Conflict::id_of(*r, subject))
        .collect()
}

/// Decides the conflicts of a subject from all facts about it (as returned by
/// [`Projections::facts_about`](crate::projection::Projections::facts_about)
/// or storage's equivalent query). Widened subjects (`VoidedSale`,
/// `PriceChange`) decide nothing themselves.
pub fn conflict_of(subject: &Subject, related: &[Fact]) -> Vec<Conflict> {
    match subject {
        Subject::Fiscal(series, number) => {
            let sales: BTreeMap<EventId, StoreId> = related
                .iter()
                .filter_map(|f| match f {
                    Fact::Sale {
                        event_id,
                        store,
                        fiscal: Some((s, n)),
                        ..
                    } if s == series && n == number => Some((*event_id, *store)),
                    Fact::CreditNote {
                        event_id,
                        store,
                        series: s,
                        number: n,
                        ..
                    } if s == series && n == number => Some((*event_id, *store)),
                    _ => None,
                })
                .collect();
            match sales.values().next() {
                Some(store) if sales.len() >= 2 => vec![manual(
                    ConflictReason::DuplicateFiscalNumber,
                    subject,
                    *store,
                    sales.keys().copied().collect(),
                )],
                _ => vec![],
            }
        }
        Subject::Debt(debt) => debt_conflicts(subject, *debt, related),
        Subject::Event(id) => related
            .iter()
            .filter_map(|f| match f {
                Fact::ForeignKind {
                    event_id, store, ..
                } if event_id == id => Some(manual(
                    ConflictReason::HubKindFromRegister,
                    subject,
                    *store,
                    [*id].into(),
                )),
                _ => None,
            })
            .take(1)
            .collect(),
        Subject::SalePrice(sale) => stale_price(subject, *sale, related).into_iter().collect(),
        Subject::Returned(sale) => over_return(subject, *sale, related),
        Subject::StoreCredit(store, customer) => {
            store_credit_overdrawn(subject, *store, *customer, related)
                .into_iter()
                .collect()
        }
        Subject::UnknownOriginal(id) => related
            .iter()
            .filter_map(|f| match f {
                Fact::UnlinkedReturn {
                    event_id, store, ..
                } if event_id == id => Some(manual(
                    ConflictReason::ReturnOriginalUnknown,
                    subject,
                    *store,
                    [*id].into(),
                )),
                _ => None,
            })
            .take(1)
            .collect(),
        Subject::VoidedSale(_)
        | Subject::PriceChange(..)
        | Subject::ReturnedFiscal(..)
        | Subject::SaleForReturns(..)
        | Subject::CardPayment(..)
        | Subject::FiscalDocument(_) => vec![],
    }
}

/// `over_return`: more returned of a sale than was sold — of a line (by its
/// returns by line, across every register) or of a product (counting the
/// returns made without the original that name the sale by id or by its
/// fiscal number in its store). Judged once the sale is known; monotone
/// (more returns never make it false). Candidates: the sale and its returns.
fn over_return(subject: &Subject, sale: SaleId, related: &[Fact]) -> Vec<Conflict> {
    let mut sold: BTreeMap<u32, i64> = BTreeMap::new();
    let mut sold_p: BTreeMap<&Sku, i128> = BTreeMap::new();
    let mut returned: BTreeMap<u32, i128> = BTreeMap::new();
    let mut returned_p: BTreeMap<&Sku, i128> = BTreeMap::new();
    let mut events = BTreeSet::new();
    let mut store = None;
    // The sale's store and fiscal number, for returns that name it by number.
    let sale_fact = related.iter().find_map(|f| match f {
        Fact::Sale {
            sale_id,
            store,
            fiscal,
            ..
        } if *sale_id == sale => Some((*store, fiscal.as_ref().map(|x| x.1.as_str()))),
        _ => None,
    });
    for f in related {
        match f {
            Fact::SaleLine {
                sale_id,
                line,
                qty_milli,
                store: s,
                event_id,
                product,
                ..
            } if *sale_id == sale => {
                sold.insert(*line, *qty_milli);
                *sold_p.entry(product).or_default() += i128::from(*qty_milli);
                store = store.or(Some(*s));
                events.insert(*event_id);
            }
            Fact::ReturnLine {
                sale_id,
                sale_line,
                qty_milli,
                event_id,
                store: s,
                product,
                ..
            } if *sale_id == sale => {
                *returned.entry(*sale_line).or_default() += i128::from(*qty_milli);
                *returned_p.entry(product).or_default() += i128::from(*qty_milli);
                store = store.or(Some(*s));
                events.insert(*event_id);
            }
            Fact::UnlinkedReturn {
                sale_id,
                reference,
                store: s,
                product,
                qty_milli,
                event_id,
                ..
            } => {
                let names_it = match sale_id {
                    Some(id) => *id == sale,
                    None => {
                        sale_fact.is_some_and(|(st, n)| st == *s && n == Some(reference.as_str()))
                    }
                };
                if names_it {
                    *returned_p.entry(product).or_default() += i128::from(*qty_milli);
                    store = store.or(Some(*s));
                    events.insert(*event_id);
                }
            }
            _ => {}
        }
    }
    let over_line = returned
        .iter()
        .any(|(line, q)| *q > i128::from(sold.get(line).copied().unwrap_or(0)));
    let over_product = returned_p
        .iter()
        .any(|(p, q)| *q > sold_p.get(p).copied().unwrap_or(0));
    match store {
        Some(store) if (over_line || over_product) && !sold.is_empty() => {
            vec![manual(ConflictReason::OverReturn, subject, store, events)]
        }
        _ => vec![],
    }
}

/// `store_credit_overdrawn`: a customer's store credit in a store below
/// zero — what sales not voided spent exceeds what returns credited (two
/// registers offline spending the same credit). Not monotone (a refund may
/// arrive later, a spending sale may be voided): stores re-decide it.
/// Candidates: the refunds and the spending sales not voided.
fn store_credit_overdrawn(
    subject: &Subject,
    store: StoreId,
    customer: CustomerId,
    related: &[Fact],
) -> Option<Conflict> {
    let voided: BTreeSet<SaleId> = related
        .iter()
        .filter_map(|f| match f {
            Fact::Void {
                sale_id, store: s, ..
            } if *s == store => Some(*sale_id),
            _ => None,
        })
        .collect();
    let mut balance: i128 = 0;
    let mut events = BTreeSet::new();
    for f in related {
        if let Fact::StoreCredit {
            event_id,
            store: s,
            customer: c,
            amount,
            sale_id,
            ..
        } = f
        {
            if *s != store || *c != customer || sale_id.is_some_and(|x| voided.contains(&x)) {
                continue;
            }
            balance += i128::from(*amount);
            events.insert(*event_id);
        }
    }
    (balance < 0).then(|| manual(ConflictReason::StoreCreditOverdrawn, subject, store, events))
}

/// `debt_overpaid`: positive payments beyond the smallest amount the debt was
/// opened with. `payment_on_voided_debt`: a positive payment on a debt whose
/// sale was voided (by any register); candidates are the voids and the
/// payments. Both are monotone: more facts never make them false.
fn debt_conflicts(subject: &Subject, debt: DebtId, related: &[Fact]) -> Vec<Conflict> {
    let mut opened: Option<i64> = None;
    let mut paid: i128 = 0;
    let mut events = BTreeSet::new();
    let mut payments = BTreeSet::new();
    let mut sales = BTreeSet::new();
    let mut store = None;
    for f in related {
        match f {
            Fact::Debt {
                event_id,
                debt_id,
                amount,
                store: s,
                sale_id,
                ..
            } if *debt_id == debt => {
                opened = Some(opened.map_or(*amount, |o| o.min(*amount)));
                events.insert(*event_id);
                store = store.or(Some(*s));
                sales.extend(*sale_id);
            }
            Fact::DebtPayment {
                event_id,
                debt_id,
                amount,
                ..
            } if *debt_id == debt => {
                paid += i128::from((*amount).max(0));
                events.insert(*event_id);
                if *amount > 0 {
                    payments.insert(*event_id);
                }
            }
            _ => {}
        }
    }
    let (Some(opened), Some(store)) = (opened, store) else {
        return vec![];
    };
    let mut out = Vec::new();
    if paid > i128::from(opened) {
        out.push(manual(ConflictReason::DebtOverpaid, subject, store, events));
    }
    let voids: BTreeSet<EventId> = related
        .iter()
        .filter_map(|f| match f {
            Fact::Void {
                event_id, sale_id, ..
            } if sales.contains(sale_id) => Some(*event_id),
            _ => None,
        })
        .collect();
    if !voids.is_empty() && !payments.is_empty() {
        let mut candidates = voids;
        candidates.extend(payments);
        out.push(manual(
            ConflictReason::PaymentOnVoidedDebt,
            subject,
            store,
            candidates,
        ));
    }
    out
}

/// `stale_price`: a line of the sale charged a unit price beyond
/// [`crate::conflict::STALE_PRICE_TOLERANCE_BP`] of the price in force at the
/// sale's HLC ([`crate::conflict::price_in_force`]). Candidates: the sale and
/// the price events in force for its stale lines. Not monotone (a price set
/// later by the hub chain but earlier by HLC can change the price in force),
/// so stores re-decide it whenever a price of one of its products arrives.
fn stale_price(subject: &Subject, sale: EventId, related: &[Fact]) -> Option<Conflict> {
    let (store, hlc) = related.iter().find_map(|f| match f {
        Fact::Sale {
            event_id,
            store,
            hlc: Some(h),
            ..
        } if *event_id == sale => Some((*store, *h)),
        _ => None,
    })?;
    let mut history: BTreeMap<&Sku, Vec<crate::conflict::PricePoint>> = BTreeMap::new();
    for f in related {
        if let Fact::PriceHistory {
            event_id,
            store: s,
            product,
            hub_seq,
            hlc,
            unit_price,
        } = f
        {
            if *s == store {
                history
                    .entry(product)
                    .or_default()
                    .push(crate::conflict::PricePoint {
                        hlc: *hlc,
                        hub_seq: *hub_seq,
                        unit_price: *unit_price,
                        event_id: *event_id,
                    });
            }
        }
    }
    let mut events = BTreeSet::new();
    for f in related {
        if let Fact::SaleLine {
            event_id,
            product,
            unit_price: Some(charged),
            overridden: false,
            ..
        } = f
        {
            if *event_id != sale {
                continue;
            }
            let Some(in_force) = history
                .get(product)
                .and_then(|h| crate::conflict::price_in_force(h, hlc))
            else {
                continue;
            };
            if crate::conflict::beyond_tolerance(*charged, in_force.unit_price) {
                events.insert(in_force.event_id);
            }
        }
    }
    if events.is_empty() {
        return None;
    }
    events.insert(sale);
    Some(manual(ConflictReason::StalePrice, subject, store, events))
}

/// A conflict and the resolution that settles it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictState {
    /// The conflict.
    pub conflict: Conflict,
    /// The resolution event that covers every candidate (the greatest hub
    /// seq of those that do), if any.
    pub resolution: Option<EventId>,
}

/// The resolution settling a conflict among `resolutions` (facts of any
/// conflict): of those naming it and covering all its candidates, the one with
/// the greatest hub seq. A function of the set.
pub fn settling<'a>(
    conflict: &Conflict,
    resolutions: impl IntoIterator<Item = &'a Fact>,
) -> Option<EventId> {
    resolutions
        .into_iter()
        .filter_map(|f| match f {
            Fact::Resolution {
                event_id,
                conflict_id,
                hub_seq,
                covers,
                ..
            } if *conflict_id == conflict.conflict_id
                && crate::conflict::covers(covers, &conflict.events) =>
            {
                Some((*hub_seq, *event_id))
            }
            _ => None,
        })
        .max()
        .map(|(_, e)| e)
}
