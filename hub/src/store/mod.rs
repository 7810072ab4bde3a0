//! Storage: the one module that knows SQL, on SQLite (the default) or
//! PostgreSQL (issue #13), through one SQL facade ([`db`]): every statement is
//! written once.
//!
//! Writes go to one dedicated writer thread through a **bounded** queue
//! ([`Store::write`]): the thread takes every job waiting (up to
//! `max_batch_jobs`), runs them in one write transaction ([`Conn::begin_write`]:
//! `BEGIN IMMEDIATE` on SQLite; on PostgreSQL `BEGIN` and the advisory lock
//! every instance's writer takes, so several hub instances on one database are
//! serialized as one writer is), commits once (`synchronous=FULL`, WAL on
//! SQLite; a durable commit on PostgreSQL), and only then answers each job. A job that
//! fails (a storage error, not a protocol rejection) rolls the whole
//! transaction back; the jobs batched before it are answered with a storage
//! error and retried by their clients, those after it run in a new
//! transaction. So a push is applied entirely or not at all, and nothing is
//! acknowledged before it is durable. (Per-job savepoints were measured: their
//! statement journals cost more than the whole rest of an ingest.) When the queue is full the caller gets [`StoreError::Overloaded`]
//! at once (the HTTP layer answers 429). Reads run on a small pool of read-only
//! connections (WAL readers never block the writer).
//!
//! Each store method returns `Result<Answer<T>, StoreError>`: the outer error is a
//! storage failure (nothing kept), the inner [`Answer`] either the result or a
//! protocol rejection whose permitted traces (nonce, rate-limit bucket, audit
//! entry, quarantine and alert of a chain mismatch) are committed.
//!
//! Architecture invariant: handlers call these methods and never see SQL;
//! every SQL statement of the hub lives in this module (`sqlite.rs` — the
//! statements of both dialects despite its name —, `fiscal.rs`, `escrow.rs`,
//! …, `migrate.rs`) and in `migrations/hub/` (SQLite) and
//! `migrations/hub/postgres/`.

pub mod audit_tree;
mod conflicts;
mod dashboard;
pub mod db;
mod device_request;
mod escrow;
mod fiscal;
mod migrate;
mod outbox;
mod payments;
mod sqlite;

pub use conflicts::{ConflictInfo, ResolutionInfo, StateFilter};
pub use dashboard::{EventSummary, HourlySales, UiSession};
pub use fiscal::WriteOff;
pub use outbox::{DocInfo, OutboxHealth, Recorded};
pub use payments::{
    CardCheckInfo, IntentInfo, PaymentsOverview, ReconcileReport, WebhookAnswer, WebhookInfo,
};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{DeviceId, EventId, KeyId, Seq, StoreId};
use caja_shared::key::DeviceKey;
use caja_shared::kind::EventBody;
use serde::Serialize;

pub use db::{Conn, Database, DbError, Dialect};

use crate::auth::SignedRequest;
use crate::hubchain::HubChainError;
use crate::ingest::PushBatch;
use crate::ratelimit::RateLimit;
use crate::wire::ApiError;

pub use migrate::{MigrateError, MIGRATIONS};
pub use sqlite::{digest, load_projections as projections, open_connection, rebuild};

/// A result or a protocol rejection (see the module doc).
pub type Answer<T> = Result<T, ApiError>;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The writer's queue is full.
    #[error("the ingest queue is full")]
    Overloaded,
    /// The writer has stopped (shutdown).
    #[error("the store is shut down")]
    Closed,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The schema could not be migrated.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The commit of a batch failed; nothing of it was kept.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A stored row does not decode (corruption or a bug).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A hub event could not be built.
    #[error(transparent)]
    HubChain(#[from] HubChainError),
    /// A read task failed to run.
    #[error("read task failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Db(DbError::Sqlite(e))
    }
}

/// Tuning of the store, from the hub's configuration.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The database (an SQLite file or a PostgreSQL URL).
    pub database: Database,
    /// Jobs waiting for the writer before callers get `Overloaded`.
    pub queue_capacity: usize,
    /// Most jobs committed in one transaction.
    pub max_batch_jobs: usize,
    /// Read connections.
    pub read_connections: usize,
    /// How long a rotated key stays valid.
    pub key_grace_ms: i64,
    /// Per-device request limit.
    pub rate_limit: RateLimit,
}

