//! The storage handle ([`Storage`]) and its one writer thread: jobs queued on
//! a bounded channel, batched into one write transaction, committed once,
//! answered only after the commit; reads on a pool of read connections.
//! See the module doc of [`crate::storage`] for the batching and failure
//! rules.
//!
//! A job that panics is caught where it runs: the batch's transaction is
//! rolled back as for a failed job, the job answers
//! [`StorageError::Panicked`] (500), a `writer_panic` alert is raised and
//! counted, and the writer goes on with the next job. A panic anywhere else
//! in the writer thread aborts the process loudly, so a supervisor restarts
//! the hub: ingest never stops silently behind a dead writer.
//!
//! Kernel: runs jobs and knows nothing of what they do; the typed methods of
//! [`Storage`] live with the features (`storage/mod.rs` and the feature
//! modules).

use crate::ratelimit::RateLimit;
use crate::storage::alerts::raise_alert;
use crate::storage::audit_log::Sequencer;
use crate::storage::checkpointer::{CheckpointStats, Checkpointer, WalPolicy};
use crate::storage::connect::{open, open_reader};
use crate::storage::db::{Conn, Database};
use crate::storage::error::StorageError;
use crate::storage::migrate;
pub(crate) use crate::storage::serial::Plan;
use crate::storage::serial::{self, Serial};
use crate::storage::tx_cache::TxCache;
use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// Tuning of the store, from the hub's configuration.
#[derive(Debug, Clone)]
pub struct StorageConfig {
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
    /// Resource caps (event, document and page sizes, push volume, fiscal
    /// numbers outstanding, held-event alerts, enrollment-token replays).
    pub caps: crate::caps::Caps,
}

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// How a job ended.
enum Outcome {
    /// Keep its writes.
    Keep,
    /// It failed: roll back (the error's text if a disk fault, for the batch).
    Fail(Option<String>),
    /// It panicked (caught): roll back, alert, count.
    Panicked(String),
}

/// A job's work: given the connection (or `None` when no transaction could be
/// begun), it runs and returns how it ended (anything but `Keep` rolls the
/// transaction back) and its reply.
type Work = Box<dyn for<'a> FnOnce(Option<(&'a Conn, &'a mut Env)>) -> (Outcome, Reply) + Send>;

enum Job {
    Run(Option<Plan>, Work),
    Stop,
}

/// What writer jobs may use besides the connection.
pub(crate) struct Env {
    pub(crate) clock: Arc<dyn Clock + Send + Sync>,
    pub(crate) rng: Box<dyn RandomSource + Send>,
    pub(crate) cfg: StorageConfig,
    /// Counters cached for the current transaction (reset at every `BEGIN`).
    pub(crate) tx: TxCache,
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

/// What the writer counts, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    jobs: AtomicU64,
    panics: AtomicU64,
}

#[derive(Debug)]
struct Readers {
    database: Database,
    pool: Mutex<Vec<Conn>>,
    permits: tokio::sync::Semaphore,
}

