//! Head office's reads of payments: the overview (`GET /v1/admin/payments`)
//! and the payments section of the health report (intents pending past the
//! confirmation deadline, offline confirmations no recorded payment could
//! claim, webhook rejections, offline card payments per verdict).
//!
//! Feature module: reads only; the decisions of what may claim what are
//! `crate::payments`, the report is `crate::health`.

use super::db::{params, Conn};
use super::payments::{card_rows, CARD_COLUMNS};
use super::payments_intents::state_of;
use crate::payments::{self, Confirmation};
use crate::storage::error::StorageError;
use caja_shared::ids::{DeviceId, IntentId, SaleId, StoreId};
use caja_shared::money::Money;
use serde::Serialize;

use crate::storage::codec::parse;

/// The payments section of the health report: what is stuck or needs a
/// person. Reads only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PaymentsHealth {
    /// The confirmation deadline the counts below use.
    pub deadline_ms: i64,
    /// Intents still `pending`.
    pub intents_pending: u64,
    /// Intents `pending` for longer than the deadline (the provider never
    /// reported on them).
    pub intents_pending_past_deadline: u64,
    /// When the oldest pending intent was created.
    pub oldest_pending_created_ms: Option<i64>,
    /// Offline confirmations (webhooks naming no intent) older than the
    /// deadline that no recorded card payment could claim (terminal, code,
    /// amount, window).
    pub unmatched_confirmations: u64,
    /// Webhooks rejected, all time.
    pub webhook_rejections: u64,
    /// Webhooks rejected in the last 24 h for a reason a person must look at
    /// (`invalid_transition`, `amount_mismatch`, `wrong_provider`,
    /// `unknown_intent`).
    pub webhook_rejections_alerting_24h: u64,
    /// Rejections per reason, all time.
    pub rejections_by_reason: std::collections::BTreeMap<String, u64>,
    /// Card payments taken offline per verdict.
    pub card_checks: std::collections::BTreeMap<String, u64>,
}

/// Most offline confirmations the health report examines.
const HEALTH_CONFIRMATIONS: i64 = 10_000;

/// The payments section's facts at `now` with the confirmation deadline.
pub(crate) fn health(
    conn: &Conn,
    now: i64,
    deadline_ms: i64,
) -> Result<PaymentsHealth, StorageError> {
    let mut h = PaymentsHealth {
        deadline_ms,
        ..PaymentsHealth::default()
    };
    let (pending, past, oldest): (i64, i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN created_ms < $1 THEN 1 ELSE 0 END), 0), MIN(created_ms)
             FROM payment_intents WHERE state = 'pending'",
        )?
        .query_row([now.saturating_sub(deadline_ms)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    h.intents_pending = u64::try_from(pending).unwrap_or(0);
    h.intents_pending_past_deadline = u64::try_from(past).unwrap_or(0);
    h.oldest_pending_created_ms = oldest;
    let rejected: Vec<(Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT reason, received_ms FROM payment_webhooks WHERE outcome = 'rejected'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (reason, at) in rejected {
        let reason = reason.unwrap_or_default();
        h.webhook_rejections += 1;
        let alerting = matches!(
            reason.as_str(),
            "invalid_transition" | "amount_mismatch" | "wrong_provider" | "unknown_intent"
        );
        if alerting && at > now.saturating_sub(86_400_000) {
            h.webhook_rejections_alerting_24h += 1;
        }
        *h.rejections_by_reason.entry(reason).or_insert(0) += 1;
    }
    let verdicts: Vec<(String, i64)> = conn
        .prepare_cached("SELECT verdict, COUNT(*) FROM payment_card_checks GROUP BY verdict")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (v, n) in verdicts {
        h.card_checks.insert(v, u64::try_from(n).unwrap_or(0));
    }
    let recorded: Vec<(String, String, i64, i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT auth_code, state, amount, received_ms, terminal_id FROM payment_webhooks
             WHERE outcome = 'recorded' AND auth_code IS NOT NULL AND received_ms < $1
               AND state IN ('authorized', 'captured')
             ORDER BY webhook_id LIMIT $2",
        )?
        .query_map(
            params![now.saturating_sub(deadline_ms), HEALTH_CONFIRMATIONS],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?
        .collect::<Result<_, _>>()?;
    for (code, state, amount, received_ms, terminal) in recorded {
        let c = Confirmation {
            state: state_of(&state)?,
            amount: Money(amount),
            received_ms,
            terminal,
        };
        let claimed = card_rows(
            conn,
            &format!("{CARD_COLUMNS} WHERE auth_code = $1"),
            [&code],
        )?
        .iter()
        .any(|p| {
            let f = p.facts();
            f.amount == c.amount && payments::may_be_about(&f, &c, deadline_ms)
        });
        if !claimed {
            h.unmatched_confirmations += 1;
        }
    }
    Ok(h)
}

/// A payment intent, for head office and answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntentInfo {
    /// The intent.
    pub intent_id: IntentId,
    /// Its store.
    pub store: StoreId,
    /// The register that created it.
    pub device: DeviceId,
    /// The sale.
    pub sale_id: SaleId,
    /// The provider.
    pub provider: String,
    /// `card` or `transfer`.
    pub method: String,
    /// Amount in centavos.
    pub amount: i64,
    /// State now.
    pub state: String,
    /// Authorization code, once reported.
    pub auth_code: Option<String>,
    /// When created (hub clock).
    pub created_ms: i64,
    /// Last change (hub clock).
    pub updated_ms: i64,
}

/// One received provider event, for head office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookInfo {
    /// The provider.
    pub provider: String,
    /// The provider's event id.
    pub provider_event_id: String,
    /// The intent, when it named or matched one.
    pub intent_id: Option<String>,
    /// The state it reported.
    pub state: String,
    /// The amount it reported.
    pub amount: i64,
    /// The authorization code it reported.
    pub auth_code: Option<String>,
    /// `applied`, `held`, `rejected` or `recorded`.
    pub outcome: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The intent's state when it was decided.
    pub from_state: Option<String>,
    /// When received.
    pub received_ms: i64,
}

/// A card payment checked against the provider, for head office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardCheckInfo {
    /// The register event holding the payment.
    pub event_id: String,
    /// The payment's index in it.
    pub idx: i64,
    /// Store.
    pub store: String,
    /// Register.
    pub device: String,
    /// Sale.
    pub sale_id: String,
    /// Amount.
    pub amount: i64,
    /// The terminal's authorization code.
    pub reference: String,
    /// The sale's time (its event's HLC).
    pub sale_ms: i64,
    /// `waiting`, `confirmed`, `mismatch` or `unconfirmed`.
    pub verdict: String,
}

