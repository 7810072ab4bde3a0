//! The tax-authority outbox end to end over loopback HTTP: registers push
//! e-CF sales to a real hub, outbox workers submit them to the DGII emulator
//! (`caja_hub::dgii_emulator`) with faults, and the verdicts come back as hub
//! events the registers pull.
//!
//! - two worker pools on one hub database racing over 1,000 documents while
//!   the emulator loses 10 % of calls: every document submitted exactly once
//!   (the emulator's count per number), every verdict recorded;
//! - acceptance, conditional acceptance and rejection (a `manual` conflict, an
//!   alert, degraded health), `En Proceso` polling, token expiry, `caja-hub
//!   rebuild` finding the rejection's conflict again;
//! - a `caja-hub serve` process SIGKILLed while its submission is at the
//!   authority: after the lease expires another worker finishes the document
//!   without sending it again.
//!
//! Each runs on SQLite and, as `<name>::postgres`, on a fresh PostgreSQL
//! database (`on_both_backends!`): there the two pools are two stores on one
//! database, as two hub instances are, claiming under the writers' advisory
//! lock.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caja_hub::config::{HubConfig, TaxAuthorityConfig};
use caja_hub::dgii_emulator::{Emulator, Faults};
use caja_hub::outbox::RetryPolicy;
use caja_hub::outbox_worker::{PoolConfig, WorkerPool};
use caja_hub::storage::{Storage, StorageConfig};
use caja_hub::system::{OsRandom, SystemClock};
use caja_hub::taxgw::dgii::DgiiConfig;
use caja_hub::taxgw::dgii_http::DgiiGateway;
use caja_hub::workload::Register;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{SaleId, StoreId};
use caja_shared::kind::{
    EventBody, FiscalDocumentIssued, FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine,
};
use caja_shared::money::{line_tax, Money, QtyMilli, TaxRateBp};
use caja_shared::push::PushDocument;
use serde_json::{json, Value};
use support::*;

const RNC: &str = "131880738";

/// A store with an E32 series, an enrolled register and a granted block.
struct Shop {
    store: StoreId,
    reg: Register,
    numbers: std::ops::RangeInclusive<u64>,
}

async fn shop(hub: &TestHub, count: u64) -> Shop {
    let store = hub.create_store("colmado").await;
    hub.admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&json!({"prefix":"E32","digits":10,"first":1,"last":100_000,"valid_until":"2099-12-31"})),
        )
        .await
        .unwrap();
    let (reg, _) = hub.enroll(store).await;
    let body = serde_json::to_vec(&json!({
        "request_id": "019aaf70-0000-7000-8000-000000000001", "series": "E32", "count": count
    }))
    .unwrap();
    let r = hub
        .signed(&reg, "POST", "/v1/fiscal/ranges", &body, now_ms())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let g = Event::from_json(r.body["events"][0].to_string().as_bytes()).unwrap();
    let EventBody::FiscalRangeGranted(g) = g.body().unwrap() else {
        panic!("not a grant")
    };
    Shop {
        store,
        reg,
        numbers: g.first..=g.last,
    }
}

fn number(n: u64) -> String {
    format!("E32{n:010}")
}

/// A one-line cash sale at 18 % with fiscal number `n`.
fn sale(n: u64, unit_price: i64) -> EventBody {
    let mut rng = SeededRandom::new(n);
    let total = Money(unit_price);
    let tax = line_tax(total, TaxRateBp::new(1800).unwrap()).unwrap();
    EventBody::SaleCreated(SaleCreated {
        sale_id: SaleId::new_v7(now_ms(), &mut rng).unwrap(),
        cashier: "ana".into(),
        shift_id: None,
        customer: None,
        fiscal: Some(FiscalRef {
            series: "E32".into(),
            number: number(n),
            valid_until: Some("2099-12-31".into()),
            // DGII: from RD$250,000 on a consumer invoice names its buyer.
            buyer_tax_id: (total >= Money(25_000_000)).then(|| "00112345678".into()),
            buyer_name: (total >= Money(25_000_000)).then(|| "Juan Pérez".into()),
            modifies: None,
        }),
        lines: vec![SaleLine {
            product: "soda-2l".parse().unwrap(),
            name: "Refresco 2 L".into(),
            qty_milli: QtyMilli(1000),
            unit_price: total,
            tax_bp: TaxRateBp::new(1800).unwrap(),
            discount: None,
            total,
            tax,
            beyond_quota_milli: None,
            price_override: None,
        }],
        total,
        tax,
        payments: vec![Payment {
            method: PaymentMethod::Cash,
            amount: total,
            reference: None,
        }],
        change: Money(0),
        approval: None,
    })
}

