//! Card and QR payments end to end with a real hub, a real register and the
//! provider emulator over loopback HTTP: an intent created by the register
//! while online and confirmed by webhooks delivered out of order, which the
//! register learns through its hub chain; card payments taken while the
//! register is offline (terminal in standalone mode), confirmed, mismatched
//! or never confirmed, reconciled at the hub into `manual` conflicts.

use std::time::Duration;

use caja_hub::provider_emulator::Provider;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::ids::{OpId, RequestId, SaleId};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, Hub, Till};
use caja_tests::proxy::Mode;
use serde_json::json;

const SECRET: &str = "azul-webhook-secret-0123456789";
const DEADLINE_MS: i64 = 2_000;
/// Arroz Selecto 1kg in the sample catalog.
const ARROZ: i64 = 6_500;

fn rng() -> OsRandom {
    OsRandom::new().expect("rng")
}

fn op() -> OpId {
    OpId::new_v7(SystemClock.now_ms(), &mut rng()).expect("op id")
}

fn card_sale(reference: &str) -> SaleRequest {
    SaleRequest {
        lines: vec![LineRequest {
            code: "ARROZ".into(),
            qty_milli: 1000,
            discount: None,
            unit_price: None,
        }],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Card,
            amount: ARROZ,
            reference: Some(reference.into()),
        }],
        discount: None,
        customer: None,
    }
}

fn setup(tmp: &std::path::Path) -> (Hub, Till) {
    let hub = Hub::start_with(&tmp.join("hub"), |c| caja_hub::config::HubConfig {
        payment_providers: [("azul".to_owned(), SECRET.to_owned())].into(),
        payment_confirm_deadline_ms: DEADLINE_MS,
        payment_reconcile_interval_ms: 3_600_000,
        ..c
    })
    .expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut till = Till::enroll(&hub, store, "caja-1", tmp, fast_sync_settings()).expect("enroll");
    till.register
        .open_shift(op(), "ana", Money(0))
        .expect("shift");
    till.sync.round().expect("first round");
    (hub, till)
}

fn intent_states(till: &Till) -> Vec<(String, String)> {
    till.register
        .status()
        .expect("status")
        .payment_intents
        .into_iter()
        .map(|i| (i.intent_id, i.state))
        .collect()
}

#[test]
fn an_intent_confirmed_out_of_order_reaches_the_register_as_captured() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut till) = setup(tmp.path());
    let request = RequestId::new_v7(SystemClock.now_ms(), &mut rng()).expect("request id");
    let sale = SaleId::new_v7(SystemClock.now_ms(), &mut rng()).expect("sale id");
    let intent = till
        .sync
        .create_payment_intent(request, sale, "azul", PaymentMethod::Card, Money(ARROZ))
        .expect("intent");
    // Asking again with the same request id gives the same intent.
    let again = till
        .sync
        .create_payment_intent(request, sale, "azul", PaymentMethod::Card, Money(ARROZ))
        .expect("intent again");
    assert_eq!(again, intent);
    assert_eq!(
        intent_states(&till),
        [(intent.to_string(), "pending".to_owned())]
    );
    // The provider's capture overtakes its authorization.
    let azul = Provider::new("azul", SECRET);
    let intent_s = intent.to_string();
    let auth = azul.event("authorized", Some(&intent_s), Some("731901"), ARROZ);
    let cap = azul.event("captured", Some(&intent_s), Some("731901"), ARROZ);
    let first = hub.rt.block_on(azul.deliver(&hub.url, &cap));
    assert_eq!(first.body["outcome"], "held", "{}", first.body);
    till.sync.round().expect("round");
    assert_eq!(intent_states(&till)[0].1, "pending");
    let second = hub.rt.block_on(azul.deliver(&hub.url, &auth));
    assert_eq!(
        (
            second.body["outcome"].as_str(),
            second.body["state"].as_str()
        ),
        (Some("applied"), Some("captured"))
    );
    till.sync.round().expect("round");
    assert_eq!(
        intent_states(&till),
        [(intent.to_string(), "captured".to_owned())]
    );
    let text = caja_node::messages::status(&till.register.status().expect("status"));
    assert!(text.contains("RD$ 65.00 cobrado (azul"), "{text}");
    // A replay of the capture changes nothing anywhere.
    let dup = hub.rt.block_on(azul.deliver(&hub.url, &cap));
    assert_eq!(dup.body["outcome"], "duplicate");
    till.sync.round().expect("round");
    assert_eq!(intent_states(&till)[0].1, "captured");
}

#[test]
fn card_payments_taken_offline_are_reconciled_with_the_providers_webhooks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut till) = setup(tmp.path());
    let azul = Provider::new("azul", SECRET);
    // The hub is unreachable; the terminal works in standalone mode and the
    // cashier records its authorization codes.
    till.set_network(Mode::Down);
    for code in ["004512", "004513", "004514"] {
        till.register
            .sell(op(), &card_sale(code))
            .expect("offline card sale");
    }
    // Meanwhile the provider confirms two of them to head office, one with
    // another amount.
    for (code, amount) in [("004512", ARROZ), ("004513", ARROZ - 100)] {
        let r = hub
            .rt
            .block_on(azul.deliver(&hub.url, &azul.event("captured", None, Some(code), amount)));
        assert_eq!(r.body["outcome"], "recorded", "{}", r.body);
    }
    till.set_network(Mode::Up);
    till.sync.round().expect("round");
    let verdicts = |hub: &Hub| -> Vec<(String, String)> {
        let v = hub.get("/v1/admin/payments").expect("payments");
        let mut out: Vec<(String, String)> = v["card_checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| {
                (
                    c["reference"].as_str().unwrap_or("").to_owned(),
                    c["verdict"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    hub.post("/v1/admin/payments/reconcile", &json!({}))
        .expect("reconcile");
    assert_eq!(
        verdicts(&hub),
        [
            ("004512".to_owned(), "confirmed".to_owned()),
            ("004513".to_owned(), "mismatch".to_owned()),
            ("004514".to_owned(), "waiting".to_owned()),
        ]
    );
    std::thread::sleep(Duration::from_millis(
        u64::try_from(DEADLINE_MS).expect("positive") + 300,
    ));
    let r = hub
        .post("/v1/admin/payments/reconcile", &json!({}))
        .expect("reconcile");
    assert_eq!(r["conflicts"], 1, "{r}");
    assert_eq!(verdicts(&hub)[2].1, "unconfirmed");
    let alerts = hub.get("/v1/admin/alerts").expect("alerts");
    let conflicts: Vec<String> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["kind"] == "conflict")
        .map(|a| a["message"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(conflicts.len(), 2, "{alerts}");
    assert!(conflicts
        .iter()
        .any(|m| m.starts_with("card_payment_amount_mismatch")));
    assert!(conflicts
        .iter()
        .any(|m| m.starts_with("card_payment_unconfirmed")));
}
