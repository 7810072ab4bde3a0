//! The Dominican Republic's DGII e-CF services, the pure half: the service
//! paths, the reading of the answers, and the documents (`ECF`, the
//! consumer-invoice summary `RFCE`, the cancellation `ANECF`) built from the
//! registers' events by `caja_shared::ecf::document` (schema-valid; see
//! there), with the security code and verification address printed on
//! receipts. [`super::dgii_http`] does the IO.
//!
//! Followed from DGII's public "Descripción técnica de facturación
//! electrónica" (v1.6): the service paths under `{ambiente}` bases
//! (`https://ecf.dgii.gov.do/testecf`, `https://fc.dgii.gov.do/testecf`, …),
//! seed → signed seed → bearer token with an expiry, `POST
//! /recepcion/api/facturaselectronicas` → `trackId`, `GET
//! /consultaresultado/api/consultas/estado?trackId=` with `codigo` 0 (not
//! found), 1 (Aceptado), 2 (Rechazado), 3 (En Proceso), 4 (Aceptado
//! Condicional), consumer invoices (`E32`) below RD$250,000.00 sent as a
//! summary to `fc.` `/recepcionfc/api/recepcion/ecf` and answered at once,
//! `GET /consultatrackids/api/trackids/consulta?RncEmisor=&ENCF=` (what DGII
//! holds for a number: our lookup after a lost answer), `GET
//! /consultarfce/api/Consultas/Consulta` for summaries, `POST
//! /anulacionrangos/api/operaciones/anularrango`, file names
//! `{RNC}{e-NCF}.xml`, the QR addresses `ConsultaTimbre` /
//! `ConsultaTimbreFC`.
//!
//! What the outbox submits is not built here: registers sign their e-CF
//! (`caja_shared::ecf::issue`) and the outbox submits those bytes
//! ([`super::dgii_signed`], which also signs the seed and the ANECF with the
//! hub's certificate). The builders here (unsigned; their security code is
//! the first six hexadecimal digits of SHA-256 of the full e-CF,
//! `CodigoModificacion` 3 for every return) remain for tests and the
//! benchmark's baseline. Guessed (documented where the public text is
//! silent): the cancellation answer is read by its `estado` text; a
//! cancellation has no lookup service, so it is resent as is (DGII is
//! expected to answer a repeated identical cancellation the same way — the
//! emulator does).

use caja_shared::digest::Hash256;
use caja_shared::ecf::document::{
    self, Built, DocumentError, ModificationCode, ModifiedDocument, SaleContextEcf,
};
use caja_shared::ecf::issuer::{Environment, Issuer, IssuerError};
use caja_shared::ecf::numbers;
use caja_shared::ecf::receipt::{self, TimbreParams};
use caja_shared::kind::{AuthorityMessage, FiscalDocType};
use caja_shared::localtime::{LocalDate, LocalDateTime, UtcOffset};
use caja_shared::money::Money;
use serde_json::Value;

use super::xml;
use super::{BuildError, DocumentSource, SourceBody, StatusAnswer, Submitted};
use crate::outbox::{FinalStatus, Prepared, Verdict};

/// The authority's short name.
pub const AUTHORITY: &str = "dgii";

/// Consumer invoices (`E32`) below this total go as a summary (RFCE):
/// RD$250,000.00.
pub const SUMMARY_THRESHOLD: Money = numbers::BUYER_THRESHOLD;

/// Seed (GET, on the e-CF base).
pub const PATH_SEED: &str = "/autenticacion/api/autenticacion/semilla";
/// Signed seed → token (POST form `xml`, on the e-CF base).
pub const PATH_VALIDATE_SEED: &str = "/autenticacion/api/autenticacion/validarsemilla";
/// e-CF reception (POST form `xml`, on the e-CF base) → `trackId`.
pub const PATH_RECEPTION: &str = "/recepcion/api/facturaselectronicas";
/// Status by tracking id (GET `?trackId=`, on the e-CF base).
pub const PATH_STATUS: &str = "/consultaresultado/api/consultas/estado";
/// Tracking ids of a number (GET `?RncEmisor=&ENCF=`, on the e-CF base).
pub const PATH_TRACKIDS: &str = "/consultatrackids/api/trackids/consulta";
/// Consumer-invoice summary reception (POST form `xml`, on the FC base).
pub const PATH_SUMMARY: &str = "/recepcionfc/api/recepcion/ecf";
/// Summary query (GET `?RNC_Emisor=&ENCF=&Cod_Seguridad_eCF=`, on the FC base).
pub const PATH_SUMMARY_QUERY: &str = "/consultarfce/api/Consultas/Consulta";
/// Cancellation of unused numbers (POST form `xml`, on the e-CF base).
pub const PATH_CANCEL: &str = "/anulacionrangos/api/operaciones/anularrango";

