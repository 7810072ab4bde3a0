//! Partial refunds of payment intents: a `refunded` report of part of a
//! captured intent (or completing earlier parts), decided by
//! [`crate::payments::decide_refund`]; one that arrives before its capture
//! (the provider's webhooks come in any order) is stored `held` and decided,
//! in arrival order, as soon as the capture is applied.
//!
//! Head office's refund requests to a provider are checked and audited here
//! ([`refund_request`]) before the hub asks (the HTTP call is outside the
//! transaction); the refund itself comes back as the provider's webhook.
//!
//! Invariant: the refunded total never exceeds the captured amount, and a
//! report is applied at most once (its row leaves `held` when decided). Runs
//! in the webhook's write transaction, like the rest of `payments`.

use caja_shared::digest::Hash256;
use caja_shared::ids::IntentId;
use caja_shared::kind::{EventBody, IntentState};
use caja_shared::money::Money;

use super::db::{params, Conn};
use super::payments_intents::{
    audit_decision, load_intent, updated_body, Decided, IntentRow, WebhookAnswer,
};
use crate::audit::{self, AuditKind};
use crate::payments::{self, RefundStep, Webhook};
use crate::storage::alerts::raise_alert;
use crate::storage::audit_log::append_audit;
use crate::storage::error::{Answer, StorageError};
use crate::storage::ingest::hub_chain::append_to_hub_chain;
use crate::storage::writer::Env;

/// A `refunded` report of part of an intent (or completing earlier partial
/// refunds): stored, decided, audited; when applied, a `PaymentIntentUpdated`
/// hub event carrying the amount refunded so far (the register learns it
/// with its next pull); before the capture, held.
#[allow(clippy::too_many_arguments)]
pub(super) fn partial_refund(
    conn: &Conn,
    env: &mut Env,
    provider: &str,
    w: &Webhook,
    body_hash: Hash256,
    mut intent: IntentRow,
    now: i64,
) -> Result<WebhookAnswer, StorageError> {
    let key: i64 = conn
        .prepare_cached(
            "INSERT INTO payment_webhooks (provider, provider_event_id, intent_id, state, amount, auth_code, body_hash, received_ms, outcome, reason, from_state, decided_ms, terminal_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held', NULL, $9, $8, $10) RETURNING webhook_id",
        )?
        .query_row(
            params![
                provider,
                w.event_id,
                intent.intent_id.to_string(),
                w.state.as_str(),
                w.amount.0,
                w.auth_code,
                body_hash.to_hex(),
                now,
                intent.state.as_str(),
                w.terminal_id
            ],
            |r| r.get(0),
        )?;
    let (outcome, reason) = decide_one(conn, env, provider, key, w, &mut intent, true, now)?;
    Ok(WebhookAnswer {
        outcome,
        reason: reason.map(|r| r.as_str().to_owned()),
        first_outcome: None,
        intent_id: Some(intent.intent_id.to_string()),
        state: Some(intent.state.as_str()),
        transitions: usize::from(outcome == "applied"),
    })
}

