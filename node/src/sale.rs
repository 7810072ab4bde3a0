//! Building a sale: from what the cashier entered to a `SaleCreated` body.
//!
//! Pure: no SQL, no clock. The caller looks items up in the catalog it knows
//! (projection tables fed by the hub's catalog and price events), passes the
//! customer's credit standing when a payment is on fiado, and gets back either
//! the body to append or a [`SaleError`] that names the field at fault. Nothing is
//! written when this fails, so a bad sale changes nothing.
//!
//! Rules (amounts per `caja_shared::money`):
//! - at least one line, at most [`MAX_LINES`]; quantities positive; items sold by
//!   the piece in whole pieces; items sold by weight in grams;
//! - a line's discount is within `0..=gross`; a sale-level discount is spread over
//!   the lines in proportion (remainder to the last line);
//! - every payment is positive; card and transfer payments carry a reference;
//!   fiado needs a customer and fits within the customer's available credit;
//! - payments cover the total; change is given only from cash and never exceeds
//!   the cash tendered.

use std::collections::BTreeMap;

use caja_shared::ids::{CustomerId, SaleId, ShiftId, Sku};
use caja_shared::kind::{FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine, SoldBy};
use caja_shared::money::{spread_discount, LineAmounts, Money, MoneyError, QtyMilli, TaxRateBp};
use serde::{Deserialize, Serialize};

/// Most lines one sale may have.
pub const MAX_LINES: usize = 500;
/// Most payments one sale may have.
pub const MAX_PAYMENTS: usize = 10;
/// Longest card or transfer reference accepted.
pub const MAX_REFERENCE_LEN: usize = 64;

/// What the register knows of an item (from the hub's catalog and price events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogItem {
    /// Product code.
    pub sku: Sku,
    /// Name printed on the receipt.
    pub name: String,
    /// Tax rate.
    pub tax_bp: TaxRateBp,
    /// By the piece or by weight.
    pub sold_by: SoldBy,
    /// Current shelf price (per piece or per kg, tax included); `None` until the
    /// hub sets one, and such an item cannot be sold.
    pub unit_price: Option<Money>,
}

/// One line as entered: a product code (SKU or barcode) and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// SKU or barcode.
    pub code: String,
    /// Thousandths of a piece, or grams for weighed items.
    pub qty_milli: i64,
    /// Discount on this line, in centavos.
    #[serde(default)]
    pub discount: Option<i64>,
    /// A price other than the shelf price (a price override, in centavos per
    /// unit or per kg): a supervisor approves it on a register with staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<i64>,
}

/// One payment as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// How.
    pub method: PaymentMethod,
    /// Centavos tendered (cash) or charged.
    pub amount: i64,
    /// Card or transfer reference.
    #[serde(default)]
    pub reference: Option<String>,
}

/// A sale as entered by the cashier (the CLI's `sell` JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    /// The lines.
    pub lines: Vec<LineRequest>,
    /// Payments.
    pub payments: Vec<PaymentRequest>,
    /// A discount on the whole sale, spread over the lines.
    #[serde(default)]
    pub discount: Option<i64>,
    /// The customer (required for fiado).
    #[serde(default)]
    pub customer: Option<CustomerId>,
}

/// A customer's standing, for a sale with a fiado or store-credit payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditStanding {
    /// Most the customer may owe.
    pub limit: Money,
    /// What the customer owes now.
    pub balance: Money,
    /// The customer's store-credit balance (what earlier returns credited,
    /// less what sales spent), as this register knows it.
    pub store_credit: Money,
}

/// Everything else a sale needs, decided by the caller.
#[derive(Debug, Clone)]
pub struct SaleContext {
    /// The new sale's id.
    pub sale_id: SaleId,
    /// The cashier.
    pub cashier: String,
    /// The open shift.
    pub shift_id: ShiftId,
    /// The fiscal number consumed for this sale, if any.
    pub fiscal: Option<FiscalRef>,
}

