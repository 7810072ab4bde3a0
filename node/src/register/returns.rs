//! Returns: by line of a sale this register knows, or by product of one it
//! does not (flagged for the hub), refunded in cash, card, transfer or store
//! credit, with a credit note when the register issues fiscal documents.
//!
//! Invariant: never more comes back than is left of a line or of a product.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{CustomerId, EventId, OpId, SaleId};
use caja_shared::kind::{PaymentMethod, SoldBy};
use caja_shared::money::{Money, QtyMilli};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::kernel::{invalid, text, Register};
use crate::error::{OpError, Refusal};
use crate::projection;
use crate::queries;

/// One line to return: the original sale's line and how much of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineRequest {
    /// Index of the line in the sale (0-based).
    pub line: u32,
    /// Quantity (thousandths; grams for weighed items).
    pub qty_milli: i64,
    /// Damaged goods do not go back to stock.
    #[serde(default)]
    pub damaged: bool,
}

/// One product to return from a sale this register does not know (its
/// original is unknown offline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductReturnRequest {
    /// SKU or barcode.
    pub code: String,
    /// Quantity (thousandths; grams for weighed items).
    pub qty_milli: i64,
    /// The unit price paid (per unit or per kg), as on the receipt; the shelf
    /// price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<i64>,
    /// Damaged goods do not go back to stock.
    #[serde(default)]
    pub damaged: bool,
}

/// A return as the cashier asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// The sale: its id or its fiscal number.
    pub sale: String,
    /// What comes back, by line of the sale (a sale this register knows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<ReturnLineRequest>,
    /// How the money goes back: cash, card, transfer or store credit.
    pub refund: PaymentMethod,
    /// The customer credited, for store credit (the sale's customer when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    /// What comes back, by product, when the register does not know the sale
    /// (not synced, or sold elsewhere): needs a supervisor's approval and is
    /// flagged for review at the hub. Refused when the sale is known here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_original: Vec<ProductReturnRequest>,
    /// For an electronic credit note (`E34`) modifying a document this
    /// register does not hold: that document's date, `yyyy-mm-dd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_date: Option<String>,
    /// The buyer's RNC or cédula, for a credit note modifying a document
    /// that names its buyer (when this register does not hold it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_tax_id: Option<String>,
    /// The buyer's name, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_name: Option<String>,
}