fn signed_documents(sale: &SaleCreated) -> (FiscalDocumentIssued, Vec<PushDocument>) {
    let signer = signer().expect("the test PKI (openssl)");
    caja_hub::workload::signed_sale_documents(sale, &issuer(RNC), &signer, now_ms()).unwrap()
}

/// Pushes sales of the numbers given, each with its `FiscalDocumentIssued`
/// and the signed documents beside them (every `big_every`-th one above the
/// RD$250,000 summary threshold, so it goes whole and is polled). Returns
/// the sales.
async fn sell(hub: &TestHub, shop: &mut Shop, numbers: &[u64], big_every: u64) -> Vec<Event> {
    let mut rng = OsRandom::new();
    let mut sales = Vec::new();
    let mut batches: Vec<(Vec<Event>, Vec<PushDocument>)> = Vec::new();
    for chunk in numbers.chunks(125) {
        let mut events = Vec::new();
        let mut docs = Vec::new();
        for n in chunk {
            let price = if big_every > 0 && n % big_every == 0 {
                30_000_000
            } else {
                9_500
            };
            let body = sale(*n, price);
            let EventBody::SaleCreated(s) = &body else {
                unreachable!()
            };
            let (issued, signed) = signed_documents(s);
            let e = shop
                .reg
                .append(shop.store, body, vec![], now_ms(), &mut rng);
            let i = shop.reg.append(
                shop.store,
                EventBody::FiscalDocumentIssued(issued),
                vec![e.id()],
                now_ms(),
                &mut rng,
            );
            sales.push(e.clone());
            events.extend([e, i]);
            docs.extend(signed);
        }
        docs.sort_by_key(|d| d.sha256);
        batches.push((events, docs));
    }
    for (events, docs) in &batches {
        let r = hub.push_with_documents(&shop.reg, events, docs).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body["conflicts"].as_array().unwrap().is_empty(),
            "{}",
            r.body
        );
    }
    sales
}

fn gateway(emu: &Emulator, timeout_ms: u64) -> Arc<DgiiGateway> {
    Arc::new(
        DgiiGateway::new(
            DgiiConfig {
                ecf_base_url: emu.ecf_base_url(),
                fc_base_url: emu.fc_base_url(),
                rnc: RNC.into(),
                legal_name: "Colmado & Hijos SRL".into(),
                address: Some("Calle 1, Santo Domingo".into()),
            },
            timeout_ms,
            Arc::new(SystemClock),
        )
        .unwrap()
        .with_signature_check(caja_hub::taxgw::dgii_signed::signature_check(Some(
            Arc::new(trust()),
        ))),
    )
}

/// An emulator that checks every document as DGII does: XSD (`xmllint`,
/// DGII's schemas from the workspace) and signatures, the seed's included.
async fn checked_emulator(seed: u64) -> Emulator {
    Emulator::start_checked(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults::default(),
        seed,
        caja_hub::dgii_emulator::Checks {
            xsd_dir: Some(
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd"),
            ),
            signatures: true,
        },
    )
    .await
    .unwrap()
}

/// Installs the test PKI's signer as the hub's own certificate (what the
/// hub signs itself; health wants one while e-CF series are loaded) and
/// restarts the hub so its workers load it.
async fn install_hub_certificate(hub: &mut TestHub) {
    hub.install_test_certificate();
    hub.restart().await;
}

/// The test PKI's CA, as the hub trusts it.
fn trust() -> caja_shared::ecf::certificate::TrustStore {
    let p = pki::Pki::get().expect("the test PKI (openssl)");
    caja_shared::ecf::certificate::TrustStore::from_pem(&pki::Pki::read(&p.ca_pem)).unwrap()
}

/// A second store (its own writer and readers) on the hub's database, as
/// another hub instance would have; opened off the executor (the PostgreSQL
/// client blocks).
async fn open_store(hub: &TestHub) -> Storage {
    let cfg = StorageConfig {
        database: hub.cfg.database(&hub.data_dir()),
        queue_capacity: 256,
        max_batch_jobs: 64,
        read_connections: 2,
        key_grace_ms: 0,
        rate_limit: hub.cfg.rate_limit,
        caps: hub.cfg.caps(),
    };
    tokio::task::spawn_blocking(move || {
        Storage::open(cfg, Arc::new(SystemClock), Box::new(OsRandom::new())).unwrap()
    })
    .await
    .unwrap()
}

