//! The hub as DGII electronic receiver (DGII "Descripción técnica",
//! "Comunicación Emisor-Receptor"), against a real hub over loopback HTTP:
//! another taxpayer (`caja_hub::dgii_partner`) asks a seed, signs it, gets a
//! token (a seed works once), sends its E31 to URL Recepción and reads a
//! signed ARECF; duplicates, bad signatures, an untrusted certificate, a
//! wrong buyer RNC and malformed XML each get their documented answer
//! (`CodigoMotivoNoRecibido` 3, 2, 2, 4, 1, or 400) and change nothing; it
//! sends ACECF approving and rejecting e-CF the hub's taxpayer issued to
//! URL Aprobación Comercial (a rejection alerts; an ACECF of a document we
//! did not issue, of another issuer or badly signed changes nothing); head
//! office approves a supplier's e-CF and the hub signs the ACECF. Every
//! ARECF and ACECF is checked with `xmllint` (DGII's XSD) and `xmlsec1`
//! (signature, test CA).
//!
//! Runs on SQLite and, as `<name>::postgres`, on PostgreSQL.

mod support;

use caja_hub::config::TaxAuthorityConfig;
use caja_hub::dgii_emulator::{Checks, Emulator, Faults};
use caja_hub::dgii_partner::{Answer, Partner};
use caja_hub::workload::Register;
use caja_shared::digest::Hash256;
use caja_shared::ecf::certificate::Credentials;
use caja_shared::ecf::xml;
use caja_shared::ecf::xmldsig::{self, Signer};
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{SaleId, StoreId};
use caja_shared::kind::{EventBody, FiscalDocType, FiscalDocumentIssued, IssuedDocument};
use caja_shared::money::Money;
use caja_shared::push::PushDocument;
use support::*;

const OURS: &str = "131880738";
const SUPPLIER: &str = "101672919";

fn signer_of(p12: &std::path::Path) -> Signer {
    let c = Credentials::from_pkcs12(&pki::Pki::read(p12), pki::P12_PASSWORD).unwrap();
    Signer::new(c.key_pkcs8(), c.cert_der().to_vec()).unwrap()
}

async fn receiver_hub() -> Option<(TestHub, &'static pki::Pki)> {
    if !require_tool("xmllint") || !require_tool("xmlsec1") {
        return None;
    }
    let pki = pki::Pki::get()?;
    let mut cfg = test_config();
    cfg.tax_authority = Some(TaxAuthorityConfig {
        rnc: OURS.into(),
        legal_name: "Colmado Cliente SRL".into(),
        address: Some("Calle 1, Santo Domingo".into()),
        workers: 0,
        trusted_ca: Some(pki.ca_pem.display().to_string()),
        ..TaxAuthorityConfig::default()
    });
    let hub = TestHub::start_with(cfg).await;
    hub.install_test_certificate();
    Some((hub, pki))
}

/// Checks a signed answer with `xmllint` against `xsd` and `xmlsec1`.
fn independent_check(bytes: &[u8], xsd: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("answer.xml");
    std::fs::write(&path, bytes).unwrap();
    check_with_xmllint_and_xmlsec1(&path, xsd);
}

/// The ARECF's `Estado` and `CodigoMotivoNoRecibido`, after checking it.
fn arecf_of(a: &Answer, encf: &str) -> (String, Option<String>) {
    assert_eq!(a.status, 200, "{}", a.text());
    independent_check(&a.body, "ARECF.xsd");
    xmldsig::verify(&a.body).expect("the ARECF verifies");
    let root = xml::parse(&a.body).unwrap();
    assert_eq!(root.text_at("DetalleAcusedeRecibo/eNCF"), Some(encf));
    (
        root.text_at("DetalleAcusedeRecibo/Estado")
            .unwrap()
            .to_owned(),
        root.text_at("DetalleAcusedeRecibo/CodigoMotivoNoRecibido")
            .map(str::to_owned),
    )
}

/// Everything the receiver can change.
fn state(hub: &TestHub) -> Vec<i64> {
    let db = hub.db();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    vec![
        count("SELECT COUNT(*) FROM received_ecf"),
        count("SELECT COUNT(*) FROM received_ecf WHERE decision IS NOT NULL"),
        count("SELECT COUNT(*) FROM commercial_approvals"),
        count("SELECT COUNT(*) FROM receiver_seeds"),
        count("SELECT COUNT(*) FROM audit_log"),
        count("SELECT COUNT(*) FROM alerts"),
    ]
}

