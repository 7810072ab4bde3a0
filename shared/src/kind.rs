//! The catalogue of event kinds and their typed bodies.
//!
//! Every change in Caja is one of these kinds. Bodies carry money as integer
//! minor units ([`Money`]) and quantities as thousandths ([`QtyMilli`]); there is
//! no float anywhere. Decoding is strict: an unknown kind or an unknown field is a
//! typed error naming the field, never a panic and never silently dropped. How a
//! node or the hub reacts to that error is in DESIGN.md "Versions": the hub answers
//! 400 `unknown_kind`/`invalid`; a node keeps the event unapplied and reports
//! "update needed".
//!
//! Registers write the first group of kinds; the hub writes the second group into
//! each store's hub chain (catalog, prices, fiscal blocks, escrow grants,
//! resolutions). Releases of fiscal numbers and escrow quota are register events.

use serde::{Deserialize, Serialize};

use crate::canonical::{CanonicalError, Value};
use crate::ids::{
    ConflictId, CustomerId, DebtId, DeviceId, EventId, GrantId, IntentId, MovementId, PaymentId,
    RequestId, ReturnId, SaleId, ShiftId, Sku, StaffId,
};
use crate::money::{Money, QtyMilli, TaxRateBp};
use crate::pin::PinHash;

mod drawer;
mod fiscal;
pub use drawer::{DrawerHow, SaleDrawerOpened};
pub use fiscal::{FiscalDocumentIssued, IssuedDocument};

/// Why a body does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A field this version does not know (a newer writer, or garbage).
    #[error("unknown field {path}")]
    UnknownField {
        /// JSON path of the field inside the body, e.g. `lines[0].colour`.
        path: String,
    },
    /// A field missing, of the wrong type or out of range.
    #[error("{path}: {reason}")]
    Invalid {
        /// JSON path inside the body (`""` for the body itself).
        path: String,
        /// What is wrong, for a person.
        reason: String,
    },
}

impl BodyError {
    /// The JSON path of the offending field inside the body.
    pub fn path(&self) -> &str {
        match self {
            BodyError::UnknownField { path } | BodyError::Invalid { path, .. } => path,
        }
    }
}

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $kind:ident ),* $(,)?) => {
        /// The name of an event kind, as written in the envelope's `kind`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $( $(#[$doc])* $kind, )*
        }

        impl EventKind {
            /// Every kind this version knows.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$kind),*];

            /// The wire name, e.g. `"SaleCreated"`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( EventKind::$kind => stringify!($kind), )*
                }
            }

            /// Looks up a wire name; `None` for a kind this version does not know.
            pub fn parse(s: &str) -> Option<EventKind> {
                match s {
                    $( stringify!($kind) => Some(EventKind::$kind), )*
                    _ => None,
                }
            }
        }

        /// A typed event body, one variant per kind.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum EventBody {
            $( $(#[$doc])* $kind($kind), )*
        }

        impl EventBody {
            /// The kind of this body.
            pub fn kind(&self) -> EventKind {
                match self {
                    $( EventBody::$kind(_) => EventKind::$kind, )*
                }
            }

            /// Decodes a body of the given kind, strictly.
            pub fn decode(kind: EventKind, body: &Value) -> Result<EventBody, BodyError> {
                match kind {
                    $( EventKind::$kind => decode_as::<$kind>(body).map(EventBody::$kind), )*
                }
            }

            /// The body as a canonical-JSON value.
            pub fn to_value(&self) -> Result<Value, CanonicalError> {
                match self {
                    $( EventBody::$kind(b) => Value::from_typed(b), )*
                }
            }
        }

        $(
            impl From<$kind> for EventBody {
                fn from(b: $kind) -> EventBody {
                    EventBody::$kind(b)
                }
            }
        )*
    };
}

