//! The HTTP side of sync: signed requests to the hub and its answers, exactly as
//! DESIGN.md's "Sync protocol" fixes them. Blocking (reqwest's blocking client
//! over rustls with ring's provider): it runs on the sync thread, never on the
//! path of a sale.

use std::time::Duration;

use caja_shared::canonical::{self, Value};
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{DeviceId, KeyId};
use caja_shared::key::DeviceKey;
use caja_shared::request::SignedHeaders;

use super::trust::{self, HubTrust, TrustError};

/// Longest wait for one request, unless configured otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// What a request to the hub can end in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// No answer: connection refused, reset, timed out.
    #[error("hub unreachable: {0}")]
    Unreachable(String),
    /// The hub answered with an error (DESIGN's `{"error", "message", …}`).
    #[error("hub answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// DESIGN's error code.
        code: String,
        /// For a person.
        message: String,
        /// `expected_seq` of a `seq_gap`.
        expected_seq: Option<u64>,
        /// `acked_seq` of a `chain_mismatch`.
        acked_seq: Option<u64>,
        /// The hub's clock (with 401s).
        hub_time_ms: Option<i64>,
        /// `Retry-After` of a 429, in ms.
        retry_after_ms: Option<u64>,
    },
    /// An answer that is not what DESIGN says.
    #[error("unreadable hub answer: {0}")]
    BadAnswer(String),
    /// The hub's address or trust settings cannot be used (names the key:
    /// `hub_url`, `hub_ca`, `hub_cert_sha256`); nothing was sent.
    #[error("{key}: {message}")]
    Config {
        /// The configuration key.
        key: &'static str,
        /// Why.
        message: String,
    },
    /// The TLS peer at the hub's address is not the hub this register was
    /// configured to trust (another certificate than the pinned one, or one
    /// not issued by `hub_ca` / the system roots for that name): nothing was
    /// sent to it.
    #[error("the hub's TLS certificate is not trusted ({key}): {detail}")]
    Untrusted {
        /// The trust setting it failed: `hub_cert_sha256`, `hub_ca` or
        /// `hub_url` (the system roots).
        key: &'static str,
        /// The TLS library's reason.
        detail: String,
    },
}

impl HubError {
    /// Whether retrying later may succeed (network trouble, overload, 5xx) as
    /// opposed to an answer that needs something else to change.
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Unreachable(_) => true,
            HubError::Api { status, .. } => *status == 429 || *status >= 500,
            HubError::BadAnswer(_) => true,
            HubError::Config { .. } | HubError::Untrusted { .. } => false,
        }
    }

    /// The error code, when the hub gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            HubError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What identifies and authenticates this register.
#[derive(Debug)]
pub struct Credentials {
    /// The device.
    pub device: DeviceId,
    /// Its current key id.
    pub key_id: KeyId,
    /// Its key.
    pub key: DeviceKey,
}

/// The hub's enrollment answer.
#[derive(Debug)]
pub struct Enrollment {
    /// The register's store.
    pub store: caja_shared::ids::StoreId,
    /// Its device id.
    pub device: DeviceId,
    /// The key id.
    pub key_id: KeyId,
    /// The device key (zeroized on drop).
    pub key: DeviceKey,
    /// The hub's Ed25519 public key.
    pub hub_key: caja_shared::key::HubPublicKey,
    /// The hub's clock.
    pub hub_time_ms: i64,
}

/// The hub's answer as bytes, before it is read: what a [`Transport`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAnswer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, in seconds, when the hub sent one.
    pub retry_after_s: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

/// How a request reaches the hub and its answer comes back. HTTP (reqwest) by
/// default; the deterministic simulation passes its own, which hands the same
/// request to an in-process hub through a simulated network, so the protocol
/// code above and below this seam is the one that runs in production.
/// `Err(HubError::Unreachable)` means no answer (refused, reset, timed out).
pub trait Transport: std::fmt::Debug + Send + Sync {
    /// Sends one request: `headers` are the signed headers (none for
    /// enrollment), `body` empty for a GET.
    fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<RawAnswer, HubError>;
}