fn fast_pool(name: &str, workers: usize, lease_ms: i64) -> PoolConfig {
    PoolConfig {
        workers,
        lease_ms,
        idle_poll_ms: 50,
        policy: RetryPolicy {
            base_ms: 50,
            cap_ms: 500,
            poll_ms: 50,
        },
        name: name.into(),
    }
}

async fn outbox(hub: &TestHub, query: &str) -> Value {
    hub.admin_get(&format!("/v1/admin/outbox?{query}")).await
}

/// Waits until no document is undecided.
async fn drained(hub: &TestHub, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let v = outbox(hub, "limit=1").await;
        if v["health"]["backlog"] == 0 {
            return v["health"].clone();
        }
        assert!(
            start.elapsed() < within,
            "outbox not drained in {within:?}: {}",
            v["health"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The hub events a register pulls, decoded.
async fn pulled(hub: &TestHub, reg: &Register) -> Vec<EventBody> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let r = hub.pull(reg, &after).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for e in r.body["events"].as_array().unwrap() {
            out.push(
                Event::from_json(e.to_string().as_bytes())
                    .unwrap()
                    .body()
                    .unwrap(),
            );
        }
        after = r.body["next"].as_str().unwrap().to_owned();
        if r.body["more"] != true {
            return out;
        }
    }
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_race_over_a_thousand_documents_with_lost_answers_exactly_once() {
    if signer().is_none() {
        return;
    }
    const N: u64 = 1000;
    let hub = TestHub::start().await;
    let mut shop = shop(&hub, N).await;
    let numbers: Vec<u64> = shop.numbers.clone().collect();
    assert_eq!(numbers.len() as u64, N);
    sell(&hub, &mut shop, &numbers, 10).await;
    let queued = outbox(&hub, "state=pending&limit=1").await;
    assert_eq!(
        queued["health"]["by_state"]["pending"], N,
        "{}",
        queued["health"]
    );

    // 10 % of calls time out (half lost before processing, half processed
    // with their answer lost), 2 % answer 503 (before or after processing),
    // every answer is a little slow; whole e-CFs are "En Proceso" once.
    let emu = Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults {
            timeout_per_mille: 100,
            error_per_mille: 20,
            slow_ms: 1,
            hang_ms: 1_500,
            in_process_polls: 1,
            ..Faults::default()
        },
        7,
    )
    .await
    .unwrap();
    let a = WorkerPool::spawn(
        open_store(&hub).await,
        gateway(&emu, 600),
        fast_pool("a", 4, 10_000),
        None,
    );
    let b = WorkerPool::spawn(
        open_store(&hub).await,
        gateway(&emu, 600),
        fast_pool("b", 4, 10_000),
        None,
    );
    let health = drained(&hub, Duration::from_secs(150)).await;
    let (sa, sb) = (a.stats(), b.stats());
    let load = |x: &std::sync::atomic::AtomicU64| x.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "pool a: claimed {} submissions {} lookups {} found {} polls {} failures {}; pool b: claimed {} submissions {} lookups {} found {} polls {} failures {}",
        load(&sa.claimed), load(&sa.submissions), load(&sa.lookups), load(&sa.lookups_found), load(&sa.polls), load(&sa.failures),
        load(&sb.claimed), load(&sb.submissions), load(&sb.lookups), load(&sb.lookups_found), load(&sb.polls), load(&sb.failures),
    );
    let (decided_a, decided_b) = (load(&sa.decided), load(&sb.decided));
    a.stop().await;
    b.stop().await;

    assert_eq!(health["by_state"]["accepted"], N, "{health}");
    let t = emu.totals();
    println!(
        "emulator: faults {}, lookups {}, status queries {}, tokens {}",
        t.faults, t.lookups, t.status_queries, t.tokens
    );
    assert!(t.faults > 50, "the emulator injected faults: {}", t.faults);
    assert!(t.lookups > 0, "lost answers were looked up");
    assert_eq!(t.per_number.len() as u64, N);
    let mut duplicates = 0;
    for n in &numbers {
        let c = &t.per_number[&number(*n)];
        assert_eq!(
            c.received,
            1,
            "{} received {} times",
            number(*n),
            c.received
        );
        assert_eq!(c.conflicting, 0, "{} sent with two contents", number(*n));
        assert_eq!(c.contents, 1);
        // Every extra arrival followed an answer lost in flight.
        assert!(
            c.duplicates <= c.answers_lost,
            "{}: {} extra arrivals, {} answers lost",
            number(*n),
            c.duplicates,
            c.answers_lost
        );
        duplicates += c.duplicates;
    }
    println!("identical resubmissions answered as before: {duplicates}");
    // Both pools worked.
    assert!(decided_a > 0 && decided_b > 0, "{decided_a} {decided_b}");
    assert_eq!(decided_a + decided_b, N);
    // Every verdict is a hub event the register pulls, and an audit entry.
    let events = pulled(&hub, &shop.reg).await;
    let accepted: BTreeMap<String, &caja_shared::kind::FiscalDocumentAccepted> = events
        .iter()
        .filter_map(|e| match e {
            EventBody::FiscalDocumentAccepted(a) => Some((a.document.clone(), a)),
            _ => None,
        })
        .collect();
    assert_eq!(accepted.len() as u64, N);
    let whole = accepted.values().filter(|a| a.track_id.is_some()).count();
    assert_eq!(
        whole as u64,
        N / 10,
        "every tenth sale went whole, with a track id"
    );
    assert!(accepted
        .values()
        .all(|a| a.security_code.as_ref().is_some_and(|c| c.len() == 6)));
    let db = hub.db();
    let decided: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE kind = 'fiscal_document_decided'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let prepared: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE kind = 'fiscal_document_prepared'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((decided, prepared), (N as i64, N as i64));
    // The bytes are written once: the database refuses another body.
    let err = db
        .execute(
            "UPDATE tax_outbox SET body = $2 WHERE doc_key = $1",
            caja_hub::storage::db::params![number(numbers[0]), vec![0u8]],
        )
        .unwrap_err();
    assert!(err.to_string().contains("never change"), "{err}");
    emu.stop().await;
}
}

