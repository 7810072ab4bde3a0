//! What the cashier's screen asks of the register, without HTTP: each
//! request (already decoded from JSON) becomes the same [`Register`]
//! operation the CLI calls, with the page's client operation id, and each
//! answer is a JSON view whose sentences come from [`crate::messages`].
//!
//! The register sits behind a mutex (one writer, as for the CLI); the scale
//! has its own lock, so weighing never holds the register, and a background
//! look at the scale (for the status bar) never talks over a weighing.

use std::sync::{Mutex, MutexGuard};

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{CustomerId, OpId, SaleId};
use caja_shared::kind::{CashMovement, PaymentMethod, SoldBy};
use caja_shared::money::{LineAmounts, Money, QtyMilli};
use serde::Deserialize;
use serde_json::{json, Value};

use super::cart;
use crate::devices::{self, DeviceError, ScaleReport, ScaleSettings};
use crate::error::{Failure, OpError, Refusal};
use crate::messages;
use crate::register::{self, Register};
use crate::sale::{LineRequest, PaymentRequest, SaleRequest};
use crate::staff::Credentials;

/// A refusal or failure as the screen shows it: an HTTP status, a short code
/// and one Spanish sentence (never a stack trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status: 400 unreadable request, 403 not from this screen, 422
    /// refused (nothing changed), 500 the machine failed.
    pub status: u16,
    /// `bad_request`, `forbidden`, `refused`, `scale`, `storage`.
    pub code: &'static str,
    /// The sentence for the cashier.
    pub message: String,
}

impl ApiError {
    /// 422: the request was refused and nothing changed.
    pub fn refused(message: String) -> ApiError {
        ApiError {
            status: 422,
            code: "refused",
            message,
        }
    }

    /// 400: the page sent something the node cannot read.
    pub fn bad_request(detail: &str) -> ApiError {
        ApiError {
            status: 400,
            code: "bad_request",
            message: messages::ui_bad_request(detail),
        }
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        if e.is_validation() {
            ApiError::refused(messages::error(&e))
        } else {
            tracing::error!(error = %e, "cashier screen: operation failed");
            ApiError {
                status: 500,
                code: "storage",
                message: messages::error(&e),
            }
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        ApiError::from(OpError::Failed(Failure::Sql(e)))
    }
}

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> ApiError {
        if e.is_refusal() {
            ApiError {
                status: 422,
                code: "scale",
                message: messages::device_error(&e),
            }
        } else {
            match e {
                DeviceError::Op(op) => ApiError::from(op),
                other => ApiError {
                    status: 500,
                    code: "storage",
                    message: messages::device_error(&other),
                },
            }
        }
    }
}

/// The answer to a screen request.
pub type ApiResult = Result<Value, ApiError>;

/// Add a line: `entry` is what the item field holds (`CODE` or `N*CODE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddLine {
    /// Client operation id.
    pub op: OpId,
    /// The item field.
    pub entry: String,
}

/// Remove a cart line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveLine {
    /// Client operation id.
    pub op: OpId,
    /// The line.
    pub line: i64,
}

/// Change the price of a cart line (a price override; a supervisor approves
/// it when the cart is paid, on registers with staff).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPrice {
    /// Client operation id.
    pub op: OpId,
    /// The line.
    pub line: i64,
    /// The new unit price, e.g. `60.00` (per piece, or per kg for weighed
    /// items); empty: back to the shelf price.
    pub price: String,
}

/// Only an op id (clear the cart).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpOnly {
    /// Client operation id.
    pub op: OpId,
}

