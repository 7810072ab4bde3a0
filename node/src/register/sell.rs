//! Selling and voiding: a sale in the open shift (fiscal number, stock
//! quota, receipt and fiado debt in the same transaction, a supervisor's
//! approval for a discount beyond the limit or a price override) and the
//! void of one of this register's sales.
//!
//! Invariant: never a fiscal number outside a granted block nor used twice,
//! never an override without its approval on a register with staff.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{DebtId, EventId, OpId, SaleId};
use caja_shared::kind::{DebtOpened, EventBody, PaymentMethod, SaleVoided};
use caja_shared::money::{Money, QtyMilli};
use serde::{Deserialize, Serialize};

use super::kernel::{invalid, text, Register, Written};
use crate::error::{OpError, Refusal};
use crate::journal::Journal;
use crate::sale::{self, SaleContext, SaleError, SaleRequest};

/// The fiscal document a sale is issued as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Series prefix (e.g. `B01`); `None` = the register's default.
    #[serde(default)]
    pub series: Option<String>,
    /// The buyer's RNC or cédula (tax-credit documents).
    #[serde(default)]
    pub buyer_tax_id: Option<String>,
    /// The buyer's name (`RazonSocialComprador`): required with the tax id on
    /// an `E31` and on an `E32` of RD$250,000 or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_name: Option<String>,
}

/// What a sale's client operation id is bound to: the request, and the
/// document when it is not the register's default (serialized as the request
/// alone, or as the pair).
#[derive(Serialize)]
#[serde(untagged)]
enum Hashed<'a> {
    Plain(&'a SaleRequest),
    Named((&'a SaleRequest, &'a Document)),
}

