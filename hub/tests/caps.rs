//! The resource caps one register may not exceed, each tried against a real
//! hub on a loopback port (`caja_hub::caps`, the `— CAPS limits —` block of
//! `HubConfig`): an oversized event or signed document (413 naming it),
//! pull and own pages bounded in bytes, a push volume bucket weighted by
//! events and bytes (429 with `Retry-After`) that still lets a 12,000-event
//! backlog through at full speed with the defaults, fiscal numbers
//! outstanding per device and series, held events that alert beyond a
//! threshold but are never refused, enrollment-token replays recorded once
//! per window, and `/v1/audit/inclusion` scoped to the register's store.
//! The largest event and signed document of a 500-line sale are measured
//! here against the default caps.

mod support;

use caja_hub::config::HubConfig;
use caja_hub::workload::{Register, Workload};
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{EventId, ShiftId, StaffId, StoreId};
use caja_shared::kind::{
    Approval, EventBody, FiscalRef, Payment, PaymentMethod, PriceOverride, Role, SaleCreated,
    SaleLine, ShiftOpened,
};
use caja_shared::money::{LineAmounts, Money, QtyMilli, TaxRateBp};
use caja_shared::push::PushDocument;
use serde_json::json;
use support::*;

fn count(hub: &TestHub, sql: &str) -> i64 {
    hub.db().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// `n` events of a cashier's day on a fresh register of `store`.
fn day(reg: Register, store: StoreId, seed: u64, n: usize) -> Vec<Event> {
    let mut w = Workload::new(seed, store, vec![reg]);
    let t = now_ms();
    (0..n).map(|k| w.next(0, t + k as i64)).collect()
}

fn shift_opened(cashier: String) -> EventBody {
    EventBody::ShiftOpened(ShiftOpened {
        shift_id: ShiftId::new_v7(now_ms(), &mut SeededRandom::new(9)).unwrap(),
        cashier,
        opening_float: Money(0),
        staff_id: None,
    })
}

#[tokio::test]
async fn an_event_over_the_cap_is_refused_413_and_changes_nothing() {
    let hub = TestHub::start().await;
    let store = hub.create_store("s").await;
    let (mut reg, _) = hub.enroll(store).await;
    let before = hub.business_state();
    // One event of 1.5 MiB (the body limit is 8 MiB): without the cap the
    // hub stores it and serves it to every register of the store, forever.
    let big = reg.append(
        store,
        shift_opened("a".repeat(1536 * 1024)),
        vec![],
        now_ms(),
        &mut SeededRandom::new(1),
    );
    let r = hub.push(&reg, std::slice::from_ref(&big)).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert_eq!(r.body["error"], "too_large");
    assert_eq!(r.body["field"], "events[0]");
    assert!(
        r.body["message"].as_str().unwrap().contains("1048576"),
        "names the limit: {}",
        r.body
    );
    assert_eq!(hub.business_state(), before);
}

#[tokio::test]
async fn a_signed_document_over_the_cap_is_refused_413() {
    let hub = TestHub::start().await;
    let store = hub.create_store("s").await;
    let (reg, _) = hub.enroll(store).await;
    let events = day(reg.clone(), store, 1, 3);
    let xml = vec![b'x'; HubConfig::default().max_document_bytes + 1];
    let doc = PushDocument {
        sha256: Hash256::of(&xml),
        xml,
    };
    let before = hub.business_state();
    let r = hub
        .push_with_documents(&reg, &events, std::slice::from_ref(&doc))
        .await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert_eq!(r.body["error"], "too_large");
    assert_eq!(r.body["field"], "documents[0].xml");
    assert_eq!(hub.business_state(), before);
}

/// The largest sale a register makes: 500 lines (`node::sale::MAX_LINES`),
/// 200-character accented names, a discount and a supervisor's price
/// override on every line, a buyer named in full: an E31 whose e-CF is
/// signed with the test PKI.
fn largest_sale(store_rng: u64) -> SaleCreated {
    let mut rng = SeededRandom::new(store_rng);
    let rate = TaxRateBp::new(1800).unwrap();
    let name: String = "Ñame añejo de órgano ".chars().cycle().take(200).collect();
    let approver = Approval {
        staff_id: StaffId::new_v7(now_ms(), &mut rng).unwrap(),
        name: "Supervisora Ángela María de los Ángeles Peña".into(),
        role: Role::Supervisor,
        action: "price_override".into(),
    };
    let mut lines = Vec::new();
    let (mut total, mut tax) = (Money(0), Money(0));
    for k in 0..500i64 {
        let a = LineAmounts::compute(Money(9_999_900 + k), QtyMilli(999_000), Money(1_00), rate)
            .unwrap();
        total = Money(total.0 + a.total.0);
        tax = Money(tax.0 + a.tax.0);
        lines.push(SaleLine {
            product: format!("SKU-{k:060}").parse().unwrap(),
            name: name.clone(),
            qty_milli: QtyMilli(999_000),
            unit_price: Money(9_999_900 + k),
            tax_bp: rate,
            discount: Some(a.discount),
            total: a.total,
            tax: a.tax,
            beyond_quota_milli: Some(QtyMilli(999_999)),
            price_override: Some(PriceOverride {
                shelf_price: Money(19_999_900),
                approval: Some(approver.clone()),
            }),
        });
    }
    SaleCreated {
        sale_id: caja_shared::ids::SaleId::new_v7(now_ms(), &mut rng).unwrap(),
        cashier: "Cajera Ana Lucía Rodríguez de la Altagracia".into(),
        shift_id: Some(ShiftId::new_v7(now_ms(), &mut rng).unwrap()),
        customer: None,
        fiscal: Some(FiscalRef {
            series: "E31".into(),
            number: "E310000000001".into(),
            valid_until: Some("2099-12-31".into()),
            buyer_tax_id: Some("131880738".into()),
            buyer_name: Some("Ñ".repeat(150)),
            modifies: None,
        }),
        lines,
        total,
        tax,
        payments: vec![
            Payment {
                method: PaymentMethod::Card,
                amount: Money(total.0 - 1_00),
                reference: Some("R".repeat(64)),
            },
            Payment {
                method: PaymentMethod::Cash,
                amount: Money(1_00),
                reference: None,
            },
        ],
        change: Money(0),
        approval: Some(approver),
    }
}

#[tokio::test]
async fn the_largest_sale_a_register_makes_fits_the_default_caps() {
    let Some(signer) = signer() else {
        assert!(
            std::env::var_os("CAJA_REQUIRE_EXTERNAL").is_none(),
            "openssl is required (CAJA_REQUIRE_EXTERNAL=1)"
        );
        eprintln!("skipped: openssl (the test PKI) is not installed");
        return;
    };
    let cfg = HubConfig::default();
    let sale = largest_sale(7);
    let (issued, docs) =
        caja_hub::workload::signed_sale_documents(&sale, &issuer("131880738"), &signer, now_ms())
            .unwrap();
    let store = StoreId::new_v7(now_ms(), &mut SeededRandom::new(3)).unwrap();
    let mut reg = Register::new(
        caja_shared::ids::DeviceId::new_v7(now_ms(), &mut SeededRandom::new(4)).unwrap(),
        caja_shared::key::DeviceKey::generate(&mut SeededRandom::new(5)),
        "k1".parse().unwrap(),
    );
    let mut rng = SeededRandom::new(6);
    let event = reg.append(
        store,
        EventBody::SaleCreated(sale),
        vec![],
        now_ms(),
        &mut rng,
    );
    let issued = reg.append(
        store,
        EventBody::FiscalDocumentIssued(issued),
        vec![event.id()],
        now_ms(),
        &mut rng,
    );
    let largest_doc = docs.iter().map(|d| d.xml.len()).max().unwrap();
    eprintln!(
        "500-line sale: event {} bytes, FiscalDocumentIssued {} bytes, largest signed document {} bytes ({} documents)",
        event.canonical_bytes().len(),
        issued.canonical_bytes().len(),
        largest_doc,
        docs.len()
    );
    // At least twice the largest, so a richer catalog still fits.
    assert!(event.canonical_bytes().len() * 2 <= cfg.max_event_bytes);
    assert!(largest_doc * 2 <= cfg.max_document_bytes);
    // And its push (event, document) fits the body limit and the register's
    // own push bound.
    let cp = reg.checkpoint().unwrap();
    let body = caja_shared::push::push_body(reg.device, &[event, issued], &docs, &cp, 0).unwrap();
    assert!(body.len() * 2 <= cfg.body_limit_bytes, "{}", body.len());
}

#[tokio::test]
async fn pull_and_own_pages_stop_before_the_byte_cap_with_at_least_one_event() {
    let hub = TestHub::start_with(HubConfig {
        max_page_bytes: 4096,
        ..test_config()
    })
    .await;
    let store = hub.create_store("s").await;
    let (a, _) = hub.enroll(store).await;
    let (b, _) = hub.enroll(store).await;
    let mut w = Workload::new(2, store, vec![a.clone()]);
    let t = now_ms();
    let mut events: Vec<Event> = (0..60).map(|k| w.next(0, t + k)).collect();
    // One event larger than a whole page still comes, alone.
    events.push(w.registers[0].append(
        store,
        shift_opened("b".repeat(6000)),
        vec![],
        now_ms(),
        &mut SeededRandom::new(2),
    ));
    let r = hub.push(&a, &events).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let mut after = String::new();
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let path = format!("/v1/sync/pull?after={after}&limit=1000");
        let r = hub.signed(&b, "GET", &path, b"", now_ms()).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let page = r.body["events"].as_array().unwrap();
        assert!(!page.is_empty() || r.body["more"] == false);
        let bytes: usize = page.iter().map(|e| e.to_string().len()).sum();
        assert!(
            page.len() == 1 || bytes <= 4096,
            "a page of {} events is {bytes} bytes",
            page.len()
        );
        seen += page.len();
        pages += 1;
        after = r.body["next"].as_str().unwrap().to_owned();
        if r.body["more"] == false {
            break;
        }
    }
    // The hub's chain (none here) plus the other register's events.
    assert_eq!(seen, 61);
    assert!(pages > 3, "{pages} pages");

    // The register's own chain back, paged the same way.
    let mut after_seq = 0;
    let mut own = 0;
    loop {
        let path = format!("/v1/sync/own?after_seq={after_seq}&limit=1000");
        let r = hub.signed(&a, "GET", &path, b"", now_ms()).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let page = r.body["events"].as_array().unwrap();
        let bytes: usize = page.iter().map(|e| e.to_string().len()).sum();
        assert!(page.len() == 1 || bytes <= 4096);
        assert!(!page.is_empty());
        own += page.len();
        after_seq = page.last().unwrap()["seq"].as_u64().unwrap();
        if r.body["more"] == false {
            break;
        }
    }
    assert_eq!(own, 61);
}

