//! Signed documents beside the events of a push (DESIGN "Electronic fiscal
//! documents"): the hub stores each document a `FiscalDocumentIssued` event
//! names, byte for byte, with its e-NCF, kind, device and seq; a push whose
//! new events name a document it neither carries nor the hub holds is
//! refused whole (400 `invalid`, field `documents`), a document whose bytes
//! do not hash to its `sha256` is refused naming `documents[i].sha256`, and
//! nothing of a refused push is stored.
//!
//! Each runs on SQLite and, as `<name>::postgres`, on PostgreSQL.

mod support;

use caja_hub::workload::Register;
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{SaleId, StoreId};
use caja_shared::kind::{EventBody, FiscalDocType, FiscalDocumentIssued, IssuedDocument};
use caja_shared::money::Money;
use caja_shared::push::PushDocument;
use support::*;

fn doc(text: &str) -> PushDocument {
    let xml = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><ECF><eNCF>{text}</eNCF></ECF>")
        .into_bytes();
    PushDocument {
        sha256: Hash256::of(&xml),
        xml,
    }
}

fn issued(encf: &str, docs: &[(&str, &PushDocument)]) -> EventBody {
    EventBody::FiscalDocumentIssued(FiscalDocumentIssued {
        encf: encf.into(),
        doc_type: FiscalDocType::Invoice,
        sale_id: Some(SaleId::new_v7(now_ms(), &mut SeededRandom::new(7)).unwrap()),
        return_id: None,
        security_code: "Ab+/9z".into(),
        signed_at_ms: now_ms(),
        total: Money(9_500),
        documents: docs
            .iter()
            .map(|(kind, d)| IssuedDocument {
                kind: (*kind).into(),
                sha256: d.sha256,
            })
            .collect(),
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

fn stored(hub: &TestHub) -> Vec<(String, String, String, String, i64, Vec<u8>)> {
    let db = hub.db();
    let mut stmt = db
        .prepare("SELECT sha256, encf, kind, device_id, seq, xml FROM signed_documents ORDER BY seq, kind")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn events_of(hub: &TestHub) -> i64 {
    hub.db()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'FiscalDocumentIssued'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

on_both_backends! {
#[tokio::test]
async fn the_hub_stores_the_documents_an_event_names_and_refuses_what_is_missing_or_altered() {
    let hub = TestHub::start().await;
    let store = hub.create_store("colmado").await;
    let (mut reg, _) = hub.enroll(store).await;
    let (ecf, rfce) = (doc("E320000000001"), doc("E320000000001 resumen"));

    // A new event names a document the push does not carry: refused whole.
    let e1 = append(&mut reg, store, issued("E320000000001", &[("ecf", &ecf), ("rfce", &rfce)]));
    let r = hub.push_with_documents(&reg, std::slice::from_ref(&e1), std::slice::from_ref(&ecf)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"], "invalid", "{}", r.body);
    assert_eq!(r.body["field"], "documents", "{}", r.body);
    assert!(stored(&hub).is_empty());
    assert_eq!(events_of(&hub), 0, "nothing of a refused push is stored");

    // A document whose bytes do not hash to its sha256.
    let altered = PushDocument {
        sha256: rfce.sha256,
        xml: b"<ECF>otro</ECF>".to_vec(),
    };
    let r = hub
        .push_with_documents(&reg, std::slice::from_ref(&e1), &[ecf.clone(), altered])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["field"], "documents[1].sha256", "{}", r.body);
    assert!(stored(&hub).is_empty());

    // A document no event of the push names.
    let stray = doc("E320000000099");
    let r = hub
        .push_with_documents(&reg, std::slice::from_ref(&e1), &[ecf.clone(), rfce.clone(), stray])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["field"], "documents[2].sha256", "{}", r.body);
    assert_eq!(events_of(&hub), 0);

    // Both documents: stored unchanged, with number, kind, device and seq.
    let mut docs = vec![ecf.clone(), rfce.clone()];
    docs.sort_by_key(|d| d.sha256);
    let r = hub.push_with_documents(&reg, std::slice::from_ref(&e1), &docs).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = stored(&hub);
    assert_eq!(rows.len(), 2);
    for (d, kind) in [(&ecf, "ecf"), (&rfce, "rfce")] {
        let row = rows.iter().find(|r| r.2 == kind).unwrap();
        assert_eq!(row.0, d.sha256.to_hex());
        assert_eq!(row.1, "E320000000001");
        assert_eq!(row.3, reg.device.to_string());
        assert_eq!(row.4, e1.seq().get() as i64);
        assert_eq!(row.5, d.xml, "the bytes are stored unchanged");
    }

    // The same batch again (duplicates) without documents, and a new event
    // naming a document the hub already holds: both fine, nothing doubled.
    let r = hub.push(&reg, std::slice::from_ref(&e1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["duplicates"], 1, "{}", r.body);
    let e2 = append(&mut reg, store, issued("E320000000001", &[("ecf", &ecf)]));
    let r = hub.push(&reg, std::slice::from_ref(&e2)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(stored(&hub).len(), 2);
    // The database refuses to change a stored document.
    let err = hub
        .db()
        .execute(
            "UPDATE signed_documents SET xml = $2 WHERE sha256 = $1",
            caja_hub::storage::db::params![ecf.sha256.to_hex(), vec![0u8]],
        )
        .unwrap_err();
    assert!(err.to_string().contains("never change"), "{err}");
}
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditors_export_writes_the_exact_bytes_and_an_index() {
    let hub = TestHub::start().await;
    let store = hub.create_store("colmado").await;
    let (mut reg, _) = hub.enroll(store).await;
    let (ecf, rfce) = (doc("E320000000001"), doc("E320000000001 resumen"));
    let big = doc("E310000000002");
    let e1 = append(&mut reg, store, issued("E320000000001", &[("ecf", &ecf), ("rfce", &rfce)]));
    let e2 = append(&mut reg, store, issued("E310000000002", &[("ecf", &big)]));
    let mut docs = vec![ecf.clone(), rfce.clone(), big.clone()];
    docs.sort_by_key(|d| d.sha256);
    let r = hub.push_with_documents(&reg, &[e1, e2], &docs).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let url = hub.url.clone();
    let run = |args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["fiscal", "--url", &url, "documents"])
            .args(args)
            .output()
            .unwrap()
    };
    let o = tokio::task::block_in_place(|| run(vec!["--out".into(), dir.display().to_string()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (name, d) in [
        ("E320000000001.ecf.xml", &ecf),
        ("E320000000001.rfce.xml", &rfce),
        ("E310000000002.ecf.xml", &big),
    ] {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), d.xml, "{name}");
    }
    let index = std::fs::read_to_string(dir.join("index.csv")).unwrap();
    let lines: Vec<&str> = index.lines().collect();
    assert_eq!(lines[0], "encf,type,kind,security_code,state,track_id");
    assert_eq!(lines.len(), 4, "{index}");
    assert!(
        lines.contains(&"E320000000001,32,rfce,Ab+/9z,pending,"),
        "{index}"
    );
    // A day range with nothing signed in it exports nothing; a bad date is
    // named.
    let empty = out.path().join("empty");
    let o = tokio::task::block_in_place(|| {
        run(vec![
            "--out".into(),
            empty.display().to_string(),
            "--from".into(),
            "2001-01-01".into(),
            "--to".into(),
            "2001-01-31".into(),
        ])
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(empty.join("index.csv")).unwrap().lines().count(), 1);
    let o = tokio::task::block_in_place(|| {
        run(vec!["--out".into(), empty.display().to_string(), "--from".into(), "2001-13-01".into()])
    });
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("from"), "{}", String::from_utf8_lossy(&o.stderr));
}
}

/// A one-line cash sale with e-NCF `number` (RD$ `price` centavos, 18 %).
fn sale_of(number: &str, price: i64) -> caja_shared::kind::SaleCreated {
    use caja_shared::kind::{FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine};
    use caja_shared::money::{line_tax, QtyMilli, TaxRateBp};
    let total = Money(price);
    let tax = line_tax(total, TaxRateBp::new(1800).unwrap()).unwrap();
    SaleCreated {
        sale_id: SaleId::new_v7(now_ms(), &mut caja_hub::system::OsRandom::new()).unwrap(),
        cashier: "ana".into(),
        shift_id: None,
        customer: None,
        fiscal: Some(FiscalRef {
            series: number[..3].into(),
            number: number.into(),
            valid_until: Some("2099-12-31".into()),
            // DGII wants the buyer on an E32 of RD$250,000 or more.
            buyer_tax_id: (price >= 25_000_000).then(|| "101010101".into()),
            modifies: None,
            buyer_name: (price >= 25_000_000).then(|| "Ferreteria Central SRL".into()),
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

on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_register_signed_documents_validates_with_xmllint_and_verifies_with_xmlsec1() {
    if !require_tool("xmllint") || !require_tool("xmlsec1") {
        return;
    }
    let Some(signer) = signer() else {
        return;
    };
    let pki = pki::Pki::get().unwrap();
    let hub = TestHub::start().await;
    let store = hub.create_store("colmado").await;
    let (mut reg, _) = hub.enroll(store).await;
    let mut events = Vec::new();
    let mut docs = Vec::new();
    for (number, price) in [("E320000000031", 9_500), ("E320000000032", 30_000_000)] {
        let sale = sale_of(number, price);
        let (issued, signed) = caja_hub::workload::signed_sale_documents(
            &sale,
            &issuer("131880738"),
            &signer,
            now_ms(),
        )
        .unwrap();
        let e = append(&mut reg, store, EventBody::SaleCreated(sale));
        let i = reg.append(
            store,
            EventBody::FiscalDocumentIssued(issued),
            vec![e.id()],
            now_ms(),
            &mut caja_hub::system::OsRandom::new(),
        );
        events.extend([e, i]);
        docs.extend(signed);
    }
    docs.sort_by_key(|d| d.sha256);
    let r = hub.push_with_documents(&reg, &events, &docs).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let o = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["fiscal", "--url", &hub.url, "documents", "--out"])
            .arg(&dir)
            .output()
            .unwrap()
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let files = [
        ("E320000000031.ecf.xml", "e-CF-32.xsd"),
        ("E320000000031.rfce.xml", "RFCE-32.xsd"),
        ("E320000000032.ecf.xml", "e-CF-32.xsd"),
    ];
    for (file, schema) in files {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).unwrap();
        assert!(docs.iter().any(|d| d.xml == bytes), "{file}: not the pushed bytes");
        check_with_xmllint_and_xmlsec1(&path, schema);
    }
    let index = std::fs::read_to_string(dir.join("index.csv")).unwrap();
    assert_eq!(index.lines().count(), 4, "{index}");
    // xmlsec1 refuses a file altered after export (the check can fail).
    let path = dir.join("E320000000032.ecf.xml");
    let altered = std::fs::read_to_string(&path)
        .unwrap()
        .replace("300000.00", "300001.00");
    std::fs::write(&path, altered).unwrap();
    let sec = std::process::Command::new("xmlsec1")
        .args(["--verify", "--enabled-reference-uris", "empty", "--trusted-pem"])
        .arg(&pki.ca_pem)
        .arg(&path)
        .output()
        .unwrap();
    assert!(!sec.status.success(), "an altered document verified");
}
}
