//! The SQL of payment intents, provider webhooks and the reconciliation of
//! card payments (see `crate::payments` for the decisions).
//!
//! Everything here runs on the single writer thread, inside its `BEGIN
//! IMMEDIATE` transaction: that serialization is the "row lock" on an
//! intent. A webhook's first step is the lookup of its (provider, event id),
//! backed by a UNIQUE constraint, so of any number of concurrent deliveries of
//! one event exactly one is decided and the others find its row and answer
//! `duplicate`; two different events for one intent are decided one after
//! the other, the second against the state the first left.

use super::db::{params, Conn, OptionalExtension, Params};
use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use caja_shared::ids::{DeviceId, EventId, IntentId, SaleId, StoreId};
use caja_shared::kind::{EventBody, IntentState, PaymentMethod};
use caja_shared::money::Money;
use serde::Serialize;

use super::device_request::{begin, record_answer, Begun};
use super::payments_intents::{
    audit_decision, load_intent, state_of, updated_body, Decided, IntentRow, WebhookAnswer,
};
use crate::audit::{self, AuditKind};
use crate::auth::Authentic;
use crate::conflict::ConflictReason;
use crate::payments::{
    self, CardFacts, CardReference, Confirmation, Delivery, IntentRequest, Outcome, Verdict,
    Webhook,
};
use crate::projection::{self, Conflict, Subject};
use crate::storage::alerts::raise_alert;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::corrupt;
use crate::storage::codec::parse;
use crate::storage::error::Answer;
use crate::storage::error::StorageError;
use crate::storage::ingest::hub_chain::append_to_hub_chain;
use crate::storage::writer::Env;
use crate::wire::ApiError;

/// Most applied events one reconciliation pass reads.
const SCAN_BATCH: i64 = 10_000;

/// What a reconciliation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Card payments newly found in applied events.
    pub found: u64,
    /// Card payments judged in this pass.
    pub checked: u64,
    /// New `manual` conflicts.
    pub conflicts: u64,
}

fn method_str(m: PaymentMethod) -> &'static str {
    projection::method_name(m)
}

fn intent_by_auth_code(
    conn: &Conn,
    provider: &str,
    auth_code: &str,
) -> Result<Option<IntentId>, StorageError> {
    let id: Option<String> = conn
        .prepare_cached(
            "SELECT intent_id FROM payment_intents WHERE provider = $1 AND auth_code = $2
             ORDER BY created_ms, intent_id LIMIT 1",
        )?
        .query_row(params![provider, auth_code], |r| r.get(0))
        .optional()?;
    id.map(|s| parse(&s)).transpose()
}

/// `POST /v1/payments/intents`: authentication, the body, the request id,
/// then a new intent in state `pending` and its `PaymentIntentUpdated` hub
/// event. Answers the hub event's canonical bytes.
pub(crate) fn create_intent(
    conn: &Conn,
    env: &mut Env,
    req: &Authentic,
    parsed: Result<(IntentRequest, Hash256), ApiError>,
    providers: &[String],
) -> Result<Answer<Vec<Vec<u8>>>, StorageError> {
    let Begun {
        who,
        request,
        body_hash,
        request_id: rid,
    } = match begin(
        conn,
        env,
        req,
        parsed,
        "payment_intents",
        |r: &IntentRequest| r.check(|p| providers.iter().any(|x| x == p)),
        |r| r.request_id.to_string(),
    )? {
        Ok(b) => b,
        Err(answer) => return Ok(answer),
    };
    if let Some(pending) = crate::storage::restore::gate(conn, who.store)? {
        return Ok(Err(pending));
    }
    let now = env.now_ms();
    let mut rng = &mut *env.rng;
    let intent_id =
        IntentId::new_v7(now, &mut rng).map_err(|e| corrupt(format!("intent id: {e}")))?;
    let intent = IntentRow {
        intent_id,
        store: who.store,
        device: who.device,
        sale_id: request.sale_id,
        provider: request.provider.clone(),
        method: request.method,
        amount: request.amount,
        state: IntentState::Pending,
        auth_code: None,
    };
    conn.prepare_cached(
        "INSERT INTO payment_intents (intent_id, store_id, device_id, sale_id, provider, method, amount, state, auth_code, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', NULL, $8, $8)",
    )?
    .execute(params![
        intent_id.to_string(),
        who.store.to_string(),
        who.device.to_string(),
        request.sale_id.to_string(),
        request.provider,
        method_str(request.method),
        request.amount.0,
        now
    ])?;
    let events = append_to_hub_chain(conn, env, who.store, &[updated_body(&intent, None)])?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::PaymentIntentCreated,
        now,
        Some(who.store),
        audit::data([
            ("intent_id", audit::s(intent_id)),
            ("device", audit::s(who.device)),
            ("sale_id", audit::s(request.sale_id)),
            ("provider", audit::s(&request.provider)),
            ("method", audit::s(method_str(request.method))),
            ("amount", audit::n(request.amount.0)),
            ("request_id", audit::s(&rid)),
        ]),
    )?;
    tracing::info!(intent = %intent_id, device = %who.device, provider = %request.provider, amount = request.amount.0, "payment intent created");
    let bytes: Vec<Vec<u8>> = events
        .iter()
        .map(|e: &Event| e.canonical_bytes().to_vec())
        .collect();
    record_answer(
        conn,
        who.device,
        &rid,
        "payment_intents",
        body_hash,
        &bytes,
        now,
    )?;
    Ok(Ok(bytes))
}

