//! What the DGII gateway submits for a document a register signed: the stored
//! bytes unchanged (DESIGN "Electronic fiscal documents", invariant 10) — for
//! an `E32` under RD$250,000 only its RFCE, the E32 kept as the archive; for
//! anything else the e-CF — after the checks that keep a document DGII would
//! refuse from ever being sent: the issuer (`RNCEmisor`) is the configured
//! taxpayer, the e-NCF is the queued number, the RFCE belongs to its e-CF
//! (same number, `CodigoSeguridadeCF` = the e-CF's code), and the signature
//! verifies against the hub's trusted CAs ([`SignatureCheck`]). A failed
//! check is [`BuildError::Invalid`] (a `manual` conflict, never sent). A
//! credit note (`E34`) goes only after the e-CF it modifies was accepted; a
//! credit note of a `B` document goes at once (Informe Técnico e-CF §9:
//! an E34 may modify an NCF).
//!
//! Sources: Descripción técnica v1.6 (the summary rule, the QR addresses
//! `ConsultaTimbre` / `ConsultaTimbreFC` and their parameters); Formato e-CF
//! v1.0 (`InformacionReferencia/NCFModificado`, `FechaHoraFirma`).

use std::sync::Arc;

use caja_shared::ecf::certificate::{verify_chain, TrustStore};
use caja_shared::ecf::xmldsig;
use caja_shared::money::Money;

use super::dgii::{self, DgiiConfig};
use super::xml;
use super::{BuildError, DocumentSource, SignedSource};
use crate::outbox::{DocState, Prepared};

/// The signature check the hub runs on every signed document before its
/// first submission, given the signing time (UTC ms). `Err` names what
/// failed. See [`signature_check`].
pub type SignatureCheck = dyn Fn(&[u8], i64) -> Result<(), String> + Send + Sync;

/// The hub's check: the enveloped XMLDSig verifies ([`xmldsig::verify`]:
/// canonical digest, RSA-SHA256 value, profile — any serialization), and the
/// certificate in `KeyInfo` chains to one of the trusted CAs and was valid at
/// the signing time ([`verify_chain`]). Without trusted CAs (no
/// `[tax_authority] trusted_ca`) only the signature is verified.
pub fn signature_check(trust: Option<Arc<TrustStore>>) -> Arc<SignatureCheck> {
    Arc::new(move |xml: &[u8], at_ms: i64| {
        let v = xmldsig::verify(xml).map_err(|e| e.to_string())?;
        if let Some(t) = &trust {
            verify_chain(&v.certificate_der, &[], t, at_ms)
                .map_err(|e| format!("certificate: {e}"))?;
        }
        Ok(())
    })
}

fn field(fields: &[(String, String)], suffix: &str) -> Option<String> {
    fields
        .iter()
        .find(|(p, _)| p.ends_with(suffix))
        .map(|(_, v)| v.clone())
}

/// The number an e-CF credit note modifies (`NCFModificado`), if any.
pub fn modified_number(ecf: &[u8]) -> Option<String> {
    let f = xml::flatten(ecf).ok()?;
    field(&f, "/InformacionReferencia/NCFModificado")
}

/// The security code: the first 6 characters of `SignatureValue`.
fn signature_code(fields: &[(String, String)]) -> Option<String> {
    let v = field(fields, "/Signature/SignatureValue")?;
    let v: String = v.chars().filter(|c| !c.is_whitespace()).take(6).collect();
    (v.chars().count() == 6).then_some(v)
}

/// `dd-MM-yyyy HH:mm:ss` → the same (checked shape only).
fn dmy_time(s: &str) -> Option<String> {
    let ok = s.len() == 19 && s.as_bytes()[2] == b'-' && s.as_bytes()[10] == b' ';
    ok.then(|| s.to_owned())
}

