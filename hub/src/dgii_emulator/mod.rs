//! A DGII e-CF emulator for tests, demos and the benchmark (`caja-hub dev
//! dgii-emulator`, both only with the `testkit` feature): the services of [`crate::taxgw::dgii`] over real HTTP on
//! loopback, with faults on demand — slow answers, timeouts (the request
//! lost before it is processed, or processed and its answer lost), 5xx,
//! `En Proceso` for a number of status queries, rejections and conditional
//! acceptances of chosen numbers, short-lived tokens — and DGII's refusal of
//! a number already used.
//!
//! It counts, per document number, the submissions it **processed as new**
//! (`received`), identical resubmissions (`duplicates`), resubmissions with
//! other bytes (`conflicting`) and documents refused before processing
//! (`refused`: schema or signature): the outbox tests prove exactly-once
//! with these counts.
//!
//! **Checks** ([`Checks`], given at start): every received document (e-CF,
//! RFCE, ANECF) is validated against DGII's XSD with `xmllint --noout
//! --schema <xsd_dir>/<file>.xsd` and its enveloped XMLDSig signature
//! verified; a document that fails is refused with HTTP 400 and DGII-style
//! `mensajes`, `secuenciaUtilizada: false` (Descripción técnica v1.6, §4: an
//! XSD failure or an invalid signature leaves the number reusable). With
//! signature checks the seed of the token exchange must come back signed too
//! (§2). Without
//! an XSD directory the schema is not checked (unit tests that need no
//! `xmllint`).
//!
//! **Numbers already used.** Every submission gets its own `trackId`. A
//! second submission of an e-NCF DGII already received is rejected — DGII
//! rejects "e-NCF anulados o ya usados por el contribuyente" (Reglamento
//! 587-24 art. 17, as DGII's help centre lists the rejection causes); the
//! code (`1004`) and wording of the message are guessed, the public
//! documents do not give them. `consultatrackids` lists every submission of
//! the number, so the first one's verdict stays findable. A repeated
//! identical cancellation (ANECF) is answered as the first (no lookup
//! service exists for it; guessed). One exception: a summary (RFCE) with
//! other bytes for a number whose summary was **rejected** is received as
//! new (`received` and `contents` grow, `conflicting` does not) and its
//! answer replaces the first in `consultarfce` — head office's correction
//! of a rejected RFCE (DESIGN invariant 10; guessed: DGII's documents do
//! not say how it treats a corrected summary of the same e-NCF, Caja
//! assumes it takes it since the rejected one was not recorded as valid).
//! The e-CF services are served under
//! `/ecf`, the consumer-invoice ones under `/fc` ([`Emulator::ecf_base_url`],
//! [`Emulator::fc_base_url`]). Fault choices come from a seeded generator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::money::Money;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::system::SystemClock;
use crate::taxgw::dgii::{self, Estado};
use crate::taxgw::{multipart, xml};

mod directory;

/// Faults the emulator injects; change them while it runs with
/// [`Emulator::set_faults`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Of every 1000 calls, how many never answer in time: half are lost
    /// before they are processed, half are processed and their answer lost.
    pub timeout_per_mille: u32,
    /// Of every 1000 calls, how many answer 503: half before processing,
    /// half after.
    pub error_per_mille: u32,
    /// Added to every answer.
    pub slow_ms: u64,
    /// How long a "timeout" keeps the connection before giving up (longer
    /// than the client's deadline).
    pub hang_ms: u64,
    /// Status queries answered `En Proceso` before a tracked document's
    /// verdict.
    pub in_process_polls: u32,
    /// Lifetime of a token.
    pub token_ttl_ms: i64,
    /// Submissions are processed, then answered only after this long (a
    /// hub killed meanwhile never hears back).
    pub stall_submissions_ms: u64,
    /// Numbers rejected (with a message).
    pub reject: BTreeSet<String>,
    /// Numbers accepted with conditions.
    pub conditional: BTreeSet<String>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            timeout_per_mille: 0,
            error_per_mille: 0,
            slow_ms: 0,
            hang_ms: 3_000,
            in_process_polls: 0,
            token_ttl_ms: 3_600_000,
            stall_submissions_ms: 0,
            reject: BTreeSet::new(),
            conditional: BTreeSet::new(),
        }
    }
}

