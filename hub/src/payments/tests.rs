use super::*;
use proptest::prelude::*;
use IntentState::*;

const M: Money = Money(9_500);

/// The transition table, written out by hand (not derived from `EDGES`): row =
/// from, column = to, in the order pending, authorized, captured, refunded,
/// voided, failed.
const TABLE: [[bool; 6]; 6] = [
    [false, true, false, false, true, true],
    [false, false, true, false, true, true],
    [false, false, false, true, false, false],
    [false, false, false, false, false, false],
    [false, false, false, false, false, false],
    [false, false, false, false, false, false],
];

fn ix(s: IntentState) -> usize {
    IntentState::ALL.iter().position(|x| *x == s).unwrap()
}

#[test]
fn exactly_the_issues_moves_are_allowed() {
    for from in IntentState::ALL {
        for to in IntentState::ALL {
            assert_eq!(
                allowed(from, to),
                TABLE[ix(from)][ix(to)],
                "{from:?} → {to:?}"
            );
        }
    }
    assert!(is_final(Refunded) && is_final(Voided) && is_final(Failed));
    assert!(!is_final(Pending) && !is_final(Authorized) && !is_final(Captured));
}

#[test]
fn decisions_read_like_the_table() {
    let cases = [
        (Pending, Authorized, Step::Apply),
        (Pending, Captured, Step::Hold),
        (Pending, Refunded, Step::Hold),
        (Authorized, Refunded, Step::Hold),
        (Captured, Authorized, Step::Reject(RejectReason::Stale)),
        (Refunded, Captured, Step::Reject(RejectReason::Stale)),
        (
            Authorized,
            Authorized,
            Step::Reject(RejectReason::AlreadyInState),
        ),
        (
            Voided,
            Captured,
            Step::Reject(RejectReason::InvalidTransition),
        ),
        (
            Captured,
            Voided,
            Step::Reject(RejectReason::InvalidTransition),
        ),
        (Failed, Authorized, Step::Reject(RejectReason::Stale)),
        (
            Voided,
            Failed,
            Step::Reject(RejectReason::InvalidTransition),
        ),
    ];
    for (from, to, step) in cases {
        assert_eq!(decide(from, M, to, M), step, "{from:?} → {to:?}");
    }
    assert_eq!(
        decide(Pending, M, Authorized, Money(9_499)),
        Step::Reject(RejectReason::AmountMismatch)
    );
}

#[test]
fn a_capture_before_its_authorization_is_held_then_applied() {
    let d = |key: u32, state| Delivery {
        key,
        state,
        amount: M,
    };
    let (s, out) = process(Pending, M, &[], &d(1, Captured));
    assert_eq!((s, out), (Pending, vec![(1, Outcome::Held)]));
    let (s, out) = process(Pending, M, &[d(1, Captured)], &d(2, Authorized));
    assert_eq!(s, Captured);
    assert_eq!(
        out,
        vec![
            (
                2,
                Outcome::Applied {
                    from: Pending,
                    to: Authorized
                }
            ),
            (
                1,
                Outcome::Applied {
                    from: Authorized,
                    to: Captured
                }
            ),
        ]
    );
    // A held capture that a void makes impossible is rejected, not kept.
    let (s, out) = process(Pending, M, &[d(1, Captured)], &d(3, Voided));
    assert_eq!(s, Voided);
    assert_eq!(
        out[1],
        (
            1,
            Outcome::Rejected {
                reason: RejectReason::InvalidTransition,
                from: Voided
            }
        )
    );
}