/// Decides, in arrival order, the partial refunds of `intent` held before its
/// capture, now that it is `captured` — or now that it can never be (voided,
/// failed, expired): then each is rejected as an invalid transition, audited
/// and alerted, so no refund report waits forever unseen. Returns how many
/// were applied.
pub(super) fn drain_held_refunds(
    conn: &Conn,
    env: &mut Env,
    provider: &str,
    intent: &mut IntentRow,
    now: i64,
) -> Result<usize, StorageError> {
    if intent.state != IntentState::Captured
        && payments::reachable(intent.state, IntentState::Captured)
    {
        return Ok(0);
    }
    let held: Vec<(i64, String, i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT webhook_id, provider_event_id, amount, auth_code FROM payment_webhooks
             WHERE intent_id = $1 AND outcome = 'held' AND state = 'refunded' AND amount <> $2
             ORDER BY webhook_id",
        )?
        .query_map(
            params![intent.intent_id.to_string(), intent.amount.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?
        .collect::<Result<_, _>>()?;
    let mut applied = 0;
    for (key, event_id, amount, auth_code) in held {
        let w = Webhook {
            event_id,
            state: IntentState::Refunded,
            intent_id: Some(intent.intent_id),
            auth_code,
            terminal_id: None,
            partial: true,
            amount: Money(amount),
        };
        let (outcome, _) = decide_one(conn, env, provider, key, &w, intent, false, now)?;
        if outcome == "applied" {
            applied += 1;
        }
    }
    Ok(applied)
}

fn refunded_so_far(conn: &Conn, intent: IntentId) -> Result<Money, StorageError> {
    Ok(Money(
        conn.prepare_cached("SELECT refunded_amount FROM payment_intents WHERE intent_id = $1")?
            .query_row([intent.to_string()], |r| r.get(0))?,
    ))
}

/// Decides the stored report `key` (`w`) against `intent` and records the
/// outcome: applied (intent, audit, hub event), rejected (audit, alert), or
/// left held (audited when it `arrived`, as the state machine's holds are).
#[allow(clippy::too_many_arguments)]
fn decide_one(
    conn: &Conn,
    env: &mut Env,
    provider: &str,
    key: i64,
    w: &Webhook,
    intent: &mut IntentRow,
    arrived: bool,
    now: i64,
) -> Result<(&'static str, Option<payments::RejectReason>), StorageError> {
    let from = intent.state;
    let refunded = refunded_so_far(conn, intent.intent_id)?;
    let step = payments::decide_refund(from, intent.amount, refunded, w.amount);
    let intent_text = intent.intent_id.to_string();
    let total = match step {
        RefundStep::Hold => {
            if arrived {
                let d = Decided {
                    provider,
                    event_id: &w.event_id,
                    intent: Some(&intent_text),
                    outcome: "held",
                    reason: None,
                    from: Some(from),
                };
                audit_decision(conn, env, Some(intent.store), &d, w, now)?;
                tracing::info!(intent = %intent.intent_id, provider, event = %w.event_id, refund = w.amount.0, at = from.as_str(), "partial refund held until the capture arrives");
            }
            return Ok(("held", None));
        }
        RefundStep::Reject(r) => {
            conn.prepare_cached(
                "UPDATE payment_webhooks SET outcome = 'rejected', reason = $2, from_state = $3, decided_ms = $4 WHERE webhook_id = $1",
            )?
            .execute(params![key, r.as_str(), from.as_str(), now])?;
            let d = Decided {
                provider,
                event_id: &w.event_id,
                intent: Some(&intent_text),
                outcome: "rejected",
                reason: Some(r.as_str()),
                from: Some(from),
            };
            audit_decision(conn, env, Some(intent.store), &d, w, now)?;
            tracing::warn!(intent = %intent.intent_id, provider, event = %w.event_id, amount = w.amount.0, reason = r.as_str(), "partial refund rejected, not applied");
            if r.alerts() {
                raise_alert(
                    conn,
                    "payment_transition_rejected",
                    Some(intent.store),
                    Some(intent.device),
                    now,
                    &format!(
                        "{provider} reported a refund of {} centavos for intent {} ({} centavos, {} refunded, state {}): {}",
                        w.amount.0,
                        intent.intent_id,
                        intent.amount.0,
                        refunded.0,
                        from.as_str(),
                        r.as_str()
                    ),
                )?;
            }
            return Ok(("rejected", Some(r)));
        }
        RefundStep::Partial { refunded } => refunded,
        RefundStep::Full => {
            intent.state = IntentState::Refunded;
            intent.amount
        }
    };
    conn.prepare_cached(
        "UPDATE payment_webhooks SET outcome = 'applied', from_state = $2, decided_ms = $3 WHERE webhook_id = $1",
    )?
    .execute(params![key, from.as_str(), now])?;
    if arrived {
        let d = Decided {
            provider,
            event_id: &w.event_id,
            intent: Some(&intent_text),
            outcome: "applied",
            reason: None,
            from: Some(from),
        };
        audit_decision(conn, env, Some(intent.store), &d, w, now)?;
    }
    conn.prepare_cached(
        "UPDATE payment_intents SET state = $2, refunded_amount = $3, updated_ms = $4 WHERE intent_id = $1",
    )?
    .execute(params![
        intent_text,
        intent.state.as_str(),
        total.0,
        now
    ])?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::PaymentIntentTransition,
        now,
        Some(intent.store),
        audit::data([
            ("intent_id", audit::s(intent.intent_id)),
            ("provider", audit::s(provider)),
            ("provider_event_id", audit::s(&w.event_id)),
            ("from", audit::s(from.as_str())),
            ("to", audit::s(intent.state.as_str())),
            ("amount", audit::n(intent.amount.0)),
            ("refund", audit::n(w.amount.0)),
            ("refunded", audit::n(total.0)),
        ]),
    )?;
    tracing::info!(intent = %intent.intent_id, provider, event = %w.event_id, refund = w.amount.0, refunded = total.0, "payment intent partly refunded");
    let mut body = updated_body(intent, Some(w.event_id.clone()));
    if let EventBody::PaymentIntentUpdated(u) = &mut body {
        u.refunded = Some(total);
    }
    append_to_hub_chain(conn, env, intent.store, &[body])?;
    Ok(("applied", None))
}

/// Whom to ask for a refund the storage let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundTarget {
    /// The intent's provider.
    pub provider: String,
    /// What is left to refund after this request (if the provider does it).
    pub left_after: Money,
}

/// Checks a refund request against the intent as stored
/// ([`payments::check_refund_request`]) and audits it
/// (`payment_refund_requested`); 404 for an unknown intent, 409 when its
/// provider is not in `callable` (no URL to ask): nothing audited then.
pub(super) fn refund_request(
    conn: &Conn,
    env: &mut Env,
    req: &payments::RefundRequest,
    callable: &[String],
) -> Result<Answer<RefundTarget>, StorageError> {
    let now = env.now_ms();
    let Some(intent) = load_intent(conn, req.intent_id)? else {
        return Ok(Err(crate::wire::ApiError::not_found(format!(
            "no payment intent {}",
            req.intent_id
        ))));
    };
    if !callable.contains(&intent.provider) {
        return Ok(Err(crate::wire::ApiError::new(
            409,
            "provider_not_callable",
            format!(
                "no payment_provider_urls entry for {}: refund it at the provider",
                intent.provider
            ),
        )));
    }
    let refunded = refunded_so_far(conn, intent.intent_id)?;
    if let Err(e) =
        payments::check_refund_request(intent.state, intent.amount, refunded, req.amount)
    {
        return Ok(Err(e));
    }
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::PaymentRefundRequested,
        now,
        Some(intent.store),
        audit::data([
            ("intent_id", audit::s(intent.intent_id)),
            ("provider", audit::s(&intent.provider)),
            ("amount", audit::n(req.amount.0)),
            ("refunded", audit::n(refunded.0)),
            ("request_id", audit::s(req.request_id)),
        ]),
    )?;
    tracing::info!(intent = %intent.intent_id, provider = %intent.provider, amount = req.amount.0, request = %req.request_id, "refund asked of the provider");
    Ok(Ok(RefundTarget {
        provider: intent.provider,
        left_after: Money(intent.amount.0 - refunded.0 - req.amount.0),
    }))
}