/// What the emulator saw of one number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberCount {
    /// Submissions processed as a new document.
    pub received: u32,
    /// Identical resubmissions, answered as the first.
    pub duplicates: u32,
    /// Resubmissions with other bytes (rejected).
    pub conflicting: u32,
    /// Distinct contents seen.
    pub contents: u32,
    /// Documents refused before processing (schema or signature).
    pub refused: u32,
    /// Submissions processed whose answer the emulator then lost on purpose
    /// (a timeout or a 503 after processing): each may make the outbox send
    /// the number again, so `duplicates` is bounded by it.
    pub answers_lost: u32,
}

/// What the emulator checks in every received document, as DGII does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checks {
    /// DGII's XSD directory (`e-CF-32.xsd`, `RFCE-32.xsd`, `ANECF.xsd`, …):
    /// every document is validated with `xmllint`. `None`: not validated.
    pub xsd_dir: Option<PathBuf>,
    /// Verify every document's XMLDSig signature.
    pub signatures: bool,
}

/// Totals, for tests and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Per document number (cancellations by `ANECF:first:last`).
    pub per_number: BTreeMap<String, NumberCount>,
    /// Lookups (trackIds and summary queries).
    pub lookups: u64,
    /// Status queries.
    pub status_queries: u64,
    /// Tokens issued.
    pub tokens: u64,
    /// Requests refused for a missing or expired token.
    pub unauthorized: u64,
    /// Faults injected.
    pub faults: u64,
}

#[derive(Debug, Clone)]
struct Track {
    number: String,
    polls_left: u32,
    verdict: Estado,
    messages: Vec<Value>,
}

#[derive(Debug, Clone)]
struct Doc {
    hash: Hash256,
    /// The synchronous answer (summary, cancellation).
    answer: Option<Value>,
    security_code: Option<String>,
}

#[derive(Debug)]
struct EmuState {
    rnc: String,
    checks: Checks,
    faults: Faults,
    rng: SeededRandom,
    seeds: BTreeSet<String>,
    tokens: HashMap<String, i64>,
    docs: HashMap<String, Doc>,
    tracks: HashMap<String, Track>,
    totals: Totals,
    next_track: u64,
}

type Shared = Arc<Mutex<EmuState>>;

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    state: Shared,
    directory: directory::Side,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Starts on `listen` (`127.0.0.1:0` for a free port) for the issuer
    /// `rnc`, choosing faults with a generator seeded by `seed`.
    pub async fn start(
        listen: SocketAddr,
        rnc: &str,
        faults: Faults,
        seed: u64,
    ) -> std::io::Result<Emulator> {
        Emulator::start_checked(listen, rnc, faults, seed, Checks::default()).await
    }

    /// [`Emulator::start`] with the document checks of `checks`.
    pub async fn start_checked(
        listen: SocketAddr,
        rnc: &str,
        faults: Faults,
        seed: u64,
        checks: Checks,
    ) -> std::io::Result<Emulator> {
        let state = Arc::new(Mutex::new(EmuState {
            rnc: rnc.to_owned(),
            checks,
            faults,
            rng: SeededRandom::new(seed),
            seeds: BTreeSet::new(),
            tokens: HashMap::new(),
            docs: HashMap::new(),
            tracks: HashMap::new(),
            totals: Totals::default(),
            next_track: 0,
        }));
        let app = Router::new()
            .route(
                "/ecf/autenticacion/api/autenticacion/semilla",
                get(seed_handler),
            )
            .route(
                "/ecf/autenticacion/api/autenticacion/validarsemilla",
                post(validate_seed),
            )
            .route("/ecf/recepcion/api/facturaselectronicas", post(reception))
            .route("/ecf/consultaresultado/api/consultas/estado", get(status))
            .route("/ecf/consultatrackids/api/trackids/consulta", get(trackids))
            .route(
                "/ecf/anulacionrangos/api/operaciones/anularrango",
                post(cancel),
            )
            .route("/fc/recepcionfc/api/recepcion/ecf", post(summary))
            .route(
                "/fc/consultarfce/api/Consultas/Consulta",
                get(summary_query),
            )
            .with_state(state.clone());
        let side = directory::Side::default();
        let app = app.merge(receiver_routes(state.clone(), side.clone()));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Emulator {
            addr,
            state,
            directory: side,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base of the e-CF services (`ecf_base_url` of the hub's configuration).
    pub fn ecf_base_url(&self) -> String {
        format!("http://{}/ecf", self.addr)
    }

    /// Base of the consumer-invoice services (`fc_base_url`).
    pub fn fc_base_url(&self) -> String {
        format!("http://{}/fc", self.addr)
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut s) = self.state.lock() {
            s.faults = faults;
        }
    }

    /// Changes the faults in place.
    pub fn update_faults(&self, f: impl FnOnce(&mut Faults)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s.faults);
        }
    }

    /// Expires every token issued so far (the next call gets a 401).
    pub fn expire_tokens(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.tokens.clear();
        }
    }

    /// The counts so far.
    pub fn totals(&self) -> Totals {
        self.state
            .lock()
            .map(|s| s.totals.clone())
            .unwrap_or_default()
    }

    /// The SHA-256 of the bytes first processed under each number (what
    /// DGII keeps: the RFCE of a summarized `E32`, the e-CF otherwise;
    /// cancellations under `ANECF:first:last`), for checks that the
    /// authority received a register's signed bytes unchanged.
    pub fn received_hashes(&self) -> BTreeMap<String, Hash256> {
        self.state
            .lock()
            .map(|s| s.docs.iter().map(|(k, d)| (k.clone(), d.hash)).collect())
            .unwrap_or_default()
    }

    /// Stops serving.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = s.await;
        }
    }
}

