//! What URL Recepción and URL Aprobación Comercial read and answer: a
//! supplier's e-CF checked as DGII's receiver must (specification,
//! signature, buyer) and the signed acknowledgement ARECF; a buyer's
//! commercial approval ACECF of an e-CF we issued, checked, and the ACECF
//! head office signs for a supplier's e-CF.
//!
//! Sources: DGII "Descripción técnica de facturación electrónica" v1.6,
//! "Comunicación Emisor-Receptor" (the receiver validates the e-CF and
//! answers an ARECF; the buyer sends its ACECF to the issuer's URL
//! Aprobación Comercial and to DGII); `ARECF.xsd` (`Estado` 0 received / 1
//! not received, `CodigoMotivoNoRecibido` 1 specification error, 2 digital
//! signature error, 3 duplicate sending, 4 buyer RNC does not match,
//! `FechaHoraAcuseRecibo` `dd-MM-yyyy HH:mm:ss`); `ACECF.xsd` (`Estado` 1
//! accepted / 2 rejected, `DetalleMotivoRechazo` ≤ 250 characters);
//! `e-CF-31.xsd` (where each field of the e-CF is).
//!
//! Guessed, and why: (1) the order of the checks — specification, then
//! signature and certificate, then buyer, then duplicate (storage) — DGII
//! lists the codes, not an order; (2) "specification" is checked as the
//! fields the receiver needs, with their XSD shapes, not the whole XSD (the
//! hub runs no XSD processor; the tests check every answer with `xmllint`);
//! (3) a body from which neither `RNCEmisor` nor `eNCF` can be read gets no
//! ARECF (its schema requires both) but HTTP 400; (4) the signature check
//! is [`xmldsig::verify`], which canonicalizes (C14N) whatever serialization
//! the supplier's software wrote, and the fields are read with
//! [`c14n::parse_element`] (any serialization, local names); (5) the ARECF's `RNCComprador`
//! is the document's buyer when it has the RNC shape, else ours.
//!
//! Invariant: pure; every answer built here is in Caja's serialization, so
//! [`xmldsig::sign`] signs it and the result validates against its XSD.

use caja_shared::ecf::c14n;
use caja_shared::ecf::certificate::{verify_chain, TrustStore};
use caja_shared::ecf::numbers::parse_encf;
use caja_shared::ecf::receipt::datetime_dmy;
use caja_shared::ecf::xml::{self, Element, Node};
use caja_shared::ecf::xmldsig::{self, Signer};
use caja_shared::localtime::{LocalDateTime, UtcOffset};

/// Why a received e-CF is not received (`CodigoMotivoNoRecibido`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReceived {
    /// 1: the document is not as DGII specifies (the field named).
    Specification(String),
    /// 2: the digital signature or its certificate fails.
    Signature(String),
    /// 3: the same issuer and e-NCF were already received.
    Duplicate,
    /// 4: the buyer RNC is not ours.
    NotOurs(String),
}

impl NotReceived {
    /// DGII's `CodigoMotivoNoRecibido`.
    pub fn code(&self) -> u8 {
        match self {
            NotReceived::Specification(_) => 1,
            NotReceived::Signature(_) => 2,
            NotReceived::Duplicate => 3,
            NotReceived::NotOurs(_) => 4,
        }
    }

    /// For logs and the answer's header.
    pub fn reason(&self) -> String {
        match self {
            NotReceived::Specification(s) => format!("specification: {s}"),
            NotReceived::Signature(s) => format!("signature: {s}"),
            NotReceived::Duplicate => "already received".into(),
            NotReceived::NotOurs(b) => format!("buyer RNC {b} is not this taxpayer's"),
        }
    }
}

/// The fields of a received e-CF the hub keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEcf {
    /// `RNCEmisor`.
    pub issuer_rnc: String,
    /// `RazonSocialEmisor`.
    pub issuer_name: String,
    /// `RNCComprador` (may be absent on a consumer invoice).
    pub buyer_rnc: Option<String>,
    /// `eNCF`.
    pub encf: String,
    /// `TipoeCF`.
    pub ecf_type: u8,
    /// `FechaEmision` as written (`dd-MM-yyyy`).
    pub issued_date: String,
    /// `MontoTotal` in minor units.
    pub total_minor: i64,
    /// `MontoTotal` as written.
    pub total_text: String,
    /// The first 6 characters of `SignatureValue` (set after the signature
    /// check).
    pub security_code: String,
}

