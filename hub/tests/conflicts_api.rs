//! Conflict resolution at the hub, end to end over loopback HTTP: a payment on
//! a debt another register voided becomes a `manual` conflict with its
//! candidates; refusals change nothing; an operator's resolution is a hub
//! event the registers pull and an audit entry; a later candidate reopens it;
//! a stale price is found and withdrawn when a price in force changes it; a
//! debt payment whose debt never arrived is held, reported, then applied.

mod support;

use caja_hub::admin_client::AdminError;
use caja_hub::workload::Register;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{CustomerId, DebtId, EventId, PaymentId, SaleId, StoreId};
use caja_shared::kind::{
    DebtOpened, DebtPaymentTaken, EventBody, Payment, PaymentMethod, SaleCreated, SaleLine,
    SaleVoided,
};
use caja_shared::money::{Money, QtyMilli, TaxRateBp};
use serde_json::{json, Value};
use support::*;

const CUSTOMER: &str = "019aaf70-0000-7000-8000-00000000c001";

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh random source (ids of two registers never collide).
fn rng(n: u64) -> SeededRandom {
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    SeededRandom::new((n << 32) ^ k ^ now_ms().unsigned_abs())
}

fn fiado_sale(product: &str, unit_price: i64, seed: u64) -> (SaleId, EventBody) {
    let sale_id = SaleId::new_v7(now_ms(), &mut rng(seed)).unwrap();
    let body = EventBody::SaleCreated(SaleCreated {
        sale_id,
        cashier: "ana".into(),
        shift_id: None,
        customer: Some(CUSTOMER.parse().unwrap()),
        fiscal: None,
        lines: vec![SaleLine {
            product: product.parse().unwrap(),
            name: product.into(),
            qty_milli: QtyMilli(1000),
            unit_price: Money(unit_price),
            tax_bp: TaxRateBp::ZERO,
            discount: None,
            total: Money(unit_price),
            tax: Money(0),
            beyond_quota_milli: None,
            price_override: None,
        }],
        total: Money(unit_price),
        tax: Money(0),
        payments: vec![Payment {
            method: PaymentMethod::Fiado,
            amount: Money(unit_price),
            reference: None,
        }],
        change: Money(0),
        approval: None,
    });
    (sale_id, body)
}

fn append(reg: &mut Register, store: StoreId, body: EventBody, deps: Vec<EventId>) -> Event {
    reg.append(
        store,
        body,
        deps,
        now_ms(),
        &mut rng(reg.events.len() as u64),
    )
}

fn append_at(
    reg: &mut Register,
    store: StoreId,
    body: EventBody,
    deps: Vec<EventId>,
    at_ms: i64,
) -> Event {
    reg.append(store, body, deps, at_ms, &mut rng(reg.events.len() as u64))
}

fn payment(debt_id: DebtId, amount: i64, seed: u64) -> EventBody {
    EventBody::DebtPaymentTaken(DebtPaymentTaken {
        payment_id: PaymentId::new_v7(now_ms(), &mut rng(seed)).unwrap(),
        debt_id,
        customer: CUSTOMER.parse().unwrap(),
        method: PaymentMethod::Cash,
        amount: Money(amount),
    })
}

async fn resolve(hub: &TestHub, id: &str, body: &Value) -> (u16, Value) {
    match hub
        .admin
        .post(&format!("/v1/admin/conflicts/{id}/resolve"), body)
        .await
    {
        Ok(v) => (200, v),
        Err(AdminError::Refused { status, body }) => {
            (status, serde_json::from_str(&body).unwrap_or(Value::Null))
        }
        Err(e) => panic!("{e}"),
    }
}

fn audit_entries(hub: &TestHub, kind: &str) -> Vec<Value> {
    let db = hub.db();
    let mut stmt = db
        .prepare("SELECT entry FROM audit_log WHERE kind = $1 ORDER BY idx")
        .unwrap();
    stmt.query_map([kind], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| serde_json::from_slice(&b.unwrap()).unwrap())
        .collect()
}