event_kinds! {
    /// A cashier opened a shift with a cash float.
    ShiftOpened,
    /// A shift was closed with its cash count (the Z report).
    ShiftClosed,
    /// A sale with its lines and payments.
    SaleCreated,
    /// A sale was voided.
    SaleVoided,
    /// A payment added to an existing sale (e.g. a card confirmed later).
    PaymentTaken,
    /// Store credit (fiado) was extended to a customer.
    DebtOpened,
    /// A customer paid (part of) a debt.
    DebtPaymentTaken,
    /// Stock arrived at the store.
    StockReceived,
    /// Stock was counted; the difference is a signed delta.
    StockCounted,
    /// A customer was created or changed.
    CustomerUpserted,
    /// Head office created or changed a catalog item (hub event).
    CatalogItemUpserted,
    /// Head office set a price (hub event).
    PriceSet,
    /// The hub granted a register a block of fiscal numbers (hub event).
    FiscalRangeGranted,
    /// A register gave back fiscal numbers it will not use.
    FiscalNumbersReleased,
    /// The hub granted a register a stock quota (hub event).
    EscrowGranted,
    /// A register gave back (part of) a stock quota.
    EscrowReleased,
    /// An operator or a strategy resolved a conflict (hub event).
    ConflictResolved,
    /// Head office created or changed a member of staff (hub event).
    StaffUpserted,
    /// Cash paid in, paid out or dropped to the safe during a shift.
    CashMoved,
    /// (Part of) an earlier sale returned, with its refund and credit note.
    SaleReturned,
    /// A payment intent was created or moved to a new state by the payment
    /// provider's confirmation (hub event).
    PaymentIntentUpdated,
    /// The cash drawer was opened without a sale (a supervisor approves).
    DrawerOpened,
    /// The tax authority accepted (possibly with conditions) a fiscal
    /// document the hub submitted for a register (hub event).
    FiscalDocumentAccepted,
    /// The tax authority rejected a fiscal document the hub submitted
    /// (hub event); head office must act (a `manual` conflict).
    FiscalDocumentRejected,
    /// A register signed an e-CF (and its RFCE) for a sale or a return; the
    /// signed bytes travel beside the event in the push.
    FiscalDocumentIssued,
    /// The drawer of a cash sale or refund opened apart from its receipt
    /// (the real-time pulse, or the key when the printer was unreachable).
    SaleDrawerOpened,
}

impl EventBody {
    /// Every supervisor approval the event carries (a sale's discount and
    /// price overrides, a void, a return, a paid-out, a drawer opening, a
    /// close of another person's shift), in body order.
    pub fn approvals(&self) -> Vec<&Approval> {
        match self {
            EventBody::SaleCreated(b) => b
                .approval
                .iter()
                .chain(
                    b.lines
                        .iter()
                        .filter_map(|l| l.price_override.as_ref()?.approval.as_ref()),
                )
                .collect(),
            EventBody::SaleVoided(b) => b.approval.iter().collect(),
            EventBody::SaleReturned(b) => b.approval.iter().collect(),
            EventBody::CashMoved(b) => b.approval.iter().collect(),
            EventBody::DrawerOpened(b) => b.approval.iter().collect(),
            EventBody::ShiftClosed(b) => b.approval.iter().collect(),
            _ => Vec::new(),
        }
    }
}

fn decode_as<T: for<'de> Deserialize<'de>>(body: &Value) -> Result<T, BodyError> {
    if body.as_object().is_none() {
        return Err(BodyError::Invalid {
            path: String::new(),
            reason: "the body must be an object".into(),
        });
    }
    serde_path_to_error::deserialize(body.to_serde()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let msg = e.inner().to_string();
        match unknown_field_name(&msg) {
            // serde_path_to_error's path already ends at the unknown key.
            Some(name) => BodyError::UnknownField {
                path: if path.is_empty() {
                    name.to_owned()
                } else {
                    path
                },
            },
            None => BodyError::Invalid { path, reason: msg },
        }
    })
}

/// serde reports unknown fields as "unknown field `name`, expected …".
fn unknown_field_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// How a payment was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Cash; change may be given.
    Cash,
    /// Card; carries the terminal's reference.
    Card,
    /// Bank transfer or QR payment; carries a reference.
    Transfer,
    /// Store credit (fiado) to a named customer.
    Fiado,
    /// The customer's store-credit balance (credit given by earlier returns
    /// refunded as store credit); never below zero at the register.
    StoreCredit,
}

