//! Three `caja-hub` processes on one PostgreSQL database, three stores
//! pushing at once under the finer locks (per store, per fiscal series and
//! fiscal-number bucket; audit entries staged and sequenced): each register's
//! batches go round robin over the instances (so one instance's batch mixes
//! stores), fiscal blocks of one series are asked for by every store through
//! every instance, one register per store pulls while the others push, and
//! two stores use the same fiscal numbers at the same moment. Afterwards:
//! every event stored once, every store's hub chain gapless and linked (no
//! hub seq twice), no fiscal number granted twice, every duplicate number
//! seen, no pulled event skipped, nothing left staged, every staged entry
//! sequenced within the documented delay, and the audit log verifies — by a
//! register's check (signed heads, consistency proof), `caja-hub audit
//! verify` and the independent Python verifier.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caja_hub::storage::SEQUENCE_DELAY_MS;
use caja_hub::workload::{Register, Workload};
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{SaleId, StoreId};
use caja_shared::key::HubPublicKey;
use caja_shared::kind::{EventBody, FiscalRef};
use caja_shared::merkle::{self, SignedTreeHead};
use serde_json::json;
use support::instances::{count, enroll_via, query, signed_to, start_instances, BIN};
use support::*;

const STORES: usize = 3;
const PER_STORE: usize = 2;
const BATCHES: usize = 5;
const PER_BATCH: usize = 20;
/// Fiscal numbers each of two stores uses at the same moment.
const DUPLICATES: u64 = 3;

