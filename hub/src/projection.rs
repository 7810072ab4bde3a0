//! Hub projections: what head office reads (sales, payments, voids, debts per
//! customer, stock per product and store, shifts and Z totals, customers,
//! catalog, prices) and the conflicts found between accepted events.
//!
//! An applied event becomes a list of [`Fact`]s ([`facts`]); the store writes
//! each fact as one row keyed by its event, and [`Projections`] is the same
//! state in memory. Everything derived (stock, balances, Z totals) is a sum over
//! facts, and the few "latest value" facts use a total order that does not
//! depend on arrival: customers `lww` (HLC, then device, then event id),
//! catalog items and prices `server_wins` (the hub chain's seq). So the state is
//! a function of the *set* of applied events (DESIGN invariant 5), which the
//! property test checks over many causal orders, and `caja-hub rebuild`
//! recomputes it from the event store.
//!
//! Conflicts are monotone predicates over the facts of one [`Subject`] (once
//! true, more facts keep them true), so detecting them incrementally as events
//! are applied finds the same set as computing them over all facts:
//! - `duplicate_fiscal_number` (`manual`): two sales with one fiscal number;
//! - `debt_overpaid` (`manual`): positive payments beyond the smallest amount
//!   a debt was opened with;
//! - `hub_kind_from_register` (`manual`): a register wrote a kind only the hub
//!   writes (stored as a fact of the register's chain, never applied as a price
//!   or a catalog change).
//!
//! [`decide`] turns an applied event's facts into what storage does with them
//! (facts to write, automatic decisions to audit, conflicts to store or
//! withdraw, documents to queue); storage only executes it.
//!
//! Architecture invariant: pure; no SQL. The store reads facts back into
//! [`Projections`] to compute the same digest.

use std::collections::{BTreeMap, BTreeSet};

use caja_shared::canonical::{Object, Value};
use caja_shared::digest::Hash256;
use caja_shared::hlc::Hlc;
use caja_shared::ids::{
    ConflictId, CustomerId, DebtId, DeviceId, EventId, GrantId, PaymentId, SaleId, ShiftId, Sku,
    StoreId,
};
use caja_shared::kind::{EventBody, PaymentMethod};

use crate::conflict::{ConflictReason, Strategy};

pub mod decide;

/// Where an event comes from: a register's chain or a store's hub chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A register.
    Register,
    /// The hub (the store's hub device).
    Hub,
}

/// The envelope fields projections need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta<'a> {
    /// The event.
    pub event_id: EventId,
    /// Its store.
    pub store: StoreId,
    /// Its device.
    pub device: DeviceId,
    /// Its seq in the device's chain.
    pub seq: u64,
    /// Its HLC.
    pub hlc: Hlc,
    /// Who wrote it.
    pub origin: Origin,
    /// Its causal dependencies (a resolution's candidates).
    pub deps: &'a [EventId],
}

