//! Every e-CF document kind Caja issues validates against DGII's schema
//! (`xmllint --schema`) and its signature verifies with an independent
//! verifier (`xmlsec1`) and with Caja's own; tampering is refused by both.
//! Keys and certificates are made here with `openssl`.

mod ecf_support;

use caja_shared::ecf::document::{self, ModificationCode, ModifiedDocument};
use caja_shared::ecf::issue::{self, SignedKind};
use caja_shared::ecf::xmldsig::{self, VerifyError};
use caja_shared::localtime::{LocalDate, UtcOffset};
use ecf_support::*;
use serde_json::json;

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// Checks schema, xmlsec1 and own verification of a signed document.
fn check(pki: &Pki, xsd: &str, name: &str, signed: &[u8]) {
    if let Err(e) = pki.xmllint(xsd, name, signed) {
        panic!(
            "{name} does not validate against {xsd}:\n{e}\n{}",
            text(signed)
        );
    }
    if let Err(e) = pki.xmlsec_verify(name, signed, None) {
        panic!("xmlsec1 refuses {name}:\n{e}\n{}", text(signed));
    }
    let v = xmldsig::verify(signed).unwrap();
    assert_eq!(v.certificate_der, pki.cert_der);
    let s = text(signed);
    assert!(s.ends_with(&format!("</Signature></{}>", v.root)), "{s}");
    assert!(
        !s.contains("> <") && !s.contains(">\n"),
        "whitespace between elements: {s}"
    );
}

#[test]
fn a_small_consumer_invoice_and_its_summary_validate_and_verify() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let issuer = issuer();
    let sale = small_sale("E320000000051");
    let out = issue::issue_sale(&sale, &ctx(&issuer, None), &pki.signer()).unwrap();
    assert_eq!(out.documents.len(), 2);
    assert_eq!(out.documents[0].kind, SignedKind::Ecf);
    assert_eq!(out.documents[1].kind, SignedKind::Rfce);
    check(&pki, "e-CF-32.xsd", "e32.xml", &out.documents[0].xml);
    check(&pki, "RFCE-32.xsd", "rfce.xml", &out.documents[1].xml);
    // The code is the e-CF's signature value's first 6 characters, carried by
    // the RFCE, and printed in the QR (percent-encoded).
    let code = xmldsig::security_code(&out.documents[0].xml).unwrap();
    assert_eq!(out.security_code, code);
    assert!(text(&out.documents[1].xml)
        .contains(&format!("<CodigoSeguridadeCF>{code}</CodigoSeguridadeCF>")));
    assert!(out.qr_url.starts_with("https://fc.dgii.gov.do/testecf/ConsultaTimbreFC?RncEmisor=131880738&ENCF=E320000000051&MontoTotal=923.87&CodigoSeguridad="));
    assert!(
        !out.qr_url.contains('+') && !out.qr_url.contains('/')
            || out.qr_url.matches('/').count() == 4
    );
    let e32 = text(&out.documents[0].xml);
    for want in [
        "<CantidadItem>1255.00</CantidadItem><UnidadMedida>17</UnidadMedida><PrecioUnitarioItem>0.3856</PrecioUnitarioItem><MontoItem>483.87</MontoItem>",
        "<CantidadItem>2.00</CantidadItem><PrecioUnitarioItem>65.00</PrecioUnitarioItem><DescuentoMonto>10.00</DescuentoMonto><MontoItem>120.00</MontoItem>",
        "<Comprador><RazonSocialComprador>CONSUMIDOR FINAL</RazonSocialComprador></Comprador>",
        "<DireccionEmisor>Calle 1 #5, Los Mina, Santo Domingo Este</DireccionEmisor>",
        "<RazonSocialEmisor>Colmado Ñico &amp; Hijos &lt;SRL&gt;</RazonSocialEmisor>",
        "<FechaHoraFirma>23-11-2026 14:05:11</FechaHoraFirma>",
    ] {
        assert!(e32.contains(want), "{want}\n{e32}");
    }
    assert!(!text(&out.documents[1].xml).contains("<ITBIS1>"));
    assert_eq!(
        out.documents[0].sha256,
        caja_shared::digest::Hash256::of(&out.documents[0].xml)
    );
}

