//! The DGII emulator refuses what DGII refuses: a document that does not
//! validate against DGII's XSD (checked with `xmllint`) and an unsigned one
//! are answered 400 with DGII-style `mensajes` and never processed; every
//! submission gets its own `trackId`, and a second arrival of an e-NCF
//! already received is rejected while the first one's verdict stays what
//! `consultatrackids` finds.

mod support;

use std::path::PathBuf;

use caja_hub::dgii_emulator::{Checks, Emulator, Faults};
use caja_hub::taxgw::multipart;
use serde_json::Value;
use support::require_tool;

const RNC: &str = "131880738";

/// DGII's schemas, resolved from the workspace (`../shared/dgii/xsd`).
fn xsd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd")
}

/// A bearer token from the emulator (seed, then the seed sent back).
async fn get_token(http: &reqwest::Client, emu: &Emulator) -> String {
    let seed = http
        .get(format!(
            "{}/autenticacion/api/autenticacion/semilla",
            emu.ecf_base_url()
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // Signed with the test PKI's certificate, as the hub signs it.
    let seed = match support::signer() {
        Some(signer) => {
            let signed = caja_hub::taxgw::dgii_signed::signed_seed(&seed, &signer).unwrap();
            // The hub-signed seed passes the independent checks.
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("semilla.xml");
            std::fs::write(&path, &signed).unwrap();
            support::check_with_xmllint_and_xmlsec1(&path, "Semilla.xsd");
            signed
        }
        None => seed.to_vec(),
    };
    let (ct, body) = multipart::form("xml", "semilla.xml", &seed);
    let r: Value = http
        .post(format!(
            "{}/autenticacion/api/autenticacion/validarsemilla",
            emu.ecf_base_url()
        ))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_owned()
}

async fn post(http: &reqwest::Client, url: String, token: &str, doc: &[u8]) -> (u16, Value) {
    let (ct, body) = multipart::form("xml", "131880738E320000000001.xml", doc);
    let r = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// An e-CF 32 summary that validates against `RFCE-32.xsd` when `signature`
/// stands in the schema's required last element.
fn rfce(number: &str, signature: &str, code: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><RFCE><Encabezado><Version>1.0</Version>\
         <IdDoc><TipoeCF>32</TipoeCF><eNCF>{number}</eNCF><TipoIngresos>01</TipoIngresos><TipoPago>1</TipoPago></IdDoc>\
         <Emisor><RNCEmisor>{RNC}</RNCEmisor><RazonSocialEmisor>Colmado</RazonSocialEmisor><FechaEmision>01-12-2026</FechaEmision></Emisor>\
         <Comprador></Comprador><Totales><MontoTotal>95.00</MontoTotal></Totales>\
         <CodigoSeguridadeCF>{code}</CodigoSeguridadeCF></Encabezado>{signature}</RFCE>"
    )
    .into_bytes()
}

const FAKE_SIGNATURE: &str = "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignatureValue>QUJDREVGMTIz</SignatureValue></Signature>";

#[tokio::test]
async fn the_emulator_refuses_a_schema_invalid_and_an_unsigned_document() {
    if !require_tool("xmllint") || support::signer().is_none() {
        return;
    }
    let emu = Emulator::start_checked(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults::default(),
        1,
        Checks {
            xsd_dir: Some(xsd_dir()),
            signatures: true,
        },
    )
    .await
    .unwrap();
    caja_hub::admin_client::install_crypto_provider();
    let http = reqwest::Client::new();
    let token = get_token(&http, &emu).await;
    let url = format!("{}/recepcionfc/api/recepcion/ecf", emu.fc_base_url());

    // Schema-invalid: a security code of 3 characters (the XSD wants 6).
    let (status, v) = post(
        &http,
        url.clone(),
        &token,
        &rfce("E320000000001", FAKE_SIGNATURE, "ABC"),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["estado"], "Rechazado", "{v}");
    assert_eq!(v["secuenciaUtilizada"], false, "{v}");
    let text = v["mensajes"].to_string();
    assert!(
        text.contains("XSD") && text.contains("CodigoSeguridadeCF"),
        "{v}"
    );

    // Unsigned: nothing where the signature goes (the schema refuses it
    // already), and without the schema check the signature check does.
    let (status, v) = post(
        &http,
        url.clone(),
        &token,
        &rfce("E320000000002", "", "ABC123"),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["mensajes"].as_array().is_some_and(|m| !m.is_empty()),
        "{v}"
    );

    let totals = emu.totals();
    for n in ["E320000000001", "E320000000002"] {
        let c = &totals.per_number[n];
        assert_eq!((c.received, c.refused), (0, 1), "{n}: {c:?}");
    }
    emu.stop().await;

    let emu = Emulator::start_checked(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults::default(),
        2,
        Checks {
            xsd_dir: None,
            signatures: true,
        },
    )
    .await
    .unwrap();
    let token = get_token(&http, &emu).await;
    let url = format!("{}/recepcionfc/api/recepcion/ecf", emu.fc_base_url());
    let unsigned = rfce("E320000000003", "<Firma/>", "ABC123");
    let (status, v) = post(&http, url, &token, &unsigned).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["mensajes"].to_string().to_lowercase().contains("firma"),
        "{v}"
    );
    assert_eq!(emu.totals().per_number["E320000000003"].received, 0);
    emu.stop().await;
}

#[tokio::test]
async fn a_second_arrival_of_a_number_is_rejected_and_the_first_verdict_stays() {
    if !require_tool("xmllint") {
        return;
    }
    let emu = Emulator::start_checked(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults::default(),
        3,
        Checks {
            xsd_dir: Some(xsd_dir()),
            signatures: false,
        },
    )
    .await
    .unwrap();
    caja_hub::admin_client::install_crypto_provider();
    let http = reqwest::Client::new();
    let token = get_token(&http, &emu).await;
    let url = format!("{}/recepcionfc/api/recepcion/ecf", emu.fc_base_url());
    let doc = rfce("E320000000009", FAKE_SIGNATURE, "ABC123");
    let (status, first) = post(&http, url.clone(), &token, &doc).await;
    assert_eq!(
        (status, first["estado"].as_str()),
        (200, Some("Aceptado")),
        "{first}"
    );
    let (status, second) = post(&http, url, &token, &doc).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["estado"], "Rechazado", "{second}");
    assert_eq!(second["secuenciaUtilizada"], true, "{second}");
    assert!(
        second["mensajes"].to_string().contains("ya fue recibido"),
        "{second}"
    );
    // What DGII holds for the number is still the first verdict.
    let found: Value = http
        .get(format!(
            "{}/consultarfce/api/Consultas/Consulta?RNC_Emisor={RNC}&ENCF=E320000000009&Cod_Seguridad_eCF=ABC123",
            emu.fc_base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["estado"], "Aceptado", "{found}");
    let c = &emu.totals().per_number["E320000000009"];
    assert_eq!((c.received, c.duplicates), (1, 1), "{c:?}");
    emu.stop().await;
}

/// A sale of `price` centavos at 18 % with e-NCF `number`, signed by the test
/// PKI's signer: the e-CF, and its RFCE when under RD$250,000.
fn signed_sale(number: &str, price: i64) -> Option<Vec<Vec<u8>>> {
    use caja_shared::entropy::SeededRandom;
    use caja_shared::ids::SaleId;
    use caja_shared::kind::{FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine};
    use caja_shared::money::{line_tax, Money, QtyMilli, TaxRateBp};
    let signer = support::signer()?;
    let total = Money(price);
    let tax = line_tax(total, TaxRateBp::new(1800).unwrap()).unwrap();
    let sale = SaleCreated {
        sale_id: SaleId::new_v7(support::now_ms(), &mut SeededRandom::new(1)).unwrap(),
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
    };
    let (_, docs) = caja_hub::workload::signed_sale_documents(
        &sale,
        &support::issuer(RNC),
        &signer,
        support::now_ms(),
    )
    .unwrap();
    Some(docs.into_iter().map(|d| d.xml).collect())
}

#[tokio::test]
async fn signed_documents_pass_altered_ones_do_not_and_each_submission_has_its_own_track_id() {
    if !require_tool("xmllint") {
        return;
    }
    let (Some(small), Some(big)) = (
        signed_sale("E320000000021", 9_500),
        signed_sale("E320000000022", 30_000_000),
    ) else {
        return;
    };
    let emu = Emulator::start_checked(
        "127.0.0.1:0".parse().unwrap(),
        RNC,
        Faults::default(),
        4,
        Checks {
            xsd_dir: Some(xsd_dir()),
            signatures: true,
        },
    )
    .await
    .unwrap();
    caja_hub::admin_client::install_crypto_provider();
    let http = reqwest::Client::new();
    // An unsigned seed gets no token.
    let seed = http
        .get(format!(
            "{}/autenticacion/api/autenticacion/semilla",
            emu.ecf_base_url()
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (ct, body) = multipart::form("xml", "semilla.xml", &seed);
    let r = http
        .post(format!(
            "{}/autenticacion/api/autenticacion/validarsemilla",
            emu.ecf_base_url()
        ))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let token = get_token(&http, &emu).await;
    let fc = format!("{}/recepcionfc/api/recepcion/ecf", emu.fc_base_url());
    let ecf = format!("{}/recepcion/api/facturaselectronicas", emu.ecf_base_url());

    // The register's RFCE, altered after signing: the signature no longer
    // verifies (the schema still does).
    let altered = String::from_utf8(small[1].clone())
        .unwrap()
        .replace(
            "<MontoTotal>95.00</MontoTotal>",
            "<MontoTotal>9.50</MontoTotal>",
        )
        .into_bytes();
    assert_ne!(altered, small[1]);
    let (status, v) = post(&http, fc.clone(), &token, &altered).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["mensajes"].to_string().contains("Firma"), "{v}");
    // As signed: accepted.
    let (status, v) = post(&http, fc, &token, &small[1]).await;
    assert_eq!(
        (status, v["estado"].as_str()),
        (200, Some("Aceptado")),
        "{v}"
    );

    // A whole e-CF twice: two trackIds; the second is rejected as a number
    // already received, and consultatrackids lists both.
    let (s1, a) = post(&http, ecf.clone(), &token, &big[0]).await;
    let (s2, b) = post(&http, ecf, &token, &big[0]).await;
    assert_eq!((s1, s2), (200, 200), "{a} {b}");
    assert_ne!(a["trackId"], b["trackId"], "{a} {b}");
    let status_of = |t: &Value| {
        let url = format!(
            "{}/consultaresultado/api/consultas/estado?trackId={}",
            emu.ecf_base_url(),
            t.as_str().unwrap()
        );
        let (http, token) = (http.clone(), token.clone());
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(status_of(&a["trackId"]).await["estado"], "Aceptado");
    let second = status_of(&b["trackId"]).await;
    assert_eq!(second["estado"], "Rechazado", "{second}");
    assert!(second["mensajes"].to_string().contains("1004"), "{second}");
    let c = &emu.totals().per_number["E320000000022"];
    assert_eq!((c.received, c.duplicates), (1, 1), "{c:?}");
    emu.stop().await;
}
