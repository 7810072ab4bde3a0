//! Card payments in the simulation: registers ask the hub for payment
//! intents after card sales (through their sync engine, over the simulated
//! network), and the provider reports captures of offline card payments by
//! their terminal codes and moves intents with signed webhooks — in order,
//! out of order (a capture before its authorization is held) and twice.
//! Invariant checked at the end ([`check`]): each intent's state at the hub
//! is the furthest state its delivered history reaches, the register that
//! asked holds that same state, and a card payment the provider reported
//! with its own amount is never an unconfirmed or mismatched payment.

use caja_hub::storage::db::OptionalExtension as _;
use caja_node::sale::PaymentRequest;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use rusqlite::OptionalExtension as _;

use super::hub::{PROVIDER, PROVIDER_SECRET};
use super::net::lock;
use super::tally::Work;
use super::world::{CardPayment, Intent, World};
use super::SimError;

/// A six-digit authorization code no card payment of this run has had
/// (colliding codes are the hub's `ambiguous` case, a person's decision).
pub fn fresh_code(w: &mut World) -> String {
    loop {
        let code = format!("{:06}", w.rand_range(0, 999_999));
        if !w.card_payments.iter().any(|c| c.code == code) {
            return code;
        }
    }
}

/// A card sale was acknowledged: its payment is recorded, and sometimes the
/// register asks the hub for an intent for it (offline: it goes without).
pub fn card_sale(
    w: &mut World,
    reg: usize,
    r: &caja_node::register::SaleResult,
    card: &PaymentRequest,
) -> Result<(), SimError> {
    let code = card.reference.clone().unwrap_or_default();
    w.card_payments.push(CardPayment {
        reg,
        seq: r.seq,
        sale: r.sale_id,
        code,
        amount: card.amount,
        reported: None,
    });
    if !w.chance(400) {
        return Ok(());
    }
    let Some(sync) = w.regs[reg].sync.as_mut() else {
        return Ok(());
    };
    let request = caja_node::sync::intents::request_id_for(r.sale_id, 0);
    match sync.create_payment_intent(
        request,
        r.sale_id,
        PROVIDER,
        PaymentMethod::Card,
        Money(card.amount),
    ) {
        Ok(id) => {
            w.log(format!("r{reg} payment intent {id} for {}", card.amount));
            w.work.add(Work::PaymentIntent);
            let intent = id.to_string();
            if !w.intents.iter().any(|i| i.intent == intent) {
                w.intents.push(Intent {
                    reg,
                    intent,
                    amount: card.amount,
                    sent: Vec::new(),
                });
            }
            Ok(())
        }
        Err(caja_node::sync::engine::SyncError::Hub(e)) => {
            w.log(format!(
                "r{reg} no payment intent (offline): {}",
                super::world::first_words(&e.to_string())
            ));
            Ok(())
        }
        Err(e) => Err(SimError(format!("r{reg} payment intent: {e}"))),
    }
}

/// The provider reports: the next step of an intent's history (sometimes
/// the one after it first, sometimes one already sent again), or the capture
/// of an offline card payment by its code (one in ten with another amount).
pub fn provider(w: &mut World) -> Result<(), SimError> {
    if !lock(&w.net).hub.is_up() {
        return Ok(());
    }
    const HISTORY: [&str; 2] = ["authorized", "captured"];
    // Intents whose history the provider has not finished (or, now and
    // then, any: a duplicate of a finished one).
    let moving: Vec<usize> = (0..w.intents.len())
        .filter(|i| w.intents[*i].sent.len() < HISTORY.len())
        .collect();
    if !moving.is_empty() && w.chance(700) {
        let i = moving[w.pick(moving.len())];
        let sent_states: Vec<&str> = w.intents[i].sent.iter().map(|s| s.1).collect();
        let next = HISTORY.iter().find(|s| !sent_states.contains(s)).copied();
        let (event_id, state) = match next {
            Some(_) if !w.intents[i].sent.is_empty() && w.chance(200) => {
                // A duplicate delivery of one already sent.
                let k = w.pick(w.intents[i].sent.len());
                w.intents[i].sent[k].clone()
            }
            Some(first) => {
                let state = if first == "authorized" && w.chance(300) {
                    "captured" // out of order: held until its authorization
                } else {
                    first
                };
                (next_event_id(w), state)
            }
            None => return Ok(()),
        };
        let body = serde_json::json!({"event_id": event_id, "state": state,
            "intent_id": w.intents[i].intent, "amount": w.intents[i].amount});
        let outcome = deliver(w, &body)?;
        w.log(format!(
            "provider: {state} of intent {} ({event_id}): {outcome}",
            w.intents[i].intent
        ));
        if !w.intents[i].sent.iter().any(|s| s.0 == event_id) {
            w.intents[i].sent.push((event_id, state));
        } else if outcome != "duplicate" {
            return Err(SimError(format!(
                "payments: a second delivery of {event_id} was answered {outcome}"
            )));
        }
        return Ok(());
    }
    let open: Vec<usize> = (0..w.card_payments.len())
        .filter(|k| w.card_payments[*k].reported.is_none())
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    let k = open[w.pick(open.len())];
    let c = w.card_payments[k].clone();
    let amount = if w.chance(100) {
        c.amount + 100
    } else {
        c.amount
    };
    let event_id = next_event_id(w);
    let body = serde_json::json!({"event_id": event_id, "state": "captured",
        "auth_code": c.code, "amount": amount});
    let outcome = deliver(w, &body)?;
    w.log(format!(
        "provider: capture of code {} for {amount}: {outcome}",
        c.code
    ));
    w.card_payments[k].reported = Some(amount);
    Ok(())
}

