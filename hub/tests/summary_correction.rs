//! Head office's correction of a rejected summary (RFCE), against the
//! checking DGII emulator (XSD with `xmllint`, signatures): a register's
//! RFCE that DGII rejects is replaced by one the hub rebuilds from the E32 it
//! holds and signs with its own certificate; the outbox submits it as a new
//! attempt of the same e-NCF and DGII accepts it. The emulator's counts per
//! number show exactly two contents for that number and one for every other
//! (DESIGN invariant 10); the register's signed documents are unchanged; the
//! decision is audited (old and new SHA-256) and the audit log verifies; the
//! rejection's conflict is resolved; anything but a rejected RFCE is refused.
//!
//! Also head office's cancellation of a document refused before sending
//! (signed for another taxpayer, so never sent, though its receipt was
//! printed): an ANECF of that one number, signed by the hub, accepted by the
//! emulator; the document never reaches it and leaves the backlog.
//!
//! Runs on SQLite and, as `<name>::postgres`, on PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use caja_hub::config::{HubConfig, TaxAuthorityConfig};
use caja_hub::dgii_emulator::{Checks, Emulator, Faults};
use caja_hub::system::OsRandom;
use caja_shared::digest::Hash256;
use caja_shared::ecf::xml::{parse, Content, Element, DECLARATION};
use caja_shared::event::Event;
use caja_shared::ids::{SaleId, StoreId};
use caja_shared::kind::{EventBody, FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine};
use caja_shared::money::{line_tax, Money, QtyMilli, TaxRateBp};
use caja_shared::push::PushDocument;
use serde_json::{json, Value};
use support::*;

const RNC: &str = "131880738";

fn number(n: u64) -> String {
    format!("E32{n:010}")
}

