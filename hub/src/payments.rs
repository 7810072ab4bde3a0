//! Payment intents and provider webhooks: the state machine, the
//! webhook signature, the checks of request and webhook bodies, and the
//! reconciliation of card payments a register took offline.
//!
//! - **State machine.** `pending → authorized → captured → refunded`, and
//!   `pending | authorized → voided | failed` ([`allowed`]). A provider event
//!   is decided against the intent's current state ([`decide`]): a move the
//!   machine allows is applied; a state further along an allowed path (a
//!   `captured` delivered before its `authorized`) is *held* and applied once
//!   the intent reaches a state from which it is allowed; everything else is
//!   rejected with a reason and never applied. [`process`] decides one
//!   delivery and every held one it unblocks, so the final state of a
//!   provider's history does not depend on the order its webhooks arrive in.
//! - **Signature.** `X-Provider-Signature: t=<ms>,v1=<hex>` where the hex is
//!   HMAC-SHA256(per-provider secret, `"<t>.<raw body>"`), verified in
//!   constant time (ring) within ±5 minutes of the hub's clock
//!   ([`verify_webhook`]); [`sign_webhook`] makes the header (the emulator
//!   and tests use it).
//! - **Reconciliation.** [`reconcile`] judges a card payment recorded with a
//!   terminal authorization code against the provider's confirmations of that
//!   code: a function of the facts and `now`, never of arrival order.
//!
//! Architecture invariant: pure; no SQL, no clock, no HTTP.

use caja_shared::ids::{IntentId, RequestId, SaleId};
use caja_shared::kind::{IntentState, PaymentMethod};
use caja_shared::money::Money;
use ring::hmac;
use serde::Deserialize;

use crate::wire::ApiError;

/// The header carrying a webhook's signature.
pub const SIGNATURE_HEADER: &str = "x-provider-signature";

/// How far a webhook's timestamp may be from the hub's clock (±5 min).
pub const WEBHOOK_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Longest provider event id, auth code or provider name accepted.
const MAX_ID_LEN: usize = 128;

/// The moves the state machine allows: exactly these, nothing else.
pub const EDGES: [(IntentState, IntentState); 7] = [
    (IntentState::Pending, IntentState::Authorized),
    (IntentState::Authorized, IntentState::Captured),
    (IntentState::Captured, IntentState::Refunded),
    (IntentState::Pending, IntentState::Voided),
    (IntentState::Pending, IntentState::Failed),
    (IntentState::Authorized, IntentState::Voided),
    (IntentState::Authorized, IntentState::Failed),
];

/// Whether `from → to` is one allowed move.
pub fn allowed(from: IntentState, to: IntentState) -> bool {
    EDGES.contains(&(from, to))
}

/// Whether `to` can be reached from `from` by one or more allowed moves.
pub fn reachable(from: IntentState, to: IntentState) -> bool {
    let mut frontier = vec![from];
    let mut seen = vec![from];
    while let Some(s) = frontier.pop() {
        for (a, b) in EDGES {
            if a == s && !seen.contains(&b) {
                if b == to {
                    return true;
                }
                seen.push(b);
                frontier.push(b);
            }
        }
    }
    false
}

/// Whether no move leaves `s`.
pub fn is_final(s: IntentState) -> bool {
    !EDGES.iter().any(|(a, _)| *a == s)
}

/// Why a provider event is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The intent is already in that state (a provider's resend under a new
    /// event id).
    AlreadyInState,
    /// The intent is already past that state (e.g. `authorized` after
    /// `captured`): an old event delivered late.
    Stale,
    /// The state cannot follow the intent's state (e.g. `captured` after
    /// `voided`): the provider contradicts the hub; alerted.
    InvalidTransition,
    /// The event's amount is not the intent's; alerted.
    AmountMismatch,
    /// A refund beyond what is left of the captured amount; alerted.
    RefundExceedsCapture,
}

