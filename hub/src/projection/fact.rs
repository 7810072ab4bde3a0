//! The projection row type: [`Fact`], one row of hub state derived from one
//! applied event, with the envelope fields it needs ([`EventMeta`], [`Origin`]),
//! [`facts`] (the facts of an event body, the only place an event kind becomes
//! rows) and the wire names of payment methods and roles.
//!
//! Architecture invariant: pure; no `crate::storage`, no SQL, no IO. The
//! lowest file of the projection: it imports no sibling, every sibling may
//! import it.

use std::collections::BTreeSet;

use caja_shared::hlc::Hlc;
use caja_shared::ids::{
    ConflictId, CustomerId, DebtId, DeviceId, EventId, GrantId, PaymentId, SaleId, ShiftId, Sku,
    StoreId,
};
use caja_shared::kind::{EventBody, PaymentMethod};

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
    /// The drawer of a cash sale or refund opened apart from its receipt
    /// (`SaleDrawerOpened`): the real-time pulse or the key.
    SaleDrawerOpen {
        /// Event.
        event_id: EventId,
        /// Store.
        store: StoreId,
        /// Register.
        device: DeviceId,
        /// The sale, or the return (`refund` says which).
        document: String,
        /// A return's cash refund (else a sale).
        refund: bool,
        /// `pulse` or `manual`.
        how: String,
        /// When the register recorded it (its clock, UTC ms).
        opened_ms: i64,
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
        EventBody::SaleDrawerOpened(b) => vec![Fact::SaleDrawerOpen {
            event_id,
            store,
            device,
            document: b
                .sale_id
                .map(|x| x.to_string())
                .or_else(|| b.return_id.map(|x| x.to_string()))
                .unwrap_or_default(),
            refund: b.sale_id.is_none() && b.return_id.is_some(),
            how: b.how.as_str().to_owned(),
            opened_ms: b.opened_ms,
        }],
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
        // A register's signed e-CF: the documents themselves are stored from
        // the push body and submitted by the outbox, not projected as facts.
        EventBody::FiscalDocumentIssued(_) => vec![],
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
