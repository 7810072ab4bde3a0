//! The rows of payment intents as the payments storage modules share them:
//! an intent as stored ([`IntentRow`], [`load_intent`]), its hub event
//! ([`updated_body`]), the audit of a webhook's decision ([`audit_decision`])
//! and the webhook's answer ([`WebhookAnswer`]). Below both `payments` and
//! `payments_refunds`, so neither imports the other's internals.
//!
//! Invariant: reads and one audit append only; the decisions are
//! `crate::payments`'.

use caja_shared::canonical::Value;
use caja_shared::ids::{DeviceId, IntentId, SaleId, StoreId};
use caja_shared::kind::{EventBody, IntentState, PaymentIntentUpdated, PaymentMethod};
use caja_shared::money::Money;
use serde::Serialize;

use super::db::{Conn, OptionalExtension};
use crate::audit::{self, AuditKind};
use crate::payments::Webhook;
use crate::projection;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, parse};
use crate::storage::error::StorageError;
use crate::storage::writer::Env;

/// What the hub did with a webhook delivery (the 200 answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookAnswer {
    /// `applied`, `held`, `rejected`, `recorded` or `duplicate`.
    pub outcome: &'static str,
    /// For `rejected`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `duplicate`: what the first delivery's outcome is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_outcome: Option<String>,
    /// The intent concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent_id: Option<String>,
    /// The intent's state after this delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// Transitions this delivery caused (itself and held ones it unblocked).
    pub transitions: usize,
}

pub(super) fn state_of(s: &str) -> Result<IntentState, StorageError> {
    IntentState::parse(s).ok_or_else(|| corrupt(format!("intent state {s:?}")))
}

pub(super) struct IntentRow {
    pub(super) intent_id: IntentId,
    pub(super) store: StoreId,
    pub(super) device: DeviceId,
    pub(super) sale_id: SaleId,
    pub(super) provider: String,
    pub(super) method: PaymentMethod,
    pub(super) amount: Money,
    pub(super) state: IntentState,
    pub(super) auth_code: Option<String>,
}

/// The columns of an intent row as stored.
type IntentCols = (
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
);

pub(super) fn load_intent(conn: &Conn, id: IntentId) -> Result<Option<IntentRow>, StorageError> {
    let row: Option<IntentCols> = conn
        .prepare_cached(
            "SELECT store_id, device_id, sale_id, provider, method, amount, state, auth_code
             FROM payment_intents WHERE intent_id = $1",
        )?
        .query_row([id.to_string()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .optional()?;
    let Some((store, device, sale, provider, method, amount, state, auth_code)) = row else {
        return Ok(None);
    };
    Ok(Some(IntentRow {
        intent_id: id,
        store: parse(&store)?,
        device: parse(&device)?,
        sale_id: parse(&sale)?,
        provider,
        method: projection::parse_method(&method)
            .ok_or_else(|| corrupt(format!("payment method {method:?}")))?,
        amount: Money(amount),
        state: state_of(&state)?,
        auth_code,
    }))
}

pub(super) fn updated_body(i: &IntentRow, provider_event_id: Option<String>) -> EventBody {
    EventBody::PaymentIntentUpdated(PaymentIntentUpdated {
        intent_id: i.intent_id,
        sale_id: i.sale_id,
        device: i.device,
        provider: i.provider.clone(),
        method: i.method,
        amount: i.amount,
        state: i.state,
        provider_event_id,
        auth_code: i.auth_code.clone(),
        refunded: None,
    })
}

pub(super) struct Decided<'a> {
    pub(super) provider: &'a str,
    pub(super) event_id: &'a str,
    pub(super) intent: Option<&'a str>,
    pub(super) outcome: &'static str,
    pub(super) reason: Option<&'a str>,
    pub(super) from: Option<IntentState>,
}

pub(super) fn audit_decision(
    conn: &Conn,
    env: &mut Env,
    store: Option<StoreId>,
    d: &Decided<'_>,
    w: &Webhook,
    now: i64,
) -> Result<(), StorageError> {
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::PaymentWebhookDecided,
        now,
        store,
        audit::data([
            ("provider", audit::s(d.provider)),
            ("provider_event_id", audit::s(d.event_id)),
            ("intent_id", d.intent.map_or(Value::Null, audit::s)),
            ("state", audit::s(w.state.as_str())),
            ("amount", audit::n(w.amount.0)),
            (
                "auth_code",
                w.auth_code.as_deref().map_or(Value::Null, audit::s),
            ),
            ("outcome", audit::s(d.outcome)),
            ("reason", d.reason.map_or(Value::Null, audit::s)),
            (
                "from_state",
                d.from.map_or(Value::Null, |s| audit::s(s.as_str())),
            ),
        ]),
    )?;
    Ok(())
}