/// Pay the cart: any mix of cash, card and fiado (split payment).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pay {
    /// Client operation id (the first attempt's is kept for retries).
    pub op: OpId,
    /// Cash tendered, e.g. `500.00`.
    #[serde(default)]
    pub cash: Option<String>,
    /// Card amount.
    #[serde(default)]
    pub card: Option<String>,
    /// Card terminal reference.
    #[serde(default)]
    pub card_ref: Option<String>,
    /// Transfer/QR amount.
    #[serde(default)]
    pub transfer: Option<String>,
    /// The bank's or the QR's reference of the transfer.
    #[serde(default)]
    pub transfer_ref: Option<String>,
    /// Amount on fiado.
    #[serde(default)]
    pub fiado: Option<String>,
    /// The fiado customer.
    #[serde(default)]
    pub customer: Option<String>,
    /// Supervisor who approves the cart's price overrides.
    #[serde(default)]
    pub approver: Option<String>,
    /// Supervisor's PIN.
    #[serde(default)]
    pub pin: Option<String>,
    /// Fiscal document series (e.g. `B01`); empty: the register's default.
    #[serde(default)]
    pub document: Option<String>,
    /// The buyer's RNC or cédula (tax-credit documents).
    #[serde(default)]
    pub buyer_tax_id: Option<String>,
    /// The buyer's name (`E31`).
    #[serde(default)]
    pub buyer_name: Option<String>,
}

/// Open a shift.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftOpen {
    /// Client operation id.
    pub op: OpId,
    /// Cashier (a member of staff on registers with staff).
    pub cashier: String,
    /// Their PIN (registers with staff).
    #[serde(default)]
    pub pin: Option<String>,
    /// Opening float.
    pub float: String,
}

/// Close the shift.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftClose {
    /// Client operation id.
    pub op: OpId,
    /// Cash counted.
    pub counted: String,
    /// Who closes (registers with staff).
    #[serde(default)]
    pub by: Option<String>,
    /// Their PIN.
    #[serde(default)]
    pub pin: Option<String>,
}

/// Void a sale.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Void {
    /// Client operation id.
    pub op: OpId,
    /// The sale.
    pub sale: String,
    /// Why.
    pub reason: String,
    /// Supervisor.
    #[serde(default)]
    pub approver: Option<String>,
    /// Supervisor's PIN.
    #[serde(default)]
    pub pin: Option<String>,
}

/// One line to return.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    /// The sale's line index.
    pub line: u32,
    /// Quantity (pieces, or kg for weighed items).
    pub qty: String,
    /// Damaged goods do not go back to stock.
    #[serde(default)]
    pub damaged: bool,
}

/// Return (part of) a sale.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Return {
    /// Client operation id.
    pub op: OpId,
    /// Sale id or fiscal number.
    pub sale: String,
    /// Lines (a quantity of 0 or empty is skipped).
    pub lines: Vec<ReturnLine>,
    /// `cash`, `card` or `transfer`.
    pub refund: String,
    /// Supervisor.
    #[serde(default)]
    pub approver: Option<String>,
    /// Supervisor's PIN.
    #[serde(default)]
    pub pin: Option<String>,
}

/// Paid in, paid out, drop.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cash {
    /// Client operation id.
    pub op: OpId,
    /// `in`, `out` or `drop`.
    pub kind: String,
    /// Amount.
    pub amount: String,
    /// Why.
    pub reason: String,
    /// Supervisor (paid out).
    #[serde(default)]
    pub approver: Option<String>,
    /// Supervisor's PIN.
    #[serde(default)]
    pub pin: Option<String>,
}

/// Reprint a receipt ("COPIA").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reprint {
    /// Client operation id.
    pub op: OpId,
    /// The sale.
    pub sale: String,
}

pub(super) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub(super) fn money(field: &str, text: &str) -> Result<Money, ApiError> {
    text.trim()
        .parse::<Money>()
        .ok()
        .filter(|m| m.0 >= 0)
        .ok_or_else(|| ApiError::refused(messages::ui_bad_amount(field, text)))
}

fn quantity(field: &str, text: &str) -> Result<QtyMilli, ApiError> {
    text.trim()
        .parse::<QtyMilli>()
        .ok()
        .filter(|q| q.0 > 0)
        .ok_or_else(|| ApiError::refused(messages::ui_bad_quantity(field, text)))
}

fn sale_id(text: &str) -> Result<SaleId, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::bad_request("sale"))
}

/// Splits `N*CODE` into the quantity text and the code.
pub fn parse_entry(entry: &str) -> Result<(Option<&str>, &str), ApiError> {
    let entry = entry.trim();
    let (qty, code) = match entry.split_once('*') {
        Some((q, c)) => (Some(q.trim()), c.trim()),
        None => (None, entry),
    };
    if code.is_empty() {
        return Err(ApiError::refused(messages::ui_no_code()));
    }
    if code.chars().count() > 64 || code.chars().any(char::is_control) {
        return Err(ApiError::refused(messages::error(&OpError::Refused(
            Refusal::UnknownProduct(code.chars().take(64).collect()),
        ))));
    }
    Ok((qty, code))
}