fn now_ms() -> i64 {
    SystemClock.now_ms()
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn xml_response(body: String) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What a call's fault roll decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    LoseBefore,
    LoseAfter,
    FailBefore,
    FailAfter,
}

struct Roll {
    fault: Fault,
    slow_ms: u64,
    hang_ms: u64,
}

fn roll(state: &Shared) -> Roll {
    let Ok(mut s) = state.lock() else {
        return Roll {
            fault: Fault::None,
            slow_ms: 0,
            hang_ms: 0,
        };
    };
    let r = s.rng.next_u64() % 2000;
    let t = u64::from(s.faults.timeout_per_mille) * 2;
    let e = u64::from(s.faults.error_per_mille) * 2;
    let fault = if r < t {
        if r % 2 == 0 {
            Fault::LoseBefore
        } else {
            Fault::LoseAfter
        }
    } else if r < t + e {
        if r % 2 == 0 {
            Fault::FailBefore
        } else {
            Fault::FailAfter
        }
    } else {
        Fault::None
    };
    if fault != Fault::None {
        s.totals.faults += 1;
    }
    Roll {
        fault,
        slow_ms: s.faults.slow_ms,
        hang_ms: s.faults.hang_ms,
    }
}

/// Runs `work` under the faults of one call: `work` is the processing (it
/// changes state); the answer it returns is delivered late, never, or as a
/// 503, as the roll says.
async fn faulty(state: &Shared, work: impl FnOnce() -> Response, stall_ms: u64) -> Response {
    faulty_for(state, None, work, stall_ms).await
}

/// [`faulty`] for a submission of document `key`: an answer lost after the
/// submission was processed is counted under its number
/// ([`NumberCount::answers_lost`]).
async fn faulty_for(
    state: &Shared,
    key: Option<String>,
    work: impl FnOnce() -> Response,
    stall_ms: u64,
) -> Response {
    let r = roll(state);
    if r.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(r.slow_ms)).await;
    }
    match r.fault {
        Fault::LoseBefore => {
            tokio::time::sleep(Duration::from_millis(r.hang_ms)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Fault::FailBefore => {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "Servicio no disponible"}),
            )
        }
        _ => {}
    }
    let answer = work();
    if stall_ms > 0 {
        tokio::time::sleep(Duration::from_millis(stall_ms)).await;
    }
    if let (Fault::LoseAfter | Fault::FailAfter, Some(k), Ok(mut s)) = (r.fault, key, state.lock())
    {
        s.totals.per_number.entry(k).or_default().answers_lost += 1;
    }
    match r.fault {
        Fault::LoseAfter => {
            tokio::time::sleep(Duration::from_millis(r.hang_ms)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Fault::FailAfter => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "Servicio no disponible"}),
        ),
        _ => answer,
    }
}

fn authorized(state: &Shared, headers: &HeaderMap) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let Ok(mut s) = state.lock() else {
        return false;
    };
    let ok = token
        .and_then(|t| s.tokens.get(&t).copied())
        .is_some_and(|exp| exp > now_ms());
    if !ok {
        s.totals.unauthorized += 1;
    }
    ok
}

fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"mensajes": [{"codigo": "401", "valor": "Token inválido o vencido"}]}),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query parameter by name, case-insensitively (DGII's services are not
/// case sensitive).
fn param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case(name).then(|| percent_decode(v))
    })
}

fn form_xml(headers: &HeaderMap, body: &[u8]) -> Option<Vec<u8>> {
    let ct = headers.get("content-type")?.to_str().ok()?;
    multipart::field(ct, body, "xml").map(<[u8]>::to_vec)
}

/// A document refused before processing, as DGII answers it: HTTP 400,
/// `Rechazado`, the messages, and the number left reusable.
fn refused(messages: &[Value]) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"trackId": null, "codigo": Estado::Rejected.code(), "estado": Estado::Rejected.text(),
                "secuenciaUtilizada": false, "mensajes": messages}),
    )
}

/// The XSD file of a document, from its root (and an e-CF's `TipoeCF`).
fn schema_file(fields: &[(String, String)]) -> Option<String> {
    if let Some(t) = xml::field(fields, "ECF/Encabezado/IdDoc/TipoeCF") {
        return (t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| format!("e-CF-{t}.xsd"));
    }
    let root = fields.first()?.0.split('/').next()?;
    match root {
        "RFCE" => Some("RFCE-32.xsd".into()),
        "ANECF" => Some("ANECF.xsd".into()),
        "ACECF" => Some("ACECF.xsd".into()),
        _ => None,
    }
}

fn message(code: u32, text: impl Into<String>) -> Value {
    json!({"codigo": code, "valor": text.into()})
}

/// Validates `doc` with `xmllint --noout --schema` (read from stdin).
fn validate_schema(xsd: &std::path::Path, doc: &[u8]) -> Result<(), Vec<Value>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Err(vec![message(500, format!("xmllint: {e}"))]),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(doc);
    }
    match child.wait_with_output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let errors: Vec<Value> = String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.ends_with("fails to validate"))
                .take(10)
                .map(|l| message(1, format!("XML no cumple con el esquema XSD: {l}")))
                .collect();
            Err(if errors.is_empty() {
                vec![message(1, "XML no cumple con el esquema XSD")]
            } else {
                errors
            })
        }
        Err(e) => Err(vec![message(500, format!("xmllint: {e}"))]),
    }
}

/// The checks of `checks` on one document (blocking: runs `xmllint`).
fn check_document(checks: &Checks, doc: &[u8]) -> Result<(), Vec<Value>> {
    let Ok(fields) = xml::flatten(doc) else {
        return Err(vec![message(1, "El archivo no es XML bien formado")]);
    };
    if let Some(dir) = &checks.xsd_dir {
        let Some(file) = schema_file(&fields) else {
            return Err(vec![message(1, "Tipo de documento desconocido")]);
        };
        validate_schema(&dir.join(file), doc)?;
    }
    if checks.signatures {
        verify_signature(doc)?;
    }
    Ok(())
}

/// Verifies a document's enveloped signature (`xmldsig::verify`: the
/// digest, the RSA-SHA256 value with the certificate in `KeyInfo`, the
/// profile of "Firmado de e-CF").
fn verify_signature(doc: &[u8]) -> Result<(), Vec<Value>> {
    caja_shared::ecf::xmldsig::verify(doc)
        .map(|_| ())
        .map_err(|e| vec![message(2, format!("Firma digital inválida o ausente: {e}"))])
}

/// Runs [`check_document`] off the executor.
async fn check(state: &Shared, doc: Option<&[u8]>) -> Result<(), Vec<Value>> {
    let (Some(doc), Ok(checks)) = (doc, state.lock().map(|s| s.checks.clone())) else {
        return Ok(());
    };
    if checks == Checks::default() {
        return Ok(());
    }
    let doc = doc.to_vec();
    tokio::task::spawn_blocking(move || check_document(&checks, &doc))
        .await
        .unwrap_or_else(|e| Err(vec![message(500, e.to_string())]))
}

/// Counts a refused document under its number (when it names one).
fn count_refused(state: &Shared, number: Option<String>) {
    if let (Some(n), Ok(mut s)) = (number, state.lock()) {
        s.totals.per_number.entry(n).or_default().refused += 1;
    }
}

