//! Customers: creating, updating and editing them, their fiado payments (oldest debt
//! first) and their store-credit balance.
//!
//! Invariant: a payment never exceeds what the customer owes.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{CustomerId, DebtId, EventId, OpId, PaymentId};
use caja_shared::kind::{CustomerUpserted, DebtPaymentTaken, PaymentMethod};
use caja_shared::money::Money;
use serde::{Deserialize, Serialize};

use super::kernel::{invalid, text, Register};
use crate::error::{OpError, Refusal};
use crate::projection;

/// Result of a debt payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtPaymentResult {
    /// Journal seqs written (one per debt paid).
    pub seqs: Vec<u64>,
    /// What the customer still owes.
    pub balance: Money,
}

/// A customer as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    /// Existing customer to update; a new one when absent.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
    /// Name.
    pub name: String,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// RNC or cédula.
    #[serde(default)]
    pub tax_id: Option<String>,
    /// Credit limit in centavos.
    pub credit_limit: i64,
}

/// A change to an existing customer: each field given replaces the one the
/// register knows; absent fields stay. An empty phone or RNC/cédula clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerEdit {
    /// The customer.
    pub customer_id: CustomerId,
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New phone (empty: none).
    #[serde(default)]
    pub phone: Option<String>,
    /// New RNC or cédula (empty: none), checked with its check digit.
    #[serde(default)]
    pub tax_id: Option<String>,
    /// New credit limit in centavos.
    #[serde(default)]
    pub credit_limit: Option<i64>,
}

/// Result of a customer upsert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerResult {
    /// The customer.
    pub customer_id: CustomerId,
    /// Journal seq written.
    pub seq: u64,
}

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// A customer's store-credit balance as this register knows it.
    pub fn store_credit_balance(&self, customer: CustomerId) -> Result<Money, OpError> {
        let conn = self.conn();
        if crate::queries::credit_limit(conn, &customer)?.is_none() {
            return Err(OpError::Refused(Refusal::UnknownCustomer(customer)));
        }
        Ok(Money(projection::store_credit_balance(
            conn,
            &customer.to_string(),
        )?))
    }

    /// Takes a payment on a customer's fiado, paying the oldest debts first.
    pub fn pay_debt(
        &mut self,
        op_id: OpId,
        customer: CustomerId,
        amount: Money,
        method: PaymentMethod,
    ) -> Result<DebtPaymentResult, OpError> {
        if amount.0 <= 0 {
            return Err(invalid("amount", "must be positive"));
        }
        if matches!(method, PaymentMethod::Fiado | PaymentMethod::StoreCredit) {
            return Err(invalid(
                "method",
                "a debt is paid with cash, card or transfer",
            ));
        }
        self.run(op_id, "debt_pay", &(customer, amount, method), |ctx| {
            ctx.open_shift()?;
            ctx.customer_exists(&customer)?;
            let balance = Money(projection::customer_balance(ctx.tx, &customer.to_string())?);
            if amount.0 > balance.0 {
                return Err(OpError::Refused(Refusal::DebtOverpaid { amount, balance }));
            }
            let debts = crate::queries::open_debts(ctx.tx, &customer)?;
            let mut left = amount.0;
            let mut seqs = Vec::new();
            for (debt_id, event_id, owed) in debts {
                if left == 0 {
                    break;
                }
                let part = left.min(owed);
                left -= part;
                let payment_id = PaymentId::new_v7(ctx.now_ms, ctx.rng)
                    .map_err(|e| invalid("payment_id", e.to_string()))?;
                let dep: EventId = event_id
                    .parse()
                    .map_err(|_| invalid("debt", "stored event id unreadable"))?;
                let debt_id: DebtId = debt_id
                    .parse()
                    .map_err(|_| invalid("debt", "stored debt id unreadable"))?;
                seqs.push(
                    ctx.append(
                        DebtPaymentTaken {
                            payment_id,
                            debt_id,
                            customer,
                            method,
                            amount: Money(part),
                        }
                        .into(),
                        vec![dep],
                    )?,
                );
            }
            debug_assert_eq!(left, 0, "balance covered the payment");
            let balance = Money(projection::customer_balance(ctx.tx, &customer.to_string())?);
            Ok(DebtPaymentResult { seqs, balance })
        })
    }

    /// Edits an existing customer: the fields given replace the ones this
    /// register knows, in one `CustomerUpserted` (last writer wins at the
    /// hub, by HLC). Refused, nothing written, for an unknown customer, an
    /// empty name, a negative limit or an RNC/cédula whose check digit fails.
    pub fn edit_customer(
        &mut self,
        op_id: OpId,
        edit: &CustomerEdit,
    ) -> Result<CustomerResult, OpError> {
        let name = edit
            .name
            .as_deref()
            .map(|n| text("name", n, true))
            .transpose()?;
        let phone = edit
            .phone
            .as_deref()
            .map(|p| text("phone", p, false))
            .transpose()?;
        let tax_id = match edit.tax_id.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(String::new()),
            Some(t) => Some(
                caja_shared::fiscal::validate_tax_id(t)
                    .map_err(|e| invalid("tax_id", e.to_string()))?
                    .1,
            ),
        };
        if edit.credit_limit.is_some_and(|l| l < 0) {
            return Err(invalid("credit_limit", "must not be negative"));
        }
        let customer_id = edit.customer_id;
        self.run(op_id, "customer_edit", edit, |ctx| {
            let (old_name, old_phone, old_tax, old_limit) =
                crate::queries::customer_fields(ctx.tx, &customer_id)?
                    .ok_or(OpError::Refused(Refusal::UnknownCustomer(customer_id)))?;
            let seq = ctx.append(
                CustomerUpserted {
                    customer_id,
                    name: name.clone().unwrap_or(old_name),
                    phone: phone
                        .clone()
                        .map_or(old_phone, |p| Some(p).filter(|p| !p.is_empty())),
                    tax_id: tax_id
                        .clone()
                        .map_or(old_tax, |t| Some(t).filter(|t| !t.is_empty())),
                    credit_limit: Money(edit.credit_limit.unwrap_or(old_limit)),
                }
                .into(),
                vec![],
            )?;
            Ok(CustomerResult { customer_id, seq })
        })
    }

    /// Creates or updates a customer.
    pub fn upsert_customer(
        &mut self,
        op_id: OpId,
        req: &CustomerRequest,
    ) -> Result<CustomerResult, OpError> {
        let name = text("name", &req.name, true)?;
        let phone = req
            .phone
            .as_deref()
            .map(|p| text("phone", p, false))
            .transpose()?;
        let tax_id = req
            .tax_id
            .as_deref()
            .map(|t| text("tax_id", t, false))
            .transpose()?;
        if req.credit_limit < 0 {
            return Err(invalid("credit_limit", "must not be negative"));
        }
        self.run(op_id, "customer", req, |ctx| {
            let customer_id = match req.customer_id {
                Some(c) => {
                    ctx.customer_exists(&c)?;
                    c
                }
                None => CustomerId::new_v7(ctx.now_ms, ctx.rng)
                    .map_err(|e| invalid("customer_id", e.to_string()))?,
            };
            let seq = ctx.append(
                CustomerUpserted {
                    customer_id,
                    name: name.clone(),
                    phone: phone.clone().filter(|p| !p.is_empty()),
                    tax_id: tax_id.clone().filter(|t| !t.is_empty()),
                    credit_limit: Money(req.credit_limit),
                }
                .into(),
                vec![],
            )?;
            Ok(CustomerResult { customer_id, seq })
        })
    }
}