impl RejectReason {
    /// The code written in the rejection record and the answer.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::AlreadyInState => "already_in_state",
            RejectReason::Stale => "stale_transition",
            RejectReason::InvalidTransition => "invalid_transition",
            RejectReason::AmountMismatch => "amount_mismatch",
            RejectReason::RefundExceedsCapture => "refund_exceeds_capture",
        }
    }

    /// Whether a person must look at it (an alert is raised).
    pub fn alerts(self) -> bool {
        matches!(
            self,
            RejectReason::InvalidTransition
                | RejectReason::AmountMismatch
                | RejectReason::RefundExceedsCapture
        )
    }
}

/// What to do with one provider event, given the intent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Apply it now.
    Apply,
    /// Keep it until the intent reaches a state it can follow.
    Hold,
    /// Never apply it.
    Reject(RejectReason),
}

/// Decides one provider event (`to`, `amount`) against an intent in state
/// `from` for `intent_amount`.
pub fn decide(from: IntentState, intent_amount: Money, to: IntentState, amount: Money) -> Step {
    if amount != intent_amount {
        Step::Reject(RejectReason::AmountMismatch)
    } else if from == to {
        Step::Reject(RejectReason::AlreadyInState)
    } else if allowed(from, to) {
        Step::Apply
    } else if reachable(from, to) {
        Step::Hold
    } else if reachable(to, from) {
        Step::Reject(RejectReason::Stale)
    } else {
        Step::Reject(RejectReason::InvalidTransition)
    }
}

/// What a refund report of part of an intent's amount does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStep {
    /// Part refunded: the intent stays `captured` with `refunded` so far.
    Partial {
        /// Refunded so far, this report included.
        refunded: Money,
    },
    /// The last part: the intent becomes `refunded`.
    Full,
    /// Arrived before its capture (the intent is `pending` or `authorized`):
    /// kept, and decided again once the capture is applied.
    Hold,
    /// Never applied.
    Reject(RejectReason),
}

/// Decides a `refunded` report of `amount` (marked partial, or after
/// earlier partial refunds) against an intent in `from` for
/// `intent_amount` of which `refunded` was refunded already. Only a
/// `captured` intent is refunded; one not captured yet but on its way
/// (`pending`, `authorized`) holds the report until it is; a refund beyond
/// what is left is rejected (alerted); the report that completes the amount
/// makes it `refunded`.
pub fn decide_refund(
    from: IntentState,
    intent_amount: Money,
    refunded: Money,
    amount: Money,
) -> RefundStep {
    if from == IntentState::Refunded {
        return RefundStep::Reject(RejectReason::Stale);
    }
    if from != IntentState::Captured {
        return if reachable(from, IntentState::Captured) {
            RefundStep::Hold
        } else {
            RefundStep::Reject(RejectReason::InvalidTransition)
        };
    }
    let total = refunded.0.saturating_add(amount.0);
    if amount.0 <= 0 || total > intent_amount.0 {
        RefundStep::Reject(RejectReason::RefundExceedsCapture)
    } else if total == intent_amount.0 {
        RefundStep::Full
    } else {
        RefundStep::Partial {
            refunded: Money(total),
        }
    }
}

/// Whether a provider report is a partial refund (to go through
/// [`decide_refund`] rather than [`process`]): a `refunded` the provider
/// marks `partial`, or any refund after a partial one.
pub fn is_partial_refund(to: IntentState, partial: bool, refunded: Money) -> bool {
    to == IntentState::Refunded && (partial || refunded.0 > 0)
}

/// Head office's request that the provider refund `amount` of a captured
/// intent (`POST /v1/admin/payments/refund`). `request_id` is the
/// idempotency key the provider dedups on: asking again with it refunds once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The intent.
    pub intent_id: IntentId,
    /// What to give back, in centavos.
    pub amount: Money,
    /// Idempotency key (a UUID v7 the caller chooses).
    pub request_id: RequestId,
}

/// Whether a refund of `requested` may be asked for an intent in `state` for
/// `amount`, of which `refunded` was given back already: only a captured
/// intent, a positive amount, no more than what is left (409 otherwise,
/// naming why; nothing is asked).
pub fn check_refund_request(
    state: IntentState,
    amount: Money,
    refunded: Money,
    requested: Money,
) -> Result<(), ApiError> {
    if requested.0 <= 0 {
        return Err(ApiError::invalid("amount", "must be positive"));
    }
    if state != IntentState::Captured {
        return Err(ApiError::new(
            409,
            "intent_not_captured",
            format!(
                "the intent is {}; only a captured intent is refunded",
                state.as_str()
            ),
        ));
    }
    let left = amount.0.saturating_sub(refunded.0);
    if requested.0 > left {
        return Err(ApiError::new(
            409,
            "refund_exceeds_capture",
            format!("{} centavos asked, {left} left to refund", requested.0),
        ));
    }
    Ok(())
}