/// An authenticated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCtx {
    /// The device.
    pub device: DeviceId,
    /// Its store.
    pub store: StoreId,
}

/// A held event in a push answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldInfo {
    /// The held event.
    pub event_id: EventId,
    /// What it still misses.
    pub missing: Vec<EventId>,
}

/// A conflict in a push answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictRef {
    /// The pushed event's seq.
    pub seq: u64,
    /// The conflict.
    pub conflict_id: String,
    /// Why.
    pub reason: String,
}

/// The answer to an accepted push (DESIGN "Wire shapes").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushAck {
    /// Highest contiguous seq stored, held events included.
    pub acked_seq: u64,
    /// New events stored.
    pub accepted: usize,
    /// Events already held with the same hash.
    pub duplicates: usize,
    /// This push's events still held.
    pub held: Vec<HeldInfo>,
    /// Conflicts this push's applied events are part of.
    pub conflicts: Vec<ConflictRef>,
}

/// What enrollment hands a device.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// Its store.
    pub store: StoreId,
    /// Its new id.
    pub device: DeviceId,
    /// Its key's id.
    pub key_id: KeyId,
    /// Its key (shown once).
    pub key: DeviceKey,
}

/// A rotated key.
#[derive(Debug, Clone)]
pub struct RotatedKey {
    /// The new key's id.
    pub key_id: KeyId,
    /// The new key.
    pub key: DeviceKey,
    /// The old key is refused from then on.
    pub old_key_valid_until_ms: i64,
}

/// One page of `GET /v1/sync/pull`.
#[derive(Debug, Clone)]
pub struct PullPage {
    /// Canonical bytes of the events, in apply order.
    pub events: Vec<Vec<u8>>,
    /// Cursor after the last event (the request's cursor when empty).
    pub next: u64,
    /// Whether more events follow.
    pub more: bool,
    /// The last hub event of the page: (hub device, seq, hash).
    pub last_hub: Option<(DeviceId, Seq, Hash256)>,
}

/// One page of `GET /v1/sync/own`.
#[derive(Debug, Clone)]
pub struct OwnPage {
    /// Canonical bytes of the device's events, in seq order.
    pub events: Vec<Vec<u8>>,
    /// The device's last checkpoint (canonical JSON), if it pushed any.
    pub checkpoint: Option<String>,
    /// Whether more events follow.
    pub more: bool,
}

/// A store, for head office.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    /// Id.
    pub store: StoreId,
    /// Name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Device id of its hub chain.
    pub hub_device: DeviceId,
    /// Events in its hub chain.
    pub hub_seq: u64,
}

/// A device, for head office.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// Id.
    pub device: DeviceId,
    /// Store.
    pub store: StoreId,
    /// Name given at token creation.
    pub name: String,
    /// Enrollment time.
    pub enrolled_at_ms: i64,
    /// Revocation time.
    pub revoked_at_ms: Option<i64>,
    /// Quarantine time.
    pub quarantined_at_ms: Option<i64>,
    /// Why quarantined.
    pub quarantine_reason: Option<String>,
    /// Last push.
    pub last_push_ms: Option<i64>,
    /// Backlog the node reported with its last push.
    pub backlog: u64,
    /// Node clock minus hub clock at the last signed request.
    pub clock_skew_ms: Option<i64>,
    /// Highest contiguous seq stored.
    pub acked_seq: u64,
    /// Keys still valid.
    pub key_ids: Vec<String>,
}

/// An alert, for head office.
#[derive(Debug, Clone, Serialize)]
pub struct AlertInfo {
    /// `chain_mismatch`, `enrollment_token_reused`, `conflict`, `negative_stock`.
    pub kind: String,
    /// Store.
    pub store: Option<String>,
    /// Device, when one is concerned.
    pub device: Option<String>,
    /// When raised.
    pub at_ms: i64,
    /// For a person.
    pub message: String,
    /// Still open.
    pub open: bool,
}

