//! Payment intents for a sale's card and transfer/QR payments, asked for
//! right after the sale is durable: online, the hub creates one intent per
//! payment (its later states arrive as hub events); offline, nothing is
//! asked and the payment stays as the sale recorded it, with the terminal's
//! or the bank's reference, for the hub to reconcile.
//!
//! Invariant: the sale is never changed or refused here (it is already in
//! the journal); a failure only says which payments have no intent. The
//! request id of each intent is derived from the sale id and the payment's
//! position, so asking again (a retried `sell --op`) gets the same intent.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{IntentId, RequestId, SaleId};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use serde::Serialize;

use super::engine::{SyncEngine, SyncError};

/// What became of one payment's intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleIntent {
    /// The payment's position in the sale.
    pub index: usize,
    /// `card` or `transfer` (transfer covers QR payments).
    pub method: PaymentMethod,
    /// The amount.
    pub amount: Money,
    /// The reference the sale recorded (terminal code, bank reference).
    pub reference: Option<String>,
    /// The hub's intent, when one was created.
    pub intent_id: Option<IntentId>,
    /// Why there is none (offline, hub refused); the reference stands.
    pub error: Option<String>,
}

/// Whether a payment of `method` goes through a provider's intent.
pub fn needs_intent(method: PaymentMethod) -> bool {
    matches!(method, PaymentMethod::Card | PaymentMethod::Transfer)
}

/// The request id of the intent for payment `index` of `sale`: the sale's
/// UUID v7 with its last 48 bits mixed with the position (so still a v7,
/// the same every time for the same payment).
pub fn request_id_for(sale: SaleId, index: usize) -> RequestId {
    let s = sale.to_string();
    let (head, tail) = s.split_at(s.len() - 12);
    let bits = u64::from_str_radix(tail, 16).unwrap_or(0);
    let mixed = (bits ^ (0x1a7e_0000_0000 | (index as u64 + 1))) & 0xffff_ffff_ffff;
    let id = format!("{head}{mixed:012x}");
    // The head (version and variant) is the sale's: always a valid v7.
    id.parse().unwrap_or_else(|_| {
        debug_assert!(false, "derived request id {id} must parse");
        RequestId::from_uuid(*sale.as_uuid())
    })
}

impl<C: Clock, R: RandomSource> SyncEngine<C, R> {
    /// Asks the hub for an intent for each card and transfer/QR payment of a
    /// sale (`payments`: method, amount, reference in the sale's order) with
    /// `provider`. Stops asking after the first network failure (offline: the
    /// rest would fail the same way) and reports every payment.
    pub fn create_sale_intents(
        &mut self,
        sale: SaleId,
        provider: &str,
        payments: &[(PaymentMethod, Money, Option<String>)],
    ) -> Vec<SaleIntent> {
        let mut out = Vec::new();
        let mut offline: Option<String> = None;
        for (index, (method, amount, reference)) in payments.iter().enumerate() {
            if !needs_intent(*method) {
                continue;
            }
            let mut r = SaleIntent {
                index,
                method: *method,
                amount: *amount,
                reference: reference.clone(),
                intent_id: None,
                error: None,
            };
            if let Some(why) = &offline {
                r.error = Some(why.clone());
            } else {
                match self.create_payment_intent(
                    request_id_for(sale, index),
                    sale,
                    provider,
                    *method,
                    *amount,
                ) {
                    Ok(id) => r.intent_id = Some(id),
                    Err(e) => {
                        let why = e.to_string();
                        if matches!(e, SyncError::Hub(_)) {
                            offline = Some(why.clone());
                        }
                        r.error = Some(why);
                    }
                }
            }
            out.push(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_v7_stable_and_distinct_per_payment() {
        let sale: SaleId = "019aaf70-d618-7000-8000-000000000001".parse().unwrap();
        let a = request_id_for(sale, 0);
        let b = request_id_for(sale, 1);
        assert_eq!(a, request_id_for(sale, 0));
        assert_ne!(a, b);
        assert!(a.to_string().starts_with("019aaf70-d618-7000-8000-"));
        assert!(needs_intent(PaymentMethod::Card));
        assert!(needs_intent(PaymentMethod::Transfer));
        assert!(!needs_intent(PaymentMethod::Cash));
    }
}