/// Channel of a full e-CF.
pub const CHANNEL_ECF: &str = "ecf";
/// Channel of a consumer-invoice summary.
pub const CHANNEL_SUMMARY: &str = "rfce";
/// Channel of a cancellation.
pub const CHANNEL_CANCEL: &str = "anecf";

/// The issuer's data and the service bases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DgiiConfig {
    /// Base of the e-CF services, e.g. `https://ecf.dgii.gov.do/testecf`.
    pub ecf_base_url: String,
    /// Base of the consumer-invoice services, e.g.
    /// `https://fc.dgii.gov.do/testecf`.
    pub fc_base_url: String,
    /// The issuer's RNC (9 digits) or cédula (11).
    pub rnc: String,
    /// The issuer's legal name.
    pub legal_name: String,
    /// The issuer's address, when configured.
    pub address: Option<String>,
}

/// The e-CF type of a series (`E32` → 32).
pub fn ecf_type(series: &str) -> Option<u8> {
    let digits = series.strip_prefix('E')?;
    if digits.len() != 2 {
        return None;
    }
    digits.parse().ok()
}

/// Whether a sale of this series and total goes as a summary (RFCE).
pub fn uses_summary(series: &str, total: Money) -> bool {
    ecf_type(series).is_some_and(|t| numbers::uses_summary(t, total))
}

/// The issuer of the configured taxpayer, validated (a missing or unfit
/// address or name is a configuration error, never a dropped element).
pub fn issuer(cfg: &DgiiConfig) -> Result<Issuer, IssuerError> {
    Issuer::new(
        &cfg.rnc,
        &cfg.legal_name,
        cfg.address.as_deref().unwrap_or(""),
        None,
    )
}

/// The environment named by the last segment of the e-CF base
/// (`…/testecf`, `…/certecf`, `…/ecf`); the emulator's bases are tests.
fn environment(cfg: &DgiiConfig) -> Environment {
    cfg.ecf_base_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(Environment::parse)
        .unwrap_or(Environment::Test)
}

/// The security code of an unsigned full e-CF (see the module doc: until the
/// register's signed bytes arrive, SHA-256 stands in for the signature
/// value).
pub fn security_code(full_ecf: &[u8]) -> String {
    Hash256::of(full_ecf).to_hex()[..6].to_ascii_uppercase()
}

/// `base?k=v&…` with every value percent-encoded.
pub fn query(base: &str, params: &[(&str, String)]) -> String {
    receipt::query(base, params)
}

fn ctx<'a>(cfg: &DgiiConfig, issuer: &'a Issuer, src: &'a DocumentSource) -> SaleContextEcf<'a> {
    SaleContextEcf {
        issuer,
        environment: environment(cfg),
        offset: src.offset,
        issued_ms: src.issued_ms,
        signed_at_ms: src.built_ms,
        series_valid_until: None,
        deferred_send: false,
        buyer_name: None,
    }
}

fn timbre(cfg: &DgiiConfig, src: &DocumentSource, b: &Built, code: &str) -> String {
    receipt::consulta_timbre(
        &cfg.ecf_base_url,
        &TimbreParams {
            rnc: &cfg.rnc,
            buyer_rnc: b.buyer_rnc.as_deref(),
            encf: &b.encf,
            issued: LocalDate::from_utc_ms(src.issued_ms, src.offset),
            total: b.total,
            signed_at: LocalDateTime::from_utc_ms(src.built_ms, src.offset),
            code,
        },
    )
}

fn document_error(e: DocumentError) -> BuildError {
    match e {
        DocumentError::TaxRate { line, bp } => BuildError::UnsupportedTaxRate { line, bp },
        e => BuildError::Document(e.to_string()),
    }
}