/// Records a rejection that happens before the state machine (an unknown
/// intent, another provider's intent): stored, audited, logged, alerted.
#[allow(clippy::too_many_arguments)]
fn reject_early(
    conn: &Conn,
    env: &mut Env,
    provider: &str,
    w: &Webhook,
    body_hash: Hash256,
    store: Option<StoreId>,
    reason: &'static str,
    now: i64,
) -> Result<WebhookAnswer, StorageError> {
    let intent = w.intent_id.map(|i| i.to_string());
    conn.prepare_cached(
        "INSERT INTO payment_webhooks (provider, provider_event_id, intent_id, state, amount, auth_code, body_hash, received_ms, outcome, reason, from_state, decided_ms, terminal_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'rejected', $9, NULL, $8, $10)",
    )?
    .execute(params![
        provider,
        w.event_id,
        intent,
        w.state.as_str(),
        w.amount.0,
        w.auth_code,
        body_hash.to_hex(),
        now,
        reason,
        w.terminal_id
    ])?;
    let d = Decided {
        provider,
        event_id: &w.event_id,
        intent: intent.as_deref(),
        outcome: "rejected",
        reason: Some(reason),
        from: None,
    };
    audit_decision(conn, env, store, &d, w, now)?;
    raise_alert(
        conn,
        "payment_webhook_rejected",
        store,
        None,
        now,
        &format!(
            "{provider} event {} ({}) rejected: {reason}",
            w.event_id,
            w.state.as_str()
        ),
    )?;
    tracing::warn!(provider, event = %w.event_id, reason, "payment webhook rejected");
    Ok(WebhookAnswer {
        outcome: "rejected",
        reason: Some(reason.to_owned()),
        first_outcome: None,
        intent_id: intent,
        state: None,
        transitions: 0,
    })
}