fn number_of(doc: &[u8]) -> Option<String> {
    let fields = xml::flatten(doc).ok()?;
    ["ECF/Encabezado/IdDoc/eNCF", "RFCE/Encabezado/IdDoc/eNCF"]
        .iter()
        .find_map(|p| xml::field(&fields, p).map(str::to_owned))
}

fn bad_request(error: &str, mensaje: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"trackId": null, "error": error, "mensaje": mensaje}),
    )
}

async fn seed_handler(State(state): State<Shared>) -> Response {
    faulty(
        &state,
        || {
            let Ok(mut s) = state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let mut b = [0u8; 16];
            s.rng.fill_bytes(&mut b);
            let valor = hex::encode(b);
            s.seeds.insert(valor.clone());
            xml_response(format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><SemillaModel xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><valor>{valor}</valor><fecha>{}</fecha></SemillaModel>",
                iso(now_ms())
            ))
        },
        0,
    )
    .await
}

/// `yyyy-MM-ddTHH:mm:ssZ`.
fn iso(ms: i64) -> String {
    let t = caja_shared::localtime::LocalDateTime::from_utc_ms(
        ms,
        caja_shared::localtime::UtcOffset::UTC,
    );
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

async fn validate_seed(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let doc = form_xml(&headers, &body);
    faulty(
        &state,
        || {
            let Some(doc) = doc else {
                return bad_request("xml", "falta el archivo xml");
            };
            let valor = xml::flatten(&doc)
                .ok()
                .and_then(|f| xml::field(&f, "SemillaModel/valor").map(str::to_owned));
            let Ok(mut s) = state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            // With signature checks, the seed must come back signed.
            if s.checks.signatures {
                if let Err(messages) = verify_signature(&doc) {
                    return refused(&messages);
                }
            }
            // The seed must be one we issued, used once.
            let Some(valor) = valor.filter(|v| s.seeds.remove(v)) else {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"mensaje": "semilla inválida o ya usada"}),
                );
            };
            let mut b = [0u8; 24];
            s.rng.fill_bytes(&mut b);
            let token = format!("emu.{}.{}", hex::encode(b), &valor[..8]);
            let now = now_ms();
            // Whole seconds, as DGII writes them.
            let exp = (now + s.faults.token_ttl_ms) / 1000 * 1000;
            s.tokens.insert(token.clone(), exp);
            s.totals.tokens += 1;
            json_response(
                StatusCode::OK,
                &json!({"token": token, "expira": iso(exp), "expedido": iso(now)}),
            )
        },
        0,
    )
    .await
}

fn verdict_for(faults: &Faults, number: &str) -> (Estado, Vec<Value>) {
    if faults.reject.contains(number) {
        (
            Estado::Rejected,
            vec![
                json!({"codigo": 1101, "valor": "Monto total no coincide con la suma de los ítems"}),
            ],
        )
    } else if faults.conditional.contains(number) {
        (
            Estado::Conditional,
            vec![json!({"codigo": 2001, "valor": "RNC del comprador no registrado"})],
        )
    } else {
        (Estado::Accepted, vec![])
    }
}

/// DGII's rejection of a number already used (code and wording guessed,
/// see the module doc).
fn already_used() -> Value {
    json!({"codigo": 1004, "valor": "e-NCF ya fue recibido: número anulado o ya utilizado por el contribuyente"})
}

fn answer_json(e: Estado, messages: &[Value], number: &str) -> Value {
    json!({
        "codigo": e.code(),
        "estado": e.text(),
        "mensajes": messages,
        "encf": number,
        "secuenciaUtilizada": e != Estado::NotFound,
    })
}

/// The outcome of a submission with a number: new, the same again, or other
/// bytes for a used number.
enum Seen {
    New,
    Same(Doc),
    Other,
}

fn seen(s: &mut EmuState, key: &str, hash: Hash256) -> Seen {
    let count = s.totals.per_number.entry(key.to_owned()).or_default();
    match s.docs.get(key) {
        None => {
            count.received += 1;
            count.contents += 1;
            Seen::New
        }
        Some(d) if d.hash == hash => {
            count.duplicates += 1;
            Seen::Same(d.clone())
        }
        Some(_) => {
            count.conflicting += 1;
            count.contents += 1;
            Seen::Other
        }
    }
}