/// Why a sale cannot be made. Every variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleError {
    /// No lines, or too many.
    #[error("lines: a sale needs 1 to {MAX_LINES} lines, got {0}")]
    LineCount(usize),
    /// The code is neither a SKU nor a barcode the register knows.
    #[error("{field}: unknown item {code:?}")]
    UnknownItem {
        /// `lines[i].code`.
        field: String,
        /// The code entered.
        code: String,
    },
    /// The item has no price yet.
    #[error("{field}: item {sku} has no price")]
    NoPrice {
        /// `lines[i].code`.
        field: String,
        /// The item.
        sku: Sku,
    },
    /// Quantity zero or negative.
    #[error("{field}: quantity must be positive, got {qty_milli}")]
    NonPositiveQuantity {
        /// `lines[i].qty_milli`.
        field: String,
        /// The quantity entered.
        qty_milli: i64,
    },
    /// A piece item with a fractional quantity.
    #[error("{field}: {sku} is sold by the piece; quantity must be whole pieces (multiples of 1000), got {qty_milli}")]
    FractionalPieces {
        /// `lines[i].qty_milli`.
        field: String,
        /// The item.
        sku: Sku,
        /// The quantity entered.
        qty_milli: i64,
    },
    /// A discount below zero or above what it discounts.
    #[error("{field}: discount must be between 0 and {max}, got {discount}")]
    BadDiscount {
        /// `lines[i].discount` or `discount`.
        field: String,
        /// The discount entered (centavos).
        discount: i64,
        /// The most allowed.
        max: Money,
    },
    /// No payments or too many.
    #[error("payments: a sale needs 1 to {MAX_PAYMENTS} payments, got {0}")]
    PaymentCount(usize),
    /// A payment of zero or less.
    #[error("{field}: amount must be positive, got {amount}")]
    NonPositivePayment {
        /// `payments[i].amount`.
        field: String,
        /// The amount entered.
        amount: i64,
    },
    /// Card or transfer without a usable reference.
    #[error(
        "{field}: a {method:?} payment needs a reference of 1 to {MAX_REFERENCE_LEN} characters"
    )]
    MissingReference {
        /// `payments[i].reference`.
        field: String,
        /// The method.
        method: PaymentMethod,
    },
    /// Fiado without a customer.
    #[error("customer: a fiado payment needs a customer")]
    FiadoWithoutCustomer,
    /// Store credit without a customer.
    #[error("customer: a store-credit payment needs a customer")]
    StoreCreditWithoutCustomer,
    /// Store credit beyond the customer's balance.
    #[error("payments: store credit of {requested} exceeds the customer's balance of {available}")]
    StoreCreditExceeded {
        /// Store credit in this sale.
        requested: Money,
        /// The customer's balance.
        available: Money,
    },
    /// An override price below zero.
    #[error("{field}: the price must not be negative, got {price}")]
    BadPrice {
        /// `lines[i].unit_price`.
        field: String,
        /// The price entered.
        price: i64,
    },
    /// Fiado beyond the customer's available credit.
    #[error("payments: fiado of {requested} exceeds the available credit of {available}")]
    CreditLimitExceeded {
        /// Fiado in this sale.
        requested: Money,
        /// Limit minus balance.
        available: Money,
    },
    /// Payments do not cover the total.
    #[error("payments: {paid} paid does not cover the total of {total}")]
    PaymentShort {
        /// Sum of payments.
        paid: Money,
        /// Sale total.
        total: Money,
    },
    /// More paid than the total by means that give no change.
    #[error("payments: change of {change} is more than the cash tendered ({cash})")]
    ChangeWithoutCash {
        /// The change that would be due.
        change: Money,
        /// Cash tendered.
        cash: Money,
    },
    /// An amount too large to compute.
    #[error("{field}: amount out of range")]
    Overflow {
        /// Where it overflowed.
        field: String,
    },
}