on_both_backends! {
#[tokio::test]
async fn a_payment_on_a_voided_debt_is_resolved_by_an_operator_and_reaches_the_registers() {
    let hub = TestHub::start().await;
    let store = hub.create_store("colmado").await;
    let (mut a, hub_key) = hub.enroll(store).await;
    let (mut b, _) = hub.enroll(store).await;

    // A sells on fiado; B voids that sale; A (not knowing) takes a payment.
    let (sale_id, body) = fiado_sale("rice-1kg", 6500, 1);
    let sale = append(&mut a, store, body, vec![]);
    let debt_id = DebtId::new_v7(now_ms(), &mut rng(2)).unwrap();
    let debt = append(
        &mut a,
        store,
        EventBody::DebtOpened(DebtOpened {
            debt_id,
            customer: CUSTOMER.parse().unwrap(),
            sale_id: Some(sale_id),
            amount: Money(6500),
        }),
        vec![sale.id()],
    );
    assert_eq!(
        hub.push(&a, &[sale.clone(), debt.clone()]).await.status,
        200
    );
    let void = append(
        &mut b,
        store,
        EventBody::SaleVoided(SaleVoided {
            sale_id,
            reason: "wrong customer".into(),
            approval: None,
            approved_by: None,
        }),
        vec![sale.id()],
    );
    assert_eq!(hub.push(&b, std::slice::from_ref(&void)).await.status, 200);
    let pay = append(&mut a, store, payment(debt_id, 2000, 3), vec![debt.id()]);
    let r = hub.push(&a, &a.events[2..]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["conflicts"][0]["reason"], "payment_on_voided_debt");

    let listed = hub.admin_get("/v1/admin/conflicts?state=open").await;
    let conflicts = listed["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{listed}");
    let c = &conflicts[0];
    let id = c["conflict_id"].as_str().unwrap().to_owned();
    assert_eq!(c["strategy"], "manual");
    assert_eq!(c["subject"], format!("debt:{debt_id}"));
    let mut want = vec![void.id().to_string(), pay.id().to_string()];
    want.sort();
    assert_eq!(c["candidates"], json!(want));
    assert!(listed["strategies"]
        .as_array()
        .unwrap()
        .contains(&json!({"entity": "customer", "fields": "*", "strategy": "lww"})));
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(health["conflicts"]["open"], 1, "{health}");
    assert_eq!(
        health["conflicts"]["open_by_reason"]["payment_on_voided_debt"],
        1
    );

    // Refusals: each answers with the field or the reason and changes nothing.
    let before = hub.business_state();
    let audit_before = hub
        .db()
        .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let stranger = "019aaf70-0000-7000-8000-0000000000ee";
    let cases: Vec<(String, Value, u16, &str, Option<&str>)> = vec![
        (
            id.clone(),
            json!({"winner": stranger, "note": "x", "by": "ops"}),
            400,
            "invalid",
            Some("winner"),
        ),
        (
            id.clone(),
            json!({"note": "x", "by": " "}),
            400,
            "invalid",
            Some("by"),
        ),
        (
            id.clone(),
            json!({"by": "ops"}),
            400,
            "invalid",
            Some("note"),
        ),
        (
            id.clone(),
            json!({"note": "x", "by": "ops", "extra": 1}),
            400,
            "invalid",
            None,
        ),
        (
            "not-a-conflict".into(),
            json!({"note": "x", "by": "ops"}),
            400,
            "invalid",
            Some("id"),
        ),
        (
            "019aaf70-0000-8000-8000-000000000000".into(),
            json!({"note": "x", "by": "ops"}),
            404,
            "not_found",
            None,
        ),
    ];
    for (cid, body, status, code, field) in cases {
        let (s, v) = resolve(&hub, &cid, &body).await;
        assert_eq!(
            (s, v["error"].as_str().unwrap()),
            (status, code),
            "{body}: {v}"
        );
        if let Some(f) = field {
            assert_eq!(v["field"], f, "{body}: {v}");
        }
        assert_eq!(hub.business_state(), before, "{body}");
    }
    let (s, v) = resolve_with_bad_state(&hub).await;
    assert_eq!((s, v["field"].as_str()), (400, Some("state")));
    let audit_after = hub
        .db()
        .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(
        audit_before, audit_after,
        "a refused resolution writes nothing"
    );

    // The operator decides: the void stands, the payment is to be refunded.
    let (s, v) = resolve(
        &hub,
        &id,
        &json!({"winner": void.id(), "note": "void stands; refund RD$20.00", "by": "maria"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "resolved");
    assert_eq!(v["resolution"]["winner"], void.id().to_string());
    assert_eq!(v["resolution"]["by"], "maria");
    let (s, v) = resolve(&hub, &id, &json!({"note": "again", "by": "maria"})).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("already_resolved")));
    assert_eq!(
        hub.admin_get("/v1/admin/conflicts?state=open").await["conflicts"],
        json!([])
    );
    assert_eq!(
        hub.admin_get("/v1/admin/conflicts?state=resolved").await["conflicts"][0]["conflict_id"],
        id
    );
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(health["conflicts"]["open"], 0, "{health}");
    assert_eq!(health["conflicts"]["resolved"], 1, "{health}");

    // The audit entry names the strategy, the candidates and the winner.
    let entries = audit_entries(&hub, "conflict_resolved");
    assert_eq!(entries.len(), 1);
    let data = &entries[0]["data"];
    assert_eq!(data["strategy"], "manual");
    assert_eq!(data["candidates"], json!(want));
    assert_eq!(data["winner"], void.id().to_string());
    assert_eq!(data["by"], "maria");

    // Both registers pull the resolution as a signed hub event whose deps are
    // the candidates.
    for reg in [&a, &b] {
        let page = hub.pull(reg, "").await;
        assert_eq!(page.status, 200);
        let events: Vec<Event> = page.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Event::from_json(v.to_string().as_bytes()).unwrap())
            .collect();
        let resolved = events
            .iter()
            .find(|e| matches!(e.body().unwrap(), EventBody::ConflictResolved(_)))
            .expect("the resolution is pulled");
        let mut deps: Vec<String> = resolved
            .envelope()
            .deps
            .iter()
            .map(ToString::to_string)
            .collect();
        deps.sort();
        assert_eq!(deps, want);
        let cp: caja_shared::checkpoint::HubCheckpoint =
            serde_json::from_value(page.body["hub_checkpoint"].clone()).unwrap();
        cp.verify(&hub_key).unwrap();
    }

    // A second payment on the voided debt is a new candidate: the conflict reopens.
    append(&mut a, store, payment(debt_id, 500, 4), vec![debt.id()]);
    let r = hub.push(&a, &a.events[3..]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let open = hub.admin_get("/v1/admin/conflicts?state=open").await;
    assert_eq!(open["conflicts"][0]["conflict_id"], id, "{open}");
    assert_eq!(
        open["conflicts"][0]["candidates"].as_array().unwrap().len(),
        3
    );
    // The CLI lists it and resolves it again.
    let listed = cli(&hub, &["conflicts", "--state", "open"]).await;
    assert_eq!(listed["conflicts"][0]["conflict_id"], id, "{listed}");
    let v = cli(
        &hub,
        &["resolve", &id, "--note", "both refunded", "--by", "maria"],
    )
    .await;
    assert_eq!(v["state"], "resolved", "{v}");
    assert_eq!(v["resolution"]["note"], "both refunded");

    // A rebuild from the events gives the same projections and conflicts.
    let live = caja_hub::storage::digest(&hub.db()).unwrap();
    let mut hub = hub;
    hub.stop().await;
    let db = hub.db();
    caja_hub::storage::rebuild(&db).unwrap();
    assert_eq!(caja_hub::storage::digest(&db).unwrap(), live);
}
}