/// One provider event about an intent, keyed by whatever the caller uses
/// (the store uses the webhook's row id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<K> {
    /// The caller's key.
    pub key: K,
    /// The state the provider reports.
    pub state: IntentState,
    /// The amount the provider reports.
    pub amount: Money,
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the intent moved `from → to`.
    Applied {
        /// State before.
        from: IntentState,
        /// State after.
        to: IntentState,
    },
    /// Kept for later (only ever the incoming delivery).
    Held,
    /// Rejected, never applied: the intent was in `from`.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The intent's state then.
        from: IntentState,
    },
}

/// Decides `incoming` against an intent in `state` (for `amount`) whose held
/// deliveries are `held` (in arrival order), then every held delivery that
/// the new state unblocks (applied, or rejected once it can no longer be
/// reached), until nothing changes. Returns the final state and the outcomes
/// in the order they happened; held deliveries that stay held are not listed.
pub fn process<K: Clone>(
    state: IntentState,
    amount: Money,
    held: &[Delivery<K>],
    incoming: &Delivery<K>,
) -> (IntentState, Vec<(K, Outcome)>) {
    let mut out = Vec::new();
    let mut state = state;
    match decide(state, amount, incoming.state, incoming.amount) {
        Step::Apply => {
            out.push((
                incoming.key.clone(),
                Outcome::Applied {
                    from: state,
                    to: incoming.state,
                },
            ));
            state = incoming.state;
        }
        Step::Hold => {
            out.push((incoming.key.clone(), Outcome::Held));
            return (state, out);
        }
        Step::Reject(reason) => {
            out.push((
                incoming.key.clone(),
                Outcome::Rejected {
                    reason,
                    from: state,
                },
            ));
            return (state, out);
        }
    }
    // Drain: each pass applies the first held delivery (in arrival order)
    // the state allows; at most one pass per held delivery.
    let mut waiting: Vec<&Delivery<K>> = held.iter().collect();
    loop {
        let next = waiting
            .iter()
            .position(|d| decide(state, amount, d.state, d.amount) == Step::Apply);
        let Some(i) = next else {
            break;
        };
        let d = waiting.remove(i);
        out.push((
            d.key.clone(),
            Outcome::Applied {
                from: state,
                to: d.state,
            },
        ));
        state = d.state;
    }
    for d in waiting {
        if let Step::Reject(reason) = decide(state, amount, d.state, d.amount) {
            out.push((
                d.key.clone(),
                Outcome::Rejected {
                    reason,
                    from: state,
                },
            ));
        }
    }
    (state, out)
}

// ---- Signature -------------------------------------------------------------

/// Why a webhook's signature is refused (401; nothing is stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookAuthError {
    /// No signature header.
    #[error("missing X-Provider-Signature")]
    Missing,
    /// The header is not `t=<ms>,v1=<hex>`.
    #[error("X-Provider-Signature must be t=<ms>,v1=<hex hmac-sha256>")]
    Malformed,
    /// The timestamp is more than the tolerance away from the hub's clock.
    #[error("the signature's timestamp is {skew_ms} ms from the hub's clock (tolerance ±{tolerance_ms} ms)")]
    Stale {
        /// Timestamp minus the hub's clock.
        skew_ms: i64,
        /// The tolerance.
        tolerance_ms: i64,
    },
    /// No `v1` matches the body under the provider's secret.
    #[error("the signature does not match the body")]
    Mismatch,
}

impl WebhookAuthError {
    /// The DESIGN-style error code.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookAuthError::Stale { .. } => "stale_timestamp",
            _ => "bad_signature",
        }
    }

    /// The 401 answer.
    pub fn to_api(&self, now_ms: i64) -> ApiError {
        ApiError::unauthorized(self.code(), self.to_string(), now_ms)
    }
}

