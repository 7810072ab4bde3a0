//! The hub's causal-gate crash points, swept with the real `caja-hub`: a
//! push whose events wait for another register's sale (held), then that
//! register's push (which releases them). The hub is aborted
//! (`CAJA_HUB_CRASH_AT=<point>:<n>`, see `caja_hub::crashpoint`) at every
//! hit of `hub:held` and `hub:released` in those pushes, and before and after
//! each of their commits; it restarts unarmed, the registers push again what
//! they were not answered for, and the end state must equal the
//! uninterrupted run's: every event stored once with its hash and applied
//! once, nothing held, one `event_accepted` audit entry per event, and an
//! audit export that verifies.
//!
//! The registers here are the hub's test workload (`caja_hub::workload`,
//! real enrollments and signed requests over HTTP): a register voiding
//! another register's sale is how an event gets held.
//!
//! The outbox's points (`hub:outbox_claimed`, `hub:outbox_recorded`) are
//! swept the same way with the hub's tax-authority workers sending three
//! e-CF of a register to the DGII emulator (`caja_hub::dgii_emulator`, in
//! this process): after the restart each document is sent to the authority
//! once (the emulator's count per number), decided once (one verdict event,
//! one audit entry, one conflict for the rejection), none is lost, and the
//! audit export verifies.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use caja_hub::config::{HubConfig, TaxAuthorityConfig};
use caja_hub::dgii_emulator::{Emulator, Faults};
use caja_hub::workload::{Register, Workload};
use caja_node::system::{OsRandom, SystemClock};
use caja_shared::checkpoint::Checkpoint;
use caja_shared::clock::Clock;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{DeviceId, KeyId, SaleId, StoreId};
use caja_shared::key::DeviceKey;
use caja_shared::kind::{
    EventBody, FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine, SaleVoided,
};
use caja_shared::money::{line_tax, Money, QtyMilli, TaxRateBp};
use caja_shared::push::PushDocument;
use caja_shared::request::SignedHeaders;
use caja_tests::procs::HubProcess;
use caja_tests::sweep::{audit_verifies_and_stop, copy_tree, http};

const TOKEN: &str = "caja-hub-crash-sweep-admin-token-01";

fn enroll(hub: &HubProcess, store: &str) -> Register {
    let token = hub.admin(&["create-token", store, "caja"]).expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let body = serde_json::json!({ "token": token }).to_string();
    let (status, _, v) = http(
        &hub.url,
        "POST",
        "/v1/devices/enroll",
        &[("Content-Type", "application/json".into())],
        body.as_bytes(),
    )
    .expect("enroll answered");
    assert_eq!(status, 200, "{v}");
    let device: DeviceId = v["device"].as_str().expect("device").parse().expect("id");
    let key = DeviceKey::from_hex(v["key"].as_str().expect("key")).expect("key");
    let key_id: KeyId = v["key_id"].as_str().expect("key id").parse().expect("id");
    Register::new(device, key, key_id)
}

/// A signed push of `events` by `reg`; `None` if the hub died first.
fn push(url: &str, reg: &Register, events: &[Event]) -> Option<(u16, serde_json::Value)> {
    push_with_documents(url, reg, events, &[])
}

/// [`push`] with signed fiscal documents beside the events.
fn push_with_documents(
    url: &str,
    reg: &Register,
    events: &[Event],
    documents: &[PushDocument],
) -> Option<(u16, serde_json::Value)> {
    let last = events.last().expect("events");
    let cp = Checkpoint::sign(
        &reg.key,
        reg.key_id.clone(),
        reg.device,
        last.seq(),
        last.hash(),
    );
    let body = caja_shared::push::push_body(reg.device, events, documents, &cp, 0).expect("body");
    signed_post(url, reg, "/v1/sync/push", &body)
}

/// A request signed by `reg`, POSTed to `path`.
fn signed_post(
    url: &str,
    reg: &Register,
    path: &str,
    body: &[u8],
) -> Option<(u16, serde_json::Value)> {
    let h = SignedHeaders::sign(
        &reg.key,
        reg.device,
        reg.key_id.clone(),
        "POST",
        path,
        body,
        SystemClock.now_ms(),
        &mut OsRandom::new().expect("rng"),
    );
    let mut headers: Vec<(&str, String)> = h.pairs().to_vec();
    headers.push(("Content-Type", "application/json".into()));
    http(url, "POST", path, &headers, body).map(|(s, _, v)| (s, v))
}