/// Builds a document with `caja_shared::ecf::document`: the bytes to
/// submit, the kept full e-CF when a summary is submitted, the security code
/// and the verification address.
pub fn build(cfg: &DgiiConfig, src: &DocumentSource) -> Result<Prepared, BuildError> {
    let issuer = issuer(cfg).map_err(|e| BuildError::Issuer(e.to_string()))?;
    let ctx = ctx(cfg, &issuer, src);
    let (channel, body, archive, code, url) = match (&src.doc_type, &src.body) {
        (FiscalDocType::Invoice, SourceBody::Sale(sale)) => {
            let fiscal = sale.fiscal.as_ref().ok_or(BuildError::Missing("fiscal"))?;
            ecf_type(&fiscal.series)
                .ok_or_else(|| BuildError::NotSubmitted(fiscal.series.clone()))?;
            let b = document::invoice(sale, &ctx).map_err(document_error)?;
            let code = security_code(&b.xml);
            if numbers::uses_summary(b.ecf_type, b.total) {
                let url = receipt::consulta_timbre_fc(
                    &cfg.fc_base_url,
                    &cfg.rnc,
                    &b.encf,
                    b.total,
                    &code,
                );
                let summary = document::summary(sale, &ctx, &code).map_err(document_error)?;
                (CHANNEL_SUMMARY, summary, Some(b.xml), Some(code), Some(url))
            } else {
                let url = timbre(cfg, src, &b, &code);
                (CHANNEL_ECF, b.xml, None, Some(code), Some(url))
            }
        }
        (FiscalDocType::CreditNote, SourceBody::Return(r)) => {
            let note = r
                .credit_note
                .as_ref()
                .ok_or(BuildError::Missing("credit_note"))?;
            ecf_type(&note.series).ok_or_else(|| BuildError::NotSubmitted(note.series.clone()))?;
            let modified = ModifiedDocument {
                ncf: note
                    .modifies
                    .clone()
                    .ok_or(BuildError::Missing("credit_note.modifies"))?,
                issued_date: src
                    .modified_issued_ms
                    .map(|ms| LocalDate::from_utc_ms(ms, src.offset))
                    .ok_or(BuildError::Missing("the modified document's issue date"))?,
                code: ModificationCode::CorrectAmounts,
            };
            let b = document::credit_note(r, &modified, &ctx).map_err(document_error)?;
            let code = security_code(&b.xml);
            let url = timbre(cfg, src, &b, &code);
            (CHANNEL_ECF, b.xml, None, Some(code), Some(url))
        }
        (FiscalDocType::Cancellation, SourceBody::Cancellation { first, last, count }) => {
            let bytes = document::cancellation(
                &issuer,
                &src.series,
                &[(first.as_str(), last.as_str())],
                LocalDateTime::from_utc_ms(src.built_ms, src.offset),
            )
            .map_err(document_error)?;
            let counted = numbers::parse_encf(last)
                .and_then(|l| {
                    numbers::parse_encf(first).map(|f| l.sequence.saturating_sub(f.sequence) + 1)
                })
                .map_err(|e| BuildError::Document(e.to_string()))?;
            if counted != *count {
                return Err(BuildError::Document(format!(
                    "the cancelled range {first}..{last} holds {counted} numbers, not {count}"
                )));
            }
            (CHANNEL_CANCEL, bytes, None, None, None)
        }
        (t, b) => {
            return Err(BuildError::WrongSource {
                doc_type: t.as_str(),
                what: match b {
                    SourceBody::Signed(_) => "signed documents",
                    SourceBody::Sale(_) => "a sale",
                    SourceBody::Return(_) => "a return",
                    SourceBody::Cancellation { .. } => "a cancelled range",
                },
            })
        }
    };
    Ok(Prepared {
        channel: channel.to_owned(),
        body_hash: Hash256::of(&body),
        body,
        archive,
        security_code: code,
        verify_url: url,
    })
}

/// The file name DGII expects: `{RNC}{e-NCF}.xml` (`{RNC}ANECF{…}.xml` for a
/// cancellation).
pub fn file_name(rnc: &str, doc_key: &str) -> String {
    match doc_key.strip_prefix("ANECF:") {
        Some(range) => format!("{rnc}ANECF{}.xml", range.replace(':', "-")),
        None => format!("{rnc}{doc_key}.xml"),
    }
}

// ---- Answers ----------------------------------------------------------------

/// A JSON field by name, case-insensitively (DGII's services are not case
/// sensitive and implementations differ in casing).
fn get<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_text(v: &Value, name: &str) -> Option<String> {
    get(v, name).and_then(text_of).filter(|s| !s.is_empty())
}