#[test]
fn a_large_consumer_invoice_and_a_tax_credit_invoice_name_their_buyer() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let issuer = issuer();
    let big = sale(
        "E320000000052",
        json!([{"product": "tv", "name": "Televisor 85\"", "qty_milli": 1000, "unit_price": 25_000_000,
                "tax_bp": 1800, "total": 25_000_000, "tax": 3_813_559}]),
        json!([{"method": "transfer", "amount": 25_000_000, "reference": "T1"}]),
        0,
        Some("00112345678"),
    );
    // Without the buyer's name the document cannot be built.
    let e = issue::issue_sale(&big, &ctx(&issuer, None), &pki.signer()).unwrap_err();
    assert!(e.to_string().starts_with("buyer_name:"), "{e}");
    let mut anonymous = big.clone();
    anonymous.fiscal.as_mut().unwrap().buyer_tax_id = None;
    let e = issue::issue_sale(&anonymous, &ctx(&issuer, Some("Juan")), &pki.signer()).unwrap_err();
    assert!(e.to_string().starts_with("fiscal.buyer_tax_id:"), "{e}");

    let out = issue::issue_sale(&big, &ctx(&issuer, Some("Juan Pérez")), &pki.signer()).unwrap();
    assert_eq!(out.documents.len(), 1, "≥ RD$250,000: no summary");
    check(&pki, "e-CF-32.xsd", "e32big.xml", &out.documents[0].xml);
    assert!(out.qr_url.starts_with("https://ecf.dgii.gov.do/testecf/ConsultaTimbre?RncEmisor=131880738&RncComprador=00112345678&ENCF=E320000000052&FechaEmision=23-11-2026&MontoTotal=250000.00&FechaFirma=23-11-2026%2014%3A05%3A11&CodigoSeguridad="), "{}", out.qr_url);

    let e31 = sale(
        "E310000000007",
        json!([{"product": "oil-1l", "name": "Aceite", "qty_milli": 3000, "unit_price": 32000,
                "tax_bp": 1600, "total": 96000, "tax": 13241}]),
        json!([{"method": "card", "amount": 50000, "reference": "123456"}, {"method": "fiado", "amount": 46000}]),
        0,
        Some("101672919"),
    );
    // Authorized deferred sending (IndicadorEnvioDiferido) in its place.
    let mut deferred = ctx(&issuer, Some("Ferretería Ñ & Co."));
    deferred.deferred_send = true;
    let out = issue::issue_sale(&e31, &deferred, &pki.signer()).unwrap();
    check(&pki, "e-CF-31.xsd", "e31.xml", &out.documents[0].xml);
    let s = text(&out.documents[0].xml);
    assert!(s.contains("<eNCF>E310000000007</eNCF><FechaVencimientoSecuencia>31-12-2027</FechaVencimientoSecuencia><IndicadorEnvioDiferido>1</IndicadorEnvioDiferido>"), "{s}");
    assert!(s.contains("<Comprador><RNCComprador>101672919</RNCComprador><RazonSocialComprador>Ferretería Ñ &amp; Co.</RazonSocialComprador></Comprador>"), "{s}");
    assert!(s.contains("<TipoPago>2</TipoPago>"), "{s}");
    // An E31 without the sequence's expiry is a configuration error.
    let mut c = ctx(&issuer, Some("X"));
    let mut no_expiry = e31.clone();
    no_expiry.fiscal.as_mut().unwrap().valid_until = None;
    c.series_valid_until = None;
    let e = issue::issue_sale(&no_expiry, &c, &pki.signer()).unwrap_err();
    assert!(e.to_string().starts_with("series_valid_until:"), "{e}");
}