/// What the hub holds for the two registers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    events: i64,
    applied_once: i64,
    held: i64,
    accepted_entries: i64,
    /// The events' ids in the order the hub applied them.
    apply_order: Vec<String>,
}

fn state(hub: &HubProcess, regs: &[&Register; 2]) -> State {
    let h = hub.db().expect("hub db");
    let devices: Vec<String> = regs.iter().map(|r| r.device.to_string()).collect();
    let one = |sql: &str| -> i64 {
        h.query_row(sql, rusqlite::params![devices[0], devices[1]], |r| r.get(0))
            .expect(sql)
    };
    State {
        events: one("SELECT count(*) FROM events WHERE device_id IN (?1, ?2)"),
        applied_once: one(
            "SELECT count(*) FROM events e WHERE e.device_id IN (?1, ?2) AND (SELECT count(*) FROM applied a WHERE a.event_row = e.id) = 1",
        ),
        held: one("SELECT count(*) FROM held h JOIN events e ON e.id = h.event_row WHERE e.device_id IN (?1, ?2)"),
        accepted_entries: one(
            "SELECT count(*) FROM audit_log WHERE kind = 'event_accepted' AND (instr(CAST(entry AS TEXT), ?1) > 0 OR instr(CAST(entry AS TEXT), ?2) > 0)",
        ),
        apply_order: order(&h, &devices),
    }
}

/// The events of `devices` in the order the hub applied them.
fn order(h: &rusqlite::Connection, devices: &[String]) -> Vec<String> {
    let mut st = h
            .prepare(
                "SELECT e.event_id FROM applied a JOIN events e ON e.id = a.event_row WHERE e.device_id IN (?1, ?2) ORDER BY a.applied_seq",
            )
            .expect("prepare");
    let ids = st
        .query_map(rusqlite::params![devices[0], devices[1]], |r| r.get(0))
        .expect("query")
        .map(|v| v.expect("row"))
        .collect::<Vec<String>>();
    ids
}

/// The sweep's template: a stopped hub with a store and two enrolled
/// registers, and the two pushes (the second register's void of the first's
/// sale and a later sale, then the first's shift and sale).
fn prepare(tmp: &Path, port: u16) -> (HubProcess, [Register; 2], Vec<Event>, Vec<Event>) {
    let mut hub = HubProcess::init_and_serve(&tmp.join("hub"), port, TOKEN).expect("hub");
    let store = hub.admin(&["create-store", "Colmado"]).expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    let regs = vec![enroll(&hub, &store), enroll(&hub, &store)];
    hub.terminate().expect("stop hub");
    let store: StoreId = store.parse().expect("store id");
    let now = SystemClock.now_ms();
    let mut w = Workload::new(7, store, regs);
    let first = vec![w.next_sale(0, now), w.next_sale(0, now)];
    let EventBody::SaleCreated(sale) = first[1].body().expect("body") else {
        panic!("not a sale")
    };
    let void = w.registers[1].append(
        store,
        EventBody::SaleVoided(SaleVoided {
            sale_id: sale.sale_id,
            reason: "error".into(),
            approval: None,
            approved_by: None,
        }),
        vec![first[1].id()],
        now,
        &mut SeededRandom::new(8),
    );
    let later = w.next_sale(1, now);
    let second = vec![void, later];
    let regs = [w.registers[0].clone(), w.registers[1].clone()];
    (hub, regs, first, second)
}

/// The hub's points this sweep crashes at, with the hits: each hold and
/// release, and the commits of the two pushes (the first push's commit is
/// the writer's first after start-up).
const SWEPT: &[(&str, &[u64])] = &[
    ("hub:held", &[1, 2]),
    ("hub:released", &[1, 2]),
    ("hub:before_commit", &[1, 2]),
    ("hub:committed", &[1, 2]),
];

