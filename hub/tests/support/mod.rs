//! Shared helpers of the hub's end-to-end tests: a real hub on a loopback port
//! over a temporary data directory, registers that enroll and sign their
//! requests with `caja_shared::request`, and events built with
//! `caja_shared::event::Event::build` (through `caja_hub::workload`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use caja_hub::admin_client::{install_crypto_provider, AdminClient};
use caja_hub::config::HubConfig;
use caja_hub::datadir;
use caja_hub::server::{self, RunningHub};
use caja_hub::system::{OsRandom, SystemClock};
use caja_hub::workload::Register;
use caja_shared::checkpoint::Checkpoint;
use caja_shared::clock::Clock;
use caja_shared::event::Event;
use caja_shared::ids::{DeviceId, KeyId, StoreId};
use caja_shared::key::{DeviceKey, HubPublicKey};
use caja_shared::request::SignedHeaders;
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub mod instances;
pub mod router;

/// The throwaway PKI made with `openssl` (`tests/src/pki.rs`).
#[path = "../../../tests/src/pki.rs"]
pub mod pki;

tokio::task_local! {
    /// Set while a test runs in its PostgreSQL variant.
    static ON_POSTGRES: bool;
}

/// Whether the running test is the PostgreSQL variant.
pub fn on_postgres() -> bool {
    ON_POSTGRES.try_with(|b| *b).unwrap_or(false)
}

/// Runs a test body as its PostgreSQL variant: every `TestHub` it starts gets
/// a fresh database on the process's throwaway server. Without PostgreSQL the
/// variant is skipped with a loud line (a failure when
/// `CAJA_REQUIRE_EXTERNAL=1`).
pub async fn run_on_postgres(body: impl std::future::Future<Output = ()>) {
    let ready = tokio::task::spawn_blocking(|| caja_hub::testpg::shared().is_some())
        .await
        .unwrap();
    if ready {
        ON_POSTGRES.scope(true, body).await;
    }
}

/// Each `async fn` test inside runs twice: as written (SQLite) and, as
/// `<name>::postgres`, against a fresh PostgreSQL database — the same test
/// on both backends, so their behaviour cannot drift.
#[macro_export]
macro_rules! on_both_backends {
    ($( $(#[$m:meta])* async fn $name:ident() $body:block )*) => {$(
        $(#[$m])*
        async fn $name() $body

        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$m])*
            async fn postgres() {
                $crate::support::run_on_postgres(async move $body).await
            }
        }
    )*};
}

pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// A hub serving from a temporary directory.
pub struct TestHub {
    pub dir: tempfile::TempDir,
    pub cfg: HubConfig,
    pub hub: Option<RunningHub>,
    pub admin: AdminClient,
    pub http: reqwest::Client,
    pub url: String,
}

pub fn test_config() -> HubConfig {
    HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: ADMIN_TOKEN.into(),
        ..HubConfig::default()
    }
}

impl TestHub {
    pub async fn start() -> TestHub {
        TestHub::start_with(test_config()).await
    }