/// What the health report is computed from.
#[derive(Debug, Clone, Default)]
pub struct HealthInputs {
    /// Per device.
    pub devices: Vec<DeviceInfo>,
    /// Held events.
    pub held_events: u64,
    /// When the oldest held event was stored.
    pub oldest_held_since_ms: Option<i64>,
    /// The oldest held events (at most [`HELD_LISTED`]) with what they miss:
    /// orphans until their dependencies arrive. They are kept, never
    /// dropped, and applied when the dependencies come.
    pub held: Vec<HeldEvent>,
    /// Conflicts resolved by an operator.
    pub conflicts_resolved: u64,
    /// Open conflicts per reason.
    pub conflicts_by_reason: std::collections::BTreeMap<String, u64>,
    /// Conflicts detected in the last 24 h.
    pub conflicts_24h: u64,
    /// Conflicts not resolved.
    pub conflicts_open: u64,
    /// Fiscal numbers used by more than one sale.
    pub fiscal_duplicates: u64,
    /// Per fiscal series: what is left, where, and until when.
    pub fiscal_series: Vec<FiscalHealth>,
    /// Products with negative stock.
    pub negative_stock: u64,
    /// Sale lines sold beyond a quota (`warn`).
    pub oversells: u64,
    /// Stock alerts nobody acknowledged or resolved yet.
    pub stock_alerts_open: u64,
    /// Open alerts (mismatches, token reuse).
    pub open_alerts: u64,
    /// The tax-authority outbox.
    pub outbox: OutboxHealth,
}

/// How many held events the health report lists.
pub const HELD_LISTED: usize = 50;

/// A held event in the health report.
#[derive(Debug, Clone, Serialize)]
pub struct HeldEvent {
    /// The event.
    pub event_id: String,
    /// Its register.
    pub device: String,
    /// Its seq.
    pub seq: u64,
    /// Its kind.
    pub kind: String,
    /// When stored.
    pub held_since_ms: i64,
    /// The dependencies it waits for.
    pub missing: Vec<String>,
}

/// One fiscal series in the health report.
#[derive(Debug, Clone, Serialize)]
pub struct FiscalHealth {
    /// Prefix.
    pub prefix: String,
    /// Series id.
    pub series_id: String,
    /// Last local day of use.
    pub valid_until: String,
    /// Whole days from now to the end of `valid_until` (negative once expired).
    pub days_to_expiry: i64,
    /// Numbers the hub can still grant.
    pub free: u64,
    /// Numbers granted and not used or released, per register.
    pub outstanding_by_device: std::collections::BTreeMap<String, u64>,
    /// Sales beyond the first on one number (must be 0).
    pub duplicates: u64,
}

/// Hub events written by one catalog load.
#[derive(Debug, Clone, Serialize)]
pub struct HubAppend {
    /// Store.
    pub store: StoreId,
    /// Events appended to its hub chain.
    pub events: usize,
    /// The chain's seq after.
    pub hub_seq: u64,
}

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job's work: given the connection (or `None` when no transaction could be
/// begun), it runs and returns whether it succeeded (else the transaction is
/// rolled back) and its reply.
type Work = Box<dyn for<'a> FnOnce(Option<(&'a Conn, &'a mut Env)>) -> (bool, Reply) + Send>;

enum Job {
    Run(Work),
    Stop,
}