async fn reception(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let doc = form_xml(&headers, &body);
    let checked = check(&state, doc.as_deref()).await;
    let stall = state
        .lock()
        .map(|s| s.faults.stall_submissions_ms)
        .unwrap_or(0);
    let key = doc.as_deref().and_then(number_of);
    faulty_for(
        &state,
        key,
        || {
            let Some(doc) = doc else {
                return bad_request("xml", "falta el archivo xml");
            };
            if let Err(messages) = checked {
                count_refused(&state, number_of(&doc));
                return refused(&messages);
            }
            let Ok(fields) = xml::flatten(&doc) else {
                return bad_request("XML no válido", "el archivo no es XML bien formado");
            };
            let get = |p: &str| xml::field(&fields, p).map(str::to_owned);
            let (Some(number), Some(rnc), Some(total)) = (
                get("ECF/Encabezado/IdDoc/eNCF"),
                get("ECF/Encabezado/Emisor/RNCEmisor"),
                get("ECF/Encabezado/Totales/MontoTotal"),
            ) else {
                return bad_request("XML no válido", "faltan eNCF, RNCEmisor o MontoTotal");
            };
            let Ok(mut s) = state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            if rnc != s.rnc {
                return bad_request("RNCEmisor", "el RNC emisor no corresponde al token");
            }
            let small = total
                .parse::<Money>()
                .is_ok_and(|m| dgii::uses_summary(&number[..3.min(number.len())], m));
            if small {
                return bad_request(
                    "Tipo de envío",
                    "facturas de consumo menores de RD$250,000.00 se envían como resumen (RFCE)",
                );
            }
            let hash = Hash256::of(&doc);
            // Every submission gets its own trackId; a number already
            // received is rejected (see the module doc).
            let (verdict, messages) = match seen(&mut s, &number, hash) {
                Seen::New => verdict_for(&s.faults, &number),
                Seen::Same(_) | Seen::Other => (Estado::Rejected, vec![already_used()]),
            };
            s.next_track += 1;
            let track = format!("emu-{:08}-{}", s.next_track, number);
            let polls = s.faults.in_process_polls;
            s.tracks.insert(
                track.clone(),
                Track {
                    number: number.clone(),
                    polls_left: polls,
                    verdict,
                    messages,
                },
            );
            s.docs.entry(number).or_insert(Doc {
                hash,
                answer: None,
                security_code: None,
            });
            json_response(StatusCode::OK, &json!({"trackId": track}))
        },
        stall,
    )
    .await
}

async fn status(State(state): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let track = param(&uri, "trackId").unwrap_or_default();
    faulty(
        &state,
        || {
            let Ok(mut s) = state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            s.totals.status_queries += 1;
            let Some(t) = s.tracks.get_mut(&track) else {
                return json_response(
                    StatusCode::OK,
                    &json!({"trackId": track, "codigo": 0, "estado": "No Encontrado", "mensajes": []}),
                );
            };
            let mut v = if t.polls_left > 0 {
                t.polls_left -= 1;
                answer_json(Estado::InProcess, &[], &t.number)
            } else {
                answer_json(t.verdict, &t.messages, &t.number)
            };
            v["trackId"] = json!(track);
            json_response(StatusCode::OK, &v)
        },
        0,
    )
    .await
}

async fn trackids(State(state): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let number = param(&uri, "ENCF").unwrap_or_default();
    faulty(
        &state,
        || {
            let Ok(mut s) = state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            s.totals.lookups += 1;
            let mut list: Vec<(&String, &Track)> =
                s.tracks.iter().filter(|(_, t)| t.number == number).collect();
            list.sort_by(|a, b| a.0.cmp(b.0));
            let detalles: Vec<Value> = list
                .into_iter()
                .map(|(id, t)| {
                    let e = if t.polls_left > 0 { Estado::InProcess } else { t.verdict };
                    json!({"trackId": id, "codigo": e.code().to_string(), "estado": e.text(),
                           "mensaje": t.messages.first().and_then(|m| m["valor"].as_str()).unwrap_or("")})
                })
                .collect();
            json_response(StatusCode::OK, &json!({ "detalles": detalles }))
        },
        0,
    )
    .await
}

