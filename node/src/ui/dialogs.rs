//! The screen's discount, customer, debt-payment and buyer dialogs: each
//! request becomes the register operation the CLI calls (`customer`,
//! `debt-pay`, `sell --document --buyer-tax-id`), or a change to the node's
//! cart (discounts), with its Spanish answer from
//! [`crate::messages::screen`].
//!
//! Invariant: a discount is checked against what it discounts as the sale
//! would compute it ([`super::pricing`]); nothing here writes but through
//! the register or [`super::cart`].

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{CustomerId, OpId};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::{LineAmounts, Money, QtyMilli};
use serde::Deserialize;
use serde_json::json;

use super::cart;
use super::pricing::{discount_amount, probe};
use super::screen::{given, lock, money, ApiError, ApiResult, Screen};
use crate::messages::{self, screen as words};
use crate::register;

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

/// Changes to an existing customer (the edit dialog sends every field,
/// prefilled; an empty phone or RNC/cédula clears it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditCustomer {
    /// Client operation id.
    pub op: OpId,
    /// The customer.
    pub customer: String,
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
                let d = discount_amount(&req.amount, gross).map_err(ApiError::refused)?;
                cart::set_line_discount(conn, id, d)?;
            }
            None => {
                if lines.is_empty() {
                    return Err(ApiError::refused(messages::ui_cart_empty()));
                }
                // What is left after the lines' own discounts.
                let net = probe(&node, None)?.map_or(Money::ZERO, |p| p.total);
                let d = discount_amount(&req.amount, net).map_err(ApiError::refused)?;
                cart::set_sale_discount(conn, d)?;
            }
        }
        self.view(&node)
    }

    /// Asks the printer its status bits (`DLE EOT`) for the status bar.
    /// Skipped while a receipt is printing (a printer that takes one
    /// connection at a time must not be asked in the middle of a job).
    pub fn refresh_printer(&self) {
        let Some(p) = &self.printer else { return };
        let printing = {
            let node = lock(&self.node);
            crate::print::queue_status(node.conn()).map_or(true, |q| q.printing > 0)
        };
        if printing {
            return;
        }
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

    /// Edits a customer: name, phone, RNC/cédula (checked with its check
    /// digit) and credit limit; refused in Spanish, nothing written, when a
    /// field is wrong.
    pub fn edit_customer(&self, req: &EditCustomer) -> ApiResult {
        let customer: CustomerId = req
            .customer
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_request("customer"))?;
        let name = req.name.trim();
        if name.is_empty() {
            return Err(ApiError::refused(words::ui_customer_name_missing()));
        }
        let limit = money("límite de crédito", &req.credit_limit)?;
        let tax_id = match given(&req.tax_id) {
            Some(t) => {
                caja_shared::fiscal::validate_tax_id(t)
                    .map_err(|_| ApiError::refused(words::ui_bad_customer_tax_id(t)))?
                    .1
            }
            None => String::new(),
        };
        let mut node = lock(&self.node);
        let r = node.edit_customer(
            req.op,
            &register::CustomerEdit {
                customer_id: customer,
                name: Some(name.to_owned()),
                phone: Some(given(&req.phone).unwrap_or_default().to_owned()),
                tax_id: Some(tax_id),
                credit_limit: Some(limit.0),
            },
        )?;
        cart::set_shown(
            node.conn(),
            &json!({
                "kind": "customer",
                "customer_id": r.customer_id,
                "text": words::ui_customer_edited(name, limit),
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

// — COUNTER —

use super::screen::PaidWith;

impl<C: Clock, R: RandomSource> Screen<C, R> {
    /// After a durable sale, outside the register's lock: asks for the
    /// intents of its card and transfer/QR payments and adds what became of
    /// them (created, or offline: the reference stands) to the result shown.
    /// Never changes the sale; without a provider nothing is asked.
    pub(super) fn ask_intents(
        &self,
        sale: caja_shared::ids::SaleId,
        paid: &PaidWith,
    ) -> Result<(), ApiError> {
        let Some(ask) = &self.intents else {
            return Ok(());
        };
        if !paid
            .iter()
            .any(|(m, _, _)| crate::sync::intents::needs_intent(*m))
        {
            return Ok(());
        }
        // A retried payment whose sale was already made: what was said the
        // first time, without asking again.
        let before = cart::intents_said(lock(&self.node).conn(), sale)?;
        let said = match before {
            Some(said) => said,
            None => {
                let said = messages::sale_intents(&(ask.0)(sale, paid));
                let node = lock(&self.node);
                cart::record_intents_said(node.conn(), sale, &said, node.now_ms())?;
                said
            }
        };
        let node = lock(&self.node);
        let Some(mut shown) = cart::shown(node.conn())? else {
            return Ok(());
        };
        if shown["sale_id"] == json!(sale) {
            shown["intents"] = json!(said);
            cart::set_shown(node.conn(), &shown)?;
        }
        Ok(())
    }

    /// The result shown, with the current state of its sale's payment
    /// intents (as the hub chain brought them) when it is a sale.
    pub(super) fn shown_with_intents(
        node: &register::Register<C, R>,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let Some(mut shown) = cart::shown(node.conn())? else {
            return Ok(None);
        };
        if let Some(sale) = shown["sale_id"].as_str().map(str::to_owned) {
            let device = node.device().device.to_string();
            let of_sale: Vec<_> = crate::projection::payment_intents(node.conn(), &device)
                .map_err(crate::error::OpError::from)?
                .into_iter()
                .filter(|i| i.sale_id == sale)
                .collect();
            if !of_sale.is_empty() {
                shown["intent_states"] = json!(words::ui_intent_states(&of_sale));
            }
        }
        Ok(Some(shown))
    }
}

/// The drawer opened with the key because the printer could not be reached.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawerManual {
    /// Client operation id.
    pub op: OpId,
    /// The sale (or return) whose drawer it was.
    pub sale: String,
}

impl<C: Clock, R: RandomSource> Screen<C, R> {
    /// Records a drawer opened by hand (`caja-node drawer manual --sale`):
    /// its receipt, when it prints, kicks no drawer. Refused, nothing
    /// recorded, when the receipt already went out, the sale took no cash, or
    /// the opening is already recorded.
    pub fn drawer_manual(&self, req: &DrawerManual) -> ApiResult {
        let sale: caja_shared::ids::SaleId = req
            .sale
            .trim()
            .parse()
            .map_err(|_| ApiError::refused(words::ui_drawer_no_sale()))?;
        let mut node = lock(&self.node);
        let opened_ms = cart::manual_drawer_once(node.conn(), req.op, sale, node.now_ms())?;
        // Into the journal for head office; one not written now is written
        // with the next print run.
        let _ = node.journal_drawer_openings();
        let opening =
            crate::print::opening_of(node.conn(), sale)?.unwrap_or(crate::print::ManualOpening {
                job: caja_hardware::queue::JobId(0),
                sale,
                kind: caja_hardware::queue::JobKind::Original,
                opened_ms,
            });
        let text = messages::drawer_manual(&opening);
        cart::set_shown(
            node.conn(),
            &json!({"kind": "drawer", "text": text, "sale_id": sale}),
        )?;
        self.view(&node)
    }
}