/// Result of a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleResult {
    /// The sale.
    pub sale_id: SaleId,
    /// Journal seq of its `SaleCreated`.
    pub seq: u64,
    /// Total, tax included.
    pub total: Money,
    /// ITBIS in the total.
    pub tax: Money,
    /// Change to give.
    pub change: Money,
    /// Fiado extended (0 when none).
    pub fiado: Money,
    /// The debt opened for the fiado, if any.
    pub debt_id: Option<DebtId>,
    /// The fiscal number the sale used, if any.
    #[serde(default)]
    pub fiscal_number: Option<String>,
    /// Numbers of that series left on this register when they are running
    /// low (below `fiscal_low_water`): the cashier is warned.
    #[serde(default)]
    pub fiscal_low: Option<u64>,
}

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// Makes a sale in the open shift, as the register's default document.
    pub fn sell(&mut self, op_id: OpId, req: &SaleRequest) -> Result<SaleResult, OpError> {
        self.sell_as(op_id, req, &Document::default())
    }

    /// Makes a sale in the open shift as the fiscal document `doc` (series
    /// and, for tax-credit documents, the buyer's RNC or cédula). A fiscal
    /// register takes the next number of a usable block of that series in this
    /// same transaction; when it has none, the sale is refused with the reason
    /// (never a number outside a granted block, never one used twice).
    pub fn sell_as(
        &mut self,
        op_id: OpId,
        req: &SaleRequest,
        doc: &Document,
    ) -> Result<SaleResult, OpError> {
        self.sell_approved(op_id, req, doc, None)
    }

    /// Whether a sale's discounts exceed `max_discount_bp` of its gross, and
    /// whether it overrides a shelf price (read only: the sale is built again
    /// in its transaction).
    fn approvals_needed(&self, req: &SaleRequest) -> Result<(bool, bool), OpError> {
        let has_discount = req.discount.is_some_and(|d| d > 0)
            || req.lines.iter().any(|l| l.discount.is_some_and(|d| d > 0));
        let has_price = req.lines.iter().any(|l| l.unit_price.is_some());
        if !has_discount && !has_price {
            return Ok((false, false));
        }
        let conn = self.conn();
        // Amounts only: the payments (fiado, store credit, short cash) are
        // checked by the sale's own transaction, so a probe never fails on
        // them and never hides an override or a discount.
        let amounts_only = SaleRequest {
            payments: vec![sale::PaymentRequest {
                method: PaymentMethod::Cash,
                amount: i64::MAX / 4,
                reference: None,
            }],
            customer: None,
            ..req.clone()
        };
        let probe = sale::build_sale(
            &amounts_only,
            SaleContext {
                sale_id: "00000000-0000-7000-8000-000000000000"
                    .parse()
                    .map_err(|_| invalid("sale_id", "probe id"))?,
                cashier: String::new(),
                shift_id: "00000000-0000-7000-8000-000000000000"
                    .parse()
                    .map_err(|_| invalid("shift_id", "probe id"))?,
                fiscal: None,
            },
            |code| crate::queries::lookup_item(conn, code).ok().flatten(),
            None,
        );
        let Ok(outcome) = probe else {
            // The sale itself is invalid: its own transaction says why.
            return Ok((false, false));
        };
        let discount: i128 = outcome
            .body
            .lines
            .iter()
            .map(|l| i128::from(l.discount.map_or(0, |d| d.0)))
            .sum();
        let gross = i128::from(outcome.body.total.0) + discount;
        let overrides = outcome
            .body
            .lines
            .iter()
            .any(|l| l.price_override.is_some());
        Ok((
            discount * 10_000 > gross * i128::from(self.config.max_discount_bp),
            overrides,
        ))
    }

    /// A sale, with a supervisor's approval when its discount is beyond the
    /// register's limit or a line overrides the shelf price (registers with
    /// staff). One PIN check covers both; each is recorded with its action
    /// (the sale's `approval` for the discount, each overridden line's
    /// `price_override.approval`).
    pub fn sell_approved(
        &mut self,
        op_id: OpId,
        req: &SaleRequest,
        doc: &Document,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<SaleResult, OpError> {
        let (discount, overrides) = self.approvals_needed(req)?;
        let checked = match (discount, overrides) {
            (false, false) => None,
            (_, true) => self.approval_for(cred, "price_override")?,
            (true, false) => self.approval_for(cred, "discount")?,
        };
        let approval = checked
            .clone()
            .filter(|_| discount)
            .map(|a| caja_shared::kind::Approval {
                action: "discount".into(),
                ..a
            });
        let override_approval =
            checked
                .filter(|_| overrides)
                .map(|a| caja_shared::kind::Approval {
                    action: "price_override".into(),
                    ..a
                });
        let series = self.config.document_for(doc.series.as_deref());
        if let Some(s) = &series {
            caja_shared::fiscal::check_prefix(s).map_err(|e| invalid("document", e.to_string()))?;
        }
        let buyer = match (&series, &doc.buyer_tax_id) {
            (_, Some(id)) => Some(
                caja_shared::fiscal::validate_tax_id(id)
                    .map_err(|e| invalid("buyer_tax_id", e.to_string()))?
                    .1,
            ),
            (Some(s), None) if caja_shared::fiscal::requires_buyer_tax_id(s) => {
                return Err(OpError::Refused(Refusal::BuyerTaxIdRequired(s.clone())));
            }
            _ => None,
        };
        let buyer_name = match &doc.buyer_name {
            Some(n) => Some(text("buyer_name", n, true)?),
            None => None,
        };
        // An electronic series is refused up front, before anything is read
        // under the write lock, when nobody can sign it.
        let ecf_issuer = match &series {
            Some(s) if crate::ecf::is_electronic(s) => Some(
                self.ecf_issuer()
                    .map_err(|e| OpError::Refused(Refusal::EcfUnavailable(e)))?,
            ),
            _ => None,
        };
        let own_device = self.device().device;
        let low_water = self.config.fiscal_low_water;
        let stock_quotas = self.config.stock_quotas;
        // A plain sale hashes as before; a named document is part of the request.
        let hashed = if *doc == Document::default() {
            Hashed::Plain(req)
        } else {
            Hashed::Named((req, doc))
        };
        self.run(op_id, "sell", &hashed, |ctx| {
            let (shift_id, cashier, shift_event) = ctx.open_shift_event()?;
            let credit = match req.customer {
                Some(c) => Some(ctx.credit(&c)?),
                None => None,
            };
            let fiscal = match &series {
                Some(s) => {
                    let mut f = crate::fiscal::next_number(ctx.tx, own_device, s, ctx.now_ms)?
                        .ok_or_else(|| OpError::Refused(Refusal::FiscalExhausted(s.clone())))?;
                    f.buyer_tax_id = buyer.clone();
                    Some(f)
                }
                None => None,
            };
            let sale_id = SaleId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("sale_id", e.to_string()))?;
            let tx = ctx.tx;
            let outcome = sale::build_sale(
                req,
                SaleContext {
                    sale_id,
                    cashier,
                    shift_id,
                    fiscal,
                },
                |code| crate::queries::lookup_item(tx, code).ok().flatten(),
                credit,
            )?;
            let mut outcome = outcome;
            outcome.body.approval = approval.clone();
            for l in &mut outcome.body.lines {
                if let Some(o) = &mut l.price_override {
                    o.approval = override_approval.clone();
                }
            }
            // Never an override without its approval on a register with
            // staff, whatever the probe above concluded.
            if outcome.body.lines.iter().any(|l| {
                l.price_override
                    .as_ref()
                    .is_some_and(|o| o.approval.is_none())
            }) && crate::staff::has_staff(ctx.tx)?
            {
                return Err(OpError::Refused(Refusal::ApprovalRequired(
                    "price_override",
                )));
            }
            if stock_quotas {
                if let Err(short) = crate::escrow::take(ctx.tx, &mut outcome.body, ctx.now_ms)? {
                    return Err(OpError::Refused(Refusal::QuotaExceeded {
                        product: short.product,
                        name: short.name,
                        left: QtyMilli(short.left_milli),
                        wanted: QtyMilli(short.wanted_milli),
                    }));
                }
                crate::crashpoint::hit("escrow:taken");
            }
            let body = outcome.body.clone();
            // An e-CF is signed (its number is taken) while the SQL that does
            // not need its signature runs; stored and checked before commit.
            let signing = match &ecf_issuer {
                Some(issuer) => super::electronic::start_sale(
                    ctx,
                    issuer.as_ref(),
                    &body,
                    buyer_name.as_deref(),
                )?,
                None => None,
            };
            let seq = ctx.append(outcome.body.into(), vec![shift_event])?;
            let fiscal_low = match &body.fiscal {
                Some(f) => Some(crate::fiscal::numbers_left(
                    ctx.tx, own_device, &f.series, ctx.now_ms,
                )?)
                .filter(|left| *left < low_water),
                None => None,
            };
            // The receipt is queued with the sale: committed together or not at all.
            crate::print::enqueue_original(ctx.tx, sale_id, ctx.now_ms)?;
            crate::crashpoint::hit("print:enqueued");
            if let Some(signing) = signing {
                super::electronic::finish_sale(ctx, signing, seq)?;
            }
            let mut debt_id = None;
            if outcome.fiado.0 > 0 {
                let customer = req.customer.ok_or(SaleError::FiadoWithoutCustomer)?;
                let id = DebtId::new_v7(ctx.now_ms, ctx.rng)
                    .map_err(|e| invalid("debt_id", e.to_string()))?;
                let sale_event = ctx.event_id_at(seq)?;
                ctx.append(
                    DebtOpened {
                        debt_id: id,
                        customer,
                        sale_id: Some(sale_id),
                        amount: outcome.fiado,
                    }
                    .into(),
                    vec![sale_event],
                )?;
                debt_id = Some(id);
            }
            Ok(SaleResult {
                sale_id,
                seq,
                total: body.total,
                tax: body.tax,
                change: body.change,
                fiado: outcome.fiado,
                debt_id,
                fiscal_number: body.fiscal.as_ref().map(|f| f.number.clone()),
                fiscal_low,
            })
        })
    }

    /// Voids a sale (a reason is required; a sale is voided at most once).
    pub fn void(&mut self, op_id: OpId, sale_id: SaleId, reason: &str) -> Result<Written, OpError> {
        self.void_approved(op_id, sale_id, reason, None)
    }

    /// Voids a sale with a supervisor's approval (required on a register
    /// with staff; recorded in the event).
    pub fn void_approved(
        &mut self,
        op_id: OpId,
        sale_id: SaleId,
        reason: &str,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<Written, OpError> {
        let reason = text("reason", reason, true)?;
        let approval = self.approval_for(cred, "void")?;
        let own_device = self.device().device;
        let stock_quotas = self.config.stock_quotas;
        self.run(op_id, "void", &(sale_id, &reason), |ctx| {
            ctx.open_shift()?;
            let row = crate::queries::device_sale(ctx.tx, sale_id, &own_device.to_string())?;
            let (event_id, voided) = row.ok_or(OpError::Refused(Refusal::UnknownSale(sale_id)))?;
            if voided.is_some() {
                return Err(OpError::Refused(Refusal::AlreadyVoided(sale_id)));
            }
            let dep: EventId = event_id
                .parse()
                .map_err(|_| invalid("sale_id", "stored event id unreadable"))?;
            if stock_quotas {
                let sale_seq = crate::queries::sale_seq(ctx.tx, sale_id)?;
                if let Some(EventBody::SaleCreated(sale)) =
                    Journal::event(ctx.tx, sale_seq.unsigned_abs())?
                        .map(|e| e.body())
                        .transpose()
                        .map_err(|e| invalid("sale_id", e.to_string()))?
                {
                    crate::escrow::give_back(ctx.tx, &sale)?;
                }
            }
            let seq = ctx.append(
                SaleVoided {
                    sale_id,
                    reason: reason.clone(),
                    approved_by: approval.as_ref().map(|a| a.name.clone()),
                    approval: approval.clone(),
                }
                .into(),
                vec![dep],
            )?;
            Ok(Written { seqs: vec![seq] })
        })
    }
}