/// What a return wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnResult {
    /// The return.
    pub return_id: caja_shared::ids::ReturnId,
    /// The original sale, when known (or given by its id).
    pub sale_id: Option<SaleId>,
    /// Journal seq of the `SaleReturned`.
    pub seq: u64,
    /// Refunded, tax included.
    pub total: Money,
    /// The credit note's number (`B04…`), when one was issued.
    pub credit_note: Option<String>,
    /// The original sale was unknown here: the return is flagged for review.
    #[serde(default)]
    pub original_unknown: bool,
    /// The customer's store-credit balance after a store-credit refund.
    #[serde(default)]
    pub store_credit_balance: Option<Money>,
}

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// Returns (part of) a sale of this store, found by id or fiscal number:
    /// never more than is left of a line (nor of a product, counting returns
    /// made without the original), refunded by `refund` (store credit to a
    /// customer), stock back unless damaged, a credit note (`B04`) in the
    /// same transaction when the register issues fiscal documents, a
    /// supervisor's approval on a register with staff. A sale this register
    /// does not know is returned by product (`unknown_original`), with the
    /// approval `return_unknown_original`, and flagged for the hub.
    pub fn return_sale(
        &mut self,
        op_id: OpId,
        req: &ReturnRequest,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<ReturnResult, OpError> {
        let unknown = !req.unknown_original.is_empty();
        if unknown && !req.lines.is_empty() {
            return Err(invalid(
                "lines",
                "return by line of a known sale or by product of an unknown one, not both",
            ));
        }
        let count = req.lines.len() + req.unknown_original.len();
        if count == 0 || count > 200 {
            return Err(invalid("lines", "1 to 200 lines"));
        }
        if req.refund == PaymentMethod::Fiado {
            return Err(invalid("refund", "cash, card, transfer or store_credit"));
        }
        let reference = text("sale", &req.sale, true)?;
        if reference.chars().count() > 64 {
            return Err(invalid(
                "sale",
                "a sale id or fiscal number (at most 64 characters)",
            ));
        }
        for (i, l) in req.lines.iter().enumerate() {
            if l.qty_milli <= 0 {
                return Err(OpError::Refused(Refusal::Invalid {
                    field: "lines[].qty_milli",
                    reason: format!("line {i}: must be positive"),
                }));
            }
        }
        for (i, l) in req.unknown_original.iter().enumerate() {
            if l.qty_milli <= 0 {
                return Err(OpError::Refused(Refusal::Invalid {
                    field: "unknown_original[].qty_milli",
                    reason: format!("line {i}: must be positive"),
                }));
            }
            if l.unit_price.is_some_and(|p| p < 0) {
                return Err(OpError::Refused(Refusal::Invalid {
                    field: "unknown_original[].unit_price",
                    reason: format!("line {i}: must not be negative"),
                }));
            }
        }
        let action = if unknown {
            "return_unknown_original"
        } else {
            "return"
        };
        let approval = self.approval_for(cred, action)?;
        // A credit note of the register's kind: `E34` (electronic) for an
        // electronic sale when the register issues E34, else `B04`.
        let issues = |s: &str| self.config.fiscal_documents.iter().any(|d| d.as_str() == s);
        let (b04, e34) = (issues("B04"), issues("E34"));
        let e34_issuer = e34.then(|| self.ecf_issuer());
        let buyer_tax_id = match &req.buyer_tax_id {
            Some(id) => Some(
                caja_shared::fiscal::validate_tax_id(id)
                    .map_err(|e| invalid("buyer_tax_id", e.to_string()))?
                    .1,
            ),
            None => None,
        };
        let buyer_name = match &req.buyer_name {
            Some(n) => Some(text("buyer_name", n, true)?),
            None => None,
        };
        let credit_input = super::electronic::CreditNoteInput {
            modified_date: req.modified_date.as_deref(),
            buyer_tax_id: buyer_tax_id.as_deref(),
            buyer_name: buyer_name.as_deref(),
        };
        let own_device = self.device().device;
        self.run(op_id, "return", req, |ctx| {
            let (shift_id, cashier, shift_seq) = ctx.open_shift()?;
            let shift_event = ctx.event_id_at(shift_seq)?;
            let row = crate::queries::sale_by_ref(ctx.tx, &reference)?.map(|r| {
                (
                    r.sale_id,
                    r.event_id,
                    r.voided_seq,
                    r.fiscal_number,
                    r.customer_id,
                )
            });
            let (sale_id, deps, original_number, sale_customer, lines, original_unknown) = match row
            {
                Some((sale_id, sale_event, voided, number, customer)) => {
                    if unknown {
                        return Err(invalid(
                            "unknown_original",
                            format!("the sale {reference} is known here: return it by line"),
                        ));
                    }
                    let sale_id: SaleId = sale_id
                        .parse()
                        .map_err(|_| invalid("sale", "stored sale id unreadable"))?;
                    if voided.is_some() {
                        return Err(OpError::Refused(Refusal::AlreadyVoided(sale_id)));
                    }
                    let sale_event: EventId = sale_event
                        .parse()
                        .map_err(|_| invalid("sale", "stored event id unreadable"))?;
                    let lines = known_return_lines(ctx.tx, sale_id, number.as_deref(), &req.lines)?;
                    let customer: Option<CustomerId> = customer.and_then(|c| c.parse().ok());
                    (
                        Some(sale_id),
                        vec![shift_event, sale_event],
                        number,
                        customer,
                        lines,
                        None,
                    )
                }
                None if !unknown => {
                    return Err(OpError::Refused(Refusal::UnknownSaleRef(
                        reference.chars().take(64).collect(),
                    )))
                }
                None => {
                    let lines = unknown_return_lines(ctx.tx, &req.unknown_original)?;
                    let by_id: Option<SaleId> = reference.parse().ok();
                    (
                        by_id,
                        vec![shift_event],
                        // A fiscal number is what a credit note modifies.
                        by_id.is_none().then(|| reference.clone()),
                        None,
                        lines,
                        Some(caja_shared::kind::UnknownOriginal {
                            reference: reference.clone(),
                        }),
                    )
                }
            };
            let customer = match req.refund {
                PaymentMethod::StoreCredit => {
                    let c = req.customer.or(sale_customer).ok_or_else(|| {
                        invalid("customer", "a store-credit refund needs a customer")
                    })?;
                    ctx.customer_exists(&c)?;
                    Some(c)
                }
                _ => None,
            };
            let total = Money(lines.iter().map(|l| l.total.0).sum());
            let tax = Money(lines.iter().map(|l| l.tax.0).sum());
            let electronic = original_number
                .as_deref()
                .is_some_and(|n| n.starts_with('E'));
            let credit_series = match (electronic && e34, b04) {
                (true, _) => Some("E34".to_owned()),
                (false, true) => Some("B04".to_owned()),
                (false, false) => None,
            };
            // An electronic credit note: who signs it, what it modifies and
            // whom it names, decided before anything is appended.
            let electronic_note = match (credit_series.as_deref(), &original_number) {
                (Some(series), Some(ncf)) if crate::ecf::is_electronic(series) => {
                    let issuer = e34_issuer
                        .clone()
                        .unwrap_or(Err(crate::ecf::EcfUnavailable::NoIssuer))?;
                    let plan = super::electronic::plan_credit_note(ctx, ncf, total, &credit_input)?;
                    Some((issuer, plan))
                }
                _ => None,
            };
            let credit_note = match &credit_series {
                Some(series) => {
                    let mut f = crate::fiscal::next_number(ctx.tx, own_device, series, ctx.now_ms)?
                        .ok_or_else(|| {
                            OpError::Refused(Refusal::FiscalExhausted(series.clone()))
                        })?;
                    f.modifies = original_number.clone();
                    f.buyer_tax_id = electronic_note
                        .as_ref()
                        .and_then(|(_, p)| p.buyer_tax_id.clone());
                    Some(f)
                }
                None => None,
            };
            let return_id = caja_shared::ids::ReturnId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("return_id", e.to_string()))?;
            let number = credit_note.as_ref().map(|f| f.number.clone());
            let flagged = original_unknown.is_some();
            let returned = caja_shared::kind::SaleReturned {
                return_id,
                sale_id,
                shift_id,
                cashier,
                lines,
                total,
                tax,
                refund: req.refund,
                customer,
                credit_note,
                approval: approval.clone(),
                original_unknown,
            };
            let seq = ctx.append(returned.clone().into(), deps)?;
            if let Some((issuer, plan)) = &electronic_note {
                super::electronic::issue_credit_note(ctx, issuer.as_ref(), &returned, seq, plan)?;
            }
            // The slip is queued with the return: committed together or not at all.
            crate::print::enqueue_return(ctx.tx, return_id, seq, ctx.now_ms)?;
            let store_credit_balance = match customer {
                Some(c) => Some(Money(projection::store_credit_balance(
                    ctx.tx,
                    &c.to_string(),
                )?)),
                None => None,
            };
            Ok(ReturnResult {
                return_id,
                sale_id,
                seq,
                total,
                credit_note: number,
                original_unknown: flagged,
                store_credit_balance,
            })
        })
    }
}

