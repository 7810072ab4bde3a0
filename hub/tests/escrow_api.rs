//! Escrow stock at the hub over loopback HTTP: concurrent quota requests never
//! promise more than the stock, request ids are idempotent, untracked and
//! unknown products are refused, oversells and negative stock are alerted
//! whatever the arrival order, and operators' decisions are audited.

mod support;

use caja_hub::workload::Register;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{SaleId, StoreId};
use caja_shared::kind::{
    CatalogItemUpserted, EventBody, Payment, PaymentMethod, SaleCreated, SaleLine, SoldBy,
    StockPolicy, StockReceived,
};
use caja_shared::money::{Money, QtyMilli, TaxRateBp};
use serde_json::{json, Value};
use support::*;

fn item(sku: &str, policy: StockPolicy) -> Value {
    let b = CatalogItemUpserted {
        product: sku.parse().unwrap(),
        name: sku.into(),
        barcodes: vec![],
        tax_bp: TaxRateBp::ZERO,
        sold_by: SoldBy::Unit,
        policy,
    };
    EventBody::CatalogItemUpserted(b)
        .to_value()
        .unwrap()
        .to_serde()
}

async fn setup(hub: &TestHub, registers: usize) -> (StoreId, Vec<Register>) {
    let store = hub.create_store("s").await;
    hub.admin
        .load_catalog(&json!({"items": [
            item("RICE", StockPolicy::Block),
            item("CHEESE", StockPolicy::Warn),
            item("SERVICE", StockPolicy::Untracked),
        ]}))
        .await
        .unwrap();
    let mut regs = Vec::new();
    for _ in 0..registers {
        regs.push(hub.enroll(store).await.0);
    }
    (store, regs)
}

fn receive(store: StoreId, reg: &mut Register, sku: &str, qty: i64) -> Event {
    reg.append(
        store,
        EventBody::StockReceived(StockReceived {
            product: sku.parse().unwrap(),
            qty_milli: QtyMilli(qty),
            reference: None,
        }),
        vec![],
        now_ms(),
        &mut SeededRandom::new(qty.unsigned_abs()),
    )
}

fn sell(
    store: StoreId,
    reg: &mut Register,
    sku: &str,
    qty: i64,
    beyond: Option<i64>,
    seed: u64,
) -> Event {
    let mut rng = SeededRandom::new(seed);
    reg.append(
        store,
        EventBody::SaleCreated(SaleCreated {
            sale_id: SaleId::new_v7(now_ms(), &mut rng).unwrap(),
            cashier: "ana".into(),
            shift_id: None,
            customer: None,
            fiscal: None,
            lines: vec![SaleLine {
                product: sku.parse().unwrap(),
                name: sku.into(),
                qty_milli: QtyMilli(qty),
                unit_price: Money(100),
                tax_bp: TaxRateBp::ZERO,
                discount: None,
                total: Money(qty / 10),
                tax: Money(0),
                beyond_quota_milli: beyond.map(QtyMilli),
                price_override: None,
            }],
            total: Money(qty / 10),
            tax: Money(0),
            payments: vec![Payment {
                method: PaymentMethod::Cash,
                amount: Money(qty / 10),
                reference: None,
            }],
            change: Money(0),
            approval: None,
        }),
        vec![],
        now_ms(),
        &mut rng,
    )
}

async fn ask(hub: &TestHub, reg: &Register, rid: u64, items: Value) -> Reply {
    let body = serde_json::to_vec(&json!({
        "request_id": format!("019aaf70-0000-7000-8000-{rid:012x}"),
        "items": items,
    }))
    .unwrap();
    hub.signed(reg, "POST", "/v1/escrow/grants", &body, now_ms())
        .await
}

fn granted(r: &Reply) -> i64 {
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            match Event::from_json(v.to_string().as_bytes())
                .unwrap()
                .body()
                .unwrap()
            {
                EventBody::EscrowGranted(g) => g.qty_milli.0,
                other => panic!("{other:?}"),
            }
        })
        .sum()
}

async fn stock_of(hub: &TestHub, store: StoreId, sku: &str) -> Value {
    let v = hub
        .admin_get(&format!("/v1/admin/stock?store={store}"))
        .await;
    v["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product"] == sku)
        .cloned()
        .unwrap()
}

on_both_backends! {
#[tokio::test]
async fn concurrent_quota_requests_never_promise_more_than_the_stock() {
    let hub = TestHub::start().await;
    let (store, mut regs) = setup(&hub, 6).await;
    let e = receive(store, &mut regs[0], "RICE", 50_000);
    assert_eq!(hub.push(&regs[0], &[e]).await.status, 200);
    let mut tasks = Vec::new();
    for (i, reg) in regs.iter().enumerate() {
        for k in 0..5u64 {
            let hub = &hub;
            tasks.push(async move {
                ask(
                    hub,
                    reg,
                    (i as u64) * 10 + k,
                    json!([{"product": "RICE", "qty_milli": 7_000}]),
                )
                .await
            });
        }
    }
    let answers = join_all(tasks).await;
    let total: i64 = answers.iter().map(granted).sum();
    assert!(total <= 50_000, "promised {total} of 50000");
    assert!(total >= 45_000, "most of the stock is handed out: {total}");
    let s = stock_of(&hub, store, "RICE").await;
    assert_eq!(s["stock_milli"], 50_000);
    assert_eq!(
        s["available_milli"].as_i64().unwrap() + total,
        50_000,
        "{s}"
    );
    // What is left is shared too: never more than available.
    let avail = s["available_milli"].as_i64().unwrap();
    let more = granted(
        &ask(
            &hub,
            &regs[0],
            999,
            json!([{"product": "RICE", "qty_milli": 1_000}]),
        )
        .await,
    );
    assert!(
        more <= avail && (avail == 0 || more > 0),
        "{more} of {avail}"
    );
}
}

