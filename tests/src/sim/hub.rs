//! The simulation's hub: the real `caja-hub` library (store, writer thread,
//! SQLite file, every HTTP handler) driven without a socket — or several
//! instances of it (each its own `AppState`) on one PostgreSQL database,
//! each request handed to one of them drawn from the seed. A request is an
//! `axum` request handed straight to the hub's router on a current-thread
//! runtime, so push, pull, own, fiscal ranges, escrow grants and the admin
//! API run the production handlers; only TCP and HTTP framing are skipped.
//!
//! The hub's clock is the simulation's [`ManualClock`] and its random source
//! a [`SeededRandom`] drawn from the run's seed, and nothing runs between
//! requests (no nonce pruning, no periodic tree head: [`SimHub::sign_head`]
//! is an explicit step), so the hub's answers are a function of the seed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::http::Request;
use caja_hub::config::HubConfig;
use caja_hub::http::{router, AppState};
use caja_hub::storage::Conn;
use caja_node::sync::client::RawAnswer;
use caja_shared::clock::ManualClock;
use caja_shared::entropy::{RandomSource, SeededRandom};
use tower_service::Service;

use super::{HubDb, SimError};

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
        // The writer runs the WAL's checkpoints: the hub's files are written
        // by one thread in a fixed order, so a `hub_disk` fault's n-th write
        // or fsync is the same call in every replay of a seed.
        wal_checkpoint_thread: false,
        ..HubConfig::default()
    }
}

/// One hub instance: its data directory and, while up, its state and router.
#[derive(Debug)]
struct Instance {
    dir: PathBuf,
    state: Option<Arc<AppState>>,
    router: Option<axum::Router>,
    /// Requests it answered.
    served: u64,
}

/// The run's PostgreSQL database.
#[derive(Debug)]
struct PgDb {
    /// The server's maintenance URL.
    admin_url: String,
    /// The database's name.
    name: String,
    /// Dropped with the hub (a run's copy; not the opened store's).
    owned: bool,
}

/// A hub over a data directory, with no socket: one instance over SQLite,
/// or several instances on one PostgreSQL database ([`HubDb::Postgres`]).
#[derive(Debug)]
pub struct SimHub {
    dir: PathBuf,
    cfg: HubConfig,
    clock: Arc<ManualClock>,
    rt: tokio::runtime::Runtime,
    instances: Vec<Instance>,
    pg: Option<PgDb>,
    /// Which instance a request goes to (PostgreSQL; never drawn with one
    /// instance, so SQLite runs draw exactly what they always did).
    spread: SeededRandom,
}

/// Databases made by this process (their names).
static DATABASES: AtomicU64 = AtomicU64::new(0);

/// One `CREATE DATABASE` at a time (a template must have no other user).
static CREATING: Mutex<()> = Mutex::new(());

fn pg_server() -> Result<&'static caja_hub::testpg::TestPostgres, SimError> {
    caja_hub::testpg::shared()
        .ok_or_else(|| SimError("PostgreSQL is not installed (see caja_hub::testpg)".into()))
}

fn admin_exec(admin_url: &str, sql: &str) -> Result<(), SimError> {
    let c = Conn::connect_postgres(admin_url).map_err(|e| SimError(format!("postgres: {e}")))?;
    c.execute_batch(sql)
        .map_err(|e| SimError(format!("postgres: {sql}: {e}")))
}