/// One row of projection state, derived from one applied event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A shift was opened.
    Shift {
        /// Event.
        event_id: EventId,
        /// Shift.
        shift_id: ShiftId,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// Cashier.
        cashier: String,
        /// Cash float.
        opening_float: i64,
    },
    /// A shift was closed (the Z report's counts).
    ShiftClose {
        /// Event.
        event_id: EventId,
        /// Shift.
        shift_id: ShiftId,
        /// Store.
        store: StoreId,
        /// Cash expected by the register.
        expected_cash: i64,
        /// Cash counted.
        counted_cash: i64,
    },
    /// A sale.
    Sale {
        /// Event.
        event_id: EventId,
        /// Sale.
        sale_id: SaleId,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// Shift, if any.
        shift_id: Option<ShiftId>,
        /// Customer, if any.
        customer: Option<CustomerId>,
        /// Total, tax included.
        total: i64,
        /// Tax.
        tax: i64,
        /// Change given.
        change: i64,
        /// Fiscal number (series, number).
        fiscal: Option<(String, String)>,
        /// The sale's HLC (`None` for rows projected before schema v4).
        hlc: Option<Hlc>,
    },
    /// One line of a sale.
    SaleLine {
        /// Event.
        event_id: EventId,
        /// Line index.
        line: u32,
        /// Sale.
        sale_id: SaleId,
        /// Store.
        store: StoreId,
        /// Product.
        product: Sku,
        /// Quantity in thousandths.
        qty_milli: i64,
        /// Line total.
        total: i64,
        /// Line tax.
        tax: i64,
        /// Shelf price charged (`None` for rows projected before schema v4).
        unit_price: Option<i64>,
        /// Sold at an approved price other than the shelf price (a price
        /// override): never a stale price.
        overridden: bool,
    },
    /// A payment on a sale (inside the sale, or taken later).
    Payment {
        /// Event.
        event_id: EventId,
        /// Index inside the event (0 for `PaymentTaken`).
        idx: u32,
        /// Payment id (`PaymentTaken` only).
        payment_id: Option<PaymentId>,
        /// Sale.
        sale_id: SaleId,
        /// Store.
        store: StoreId,
        /// Method.
        method: PaymentMethod,
        /// Amount.
        amount: i64,
    },
    /// A sale was voided.
    Void {
        /// Event.
        event_id: EventId,
        /// Sale.
        sale_id: SaleId,
        /// Store.
        store: StoreId,
    },
    /// Store credit extended.
    Debt {
        /// Event.
        event_id: EventId,
        /// Debt.
        debt_id: DebtId,
        /// Store.
        store: StoreId,
        /// Customer.
        customer: CustomerId,
        /// Amount owed.
        amount: i64,
        /// The sale it was opened for.
        sale_id: Option<SaleId>,
    },
    /// A payment on a debt.
    DebtPayment {
        /// Event.
        event_id: EventId,
        /// Payment.
        payment_id: PaymentId,
        /// Debt.
        debt_id: DebtId,
        /// Store.
        store: StoreId,
        /// Customer.
        customer: CustomerId,
        /// Amount.
        amount: i64,
    },
    /// A stock receipt or count delta.
    StockMove {
        /// Event.
        event_id: EventId,
        /// Store.
        store: StoreId,
        /// Product.
        product: Sku,
        /// Signed delta.
        delta_milli: i64,
    },
    /// A customer's fields (`lww`: the greatest (hlc, device, event) wins).
    Customer {
        /// Customer.
        customer_id: CustomerId,
        /// Event.
        event_id: EventId,
        /// HLC of the event.
        hlc: Hlc,
        /// Writing device.
        device: DeviceId,
        /// The body's canonical JSON.
        body: String,
    },
    /// A catalog item of a store (`server_wins`: the greatest hub seq wins).
    CatalogItem {
        /// Store.
        store: StoreId,
        /// Product.
        product: Sku,
        /// Event.
        event_id: EventId,
        /// Seq in the store's hub chain.
        hub_seq: u64,
        /// The body's canonical JSON.
        body: String,
    },
    /// A price of a store (`server_wins`).
    Price {
        /// Store.
        store: StoreId,
        /// Product.
        product: Sku,
        /// Event.
        event_id: EventId,
        /// Seq in the store's hub chain.
        hub_seq: u64,
        /// Shelf price.
        unit_price: i64,
    },
    /// A fiscal block granted to a register (from the hub chain) or numbers a
    /// register released from one of its blocks.
    FiscalBlock {
        /// Event.
        event_id: EventId,
        /// A release (else a grant).
        release: bool,
        /// The grant.
        grant_id: GrantId,
        /// Store.
        store: StoreId,
        /// The register the block was granted to / that released.
        device: DeviceId,
        /// Series prefix.
        series: String,
        /// First number, inclusive.
        first: u64,
        /// Last number, inclusive.
        last: u64,
        /// Expiry of a grant.
        expires_ms: Option<i64>,
    },
    /// A stock quota granted to a register (hub chain) or released by it.
    Escrow {
        /// Event.
        event_id: EventId,
        /// A release (else a grant).
        release: bool,
        /// The grant.
        grant_id: GrantId,
        /// Store.
        store: StoreId,
        /// The register the quota was granted to / that released.
        device: DeviceId,
        /// Product.
        product: Sku,
        /// Quantity in thousandths.
        qty_milli: i64,
        /// Expiry of a grant.
        expires_ms: Option<i64>,
    },
    /// A sale line sold beyond the register's quota (`warn`).
    Oversell {
        /// Event.
        event_id: EventId,
        /// Line index.
        line: u32,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// Sale.
        sale_id: SaleId,
        /// Product.
        product: Sku,
        /// Quantity beyond the quota.
        beyond_milli: i64,
    },
    /// One returned line of a sale.
    ReturnLine {
        /// Event (the `SaleReturned`).
        event_id: EventId,
        /// Index in the return.
        line: u32,
        /// Store.
        store: StoreId,
        /// The original sale.
        sale_id: SaleId,
        /// The sale's line.
        sale_line: u32,
        /// Product.
        product: Sku,
        /// Quantity returned.
        qty_milli: i64,
        /// Damaged goods do not go back to stock.
        damaged: bool,
    },
    /// A fiscal credit note issued with a return.
    CreditNote {
        /// Event (the `SaleReturned`).
        event_id: EventId,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// The original sale, when known (absent for a return whose
        /// original was given by fiscal number only).
        sale_id: Option<SaleId>,
        /// Series.
        series: String,
        /// Number.
        number: String,
    },
    /// Every price a store's hub chain set (the price in force at a time).
    PriceHistory {
        /// Event.
        event_id: EventId,
        /// Store.
        store: StoreId,
        /// Product.
        product: Sku,
        /// Seq in the store's hub chain.
        hub_seq: u64,
        /// HLC of the hub event.
        hlc: Hlc,
        /// Shelf price.
        unit_price: i64,
    },
    /// An operator's (or the hub's) resolution of a conflict.
    Resolution {
        /// Event.
        event_id: EventId,
        /// Store (of the hub chain it is in).
        store: StoreId,
        /// The conflict.
        conflict_id: ConflictId,
        /// Seq in the store's hub chain.
        hub_seq: u64,
        /// The strategy named.
        strategy: String,
        /// The winning candidate, if one.
        winner: Option<EventId>,
        /// Who decided.
        resolved_by: String,
        /// Why.
        note: String,
        /// The candidates it decided on (the event's deps).
        covers: BTreeSet<EventId>,
    },
    /// One entry of a customer's store credit: + a return refunded as store
    /// credit, − a sale paid with it (given back if that sale is voided).
    StoreCredit {
        /// Event.
        event_id: EventId,
        /// Index inside the event (the payment's, 0 for a refund).
        idx: u32,
        /// Store.
        store: StoreId,
        /// Customer.
        customer: CustomerId,
        /// Signed amount.
        amount: i64,
        /// The spending sale (`None` for a refund).
        sale_id: Option<SaleId>,
    },
    /// One returned line of a sale the returning register did not know.
    UnlinkedReturn {
        /// Event (the `SaleReturned`).
        event_id: EventId,
        /// Index in the return.
        line: u32,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// The sale, when the cashier gave its id.
        sale_id: Option<SaleId>,
        /// What the cashier gave (a sale id or a fiscal number).
        reference: String,
        /// Product.
        product: Sku,
        /// Quantity returned.
        qty_milli: i64,
        /// Damaged goods do not go back to stock.
        damaged: bool,
    },
    /// The cash drawer opened without a sale.
    DrawerOpen {
        /// Event.
        event_id: EventId,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// Shift.
        shift_id: ShiftId,
        /// Why.
        reason: String,
        /// Who approved, if anyone.
        approved_by: Option<String>,
    },
    /// A supervisor's approval carried by an event (who, what; when is the
    /// event's HLC).
    Approval {
        /// Event.
        event_id: EventId,
        /// Index among the event's approvals.
        idx: u32,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// What was approved (`void`, `price_override`, `drawer_open`, …).
        action: String,
        /// The approver.
        staff_id: caja_shared::ids::StaffId,
        /// Their name.
        name: String,
        /// Their role (`supervisor`, `manager`, …).
        role: String,
    },
    /// A register wrote a kind only the hub writes.
    ForeignKind {
        /// Event.
        event_id: EventId,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// The kind's name.
        kind: String,
    },
}