/// The messages of an answer: `mensajes` `[{"codigo","valor"}]` or a single
/// `mensaje` string (both shapes appear in DGII's documentation).
pub fn messages(v: &Value) -> Vec<AuthorityMessage> {
    let mut out = Vec::new();
    if let Some(Value::Array(items)) = get(v, "mensajes") {
        for m in items {
            out.push(AuthorityMessage {
                code: get_text(m, "codigo").unwrap_or_default(),
                text: get_text(m, "valor")
                    .or_else(|| text_of(m))
                    .unwrap_or_default(),
            });
        }
    }
    if let Some(m) = get_text(v, "mensaje") {
        out.push(AuthorityMessage {
            code: get_text(v, "codigo").unwrap_or_default(),
            text: m,
        });
    }
    if let Some(e) = get_text(v, "error") {
        out.push(AuthorityMessage {
            code: "error".into(),
            text: e,
        });
    }
    out
}

/// A status from `codigo` (0–4), else from `estado`'s words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estado {
    /// 0, `No encontrado`.
    NotFound,
    /// 1, `Aceptado`.
    Accepted,
    /// 2, `Rechazado`.
    Rejected,
    /// 3, `En Proceso`.
    InProcess,
    /// 4, `Aceptado Condicional`.
    Conditional,
}

impl Estado {
    /// The `codigo`.
    pub fn code(self) -> u8 {
        match self {
            Estado::NotFound => 0,
            Estado::Accepted => 1,
            Estado::Rejected => 2,
            Estado::InProcess => 3,
            Estado::Conditional => 4,
        }
    }

    /// The `estado` text.
    pub fn text(self) -> &'static str {
        match self {
            Estado::NotFound => "No Encontrado",
            Estado::Accepted => "Aceptado",
            Estado::Rejected => "Rechazado",
            Estado::InProcess => "En Proceso",
            Estado::Conditional => "Aceptado Condicional",
        }
    }

    fn from_text(s: &str) -> Option<Estado> {
        let s = s.trim().to_lowercase();
        Some(match s.as_str() {
            "aceptado" | "accepted" => Estado::Accepted,
            "aceptado condicional" | "conditionally accepted" => Estado::Conditional,
            "rechazado" | "rejected" => Estado::Rejected,
            "en proceso" | "in process" => Estado::InProcess,
            "no encontrado" | "not found" => Estado::NotFound,
            _ => return None,
        })
    }

    /// Reads an answer's status.
    pub fn of(v: &Value) -> Option<Estado> {
        let by_code = get_text(v, "codigo").and_then(|c| match c.trim() {
            "0" => Some(Estado::NotFound),
            "1" => Some(Estado::Accepted),
            "2" => Some(Estado::Rejected),
            "3" => Some(Estado::InProcess),
            "4" => Some(Estado::Conditional),
            _ => None,
        });
        by_code.or_else(|| get_text(v, "estado").and_then(|e| Estado::from_text(&e)))
    }

    fn verdict(self, v: &Value) -> Option<Verdict> {
        let status = match self {
            Estado::Accepted => FinalStatus::Accepted,
            Estado::Conditional => FinalStatus::AcceptedConditional,
            Estado::Rejected => FinalStatus::Rejected,
            Estado::InProcess | Estado::NotFound => return None,
        };
        Some(Verdict {
            status,
            messages: messages(v),
        })
    }
}

/// Why an answer could not be read.
pub type AnswerError = String;

fn json(body: &[u8]) -> Result<Value, AnswerError> {
    serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))
}

/// The seed (`SemillaModel`): checked to hold a `valor`; returned as is (it
/// is what gets "signed").
pub fn read_seed(body: &[u8]) -> Result<Vec<u8>, AnswerError> {
    let f = xml::flatten(body)?;
    match xml::field(&f, "SemillaModel/valor") {
        Some(v) if !v.trim().is_empty() => Ok(body.to_vec()),
        _ => Err("the seed has no SemillaModel/valor".into()),
    }
}

/// `{"token","expira","expedido"}` → the token and its expiry (UTC ms).
pub fn read_token(body: &[u8]) -> Result<(String, i64), AnswerError> {
    let v = json(body)?;
    let token = get_text(&v, "token").ok_or("no token")?;
    let expira = get_text(&v, "expira").ok_or("no expira")?;
    let ms = parse_utc(&expira)
        .ok_or_else(|| format!("expira {expira:?} is not yyyy-MM-ddTHH:mm:ssZ"))?;
    Ok((token, ms))
}

