//! The HTTP client behind `caja-hub admin …`: each command is one call to the
//! admin API with `Authorization: Bearer <admin token>`.
//!
//! TLS, when the URL is `https://`, is rustls with ring's provider (ring stays
//! the one crypto library).

use std::time::Duration;

use serde_json::Value;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The hub could not be reached or answered garbage.
    #[error("cannot talk to the hub: {0}")]
    Http(#[from] reqwest::Error),
    /// The hub refused the call.
    #[error("the hub answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error body.
        body: String,
    },
}

/// A client of one hub's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// Installs ring as rustls's crypto provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl AdminClient {
    /// A client for a hub serving TLS with a certificate of its own (e.g.
    /// `caja-hub init --tls-self-signed`): only the certificates in the PEM
    /// `ca_pem` are trusted.
    pub fn with_ca(base: &str, token: &str, ca_pem: &[u8]) -> Result<AdminClient, AdminError> {
        install_crypto_provider();
        let roots = reqwest::Certificate::from_pem_bundle(ca_pem)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .tls_certs_only(roots)
            .build()?;
        Ok(AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    /// A client for the hub at `base` (e.g. `http://127.0.0.1:7878`).
    pub fn new(base: &str, token: &str) -> Result<AdminClient, AdminError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    /// One call: `method path` with an optional JSON body; the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, AdminError> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(AdminError::Refused {
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// `POST /v1/admin/audit/sth`: signs a head of the audit log's tree now.
    pub async fn sign_tree_head(&self) -> Result<Value, AdminError> {
        self.call(reqwest::Method::POST, "/v1/admin/audit/sth", None)
            .await
    }

    /// `POST /v1/admin/stores`.
    pub async fn create_store(
        &self,
        name: &str,
        time_zone: Option<&str>,
    ) -> Result<Value, AdminError> {
        let mut body = serde_json::json!({ "name": name });
        if let Some(tz) = time_zone {
            body["time_zone"] = tz.into();
        }
        self.call(reqwest::Method::POST, "/v1/admin/stores", Some(&body))
            .await
    }

    /// `POST /v1/admin/enrollment-tokens`.
    pub async fn create_token(
        &self,
        store: &str,
        name: &str,
        ttl_ms: Option<i64>,
    ) -> Result<Value, AdminError> {
        let mut body = serde_json::json!({ "store": store, "name": name });
        if let Some(t) = ttl_ms {
            body["ttl_ms"] = t.into();
        }
        self.call(
            reqwest::Method::POST,
            "/v1/admin/enrollment-tokens",
            Some(&body),
        )
        .await
    }

    /// `GET /v1/admin/devices`.
    pub async fn devices(&self, store: Option<&str>) -> Result<Value, AdminError> {
        let path = match store {
            Some(s) => format!("/v1/admin/devices?store={s}"),
            None => "/v1/admin/devices".to_owned(),
        };
        self.call(reqwest::Method::GET, &path, None).await
    }

    /// `POST /v1/admin/devices/{device}/revoke`.
    pub async fn revoke(&self, device: &str, reason: &str) -> Result<Value, AdminError> {
        let body = serde_json::json!({ "reason": reason });
        self.call(
            reqwest::Method::POST,
            &format!("/v1/admin/devices/{device}/revoke"),
            Some(&body),
        )
        .await
    }

    /// `POST /v1/admin/devices/{device}/rotate`.
    pub async fn rotate(&self, device: &str) -> Result<Value, AdminError> {
        self.rotate_with(device, false).await
    }

    /// `POST /v1/admin/devices/{device}/rotate` `{"no_grace"}`: with
    /// `no_grace`, every old key of the device is refused at once.
    pub async fn rotate_with(&self, device: &str, no_grace: bool) -> Result<Value, AdminError> {
        let body = serde_json::json!({ "no_grace": no_grace });
        self.call(
            reqwest::Method::POST,
            &format!("/v1/admin/devices/{device}/rotate"),
            Some(&body),
        )
        .await
    }

    /// `POST /v1/admin/devices/{device}/release`.
    pub async fn release(&self, device: &str, note: &str) -> Result<Value, AdminError> {
        let body = serde_json::json!({ "note": note });
        self.call(
            reqwest::Method::POST,
            &format!("/v1/admin/devices/{device}/release"),
            Some(&body),
        )
        .await
    }

    /// `POST /v1/admin/catalog` with a body `{"stores"?, "items"?, "prices"?}`.
    pub async fn load_catalog(&self, body: &Value) -> Result<Value, AdminError> {
        self.call(reqwest::Method::POST, "/v1/admin/catalog", Some(body))
            .await
    }

    /// `POST` of an admin path with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, AdminError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `GET` of a read-only admin path (`/v1/admin/alerts`, `/v1/health`, …).
    pub async fn get(&self, path: &str) -> Result<Value, AdminError> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

/// Writes an export of signed documents (`GET /v1/admin/fiscal/documents`)
/// into `dir`: each document's exact bytes as `{e-NCF}.{kind}.xml` (an
/// ANECF's `first..last` as `first-last`; a second document of the same
/// number and kind — a corrected RFCE — as `{e-NCF}.{kind}.2.xml`, in the
/// order the hub lists them, oldest first), checked against its SHA-256, and
/// `index.csv` (`encf,type,kind,security_code,state,track_id`). Returns how
/// many documents were written.
pub fn write_documents(dir: &std::path::Path, export: &Value) -> anyhow::Result<usize> {
    use anyhow::Context as _;
    use base64::Engine as _;
    let docs = export["documents"]
        .as_array()
        .context("the hub's answer has no documents list")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut index = String::from("encf,type,kind,security_code,state,track_id\n");
    let text = |d: &Value, k: &str| d[k].as_str().unwrap_or("").to_owned();
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for d in docs {
        let (encf, kind) = (text(d, "encf"), text(d, "kind"));
        let safe = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        };
        let name = encf.replace("..", "-");
        anyhow::ensure!(
            safe(&name) && safe(&kind) && !name.starts_with('.'),
            "unexpected document name {encf:?} / {kind:?}"
        );
        let xml = base64::engine::general_purpose::STANDARD
            .decode(text(d, "xml_base64"))
            .with_context(|| format!("{encf}: the bytes are not base64"))?;
        let sha = caja_shared::digest::Hash256::of(&xml).to_hex();
        anyhow::ensure!(
            sha == text(d, "sha256"),
            "{encf} ({kind}): the bytes do not match their SHA-256"
        );
        // A number may hold a second summary (head office's correction of a
        // rejected RFCE): later ones are `{e-NCF}.{kind}.{n}.xml`, n from 2.
        let n = seen.entry(format!("{name}.{kind}")).or_insert(0u32);
        *n += 1;
        let path = if *n == 1 {
            dir.join(format!("{name}.{kind}.xml"))
        } else {
            dir.join(format!("{name}.{kind}.{n}.xml"))
        };
        std::fs::write(&path, &xml).with_context(|| format!("cannot write {}", path.display()))?;
        let csv = |s: String| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s
            }
        };
        index.push_str(&format!(
            "{},{},{},{},{},{}\n",
            csv(encf),
            csv(text(d, "ecf_type")),
            csv(kind),
            csv(text(d, "security_code")),
            csv(text(d, "state")),
            csv(text(d, "track_id")),
        ));
    }
    let path = dir.join("index.csv");
    std::fs::write(&path, index).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(docs.len())
}