/// A new database on the test server, empty or copied from `template`.
fn create_database(template: Option<&str>) -> Result<PgDb, SimError> {
    let pg = pg_server()?;
    let name = format!(
        "caja_sim_{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let admin_url = pg.admin_url();
    let _one = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
    match template {
        Some(t) => admin_exec(&admin_url, &format!("CREATE DATABASE {name} TEMPLATE {t}"))?,
        None => admin_exec(&admin_url, &format!("CREATE DATABASE {name}"))?,
    }
    Ok(PgDb {
        admin_url,
        name,
        owned: template.is_some(),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, SimError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SimError(format!("runtime: {e}")))
}

/// Writes `cfg` as the data directory's `hub.toml` (owner-only, as `init`
/// does): where the audit export finds the database.
fn write_config(dir: &Path, cfg: &HubConfig) -> Result<(), SimError> {
    let path = dir.join(caja_hub::config::CONFIG_FILE);
    let e = |x: std::io::Error| SimError(format!("{}: {x}", path.display()));
    std::fs::write(&path, cfg.to_toml()).map_err(e)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(e)?;
    }
    Ok(())
}

impl SimHub {
    /// Initializes a hub in `dir` (key from `seed`) and opens it; on
    /// PostgreSQL in a new database of the test server.
    pub fn create(
        dir: &Path,
        clock: Arc<ManualClock>,
        seed: u64,
        db: HubDb,
    ) -> Result<SimHub, SimError> {
        let mut cfg = config();
        let pg = match db {
            HubDb::Sqlite => None,
            HubDb::Postgres { .. } => {
                let d = create_database(None)?;
                cfg.database = pg_server()?.url(&d.name);
                Some(d)
            }
        };
        caja_hub::datadir::init(dir, cfg.clone(), &mut SeededRandom::new(seed), &*clock)
            .map_err(|e| SimError(format!("hub init: {e}")))?;
        let mut hub = SimHub {
            dir: dir.to_path_buf(),
            cfg,
            clock,
            rt: runtime()?,
            instances: Self::instance_dirs(dir, db)?,
            pg,
            spread: SeededRandom::new(seed ^ SPREAD_SEED),
        };
        hub.open(seed)?;
        Ok(hub)
    }

    /// Opens an existing hub data directory (a copy of another run's); on
    /// PostgreSQL a copy of its database (`CREATE DATABASE … TEMPLATE`),
    /// dropped with the hub.
    pub fn attach(
        dir: &Path,
        clock: Arc<ManualClock>,
        seed: u64,
        db: HubDb,
    ) -> Result<SimHub, SimError> {
        let mut cfg = config();
        let pg = match db {
            HubDb::Sqlite => None,
            HubDb::Postgres { .. } => {
                let template = match caja_hub::datadir::database(dir)
                    .map_err(|e| SimError(format!("hub config: {e}")))?
                {
                    caja_hub::storage::Database::Postgres(url) => {
                        url.rsplit('/').next().unwrap_or_default().to_owned()
                    }
                    other => return Err(SimError(format!("not a PostgreSQL hub: {other}"))),
                };
                let d = create_database(Some(&template))?;
                cfg.database = pg_server()?.url(&d.name);
                write_config(dir, &cfg)?;
                Some(d)
            }
        };
        let mut hub = SimHub {
            dir: dir.to_path_buf(),
            cfg,
            clock,
            rt: runtime()?,
            instances: Self::instance_dirs(dir, db)?,
            pg,
            spread: SeededRandom::new(seed ^ SPREAD_SEED),
        };
        hub.open(seed)?;
        Ok(hub)
    }

    /// The instances' data directories: `dir`, and for more instances a
    /// copy of it beside it each (`hub-1`, …: the one hub key, the same
    /// configuration).
    fn instance_dirs(dir: &Path, db: HubDb) -> Result<Vec<Instance>, SimError> {
        let n = match db {
            HubDb::Sqlite => 1,
            HubDb::Postgres { instances } => instances.max(1),
        };
        let mut out = Vec::new();
        for i in 0..n {
            let d = if i == 0 {
                dir.to_path_buf()
            } else {
                let name = dir.file_name().map_or_else(
                    || format!("hub-{i}"),
                    |f| format!("{}-{i}", f.to_string_lossy()),
                );
                let d = dir.with_file_name(name);
                if d.exists() {
                    std::fs::remove_dir_all(&d).map_err(|e| SimError(format!("{e}")))?;
                }
                super::world::copy_tree(dir, &d)?;
                d
            };
            out.push(Instance {
                dir: d,
                state: None,
                router: None,
                served: 0,
            });
        }
        Ok(out)
    }

    /// Opens every instance that is down (the start-up checks run) with a
    /// random source seeded by `seed` (the first instance's; the others'
    /// drawn from it).
    pub fn open(&mut self, seed: u64) -> Result<(), SimError> {
        let mut seeds = SeededRandom::new(seed);
        for i in 0..self.instances.len() {
            let s = if i == 0 { seed } else { seeds.next_u64() };
            if self.instances[i].state.is_some() {
                continue;
            }
            let mut mac = [0u8; 32];
            mac[..8].copy_from_slice(&s.to_le_bytes());
            let state = caja_hub::server::open_state(
                &self.instances[i].dir,
                self.cfg.clone(),
                self.clock.clone(),
                Box::new(SeededRandom::new(s)),
                mac,
            )
            .map_err(|e| SimError(format!("hub open: {e}")))?;
            self.instances[i].router = Some(router(state.clone()));
            self.instances[i].state = Some(state);
        }
        Ok(())
    }

    /// Stops every instance's writer (after what is queued: nothing, between
    /// requests) and drops its state, as a crash between two transactions
    /// would.
    pub fn close(&mut self) {
        for i in 0..self.instances.len() {
            self.close_instance(i);
        }
    }

    fn close_instance(&mut self, i: usize) {
        let inst = &mut self.instances[i];
        inst.router = None;
        if let Some(s) = inst.state.take() {
            s.store.shutdown();
        }
    }

    /// A hub crash: the one instance, or (several instances) one of them or
    /// all, drawn from the seed; [`SimHub::open`] restarts what is down.
    pub fn crash(&mut self) -> String {
        let n = self.instances.len();
        if n == 1 {
            self.close();
            return "hub".into();
        }
        let pick = usize::try_from(self.spread.next_u64() % (n as u64 + 1)).unwrap_or(n);
        if pick == n {
            self.close();
            "every hub instance".into()
        } else {
            self.close_instance(pick);
            format!("hub instance {pick}")
        }
    }

    /// Whether the hub is up (some instance answers).
    pub fn is_up(&self) -> bool {
        self.instances.iter().any(|i| i.state.is_some())
    }

    /// Whether every instance is up.
    pub fn all_up(&self) -> bool {
        self.instances.iter().all(|i| i.state.is_some())
    }

    /// Requests each instance answered.
    pub fn served(&self) -> Vec<u64> {
        self.instances.iter().map(|i| i.served).collect()
    }

    /// Whether the hub is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The (first instance's) data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file (SQLite).
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(caja_hub::datadir::DB_FILE)
    }

    /// A read connection to the hub's SQLite file (SQLite-only tests; the
    /// checker reads through [`SimHub::conn`]).
    pub fn db(&self) -> Result<rusqlite::Connection, SimError> {
        if self.pg.is_some() {
            return Err(SimError("hub db: the hub is on PostgreSQL".into()));
        }
        rusqlite::Connection::open(self.db_path()).map_err(|e| SimError(format!("hub db: {e}")))
    }

    /// A connection to the hub's database in either dialect (`$n`
    /// parameters, `CAST(… AS BIGINT)` on sums): the checker's reads.
    pub fn conn(&self) -> Result<Conn, SimError> {
        let e = |x: caja_hub::storage::DbError| SimError(format!("hub db: {x}"));
        match &self.pg {
            None => Ok(Conn::from_sqlite(
                rusqlite::Connection::open(self.db_path())
                    .map_err(|x| SimError(format!("hub db: {x}")))?,
            )),
            Some(_) => Conn::connect_postgres(&self.cfg.database).map_err(e),
        }
    }

    /// A connection as the hub's store opens one (SQLite: WAL, foreign
    /// keys), for writing while the hub is down (the rebuild check).
    pub fn store_conn(&self) -> Result<Conn, SimError> {
        match &self.pg {
            None => caja_hub::storage::open_connection(&self.db_path())
                .map_err(|e| SimError(format!("hub db: {e}"))),
            Some(_) => self.conn(),
        }
    }

    /// The instance the next request goes to: the only one, or one of
    /// those up drawn from the seed.
    fn pick(&mut self) -> Option<usize> {
        if self.instances.len() == 1 {
            return self.instances[0].state.is_some().then_some(0);
        }
        let up: Vec<usize> = (0..self.instances.len())
            .filter(|i| self.instances[*i].state.is_some())
            .collect();
        if up.is_empty() {
            return None;
        }
        let k = usize::try_from(self.spread.next_u64() % up.len() as u64).unwrap_or(0);
        Some(up[k])
    }

    /// Runs one request through the hub's router. `None` when the hub is down.
    pub fn handle(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Option<RawAnswer> {
        let i = self.pick()?;
        let mut app = self.instances[i].router.clone()?;
        self.instances[i].served += 1;
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
        &mut self,
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

    /// One turn of the outbox worker `{owner}/{i}` of an instance `i` (drawn
    /// as for a request) on the hub's runtime (`outbox_worker::step_once`);
    /// `None` when the hub is down.
    pub fn outbox_step(
        &mut self,
        gateway: Arc<dyn caja_hub::taxgw::TaxGateway>,
        cfg: caja_hub::outbox_worker::PoolConfig,
        owner: &str,
        jitter: u64,
    ) -> Option<
        Result<(bool, Arc<caja_hub::outbox_worker::PoolStats>), caja_hub::storage::StorageError>,
    > {
        let i = self.pick()?;
        let store = self.instances[i].state.as_ref()?.store.clone();
        let owner = format!("{owner}/{i}");
        Some(self.rt.block_on(caja_hub::outbox_worker::step_once(
            store, gateway, cfg, &owner, jitter,
        )))
    }

    /// Signs a fresh tree head now (what the hub's timer does every minute).
    pub fn sign_head(&mut self) -> Result<(), SimError> {
        self.admin("POST", "/v1/admin/audit/sth", Some(&serde_json::json!({})))
            .map(|_| ())
    }
}

impl Drop for SimHub {
    fn drop(&mut self) {
        self.close();
        if let Some(pg) = self.pg.as_ref().filter(|p| p.owned) {
            // Best effort: the server goes with the process anyway.
            let _ = admin_exec(
                &pg.admin_url,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name),
            );
        }
    }
}

/// Mixed into the hub's seed for the instance choices.
const SPREAD_SEED: u64 = 0x5350_5245_4144_0001;