#[test]
fn credit_notes_modifying_an_e_and_a_b_document_validate_and_verify() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let issuer = issuer();
    let c = ctx(&issuer, None);
    // Modifies an e-CF of yesterday: within 30 days, partial return.
    let r = a_return("E340000000003", "E320000000051", None);
    let m = ModifiedDocument {
        ncf: "E320000000051".into(),
        issued_date: LocalDate::new(2026, 11, 22).unwrap(),
        code: ModificationCode::CorrectAmounts,
    };
    let out = issue::issue_credit_note(&r, &m, &c, &pki.signer()).unwrap();
    check(&pki, "e-CF-34.xsd", "e34.xml", &out.documents[0].xml);
    let s = text(&out.documents[0].xml);
    assert!(
        s.contains("<eNCF>E340000000003</eNCF><IndicadorNotaCredito>0</IndicadorNotaCredito>"),
        "{s}"
    );
    assert!(s.contains("<InformacionReferencia><NCFModificado>E320000000051</NCFModificado><FechaNCFModificado>22-11-2026</FechaNCFModificado><CodigoModificacion>3</CodigoModificacion></InformacionReferencia>"), "{s}");
    assert!(
        s.contains("<CantidadItem>255.00</CantidadItem><UnidadMedida>17</UnidadMedida>"),
        "{s}"
    );
    assert!(!s.contains("<Comprador>"), "{s}");
    // Modifies a paper-era B01 of 31 days before: buyer required, indicator 1.
    let r = a_return("E340000000004", "B0100000012", Some("101672919"));
    let m = ModifiedDocument {
        ncf: "B0100000012".into(),
        issued_date: LocalDate::new(2026, 10, 23).unwrap(),
        code: ModificationCode::Cancel,
    };
    let e = issue::issue_credit_note(&r, &m, &c, &pki.signer()).unwrap_err();
    let mut deferred = ctx(&issuer, Some("Ferretería Ñ"));
    deferred.deferred_send = true;
    assert!(e.to_string().starts_with("buyer_name:"), "{e}");
    let out = issue::issue_credit_note(&r, &m, &deferred, &pki.signer()).unwrap();
    check(&pki, "e-CF-34.xsd", "e34b.xml", &out.documents[0].xml);
    let s = text(&out.documents[0].xml);
    assert!(
        s.contains("<IndicadorNotaCredito>1</IndicadorNotaCredito><IndicadorEnvioDiferido>1</IndicadorEnvioDiferido>"),
        "{s}"
    );
    assert!(s.contains("<NCFModificado>B0100000012</NCFModificado><FechaNCFModificado>23-10-2026</FechaNCFModificado><CodigoModificacion>1</CodigoModificacion>"), "{s}");
    // 30 days exactly is still 0.
    let m30 = ModifiedDocument {
        issued_date: LocalDate::new(2026, 10, 24).unwrap(),
        ..m.clone()
    };
    let b = document::credit_note(&r, &m30, &ctx(&issuer, Some("F"))).unwrap();
    assert!(text(&b.xml).contains("<IndicadorNotaCredito>0</IndicadorNotaCredito>"));
}

#[test]
fn a_cancellation_validates_and_verifies() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Hub");
    let doc = issue::cancellation(
        &issuer(),
        "E32",
        &[
            ("E320000000100", "E320000000149"),
            ("E320000000200", "E320000000200"),
        ],
        ISSUED_MS,
        UtcOffset::SANTO_DOMINGO,
        &pki.signer(),
    )
    .unwrap();
    assert_eq!(doc.kind, SignedKind::Anecf);
    check(&pki, "ANECF.xsd", "anecf.xml", &doc.xml);
    let s = text(&doc.xml);
    assert!(s.contains("<Encabezado><Version>1.0</Version><RncEmisor>131880738</RncEmisor><CantidadeNCFAnulados>51</CantidadeNCFAnulados><FechaHoraAnulacioneNCF>23-11-2026 14:05:09</FechaHoraAnulacioneNCF></Encabezado>"), "{s}");
    assert!(issue::cancellation(
        &issuer(),
        "E32",
        &[("E310000000001", "E310000000002")],
        0,
        UtcOffset::UTC,
        &pki.signer()
    )
    .is_err());
    assert!(issue::cancellation(
        &issuer(),
        "E32",
        &[("E320000000009", "E320000000002")],
        0,
        UtcOffset::UTC,
        &pki.signer()
    )
    .is_err());
}