/// The lines of a return of a sale this register knows: never more than is
/// left of a line, nor of a product (returns made without the original,
/// matched by the sale's id or fiscal number, count against its products).
fn known_return_lines(
    tx: &Connection,
    sale_id: SaleId,
    fiscal_number: Option<&str>,
    req: &[ReturnLineRequest],
) -> Result<Vec<caja_shared::kind::ReturnLine>, OpError> {
    let sale = sale_id.to_string();
    let mut lines = Vec::new();
    let mut taken: std::collections::BTreeMap<u32, i64> = std::collections::BTreeMap::new();
    let mut taken_product: std::collections::BTreeMap<String, i64> =
        std::collections::BTreeMap::new();
    for (index, l) in req.iter().enumerate() {
        let orig = queries::sale_line(tx, &sale, l.line)?;
        let (sku, sold, total, tax) = orig.ok_or_else(|| {
            OpError::Refused(Refusal::Invalid {
                field: "lines[].line",
                reason: format!("line {index}: the sale has no line {}", l.line),
            })
        })?;
        let (returned, refunded, refunded_tax) = queries::line_returned(tx, &sale, l.line)?;
        // What is left of the product: sold in the sale, less returned by
        // line and returned without the original.
        let (sold_p, returned_p, unknown_p) =
            queries::product_returned(tx, &sale, &sku, fiscal_number)?;
        let before = taken.get(&l.line).copied().unwrap_or(0);
        let before_p = taken_product.get(&sku).copied().unwrap_or(0);
        let left_line = sold - returned - before;
        let left = left_line.min(sold_p - returned_p - unknown_p - before_p);
        if l.qty_milli > left {
            return Err(OpError::Refused(Refusal::ReturnTooMuch {
                index,
                line: l.line,
                left: QtyMilli(left.max(0)),
            }));
        }
        taken.insert(l.line, before + l.qty_milli);
        taken_product.insert(sku.clone(), before_p + l.qty_milli);
        // The whole rest of a line refunds exactly what is left of its
        // amount; a part, its share rounded once.
        let (t, x) = if l.qty_milli == left_line && before == 0 {
            (total - refunded, tax - refunded_tax)
        } else {
            let share = |amount: i64| {
                caja_shared::money::div_round_half_away(
                    i128::from(amount) * i128::from(l.qty_milli),
                    i128::from(sold),
                )
                .map_err(|e| invalid("lines", e.to_string()))
            };
            (share(total)?, share(tax)?)
        };
        lines.push(caja_shared::kind::ReturnLine {
            line: Some(l.line),
            product: sku
                .parse()
                .map_err(|_| invalid("lines", "stored sku unreadable"))?,
            qty_milli: QtyMilli(l.qty_milli),
            total: Money(t),
            tax: Money(x),
            damaged: l.damaged,
            tax_bp: None,
        });
    }
    Ok(lines)
}