/// What writer jobs may use besides the connection.
pub(crate) struct Env {
    pub(crate) clock: Arc<dyn Clock + Send + Sync>,
    pub(crate) rng: Box<dyn RandomSource + Send>,
    pub(crate) cfg: StoreConfig,
    /// Counters cached for the current transaction (reset at every `BEGIN`).
    pub(crate) tx: sqlite::TxCache,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Env {
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

#[derive(Debug)]
struct Readers {
    database: Database,
    pool: Mutex<Vec<Conn>>,
    permits: tokio::sync::Semaphore,
}

/// The hub's storage handle: cheap to clone, shared by every handler.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    sender: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    busy_us: Arc<std::sync::atomic::AtomicU64>,
    readers: Readers,
    clock: Arc<dyn Clock + Send + Sync>,
    writer: Mutex<Option<JoinHandle<()>>>,
    capacity: usize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("database", &self.readers.database)
            .field("queue_capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (and migrates) the database and starts the writer thread.
    pub fn open(
        cfg: StoreConfig,
        clock: Arc<dyn Clock + Send + Sync>,
        rng: Box<dyn RandomSource + Send>,
    ) -> Result<Store, StoreError> {
        let conn = open(&cfg.database)?;
        migrate::migrate(&conn)?;
        let (sender, receiver) = mpsc::sync_channel(cfg.queue_capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let env = Env {
            clock: clock.clone(),
            rng,
            cfg: cfg.clone(),
            tx: sqlite::TxCache::new(cfg.database.dialect()),
        };
        let max_batch = cfg.max_batch_jobs.max(1);
        let d = depth.clone();
        let busy_us = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let b = busy_us.clone();
        let writer = std::thread::Builder::new()
            .name("caja-hub-writer".into())
            .spawn(move || writer_loop(conn, receiver, env, max_batch, d, b))
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                sender,
                depth,
                busy_us,
                readers: Readers {
                    database: cfg.database.clone(),
                    pool: Mutex::new(Vec::new()),
                    permits: tokio::sync::Semaphore::new(cfg.read_connections.max(1)),
                },
                clock,
                writer: Mutex::new(Some(writer)),
                capacity: cfg.queue_capacity.max(1),
            }),
        })
    }

    /// The hub's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Jobs waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.inner.depth.load(Ordering::Relaxed)
    }

    /// Microseconds the writer has spent in transactions (from `BEGIN` to the
    /// answers): its saturation is this counter's rate.
    pub fn writer_busy_us(&self) -> u64 {
        self.inner.busy_us.load(Ordering::Relaxed)
    }

    /// The writer queue's capacity.
    pub fn queue_capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Stops the writer after the jobs already queued, and waits for it.
    pub fn shutdown(&self) {
        // A full queue still takes the stop message once the writer drains it.
        let _ = self.inner.sender.send(Job::Stop);
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Runs `f` on the writer thread inside its own savepoint; its `Err` rolls
    /// the savepoint back. Answers after the batch's commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn, &mut Env) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, StoreError>>();
        let work: Work = Box::new(move |ctx| {
            let result = match ctx {
                Some((conn, env)) => f(conn, env),
                None => Err(StoreError::Commit("could not begin a transaction".into())),
            };
            let keep = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let out = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Commit(e)),
                };
                let _ = tx.send(out);
            });
            (keep, reply)
        });
        self.inner.depth.fetch_add(1, Ordering::Relaxed);
        match self.inner.sender.try_send(Job::Run(work)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.inner.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(StoreError::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.inner.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(StoreError::Closed);
            }
        }
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Runs `f` on a read connection off the async executor.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        let _permit = inner
            .readers
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner2 = inner.clone();
        tokio::task::spawn_blocking(move || {
            let readers = &inner2.readers;
            let conn = readers.pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) if !c.is_broken() => c,
                _ => open_reader(&readers.database)?,
            };
            // One snapshot for the whole read on PostgreSQL.
            conn.begin_read()?;
            let out = f(&conn);
            let ended = conn.end_read();
            if ended.is_ok() && !conn.is_broken() {
                if let Ok(mut p) = readers.pool.lock() {
                    p.push(conn);
                }
            }
            let out = out?;
            ended?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Authenticates a signed request (signature, key, timestamp, then the
    /// nonce and the device's rate limit, both persisted).
    pub async fn authenticate(&self, req: SignedRequest) -> Result<Answer<DeviceCtx>, StoreError> {
        self.write(move |conn, env| {
            sqlite::authenticate(conn, env, &req).map(|a| {
                a.map(|d| DeviceCtx {
                    device: d.device,
                    store: d.store,
                })
            })
        })
        .await
    }

    /// `POST /v1/sync/push`: authentication, then the checks of
    /// [`crate::ingest`] in DESIGN's order, then storage and the causal gate, all
    /// in one transaction. `parsed` is the body already parsed off the writer.
    pub async fn push(
        &self,
        req: SignedRequest,
        parsed: Result<PushBatch, ApiError>,
    ) -> Result<Answer<PushAck>, StoreError> {
        let (answer, parsed) = self
            .write(move |conn, env| {
                let answer = sqlite::push(conn, env, &req, &parsed)?;
                // Hand the parsed events back so the writer does not spend its
                // time freeing them.
                Ok((answer, parsed))
            })
            .await?;
        drop(parsed);
        Ok(answer)
    }

    /// `POST /v1/devices/enroll`.
    pub async fn enroll(&self, token: String) -> Result<Answer<Enrollment>, StoreError> {
        self.write(move |conn, env| sqlite::enroll(conn, env, &token))
            .await
    }

    /// `POST /v1/devices/rotate`, signed by the device: authentication first,
    /// then the body check (`parsed`), then the rotation.
    pub async fn rotate_checked(
        &self,
        req: SignedRequest,
        parsed: Result<(), ApiError>,
    ) -> Result<Answer<RotatedKey>, StoreError> {
        self.write(move |conn, env| {
            let device = match sqlite::authenticate(conn, env, &req)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            if let Err(e) = parsed {
                return Ok(Err(e));
            }
            sqlite::rotate_key(conn, env, device.device, "device").map(Ok)
        })
        .await
    }

    /// Admin: rotates a device's key (the new key is shown once).
    pub async fn admin_rotate(&self, device: DeviceId) -> Result<Answer<RotatedKey>, StoreError> {
        self.write(move |conn, env| {
            if !sqlite::device_exists(conn, device)? {
                return Ok(Err(ApiError::not_found("no such device")));
            }
            sqlite::rotate_key(conn, env, device, "admin").map(Ok)
        })
        .await
    }

    /// Admin: creates a store and its hub chain.
    pub async fn create_store(
        &self,
        name: String,
        time_zone: String,
    ) -> Result<StoreInfo, StoreError> {
        self.write(move |conn, env| sqlite::create_store(conn, env, &name, &time_zone))
            .await
    }

    /// Admin: creates a one-time enrollment token for a store; returns it and
    /// its expiry.
    pub async fn create_token(
        &self,
        store: StoreId,
        device_name: String,
        ttl_ms: i64,
    ) -> Result<Answer<(String, i64)>, StoreError> {
        self.write(move |conn, env| sqlite::create_token(conn, env, store, &device_name, ttl_ms))
            .await
    }

    /// Admin: revokes a device (every key refused from now on).
    pub async fn revoke(&self, device: DeviceId, reason: String) -> Result<Answer<()>, StoreError> {
        self.write(move |conn, env| sqlite::revoke(conn, env, device, &reason))
            .await
    }

    /// Admin: releases a device's quarantine after review.
    pub async fn release_quarantine(
        &self,
        device: DeviceId,
        note: String,
    ) -> Result<Answer<()>, StoreError> {
        self.write(move |conn, env| sqlite::release_quarantine(conn, env, device, &note))
            .await
    }

    /// Admin: appends catalog items and prices (as hub events) to the hub chain
    /// of each store in `stores` (every store when empty).
    pub async fn append_hub_events(
        &self,
        stores: Vec<StoreId>,
        bodies: Vec<EventBody>,
    ) -> Result<Answer<Vec<HubAppend>>, StoreError> {
        self.write(move |conn, env| sqlite::append_hub_events(conn, env, &stores, &bodies))
            .await
    }

    /// Admin: loads a fiscal series.
    pub async fn add_series(
        &self,
        spec: crate::fiscal::SeriesSpec,
    ) -> Result<Answer<crate::fiscal::SeriesInfo>, StoreError> {
        self.write(move |conn, env| fiscal::add_series(conn, env, &spec))
            .await
    }

    /// `POST /v1/fiscal/ranges`: authentication first, then the body, the
    /// request id and the grant, in one writer job. Answers the hub events'
    /// canonical bytes.
    pub async fn grant_fiscal_range(
        &self,
        req: SignedRequest,
        parsed: Result<(crate::fiscal::RangeRequest, Hash256), ApiError>,
        block_ttl_ms: i64,
    ) -> Result<Answer<Vec<Vec<u8>>>, StoreError> {
        self.write(move |conn, env| fiscal::grant_range(conn, env, &req, parsed, block_ttl_ms))
            .await
    }

    /// `POST /v1/escrow/grants`: authentication first, then the body, the
    /// request id and the quotas, in one writer job.
    pub async fn grant_quota(
        &self,
        req: SignedRequest,
        parsed: Result<(crate::escrow::QuotaRequest, Hash256), ApiError>,
        ttl_ms: i64,
    ) -> Result<Answer<Vec<Vec<u8>>>, StoreError> {
        self.write(move |conn, env| escrow::grant_quota(conn, env, &req, parsed, ttl_ms))
            .await
    }

    /// Admin: stock, outstanding quotas and what is available, per product.
    pub async fn stock(
        &self,
        store: StoreId,
    ) -> Result<Vec<crate::escrow::ProductStock>, StoreError> {
        self.read(move |conn| escrow::store_stock(conn, store))
            .await
    }

    /// Admin: a store's approvals, drawer openings without a sale, returns
    /// made without the original and store-credit balances.
    pub async fn staff_activity(&self, store: StoreId) -> Result<serde_json::Value, StoreError> {
        self.read(move |conn| sqlite::staff_activity(conn, store))
            .await
    }

    /// Admin: stock alerts (oversells, negative stock) with their decisions.
    pub async fn stock_alerts(&self) -> Result<Vec<crate::escrow::StockAlert>, StoreError> {
        self.read(escrow::alerts).await
    }

    /// Admin: an operator acknowledges or resolves a stock alert.
    pub async fn decide_stock_alert(
        &self,
        d: crate::escrow::AlertDecision,
    ) -> Result<Answer<crate::escrow::StockAlert>, StoreError> {
        self.write(move |conn, env| escrow::decide(conn, env, &d))
            .await
    }

    /// Admin: the conflicts in a state, oldest first.
    pub async fn conflicts(&self, state: StateFilter) -> Result<Vec<ConflictInfo>, StoreError> {
        self.read(move |conn| conflicts::list(conn, state)).await
    }

    /// Admin: an operator resolves a conflict (a `ConflictResolved` hub event).
    pub async fn resolve_conflict(
        &self,
        id: caja_shared::ids::ConflictId,
        req: crate::conflict::ResolveRequest,
    ) -> Result<Answer<ConflictInfo>, StoreError> {
        self.write(move |conn, env| conflicts::resolve(conn, env, id, &req))
            .await
    }

    /// Admin: writes a register off.
    pub async fn write_off(
        &self,
        device: DeviceId,
        reason: String,
    ) -> Result<Answer<WriteOff>, StoreError> {
        self.write(move |conn, env| fiscal::write_off(conn, env, device, &reason))
            .await
    }

    /// Admin: the fiscal series.
    pub async fn fiscal_series(&self) -> Result<Vec<crate::fiscal::SeriesInfo>, StoreError> {
        self.read(fiscal::list_series).await
    }

    /// Admin: the accounting of the series of a prefix (all when `None`).
    pub async fn fiscal_reports(
        &self,
        prefix: Option<String>,
    ) -> Result<Vec<crate::fiscal::SeriesReport>, StoreError> {
        self.read(move |conn| fiscal::reports(conn, prefix.as_deref()))
            .await
    }

    /// Admin: a store's fiscal sales in a month of its local time, and its
    /// zone offset.
    pub async fn fiscal_sales(
        &self,
        store: StoreId,
        month: caja_shared::localtime::LocalDate,
    ) -> Result<
        Answer<(
            caja_shared::localtime::UtcOffset,
            Vec<crate::fiscal::Sale607>,
        )>,
        StoreError,
    > {
        self.read(move |conn| fiscal::sales_of_month(conn, store, month))
            .await
    }

    /// `POST /v1/payments/intents`: authentication first, then the body, the
    /// request id and the new intent, in one writer job. Answers the hub
    /// event's canonical bytes.
    pub async fn create_payment_intent(
        &self,
        req: SignedRequest,
        parsed: Result<(crate::payments::IntentRequest, Hash256), ApiError>,
        providers: Vec<String>,
    ) -> Result<Answer<Vec<Vec<u8>>>, StoreError> {
        self.write(move |conn, env| payments::create_intent(conn, env, &req, parsed, &providers))
            .await
    }

    /// A provider's webhook whose signature the caller verified: decided in
    /// one writer job (idempotent by the provider's event id).
    pub async fn payment_webhook(
        &self,
        provider: String,
        webhook: crate::payments::Webhook,
        body_hash: Hash256,
        deadline_ms: i64,
    ) -> Result<Answer<WebhookAnswer>, StoreError> {
        self.write(move |conn, env| {
            payments::webhook(conn, env, &provider, &webhook, body_hash, deadline_ms)
        })
        .await
    }

    /// One reconciliation pass of card payments against the providers'
    /// confirmations.
    pub async fn reconcile_payments(
        &self,
        deadline_ms: i64,
    ) -> Result<ReconcileReport, StoreError> {
        self.write(move |conn, env| payments::reconcile(conn, env, deadline_ms))
            .await
    }

    /// Admin: payment intents, received webhooks and card checks.
    pub async fn payments_overview(
        &self,
        store: Option<StoreId>,
    ) -> Result<PaymentsOverview, StoreError> {
        self.read(move |conn| payments::overview(conn, store)).await
    }

    /// Outbox: claims up to `limit` due documents for `owner` for `lease_ms`
    /// (one conditional UPDATE; see `store::outbox`).
    pub async fn outbox_claim(
        &self,
        owner: String,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<crate::outbox::Claimed>, StoreError> {
        self.write(move |conn, env| outbox::claim(conn, env, &owner, lease_ms, limit))
            .await
    }

    /// Outbox: what the gateway needs to build a claimed document.
    pub async fn outbox_source(
        &self,
        doc: crate::outbox::Claimed,
    ) -> Result<crate::taxgw::DocumentSource, StoreError> {
        let now = self.now_ms();
        self.read(move |conn| outbox::source(conn, &doc, now)).await
    }

    /// Outbox: stores a document's bytes once and marks it in doubt (before
    /// its first submission). `false`: the lease was lost.
    pub async fn outbox_prepare(
        &self,
        doc: crate::outbox::Claimed,
        owner: String,
        prepared: crate::outbox::Prepared,
    ) -> Result<bool, StoreError> {
        self.write(move |conn, env| outbox::prepare(conn, env, &doc, &owner, &prepared))
            .await
    }

    /// Outbox: marks a document in doubt before it is sent again. `false`:
    /// the lease was lost.
    pub async fn outbox_mark_in_doubt(
        &self,
        doc_id: i64,
        owner: String,
    ) -> Result<bool, StoreError> {
        self.write(move |conn, _| outbox::mark_in_doubt(conn, doc_id, &owner))
            .await
    }

    /// Outbox: records a gateway outcome and releases the lease; a verdict
    /// becomes a hub event (and, rejected, a `manual` conflict and an alert)
    /// in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn outbox_record(
        &self,
        doc: crate::outbox::Claimed,
        owner: String,
        outcome: crate::outbox::Outcome,
        policy: crate::outbox::RetryPolicy,
        jitter: u64,
        authority: &'static str,
    ) -> Result<Recorded, StoreError> {
        self.write(move |conn, env| {
            outbox::record(
                conn, env, &doc, &owner, &outcome, &policy, jitter, authority,
            )
        })
        .await
    }

    /// Admin: outbox documents in a state (all when `None`), newest first.
    pub async fn outbox_list(
        &self,
        state: Option<crate::outbox::DocState>,
        limit: usize,
    ) -> Result<Vec<DocInfo>, StoreError> {
        self.read(move |conn| outbox::list(conn, state, limit))
            .await
    }

    /// Outbox counts (health, metrics).
    pub async fn outbox_health(&self) -> Result<OutboxHealth, StoreError> {
        self.read(outbox::health).await
    }

    /// Forgets nonces whose timestamp is outside the replay window.
    pub async fn prune_nonces(&self) -> Result<usize, StoreError> {
        self.write(sqlite::prune_nonces).await
    }

    /// `GET /v1/sync/pull` for an authenticated device.
    pub async fn pull(
        &self,
        who: DeviceCtx,
        after: u64,
        limit: usize,
    ) -> Result<PullPage, StoreError> {
        self.read(move |conn| sqlite::pull_page(conn, who, after, limit))
            .await
    }

    /// `GET /v1/sync/own` for an authenticated device.
    pub async fn own(
        &self,
        who: DeviceCtx,
        after_seq: u64,
        limit: usize,
    ) -> Result<OwnPage, StoreError> {
        self.read(move |conn| sqlite::own_page(conn, who.device, after_seq, limit))
            .await
    }

    /// Admin: the stores.
    pub async fn stores(&self) -> Result<Vec<StoreInfo>, StoreError> {
        self.read(sqlite::list_stores).await
    }

    /// Admin: the devices (of one store, or all).
    pub async fn devices(&self, store: Option<StoreId>) -> Result<Vec<DeviceInfo>, StoreError> {
        let now = self.now_ms();
        self.read(move |conn| sqlite::list_devices(conn, store, now))
            .await
    }

    /// Admin: alerts (stored ones, open conflicts, negative stock).
    pub async fn alerts(&self) -> Result<Vec<AlertInfo>, StoreError> {
        self.read(sqlite::list_alerts).await
    }

    /// What the health report is computed from.
    pub async fn health_inputs(&self) -> Result<HealthInputs, StoreError> {
        let now = self.now_ms();
        self.read(move |conn| sqlite::health_inputs(conn, now))
            .await
    }

    /// Digest of the projections (see [`digest`]).
    pub async fn digest(&self) -> Result<Hash256, StoreError> {
        self.read(digest).await
    }
}

