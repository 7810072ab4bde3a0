//! An e-CF sale made offline, end to end: a real hub on loopback, a real
//! register data directory with the `[ecf]` issuer configured and a
//! throwaway certificate installed (made with `openssl`, `caja_tests::pki`).
//! The register sells an `E32` while its network is cut: the sale is signed
//! in its own transaction and its ORIGINAL receipt already carries the
//! security code, the signing time (GMT-4) and the QR. Once the network is
//! back, the push delivers the signed documents beside their
//! `FiscalDocumentIssued` event and the hub holds them byte for byte.

use std::time::{Duration, Instant};

use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, Hub, Till};
use caja_tests::pki::SIGNER_RNC;
use caja_tests::proxy::Mode;
use serde_json::json;

fn op() -> OpId {
    OpId::new_v7(SystemClock.now_ms(), &mut OsRandom::new().expect("rng")).expect("op id")
}

fn sale() -> SaleRequest {
    SaleRequest {
        lines: vec![LineRequest {
            code: "ARROZ".into(),
            qty_milli: 2000,
            discount: None,
            unit_price: None,
        }],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 20_000,
            reference: None,
        }],
        discount: None,
        customer: None,
    }
}

fn sync_until(till: &mut Till, what: &str, done: impl Fn(&caja_node::register::Status) -> bool) {
    let start = Instant::now();
    loop {
        let _ = till.sync.round();
        let st = till.register.status().expect("status");
        if done(&st) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: {st:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_offline_e32_prints_code_time_and_qr_and_its_signed_bytes_reach_the_hub() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub")).expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    hub.post(
        "/v1/admin/fiscal/series",
        &json!({"prefix": "E32", "digits": 10, "first": 1, "last": 1000, "valid_until": "2099-12-31"}),
    )
    .expect("series");
    let mut till =
        Till::enroll(&hub, store, "caja-1", tmp.path(), fast_sync_settings()).expect("enroll");
    till.configure(
        "fiscal_documents = [\"E32\"]\nfiscal_block_size = 10\nfiscal_low_water = 2",
        fast_sync_settings(),
    )
    .expect("configure");
    if !till
        .issue_ecf(SIGNER_RNC, fast_sync_settings())
        .expect("e-CF issuer")
    {
        return; // openssl missing: the PKI printed why (a failure under CAJA_REQUIRE_EXTERNAL=1)
    }
    till.register
        .open_shift(op(), "ana", Money(0))
        .expect("shift");
    sync_until(&mut till, "fiscal block", |st| {
        st.fiscal.iter().any(|s| s.series == "E32" && s.left > 0)
    });

    // Offline: the sale is signed at the register and its original receipt
    // carries the code, the signing time and the QR.
    till.set_network(Mode::Down);
    assert!(till.sync.round().is_err(), "the hub is unreachable");
    let before_sale = SystemClock.now_ms();
    let r = till
        .register
        .sell(op(), &sale())
        .expect("offline e-CF sale");
    let number = r.fiscal_number.clone().expect("an e-NCF");
    assert!(number.starts_with("E32"), "{number}");
    let issued = caja_node::ecf::store::of_sale(till.register.conn(), r.sale_id)
        .expect("read")
        .expect("signed in the sale's transaction");
    assert_eq!(issued.security_code.len(), 6);
    assert!(
        issued.signed_at_ms >= before_sale - 60_000 && issued.signed_at_ms <= SystemClock.now_ms()
    );
    let text = till.register.receipt_text(r.sale_id).expect("receipt");
    assert!(
        text.contains(&format!("Código de seguridad: {}", issued.security_code)),
        "{text}"
    );
    assert!(text.contains("Fecha de firma: "), "{text}");
    assert!(
        text.contains("[QR: https://fc.dgii.gov.do/testecf/ConsultaTimbreFC?"),
        "{text}"
    );
    assert!(text.contains(&format!("ENCF={number}")), "{text}");
    let docs = caja_node::ecf::store::all(till.register.conn()).expect("documents");
    assert_eq!(
        docs.iter().map(|d| d.2.as_str()).collect::<Vec<_>>(),
        ["ecf", "rfce"],
        "an E32 under RD$250,000: the e-CF and its RFCE"
    );

    // Back online: the push delivers the documents beside their event.
    till.set_network(Mode::Up);
    sync_until(&mut till, "pushed", |st| st.unsynced == 0);
    let db = hub.db().expect("hub db");
    for (sha, encf, kind, xml) in &docs {
        let held: Vec<u8> = db
            .query_row(
                "SELECT xml FROM signed_documents WHERE sha256 = ?1",
                [sha],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{kind} of {encf} not held by the hub: {e}"));
        assert_eq!(&held, xml, "the hub holds the register's bytes unchanged");
        assert_eq!(Hash256::of(&held).to_hex(), *sha);
    }
}