/// The facts of one applied event.
pub fn facts(meta: &EventMeta<'_>, body: &EventBody) -> Vec<Fact> {
    let (event_id, store, device) = (meta.event_id, meta.store, meta.device);
    let hub_only = matches!(
        body,
        EventBody::CatalogItemUpserted(_)
            | EventBody::PriceSet(_)
            | EventBody::FiscalRangeGranted(_)
            | EventBody::EscrowGranted(_)
            | EventBody::ConflictResolved(_)
            | EventBody::StaffUpserted(_)
            | EventBody::PaymentIntentUpdated(_)
            | EventBody::FiscalDocumentAccepted(_)
            | EventBody::FiscalDocumentRejected(_)
    );
    if hub_only && meta.origin == Origin::Register {
        return vec![Fact::ForeignKind {
            event_id,
            store,
            device,
            kind: body.kind().as_str().to_owned(),
        }];
    }
    if !hub_only && meta.origin == Origin::Hub {
        // The hub writes only hub kinds; nothing else is projected from its chain.
        return vec![];
    }
    let mut out = body_facts(meta, body);
    // Every approval the event carries, once per (action, approver).
    let mut seen = BTreeSet::new();
    for a in body.approvals() {
        if !seen.insert((a.action.as_str(), a.staff_id)) {
            continue;
        }
        out.push(Fact::Approval {
            event_id,
            idx: u32::try_from(seen.len() - 1).unwrap_or(u32::MAX),
            store,
            device,
            action: a.action.clone(),
            staff_id: a.staff_id,
            name: a.name.clone(),
            role: role_name(a.role).to_owned(),
        });
    }
    out
}

/// The wire name of a role.
pub fn role_name(r: caja_shared::kind::Role) -> &'static str {
    match r {
        caja_shared::kind::Role::Cashier => "cashier",
        caja_shared::kind::Role::Supervisor => "supervisor",
        caja_shared::kind::Role::Manager => "manager",
    }
}