#[test]
fn tampered_documents_and_foreign_signatures_are_refused() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let other = Pki::new("Otro Firmante");
    let issuer = issuer();
    let sale = small_sale("E320000000051");
    let good = issue::issue_sale(&sale, &ctx(&issuer, None), &pki.signer())
        .unwrap()
        .documents[0]
        .xml
        .clone();
    let s = text(&good);

    // One byte of content changed.
    let tampered = s.replacen(
        "<MontoTotal>923.87</MontoTotal>",
        "<MontoTotal>923.88</MontoTotal>",
        1,
    );
    assert_ne!(tampered, s);
    assert_eq!(
        xmldsig::verify(tampered.as_bytes()),
        Err(VerifyError::Digest)
    );
    assert!(pki
        .xmlsec_verify("t1.xml", tampered.as_bytes(), None)
        .is_err());

    // A wrong digest (valid base64 of another hash).
    let start = s.find("<DigestValue>").unwrap() + "<DigestValue>".len();
    let end = s.find("</DigestValue>").unwrap();
    let wrong = format!(
        "{}{}{}",
        &s[..start],
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        &s[end..]
    );
    assert_eq!(xmldsig::verify(wrong.as_bytes()), Err(VerifyError::Digest));
    assert!(pki.xmlsec_verify("t2.xml", wrong.as_bytes(), None).is_err());

    // The signature value of the same document signed by another key, with
    // this certificate: the signature does not verify.
    let theirs = text(
        &issue::issue_sale(&sale, &ctx(&issuer, None), &other.signer())
            .unwrap()
            .documents[0]
            .xml,
    );
    let value = |t: &str| {
        let a = t.find("<SignatureValue>").unwrap() + "<SignatureValue>".len();
        let b = t.find("</SignatureValue>").unwrap();
        (a, b)
    };
    let (a, b) = value(&s);
    let (c, d) = value(&theirs);
    let foreign = format!("{}{}{}", &s[..a], &theirs[c..d], &s[b..]);
    assert_eq!(
        xmldsig::verify(foreign.as_bytes()),
        Err(VerifyError::Signature)
    );
    assert!(pki
        .xmlsec_verify("t3.xml", foreign.as_bytes(), None)
        .is_err());
    // Another signer's whole document verifies by itself, but not against
    // this signer's certificate (xmlsec1 with our cert refuses it).
    assert!(xmldsig::verify(theirs.as_bytes()).is_ok());
    assert!(pki
        .xmlsec_verify("t4.xml", theirs.as_bytes(), None)
        .is_err());

    // Not Caja's serialization but the same XML (a self-closing element):
    // canonicalized, it verifies.
    let reserialized = s.replacen("<Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"></Transform>", "<Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>", 1);
    assert_eq!(
        xmldsig::verify(reserialized.as_bytes()).unwrap(),
        xmldsig::verify(s.as_bytes()).unwrap()
    );
    // Equivalent XML, other bytes: `>` unescaped in text (C14N writes `&gt;`).
    let literal = s.replacen("&lt;SRL&gt;", "&lt;SRL>", 1);
    assert_ne!(literal, s);
    assert_eq!(
        xmldsig::verify(literal.as_bytes()).unwrap(),
        xmldsig::verify(s.as_bytes()).unwrap()
    );
    let unsigned = document::invoice(&sale, &ctx(&issuer, None)).unwrap().xml;
    assert!(matches!(
        xmldsig::verify(&unsigned),
        Err(VerifyError::Profile(_))
    ));
    // Signing is deterministic (PKCS#1 v1.5; no random source is read).
    assert_eq!(
        xmldsig::sign(&unsigned, &pki.signer()).unwrap(),
        xmldsig::sign(&unsigned, &pki.signer()).unwrap()
    );
    // Signing twice is refused; a key that is not the certificate's too.
    assert!(xmldsig::sign(&good, &pki.signer()).is_err());
    assert!(xmldsig::Signer::new(&other.key_pkcs8_der, pki.cert_der.clone()).is_err());
}