/// How an item is sold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoldBy {
    /// By the piece; `qty_milli` is thousandths of a piece (1000 = one).
    Unit,
    /// By weight; `qty_milli` is grams, prices are per kilogram.
    Weight,
}

/// What happens when a register sells beyond its stock quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockPolicy {
    /// The sale is refused (default for stock-tracked items).
    Block,
    /// The sale goes through and an oversell alert is raised.
    Warn,
    /// Not stock-tracked (services).
    Untracked,
}

/// A fiscal number used by a sale, e.g. series `B02`, number `B0200000051`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiscalRef {
    /// The series (prefix), e.g. `B02`.
    pub series: String,
    /// The full formatted number, e.g. `B0200000051`.
    pub number: String,
    /// The series' "valid until" date (`yyyy-mm-dd`, store time), printed on
    /// the receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// The buyer's RNC or cédula (digits only), required by tax-credit
    /// documents (`B01`, `E31`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_tax_id: Option<String>,
    /// The buyer's name, given with the buyer's tax id (e-CF require it
    /// beside the RNC: `E31`, an `E32` of RD$250,000 or more, credit notes
    /// modifying them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_name: Option<String>,
    /// For a credit note (`B04`): the fiscal number of the document it
    /// modifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifies: Option<String>,
}

/// One line of a sale. `total` and `tax` are the results of
/// [`crate::money`]'s rules, recorded as the register computed them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleLine {
    /// Product code.
    pub product: Sku,
    /// Name as printed on the receipt.
    pub name: String,
    /// Quantity in thousandths (grams for weighed items).
    pub qty_milli: QtyMilli,
    /// Shelf price per unit or per kg, tax included.
    pub unit_price: Money,
    /// Tax rate in basis points.
    pub tax_bp: TaxRateBp,
    /// Discount on this line, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Money>,
    /// Line total after discount, tax included.
    pub total: Money,
    /// Tax contained in `total`.
    pub tax: Money,
    /// The part of `qty_milli` beyond the register's stock quota when it was
    /// sold (a `warn` product: allowed, flagged, alerted at the hub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beyond_quota_milli: Option<QtyMilli>,
    /// Present when the line was sold at a price other than the shelf price
    /// (`unit_price` is then the price charged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_override: Option<PriceOverride>,
}

/// A line sold at a price other than the shelf price: what the shelf price
/// was and who approved (the approval's `action` is `price_override`; when is
/// the event's HLC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    /// The shelf price the register knew, per unit or per kg.
    pub shelf_price: Money,
    /// The supervisor's approval (absent only on a register without staff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// One payment of a sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// How it was paid.
    pub method: PaymentMethod,
    /// Amount tendered (cash) or charged.
    pub amount: Money,
    /// Card or transfer reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A role at the register, in increasing rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sells.
    Cashier,
    /// Approves voids, returns, paid-outs, large discounts.
    Supervisor,
    /// Everything a supervisor does, and closes others' shifts.
    Manager,
}

/// Who approved an action that needs a higher role, recorded in the event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver.
    pub staff_id: StaffId,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// What was approved, e.g. `void`, `return`, `paid_out`, `discount`.
    pub action: String,
}

/// Body of [`EventKind::ShiftOpened`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftOpened {
    /// The new shift.
    pub shift_id: ShiftId,
    /// Who opened it.
    pub cashier: String,
    /// Cash in the drawer at the start.
    pub opening_float: Money,
    /// The signed-in member of staff, when the register has staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<StaffId>,
}