fn body_facts(meta: &EventMeta<'_>, body: &EventBody) -> Vec<Fact> {
    let (event_id, store, device) = (meta.event_id, meta.store, meta.device);
    match body {
        EventBody::ShiftOpened(b) => vec![Fact::Shift {
            event_id,
            shift_id: b.shift_id,
            store,
            device,
            cashier: b.cashier.clone(),
            opening_float: b.opening_float.0,
        }],
        EventBody::ShiftClosed(b) => vec![Fact::ShiftClose {
            event_id,
            shift_id: b.shift_id,
            store,
            expected_cash: b.expected_cash.0,
            counted_cash: b.counted_cash.0,
        }],
        EventBody::SaleCreated(b) => {
            let mut out = vec![Fact::Sale {
                event_id,
                sale_id: b.sale_id,
                store,
                device,
                shift_id: b.shift_id,
                customer: b.customer,
                total: b.total.0,
                tax: b.tax.0,
                change: b.change.0,
                fiscal: b
                    .fiscal
                    .as_ref()
                    .map(|f| (f.series.clone(), f.number.clone())),
                hlc: Some(meta.hlc),
            }];
            for (i, l) in b.lines.iter().enumerate() {
                if let Some(beyond) = l.beyond_quota_milli.filter(|q| q.0 > 0) {
                    out.push(Fact::Oversell {
                        event_id,
                        line: u32::try_from(i).unwrap_or(u32::MAX),
                        store,
                        device,
                        sale_id: b.sale_id,
                        product: l.product.clone(),
                        beyond_milli: beyond.0,
                    });
                }
                out.push(Fact::SaleLine {
                    event_id,
                    line: u32::try_from(i).unwrap_or(u32::MAX),
                    sale_id: b.sale_id,
                    store,
                    product: l.product.clone(),
                    qty_milli: l.qty_milli.0,
                    total: l.total.0,
                    tax: l.tax.0,
                    unit_price: Some(l.unit_price.0),
                    overridden: l.price_override.is_some(),
                });
            }
            for (i, p) in b.payments.iter().enumerate() {
                let idx = u32::try_from(i).unwrap_or(u32::MAX);
                out.push(Fact::Payment {
                    event_id,
                    idx,
                    payment_id: None,
                    sale_id: b.sale_id,
                    store,
                    method: p.method,
                    amount: p.amount.0,
                });
                if let (PaymentMethod::StoreCredit, Some(customer)) = (p.method, b.customer) {
                    out.push(Fact::StoreCredit {
                        event_id,
                        idx,
                        store,
                        customer,
                        amount: -p.amount.0,
                        sale_id: Some(b.sale_id),
                    });
                }
            }
            out
        }
        EventBody::SaleVoided(b) => vec![Fact::Void {
            event_id,
            sale_id: b.sale_id,
            store,
        }],
        EventBody::PaymentTaken(b) => vec![Fact::Payment {
            event_id,
            idx: 0,
            payment_id: Some(b.payment_id),
            sale_id: b.sale_id,
            store,
            method: b.method,
            amount: b.amount.0,
        }],
        EventBody::DebtOpened(b) => vec![Fact::Debt {
            event_id,
            debt_id: b.debt_id,
            store,
            customer: b.customer,
            amount: b.amount.0,
            sale_id: b.sale_id,
        }],
        EventBody::DebtPaymentTaken(b) => vec![Fact::DebtPayment {
            event_id,
            payment_id: b.payment_id,
            debt_id: b.debt_id,
            store,
            customer: b.customer,
            amount: b.amount.0,
        }],
        EventBody::StockReceived(b) => vec![Fact::StockMove {
            event_id,
            store,
            product: b.product.clone(),
            delta_milli: b.qty_milli.0,
        }],
        EventBody::StockCounted(b) => vec![Fact::StockMove {
            event_id,
            store,
            product: b.product.clone(),
            delta_milli: b.delta_milli.0,
        }],
        EventBody::CustomerUpserted(b) => vec![Fact::Customer {
            customer_id: b.customer_id,
            event_id,
            hlc: meta.hlc,
            device,
            body: body_json(body),
        }],
        EventBody::CatalogItemUpserted(b) => vec![Fact::CatalogItem {
            store,
            product: b.product.clone(),
            event_id,
            hub_seq: meta.seq,
            body: body_json(body),
        }],
        EventBody::PriceSet(b) => vec![
            Fact::Price {
                store,
                product: b.product.clone(),
                event_id,
                hub_seq: meta.seq,
                unit_price: b.unit_price.0,
            },
            Fact::PriceHistory {
                event_id,
                store,
                product: b.product.clone(),
                hub_seq: meta.seq,
                hlc: meta.hlc,
                unit_price: b.unit_price.0,
            },
        ],
        EventBody::FiscalRangeGranted(b) => vec![Fact::FiscalBlock {
            event_id,
            release: false,
            grant_id: b.grant_id,
            store,
            device: b.device,
            series: b.series.clone(),
            first: b.first,
            last: b.last,
            expires_ms: Some(b.expires_ms),
        }],
        EventBody::FiscalNumbersReleased(b) => vec![Fact::FiscalBlock {
            event_id,
            release: true,
            grant_id: b.grant_id,
            store,
            device,
            series: b.series.clone(),
            first: b.first,
            last: b.last,
            expires_ms: None,
        }],
        EventBody::EscrowGranted(b) => vec![Fact::Escrow {
            event_id,
            release: false,
            grant_id: b.grant_id,
            store,
            device: b.device,
            product: b.product.clone(),
            qty_milli: b.qty_milli.0,
            expires_ms: Some(b.expires_ms),
        }],
        EventBody::EscrowReleased(b) => vec![Fact::Escrow {
            event_id,
            release: true,
            grant_id: b.grant_id,
            store,
            device,
            product: b.product.clone(),
            qty_milli: b.qty_milli.0,
            expires_ms: None,
        }],
        EventBody::ConflictResolved(b) => vec![Fact::Resolution {
            event_id,
            store,
            conflict_id: b.conflict_id,
            hub_seq: meta.seq,
            strategy: b.strategy.clone(),
            winner: b.winner,
            resolved_by: b.resolved_by.clone(),
            note: b.note.clone(),
            covers: meta.deps.iter().copied().collect(),
        }],
        // Staff live in the hub chain only; cash movements are in the
        // registers' Z reports.
        EventBody::StaffUpserted(_) | EventBody::CashMoved(_) => vec![],
        // Payment intents live in the payments tables (`store::payments`).
        EventBody::PaymentIntentUpdated(_) => vec![],
        EventBody::DrawerOpened(b) => vec![Fact::DrawerOpen {
            event_id,
            store,
            device,
            shift_id: b.shift_id,
            reason: b.reason.clone(),
            approved_by: b.approval.as_ref().map(|a| a.name.clone()),
        }],
        // The tax authority's verdicts live in the outbox (`store::outbox`).
        EventBody::FiscalDocumentAccepted(_) | EventBody::FiscalDocumentRejected(_) => vec![],
        EventBody::SaleReturned(b) => {
            let mut out: Vec<Fact> = Vec::new();
            for (i, l) in b.lines.iter().enumerate() {
                let line = u32::try_from(i).unwrap_or(u32::MAX);
                match (&b.original_unknown, b.sale_id, l.line) {
                    (None, Some(sale_id), Some(sale_line)) => out.push(Fact::ReturnLine {
                        event_id,
                        line,
                        store,
                        sale_id,
                        sale_line,
                        product: l.product.clone(),
                        qty_milli: l.qty_milli.0,
                        damaged: l.damaged,
                    }),
                    _ => out.push(Fact::UnlinkedReturn {
                        event_id,
                        line,
                        store,
                        device,
                        sale_id: b.sale_id,
                        reference: b
                            .original_unknown
                            .as_ref()
                            .map(|u| u.reference.clone())
                            .or_else(|| b.sale_id.map(|s| s.to_string()))
                            .unwrap_or_default(),
                        product: l.product.clone(),
                        qty_milli: l.qty_milli.0,
                        damaged: l.damaged,
                    }),
                }
            }
            if let Some(f) = &b.credit_note {
                out.push(Fact::CreditNote {
                    event_id,
                    store,
                    device,
                    sale_id: b.sale_id,
                    series: f.series.clone(),
                    number: f.number.clone(),
                });
            }
            if let (PaymentMethod::StoreCredit, Some(customer)) = (b.refund, b.customer) {
                if b.total.0 != 0 {
                    out.push(Fact::StoreCredit {
                        event_id,
                        idx: 0,
                        store,
                        customer,
                        amount: b.total.0,
                        sale_id: None,
                    });
                }
            }
            out
        }
    }
}