/// The stored documents as DGII receives them (see the module doc).
pub fn prepare(
    cfg: &DgiiConfig,
    src: &DocumentSource,
    docs: &[SignedSource],
    check: Option<&SignatureCheck>,
) -> Result<Prepared, BuildError> {
    let invalid = |why: String| Err(BuildError::Invalid(why));
    let Some(ecf) = docs.iter().find(|d| d.kind == "ecf") else {
        return invalid(format!("{}: no signed e-CF is stored", src.doc_key));
    };
    let rfce = docs.iter().find(|d| d.kind == "rfce");
    let f = xml::flatten(&ecf.xml)
        .map_err(|e| BuildError::Invalid(format!("{}: the e-CF is not XML: {e}", src.doc_key)))?;
    let get = |p: &str| xml::field(&f, p).map(str::to_owned);
    let rnc = get("ECF/Encabezado/Emisor/RNCEmisor").unwrap_or_default();
    if rnc != cfg.rnc {
        return invalid(format!(
            "{}: RNCEmisor {rnc:?} is not the configured RNC {}",
            src.doc_key, cfg.rnc
        ));
    }
    let encf = get("ECF/Encabezado/IdDoc/eNCF").unwrap_or_default();
    if encf != src.doc_key {
        return invalid(format!(
            "{}: the signed e-CF carries e-NCF {encf:?}",
            src.doc_key
        ));
    }
    if let Some(check) = check {
        for d in docs {
            check(&d.xml, src.issued_ms).map_err(|e| {
                BuildError::Invalid(format!("{} ({}): signature: {e}", src.doc_key, d.kind))
            })?;
        }
    }
    let Some(code) = signature_code(&f) else {
        return invalid(format!("{}: the e-CF is not signed", src.doc_key));
    };
    if let Some(given) = &ecf.security_code {
        if *given != code {
            return invalid(format!(
                "{}: the event's security code {given} is not the signature's {code}",
                src.doc_key
            ));
        }
    }
    let total_text = get("ECF/Encabezado/Totales/MontoTotal").unwrap_or_default();
    let total: Money = total_text
        .parse()
        .map_err(|_| BuildError::Invalid(format!("{}: MontoTotal {total_text:?}", src.doc_key)))?;
    if let (Some(n), Some((modified, state))) = (modified_number(&ecf.xml), &src.modified) {
        debug_assert_eq!(&n, modified);
        if n.starts_with('E') {
            match state {
                Some(DocState::Accepted | DocState::AcceptedConditional) => {}
                Some(DocState::Rejected) => {
                    return invalid(format!(
                        "{}: the document it modifies, {n}, was rejected by the tax authority",
                        src.doc_key
                    ))
                }
                _ => {
                    return Err(BuildError::Wait(format!(
                        "{}: the document it modifies, {n}, is not accepted yet",
                        src.doc_key
                    )))
                }
            }
        }
    }
    let summary = dgii::uses_summary(&src.series, total);
    match (summary, rfce) {
        (true, Some(r)) => {
            let rf = xml::flatten(&r.xml).map_err(|e| {
                BuildError::Invalid(format!("{}: the RFCE is not XML: {e}", src.doc_key))
            })?;
            let rget = |p: &str| xml::field(&rf, p).map(str::to_owned);
            if rget("RFCE/Encabezado/IdDoc/eNCF").as_deref() != Some(src.doc_key.as_str())
                || rget("RFCE/Encabezado/Emisor/RNCEmisor").as_deref() != Some(cfg.rnc.as_str())
            {
                return invalid(format!(
                    "{}: the RFCE names another e-NCF or issuer",
                    src.doc_key
                ));
            }
            if rget("RFCE/Encabezado/CodigoSeguridadeCF").as_deref() != Some(code.as_str()) {
                return invalid(format!(
                    "{}: the RFCE's CodigoSeguridadeCF is not the e-CF's code {code}",
                    src.doc_key
                ));
            }
            let url = dgii::query(
                &format!("{}/ConsultaTimbreFC", cfg.fc_base_url.trim_end_matches('/')),
                &[
                    ("RncEmisor", cfg.rnc.clone()),
                    ("ENCF", src.doc_key.clone()),
                    ("MontoTotal", total.to_string()),
                    ("CodigoSeguridad", code.clone()),
                ],
            );
            Ok(Prepared {
                channel: dgii::CHANNEL_SUMMARY.to_owned(),
                body_hash: caja_shared::digest::Hash256::of(&r.xml),
                body: r.xml.clone(),
                archive: Some(ecf.xml.clone()),
                security_code: Some(code),
                verify_url: Some(url),
            })
        }
        (true, None) => invalid(format!(
            "{}: an E32 under RD$250,000.00 goes as its RFCE, and none was signed",
            src.doc_key
        )),
        (false, Some(_)) => invalid(format!(
            "{}: an RFCE was signed for a document DGII receives whole",
            src.doc_key
        )),
        (false, None) => {
            let mut params = vec![("RncEmisor", cfg.rnc.clone())];
            if let Some(b) = get("ECF/Encabezado/Comprador/RNCComprador") {
                params.push(("RncComprador", b));
            }
            params.push(("ENCF", src.doc_key.clone()));
            params.extend(get("ECF/Encabezado/Emisor/FechaEmision").map(|d| ("FechaEmision", d)));
            params.push(("MontoTotal", total.to_string()));
            params.extend(
                get("ECF/FechaHoraFirma")
                    .and_then(|t| dmy_time(&t))
                    .map(|t| ("FechaFirma", t)),
            );
            params.push(("CodigoSeguridad", code.clone()));
            let url = dgii::query(
                &format!("{}/ConsultaTimbre", cfg.ecf_base_url.trim_end_matches('/')),
                &params,
            );
            Ok(Prepared {
                channel: dgii::CHANNEL_ECF.to_owned(),
                body_hash: caja_shared::digest::Hash256::of(&ecf.xml),
                body: ecf.xml.clone(),
                archive: None,
                security_code: Some(code),
                verify_url: Some(url),
            })
        }
    }
}