#[test]
fn a_hub_killed_while_holding_or_releasing_events_applies_each_once_in_causal_order() {
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let port = caja_tests::procs::free_port().expect("port");
    let (mut hub, regs, first, second) = prepare(tmp.path(), port);
    let root = tmp.path().to_path_buf();
    let mut run = |name: &str, crash: Option<&str>| -> (State, Option<std::process::ExitStatus>) {
        let dir = root.join(format!("run-{name}"));
        copy_tree(&root.join("hub"), &dir.join("hub"));
        hub.dir = dir.join("hub");
        if let Some(c) = crash {
            hub.serve_env = vec![(caja_hub::crashpoint::ENV.to_owned(), c.to_owned())];
        }
        hub.serve().expect("serve");
        hub.serve_env.clear();
        // The held push, then the releasing one; answered or not.
        let held = push(&hub.url, &regs[1], &second);
        let released = held.as_ref().and_then(|_| push(&hub.url, &regs[0], &first));
        let status = hub
            .wait_exit(std::time::Duration::from_millis(if crash.is_some() {
                2000
            } else {
                0
            }))
            .expect("wait");
        if status.is_some() {
            // Restarted; each register pushes again (a register resends
            // what it was not answered for, and what it was: duplicates).
            hub.serve().expect("restart");
            let again = push(&hub.url, &regs[1], &second).expect("answered");
            assert_eq!(again.0, 200, "{name}: {:?}", again.1);
            let again = push(&hub.url, &regs[0], &first).expect("answered");
            assert_eq!(again.0, 200, "{name}: {:?}", again.1);
        } else {
            let (s, v) = held.expect("answered");
            assert_eq!(s, 200, "{name}: {v}");
            assert_eq!(
                v["held"].as_array().map(Vec::len),
                Some(2),
                "{name}: held: {v}"
            );
            let (s, v) = released.expect("answered");
            assert_eq!(
                (s, v["held"].as_array().map(Vec::len)),
                (200, Some(0)),
                "{name}: {v}"
            );
        }
        let got = state(&hub, &[&regs[0], &regs[1]]);
        audit_verifies_and_stop(&mut hub, &dir, name);
        (got, status)
    };
    let (expected, _) = run("baseline", None);
    let causal: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|e| e.id().to_string())
        .collect();
    assert_eq!(
        expected,
        State {
            events: 4,
            applied_once: 4,
            held: 0,
            accepted_entries: 4,
            apply_order: causal,
        },
        "baseline: the sale before its void"
    );
    let mut crashes = 0;
    for (point, nths) in SWEPT {
        assert!(caja_hub::crashpoint::POINTS.contains(point), "{point}");
        for &nth in *nths {
            let name = format!("{}-{nth}", point.replace(':', "_"));
            let (got, status) = run(&name, Some(&format!("{point}:{nth}")));
            assert_eq!(
                status.and_then(|s| s.signal()),
                Some(6),
                "{point}:{nth}: the hub aborted there ({status:?})"
            );
            crashes += 1;
            assert_eq!(
                got, expected,
                "{point}:{nth}: after the restart and the retries"
            );
        }
    }
    println!(
        "hub causal-gate crash sweep: {crashes} crashes at {} points, each ending at {expected:?}",
        SWEPT.len()
    );
}

// The outbox's crash points: the hub's tax-authority workers submitting
// e-CF to the DGII emulator.

const RNC: &str = "131880738";

fn ecf_number(n: u64) -> String {
    format!("E32{n:010}")
}