/// Body of [`EventKind::ShiftClosed`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftClosed {
    /// The shift being closed.
    pub shift_id: ShiftId,
    /// Who closed it.
    pub cashier: String,
    /// Cash expected in the drawer, computed from the shift's events.
    pub expected_cash: Money,
    /// Cash counted by the cashier.
    pub counted_cash: Money,
    /// Who closed it when the register has staff (a supervisor for another
    /// person's shift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// Body of [`EventKind::SaleCreated`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleCreated {
    /// The sale.
    pub sale_id: SaleId,
    /// Who sold.
    pub cashier: String,
    /// The shift (also a causal dependency of the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_id: Option<ShiftId>,
    /// The customer, required for fiado.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    /// The fiscal number used, consumed in the same transaction as the sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiscal: Option<FiscalRef>,
    /// The lines.
    pub lines: Vec<SaleLine>,
    /// Sum of line totals.
    pub total: Money,
    /// Sum of line taxes.
    pub tax: Money,
    /// Payments; their sum minus `change` equals `total`.
    pub payments: Vec<Payment>,
    /// Cash given back.
    pub change: Money,
    /// A supervisor's approval (a discount beyond the register's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// Body of [`EventKind::SaleVoided`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleVoided {
    /// The voided sale (also a causal dependency).
    pub sale_id: SaleId,
    /// Why, required.
    pub reason: String,
    /// Supervisor who approved, when approval was required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The approval, when the register has staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// Body of [`EventKind::PaymentTaken`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentTaken {
    /// The payment.
    pub payment_id: PaymentId,
    /// The sale it pays.
    pub sale_id: SaleId,
    /// How.
    pub method: PaymentMethod,
    /// How much.
    pub amount: Money,
    /// Card or transfer reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Body of [`EventKind::DebtOpened`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebtOpened {
    /// The debt.
    pub debt_id: DebtId,
    /// Who owes.
    pub customer: CustomerId,
    /// The sale that opened it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<SaleId>,
    /// Amount owed.
    pub amount: Money,
}

/// Body of [`EventKind::DebtPaymentTaken`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebtPaymentTaken {
    /// The payment.
    pub payment_id: PaymentId,
    /// The debt paid (also a causal dependency).
    pub debt_id: DebtId,
    /// Who paid.
    pub customer: CustomerId,
    /// How.
    pub method: PaymentMethod,
    /// How much.
    pub amount: Money,
}

/// Body of [`EventKind::StockReceived`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockReceived {
    /// Product.
    pub product: Sku,
    /// Quantity received (positive).
    pub qty_milli: QtyMilli,
    /// Supplier invoice or note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Body of [`EventKind::StockCounted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockCounted {
    /// Product.
    pub product: Sku,
    /// What was on the shelf.
    pub counted_milli: QtyMilli,
    /// Counted minus what the register expected: the signed delta applied.
    pub delta_milli: QtyMilli,
}

/// Body of [`EventKind::CustomerUpserted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerUpserted {
    /// The customer.
    pub customer_id: CustomerId,
    /// Name.
    pub name: String,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Tax id (RNC or cédula).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    /// Most fiado the customer may owe.
    pub credit_limit: Money,
}

/// Body of [`EventKind::CatalogItemUpserted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItemUpserted {
    /// Product code.
    pub product: Sku,
    /// Name.
    pub name: String,
    /// Barcodes that scan to this product.
    #[serde(default)]
    pub barcodes: Vec<Sku>,
    /// Tax rate.
    pub tax_bp: TaxRateBp,
    /// By the piece or by weight.
    pub sold_by: SoldBy,
    /// Escrow policy.
    pub policy: StockPolicy,
}

/// Body of [`EventKind::PriceSet`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSet {
    /// Product code.
    pub product: Sku,
    /// Shelf price per unit or per kg, tax included.
    pub unit_price: Money,
}

/// Body of [`EventKind::FiscalRangeGranted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiscalRangeGranted {
    /// The grant.
    pub grant_id: GrantId,
    /// The register it is for.
    pub device: DeviceId,
    /// The register's request.
    pub request_id: RequestId,
    /// Series prefix, e.g. `B02`.
    pub series: String,
    /// Digits after the prefix (8 for NCF, 10 for e-CF).
    pub digits: u8,
    /// First number of the block, inclusive.
    pub first: u64,
    /// Last number of the block, inclusive.
    pub last: u64,
    /// The block is unusable after this time (UTC ms).
    pub expires_ms: i64,
    /// The series' "valid until" date (`yyyy-mm-dd`, store time), printed on
    /// receipts.
    pub valid_until: String,
}

