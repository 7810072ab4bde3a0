//! Several `caja-hub` processes on one PostgreSQL database: the
//! invariants are enforced by the database (unique constraints, one
//! transaction per push, the writers' advisory lock), never by one process's
//! memory. Registers spread their pushes over three instances, one instance
//! is SIGKILLed while pushes are in flight, and afterwards: every event is
//! stored exactly once, nothing stays held, a nonce seen by one instance is
//! refused by another, a quarantine set by one is enforced by the others,
//! held events are released by whichever instance receives the missing
//! dependency, concurrent fiscal grants through different instances never
//! overlap, the hub chain and the audit log are gapless, and the exported
//! audit log verifies.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caja_hub::storage::Database;
use caja_hub::workload::{Register, Workload};
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::StoreId;
use caja_shared::kind::{EventBody, SaleVoided};
use serde_json::{json, Value};
use support::instances::{count, enroll_via, signed_to, start_instances, Instance, BIN};
use support::*;

async fn push_to(
    http: &reqwest::Client,
    url: &str,
    reg: &Register,
    events: &[Event],
) -> Result<Reply, reqwest::Error> {
    let body = push_body(reg, events);
    let h = sign(reg, "POST", "/v1/sync/push", &body, now_ms());
    let mut req = http.post(format!("{url}/v1/sync/push")).body(body);
    for (k, v) in h.pairs() {
        req = req.header(k, v);
    }
    Ok(reply(req.send().await?).await)
}

