//! The DGII documents as data: built from register events and read back,
//! with snapshots of the bytes that are submitted.

use super::*;
use caja_shared::kind::{FiscalDocType, SaleCreated, SaleReturned};
use expect_test::expect;
use serde_json::json;

fn cfg() -> DgiiConfig {
    DgiiConfig {
        ecf_base_url: "https://ecf.dgii.gov.do/testecf".into(),
        fc_base_url: "https://fc.dgii.gov.do/testecf/".into(),
        rnc: "131880738".into(),
        legal_name: "Colmado & Hijos SRL".into(),
        address: Some("Calle 1, Santo Domingo".into()),
    }
}

/// 2026-11-23 14:05:09 in Santo Domingo (UTC−4).
const ISSUED_MS: i64 = 1_795_457_109_000;

fn sale(
    series: &str,
    number: &str,
    lines: serde_json::Value,
    payments: serde_json::Value,
    change: i64,
    buyer: Option<&str>,
) -> SaleCreated {
    let lines_v: Vec<serde_json::Value> = lines.as_array().unwrap().clone();
    let total: i64 = lines_v.iter().map(|l| l["total"].as_i64().unwrap()).sum();
    let tax: i64 = lines_v.iter().map(|l| l["tax"].as_i64().unwrap()).sum();
    let mut fiscal = json!({"series": series, "number": number, "valid_until": "2027-12-31"});
    if let Some(b) = buyer {
        fiscal["buyer_tax_id"] = json!(b);
    }
    serde_json::from_value(json!({
        "sale_id": "019aaf70-dbf4-7000-8000-00000000a001",
        "cashier": "ana",
        "fiscal": fiscal,
        "lines": lines,
        "total": total,
        "tax": tax,
        "payments": payments,
        "change": change,
    }))
    .unwrap()
}

fn src(doc_type: FiscalDocType, series: &str, key: &str, body: SourceBody) -> DocumentSource {
    DocumentSource {
        doc_key: key.into(),
        doc_type,
        series: series.into(),
        body,
        issued_ms: ISSUED_MS,
        offset: UtcOffset::SANTO_DOMINGO,
        modified_issued_ms: Some(ISSUED_MS - 86_400_000),
        built_ms: ISSUED_MS + 61_000,
        modified: None,
    }
}