/// Whether `s` is an RNC (9 digits) or cédula (11).
pub fn is_rnc(s: &str) -> bool {
    matches!(s.len(), 9 | 11) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `dd-MM-yyyy` shape.
fn is_dmy(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[2] == b'-'
        && b[5] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
}

/// An amount with at most two decimals (`1234`, `1234.5`, `1234.56`) in
/// minor units.
pub fn parse_amount(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 16 || frac.len() > 2 {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let units: i64 = int.parse().ok()?;
    let cents: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    units.checked_mul(100)?.checked_add(cents)
}

/// Minor units as `1234.56`.
pub fn amount_text(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, (minor % 100).abs())
}

/// The issuer RNC and e-NCF of a body, read leniently, for the answer to a
/// document that is not in shape: `None` when not even those are there.
pub fn identify(body: &[u8]) -> Option<(String, String, Option<String>)> {
    let fields = crate::taxgw::xml::flatten(body).ok()?;
    let get = |suffix: &str| {
        fields
            .iter()
            .find(|(p, _)| p.ends_with(suffix))
            .map(|(_, v)| v.trim().to_owned())
    };
    let rnc = get("/Emisor/RNCEmisor").filter(|r| is_rnc(r))?;
    let encf = get("/IdDoc/eNCF").filter(|e| parse_encf(e).is_ok())?;
    Some((
        rnc,
        encf,
        get("/Comprador/RNCComprador").filter(|r| is_rnc(r)),
    ))
}

fn need<'a>(root: &'a Element, path: &str) -> Result<&'a str, NotReceived> {
    root.text_at(path)
        .ok_or_else(|| NotReceived::Specification(format!("ECF/{path} is missing")))
}

/// Checks a received e-CF (see the module doc for the order) against our
/// RNC and the trusted CAs at `now_ms`. Duplicates are the caller's check.
pub fn check_ecf(
    body: &[u8],
    our_rnc: &str,
    trust: Option<&TrustStore>,
    now_ms: i64,
) -> Result<ReceivedEcf, NotReceived> {
    let root = c14n::parse_element(body).map_err(|e| NotReceived::Specification(e.to_string()))?;
    if root.name != "ECF" {
        return Err(NotReceived::Specification(format!(
            "the root element is {}, not ECF",
            root.name
        )));
    }
    let spec = |m: String| NotReceived::Specification(m);
    let encf = need(&root, "Encabezado/IdDoc/eNCF")?.to_owned();
    parse_encf(&encf).map_err(|e| spec(format!("eNCF: {e}")))?;
    let tipo = need(&root, "Encabezado/IdDoc/TipoeCF")?;
    let ecf_type: u8 = tipo
        .parse()
        .map_err(|_| spec(format!("TipoeCF {tipo:?}")))?;
    if encf.get(1..3).is_none_or(|t| t != tipo) {
        return Err(spec(format!("TipoeCF {tipo} does not match eNCF {encf}")));
    }
    let issuer_rnc = need(&root, "Encabezado/Emisor/RNCEmisor")?.to_owned();
    if !is_rnc(&issuer_rnc) {
        return Err(spec("RNCEmisor is not 9 or 11 digits".into()));
    }
    let issuer_name = need(&root, "Encabezado/Emisor/RazonSocialEmisor")?.to_owned();
    let issued_date = need(&root, "Encabezado/Emisor/FechaEmision")?.to_owned();
    if !is_dmy(&issued_date) {
        return Err(spec("FechaEmision is not dd-MM-yyyy".into()));
    }
    let total_text = need(&root, "Encabezado/Totales/MontoTotal")?.to_owned();
    let total_minor =
        parse_amount(&total_text).ok_or_else(|| spec("MontoTotal is not an amount".into()))?;
    let buyer_rnc = root
        .text_at("Encabezado/Comprador/RNCComprador")
        .map(str::to_owned);
    if buyer_rnc.as_deref().is_some_and(|b| !is_rnc(b)) {
        return Err(spec("RNCComprador is not 9 or 11 digits".into()));
    }
    let v = xmldsig::verify(body).map_err(|e| NotReceived::Signature(e.to_string()))?;
    let Some(trust) = trust else {
        return Err(NotReceived::Signature(
            "no trusted CAs are configured to check the certificate".into(),
        ));
    };
    verify_chain(&v.certificate_der, &[], trust, now_ms)
        .map_err(|e| NotReceived::Signature(format!("certificate: {e}")))?;
    match buyer_rnc.as_deref() {
        Some(b) if b == our_rnc => {}
        other => return Err(NotReceived::NotOurs(other.unwrap_or("(none)").to_owned())),
    }
    Ok(ReceivedEcf {
        issuer_rnc,
        issuer_name,
        buyer_rnc,
        encf,
        ecf_type,
        issued_date,
        total_minor,
        total_text,
        security_code: xmldsig::code_of(&v.signature_value),
    })
}

