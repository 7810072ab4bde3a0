//! Running the service: open the data directory, bind, serve until told to
//! stop, then shut down gracefully — in-flight requests finish, the writer
//! commits what it has queued, and no push is left half applied (a push is one
//! transaction).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use caja_shared::clock::Clock;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::auth::AdminToken;
use crate::config::HubConfig;
use crate::datadir::{self, DataDirError};
use crate::http::{router, AppState};
use crate::hubchain::hub_key_id;
use crate::metrics::Metrics;
use crate::outbox_worker::{PoolConfig, WorkerPool};
use crate::storage::{self, Storage, StorageConfig, StorageError};
use crate::system::{OsRandom, SystemClock};
use crate::tls::TlsReloader;

/// How often forgotten nonces are pruned.
pub const NONCE_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How often the audit log's tree is signed when it grew (a head is also
/// signed at start-up and on demand, `POST /v1/admin/audit/sth`).
pub const STH_INTERVAL: Duration = Duration::from_secs(60);

/// Signs a tree head every [`STH_INTERVAL`] when the log grew since the last.
fn spawn_sth_signer(store: Storage, key: caja_shared::key::HubSigningKey) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STH_INTERVAL);
        // The first tick is immediate, and start-up has just signed.
        tick.tick().await;
        loop {
            tick.tick().await;
            match store.audit_sign_head(key.clone(), false).await {
                Ok(sth) => tracing::debug!(tree_size = sth.tree_size, "tree head"),
                Err(StorageError::Overloaded) => {}
                Err(e) => tracing::warn!(error = %e, "signing the tree head failed"),
            }
        }
    })
}

/// Runs a reconciliation pass of card payments every `interval_ms`
/// (`payment_reconcile_interval_ms`; the deadline may pass without any
/// request arriving).
fn spawn_payment_reconciler(store: Storage, interval_ms: i64, deadline_ms: i64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_millis(u64::try_from(interval_ms).unwrap_or(60_000).max(1000));
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match store.reconcile_payments(deadline_ms).await {
                Ok(r) if r.conflicts > 0 => {
                    tracing::warn!(conflicts = r.conflicts, "card payments need a person")
                }
                Ok(r) => {
                    tracing::debug!(found = r.found, checked = r.checked, "payments reconciled")
                }
                Err(StorageError::Overloaded) => {}
                Err(e) => tracing::warn!(error = %e, "payment reconciliation failed"),
            }
        }
    })
}

/// Reloads the TLS certificate and key on every SIGHUP; a failure keeps the
/// certificate in use and logs why.
fn spawn_tls_reloader(tls: Arc<TlsReloader>) -> JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hup = match signal(SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGHUP handler: the TLS certificate is not reloaded");
                    return;
                }
            };
            while hup.recv().await.is_some() {
                let files = tls.clone();
                match tokio::task::spawn_blocking(move || files.reload()).await {
                    Ok(Ok(fingerprint)) => {
                        tracing::info!(%fingerprint, "TLS certificate reloaded")
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, kept = %tls.fingerprint(), "TLS reload failed; the certificate in use is kept")
                    }
                    Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
                }
            }
        }
        #[cfg(not(unix))]
        drop(tls);
    })
}