    pub async fn start_with(mut cfg: HubConfig) -> TestHub {
        install_crypto_provider();
        if std::env::var_os("CAJA_TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        }
        if on_postgres() && cfg.database == caja_hub::config::DEFAULT_DATABASE {
            cfg.database = tokio::task::spawn_blocking(|| {
                caja_hub::testpg::fresh_database().expect("the PostgreSQL server")
            })
            .await
            .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let (hub_dir, init_cfg) = (dir.path().join("hub"), cfg.clone());
        // Off the executor: the PostgreSQL client blocks.
        tokio::task::spawn_blocking(move || {
            datadir::init(&hub_dir, init_cfg, &mut OsRandom::new(), &SystemClock).unwrap()
        })
        .await
        .unwrap();
        let hub = server::start(&dir.path().join("hub"), cfg.clone())
            .await
            .unwrap();
        let url = hub.url();
        TestHub {
            admin: AdminClient::new(&url, ADMIN_TOKEN).unwrap(),
            http: reqwest::Client::new(),
            url,
            dir,
            cfg,
            hub: Some(hub),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("hub")
    }

    /// Installs the test PKI's signer certificate as the hub's own: a hub
    /// with electronic series and no certificate is critical. Needs
    /// `openssl` (installed by `scripts/test.sh`).
    pub fn install_test_certificate(&self) {
        let pki = pki::Pki::get().expect("openssl is needed for the hub's e-CF certificate");
        caja_hub::certificate::install(
            &self.data_dir(),
            &pki.leaf_p12,
            &pki::Pki::read(&pki.leaf_p12),
            pki::P12_PASSWORD,
            now_ms(),
        )
        .expect("install the test certificate");
    }

    /// A connection to the hub's database (SQLite file or PostgreSQL).
    pub fn db(&self) -> caja_hub::storage::Conn {
        caja_hub::storage::open_detached(&self.cfg.database(&self.data_dir())).unwrap()
    }

    /// Stops the hub gracefully and starts it again on a new port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let hub = server::start(&self.data_dir(), self.cfg.clone())
            .await
            .unwrap();
        self.url = hub.url();
        self.admin = AdminClient::new(&self.url, ADMIN_TOKEN).unwrap();
        self.hub = Some(hub);
    }

    pub async fn stop(&mut self) {
        if let Some(h) = self.hub.take() {
            h.stop().await.unwrap();
        }
    }

    pub async fn create_store(&self, name: &str) -> StoreId {
        let v = retry_429(|| self.admin.create_store(name, None)).await;
        v["store"].as_str().unwrap().parse().unwrap()
    }

    pub async fn token(&self, store: StoreId) -> String {
        let store = store.to_string();
        let v = retry_429(|| self.admin.create_token(&store, "caja 1", None)).await;
        v["token"].as_str().unwrap().to_owned()
    }

    /// Enrolls a register of `store`; returns it and the hub's public key.
    pub async fn enroll(&self, store: StoreId) -> (Register, HubPublicKey) {
        let token = self.token(store).await;
        let (status, v) = self
            .post_json("/v1/devices/enroll", &serde_json::json!({ "token": token }))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["store"].as_str().unwrap(), store.to_string());
        let device: DeviceId = v["device"].as_str().unwrap().parse().unwrap();
        let key = DeviceKey::from_hex(v["key"].as_str().unwrap()).unwrap();
        let key_id: KeyId = v["key_id"].as_str().unwrap().parse().unwrap();
        let hub_key = HubPublicKey::from_hex(v["hub_key"].as_str().unwrap()).unwrap();
        (Register::new(device, key, key_id), hub_key)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Sends a signed request; returns status, Retry-After and the JSON body.
    pub async fn signed(
        &self,
        reg: &Register,
        method: &str,
        path: &str,
        body: &[u8],
        ts: i64,
    ) -> Reply {
        let h = sign(reg, method, path, body, ts);
        self.send_signed(method, path, body, &h).await
    }

    pub async fn send_signed(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        h: &SignedHeaders,
    ) -> Reply {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .body(body.to_vec());
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        reply(req.send().await.unwrap()).await
    }

    pub async fn push(&self, reg: &Register, events: &[Event]) -> Reply {
        let body = push_body(reg, events);
        self.signed(reg, "POST", "/v1/sync/push", &body, now_ms())
            .await
    }

    /// A push with signed documents beside the events.
    pub async fn push_with_documents(
        &self,
        reg: &Register,
        events: &[Event],
        documents: &[caja_shared::push::PushDocument],
    ) -> Reply {
        let body = push_body_with_documents(reg, events, documents);
        self.signed(reg, "POST", "/v1/sync/push", &body, now_ms())
            .await
    }

    pub async fn pull(&self, reg: &Register, after: &str) -> Reply {
        self.signed(
            reg,
            "GET",
            &format!("/v1/sync/pull?after={after}"),
            b"",
            now_ms(),
        )
        .await
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        self.admin.get(path).await.unwrap()
    }

    pub fn event_count(&self) -> i64 {
        self.db()
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap()
    }

    /// Everything business state consists of, to check a rejection changed none.
    pub fn business_state(&self) -> (i64, i64, i64, String) {
        let db = self.db();
        let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        let digest = caja_hub::storage::digest(&db).unwrap().to_hex();
        (
            count("SELECT COUNT(*) FROM events"),
            count("SELECT COUNT(*) FROM applied"),
            count("SELECT COUNT(*) FROM held"),
            digest,
        )
    }
}

/// An admin call retried while the hub answers 429 (as any client does): a
/// test with a tiny ingest queue may meet the hub's own start-up jobs there.
pub async fn retry_429<F, Fut>(mut call: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, caja_hub::admin_client::AdminError>>,
{
    for _ in 0..200 {
        match call().await {
            Err(caja_hub::admin_client::AdminError::Refused { status: 429, .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            other => return other.unwrap(),
        }
    }
    panic!("the hub answered 429 for 10 s")
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

pub async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    Reply {
        status,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

pub fn sign(reg: &Register, method: &str, path: &str, body: &[u8], ts: i64) -> SignedHeaders {
    let mut rng = OsRandom::new();
    SignedHeaders::sign(
        &reg.key,
        reg.device,
        reg.key_id.clone(),
        method,
        path,
        body,
        ts,
        &mut rng,
    )
}

/// A push body: the events' canonical bytes and a checkpoint of the last one.
pub fn push_body(reg: &Register, events: &[Event]) -> Vec<u8> {
    push_body_with_documents(reg, events, &[])
}

pub fn push_body_with_documents(
    reg: &Register,
    events: &[Event],
    documents: &[caja_shared::push::PushDocument],
) -> Vec<u8> {
    let last = events.last().unwrap();
    let cp = Checkpoint::sign(
        &reg.key,
        reg.key_id.clone(),
        reg.device,
        last.seq(),
        last.hash(),
    );
    caja_shared::push::push_body(reg.device, events, documents, &cp, 0).unwrap()
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}

/// Whether an external program (`xmllint`, `xmlsec1`, `openssl`) is on PATH.
/// Missing: a failure with `CAJA_REQUIRE_EXTERNAL=1`, else a printed skip
/// and `false`.
pub fn require_tool(program: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            !std::env::var("CAJA_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1"),
            "{program} not found on PATH and CAJA_REQUIRE_EXTERNAL=1"
        );
        eprintln!("SKIPPED ({program} not found on PATH) — set CAJA_REQUIRE_EXTERNAL=1 to make this a failure");
    }
    found
}

/// A signer with the test PKI's certificate (issued by its CA); `None`
/// (skipped, printed) without `openssl` unless `CAJA_REQUIRE_EXTERNAL=1`.
pub fn signer() -> Option<caja_shared::ecf::xmldsig::Signer> {
    let p = pki::Pki::get()?;
    let creds = caja_shared::ecf::certificate::Credentials::from_pkcs12(
        &pki::Pki::read(&p.leaf_p12),
        pki::P12_PASSWORD,
    )
    .unwrap();
    Some(
        caja_shared::ecf::xmldsig::Signer::new(creds.key_pkcs8(), creds.cert_der().to_vec())
            .unwrap(),
    )
}

/// The issuer of the tests' documents.
pub fn issuer(rnc: &str) -> caja_shared::ecf::issuer::Issuer {
    caja_shared::ecf::issuer::Issuer::new(
        rnc,
        "Colmado & Hijos SRL",
        "Calle 1, Santo Domingo",
        None,
    )
    .unwrap()
}

/// Checks a signed document file independently of Caja: `xmllint` against
/// DGII's `schema` (a file of `../shared/dgii/xsd`) and `xmlsec1` against the
/// test CA (the certificate is the one in `KeyInfo`). Panics naming the file
/// and the tool's message; without the tools (and without
/// `CAJA_REQUIRE_EXTERNAL=1`) it prints a skip.
#[allow(dead_code)]
pub fn check_with_xmllint_and_xmlsec1(path: &std::path::Path, schema: &str) {
    if !require_tool("xmllint") || !require_tool("xmlsec1") {
        return;
    }
    let pki = pki::Pki::get().expect("openssl is needed for the test CA");
    let xsd = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd");
    let lint = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd.join(schema))
        .arg(path)
        .output()
        .expect("xmllint runs");
    assert!(
        lint.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&lint.stderr)
    );
    let sec = std::process::Command::new("xmlsec1")
        .args([
            "--verify",
            "--enabled-reference-uris",
            "empty",
            "--trusted-pem",
        ])
        .arg(&pki.ca_pem)
        .arg(path)
        .output()
        .expect("xmlsec1 runs");
    assert!(
        sec.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&sec.stderr)
    );
}
