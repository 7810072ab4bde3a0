//! Fiscal series at the hub, end to end over loopback HTTP: loading series,
//! concurrent grants that never overlap, idempotent request ids, releases
//! regranted, write-offs, the per-number report and the 607.

mod support;

use std::collections::BTreeSet;

use caja_hub::workload::Register;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{GrantId, SaleId, StoreId};
use caja_shared::kind::{
    EventBody, FiscalNumbersReleased, FiscalRef, Payment, PaymentMethod, SaleCreated, SaleVoided,
};
use caja_shared::money::Money;
use serde_json::{json, Value};
use support::*;

async fn load_series(hub: &TestHub, body: Value) -> (u16, Value) {
    let r = hub
        .admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&body),
        )
        .await;
    match r {
        Ok(v) => (200, v),
        Err(caja_hub::admin_client::AdminError::Refused { status, body }) => {
            (status, serde_json::from_str(&body).unwrap())
        }
        Err(e) => panic!("{e}"),
    }
}

fn request_id(n: u64) -> String {
    format!("019aaf70-0000-7000-8000-{n:012x}")
}

async fn ask(hub: &TestHub, reg: &Register, rid: &str, series: &str, count: u64) -> Reply {
    let body =
        serde_json::to_vec(&json!({"request_id": rid, "series": series, "count": count})).unwrap();
    hub.signed(reg, "POST", "/v1/fiscal/ranges", &body, now_ms())
        .await
}