fn run(args: &[&str], dir: &Path, extra: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .arg(dir)
        .args(extra)
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A signed request retried while the hub answers 429.
async fn signed_ok(
    http: &reqwest::Client,
    url: &str,
    reg: &Register,
    method: &str,
    path: &str,
    body: &[u8],
) -> Reply {
    loop {
        let r = signed_to(http, url, reg, method, path, body).await;
        if r.status != 429 {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn push(http: &reqwest::Client, url: &str, reg: &Register, events: &[Event]) -> Reply {
    let body = push_body(reg, events);
    let r = signed_ok(http, url, reg, "POST", "/v1/sync/push", &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r
}

/// The latest signed head as a register reads it, verified with the hub key
/// it got at enrollment (the register's audit check).
async fn register_head(
    http: &reqwest::Client,
    url: &str,
    reg: &Register,
    hub_key: &HubPublicKey,
) -> merkle::TreeHead {
    let r = signed_ok(http, url, reg, "GET", "/v1/audit/sth", b"").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    SignedTreeHead::parse(&r.body.to_string())
        .unwrap()
        .verify(hub_key)
        .expect("the head's signature verifies")
}

/// A sale of register `r` (opening its shift first when needed, pushed by
/// the caller), and a second sale that copies it with another id and the
/// fiscal number `number` — the first is returned too, to push before it.
/// `salt` tells the stores apart: two stores pushing the same number in the
/// same millisecond must still get different event and sale ids (one seed
/// for both made their UUIDv7s equal, and the second push was refused as
/// "another event already has this id").
fn sale_with_number(w: &mut Workload, r: usize, number: u64, salt: u64) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let e = w.next_sale(r, now_ms());
        let body = e.body().unwrap();
        out.push(e.clone());
        let EventBody::SaleCreated(mut s) = body else {
            continue;
        };
        let mut rng = SeededRandom::new(number * 16 + salt);
        s.sale_id = SaleId::new_v7(now_ms(), &mut rng).unwrap();
        s.fiscal = Some(FiscalRef {
            series: "B02".into(),
            number: format!("B02{number:08}"),
            ..s.fiscal.clone().unwrap_or(FiscalRef {
                series: String::new(),
                number: String::new(),
                valid_until: None,
                buyer_tax_id: None,
                buyer_name: None,
                modifies: None,
            })
        });
        let deps = e.envelope().deps.clone();
        let store = w.store;
        out.push(w.registers[r].append(store, EventBody::SaleCreated(s), deps, now_ms(), &mut rng));
        return out;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_stores_push_at_once_through_three_instances_on_postgres() {
    caja_hub::admin_client::install_crypto_provider();
    let Some(db) = tokio::task::spawn_blocking(caja_hub::testpg::fresh_database)
        .await
        .unwrap()
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (dirs, hubs) = start_instances(tmp.path(), &db, 3);
    let urls: Vec<String> = hubs.iter().map(|h| h.url.clone()).collect();
    let http = reqwest::Client::new();

    // Three stores, two registers each, enrolled through different
    // instances; one series serving every store.
    let mut stores = Vec::new();
    for (s, hub) in hubs.iter().enumerate().take(STORES) {
        let admin = hub.admin();
        let name = format!("tienda {s}");
        let v = retry_429(|| admin.create_store(&name, None)).await;
        stores.push(v["store"].as_str().unwrap().parse::<StoreId>().unwrap());
    }
    for prefix in ["B01", "B02"] {
        hubs[1]
            .admin()
            .call(
                reqwest::Method::POST,
                "/v1/admin/fiscal/series",
                Some(&json!({"prefix":prefix,"digits":8,"first":1,"last":2000,"valid_until":"2099-12-31"})),
            )
            .await
            .unwrap();
    }
    let mut workloads = Vec::new();
    let mut hub_key = None;
    for (s, store) in stores.iter().enumerate() {
        let mut regs = Vec::new();
        for i in 0..PER_STORE {
            let at = &hubs[(s + i) % 3];
            let (reg, key) = enroll_via(&http, at, at, *store).await;
            hub_key = Some(key);
            regs.push(reg);
        }
        workloads.push(Workload::new(7 + s as u64, *store, regs));
    }
    let hub_key = hub_key.unwrap();
    // The register's audit check: a head before the run.
    let watcher = workloads[0].registers[0].clone();
    hubs[0]
        .admin()
        .call(reqwest::Method::POST, "/v1/admin/audit/sth", None)
        .await
        .unwrap();
    let first_head = register_head(&http, &urls[2], &watcher, &hub_key).await;

    // Every register's chain, built before the clock starts.
    let mut chains: Vec<Vec<(usize, Register, Vec<Event>)>> = Vec::new();
    for w in workloads.iter_mut() {
        let mut per: Vec<Vec<Event>> = vec![Vec::new(); PER_STORE];
        for _ in 0..BATCHES * PER_BATCH {
            for (r, chain) in per.iter_mut().enumerate() {
                chain.push(w.next(r, now_ms()));
            }
        }
        chains.push(
            per.into_iter()
                .enumerate()
                .map(|(r, c)| (r, w.registers[r].clone(), c))
                .collect(),
        );
    }

    let pushing = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for (s, store_chains) in chains.iter().enumerate() {
        for (r, reg, chain) in store_chains.clone() {
            let (http, urls) = (http.clone(), urls.clone());
            tasks.push(tokio::spawn(async move {
                for (b, batch) in chain.chunks(PER_BATCH).enumerate() {
                    let url = &urls[(s + r + b) % urls.len()];
                    let rep = push(&http, url, &reg, batch).await;
                    assert_eq!(rep.body["acked_seq"], ((b + 1) * PER_BATCH) as u64);
                }
            }));
        }
    }
    // Fiscal blocks of two series, asked for by every store's registers
    // through every instance at once: grants of one series exclude each
    // other (its lock), grants of two series in one store exclude each
    // other through the store's hub chain (the store's lock).
    let mut asks = Vec::new();
    for (s, w) in workloads.iter().enumerate() {
        for (r, reg) in w.registers.iter().enumerate() {
            for k in 0..4usize {
                let (http, url, reg) = (http.clone(), urls[(s + r + k) % 3].clone(), reg.clone());
                let rid = format!("019aaf70-0000-7000-8000-{:012x}", s * 1000 + r * 100 + k);
                let series = ["B01", "B02"][k % 2];
                asks.push(tokio::spawn(async move {
                    let body = serde_json::to_vec(
                        &json!({"request_id": rid, "series": series, "count": 40}),
                    )
                    .unwrap();
                    signed_ok(&http, &url, &reg, "POST", "/v1/fiscal/ranges", &body).await
                }));
            }
        }
    }
    // One register per store pulls while the others push: its cursor must
    // never pass an event that commits later.
    let mut pullers = Vec::new();
    for (s, w) in workloads.iter().enumerate() {
        let (http, url, reg, pushing) = (
            http.clone(),
            urls[(s + 1) % 3].clone(),
            w.registers[PER_STORE - 1].clone(),
            pushing.clone(),
        );
        pullers.push(tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut cursor = String::new();
            loop {
                let done = !pushing.load(Ordering::SeqCst);
                let path = format!("/v1/sync/pull?after={cursor}&limit=200");
                let r = signed_ok(&http, &url, &reg, "GET", &path, b"").await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                for e in r.body["events"].as_array().unwrap() {
                    let e = Event::from_json(e.to_string().as_bytes()).unwrap();
                    assert!(seen.insert(e.id()), "pulled twice");
                }
                cursor = r.body["next"].as_str().unwrap().to_owned();
                if done && r.body["more"] == false {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut granted = BTreeSet::new();
    for a in asks {
        let r = a.await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        for e in r.body["events"].as_array().unwrap() {
            let e = Event::from_json(e.to_string().as_bytes()).unwrap();
            let EventBody::FiscalRangeGranted(g) = e.body().unwrap() else {
                panic!("not a grant")
            };
            for n in g.first..=g.last {
                assert!(
                    granted.insert((g.series.clone(), n)),
                    "fiscal number {} {n} granted twice",
                    g.series
                );
            }
        }
    }
    assert_eq!(granted.len(), STORES * PER_STORE * 4 * 40);

    // Two stores use the same fiscal numbers at the same moment, through
    // two instances: the second transaction sees the first's sale.
    for n in 0..DUPLICATES {
        let number = 1900 + n;
        let mut dup_pushes = Vec::new();
        for s in 0..2 {
            let events = sale_with_number(&mut workloads[s], 0, number, s as u64);
            let (http, url, reg) = (
                http.clone(),
                urls[s].clone(),
                workloads[s].registers[0].clone(),
            );
            dup_pushes.push(tokio::spawn(async move {
                push(&http, &url, &reg, &events).await;
            }));
        }
        for t in dup_pushes {
            t.await.unwrap();
        }
    }
    pushing.store(false, Ordering::SeqCst);
    let mut pulled = Vec::new();
    for p in pullers {
        pulled.push(p.await.unwrap());
    }

    // Every event once; nothing held; every store's hub chain gapless.
    let events: i64 = count(&db, "SELECT COUNT(*) FROM events").await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM applied").await, events);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM held").await, 0);
    for (s, w) in workloads.iter().enumerate() {
        for reg in &w.registers {
            let n = count(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM events WHERE device_id = '{}'",
                    reg.device
                ),
            )
            .await;
            let expected = (BATCHES * PER_BATCH) as i64;
            assert!(n >= expected, "store {s}: {n} events of a register");
        }
    }
    let store_list: Vec<String> = stores.iter().map(ToString::to_string).collect();
    let chains = query(&db, move |c| {
        let mut out = BTreeMap::new();
        for store in store_list {
            let rows: Vec<(i64, String, String)> = c
                .prepare(
                    "SELECT e.seq, e.hash, e.prev FROM events e JOIN stores s ON s.hub_device = e.device_id WHERE s.store_id = $1 ORDER BY e.seq",
                )
                .unwrap()
                .query_map([store.clone()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            out.insert(store, rows);
        }
        out
    })
    .await;
    for (store, rows) in &chains {
        assert!(rows.len() >= PER_STORE * 4, "store {store}: its grants");
        let mut prev = "0".repeat(64);
        for (i, (seq, hash, p)) in rows.iter().enumerate() {
            assert_eq!(*seq, i as i64 + 1, "store {store}: hub seq gapless, once");
            assert_eq!(*p, prev, "store {store}: hub chain linked at {seq}");
            prev = hash.clone();
        }
    }
    // The pullers missed nothing of their store (others' events, hub chain).
    for (s, seen) in pulled.iter().enumerate() {
        let me = workloads[s].registers[PER_STORE - 1].device.to_string();
        let store = stores[s].to_string();
        let all: BTreeSet<String> = query(&db, move |c| {
            c.prepare(
                "SELECT e.event_id FROM applied a JOIN events e ON e.id = a.event_row WHERE a.store_id = $1 AND a.device_id != $2",
            )
            .unwrap()
            .query_map([store, me], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
        })
        .await;
        let seen: BTreeSet<String> = seen.iter().map(ToString::to_string).collect();
        assert_eq!(seen, all, "store {s}: the puller saw every event once");
    }
    // Every duplicate number was seen.
    for n in 0..DUPLICATES {
        let subject = format!("fiscal:B02:B02{:08}", 1900 + n);
        let candidates = count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM conflict_events ce JOIN conflicts c ON c.conflict_id = ce.conflict_id
                 WHERE c.reason = 'duplicate_fiscal_number' AND c.subject = '{subject}'"
            ),
        )
        .await;
        assert_eq!(candidates, 2, "{subject}: both sales are candidates");
    }

    // Nothing stays staged; every entry went through a round, within the
    // documented delay; the log is gapless.
    let mut staged = count(&db, "SELECT COUNT(*) FROM audit_staged").await;
    for _ in 0..SEQUENCE_DELAY_MS / 50 {
        if staged == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        staged = count(&db, "SELECT COUNT(*) FROM audit_staged").await;
    }
    assert_eq!(staged, 0, "every staged entry sequenced");
    let entries = count(&db, "SELECT COUNT(*) FROM audit_log").await;
    assert_eq!(
        count(&db, "SELECT MAX(idx) + 1 FROM audit_log").await,
        entries
    );
    assert_eq!(
        count(&db, "SELECT CAST(SUM(entries) AS BIGINT) FROM audit_rounds").await,
        entries,
        "every entry of the log came through the sequencer"
    );
    let worst = count(
        &db,
        "SELECT MAX(sequenced_ms - oldest_at_ms) FROM audit_rounds",
    )
    .await;
    assert!(
        worst <= SEQUENCE_DELAY_MS,
        "an entry waited {worst} ms (bound {SEQUENCE_DELAY_MS} ms)"
    );
    let rounds = count(&db, "SELECT COUNT(*) FROM audit_rounds").await;
    assert!(rounds > 1, "several rounds");
    println!(
        "{events} events, {entries} audit entries in {rounds} sequencer rounds, the longest wait {worst} ms (bound {SEQUENCE_DELAY_MS} ms)"
    );

    // The register's check: a later head, signed, consistent with the first.
    hubs[2]
        .admin()
        .call(reqwest::Method::POST, "/v1/admin/audit/sth", None)
        .await
        .unwrap();
    let later = register_head(&http, &urls[1], &watcher, &hub_key).await;
    assert_eq!(later.tree_size, u64::try_from(entries).unwrap());
    let path = format!(
        "/v1/audit/consistency?first={}&second={}",
        first_head.tree_size, later.tree_size
    );
    let r = signed_ok(&http, &urls[0], &watcher, "GET", &path, b"").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let proof: Vec<Hash256> = r.body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect();
    merkle::verify_consistency(
        first_head.tree_size,
        later.tree_size,
        &first_head.root,
        &later.root,
        &proof,
    )
    .expect("the later head extends the first");

    // The export verifies, with caja-hub and without it.
    let out = tmp.path().join("export");
    run(
        &["audit", "export", "--data-dir"],
        &dirs[1],
        &[out.to_str().unwrap()],
    );
    run(&["audit", "verify"], &out, &[]);
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/independent/verify_audit_export.py");
    match Command::new("python3").arg(script).arg(&out).output() {
        Ok(o) => assert!(
            o.status.success(),
            "python verifier: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            assert!(
                std::env::var("CAJA_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
                "python3 could not be started ({e}) and CAJA_REQUIRE_EXTERNAL=1"
            );
            println!("SKIPPED (independent audit verifier): python3: {e}");
        }
    }
}