impl SaleError {
    /// The field at fault, as a JSON path into the [`SaleRequest`].
    pub fn field(&self) -> &str {
        match self {
            SaleError::LineCount(_) => "lines",
            SaleError::UnknownItem { field, .. }
            | SaleError::NoPrice { field, .. }
            | SaleError::NonPositiveQuantity { field, .. }
            | SaleError::FractionalPieces { field, .. }
            | SaleError::BadDiscount { field, .. }
            | SaleError::NonPositivePayment { field, .. }
            | SaleError::MissingReference { field, .. }
            | SaleError::BadPrice { field, .. }
            | SaleError::Overflow { field } => field,
            SaleError::PaymentCount(_)
            | SaleError::CreditLimitExceeded { .. }
            | SaleError::StoreCreditExceeded { .. }
            | SaleError::PaymentShort { .. }
            | SaleError::ChangeWithoutCash { .. } => "payments",
            SaleError::FiadoWithoutCustomer | SaleError::StoreCreditWithoutCustomer => "customer",
        }
    }
}

fn overflow(field: impl Into<String>) -> impl FnOnce(MoneyError) -> SaleError {
    let field = field.into();
    move |_| SaleError::Overflow { field }
}

/// [`overflow`] for a field of line `i`: the field's name is only written
/// when the error happens (a sale's lines are checked on every sale).
fn line_overflow(i: usize, field: &'static str) -> impl FnOnce(MoneyError) -> SaleError {
    move |_| SaleError::Overflow {
        field: format!("lines[{i}]{field}"),
    }
}

/// What a sale adds up to, beside its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleOutcome {
    /// The body to append.
    pub body: SaleCreated,
    /// Fiado extended by this sale (zero when none): the caller opens a debt.
    pub fiado: Money,
    /// Tax per rate, summed from the lines.
    pub tax_by_rate: BTreeMap<TaxRateBp, Money>,
}