fn webhook_message(timestamp_ms: i64, body: &[u8]) -> Vec<u8> {
    let mut msg = format!("{timestamp_ms}.").into_bytes();
    msg.extend_from_slice(body);
    msg
}

/// The `X-Provider-Signature` value for `body` sent at `timestamp_ms`.
pub fn sign_webhook(secret: &[u8], timestamp_ms: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, &webhook_message(timestamp_ms, body));
    format!("t={timestamp_ms},v1={}", hex::encode(tag.as_ref()))
}

/// Parses `t=<ms>,v1=<hex>[,v1=<hex>…]` (several `v1` while a provider rotates
/// its secret; unknown keys are ignored).
fn parse_signature(header: &str) -> Result<(i64, Vec<Vec<u8>>), WebhookAuthError> {
    let mut t = None;
    let mut macs = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(WebhookAuthError::Malformed)?;
        match k {
            "t" => {
                let ok = !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_digit());
                let ms: i64 = ok
                    .then(|| v.parse().ok())
                    .flatten()
                    .ok_or(WebhookAuthError::Malformed)?;
                if t.replace(ms).is_some() {
                    return Err(WebhookAuthError::Malformed);
                }
            }
            "v1" => {
                let mac = hex::decode(v).map_err(|_| WebhookAuthError::Malformed)?;
                if mac.len() != 32 {
                    return Err(WebhookAuthError::Malformed);
                }
                macs.push(mac);
            }
            _ => {}
        }
    }
    match t {
        Some(t) if !macs.is_empty() && macs.len() <= 4 => Ok((t, macs)),
        _ => Err(WebhookAuthError::Malformed),
    }
}

/// Verifies a webhook: the header's shape, then the timestamp window, then
/// the HMAC (constant time, ring's `hmac::verify`) over `"<t>.<raw body>"`.
pub fn verify_webhook(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now_ms: i64,
    tolerance_ms: i64,
) -> Result<(), WebhookAuthError> {
    let header = header.ok_or(WebhookAuthError::Missing)?;
    let (t, macs) = parse_signature(header)?;
    let skew_ms = t.saturating_sub(now_ms);
    if skew_ms.saturating_abs() > tolerance_ms {
        return Err(WebhookAuthError::Stale {
            skew_ms,
            tolerance_ms,
        });
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let msg = webhook_message(t, body);
    if macs.iter().any(|m| hmac::verify(&key, &msg, m).is_ok()) {
        Ok(())
    } else {
        Err(WebhookAuthError::Mismatch)
    }
}

/// Whether `name` is a usable provider name: `[a-z0-9_-]{1,32}`.
pub fn valid_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn printable_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_ID_LEN && v.bytes().all(|b| b.is_ascii_graphic())
}

// ---- Bodies ----------------------------------------------------------------

/// The body of `POST /v1/payments/intents` (signed by a register).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentRequest {
    /// Idempotency key, scoped to the device.
    pub request_id: RequestId,
    /// The sale the payment is for.
    pub sale_id: SaleId,
    /// The provider, as configured at the hub.
    pub provider: String,
    /// `card` or `transfer`.
    pub method: PaymentMethod,
    /// Amount, positive.
    pub amount: Money,
}

impl IntentRequest {
    /// Checks the fields; `known` says whether a provider is configured.
    pub fn check(&self, known: impl Fn(&str) -> bool) -> Result<(), ApiError> {
        if !matches!(self.method, PaymentMethod::Card | PaymentMethod::Transfer) {
            return Err(ApiError::invalid(
                "method",
                "a payment intent is for card or transfer",
            ));
        }
        if self.amount.0 <= 0 {
            return Err(ApiError::invalid("amount", "must be positive"));
        }
        if !known(&self.provider) {
            return Err(ApiError::invalid(
                "provider",
                format!("no payment provider {:?} is configured", self.provider),
            ));
        }
        Ok(())
    }
}

