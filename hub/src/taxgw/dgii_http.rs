//! The DGII e-CF services over HTTPS (the IO half of [`super::dgii`]): the
//! bearer token (seed → seed signed with the hub's certificate → token,
//! cached until shortly before it expires, renewed once on a 401),
//! submissions as `multipart/form-data`
//! with the file name DGII expects, status queries and lookups.
//!
//! Every call has a deadline (`request_timeout_ms`); what a failure means for
//! the document (may the authority hold it?) is [`GatewayError::in_doubt`].

use std::sync::Arc;
use std::time::Duration;

use caja_shared::clock::Clock;

use super::dgii::{self, DgiiConfig};
use super::{
    multipart, BuildError, DocumentSource, GatewayError, GwFuture, SourceBody, StatusAnswer,
    Submitted, TaxGateway,
};
use crate::outbox::{Claimed, Prepared};

/// A token is renewed this long before it expires.
pub const TOKEN_MARGIN_MS: i64 = 5_000;

/// The DGII gateway.
pub struct DgiiGateway {
    cfg: DgiiConfig,
    http: reqwest::Client,
    timeout_ms: u64,
    clock: Arc<dyn Clock + Send + Sync>,
    token: tokio::sync::Mutex<Option<(String, i64)>>,
    check: Option<Arc<super::dgii_signed::SignatureCheck>>,
    signer: Option<Arc<caja_shared::ecf::xmldsig::Signer>>,
}

impl std::fmt::Debug for DgiiGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DgiiGateway")
            .field("ecf_base_url", &self.cfg.ecf_base_url)
            .field("fc_base_url", &self.cfg.fc_base_url)
            .field("rnc", &self.cfg.rnc)
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