/// A provider's webhook, already authenticated (signature checked by the
/// caller) and its body checked. Idempotent by (provider, event id).
pub(crate) fn webhook(
    conn: &Conn,
    env: &mut Env,
    provider: &str,
    w: &Webhook,
    body_hash: Hash256,
    deadline_ms: i64,
) -> Result<Answer<WebhookAnswer>, StorageError> {
    // A webhook's state change is a hub event: after a restore it waits
    // (the provider retries) until no store is gated.
    if crate::storage::restore::any_gated(conn)? {
        return Ok(Err(crate::restore::restore_pending_webhook()));
    }
    let now = env.now_ms();
    let prior: Option<(String, Option<String>, Option<String>, String)> = conn
        .prepare_cached(
            "SELECT outcome, reason, intent_id, body_hash FROM payment_webhooks
             WHERE provider = $1 AND provider_event_id = $2",
        )?
        .query_row(params![provider, w.event_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    if let Some((outcome, reason, intent, hash)) = prior {
        if hash != body_hash.to_hex() {
            tracing::warn!(provider, event = %w.event_id, "a duplicate webhook carries another body; the first one stands");
        }
        let state = match intent.as_deref().map(parse::<IntentId>).transpose()? {
            Some(id) => load_intent(conn, id)?.map(|i| i.state.as_str()),
            None => None,
        };
        return Ok(Ok(WebhookAnswer {
            outcome: "duplicate",
            reason,
            first_outcome: Some(outcome),
            intent_id: intent,
            state,
            transitions: 0,
        }));
    }
    // Which intent: the one named, else the one this provider authorized
    // with this code, else none (a terminal's offline payment).
    let intent_id = match (w.intent_id, &w.auth_code) {
        (Some(id), _) => Some(id),
        (None, Some(code)) => intent_by_auth_code(conn, provider, code)?,
        (None, None) => None,
    };
    let Some(intent_id) = intent_id else {
        return record_confirmation(conn, env, provider, w, body_hash, deadline_ms, now).map(Ok);
    };
    let Some(mut intent) = load_intent(conn, intent_id)? else {
        return reject_early(
            conn,
            env,
            provider,
            w,
            body_hash,
            None,
            "unknown_intent",
            now,
        )
        .map(Ok);
    };
    if intent.provider != provider {
        // One provider's secret never moves another provider's intent.
        return reject_early(
            conn,
            env,
            provider,
            w,
            body_hash,
            Some(intent.store),
            "wrong_provider",
            now,
        )
        .map(Ok);
    }
    let refunded: i64 = conn
        .prepare_cached("SELECT refunded_amount FROM payment_intents WHERE intent_id = $1")?
        .query_row([intent_id.to_string()], |r| r.get(0))?;
    if payments::is_partial_refund(w.state, w.partial, Money(refunded)) {
        return super::payments_refunds::partial_refund(
            conn, env, provider, w, body_hash, intent, now,
        )
        .map(Ok);
    }
    let held: Vec<Delivery<i64>> = {
        let mut stmt = conn.prepare_cached(
            "SELECT webhook_id, state, amount FROM payment_webhooks
             WHERE intent_id = $1 AND outcome = 'held' ORDER BY webhook_id",
        )?;
        let rows: Vec<(i64, String, i64)> = stmt
            .query_map([intent_id.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(key, s, a)| {
                Ok(Delivery {
                    key,
                    state: state_of(&s)?,
                    amount: Money(a),
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?
            .into_iter()
            // A held partial refund waits for the capture in
            // `payments_refunds`, not in the state machine.
            .filter(|d| !(d.state == IntentState::Refunded && d.amount != intent.amount))
            .collect()
    };
    let incoming_key: i64 = conn.prepare_cached(
        "INSERT INTO payment_webhooks (provider, provider_event_id, intent_id, state, amount, auth_code, body_hash, received_ms, outcome, reason, from_state, decided_ms, terminal_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held', NULL, $9, $8, $10) RETURNING webhook_id",
    )?
    .query_row(params![
        provider,
        w.event_id,
        intent_id.to_string(),
        w.state.as_str(),
        w.amount.0,
        w.auth_code,
        body_hash.to_hex(),
        now,
        intent.state.as_str(),
        w.terminal_id
    ], |r| r.get(0))?;
    let incoming = Delivery {
        key: incoming_key,
        state: w.state,
        amount: w.amount,
    };
    let (final_state, outcomes) = payments::process(intent.state, intent.amount, &held, &incoming);
    let mut bodies = Vec::new();
    let mut answer = WebhookAnswer {
        outcome: "held",
        reason: None,
        first_outcome: None,
        intent_id: Some(intent_id.to_string()),
        state: Some(final_state.as_str()),
        transitions: 0,
    };
    for (key, outcome) in outcomes {
        // The delivery decided (this one or a held one), as stored.
        let (event_id, state, amount, auth_code): (String, String, i64, Option<String>) = conn
            .prepare_cached(
                "SELECT provider_event_id, state, amount, auth_code FROM payment_webhooks WHERE webhook_id = $1",
            )?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        let stored = Webhook {
            event_id,
            state: state_of(&state)?,
            intent_id: Some(intent_id),
            auth_code,
            terminal_id: None,
            partial: false,
            amount: Money(amount),
        };
        match outcome {
            Outcome::Applied { from, to } => {
                if intent.auth_code.is_none() {
                    intent.auth_code.clone_from(&stored.auth_code);
                }
                intent.state = to;
                conn.prepare_cached(
                    "UPDATE payment_webhooks SET outcome = 'applied', from_state = $2, decided_ms = $3 WHERE webhook_id = $1",
                )?
                .execute(params![key, from.as_str(), now])?;
                conn.prepare_cached(
                    "UPDATE payment_intents SET state = $2, auth_code = $3, updated_ms = $4 WHERE intent_id = $1",
                )?
                .execute(params![intent_id.to_string(), to.as_str(), intent.auth_code, now])?;
                append_audit(
                    conn,
                    &mut env.tx,
                    AuditKind::PaymentIntentTransition,
                    now,
                    Some(intent.store),
                    audit::data([
                        ("intent_id", audit::s(intent_id)),
                        ("provider", audit::s(provider)),
                        ("provider_event_id", audit::s(&stored.event_id)),
                        ("from", audit::s(from.as_str())),
                        ("to", audit::s(to.as_str())),
                        ("amount", audit::n(intent.amount.0)),
                        (
                            "auth_code",
                            intent.auth_code.as_deref().map_or(Value::Null, audit::s),
                        ),
                    ]),
                )?;
                tracing::info!(intent = %intent_id, provider, event = %stored.event_id, from = from.as_str(), to = to.as_str(), "payment intent moved");
                bodies.push(updated_body(&intent, Some(stored.event_id.clone())));
                answer.transitions += 1;
                if key == incoming_key {
                    answer.outcome = "applied";
                }
            }
            Outcome::Held => {
                let d = Decided {
                    provider,
                    event_id: &stored.event_id,
                    intent: answer.intent_id.as_deref(),
                    outcome: "held",
                    reason: None,
                    from: Some(intent.state),
                };
                audit_decision(conn, env, Some(intent.store), &d, &stored, now)?;
                tracing::info!(intent = %intent_id, provider, event = %stored.event_id, state = stored.state.as_str(), at = intent.state.as_str(), "payment webhook held until the intent catches up");
            }
            Outcome::Rejected { reason, from } => {
                conn.prepare_cached(
                    "UPDATE payment_webhooks SET outcome = 'rejected', reason = $2, from_state = $3, decided_ms = $4 WHERE webhook_id = $1",
                )?
                .execute(params![key, reason.as_str(), from.as_str(), now])?;
                let d = Decided {
                    provider,
                    event_id: &stored.event_id,
                    intent: answer.intent_id.as_deref(),
                    outcome: "rejected",
                    reason: Some(reason.as_str()),
                    from: Some(from),
                };
                audit_decision(conn, env, Some(intent.store), &d, &stored, now)?;
                tracing::warn!(intent = %intent_id, provider, event = %stored.event_id, state = stored.state.as_str(), from = from.as_str(), reason = reason.as_str(), "payment transition rejected, not applied");
                if reason.alerts() {
                    raise_alert(
                        conn,
                        "payment_transition_rejected",
                        Some(intent.store),
                        Some(intent.device),
                        now,
                        &format!(
                            "{provider} reported {} ({} centavos) for intent {intent_id} in state {}: {}",
                            stored.state.as_str(),
                            stored.amount.0,
                            from.as_str(),
                            reason.as_str()
                        ),
                    )?;
                }
                if key == incoming_key {
                    answer.outcome = "rejected";
                    answer.reason = Some(reason.as_str().to_owned());
                }
            }
        }
    }
    debug_assert_eq!(intent.state, final_state);
    if !bodies.is_empty() {
        append_to_hub_chain(conn, env, intent.store, &bodies)?;
    }
    // Partial refunds that arrived before the capture, now decided.
    let drained =
        super::payments_refunds::drain_held_refunds(conn, env, provider, &mut intent, now)?;
    if drained > 0 {
        answer.transitions += drained;
        answer.state = Some(intent.state.as_str());
    }
    if let Some(code) = &w.auth_code {
        reconcile_reference(conn, env, code, deadline_ms, now)?;
    }
    Ok(Ok(answer))
}

/// A webhook about no intent: the confirmation of a payment a terminal took
/// offline, kept for reconciliation.
fn record_confirmation(
    conn: &Conn,
    env: &mut Env,
    provider: &str,
    w: &Webhook,
    body_hash: Hash256,
    deadline_ms: i64,
    now: i64,
) -> Result<WebhookAnswer, StorageError> {
    conn.prepare_cached(
        "INSERT INTO payment_webhooks (provider, provider_event_id, intent_id, state, amount, auth_code, body_hash, received_ms, outcome, reason, from_state, decided_ms, terminal_id)
         VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, 'recorded', NULL, NULL, $7, $8)",
    )?
    .execute(params![
        provider,
        w.event_id,
        w.state.as_str(),
        w.amount.0,
        w.auth_code,
        body_hash.to_hex(),
        now,
        w.terminal_id
    ])?;
    let d = Decided {
        provider,
        event_id: &w.event_id,
        intent: None,
        outcome: "recorded",
        reason: None,
        from: None,
    };
    audit_decision(conn, env, None, &d, w, now)?;
    tracing::info!(provider, event = %w.event_id, auth_code = w.auth_code.as_deref().unwrap_or(""), "payment confirmation recorded");
    if let Some(code) = &w.auth_code {
        reconcile_reference(conn, env, code, deadline_ms, now)?;
    }
    Ok(WebhookAnswer {
        outcome: "recorded",
        reason: None,
        first_outcome: None,
        intent_id: None,
        state: None,
        transitions: 0,
    })
}

// ---- Reconciliation ----------------------------------------------------------

/// Reads the applied events after the scan cursor (at most [`SCAN_BATCH`])
/// and records every card payment with a reference; returns how many, and
/// the authorization codes they carry (a new payment may collide with one
/// already judged).
fn scan(conn: &Conn, now: i64) -> Result<(u64, Vec<String>), StorageError> {
    let after: i64 = conn
        .prepare_cached("SELECT applied_seq FROM payment_scan WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "SELECT a.applied_seq, e.event_id, e.store_id, e.device_id, e.hlc_ms,
                CASE WHEN e.kind IN ('SaleCreated', 'PaymentTaken') THEN e.bytes END
         FROM applied a JOIN events e ON e.id = a.event_row
         WHERE a.applied_seq > $1 ORDER BY a.applied_seq LIMIT $2",
    )?;
    let mut rows = stmt.query(params![after, SCAN_BATCH])?;
    let mut last = after;
    let mut found = 0;
    let mut codes = Vec::new();
    while let Some(r) = rows.next()? {
        last = r.get(0)?;
        let Some(bytes) = r.get::<_, Option<Vec<u8>>>(5)? else {
            continue;
        };
        let event_id: String = r.get(1)?;
        let store: String = r.get(2)?;
        let device: String = r.get(3)?;
        let sale_ms: i64 = r.get(4)?;
        let event = Event::from_json(&bytes).map_err(corrupt)?;
        let cards: Vec<(SaleId, i64, Money, String)> = match event.body().map_err(corrupt)? {
            EventBody::SaleCreated(s) => s
                .payments
                .iter()
                .enumerate()
                .filter(|(_, p)| p.method == PaymentMethod::Card)
                .filter_map(|(i, p)| {
                    let r = p.reference.clone()?;
                    Some((s.sale_id, i64::try_from(i).unwrap_or(i64::MAX), p.amount, r))
                })
                .collect(),
            EventBody::PaymentTaken(p) if p.method == PaymentMethod::Card => p
                .reference
                .clone()
                .map(|r| (p.sale_id, 0, p.amount, r))
                .into_iter()
                .collect(),
            _ => vec![],
        };
        for (sale, idx, amount, reference) in cards {
            let parsed = CardReference::parse(&reference);
            found += u64::try_from(
                conn.prepare_cached(
                    "INSERT INTO payment_card_checks (event_id, idx, store_id, device_id, sale_id, amount, reference, sale_ms, verdict, decided_ms, terminal_id, auth_code)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'waiting', $9, $10, $11) ON CONFLICT DO NOTHING",
                )?
                .execute(params![event_id, idx, store, device, sale.to_string(), amount.0, reference, sale_ms, now, parsed.terminal, parsed.code])?,
            )
            .unwrap_or(0);
            if !codes.contains(&parsed.code) {
                codes.push(parsed.code);
            }
        }
    }
    drop(rows);
    conn.prepare_cached("UPDATE payment_scan SET applied_seq = $1 WHERE id = 1")?
        .execute([last])?;
    Ok((found, codes))
}

pub(super) struct CardRow {
    pub(super) event_id: String,
    pub(super) idx: i64,
    pub(super) sale_id: String,
    pub(super) store: StoreId,
    pub(super) device: DeviceId,
    pub(super) amount: Money,
    pub(super) reference: String,
    pub(super) sale_ms: i64,
    pub(super) verdict: String,
    pub(super) terminal: Option<String>,
    pub(super) code: String,
}

impl CardRow {
    pub(super) fn facts(&self) -> CardFacts {
        CardFacts {
            terminal: self.terminal.clone(),
            amount: self.amount,
            sale_ms: self.sale_ms,
        }
    }
}

pub(super) fn card_rows(
    conn: &Conn,
    sql: &str,
    p: impl Params,
) -> Result<Vec<CardRow>, StorageError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(CardRow {
            event_id: r.get(0)?,
            idx: r.get(1)?,
            store: parse(&r.get::<_, String>(2)?)?,
            device: parse(&r.get::<_, String>(3)?)?,
            amount: Money(r.get(4)?),
            reference: r.get(5)?,
            sale_ms: r.get(6)?,
            verdict: r.get(7)?,
            sale_id: r.get(8)?,
            terminal: r.get(9)?,
            code: r.get(10)?,
        });
    }
    Ok(out)
}

pub(super) const CARD_COLUMNS: &str =
    "SELECT event_id, idx, store_id, device_id, amount, reference, sale_ms, verdict, sale_id, terminal_id, auth_code FROM payment_card_checks";

/// Judges card payments again and records what changed; a verdict needing a
/// person becomes a `manual` conflict (once) and an alert. Returns (checked,
/// new conflicts).
fn judge(
    conn: &Conn,
    env: &mut Env,
    rows: Vec<CardRow>,
    deadline_ms: i64,
    now: i64,
) -> Result<(u64, u64), StorageError> {
    let mut conflicts = 0;
    let mut checked = 0;
    for row in rows {
        checked += 1;
        let confirmations: Vec<Confirmation> = {
            let mut stmt = conn.prepare_cached(
                "SELECT state, amount, received_ms, terminal_id FROM payment_webhooks WHERE auth_code = $1",
            )?;
            let rows: Vec<(String, i64, i64, Option<String>)> = stmt
                .query_map([&row.code], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(s, a, t, terminal)| {
                    Ok(Confirmation {
                        state: state_of(&s)?,
                        amount: Money(a),
                        received_ms: t,
                        terminal,
                    })
                })
                .collect::<Result<_, StorageError>>()?
        };
        // Every other recorded payment with the same code: a capture one of
        // them could claim as well is no match for this one.
        let others: Vec<CardFacts> = card_rows(
            conn,
            &format!("{CARD_COLUMNS} WHERE auth_code = $1"),
            [&row.code],
        )?
        .into_iter()
        .filter(|o| !(o.event_id == row.event_id && o.idx == row.idx))
        .map(|o| o.facts())
        .collect();
        let verdict =
            payments::reconcile_card(&row.facts(), &others, &confirmations, deadline_ms, now);
        if verdict.as_str() != row.verdict {
            conn.prepare_cached(
                "UPDATE payment_card_checks SET verdict = $3, decided_ms = $4 WHERE event_id = $1 AND idx = $2",
            )?
            .execute(params![row.event_id, row.idx, verdict.as_str(), now])?;
        }
        let Some(reason) = verdict.conflict_reason() else {
            continue;
        };
        let event: EventId = parse(&row.event_id)?;
        let idx = u32::try_from(row.idx).map_err(corrupt)?;
        let subject = Subject::CardPayment(event, idx);
        let conflict = Conflict::new(reason, subject.clone(), row.store, [event].into());
        if !super::conflicts::upsert(conn, Some(&mut env.tx), &conflict, false, now)? {
            continue;
        }
        let detail = match verdict {
            Verdict::Mismatch { provider_amount } => format!(
                "card payment {} (reference {}) of {} centavos: the provider reported {} centavos",
                subject, row.reference, row.amount.0, provider_amount.0
            ),
            Verdict::Ambiguous => format!(
                "card payment {} (reference {}) of {} centavos: the provider's capture of code {} could be another payment's as well",
                subject, row.reference, row.amount.0, row.code
            ),
            _ => format!(
                "card payment {} (reference {}) of {} centavos: no capture from the provider within {} ms of the sale",
                subject, row.reference, row.amount.0, deadline_ms
            ),
        };
        raise_alert(
            conn,
            "payment_reconciliation",
            Some(row.store),
            Some(row.device),
            now,
            &detail,
        )?;
        tracing::warn!(conflict = %conflict.conflict_id, %reason, %subject, "card payment needs a person");
        conflicts += 1;
    }
    Ok((checked, conflicts))
}

/// Judges again the card payments recorded with authorization code `code`
/// (after a provider reported on it, or a new payment with it was found).
/// A mismatch or an ambiguity stays for a person.
fn reconcile_code(
    conn: &Conn,
    env: &mut Env,
    code: &str,
    deadline_ms: i64,
    now: i64,
) -> Result<(u64, u64), StorageError> {
    let rows = card_rows(
        conn,
        &format!(
            "{CARD_COLUMNS} WHERE auth_code = $1 AND verdict NOT IN ('mismatch', 'ambiguous')"
        ),
        [code],
    )?;
    judge(conn, env, rows, deadline_ms, now)
}

/// After a provider reported on `code`: new payments first, then every
/// payment with a code just found or this one.
fn reconcile_reference(
    conn: &Conn,
    env: &mut Env,
    code: &str,
    deadline_ms: i64,
    now: i64,
) -> Result<(), StorageError> {
    let (_, mut codes) = scan(conn, now)?;
    if !codes.iter().any(|c| c == code) {
        codes.push(code.to_owned());
    }
    for c in codes {
        reconcile_code(conn, env, &c, deadline_ms, now)?;
    }
    Ok(())
}

/// One reconciliation pass: new card payments from applied events, then every
/// payment still waiting (the deadline may have passed).
pub(crate) fn reconcile(
    conn: &Conn,
    env: &mut Env,
    deadline_ms: i64,
) -> Result<ReconcileReport, StorageError> {
    let now = env.now_ms();
    let (found, codes) = scan(conn, now)?;
    let (mut checked, mut conflicts) = (0, 0);
    // Payments with a code just found are judged together with the ones
    // already recorded with it: a confirmed one may now be ambiguous.
    for c in &codes {
        let (a, b) = reconcile_code(conn, env, c, deadline_ms, now)?;
        checked += a;
        conflicts += b;
    }
    let mut rows = card_rows(
        conn,
        &format!("{CARD_COLUMNS} WHERE verdict = 'waiting' ORDER BY sale_ms"),
        [],
    )?;
    // `caja-hub rebuild` recomputes `conflicts` from events and drops the
    // payment ones: judge again the payments whose conflict is missing, so
    // they are detected again (once).
    let present: std::collections::HashSet<String> = conn
        .prepare_cached("SELECT subject FROM conflicts WHERE reason IN ($1, $2, $3)")?
        .query_map(
            [
                ConflictReason::CardPaymentAmountMismatch.as_str(),
                ConflictReason::CardPaymentUnconfirmed.as_str(),
                ConflictReason::CardPaymentAmbiguous.as_str(),
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    for r in card_rows(
        conn,
        &format!(
            "{CARD_COLUMNS} WHERE verdict IN ('mismatch', 'unconfirmed', 'ambiguous') ORDER BY sale_ms"
        ),
        [],
    )? {
        let subject =
            Subject::CardPayment(parse(&r.event_id)?, u32::try_from(r.idx).map_err(corrupt)?);
        if !present.contains(&subject.key()) {
            rows.push(r);
        }
    }
    let (a, b) = judge(conn, env, rows, deadline_ms, now)?;
    checked += a;
    conflicts += b;
    Ok(ReconcileReport {
        found,
        checked,
        conflicts,
    })
}