fn consumer_sale() -> SaleCreated {
    sale(
        "E32",
        "E320000000051",
        json!([
            {"product": "salami", "name": "Salami Induveca", "qty_milli": 1250, "unit_price": 38000,
             "tax_bp": 1800, "total": 47500, "tax": 7246},
            {"product": "rice-1kg", "name": "Arroz <selecto>", "qty_milli": 2000, "unit_price": 6500,
             "tax_bp": 0, "discount": 1000, "total": 12000, "tax": 0}
        ]),
        json!([{"method": "cash", "amount": 60000}]),
        500,
        None,
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn a_small_consumer_invoice_goes_as_a_summary_and_keeps_the_full_ecf() {
    let s = consumer_sale();
    let p = build(
        &cfg(),
        &src(
            FiscalDocType::Invoice,
            "E32",
            "E320000000051",
            SourceBody::Sale(s),
        ),
    )
    .unwrap();
    assert_eq!(p.channel, CHANNEL_SUMMARY);
    let full = p.archive.clone().expect("the full e-CF is kept");
    assert_eq!(
        p.security_code.as_deref(),
        Some(security_code(&full).as_str())
    );
    assert_eq!(p.body_hash, Hash256::of(&p.body));
    expect![[r#"<?xml version="1.0" encoding="utf-8"?><ECF><Encabezado><Version>1.0</Version><IdDoc><TipoeCF>32</TipoeCF><eNCF>E320000000051</eNCF><IndicadorMontoGravado>1</IndicadorMontoGravado><TipoIngresos>01</TipoIngresos><TipoPago>1</TipoPago><TablaFormasPago><FormaDePago><FormaPago>1</FormaPago><MontoPago>595.00</MontoPago></FormaDePago></TablaFormasPago></IdDoc><Emisor><RNCEmisor>131880738</RNCEmisor><RazonSocialEmisor>Colmado &amp; Hijos SRL</RazonSocialEmisor><DireccionEmisor>Calle 1, Santo Domingo</DireccionEmisor><FechaEmision>23-11-2026</FechaEmision></Emisor><Comprador><RazonSocialComprador>CONSUMIDOR FINAL</RazonSocialComprador></Comprador><Totales><MontoGravadoTotal>402.54</MontoGravadoTotal><MontoGravadoI1>402.54</MontoGravadoI1><MontoExento>120.00</MontoExento><ITBIS1>18</ITBIS1><TotalITBIS>72.46</TotalITBIS><TotalITBIS1>72.46</TotalITBIS1><MontoTotal>595.00</MontoTotal></Totales></Encabezado><DetallesItems><Item><NumeroLinea>1</NumeroLinea><IndicadorFacturacion>1</IndicadorFacturacion><NombreItem>Salami Induveca</NombreItem><IndicadorBienoServicio>1</IndicadorBienoServicio><CantidadItem>1.25</CantidadItem><PrecioUnitarioItem>380.00</PrecioUnitarioItem><MontoItem>475.00</MontoItem></Item><Item><NumeroLinea>2</NumeroLinea><IndicadorFacturacion>4</IndicadorFacturacion><NombreItem>Arroz &lt;selecto&gt;</NombreItem><IndicadorBienoServicio>1</IndicadorBienoServicio><CantidadItem>2.00</CantidadItem><PrecioUnitarioItem>65.00</PrecioUnitarioItem><DescuentoMonto>10.00</DescuentoMonto><MontoItem>120.00</MontoItem></Item></DetallesItems><FechaHoraFirma>23-11-2026 14:06:10</FechaHoraFirma></ECF>"#]].assert_eq(&text(&full));
    expect![[r#"<?xml version="1.0" encoding="utf-8"?><RFCE><Encabezado><Version>1.0</Version><IdDoc><TipoeCF>32</TipoeCF><eNCF>E320000000051</eNCF><TipoIngresos>01</TipoIngresos><TipoPago>1</TipoPago><TablaFormasPago><FormaDePago><FormaPago>1</FormaPago><MontoPago>595.00</MontoPago></FormaDePago></TablaFormasPago></IdDoc><Emisor><RNCEmisor>131880738</RNCEmisor><RazonSocialEmisor>Colmado &amp; Hijos SRL</RazonSocialEmisor><FechaEmision>23-11-2026</FechaEmision></Emisor><Comprador><RazonSocialComprador>CONSUMIDOR FINAL</RazonSocialComprador></Comprador><Totales><MontoGravadoTotal>402.54</MontoGravadoTotal><MontoGravadoI1>402.54</MontoGravadoI1><MontoExento>120.00</MontoExento><TotalITBIS>72.46</TotalITBIS><TotalITBIS1>72.46</TotalITBIS1><MontoTotal>595.00</MontoTotal></Totales><CodigoSeguridadeCF>{CODE}</CodigoSeguridadeCF></Encabezado></RFCE>"#]].assert_eq(&text(&p.body).replace(p.security_code.as_deref().unwrap(), "{CODE}"));
    assert_eq!(
        p.verify_url.as_deref().unwrap().replace(p.security_code.as_deref().unwrap(), "{CODE}"),
        "https://fc.dgii.gov.do/testecf/ConsultaTimbreFC?RncEmisor=131880738&ENCF=E320000000051&MontoTotal=595.00&CodigoSeguridad={CODE}"
    );
    // What the emulator reads back.
    let f = xml::flatten(&p.body).unwrap();
    assert_eq!(
        xml::field(&f, "RFCE/Encabezado/IdDoc/eNCF"),
        Some("E320000000051")
    );
    assert_eq!(
        xml::field(&f, "RFCE/Encabezado/Totales/MontoTotal"),
        Some("595.00")
    );
    // Built again later, the signing time differs: that is why the bytes are
    // stored once and never rebuilt.
    let mut later = src(
        FiscalDocType::Invoice,
        "E32",
        "E320000000051",
        SourceBody::Sale(consumer_sale()),
    );
    later.built_ms += 1000;
    assert_ne!(build(&cfg(), &later).unwrap().body_hash, p.body_hash);
}

#[test]
fn a_tax_credit_invoice_goes_whole_with_the_buyer_and_the_sequence_expiry() {
    let s = sale(
        "E31",
        "E310000000007",
        json!([{"product": "oil-1l", "name": "Aceite", "qty_milli": 3000, "unit_price": 32000,
                "tax_bp": 1600, "total": 96000, "tax": 13241}]),
        json!([{"method": "card", "amount": 50000, "reference": "123456"}, {"method": "fiado", "amount": 46000}]),
        0,
        Some("101672919"),
    );
    let mut e31 = src(
        FiscalDocType::Invoice,
        "E31",
        "E310000000007",
        SourceBody::Sale(s.clone()),
    );
    // The buyer's RNC needs the buyer's name beside it.
    assert!(
        matches!(build(&cfg(), &e31), Err(BuildError::Document(m)) if m.starts_with("buyer_name:"))
    );
    let mut named = s;
    named.fiscal.as_mut().unwrap().buyer_name = Some("Ferretería Ñ & Co.".into());
    e31.body = SourceBody::Sale(named);
    let p = build(&cfg(), &e31).unwrap();
    assert_eq!(p.channel, CHANNEL_ECF);
    assert!(p.archive.is_none());
    let f = xml::flatten(&p.body).unwrap();
    for (path, want) in [
        ("ECF/Encabezado/IdDoc/TipoeCF", "31"),
        (
            "ECF/Encabezado/IdDoc/FechaVencimientoSecuencia",
            "31-12-2027",
        ),
        ("ECF/Encabezado/IdDoc/TipoPago", "2"),
        ("ECF/Encabezado/Comprador/RNCComprador", "101672919"),
        (
            "ECF/Encabezado/Comprador/RazonSocialComprador",
            "Ferretería Ñ & Co.",
        ),
        ("ECF/Encabezado/Totales/MontoGravadoI2", "827.59"),
        ("ECF/Encabezado/Totales/TotalITBIS2", "132.41"),
        ("ECF/Encabezado/Totales/MontoTotal", "960.00"),
    ] {
        assert_eq!(xml::field(&f, path), Some(want), "{path}");
    }
    let forms: Vec<&str> = f
        .iter()
        .filter(|(p, _)| p.ends_with("FormaPago"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(forms, ["3", "4"]);
    let code = p.security_code.clone().unwrap();
    assert_eq!(code, security_code(&p.body));
    assert_eq!(
        p.verify_url.unwrap(),
        format!("https://ecf.dgii.gov.do/testecf/ConsultaTimbre?RncEmisor=131880738&RncComprador=101672919&ENCF=E310000000007&FechaEmision=23-11-2026&MontoTotal=960.00&FechaFirma=23-11-2026%2014%3A06%3A10&CodigoSeguridad={code}")
    );
}

#[test]
fn a_consumer_invoice_at_the_threshold_goes_whole() {
    let s = sale(
        "E32",
        "E320000000052",
        json!([{"product": "tv", "name": "TV", "qty_milli": 1000, "unit_price": 25_000_000,
                "tax_bp": 1800, "total": 25_000_000, "tax": 3_813_559}]),
        json!([{"method": "transfer", "amount": 25_000_000, "reference": "T1"}]),
        0,
        Some("00112345678"),
    );
    assert!(!uses_summary("E32", Money(25_000_000)));
    assert!(uses_summary("E32", Money(24_999_999)));
    assert!(!uses_summary("E31", Money(1)));
    let mut named = s.clone();
    named.fiscal.as_mut().unwrap().buyer_name = Some("Juan Pérez".into());
    let mut whole = src(
        FiscalDocType::Invoice,
        "E32",
        "E320000000052",
        SourceBody::Sale(named),
    );
    let p = build(&cfg(), &whole).unwrap();
    assert_eq!(p.channel, CHANNEL_ECF);
    assert!(p.verify_url.unwrap().contains("/ConsultaTimbre?"));
    // From RD$250,000 on, the buyer must be identified.
    let mut anonymous = s;
    anonymous.fiscal.as_mut().unwrap().buyer_tax_id = None;
    whole.body = SourceBody::Sale(anonymous);
    assert!(
        matches!(build(&cfg(), &whole), Err(BuildError::Document(m)) if m.starts_with("fiscal.buyer_tax_id:"))
    );
}

#[test]
fn a_credit_note_references_the_modified_invoice() {
    let r: SaleReturned = serde_json::from_value(json!({
        "return_id": "019aaf70-dbf4-7000-8000-00000000b001",
        "sale_id": "019aaf70-dbf4-7000-8000-00000000a001",
        "shift_id": "019aaf70-dbf4-7000-8000-00000000c001",
        "cashier": "ana",
        "lines": [
            {"line": 0, "product": "salami", "qty_milli": 250, "total": 9500, "tax": 1449},
            {"line": 1, "product": "rice-1kg", "qty_milli": 3000, "total": 18000, "tax": 0}
        ],
        "total": 27500, "tax": 1449, "refund": "cash",
        "credit_note": {"series": "E34", "number": "E340000000003", "modifies": "E320000000051"}
    }))
    .unwrap();
    let p = build(
        &cfg(),
        &src(
            FiscalDocType::CreditNote,
            "E34",
            "E340000000003",
            SourceBody::Return(r.clone()),
        ),
    )
    .unwrap();
    let f = xml::flatten(&p.body).unwrap();
    for (path, want) in [
        ("ECF/Encabezado/IdDoc/TipoeCF", "34"),
        ("ECF/Encabezado/IdDoc/eNCF", "E340000000003"),
        ("ECF/InformacionReferencia/NCFModificado", "E320000000051"),
        ("ECF/InformacionReferencia/FechaNCFModificado", "22-11-2026"),
        ("ECF/InformacionReferencia/CodigoModificacion", "3"),
        ("ECF/Encabezado/Totales/MontoTotal", "275.00"),
        ("ECF/DetallesItems/Item/PrecioUnitarioItem", "380.00"),
    ] {
        assert_eq!(xml::field(&f, path), Some(want), "{path}");
    }
    // A refund whose tax fits no rate is refused with the line named.
    let mut odd = r;
    odd.lines[0].tax = caja_shared::money::Money(1);
    let e = build(
        &cfg(),
        &src(
            FiscalDocType::CreditNote,
            "E34",
            "E340000000003",
            SourceBody::Return(odd),
        ),
    )
    .unwrap_err();
    assert_eq!(e, BuildError::UnsupportedTaxRate { line: 0, bp: 0 });
}

#[test]
fn a_cancellation_names_the_range() {
    let p = build(
        &cfg(),
        &src(
            FiscalDocType::Cancellation,
            "E32",
            "ANECF:E320000000100:E320000000149",
            SourceBody::Cancellation {
                first: "E320000000100".into(),
                last: "E320000000149".into(),
                count: 50,
            },
        ),
    )
    .unwrap();
    assert_eq!(p.channel, CHANNEL_CANCEL);
    assert_eq!(p.security_code, None);
    expect![[r#"<?xml version="1.0" encoding="utf-8"?><ANECF><Encabezado><Version>1.0</Version><RncEmisor>131880738</RncEmisor><CantidadeNCFAnulados>50</CantidadeNCFAnulados><FechaHoraAnulacioneNCF>23-11-2026 14:06:10</FechaHoraAnulacioneNCF></Encabezado><DetalleAnulacion><Anulacion><NoLinea>1</NoLinea><TipoeCF>32</TipoeCF><TablaRangoSecuenciasAnuladaseNCF><Secuencias><SecuenciaeNCFDesde>E320000000100</SecuenciaeNCFDesde><SecuenciaeNCFHasta>E320000000149</SecuenciaeNCFHasta></Secuencias></TablaRangoSecuenciasAnuladaseNCF><CantidadeNCFAnulados>50</CantidadeNCFAnulados></Anulacion></DetalleAnulacion></ANECF>"#]].assert_eq(&text(&p.body));
    assert_eq!(
        file_name("131880738", "ANECF:E320000000100:E320000000149"),
        "131880738ANECFE320000000100-E320000000149.xml"
    );
    assert_eq!(
        file_name("131880738", "E320000000051"),
        "131880738E320000000051.xml"
    );
}

#[test]
fn what_cannot_be_built_is_named() {
    let mut s = consumer_sale();
    s.lines[0].tax_bp = caja_shared::money::TaxRateBp::new(1000).unwrap();
    assert_eq!(
        build(
            &cfg(),
            &src(
                FiscalDocType::Invoice,
                "E32",
                "E320000000051",
                SourceBody::Sale(s.clone())
            )
        )
        .unwrap_err()
        .to_string(),
        "lines[0].tax_bp: 1000 basis points is not a rate the tax authority knows"
    );
    s.fiscal = None;
    assert_eq!(
        build(
            &cfg(),
            &src(
                FiscalDocType::Invoice,
                "E32",
                "E320000000051",
                SourceBody::Sale(s)
            )
        )
        .unwrap_err(),
        BuildError::Missing("fiscal")
    );
    assert!(matches!(
        build(
            &cfg(),
            &src(
                FiscalDocType::CreditNote,
                "E32",
                "x",
                SourceBody::Sale(consumer_sale())
            )
        ),
        Err(BuildError::WrongSource { .. })
    ));
    let b = sale("B02", "B0200000001", json!([]), json!([]), 0, None);
    assert_eq!(
        build(
            &cfg(),
            &src(
                FiscalDocType::Invoice,
                "B02",
                "B0200000001",
                SourceBody::Sale(b)
            )
        )
        .unwrap_err(),
        BuildError::NotSubmitted("B02".into())
    );
}

#[test]
fn answers_are_read_in_both_documented_shapes() {
    assert_eq!(parse_utc("2026-11-23T18:06:10Z"), Some(ISSUED_MS + 61_000));
    assert_eq!(
        parse_utc("2026-11-23T14:06:10.8617792-04:00"),
        Some(ISSUED_MS + 61_000)
    );
    assert_eq!(parse_utc("2026-11-23T18:06:10"), Some(ISSUED_MS + 61_000));
    for bad in [
        "",
        "2026-11-23",
        "2026-13-01T00:00:00Z",
        "2026-11-23T25:00:00Z",
        "x-y-zTa:b:c",
    ] {
        assert_eq!(parse_utc(bad), None, "{bad}");
    }
    let (tok, exp) = read_token(
        br#"{"token":"abc","expira":"2026-11-23T19:06:10Z","expedido":"2026-11-23T18:06:10Z"}"#,
    )
    .unwrap();
    assert_eq!((tok.as_str(), exp), ("abc", ISSUED_MS + 61_000 + 3_600_000));
    assert!(read_token(br#"{"token":"abc"}"#).is_err());
    assert!(read_seed(
        b"<?xml version=\"1.0\"?><SemillaModel><valor>s33d</valor><fecha>x</fecha></SemillaModel>"
    )
    .is_ok());
    assert!(read_seed(b"<SemillaModel/>").is_err());
    assert_eq!(
        read_reception(br#"{"trackId":"t-1"}"#).unwrap(),
        Submitted::Tracked("t-1".into())
    );
    assert!(read_reception(br#"{"error":"x"}"#).is_err());
    assert_eq!(
        read_status(br#"{"codigo":3,"estado":"En Proceso"}"#).unwrap(),
        StatusAnswer::InProcess
    );
    assert_eq!(
        read_status(br#"{"codigo":"0"}"#).unwrap(),
        StatusAnswer::NotFound
    );
    assert_eq!(
        read_status(r#"{"trackId":"t","codigo":2,"estado":"Rechazado","mensajes":[{"valor":"Monto inválido","codigo":7}]}"#.as_bytes()).unwrap(),
        StatusAnswer::Final(Verdict {
            status: FinalStatus::Rejected,
            messages: vec![AuthorityMessage { code: "7".into(), text: "Monto inválido".into() }]
        })
    );
    // By estado when codigo is absent; a single `mensaje` string.
    assert_eq!(
        read_status(br#"{"Estado":"Aceptado Condicional","Mensaje":"revise el RNC"}"#).unwrap(),
        StatusAnswer::Final(Verdict {
            status: FinalStatus::AcceptedConditional,
            messages: vec![AuthorityMessage {
                code: String::new(),
                text: "revise el RNC".into()
            }]
        })
    );
    assert!(read_status(b"<html>").is_err());
    assert_eq!(read_trackids(br#"{"detalles":[]}"#).unwrap(), None);
    assert_eq!(
        read_trackids(
            br#"[{"trackId":"a","codigo":"2","estado":"Rechazado"},{"trackId":"b","codigo":"3"}]"#
        )
        .unwrap(),
        Some(Submitted::Tracked("b".into()))
    );
    assert!(matches!(
        read_trackids(
            br#"{"detalles":[{"trackId":"a","codigo":"2"},{"trackId":"c","codigo":"1"}]}"#
        )
        .unwrap(),
        Some(Submitted::Decided(Verdict {
            status: FinalStatus::Accepted,
            ..
        }))
    ));
    assert_eq!(
        read_summary_query(br#"{"codigo":0,"estado":"No encontrado"}"#).unwrap(),
        None
    );
    assert!(matches!(
        read_decision(br#"{"codigo":1,"estado":"Aceptado","mensajes":[],"encf":"E320000000051","secuenciaUtilizada":true}"#).unwrap(),
        Verdict { status: FinalStatus::Accepted, .. }
    ));
    assert!(read_decision(br#"{"codigo":3}"#).is_err());
    let r = refusal(br#"{"error":"XML no valido","mensaje":"eNCF"}"#);
    assert_eq!(r.status, FinalStatus::Rejected);
    assert_eq!(r.messages.len(), 2);
    assert_eq!(refusal(b"plain").messages[0].text, "plain");
}

#[test]
fn parse_utc_refuses_out_of_range_text_without_panicking() {
    assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_utc("1970-01-01T00:00:00-04:00"), Some(4 * 3_600_000));
    assert_eq!(
        parse_utc("2026-03-01T10:00:00.123+01:30"),
        parse_utc("2026-03-01T08:30:00Z")
    );
    for bad in [
        // An offset whose minutes would overflow i64.
        "2026-01-01T00:00:00+9223372036854775807:00",
        "2026-01-01T00:00:00-9223372036854775807:59",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+01:60",
        "2026-01-01T00:00:00+-1:00",
        // A year whose days would overflow.
        "9223372036854775807-12-31T23:59:59Z",
        "-5-01-01T00:00:00Z",
        "2026-01-01T99999999999999999:00:00Z",
        "2026-01-01T-1:00:00Z",
        "2026-01-01T00:00:00+",
    ] {
        assert_eq!(parse_utc(bad), None, "{bad}");
    }
}