fn issued(encf: &str, d: &PushDocument) -> EventBody {
    EventBody::FiscalDocumentIssued(FiscalDocumentIssued {
        encf: encf.into(),
        doc_type: FiscalDocType::Invoice,
        sale_id: Some(SaleId::new_v7(now_ms(), &mut SeededRandom::new(9)).unwrap()),
        return_id: None,
        security_code: "Ab+/9z".into(),
        signed_at_ms: now_ms(),
        total: Money(118_000),
        documents: vec![IssuedDocument {
            kind: "ecf".into(),
            sha256: d.sha256,
        }],
    })
}

fn append(reg: &mut Register, store: StoreId, body: EventBody) -> Event {
    reg.append(
        store,
        body,
        vec![],
        now_ms(),
        &mut caja_hub::system::OsRandom::new(),
    )
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread")]
async fn authentication_seeds_work_once_and_tokens_are_required() {
    let Some((hub, pki)) = receiver_hub().await else { return };
    let partner = Partner::new(SUPPLIER, signer_of(&pki.leaf_p12));
    let base = hub.url.clone();

    let seed = partner.seed(&base).await;
    let signed = xmldsig::sign(&seed, &partner.signer).unwrap();
    independent_check(&signed, "Semilla.xsd");
    let ok = partner.validate(&base, &signed).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let v: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(v["expira"].as_str().unwrap().ends_with("-04:00"), "{v}");
    let before = state(&hub);
    // The same signed seed again: refused, nothing recorded.
    let again = partner.validate(&base, &signed).await;
    assert_eq!(again.status, 401, "{}", again.text());
    assert!(again.text().contains("seed_used"), "{}", again.text());
    // Unsigned, signed by an untrusted CA's certificate, or a seed the hub
    // never issued: refused.
    let unsigned = partner.validate(&base, &partner.seed(&base).await).await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.text());
    let foreign = xmldsig::sign(&partner.seed(&base).await, &signer_of(&pki.foreign_p12)).unwrap();
    let foreign = partner.validate(&base, &foreign).await;
    assert_eq!(foreign.status, 401, "{}", foreign.text());
    assert!(foreign.text().contains("not trusted"), "{}", foreign.text());
    let made_up = caja_hub::receiver::auth::seed_document("00.99999999999999.00", now_ms());
    let made_up = partner.validate(&base, &xmldsig::sign(&made_up, &partner.signer).unwrap()).await;
    assert_eq!(made_up.status, 401, "{}", made_up.text());
    assert_eq!(state(&hub), before, "refused seeds change nothing");

    // Recepción without a token, or with a forged one: 401.
    let invoice = partner.supplier_invoice("E310000000101", OURS, now_ms());
    let none = partner.send_ecf(&base, None, &invoice).await;
    assert_eq!(none.status, 401, "{}", none.text());
    let forged = token.replacen('1', "2", 1);
    let bad = partner.send_ecf(&base, Some(&forged), &invoice).await;
    assert_eq!(bad.status, 401, "{}", bad.text());
    assert_eq!(state(&hub), before);
    // With the token: received.
    let a = partner.send_ecf(&base, Some(&token), &invoice).await;
    assert_eq!(arecf_of(&a, "E310000000101"), ("0".into(), None));
}

