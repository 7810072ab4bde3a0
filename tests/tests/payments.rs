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

/// Runs `caja-node --json sell ARGS` on the till's data directory; returns
/// the JSON lines it printed, whether it succeeded, and all it wrote.
fn cli_sell(till: &Till, args: &[&str]) -> (Vec<serde_json::Value>, bool, String) {
    let bin = caja_tests::procs::binary("caja-node").expect("caja-node binary");
    let out = std::process::Command::new(bin)
        .arg("--data-dir")
        .arg(till.data.root())
        .arg("--json")
        .arg("sell")
        .args(args)
        .env_remove("CAJA_NODE_HUB_URL")
        .env_remove("CAJA_NODE_PRINTER")
        .env_remove("CAJA_NODE_PAYMENT_PROVIDER")
        .output()
        .expect("run caja-node");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (lines, out.status.success(), text)
}

#[test]
fn sell_creates_intents_online_and_keeps_terminal_references_offline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut till) = setup(tmp.path());
    till.configure("payment_provider = \"azul\"", fast_sync_settings())
        .expect("configure");
    let azul = Provider::new("azul", SECRET);
    // Online: the card payment gets an intent at the hub, named in the
    // answer; the provider's capture reaches the register.
    let (lines, ok, err) = cli_sell(
        &till,
        &["--item", "ARROZ", "--card", "65", "--card-ref", "731901"],
    );
    assert!(ok, "{err}");
    let sale = lines[0]["sale_id"].as_str().expect("sale id").to_owned();
    let intents = &lines[1]["payment_intents"];
    assert_eq!(intents[0]["method"], "card", "{lines:?}");
    let intent = intents[0]["intent_id"]
        .as_str()
        .unwrap_or_else(|| panic!("an intent: {lines:?}"))
        .to_owned();
    let at_hub = hub.get("/v1/admin/payments").expect("payments");
    let hub_intents = at_hub["intents"].as_array().expect("intents");
    assert_eq!(hub_intents.len(), 1, "{at_hub}");
    assert_eq!(
        (
            hub_intents[0]["intent_id"].as_str(),
            hub_intents[0]["sale_id"].as_str(),
            hub_intents[0]["amount"].as_i64(),
            hub_intents[0]["method"].as_str()
        ),
        (
            Some(intent.as_str()),
            Some(sale.as_str()),
            Some(ARROZ),
            Some("card")
        )
    );
    for state in ["authorized", "captured"] {
        let e = azul.event(state, Some(&intent), Some("731901"), ARROZ);
        assert_eq!(
            hub.rt.block_on(azul.deliver(&hub.url, &e)).body["outcome"],
            "applied"
        );
    }
    till.sync.round().expect("round");
    assert_eq!(
        intent_states(&till),
        [(intent.clone(), "captured".to_owned())]
    );
    // Part of it is refunded at the provider (a return of part of the
    // sale): the intent stays captured and the register shows the part.
    let r = hub
        .rt
        .block_on(azul.deliver(&hub.url, &azul.partial_refund(&intent, 2_000)));
    assert_eq!(r.body["outcome"], "applied", "{}", r.body);
    till.sync.round().expect("round");
    assert_eq!(
        intent_states(&till),
        [(intent.clone(), "captured".to_owned())]
    );
    let text = caja_node::messages::status(&till.register.status().expect("status"));
    assert!(
        text.contains("RD$ 65.00 cobrado, RD$ 20.00 reembolsado (azul"),
        "{text}"
    );
    // A QR payment online goes through an intent too (method transfer).
    let (lines, ok, err) = cli_sell(
        &till,
        &["--item", "ARROZ", "--qr", "65", "--qr-ref", "BHD-000777"],
    );
    assert!(ok, "{err}");
    assert_eq!(
        lines[1]["payment_intents"][0]["method"], "transfer",
        "{lines:?}"
    );
    assert!(
        lines[1]["payment_intents"][0]["intent_id"].is_string(),
        "{lines:?}"
    );
    // Offline: the sale is made all the same, with no intent; the card
    // payment keeps its terminal and code, and the provider's confirmation
    // naming that terminal is matched to it at the hub (another terminal's
    // payment with the same code is not).
    till.set_network(Mode::Down);
    let (lines, ok, err) = cli_sell(
        &till,
        &[
            "--item",
            "ARROZ",
            "--card",
            "65",
            "--card-ref",
            "004512",
            "--card-terminal",
            "T1",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        lines[1]["payment_intents"][0]["intent_id"].is_null(),
        "{lines:?}"
    );
    assert!(
        lines[1]["payment_intents"][0]["error"].is_string(),
        "{lines:?}"
    );
    assert_eq!(lines[1]["payment_intents"][0]["reference"], "T1:004512");
    let (_, ok, err) = cli_sell(
        &till,
        &[
            "--item",
            "ARROZ",
            "--card",
            "65",
            "--card-ref",
            "004512",
            "--card-terminal",
            "T2",
        ],
    );
    assert!(ok, "{err}");
    let r = hub.rt.block_on(azul.deliver(
        &hub.url,
        &azul.terminal_event("captured", "T1", "004512", ARROZ),
    ));
    assert_eq!(r.body["outcome"], "recorded", "{}", r.body);
    till.set_network(Mode::Up);
    till.sync.round().expect("round");
    hub.post("/v1/admin/payments/reconcile", &json!({}))
        .expect("reconcile");
    let v = hub.get("/v1/admin/payments").expect("payments");
    assert_eq!(v["intents"].as_array().map(Vec::len), Some(2), "{v}");
    let mut checks: Vec<(String, String)> = v["card_checks"]
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
    checks.sort();
    assert_eq!(
        checks,
        [
            ("731901".to_owned(), "confirmed".to_owned()),
            ("T1:004512".to_owned(), "confirmed".to_owned()),
            ("T2:004512".to_owned(), "waiting".to_owned()),
        ]
    );
    // A terminal id with the separator is refused before any sale.
    let (_, ok, err) = cli_sell(
        &till,
        &[
            "--item",
            "ARROZ",
            "--card",
            "65",
            "--card-ref",
            "1",
            "--card-terminal",
            "T:1",
        ],
    );
    assert!(!ok && err.contains("--card-terminal"), "{err}");
}