/// A one-line cash sale at 18 % with e-CF number `n`; from RD$250,000 on it
/// names its buyer (DGII) and goes to the authority whole, else as a summary.
fn ecf_sale(n: u64, unit_price: i64, now: i64) -> SaleCreated {
    let total = Money(unit_price);
    let rate = TaxRateBp::new(1800).expect("rate");
    let tax = line_tax(total, rate).expect("tax");
    let big = total >= Money(25_000_000);
    SaleCreated {
        sale_id: SaleId::new_v7(now, &mut SeededRandom::new(n)).expect("sale id"),
        cashier: "ana".into(),
        shift_id: None,
        customer: None,
        fiscal: Some(FiscalRef {
            series: "E32".into(),
            number: ecf_number(n),
            valid_until: Some("2099-12-31".into()),
            buyer_tax_id: big.then(|| "00112345678".into()),
            buyer_name: big.then(|| "Juan Pérez".into()),
            modifies: None,
        }),
        lines: vec![SaleLine {
            product: "soda-2l".parse().expect("code"),
            name: "Refresco 2 L".into(),
            qty_milli: QtyMilli(1000),
            unit_price: total,
            tax_bp: rate,
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
    }
}

/// The test PKI's signer (a register's certificate); `None` without
/// `openssl` (skipped, printed; a failure under `CAJA_REQUIRE_EXTERNAL=1`).
fn signer() -> Option<caja_shared::ecf::xmldsig::Signer> {
    let p = caja_tests::pki::Pki::get()?;
    let creds = caja_shared::ecf::certificate::Credentials::from_pkcs12(
        &caja_tests::pki::Pki::read(&p.leaf_p12),
        caja_tests::pki::P12_PASSWORD,
    )
    .expect("the test certificate");
    Some(
        caja_shared::ecf::xmldsig::Signer::new(creds.key_pkcs8(), creds.cert_der().to_vec())
            .expect("signer"),
    )
}

/// The outbox sweep's template: a stopped hub holding three e-CF sales of
/// one register in its outbox, none sent yet: two under RD$250,000 (sent as
/// summaries, answered at once; the emulator rejects the second) and one
/// above (sent whole, polled). Returns the hub and the three numbers.
fn prepare_outbox(tmp: &Path, port: u16) -> Option<(HubProcess, Vec<String>)> {
    let signer = signer()?;
    let mut hub = HubProcess::init_and_serve(&tmp.join("hub"), port, TOKEN).expect("hub");
    let store = hub.admin(&["create-store", "Colmado"]).expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    let series = serde_json::json!({"prefix": "E32", "digits": 10, "first": 1, "last": 1000, "valid_until": "2099-12-31"});
    let (status, _, v) = http(
        &hub.url,
        "POST",
        "/v1/admin/fiscal/series",
        &[
            ("Authorization", format!("Bearer {TOKEN}")),
            ("Content-Type", "application/json".into()),
        ],
        series.to_string().as_bytes(),
    )
    .expect("series answered");
    assert_eq!(status, 200, "{v}");
    let mut reg = enroll(&hub, &store);
    let store: StoreId = store.parse().expect("store id");
    let grant = serde_json::json!({"request_id": "019aaf70-0000-7000-8000-000000000001", "series": "E32", "count": 3});
    let (status, v) = signed_post(
        &hub.url,
        &reg,
        "/v1/fiscal/ranges",
        grant.to_string().as_bytes(),
    )
    .expect("grant answered");
    assert_eq!(status, 200, "{v}");
    let EventBody::FiscalRangeGranted(g) = Event::from_json(v["events"][0].to_string().as_bytes())
        .expect("event")
        .body()
        .expect("body")
    else {
        panic!("not a grant: {v}")
    };
    let issuer = caja_shared::ecf::issuer::Issuer::new(
        RNC,
        "Colmado & Hijos SRL",
        "Calle 1, Santo Domingo",
        None,
    )
    .expect("issuer");
    let now = SystemClock.now_ms();
    let mut rng = SeededRandom::new(31);
    let (mut events, mut docs, mut numbers) = (Vec::new(), Vec::new(), Vec::new());
    for (i, n) in (g.first..=g.last).enumerate() {
        let sale = ecf_sale(n, if i == 2 { 30_000_000 } else { 9_500 }, now);
        let (issued, signed) =
            caja_hub::workload::signed_sale_documents(&sale, &issuer, &signer, now)
                .expect("signed");
        numbers.push(ecf_number(n));
        let e = reg.append(store, EventBody::SaleCreated(sale), vec![], now, &mut rng);
        let d = reg.append(
            store,
            EventBody::FiscalDocumentIssued(issued),
            vec![e.id()],
            now,
            &mut rng,
        );
        events.extend([e, d]);
        docs.extend(signed);
    }
    docs.sort_by_key(|d| d.sha256);
    let (status, v) = push_with_documents(&hub.url, &reg, &events, &docs).expect("pushed");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["conflicts"].as_array().map(Vec::len), Some(0), "{v}");
    hub.terminate().expect("stop hub");
    Some((hub, numbers))
}

/// What the hub and the authority hold for the outbox's documents once every
/// one is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outboxed {
    /// Per number: its state, whether it has a track id, its channel.
    documents: Vec<(String, String, bool, String)>,
    /// Per number: the verdict events on the hub chain naming it.
    verdict_events: Vec<i64>,
    /// Per number: `fiscal_document_decided` audit entries naming it.
    decided_entries: Vec<i64>,
    /// `fiscal_document_rejected` conflicts.
    rejection_conflicts: i64,
    /// Per number at the authority: received, duplicates, conflicting.
    at_authority: Vec<(u32, u32, u32)>,
}