/// The hub's storage handle: cheap to clone, shared by every handler.
#[derive(Clone, Debug)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    sender: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    busy_us: Arc<std::sync::atomic::AtomicU64>,
    counters: Arc<Counters>,
    /// Test support: the next write job panics after its work.
    #[cfg(any(test, feature = "testkit"))]
    panic_next: std::sync::atomic::AtomicBool,
    readers: Readers,
    clock: Arc<dyn Clock + Send + Sync>,
    writer: Mutex<Option<JoinHandle<()>>>,
    capacity: usize,
    /// The restore epoch this database is in (read at start; a restore
    /// happens offline, so it does not change while the hub serves).
    restore_epoch: AtomicU64,
    /// Whether head office acknowledged the latest restore.
    restore_acknowledged: std::sync::atomic::AtomicBool,
    /// The audit sequencer (PostgreSQL).
    sequencer: Option<Sequencer>,
    /// The WAL's checkpoints (SQLite).
    checkpoints: Option<Arc<Checkpointer>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("database", &self.readers.database)
            .field("queue_capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens (and migrates) the database and starts the writer thread, with
    /// the default WAL checkpoints ([`WalPolicy::DEFAULT`]).
    pub fn open(
        cfg: StorageConfig,
        clock: Arc<dyn Clock + Send + Sync>,
        rng: Box<dyn RandomSource + Send>,
    ) -> Result<Storage, StorageError> {
        Storage::open_with_wal(cfg, WalPolicy::DEFAULT, clock, rng)
    }

    /// [`Storage::open`] with the WAL checkpointed as `wal` says (SQLite;
    /// ignored on PostgreSQL).
    pub fn open_with_wal(
        cfg: StorageConfig,
        wal: WalPolicy,
        clock: Arc<dyn Clock + Send + Sync>,
        rng: Box<dyn RandomSource + Send>,
    ) -> Result<Storage, StorageError> {
        let checkpoints = match &cfg.database {
            Database::Sqlite(path) => Some(Arc::new(
                Checkpointer::start(path, wal).map_err(|e| StorageError::Task(e.to_string()))?,
            )),
            Database::Postgres(_) => None,
        };
        let conn = open_writer(&cfg.database, checkpoints.as_deref())?;
        migrate::migrate(&conn)?;
        let sequencer = match cfg.database {
            Database::Postgres(_) => Some(Sequencer::start(cfg.database.clone(), clock.clone())?),
            Database::Sqlite(_) => None,
        };
        let (sender, receiver) = mpsc::sync_channel(cfg.queue_capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let env = Env {
            clock: clock.clone(),
            rng,
            cfg: cfg.clone(),
            tx: TxCache::new(cfg.database.dialect()),
        };
        let max_batch = cfg.max_batch_jobs.max(1);
        let d = depth.clone();
        let busy_us = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let b = busy_us.clone();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let ck = checkpoints.clone();
        let writer = std::thread::Builder::new()
            .name("caja-hub-writer".into())
            .spawn(move || {
                let ended = catch_unwind(AssertUnwindSafe(|| {
                    writer_loop(conn, receiver, env, max_batch, d, b, &c, ck.as_deref());
                }));
                if let Err(payload) = ended {
                    // Outside any job (commit, rollback, an answer): nothing
                    // can be trusted to go on. Abort so a supervisor
                    // restarts the hub, rather than answer 503 forever.
                    let msg = panic_message(payload.as_ref());
                    tracing::error!(panic = %msg, "the writer thread panicked outside a job; aborting");
                    eprintln!("caja-hub: the writer thread panicked outside a job ({msg}); aborting");
                    std::process::abort();
                }
            })
            .map_err(|e| StorageError::Task(e.to_string()))?;
        Ok(Storage {
            inner: Arc::new(Inner {
                sender,
                depth,
                busy_us,
                counters,
                #[cfg(any(test, feature = "testkit"))]
                panic_next: std::sync::atomic::AtomicBool::new(false),
                readers: Readers {
                    database: cfg.database.clone(),
                    pool: Mutex::new(Vec::new()),
                    permits: tokio::sync::Semaphore::new(cfg.read_connections.max(1)),
                },
                clock,
                writer: Mutex::new(Some(writer)),
                capacity: cfg.queue_capacity.max(1),
                restore_epoch: AtomicU64::new(0),
                restore_acknowledged: std::sync::atomic::AtomicBool::new(false),
                sequencer,
                checkpoints,
            }),
        })
    }

    /// The hub's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The restore epoch sent in every answer (DESIGN "Hub restore").
    pub fn restore_epoch(&self) -> u64 {
        self.inner.restore_epoch.load(Ordering::Relaxed)
    }

    /// Sets the restore epoch and whether head office acknowledged it (at
    /// start, from the database; the acknowledgement also when it is made).
    pub fn set_restore_epoch(&self, epoch: u64, acknowledged: bool) {
        self.inner.restore_epoch.store(epoch, Ordering::Relaxed);
        self.inner
            .restore_acknowledged
            .store(acknowledged, Ordering::Relaxed);
    }

    /// Whether head office acknowledged the latest restore (true when there
    /// was none).
    pub fn restore_acknowledged(&self) -> bool {
        self.restore_epoch() == 0 || self.inner.restore_acknowledged.load(Ordering::Relaxed)
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

    /// Jobs the writer has run.
    pub fn writer_jobs(&self) -> u64 {
        self.inner.counters.jobs.load(Ordering::Relaxed)
    }

    /// Writer jobs that panicked (each caught, rolled back and answered 500).
    pub fn writer_panics(&self) -> u64 {
        self.inner.counters.panics.load(Ordering::Relaxed)
    }

    /// Test support: the next write job panics after its work has run (so
    /// its writes must be rolled back). Only with the `testkit` feature.
    #[cfg(any(test, feature = "testkit"))]
    pub fn testkit_panic_next_job(&self) {
        self.inner.panic_next.store(true, Ordering::SeqCst);
    }

    /// Test support: a full disk under the writer (`full`), or room again.
    /// SQLite only: `PRAGMA max_page_count` pinned to the database's current
    /// size makes every write that needs a new page fail with `SQLITE_FULL`,
    /// as a full disk would. Only with the `testkit` feature.
    #[cfg(any(test, feature = "testkit"))]
    pub async fn testkit_disk_full(&self, full: bool) -> Result<(), StorageError> {
        let sql = if full {
            "PRAGMA max_page_count = 1"
        } else {
            "PRAGMA max_page_count = 4294967294"
        };
        self.write(move |conn, _| {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
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
        if let Some(s) = &self.inner.sequencer {
            s.stop();
        }
        if let Some(c) = &self.inner.checkpoints {
            c.stop();
        }
    }

    /// What the WAL's checkpoints did so far (`None` on PostgreSQL).
    pub fn wal_checkpoints(&self) -> Option<CheckpointStats> {
        self.inner.checkpoints.as_ref().map(|c| c.stats())
    }

    /// Test support: the WAL's checkpoints (SQLite). Only with the
    /// `testkit` feature.
    #[cfg(any(test, feature = "testkit"))]
    pub fn testkit_checkpoints(&self) -> Option<&Checkpointer> {
        self.inner.checkpoints.as_deref()
    }

    /// Runs `f` on the writer thread inside its own savepoint; its `Err` rolls
    /// the savepoint back. Answers after the batch's commit.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn, &mut Env) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.write_serial(None, f).await
    }

    /// [`Storage::write`] serialized on PostgreSQL as `plan` says
    /// (`None`: with every write). A job that staged audit entries is
    /// answered once the sequencer has put them in the tree
    /// (`super::audit_log`).
    pub(crate) async fn write_serial<T: Send + 'static>(
        &self,
        plan: Option<Plan>,
        f: impl FnOnce(&Conn, &mut Env) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel::<(Result<T, StorageError>, bool)>();
        #[cfg(any(test, feature = "testkit"))]
        let armed = self.inner.panic_next.swap(false, Ordering::SeqCst);
        let work: Work = Box::new(move |ctx| {
            let mut staged = false;
            let (outcome, result) = match ctx {
                Some((conn, env)) => {
                    let before = env.tx.staged;
                    // A panic of this job is this job's failure, not the
                    // writer's: caught here, rolled back by the loop.
                    let ran = catch_unwind(AssertUnwindSafe(|| {
                        let r = f(conn, env);
                        #[cfg(any(test, feature = "testkit"))]
                        if armed {
                            panic!("testkit: a writer job panics on purpose");
                        }
                        r
                    }));
                    staged = env.tx.staged > before;
                    match ran {
                        Ok(r) if r.is_ok() => (Outcome::Keep, r),
                        Ok(r) => {
                            let disk = r.as_ref().err().filter(|e| e.is_disk_fault());
                            (Outcome::Fail(disk.map(ToString::to_string)), r)
                        }
                        Err(payload) => {
                            let msg = panic_message(payload.as_ref());
                            (
                                Outcome::Panicked(msg.clone()),
                                Err(StorageError::Panicked(msg)),
                            )
                        }
                    }
                }
                None => (
                    Outcome::Fail(None),
                    Err(StorageError::Commit("could not begin a transaction".into())),
                ),
            };
            let reply: Reply = Box::new(move |commit| {
                let out = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StorageError::Commit(e)),
                };
                let _ = tx.send((out, staged));
            });
            (outcome, reply)
        });
        self.inner.depth.fetch_add(1, Ordering::Relaxed);
        match self.inner.sender.try_send(Job::Run(plan, work)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.inner.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(StorageError::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.inner.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(StorageError::Closed);
            }
        }
        let (out, staged) = rx.await.unwrap_or((Err(StorageError::Closed), false));
        if let (true, Ok(_), Some(s)) = (staged, &out, &self.inner.sequencer) {
            s.sequenced().await;
        }
        out
    }

    /// Runs `f` on a read connection off the async executor.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let inner = self.inner.clone();
        let _permit = inner
            .readers
            .permits
            .acquire()
            .await
            .map_err(|_| StorageError::Closed)?;
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
        .map_err(|e| StorageError::Task(e.to_string()))?
    }
}

