//! Payment intents and provider webhooks at the hub, end to end over loopback
//! HTTP with the provider emulator (`caja_hub::provider_emulator`): intents created by
//! signed registers, 100 concurrent deliveries of one webhook, reordered
//! deliveries, bad signatures and replayed timestamps, and the reconciliation
//! of card payments a terminal took offline.

mod support;

use std::sync::Arc;
use std::time::Duration;

use caja_hub::provider_emulator::{Fault, Provider, ProviderEvent};
use caja_hub::workload::Register;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{SaleId, StoreId};
use caja_shared::kind::{EventBody, IntentState, Payment, PaymentMethod, SaleCreated};
use caja_shared::money::Money;
use serde_json::{json, Value};
use support::*;

const AZUL_SECRET: &str = "azul-webhook-secret-0123456789";
const CARDNET_SECRET: &str = "cardnet-webhook-secret-012345";

fn config(deadline_ms: i64) -> caja_hub::config::HubConfig {
    caja_hub::config::HubConfig {
        payment_providers: [
            ("azul".to_owned(), AZUL_SECRET.to_owned()),
            ("cardnet".to_owned(), CARDNET_SECRET.to_owned()),
        ]
        .into(),
        payment_confirm_deadline_ms: deadline_ms,
        // Passes are asked for by the tests (the first tick runs at start).
        payment_reconcile_interval_ms: 3_600_000,
        ..test_config()
    }
}

async fn setup(deadline_ms: i64) -> (TestHub, StoreId, Register, caja_shared::key::HubPublicKey) {
    let hub = TestHub::start_with(config(deadline_ms)).await;
    let store = hub.create_store("colmado").await;
    let (reg, key) = hub.enroll(store).await;
    (hub, store, reg, key)
}

fn rid(n: u64) -> String {
    format!("019aaf70-0000-7000-8000-{n:012x}")
}

fn sale_id(n: u64) -> String {
    format!("019aaf70-0000-7000-8000-{:012x}", 0xa000 + n)
}

async fn create_intent(hub: &TestHub, reg: &Register, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    hub.signed(reg, "POST", "/v1/payments/intents", &bytes, now_ms())
        .await
}