#[test]
fn signatures_verify_only_for_the_body_secret_and_time() {
    let secret = b"azul-secret-0123456789";
    let body = br#"{"event_id":"evt_1","state":"captured","amount":9500,"auth_code":"004512"}"#;
    let now = 1_780_000_000_000;
    let h = sign_webhook(secret, now, body);
    assert!(h.starts_with(&format!("t={now},v1=")));
    let ok = |h: Option<&str>, body: &[u8], secret: &[u8], now: i64| {
        verify_webhook(secret, h, body, now, WEBHOOK_TOLERANCE_MS)
    };
    assert_eq!(ok(Some(&h), body, secret, now), Ok(()));
    assert_eq!(
        ok(Some(&h), body, secret, now + WEBHOOK_TOLERANCE_MS),
        Ok(())
    );
    assert!(matches!(
        ok(Some(&h), body, secret, now + WEBHOOK_TOLERANCE_MS + 1),
        Err(WebhookAuthError::Stale { .. })
    ));
    assert!(matches!(
        ok(Some(&h), body, secret, now - WEBHOOK_TOLERANCE_MS - 1),
        Err(WebhookAuthError::Stale { .. })
    ));
    assert_eq!(
        ok(Some(&h), b"{}", secret, now),
        Err(WebhookAuthError::Mismatch)
    );
    assert_eq!(
        ok(Some(&h), body, b"another-secret-0123", now),
        Err(WebhookAuthError::Mismatch)
    );
    assert_eq!(ok(None, body, secret, now), Err(WebhookAuthError::Missing));
    for bad in [
        "",
        "t=1",
        "v1=00",
        "t=x,v1=00",
        "t=1,v1=zz",
        "t=1,t=2,v1=00",
    ] {
        assert_eq!(
            ok(Some(bad), body, secret, now),
            Err(WebhookAuthError::Malformed),
            "{bad}"
        );
    }
    // A second v1 (secret rotation) is accepted when one matches.
    let other = sign_webhook(b"old-secret-0123456789", now, body);
    let both = format!("{},{}", other, h.split_once(',').unwrap().1);
    assert_eq!(ok(Some(&both), body, secret, now), Ok(()));
    assert_eq!(
        WebhookAuthError::Stale {
            skew_ms: 1,
            tolerance_ms: 1
        }
        .code(),
        "stale_timestamp"
    );
    assert_eq!(WebhookAuthError::Mismatch.code(), "bad_signature");
}

#[test]
fn reconciliation_is_a_table() {
    let sale = 1_000_000;
    let deadline = 60_000;
    let c = |state, amount, received_ms| Confirmation {
        state,
        amount: Money(amount),
        received_ms,
        terminal: None,
    };
    let cases: Vec<(Vec<Confirmation>, i64, Verdict)> = vec![
        (vec![], sale + 1, Verdict::Waiting),
        (vec![], sale + deadline + 1, Verdict::Unconfirmed),
        (
            vec![c(Captured, 9_500, sale + 5)],
            sale + 10,
            Verdict::Confirmed,
        ),
        // A webhook may reach the hub before the register syncs the sale.
        (
            vec![c(Captured, 9_500, sale - 5)],
            sale + 10,
            Verdict::Confirmed,
        ),
        (
            vec![c(Authorized, 9_500, sale + 5)],
            sale + 10,
            Verdict::Waiting,
        ),
        (
            vec![c(Authorized, 9_500, sale + 5)],
            sale + deadline + 1,
            Verdict::Unconfirmed,
        ),
        (
            vec![c(Captured, 9_400, sale + 5)],
            sale + 10,
            Verdict::Mismatch {
                provider_amount: Money(9_400),
            },
        ),
        (
            vec![c(Captured, 9_500, sale + 5), c(Authorized, 9_600, sale + 6)],
            sale + 10,
            Verdict::Mismatch {
                provider_amount: Money(9_600),
            },
        ),
        // Late captures do not undo a missed deadline.
        (
            vec![c(Captured, 9_500, sale + deadline + 5)],
            sale + deadline + 10,
            Verdict::Unconfirmed,
        ),
        // Refunds are not confirmations.
        (
            vec![c(Refunded, 9_500, sale + 5)],
            sale + 10,
            Verdict::Waiting,
        ),
    ];
    for (confirmations, now, verdict) in cases {
        assert_eq!(
            reconcile(M, sale, &confirmations, deadline, now),
            verdict,
            "{confirmations:?} at {now}"
        );
    }
}