/// Why the service could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory is unusable.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The trusted CA file of `[tax_authority] trusted_ca` is unusable.
    #[error("configuration tax_authority.trusted_ca: {0}")]
    TrustedCa(#[from] crate::certificate::CertStoreError),
    /// The listen address could not be bound, or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Opens the database, records (or checks) the hub key, checks the audit
/// tree against the log and signs it, then starts the writer.
fn open_store(
    db: &storage::Database,
    cfg: StorageConfig,
    wal: storage::WalPolicy,
    hub_key: &caja_shared::key::HubSigningKey,
    clock: Arc<dyn Clock + Send + Sync>,
    rng: Box<dyn caja_shared::entropy::RandomSource + Send>,
) -> Result<Storage, StorageError> {
    let epoch = {
        let conn = storage::open_offline(db)?;
        let public = hub_key.public_key();
        storage::record_hub_key(
            &conn,
            &hub_key_id(&public),
            &public.to_hex(),
            clock.now_ms(),
        )?;
        // The audit tree is checked against the log's entries, and the current
        // tree signed, before anything is served.
        let check = storage::audit_tree::startup(&conn, hub_key, clock.now_ms())?;
        tracing::info!(
            entries = check.entries,
            rebuilt = check.rebuilt,
            tree_size = check.sth.tree_size,
            root = %check.sth.root,
            "audit log checked"
        );
        storage::restore::epoch_state(&conn)?
    };
    let store = Storage::open_with_wal(cfg, wal, clock, rng)?;
    store.set_restore_epoch(epoch.0, epoch.1);
    Ok(store)
}

/// The store's settings from the hub's configuration.
fn store_config(cfg: &HubConfig, database: storage::Database) -> StorageConfig {
    StorageConfig {
        database,
        queue_capacity: cfg.ingest_queue,
        max_batch_jobs: cfg.max_batch_jobs,
        read_connections: cfg.read_connections,
        key_grace_ms: cfg.key_grace_ms,
        rate_limit: cfg.rate_limit,
        caps: cfg.caps(),
    }
}

/// The handlers' shared state.
/// The trusted CAs of `[tax_authority] trusted_ca`, read at start: a
/// missing or unreadable file stops the hub with the file named.
fn trust_store(
    data_dir: &Path,
    cfg: &HubConfig,
) -> Result<Option<Arc<caja_shared::ecf::certificate::TrustStore>>, ServeError> {
    match cfg
        .tax_authority
        .as_ref()
        .and_then(|t| t.trusted_ca.as_deref())
    {
        Some(file) => Ok(Some(Arc::new(crate::certificate::trust_store(
            data_dir, file,
        )?))),
        None => Ok(None),
    }
}

fn app_state(
    store: Storage,
    cfg: HubConfig,
    metrics: Arc<Metrics>,
    hub_key: caja_shared::key::HubSigningKey,
    admin_mac_key: [u8; 32],
    data_dir: &Path,
    trust_store: Option<Arc<caja_shared::ecf::certificate::TrustStore>>,
) -> Arc<AppState> {
    Arc::new(AppState {
        data_dir: data_dir.to_owned(),
        trust_store,
        store,
        admin: AdminToken::new(&cfg.admin_token, admin_mac_key),
        admin_guesses: crate::net::guesses::GuessLimiter::new(cfg.admin_guess_limit),
        body_budget: crate::net::budget::BodyBudget::new(
            cfg.max_buffered_body_bytes,
            cfg.max_buffered_body_bytes_per_ip,
        ),
        limiter: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
        parsers: Arc::new(Semaphore::new(
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        )),
        cfg: Arc::new(cfg),
        metrics,
        hub_key,
    })
}

/// Opens a hub's data directory without a socket or background tasks: the
/// start-up checks (hub key recorded, audit log checked against its tree and
/// signed), the store with its writer thread, and the handlers' state, with
/// an injected clock and random source. [`start_with_clock`] serves the same
/// on a socket; the deterministic simulation (`caja_tests::sim`) calls
/// [`router`] on it directly, so every request runs the production handlers
/// without HTTP, and nothing happens between requests (no pruning, no
/// periodic tree heads, no reconciliation timer, no outbox workers) unless
/// the caller asks for it. Blocking (call it off an async executor).
pub fn open_state(
    data_dir: &Path,
    cfg: HubConfig,
    clock: Arc<dyn Clock + Send + Sync>,
    rng: Box<dyn caja_shared::entropy::RandomSource + Send>,
    admin_mac_key: [u8; 32],
) -> Result<Arc<AppState>, ServeError> {
    let hub_key = datadir::load_key(data_dir)?;
    let trust = trust_store(data_dir, &cfg)?;
    let db = cfg.database(data_dir);
    let store = open_store(
        &db,
        store_config(&cfg, db.clone()),
        cfg.wal_policy(),
        &hub_key,
        clock,
        rng,
    )?;
    Ok(app_state(
        store,
        cfg,
        Arc::new(Metrics::new()),
        hub_key,
        admin_mac_key,
        data_dir,
        trust,
    ))
}

/// A hub serving on a socket.
#[derive(Debug)]
pub struct RunningHub {
    /// The bound address.
    pub addr: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The certificate served, when the hub terminates TLS.
    pub tls: Option<Arc<TlsReloader>>,
    reload_task: Option<JoinHandle<()>>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    pruner: JoinHandle<()>,
    sth_task: JoinHandle<()>,
    reconciler: JoinHandle<()>,
    outbox: Option<WorkerPool>,
    acecf: Option<JoinHandle<()>>,
    store: Storage,
}

/// Starts the hub of `data_dir` with `cfg` and the system clock.
pub async fn start(data_dir: &Path, cfg: HubConfig) -> Result<RunningHub, ServeError> {
    start_with_clock(data_dir, cfg, Arc::new(SystemClock)).await
}

/// Starts the hub with an injected clock (tests).
pub async fn start_with_clock(
    data_dir: &Path,
    cfg: HubConfig,
    clock: Arc<dyn Clock + Send + Sync>,
) -> Result<RunningHub, ServeError> {
    let hub_key = datadir::load_key(data_dir)?;
    datadir::check_config_file(data_dir)?;
    let trust = trust_store(data_dir, &cfg)?;
    let tls = match cfg.tls_files(data_dir) {
        Some((cert, key)) => {
            datadir::check_private_file(&key)?;
            Some(Arc::new(TlsReloader::new(cert, key)?))
        }
        None => None,
    };
    let db = cfg.database(data_dir);
    // The database is opened, checked and its writer started off the async
    // executor (the PostgreSQL client blocks).
    let key = hub_key.clone();
    let clock_for_outbox = clock.clone();
    let store_cfg = store_config(&cfg, db.clone());
    let wal = cfg.wal_policy();
    let store = tokio::task::spawn_blocking(move || {
        open_store(&db, store_cfg, wal, &key, clock, Box::new(OsRandom::new()))
    })
    .await
    .map_err(|e| StorageError::Task(e.to_string()))??;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Io {
            what: format!("cannot listen on {}", cfg.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Io {
        what: "local address".into(),
        source,
    })?;
    let reconciler = spawn_payment_reconciler(
        store.clone(),
        cfg.payment_reconcile_interval_ms,
        cfg.payment_confirm_deadline_ms,
    );
    let metrics = Arc::new(Metrics::new());
    let (outbox, acecf) = match &cfg.tax_authority {
        Some(t) if t.workers > 0 => {
            let (pool, acecf) = start_outbox(
                &store,
                t,
                clock_for_outbox.clone(),
                metrics.clone(),
                trust.clone(),
                data_dir,
                cfg.receiver_deliver_e31,
            )?;
            (Some(pool), Some(acecf))
        }
        _ => (None, None),
    };
    let mut mac_key = [0u8; 32];
    caja_shared::entropy::RandomSource::fill_bytes(&mut OsRandom::new(), &mut mac_key);
    let state = app_state(
        store.clone(),
        cfg,
        metrics,
        hub_key.clone(),
        mac_key,
        data_dir,
        trust,
    );
    let state_key = hub_key;
    let limits = crate::net::ServeLimits::of(&state.cfg);
    let app = router(state.clone()).merge(crate::ui::router(state, data_dir.to_owned()));
    let (shutdown, stop) = oneshot::channel::<()>();
    let served_tls = tls.clone();
    let server = tokio::spawn(async move {
        crate::net::serve(listener, app, limits, served_tls, async move {
            let _ = stop.await;
        })
        .await
    });
    let reload_task = tls.clone().map(spawn_tls_reloader);
    let prune_store = store.clone();
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(NONCE_PRUNE_INTERVAL);
        loop {
            tick.tick().await;
            match prune_store.prune_nonces().await {
                Ok(n) if n > 0 => tracing::debug!(pruned = n, "nonces pruned"),
                Ok(_) | Err(StorageError::Overloaded) => {}
                Err(e) => tracing::warn!(error = %e, "nonce pruning failed"),
            }
        }
    });
    let sth_task = spawn_sth_signer(store.clone(), state_key);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, data_dir = %data_dir.display(), "caja-hub listening");
    if let Some(t) = &tls {
        tracing::info!(fingerprint = %t.fingerprint(), "TLS certificate SHA-256");
    }
    tracing::info!("head-office dashboard at {scheme}://{addr}/ui/ (sign in with the admin token)");
    Ok(RunningHub {
        addr,
        tls,
        reload_task,
        data_dir: data_dir.to_owned(),
        shutdown,
        server,
        pruner,
        sth_task,
        reconciler,
        outbox,
        acecf,
        store,
    })
}