/// `dd-MM-yyyy HH:mm:ss` in Santo Domingo time.
pub fn dgii_time(ms: i64) -> String {
    datetime_dmy(LocalDateTime::from_utc_ms(ms, UtcOffset::SANTO_DOMINGO))
}

/// The ARECF answering a document of `issuer_rnc` / `encf`: received
/// (`refusal` None) or not, with its reason code; signed by `signer`.
pub fn arecf(
    issuer_rnc: &str,
    buyer_rnc: &str,
    encf: &str,
    refusal: Option<&NotReceived>,
    at_ms: i64,
    signer: &Signer,
) -> Result<Vec<u8>, xmldsig::SignError> {
    let mut detail = vec![
        Node::Text("Version", "1.0".into()),
        Node::Text("RNCEmisor", issuer_rnc.into()),
        Node::Text("RNCComprador", buyer_rnc.into()),
        Node::Text("eNCF", encf.into()),
        Node::Text("Estado", if refusal.is_some() { "1" } else { "0" }.into()),
    ];
    if let Some(r) = refusal {
        detail.push(Node::Text("CodigoMotivoNoRecibido", r.code().to_string()));
    }
    detail.push(Node::Text("FechaHoraAcuseRecibo", dgii_time(at_ms)));
    let unsigned = xml::document(&Node::Parent(
        "ARECF",
        vec![Node::Parent("DetalleAcusedeRecibo", detail)],
    ));
    xmldsig::sign(&unsigned, signer)
}

/// A commercial approval or rejection (ACECF), received or to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// `RNCEmisor`: the issuer of the approved e-CF.
    pub issuer_rnc: String,
    /// `eNCF`.
    pub encf: String,
    /// `FechaEmision` of the e-CF (`dd-MM-yyyy`).
    pub issued_date: String,
    /// `MontoTotal` of the e-CF, as written.
    pub total_text: String,
    /// `RNCComprador`: who approves.
    pub buyer_rnc: String,
    /// `Estado`: true 1 (accepted), false 2 (rejected).
    pub accepted: bool,
    /// `DetalleMotivoRechazo` (≤ 250 characters).
    pub reason: Option<String>,
    /// `FechaHoraAprobacionComercial` as written.
    pub decided_at: String,
}

/// Why a received ACECF is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// Not an ACECF in shape (the field named).
    #[error("not an ACECF as DGII specifies: {0}")]
    Specification(String),
    /// Signature or certificate.
    #[error("the ACECF's signature is not valid: {0}")]
    Signature(String),
    /// The approved e-CF is not ours (`RNCEmisor`).
    #[error("RNCEmisor {0} is not this taxpayer's")]
    NotOurs(String),
}

fn need_a<'a>(root: &'a Element, field: &str) -> Result<&'a str, ApprovalError> {
    root.text_at(&format!("DetalleAprobacionComercial/{field}"))
        .ok_or_else(|| ApprovalError::Specification(format!("{field} is missing")))
}

/// Checks a received ACECF: shape, signature and certificate, issuer ours.
pub fn check_acecf(
    body: &[u8],
    our_rnc: &str,
    trust: Option<&TrustStore>,
    now_ms: i64,
) -> Result<Approval, ApprovalError> {
    let spec = ApprovalError::Specification;
    let root = c14n::parse_element(body).map_err(|e| spec(e.to_string()))?;
    if root.name != "ACECF" {
        return Err(spec(format!("the root element is {}", root.name)));
    }
    if need_a(&root, "Version")? != "1.0" {
        return Err(spec("Version is not 1.0".into()));
    }
    let issuer_rnc = need_a(&root, "RNCEmisor")?.to_owned();
    let buyer_rnc = need_a(&root, "RNCComprador")?.to_owned();
    if !is_rnc(&issuer_rnc) || !is_rnc(&buyer_rnc) {
        return Err(spec(
            "RNCEmisor or RNCComprador is not 9 or 11 digits".into(),
        ));
    }
    let encf = need_a(&root, "eNCF")?.to_owned();
    parse_encf(&encf).map_err(|e| spec(format!("eNCF: {e}")))?;
    let issued_date = need_a(&root, "FechaEmision")?.to_owned();
    let total_text = need_a(&root, "MontoTotal")?.to_owned();
    if parse_amount(&total_text).is_none() || !total_text.contains('.') {
        return Err(spec("MontoTotal is not an amount with 2 decimals".into()));
    }
    let accepted = match need_a(&root, "Estado")? {
        "1" => true,
        "2" => false,
        other => return Err(spec(format!("Estado {other:?} is not 1 or 2"))),
    };
    let reason = root
        .text_at("DetalleAprobacionComercial/DetalleMotivoRechazo")
        .map(str::to_owned);
    if reason.as_ref().is_some_and(|r| r.chars().count() > 250) {
        return Err(spec("DetalleMotivoRechazo is longer than 250".into()));
    }
    let decided_at = need_a(&root, "FechaHoraAprobacionComercial")?.to_owned();
    let v = xmldsig::verify(body).map_err(|e| ApprovalError::Signature(e.to_string()))?;
    let Some(trust) = trust else {
        return Err(ApprovalError::Signature(
            "no trusted CAs are configured to check the certificate".into(),
        ));
    };
    verify_chain(&v.certificate_der, &[], trust, now_ms)
        .map_err(|e| ApprovalError::Signature(format!("certificate: {e}")))?;
    if issuer_rnc != our_rnc {
        return Err(ApprovalError::NotOurs(issuer_rnc));
    }
    Ok(Approval {
        issuer_rnc,
        encf,
        issued_date,
        total_text,
        buyer_rnc,
        accepted,
        reason,
        decided_at,
    })
}