/// A one-line cash sale at 18 % with e-NCF `n`.
fn sale(n: u64, price: i64) -> SaleCreated {
    let total = Money(price);
    let tax = line_tax(total, TaxRateBp::new(1800).unwrap()).unwrap();
    let big = total >= Money(25_000_000);
    SaleCreated {
        sale_id: SaleId::new_v7(now_ms(), &mut OsRandom::new()).unwrap(),
        cashier: "ana".into(),
        shift_id: None,
        customer: None,
        fiscal: Some(FiscalRef {
            series: "E32".into(),
            number: number(n),
            valid_until: Some("2099-12-31".into()),
            buyer_tax_id: big.then(|| "00112345678".into()),
            buyer_name: big.then(|| "Juan Pérez".into()),
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
    }
}

fn child_mut<'a>(e: &'a mut Element, name: &str) -> &'a mut Element {
    e.children
        .iter_mut()
        .find_map(|c| match c {
            Content::Element(x) if x.name == name => Some(x),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {name}"))
}

/// The register's RFCE with a wrong `MontoTotal`, signed again by the
/// register: schema-valid and signed, so it passes every check before
/// sending, and it is what DGII rejects ("Monto total no coincide").
fn wrong_total(rfce: &[u8]) -> Vec<u8> {
    let mut root = parse(rfce).unwrap();
    root.children
        .retain(|c| !matches!(c, Content::Element(e) if e.name == "Signature"));
    let total = child_mut(
        child_mut(child_mut(&mut root, "Encabezado"), "Totales"),
        "MontoTotal",
    );
    total.children = vec![Content::Text("96.00".into())];
    let mut s = String::from(DECLARATION);
    root.write(&mut s);
    caja_shared::ecf::xmldsig::sign(s.as_bytes(), &signer().unwrap()).unwrap()
}

struct Sold {
    ecf: Vec<u8>,
    rfce: Option<Vec<u8>>,
    register_rfce: Option<Vec<u8>>,
}

/// Pushes a sale of `n` with its `FiscalDocumentIssued` and the signed
/// documents beside them; with `tamper` the RFCE pushed is [`wrong_total`].
async fn sell(
    hub: &TestHub,
    reg: &mut caja_hub::workload::Register,
    store: StoreId,
    n: u64,
    price: i64,
    tamper: bool,
) -> Sold {
    let s = sale(n, price);
    let (mut issued, mut docs) =
        caja_hub::workload::signed_sale_documents(&s, &issuer(RNC), &signer().unwrap(), now_ms())
            .unwrap();
    let ecf = docs[0].xml.clone();
    let register_rfce = docs.get(1).map(|d| d.xml.clone());
    if tamper {
        let bad = wrong_total(&docs[1].xml);
        docs[1] = PushDocument {
            sha256: Hash256::of(&bad),
            xml: bad,
        };
        issued.documents[1].sha256 = docs[1].sha256;
    }
    let rfce = docs.get(1).map(|d| d.xml.clone());
    let mut rng = OsRandom::new();
    let e = reg.append(store, EventBody::SaleCreated(s), vec![], now_ms(), &mut rng);
    let i = reg.append(
        store,
        EventBody::FiscalDocumentIssued(issued),
        vec![e.id()],
        now_ms(),
        &mut rng,
    );
    docs.sort_by_key(|d| d.sha256);
    let r = hub.push_with_documents(reg, &[e, i], &docs).await;
    assert_eq!(r.status, 200, "{}", r.body);
    Sold {
        ecf,
        rfce,
        register_rfce,
    }
}

async fn document(hub: &TestHub, n: &str) -> Value {
    let v = hub.admin_get("/v1/admin/outbox?state=all&limit=100").await;
    v["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["document"] == n)
        .cloned()
        .unwrap_or_else(|| panic!("{n} not in {v}"))
}

async fn settled(hub: &TestHub, n: &str, state: &str) -> Value {
    let start = Instant::now();
    loop {
        let d = document(hub, n).await;
        if d["state"] == state {
            return d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{n} never {state}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /v1/admin/outbox/{n}/correct-summary` → (status, body).
async fn correct(hub: &TestHub, n: &str, body: Value) -> (u16, Value) {
    admin_post(hub, &format!("/v1/admin/outbox/{n}/correct-summary"), body).await
}

async fn admin_post(hub: &TestHub, path: &str, body: Value) -> (u16, Value) {
    let r = hub
        .http
        .post(format!("{}{path}", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_office_corrects_a_rejected_summary_and_dgii_receives_a_second_content_only_for_it() {
    let Some(p) = pki::Pki::get() else { return };
    let xsd = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd");
    let emu = Emulator::start_checked(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults::default(),
        21,
        Checks { xsd_dir: Some(xsd), signatures: true },
    )
    .await
    .unwrap();
    let mut hub = TestHub::start_with(HubConfig {
        tax_authority: Some(TaxAuthorityConfig {
            ecf_base_url: emu.ecf_base_url(),
            fc_base_url: emu.fc_base_url(),
            rnc: RNC.into(),
            legal_name: "Colmado & Hijos SRL".into(),
            address: Some("Calle 1, Santo Domingo".into()),
            workers: 2,
            lease_ms: 3_000,
            request_timeout_ms: 2_000,
            poll_interval_ms: 50,
            retry_base_ms: 50,
            retry_cap_ms: 500,
            idle_poll_ms: 50,
            trusted_ca: Some(p.ca_pem.display().to_string()),
            ..TaxAuthorityConfig::default()
        }),
        ..test_config()
    })
    .await;
    hub.install_test_certificate();
    hub.restart().await;
    let store = hub.create_store("colmado").await;
    hub.admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&json!({"prefix":"E32","digits":10,"first":1,"last":1000,"valid_until":"2099-12-31"})),
        )
        .await
        .unwrap();
    let (mut reg, _) = hub.enroll(store).await;
    let (ok, bad, whole) = (1, 2, 3);
    emu.update_faults(|f| {
        f.reject.insert(number(bad));
        f.reject.insert(number(whole));
    });
    sell(&hub, &mut reg, store, ok, 9_500, false).await;
    let sold = sell(&hub, &mut reg, store, bad, 9_500, true).await;
    sell(&hub, &mut reg, store, whole, 30_000_000, false).await;
    settled(&hub, &number(ok), "accepted").await;
    let rejected = settled(&hub, &number(bad), "rejected").await;
    settled(&hub, &number(whole), "rejected").await;
    let old_hash = Hash256::of(sold.rfce.as_ref().unwrap()).to_hex();
    assert_eq!(rejected["body_hash"], old_hash);
    let signed_before: i64 = hub
        .db()
        .query_row("SELECT COUNT(*) FROM signed_documents", [], |r| r.get(0))
        .unwrap();

    // Refused, nothing changed: an accepted document, a rejected e-CF that
    // went whole (not a summary), an unknown number, no reason given.
    let why = json!({"by": "contabilidad", "note": "monto corregido"});
    let (s, b) = correct(&hub, &number(ok), why.clone()).await;
    assert_eq!((s, b["error"].as_str()), (409, Some("not_rejected")), "{b}");
    let (s, b) = correct(&hub, &number(whole), why.clone()).await;
    assert_eq!((s, b["error"].as_str()), (409, Some("not_a_summary")), "{b}");
    let (s, _) = correct(&hub, &number(999), why.clone()).await;
    assert_eq!(s, 404);
    let (s, b) = correct(&hub, &number(bad), json!({"by": "contabilidad"})).await;
    assert_eq!((s, b["field"].as_str()), (400, Some("note")), "{b}");
    assert_eq!(document(&hub, &number(bad)).await["state"], "rejected");

    // DGII would now take the right summary; head office corrects it with
    // the CLI.
    emu.update_faults(|f| {
        f.reject.remove(&number(bad));
    });
    let (url, n) = (hub.url.clone(), number(bad));
    let o = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["fiscal", "--url", &url, "correct-summary", &n])
            .args(["--by", "contabilidad", "--note", "MontoTotal del resumen no coincidía con el e-CF"])
            .output()
            .unwrap()
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["old_body_hash"], old_hash, "{out}");
    assert_eq!(out["corrections"], 1, "{out}");
    assert!(out["resolved_conflict"].is_string(), "{out}");
    let new_hash = out["new_body_hash"].as_str().unwrap().to_owned();
    assert_ne!(new_hash, old_hash);

    let d = settled(&hub, &number(bad), "accepted").await;
    assert_eq!(d["body_hash"], new_hash, "{d}");
    assert_eq!(d["security_code"], rejected["security_code"], "the code stays the E32's");

    // The corrected summary is the hub-signed rebuild of the E32: for an
    // untouched sale it is what the register signed (same key in the test).
    let new_xml: Vec<u8> = hub
        .db()
        .query_row(
            "SELECT xml FROM signed_documents WHERE sha256 = $1",
            [new_hash.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(Some(&new_xml), sold.register_rfce.as_ref());
    let rebuilt = caja_hub::taxgw::dgii_signed::summary_of_invoice(&sold.ecf).unwrap();
    assert_eq!(
        caja_shared::ecf::xmldsig::sign(&rebuilt, &signer().unwrap()).unwrap(),
        new_xml
    );
    // The register's documents are all still there, unchanged; one more.
    let rows: Vec<(String, String)> = hub
        .db()
        .prepare("SELECT sha256, kind FROM signed_documents WHERE encf = $1 ORDER BY seq, received_ms")
        .unwrap()
        .query_map([number(bad).as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(rows.contains(&(Hash256::of(&sold.ecf).to_hex(), "ecf".into())), "{rows:?}");
    assert!(rows.contains(&(old_hash.clone(), "rfce".into())), "{rows:?}");
    assert!(rows.contains(&(new_hash.clone(), "rfce".into())), "{rows:?}");
    let signed_after: i64 = hub
        .db()
        .query_row("SELECT COUNT(*) FROM signed_documents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(signed_after, signed_before + 1);

    // DGII saw exactly two contents for the corrected number, one for every
    // other, and nothing twice.
    let totals = emu.totals();
    for (n, c) in &totals.per_number {
        let want = if *n == number(bad) { 2 } else { 1 };
        assert_eq!((c.contents, c.received), (want, want), "{n}: {c:?}");
        assert_eq!((c.duplicates, c.conflicting, c.refused), (0, 0, 0), "{n}: {c:?}");
    }
    assert_eq!(totals.per_number.len(), 3, "{:?}", totals.per_number);

    // Once corrected (and accepted) it is not corrected again; the database
    // still refuses any other change of submitted bytes.
    let (s, b) = correct(&hub, &number(bad), why.clone()).await;
    assert_eq!((s, b["error"].as_str()), (409, Some("not_rejected")), "{b}");
    let err = hub
        .db()
        .execute(
            "UPDATE tax_outbox SET body = $2, state = 'pending', corrections = corrections + 1 WHERE doc_key = $1",
            caja_hub::storage::db::params![number(ok), vec![1u8]],
        )
        .unwrap_err();
    assert!(err.to_string().contains("never change"), "{err}");

    // The rejection's conflict is resolved by the correction; the register
    // pulls the rejection, the resolution and the acceptance.
    let conflicts = hub.admin_get("/v1/admin/conflicts?state=resolved").await;
    let c = conflicts["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == format!("fiscal_doc:{}", number(bad)))
        .cloned()
        .unwrap_or_else(|| panic!("{conflicts}"));
    assert_eq!(c["resolution"]["by"], "contabilidad");
    let open = hub.admin_get("/v1/admin/conflicts?state=open").await;
    assert!(!open.to_string().contains(&number(bad)), "{open}");
    let mut after = String::new();
    let mut seen = (false, false, false);
    loop {
        let r = hub.pull(&reg, &after).await;
        for e in r.body["events"].as_array().unwrap() {
            match Event::from_json(e.to_string().as_bytes()).unwrap().body().unwrap() {
                EventBody::FiscalDocumentRejected(x) if x.document == number(bad) => seen.0 = true,
                EventBody::ConflictResolved(x) if x.conflict_id.to_string() == c["conflict_id"] => {
                    seen.1 = true
                }
                EventBody::FiscalDocumentAccepted(x) if x.document == number(bad) => seen.2 = true,
                _ => {}
            }
        }
        after = r.body["next"].as_str().unwrap().to_owned();
        if r.body["more"] != true {
            break;
        }
    }
    assert_eq!(seen, (true, true, true));

    // The auditor's export keeps both summaries of the number.
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("documents");
    let (url, out_dir) = (hub.url.clone(), export.display().to_string());
    let o = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["fiscal", "--url", &url, "documents", "--out", &out_dir])
            .output()
            .unwrap()
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = |name: String| std::fs::read(export.join(name)).unwrap();
    assert_eq!(&file(format!("{}.rfce.xml", number(bad))), sold.rfce.as_ref().unwrap());
    assert_eq!(file(format!("{}.rfce.2.xml", number(bad))), new_xml);
    // The hub-signed correction passes the independent checks.
    check_with_xmllint_and_xmlsec1(
        &export.join(format!("{}.rfce.2.xml", number(bad))),
        "RFCE-32.xsd",
    );

    // Audited with both hashes; the audit log verifies.
    let entries: Vec<Vec<u8>> = hub
        .db()
        .prepare("SELECT entry FROM audit_log WHERE kind = 'fiscal_summary_corrected'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(entries.len(), 1);
    let entry: Value = serde_json::from_slice(&entries[0]).unwrap();
    assert_eq!(entry["data"]["old_body_hash"], old_hash, "{entry}");
    assert_eq!(entry["data"]["new_body_hash"], new_hash, "{entry}");
    assert_eq!(entry["data"]["document"], number(bad), "{entry}");
    let dir = tmp.path().join("audit");
    let data_dir = hub.data_dir();
    tokio::task::block_in_place(|| {
        caja_hub::audit_export::export(&data_dir, &dir, now_ms()).unwrap();
        caja_hub::audit_export::verify(&dir).unwrap();
    });
    hub.stop().await;
    emu.stop().await;
}
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_office_cancels_the_number_of_a_document_refused_before_sending() {
    let Some(p) = pki::Pki::get() else { return };
    let xsd = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd");
    let emu = Emulator::start_checked(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults::default(),
        22,
        Checks { xsd_dir: Some(xsd), signatures: true },
    )
    .await
    .unwrap();
    let mut hub = TestHub::start_with(HubConfig {
        tax_authority: Some(TaxAuthorityConfig {
            ecf_base_url: emu.ecf_base_url(),
            fc_base_url: emu.fc_base_url(),
            rnc: RNC.into(),
            legal_name: "Colmado & Hijos SRL".into(),
            address: Some("Calle 1, Santo Domingo".into()),
            workers: 2,
            lease_ms: 3_000,
            request_timeout_ms: 2_000,
            poll_interval_ms: 50,
            retry_base_ms: 50,
            retry_cap_ms: 500,
            idle_poll_ms: 50,
            trusted_ca: Some(p.ca_pem.display().to_string()),
            ..TaxAuthorityConfig::default()
        }),
        ..test_config()
    })
    .await;
    hub.install_test_certificate();
    hub.restart().await;
    let store = hub.create_store("colmado").await;
    hub.admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&json!({"prefix":"E32","digits":10,"first":1,"last":1000,"valid_until":"2099-12-31"})),
        )
        .await
        .unwrap();
    let (mut reg, _) = hub.enroll(store).await;
    // Signed for another taxpayer: refused before sending.
    let s = sale(1, 9_500);
    let (issued, mut docs) = caja_hub::workload::signed_sale_documents(
        &s,
        &issuer("101010101"),
        &signer().unwrap(),
        now_ms(),
    )
    .unwrap();
    let mut rng = OsRandom::new();
    let e = reg.append(store, EventBody::SaleCreated(s), vec![], now_ms(), &mut rng);
    let i = reg.append(store, EventBody::FiscalDocumentIssued(issued), vec![e.id()], now_ms(), &mut rng);
    docs.sort_by_key(|d| d.sha256);
    let r = hub.push_with_documents(&reg, &[e, i], &docs).await;
    assert_eq!(r.status, 200, "{}", r.body);
    sell(&hub, &mut reg, store, 2, 9_500, false).await;
    settled(&hub, &number(2), "accepted").await;
    let start = Instant::now();
    while document(&hub, &number(1)).await["last_error"].is_null() {
        assert!(start.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = hub.admin_get("/v1/admin/outbox?limit=1").await["health"].clone();
    assert_eq!(health["backlog"], 1, "{health}");

    // Refused, nothing changed: a document that was sent, an unknown one,
    // no reason given.
    let why = json!({"by": "contabilidad", "note": "firmado con otro RNC; recibo impreso"});
    let (st, b) = admin_post(&hub, &format!("/v1/admin/outbox/{}/cancel", number(2)), why.clone()).await;
    assert_eq!((st, b["error"].as_str()), (409, Some("not_refused")), "{b}");
    let (st, _) = admin_post(&hub, &format!("/v1/admin/outbox/{}/cancel", number(9)), why.clone()).await;
    assert_eq!(st, 404);
    let (st, b) = admin_post(&hub, &format!("/v1/admin/outbox/{}/cancel", number(1)), json!({"note": "x"})).await;
    assert_eq!((st, b["field"].as_str()), (400, Some("by")), "{b}");

    let (url, n) = (hub.url.clone(), number(1));
    let o = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["fiscal", "--url", &url, "cancel-refused", &n])
            .args(["--by", "contabilidad", "--note", "firmado con otro RNC; recibo impreso"])
            .output()
            .unwrap()
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let key = format!("ANECF:{n}:{n}");
    assert_eq!(out["cancellation"], key, "{out}");
    assert!(out["resolved_conflict"].is_string(), "{out}");
    settled(&hub, &key, "accepted").await;

    // DGII got the ANECF once and never the refused document; it left the
    // backlog; a second cancellation is refused.
    let totals = emu.totals();
    assert_eq!(totals.per_number[&key].received, 1, "{:?}", totals.per_number);
    assert!(!totals.per_number.contains_key(&n), "the refused document was sent");
    let health = hub.admin_get("/v1/admin/outbox?limit=1").await["health"].clone();
    assert_eq!((health["backlog"].as_u64(), health["failing"].as_u64()), (Some(0), Some(0)), "{health}");
    let (st, b) = admin_post(&hub, &format!("/v1/admin/outbox/{n}/cancel"), why).await;
    assert_eq!((st, b["error"].as_str()), (409, Some("already_cancelled")), "{b}");
    // The hub signed the ANECF; the conflict is resolved; audited.
    let anecf: Vec<Vec<u8>> = hub
        .db()
        .prepare("SELECT xml FROM signed_documents WHERE kind = 'anecf' AND encf = $1")
        .unwrap()
        .query_map([format!("{n}..{n}").as_str()], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(anecf.len(), 1);
    // The hub-signed ANECF passes the independent checks.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("anecf.xml");
    std::fs::write(&path, &anecf[0]).unwrap();
    check_with_xmllint_and_xmlsec1(&path, "ANECF.xsd");
    let open = hub.admin_get("/v1/admin/conflicts?state=open").await;
    assert!(!open.to_string().contains("fiscal_document_invalid"), "{open}");
    let audited: i64 = hub
        .db()
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE kind = 'fiscal_document_cancelled'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
    hub.stop().await;
    emu.stop().await;
}
}