/// `yyyy-MM-ddTHH:mm:ss[.fraction][Z|±hh:mm]` → UTC ms (no zone = UTC).
/// The text comes from the tax authority's answers: a year outside
/// 1..=9999, an offset beyond ±23:59 or any other field out of range is
/// `None`, and the arithmetic is checked (never a panic or a wrap).
pub fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    if !(1..=9999).contains(&year) || d.next().is_some() {
        return None;
    }
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0i64)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|i| *i >= 8) {
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off.get(1..)?.split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
            return None;
        }
        (t, sign * (h * 60 + m))
    } else {
        (rest, 0)
    };
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = t.next()?.parse().ok()?;
    if !(0..=23).contains(&h) || !(0..=59).contains(&mi) || !(0..=60).contains(&se) {
        return None;
    }
    let start = LocalDate::new(year, month, day)?.start_utc_ms(UtcOffset::UTC);
    let minutes = h
        .checked_mul(60)?
        .checked_add(mi)?
        .checked_sub(offset_min)?;
    let seconds = minutes.checked_mul(60)?.checked_add(se)?;
    start.checked_add(seconds.checked_mul(1000)?)
}

/// The answer of e-CF reception (2xx): `{"trackId","error","mensaje"}`.
pub fn read_reception(body: &[u8]) -> Result<Submitted, AnswerError> {
    let v = json(body)?;
    match get_text(&v, "trackId") {
        Some(t) => Ok(Submitted::Tracked(t)),
        None => Err(format!("no trackId in {v}")),
    }
}

/// A 400 from reception: the document was refused, a verdict a person must
/// see.
pub fn refusal(body: &[u8]) -> Verdict {
    let messages = match serde_json::from_slice::<Value>(body) {
        Ok(v) => messages(&v),
        Err(_) => vec![AuthorityMessage {
            code: "400".into(),
            text: String::from_utf8_lossy(body).chars().take(500).collect(),
        }],
    };
    Verdict {
        status: FinalStatus::Rejected,
        messages,
    }
}

/// The answer of a status query.
pub fn read_status(body: &[u8]) -> Result<StatusAnswer, AnswerError> {
    let v = json(body)?;
    let e = Estado::of(&v).ok_or_else(|| format!("no codigo/estado in {v}"))?;
    Ok(match e {
        Estado::NotFound => StatusAnswer::NotFound,
        Estado::InProcess => StatusAnswer::InProcess,
        _ => StatusAnswer::Final(e.verdict(&v).ok_or("no verdict")?),
    })
}

/// The synchronous answer to a summary or a cancellation.
pub fn read_decision(body: &[u8]) -> Result<Verdict, AnswerError> {
    let v = json(body)?;
    let e = Estado::of(&v).ok_or_else(|| format!("no codigo/estado in {v}"))?;
    e.verdict(&v)
        .ok_or_else(|| format!("not a verdict: {}", e.text()))
}

/// What the authority holds for a number (trackIds query): an accepted
/// submission if any, else one in process, else the latest rejected one.
pub fn read_trackids(body: &[u8]) -> Result<Option<Submitted>, AnswerError> {
    let v = json(body)?;
    let list = match &v {
        Value::Array(a) => a.clone(),
        _ => match get(&v, "detalles") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => return Err(format!("detalles is not a list: {other}")),
        },
    };
    let mut in_process = None;
    let mut rejected = None;
    for d in &list {
        let Some(track) = get_text(d, "trackId") else {
            continue;
        };
        match Estado::of(d) {
            Some(e @ (Estado::Accepted | Estado::Conditional)) => {
                return Ok(e.verdict(d).map(Submitted::Decided));
            }
            Some(Estado::InProcess) => in_process = Some(track),
            Some(e @ Estado::Rejected) => rejected = e.verdict(d),
            _ => {}
        }
    }
    Ok(in_process
        .map(Submitted::Tracked)
        .or(rejected.map(Submitted::Decided)))
}

/// The summary query's answer: `None` when not found.
pub fn read_summary_query(body: &[u8]) -> Result<Option<Submitted>, AnswerError> {
    let v = json(body)?;
    match Estado::of(&v).ok_or_else(|| format!("no codigo/estado in {v}"))? {
        Estado::NotFound => Ok(None),
        // A summary is decided at once; "in process" means not yet recorded.
        Estado::InProcess => Ok(None),
        e => Ok(e.verdict(&v).map(Submitted::Decided)),
    }
}

#[cfg(test)]
mod tests;