/// Creates an intent for `amount` with azul; returns its id.
async fn intent(hub: &TestHub, reg: &Register, n: u64, amount: i64) -> String {
    let r = create_intent(
        hub,
        reg,
        &json!({"request_id": rid(n), "sale_id": sale_id(n), "provider": "azul", "method": "card", "amount": amount}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"][0]["body"]["intent_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn count(hub: &TestHub, sql: &str) -> i64 {
    hub.db().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn audit_count(hub: &TestHub, kind: &str) -> i64 {
    hub.db()
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE kind = $1",
            [kind],
            |r| r.get(0),
        )
        .unwrap()
}

/// Business state plus everything payments keep.
fn state(hub: &TestHub) -> (i64, i64, i64, String, Vec<i64>, i64) {
    let (a, b, c, d) = hub.business_state();
    let payments = [
        "SELECT COUNT(*) FROM payment_intents",
        "SELECT COUNT(*) FROM payment_webhooks",
        "SELECT COUNT(*) FROM payment_card_checks",
        "SELECT COUNT(*) FROM conflicts",
        "SELECT COUNT(*) FROM alerts",
        "SELECT COUNT(*) FROM payment_intents WHERE state <> 'pending'",
    ]
    .iter()
    .map(|q| count(hub, q))
    .collect();
    (
        a,
        b,
        c,
        d,
        payments,
        count(hub, "SELECT COUNT(*) FROM audit_log"),
    )
}

async fn overview(hub: &TestHub) -> Value {
    hub.admin_get("/v1/admin/payments").await
}

async fn intent_state(hub: &TestHub, id: &str) -> String {
    let v = overview(hub).await;
    v["intents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["intent_id"] == id)
        .map(|i| i["state"].as_str().unwrap().to_owned())
        .unwrap()
}

/// The states of the PaymentIntentUpdated events the register pulls for `id`.
async fn pulled_states(hub: &TestHub, reg: &Register, id: &str) -> Vec<IntentState> {
    pulled_parts(hub, reg, id)
        .await
        .into_iter()
        .map(|(state, _)| state)
        .collect()
}

/// The state and the refunded amount of each PaymentIntentUpdated event the
/// register pulls for `id`, in order.
async fn pulled_parts(hub: &TestHub, reg: &Register, id: &str) -> Vec<(IntentState, Option<i64>)> {
    let r = hub.pull(reg, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            let e = Event::from_json(v.to_string().as_bytes()).unwrap();
            match e.body().unwrap() {
                EventBody::PaymentIntentUpdated(p) if p.intent_id.to_string() == id => {
                    Some((p.state, p.refunded.map(|m| m.0)))
                }
                _ => None,
            }
        })
        .collect()
}

on_both_backends! {
#[tokio::test]
async fn intents_are_signed_checked_idempotent_and_reach_the_register() {
    let (hub, _store, reg, hub_key) = setup(60_000).await;
    let body = json!({"request_id": rid(1), "sale_id": sale_id(1), "provider": "azul", "method": "card", "amount": 9500});
    let first = create_intent(&hub, &reg, &body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let events = first.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    let e = Event::from_json(events[0].to_string().as_bytes()).unwrap();
    let EventBody::PaymentIntentUpdated(p) = e.body().unwrap() else {
        panic!("{e:?}")
    };
    assert_eq!(
        (p.state, p.amount, p.provider.as_str(), p.device),
        (IntentState::Pending, Money(9500), "azul", reg.device)
    );
    let cp: caja_shared::checkpoint::HubCheckpoint =
        serde_json::from_value(first.body["hub_checkpoint"].clone()).unwrap();
    cp.verify(&hub_key).unwrap();
    assert_eq!(cp.hash, e.hash());
    // The same request id and body: the same answer, nothing new.
    let before = state(&hub);
    let again = create_intent(&hub, &reg, &body).await;
    assert_eq!(again.body["events"], first.body["events"]);
    assert_eq!(state(&hub).4, before.4);
    // Refusals change nothing.
    let refusals = [
        (
            json!({"request_id": rid(1), "sale_id": sale_id(1), "provider": "azul", "method": "card", "amount": 9600}),
            409,
            "request_id_conflict",
        ),
        (
            json!({"request_id": rid(2), "sale_id": sale_id(2), "provider": "visa", "method": "card", "amount": 100}),
            400,
            "invalid",
        ),
        (
            json!({"request_id": rid(3), "sale_id": sale_id(3), "provider": "azul", "method": "cash", "amount": 100}),
            400,
            "invalid",
        ),
        (
            json!({"request_id": rid(4), "sale_id": sale_id(4), "provider": "azul", "method": "card", "amount": 0}),
            400,
            "invalid",
        ),
        (
            json!({"request_id": rid(5), "sale_id": sale_id(5), "provider": "azul", "method": "card", "amount": 1, "tip": 1}),
            400,
            "invalid",
        ),
    ];
    for (body, status, code) in refusals {
        let r = create_intent(&hub, &reg, &body).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let unsigned = hub
        .post_json("/v1/payments/intents", &json!({"request_id": rid(6)}))
        .await;
    assert_eq!(unsigned.0, 401);
    assert_eq!(state(&hub).4, before.4);
    // The register gets the intent through its hub chain.
    assert_eq!(
        pulled_states(&hub, &reg, &p.intent_id.to_string()).await,
        [IntentState::Pending]
    );
    assert_eq!(audit_count(&hub, "payment_intent_created"), 1);
}
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_deliveries_make_exactly_one_transition() {
    let (hub, _store, reg, _) = setup(60_000).await;
    let id = intent(&hub, &reg, 1, 9500).await;
    let azul = Arc::new(Provider::new("azul", AZUL_SECRET));
    let authorized = azul.event("authorized", Some(&id), Some("004512"), 9500);
    let replies = azul.deliver_concurrently(&hub.url, &authorized, 100).await;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.body["outcome"] == "applied")
            .count(),
        1
    );
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.body["outcome"] == "duplicate")
            .count(),
        99
    );
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM payment_webhooks"), 1);
    assert_eq!(audit_count(&hub, "payment_intent_transition"), 1);
    assert_eq!(intent_state(&hub, &id).await, "authorized");
    // Two contradicting events (capture and void), each delivered 50 times
    // at once: one of them moves the intent, the other is rejected.
    let captured = azul.event("captured", Some(&id), Some("004512"), 9500);
    let voided = azul.event("voided", Some(&id), None, 9500);
    let (a, b) = tokio::join!(
        azul.deliver_concurrently(&hub.url, &captured, 50),
        azul.deliver_concurrently(&hub.url, &voided, 50)
    );
    let applied = a
        .iter()
        .chain(&b)
        .filter(|r| r.body["outcome"] == "applied")
        .count();
    let rejected = a
        .iter()
        .chain(&b)
        .filter(|r| r.body["outcome"] == "rejected")
        .count();
    assert_eq!((applied, rejected), (1, 1));
    assert_eq!(audit_count(&hub, "payment_intent_transition"), 2);
    let final_state = intent_state(&hub, &id).await;
    assert!(final_state == "captured" || final_state == "voided");
    // The register sees exactly the applied moves.
    let pulled = pulled_states(&hub, &reg, &id).await;
    assert_eq!(pulled.len(), 3);
    assert_eq!(pulled[..2], [IntentState::Pending, IntentState::Authorized]);
    assert_eq!(pulled[2].as_str(), final_state);
    // 100 different events (new ids, as a provider resending under fresh
    // ids) all authorizing one intent at once: one transition, 99 recorded
    // rejections.
    let id2 = intent(&hub, &reg, 2, 1200).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let azul = azul.clone();
        let e = azul.event("authorized", Some(&id2), Some("777777"), 1200);
        let url = hub.url.clone();
        tasks.push(tokio::spawn(async move { azul.deliver(&url, &e).await }));
    }
    let mut applied = 0;
    let mut already = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        match (r.body["outcome"].as_str(), r.body["reason"].as_str()) {
            (Some("applied"), _) => applied += 1,
            (Some("rejected"), Some("already_in_state")) => already += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((applied, already), (1, 99));
    assert_eq!(audit_count(&hub, "payment_intent_transition"), 3);
    assert_eq!(intent_state(&hub, &id2).await, "authorized");
}
}

on_both_backends! {
#[tokio::test]
async fn reordered_deliveries_end_in_the_right_state_or_a_recorded_rejection() {
    let (hub, _store, reg, _) = setup(60_000).await;
    let azul = Provider::new("azul", AZUL_SECRET);
    // Refunded, then captured, then authorized (fully reversed), with a
    // duplicate and a delay: the intent ends refunded.
    let id = intent(&hub, &reg, 1, 9500).await;
    let history = vec![
        azul.event("authorized", Some(&id), Some("111111"), 9500),
        azul.event("captured", Some(&id), Some("111111"), 9500),
        azul.event("refunded", Some(&id), None, 9500),
    ];
    let replies = azul.deliver_in_order(&hub.url, &history, &[2, 1, 2]).await;
    let outcomes: Vec<&str> = replies
        .iter()
        .map(|r| r.body["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["held", "held", "duplicate"]);
    assert_eq!(intent_state(&hub, &id).await, "pending");
    let last = azul
        .deliver_late(&hub.url, &history[0], Duration::from_millis(50))
        .await;
    assert_eq!(
        (
            last.body["outcome"].as_str(),
            last.body["state"].as_str(),
            last.body["transitions"].as_u64()
        ),
        (Some("applied"), Some("refunded"), Some(3))
    );
    assert_eq!(
        pulled_states(&hub, &reg, &id).await,
        [
            IntentState::Pending,
            IntentState::Authorized,
            IntentState::Captured,
            IntentState::Refunded
        ]
    );
    // A second intent: captured, then a late authorized under a new event id
    // (stale), then a void (impossible after a capture): both recorded as
    // rejections with their reasons, never applied; the void is alerted.
    let id2 = intent(&hub, &reg, 2, 5000).await;
    let auth = azul.event("authorized", Some(&id2), Some("222222"), 5000);
    let cap = azul.event("captured", Some(&id2), Some("222222"), 5000);
    assert_eq!(
        azul.deliver(&hub.url, &auth).await.body["outcome"],
        "applied"
    );
    assert_eq!(
        azul.deliver(&hub.url, &cap).await.body["outcome"],
        "applied"
    );
    let alerts_before = count(&hub, "SELECT COUNT(*) FROM alerts");
    let stale = azul.event("authorized", Some(&id2), Some("222222"), 5000);
    let r = azul.deliver(&hub.url, &stale).await;
    assert_eq!(
        (
            r.status,
            r.body["outcome"].as_str(),
            r.body["reason"].as_str()
        ),
        (200, Some("rejected"), Some("stale_transition"))
    );
    let void = azul.event("voided", Some(&id2), None, 5000);
    let r = azul.deliver(&hub.url, &void).await;
    assert_eq!(
        (r.body["outcome"].as_str(), r.body["reason"].as_str()),
        (Some("rejected"), Some("invalid_transition"))
    );
    let wrong_amount = azul.event("refunded", Some(&id2), None, 4000);
    let r = azul.deliver(&hub.url, &wrong_amount).await;
    assert_eq!(r.body["reason"], "amount_mismatch");
    assert_eq!(intent_state(&hub, &id2).await, "captured");
    assert_eq!(
        count(&hub, "SELECT COUNT(*) FROM alerts") - alerts_before,
        2
    );
    let v = overview(&hub).await;
    let rejections: Vec<(&str, &str)> = v["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["outcome"] == "rejected")
        .map(|w| {
            (
                w["reason"].as_str().unwrap(),
                w["from_state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rejections,
        [
            ("stale_transition", "captured"),
            ("invalid_transition", "captured"),
            ("amount_mismatch", "captured")
        ]
    );
    assert_eq!(audit_count(&hub, "payment_webhook_decided"), 2 + 3);
    // Another provider cannot move azul's intent, and an unknown intent is
    // recorded as a rejection.
    let cardnet = Provider::new("cardnet", CARDNET_SECRET);
    let r = cardnet
        .deliver(&hub.url, &cardnet.event("refunded", Some(&id2), None, 5000))
        .await;
    assert_eq!(r.body["reason"], "wrong_provider");
    let r = azul
        .deliver(
            &hub.url,
            &azul.event(
                "captured",
                Some("019aaf70-0000-7000-8000-00000000dead"),
                None,
                5000,
            ),
        )
        .await;
    assert_eq!(r.body["reason"], "unknown_intent");
    assert_eq!(intent_state(&hub, &id2).await, "captured");
}
}

on_both_backends! {
#[tokio::test]
async fn bad_signatures_and_replayed_timestamps_are_401_and_change_nothing() {
    let (hub, _store, reg, _) = setup(60_000).await;
    let id = intent(&hub, &reg, 1, 9500).await;
    let azul = Provider::new("azul", AZUL_SECRET);
    let e = azul.event("authorized", Some(&id), Some("004512"), 9500);
    let before = state(&hub);
    let faults = [
        (Fault::CorruptSignature, "bad_signature"),
        (Fault::WrongSecret, "bad_signature"),
        (Fault::Unsigned, "bad_signature"),
        (Fault::TamperedBody, "bad_signature"),
        (Fault::Timestamp(-10 * 60 * 1000), "stale_timestamp"),
        (Fault::Timestamp(-5 * 60 * 1000 - 5_000), "stale_timestamp"),
        (Fault::Timestamp(10 * 60 * 1000), "stale_timestamp"),
    ];
    for (fault, code) in faults {
        let r = azul.deliver_with(&hub.url, &e, fault).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (401, Some(code)),
            "{fault:?}: {}",
            r.body
        );
        assert!(r.body["hub_time_ms"].is_i64());
        assert_eq!(state(&hub), before, "{fault:?} changed something");
    }
    // A provider the hub does not know.
    let other = Provider::new("visa", AZUL_SECRET);
    let r = other.deliver(&hub.url, &e).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (404, Some("unknown_provider"))
    );
    // A well-signed body that is not a webhook: 400 naming the field.
    let broken = ProviderEvent {
        state: "pending",
        ..e.clone()
    };
    let r = azul.deliver(&hub.url, &broken).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("state")));
    assert_eq!(state(&hub), before);
    // The same event, correctly signed, still applies afterwards (nothing
    // about it was stored by the refusals).
    assert_eq!(azul.deliver(&hub.url, &e).await.body["outcome"], "applied");
    let metrics = hub
        .http
        .get(format!("{}/metrics", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("caja_hub_payment_webhooks_total{code=\"applied\"} 1"),
        "{metrics}"
    );
}
}

fn card_sale(n: u64, amount: i64, reference: &str) -> EventBody {
    let mut rng = SeededRandom::new(n);
    EventBody::SaleCreated(SaleCreated {
        sale_id: SaleId::new_v7(now_ms(), &mut rng).unwrap(),
        cashier: "ana".into(),
        shift_id: None,
        customer: None,
        fiscal: None,
        lines: vec![],
        total: Money(amount),
        tax: Money(0),
        payments: vec![Payment {
            method: PaymentMethod::Card,
            amount: Money(amount),
            reference: Some(reference.into()),
        }],
        change: Money(0),
        approval: None,
    })
}

async fn reconcile(hub: &TestHub) -> Value {
    hub.admin
        .post("/v1/admin/payments/reconcile", &json!({}))
        .await
        .unwrap()
}

fn verdicts(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["card_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["reference"].as_str().unwrap().to_owned(),
                c["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

on_both_backends! {
#[tokio::test]
async fn offline_card_payments_are_reconciled_against_the_providers_webhooks() {
    let deadline_ms = 1_500;
    let (hub, store, mut reg, _) = setup(deadline_ms).await;
    let azul = Provider::new("azul", AZUL_SECRET);
    // The provider's confirmation of sale A reaches the hub before the
    // register (offline, terminal in standalone mode) syncs the sale.
    let early = azul.event("captured", None, Some("004512"), 9500);
    let r = azul.deliver(&hub.url, &early).await;
    assert_eq!(r.body["outcome"], "recorded", "{}", r.body);
    let mut rng = SeededRandom::new(7);
    let now = now_ms();
    let a = reg.append(store, card_sale(1, 9500, "004512"), vec![], now, &mut rng);
    let b = reg.append(store, card_sale(2, 5000, "004513"), vec![], now, &mut rng);
    let c = reg.append(store, card_sale(3, 7000, "004514"), vec![], now, &mut rng);
    let pushed = hub.push(&reg, &[a, b, c]).await;
    assert_eq!(pushed.status, 200, "{}", pushed.body);
    let report = reconcile(&hub).await;
    assert_eq!(report["found"], 3, "{report}");
    let v = overview(&hub).await;
    assert_eq!(
        verdicts(&v),
        [
            ("004512".to_owned(), "confirmed".to_owned()),
            ("004513".to_owned(), "waiting".to_owned()),
            ("004514".to_owned(), "waiting".to_owned()),
        ]
    );
    // Sale B's confirmation arrives after the sale, with another amount: a
    // manual conflict and an alert at once.
    let r = azul
        .deliver(
            &hub.url,
            &azul.event("captured", None, Some("004513"), 4000),
        )
        .await;
    assert_eq!(r.body["outcome"], "recorded");
    let conflicts = |hub: &TestHub| -> Vec<(String, String)> {
        let db = hub.db();
        let mut stmt = db
            .prepare("SELECT reason, strategy FROM conflicts ORDER BY reason")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        conflicts(&hub),
        [(
            "card_payment_amount_mismatch".to_owned(),
            "manual".to_owned()
        )]
    );
    // Sale C never gets one: after the deadline it is a conflict too.
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(deadline_ms).unwrap() + 200,
    ))
    .await;
    let report = reconcile(&hub).await;
    assert_eq!(report["conflicts"], 1, "{report}");
    assert_eq!(
        verdicts(&overview(&hub).await),
        [
            ("004512".to_owned(), "confirmed".to_owned()),
            ("004513".to_owned(), "mismatch".to_owned()),
            ("004514".to_owned(), "unconfirmed".to_owned()),
        ]
    );
    assert_eq!(
        conflicts(&hub),
        [
            (
                "card_payment_amount_mismatch".to_owned(),
                "manual".to_owned()
            ),
            ("card_payment_unconfirmed".to_owned(), "manual".to_owned()),
        ]
    );
    let alerts = hub.admin_get("/v1/admin/alerts").await;
    let kinds: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .filter(|k| *k == "payment_reconciliation")
        .collect();
    assert_eq!(kinds.len(), 2, "{alerts}");
    // A late capture of C changes no verdict and adds no conflict; passes
    // again change nothing.
    let before = state(&hub);
    let late = azul.event("captured", None, Some("004514"), 7000);
    assert_eq!(
        azul.deliver(&hub.url, &late).await.body["outcome"],
        "recorded"
    );
    assert_eq!(reconcile(&hub).await["conflicts"], 0);
    assert_eq!(conflicts(&hub).len(), 2);
    let after = state(&hub);
    assert_eq!(after.4[3], before.4[3], "no new conflict");
    // A duplicate of an earlier confirmation is answered and changes nothing.
    let before = state(&hub);
    let dup = azul.deliver(&hub.url, &early).await;
    assert_eq!(
        (
            dup.body["outcome"].as_str(),
            dup.body["first_outcome"].as_str()
        ),
        (Some("duplicate"), Some("recorded"))
    );
    assert_eq!(state(&hub), before);
    // `caja-hub rebuild` recomputes conflicts from events (dropping the
    // payment ones); the next pass finds them again, with the same ids.
    let ids = |hub: &TestHub| -> Vec<String> {
        let db = hub.db();
        let mut stmt = db
            .prepare("SELECT conflict_id FROM conflicts ORDER BY conflict_id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let before = ids(&hub);
    let mut hub = hub;
    hub.stop().await;
    caja_hub::storage::rebuild(&hub.db()).unwrap();
    assert!(conflicts(&hub).is_empty());
    hub.restart().await;
    // (The reconciler's first pass at start-up may be the one that does it.)
    reconcile(&hub).await;
    assert_eq!(ids(&hub), before);
    assert_eq!(reconcile(&hub).await["conflicts"], 0);
}
}

on_both_backends! {
#[tokio::test]
async fn offline_confirmations_sharing_a_code_match_by_terminal_or_become_a_conflict() {
    let deadline_ms = 1_500;
    let (hub, store, mut reg, _) = setup(deadline_ms).await;
    let azul = Provider::new("azul", AZUL_SECRET);
    let mut rng = SeededRandom::new(11);
    let now = now_ms();
    // Two terminals handed out the same six-digit code for the same amount;
    // the registers recorded each with its terminal id. Two more payments
    // share a code with no terminal recorded.
    let sales = [
        card_sale(21, 9500, "T1:004512"),
        card_sale(22, 9500, "T2:004512"),
        card_sale(23, 9500, "004777"),
        card_sale(24, 9500, "004777"),
    ];
    let events: Vec<Event> = sales
        .into_iter()
        .map(|s| reg.append(store, s, vec![], now, &mut rng))
        .collect();
    let pushed = hub.push(&reg, &events).await;
    assert_eq!(pushed.status, 200, "{}", pushed.body);
    // The provider confirms the first terminal's payment, naming it, and
    // one payment of the code nobody's terminal tells apart.
    let r = azul
        .deliver(
            &hub.url,
            &azul.terminal_event("captured", "T1", "004512", 9500),
        )
        .await;
    assert_eq!(r.body["outcome"], "recorded", "{}", r.body);
    let r = azul
        .deliver(&hub.url, &azul.event("captured", None, Some("004777"), 9500))
        .await;
    assert_eq!(r.body["outcome"], "recorded", "{}", r.body);
    reconcile(&hub).await;
    assert_eq!(
        verdicts(&overview(&hub).await),
        [
            ("004777".to_owned(), "ambiguous".to_owned()),
            ("004777".to_owned(), "ambiguous".to_owned()),
            ("T1:004512".to_owned(), "confirmed".to_owned()),
            ("T2:004512".to_owned(), "waiting".to_owned()),
        ]
    );
    let reasons: Vec<(String, String)> = {
        let db = hub.db();
        let mut stmt = db
            .prepare("SELECT reason, strategy FROM conflicts ORDER BY reason")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let ambiguous = ("card_payment_ambiguous".to_owned(), "manual".to_owned());
    assert_eq!(reasons, [ambiguous.clone(), ambiguous]);
    // The health report's payments section: an intent the provider never
    // reported on, a confirmation no payment claims, a rejected webhook.
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(health["payments"]["intents_pending_past_deadline"], 0, "{health}");
    intent(&hub, &reg, 31, 4000).await;
    let stray = azul.terminal_event("captured", "T9", "000001", 1234);
    assert_eq!(
        azul.deliver(&hub.url, &stray).await.body["outcome"],
        "recorded"
    );
    let unknown = azul.event(
        "captured",
        Some("019aaf70-0000-7000-8000-00000000ffff"),
        None,
        100,
    );
    assert_eq!(
        azul.deliver(&hub.url, &unknown).await.body["reason"],
        "unknown_intent"
    );
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(deadline_ms).unwrap() + 200,
    ))
    .await;
    reconcile(&hub).await;
    let health = hub.admin_get("/v1/health").await;
    let p = &health["payments"];
    assert_eq!(p["intents_pending"], 1, "{health}");
    assert_eq!(p["intents_pending_past_deadline"], 1, "{health}");
    assert_eq!(p["unmatched_confirmations"], 1, "{health}");
    assert_eq!(p["webhook_rejections"], 1, "{health}");
    assert_eq!(p["webhook_rejections_alerting_24h"], 1, "{health}");
    assert_eq!(p["rejections_by_reason"]["unknown_intent"], 1, "{health}");
    assert_eq!(p["card_checks"]["ambiguous"], 2, "{health}");
    assert_eq!(p["card_checks"]["confirmed"], 1, "{health}");
    assert_eq!(p["card_checks"]["unconfirmed"], 1, "{health}");
    assert_eq!(health["overall"], "degraded");
    let reasons: Vec<&str> = health["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for needle in [
        "payment intent(s) pending past",
        "offline card confirmation(s) from the provider match no recorded payment",
        "payment webhook(s) rejected in the last 24 h",
    ] {
        assert!(reasons.iter().any(|r| r.contains(needle)), "{needle}: {reasons:?}");
    }
}
}

on_both_backends! {
#[tokio::test]
async fn card_payments_are_refunded_in_parts_and_the_register_learns_each_part() {
    let (hub, _store, reg, _) = setup(60_000).await;
    let azul = Provider::new("azul", AZUL_SECRET);
    let id = intent(&hub, &reg, 41, 9500).await;
    for state in ["authorized", "captured"] {
        let e = azul.event(state, Some(&id), Some("731950"), 9500);
        assert_eq!(azul.deliver(&hub.url, &e).await.body["outcome"], "applied");
    }
    // (refund, outcome, reason, state after)
    let steps: [(i64, &str, Option<&str>, &str); 4] = [
        (2000, "applied", None, "captured"),
        (8000, "rejected", Some("refund_exceeds_capture"), "captured"),
        (7500, "applied", None, "refunded"),
        (100, "rejected", Some("stale_transition"), "refunded"),
    ];
    for (amount, outcome, reason, state) in steps {
        let r = azul.deliver(&hub.url, &azul.partial_refund(&id, amount)).await;
        assert_eq!(
            (
                r.body["outcome"].as_str(),
                r.body["reason"].as_str(),
                r.body["state"].as_str()
            ),
            (Some(outcome), reason, Some(state)),
            "refund of {amount}: {}",
            r.body
        );
        assert_eq!(intent_state(&hub, &id).await, state);
    }
    assert_eq!(
        count(&hub, "SELECT refunded_amount FROM payment_intents"),
        9500
    );
    // The register pulls every part: captured with 20.00 refunded, then
    // refunded with all of it.
    assert_eq!(
        pulled_parts(&hub, &reg, &id).await,
        [
            (IntentState::Pending, None),
            (IntentState::Authorized, None),
            (IntentState::Captured, None),
            (IntentState::Captured, Some(2000)),
            (IntentState::Refunded, Some(9500)),
        ]
    );
    // The rejected refund beyond the capture is alerted.
    let alerts = hub.admin_get("/v1/admin/alerts").await;
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["message"]
                .as_str()
                .is_some_and(|m| m.contains("refund_exceeds_capture"))),
        "{alerts}"
    );
}
}

on_both_backends! {
#[tokio::test]
async fn a_partial_refund_before_its_capture_is_held_and_applied_when_the_capture_arrives() {
    let (hub, _store, reg, _) = setup(60_000).await;
    let azul = Provider::new("azul", AZUL_SECRET);
    let id = intent(&hub, &reg, 42, 9500).await;
    // The provider's refund webhook overtakes its capture: held, nothing moved.
    let first = azul.partial_refund(&id, 2000);
    let r = azul.deliver(&hub.url, &first).await;
    assert_eq!(r.body["outcome"], "held", "{}", r.body);
    assert_eq!(r.body["state"], "pending", "{}", r.body);
    let r = azul.deliver(&hub.url, &azul.partial_refund(&id, 1500)).await;
    assert_eq!(r.body["outcome"], "held", "{}", r.body);
    assert_eq!(
        count(&hub, "SELECT refunded_amount FROM payment_intents"),
        0
    );
    let e = azul.event("authorized", Some(&id), Some("731951"), 9500);
    let r = azul.deliver(&hub.url, &e).await;
    assert_eq!(r.body["outcome"], "applied", "{}", r.body);
    assert_eq!(intent_state(&hub, &id).await, "authorized");
    // The capture: applied, and both held parts after it, in arrival order.
    let e = azul.event("captured", Some(&id), Some("731951"), 9500);
    let r = azul.deliver(&hub.url, &e).await;
    assert_eq!(r.body["outcome"], "applied", "{}", r.body);
    assert_eq!(r.body["transitions"], 3, "{}", r.body);
    assert_eq!(r.body["state"], "captured", "{}", r.body);
    assert_eq!(
        count(&hub, "SELECT refunded_amount FROM payment_intents"),
        3500
    );
    assert_eq!(
        count(&hub, "SELECT count(*) FROM payment_webhooks WHERE outcome = 'held'"),
        0
    );
    // A resend of the first refund is a duplicate, never a second refund.
    let r = azul.deliver(&hub.url, &first).await;
    assert_eq!(r.body["outcome"], "duplicate", "{}", r.body);
    assert_eq!(r.body["first_outcome"], "applied", "{}", r.body);
    // The rest completes it.
    let r = azul.deliver(&hub.url, &azul.partial_refund(&id, 6000)).await;
    assert_eq!(r.body["state"], "refunded", "{}", r.body);
    // The register learns each part, after the capture.
    assert_eq!(
        pulled_parts(&hub, &reg, &id).await,
        [
            (IntentState::Pending, None),
            (IntentState::Authorized, None),
            (IntentState::Captured, None),
            (IntentState::Captured, Some(2000)),
            (IntentState::Captured, Some(3500)),
            (IntentState::Refunded, Some(9500)),
        ]
    );
}
}

async fn ask_refund(hub: &TestHub, intent: &str, amount: i64, request: u64) -> Reply {
    let r = hub
        .http
        .post(format!("{}/v1/admin/payments/refund", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"intent_id": intent, "amount": amount, "request_id": rid(request)}))
        .send()
        .await
        .unwrap();
    reply(r).await
}

on_both_backends! {
#[tokio::test]
async fn head_office_asks_the_provider_for_a_refund_and_its_webhook_applies_it() {
    use caja_hub::provider_emulator::RefundApi;
    let azul = Arc::new(Provider::new("azul", AZUL_SECRET));
    let api = RefundApi::start(azul.clone(), "http://127.0.0.1:9").await.unwrap();
    let hub = TestHub::start_with(caja_hub::config::HubConfig {
        payment_provider_urls: [("azul".to_owned(), api.url.clone())].into(),
        ..config(60_000)
    })
    .await;
    api.set_hub_url(&hub.url);
    let store = hub.create_store("colmado").await;
    let (reg, _) = hub.enroll(store).await;
    let id = intent(&hub, &reg, 51, 9500).await;

    // Not captured yet: refused, the provider not asked, nothing audited.
    let r = ask_refund(&hub, &id, 2000, 900).await;
    assert_eq!((r.status, r.body["error"].as_str()), (409, Some("intent_not_captured")), "{}", r.body);
    assert!(api.requests.lock().unwrap().is_empty());
    for state in ["authorized", "captured"] {
        let e = azul.event(state, Some(&id), Some("731960"), 9500);
        assert_eq!(azul.deliver(&hub.url, &e).await.body["outcome"], "applied");
    }
    // More than was captured: refused, nothing asked.
    let r = ask_refund(&hub, &id, 9501, 901).await;
    assert_eq!((r.status, r.body["error"].as_str()), (409, Some("refund_exceeds_capture")), "{}", r.body);
    assert_eq!(audit_count(&hub, "payment_refund_requested"), 0);

    // 20.00 back: asked, signed; the provider's webhook applies it.
    let r = ask_refund(&hub, &id, 2000, 902).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["outcome"], "requested", "{}", r.body);
    assert_eq!(r.body["left_after"], 7500, "{}", r.body);
    assert_eq!(audit_count(&hub, "payment_refund_requested"), 1);
    let refunded = || count(&hub, "SELECT refunded_amount FROM payment_intents");
    for _ in 0..200 {
        if refunded() == 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refunded(), 2000);
    assert_eq!(intent_state(&hub, &id).await, "captured");
    // The same request again: the provider refunds once.
    let r = ask_refund(&hub, &id, 2000, 902).await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(refunded(), 2000);
    {
        let seen = api.requests.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|v| v.get("refused").is_none()), "{seen:?}");
        assert_eq!(seen[0]["amount"], 2000);
    }
    // The rest: the intent becomes refunded.
    let r = ask_refund(&hub, &id, 7500, 903).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for _ in 0..200 {
        if intent_state(&hub, &id).await == "refunded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(intent_state(&hub, &id).await, "refunded");
    assert_eq!(refunded(), 9500);

    // The provider down: 502, the admin may try again.
    let id2 = intent(&hub, &reg, 52, 4000).await;
    for state in ["authorized", "captured"] {
        let e = azul.event(state, Some(&id2), Some("731961"), 4000);
        azul.deliver(&hub.url, &e).await;
    }
    drop(api);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = ask_refund(&hub, &id2, 1000, 904).await;
    assert_eq!((r.status, r.body["error"].as_str()), (502, Some("provider_unreachable")), "{}", r.body);
}
}

on_both_backends! {
#[tokio::test]
async fn a_held_partial_refund_is_rejected_and_alerted_when_its_intent_is_voided() {
    let (hub, _store, reg, _) = setup(60_000).await;
    let azul = Provider::new("azul", AZUL_SECRET);
    let id = intent(&hub, &reg, 43, 9500).await;
    let r = azul.deliver(&hub.url, &azul.partial_refund(&id, 2000)).await;
    assert_eq!(r.body["outcome"], "held", "{}", r.body);
    let alerts_before = count(
        &hub,
        "SELECT count(*) FROM alerts WHERE kind = 'payment_transition_rejected'",
    );
    // The capture never comes: the provider voids the intent.
    let e = azul.event("voided", Some(&id), None, 9500);
    let r = azul.deliver(&hub.url, &e).await;
    assert_eq!(r.body["outcome"], "applied", "{}", r.body);
    assert_eq!(intent_state(&hub, &id).await, "voided");
    // The held refund is decided, not left waiting: rejected, alerted.
    assert_eq!(
        count(&hub, "SELECT count(*) FROM payment_webhooks WHERE outcome = 'held'"),
        0
    );
    assert_eq!(
        count(
            &hub,
            "SELECT count(*) FROM payment_webhooks WHERE outcome = 'rejected' AND reason = 'invalid_transition'"
        ),
        1
    );
    assert_eq!(
        count(
            &hub,
            "SELECT count(*) FROM alerts WHERE kind = 'payment_transition_rejected'"
        ),
        alerts_before + 1
    );
    assert_eq!(count(&hub, "SELECT refunded_amount FROM payment_intents"), 0);
}
}