/// Head office's view of payments (`GET /v1/admin/payments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentsOverview {
    /// Payment intents.
    pub intents: Vec<IntentInfo>,
    /// Provider events received, with their outcome (rejections with reasons).
    pub webhooks: Vec<WebhookInfo>,
    /// Card payments recorded with a terminal reference, with their verdict.
    pub card_checks: Vec<CardCheckInfo>,
}

/// Head office's view: intents, received webhooks and card checks (of one
/// store, or all).
pub(crate) fn overview(
    conn: &Conn,
    store: Option<StoreId>,
) -> Result<PaymentsOverview, StorageError> {
    let store_s = store.map(|s| s.to_string());
    let mut intents = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT intent_id, store_id, device_id, sale_id, provider, method, amount, state, auth_code, created_ms, updated_ms
         FROM payment_intents WHERE CAST($1 AS TEXT) IS NULL OR store_id = $1 ORDER BY created_ms, intent_id",
    )?;
    let mut rows = stmt.query([&store_s])?;
    while let Some(r) = rows.next()? {
        intents.push(IntentInfo {
            intent_id: parse(&r.get::<_, String>(0)?)?,
            store: parse(&r.get::<_, String>(1)?)?,
            device: parse(&r.get::<_, String>(2)?)?,
            sale_id: parse(&r.get::<_, String>(3)?)?,
            provider: r.get(4)?,
            method: r.get(5)?,
            amount: r.get(6)?,
            state: r.get(7)?,
            auth_code: r.get(8)?,
            created_ms: r.get(9)?,
            updated_ms: r.get(10)?,
        });
    }
    drop(rows);
    let mut webhooks = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT w.provider, w.provider_event_id, w.intent_id, w.state, w.amount, w.auth_code, w.outcome, w.reason, w.from_state, w.received_ms
         FROM payment_webhooks w LEFT JOIN payment_intents i ON i.intent_id = w.intent_id
         WHERE CAST($1 AS TEXT) IS NULL OR i.store_id = $1 ORDER BY w.webhook_id",
    )?;
    let mut rows = stmt.query([&store_s])?;
    while let Some(r) = rows.next()? {
        webhooks.push(WebhookInfo {
            provider: r.get(0)?,
            provider_event_id: r.get(1)?,
            intent_id: r.get(2)?,
            state: r.get(3)?,
            amount: r.get(4)?,
            auth_code: r.get(5)?,
            outcome: r.get(6)?,
            reason: r.get(7)?,
            from_state: r.get(8)?,
            received_ms: r.get(9)?,
        });
    }
    drop(rows);
    let checks = card_rows(
        conn,
        &format!(
            "{CARD_COLUMNS} WHERE CAST($1 AS TEXT) IS NULL OR store_id = $1 ORDER BY sale_ms, event_id, idx"
        ),
        [&store_s],
    )?;
    let cards = checks
        .into_iter()
        .map(|c| CardCheckInfo {
            event_id: c.event_id,
            idx: c.idx,
            store: c.store.to_string(),
            device: c.device.to_string(),
            sale_id: c.sale_id,
            amount: c.amount.0,
            reference: c.reference,
            sale_ms: c.sale_ms,
            verdict: c.verdict,
        })
        .collect();
    Ok(PaymentsOverview {
        intents,
        webhooks,
        card_checks: cards,
    })
}