/// Body of [`EventKind::FiscalNumbersReleased`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiscalNumbersReleased {
    /// The grant the numbers came from.
    pub grant_id: GrantId,
    /// Series prefix.
    pub series: String,
    /// First released number, inclusive.
    pub first: u64,
    /// Last released number, inclusive.
    pub last: u64,
}

/// Body of [`EventKind::EscrowGranted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowGranted {
    /// The grant.
    pub grant_id: GrantId,
    /// The register it is for.
    pub device: DeviceId,
    /// The register's request, absent for automatic grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// Product.
    pub product: Sku,
    /// Quota granted.
    pub qty_milli: QtyMilli,
    /// The quota lapses after this time (UTC ms).
    pub expires_ms: i64,
}

/// Body of [`EventKind::EscrowReleased`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowReleased {
    /// The grant.
    pub grant_id: GrantId,
    /// Product.
    pub product: Sku,
    /// Unused quota given back.
    pub qty_milli: QtyMilli,
}

/// Body of [`EventKind::ConflictResolved`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictResolved {
    /// The conflict.
    pub conflict_id: ConflictId,
    /// The named strategy (`server_wins`, `lww`, `awset`, `pn_counter`, `manual`).
    pub strategy: String,
    /// The winning event, when one candidate wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<EventId>,
    /// Who decided (an operator for `manual`, else `hub`).
    pub resolved_by: String,
    /// Why, for the auditor.
    pub note: String,
}

/// Body of [`EventKind::StaffUpserted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffUpserted {
    /// The member of staff.
    pub staff_id: StaffId,
    /// Name shown and printed.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The PIN, hashed (never in clear).
    pub pin: PinHash,
    /// Whether they may sign in.
    pub active: bool,
}

/// What kind of cash movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CashMovement {
    /// Cash put into the drawer (e.g. change from the bank).
    PaidIn,
    /// Cash taken out to pay for something (needs a supervisor).
    PaidOut,
    /// Cash moved to the safe during the shift.
    Drop,
}

/// Body of [`EventKind::CashMoved`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashMoved {
    /// The movement.
    pub movement_id: MovementId,
    /// The shift (also a dependency).
    pub shift_id: ShiftId,
    /// In, out or drop.
    pub kind: CashMovement,
    /// Amount, positive.
    pub amount: Money,
    /// Why.
    pub reason: String,
    /// The supervisor's approval, when needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// One returned line of a sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    /// Index of the line in the original sale; absent when the original was
    /// unknown to the register (the line names a product only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Product.
    pub product: Sku,
    /// Quantity returned (thousandths), at most what is left of the line.
    pub qty_milli: QtyMilli,
    /// Amount refunded for it, tax included (the line's total pro rata).
    pub total: Money,
    /// Tax in `total`.
    pub tax: Money,
    /// Damaged goods do not go back to stock.
    #[serde(default)]
    pub damaged: bool,
    /// The tax rate of `tax`, for a line whose original was unknown (a known
    /// line's rate is the sale line's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_bp: Option<TaxRateBp>,
}

/// A return whose original sale the register did not know (not synced yet,
/// or from elsewhere): what the cashier gave to find it. The hub flags it for
/// review and checks it against the sale when that arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnknownOriginal {
    /// The receipt's sale id or fiscal number, as given.
    pub reference: String,
}

/// Body of [`EventKind::SaleReturned`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleReturned {
    /// The return.
    pub return_id: ReturnId,
    /// The original sale (also a dependency when the register knows it);
    /// absent when the original was unknown and given by fiscal number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<SaleId>,
    /// The shift it happens in.
    pub shift_id: ShiftId,
    /// Who processed it.
    pub cashier: String,
    /// The lines returned.
    pub lines: Vec<ReturnLine>,
    /// Sum of line totals.
    pub total: Money,
    /// Sum of line taxes.
    pub tax: Money,
    /// How it was refunded (`store_credit`: added to the customer's
    /// store-credit balance).
    pub refund: PaymentMethod,
    /// The customer credited, for store credit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    /// The fiscal credit note (`B04`), when the register issues fiscal documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_note: Option<FiscalRef>,
    /// The supervisor's approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Set when the register did not know the original sale: the lines name
    /// products (no `line`), and the hub raises a review item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_unknown: Option<UnknownOriginal>,
}