fn body_json(body: &EventBody) -> String {
    body.to_value()
        .map(|v| v.to_canonical_string())
        .unwrap_or_default()
}

/// What a conflict is about: the facts to look at to decide it. A conflict
/// names its subject by [`Subject::key`] (stored, audited, hashed into its id);
/// [`Subject::parse_key`] reads the subjects of conflicts back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A fiscal number (series, number).
    Fiscal(String, String),
    /// A debt (`debt_overpaid`, `payment_on_voided_debt`).
    Debt(DebtId),
    /// One event (a hub kind written by a register).
    Event(EventId),
    /// What was returned of a sale.
    Returned(SaleId),
    /// The prices charged by a sale (`stale_price`), by its event.
    SalePrice(EventId),
    /// A voided sale: the store widens it to the debts opened for the sale.
    VoidedSale(SaleId),
    /// A price the hub set for a product of a store at an HLC: the store
    /// widens it to the sales made after it, whose price in force it may change.
    PriceChange(StoreId, Sku, Hlc),
    /// A customer's store credit in a store (`store_credit_overdrawn`).
    StoreCredit(StoreId, CustomerId),
    /// A return whose original the register did not know, by its event (the
    /// review item `return_original_unknown`).
    UnknownOriginal(EventId),
    /// Returns made without the original naming a fiscal number: the store
    /// widens it to the sales of that store with that number.
    ReturnedFiscal(StoreId, String),
    /// A sale applied: the store widens it to `Returned` when returns made
    /// without the original name it (by id or fiscal number), else nothing.
    SaleForReturns(StoreId, SaleId, Option<String>),
    /// A card payment (the sale's event, the payment's index in it), judged
    /// against the provider's reports (`card_payment_*`), not by facts.
    CardPayment(EventId, u32),
    /// A fiscal document by its outbox key, rejected by the tax authority
    /// (`fiscal_document_rejected`), not decided by facts.
    FiscalDocument(String),
}

impl Subject {
    /// The key a conflict names its subject by.
    pub fn key(&self) -> String {
        match self {
            Subject::Fiscal(series, number) => format!("fiscal:{series}:{number}"),
            Subject::Debt(d) => format!("debt:{d}"),
            Subject::Event(e) => format!("event:{e}"),
            Subject::Returned(sale) => format!("return:{sale}"),
            Subject::SalePrice(e) => format!("sale:{e}"),
            Subject::VoidedSale(s) => format!("voided_sale:{s}"),
            Subject::PriceChange(store, p, h) => format!("price:{store}:{p}:{h}"),
            Subject::StoreCredit(store, c) => format!("store_credit:{store}:{c}"),
            Subject::UnknownOriginal(e) => format!("unknown_original:{e}"),
            Subject::ReturnedFiscal(store, n) => format!("returned_fiscal:{store}:{n}"),
            Subject::SaleForReturns(store, sale, _) => format!("sale_returns:{store}:{sale}"),
            Subject::CardPayment(e, idx) => format!("card_payment:{e}:{idx}"),
            Subject::FiscalDocument(key) => format!("fiscal_doc:{key}"),
        }
    }