/// What carries the requests of a [`HubClient`].
#[derive(Debug, Clone)]
enum Carrier {
    Http(reqwest::blocking::Client),
    Custom(std::sync::Arc<dyn Transport>),
}

/// A client of one hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    base: String,
    http: Carrier,
    /// The trust setting in force, named in certificate errors.
    trust_key: &'static str,
    /// The restore epoch of the hub's latest answer (`Caja-Restore-Epoch`,
    /// or `restore_epoch` in a body); [`NO_EPOCH`] before any.
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// No restore epoch seen yet (or a hub from before restore epochs).
const NO_EPOCH: u64 = u64::MAX;

fn no_epoch() -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    std::sync::Arc::new(std::sync::atomic::AtomicU64::new(NO_EPOCH))
}

/// An error and its sources on one line (reqwest's own `Display` stops at
/// "error sending request").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

fn install_crypto_provider() {
    // ring is the one crypto library; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HubClient {
    /// A client for the hub at `base_url` (e.g. `http://127.0.0.1:8080`),
    /// reusing connections, trusting the system's roots.
    pub fn new(base_url: &str, timeout_ms: u64) -> Result<HubClient, HubError> {
        HubClient::with_keep_alive(base_url, timeout_ms, true)
    }

    /// A client that reuses connections or opens one per request (so every
    /// request is its own TCP connection, e.g. behind a replaying proxy),
    /// trusting the system's roots.
    pub fn with_keep_alive(
        base_url: &str,
        timeout_ms: u64,
        keep_alive: bool,
    ) -> Result<HubClient, HubError> {
        HubClient::with_trust(base_url, timeout_ms, keep_alive, &HubTrust::System)
    }

    /// A client of the hub at `base_url` that checks its TLS certificate as
    /// `trust` says ([`crate::sync::trust`]). `base_url` must be `https://`
    /// unless its host is loopback ([`HubError::Config`] naming `hub_url`).
    /// Redirects are not followed: the hub answers itself.
    pub fn with_trust(
        base_url: &str,
        timeout_ms: u64,
        keep_alive: bool,
        trust: &HubTrust,
    ) -> Result<HubClient, HubError> {
        let config_error = |e: TrustError| HubError::Config {
            key: e.key,
            message: e.message,
        };
        let base = trust::check_hub_url(base_url).map_err(config_error)?;
        install_crypto_provider();
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(timeout_ms.min(5_000)))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = trust::client_config(trust).map_err(config_error)? {
            builder = builder.tls_backend_preconfigured(tls);
        }
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        let http = builder
            .build()
            .map_err(|e| HubError::Unreachable(e.to_string()))?;
        Ok(HubClient {
            base,
            http: Carrier::Http(http),
            trust_key: trust.key(),
            epoch: no_epoch(),
        })
    }

    /// A client whose requests go through `transport` instead of HTTP (the
    /// simulation's network); `base_url` is only a name.
    pub fn with_transport(base_url: &str, transport: std::sync::Arc<dyn Transport>) -> HubClient {
        HubClient {
            base: base_url.trim_end_matches('/').to_owned(),
            http: Carrier::Custom(transport),
            trust_key: "hub_url",
            epoch: no_epoch(),
        }
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /v1/devices/enroll` with a one-time token.
    pub fn enroll(&self, token: &str) -> Result<Enrollment, HubError> {
        let body = serde_json::to_vec(&serde_json::json!({ "token": token }))
            .map_err(|e| HubError::BadAnswer(e.to_string()))?;
        let v = self.send("POST", "/v1/devices/enroll", body, None)?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| HubError::BadAnswer(format!("enroll answer lacks {k}")))
        };
        let bad = |k: &str, e: String| HubError::BadAnswer(format!("{k}: {e}"));
        Ok(Enrollment {
            store: field("store")?
                .parse()
                .map_err(|e| bad("store", format!("{e}")))?,
            device: field("device")?
                .parse()
                .map_err(|e| bad("device", format!("{e}")))?,
            key_id: field("key_id")?
                .parse()
                .map_err(|e| bad("key_id", format!("{e}")))?,
            key: DeviceKey::from_hex(field("key")?).map_err(|e| bad("key", e.to_string()))?,
            hub_key: caja_shared::key::HubPublicKey::from_hex(field("hub_key")?)
                .map_err(|e| bad("hub_key", e.to_string()))?,
            hub_time_ms: v.get("hub_time_ms").and_then(Value::as_i64).unwrap_or(0),
        })
    }

    /// The restore epoch of the hub's latest answer that carried one.
    pub fn restore_epoch(&self) -> Option<u64> {
        let e = self.epoch.load(std::sync::atomic::Ordering::Relaxed);
        (e != NO_EPOCH).then_some(e)
    }

    fn saw_epoch(&self, epoch: Option<u64>) {
        if let Some(e) = epoch.filter(|e| *e != NO_EPOCH) {
            self.epoch.store(e, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A signed request; `now_ms` is the hub's time as this register estimates
    /// it (local clock + skew).
    pub fn signed(
        &self,
        creds: &Credentials,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
        now_ms: i64,
        rng: &mut impl RandomSource,
    ) -> Result<Value, HubError> {
        let headers = SignedHeaders::sign(
            &creds.key,
            creds.device,
            creds.key_id.clone(),
            method,
            path_and_query,
            &body,
            now_ms,
            rng,
        );
        self.send(method, path_and_query, body, Some(&headers))
    }

    /// Whether requests go over HTTP (not the simulation's transport).
    pub fn is_http(&self) -> bool {
        matches!(self.http, Carrier::Http(_))
    }

    /// A request signed beforehand (`headers` over exactly `body`): what a
    /// pipelined push sends from its own thread.
    pub fn send_signed(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
        headers: &SignedHeaders,
    ) -> Result<Value, HubError> {
        self.send(method, path_and_query, body, Some(headers))
    }

    fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
        headers: Option<&SignedHeaders>,
    ) -> Result<Value, HubError> {
        let answer = match &self.http {
            Carrier::Custom(t) => {
                let pairs: Vec<(&'static str, String)> =
                    headers.map(|h| h.pairs().to_vec()).unwrap_or_default();
                t.send(method, path_and_query, &pairs, body)?
            }
            Carrier::Http(http) => {
                let url = format!("{}{}", self.base, path_and_query);
                let mut req = match method {
                    "GET" => http.get(&url),
                    _ => http.post(&url).body(body),
                };
                req = req.header("content-type", "application/json");
                if let Some(h) = headers {
                    for (name, value) in h.pairs() {
                        req = req.header(name, value);
                    }
                }
                let resp = req.send().map_err(|e| {
                    if trust::is_certificate_error(&e) {
                        HubError::Untrusted {
                            key: self.trust_key,
                            detail: error_chain(&e),
                        }
                    } else {
                        HubError::Unreachable(e.to_string())
                    }
                })?;
                let status = resp.status().as_u16();
                self.saw_epoch(
                    resp.headers()
                        .get("caja-restore-epoch")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok()),
                );
                let retry_after_s = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let bytes = resp
                    .bytes()
                    .map_err(|e| HubError::Unreachable(e.to_string()))?;
                RawAnswer {
                    status,
                    retry_after_s,
                    body: bytes.to_vec(),
                }
            }
        };
        let status = answer.status;
        let retry_after_ms = answer.retry_after_s.map(|s| s.saturating_mul(1000));
        let bytes = answer.body;
        // Strict parse: the events inside are hashed as received.
        let value = canonical::parse(&bytes);
        if status == 200 {
            let value = value.map_err(|e| HubError::BadAnswer(e.to_string()))?;
            self.saw_epoch(
                value
                    .get("restore_epoch")
                    .and_then(Value::as_i64)
                    .and_then(|n| u64::try_from(n).ok()),
            );
            return Ok(value);
        }
        let v = value.unwrap_or(Value::Null);
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let num = |k: &str| v.get(k).and_then(Value::as_i64);
        Err(HubError::Api {
            status,
            code: text("error").unwrap_or_else(|| format!("http_{status}")),
            message: text("message").unwrap_or_default(),
            expected_seq: num("expected_seq").and_then(|n| u64::try_from(n).ok()),
            acked_seq: num("acked_seq").and_then(|n| u64::try_from(n).ok()),
            hub_time_ms: num("hub_time_ms"),
            retry_after_ms,
        })
    }
}