#[tokio::test(flavor = "multi_thread")]
async fn reception_acknowledges_once_and_refuses_with_dgii_codes_changing_nothing() {
    let Some((hub, pki)) = receiver_hub().await else { return };
    let partner = Partner::new(SUPPLIER, signer_of(&pki.leaf_p12));
    let base = hub.url.clone();
    let token = partner.token(&base).await;
    let t = Some(token.as_str());

    let invoice = partner.supplier_invoice("E310000000007", OURS, now_ms());
    let first = partner.send_ecf(&base, t, &invoice).await;
    assert_eq!(arecf_of(&first, "E310000000007"), ("0".into(), None));
    let root = xml::parse(&first.body).unwrap();
    assert_eq!(root.text_at("DetalleAcusedeRecibo/RNCEmisor"), Some(SUPPLIER));
    assert_eq!(root.text_at("DetalleAcusedeRecibo/RNCComprador"), Some(OURS));
    let stored = state(&hub);
    assert_eq!(stored[0], 1);
    let listed = hub.admin_get("/v1/admin/purchases").await;
    let p = &listed["purchases"][0];
    assert_eq!(p["encf"], "E310000000007");
    assert_eq!(p["issuer_rnc"], SUPPLIER);
    assert_eq!(p["total"], 118_000);
    assert_eq!(p["sha256"], Hash256::of(&invoice).to_hex());
    // The bytes are kept exactly, with the ARECF that answered them.
    let (xml_kept, arecf_kept): (Vec<u8>, Vec<u8>) = hub
        .db()
        .query_row("SELECT xml, arecf FROM received_ecf", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((xml_kept, arecf_kept), (invoice.clone(), first.body.clone()));

    // Each refusal: its code, a signed schema-valid ARECF, nothing changed.
    let dup = partner.send_ecf(&base, t, &invoice).await;
    assert_eq!(arecf_of(&dup, "E310000000007"), ("1".into(), Some("3".into())));
    assert_eq!(state(&hub), stored, "duplicate");

    let other = partner.supplier_invoice("E310000000008", OURS, now_ms());
    let tampered = String::from_utf8(other.clone())
        .unwrap()
        .replace("<MontoTotal>1180.00</MontoTotal>", "<MontoTotal>118.00</MontoTotal>");
    assert_ne!(tampered.as_bytes(), other.as_slice(), "the test changes the amount");
    let bad_sig = partner.send_ecf(&base, t, tampered.as_bytes()).await;
    assert_eq!(arecf_of(&bad_sig, "E310000000008"), ("1".into(), Some("2".into())));
    assert_eq!(state(&hub), stored, "bad signature");

    let foreign = Partner::new(SUPPLIER, signer_of(&pki.foreign_p12));
    let untrusted = foreign.supplier_invoice("E310000000009", OURS, now_ms());
    let a = partner.send_ecf(&base, t, &untrusted).await;
    assert_eq!(arecf_of(&a, "E310000000009"), ("1".into(), Some("2".into())));
    assert_eq!(state(&hub), stored, "untrusted certificate");

    let not_ours = partner.supplier_invoice("E310000000010", "130000001", now_ms());
    let a = partner.send_ecf(&base, t, &not_ours).await;
    assert_eq!(arecf_of(&a, "E310000000010"), ("1".into(), Some("4".into())));
    assert_eq!(xml::parse(&a.body).unwrap().text_at("DetalleAcusedeRecibo/RNCComprador"), Some("130000001"));
    assert_eq!(state(&hub), stored, "wrong buyer RNC");

    // Well-formed but not as DGII specifies (no Totales): code 1.
    let text = String::from_utf8(partner.supplier_invoice("E310000000011", OURS, now_ms())).unwrap();
    let (start, end) = (text.find("<Totales>").unwrap(), text.find("</Totales>").unwrap());
    let no_totals = format!("{}{}", &text[..start], &text[end + "</Totales>".len()..]);
    let a = partner.send_ecf(&base, t, no_totals.as_bytes()).await;
    assert_eq!(arecf_of(&a, "E310000000011"), ("1".into(), Some("1".into())));
    assert_eq!(state(&hub), stored, "specification error");

    // Malformed XML: no ARECF can name it — 400.
    for junk in [&b"<ECF><Encabezado>"[..], b"not xml at all", b""] {
        let a = partner.send_ecf(&base, t, junk).await;
        assert_eq!(a.status, 400, "{}", a.text());
        assert!(a.text().contains("\"field\":\"xml\""), "{}", a.text());
    }
    assert_eq!(state(&hub), stored, "malformed");

    // Head office approves it: the hub signs the ACECF, once.
    let c = &hub.admin;
    let decided = c
        .post(
            &format!("/v1/admin/purchases/{SUPPLIER}/E310000000007/decide"),
            &serde_json::json!({"decision": "approve", "by": "ana"}),
        )
        .await
        .unwrap();
    let acecf = decided["acecf"].as_str().unwrap().as_bytes().to_vec();
    independent_check(&acecf, "ACECF.xsd");
    let root = xml::parse(&acecf).unwrap();
    assert_eq!(root.text_at("DetalleAprobacionComercial/Estado"), Some("1"));
    assert_eq!(root.text_at("DetalleAprobacionComercial/MontoTotal"), Some("1180.00"));
    assert_eq!(root.text_at("DetalleAprobacionComercial/RNCComprador"), Some(OURS));
    let after = state(&hub);
    assert_eq!(after[1], 1);
    let twice = c
        .post(
            &format!("/v1/admin/purchases/{SUPPLIER}/E310000000007/decide"),
            &serde_json::json!({"decision": "reject", "by": "ana", "note": "x"}),
        )
        .await;
    assert!(twice.unwrap_err().to_string().contains("already_decided"));
    let unknown = c
        .post(
            &format!("/v1/admin/purchases/{SUPPLIER}/E310000000099/decide"),
            &serde_json::json!({"decision": "approve", "by": "ana"}),
        )
        .await;
    assert!(unknown.is_err());
    assert_eq!(state(&hub), after, "refused decisions change nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn commercial_approvals_of_our_documents_are_recorded_once_and_a_rejection_alerts() {
    let Some((hub, pki)) = receiver_hub().await else { return };
    let buyer = Partner::new(SUPPLIER, signer_of(&pki.leaf_p12));
    let base = hub.url.clone();
    let token = buyer.token(&base).await;
    let t = Some(token.as_str());
    // Two e-CF a register of ours issued (the hub holds their bytes).
    let store = hub.create_store("colmado").await;
    let (mut reg, _) = hub.enroll(store).await;
    let docs: Vec<PushDocument> = ["E310000000005", "E310000000006"]
        .iter()
        .map(|n| {
            let xml = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><ECF><eNCF>{n}</eNCF></ECF>").into_bytes();
            PushDocument { sha256: Hash256::of(&xml), xml }
        })
        .collect();
    let e1 = append(&mut reg, store, issued("E310000000005", &docs[0]));
    let e2 = append(&mut reg, store, issued("E310000000006", &docs[1]));
    let mut sorted = docs.clone();
    sorted.sort_by_key(|d| d.sha256);
    let r = hub.push_with_documents(&reg, &[e1, e2], &sorted).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let approve = buyer.approval(OURS, "E310000000005", "07-12-2026", "1180.00", true, None, now_ms());
    independent_check(&approve, "ACECF.xsd");
    let a = buyer.send_approval(&base, t, &approve).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.text().contains("\"stored\":\"new\""), "{}", a.text());
    let alerts_before = state(&hub)[5];
    let reject = buyer.approval(OURS, "E310000000006", "07-12-2026", "1180.00", false, Some("Mercancía dañada"), now_ms());
    independent_check(&reject, "ACECF.xsd");
    let a = buyer.send_approval(&base, t, &reject).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let s = state(&hub);
    assert_eq!(s[2], 2);
    assert_eq!(s[5], alerts_before + 1, "a rejection raises an alert");
    let alerts = hub.admin_get("/v1/admin/alerts").await;
    assert!(alerts.to_string().contains("Mercancía dañada"), "{alerts}");
    let health = hub.admin_get("/v1/health").await;
    assert!(health.to_string().contains("open alert"), "{health}");
    let listed = hub.admin_get("/v1/admin/commercial-approvals").await;
    assert_eq!(listed["approvals"].as_array().unwrap().len(), 2, "{listed}");

    // The same ACECF again: a duplicate, nothing changes; a different one
    // for the same document: 409; a document we never issued: 404; another
    // issuer's: 400; a bad signature: 400; malformed: 400.
    let a = buyer.send_approval(&base, t, &approve).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.text().contains("\"stored\":\"duplicate\""), "{}", a.text());
    let changed = buyer.approval(OURS, "E310000000005", "07-12-2026", "1180.00", false, Some("no"), now_ms());
    assert_eq!(buyer.send_approval(&base, t, &changed).await.status, 409);
    let unknown = buyer.approval(OURS, "E310000000077", "07-12-2026", "1180.00", true, None, now_ms());
    assert_eq!(buyer.send_approval(&base, t, &unknown).await.status, 404);
    let theirs = buyer.approval("130000001", "E310000000005", "07-12-2026", "1180.00", true, None, now_ms());
    let a = buyer.send_approval(&base, t, &theirs).await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.text().contains("not_ours"), "{}", a.text());
    let tampered = String::from_utf8(buyer.approval(OURS, "E310000000006", "07-12-2026", "1180.00", true, None, now_ms()))
        .unwrap()
        .replace("<Estado>1</Estado>", "<Estado>2</Estado>");
    let a = buyer.send_approval(&base, t, tampered.as_bytes()).await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.text().contains("bad_signature"), "{}", a.text());
    assert_eq!(buyer.send_approval(&base, t, b"<ACECF>").await.status, 400);
    assert_eq!(state(&hub), s, "refused approvals change nothing");
}
}

