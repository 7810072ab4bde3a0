//! The screen's discount, customer, debt-payment and buyer dialogs: each
//! request becomes the register operation the CLI calls (`customer`,
//! `debt-pay`, `sell --document --buyer-tax-id`), or a change to the node's
//! cart (discounts), with its Spanish answer from
//! [`crate::messages::screen`].
//!
//! Invariant: the totals and the "needs a supervisor" flag the screen shows
//! for a discounted cart come from the sale's own arithmetic
//! ([`crate::sale::build_sale`], the probe the register uses for approvals),
//! so the screen never shows a total the sale would not record.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{CustomerId, OpId};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::{LineAmounts, Money, QtyMilli};
use serde::Deserialize;
use serde_json::json;

use super::cart;
use super::screen::{given, lock, money, ApiError, ApiResult, Pay, Screen};
use crate::messages::{self, screen as words};
use crate::register::{self, Register};
use crate::sale::{self, LineRequest, PaymentRequest, SaleContext, SaleRequest};

/// A discount on one cart line, or (no `line`) on the whole sale.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discount {
    /// Client operation id.
    pub op: OpId,
    /// The line; absent: the whole sale.
    #[serde(default)]
    pub line: Option<i64>,
    /// `25.00` (RD$) or `10%`; empty: no discount.
    pub amount: String,
}

/// A new customer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Client operation id.
    pub op: OpId,
    /// Name.
    pub name: String,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// RNC or cédula.
    #[serde(default)]
    pub tax_id: Option<String>,
    /// Credit limit, e.g. `500.00`.
    pub credit_limit: String,
}

/// A payment on a customer's fiado (an abono).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebtPay {
    /// Client operation id.
    pub op: OpId,
    /// The customer.
    pub customer: String,
    /// Amount.
    pub amount: String,
    /// `cash`, `card` or `transfer`.
    pub method: String,
}

/// What the sale would record for the cart as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The sale's total.
    pub total: Money,
    /// Tax included in it.
    pub tax: Money,
    /// Its discounts exceed the register's `max_discount_bp` of its gross.
    pub needs_approval: bool,
}

fn cart_request(
    lines: Vec<cart::CartLine>,
    sale_discount: Option<i64>,
    payments: Vec<PaymentRequest>,
) -> SaleRequest {
    SaleRequest {
        lines: lines
            .into_iter()
            .map(|l| LineRequest {
                code: l.code,
                qty_milli: l.qty_milli,
                discount: l.discount,
                unit_price: l.unit_price,
            })
            .collect(),
        payments,
        discount: sale_discount,
        customer: None,
    }
}

/// The cart priced by the sale's own rules (`None`: the cart is empty or the
/// sale would be refused; paying says why).
pub fn probe<C: Clock, R: RandomSource>(
    node: &Register<C, R>,
    sale_discount: Option<i64>,
) -> Result<Option<Probe>, ApiError> {
    let conn = node.conn();
    let lines = cart::lines(conn)?;
    if lines.is_empty() {
        return Ok(None);
    }
    let req = cart_request(
        lines,
        sale_discount,
        vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: i64::MAX / 4,
            reference: None,
        }],
    );
    let nil = "00000000-0000-7000-8000-000000000000";
    let ctx = SaleContext {
        sale_id: nil.parse().map_err(|_| ApiError::bad_request("probe"))?,
        cashier: String::new(),
        shift_id: nil.parse().map_err(|_| ApiError::bad_request("probe"))?,
        fiscal: None,
    };
    let Ok(out) = sale::build_sale(
        &req,
        ctx,
        |code| crate::queries::lookup_item(conn, code).ok().flatten(),
        None,
    ) else {
        return Ok(None);
    };
    let discount: i128 = out
        .body
        .lines
        .iter()
        .map(|l| i128::from(l.discount.map_or(0, |d| d.0)))
        .sum();
    let gross = i128::from(out.body.total.0) + discount;
    Ok(Some(Probe {
        total: out.body.total,
        tax: out.body.tax,
        needs_approval: discount * 10_000 > gross * i128::from(node.config().max_discount_bp),
    }))
}