async fn summary(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let doc = form_xml(&headers, &body);
    let checked = check(&state, doc.as_deref()).await;
    let stall = state
        .lock()
        .map(|s| s.faults.stall_submissions_ms)
        .unwrap_or(0);
    let key = doc.as_deref().and_then(number_of);
    faulty_for(
        &state,
        key,
        || {
            let Some(doc) = doc else {
                return bad_request("xml", "falta el archivo xml");
            };
            if let Err(messages) = checked {
                count_refused(&state, number_of(&doc));
                return refused(&messages);
            }
            let Ok(fields) = xml::flatten(&doc) else {
                return bad_request("XML no válido", "el archivo no es XML bien formado");
            };
            let get = |p: &str| xml::field(&fields, p).map(str::to_owned);
            let (Some(number), Some(rnc), Some(total), Some(code)) = (
                get("RFCE/Encabezado/IdDoc/eNCF"),
                get("RFCE/Encabezado/Emisor/RNCEmisor"),
                get("RFCE/Encabezado/Totales/MontoTotal"),
                get("RFCE/Encabezado/CodigoSeguridadeCF"),
            ) else {
                return bad_request("XML no válido", "faltan eNCF, RNCEmisor, MontoTotal o CodigoSeguridadeCF");
            };
            let Ok(mut s) = state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            if rnc != s.rnc {
                return bad_request("RNCEmisor", "el RNC emisor no corresponde al token");
            }
            let hash = Hash256::of(&doc);
            // A corrected summary of a number whose summary was rejected is
            // received as new (see the module doc).
            let corrects = s.docs.get(&number).is_some_and(|d| {
                d.hash != hash
                    && d.answer.as_ref().is_some_and(|a| a["codigo"] == json!(Estado::Rejected.code()))
            });
            if corrects {
                s.docs.remove(&number);
            }
            let (verdict, messages) = match seen(&mut s, &number, hash) {
                // A number already received (see the module doc); the
                // first answer stays what `consultarfce` finds.
                Seen::Same(_) | Seen::Other => {
                    let answer = answer_json(Estado::Rejected, &[already_used()], &number);
                    return json_response(StatusCode::OK, &answer);
                }
                Seen::New => {
                    let small = total
                        .parse::<Money>()
                        .is_ok_and(|m| dgii::uses_summary(&number[..3.min(number.len())], m));
                    if small {
                        verdict_for(&s.faults, &number)
                    } else {
                        (
                            Estado::Rejected,
                            vec![json!({"codigo": 1002, "valor": "solo facturas de consumo menores de RD$250,000.00"})],
                        )
                    }
                }
            };
            let answer = answer_json(verdict, &messages, &number);
            s.docs.entry(number).or_insert(Doc {
                hash,
                answer: Some(answer.clone()),
                security_code: Some(code),
            });
            json_response(StatusCode::OK, &answer)
        },
        stall,
    )
    .await
}

async fn summary_query(State(state): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let number = param(&uri, "ENCF").unwrap_or_default();
    let code = param(&uri, "Cod_Seguridad_eCF").unwrap_or_default();
    faulty(
        &state,
        || {
            let Ok(mut s) = state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            s.totals.lookups += 1;
            let rnc = s.rnc.clone();
            match s.docs.get(&number) {
                Some(d) if d.security_code.as_deref() == Some(code.as_str()) && d.answer.is_some() => {
                    let mut v = d.answer.clone().unwrap_or(Value::Null);
                    v["rnc"] = json!(rnc);
                    json_response(StatusCode::OK, &v)
                }
                _ => json_response(
                    StatusCode::OK,
                    &json!({"rnc": rnc, "encf": number, "codigo": 0, "estado": "No Encontrado", "secuenciaUtilizada": false, "mensajes": []}),
                ),
            }
        },
        0,
    )
    .await
}