fn tax_config(emu: &Emulator, workers: usize) -> TaxAuthorityConfig {
    TaxAuthorityConfig {
        ecf_base_url: emu.ecf_base_url(),
        fc_base_url: emu.fc_base_url(),
        rnc: RNC.into(),
        legal_name: "Colmado & Hijos SRL".into(),
        address: Some("Calle 1, Santo Domingo".into()),
        workers,
        lease_ms: 3_000,
        request_timeout_ms: 1_000,
        poll_interval_ms: 50,
        retry_base_ms: 50,
        retry_cap_ms: 500,
        idle_poll_ms: 50,
        trusted_ca: pki::Pki::get().map(|p| p.ca_pem.display().to_string()),
        ..TaxAuthorityConfig::default()
    }
}

on_both_backends! {
#[tokio::test]
async fn verdicts_reach_the_register_and_a_rejection_needs_a_person() {
    if signer().is_none() {
        return;
    }
    let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), RNC, Faults::default(), 3)
        .await
        .unwrap();
    let mut hub = TestHub::start_with(HubConfig {
        tax_authority: Some(tax_config(&emu, 2)),
        ..test_config()
    })
    .await;
    install_hub_certificate(&mut hub).await;
    let mut shop = shop(&hub, 20).await;
    let first = *shop.numbers.start();
    let (ok, conditional, rejected, whole) = (first, first + 1, first + 2, first + 3);
    emu.update_faults(|f| {
        f.conditional.insert(number(conditional));
        f.reject.insert(number(rejected));
        f.in_process_polls = 2;
        f.token_ttl_ms = 60_000;
    });
    let sales = sell(&hub, &mut shop, &[ok, conditional, rejected], 0).await;
    let big = sell(&hub, &mut shop, &[whole], 1).await;
    drained(&hub, Duration::from_secs(60)).await;

    let events = pulled(&hub, &shop.reg).await;
    let mut seen = BTreeMap::new();
    for e in &events {
        match e {
            EventBody::FiscalDocumentAccepted(a) => {
                seen.insert(
                    a.document.clone(),
                    if a.conditional {
                        "conditional"
                    } else {
                        "accepted"
                    },
                );
                assert_eq!(a.authority, "dgii");
                let url = a.verify_url.as_deref().unwrap();
                assert!(url.contains(&format!("ENCF={}", a.document)), "{url}");
                // The code is base64 (`+`, `/`): percent-encoded in the URL.
                assert!(url.contains(&format!(
                    "CodigoSeguridad={}",
                    caja_shared::ecf::receipt::percent_encode(a.security_code.as_deref().unwrap())
                )));
                if a.document == number(conditional) {
                    assert_eq!(a.messages[0].code, "2001");
                }
                if a.document == number(whole) {
                    assert!(a.track_id.is_some(), "a whole e-CF is tracked");
                    assert!(url.contains("/ConsultaTimbre?"), "{url}");
                    assert_eq!(a.event_id, Some(big[0].id()));
                }
            }
            EventBody::FiscalDocumentRejected(r) => {
                seen.insert(r.document.clone(), "rejected");
                assert_eq!(r.event_id, Some(sales[2].id()));
                assert!(
                    r.messages[0].text.contains("Monto total"),
                    "{:?}",
                    r.messages
                );
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        BTreeMap::from([
            (number(ok), "accepted"),
            (number(conditional), "conditional"),
            (number(rejected), "rejected"),
            (number(whole), "accepted"),
        ])
    );
    assert!(
        emu.totals().status_queries >= 3,
        "polled through En Proceso"
    );

    // The rejection: a manual conflict, an alert, degraded health, metrics.
    let conflicts = hub.admin_get("/v1/admin/conflicts?state=open").await;
    let c = conflicts["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["reason"] == "fiscal_document_rejected")
        .cloned()
        .unwrap_or_else(|| panic!("no rejection conflict: {conflicts}"));
    assert_eq!(c["strategy"], "manual");
    assert_eq!(c["subject"], format!("fiscal_doc:{}", number(rejected)));
    let candidates = c["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "the sale and the rejection event");
    assert!(candidates.contains(&json!(sales[2].id().to_string())));
    let alerts = hub.admin_get("/v1/admin/alerts").await;
    assert!(
        alerts.to_string().contains("fiscal_document_rejected"),
        "{alerts}"
    );
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(health["overall"], "degraded", "{health}");
    assert_eq!(health["tax_authority"]["rejected"], 1);
    assert_eq!(health["tax_authority"]["backlog"], 0);
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
    assert!(metrics.contains("caja_hub_outbox_rejected 1"), "{metrics}");
    assert!(metrics.contains("caja_hub_outbox_backlog 0"), "{metrics}");
    assert!(
        metrics.contains("caja_hub_outbox_calls_total{call=\"submit\",result=\"decided\"}"),
        "{metrics}"
    );

    // Tokens expire: the next calls get a 401, the gateway renews its token.
    let before = emu.totals();
    emu.expire_tokens();
    let more = first + 4;
    sell(&hub, &mut shop, &[more], 0).await;
    drained(&hub, Duration::from_secs(60)).await;
    let after = emu.totals();
    assert!(after.unauthorized > before.unauthorized, "a 401 was seen");
    assert!(after.tokens > before.tokens, "a new token was issued");
    assert_eq!(after.per_number[&number(more)].received, 1);

    // An operator resolves the rejection; the register pulls it.
    let id = c["conflict_id"].as_str().unwrap();
    hub.admin
        .call(
            reqwest::Method::POST,
            &format!("/v1/admin/conflicts/{id}/resolve"),
            Some(&json!({"note": "reissued as a new e-CF", "by": "contabilidad"})),
        )
        .await
        .unwrap();
    assert!(pulled(&hub, &shop.reg)
        .await
        .iter()
        .any(|e| matches!(e, EventBody::ConflictResolved(r) if r.conflict_id.to_string() == id)));

    // `caja-hub rebuild` recomputes conflicts from events: the rejection's is
    // found again (and stays resolved by its resolution event).
    hub.stop().await;
    let conn = hub.db();
    caja_hub::storage::rebuild(&conn).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM conflicts WHERE reason = 'fiscal_document_rejected'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    hub.restart().await;
    let conflicts = hub.admin_get("/v1/admin/conflicts?state=resolved").await;
    assert!(
        conflicts.to_string().contains("fiscal_document_rejected"),
        "{conflicts}"
    );
    hub.stop().await;
    emu.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_written_off_registers_unused_numbers_are_cancelled() {
    if signer().is_none() {
        return;
    }
    if !require_tool("xmllint") {
        return;
    }
    // DGII's checks: the hub-signed seed and ANECF validate and verify.
    let emu = checked_emulator(5).await;
    let mut hub = TestHub::start_with(HubConfig {
        tax_authority: Some(tax_config(&emu, 1)),
        ..test_config()
    })
    .await;
    // The hub signs the cancellation with its own installed certificate.
    install_hub_certificate(&mut hub).await;
    let mut shop = shop(&hub, 10).await;
    let first = *shop.numbers.start();
    sell(&hub, &mut shop, &[first, first + 1], 0).await;
    let device = shop.reg.device;
    hub.admin
        .call(
            reqwest::Method::POST,
            &format!("/v1/admin/devices/{device}/write-off"),
            Some(&json!({"reason": "robada"})),
        )
        .await
        .unwrap();
    drained(&hub, Duration::from_secs(60)).await;
    let key = format!("ANECF:{}:{}", number(first + 2), number(first + 9));
    let t = emu.totals();
    assert_eq!(t.per_number[&key].received, 1, "{:?}", t.per_number);
    let docs = outbox(&hub, "state=accepted").await;
    let cancelled = docs["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["document"] == key)
        .unwrap_or_else(|| panic!("{docs}"));
    assert_eq!(cancelled["doc_type"], "cancellation");
    assert_eq!(cancelled["channel"], "anecf");
    // Signed by the hub, kept with the signed documents.
    let (xml, kind): (Vec<u8>, String) = hub
        .db()
        .query_row(
            "SELECT xml, kind FROM signed_documents WHERE encf = $1",
            [format!("{}..{}", number(first + 2), number(first + 9))],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "anecf");
    caja_shared::ecf::xmldsig::verify(&xml).unwrap();
    // Bad listing parameters are named.
    let r = hub
        .http
        .get(format!("{}/v1/admin/outbox?state=lost", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "state");
    emu.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_killed_hub_process_leaves_a_lease_that_expires_and_nothing_is_sent_twice() {
    if signer().is_none() {
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let emu = Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults {
            // Submissions are processed, then their answers stall: the hub
            // is killed while waiting.
            stall_submissions_ms: 60_000,
            ..Faults::default()
        },
        11,
    )
    .await
    .unwrap();
    let mut hub = TestHub::start().await;
    let mut shop = shop(&hub, 5).await;
    let n = *shop.numbers.start();
    sell(&hub, &mut shop, &[n], 0).await;
    hub.stop().await;
    let cfg = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tax_authority: Some(TaxAuthorityConfig {
            request_timeout_ms: 2_000,
            lease_ms: 6_000,
            ..tax_config(&emu, 1)
        }),
        ..hub.cfg.clone()
    };
    std::fs::write(
        hub.data_dir().join(caja_hub::config::CONFIG_FILE),
        cfg.to_toml(),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_caja-hub"))
        .args(["serve", "--data-dir"])
        .arg(hub.data_dir())
        .env("CAJA_HUB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("caja-hub listening on "), "{line}");
    // Wait until the authority holds the submission, then kill the hub.
    let start = Instant::now();
    while emu
        .totals()
        .per_number
        .get(&number(n))
        .map_or(0, |c| c.received)
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(60), "never submitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let db = hub.db();
    let row = |db: &caja_hub::storage::Conn| -> (Option<String>, Option<i64>, i64, String) {
        db.query_row(
            "SELECT lease_owner, lease_until_ms, in_doubt, state FROM tax_outbox WHERE doc_key = $1",
            [number(n)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    };
    let (owner, until, in_doubt, _) = row(&db);
    let (owner, until) = (
        owner.expect("the killed worker's lease is still there"),
        until.unwrap(),
    );
    assert_eq!(
        in_doubt, 1,
        "the submission was marked in doubt before it was sent"
    );
    // Another worker on the same database takes the document over only once
    // the dead worker's lease has expired, asks the authority, finds the
    // document there, and records the verdict without sending it again.
    emu.update_faults(|f| f.stall_submissions_ms = 0);
    let store = open_store(&hub).await;
    let pool = WorkerPool::spawn(store, gateway(&emu, 2_000), fast_pool("c", 2, 6_000), None);
    let start = Instant::now();
    loop {
        let before = now_ms();
        let (o, _, _, state) = row(&db);
        if before < until {
            assert_eq!(
                o.as_deref(),
                Some(owner.as_str()),
                "a live lease was taken over"
            );
            assert_eq!(state, "pending");
        }
        if state == "accepted" {
            assert!(now_ms() >= until, "decided before the lease expired");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "state {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = pool.stats();
    assert_eq!(
        s.lookups_found.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(s.submissions.load(std::sync::atomic::Ordering::Relaxed), 0);
    pool.stop().await;
    let c = &emu.totals().per_number[&number(n)];
    assert_eq!((c.received, c.duplicates, c.conflicting), (1, 0, 0));
    emu.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_signed_document_that_fails_the_checks_is_never_sent_and_needs_a_person() {
    if signer().is_none() {
        return;
    }
    let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), RNC, Faults::default(), 13)
        .await
        .unwrap();
    let hub = TestHub::start_with(HubConfig {
        tax_authority: Some(tax_config(&emu, 1)),
        ..test_config()
    })
    .await;
    let mut shop = shop(&hub, 5).await;
    let n = *shop.numbers.start();
    // Signed for another taxpayer: the hub must not send it.
    let body = sale(n, 9_500);
    let EventBody::SaleCreated(s) = &body else {
        unreachable!()
    };
    let signer = signer().unwrap();
    let (issued, docs) =
        caja_hub::workload::signed_sale_documents(s, &issuer("101010101"), &signer, now_ms())
            .unwrap();
    let mut rng = OsRandom::new();
    let e = shop.reg.append(shop.store, body, vec![], now_ms(), &mut rng);
    let i = shop.reg.append(
        shop.store,
        EventBody::FiscalDocumentIssued(issued),
        vec![e.id()],
        now_ms(),
        &mut rng,
    );
    let mut docs = docs;
    docs.sort_by_key(|d| d.sha256);
    let r = hub.push_with_documents(&shop.reg, &[e.clone(), i], &docs).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A good one after it is sent as usual.
    sell(&hub, &mut shop, &[n + 1], 0).await;
    let start = Instant::now();
    let conflict = loop {
        let c = hub.admin_get("/v1/admin/conflicts?state=open").await;
        if let Some(c) = c["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["reason"] == "fiscal_document_invalid")
        {
            break c.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no conflict: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(conflict["strategy"], "manual");
    assert_eq!(conflict["subject"], format!("fiscal_doc:{}", number(n)));
    assert_eq!(conflict["candidates"], json!([e.id().to_string()]));
    let alerts = hub.admin_get("/v1/admin/alerts").await;
    assert!(alerts.to_string().contains("RNCEmisor"), "{alerts}");
    while !emu.totals().per_number.contains_key(&number(n + 1)) {
        assert!(start.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Never sent, never due again, and health says a document is failing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !emu.totals().per_number.contains_key(&number(n)),
        "a refused document reached the authority"
    );
    let docs = outbox(&hub, "state=pending").await;
    let d = docs["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["document"] == number(n))
        .cloned()
        .unwrap_or_else(|| panic!("{docs}"));
    assert!(d["body_hash"].is_null(), "{d}");
    assert!(
        d["last_error"].as_str().unwrap().contains("RNCEmisor"),
        "{d}"
    );
    assert_eq!(docs["health"]["failing"], 1, "{}", docs["health"]);
    emu.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_credit_note_goes_only_after_the_e_cf_it_modifies_was_accepted() {
    use caja_shared::ecf::document::{ModificationCode, ModifiedDocument};
    use caja_shared::ids::{ReturnId, ShiftId};
    use caja_shared::kind::{ReturnLine, SaleReturned};
    use caja_shared::localtime::{LocalDate, UtcOffset};
    let Some(signer) = signer() else {
        return;
    };
    // The whole E32 is "En Proceso" for a few polls: a credit note sent at
    // once would arrive before its verdict.
    if !require_tool("xmllint") {
        return;
    }
    let emu = checked_emulator(17).await;
    emu.update_faults(|f| f.in_process_polls = 4);
    let mut hub = TestHub::start_with(HubConfig {
        tax_authority: Some(tax_config(&emu, 2)),
        ..test_config()
    })
    .await;
    install_hub_certificate(&mut hub).await;
    let mut shop = shop(&hub, 5).await;
    let n = *shop.numbers.start();
    let sales = sell(&hub, &mut shop, &[n], 1).await;
    let EventBody::SaleCreated(s) = sales[0].body().unwrap() else {
        unreachable!()
    };
    let mut rng = OsRandom::new();
    let e34 = "E340000000001";
    let ret = SaleReturned {
        return_id: ReturnId::new_v7(now_ms(), &mut SeededRandom::new(5)).unwrap(),
        sale_id: Some(s.sale_id),
        shift_id: ShiftId::new_v7(now_ms(), &mut SeededRandom::new(6)).unwrap(),
        cashier: "ana".into(),
        lines: vec![ReturnLine {
            line: Some(0),
            product: s.lines[0].product.clone(),
            qty_milli: s.lines[0].qty_milli,
            total: s.lines[0].total,
            tax: s.lines[0].tax,
            damaged: false,
            tax_bp: None,
        }],
        total: s.total,
        tax: s.tax,
        refund: PaymentMethod::Cash,
        customer: None,
        credit_note: Some(FiscalRef {
            series: "E34".into(),
            number: e34.into(),
            valid_until: None,
            buyer_tax_id: s.fiscal.as_ref().unwrap().buyer_tax_id.clone(),
            modifies: Some(number(n)),
            buyer_name: s.fiscal.as_ref().unwrap().buyer_name.clone(),
        }),
        approval: None,
        original_unknown: None,
    };
    let modified = ModifiedDocument {
        ncf: number(n),
        issued_date: LocalDate::from_utc_ms(now_ms(), UtcOffset::SANTO_DOMINGO),
        code: ModificationCode::Cancel,
    };
    let (issued, mut docs) = caja_hub::workload::signed_credit_note_documents(
        &ret,
        &modified,
        &issuer(RNC),
        &signer,
        now_ms(),
    )
    .unwrap();
    let r_event = shop.reg.append(
        shop.store,
        EventBody::SaleReturned(ret),
        vec![sales[0].id()],
        now_ms(),
        &mut rng,
    );
    let i_event = shop.reg.append(
        shop.store,
        EventBody::FiscalDocumentIssued(issued),
        vec![r_event.id()],
        now_ms(),
        &mut rng,
    );
    docs.sort_by_key(|d| d.sha256);
    let r = hub
        .push_with_documents(&shop.reg, &[r_event, i_event], &docs)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let state_of = |key: &str| -> String {
        hub.db()
            .query_row(
                "SELECT state FROM tax_outbox WHERE doc_key = $1",
                [key],
                |r| r.get(0),
            )
            .unwrap()
    };
    let start = Instant::now();
    let mut waited = false;
    loop {
        let arrived = emu
            .totals()
            .per_number
            .get(e34)
            .is_some_and(|c| c.received > 0);
        if arrived {
            // Recorded before the credit note was even prepared.
            assert_eq!(state_of(&number(n)), "accepted");
            break;
        }
        waited |= state_of(&number(n)) != "accepted";
        assert!(start.elapsed() < Duration::from_secs(60), "the credit note never went");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waited, "the e-CF was still undecided while the credit note waited");
    drained(&hub, Duration::from_secs(60)).await;
    assert_eq!(state_of(e34), "accepted");
    emu.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn after_a_restore_the_outbox_sends_nothing_while_a_store_is_gated() {
    if signer().is_none() {
        return;
    }
    let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), RNC, Faults::default(), 3)
        .await
        .unwrap();
    let mut hub = TestHub::start_with(HubConfig {
        tax_authority: Some(tax_config(&emu, 2)),
        ..test_config()
    })
    .await;
    install_hub_certificate(&mut hub).await;
    let mut shop = shop(&hub, 5).await;
    let first = *shop.numbers.start();
    // Marked restored as `caja-hub restore` does (the hub stopped): the
    // store waits for its register.
    hub.stop().await;
    let dir = hub.data_dir();
    let db = hub.cfg.database(&dir);
    tokio::task::spawn_blocking(move || {
        let key = caja_hub::datadir::load_key(&dir).unwrap();
        let conn = caja_hub::storage::open_detached(&db).unwrap();
        caja_hub::storage::restore::record_restore(&conn, &key, now_ms()).unwrap()
    })
    .await
    .unwrap();
    hub.restart().await;
    sell(&hub, &mut shop, &[first], 0).await;
    // The workers poll every 50 ms: in 2 s an ungated outbox sends it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = outbox(&hub, "limit=5").await;
    assert_eq!(v["health"]["backlog"], 1, "{v}");
    let events = pulled(&hub, &shop.reg).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, EventBody::FiscalDocumentAccepted(_))),
        "no verdict while gated"
    );
    // Head office lifts the gate: the document goes, once.
    hub.admin
        .post(
            "/v1/admin/restore/override",
            &json!({"store": shop.store, "by": "maria", "note": "prueba"}),
        )
        .await
        .unwrap();
    drained(&hub, Duration::from_secs(60)).await;
    let accepted = pulled(&hub, &shop.reg)
        .await
        .into_iter()
        .filter(|e| matches!(e, EventBody::FiscalDocumentAccepted(_)))
        .count();
    assert_eq!(accepted, 1);
}
}