/// Body of [`EventKind::DrawerOpened`]: the cash drawer opened without a
/// sale (the kick goes through the register's print queue).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawerOpened {
    /// The opening (a cash movement of no amount).
    pub movement_id: MovementId,
    /// The shift (also a dependency).
    pub shift_id: ShiftId,
    /// Why, required.
    pub reason: String,
    /// The supervisor's approval (absent only on a register without staff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// The state of a payment intent. Allowed moves (the hub's
/// `payments` module decides): `pending → authorized → captured → refunded`,
/// and `pending | authorized → voided | failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentState {
    /// Created; the provider has not confirmed anything yet.
    Pending,
    /// The provider authorized the amount (held on the card).
    Authorized,
    /// The provider captured the money: the sale is paid.
    Captured,
    /// The captured money was given back.
    Refunded,
    /// Cancelled before capture.
    Voided,
    /// The provider declined or the payment failed.
    Failed,
}

impl IntentState {
    /// Every state.
    pub const ALL: [IntentState; 6] = [
        IntentState::Pending,
        IntentState::Authorized,
        IntentState::Captured,
        IntentState::Refunded,
        IntentState::Voided,
        IntentState::Failed,
    ];

    /// The wire name, e.g. `"captured"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Pending => "pending",
            IntentState::Authorized => "authorized",
            IntentState::Captured => "captured",
            IntentState::Refunded => "refunded",
            IntentState::Voided => "voided",
            IntentState::Failed => "failed",
        }
    }

    /// Looks up a wire name.
    pub fn parse(s: &str) -> Option<IntentState> {
        IntentState::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Body of [`EventKind::PaymentIntentUpdated`]: the intent as it is after
/// the change (creation is the first one, in state `pending`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentIntentUpdated {
    /// The intent.
    pub intent_id: IntentId,
    /// The sale it pays.
    pub sale_id: SaleId,
    /// The register that created it.
    pub device: DeviceId,
    /// The payment provider (as configured at the hub), e.g. `azul`.
    pub provider: String,
    /// `card` or `transfer` (QR / bank transfer).
    pub method: PaymentMethod,
    /// Amount of the intent.
    pub amount: Money,
    /// The state after this change.
    pub state: IntentState,
    /// The provider's event that caused the change (absent at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_event_id: Option<String>,
    /// The authorization code the provider reported, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<String>,
    /// How much of a captured intent the provider has refunded so far, when
    /// part of it was (partial refunds; absent while nothing was refunded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<Money>,
}

/// What a fiscal document submitted to the tax authority is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FiscalDocType {
    /// A sale's invoice (e-CF `E31`, `E32`, …).
    Invoice,
    /// A return's credit note (e-CF `E34`).
    CreditNote,
    /// The cancellation of numbers that will never be issued (a written-off
    /// register's outstanding block; DGII's `ANECF`).
    Cancellation,
}