/// A provider's webhook body. Unknown fields are ignored (providers add
/// fields); the ones here are checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    /// The provider's event id: the idempotency key.
    pub event_id: String,
    /// The state the provider reports (never `pending`).
    pub state: IntentState,
    /// The hub's intent, when the payment started from one.
    #[serde(default)]
    pub intent_id: Option<IntentId>,
    /// The authorization code (the terminal's, for a payment taken offline).
    #[serde(default)]
    pub auth_code: Option<String>,
    /// The terminal that took the card (matches a register's
    /// `TERMINAL:CODE` reference; optional, providers that omit it are
    /// matched by code, amount and time only).
    #[serde(default)]
    pub terminal_id: Option<String>,
    /// For `refunded`: the provider refunded part of the intent (`amount` is
    /// that part). Without it a refund of another amount than the intent's is
    /// an `amount_mismatch`.
    #[serde(default)]
    pub partial: bool,
    /// Amount the provider handled.
    pub amount: Money,
}

impl Webhook {
    /// Checks the fields, naming the one at fault.
    pub fn check(&self) -> Result<(), ApiError> {
        if !printable_id(&self.event_id) {
            return Err(ApiError::invalid(
                "event_id",
                "1 to 128 printable ASCII characters",
            ));
        }
        if self.state == IntentState::Pending {
            return Err(ApiError::invalid(
                "state",
                "a provider reports authorized, captured, refunded, voided or failed",
            ));
        }
        if self.amount.0 <= 0 {
            return Err(ApiError::invalid("amount", "must be positive"));
        }
        if let Some(code) = &self.auth_code {
            if !printable_id(code) {
                return Err(ApiError::invalid(
                    "auth_code",
                    "1 to 128 printable ASCII characters",
                ));
            }
        }
        if let Some(t) = &self.terminal_id {
            if !printable_id(t) || t.contains(':') {
                return Err(ApiError::invalid(
                    "terminal_id",
                    "1 to 128 printable ASCII characters, no ':'",
                ));
            }
        }
        if self.intent_id.is_none() && self.auth_code.is_none() {
            return Err(ApiError::invalid(
                "intent_id",
                "a webhook names an intent_id or an auth_code",
            ));
        }
        Ok(())
    }
}

// ---- Reconciliation --------------------------------------------------------

/// A provider's report about an authorization code, as the hub received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The state reported.
    pub state: IntentState,
    /// The amount reported.
    pub amount: Money,
    /// When the hub received it (hub clock).
    pub received_ms: i64,
    /// The terminal the provider names, if any.
    pub terminal: Option<String>,
}

/// A card payment's reference as the register recorded it: `TERMINAL:CODE`
/// (the terminal id the card terminal prints, then its authorization code),
/// or a bare code from a register that did not record the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardReference {
    /// The terminal id, when recorded.
    pub terminal: Option<String>,
    /// The authorization code.
    pub code: String,
}

impl CardReference {
    /// Splits a reference at its last `:` when both sides are non-empty;
    /// otherwise the whole reference is the code.
    pub fn parse(reference: &str) -> CardReference {
        match reference.rsplit_once(':') {
            Some((t, c)) if !t.is_empty() && !c.is_empty() => CardReference {
                terminal: Some(t.to_owned()),
                code: c.to_owned(),
            },
            _ => CardReference {
                terminal: None,
                code: reference.to_owned(),
            },
        }
    }
}

/// What reconciliation knows of one recorded card payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFacts {
    /// The terminal in its reference, if any.
    pub terminal: Option<String>,
    /// The amount charged.
    pub amount: Money,
    /// The sale's time (its event's HLC).
    pub sale_ms: i64,
}

/// How a card payment recorded at a register stands against the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Before the deadline, not confirmed yet.
    Waiting,
    /// A capture of the same amount arrived by the deadline.
    Confirmed,
    /// The provider reported another amount for the code: `manual` conflict.
    Mismatch {
        /// The provider's amount.
        provider_amount: Money,
    },
    /// No capture by the deadline: `manual` conflict.
    Unconfirmed,
    /// The capture that would confirm it matches another recorded payment
    /// just as well (same code, compatible terminal, amount, window): a
    /// `manual` conflict rather than a guess.
    Ambiguous,
}

