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

use crate::storage::{Delivery, EcfDelivery, EcfSettled, Settled, Storage};
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
    /// Deliver registers' E31 to electronic buyers (`receiver_deliver_e31`).
    pub deliver_e31: bool,
}

enum Outcome {
    Ok(String),
    Refused(String),
    Retry(String),
}

fn backoff(store: &Storage, cfg: &AcecfWorkerConfig, attempts: i64) -> i64 {
    let shift = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let wait = cfg
        .retry_base_ms
        .saturating_mul(1_i64 << shift)
        .min(cfg.retry_cap_ms);
    store.now_ms().saturating_add(wait)
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
    call_receiver(
        gateway,
        signer,
        issuer,
        "/fe/aprobacioncomercial/api/ecf",
        acecf,
    )
    .await?
    .ok_or_else(|| GatewayError::Refused {
        status: 404,
        detail: format!("{issuer} is not in DGII's directory of electronic receivers"),
    })
}

/// Another taxpayer's receiver service at `path`: its base from DGII's
/// directory (`None` when it is not listed), its seed signed for a token,
/// then `doc` posted with the token.
async fn call_receiver(
    gateway: &DgiiGateway,
    signer: Option<&Signer>,
    rnc: &str,
    path: &str,
    doc: &[u8],
) -> Result<Option<(u16, Vec<u8>)>, GatewayError> {
    let Some(base) = gateway.directory_url(rnc).await? else {
        return Ok(None);
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
    let (ct, body) = multipart::form("xml", "documento.xml", doc);
    let r = http
        .post(format!("{base}{path}"))
        .timeout(deadline)
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    let status = r.status().as_u16();
    Ok(Some((status, r.bytes().await.map_err(transport)?.to_vec())))
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
        Outcome::Retry(error) => Settled::Retry {
            error,
            at_ms: backoff(store, cfg, d.attempts),
        },
    };
    tracing::info!(encf = d.encf, destination = d.destination, outcome = ?how, "ACECF delivery");
    if let Err(e) = store.acecf_settle(d, owner.to_owned(), how).await {
        tracing::warn!(error = %e, "ACECF delivery: cannot record the outcome");
    }
}

/// Queues the registers' new E31 for their buyers (the buyer RNC read from
/// the signed bytes).
async fn queue_e31(store: &Storage) {
    let Ok(found) = store.ecf_delivery_candidates(20).await else {
        return;
    };
    for (encf, sha, xml) in found {
        let buyer = crate::receiver::documents::identify(&xml).and_then(|(_, _, b)| b);
        if let Err(e) = store.ecf_delivery_enqueue(encf, sha, buyer).await {
            tracing::warn!(error = %e, "E31 delivery: cannot queue");
        }
    }
}

/// The buyer's ARECF: `Estado` and reason code, after its signature.
fn read_arecf(body: &[u8]) -> Result<(i64, Option<i64>), String> {
    caja_shared::ecf::xmldsig::verify(body).map_err(|e| format!("the buyer's ARECF: {e}"))?;
    let root = caja_shared::ecf::c14n::parse_element(body).map_err(|e| e.to_string())?;
    let estado = root
        .text_at("DetalleAcusedeRecibo/Estado")
        .and_then(|e| e.parse().ok())
        .ok_or("the buyer's ARECF has no Estado")?;
    let code = root
        .text_at("DetalleAcusedeRecibo/CodigoMotivoNoRecibido")
        .and_then(|c| c.parse().ok());
    Ok((estado, code))
}

async fn deliver_e31(
    store: &Storage,
    gateway: &DgiiGateway,
    signer: Option<&Signer>,
    cfg: &AcecfWorkerConfig,
    owner: &str,
    d: EcfDelivery,
) {
    let r = call_receiver(
        gateway,
        signer,
        &d.buyer_rnc,
        "/fe/recepcion/api/ecf",
        &d.xml,
    )
    .await;
    let how = match r {
        Ok(None) => EcfSettled::NotElectronic,
        Ok(Some((200, body))) => match read_arecf(&body) {
            Ok((estado, code)) => EcfSettled::Acknowledged(body, estado, code),
            Err(e) => EcfSettled::Failed(e),
        },
        other => match classify(other.map(|o| o.unwrap_or_default())) {
            Outcome::Ok(a) => EcfSettled::Failed(format!("not an ARECF: {a}")),
            Outcome::Refused(e) => EcfSettled::Failed(e),
            Outcome::Retry(e) => EcfSettled::Retry(e, backoff(store, cfg, d.attempts)),
        },
    };
    tracing::info!(encf = d.encf, buyer = d.buyer_rnc, outcome = ?std::mem::discriminant(&how), "E31 delivery");
    if let Err(e) = store
        .ecf_delivery_settle(d.encf, owner.to_owned(), how)
        .await
    {
        tracing::warn!(error = %e, "E31 delivery: cannot record the outcome");
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
            let mut worked = false;
            match store.acecf_claim(owner.clone(), cfg.lease_ms).await {
                Ok(Some(d)) => {
                    deliver(&store, &gateway, signer.as_deref(), &cfg, &owner, d).await;
                    worked = true;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "ACECF delivery: claim failed"),
            }
            if cfg.deliver_e31 {
                queue_e31(&store).await;
                match store.ecf_delivery_claim(owner.clone(), cfg.lease_ms).await {
                    Ok(Some(d)) => {
                        deliver_e31(&store, &gateway, signer.as_deref(), &cfg, &owner, d).await;
                        worked = true;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "E31 delivery: claim failed"),
                }
            }
            if !worked {
                tokio::time::sleep(Duration::from_millis(cfg.idle_poll_ms)).await;
            }
        }
    })
}