async fn join_all<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = fs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if outs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().map(Option::unwrap).collect()
}

on_both_backends! {
#[tokio::test]
async fn requests_are_idempotent_and_bad_ones_change_nothing() {
    let hub = TestHub::start().await;
    let (store, mut regs) = setup(&hub, 2).await;
    let e = receive(store, &mut regs[0], "RICE", 10_000);
    hub.push(&regs[0], &[e]).await;
    let first = ask(
        &hub,
        &regs[1],
        1,
        json!([{"product": "RICE", "qty_milli": 4_000}]),
    )
    .await;
    assert_eq!(granted(&first), 4_000);
    let before = hub.business_state();
    let again = ask(
        &hub,
        &regs[1],
        1,
        json!([{"product": "RICE", "qty_milli": 4_000}]),
    )
    .await;
    assert_eq!(again.body["events"], first.body["events"]);
    assert_eq!(hub.business_state(), before);
    let other = ask(
        &hub,
        &regs[1],
        1,
        json!([{"product": "RICE", "qty_milli": 5_000}]),
    )
    .await;
    assert_eq!(
        (other.status, other.body["error"].as_str()),
        (409, Some("request_id_conflict"))
    );
    for (items, field) in [
        (
            json!([{"product": "SERVICE", "qty_milli": 1_000}]),
            "items[0].product",
        ),
        (
            json!([{"product": "NOPE", "qty_milli": 1_000}]),
            "items[0].product",
        ),
        (
            json!([{"product": "RICE", "qty_milli": -1}]),
            "items[0].qty_milli",
        ),
        (json!([]), "items"),
    ] {
        let r = ask(&hub, &regs[1], 2, items).await;
        assert_eq!(
            (r.status, r.body["field"].as_str()),
            (400, Some(field)),
            "{}",
            r.body
        );
        assert_eq!(hub.business_state(), before);
    }
}
}

on_both_backends! {
#[tokio::test]
async fn one_oversell_alert_per_warn_sale_whatever_the_order_and_decisions_are_audited() {
    for order in [false, true] {
        let hub = TestHub::start().await;
        let (store, mut regs) = setup(&hub, 3).await;
        let r0 = receive(store, &mut regs[0], "CHEESE", 2_000);
        hub.push(&regs[0], &[r0]).await;
        // Two registers get a quota each, and each sells 500 g beyond it
        // offline.
        let (mut a, mut b) = (regs[1].clone(), regs[2].clone());
        let qa = granted(
            &ask(
                &hub,
                &a,
                1,
                json!([{"product": "CHEESE", "qty_milli": 1_000}]),
            )
            .await,
        );
        let qb = granted(
            &ask(
                &hub,
                &b,
                2,
                json!([{"product": "CHEESE", "qty_milli": 1_000}]),
            )
            .await,
        );
        assert!(qa > 0 && qb > 0 && qa + qb <= 2_000, "{qa} {qb}");
        let ea = sell(store, &mut a, "CHEESE", qa + 500, Some(500), 1);
        let eb = sell(store, &mut b, "CHEESE", qb + 500, Some(500), 2);
        if order {
            hub.push(&b, &[eb]).await;
            hub.push(&a, &[ea]).await;
        } else {
            hub.push(&a, &[ea]).await;
            hub.push(&b, &[eb]).await;
        }
        let alerts = hub.admin_get("/v1/admin/stock/alerts").await;
        let alerts = alerts["alerts"].as_array().unwrap().clone();
        let oversells: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "oversell").collect();
        assert_eq!(oversells.len(), 2, "{alerts:?}");
        let negative: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["kind"] == "negative_stock")
            .collect();
        let below = qa + qb + 1_000 - 2_000;
        assert_eq!(negative.len(), usize::from(below > 0), "{alerts:?}");
        if below <= 0 {
            continue;
        }
        assert_eq!(negative[0]["amount_milli"], below);
        assert_eq!(negative[0]["registers"].as_array().unwrap().len(), 2);
        let health = hub.admin_get("/v1/health").await;
        assert_eq!(health["stock"]["oversells"], 2);
        assert_eq!(health["stock"]["open_alerts"], 3);
        // An operator resolves the negative stock: audited, then not open.
        let key = negative[0]["key"].as_str().unwrap();
        let before: i64 = hub
            .db()
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE kind = 'stock_alert_decided'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let decided = hub
            .admin
            .post(
                "/v1/admin/stock/alerts/decide",
                &json!({"key": key, "state": "resolved", "by": "marta", "note": "conteo hecho"}),
            )
            .await
            .unwrap();
        assert_eq!(decided["state"], "resolved");
        let after: i64 = hub
            .db()
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE kind = 'stock_alert_decided'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(after, before + 1);
        let health = hub.admin_get("/v1/health").await;
        assert_eq!(health["stock"]["open_alerts"], 2);
        let bad = hub
            .admin
            .post(
                "/v1/admin/stock/alerts/decide",
                &json!({"key": "negative:x:y", "state": "resolved", "by": "marta"}),
            )
            .await;
        assert!(bad.is_err());
    }
}
}