fn undecided(hub: &HubProcess) -> i64 {
    hub.db()
        .expect("hub db")
        .query_row(
            "SELECT count(*) FROM tax_outbox WHERE state IN ('pending', 'submitted')",
            [],
            |r| r.get(0),
        )
        .expect("undecided")
}

fn outboxed(
    hub: &HubProcess,
    numbers: &[String],
    totals: &caja_hub::dgii_emulator::Totals,
) -> Outboxed {
    let h = hub.db().expect("hub db");
    let per = |sql: &str| -> Vec<i64> {
        numbers
            .iter()
            .map(|n| h.query_row(sql, [n], |r| r.get(0)).expect(sql))
            .collect()
    };
    let mut st = h
        .prepare("SELECT doc_key, state, track_id IS NOT NULL, coalesce(channel, '') FROM tax_outbox ORDER BY doc_key")
        .expect("prepare");
    let documents = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .map(|d| d.expect("row"))
        .collect();
    Outboxed {
        documents,
        verdict_events: per(
            "SELECT count(*) FROM events WHERE kind IN ('FiscalDocumentAccepted', 'FiscalDocumentRejected') AND instr(CAST(bytes AS TEXT), ?1) > 0",
        ),
        decided_entries: per(
            "SELECT count(*) FROM audit_log WHERE kind = 'fiscal_document_decided' AND instr(CAST(entry AS TEXT), ?1) > 0",
        ),
        rejection_conflicts: h
            .query_row(
                "SELECT count(*) FROM conflicts WHERE reason = 'fiscal_document_rejected'",
                [],
                |r| r.get(0),
            )
            .expect("conflicts"),
        at_authority: numbers
            .iter()
            .map(|n| {
                totals
                    .per_number
                    .get(n)
                    .map_or((0, 0, 0), |c| (c.received, c.duplicates, c.conflicting))
            })
            .collect(),
    }
}

/// The outbox's points, with the hits swept: 5 claims and 5 records reach
/// them in an uninterrupted run (a summary: claim, record; the rejected
/// summary the same, with a lookup before the record; the whole e-CF: its
/// submission, one `En Proceso` poll and the verdict's poll). The writer
/// commits at start-up, then 13 times for the outbox (5 claims, 3
/// documents' bytes stored before their first submission, 5 records):
/// `hub:committed` after some of those (hits 2–14 with
/// `CAJA_HUB_CRASH_SWEEP=long`), where what was committed is kept and its
/// answer lost (a document stored in doubt and never sent: the next worker
/// asks the authority, finds nothing, sends it).
fn outbox_swept() -> Vec<(&'static str, Vec<u64>)> {
    let long = std::env::var("CAJA_HUB_CRASH_SWEEP").is_ok_and(|v| v == "long");
    vec![
        ("hub:outbox_claimed", (1..=5).collect()),
        ("hub:outbox_recorded", (1..=5).collect()),
        (
            "hub:committed",
            if long {
                (2..=14).collect()
            } else {
                vec![3, 6, 9]
            },
        ),
    ]
}