#[tokio::test]
async fn pushes_are_weighed_by_events_and_bytes() {
    let hub = TestHub::start_with(HubConfig {
        push_rate_limit: caja_hub::ratelimit::RateLimit {
            burst: 1_000,
            per_minute: 60,
        },
        ..test_config()
    })
    .await;
    let store = hub.create_store("s").await;
    let (reg, _) = hub.enroll(store).await;
    let events = day(reg.clone(), store, 3, 1_000);
    // Two requests, well within the request limit (120 at once), but the
    // first already weighs most of the volume bucket.
    let r = hub.push(&reg, &events[..700]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let before = hub.business_state();
    let r = hub.push(&reg, &events[700..]).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert_eq!(r.body["error"], "overloaded");
    let wait: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
    assert!(wait >= 60, "Retry-After {wait}");
    assert!(r.body["message"].as_str().unwrap().contains("volume"));
    assert_eq!(hub.business_state(), before);
}

/// A register's catch-up of 12,000 events, pushed back to back in the
/// register's 500-event batches with the default limits, and pulled by
/// another register: never a 429.
#[tokio::test]
async fn a_12000_event_backlog_catches_up_at_full_speed_with_the_defaults() {
    let hub = TestHub::start().await;
    let store = hub.create_store("s").await;
    let (a, _) = hub.enroll(store).await;
    let (b, _) = hub.enroll(store).await;
    let events = day(a.clone(), store, 4, 12_000);
    let started = std::time::Instant::now();
    for batch in events.chunks(500) {
        let r = hub.push(&a, batch).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let pushed = started.elapsed();
    let mut after = String::new();
    let mut seen = 0;
    loop {
        let path = format!("/v1/sync/pull?after={after}&limit=1000");
        let r = hub.signed(&b, "GET", &path, b"", now_ms()).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        seen += r.body["events"].as_array().unwrap().len();
        after = r.body["next"].as_str().unwrap().to_owned();
        if r.body["more"] == false {
            break;
        }
    }
    assert_eq!(seen, 12_000);
    eprintln!(
        "12,000 events pushed in {pushed:?}, pulled by the other register in {:?}",
        started.elapsed() - pushed
    );
}

#[tokio::test]
async fn outstanding_fiscal_numbers_are_capped_per_device_and_series() {
    let hub = TestHub::start().await;
    let store = hub.create_store("s").await;
    hub.admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&json!({"prefix":"B02","digits":8,"first":1,"last":100_000,"valid_until":"2099-12-31"})),
        )
        .await
        .unwrap();
    let (reg, _) = hub.enroll(store).await;
    let (other, _) = hub.enroll(store).await;
    let ask = |n: u32, count: u64| {
        serde_json::to_vec(&json!({
            "request_id": format!("019aaf70-0000-7000-8000-{n:012}"), "series": "B02", "count": count
        }))
        .unwrap()
    };
    // The register's own top-up at its widest (block_size 1000, low-water
    // mark 1000) holds at most 1999 numbers after a grant; a stolen one that
    // asks again and again gets 5,000 and no more.
    let mut first = None;
    for n in 1..=5 {
        let r = hub
            .signed(&reg, "POST", "/v1/fiscal/ranges", &ask(n, 1000), now_ms())
            .await;
        assert_eq!(r.status, 200, "grant {n}: {:?}", r.body);
        first.get_or_insert(r.body);
    }
    let before = count(&hub, "SELECT COUNT(*) FROM events");
    let r = hub
        .signed(&reg, "POST", "/v1/fiscal/ranges", &ask(6, 1), now_ms())
        .await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert_eq!(r.body["error"], "overloaded");
    assert!(r.retry_after.is_some());
    assert!(r.body["message"].as_str().unwrap().contains("5000"));
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM events"), before);
    // A retried request id still answers its first grant.
    let r = hub
        .signed(&reg, "POST", "/v1/fiscal/ranges", &ask(1, 1000), now_ms())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        Some(&r.body["events"]),
        first.as_ref().map(|f| &f["events"])
    );
    // Another register of the store is not affected.
    let r = hub
        .signed(&other, "POST", "/v1/fiscal/ranges", &ask(7, 1000), now_ms())
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn held_events_beyond_the_threshold_alert_once_and_show_in_health() {
    let hub = TestHub::start_with(HubConfig {
        held_alert_threshold: 5,
        ..test_config()
    })
    .await;
    let store = hub.create_store("s").await;
    let (mut reg, _) = hub.enroll(store).await;
    let mut rng = SeededRandom::new(11);
    // The first event waits for an event the hub never saw (a return whose
    // sale is on an offline peer): it and everything after it is held.
    let missing = EventId::new_v7(now_ms(), &mut rng).unwrap();
    let mut events = vec![reg.append(
        store,
        shift_opened("ana".into()),
        vec![missing],
        now_ms(),
        &mut rng,
    )];
    for k in 0..4 {
        events.push(reg.append(
            store,
            shift_opened(format!("c{k}")),
            vec![],
            now_ms(),
            &mut rng,
        ));
    }
    let r = hub.push(&reg, &events).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["held"].as_array().unwrap().len(), 5);
    let alerts = "SELECT COUNT(*) FROM alerts WHERE kind = 'held_events_threshold'";
    assert_eq!(count(&hub, alerts), 0, "at the threshold: no alert");
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(health["consistency"]["held_over_threshold"], json!([]));

    for round in 0..3 {
        let more: Vec<Event> = (0..4)
            .map(|k| {
                reg.append(
                    store,
                    shift_opened(format!("r{round}-{k}")),
                    vec![],
                    now_ms(),
                    &mut rng,
                )
            })
            .collect();
        let r = hub.push(&reg, &more).await;
        assert_eq!(r.status, 200, "held events are never refused: {:?}", r.body);
        assert_eq!(r.body["acked_seq"], 9 + 4 * round);
    }
    assert_eq!(count(&hub, alerts), 1, "one alert per device, not per push");
    let health = hub.admin_get("/v1/health").await;
    assert_eq!(
        health["consistency"]["held_over_threshold"],
        json!([{"device": reg.device.to_string(), "held": 17}])
    );
    assert_ne!(health["overall"], "healthy");
    assert!(health["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("beyond the alert threshold")));
}

#[tokio::test]
async fn a_replayed_enrollment_token_is_recorded_once_per_window() {
    let hub = TestHub::start().await;
    let store = hub.create_store("s").await;
    let token = hub.token(store).await;
    let (status, _) = hub
        .post_json("/v1/devices/enroll", &json!({ "token": token }))
        .await;
    assert_eq!(status, 200);
    let audit = "SELECT COUNT(*) FROM audit_log WHERE kind = 'enrollment_token_reused'";
    let alerts = "SELECT COUNT(*) FROM alerts WHERE kind = 'enrollment_token_reused'";
    for _ in 0..30 {
        let (status, v) = hub
            .post_json("/v1/devices/enroll", &json!({ "token": token }))
            .await;
        assert_eq!(status, 401);
        assert_eq!(v["error"], "invalid_token");
    }
    assert_eq!(count(&hub, audit), 1);
    assert_eq!(count(&hub, alerts), 1);
    // Another used token is its own window.
    let second = hub.token(store).await;
    for _ in 0..2 {
        hub.post_json("/v1/devices/enroll", &json!({ "token": second }))
            .await;
    }
    assert_eq!(count(&hub, audit), 2);
    assert_eq!(count(&hub, alerts), 2);
}

#[tokio::test]
async fn a_register_reads_only_its_own_stores_audit_entries() {
    let hub = TestHub::start().await;
    let one = hub.create_store("uno").await;
    let two = hub.create_store("dos").await;
    let (a, _) = hub.enroll(one).await;
    let (b, _) = hub.enroll(two).await;
    let r = hub.push(&a, &day(a.clone(), one, 5, 3)).await;
    assert_eq!(r.status, 200);
    let r = hub.push(&b, &day(b.clone(), two, 6, 3)).await;
    assert_eq!(r.status, 200);
    let sth = hub
        .admin
        .call(reqwest::Method::POST, "/v1/admin/audit/sth", None)
        .await
        .unwrap();
    let size = sth["tree_size"].as_u64().unwrap();
    let entry_of = |store: StoreId| -> u64 {
        let idx: i64 = hub
            .db()
            .query_row(
                "SELECT MAX(idx) FROM audit_log WHERE store_id = $1",
                [store.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        u64::try_from(idx).unwrap()
    };
    let (of_one, of_two) = (entry_of(one), entry_of(two));
    let hub_wide: Option<i64> = hub
        .db()
        .query_row(
            "SELECT MIN(idx) FROM audit_log WHERE store_id IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let path = |i: u64| format!("/v1/audit/inclusion?index={i}&tree_size={size}");
    let r = hub.signed(&a, "GET", &path(of_one), b"", now_ms()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = hub.signed(&a, "GET", &path(of_two), b"", now_ms()).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.body["error"], "wrong_store");
    if let Some(i) = hub_wide {
        let r = hub
            .signed(&a, "GET", &path(u64::try_from(i).unwrap()), b"", now_ms())
            .await;
        assert_eq!(r.status, 403, "hub-wide entries are head office's");
    }
    let r = hub.signed(&b, "GET", &path(of_two), b"", now_ms()).await;
    assert_eq!(r.status, 200);
    // An auditor with the admin token reads every entry.
    let v = hub.admin_get(&path(of_two)).await;
    assert_eq!(v["index"], of_two);
}

/// The real `caja-hub serve` process logging a dashboard login refused for
/// a wrong admin token, the operator name carrying a newline, a forged log
/// line and ANSI escapes: its stderr keeps one line per event, the forged
/// text shown escaped.
#[tokio::test]
async fn an_operator_name_cannot_forge_a_line_in_the_hubs_log() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    const BIN: &str = env!("CARGO_BIN_EXE_caja-hub");
    caja_hub::admin_client::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log_path = tmp.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .env("CAJA_HUB_LOG", "warn")
        .env_remove("CAJA_HUB_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("caja-hub listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let http = reqwest::Client::new();
    // The login form's cookie and its form token.
    let page = http
        .get(format!("http://{addr}/ui/login"))
        .send()
        .await
        .unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("caja_login="))
        .and_then(|v| v.split(';').next())
        .expect("the login cookie")
        .to_owned();
    let forged = "2026-01-01T00:00:00.000000Z ERROR caja_hub: FORGED operator=admin";
    let name = format!("ana\n{forged}\r\u{1b}[2K\u{1b}[31m");
    let encode = |v: &str| -> String {
        v.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let form = format!(
        "csrf={}&name={}&token=not-the-admin-token",
        encode(&cookie),
        encode(&name)
    );
    let r = http
        .post(format!("http://{addr}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("caja_login={cookie}"))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("FORGED") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("FORGED"), "the refusal is logged: {text}");
    assert!(
        !text.lines().any(|l| l.starts_with(forged)),
        "a forged line: {text}"
    );
    // The hub colours its own lines; the name's escapes stay inert.
    assert!(
        !text.contains("\u{1b}[2K") && !text.contains("\u{1b}[31m"),
        "raw ANSI escapes from the name: {text:?}"
    );
    assert!(!text.contains('\r'), "raw carriage return: {text:?}");
    assert!(text.contains("ana\\n2026-01-01T00:00:00"), "{text}");
}