impl FiscalDocType {
    /// The wire name, e.g. `"credit_note"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FiscalDocType::Invoice => "invoice",
            FiscalDocType::CreditNote => "credit_note",
            FiscalDocType::Cancellation => "cancellation",
        }
    }

    /// Looks up a wire name.
    pub fn parse(s: &str) -> Option<FiscalDocType> {
        [
            FiscalDocType::Invoice,
            FiscalDocType::CreditNote,
            FiscalDocType::Cancellation,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One message of the tax authority about a document (a validation code and
/// its text), as it answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityMessage {
    /// The authority's code (as text: authorities mix numbers and letters).
    pub code: String,
    /// What it says.
    pub text: String,
}

/// Body of [`EventKind::FiscalDocumentAccepted`]: phase two of a fiscal
/// document, confirmed by the tax authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiscalDocumentAccepted {
    /// The document: its fiscal number (`E320000000051`), or for a
    /// cancellation its range (`E320000000010..E320000000020`).
    pub document: String,
    /// Invoice, credit note or cancellation.
    pub doc_type: FiscalDocType,
    /// The series prefix, e.g. `E32`.
    pub series: String,
    /// The register that issued it (or held the cancelled numbers).
    pub device: DeviceId,
    /// The register's event that issued it (a sale or a return); absent for
    /// a cancellation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The tax authority's gateway, e.g. `dgii`.
    pub authority: String,
    /// Accepted with conditions (DGII's `Aceptado Condicional`).
    pub conditional: bool,
    /// The authority's tracking id, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<String>,
    /// The security code printed on the receipt and carried by its QR code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_code: Option<String>,
    /// The authority's verification address for this document (the
    /// receipt's QR code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_url: Option<String>,
    /// The authority's messages (conditions, warnings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<AuthorityMessage>,
}

/// Body of [`EventKind::FiscalDocumentRejected`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiscalDocumentRejected {
    /// The document (see [`FiscalDocumentAccepted::document`]).
    pub document: String,
    /// Invoice, credit note or cancellation.
    pub doc_type: FiscalDocType,
    /// The series prefix.
    pub series: String,
    /// The register that issued it.
    pub device: DeviceId,
    /// The register's event that issued it; absent for a cancellation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The tax authority's gateway, e.g. `dgii`.
    pub authority: String,
    /// The authority's tracking id, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<String>,
    /// Why: the authority's messages.
    pub messages: Vec<AuthorityMessage>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::parse;

    #[test]
    fn kind_names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(EventKind::parse("SaleDeleted"), None);
        assert_eq!(EventKind::ALL.len(), 26);
    }

    #[test]
    fn returns_from_before_unknown_originals_decode_and_write_the_same_bytes() {
        // A SaleReturned as registers wrote it before the optional fields.
        let old = br#"{"cashier":"ana","lines":[{"line":0,"product":"X1","qty_milli":1000,"tax":0,"total":100}],"refund":"cash","return_id":"019aaf70-dbf4-7000-8000-00000000f001","sale_id":"019aaf70-dbf4-7000-8000-00000000a001","shift_id":"019aaf70-d618-7000-8000-00000000c001","tax":0,"total":100}"#;
        let v = parse(old).unwrap();
        let body = EventBody::decode(EventKind::SaleReturned, &v).unwrap();
        let EventBody::SaleReturned(r) = &body else {
            panic!("kind")
        };
        assert_eq!(
            (r.lines[0].line, r.original_unknown.as_ref()),
            (Some(0), None)
        );
        assert!(r.sale_id.is_some());
        // `damaged: false` is written (it always was); nothing else is added.
        let expected = r#"{"cashier":"ana","lines":[{"damaged":false,"line":0,"product":"X1","qty_milli":1000,"tax":0,"total":100}],"refund":"cash","return_id":"019aaf70-dbf4-7000-8000-00000000f001","sale_id":"019aaf70-dbf4-7000-8000-00000000a001","shift_id":"019aaf70-d618-7000-8000-00000000c001","tax":0,"total":100}"#;
        assert_eq!(body.to_value().unwrap().to_canonical_string(), expected);
    }

    #[test]
    fn new_bodies_decode_strictly() {
        let drawer = parse(br#"{"movement_id":"019aaf70-dbf4-7000-8000-00000000d001","shift_id":"019aaf70-d618-7000-8000-00000000c001","reason":"cambio","approval":{"staff_id":"019aaf70-dbf4-7000-8000-0000000000e1","name":"Marta","role":"supervisor","action":"drawer_open"}}"#).unwrap();
        let body = EventBody::decode(EventKind::DrawerOpened, &drawer).unwrap();
        assert_eq!(body.approvals().len(), 1);
        let extra = parse(br#"{"movement_id":"019aaf70-dbf4-7000-8000-00000000d001","shift_id":"019aaf70-d618-7000-8000-00000000c001","reason":"x","colour":1}"#).unwrap();
        assert_eq!(
            EventBody::decode(EventKind::DrawerOpened, &extra),
            Err(BodyError::UnknownField {
                path: "colour".into()
            })
        );
        let line = br#"{"sale_id":"019aaf70-dbf4-7000-8000-00000000a001","cashier":"ana","lines":[{"product":"x","name":"n","qty_milli":1000,"unit_price":90,"tax_bp":0,"total":90,"tax":0,"price_override":{"shelf_price":100,"extra":1}}],"total":90,"tax":0,"payments":[{"method":"store_credit","amount":90}],"change":0}"#;
        let err = EventBody::decode(EventKind::SaleCreated, &parse(line).unwrap()).unwrap_err();
        assert_eq!(err.path(), "lines[0].price_override.extra", "{err}");
        let ok = String::from_utf8_lossy(line).replace(r#","extra":1"#, "");
        let EventBody::SaleCreated(s) =
            EventBody::decode(EventKind::SaleCreated, &parse(ok.as_bytes()).unwrap()).unwrap()
        else {
            panic!("kind")
        };
        assert_eq!(s.payments[0].method, PaymentMethod::StoreCredit);
        assert_eq!(
            s.lines[0].price_override.as_ref().map(|o| o.shelf_price),
            Some(Money(100))
        );
    }

    #[test]
    fn fiscal_document_results_decode_strictly() {
        let body = parse(br#"{"document":"E320000000051","doc_type":"invoice","series":"E32","device":"019aaf70-d618-7000-8000-00000000d001","event_id":"019aaf70-d618-7000-8000-00000000e001","authority":"dgii","conditional":false,"security_code":"A1B2C3","verify_url":"https://fc.example/ConsultaTimbreFC?ENCF=E320000000051"}"#).unwrap();
        let EventBody::FiscalDocumentAccepted(b) =
            EventBody::decode(EventKind::FiscalDocumentAccepted, &body).unwrap()
        else {
            panic!("wrong kind");
        };
        assert_eq!(b.doc_type, FiscalDocType::Invoice);
        assert!(b.messages.is_empty());
        assert_eq!(
            EventBody::FiscalDocumentAccepted(b).to_value().unwrap(),
            body,
            "canonical round trip"
        );
        let bad = parse(br#"{"document":"E320000000051","doc_type":"receipt","series":"E32","device":"019aaf70-d618-7000-8000-00000000d001","authority":"dgii","messages":[]}"#).unwrap();
        assert_eq!(
            EventBody::decode(EventKind::FiscalDocumentRejected, &bad)
                .unwrap_err()
                .path(),
            "doc_type"
        );
        let extra = parse(br#"{"document":"E34","doc_type":"credit_note","series":"E34","device":"019aaf70-d618-7000-8000-00000000d001","authority":"dgii","messages":[{"code":"1","text":"x","level":2}]}"#).unwrap();
        assert_eq!(
            EventBody::decode(EventKind::FiscalDocumentRejected, &extra),
            Err(BodyError::UnknownField {
                path: "messages[0].level".into()
            })
        );
        for t in [
            FiscalDocType::Invoice,
            FiscalDocType::CreditNote,
            FiscalDocType::Cancellation,
        ] {
            assert_eq!(FiscalDocType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let body = parse(br#"{"shift_id":"019aaf70-d618-7000-8000-00000000c001","cashier":"ana","opening_float":1,"colour":"red"}"#).unwrap();
        assert_eq!(
            EventBody::decode(EventKind::ShiftOpened, &body),
            Err(BodyError::UnknownField {
                path: "colour".into()
            })
        );
    }

    #[test]
    fn bad_nested_field_is_named_with_its_path() {
        let body = parse(br#"{"sale_id":"019aaf70-dbf4-7000-8000-00000000a001","cashier":"ana","lines":[{"product":"x","name":"n","qty_milli":"2","unit_price":1,"tax_bp":0,"total":1,"tax":0}],"total":1,"tax":0,"payments":[],"change":0}"#).unwrap();
        let err = EventBody::decode(EventKind::SaleCreated, &body).unwrap_err();
        assert_eq!(err.path(), "lines[0].qty_milli", "{err}");
        let not_object = Value::Int(3);
        assert_eq!(
            EventBody::decode(EventKind::SaleVoided, &not_object)
                .unwrap_err()
                .path(),
            ""
        );
    }
}