/// Opens a read-write connection to the database (SQLite with the hub's
/// pragmas; PostgreSQL over its URL).
pub fn open(database: &Database) -> Result<Conn, StoreError> {
    match database {
        Database::Sqlite(path) => Ok(open_connection(path)?),
        Database::Postgres(url) => Ok(Conn::connect_postgres(url)?),
    }
}

/// [`open`] for use from asynchronous code (tests, tools): on PostgreSQL each
/// call runs on a thread of its own (see [`Conn::connect_postgres_detached`]).
pub fn open_detached(database: &Database) -> Result<Conn, StoreError> {
    match database {
        Database::Sqlite(path) => Ok(open_connection(path)?),
        Database::Postgres(url) => Ok(Conn::connect_postgres_detached(url)?),
    }
}

/// Opens a read connection (read-only on SQLite).
fn open_reader(database: &Database) -> Result<Conn, StoreError> {
    match database {
        Database::Sqlite(path) => sqlite::open_reader(path),
        Database::Postgres(url) => Ok(Conn::connect_postgres(url)?),
    }
}

/// Opens the database (creating and migrating it) without starting a writer:
/// for `caja-hub init` and `caja-hub rebuild`.
pub fn open_offline(database: &Database) -> Result<Conn, StoreError> {
    let conn = open(database)?;
    migrate::migrate(&conn)?;
    Ok(conn)
}