    /// The subject of a conflict named by `key` (the inverse of
    /// [`Subject::key`] on the subjects conflicts have: `key(parse_key(k)) ==
    /// k`). Subjects that only widen to others have no conflicts: `None`.
    pub fn parse_key(key: &str) -> Option<Subject> {
        let (kind, rest) = key.split_once(':')?;
        Some(match kind {
            "fiscal" => {
                let (series, number) = rest.split_once(':')?;
                Subject::Fiscal(series.to_owned(), number.to_owned())
            }
            "debt" => Subject::Debt(rest.parse().ok()?),
            "event" => Subject::Event(rest.parse().ok()?),
            "return" => Subject::Returned(rest.parse().ok()?),
            "sale" => Subject::SalePrice(rest.parse().ok()?),
            "store_credit" => {
                let (store, customer) = rest.split_once(':')?;
                Subject::StoreCredit(store.parse().ok()?, customer.parse().ok()?)
            }
            "unknown_original" => Subject::UnknownOriginal(rest.parse().ok()?),
            "card_payment" => {
                let (event, idx) = rest.rsplit_once(':')?;
                Subject::CardPayment(event.parse().ok()?, idx.parse().ok()?)
            }
            "fiscal_doc" => Subject::FiscalDocument(rest.to_owned()),
            _ => return None,
        })
        .filter(|s| s.key() == key)
    }

    /// Whether the conflicts of this subject can disappear as facts arrive
    /// (so a store re-decides them instead of only adding): a stale price (a
    /// price with an earlier HLC may arrive later) and an overdrawn store
    /// credit (a refund may arrive later, a spending sale may be voided).
    pub fn retractable(&self) -> bool {
        matches!(self, Subject::SalePrice(_) | Subject::StoreCredit(..))
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl serde::Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

/// The subjects whose conflicts a fact may change (`VoidedSale` and
/// `PriceChange` are widened by the store, see [`Subject`]).
pub fn subjects(fact: &Fact) -> Vec<Subject> {
    match fact {
        Fact::Sale {
            event_id,
            fiscal,
            store,
            sale_id,
            ..
        } => {
            let mut out = vec![Subject::SalePrice(*event_id)];
            if let Some((series, number)) = fiscal {
                out.push(Subject::Fiscal(series.clone(), number.clone()));
            }
            out.push(Subject::SaleForReturns(
                *store,
                *sale_id,
                fiscal.as_ref().map(|f| f.1.clone()),
            ));
            out
        }
        Fact::StoreCredit {
            store, customer, ..
        } => vec![Subject::StoreCredit(*store, *customer)],
        Fact::UnlinkedReturn {
            event_id,
            store,
            sale_id,
            reference,
            ..
        } => vec![
            Subject::UnknownOriginal(*event_id),
            match sale_id {
                Some(s) => Subject::Returned(*s),
                None => Subject::ReturnedFiscal(*store, reference.clone()),
            },
        ],
        Fact::Debt { debt_id, .. } | Fact::DebtPayment { debt_id, .. } => {
            vec![Subject::Debt(*debt_id)]
        }
        Fact::Void { sale_id, .. } => vec![Subject::VoidedSale(*sale_id)],
        Fact::PriceHistory {
            store,
            product,
            hlc,
            ..
        } => vec![Subject::PriceChange(*store, product.clone(), *hlc)],
        Fact::ForeignKind { event_id, .. } => vec![Subject::Event(*event_id)],
        Fact::ReturnLine { sale_id, .. } => vec![Subject::Returned(*sale_id)],
        Fact::CreditNote { series, number, .. } => {
            vec![Subject::Fiscal(series.clone(), number.clone())]
        }
        _ => vec![],
    }
}

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
/// [`Projections::facts_about`] or the store's equivalent query). Widened
/// subjects (`VoidedSale`, `PriceChange`) decide nothing themselves.
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

/// Projection state in memory: every fact, keyed so that applying the same set
/// of facts in any order gives the same state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projections {
    rows: BTreeMap<(u8, String), Fact>,
}

fn rank(f: &Fact) -> (u8, String) {
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

/// The wire name of a payment method.
pub fn method_name(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::Cash => "cash",
        PaymentMethod::Card => "card",
        PaymentMethod::Transfer => "transfer",
        PaymentMethod::Fiado => "fiado",
        PaymentMethod::StoreCredit => "store_credit",
    }
}

/// Parses a payment method's wire name.
pub fn parse_method(s: &str) -> Option<PaymentMethod> {
    [
        PaymentMethod::Cash,
        PaymentMethod::Card,
        PaymentMethod::Transfer,
        PaymentMethod::Fiado,
        PaymentMethod::StoreCredit,
    ]
    .into_iter()
    .find(|m| method_name(*m) == s)
}

fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut o = Object::new();
    for (k, v) in pairs {
        o.insert(k.to_owned(), v);
    }
    Value::Object(o)
}

