//! A real hub and real registers on loopback HTTP, each with its own SQLite
//! files, for end-to-end tests and the demo.
//!
//! The hub runs in-process on its own tokio runtime (axum on a loopback port);
//! each register is the node library — `Register` for the cashier's operations
//! and `SyncEngine` for sync — talking to the hub through its own [`Proxy`], so
//! a test can cut one register off the network without touching the others.

use std::path::{Path, PathBuf};

use caja_hub::admin_client::{install_crypto_provider, AdminClient};
use caja_hub::config::HubConfig;
use caja_hub::server::{self, RunningHub};
use caja_node::datadir::{Adopted, DataDir};
use caja_node::register::Register;
use caja_node::sync::client::HubClient;
use caja_node::sync::engine::{SyncEngine, SyncSettings};
use caja_node::system::{OsRandom, SystemClock};
use caja_shared::ids::StoreId;
use caja_shared::kind::EventBody;

use crate::proxy::{Mode, Proxy};

/// The admin token of test hubs.
pub const ADMIN_TOKEN: &str = "caja-test-admin-token-0123456789";

/// Why the cluster could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cluster: {0}")]
pub struct ClusterError(pub String);

fn err(what: &str) -> impl Fn(String) -> ClusterError + '_ {
    move |e| ClusterError(format!("{what}: {e}"))
}

/// A running hub.
#[derive(Debug)]
pub struct Hub {
    /// The runtime the hub's tasks run on.
    pub rt: tokio::runtime::Runtime,
    /// The hub's data directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub cfg: HubConfig,
    running: Option<RunningHub>,
    /// Its URL.
    pub url: String,
    /// An admin client.
    pub admin: AdminClient,
}

impl Hub {
    /// Creates and starts a hub in `dir`.
    pub fn start(dir: &Path) -> Result<Hub, ClusterError> {
        Hub::start_with(dir, |c| c)
    }

    /// Creates and starts a hub in `dir` with its configuration changed by
    /// `edit` (e.g. payment providers).
    pub fn start_with(
        dir: &Path,
        edit: impl FnOnce(HubConfig) -> HubConfig,
    ) -> Result<Hub, ClusterError> {
        Hub::start_prepared(dir, edit, |_| Ok(()))
    }

    /// [`Hub::start_with`], running `prepare` on the new data directory
    /// before the hub starts (files the hub reads at start: trusted CAs, its
    /// own certificate).
    pub fn start_prepared(
        dir: &Path,
        edit: impl FnOnce(HubConfig) -> HubConfig,
        prepare: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<Hub, ClusterError> {
        install_crypto_provider();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| err("runtime")(e.to_string()))?;
        let cfg = HubConfig {
            listen: "127.0.0.1:0"
                .parse()
                .map_err(|e| err("listen")(format!("{e}")))?,
            admin_token: ADMIN_TOKEN.into(),
            ..HubConfig::default()
        };
        let cfg = edit(cfg);
        caja_hub::datadir::init(
            dir,
            cfg.clone(),
            &mut caja_hub::system::OsRandom::new(),
            &caja_hub::system::SystemClock,
        )
        .map_err(|e| err("hub init")(e.to_string()))?;
        prepare(dir).map_err(err("hub data directory"))?;
        let running = rt
            .block_on(server::start(dir, cfg.clone()))
            .map_err(|e| err("hub start")(e.to_string()))?;
        let url = running.url();
        let admin = AdminClient::new(&url, ADMIN_TOKEN).map_err(|e| err("admin")(e.to_string()))?;
        Ok(Hub {
            rt,
            dir: dir.to_path_buf(),
            cfg,
            running: Some(running),
            url,
            admin,
        })
    }

    /// The hub's socket address.
    pub fn addr(&self) -> Result<std::net::SocketAddr, ClusterError> {
        self.url
            .trim_start_matches("http://")
            .parse()
            .map_err(|e| err("hub url")(format!("{e}")))
    }