impl DgiiGateway {
    /// A gateway with its own HTTP client (rustls on ring).
    pub fn new(
        cfg: DgiiConfig,
        timeout_ms: u64,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<DgiiGateway, GatewayError> {
        crate::admin_client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(timeout_ms.max(1)))
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| GatewayError::Connect(e.to_string()))?;
        Ok(DgiiGateway {
            cfg,
            http,
            timeout_ms: timeout_ms.max(1),
            clock,
            token: tokio::sync::Mutex::new(None),
            check: None,
            signer: None,
        })
    }

    /// The hub's own signer (its installed certificate): what the hub issues
    /// itself — a cancellation (ANECF) — is signed with it; without it a
    /// cancellation waits.
    pub fn with_signer(mut self, signer: Arc<caja_shared::ecf::xmldsig::Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The signature check every register-signed document passes before its
    /// first submission (see [`super::dgii_signed`]).
    pub fn with_signature_check(mut self, check: Arc<super::dgii_signed::SignatureCheck>) -> Self {
        self.check = Some(check);
        self
    }

    fn ecf(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.ecf_base_url.trim_end_matches('/'))
    }

    fn fc(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.fc_base_url.trim_end_matches('/'))
    }

    /// Sends a request built by `make`; answers status and body.
    async fn send(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), GatewayError> {
        let resp = make()
            .timeout(Duration::from_millis(self.timeout_ms))
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.transport(&e))?;
        Ok((status, body.to_vec()))
    }

    fn transport(&self, e: &reqwest::Error) -> GatewayError {
        if e.is_timeout() {
            GatewayError::Timeout(self.timeout_ms)
        } else if e.is_connect() {
            GatewayError::Connect(e.to_string())
        } else {
            GatewayError::Transport(e.to_string())
        }
    }

    async fn authenticate(&self) -> Result<(String, i64), GatewayError> {
        let (status, seed) = self
            .send(|| self.http.get(self.ecf(dgii::PATH_SEED)))
            .await?;
        if status != 200 {
            return Err(GatewayError::Auth(format!(
                "seed: {status} {}",
                String::from_utf8_lossy(&seed)
            )));
        }
        let seed = dgii::read_seed(&seed).map_err(GatewayError::Auth)?;
        // Signed with the hub's own certificate when one is installed (as
        // DGII requires); the emulator without signature checks takes the
        // seed as received.
        let signed = match &self.signer {
            Some(signer) => super::dgii_signed::signed_seed(&seed, signer)
                .map_err(|e| GatewayError::Auth(format!("signing the seed: {e}")))?,
            None => seed,
        };
        let (ct, body) = multipart::form("xml", "semilla.xml", &signed);
        let (status, answer) = self
            .send(|| {
                self.http
                    .post(self.ecf(dgii::PATH_VALIDATE_SEED))
                    .header("content-type", ct.clone())
                    .body(body.clone())
            })
            .await?;
        if status != 200 {
            return Err(GatewayError::Auth(format!(
                "validarsemilla: {status} {}",
                String::from_utf8_lossy(&answer)
            )));
        }
        dgii::read_token(&answer).map_err(GatewayError::Auth)
    }

    async fn token(&self, renew: bool) -> Result<String, GatewayError> {
        let mut held = self.token.lock().await;
        let now = self.clock.now_ms();
        if let (false, Some((t, exp))) = (renew, held.as_ref()) {
            if *exp - TOKEN_MARGIN_MS > now {
                return Ok(t.clone());
            }
        }
        let (t, exp) = self.authenticate().await?;
        tracing::debug!(expires_ms = exp, "tax authority token renewed");
        *held = Some((t.clone(), exp));
        Ok(t)
    }

    /// A request with the bearer token; a 401 renews the token and retries
    /// once.
    async fn authed(
        &self,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), GatewayError> {
        let token = self.token(false).await?;
        let (status, body) = self.send(|| make(&token)).await?;
        if status != 401 {
            return Ok((status, body));
        }
        tracing::info!("tax authority token refused; renewing it");
        let token = self.token(true).await?;
        let (status, body) = self.send(|| make(&token)).await?;
        if status == 401 {
            return Err(GatewayError::Auth(format!(
                "token refused twice: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok((status, body))
    }

    fn post_form(
        &self,
        url: String,
        doc: &Claimed,
        p: &Prepared,
    ) -> impl Fn(&str) -> reqwest::RequestBuilder + '_ {
        let (ct, body) = multipart::form(
            "xml",
            &dgii::file_name(&self.cfg.rnc, &doc.doc_key),
            &p.body,
        );
        move |token: &str| {
            self.http
                .post(&url)
                .bearer_auth(token)
                .header("content-type", ct.clone())
                .body(body.clone())
        }
    }

    fn failure(status: u16, body: &[u8]) -> GatewayError {
        let detail: String = String::from_utf8_lossy(body).chars().take(300).collect();
        if status >= 500 {
            GatewayError::Server { status, detail }
        } else {
            GatewayError::Refused { status, detail }
        }
    }

    async fn do_submit(&self, doc: &Claimed) -> Result<Submitted, GatewayError> {
        let p = doc
            .prepared
            .as_ref()
            .ok_or_else(|| GatewayError::Answer("submit before prepare".into()))?;
        match p.channel.as_str() {
            dgii::CHANNEL_ECF => {
                let (status, body) = self
                    .authed(self.post_form(self.ecf(dgii::PATH_RECEPTION), doc, p))
                    .await?;
                match status {
                    200..=299 => dgii::read_reception(&body).map_err(GatewayError::Answer),
                    // The document itself was refused: a verdict.
                    400 => Ok(Submitted::Decided(dgii::refusal(&body))),
                    _ => Err(Self::failure(status, &body)),
                }
            }
            dgii::CHANNEL_SUMMARY | dgii::CHANNEL_CANCEL => {
                let url = if p.channel == dgii::CHANNEL_SUMMARY {
                    self.fc(dgii::PATH_SUMMARY)
                } else {
                    self.ecf(dgii::PATH_CANCEL)
                };
                let (status, body) = self.authed(self.post_form(url, doc, p)).await?;
                match status {
                    // A summary's rejection may come as a 400 with its estado.
                    200..=299 | 400 => match dgii::read_decision(&body) {
                        Ok(v) => Ok(Submitted::Decided(v)),
                        Err(_) if status == 400 => Ok(Submitted::Decided(dgii::refusal(&body))),
                        Err(e) => Err(GatewayError::Answer(e)),
                    },
                    _ => Err(Self::failure(status, &body)),
                }
            }
            other => Err(GatewayError::Answer(format!("unknown channel {other}"))),
        }
    }

    async fn do_status(&self, track_id: &str) -> Result<StatusAnswer, GatewayError> {
        let url = dgii::query(
            &self.ecf(dgii::PATH_STATUS),
            &[("trackId", track_id.to_owned())],
        );
        let (status, body) = self.authed(|t| self.http.get(&url).bearer_auth(t)).await?;
        match status {
            200..=299 => dgii::read_status(&body).map_err(GatewayError::Answer),
            404 => Ok(StatusAnswer::NotFound),
            _ => Err(Self::failure(status, &body)),
        }
    }

    async fn do_lookup(&self, doc: &Claimed) -> Result<Option<Submitted>, GatewayError> {
        let Some(p) = doc.prepared.as_ref() else {
            return Ok(None);
        };
        let (url, query): (String, Vec<(&str, String)>) = match p.channel.as_str() {
            dgii::CHANNEL_ECF => (
                self.ecf(dgii::PATH_TRACKIDS),
                vec![
                    ("RncEmisor", self.cfg.rnc.clone()),
                    ("ENCF", doc.doc_key.clone()),
                ],
            ),
            dgii::CHANNEL_SUMMARY => (
                self.fc(dgii::PATH_SUMMARY_QUERY),
                vec![
                    ("RNC_Emisor", self.cfg.rnc.clone()),
                    ("ENCF", doc.doc_key.clone()),
                    (
                        "Cod_Seguridad_eCF",
                        p.security_code.clone().unwrap_or_default(),
                    ),
                ],
            ),
            // No lookup service for cancellations: resent as is.
            _ => return Ok(None),
        };
        let url = dgii::query(&url, &query);
        let (status, body) = self.authed(|t| self.http.get(&url).bearer_auth(t)).await?;
        match status {
            200..=299 if p.channel == dgii::CHANNEL_ECF => {
                dgii::read_trackids(&body).map_err(GatewayError::Answer)
            }
            200..=299 => dgii::read_summary_query(&body).map_err(GatewayError::Answer),
            404 => Ok(None),
            _ => Err(Self::failure(status, &body)),
        }
    }
}

impl TaxGateway for DgiiGateway {
    fn authority(&self) -> &'static str {
        dgii::AUTHORITY
    }

    fn build(&self, src: &DocumentSource) -> Result<Prepared, BuildError> {
        match &src.body {
            SourceBody::Signed(docs) => {
                super::dgii_signed::prepare(&self.cfg, src, docs, self.check.as_deref())
            }
            SourceBody::Cancellation { .. } => match &self.signer {
                Some(signer) => super::dgii_signed::cancellation(&self.cfg, src, signer),
                None => Err(BuildError::Wait(
                    "the hub signs a cancellation (ANECF) with its own certificate: install it with caja-hub fiscal certificate install".into(),
                )),
            },
            _ => dgii::build(&self.cfg, src),
        }
    }

    fn submit<'a>(&'a self, doc: &'a Claimed) -> GwFuture<'a, Result<Submitted, GatewayError>> {
        Box::pin(self.do_submit(doc))
    }

    fn status<'a>(
        &'a self,
        _doc: &'a Claimed,
        track_id: &'a str,
    ) -> GwFuture<'a, Result<StatusAnswer, GatewayError>> {
        Box::pin(self.do_status(track_id))
    }

    fn lookup<'a>(
        &'a self,
        doc: &'a Claimed,
    ) -> GwFuture<'a, Result<Option<Submitted>, GatewayError>> {
        Box::pin(self.do_lookup(doc))
    }
}