/// Starts the outbox workers of `[tax_authority]`.
fn start_outbox(
    store: &Storage,
    t: &crate::config::TaxAuthorityConfig,
    clock: Arc<dyn Clock + Send + Sync>,
    metrics: Arc<Metrics>,
    trust: Option<Arc<caja_shared::ecf::certificate::TrustStore>>,
    data_dir: &Path,
    deliver_e31: bool,
) -> Result<(WorkerPool, JoinHandle<()>), ServeError> {
    if trust.is_none() {
        tracing::warn!("no [tax_authority] trusted_ca: registers' signatures are verified, their certificates' chains are not");
    }
    // The hub's own certificate signs what the hub issues (ANECF).
    let signer = match crate::certificate::load_credentials(data_dir) {
        Ok(Some(c)) => {
            match caja_shared::ecf::xmldsig::Signer::new(c.key_pkcs8(), c.cert_der().to_vec()) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::error!(error = %e, "the hub's installed certificate cannot sign; cancellations wait");
                    None
                }
            }
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "the hub's certificate cannot be read; cancellations wait");
            None
        }
    };
    let gateway = crate::taxgw::dgii_http::DgiiGateway::new(
        crate::taxgw::dgii::DgiiConfig {
            ecf_base_url: t.ecf_base_url.clone(),
            fc_base_url: t.fc_base_url.clone(),
            rnc: t.rnc.clone(),
            legal_name: t.legal_name.clone(),
            address: t.address.clone(),
        },
        t.request_timeout_ms,
        clock,
    )
    .map_err(|e| ServeError::Io {
        what: "tax authority client".into(),
        source: std::io::Error::other(e.to_string()),
    })?
    .with_signature_check(crate::taxgw::dgii_signed::signature_check(trust));
    let gateway = match signer.clone() {
        Some(s) => gateway.with_signer(s),
        None => gateway,
    };
    let gateway = Arc::new(gateway);
    // — RECV — head office's ACECF go out beside the outbox workers.
    let acecf = crate::acecf_worker::spawn(
        store.clone(),
        gateway.clone(),
        signer,
        crate::acecf_worker::AcecfWorkerConfig {
            lease_ms: t.lease_ms,
            idle_poll_ms: t.idle_poll_ms,
            retry_base_ms: t.retry_base_ms,
            retry_cap_ms: t.retry_cap_ms,
            deliver_e31,
        },
    );
    Ok((
        WorkerPool::spawn(store.clone(), gateway, pool_config(t), Some(metrics)),
        acecf,
    ))
}