    /// Stops the hub gracefully (in-flight requests finish).
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        if let Some(h) = self.running.take() {
            self.rt
                .block_on(h.stop())
                .map_err(|e| err("hub stop")(e.to_string()))?;
        }
        Ok(())
    }

    /// Stops the hub and starts it again from the same data directory on the
    /// same address (registers' proxies keep pointing at it).
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        let addr = self.addr()?;
        self.stop()?;
        let cfg = HubConfig {
            listen: addr,
            ..self.cfg.clone()
        };
        let running = self
            .rt
            .block_on(server::start(&self.dir, cfg))
            .map_err(|e| err("hub restart")(e.to_string()))?;
        self.running = Some(running);
        Ok(())
    }

    /// Creates a store.
    pub fn create_store(&self, name: &str) -> Result<StoreId, ClusterError> {
        let v = self
            .rt
            .block_on(self.admin.create_store(name, None))
            .map_err(|e| err("create store")(e.to_string()))?;
        v["store"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClusterError(format!("create store answered {v}")))
    }

    /// A one-time enrollment token for a register of `store`.
    pub fn token(&self, store: StoreId, name: &str) -> Result<String, ClusterError> {
        let v = self
            .rt
            .block_on(self.admin.create_token(&store.to_string(), name, None))
            .map_err(|e| err("token")(e.to_string()))?;
        v["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClusterError(format!("token answered {v}")))
    }

    /// Loads catalog items and prices (hub events in the stores' hub chains).
    pub fn load_catalog(&self, bodies: &[EventBody]) -> Result<serde_json::Value, ClusterError> {
        let mut items = Vec::new();
        let mut prices = Vec::new();
        for b in bodies {
            let v = b
                .to_value()
                .map_err(|e| err("catalog")(e.to_string()))?
                .to_serde();
            match b {
                EventBody::CatalogItemUpserted(_) => items.push(v),
                EventBody::PriceSet(_) => prices.push(v),
                _ => return Err(ClusterError("only items and prices load".into())),
            }
        }
        let body = serde_json::json!({ "items": items, "prices": prices });
        self.rt
            .block_on(self.admin.load_catalog(&body))
            .map_err(|e| err("load catalog")(e.to_string()))
    }

    /// An admin POST with a JSON body (fiscal series, write-offs, …).
    pub fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClusterError> {
        self.rt
            .block_on(self.admin.post(path, body))
            .map_err(|e| err("admin post")(e.to_string()))
    }

    /// A read-only admin GET (`/v1/health`, `/v1/admin/alerts`, …).
    pub fn get(&self, path: &str) -> Result<serde_json::Value, ClusterError> {
        self.rt
            .block_on(self.admin.get(path))
            .map_err(|e| err("admin get")(e.to_string()))
    }

    /// A read connection to the hub's database.
    pub fn db(&self) -> Result<rusqlite::Connection, ClusterError> {
        rusqlite::Connection::open(self.dir.join(caja_hub::datadir::DB_FILE))
            .map_err(|e| err("hub db")(e.to_string()))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// One register: its data directory, its operations, its sync engine and the
/// proxy between it and the hub.
#[derive(Debug)]
pub struct Till {
    /// A name for printing.
    pub name: String,
    /// Its data directory.
    pub data: DataDir,
    /// Operations.
    pub register: Register<SystemClock, OsRandom>,
    /// Sync.
    pub sync: SyncEngine<SystemClock, OsRandom>,
    /// The network between it and the hub.
    pub proxy: Proxy,
}

impl Till {
    /// Enrolls a register of `store` through a new proxy to `hub`.
    pub fn enroll(
        hub: &Hub,
        store: StoreId,
        name: &str,
        root: &Path,
        settings: SyncSettings,
    ) -> Result<Till, ClusterError> {
        let proxy = Proxy::start(hub.addr()?).map_err(|e| err("proxy")(e.to_string()))?;
        let token = hub.token(store, name)?;
        let client =
            HubClient::new(&proxy.url(), 10_000).map_err(|e| err("client")(e.to_string()))?;
        let e = client
            .enroll(&token)
            .map_err(|e| err("enroll")(e.to_string()))?;
        let data = DataDir::new(root.join(name));
        caja_node::datadir::adopt_enrollment(
            &data,
            &Adopted {
                store: e.store,
                device: e.device,
                key_id: e.key_id.clone(),
                key: e.key.clone(),
                hub_public_key: e.hub_key,
                hub_url: proxy.url(),
            },
            caja_shared::clock::Clock::now_ms(&SystemClock),
        )
        .map_err(|e| err("adopt")(e.to_string()))?;
        let rng = || OsRandom::new().map_err(|e| err("rng")(e.to_string()));
        let register =
            Register::open(&data, SystemClock, rng()?).map_err(|e| err("open")(e.to_string()))?;
        let sync = SyncEngine::open(&data, &proxy.url(), SystemClock, rng()?, settings)
            .map_err(|e| err("sync")(e.to_string()))?;
        Ok(Till {
            name: name.to_owned(),
            data,
            register,
            sync,
            proxy,
        })
    }

    /// Appends settings to the register's `config.toml` and reopens its
    /// register and sync engine with them (e.g. fiscal series to keep).
    pub fn configure(
        &mut self,
        extra_toml: &str,
        settings: SyncSettings,
    ) -> Result<(), ClusterError> {
        let path = self.data.root().join(caja_node::config::CONFIG_FILE_NAME);
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(extra_toml);
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| err("config")(e.to_string()))?;
        self.reopen(settings)
    }

    /// Opens the register and the sync engine again (after a restore, a
    /// configuration change).
    pub fn reopen(&mut self, settings: SyncSettings) -> Result<(), ClusterError> {
        let rng = || OsRandom::new().map_err(|e| err("rng")(e.to_string()));
        self.register = Register::open(&self.data, SystemClock, rng()?)
            .map_err(|e| err("open")(e.to_string()))?;
        self.sync = SyncEngine::open(&self.data, &self.proxy.url(), SystemClock, rng()?, settings)
            .map_err(|e| err("sync")(e.to_string()))?;
        Ok(())
    }

    /// Makes this register an e-CF issuer: installs the throwaway test
    /// certificate (`crate::pki`) in its data directory and appends the
    /// `[ecf]` section for `rnc` (a table: append top-level keys before it).
    /// `Ok(false)` when `openssl` is missing (the PKI printed why; it fails
    /// under `CAJA_REQUIRE_EXTERNAL=1`).
    pub fn issue_ecf(&mut self, rnc: &str, settings: SyncSettings) -> Result<bool, ClusterError> {
        let Some(pki) = crate::pki::Pki::get() else {
            return Ok(false);
        };
        self.issue_ecf_with(pki, rnc, settings)?;
        Ok(true)
    }

    /// [`Till::issue_ecf`] with the signer certificate of `pki`.
    pub fn issue_ecf_with(
        &mut self,
        pki: &crate::pki::Pki,
        rnc: &str,
        settings: SyncSettings,
    ) -> Result<(), ClusterError> {
        let p12 = crate::pki::Pki::read(&pki.leaf_p12);
        caja_node::fiscal::certificate::install(
            &self.data,
            &pki.leaf_p12,
            &p12,
            crate::pki::P12_PASSWORD,
            caja_shared::clock::Clock::now_ms(&SystemClock),
        )
        .map_err(|e| err("certificate")(e.to_string()))?;
        self.configure(
            &format!(
                "\n[ecf]\nenvironment = \"testecf\"\nrnc = \"{rnc}\"\nlegal_name = \"Colmado La Esquina SRL\"\naddress = \"C/ Duarte 12, Santiago\"\n"
            ),
            settings,
        )
    }

    /// Cuts or restores this register's network.
    pub fn set_network(&self, mode: Mode) {
        self.proxy.set(mode);
    }
}

/// Sync settings for tests: short rounds and backoff, a breaker that does not
/// open on the failures a test provokes on purpose.
pub fn fast_sync_settings() -> SyncSettings {
    SyncSettings {
        timeout_ms: 3_000,
        interval_ms: 50,
        backoff: caja_node::sync::backoff::BackoffPolicy {
            base_ms: 20,
            cap_ms: 200,
        },
        breaker: caja_node::sync::breaker::BreakerPolicy {
            failures_to_open: 100,
            open_wait_ms: 100,
            open_jitter_ms: 100,
            successes_to_close: 1,
        },
        keep_alive: false,
        ..SyncSettings::default()
    }
}

/// A fresh client operation id (UUID v7 from the system clock).
pub fn op_id() -> caja_shared::ids::OpId {
    use caja_shared::clock::Clock;
    let mut rng = OsRandom::new().expect("rng");
    caja_shared::ids::OpId::new_v7(SystemClock.now_ms(), &mut rng).expect("op id")
}