/// Builds a sale. `lookup` resolves a SKU or barcode; `credit` is the customer's
/// standing (needed only when a payment is fiado).
pub fn build_sale(
    req: &SaleRequest,
    ctx: SaleContext,
    lookup: impl Fn(&str) -> Option<CatalogItem>,
    credit: Option<CreditStanding>,
) -> Result<SaleOutcome, SaleError> {
    if req.lines.is_empty() || req.lines.len() > MAX_LINES {
        return Err(SaleError::LineCount(req.lines.len()));
    }
    // Lines: item, quantity, gross, own discount.
    let mut items = Vec::with_capacity(req.lines.len());
    let mut nets = Vec::with_capacity(req.lines.len());
    for (i, line) in req.lines.iter().enumerate() {
        let item = lookup(&line.code).ok_or_else(|| SaleError::UnknownItem {
            field: format!("lines[{i}].code"),
            code: line.code.chars().take(64).collect(),
        })?;
        let shelf = item.unit_price.ok_or_else(|| SaleError::NoPrice {
            field: format!("lines[{i}].code"),
            sku: item.sku.clone(),
        })?;
        // A price other than the shelf price is an override (the caller
        // fills in the approval); the same price is no override.
        let (price, overridden) = match line.unit_price {
            Some(p) if p < 0 => {
                return Err(SaleError::BadPrice {
                    field: format!("lines[{i}].unit_price"),
                    price: p,
                })
            }
            Some(p) if p != shelf.0 => (Money(p), Some(shelf)),
            _ => (shelf, None),
        };
        if line.qty_milli <= 0 {
            return Err(SaleError::NonPositiveQuantity {
                field: format!("lines[{i}].qty_milli"),
                qty_milli: line.qty_milli,
            });
        }
        if item.sold_by == SoldBy::Unit && line.qty_milli % QtyMilli::PER_UNIT != 0 {
            return Err(SaleError::FractionalPieces {
                field: format!("lines[{i}].qty_milli"),
                sku: item.sku.clone(),
                qty_milli: line.qty_milli,
            });
        }
        let qty = QtyMilli(line.qty_milli);
        let gross =
            caja_shared::money::line_gross(price, qty).map_err(line_overflow(i, ".qty_milli"))?;
        let own = line.discount.unwrap_or(0);
        if own < 0 || own > gross.0 {
            return Err(SaleError::BadDiscount {
                field: format!("lines[{i}].discount"),
                discount: own,
                max: gross,
            });
        }
        nets.push(Money(gross.0 - own));
        items.push((item, price, qty, Money(own), overridden));
    }
    // Sale-level discount, spread over what is left of each line.
    let sale_discount = req.discount.unwrap_or(0);
    let net_sum = Money::sum(nets.iter().copied()).map_err(overflow("lines"))?;
    if sale_discount < 0 || sale_discount > net_sum.0 {
        return Err(SaleError::BadDiscount {
            field: "discount".into(),
            discount: sale_discount,
            max: net_sum,
        });
    }
    let shares =
        spread_discount(Money(sale_discount), &nets).map_err(|_| SaleError::BadDiscount {
            field: "discount".into(),
            discount: sale_discount,
            max: net_sum,
        })?;
    let mut lines = Vec::with_capacity(items.len());
    let mut amounts = Vec::with_capacity(items.len());
    for (i, ((item, price, qty, own, overridden), share)) in
        items.into_iter().zip(shares).enumerate()
    {
        let discount = own
            .checked_add(share)
            .map_err(line_overflow(i, ".discount"))?;
        let a = LineAmounts::compute(price, qty, discount, item.tax_bp)
            .map_err(line_overflow(i, ""))?;
        debug_assert!(a.total.0 >= 0 && a.tax.0 >= 0 && a.tax.0 <= a.total.0);
        amounts.push((item.tax_bp, a));
        lines.push(SaleLine {
            product: item.sku,
            name: item.name,
            qty_milli: qty,
            unit_price: price,
            tax_bp: item.tax_bp,
            discount: (discount.0 > 0).then_some(discount),
            total: a.total,
            tax: a.tax,
            beyond_quota_milli: None,
            price_override: overridden.map(|shelf_price| caja_shared::kind::PriceOverride {
                shelf_price,
                approval: None,
            }),
        });
    }
    let totals = caja_shared::money::SaleTotals::from_lines(amounts).map_err(overflow("lines"))?;

    // Payments.
    if req.payments.is_empty() || req.payments.len() > MAX_PAYMENTS {
        return Err(SaleError::PaymentCount(req.payments.len()));
    }
    let mut payments = Vec::with_capacity(req.payments.len());
    let (mut paid, mut cash, mut fiado, mut store_credit) =
        (Money::ZERO, Money::ZERO, Money::ZERO, Money::ZERO);
    for (i, p) in req.payments.iter().enumerate() {
        if p.amount <= 0 {
            return Err(SaleError::NonPositivePayment {
                field: format!("payments[{i}].amount"),
                amount: p.amount,
            });
        }
        let needs_reference = matches!(p.method, PaymentMethod::Card | PaymentMethod::Transfer);
        let reference = p
            .reference
            .as_ref()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        if let Some(r) = &reference {
            if r.chars().count() > MAX_REFERENCE_LEN || r.chars().any(char::is_control) {
                return Err(SaleError::MissingReference {
                    field: format!("payments[{i}].reference"),
                    method: p.method,
                });
            }
        }
        if needs_reference && reference.is_none() {
            return Err(SaleError::MissingReference {
                field: format!("payments[{i}].reference"),
                method: p.method,
            });
        }
        let amount = Money(p.amount);
        let field = format!("payments[{i}].amount");
        paid = paid.checked_add(amount).map_err(overflow(field.clone()))?;
        match p.method {
            PaymentMethod::Cash => cash = cash.checked_add(amount).map_err(overflow(field))?,
            PaymentMethod::Fiado => fiado = fiado.checked_add(amount).map_err(overflow(field))?,
            PaymentMethod::StoreCredit => {
                store_credit = store_credit.checked_add(amount).map_err(overflow(field))?;
            }
            PaymentMethod::Card | PaymentMethod::Transfer => {}
        }
        payments.push(Payment {
            method: p.method,
            amount,
            reference: if needs_reference { reference } else { None },
        });
    }
    if paid.0 < totals.total.0 {
        return Err(SaleError::PaymentShort {
            paid,
            total: totals.total,
        });
    }
    let change = Money(paid.0 - totals.total.0);
    if change.0 > cash.0 {
        return Err(SaleError::ChangeWithoutCash { change, cash });
    }
    if fiado.0 > 0 {
        if req.customer.is_none() {
            return Err(SaleError::FiadoWithoutCustomer);
        }
        let standing = credit.unwrap_or(CreditStanding {
            limit: Money::ZERO,
            balance: Money::ZERO,
            store_credit: Money::ZERO,
        });
        let available = Money(standing.limit.0.saturating_sub(standing.balance.0).max(0));
        if fiado.0 > available.0 {
            return Err(SaleError::CreditLimitExceeded {
                requested: fiado,
                available,
            });
        }
    }
    if store_credit.0 > 0 {
        if req.customer.is_none() {
            return Err(SaleError::StoreCreditWithoutCustomer);
        }
        let available = credit.map_or(Money::ZERO, |c| Money(c.store_credit.0.max(0)));
        if store_credit.0 > available.0 {
            return Err(SaleError::StoreCreditExceeded {
                requested: store_credit,
                available,
            });
        }
    }
    let body = SaleCreated {
        sale_id: ctx.sale_id,
        cashier: ctx.cashier,
        shift_id: Some(ctx.shift_id),
        customer: req.customer,
        fiscal: ctx.fiscal,
        lines,
        total: totals.total,
        tax: totals.tax,
        payments,
        change,
        approval: None,
    };
    debug_assert_eq!(
        Money::sum(body.payments.iter().map(|p| p.amount)).map(|p| p.0 - body.change.0),
        Ok(body.total.0)
    );
    Ok(SaleOutcome {
        body,
        fiado,
        tax_by_rate: totals.tax_by_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn catalog(code: &str) -> Option<CatalogItem> {
        let item = |sku: &str, name: &str, bp: u16, sold_by, price| CatalogItem {
            sku: sku.parse().expect("sku"),
            name: name.into(),
            tax_bp: TaxRateBp::new(bp).expect("bp"),
            sold_by,
            unit_price: price,
        };
        match code {
            "7501234567890" | "ARROZ" => Some(item(
                "7501234567890",
                "Arroz Selecto 1kg",
                1800,
                SoldBy::Unit,
                Some(Money(6500)),
            )),
            "2000000000017" => Some(item(
                "2000000000017",
                "Queso de freír",
                0,
                SoldBy::Weight,
                Some(Money(38000)),
            )),
            "NOPRICE" => Some(item("NOPRICE", "Sin precio", 1800, SoldBy::Unit, None)),
            _ => None,
        }
    }

    fn ctx() -> SaleContext {
        SaleContext {
            sale_id: "019aaf70-dbf4-7000-8000-00000000a001".parse().expect("id"),
            cashier: "ana".into(),
            shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
            fiscal: None,
        }
    }

    fn line(code: &str, qty: i64) -> LineRequest {
        LineRequest {
            code: code.into(),
            qty_milli: qty,
            discount: None,
            unit_price: None,
        }
    }

    fn pay(method: PaymentMethod, amount: i64) -> PaymentRequest {
        PaymentRequest {
            method,
            amount,
            reference: matches!(method, PaymentMethod::Card | PaymentMethod::Transfer)
                .then(|| "REF123".into()),
        }
    }

    fn req(lines: Vec<LineRequest>, payments: Vec<PaymentRequest>) -> SaleRequest {
        SaleRequest {
            lines,
            payments,
            discount: None,
            customer: None,
        }
    }

    #[test]
    fn the_vector_sale_adds_up_like_the_vector() {
        // The SaleCreated of vectors/event_chain.json: 2 × rice + 455 g of cheese.
        let r = req(
            vec![line("ARROZ", 2000), line("2000000000017", 455)],
            vec![pay(PaymentMethod::Cash, 40000)],
        );
        let out = build_sale(&r, ctx(), catalog, None).expect("valid sale");
        assert_eq!(out.body.total, Money(30290));
        assert_eq!(out.body.tax, Money(1983));
        assert_eq!(out.body.change, Money(9710));
        assert_eq!(out.body.lines[0].product.as_str(), "7501234567890");
        assert_eq!(out.body.lines[1].total, Money(17290));
        assert_eq!(out.fiado, Money::ZERO);
    }

    #[test]
    fn every_invalid_sale_names_its_field() {
        let cases: Vec<(SaleRequest, &str)> = vec![
            (req(vec![], vec![pay(PaymentMethod::Cash, 1)]), "lines"),
            (
                req(vec![line("NOPE", 1000)], vec![pay(PaymentMethod::Cash, 1)]),
                "lines[0].code",
            ),
            (
                req(
                    vec![line("NOPRICE", 1000)],
                    vec![pay(PaymentMethod::Cash, 1)],
                ),
                "lines[0].code",
            ),
            (
                req(
                    vec![line("ARROZ", 1000), line("ARROZ", -1000)],
                    vec![pay(PaymentMethod::Cash, 1)],
                ),
                "lines[1].qty_milli",
            ),
            (
                req(
                    vec![line("ARROZ", 1500)],
                    vec![pay(PaymentMethod::Cash, 100000)],
                ),
                "lines[0].qty_milli",
            ),
            (
                req(
                    vec![LineRequest {
                        discount: Some(6501),
                        unit_price: None,
                        ..line("ARROZ", 1000)
                    }],
                    vec![pay(PaymentMethod::Cash, 100000)],
                ),
                "lines[0].discount",
            ),
            (req(vec![line("ARROZ", 1000)], vec![]), "payments"),
            (
                req(vec![line("ARROZ", 1000)], vec![pay(PaymentMethod::Cash, 0)]),
                "payments[0].amount",
            ),
            (
                req(
                    vec![line("ARROZ", 1000)],
                    vec![PaymentRequest {
                        reference: None,
                        ..pay(PaymentMethod::Card, 6500)
                    }],
                ),
                "payments[0].reference",
            ),
            (
                req(
                    vec![line("ARROZ", 1000)],
                    vec![pay(PaymentMethod::Cash, 6499)],
                ),
                "payments",
            ),
            (
                req(
                    vec![line("ARROZ", 1000)],
                    vec![pay(PaymentMethod::Card, 7000)],
                ),
                "payments",
            ),
            (
                req(
                    vec![line("ARROZ", 1000)],
                    vec![pay(PaymentMethod::Fiado, 6500)],
                ),
                "customer",
            ),
        ];
        for (r, field) in cases {
            let err = build_sale(&r, ctx(), catalog, None).expect_err(field);
            assert_eq!(err.field(), field, "{err}");
        }
        let mut sale_discount = req(vec![line("ARROZ", 1000)], vec![pay(PaymentMethod::Cash, 1)]);
        sale_discount.discount = Some(-1);
        assert_eq!(
            build_sale(&sale_discount, ctx(), catalog, None)
                .expect_err("negative")
                .field(),
            "discount"
        );
    }

    #[test]
    fn fiado_respects_the_credit_limit() {
        let mut r = req(
            vec![line("ARROZ", 1000)],
            vec![pay(PaymentMethod::Fiado, 6500)],
        );
        r.customer = Some("019aaf70-dbf4-7000-8000-0000000c0001".parse().expect("id"));
        let tight = CreditStanding {
            limit: Money(10000),
            balance: Money(4000),
            store_credit: Money::ZERO,
        };
        assert_eq!(
            build_sale(&r, ctx(), catalog, Some(tight)),
            Err(SaleError::CreditLimitExceeded {
                requested: Money(6500),
                available: Money(6000)
            })
        );
        let room = CreditStanding {
            limit: Money(10500),
            balance: Money(4000),
            store_credit: Money::ZERO,
        };
        let out = build_sale(&r, ctx(), catalog, Some(room)).expect("fits");
        assert_eq!(out.fiado, Money(6500));
        assert_eq!(out.body.change, Money::ZERO);
    }

    #[test]
    fn split_payment_gives_change_only_from_cash() {
        let r = req(
            vec![line("ARROZ", 3000)],
            vec![
                pay(PaymentMethod::Card, 10000),
                pay(PaymentMethod::Cash, 10000),
            ],
        );
        let out = build_sale(&r, ctx(), catalog, None).expect("valid");
        assert_eq!(out.body.total, Money(19500));
        assert_eq!(out.body.change, Money(500));
    }

    #[test]
    fn an_override_price_is_charged_and_records_the_shelf_price() {
        let mut r = req(
            vec![LineRequest {
                unit_price: Some(6000),
                ..line("ARROZ", 2000)
            }],
            vec![pay(PaymentMethod::Cash, 20000)],
        );
        let out = build_sale(&r, ctx(), catalog, None).expect("override");
        let l = &out.body.lines[0];
        assert_eq!((l.unit_price, l.total), (Money(6000), Money(12000)));
        let o = l.price_override.as_ref().expect("flagged");
        assert_eq!((o.shelf_price, o.approval.as_ref()), (Money(6500), None));
        // The shelf price itself is no override.
        r.lines[0].unit_price = Some(6500);
        let out = build_sale(&r, ctx(), catalog, None).expect("same price");
        assert_eq!(out.body.lines[0].price_override, None);
        r.lines[0].unit_price = Some(-1);
        assert_eq!(
            build_sale(&r, ctx(), catalog, None)
                .expect_err("negative")
                .field(),
            "lines[0].unit_price"
        );
    }

    #[test]
    fn store_credit_needs_a_customer_and_never_goes_below_zero() {
        let mut r = req(
            vec![line("ARROZ", 1000)],
            vec![
                pay(PaymentMethod::StoreCredit, 5000),
                pay(PaymentMethod::Cash, 1500),
            ],
        );
        assert_eq!(
            build_sale(&r, ctx(), catalog, None),
            Err(SaleError::StoreCreditWithoutCustomer)
        );
        r.customer = Some("019aaf70-dbf4-7000-8000-0000000c0001".parse().expect("id"));
        let standing = |store_credit| CreditStanding {
            limit: Money::ZERO,
            balance: Money::ZERO,
            store_credit: Money(store_credit),
        };
        assert_eq!(
            build_sale(&r, ctx(), catalog, Some(standing(4999))),
            Err(SaleError::StoreCreditExceeded {
                requested: Money(5000),
                available: Money(4999)
            })
        );
        let out = build_sale(&r, ctx(), catalog, Some(standing(5000))).expect("exactly");
        assert_eq!(out.body.change, Money::ZERO);
        // Store credit gives no change.
        r.payments = vec![pay(PaymentMethod::StoreCredit, 7000)];
        assert!(matches!(
            build_sale(&r, ctx(), catalog, Some(standing(9000))),
            Err(SaleError::ChangeWithoutCash { .. })
        ));
    }

    proptest! {
        /// Totals equal the sum of lines, tax per rate sums to the tax, payments
        /// minus change equal the total, and discounts never make a line negative.
        #[test]
        fn accepted_sales_always_add_up(
            rice in 1i64..20,
            grams in 1i64..5000,
            line_discount in 0i64..6500,
            sale_discount in 0i64..2000,
            extra_cash in 0i64..100_000,
        ) {
            let mut r = req(
                vec![
                    LineRequest { discount: Some(line_discount.min(rice * 6500)), ..line("ARROZ", rice * 1000) },
                    line("2000000000017", grams),
                ],
                vec![],
            );
            r.discount = Some(sale_discount);
            let probe = SaleRequest { payments: vec![pay(PaymentMethod::Cash, i64::MAX / 4)], ..r.clone() };
            let total = match build_sale(&probe, ctx(), catalog, None) {
                Ok(out) => out.body.total,
                Err(SaleError::BadDiscount { .. }) => return Ok(()),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            };
            r.payments = vec![pay(PaymentMethod::Cash, total.0 + extra_cash)];
            let out = build_sale(&r, ctx(), catalog, None).expect("same sale with exact cash");
            let line_sum: i64 = out.body.lines.iter().map(|l| l.total.0).sum();
            let tax_sum: i64 = out.body.lines.iter().map(|l| l.tax.0).sum();
            prop_assert_eq!(out.body.total.0, line_sum);
            prop_assert_eq!(out.body.tax.0, tax_sum);
            prop_assert_eq!(out.tax_by_rate.values().map(|m| m.0).sum::<i64>(), tax_sum);
            prop_assert_eq!(out.body.change.0, extra_cash);
            prop_assert!(out.body.lines.iter().all(|l| l.total.0 >= 0));
        }
    }
}
