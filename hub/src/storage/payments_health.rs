//! The payments section of the health report: intents pending past the
//! confirmation deadline, offline confirmations no recorded payment could
//! claim, webhook rejections, offline card payments per verdict.
//!
//! Feature module: reads only; the decisions of what may claim what are
//! `crate::payments`, the report is `crate::health`.

use super::db::{params, Conn};
use super::payments::{card_rows, state_of, CARD_COLUMNS};
use crate::payments::{self, Confirmation};
use crate::storage::error::StorageError;
use caja_shared::money::Money;
use serde::Serialize;

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