/// The lines of a return whose original this register does not know: each
/// product from the catalog, its amount at the price paid (the shelf price
/// when none is given) and its tax at the product's rate.
fn unknown_return_lines(
    tx: &Connection,
    req: &[ProductReturnRequest],
) -> Result<Vec<caja_shared::kind::ReturnLine>, OpError> {
    let mut lines = Vec::new();
    for (index, l) in req.iter().enumerate() {
        let item = crate::queries::lookup_item(tx, &l.code)?.ok_or_else(|| {
            OpError::Refused(Refusal::UnknownProduct(l.code.chars().take(64).collect()))
        })?;
        if item.sold_by == SoldBy::Unit && l.qty_milli % QtyMilli::PER_UNIT != 0 {
            return Err(OpError::Refused(Refusal::Invalid {
                field: "unknown_original[].qty_milli",
                reason: format!("line {index}: {} is sold by the piece", item.sku),
            }));
        }
        let price = match (l.unit_price, item.unit_price) {
            (Some(p), _) => Money(p),
            (None, Some(p)) => p,
            (None, None) => {
                return Err(OpError::Refused(Refusal::Invalid {
                    field: "unknown_original[].unit_price",
                    reason: format!(
                        "line {index}: {} has no price: give the price paid",
                        item.sku
                    ),
                }))
            }
        };
        let a = caja_shared::money::LineAmounts::compute(
            price,
            QtyMilli(l.qty_milli),
            Money::ZERO,
            item.tax_bp,
        )
        .map_err(|e| {
            OpError::Refused(Refusal::Invalid {
                field: "unknown_original[].qty_milli",
                reason: format!("line {index}: {e}"),
            })
        })?;
        lines.push(caja_shared::kind::ReturnLine {
            line: None,
            product: item.sku,
            qty_milli: QtyMilli(l.qty_milli),
            total: a.total,
            tax: a.tax,
            damaged: l.damaged,
            tax_bp: Some(item.tax_bp),
        });
    }
    Ok(lines)
}