/// A cancellation (ANECF) of a written-off register's unused numbers, built
/// and signed by the hub with its own certificate (DESIGN: what the hub
/// issues itself is signed with the hub's certificate of the same taxpayer).
pub fn cancellation(
    cfg: &DgiiConfig,
    src: &DocumentSource,
    signer: &xmldsig::Signer,
) -> Result<Prepared, BuildError> {
    let super::SourceBody::Cancellation { first, last, .. } = &src.body else {
        return Err(BuildError::WrongSource {
            doc_type: src.doc_type.as_str(),
            what: "not a cancelled range",
        });
    };
    let issuer = dgii::issuer(cfg).map_err(|e| BuildError::Issuer(e.to_string()))?;
    let signed = caja_shared::ecf::issue::cancellation(
        &issuer,
        &src.series,
        &[(first.as_str(), last.as_str())],
        src.built_ms,
        src.offset,
        signer,
    )
    .map_err(|e| BuildError::Document(e.to_string()))?;
    Ok(Prepared {
        channel: dgii::CHANNEL_CANCEL.to_owned(),
        body_hash: signed.sha256,
        body: signed.xml,
        archive: None,
        security_code: None,
        verify_url: None,
    })
}

/// The seed of DGII's token exchange signed with the hub's certificate
/// (Descripción técnica v1.6 §2: the whole `SemillaModel` signed, enveloped,
/// `Reference URI=""`, the certificate in `KeyInfo`). The seed is rewritten
/// in Caja's serialization before signing — `valor` and `fecha` kept, the
/// unused namespace declarations of DGII's answer dropped, since the
/// signature profile signs a root without attributes (guessed: DGII's text
/// does not say whether the returned seed must keep them).
pub fn signed_seed(seed: &[u8], signer: &xmldsig::Signer) -> Result<Vec<u8>, String> {
    use caja_shared::ecf::xml as cx;
    let f = xml::flatten(seed)?;
    let valor = xml::field(&f, "SemillaModel/valor").ok_or("the seed has no valor")?;
    let fecha = xml::field(&f, "SemillaModel/fecha").unwrap_or_default();
    let mut s = String::from(cx::DECLARATION);
    cx::open(&mut s, "SemillaModel", &[]);
    cx::open(&mut s, "valor", &[]);
    cx::escape_text(&mut s, valor);
    cx::close(&mut s, "valor");
    if !fecha.is_empty() {
        cx::open(&mut s, "fecha", &[]);
        cx::escape_text(&mut s, fecha);
        cx::close(&mut s, "fecha");
    }
    cx::close(&mut s, "SemillaModel");
    xmldsig::sign(s.as_bytes(), signer).map_err(|e| e.to_string())
}

