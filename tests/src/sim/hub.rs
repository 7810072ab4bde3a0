//! The simulation's hub: the real `caja-hub` library (store, writer thread,
//! SQLite file, every HTTP handler) driven without a socket. A request is an
//! `axum` request handed straight to the hub's router on a current-thread
//! runtime, so push, pull, own, fiscal ranges, escrow grants and the admin
//! API run the production handlers; only TCP and HTTP framing are skipped.
//!
//! The hub's clock is the simulation's [`ManualClock`] and its random source
//! a [`SeededRandom`] drawn from the run's seed, and nothing runs between
//! requests (no nonce pruning, no periodic tree head: [`SimHub::sign_head`]
//! is an explicit step), so the hub's answers are a function of the seed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use caja_hub::config::HubConfig;
use caja_hub::http::{router, AppState};
use caja_node::sync::client::RawAnswer;
use caja_shared::clock::ManualClock;
use caja_shared::entropy::SeededRandom;
use tower_service::Service;

use super::SimError;

/// The admin token of the simulated hub.
pub const ADMIN_TOKEN: &str = "caja-sim-admin-token-0123456789ab";

/// PBKDF2 rounds of the simulation's staff PINs: cheap, so a run can check
/// PINs at every approval (production's cost is `caja_shared::pin::ITERATIONS`,
/// which only a `testkit` build can lower).
pub const SIM_PIN_ITERATIONS: u32 = 2;

/// The payment provider configured at the simulated hub.
pub const PROVIDER: &str = "azul";

/// Its webhook signing secret.
pub const PROVIDER_SECRET: &str = "caja-sim-provider-secret-0123";

/// The simulated hub's configuration.
fn config() -> HubConfig {
    HubConfig {
        admin_token: ADMIN_TOKEN.into(),
        test_pin_iterations: Some(SIM_PIN_ITERATIONS),
        payment_providers: [(PROVIDER.to_owned(), PROVIDER_SECRET.to_owned())].into(),
        ..HubConfig::default()
    }
}

/// A hub over a data directory, with no socket.
#[derive(Debug)]
pub struct SimHub {
    dir: PathBuf,
    cfg: HubConfig,
    clock: Arc<ManualClock>,
    rt: tokio::runtime::Runtime,
    state: Option<Arc<AppState>>,
    router: Option<axum::Router>,
}

impl SimHub {
    /// Initializes a hub in `dir` (key from `seed`) and opens it.
    pub fn create(dir: &Path, clock: Arc<ManualClock>, seed: u64) -> Result<SimHub, SimError> {
        let cfg = config();
        caja_hub::datadir::init(dir, cfg.clone(), &mut SeededRandom::new(seed), &*clock)
            .map_err(|e| SimError(format!("hub init: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SimError(format!("runtime: {e}")))?;
        let mut hub = SimHub {
            dir: dir.to_path_buf(),
            cfg,
            clock,
            rt,
            state: None,
            router: None,
        };
        hub.open(seed)?;
        Ok(hub)
    }

    /// Opens an existing hub data directory (a copy of another run's).
    pub fn attach(dir: &Path, clock: Arc<ManualClock>, seed: u64) -> Result<SimHub, SimError> {
        let cfg = config();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SimError(format!("runtime: {e}")))?;
        let mut hub = SimHub {
            dir: dir.to_path_buf(),
            cfg,
            clock,
            rt,
            state: None,
            router: None,
        };
        hub.open(seed)?;
        Ok(hub)
    }

    /// Opens the data directory (the start-up checks run) with a random
    /// source seeded by `seed`.
    pub fn open(&mut self, seed: u64) -> Result<(), SimError> {
        let mut mac = [0u8; 32];
        mac[..8].copy_from_slice(&seed.to_le_bytes());
        let state = caja_hub::server::open_state(
            &self.dir,
            self.cfg.clone(),
            self.clock.clone(),
            Box::new(SeededRandom::new(seed)),
            mac,
        )
        .map_err(|e| SimError(format!("hub open: {e}")))?;
        self.router = Some(router(state.clone()));
        self.state = Some(state);
        Ok(())
    }

    /// Stops the writer (after what is queued: nothing, between requests) and
    /// drops the hub's state, as a crash between two transactions would.
    pub fn close(&mut self) {
        self.router = None;
        if let Some(s) = self.state.take() {
            s.store.shutdown();
        }
    }

    /// Whether the hub is up.
    pub fn is_up(&self) -> bool {
        self.state.is_some()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(caja_hub::datadir::DB_FILE)
    }

    /// A read connection to the hub's database.
    pub fn db(&self) -> Result<rusqlite::Connection, SimError> {
        rusqlite::Connection::open(self.db_path()).map_err(|e| SimError(format!("hub db: {e}")))
    }

    /// Runs one request through the hub's router. `None` when the hub is down.
    pub fn handle(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Option<RawAnswer> {
        let mut app = self.router.clone()?;
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req.body(Body::from(body)).ok()?;
        let answer = self.rt.block_on(async move {
            let resp = app.call(req).await.ok()?;
            let status = resp.status().as_u16();
            let retry_after_s = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .ok()?;
            Some(RawAnswer {
                status,
                retry_after_s,
                body: body.to_vec(),
            })
        })?;
        Some(answer)
    }

    /// An admin request with a JSON body; the answer's JSON, or an error with
    /// its status and body.
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, SimError> {
        let bytes = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let a = self
            .handle(method, path, &[("authorization", auth)], bytes)
            .ok_or_else(|| SimError(format!("{method} {path}: hub down")))?;
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
        if a.status != 200 {
            return Err(SimError(format!("{method} {path}: {} {v}", a.status)));
        }
        Ok(v)
    }

    /// One turn of an outbox worker named `owner` on the hub's runtime
    /// (`outbox_worker::step_once`); `None` when the hub is down.
    pub fn outbox_step(
        &self,
        gateway: Arc<dyn caja_hub::taxgw::TaxGateway>,
        cfg: caja_hub::outbox_worker::PoolConfig,
        owner: &str,
        jitter: u64,
    ) -> Option<
        Result<(bool, Arc<caja_hub::outbox_worker::PoolStats>), caja_hub::storage::StorageError>,
    > {
        let store = self.state.as_ref()?.store.clone();
        Some(self.rt.block_on(caja_hub::outbox_worker::step_once(
            store, gateway, cfg, owner, jitter,
        )))
    }

    /// Signs a fresh tree head now (what the hub's timer does every minute).
    pub fn sign_head(&self) -> Result<(), SimError> {
        self.admin("POST", "/v1/admin/audit/sth", Some(&serde_json::json!({})))
            .map(|_| ())
    }
}

impl Drop for SimHub {
    fn drop(&mut self) {
        self.close();
    }
}
