//! Two-phase invoicing end to end: a real register sells electronic fiscal
//! documents (e-CF `E32`) offline-capable as always (phase one), the real hub
//! queues them in its tax-authority outbox in the ingest transaction, its
//! workers submit them to the DGII emulator over loopback HTTP (phase two),
//! and the verdicts come back to the register through its hub chain: counts
//! by status, a rejection that head office must act on, a credit note (`E34`)
//! for a return, and a reprinted receipt that carries the authority's QR code
//! and security code once confirmed.

use std::time::{Duration, Instant};

use caja_hub::config::{HubConfig, TaxAuthorityConfig};
use caja_hub::dgii_emulator::{Emulator, Faults};
use caja_node::register::ReturnRequest;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, Hub, Till};
use serde_json::json;

const RNC: &str = "131880738";

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

fn number(series: &str, n: u64) -> String {
    format!("{series}{n:010}")
}

/// Syncs until `done` holds for the register's status.
fn sync_until(
    till: &mut Till,
    what: &str,
    done: impl Fn(&caja_node::register::Status) -> bool,
) -> caja_node::register::Status {
    let start = Instant::now();
    loop {
        let _ = till.sync.round();
        let st = till.register.status().expect("status");
        if done(&st) {
            return st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{what}: {:?}",
            st.fiscal_documents
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn electronic_documents_are_confirmed_by_the_authority_and_the_register_learns_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // The register's block starts at 1: its second sale will be rejected.
    let emu = rt
        .block_on(Emulator::start(
            "127.0.0.1:0".parse().expect("addr"),
            RNC,
            Faults {
                reject: [number("E32", 2)].into(),
                in_process_polls: 1,
                ..Faults::default()
            },
            1,
        ))
        .expect("emulator");
    let tax = TaxAuthorityConfig {
        ecf_base_url: emu.ecf_base_url(),
        fc_base_url: emu.fc_base_url(),
        rnc: RNC.into(),
        legal_name: "Colmado La Esquina SRL".into(),
        address: Some("Calle El Conde 12, Santo Domingo".into()),
        workers: 2,
        lease_ms: 6_000,
        request_timeout_ms: 2_000,
        poll_interval_ms: 50,
        retry_base_ms: 50,
        retry_cap_ms: 500,
        idle_poll_ms: 50,
        ..TaxAuthorityConfig::default()
    };
    let hub = Hub::start_with(&tmp.path().join("hub"), |c| HubConfig {
        tax_authority: Some(tax),
        ..c
    })
    .expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    for prefix in ["E32", "E34"] {
        hub.post(
            "/v1/admin/fiscal/series",
            &json!({"prefix": prefix, "digits": 10, "first": 1, "last": 1000, "valid_until": "2099-12-31"}),
        )
        .expect("series");
    }
    let mut till =
        Till::enroll(&hub, store, "caja-1", tmp.path(), fast_sync_settings()).expect("enroll");
    till.configure(
        "fiscal_documents = [\"E32\", \"E34\"]\nfiscal_document = \"E32\"\nfiscal_block_size = 10\nfiscal_low_water = 2",
        fast_sync_settings(),
    )
    .expect("configure");
    // The register signs its e-CF (a throwaway certificate made with openssl).
    if !till
        .issue_ecf(RNC, fast_sync_settings())
        .expect("e-CF issuer")
    {
        return;
    }
    till.register
        .open_shift(op(), "ana", Money(0))
        .expect("shift");
    sync_until(&mut till, "fiscal blocks", |st| {
        st.fiscal.iter().all(|s| s.left > 0) && st.fiscal.len() == 2
    });

    // Phase one: three sales with e-CF numbers, made as always.
    let sales: Vec<_> = (0..3)
        .map(|_| till.register.sell(op(), &sale()).expect("sale"))
        .collect();
    let numbers: Vec<String> = sales
        .iter()
        .map(|s| s.fiscal_number.clone().expect("an e-CF number"))
        .collect();
    assert_eq!(
        numbers,
        [number("E32", 1), number("E32", 2), number("E32", 3)]
    );
    let st = till.register.status().expect("status");
    assert_eq!(st.fiscal_documents.awaiting, 3);
    // Before the verdict, the original receipt already carries the code the
    // register signed (offline too).
    let signed: Vec<String> = sales
        .iter()
        .map(|s| {
            caja_node::ecf::store::of_sale(till.register.conn(), s.sale_id)
                .expect("read")
                .expect("signed at the register")
                .security_code
        })
        .collect();
    let before = till
        .register
        .receipt_text(sales[0].sale_id)
        .expect("receipt");
    assert!(
        before.contains(&format!("Código de seguridad: {}", signed[0])),
        "{before}"
    );

    // Phase two: pushed, queued, submitted, decided, pulled back.
    let st = sync_until(&mut till, "verdicts", |st| {
        st.fiscal_documents.accepted == 2 && st.fiscal_documents.rejected == 1
    });
    assert_eq!(st.fiscal_documents.awaiting, 0);
    let text = caja_node::messages::status_fiscal(&st.fiscal, &st.fiscal_documents);
    assert!(
        text.contains("2 aceptados, 0 aceptados con condiciones, 1 rechazados, 0 por confirmar"),
        "{text}"
    );

    // The reprint carries the authority's QR code and security code.
    let code: String = till
        .register
        .conn()
        .query_row(
            "SELECT security_code FROM fiscal_documents WHERE document = ?1",
            [&numbers[0]],
            |r| r.get(0),
        )
        .expect("confirmed");
    assert_eq!(
        code, signed[0],
        "the authority saw the register's signature"
    );
    let after = till
        .register
        .receipt_text(sales[0].sale_id)
        .expect("receipt");
    assert!(
        after.contains(&format!("Código de seguridad: {code}")),
        "{after}"
    );
    assert!(
        after.contains(&format!(
            "ConsultaTimbreFC?RncEmisor={RNC}&ENCF={}&MontoTotal=130.00&CodigoSeguridad={}",
            numbers[0],
            caja_shared::ecf::receipt::percent_encode(&code)
        )),
        "{after}"
    );
    // The rejected document's receipt keeps the code it was printed with
    // (head office acts on the rejection).
    let rejected = till
        .register
        .receipt_text(sales[1].sale_id)
        .expect("receipt");
    assert!(
        rejected.contains(&format!("Código de seguridad: {}", signed[1])),
        "{rejected}"
    );

    // Head office sees the rejection as a manual conflict.
    let conflicts = hub
        .get("/v1/admin/conflicts?state=open")
        .expect("conflicts");
    assert!(
        conflicts["conflicts"]
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["reason"] == "fiscal_document_rejected"
                && c["subject"] == format!("fiscal_doc:{}", numbers[1])),
        "{conflicts}"
    );

    // A return of the first sale takes an E34 credit note, confirmed too.
    let ret = till
        .register
        .return_sale(
            op(),
            &ReturnRequest {
                sale: sales[0].sale_id.to_string(),
                lines: vec![caja_node::register::ReturnLineRequest {
                    line: 0,
                    qty_milli: 1000,
                    damaged: false,
                }],
                refund: PaymentMethod::Cash,
                modified_date: None,
                buyer_tax_id: None,
                buyer_name: None,
                customer: None,
                unknown_original: Vec::new(),
            },
            None,
        )
        .expect("return");
    let note = ret.credit_note.clone().expect("a credit note");
    assert!(note.starts_with("E34"), "{note}");
    sync_until(&mut till, "credit note", |st| {
        st.fiscal_documents.accepted == 3
    });
    let t = rt.block_on(async { emu.totals() });
    for n in numbers.iter().chain([&note]) {
        assert_eq!(t.per_number[n].received, 1, "{n}");
    }
    let outbox = hub.get("/v1/admin/outbox?state=accepted").expect("outbox");
    let credit = outbox["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .find(|d| d["document"] == note.as_str())
        .unwrap_or_else(|| panic!("{outbox}"));
    assert_eq!(credit["doc_type"], "credit_note");
    assert_eq!(credit["channel"], "ecf", "a credit note goes whole");
    assert!(credit["track_id"].is_string());
    rt.block_on(emu.stop());
}