/// The (grant, first, last) of each FiscalRangeGranted in an answer; checks
/// the hub checkpoint signs the last one.
fn grants_of(r: &Reply, hub_key: &caja_shared::key::HubPublicKey) -> Vec<(GrantId, u64, u64)> {
    assert_eq!(r.status, 200, "{}", r.body);
    let events: Vec<Event> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Event::from_json(v.to_string().as_bytes()).unwrap())
        .collect();
    let cp: caja_shared::checkpoint::HubCheckpoint =
        serde_json::from_value(r.body["hub_checkpoint"].clone()).unwrap();
    cp.verify(hub_key).unwrap();
    assert_eq!(cp.hash, events.last().unwrap().hash());
    events
        .iter()
        .map(|e| match e.body().unwrap() {
            EventBody::FiscalRangeGranted(g) => (g.grant_id, g.first, g.last),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn sale(number: Option<String>, total: i64) -> EventBody {
    let mut rng = SeededRandom::new(total.unsigned_abs());
    EventBody::SaleCreated(SaleCreated {
        sale_id: SaleId::new_v7(now_ms(), &mut rng).unwrap(),
        cashier: "ana".into(),
        shift_id: None,
        customer: None,
        fiscal: number.map(|n| FiscalRef {
            series: n[..3].into(),
            number: n,
            modifies: None,
            valid_until: Some("2027-12-31".into()),
            buyer_tax_id: None,
            buyer_name: None,
        }),
        lines: vec![],
        total: Money(total),
        tax: Money(0),
        payments: vec![Payment {
            method: PaymentMethod::Cash,
            amount: Money(total),
            reference: None,
        }],
        change: Money(0),
        approval: None,
    })
}

async fn report(hub: &TestHub, series: &str) -> Value {
    let v = hub
        .admin_get(&format!("/v1/admin/fiscal/report?series={series}"))
        .await;
    v["reports"][0].clone()
}

on_both_backends! {
#[tokio::test]
async fn series_are_checked_and_overlaps_refused() {
    let hub = TestHub::start().await;
    let store = hub.create_store("s").await;
    let ok = json!({"prefix":"B02","digits":8,"first":1,"last":100,"valid_until":"2027-12-31","stores":[store]});
    assert_eq!(load_series(&hub, ok).await.0, 200);
    for (body, field) in [
        (
            json!({"prefix":"B2","digits":8,"first":1,"last":100,"valid_until":"2027-12-31"}),
            "prefix",
        ),
        (
            json!({"prefix":"B02","digits":8,"first":0,"last":100,"valid_until":"2027-12-31"}),
            "first",
        ),
        (
            json!({"prefix":"B02","digits":2,"first":1,"last":100,"valid_until":"2027-12-31"}),
            "last",
        ),
        (
            json!({"prefix":"B02","digits":8,"first":200,"last":300,"valid_until":"31/12/2027"}),
            "valid_until",
        ),
        (
            json!({"prefix":"B02","digits":8,"first":200,"last":300,"valid_until":"2027-12-31","stores":["01935f4e-8a00-7000-8000-0000000000a1"]}),
            "stores[0]",
        ),
    ] {
        let before = hub.business_state();
        let (status, v) = load_series(&hub, body).await;
        assert_eq!((status, v["field"].as_str()), (400, Some(field)), "{v}");
        assert_eq!(hub.business_state(), before);
    }
    let (status, v) = load_series(
        &hub,
        json!({"prefix":"B02","digits":8,"first":100,"last":200,"valid_until":"2027-12-31"}),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("series_overlap")),
        "{v}"
    );
    // Another prefix may reuse the numbers.
    let (status, _) = load_series(
        &hub,
        json!({"prefix":"B01","digits":8,"first":1,"last":100,"valid_until":"2027-12-31"}),
    )
    .await;
    assert_eq!(status, 200);
    let list = hub.admin_get("/v1/admin/fiscal/series").await;
    assert_eq!(list["series"].as_array().unwrap().len(), 2);
}
}

on_both_backends! {
#[tokio::test]
async fn concurrent_grants_never_overlap_and_the_report_adds_up() {
    let hub = TestHub::start().await;
    let store = hub.create_store("s").await;
    let (status, _) = load_series(
        &hub,
        json!({"prefix":"B02","digits":8,"first":1,"last":500,"valid_until":"2099-12-31"}),
    )
    .await;
    assert_eq!(status, 200);
    let mut regs = Vec::new();
    let mut hub_key = None;
    for _ in 0..8 {
        let (r, k) = hub.enroll(store).await;
        regs.push(r);
        hub_key = Some(k);
    }
    let hub_key = hub_key.unwrap();
    // 8 registers × 10 requests of 7 numbers, all at once: 560 asked, 500 exist.
    let mut tasks = Vec::new();
    for (i, reg) in regs.iter().enumerate() {
        for k in 0..10u64 {
            let hub = &hub;
            let rid = request_id((i as u64) * 100 + k);
            tasks.push(async move { (i, ask(hub, reg, &rid, "B02", 7).await) });
        }
    }
    let answers = futures_join_all(tasks).await;
    let mut numbers = BTreeSet::new();
    let mut granted = 0;
    let mut exhausted = 0;
    for (_, r) in &answers {
        if r.status == 409 {
            assert_eq!(r.body["error"], "fiscal_series_exhausted", "{}", r.body);
            exhausted += 1;
            continue;
        }
        for (_, a, b) in grants_of(r, &hub_key) {
            for n in a..=b {
                assert!(numbers.insert(n), "number {n} granted twice");
                granted += 1;
            }
        }
    }
    assert_eq!(granted, 500, "every number granted once");
    assert!(exhausted >= 8, "{exhausted} refusals");
    let rep = report(&hub, "B02").await;
    assert_eq!(rep["size"], 500);
    assert_eq!(rep["totals"]["outstanding"], 500);
    assert_eq!(rep["duplicates"], 0);
    let total: u64 = rep["totals"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 500);
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(health["fiscal"]["series"][0]["free"], 0);
    assert_eq!(
        health["fiscal"]["series"][0]["outstanding_by_device"]
            .as_object()
            .unwrap()
            .len(),
        8
    );
}
}

/// Polls futures concurrently without extra crates: each is spawned.
async fn futures_join_all<F, T>(fs: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    // Drive them all at once.
    let mut outs: Vec<Option<T>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
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
    outs.into_iter().map(|o| o.unwrap()).collect()
}

on_both_backends! {
#[tokio::test]
async fn request_ids_are_idempotent_and_releases_are_regranted_and_everything_is_accounted() {
    let hub = TestHub::start().await;
    let store: StoreId = hub.create_store("s").await;
    load_series(
        &hub,
        json!({"prefix":"B02","digits":8,"first":1,"last":30,"valid_until":"2099-12-31"}),
    )
    .await;
    let (mut a, hub_key) = hub.enroll(store).await;
    let (mut b, _) = hub.enroll(store).await;
    let first = ask(&hub, &a, &request_id(1), "B02", 10).await;
    let ga = grants_of(&first, &hub_key);
    assert_eq!(
        ga.iter().map(|g| (g.1, g.2)).collect::<Vec<_>>(),
        vec![(1, 10)]
    );
    // The same request again: the same answer, nothing new.
    let before = hub.business_state();
    let again = ask(&hub, &a, &request_id(1), "B02", 10).await;
    assert_eq!(grants_of(&again, &hub_key), ga);
    assert_eq!(again.body["events"], first.body["events"]);
    assert_eq!(hub.business_state(), before);
    // The same id with another body is refused and changes nothing.
    let other = ask(&hub, &a, &request_id(1), "B02", 11).await;
    assert_eq!(
        (other.status, other.body["error"].as_str()),
        (409, Some("request_id_conflict"))
    );
    assert_eq!(hub.business_state(), before);
    // Bad bodies name the field.
    let bad = ask(&hub, &a, &request_id(2), "B02", 0).await;
    assert_eq!(
        (bad.status, bad.body["field"].as_str()),
        (400, Some("count")),
        "{}",
        bad.body
    );
    let unknown = ask(&hub, &a, &request_id(3), "B99", 5).await;
    assert_eq!(
        (unknown.status, unknown.body["error"].as_str()),
        (409, Some("no_fiscal_series"))
    );
    assert_eq!(hub.business_state(), before);

    let gb = grants_of(&ask(&hub, &b, &request_id(4), "B02", 10).await, &hub_key);
    assert_eq!((gb[0].1, gb[0].2), (11, 20));
    // A uses 1..=3, voids 2, releases 4..=10; B uses 11 and, wrongly, 1 too.
    let mut rng = SeededRandom::new(9);
    let now = now_ms();
    let s1 = a.append(
        store,
        sale(Some("B0200000001".into()), 100),
        vec![],
        now,
        &mut rng,
    );
    let s2 = a.append(
        store,
        sale(Some("B0200000002".into()), 200),
        vec![],
        now,
        &mut rng,
    );
    let s3 = a.append(
        store,
        sale(Some("B0200000003".into()), 300),
        vec![],
        now,
        &mut rng,
    );
    let EventBody::SaleCreated(sc2) = s2.body().unwrap() else {
        unreachable!()
    };
    a.append(
        store,
        EventBody::SaleVoided(SaleVoided {
            sale_id: sc2.sale_id,
            reason: "error".into(),
            approval: None,
            approved_by: None,
        }),
        vec![s2.id()],
        now,
        &mut rng,
    );
    a.append(
        store,
        EventBody::FiscalNumbersReleased(FiscalNumbersReleased {
            grant_id: ga[0].0,
            series: "B02".into(),
            first: 4,
            last: 10,
        }),
        vec![],
        now,
        &mut rng,
    );
    let r = hub.push(&a, &a.events.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let _ = (s1, s3);
    b.append(
        store,
        sale(Some("B0200000011".into()), 400),
        vec![],
        now,
        &mut rng,
    );
    b.append(
        store,
        sale(Some("B0200000001".into()), 500),
        vec![],
        now,
        &mut rng,
    );
    let r = hub.push(&b, &b.events.clone()).await;
    assert_eq!(
        r.status, 200,
        "a wrong number is a fact, stored: {}",
        r.body
    );
    assert_eq!(
        r.body["conflicts"][0]["reason"], "duplicate_fiscal_number",
        "{}",
        r.body
    );

    let rep = report(&hub, "B02").await;
    let t = &rep["totals"];
    assert_eq!(t["used"], 3, "{rep}"); // 1, 3, 11
    assert_eq!(t["voided"], 1);
    assert_eq!(t["released_unused"], 7);
    assert_eq!(t["outstanding"], 9); // 12..=20
    assert_eq!(t["never_allocated"], 10);
    assert_eq!(rep["duplicates"], 1);
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(
        health["overall"], "critical",
        "a duplicate number is critical"
    );

    // Released numbers go back to the pool, lowest first.
    let gc = grants_of(&ask(&hub, &b, &request_id(5), "B02", 9).await, &hub_key);
    assert_eq!(
        gc.iter().map(|g| (g.1, g.2)).collect::<Vec<_>>(),
        vec![(4, 10), (21, 22)]
    );

    // Writing B off: its outstanding numbers are never issued again.
    let w = hub
        .admin
        .call(
            reqwest::Method::POST,
            &format!("/v1/admin/devices/{}/write-off", b.device),
            Some(&json!({"reason": "stolen"})),
        )
        .await
        .unwrap();
    assert_eq!(w["fiscal_numbers_written_off"], 9 + 9, "{w}");
    let rep = report(&hub, "B02").await;
    assert_eq!(rep["totals"]["written_off"], 18, "{rep}");
    let gd = grants_of(&ask(&hub, &a, &request_id(6), "B02", 100).await, &hub_key);
    assert_eq!(
        gd.iter().map(|g| (g.1, g.2)).collect::<Vec<_>>(),
        vec![(23, 30)]
    );
    // The written-off register is refused.
    let refused = ask(&hub, &b, &request_id(7), "B02", 1).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    // CSV: one header, rows cover the series.
    let csv = hub
        .admin
        .get("/v1/admin/fiscal/report?series=B02&format=csv")
        .await
        .unwrap();
    let text = csv.as_str().unwrap();
    assert!(text.starts_with("first,last,count,status,device,grant,sale,sale_event,at_ms\n"));
    assert!(text.contains("B0200000001,B0200000001,1,used,"));
    // The 607 has the standing fiscal sales of this month.
    let month = caja_shared::localtime::LocalDate::from_utc_ms(
        now,
        caja_shared::localtime::UtcOffset::SANTO_DOMINGO,
    );
    let t607 = hub
        .admin
        .get(&format!(
            "/v1/admin/fiscal/607?store={store}&month={:04}-{:02}&rnc=131098193",
            month.year, month.month
        ))
        .await
        .unwrap();
    let t607 = t607.as_str().unwrap();
    assert!(
        t607.starts_with(&format!(
            "607|131098193|{:04}{:02}|4\n",
            month.year, month.month
        )),
        "{t607}"
    );
    assert!(
        !t607.contains("B0200000002"),
        "voided documents are not in the 607"
    );
}
}