/// The ACECF of `a`, signed by `signer`.
pub fn acecf(a: &Approval, signer: &Signer) -> Result<Vec<u8>, xmldsig::SignError> {
    let mut detail = vec![
        Node::Text("Version", "1.0".into()),
        Node::Text("RNCEmisor", a.issuer_rnc.clone()),
        Node::Text("eNCF", a.encf.clone()),
        Node::Text("FechaEmision", a.issued_date.clone()),
        Node::Text("MontoTotal", a.total_text.clone()),
        Node::Text("RNCComprador", a.buyer_rnc.clone()),
        Node::Text("Estado", if a.accepted { "1" } else { "2" }.into()),
    ];
    if let Some(r) = a.reason.as_ref().filter(|r| !r.trim().is_empty()) {
        detail.push(Node::Text("DetalleMotivoRechazo", xml::fit(r, 250)));
    }
    detail.push(Node::Text(
        "FechaHoraAprobacionComercial",
        a.decided_at.clone(),
    ));
    let unsigned = xml::document(&Node::Parent(
        "ACECF",
        vec![Node::Parent("DetalleAprobacionComercial", detail)],
    ));
    xmldsig::sign(&unsigned, signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_shapes() {
        assert_eq!(parse_amount("1234.56"), Some(123_456));
        assert_eq!(parse_amount("1234.5"), Some(123_450));
        assert_eq!(parse_amount("7"), Some(700));
        for bad in ["", ".5", "1.234", "-1.00", "1e3", "1,00"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
        assert_eq!(amount_text(123_456), "1234.56");
        assert_eq!(amount_text(5), "0.05");
        assert!(is_rnc("131880738") && is_rnc("00112345678") && !is_rnc("1318807"));
        assert!(is_dmy("07-12-2026") && !is_dmy("2026-12-07"));
        assert_eq!(dgii_time(0), "31-12-1969 20:00:00");
        assert_eq!(
            identify(b"<ECF><Encabezado><IdDoc><eNCF>E310000000001</eNCF></IdDoc><Emisor><RNCEmisor>131880738</RNCEmisor></Emisor></Encabezado>"),
            None,
            "unclosed: not identifiable"
        );
        assert_eq!(
            identify(b"<ECF><Encabezado><IdDoc><eNCF>E310000000001</eNCF></IdDoc><Emisor><RNCEmisor>131880738</RNCEmisor></Emisor></Encabezado></ECF>"),
            Some(("131880738".into(), "E310000000001".into(), None))
        );
    }

    #[test]
    fn unreadable_and_unsigned_documents_get_their_codes() {
        let r = check_ecf(b"not xml", "131880738", None, 0).unwrap_err();
        assert_eq!(r.code(), 1);
        let unsigned = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><ECF><Encabezado><Version>1.0</Version><IdDoc><TipoeCF>31</TipoeCF><eNCF>E310000000001</eNCF></IdDoc><Emisor><RNCEmisor>101672919</RNCEmisor><RazonSocialEmisor>X</RazonSocialEmisor><FechaEmision>01-12-2026</FechaEmision></Emisor><Comprador><RNCComprador>131880738</RNCComprador></Comprador><Totales><MontoTotal>100.00</MontoTotal></Totales></Encabezado></ECF>";
        let r = check_ecf(unsigned, "131880738", None, 0).unwrap_err();
        assert_eq!(r.code(), 2, "{r:?}");
        let wrong_type = String::from_utf8_lossy(unsigned).replace("<TipoeCF>31", "<TipoeCF>32");
        let r = check_ecf(wrong_type.as_bytes(), "131880738", None, 0).unwrap_err();
        assert_eq!(r.code(), 1, "{r:?}");
    }
}