/// The worker pool settings of a `[tax_authority]` section.
pub fn pool_config(t: &crate::config::TaxAuthorityConfig) -> PoolConfig {
    PoolConfig {
        workers: t.workers,
        lease_ms: t.lease_ms,
        idle_poll_ms: t.idle_poll_ms,
        policy: crate::outbox::RetryPolicy {
            base_ms: t.retry_base_ms,
            cap_ms: t.retry_cap_ms,
            poll_ms: t.poll_interval_ms,
        },
        name: "hub".into(),
    }
}

impl RunningHub {
    /// The base URL, e.g. `http://127.0.0.1:7878` (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The hub's storage handle (its counters: writer, WAL checkpoints).
    pub fn storage(&self) -> &Storage {
        &self.store
    }

    /// Stops accepting, lets in-flight requests finish, then stops the writer
    /// after it committed what was queued, then the WAL checkpointer.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(());
        let served = self.server.await;
        self.pruner.abort();
        self.sth_task.abort();
        self.reconciler.abort();
        if let Some(t) = self.reload_task {
            t.abort();
        }
        if let Some(t) = self.acecf {
            t.abort();
        }
        if let Some(pool) = self.outbox {
            pool.stop().await;
        }
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ServeError::Io {
                what: "serving".into(),
                source,
            }),
            Err(e) => Err(ServeError::Io {
                what: "server task".into(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }
}

/// Waits for SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