/// `25.00` or `12.5%` of `base`, in centavos (a percentage rounds half up).
pub fn discount_amount(text: &str, base: Money) -> Result<Option<i64>, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::refused(words::ui_bad_discount(text));
    let d = match t.strip_suffix('%') {
        Some(pct) => {
            // "12.5" read as money is 1250: hundredths of a percent.
            let bp = pct
                .trim()
                .parse::<Money>()
                .ok()
                .filter(|m| m.0 > 0 && m.0 <= 10_000)
                .ok_or_else(bad)?;
            let v = (i128::from(base.0) * i128::from(bp.0) + 5_000) / 10_000;
            i64::try_from(v).map_err(|_| bad())?
        }
        None => {
            t.parse::<Money>()
                .ok()
                .filter(|m| m.0 > 0)
                .ok_or_else(bad)?
                .0
        }
    };
    if d > base.0 {
        return Err(ApiError::refused(words::ui_discount_too_large(
            Money(d),
            base,
        )));
    }
    Ok(Some(d))
}

/// The fiscal document a payment asks for, checked before anything is
/// recorded: a series this register issues, the buyer's RNC or cédula where
/// the series needs it (checked digit included), the name on an `E31`.
/// Each refusal names the screen's field.
pub fn document<C: Clock, R: RandomSource>(
    node: &Register<C, R>,
    req: &Pay,
) -> Result<register::Document, ApiError> {
    let asked = given(&req.document).map(str::to_uppercase);
    let cfg = node.config();
    if let Some(s) = &asked {
        if !cfg.fiscal_documents.contains(s) {
            return Err(ApiError::refused(words::ui_unknown_document(s)));
        }
    }
    let series = cfg.document_for(asked.as_deref());
    let tax_id = match given(&req.buyer_tax_id) {
        Some(t) => Some(
            caja_shared::fiscal::validate_tax_id(t)
                .map_err(|_| ApiError::refused(words::ui_bad_buyer_tax_id(t)))?
                .1,
        ),
        None => None,
    };
    let name = given(&req.buyer_name).map(str::to_owned);
    if let Some(s) = &series {
        if tax_id.is_none() && caja_shared::fiscal::requires_buyer_tax_id(s) {
            return Err(ApiError::refused(words::ui_buyer_tax_id_missing(s)));
        }
        if s == "E31" && name.is_none() {
            return Err(ApiError::refused(words::ui_buyer_name_missing(s)));
        }
    }
    Ok(register::Document {
        series: asked,
        buyer_tax_id: tax_id,
        buyer_name: name,
    })
}

/// The printer the status bar asks for its status bits: not a file or a
/// folder (opening one would start a job, and they answer nothing).
pub fn answering_printer(
    p: Option<crate::print::PrinterSettings>,
) -> Option<crate::print::PrinterSettings> {
    use caja_hardware::device::PrinterAddress;
    p.filter(|p| {
        !matches!(
            p.address,
            PrinterAddress::File { .. } | PrinterAddress::Folder { .. }
        )
    })
}

fn method(text: &str) -> Result<PaymentMethod, ApiError> {
    match text {
        "cash" => Ok(PaymentMethod::Cash),
        "card" => Ok(PaymentMethod::Card),
        "transfer" => Ok(PaymentMethod::Transfer),
        _ => Err(ApiError::refused(words::ui_bad_debt_method())),
    }
}

impl<C: Clock, R: RandomSource> Screen<C, R> {
    /// Sets or takes back a discount on a cart line or on the whole sale
    /// (checked against what it discounts; the supervisor, when beyond the
    /// register's limit, approves when paying).
    pub fn discount(&self, req: &Discount) -> ApiResult {
        let _ = req.op;
        let node = lock(&self.node);
        let conn = node.conn();
        let lines = cart::lines(conn)?;
        match req.line {
            Some(id) => {
                let l = lines
                    .iter()
                    .find(|l| l.line_id == id)
                    .ok_or_else(|| ApiError::refused(messages::ui_line_gone()))?;
                let item = crate::queries::lookup_item(conn, &l.code)?;
                let price = l
                    .unit_price
                    .map(Money)
                    .or(item.as_ref().and_then(|i| i.unit_price));
                let gross = match (price, &item) {
                    (Some(p), Some(i)) => {
                        LineAmounts::compute(p, QtyMilli(l.qty_milli), Money::ZERO, i.tax_bp)
                            .map_or(Money::ZERO, |a| a.gross)
                    }
                    _ => Money::ZERO,
                };
                let d = discount_amount(&req.amount, gross)?;
                cart::set_line_discount(conn, id, d)?;
            }
            None => {
                if lines.is_empty() {
                    return Err(ApiError::refused(messages::ui_cart_empty()));
                }
                // What is left after the lines' own discounts.
                let net = probe(&node, None)?.map_or(Money::ZERO, |p| p.total);
                let d = discount_amount(&req.amount, net)?;
                cart::set_sale_discount(conn, d)?;
            }
        }
        self.view(&node)
    }