/// An integer in canonical JSON; sums beyond ±(2^53−1) are written as strings.
fn int(v: i128) -> Value {
    let max = i128::from(caja_shared::canonical::MAX_SAFE_INTEGER);
    if (-max..=max).contains(&v) {
        Value::Int(i64::try_from(v).unwrap_or(0))
    } else {
        Value::String(v.to_string())
    }
}

fn opt<T: ToString>(v: &Option<T>) -> Value {
    v.as_ref()
        .map_or(Value::Null, |x| Value::String(x.to_string()))
}

fn s(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

fn fact_value(f: &Fact) -> Value {
    match f {
        Fact::Shift {
            event_id,
            shift_id,
            store,
            device,
            cashier,
            opening_float,
        } => obj([
            ("t", s("shift")),
            ("event", s(event_id)),
            ("shift", s(shift_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("cashier", s(cashier)),
            ("opening_float", int((*opening_float).into())),
        ]),
        Fact::ShiftClose {
            event_id,
            shift_id,
            store,
            expected_cash,
            counted_cash,
        } => obj([
            ("t", s("shift_close")),
            ("event", s(event_id)),
            ("shift", s(shift_id)),
            ("store", s(store)),
            ("expected_cash", int((*expected_cash).into())),
            ("counted_cash", int((*counted_cash).into())),
        ]),
        Fact::Sale {
            event_id,
            sale_id,
            store,
            device,
            shift_id,
            customer,
            total,
            tax,
            change,
            fiscal,
            hlc,
        } => obj([
            ("t", s("sale")),
            ("event", s(event_id)),
            ("sale", s(sale_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("shift", opt(shift_id)),
            ("customer", opt(customer)),
            ("total", int((*total).into())),
            ("tax", int((*tax).into())),
            ("change", int((*change).into())),
            (
                "fiscal",
                fiscal
                    .as_ref()
                    .map_or(Value::Null, |(a, b)| s(format!("{a}/{b}"))),
            ),
            ("hlc", opt(hlc)),
        ]),
        Fact::SaleLine {
            event_id,
            line,
            sale_id,
            store,
            product,
            qty_milli,
            total,
            tax,
            unit_price,
            overridden,
        } => obj([
            ("t", s("line")),
            ("event", s(event_id)),
            ("line", int((*line).into())),
            ("sale", s(sale_id)),
            ("store", s(store)),
            ("product", s(product)),
            ("qty_milli", int((*qty_milli).into())),
            ("total", int((*total).into())),
            ("tax", int((*tax).into())),
            (
                "unit_price",
                unit_price.map_or(Value::Null, |p| int(p.into())),
            ),
            ("overridden", Value::Bool(*overridden)),
        ]),
        Fact::Payment {
            event_id,
            idx,
            payment_id,
            sale_id,
            store,
            method,
            amount,
        } => obj([
            ("t", s("payment")),
            ("event", s(event_id)),
            ("idx", int((*idx).into())),
            ("payment", opt(payment_id)),
            ("sale", s(sale_id)),
            ("store", s(store)),
            ("method", s(method_name(*method))),
            ("amount", int((*amount).into())),
        ]),
        Fact::Void {
            event_id,
            sale_id,
            store,
        } => obj([
            ("t", s("void")),
            ("event", s(event_id)),
            ("sale", s(sale_id)),
            ("store", s(store)),
        ]),
        Fact::Debt {
            event_id,
            debt_id,
            store,
            customer,
            amount,
            sale_id,
        } => obj([
            ("t", s("debt")),
            ("event", s(event_id)),
            ("debt", s(debt_id)),
            ("store", s(store)),
            ("customer", s(customer)),
            ("amount", int((*amount).into())),
            ("sale", opt(sale_id)),
        ]),
        Fact::DebtPayment {
            event_id,
            payment_id,
            debt_id,
            store,
            customer,
            amount,
        } => obj([
            ("t", s("debt_payment")),
            ("event", s(event_id)),
            ("payment", s(payment_id)),
            ("debt", s(debt_id)),
            ("store", s(store)),
            ("customer", s(customer)),
            ("amount", int((*amount).into())),
        ]),
        Fact::StockMove {
            event_id,
            store,
            product,
            delta_milli,
        } => obj([
            ("t", s("stock")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("product", s(product)),
            ("delta_milli", int((*delta_milli).into())),
        ]),
        Fact::Customer {
            customer_id,
            event_id,
            hlc,
            device,
            body,
        } => obj([
            ("t", s("customer")),
            ("customer", s(customer_id)),
            ("event", s(event_id)),
            ("hlc", s(hlc)),
            ("device", s(device)),
            ("body", s(body)),
        ]),
        Fact::CatalogItem {
            store,
            product,
            event_id,
            hub_seq,
            body,
        } => obj([
            ("t", s("catalog")),
            ("store", s(store)),
            ("product", s(product)),
            ("event", s(event_id)),
            ("hub_seq", int((*hub_seq).into())),
            ("body", s(body)),
        ]),
        Fact::Price {
            store,
            product,
            event_id,
            hub_seq,
            unit_price,
        } => obj([
            ("t", s("price")),
            ("store", s(store)),
            ("product", s(product)),
            ("event", s(event_id)),
            ("hub_seq", int((*hub_seq).into())),
            ("unit_price", int((*unit_price).into())),
        ]),
        Fact::FiscalBlock {
            event_id,
            release,
            grant_id,
            store,
            device,
            series,
            first,
            last,
            expires_ms,
        } => obj([
            (
                "t",
                s(if *release {
                    "fiscal_release"
                } else {
                    "fiscal_grant"
                }),
            ),
            ("event", s(event_id)),
            ("grant", s(grant_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("series", s(series)),
            ("first", int((*first).into())),
            ("last", int((*last).into())),
            (
                "expires_ms",
                expires_ms.map_or(Value::Null, |e| int(e.into())),
            ),
        ]),
        Fact::Escrow {
            event_id,
            release,
            grant_id,
            store,
            device,
            product,
            qty_milli,
            expires_ms,
        } => obj([
            (
                "t",
                s(if *release {
                    "escrow_release"
                } else {
                    "escrow_grant"
                }),
            ),
            ("event", s(event_id)),
            ("grant", s(grant_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("product", s(product)),
            ("qty_milli", int((*qty_milli).into())),
            (
                "expires_ms",
                expires_ms.map_or(Value::Null, |e| int(e.into())),
            ),
        ]),
        Fact::Oversell {
            event_id,
            line,
            store,
            device,
            sale_id,
            product,
            beyond_milli,
        } => obj([
            ("t", s("oversell")),
            ("event", s(event_id)),
            ("line", int((*line).into())),
            ("store", s(store)),
            ("device", s(device)),
            ("sale", s(sale_id)),
            ("product", s(product)),
            ("beyond_milli", int((*beyond_milli).into())),
        ]),
        Fact::ReturnLine {
            event_id,
            line,
            store,
            sale_id,
            sale_line,
            product,
            qty_milli,
            damaged,
        } => obj([
            ("t", s("return_line")),
            ("event", s(event_id)),
            ("line", int((*line).into())),
            ("store", s(store)),
            ("sale", s(sale_id)),
            ("sale_line", int((*sale_line).into())),
            ("product", s(product)),
            ("qty_milli", int((*qty_milli).into())),
            ("damaged", Value::Bool(*damaged)),
        ]),
        Fact::CreditNote {
            event_id,
            store,
            device,
            sale_id,
            series,
            number,
        } => obj([
            ("t", s("credit_note")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("sale", opt(sale_id)),
            ("series", s(series)),
            ("number", s(number)),
        ]),
        Fact::PriceHistory {
            event_id,
            store,
            product,
            hub_seq,
            hlc,
            unit_price,
        } => obj([
            ("t", s("price_history")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("product", s(product)),
            ("hub_seq", int((*hub_seq).into())),
            ("hlc", s(hlc)),
            ("unit_price", int((*unit_price).into())),
        ]),
        Fact::Resolution {
            event_id,
            store,
            conflict_id,
            hub_seq,
            strategy,
            winner,
            resolved_by,
            note,
            covers,
        } => obj([
            ("t", s("resolution")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("conflict", s(conflict_id)),
            ("hub_seq", int((*hub_seq).into())),
            ("strategy", s(strategy)),
            ("winner", opt(winner)),
            ("by", s(resolved_by)),
            ("note", s(note)),
            ("covers", Value::Array(covers.iter().map(s).collect())),
        ]),
        Fact::StoreCredit {
            event_id,
            idx,
            store,
            customer,
            amount,
            sale_id,
        } => obj([
            ("t", s("store_credit")),
            ("event", s(event_id)),
            ("idx", int((*idx).into())),
            ("store", s(store)),
            ("customer", s(customer)),
            ("amount", int((*amount).into())),
            ("sale", opt(sale_id)),
        ]),
        Fact::UnlinkedReturn {
            event_id,
            line,
            store,
            device,
            sale_id,
            reference,
            product,
            qty_milli,
            damaged,
        } => obj([
            ("t", s("unlinked_return")),
            ("event", s(event_id)),
            ("line", int((*line).into())),
            ("store", s(store)),
            ("device", s(device)),
            ("sale", opt(sale_id)),
            ("reference", s(reference)),
            ("product", s(product)),
            ("qty_milli", int((*qty_milli).into())),
            ("damaged", Value::Bool(*damaged)),
        ]),
        Fact::DrawerOpen {
            event_id,
            store,
            device,
            shift_id,
            reason,
            approved_by,
        } => obj([
            ("t", s("drawer_open")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("shift", s(shift_id)),
            ("reason", s(reason)),
            ("approved_by", opt(approved_by)),
        ]),
        Fact::Approval {
            event_id,
            idx,
            store,
            device,
            action,
            staff_id,
            name,
            role,
        } => obj([
            ("t", s("approval")),
            ("event", s(event_id)),
            ("idx", int((*idx).into())),
            ("store", s(store)),
            ("device", s(device)),
            ("action", s(action)),
            ("staff", s(staff_id)),
            ("name", s(name)),
            ("role", s(role)),
        ]),
        Fact::ForeignKind {
            event_id,
            store,
            device,
            kind,
        } => obj([
            ("t", s("foreign_kind")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("kind", s(kind)),
        ]),
    }
}

#[cfg(test)]
pub(crate) mod tests;