/// What of an e-CF 32 its summary (RFCE) carries, element by element, in the
/// order of DGII's `RFCE-32.xsd`: `(parent, children kept)`. A child not
/// listed is left out; `TablaFormasPago` and `ImpuestosAdicionales` are kept
/// whole.
const SUMMARY_FIELDS: &[(&str, &[&str])] = &[
    (
        "Encabezado",
        &["Version", "IdDoc", "Emisor", "Comprador", "Totales"],
    ),
    (
        "IdDoc",
        &[
            "TipoeCF",
            "eNCF",
            "TipoIngresos",
            "TipoPago",
            "TablaFormasPago",
        ],
    ),
    (
        "Emisor",
        &["RNCEmisor", "RazonSocialEmisor", "FechaEmision"],
    ),
    (
        "Comprador",
        &[
            "RNCComprador",
            "IdentificadorExtranjero",
            "RazonSocialComprador",
        ],
    ),
    (
        "Totales",
        &[
            "MontoGravadoTotal",
            "MontoGravadoI1",
            "MontoGravadoI2",
            "MontoGravadoI3",
            "MontoExento",
            "TotalITBIS",
            "TotalITBIS1",
            "TotalITBIS2",
            "TotalITBIS3",
            "MontoImpuestoAdicional",
            "ImpuestosAdicionales",
            "MontoTotal",
            "MontoNoFacturable",
            "MontoPeriodo",
        ],
    ),
];

fn summary_element(e: &caja_shared::ecf::xml::Element) -> Option<caja_shared::ecf::xml::Element> {
    use caja_shared::ecf::xml::{Content, Element};
    let Some((_, keep)) = SUMMARY_FIELDS.iter().find(|(p, _)| *p == e.name) else {
        return Some(e.clone());
    };
    let children: Vec<Content> = e
        .elements()
        .filter(|c| keep.contains(&c.name.as_str()))
        .filter_map(summary_element)
        .map(Content::Element)
        .collect();
    (!children.is_empty()).then(|| Element {
        name: e.name.clone(),
        attrs: vec![],
        children,
    })
}

/// The summary (RFCE) of a signed consumer invoice (`E32` under
/// RD$250,000), rebuilt from the invoice itself, unsigned: what head office
/// submits when DGII rejected the register's summary (DESIGN "Electronic
/// fiscal documents": the correction of a rejected RFCE). Every field is
/// copied from the signed e-CF in the order of `RFCE-32.xsd` (Formato RFCE:
/// the summary repeats the invoice's header and totals) and
/// `CodigoSeguridadeCF` is the e-CF's own security code, so the summary can
/// only say what the invoice the buyer holds says. For an untouched sale it
/// is byte for byte what the register's `shared::ecf::document::summary`
/// wrote.
pub fn summary_of_invoice(ecf: &[u8]) -> Result<Vec<u8>, String> {
    use caja_shared::ecf::xml::{parse, Content, Element, DECLARATION};
    let code = xmldsig::security_code(ecf).map_err(|e| format!("the e-CF's signature: {e}"))?;
    let root = parse(ecf).map_err(|e| format!("the e-CF: {e}"))?;
    if root.name != "ECF" || root.text_at("Encabezado/IdDoc/TipoeCF") != Some("32") {
        return Err("only a consumer invoice (e-CF 32) has a summary".into());
    }
    let encabezado = root
        .child("Encabezado")
        .and_then(summary_element)
        .ok_or("the e-CF has no Encabezado")?;
    let mut encabezado = encabezado;
    encabezado.children.push(Content::Element(Element {
        name: "CodigoSeguridadeCF".into(),
        attrs: vec![],
        children: vec![Content::Text(code)],
    }));
    let rfce = Element {
        name: "RFCE".into(),
        attrs: vec![],
        children: vec![Content::Element(encabezado)],
    };
    let mut out = String::from(DECLARATION);
    rfce.write(&mut out);
    Ok(out.into_bytes())
}