const REGISTERS: usize = 6;
const BATCHES: usize = 6;
const PER_BATCH: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_one_postgres_keep_every_invariant() {
    caja_hub::admin_client::install_crypto_provider();
    let Some(db) = tokio::task::spawn_blocking(caja_hub::testpg::fresh_database)
        .await
        .unwrap()
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // Three instances starting at once migrate and check the audit log one
    // after the other (the writers' lock).
    let (dirs, mut hubs) = start_instances(tmp.path(), &db, 3);
    let http = reqwest::Client::new();
    let admin0 = hubs[0].admin();
    let store: StoreId = retry_429(|| admin0.create_store("colmado", None)).await["store"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut regs = Vec::new();
    for i in 0..REGISTERS {
        regs.push(
            enroll_via(&http, &hubs[i % 3], &hubs[(i + 1) % 3], store)
                .await
                .0,
        );
    }

    // The same signed request at two instances: the second refuses the nonce.
    let body = b"";
    let h = sign(&regs[0], "GET", "/v1/sync/pull?after=", body, now_ms());
    let mut answers = Vec::new();
    for hub in &hubs[..2] {
        let mut req = http.get(format!("{}/v1/sync/pull?after=", hub.url));
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        answers.push(reply(req.send().await.unwrap()).await);
    }
    assert_eq!(answers[0].status, 200, "{:?}", answers[0].body);
    assert_eq!(
        (answers[1].status, answers[1].body["error"].as_str()),
        (401, Some("replayed_nonce")),
        "{:?}",
        answers[1].body
    );

    // Every register's events (with deps on the others' sales: voids, debt
    // payments), pushed in batches spread over the instances, concurrently.
    let mut w = Workload::new(41, store, regs.clone());
    let mut chains: Vec<Vec<Event>> = vec![Vec::new(); REGISTERS];
    for _ in 0..BATCHES * PER_BATCH {
        for (r, chain) in chains.iter_mut().enumerate() {
            chain.push(w.next(r, now_ms()));
        }
    }
    let urls: Vec<String> = hubs.iter().map(|h| h.url.clone()).collect();
    let acked_batches = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (r, chain) in chains.iter().enumerate() {
        let (http, urls, reg, chain, acked) = (
            http.clone(),
            urls.clone(),
            regs[r].clone(),
            chain.clone(),
            acked_batches.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut last = Value::Null;
            for (b, batch) in chain.chunks(PER_BATCH).enumerate() {
                // Round robin over the instances; a dead one is skipped
                // (the register retries the same batch elsewhere).
                let mut attempt = r + b;
                loop {
                    let url = &urls[attempt % urls.len()];
                    match push_to(&http, url, &reg, batch).await {
                        Ok(rep) if rep.status == 200 => {
                            last = rep.body;
                            break;
                        }
                        Ok(rep) if rep.status == 429 => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Ok(rep) => panic!("push refused: {} {:?}", rep.status, rep.body),
                        Err(_) => attempt += 1,
                    }
                }
                acked.fetch_add(1, Ordering::SeqCst);
            }
            last
        }));
    }
    // Kill instance 2 while pushes are in flight.
    while acked_batches.load(Ordering::SeqCst) < REGISTERS * BATCHES / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hubs[2].kill();
    for (r, t) in tasks.into_iter().enumerate() {
        let last = t.await.unwrap();
        assert_eq!(
            last["acked_seq"],
            (BATCHES * PER_BATCH) as u64,
            "register {r}"
        );
    }
    let total = (REGISTERS * BATCHES * PER_BATCH) as i64;
    let register_events = format!(
        "SELECT COUNT(*) FROM events WHERE device_id IN ({})",
        regs.iter()
            .map(|r| format!("'{}'", r.device))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        count(&db, &register_events).await,
        total,
        "stored exactly once"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM held").await,
        0,
        "nothing held"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM applied").await,
        count(&db, "SELECT COUNT(*) FROM events").await,
        "every stored event applied once"
    );
    // The killed instance comes back: its start-up check finds the audit
    // tree equal to the log.
    hubs[2] = Instance::start(&dirs[2]);

    // A quarantine set through one instance is enforced by the others.
    let forked = regs[0].clone();
    let mut other = Workload::new(99, store, vec![forked.clone()]);
    let fork: Vec<Event> = (0..3).map(|_| other.next(0, now_ms())).collect();
    let r = push_to(&http, &hubs[0].url, &forked, &fork).await.unwrap();
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (409, Some("chain_mismatch")),
        "{:?}",
        r.body
    );
    let next = w.next(0, now_ms());
    for hub in &hubs[1..] {
        let r = push_to(&http, &hub.url, &forked, std::slice::from_ref(&next))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (403, Some("quarantined")),
            "{:?}",
            r.body
        );
    }

    // A void pushed to instance 0 waits for its sale; the sale arrives at
    // instance 1, which releases the void.
    let (seller, voider) = (regs[1].clone(), regs[2].clone());
    let sale = w.next_sale(1, now_ms());
    let EventBody::SaleCreated(s) = sale.body().unwrap() else {
        panic!("not a sale")
    };
    let void = w.registers[2].append(
        store,
        EventBody::SaleVoided(SaleVoided {
            sale_id: s.sale_id,
            reason: "error".into(),
            approval: None,
            approved_by: None,
        }),
        vec![sale.id()],
        now_ms(),
        &mut SeededRandom::new(5),
    );
    let r = push_to(&http, &hubs[0].url, &voider, std::slice::from_ref(&void))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["held"][0]["missing"], json!([sale.id().to_string()]));
    let r = push_to(&http, &hubs[1].url, &seller, std::slice::from_ref(&sale))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body["held"].clone()),
        (200, json!([])),
        "{:?}",
        r.body
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM held").await,
        0,
        "the void was released"
    );
    let health = hubs[2].admin().get("/v1/health").await.unwrap();
    assert_eq!(health["consistency"]["held_events"], 0, "{health}");

    // Concurrent fiscal grants through the three instances never overlap.
    let series = json!({"prefix":"B01","digits":8,"first":1,"last":400,"valid_until":"2099-12-31"});
    hubs[0]
        .admin()
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&series),
        )
        .await
        .unwrap();
    let mut asks = Vec::new();
    for (i, reg) in regs.iter().enumerate().skip(1) {
        for k in 0..10usize {
            let (http, url, reg) = (http.clone(), hubs[(i + k) % 3].url.clone(), reg.clone());
            let rid = format!("019aaf70-0000-7000-8000-{:012x}", i * 100 + k);
            asks.push(tokio::spawn(async move {
                let body =
                    serde_json::to_vec(&json!({"request_id": rid, "series": "B01", "count": 9}))
                        .unwrap();
                loop {
                    let r = signed_to(&http, &url, &reg, "POST", "/v1/fiscal/ranges", &body).await;
                    if r.status != 429 {
                        return r;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
    }
    let mut numbers = BTreeSet::new();
    let mut exhausted = 0;
    for a in asks {
        let r = a.await.unwrap();
        if r.status == 409 {
            assert_eq!(r.body["error"], "fiscal_series_exhausted", "{}", r.body);
            exhausted += 1;
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        for e in r.body["events"].as_array().unwrap() {
            let e = Event::from_json(e.to_string().as_bytes()).unwrap();
            let EventBody::FiscalRangeGranted(g) = e.body().unwrap() else {
                panic!("not a grant")
            };
            for n in g.first..=g.last {
                assert!(numbers.insert(n), "number {n} granted twice");
            }
        }
    }
    assert_eq!(numbers.len(), 400, "every number granted once");
    assert!(exhausted > 0);
    let rep = hubs[1]
        .admin()
        .get("/v1/admin/fiscal/report?series=B01")
        .await
        .unwrap();
    assert_eq!(rep["reports"][0]["duplicates"], 0);
    assert_eq!(rep["reports"][0]["totals"]["outstanding"], 400);

    // The store's hub chain (grants from three instances) is gapless and
    // linked, and so is the audit log.
    let chain = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let conn = caja_hub::storage::open(&Database::Postgres(db)).unwrap();
            let mut stmt = conn
                .prepare(
                    "SELECT e.seq, e.hash, e.prev FROM events e JOIN stores s ON s.hub_device = e.device_id ORDER BY e.seq",
                )
                .unwrap();
            stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .await
        .unwrap()
    };
    assert!(chain.len() > 10);
    let mut prev = "0".repeat(64);
    for (i, (seq, hash, p)) in chain.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        assert_eq!(*p, prev, "hub chain linked at seq {seq}");
        prev = hash.clone();
    }
    let entries = count(&db, "SELECT COUNT(*) FROM audit_log").await;
    assert_eq!(
        count(&db, "SELECT MAX(idx) + 1 FROM audit_log").await,
        entries
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM alerts WHERE kind = 'audit_tree_rebuilt'"
        )
        .await,
        0,
        "no instance found the tree different from the log"
    );
    // Heads signed by different instances extend one another.
    let a = hubs[0]
        .admin()
        .call(reqwest::Method::POST, "/v1/admin/audit/sth", None)
        .await
        .unwrap();
    let b = hubs[2]
        .admin()
        .call(reqwest::Method::POST, "/v1/admin/audit/sth", None)
        .await
        .unwrap();
    assert_eq!(a["tree_size"], b["tree_size"]);
    assert_eq!(a["root"], b["root"]);
    // The export of the shared log (through instance 1's data directory)
    // verifies.
    let out = tmp.path().join("export");
    let export = Command::new(BIN)
        .args(["audit", "export", "--data-dir"])
        .arg(&hubs[1].dir)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let verify = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