/// Runs `caja-hub admin <args>` against the test hub; returns its JSON output.
async fn cli(hub: &TestHub, args: &[&str]) -> Value {
    let mut all = vec!["admin".to_owned(), "--url".to_owned(), hub.url.clone()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(&all)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn resolve_with_bad_state(hub: &TestHub) -> (u16, Value) {
    match hub.admin.get("/v1/admin/conflicts?state=maybe").await {
        Ok(v) => (200, v),
        Err(AdminError::Refused { status, body }) => (status, serde_json::from_str(&body).unwrap()),
        Err(e) => panic!("{e}"),
    }
}

on_both_backends! {
#[tokio::test]
async fn a_stale_price_is_found_then_withdrawn_when_the_price_in_force_changes() {
    let hub = TestHub::start().await;
    let store = hub.create_store("colmado").await;
    let (mut a, _) = hub.enroll(store).await;
    hub.admin
        .load_catalog(&json!({"prices": [{"product": "oil-1l", "unit_price": 32000}]}))
        .await
        .unwrap();
    // A register 11 minutes later still sells at the old price: a conflict for
    // head office (never a rejection). A sale at the price in force is not.
    let later = now_ms() + 11 * 60_000;
    let (_, old) = fiado_sale("oil-1l", 30000, 5);
    let stale = append_at(&mut a, store, old, vec![], later);
    let (_, ok) = fiado_sale("oil-1l", 32100, 6);
    append_at(&mut a, store, ok, vec![], later + 1);
    let r = hub.push(&a, &a.events.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = hub.admin_get("/v1/admin/conflicts").await;
    let c = &listed["conflicts"].as_array().unwrap();
    assert_eq!(c.len(), 1, "{listed}");
    assert_eq!(c[0]["reason"], "stale_price");
    assert_eq!(c[0]["subject"], format!("sale:{}", stale.id()));
    assert!(c[0]["candidates"]
        .as_array()
        .unwrap()
        .contains(&json!(stale.id().to_string())));

    // Head office lowers the price to what the register charged (set before
    // the sale by HLC): the price in force changes and the conflict no longer holds.
    hub.admin
        .load_catalog(&json!({"prices": [{"product": "oil-1l", "unit_price": 30000}]}))
        .await
        .unwrap();
    let listed = hub.admin_get("/v1/admin/conflicts").await;
    assert_eq!(
        listed["conflicts"].as_array().unwrap().len(),
        1,
        "the 32100 sale is now stale: {listed}"
    );
    assert_ne!(
        listed["conflicts"][0]["subject"],
        format!("sale:{}", stale.id())
    );
    assert_eq!(audit_entries(&hub, "conflict_withdrawn").len(), 1);
    // The price change itself was a server_wins decision, audited.
    let decided = audit_entries(&hub, "conflict_decided");
    assert!(
        decided
            .iter()
            .any(|e| e["data"]["strategy"] == "server_wins"),
        "{decided:?}"
    );
    let live = caja_hub::storage::digest(&hub.db()).unwrap();
    let mut hub = hub;
    hub.stop().await;
    let db = hub.db();
    caja_hub::storage::rebuild(&db).unwrap();
    assert_eq!(caja_hub::storage::digest(&db).unwrap(), live);
}
}

on_both_backends! {
#[tokio::test]
async fn a_debt_payment_whose_debt_never_arrived_is_held_reported_and_applied_later() {
    let hub = TestHub::start().await;
    let store = hub.create_store("colmado").await;
    let (mut a, _) = hub.enroll(store).await;
    let (mut b, _) = hub.enroll(store).await;
    // B opens a debt but stays offline; A (which pulled it from B over a
    // hub that since lost nothing) takes a payment on it.
    let debt_id = DebtId::new_v7(now_ms(), &mut rng(7)).unwrap();
    let customer: CustomerId = CUSTOMER.parse().unwrap();
    let debt = append(
        &mut b,
        store,
        EventBody::DebtOpened(DebtOpened {
            debt_id,
            customer,
            sale_id: None,
            amount: Money(9000),
        }),
        vec![],
    );
    let pay = append(&mut a, store, payment(debt_id, 4000, 8), vec![debt.id()]);
    let r = hub.push(&a, std::slice::from_ref(&pay)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["acked_seq"], 1, "held events are acknowledged");
    assert_eq!(r.body["held"][0]["missing"], json!([debt.id().to_string()]));
    let health = hub.admin_get("/v1/health").await;
    let held = &health["consistency"]["held"][0];
    assert_eq!(held["event_id"], pay.id().to_string(), "{health}");
    assert_eq!(held["missing"], json!([debt.id().to_string()]));
    assert_eq!(held["kind"], "DebtPaymentTaken");
    assert!(held["age_ms"].as_i64().unwrap() >= 0);
    let balance = |hub: &TestHub| -> Option<i64> {
        hub.db()
            .query_row(
                "SELECT balance FROM v_debt_balances WHERE customer_id = $1",
                [CUSTOMER],
                |r| r.get(0),
            )
            .ok()
    };
    assert_eq!(balance(&hub), None, "a held payment is not applied");
    // The debt arrives: the payment is applied, nothing was dropped.
    assert_eq!(hub.push(&b, &[debt]).await.status, 200);
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(health["consistency"]["held_events"], 0, "{health}");
    assert_eq!(health["consistency"]["held"], json!([]));
    assert_eq!(balance(&hub), Some(5000));
    // Fiado balances equal a rebuild from the events.
    let live = caja_hub::storage::digest(&hub.db()).unwrap();
    let mut hub = hub;
    hub.stop().await;
    let db = hub.db();
    caja_hub::storage::rebuild(&db).unwrap();
    assert_eq!(caja_hub::storage::digest(&db).unwrap(), live);
    let rebuilt: i64 = db
        .query_row(
            "SELECT balance FROM v_debt_balances WHERE customer_id = $1",
            [CUSTOMER],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rebuilt, 5000);
}
}
