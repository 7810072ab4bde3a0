//! The storage handle ([`Storage`]) and its one writer thread: jobs queued on
//! a bounded channel, batched into one write transaction, committed once,
//! answered only after the commit; reads on a pool of read connections.
//! See the module doc of [`crate::storage`] for the batching and failure
//! rules.
//!
//! Kernel: runs jobs and knows nothing of what they do; the typed methods of
//! [`Storage`] live with the features (`storage/mod.rs` and the feature
//! modules).

use crate::ratelimit::RateLimit;
use crate::storage::connect::{open, open_reader};
use crate::storage::db::{Conn, Database};
use crate::storage::error::StorageError;
use crate::storage::migrate;
use crate::storage::tx_cache::TxCache;
use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    readers: Readers,
    clock: Arc<dyn Clock + Send + Sync>,
    writer: Mutex<Option<JoinHandle<()>>>,
    capacity: usize,
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
    /// Opens (and migrates) the database and starts the writer thread.
    pub fn open(
        cfg: StorageConfig,
        clock: Arc<dyn Clock + Send + Sync>,
        rng: Box<dyn RandomSource + Send>,
    ) -> Result<Storage, StorageError> {
        let conn = open(&cfg.database)?;
        migrate::migrate(&conn)?;
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
        let writer = std::thread::Builder::new()
            .name("caja-hub-writer".into())
            .spawn(move || writer_loop(conn, receiver, env, max_batch, d, b))
            .map_err(|e| StorageError::Task(e.to_string()))?;
        Ok(Storage {
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
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn, &mut Env) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, StorageError>>();
        let work: Work = Box::new(move |ctx| {
            let result = match ctx {
                Some((conn, env)) => f(conn, env),
                None => Err(StorageError::Commit("could not begin a transaction".into())),
            };
            let keep = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let out = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StorageError::Commit(e)),
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
                return Err(StorageError::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.inner.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(StorageError::Closed);
            }
        }
        rx.await.unwrap_or(Err(StorageError::Closed))
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