#[test]
fn a_contingency_b_number_is_replaced_by_an_e_cf_with_code_4() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let issuer = issuer();
    let replaced = ModifiedDocument {
        ncf: "B0200000345".into(),
        issued_date: LocalDate::new(2026, 11, 20).unwrap(),
        code: ModificationCode::Contingency,
    };
    let sale = small_sale("E320000000060");
    let out =
        issue::issue_sale_replacing(&sale, &ctx(&issuer, None), Some(&replaced), &pki.signer())
            .unwrap();
    check(&pki, "e-CF-32.xsd", "e32c.xml", &out.documents[0].xml);
    check(&pki, "RFCE-32.xsd", "rfcec.xml", &out.documents[1].xml);
    let s = text(&out.documents[0].xml);
    assert!(s.contains("</DetallesItems><InformacionReferencia><NCFModificado>B0200000345</NCFModificado><FechaNCFModificado>20-11-2026</FechaNCFModificado><CodigoModificacion>4</CodigoModificacion></InformacionReferencia><FechaHoraFirma>"), "{s}");
    // Only a B number, only with code 4.
    for bad in [
        ModifiedDocument {
            ncf: "E320000000001".into(),
            ..replaced.clone()
        },
        ModifiedDocument {
            code: ModificationCode::Cancel,
            ..replaced.clone()
        },
    ] {
        let e = issue::issue_sale_replacing(&sale, &ctx(&issuer, None), Some(&bad), &pki.signer());
        assert!(e.unwrap_err().to_string().starts_with("replaced"));
    }
}

/// The text of the first `<name>…</name>` with whitespace removed.
fn value_of(doc: &str, name: &str) -> String {
    let a = doc.find(&format!("<{name}>")).unwrap() + name.len() + 2;
    let b = doc.find(&format!("</{name}>")).unwrap();
    doc[a..b].split_whitespace().collect()
}

#[test]
fn xmlsec1_signing_the_same_document_gives_the_same_digest_and_signature_value() {
    // RSA PKCS#1 v1.5 is deterministic: an independent signer that
    // canonicalizes the document and SignedInfo itself must produce exactly
    // Caja's DigestValue and SignatureValue.
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let issuer = issuer();
    let c = ctx(&issuer, Some("Juan Pérez"));
    let mut sale = small_sale("E320000000051");
    sale.fiscal.as_mut().unwrap().buyer_tax_id = Some("00112345678".into());
    let unsigned = document::invoice(&sale, &c).unwrap().xml;
    let ours = text(&xmldsig::sign(&unsigned, &pki.signer()).unwrap());
    // The template: the same Signature with empty values.
    let empty = |s: &str, name: &str| {
        let a = s.find(&format!("<{name}>")).unwrap() + name.len() + 2;
        let b = s.find(&format!("</{name}>")).unwrap();
        format!("{}{}", &s[..a], &s[b..])
    };
    let template = empty(
        &empty(&empty(&ours, "DigestValue"), "SignatureValue"),
        "X509Certificate",
    );
    let theirs = pki.xmlsec_sign("tmpl.xml", template.as_bytes());
    assert_eq!(
        value_of(&theirs, "DigestValue"),
        value_of(&ours, "DigestValue")
    );
    assert_eq!(
        value_of(&theirs, "SignatureValue"),
        value_of(&ours, "SignatureValue")
    );
    // xmlsec1's serialization (self-closing tags, wrapped base64) is not
    // Caja's, but the same signature: it verifies, with the same value.
    let v = xmldsig::verify(theirs.as_bytes()).unwrap();
    assert_eq!(v.signature_value, value_of(&ours, "SignatureValue"));
}