#[test]
fn bodies_are_checked_field_by_field() {
    let w = Webhook {
        event_id: "evt_1".into(),
        state: Captured,
        intent_id: None,
        auth_code: Some("004512".into()),
        terminal_id: None,
        partial: false,
        amount: M,
    };
    assert_eq!(w.check(), Ok(()));
    let field = |w: Webhook| w.check().unwrap_err().field.unwrap();
    assert_eq!(
        field(Webhook {
            terminal_id: Some("T1:x".into()),
            ..w.clone()
        }),
        "terminal_id"
    );
    assert_eq!(
        field(Webhook {
            event_id: String::new(),
            ..w.clone()
        }),
        "event_id"
    );
    assert_eq!(
        field(Webhook {
            state: Pending,
            ..w.clone()
        }),
        "state"
    );
    assert_eq!(
        field(Webhook {
            amount: Money(0),
            ..w.clone()
        }),
        "amount"
    );
    assert_eq!(
        field(Webhook {
            auth_code: None,
            ..w.clone()
        }),
        "intent_id"
    );
    assert!(valid_provider_name("azul") && valid_provider_name("card-net_2"));
    assert!(
        !valid_provider_name("Azul") && !valid_provider_name("") && !valid_provider_name("a b")
    );
}

// ---- The machine against a model ----------------------------------------------

/// The model: the same rules over `TABLE` with reachability by brute force
/// (every path of up to 5 moves), outcomes kept per delivery, held ones
/// retried after every applied move.
#[derive(Debug, Default)]
struct Model {
    state: usize,
    held: Vec<(u32, usize, i64)>,
    seen: Vec<u32>,
    /// (key, "applied" | "held" | "rejected:<reason>" | "duplicate")
    log: Vec<(u32, String)>,
}

fn model_reachable(from: usize, to: usize) -> bool {
    let mut layer = vec![from];
    for _ in 0..5 {
        let mut next = vec![];
        for s in layer {
            for (t, ok) in TABLE[s].iter().enumerate() {
                if *ok {
                    if t == to {
                        return true;
                    }
                    next.push(t);
                }
            }
        }
        layer = next;
    }
    false
}

impl Model {
    fn step(&self, to: usize, amount: i64) -> &'static str {
        if amount != M.0 {
            "rejected:amount_mismatch"
        } else if to == self.state {
            "rejected:already_in_state"
        } else if TABLE[self.state][to] {
            "applied"
        } else if model_reachable(self.state, to) {
            "held"
        } else if model_reachable(to, self.state) {
            "rejected:stale_transition"
        } else {
            "rejected:invalid_transition"
        }
    }

    fn deliver(&mut self, key: u32, to: usize, amount: i64) {
        if self.seen.contains(&key) {
            self.log.push((key, "duplicate".into()));
            return;
        }
        self.seen.push(key);
        let step = self.step(to, amount);
        self.log.push((key, step.into()));
        match step {
            "applied" => self.state = to,
            "held" => {
                self.held.push((key, to, amount));
                return;
            }
            _ => return,
        }
        while let Some(i) = self
            .held
            .iter()
            .position(|(_, to, a)| self.step(*to, *a) == "applied")
        {
            let (k, to, _) = self.held.remove(i);
            self.log.push((k, "applied".into()));
            self.state = to;
        }
        let held = std::mem::take(&mut self.held);
        for (k, to, a) in held {
            match self.step(to, a) {
                "held" => self.held.push((k, to, a)),
                r => self.log.push((k, r.into())),
            }
        }
    }
}

/// The machine as the store drives it: seen ids, held deliveries, outcomes.
#[derive(Debug)]
struct Driven {
    state: IntentState,
    held: Vec<Delivery<u32>>,
    seen: Vec<u32>,
    log: Vec<(u32, String)>,
    applied_path: Vec<IntentState>,
}

impl Driven {
    fn deliver(&mut self, key: u32, state: IntentState, amount: i64) {
        if self.seen.contains(&key) {
            self.log.push((key, "duplicate".into()));
            return;
        }
        self.seen.push(key);
        let incoming = Delivery {
            key,
            state,
            amount: Money(amount),
        };
        let (next, outcomes) = process(self.state, M, &self.held, &incoming);
        for (k, o) in outcomes {
            let text = match o {
                Outcome::Applied { from, to } => {
                    assert_eq!(from, self.state, "moves chain");
                    assert!(allowed(from, to));
                    self.state = to;
                    self.applied_path.push(to);
                    self.held.retain(|d| d.key != k);
                    "applied".to_owned()
                }
                Outcome::Held => {
                    self.held.push(incoming.clone());
                    "held".to_owned()
                }
                Outcome::Rejected { reason, .. } => {
                    self.held.retain(|d| d.key != k);
                    format!("rejected:{}", reason.as_str())
                }
            };
            self.log.push((k, text));
        }
        assert_eq!(next, self.state);
    }
}