fn next_event_id(w: &mut World) -> String {
    w.provider_events += 1;
    format!("evt_sim_{:06}", w.provider_events)
}

/// Signs `body` with the provider's secret at the hub's time and delivers
/// it; every well-signed webhook is answered 200 with its outcome.
fn deliver(w: &mut World, body: &serde_json::Value) -> Result<String, SimError> {
    let bytes = body.to_string().into_bytes();
    let t = w.now_ms + w.hub_offset_ms;
    let sig = caja_hub::payments::sign_webhook(PROVIDER_SECRET.as_bytes(), t, &bytes);
    let a = lock(&w.net)
        .hub
        .handle(
            "POST",
            &format!("/v1/payments/webhooks/{PROVIDER}"),
            &[(caja_hub::payments::SIGNATURE_HEADER, sig)],
            bytes,
        )
        .ok_or_else(|| SimError("webhook: hub down".into()))?;
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    w.checks += 1;
    let outcome = v["outcome"].as_str().unwrap_or_default().to_owned();
    if a.status != 200
        || !["applied", "held", "rejected", "recorded", "duplicate"].contains(&outcome.as_str())
    {
        return Err(SimError(format!(
            "payments: webhook {body} answered {} {v}",
            a.status
        )));
    }
    w.work.add(Work::PaymentWebhook);
    Ok(outcome)
}

/// The state an intent must end in: the furthest step of its history whose
/// predecessors were all delivered (a capture without its authorization
/// stays held, the intent pending).
fn expected_state(i: &Intent) -> &'static str {
    let has = |s: &str| i.sent.iter().any(|x| x.1 == s);
    match (has("authorized"), has("captured")) {
        (true, true) => "captured",
        (true, false) => "authorized",
        _ => "pending",
    }
}

/// The end-of-run payment invariants (see the module's doc).
pub fn check(w: &mut World, conn: &caja_hub::storage::Conn) -> Result<(), SimError> {
    let sql = |e: rusqlite::Error| SimError(format!("payments db: {e}"));
    let db = |e: caja_hub::storage::DbError| SimError(format!("payments hub db: {e}"));
    for i in w.intents.clone() {
        let want = expected_state(&i);
        let at_hub: Option<String> = conn
            .query_row(
                "SELECT state FROM payment_intents WHERE intent_id = $1",
                [&i.intent],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        let Some(ops) = w.regs[i.reg].ops.as_ref() else {
            return Err(SimError(format!("r{} closed at the end", i.reg)));
        };
        let at_register: Option<String> = ops
            .conn()
            .query_row(
                "SELECT state FROM payment_intents WHERE intent_id = ?1",
                [&i.intent],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        w.checks += 2;
        if at_hub.as_deref() != Some(want) || at_register != at_hub {
            return Err(SimError(format!(
                "payments: intent {} delivered {:?} is {at_hub:?} at the hub and {at_register:?} at r{}, want {want}",
                i.intent, i.sent, i.reg
            )));
        }
    }
    // A payment reported with its own amount is never a person's problem
    // (its sale's event id is in the conflict's subject).
    let v = lock(&w.net)
        .hub
        .admin("GET", "/v1/admin/conflicts?state=all", None)?;
    let bad: Vec<String> = v["conflicts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["reason"] == "card_payment_unconfirmed"
                || c["reason"] == "card_payment_amount_mismatch"
        })
        .map(|c| c["subject"].to_string())
        .collect();
    for c in w.card_payments.clone() {
        if c.reported != Some(c.amount) {
            continue;
        }
        let device = w.regs[c.reg].device.to_string();
        let event: Option<String> = conn
            .query_row(
                "SELECT event_id FROM events WHERE device_id = $1 AND seq = $2",
                caja_hub::sql_params![device, i64::try_from(c.seq).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        let Some(event) = event else {
            continue; // lost with its machine
        };
        w.checks += 1;
        if let Some(s) = bad.iter().find(|s| s.contains(&event)) {
            return Err(SimError(format!(
                "payments: card payment {} of sale {} reported captured with its amount is {s}",
                c.code, c.sale
            )));
        }
    }
    Ok(())
}