/// Opens the writer's connection: on SQLite with its commits reported to
/// `checkpoints` instead of SQLite's automatic checkpoint.
fn open_writer(
    database: &Database,
    checkpoints: Option<&Checkpointer>,
) -> Result<Conn, StorageError> {
    match (database, checkpoints) {
        (Database::Sqlite(path), Some(c)) => Ok(c.open_writer(path)?),
        _ => open(database),
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Raises the `writer_panic` alert in a transaction of its own (the
/// panicked job's was rolled back).
fn alert_panic(conn: &Conn, env: &mut Env, msg: &str) {
    env.tx.begin();
    let raised = conn
        .begin_write()
        .map_err(StorageError::from)
        .and_then(|()| {
            raise_alert(
                conn,
                "writer_panic",
                None,
                None,
                env.now_ms(),
                &format!("a writer job panicked and was rolled back: {msg}"),
            )
        });
    let done = match raised {
        Ok(()) => conn.commit().map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = done {
        let _ = conn.rollback();
        env.tx.rolled_back();
        tracing::error!(error = %e, "the writer_panic alert could not be stored");
    }
}

#[allow(clippy::too_many_arguments)]
fn writer_loop(
    mut conn: Conn,
    receiver: Receiver<Job>,
    mut env: Env,
    max_batch: usize,
    depth: Arc<AtomicUsize>,
    busy_us: Arc<std::sync::atomic::AtomicU64>,
    counters: &Counters,
    checkpoints: Option<&Checkpointer>,
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
        let mut pending: std::collections::VecDeque<Job> = jobs.into();
        // One transaction for the batch. A job that fails rolls the whole
        // transaction back: the jobs before it in the batch are answered with a
        // storage error (their clients retry; nothing of theirs was kept), and
        // the jobs after it run in a fresh transaction.
        loop {
            env.tx.begin();
            if conn.is_broken() {
                // PostgreSQL closed the connection (a restart, the network):
                // a new one, or this batch fails and the next tries again.
                match open_writer(&env.cfg.database, checkpoints) {
                    Ok(c) => {
                        tracing::warn!("the writer's database connection was lost; reconnected");
                        conn = c;
                    }
                    Err(e) => tracing::error!(error = %e, "the writer cannot reconnect"),
                }
            }
            let began = serial::begin(&conn, &mut env.tx.held).map_err(|e| e.to_string());
            let mut replies: Vec<Reply> = Vec::new();
            let mut failed: Option<Reply> = None;
            let mut failed_disk: Option<String> = None;
            let mut panicked: Option<String> = None;
            // A job whose locks another transaction holds: this batch
            // commits first, the job begins the next one (`serial`).
            let mut split = false;
            while let Some(job) = pending.pop_front() {
                match job {
                    Job::Stop => stop = true,
                    Job::Run(plan, work) => {
                        if began.is_ok() {
                            let want = match plan {
                                Some(plan) => plan(&conn).unwrap_or(Serial::All),
                                None => Serial::All,
                            };
                            match serial::acquire(&conn, &mut env.tx.held, &want) {
                                Ok(true) => {
                                    // What held events wait for may have
                                    // changed before these locks were taken.
                                    if env.tx.shared {
                                        env.tx.awaited = None;
                                    }
                                }
                                Ok(false) => {
                                    let again: Plan = Box::new(move |_| Ok(want));
                                    pending.push_front(Job::Run(Some(again), work));
                                    split = true;
                                    break;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "a writer job could not take its locks");
                                    depth.fetch_sub(1, Ordering::Relaxed);
                                    failed = Some((work)(None).1);
                                    break;
                                }
                            }
                        }
                        depth.fetch_sub(1, Ordering::Relaxed);
                        counters.jobs.fetch_add(1, Ordering::Relaxed);
                        if began.is_err() {
                            // Run nothing: the job answers with the failure.
                            let (_, reply) = (work)(None);
                            replies.push(reply);
                            continue;
                        }
                        match (work)(Some((&conn, &mut env))) {
                            (Outcome::Keep, reply) => replies.push(reply),
                            (Outcome::Fail(disk), reply) => {
                                failed_disk = disk;
                                failed = Some(reply);
                                break;
                            }
                            (Outcome::Panicked(msg), reply) => {
                                counters.panics.fetch_add(1, Ordering::Relaxed);
                                tracing::error!(panic = %msg, "a writer job panicked; rolled back, answered 500");
                                panicked = Some(msg);
                                failed = Some(reply);
                                break;
                            }
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
                // The alert is stored before anyone hears of the panic.
                if let Some(msg) = panicked {
                    alert_panic(&conn, &mut env, &msg);
                }
                // The failed job answers with its own error.
                failed(Ok(()));
                // A disk fault is the whole batch's: each job answers 503.
                let why = match failed_disk {
                    Some(e) => format!("rolled back with a disk fault (disk I/O error): {e}"),
                    None => "rolled back with a failed job of the same transaction".to_owned(),
                };
                for reply in replies {
                    reply(Err(why.clone()));
                }
                continue;
            }
            if !replies.is_empty() {
                crate::crashpoint::hit("hub:before_commit");
            }
            let commit = match began {
                Ok(()) => conn.commit().map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if commit.is_ok() && !replies.is_empty() {
                crate::crashpoint::hit("hub:committed");
            }
            if let Err(e) = &commit {
                tracing::error!(error = %e, "writer transaction failed; rolled back");
                let _ = conn.rollback();
                env.tx.rolled_back();
                // A write or fsync that failed leaves the connection's view of
                // the file untrusted (what reached the disk is unknown): the
                // next batch runs on a new connection.
                if StorageError::Commit(e.clone()).is_disk_fault() {
                    match open_writer(&env.cfg.database, checkpoints) {
                        Ok(c) => conn = c,
                        Err(e) => tracing::error!(error = %e, "the writer cannot reopen"),
                    }
                }
            }
            for reply in replies {
                reply(commit.clone());
            }
            // Past the WAL's limit (or, without the checkpointer's thread,
            // its threshold) the writer copies the rest itself, answers sent.
            if let Some(c) = checkpoints {
                c.after_batch(&conn);
            }
            if split {
                continue;
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