/// A sale's payments as the intents call takes them: method, amount,
/// reference, in the sale's order.
pub type PaidWith = [(PaymentMethod, Money, Option<String>)];

/// Asks the hub for a sale's card and transfer/QR payment intents (the sync
/// engine's `create_sale_intents` with the configured provider). Set by
/// `caja-node ui`/`run` when a provider and the hub are configured.
pub struct AskIntents(
    #[allow(clippy::type_complexity)]
    pub  Box<
        dyn Fn(caja_shared::ids::SaleId, &PaidWith) -> Vec<crate::sync::intents::SaleIntent>
            + Send
            + Sync,
    >,
);

impl std::fmt::Debug for AskIntents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AskIntents")
    }
}

/// The register, its scale, and what the screen shows.
#[derive(Debug)]
pub struct Screen<C: Clock, R: RandomSource> {
    pub(super) node: Mutex<Register<C, R>>,
    scale: Option<ScaleSettings>,
    scale_lock: Mutex<()>,
    scale_seen: Mutex<Option<ScaleReport>>,
    /// The printer, when it answers its status (TCP, serial, USB).
    pub(super) printer: Option<crate::print::PrinterSettings>,
    /// The printer's last status bits, for the status bar.
    pub(super) printer_seen: Mutex<Option<devices::PrinterReport>>,
    quick_keys: Vec<String>,
    quota_low_milli: i64,
    /// Asks the hub for a sale's card and transfer/QR intents, when a
    /// payment provider and the hub are configured.
    pub(super) intents: Option<AskIntents>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another request must not take the register down with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<C: Clock, R: RandomSource> Screen<C, R> {
    /// The screen of an open register.
    pub fn new(node: Register<C, R>) -> Result<Self, OpError> {
        let scale = ScaleSettings::from_config(node.config())?;
        let quick_keys = node.config().quick_keys.clone();
        let quota_low_milli = node.config().escrow_low_milli;
        let printer = super::pricing::answering_printer(node.printer_settings()?);
        Ok(Screen {
            printer,
            printer_seen: Mutex::new(None),
            node: Mutex::new(node),
            scale,
            scale_lock: Mutex::new(()),
            scale_seen: Mutex::new(None),
            quick_keys,
            quota_low_milli,
            intents: None,
        })
    }

    /// With the hub asked for payment intents after each sale by `ask`.
    pub fn with_intents(mut self, ask: AskIntents) -> Self {
        self.intents = Some(ask);
        self
    }

    /// Looks at the scale for the status bar, unless a weighing is under way.
    pub fn refresh_scale(&self) {
        let Some(scale) = &self.scale else { return };
        let Ok(_busy) = self.scale_lock.try_lock() else {
            return;
        };
        let r = devices::scale_report(scale);
        *lock(&self.scale_seen) = Some(r);
    }

    /// Everything the screen shows: shift, cart with totals, status bar,
    /// quick keys, the last result.
    pub fn state(&self) -> ApiResult {
        let node = lock(&self.node);
        self.reconcile(&node)?;
        self.view(&node)
    }

    /// A payment whose sale committed but whose cart was not emptied (the
    /// node stopped in between) is finished now.
    fn reconcile(&self, node: &Register<C, R>) -> Result<(), ApiError> {
        if let Some(op) = cart::pay_op(node.conn())? {
            if let Some(done) = crate::journal::find_op(node.conn(), &op).map_err(OpError::from)? {
                let r: register::SaleResult =
                    serde_json::from_str(&done.result).map_err(OpError::from)?;
                self.finish_sale(node, op, None, &r, None)?;
            }
        }
        Ok(())
    }

    pub(super) fn view(&self, node: &Register<C, R>) -> ApiResult {
        let conn = node.conn();
        let status = node.status()?;
        let now = node.now_ms();
        let seen = lock(&self.scale_seen).clone();
        let scale = self.scale.as_ref().map(|_| seen.as_ref());
        let mut bar = messages::ui_status_bar(&status, scale, self.quota_low_milli, now);
        if let Some(r) = lock(&self.printer_seen).as_ref() {
            bar.push(messages::screen::ui_printer_state(r));
        }
        let mut lines = Vec::new();
        let mut total = Money::ZERO;
        let mut tax = Money::ZERO;
        let mut overrides = false;
        for l in cart::lines(conn)? {
            let item = crate::queries::lookup_item(conn, &l.code)?;
            let shelf = item.as_ref().and_then(|i| i.unit_price);
            // The price typed over the shelf price, if it still differs (the
            // shelf price may have changed to it since).
            let typed = l.unit_price.map(Money).filter(|p| Some(*p) != shelf);
            overrides |= typed.is_some();
            let (name, price, amounts, by_weight) = match &item {
                Some(i) => {
                    let price = typed.or(shelf);
                    let off = Money(l.discount.unwrap_or(0));
                    let a = price.and_then(|p| {
                        LineAmounts::compute(p, QtyMilli(l.qty_milli), off, i.tax_bp).ok()
                    });
                    (i.name.clone(), price, a, i.sold_by == SoldBy::Weight)
                }
                None => (l.code.clone(), None, None, false),
            };
            if let Some(a) = &amounts {
                total = total.checked_add(a.total).unwrap_or(total);
                tax = tax.checked_add(a.tax).unwrap_or(tax);
            }
            lines.push(json!({
                "id": l.line_id,
                "code": l.code,
                "name": name,
                "qty": if by_weight { messages::weight(l.qty_milli) } else { QtyMilli(l.qty_milli).to_string().trim_end_matches('0').trim_end_matches('.').to_owned() },
                "weighed": l.weighed,
                "unit_price": price.map_or("—".to_owned(), messages::rd),
                "price": price.map_or(String::new(), |p| p.to_string()),
                "overridden": typed.is_some(),
                "shelf_price": typed.and(shelf).map(messages::rd),
                "total": amounts.map_or("—".to_owned(), |a| messages::rd(a.total)),
                "discount": l.discount.map(|d| messages::rd(Money(d))),
            }));
        }
        // The engine's own arithmetic for the sale discount (spread over the
        // lines, tax recomputed) and for whether a supervisor must approve.
        let sale_discount = cart::sale_discount(conn)?;
        let probe = super::pricing::probe(node, sale_discount)?;
        if let Some(p) = &probe {
            total = p.total;
            tax = p.tax;
        }
        let discount_needs_approval = probe.as_ref().is_some_and(|p| p.needs_approval);
        let shift = crate::projection::open_shift(conn)?
            .map(|(id, cashier, _)| json!({"id": id, "cashier": cashier}));
        let mut quick = Vec::new();
        let codes: Vec<String> = if self.quick_keys.is_empty() {
            crate::queries::weighed_skus(conn, 12)?
        } else {
            self.quick_keys.clone()
        };
        for code in codes {
            if let Some(i) = crate::queries::lookup_item(conn, &code)? {
                quick.push(json!({
                    "code": code,
                    "name": i.name,
                    "price": i.unit_price.map_or("—".to_owned(), messages::rd),
                    "weighed": i.sold_by == SoldBy::Weight,
                }));
            }
        }
        Ok(json!({
            "shift": shift,
            "staff": crate::staff::has_staff(conn)?,
            "cart": {
                "lines": lines,
                "total": messages::rd(total),
                "total_minor": total.0,
                "tax": messages::rd(tax),
                "overrides": overrides,
                "sale_discount": sale_discount.map(|d| messages::screen::ui_discount_line(Money(d))),
                "sale_discount_amount": sale_discount.map(|d| Money(d).to_string()),
                "discount_approval": discount_needs_approval,
            },
            "documents": node.config().fiscal_documents,
            "status": bar,
            "quick_keys": quick,
            "shown": Self::shown_with_intents(node)?,
            "paying": cart::pay_op(conn)?.is_some(),
        }))
    }

    pub(super) fn credentials(
        node: &Register<C, R>,
        who: Option<&str>,
        pin: Option<&str>,
    ) -> Result<Option<Credentials>, ApiError> {
        match (who, pin) {
            (None, None) => Ok(None),
            (Some(who), Some(pin)) => {
                let staff_id = crate::staff::find(node.conn(), who)?
                    .ok_or_else(|| ApiError::refused(messages::ui_unknown_staff(who)))?;
                Ok(Some(Credentials {
                    staff_id,
                    pin: pin.to_owned(),
                }))
            }
            _ => Err(ApiError::refused(messages::ui_name_and_pin())),
        }
    }

    /// Adds a scanned or keyed item; a weighed item takes the scale's stable
    /// weight (read without holding the register).
    pub fn add_line(&self, req: &AddLine) -> ApiResult {
        let (qty_text, code) = parse_entry(&req.entry)?;
        let item = {
            let node = lock(&self.node);
            crate::queries::lookup_item(node.conn(), code)?
        }
        .ok_or_else(|| {
            ApiError::refused(messages::error(&OpError::Refused(Refusal::UnknownProduct(
                code.into(),
            ))))
        })?;
        let (qty, weighed) = if item.sold_by == SoldBy::Weight {
            if qty_text.is_some() {
                return Err(ApiError::refused(messages::ui_weighed_from_scale(
                    &item.name,
                )));
            }
            let scale = self.scale.as_ref().ok_or(DeviceError::NoScale)?;
            let grams = {
                let _weighing = lock(&self.scale_lock);
                devices::weigh(scale)?
            };
            (grams, true)
        } else {
            let q = match qty_text {
                Some(t) => {
                    let whole = t.trim().parse::<u32>().ok().filter(|n| *n > 0);
                    let n = whole.ok_or_else(|| {
                        ApiError::refused(messages::ui_bad_quantity("cantidad", t))
                    })?;
                    QtyMilli(i64::from(n) * QtyMilli::PER_UNIT)
                }
                None => QtyMilli::ONE,
            };
            (q, false)
        };
        let node = lock(&self.node);
        cart::add_line(node.conn(), req.op, code, qty.0, weighed, node.now_ms())?;
        let mut v = self.view(&node)?;
        if weighed {
            v["notice"] = json!(messages::ui_weighed(&item.name, qty.0));
        }
        Ok(v)
    }

    /// Removes a cart line.
    pub fn remove_line(&self, req: &RemoveLine) -> ApiResult {
        let _ = req.op;
        let node = lock(&self.node);
        cart::remove_line(node.conn(), req.line)?;
        self.view(&node)
    }

    /// Changes the price of a cart line (kept in the node's cart; sent as the
    /// line's `unit_price` when paying). An empty price, or the shelf price,
    /// takes the override back.
    pub fn set_price(&self, req: &SetPrice) -> ApiResult {
        let _ = req.op;
        let price = match req.price.trim() {
            "" => None,
            t => Some(money("precio", t)?),
        };
        let node = lock(&self.node);
        let conn = node.conn();
        let line = cart::lines(conn)?
            .into_iter()
            .find(|l| l.line_id == req.line)
            .ok_or_else(|| ApiError::refused(messages::ui_line_gone()))?;
        let shelf = crate::queries::lookup_item(conn, &line.code)?.and_then(|i| i.unit_price);
        let price = price.filter(|p| Some(*p) != shelf);
        cart::set_price(conn, line.line_id, price.map(|p| p.0))?;
        self.view(&node)
    }

    /// Empties the cart.
    pub fn clear(&self, req: &OpOnly) -> ApiResult {
        let _ = req.op;
        let node = lock(&self.node);
        self.reconcile(&node)?;
        cart::clear(node.conn())?;
        self.view(&node)
    }

    /// Pays the cart with one sale (the register's `sell`), made once under
    /// the cart's payment op id however often the page retries.
    pub fn pay(&self, req: &Pay) -> ApiResult {
        let mut payments = Vec::new();
        if let Some(t) = given(&req.cash) {
            payments.push(PaymentRequest {
                method: PaymentMethod::Cash,
                amount: money("efectivo", t)?.0,
                reference: None,
            });
        }
        if let Some(t) = given(&req.card) {
            payments.push(PaymentRequest {
                method: PaymentMethod::Card,
                amount: money("tarjeta", t)?.0,
                reference: given(&req.card_ref).map(str::to_owned),
            });
        }
        if let Some(t) = given(&req.transfer) {
            payments.push(PaymentRequest {
                method: PaymentMethod::Transfer,
                amount: money("transferencia", t)?.0,
                reference: given(&req.transfer_ref).map(str::to_owned),
            });
        }
        let customer: Option<CustomerId> = match given(&req.customer) {
            Some(c) => Some(c.parse().map_err(|_| ApiError::bad_request("customer"))?),
            None => None,
        };
        if let Some(t) = given(&req.fiado) {
            payments.push(PaymentRequest {
                method: PaymentMethod::Fiado,
                amount: money("fiado", t)?.0,
                reference: None,
            });
        }
        let mut node = lock(&self.node);
        self.reconcile(&node)?;
        let in_cart = cart::lines(node.conn())?;
        let mut overridden = false;
        for l in &in_cart {
            if let Some(p) = l.unit_price {
                let shelf =
                    crate::queries::lookup_item(node.conn(), &l.code)?.and_then(|i| i.unit_price);
                overridden |= shelf != Some(Money(p));
            }
        }
        let lines: Vec<LineRequest> = in_cart
            .into_iter()
            .map(|l| LineRequest {
                code: l.code,
                qty_milli: l.qty_milli,
                discount: l.discount,
                unit_price: l.unit_price,
            })
            .collect();
        let sale_discount = cart::sale_discount(node.conn())?;
        let doc = super::pricing::document(
            &node,
            given(&req.document),
            given(&req.buyer_tax_id),
            given(&req.buyer_name),
        )
        .map_err(ApiError::refused)?;
        let cred = Self::credentials(&node, given(&req.approver), given(&req.pin))?;
        if lines.is_empty() {
            // A retry of a payment that was made (its answer was lost): the
            // first answer again, not a refusal.
            let shown = cart::shown(node.conn())?;
            let this = req.op.to_string();
            let same = |key: &str| shown.as_ref().and_then(|v| v[key].as_str()) == Some(&this);
            if same("op") || same("request_op") {
                let mut v = self.view(&node)?;
                v["done"] = json!(true);
                return Ok(v);
            }
            return Err(ApiError::refused(messages::ui_cart_empty()));
        }
        if overridden && cred.is_none() && crate::staff::has_staff(node.conn())? {
            // Asked before anything is recorded: the register would refuse
            // it too, in its own words.
            return Err(ApiError::refused(messages::ui_override_needs_supervisor()));
        }
        let needs_discount_approval =
            super::pricing::probe(&node, sale_discount)?.is_some_and(|p| p.needs_approval);
        if needs_discount_approval && cred.is_none() && crate::staff::has_staff(node.conn())? {
            return Err(ApiError::refused(
                messages::screen::ui_discount_needs_supervisor(),
            ));
        }
        let op = cart::begin_pay(node.conn(), req.op)?;
        let sale = SaleRequest {
            lines,
            payments,
            discount: sale_discount,
            customer,
        };
        let r = node.sell_approved(op, &sale, &doc, cred.as_ref())?;
        self.finish_sale(&node, op, Some(req.op), &r, customer)?;
        // The sale is durable: intents are asked outside the register's lock
        // (the network never holds up the register).
        drop(node);
        let paid: Vec<_> = sale
            .payments
            .iter()
            .map(|p| (p.method, Money(p.amount), p.reference.clone()))
            .collect();
        self.ask_intents(r.sale_id, &paid)?;
        let node = lock(&self.node);
        let mut v = self.view(&node)?;
        v["done"] = json!(true);
        Ok(v)
    }

    fn finish_sale(
        &self,
        node: &Register<C, R>,
        op: OpId,
        request_op: Option<OpId>,
        r: &register::SaleResult,
        customer: Option<CustomerId>,
    ) -> Result<(), ApiError> {
        let credit_left = match customer {
            Some(c) if r.fiado.0 > 0 => {
                let limit = crate::queries::credit_limit(node.conn(), &c)?;
                let owed = crate::projection::customer_balance(node.conn(), &c.to_string())?;
                limit.map(|l| Money(l - owed))
            }
            _ => None,
        };
        let shown = json!({
            "kind": "sale",
            "op": op.to_string(),
            "request_op": request_op.map(|o| o.to_string()),
            "sale_id": r.sale_id,
            "text": messages::ui_sale_done(r, credit_left),
            "total": messages::rd(r.total),
            "change": messages::rd(r.change),
            "fiscal_number": r.fiscal_number,
        });
        let mut shown = shown;
        // A sale already made whose intents were asked once: what was said
        // then (a retry never asks again).
        if let Some(said) = cart::intents_said(node.conn(), r.sale_id)? {
            shown["intents"] = json!(said);
        }
        cart::finish_pay(node.conn(), op, &shown)?;
        Ok(())
    }

    /// Opens a shift (signed in with a PIN on registers with staff).
    pub fn open_shift(&self, req: &ShiftOpen) -> ApiResult {
        let float = money("fondo inicial", &req.float)?;
        let mut node = lock(&self.node);
        let r = if crate::staff::has_staff(node.conn())? {
            let cred = Self::credentials(&node, Some(req.cashier.trim()), given(&req.pin))?
                .ok_or_else(|| ApiError::refused(messages::ui_name_and_pin()))?;
            node.open_shift_signed(req.op, &cred, float)?
        } else {
            node.open_shift(req.op, &req.cashier, float)?
        };
        cart::set_shown(
            node.conn(),
            &json!({"kind": "shift", "text": messages::ui_shift_opened(&node.status()?.open_shift.map(|(_, c)| c).unwrap_or_default()), "shift_id": r.shift_id}),
        )?;
        self.view(&node)
    }

    /// Closes the shift; the Z report is shown on screen (and kept as the
    /// last result).
    pub fn close_shift(&self, req: &ShiftClose) -> ApiResult {
        let counted = money("efectivo contado", &req.counted)?;
        let mut node = lock(&self.node);
        let cred = Self::credentials(&node, given(&req.by), given(&req.pin))?;
        let r = node.close_shift_as(req.op, counted, cred.as_ref())?;
        cart::set_shown(
            node.conn(),
            &json!({
                "kind": "z",
                "text": messages::shift_closed(&r),
                "z": messages::z_report(&r.z),
            }),
        )?;
        self.view(&node)
    }

    /// The open shift's report so far (an X report).
    pub fn x_report(&self) -> ApiResult {
        let node = lock(&self.node);
        let z = node.z_report(None)?;
        Ok(json!({"z": messages::z_report(&z)}))
    }

    /// Voids a sale (a supervisor approves on registers with staff).
    pub fn void(&self, req: &Void) -> ApiResult {
        let sale = sale_id(&req.sale)?;
        let mut node = lock(&self.node);
        let cred = Self::credentials(&node, given(&req.approver), given(&req.pin))?;
        node.void_approved(req.op, sale, &req.reason, cred.as_ref())?;
        let number = crate::queries::sale_fiscal_number(node.conn(), sale)?;
        let named = number.unwrap_or_else(|| sale.to_string());
        cart::set_shown(
            node.conn(),
            &json!({"kind": "void", "text": messages::ui_voided(&named)}),
        )?;
        self.view(&node)
    }

    /// Returns lines of a sale (a supervisor approves on registers with staff).
    pub fn return_sale(&self, req: &Return) -> ApiResult {
        let refund = match req.refund.as_str() {
            "cash" => PaymentMethod::Cash,
            "card" => PaymentMethod::Card,
            "transfer" => PaymentMethod::Transfer,
            _ => return Err(ApiError::bad_request("refund")),
        };
        let mut lines = Vec::new();
        for l in &req.lines {
            if l.qty.trim().is_empty() || l.qty.trim() == "0" {
                continue;
            }
            lines.push(register::ReturnLineRequest {
                line: l.line,
                qty_milli: quantity("cantidad a devolver", &l.qty)?.0,
                damaged: l.damaged,
            });
        }
        if lines.is_empty() {
            return Err(ApiError::refused(messages::ui_bad_quantity(
                "cantidad a devolver",
                "0",
            )));
        }
        let mut node = lock(&self.node);
        let cred = Self::credentials(&node, given(&req.approver), given(&req.pin))?;
        let r = node.return_sale(
            req.op,
            &register::ReturnRequest {
                sale: req.sale.trim().to_owned(),
                lines,
                refund,
                customer: None,
                unknown_original: Vec::new(),
                modified_date: None,
                buyer_tax_id: None,
                buyer_name: None,
            },
            cred.as_ref(),
        )?;
        cart::set_shown(
            node.conn(),
            &json!({"kind": "return", "text": messages::return_done(&r)}),
        )?;
        self.view(&node)
    }

    /// Paid in, paid out (a supervisor approves), drop to the safe.
    pub fn cash(&self, req: &Cash) -> ApiResult {
        let kind = match req.kind.as_str() {
            "in" => CashMovement::PaidIn,
            "out" => CashMovement::PaidOut,
            "drop" => CashMovement::Drop,
            _ => return Err(ApiError::bad_request("kind")),
        };
        let amount = money("monto", &req.amount)?;
        let mut node = lock(&self.node);
        let cred = Self::credentials(&node, given(&req.approver), given(&req.pin))?;
        node.cash_move(req.op, kind, amount, &req.reason, cred.as_ref())?;
        cart::set_shown(
            node.conn(),
            &json!({"kind": "cash", "text": messages::ui_cash_moved(kind, amount)}),
        )?;
        self.view(&node)
    }

    /// Queues a COPIA of a sale's receipt, once per op id.
    pub fn reprint(&self, req: &Reprint) -> ApiResult {
        let sale = sale_id(&req.sale)?;
        let node = lock(&self.node);
        cart::reprint_once(node.conn(), req.op, sale, node.now_ms())?;
        cart::set_shown(
            node.conn(),
            &json!({"kind": "reprint", "text": messages::ui_reprinted()}),
        )?;
        self.view(&node)
    }

    /// This register's latest sales (of the open shift first), with their
    /// lines, for reprint, void and return.
    pub fn sales(&self) -> ApiResult {
        let node = lock(&self.node);
        let conn = node.conn();
        let own = node.device().device.to_string();
        let rows = crate::queries::recent_sales(conn, &own, 30)?;
        let mut out = Vec::new();
        for (id, number, total, voided, at_ms) in rows {
            let mut lines = Vec::new();
            for (line, name, qty, total, by_weight) in crate::queries::sale_lines_shown(conn, &id)?
            {
                lines.push(json!({
                    "line": line,
                    "name": name,
                    "qty": if by_weight { messages::weight(qty) } else { QtyMilli(qty).to_string() },
                    "by_weight": by_weight,
                    "total": messages::rd(Money(total)),
                }));
            }
            let t = caja_shared::localtime::LocalDateTime::from_utc_ms(
                at_ms,
                caja_shared::localtime::UtcOffset::SANTO_DOMINGO,
            );
            out.push(json!({
                "sale_id": id,
                "time": format!("{:02}:{:02}", t.hour, t.minute),
                "number": number,
                "total": messages::rd(Money(total)),
                "voided": voided.is_some(),
                "lines": lines,
            }));
        }
        Ok(json!({ "sales": out }))
    }

    /// Customers for fiado, with what each may still take on credit.
    pub fn customers(&self) -> ApiResult {
        let node = lock(&self.node);
        let conn = node.conn();
        let rows = crate::queries::customers(conn, 500)?;
        let mut out = Vec::new();
        for (id, name, limit) in rows {
            let owed = crate::projection::customer_balance(conn, &id)?;
            // What the edit dialog starts from.
            let fields = id
                .parse()
                .ok()
                .map(|c| crate::queries::customer_fields(conn, &c))
                .transpose()?
                .flatten();
            let (phone, tax_id) = fields.map(|f| (f.1, f.2)).unwrap_or_default();
            out.push(json!({
                "id": id,
                "name": name,
                "owes": messages::rd(Money(owed)),
                "credit_left": messages::rd(Money(limit - owed)),
                "phone": phone.unwrap_or_default(),
                "tax_id": tax_id.unwrap_or_default(),
                "credit_limit": Money(limit).to_string(),
            }));
        }
        Ok(json!({ "customers": out }))
    }
}