impl Verdict {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Waiting => "waiting",
            Verdict::Confirmed => "confirmed",
            Verdict::Mismatch { .. } => "mismatch",
            Verdict::Unconfirmed => "unconfirmed",
            Verdict::Ambiguous => "ambiguous",
        }
    }

    /// The conflict reason, for the verdicts that need a person.
    pub fn conflict_reason(self) -> Option<crate::conflict::ConflictReason> {
        use crate::conflict::ConflictReason;
        match self {
            Verdict::Mismatch { .. } => Some(ConflictReason::CardPaymentAmountMismatch),
            Verdict::Unconfirmed => Some(ConflictReason::CardPaymentUnconfirmed),
            Verdict::Ambiguous => Some(ConflictReason::CardPaymentAmbiguous),
            Verdict::Waiting | Verdict::Confirmed => None,
        }
    }
}

/// Whether a report may be about a payment: the terminals agree when both
/// are known, and the hub received it within `deadline_ms` of the sale
/// (either side: a webhook may arrive before the register syncs).
pub fn may_be_about(p: &CardFacts, c: &Confirmation, deadline_ms: i64) -> bool {
    let terminal_ok = match (&p.terminal, &c.terminal) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    terminal_ok
        && c.received_ms >= p.sale_ms.saturating_sub(deadline_ms)
        && c.received_ms <= p.sale_ms.saturating_add(deadline_ms)
}

/// Judges a card payment of `amount` made at `sale_ms` against the
/// provider's reports of its authorization code, knowing of no other
/// payment with that code (see [`reconcile_card`]).
pub fn reconcile(
    amount: Money,
    sale_ms: i64,
    confirmations: &[Confirmation],
    deadline_ms: i64,
    now_ms: i64,
) -> Verdict {
    let p = CardFacts {
        terminal: None,
        amount,
        sale_ms,
    };
    reconcile_card(&p, &[], confirmations, deadline_ms, now_ms)
}

/// Judges the card payment `p` against the provider's reports of its
/// authorization code (`confirmations`), knowing the other recorded
/// payments with the same code (`others`). A report counts for `p` when its
/// terminal agrees (both known and equal, or either unknown) and the hub
/// received it within `deadline_ms` of the sale.
///
/// - A report of another amount (authorized or captured) that no other
///   payment of that amount could claim is a mismatch, whatever else arrived.
/// - A capture of `p`'s amount confirms `p`, unless another payment could
///   claim that same capture (same amount, terminal agreeing, in its window):
///   then it is ambiguous, for a person, never a guess. Six-digit codes
///   collide across terminals; a terminal id in the reference separates them.
/// - None by `sale_ms + deadline_ms` is unconfirmed; a capture after that
///   does not undo it.
///
/// A function of the facts and `now_ms` only.
pub fn reconcile_card(
    p: &CardFacts,
    others: &[CardFacts],
    confirmations: &[Confirmation],
    deadline_ms: i64,
    now_ms: i64,
) -> Verdict {
    let ours: Vec<&Confirmation> = confirmations
        .iter()
        .filter(|c| may_be_about(p, c, deadline_ms))
        .collect();
    let claimed_by_other = |c: &Confirmation| {
        others
            .iter()
            .any(|q| q.amount == c.amount && may_be_about(q, c, deadline_ms))
    };
    if let Some(c) = ours
        .iter()
        .filter(|c| matches!(c.state, IntentState::Authorized | IntentState::Captured))
        .filter(|c| c.amount != p.amount && !claimed_by_other(c))
        .min_by_key(|c| (c.amount, c.received_ms))
    {
        return Verdict::Mismatch {
            provider_amount: c.amount,
        };
    }
    let captures: Vec<&&Confirmation> = ours
        .iter()
        .filter(|c| c.state == IntentState::Captured && c.amount == p.amount)
        .collect();
    if !captures.is_empty() {
        return if captures.iter().any(|c| claimed_by_other(c)) {
            Verdict::Ambiguous
        } else {
            Verdict::Confirmed
        };
    }
    if now_ms > p.sale_ms.saturating_add(deadline_ms) {
        Verdict::Unconfirmed
    } else {
        Verdict::Waiting
    }
}

#[cfg(test)]
mod tests;