fn state_strategy() -> impl Strategy<Value = IntentState> {
    prop::sample::select(vec![Authorized, Captured, Refunded, Voided, Failed])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any deliveries (random states, duplicates by key, wrong amounts): the
    /// machine decides each exactly as the model does, and what it applied
    /// is a path of allowed moves from `pending`.
    #[test]
    fn machine_matches_the_model(
        deliveries in prop::collection::vec((0u32..8, state_strategy(), prop::bool::weighted(0.1)), 0..24)
    ) {
        let mut model = Model::default();
        let mut driven = Driven { state: Pending, held: vec![], seen: vec![], log: vec![], applied_path: vec![] };
        for (key, state, wrong) in deliveries {
            // A key seen before is a duplicate whatever it carries.
            let amount = if wrong { M.0 + 1 } else { M.0 };
            model.deliver(key, ix(state), amount);
            driven.deliver(key, state, amount);
        }
        prop_assert_eq!(&driven.log, &model.log);
        prop_assert_eq!(ix(driven.state), model.state);
        let mut s = Pending;
        for to in &driven.applied_path {
            prop_assert!(allowed(s, *to));
            s = *to;
        }
        // Every delivery had exactly one first outcome.
        let keys: std::collections::BTreeSet<u32> = driven.seen.iter().copied().collect();
        prop_assert_eq!(keys.len(), driven.seen.len());
    }

    /// A provider's real history, delivered in any order with duplicates,
    /// ends in its last state; the only rejections are of events made stale
    /// by a later one that was allowed straight from an earlier state (a
    /// `voided` applied to `pending` before its `authorized` arrived).
    #[test]
    fn any_order_of_a_real_history_ends_in_its_last_state(
        path_ix in 0usize..7,
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<u32> = (0..8).map(|i| i % 4).collect();
            for i in (1..v.len()).rev() {
                let j = (rng.next_u32() as usize) % (i + 1);
                v.swap(i, j);
            }
            v
        }),
    ) {
        let paths: [&[IntentState]; 7] = [
            &[Authorized],
            &[Authorized, Captured],
            &[Authorized, Captured, Refunded],
            &[Voided],
            &[Failed],
            &[Authorized, Voided],
            &[Authorized, Failed],
        ];
        let path = paths[path_ix];
        let mut driven = Driven { state: Pending, held: vec![], seen: vec![], log: vec![], applied_path: vec![] };
        for key in order {
            if let Some(state) = path.get(key as usize) {
                driven.deliver(key, *state, M.0);
            }
        }
        prop_assert_eq!(driven.state, *path.last().unwrap());
        prop_assert_eq!(driven.applied_path.last(), path.last());
        prop_assert!(driven.held.is_empty());
        prop_assert!(driven
            .log
            .iter()
            .all(|(_, t)| !t.starts_with("rejected") || t == "rejected:stale_transition"));
        // Through `captured` there is no shortcut: every state is applied,
        // in order, whatever the delivery order.
        if path.len() == 3 || path.len() == 2 && path[1] == Captured {
            prop_assert_eq!(&driven.applied_path[..], path);
        }
    }
}