/// Records the hub key in a fresh database (at `caja-hub init`); checks it
/// matches on later opens.
pub fn record_hub_key(
    conn: &Conn,
    key_id: &KeyId,
    public_hex: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlite::record_hub_key(conn, key_id, public_hex, now_ms)
}

fn writer_loop(
    mut conn: Conn,
    receiver: Receiver<Job>,
    mut env: Env,
    max_batch: usize,
    depth: Arc<AtomicUsize>,
    busy_us: Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        let Ok(first) = receiver.recv() else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match receiver.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let mut stop = false;
        let mut pending = jobs.into_iter();
        // One transaction for the batch. A job that fails rolls the whole
        // transaction back: the jobs before it in the batch are answered with a
        // storage error (their clients retry; nothing of theirs was kept), and
        // the jobs after it run in a fresh transaction.
        loop {
            env.tx.begin();
            if conn.is_broken() {
                // PostgreSQL closed the connection (a restart, the network):
                // a new one, or this batch fails and the next tries again.
                match open(&env.cfg.database) {
                    Ok(c) => {
                        tracing::warn!("the writer's database connection was lost; reconnected");
                        conn = c;
                    }
                    Err(e) => tracing::error!(error = %e, "the writer cannot reconnect"),
                }
            }
            let began = conn.begin_write().map_err(|e| e.to_string());
            let mut replies: Vec<Reply> = Vec::new();
            let mut failed: Option<Reply> = None;
            for job in pending.by_ref() {
                match job {
                    Job::Stop => stop = true,
                    Job::Run(work) => {
                        depth.fetch_sub(1, Ordering::Relaxed);
                        if began.is_err() {
                            // Run nothing: the job answers with the failure.
                            let (_, reply) = (work)(None);
                            replies.push(reply);
                            continue;
                        }
                        let (keep, reply) = (work)(Some((&conn, &mut env)));
                        if keep {
                            replies.push(reply);
                        } else {
                            failed = Some(reply);
                            break;
                        }
                    }
                }
            }
            if let Some(failed) = failed {
                let _ = conn.rollback();
                env.tx.rolled_back();
                tracing::error!(
                    rolled_back = replies.len(),
                    "a writer job failed; its transaction was rolled back"
                );
                // The failed job answers with its own error.
                failed(Ok(()));
                for reply in replies {
                    reply(Err(
                        "rolled back with a failed job of the same transaction".into()
                    ));
                }
                continue;
            }
            let commit = match began {
                Ok(()) => conn.commit().map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if let Err(e) = &commit {
                tracing::error!(error = %e, "writer transaction failed; rolled back");
                let _ = conn.rollback();
                env.tx.rolled_back();
            }
            for reply in replies {
                reply(commit.clone());
            }
            break;
        }
        busy_us.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if stop {
            return;
        }
    }
}