/// A [`issue::Join`] that runs `here` first, then `beside` (the order a
/// second thread may give), or never runs `beside`.
struct Reversed {
    skip_beside: bool,
}

impl issue::Join for Reversed {
    fn join(&self, beside: &mut (dyn FnMut() + Send), here: &mut dyn FnMut()) {
        here();
        if !self.skip_beside {
            beside();
        }
    }
}

#[test]
fn the_e_cf_check_beside_its_summary_gives_the_same_documents_and_is_required() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let issuer = issuer();
    let sale = small_sale("E320000000051");
    let signer = pki.signer();
    let c = ctx(&issuer, None);
    let in_order = issue::issue_sale(&sale, &c, &signer).unwrap();
    assert_eq!(in_order.documents.len(), 2, "an e-CF and its RFCE");
    let reversed =
        issue::issue_sale_joined(&sale, &c, None, &signer, &Reversed { skip_beside: false })
            .unwrap();
    assert_eq!(reversed, in_order);
    assert_eq!(
        in_order.security_code,
        xmldsig::security_code(&in_order.documents[0].xml).unwrap()
    );
    let unchecked =
        issue::issue_sale_joined(&sale, &c, None, &signer, &Reversed { skip_beside: true });
    assert!(
        matches!(unchecked, Err(issue::IssueError::SelfCheck(_))),
        "an e-CF whose check did not run is not issued: {unchecked:?}"
    );
}

#[test]
fn the_steps_a_register_runs_on_two_threads_give_the_same_documents_and_checks() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let issuer = issuer();
    let sale = small_sale("E320000000052");
    let signer = pki.signer();
    let c = ctx(&issuer, None);
    let whole = issue::issue_sale(&sale, &c, &signer).unwrap();
    let ecf = issue::sign_sale_ecf(&sale, &c, None, &signer).unwrap();
    assert!(ecf.summarized());
    assert_eq!(ecf.code(), whole.security_code);
    issue::check_ecf(ecf.signed(), ecf.signature_value()).unwrap();
    let rfce = ecf
        .sign_summary(&sale, &c, &signer)
        .unwrap()
        .expect("an RFCE");
    issue::check_signed(&rfce).unwrap();
    // Each step's own output validates and verifies outside, as well as
    // equalling the one-call documents.
    check(&pki, "e-CF-32.xsd", "e32-steps.xml", ecf.signed());
    check(&pki, "RFCE-32.xsd", "rfce-steps.xml", &rfce.xml);
    assert_eq!(
        ecf.clone().into_issued_unchecked(&c, Some(rfce.clone())),
        whole
    );
    // The checks refuse what was not signed so: another document's
    // signature value, a changed byte.
    let other = issue::sign_sale_ecf(&small_sale("E320000000053"), &c, None, &signer).unwrap();
    let wrong = issue::check_ecf(ecf.signed(), other.signature_value());
    assert!(
        matches!(
            wrong,
            Err(issue::IssueError::SelfCheck(VerifyError::Signature))
        ),
        "{wrong:?}"
    );
    let mut tampered = rfce.clone();
    tampered.xml = text(&rfce.xml)
        .replacen("E320000000052", "E320000000059", 1)
        .into_bytes();
    assert_ne!(tampered.xml, rfce.xml);
    let wrong = issue::check_signed(&tampered);
    assert!(
        matches!(wrong, Err(issue::IssueError::SelfCheck(_))),
        "{wrong:?}"
    );
}