async fn cancel(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let doc = form_xml(&headers, &body);
    let checked = check(&state, doc.as_deref()).await;
    faulty(
        &state,
        || {
            let Some(doc) = doc else {
                return bad_request("xml", "falta el archivo xml");
            };
            if let Err(messages) = checked {
                count_refused(&state, number_of(&doc));
                return refused(&messages);
            }
            let Ok(fields) = xml::flatten(&doc) else {
                return bad_request("XML no válido", "el archivo no es XML bien formado");
            };
            let get = |p: &str| xml::field(&fields, p).map(str::to_owned);
            let base = "ANECF/DetalleAnulacion/Anulacion/TablaRangoSecuenciasAnuladaseNCF/Secuencias";
            let (Some(first), Some(last)) = (
                get(&format!("{base}/SecuenciaeNCFDesde")),
                get(&format!("{base}/SecuenciaeNCFHasta")),
            ) else {
                return bad_request("XML no válido", "faltan las secuencias anuladas");
            };
            let Ok(mut s) = state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let key = crate::outbox::cancellation_key(&first, &last);
            let hash = Hash256::of(&doc);
            let (e, messages) = match seen(&mut s, &key, hash) {
                Seen::Same(d) => {
                    return json_response(StatusCode::OK, &d.answer.unwrap_or(Value::Null));
                }
                Seen::Other => (Estado::Rejected, vec![json!({"codigo": 1001, "valor": "rango ya anulado con otro contenido"})]),
                Seen::New => {
                    // A number already received cannot be cancelled.
                    let used = s.docs.keys().any(|n| {
                        n.len() == first.len() && n[..3] == first[..3] && *n >= first && *n <= last
                    });
                    if used {
                        (Estado::Rejected, vec![json!({"codigo": 1003, "valor": "el rango contiene e-NCF ya recibidos"})])
                    } else {
                        verdict_for(&s.faults, &key)
                    }
                }
            };
            let answer = json!({"codigo": e.code().to_string(), "estado": e.text(), "mensajes": messages});
            s.docs.entry(key).or_insert(Doc {
                hash,
                answer: Some(answer.clone()),
                security_code: None,
            });
            json_response(StatusCode::OK, &answer)
        },
        0,
    )
    .await
}

// — RECV — DGII's directory and its reception of ACECF (state in `directory`).
fn receiver_routes(state: Shared, side: directory::Side) -> Router {
    Router::new()
        .route(
            "/ecf/consultadirectorio/api/consultas/obtenerdirectorioporrnc",
            get(directory_lookup),
        )
        .route(
            "/ecf/aprobacioncomercial/api/aprobacioncomercial",
            post(approval),
        )
        .with_state((state, side))
}

type Both = State<(Shared, directory::Side)>;

async fn directory_lookup(State((state, side)): Both, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let q = uri.query().unwrap_or("");
    let rnc = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("RNC="))
        .unwrap_or("");
    match side.lock().ok().and_then(|d| d.lookup(rnc)) {
        Some(u) => json_response(
            StatusCode::OK,
            &json!([{"nombre": "Contribuyente", "rnc": rnc, "urlRecepcion": u,
                     "urlAceptacion": u, "urlOpcional": u}]),
        ),
        None => json_response(StatusCode::NOT_FOUND, &json!([])),
    }
}

async fn approval(State((state, side)): Both, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(doc) = form_xml(&headers, &body) else {
        return bad_request("xml", "falta el archivo xml");
    };
    if let Err(mensajes) = check(&state, Some(&doc)).await {
        return json_response(StatusCode::BAD_REQUEST, &json!({"mensajes": mensajes}));
    }
    let fields = xml::flatten(&doc).unwrap_or_default();
    let Some(encf) = xml::field(&fields, "ACECF/DetalleAprobacionComercial/eNCF") else {
        return bad_request("eNCF", "falta el eNCF");
    };
    if let Ok(mut d) = side.lock() {
        d.record(encf, &doc);
    }
    json_response(StatusCode::OK, &json!({"encf": encf, "estado": "Aceptado"}))
}

impl Emulator {
    /// Lists `rnc` in DGII's directory with its services at `base_url`.
    pub fn set_directory(&self, rnc: &str, base_url: &str) {
        if let Ok(mut d) = self.directory.lock() {
            d.set(rnc, base_url);
        }
    }

    /// ACECF received per e-NCF: (arrivals, distinct contents).
    pub fn approvals(&self) -> BTreeMap<String, (u32, usize)> {
        self.directory
            .lock()
            .map(|d| d.approvals())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded_case_insensitively() {
        let uri: Uri = "/x?rncemisor=1&ENCF=E32%2000&Cod_Seguridad_eCF=a%2Bb"
            .parse()
            .unwrap();
        assert_eq!(param(&uri, "RncEmisor").as_deref(), Some("1"));
        assert_eq!(param(&uri, "encf").as_deref(), Some("E32 00"));
        assert_eq!(param(&uri, "cod_seguridad_ecf").as_deref(), Some("a+b"));
        assert_eq!(param(&uri, "none"), None);
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz1"), "%zz1");
    }
}