#[test]
fn offline_card_matching_is_by_terminal_code_amount_and_window() {
    use crate::payments::{reconcile_card, CardFacts, CardReference};
    assert_eq!(
        CardReference::parse("T-0042:004512"),
        CardReference {
            terminal: Some("T-0042".into()),
            code: "004512".into()
        }
    );
    assert_eq!(CardReference::parse("004512").terminal, None);
    assert_eq!(CardReference::parse(":004512").code, ":004512");
    let sale = 1_000_000;
    let deadline = 60_000;
    let p = |terminal: Option<&str>, amount| CardFacts {
        terminal: terminal.map(str::to_owned),
        amount: Money(amount),
        sale_ms: sale,
    };
    let cap = |terminal: Option<&str>, amount, at| Confirmation {
        state: Captured,
        amount: Money(amount),
        received_ms: at,
        terminal: terminal.map(str::to_owned),
    };
    // (payment, other payments with the code, reports, verdict at sale + 10)
    let cases: Vec<(CardFacts, Vec<CardFacts>, Vec<Confirmation>, Verdict)> = vec![
        // Two terminals produced one code: the capture names T1.
        (
            p(Some("T1"), 9_500),
            vec![p(Some("T2"), 9_500)],
            vec![cap(Some("T1"), 9_500, sale + 5)],
            Verdict::Confirmed,
        ),
        (
            p(Some("T2"), 9_500),
            vec![p(Some("T1"), 9_500)],
            vec![cap(Some("T1"), 9_500, sale + 5)],
            Verdict::Waiting,
        ),
        // No terminal anywhere: one capture two payments could claim.
        (
            p(None, 9_500),
            vec![p(None, 9_500)],
            vec![cap(None, 9_500, sale + 5)],
            Verdict::Ambiguous,
        ),
        // The capture names no terminal but the other payment is of
        // another amount: no ambiguity, and its report is no mismatch here.
        (
            p(Some("T1"), 9_500),
            vec![p(Some("T2"), 4_000)],
            vec![cap(None, 9_500, sale + 5), cap(None, 4_000, sale + 6)],
            Verdict::Confirmed,
        ),
        // Another terminal's report of another amount is not ours.
        (
            p(Some("T1"), 9_500),
            vec![],
            vec![cap(Some("T9"), 4_000, sale + 5)],
            Verdict::Waiting,
        ),
        // Our terminal, another amount, nobody else's: a mismatch.
        (
            p(Some("T1"), 9_500),
            vec![],
            vec![cap(Some("T1"), 4_000, sale + 5)],
            Verdict::Mismatch {
                provider_amount: Money(4_000),
            },
        ),
        // The other payment's window is far away: no collision.
        (
            p(None, 9_500),
            vec![CardFacts {
                sale_ms: sale + 10 * deadline,
                ..p(None, 9_500)
            }],
            vec![cap(None, 9_500, sale + 5)],
            Verdict::Confirmed,
        ),
    ];
    for (payment, others, reports, verdict) in cases {
        assert_eq!(
            reconcile_card(&payment, &others, &reports, deadline, sale + 10),
            verdict,
            "{payment:?} {others:?} {reports:?}"
        );
    }
}

#[test]
fn partial_refunds_are_a_table() {
    use crate::payments::{decide_refund, is_partial_refund, RefundStep};
    let cases = [
        (
            Captured,
            0,
            2_000,
            RefundStep::Partial {
                refunded: Money(2_000),
            },
        ),
        (Captured, 2_000, 7_500, RefundStep::Full),
        (
            Captured,
            2_000,
            7_501,
            RefundStep::Reject(RejectReason::RefundExceedsCapture),
        ),
        (
            Captured,
            0,
            0,
            RefundStep::Reject(RejectReason::RefundExceedsCapture),
        ),
        // Before its capture: held until the capture is applied.
        (Authorized, 0, 100, RefundStep::Hold),
        (Pending, 0, 100, RefundStep::Hold),
        (
            Voided,
            0,
            100,
            RefundStep::Reject(RejectReason::InvalidTransition),
        ),
        (
            Failed,
            0,
            100,
            RefundStep::Reject(RejectReason::InvalidTransition),
        ),
        (
            Refunded,
            9_500,
            100,
            RefundStep::Reject(RejectReason::Stale),
        ),
    ];
    for (from, refunded, amount, step) in cases {
        assert_eq!(
            decide_refund(from, Money(9_500), Money(refunded), Money(amount)),
            step,
            "{from:?} {refunded} {amount}"
        );
    }
    assert!(is_partial_refund(Refunded, true, Money(0)));
    assert!(is_partial_refund(Refunded, false, Money(1)));
    assert!(!is_partial_refund(Refunded, false, Money(0)));
    assert!(!is_partial_refund(Captured, true, Money(0)));
    assert!(RejectReason::RefundExceedsCapture.alerts());
}