// — RECV —
/// DGII's directory of electronic taxpayers by RNC (guessed path, as the
/// other services' paths: Descripción técnica v1.6 names the "consulta
/// directorio" service, not its path).
pub const PATH_DIRECTORY: &str = "/consultadirectorio/api/consultas/obtenerdirectorioporrnc";
/// DGII's reception of commercial approvals (ACECF) (guessed path).
pub const PATH_APPROVAL: &str = "/aprobacioncomercial/api/aprobacioncomercial";

impl DgiiGateway {
    /// The base address of the services of the electronic taxpayer `rnc`
    /// from DGII's directory (`urlAceptacion` of its entry; guessed: an
    /// array of `{"nombre","rnc","urlRecepcion","urlAceptacion",
    /// "urlOpcional"}`); `None` when DGII lists no such taxpayer.
    pub async fn directory_url(&self, rnc: &str) -> Result<Option<String>, GatewayError> {
        let url = format!("{}?RNC={rnc}", self.ecf(PATH_DIRECTORY));
        let (status, body) = self.authed(|t| self.http.get(&url).bearer_auth(t)).await?;
        match status {
            200 => {}
            404 => return Ok(None),
            s if s >= 500 => {
                return Err(GatewayError::Server {
                    status,
                    detail: String::from_utf8_lossy(&body).into_owned(),
                })
            }
            _ => {
                return Err(GatewayError::Refused {
                    status,
                    detail: String::from_utf8_lossy(&body).into_owned(),
                })
            }
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| GatewayError::Answer(format!("directory: {e}")))?;
        let entry = match &v {
            serde_json::Value::Array(a) => a.iter().find(|e| e["rnc"] == rnc),
            other => Some(other),
        };
        Ok(entry
            .and_then(|e| e["urlAceptacion"].as_str())
            .map(|u| u.trim_end_matches('/').to_owned()))
    }

    /// Sends a signed ACECF to DGII; the answer's status and body.
    pub async fn submit_approval(&self, acecf: &[u8]) -> Result<(u16, Vec<u8>), GatewayError> {
        let (ct, body) = multipart::form("xml", "aprobacion.xml", acecf);
        let url = self.ecf(PATH_APPROVAL);
        self.authed(|t| {
            self.http
                .post(&url)
                .bearer_auth(t)
                .header("content-type", ct.clone())
                .body(body.clone())
        })
        .await
    }

    /// The client and deadline, for the receiver services' own calls to
    /// other taxpayers.
    pub fn http_client(&self) -> (reqwest::Client, u64) {
        (self.http.clone(), self.timeout_ms)
    }
}