    /// Asks the printer its status bits (`DLE EOT`) for the status bar.
    pub fn refresh_printer(&self) {
        let Some(p) = &self.printer else { return };
        let r = crate::devices::printer_report(p);
        *lock(&self.printer_seen) = Some(r);
    }

    /// "Reimprimir pendientes": prints every pending receipt now, whatever
    /// its backoff, and says what stays queued and why.
    pub fn print_pending_now(&self, req: &super::screen::OpOnly) -> ApiResult {
        let _ = req.op;
        let mut node = lock(&self.node);
        let run = node.print_now()?;
        let text = messages::print_run(&run);
        cart::set_shown(node.conn(), &json!({"kind": "print", "text": text}))?;
        let mut v = self.view(&node)?;
        v["notice"] = json!(text);
        Ok(v)
    }

    /// Registers a new customer (name, optional phone and RNC/cédula, credit
    /// limit for fiado).
    pub fn add_customer(&self, req: &NewCustomer) -> ApiResult {
        let name = req.name.trim();
        if name.is_empty() {
            return Err(ApiError::refused(words::ui_customer_name_missing()));
        }
        let limit = money("límite de crédito", &req.credit_limit)?;
        let tax_id = match given(&req.tax_id) {
            Some(t) => Some(
                caja_shared::fiscal::validate_tax_id(t)
                    .map_err(|_| ApiError::refused(words::ui_bad_customer_tax_id(t)))?
                    .1,
            ),
            None => None,
        };
        let mut node = lock(&self.node);
        let r = node.upsert_customer(
            req.op,
            &register::CustomerRequest {
                customer_id: None,
                name: name.to_owned(),
                phone: given(&req.phone).map(str::to_owned),
                tax_id,
                credit_limit: limit.0,
            },
        )?;
        cart::set_shown(
            node.conn(),
            &json!({
                "kind": "customer",
                "customer_id": r.customer_id,
                "text": words::ui_customer_added(name, limit),
            }),
        )?;
        self.view(&node)
    }

    /// Takes a payment on a customer's fiado, oldest debts first.
    pub fn pay_debt(&self, req: &DebtPay) -> ApiResult {
        let customer: CustomerId = req
            .customer
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_request("customer"))?;
        let amount = money("monto del abono", &req.amount)?;
        let how = method(&req.method)?;
        let mut node = lock(&self.node);
        let r = node.pay_debt(req.op, customer, amount, how)?;
        let name = crate::queries::customers(node.conn(), 10_000)?
            .into_iter()
            .find(|(id, _, _)| *id == customer.to_string())
            .map_or_else(|| customer.to_string(), |(_, n, _)| n);
        cart::set_shown(
            node.conn(),
            &json!({
                "kind": "debt",
                "text": words::ui_debt_paid(&name, amount, how, r.balance),
            }),
        )?;
        self.view(&node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounts_as_typed() {
        let base = Money(13_000);
        let cases: &[(&str, Result<Option<i64>, ()>)] = &[
            ("", Ok(None)),
            ("10.00", Ok(Some(1_000))),
            ("10%", Ok(Some(1_300))),
            ("12.5 %", Ok(Some(1_625))),
            ("100%", Ok(Some(13_000))),
            ("130.01", Err(())),
            ("101%", Err(())),
            ("0", Err(())),
            ("-5", Err(())),
            ("diez", Err(())),
        ];
        for (text, want) in cases {
            let got = discount_amount(text, base).map_err(|_| ());
            assert_eq!(&got, want, "{text:?}");
        }
    }
}