/// A hub for the taxpayer `rnc` with the test CA trusted, its certificate
/// installed before its workers start, DGII at `emu` (`workers` 0: none).
async fn taxpayer_hub(rnc: &str, emu: &Emulator, workers: usize) -> TestHub {
    let pki = pki::Pki::get().unwrap();
    let mut cfg = test_config();
    cfg.tax_authority = Some(TaxAuthorityConfig {
        rnc: rnc.into(),
        legal_name: "Contribuyente de Prueba SRL".into(),
        address: Some("Calle 2, Santiago".into()),
        ecf_base_url: emu.ecf_base_url(),
        fc_base_url: emu.fc_base_url(),
        workers,
        idle_poll_ms: 50,
        retry_base_ms: 100,
        retry_cap_ms: 1_000,
        trusted_ca: Some(pki.ca_pem.display().to_string()),
        ..TaxAuthorityConfig::default()
    });
    let mut hub = TestHub::start_with(cfg).await;
    hub.install_test_certificate();
    hub.restart().await;
    hub
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread")]
async fn head_offices_acecf_reaches_the_supplier_found_in_the_directory_and_dgii_once() {
    if !require_tool("xmllint") || !require_tool("xmlsec1") {
        return;
    }
    let Some(pki) = pki::Pki::get() else { return };
    let xsd = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd");
    let checks = Checks { xsd_dir: Some(xsd), signatures: true };
    let emu = Emulator::start_checked("127.0.0.1:0".parse().unwrap(), OURS, Faults::default(), 3, checks)
        .await
        .unwrap();
    // The supplier runs Caja too: its hub holds the E31 it issued to us.
    let supplier_hub = taxpayer_hub(SUPPLIER, &emu, 0).await;
    let store = supplier_hub.create_store("ferreteria").await;
    let (mut reg, _) = supplier_hub.enroll(store).await;
    let supplier = Partner::new(SUPPLIER, signer_of(&pki.leaf_p12));
    let invoice = supplier.supplier_invoice("E310000000007", OURS, now_ms());
    let doc = PushDocument { sha256: Hash256::of(&invoice), xml: invoice.clone() };
    let e = append(&mut reg, store, issued("E310000000007", &doc));
    let r = supplier_hub.push_with_documents(&reg, &[e], &[doc]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    emu.set_directory(SUPPLIER, &supplier_hub.url);

    // We receive it and head office approves it.
    let ours = taxpayer_hub(OURS, &emu, 1).await;
    let token = supplier.token(&ours.url).await;
    let a = supplier.send_ecf(&ours.url, Some(&token), &invoice).await;
    assert_eq!(arecf_of(&a, "E310000000007"), ("0".into(), None));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["admin", "--url", &ours.url, "purchases", "--issuer", SUPPLIER, "--encf", "E310000000007",
               "--decide", "approve", "--by", "ana"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Both deliveries end delivered; each destination got one content.
    let mut deliveries = serde_json::Value::Null;
    for _ in 0..200 {
        deliveries = ours.admin_get("/v1/admin/purchases").await["deliveries"].clone();
        let states: Vec<&str> = deliveries.as_array().unwrap().iter().map(|d| d["state"].as_str().unwrap()).collect();
        if states == ["delivered", "delivered"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(deliveries[0]["state"], "delivered", "{deliveries}");
    assert_eq!(deliveries[1]["state"], "delivered", "{deliveries}");
    assert_eq!(emu.approvals().get("E310000000007"), Some(&(1, 1)));
    let (encf, buyer, estado): (String, String, i64) = supplier_hub
        .db()
        .query_row("SELECT encf, buyer_rnc, estado FROM commercial_approvals", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((encf.as_str(), buyer.as_str(), estado), ("E310000000007", OURS, 1));
    let listed = supplier_hub.admin_get("/v1/admin/commercial-approvals").await;
    assert_eq!(listed["approvals"].as_array().unwrap().len(), 1, "{listed}");
}
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread")]
async fn an_e31_reaches_an_electronic_buyer_and_its_arecf_is_kept() {
    if !require_tool("xmllint") || !require_tool("xmlsec1") {
        return;
    }
    let Some(pki) = pki::Pki::get() else { return };
    let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), OURS, Faults::default(), 5)
        .await
        .unwrap();
    let buyer_hub = taxpayer_hub(SUPPLIER, &emu, 0).await;
    emu.set_directory(SUPPLIER, &buyer_hub.url);
    let ours = taxpayer_hub(OURS, &emu, 1).await;
    // A register of ours issues two E31: to an electronic buyer, and to one
    // DGII's directory does not list.
    let us = Partner::new(OURS, signer_of(&pki.leaf_p12));
    let store = ours.create_store("colmado").await;
    let (mut reg, _) = ours.enroll(store).await;
    let mut events = Vec::new();
    let mut docs = Vec::new();
    for (encf, buyer) in [("E310000000021", SUPPLIER), ("E310000000022", "130000001")] {
        let xml = us.supplier_invoice(encf, buyer, now_ms());
        let doc = PushDocument { sha256: Hash256::of(&xml), xml };
        events.push(append(&mut reg, store, issued(encf, &doc)));
        docs.push(doc);
    }
    docs.sort_by_key(|d| d.sha256);
    let r = ours.push_with_documents(&reg, &events, &docs).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let mut states = serde_json::Value::Null;
    for _ in 0..200 {
        states = ours.admin_get("/v1/admin/commercial-approvals").await["e31_deliveries"].clone();
        let s: Vec<&str> = states.as_array().unwrap().iter().map(|d| d["state"].as_str().unwrap()).collect();
        if s == ["delivered", "not_electronic"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(states[0]["state"], "delivered", "{states}");
    assert_eq!(states[0]["arecf_estado"], 0, "{states}");
    assert_eq!(states[1]["state"], "not_electronic", "{states}");
    let arecf: Vec<u8> = ours
        .db()
        .query_row("SELECT arecf FROM ecf_deliveries WHERE encf = 'E310000000021'", [], |r| r.get(0))
        .unwrap();
    independent_check(&arecf, "ARECF.xsd");
    let received: i64 = buyer_hub
        .db()
        .query_row("SELECT COUNT(*) FROM received_ecf WHERE encf = 'E310000000021'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(received, 1, "the buyer holds it once");
}
}

#[tokio::test(flavor = "multi_thread")]
async fn the_printed_representation_carries_what_dgii_asks_for() {
    let Some((hub, pki)) = receiver_hub().await else {
        return;
    };
    let us = Partner::new(OURS, signer_of(&pki.leaf_p12));
    let xml = us.supplier_invoice("E310000000031", SUPPLIER, now_ms());
    let code = xmldsig::security_code(&xml).unwrap();
    let store = hub.create_store("colmado").await;
    let (mut reg, _) = hub.enroll(store).await;
    let doc = PushDocument {
        sha256: Hash256::of(&xml),
        xml,
    };
    let e = append(&mut reg, store, issued("E310000000031", &doc));
    let r = hub.push_with_documents(&reg, &[e], &[doc]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("E310000000031.pdf");
    let run = |encf: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .args([
                "fiscal",
                "--url",
                &hub.url,
                "representation",
                "--encf",
                encf,
                "--out",
            ])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| run("E310000000031"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pdf = std::fs::read(&file).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));
    // The cross-reference table is where the trailer says.
    let text = String::from_utf8_lossy(&pdf).into_owned();
    let at: usize = text
        .rsplit("startxref")
        .next()
        .unwrap()
        .trim()
        .trim_end_matches("%%EOF")
        .trim()
        .parse()
        .unwrap();
    assert!(
        pdf[at..].starts_with(b"xref"),
        "startxref points at the table"
    );
    // An A4 page, laid out in whole points (integer operands, no floats).
    assert!(text.contains("/MediaBox [0 0 595 842]"), "A4 media box");
    assert!(text.contains("/F1 10 Tf"), "font set with an integer size");
    assert!(text.contains(" re\n"), "the QR's modules are drawn");
    let latin1 = |s: &str| {
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect::<Vec<u8>>()
    };
    let shown = pdf_strings(&pdf);
    for needle in [
        "Factura de Crédito Fiscal Electrónica".to_owned(),
        "e-NCF: E310000000031".to_owned(),
        format!("RNC {OURS}"),
        format!("RNC comprador: {SUPPLIER}"),
        "Cemento gris 42.5 kg".to_owned(),
        "Total: 1180.00".to_owned(),
        format!("Código de Seguridad: {code}"),
        "Fecha de Firma Digital: ".to_owned(),
    ] {
        let n = latin1(&needle);
        assert!(
            shown.windows(n.len()).any(|w| w == n.as_slice()),
            "{needle} not in the PDF: {}",
            String::from_utf8_lossy(&shown)
        );
    }
    let unknown = tokio::task::block_in_place(|| run("E310000000099"));
    assert!(!unknown.status.success());
}

/// The bytes of every string the PDF shows (literal `(…)` with its escapes,
/// and hex `<…>`), one per line: what a reader of the page sees.
fn pdf_strings(pdf: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pdf.len() {
        match pdf[i] {
            b'(' => {
                let mut depth = 1;
                i += 1;
                while i < pdf.len() && depth > 0 {
                    match pdf[i] {
                        b'\\' => {
                            i += 1;
                            let c = pdf.get(i).copied().unwrap_or(b'\\');
                            if (b'0'..=b'7').contains(&c) {
                                let mut v = 0u32;
                                let mut k = 0;
                                while k < 3 && pdf.get(i).is_some_and(|d| (b'0'..=b'7').contains(d))
                                {
                                    v = v * 8 + u32::from(pdf[i] - b'0');
                                    i += 1;
                                    k += 1;
                                }
                                out.push(u8::try_from(v & 0xff).unwrap());
                                continue;
                            }
                            out.push(match c {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                other => other,
                            });
                        }
                        b'(' => {
                            depth += 1;
                            out.push(b'(');
                        }
                        b')' => {
                            depth -= 1;
                            if depth > 0 {
                                out.push(b')');
                            }
                        }
                        c => out.push(c),
                    }
                    i += 1;
                }
                out.push(b'\n');
            }
            b'<' if pdf.get(i + 1) != Some(&b'<') && (i == 0 || pdf[i - 1] != b'<') => {
                let end = pdf[i..]
                    .iter()
                    .position(|c| *c == b'>')
                    .map_or(pdf.len(), |p| i + p);
                let hex: Vec<u8> = pdf[i + 1..end]
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_hexdigit)
                    .collect();
                for pair in hex.chunks(2) {
                    let s = std::str::from_utf8(pair).unwrap();
                    out.push(u8::from_str_radix(&format!("{s:0<2}"), 16).unwrap());
                }
                out.push(b'\n');
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_certification_kit_runs_the_sample_set_end_to_end() {
    if !require_tool("xmllint") || !require_tool("xmlsec1") {
        return;
    }
    let xsd = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd");
    let checks = Checks {
        xsd_dir: Some(xsd),
        signatures: true,
    };
    let emu = Emulator::start_checked(
        "127.0.0.1:0".parse().unwrap(),
        OURS,
        Faults::default(),
        7,
        checks,
    )
    .await
    .unwrap();
    let hub = taxpayer_hub(OURS, &emu, 0).await;
    let sample = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/dgii-certification-sample.csv");
    let run = |set: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .args(["dgii", "certification", "--data-dir"])
            .arg(hub.data_dir())
            .arg("--set")
            .arg(set)
            .output()
            .unwrap()
    };
    // A bad set names its line and column and sends nothing.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    let text = std::fs::read_to_string(&sample)
        .unwrap()
        .replacen(",1600\n", ",1700\n", 1);
    std::fs::write(&bad, text).unwrap();
    let out = tokio::task::block_in_place(|| run(&bad));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3, column itbis_bp"), "{err}");
    assert!(emu.totals().per_number.is_empty(), "nothing sent");

    let out = tokio::task::block_in_place(|| run(&sample));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, String, String)> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["encf"].as_str().unwrap().into(),
                r["channel"].as_str().unwrap().into(),
                r["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "E310000000001".to_owned(),
                "ecf".to_owned(),
                "accepted".to_owned()
            ),
            ("E320000000001".into(), "rfce".into(), "accepted".into()),
            ("E320000000002".into(), "ecf".into(), "accepted".into()),
        ]
    );
    let totals = emu.totals();
    for n in ["E310000000001", "E320000000001", "E320000000002"] {
        let c = &totals.per_number[n];
        assert_eq!(
            (c.received, c.refused, c.duplicates),
            (1, 0, 0),
            "{n}: {c:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_services_are_behind_the_body_limit_and_a_rate_limit() {
    let mut cfg = test_config();
    cfg.tax_authority = Some(TaxAuthorityConfig {
        rnc: OURS.into(),
        legal_name: "Colmado Cliente SRL".into(),
        address: Some("Calle 1".into()),
        workers: 0,
        ..TaxAuthorityConfig::default()
    });
    cfg.body_limit_bytes = 64 * 1024;
    cfg.receiver_rate_limit = caja_hub::ratelimit::RateLimit {
        burst: 3,
        per_minute: 1,
    };
    let hub = TestHub::start_with(cfg).await;
    let before = state(&hub);
    let big = vec![b'x'; 100 * 1024];
    let r = hub
        .http
        .post(format!("{}/fe/recepcion/api/ecf", hub.url))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // The refused body never reached the service; three calls use the
    // burst of 3, the next is refused with a wait.
    for _ in 0..3 {
        let r = hub
            .http
            .get(format!("{}/fe/autenticacion/api/semilla", hub.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = hub
        .http
        .get(format!("{}/fe/autenticacion/api/semilla", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(state(&hub), before);
}

/// A supplier's e-CF as another program writes and signs it: Caja's
/// partner's document without its signature, pretty-printed, with namespace
/// declarations on the root and another XML declaration, a signature
/// template signed by `xmlsec1 --sign` (self-closing tags, wrapped base64),
/// then CRLF line ends and single-quoted attributes.
fn signed_by_other_software(pki: &pki::Pki, caja_signed: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(caja_signed.to_vec()).unwrap();
    let (a, b) = (
        text.find("<Signature").unwrap(),
        text.find("</Signature>").unwrap(),
    );
    let body = format!("{}{}", &text[..a], &text[b + "</Signature>".len()..]);
    let body = body
        .replacen(xml::DECLARATION, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", 1)
        .replacen(
            "<ECF>",
            "<ECF xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">",
            1,
        )
        .replace("><", ">\n  <");
    let template = "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">\n<SignedInfo>\n<CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>\n<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\n<Reference URI=\"\">\n<Transforms>\n<Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\n</Transforms>\n<DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\n<DigestValue/>\n</Reference>\n</SignedInfo>\n<SignatureValue/>\n<KeyInfo>\n<X509Data>\n<X509Certificate/>\n</X509Data>\n</KeyInfo>\n</Signature>\n</ECF>";
    let unsigned = body.replacen("</ECF>", template, 1);
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("t.xml"), dir.path().join("s.xml"));
    std::fs::write(&inp, &unsigned).unwrap();
    let key = format!("{},{}", pki.leaf_key_pem.display(), pki.leaf_pem.display());
    let run = std::process::Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem", &key, "--output"])
        .arg(&out)
        .arg(&inp)
        .output()
        .expect("xmlsec1 runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let signed = std::fs::read_to_string(&out).unwrap();
    // Single quotes inside tags (no value holds an apostrophe), CRLF.
    let mut in_tag = false;
    let rewritten: String = signed
        .chars()
        .map(|c| {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ => {}
            }
            if in_tag && c == '"' {
                '\''
            } else {
                c
            }
        })
        .collect();
    let bytes = rewritten.replace('\n', "\r\n").into_bytes();
    // The independent verifier accepts it against the test CA.
    let check = dir.path().join("c.xml");
    std::fs::write(&check, &bytes).unwrap();
    let v = std::process::Command::new("xmlsec1")
        .args([
            "--verify",
            "--enabled-reference-uris",
            "empty",
            "--trusted-pem",
        ])
        .arg(&pki.ca_pem)
        .arg(&check)
        .output()
        .expect("xmlsec1 runs");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn a_supplier_e_cf_signed_and_serialized_by_other_software_is_received() {
    let Some((hub, pki)) = receiver_hub().await else {
        return;
    };
    let partner = Partner::new(SUPPLIER, signer_of(&pki.leaf_p12));
    let base = hub.url.clone();
    let token = partner.token(&base).await;
    let t = Some(token.as_str());
    let before = state(&hub);

    let theirs = signed_by_other_software(
        pki,
        &partner.supplier_invoice("E310000000021", OURS, now_ms()),
    );
    assert!(xml::parse(&theirs).is_err(), "not Caja's serialization");
    assert!(String::from_utf8_lossy(&theirs).contains("\r\n  <"));
    // One byte of content changed: not received, code 2, nothing stored.
    let text = String::from_utf8(theirs.clone()).unwrap();
    let tampered = text.replacen("<MontoTotal>1180.00<", "<MontoTotal>1180.01<", 1);
    assert_ne!(tampered, text);
    let a = partner.send_ecf(&base, t, tampered.as_bytes()).await;
    assert_eq!(
        arecf_of(&a, "E310000000021"),
        ("1".into(), Some("2".into()))
    );
    assert_eq!(state(&hub), before, "tampered");

    let a = partner.send_ecf(&base, t, &theirs).await;
    assert_eq!(arecf_of(&a, "E310000000021"), ("0".into(), None));
    let listed = hub.admin_get("/v1/admin/purchases").await;
    let p = &listed["purchases"][0];
    assert_eq!(p["encf"], "E310000000021");
    assert_eq!(p["total"], 118_000);
    assert_eq!(p["sha256"], Hash256::of(&theirs).to_hex());
    let again = partner.send_ecf(&base, t, &theirs).await;
    assert_eq!(
        arecf_of(&again, "E310000000021"),
        ("1".into(), Some("3".into()))
    );
}
