//! Delivers head office's ACECF (its commercial approval or rejection of a
//! supplier's e-CF, `storage::acecf_delivery`) to the supplier's URL
//! Aprobación Comercial, found in DGII's directory, and to DGII: one tokio
//! task per hub instance (`caja-hub serve` with `[tax_authority]` workers),
//! claiming one delivery at a time under a lease.
//!
//! Source: DGII "Descripción técnica de facturación electrónica" v1.6,
//! "Comunicación Emisor-Receptor" (the buyer sends its ACECF to the issuer's
//! URL Aprobación Comercial, after the issuer's authentication exchange, and
//! to DGII; the directory gives the issuer's URLs). Guessed: the directory
//! entry's `urlAceptacion` is the base of the issuer's services (Caja
//! appends the standard `/fe/…` paths); a 4xx other than 401, 408 and 429 is
//! a refusal for good (alert), anything else is retried with exponential
//! backoff; a send that may have arrived (in doubt) is sent again with the
//! same bytes, which a receiver answers as a duplicate (Caja's own receiver
//! does) — so each destination holds one content.
//!
//! Invariant: the bytes are never rebuilt; a worker whose lease was taken
//! over writes nothing.

use std::sync::Arc;
use std::time::Duration;

use caja_shared::ecf::xmldsig::Signer;
use caja_shared::entropy::RandomSource;

use crate::storage::{Delivery, Settled, Storage};
use crate::taxgw::dgii_http::DgiiGateway;
use crate::taxgw::{multipart, GatewayError};

/// Settings of the delivery task.
#[derive(Debug, Clone)]
pub struct AcecfWorkerConfig {
    /// A lease on one delivery.
    pub lease_ms: i64,
    /// Pause when nothing is due.
    pub idle_poll_ms: u64,
    /// First retry delay (doubles, capped).
    pub retry_base_ms: i64,
    /// Longest retry delay.
    pub retry_cap_ms: i64,
}

enum Outcome {
    Ok(String),
    Refused(String),
    Retry(String),
}

fn classify(r: Result<(u16, Vec<u8>), GatewayError>) -> Outcome {
    match r {
        Ok((s, body)) if (200..300).contains(&s) => {
            Outcome::Ok(String::from_utf8_lossy(&body).chars().take(500).collect())
        }
        Ok((s, body)) if (400..500).contains(&s) && !matches!(s, 401 | 408 | 429) => {
            Outcome::Refused(format!(
                "{s}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))
        }
        Ok((s, body)) => Outcome::Retry(format!(
            "{s}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        )),
        Err(GatewayError::Refused { status, detail }) if status != 401 => {
            Outcome::Refused(format!("{status}: {detail}"))
        }
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

/// The issuer's authentication exchange, then the ACECF.
async fn to_issuer(
    gateway: &DgiiGateway,
    signer: Option<&Signer>,
    issuer: &str,
    acecf: &[u8],
) -> Result<(u16, Vec<u8>), GatewayError> {
    let Some(base) = gateway.directory_url(issuer).await? else {
        return Err(GatewayError::Refused {
            status: 404,
            detail: format!("{issuer} is not in DGII's directory of electronic receivers"),
        });
    };
    let signer = signer.ok_or_else(|| {
        GatewayError::Auth("the hub has no installed certificate to sign the issuer's seed".into())
    })?;
    let (http, timeout_ms) = gateway.http_client();
    let deadline = Duration::from_millis(timeout_ms);
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            GatewayError::Timeout(timeout_ms)
        } else if e.is_connect() {
            GatewayError::Connect(e.to_string())
        } else {
            GatewayError::Transport(e.to_string())
        }
    };
    let seed = http
        .get(format!("{base}/fe/autenticacion/api/semilla"))
        .timeout(deadline)
        .send()
        .await
        .map_err(transport)?;
    if !seed.status().is_success() {
        return Err(GatewayError::Auth(format!(
            "the issuer's seed: {}",
            seed.status()
        )));
    }
    let seed = seed.bytes().await.map_err(transport)?;
    let signed =
        crate::taxgw::dgii_signed::signed_seed(&seed, signer).map_err(GatewayError::Auth)?;
    let (ct, body) = multipart::form("xml", "semilla.xml", &signed);
    let token = http
        .post(format!("{base}/fe/autenticacion/api/validacioncertificado"))
        .timeout(deadline)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    if !token.status().is_success() {
        return Err(GatewayError::Auth(format!(
            "the issuer's token: {}",
            token.status()
        )));
    }
    let token: serde_json::Value = serde_json::from_slice(&token.bytes().await.map_err(transport)?)
        .map_err(|e| GatewayError::Answer(format!("the issuer's token: {e}")))?;
    let token = token["token"]
        .as_str()
        .ok_or_else(|| GatewayError::Answer("the issuer's answer has no token".into()))?
        .to_owned();
    let (ct, body) = multipart::form("xml", "aprobacion.xml", acecf);
    let r = http
        .post(format!("{base}/fe/aprobacioncomercial/api/ecf"))
        .timeout(deadline)
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    let status = r.status().as_u16();
    Ok((status, r.bytes().await.map_err(transport)?.to_vec()))
}

async fn deliver(
    store: &Storage,
    gateway: &DgiiGateway,
    signer: Option<&Signer>,
    cfg: &AcecfWorkerConfig,
    owner: &str,
    d: Delivery,
) {
    match store.acecf_mark_in_doubt(d.clone(), owner.to_owned()).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "ACECF delivery: cannot mark in doubt");
            return;
        }
    }
    let result = if d.destination == "dgii" {
        gateway.submit_approval(&d.acecf).await
    } else {
        to_issuer(gateway, signer, &d.issuer_rnc, &d.acecf).await
    };
    let how = match classify(result) {
        Outcome::Ok(a) => Settled::Delivered(a),
        Outcome::Refused(e) => Settled::Refused(e),
        Outcome::Retry(error) => {
            let shift = u32::try_from(d.attempts.clamp(0, 20)).unwrap_or(20);
            let wait = cfg
                .retry_base_ms
                .saturating_mul(1_i64 << shift)
                .min(cfg.retry_cap_ms);
            Settled::Retry {
                error,
                at_ms: store.now_ms().saturating_add(wait),
            }
        }
    };
    tracing::info!(encf = d.encf, destination = d.destination, outcome = ?how, "ACECF delivery");
    if let Err(e) = store.acecf_settle(d, owner.to_owned(), how).await {
        tracing::warn!(error = %e, "ACECF delivery: cannot record the outcome");
    }
}

/// Starts the delivery task.
pub fn spawn(
    store: Storage,
    gateway: Arc<DgiiGateway>,
    signer: Option<Arc<Signer>>,
    cfg: AcecfWorkerConfig,
) -> tokio::task::JoinHandle<()> {
    let mut id = [0u8; 8];
    crate::system::OsRandom::new().fill_bytes(&mut id);
    let owner = format!("acecf-{}", u64::from_le_bytes(id));
    tokio::spawn(async move {
        loop {
            match store.acecf_claim(owner.clone(), cfg.lease_ms).await {
                Ok(Some(d)) => {
                    deliver(&store, &gateway, signer.as_deref(), &cfg, &owner, d).await;
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(cfg.idle_poll_ms)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "ACECF delivery: claim failed");
                    tokio::time::sleep(Duration::from_millis(cfg.idle_poll_ms)).await;
                }
            }
        }
    })
}