#[test]
fn a_hub_killed_inside_its_outbox_submits_and_records_each_document_once() {
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let port = caja_tests::procs::free_port().expect("port");
    let Some((mut hub, numbers)) = prepare_outbox(tmp.path(), port) else {
        return;
    };
    let ca = caja_tests::pki::Pki::get().expect("pki").ca_pem.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let root = tmp.path().to_path_buf();
    let mut run =
        |name: &str, crash: Option<&str>| -> (Outboxed, Option<std::process::ExitStatus>) {
            let dir = root.join(format!("outbox-{name}"));
            copy_tree(&root.join("hub"), &dir.join("hub"));
            hub.dir = dir.join("hub");
            let emu = rt
                .block_on(Emulator::start(
                    "127.0.0.1:0".parse().expect("addr"),
                    RNC,
                    Faults {
                        reject: [numbers[1].clone()].into(),
                        in_process_polls: 1,
                        ..Faults::default()
                    },
                    5,
                ))
                .expect("emulator");
            let cfg = HubConfig::load(&hub.dir, |_| None).expect("hub.toml");
            let cfg = HubConfig {
                tax_authority: Some(TaxAuthorityConfig {
                    ecf_base_url: emu.ecf_base_url(),
                    fc_base_url: emu.fc_base_url(),
                    rnc: RNC.into(),
                    legal_name: "Colmado & Hijos SRL".into(),
                    address: Some("Calle 1, Santo Domingo".into()),
                    workers: 2,
                    // A dead worker's lease ends soon; longer than any call.
                    lease_ms: 2_000,
                    request_timeout_ms: 600,
                    poll_interval_ms: 50,
                    retry_base_ms: 50,
                    retry_cap_ms: 200,
                    idle_poll_ms: 50,
                    trusted_ca: Some(ca.display().to_string()),
                    ..TaxAuthorityConfig::default()
                }),
                ..cfg
            };
            std::fs::write(hub.dir.join(caja_hub::config::CONFIG_FILE), cfg.to_toml())
                .expect("hub.toml");
            HubConfig::load(&hub.dir, |_| None).expect("the hub.toml written");
            if let Some(c) = crash {
                hub.serve_env = vec![(caja_hub::crashpoint::ENV.to_owned(), c.to_owned())];
            }
            hub.serve().expect("serve");
            hub.serve_env.clear();
            let start = std::time::Instant::now();
            let mut status = None;
            // Until the hub aborts or every document is decided.
            while undecided(&hub) > 0 {
                status = hub
                    .wait_exit(std::time::Duration::from_millis(50))
                    .expect("wait");
                if status.is_some() {
                    // Restarted unarmed: the workers take it from there.
                    hub.serve().expect("restart");
                    break;
                }
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(60),
                    "{name}: never decided"
                );
            }
            while undecided(&hub) > 0 {
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(90),
                    "{name}: not decided after the restart"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let totals = rt.block_on(async { emu.totals() });
            rt.block_on(emu.stop());
            let got = outboxed(&hub, &numbers, &totals);
            audit_verifies_and_stop(&mut hub, &dir, name);
            (got, status)
        };
    let (expected, _) = run("baseline", None);
    let ch = |n: &str, state: &str, tracked: bool, channel: &str| {
        (n.to_owned(), state.to_owned(), tracked, channel.to_owned())
    };
    assert_eq!(
        expected,
        Outboxed {
            documents: vec![
                // Summaries are answered at once: no track id.
                ch(&numbers[0], "accepted", false, "rfce"),
                ch(&numbers[1], "rejected", false, "rfce"),
                ch(&numbers[2], "accepted", true, "ecf"),
            ],
            verdict_events: vec![1, 1, 1],
            decided_entries: vec![1, 1, 1],
            rejection_conflicts: 1,
            at_authority: vec![(1, 0, 0); 3],
        },
        "baseline"
    );
    let mut crashes = 0;
    let swept = outbox_swept();
    for (point, nths) in &swept {
        assert!(caja_hub::crashpoint::POINTS.contains(point), "{point}");
        for &nth in nths {
            let name = format!("{}-{nth}", point.replace(':', "_"));
            let (got, status) = run(&name, Some(&format!("{point}:{nth}")));
            assert_eq!(
                status.and_then(|s| s.signal()),
                Some(6),
                "{point}:{nth}: the hub aborted there ({status:?})"
            );
            crashes += 1;
            assert_eq!(
                got, expected,
                "{point}:{nth}: after the restart, each document submitted and decided once"
            );
        }
    }
    println!(
        "hub outbox crash sweep: {crashes} crashes at {} points, each ending at {expected:?}",
        swept.len()
    );
}
