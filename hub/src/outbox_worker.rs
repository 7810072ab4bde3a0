//! The outbox workers: tokio tasks that claim due documents with a lease,
//! take each one step through the tax authority's gateway, and record the
//! outcome (see `crate::outbox` for the decisions, `storage::outbox` for the
//! claim protocol). Any number of workers in any number of hub instances may
//! run at once; the lease keeps two off one document, and the stored bytes,
//! the `in_doubt` flag and the lookup before a resubmission keep a document
//! from being submitted twice or with two contents.
//!
//! One step per claim: prepare-and-submit, lookup(-and-submit), submit, or
//! poll. A document waiting for the authority's verdict is released between
//! polls (due again after `poll_ms`), so a worker is never parked on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caja_shared::entropy::RandomSource;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::outbox::{self, Claimed, Outcome, RetryPolicy, Step};
use crate::storage::{Storage, StorageError};
use crate::system::OsRandom;
use crate::taxgw::{BuildError, StatusAnswer, Submitted, TaxGateway};

/// How a pool of workers runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Workers (tokio tasks).
    pub workers: usize,
    /// Lease on a claimed document.
    pub lease_ms: i64,
    /// Pause of an idle worker before it looks for due documents again.
    pub idle_poll_ms: u64,
    /// Backoff and polling.
    pub policy: RetryPolicy,
    /// This pool's name, the prefix of its workers' lease owner ids (unique
    /// per instance: a random suffix is added).
    pub name: String,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            workers: 2,
            lease_ms: outbox::DEFAULT_LEASE_MS,
            idle_poll_ms: 1_000,
            policy: RetryPolicy::default(),
            name: "hub".into(),
        }
    }
}

/// What a pool did, for tests and logs.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Documents claimed.
    pub claimed: AtomicU64,
    /// Submissions sent.
    pub submissions: AtomicU64,
    /// Lookups after a lost answer.
    pub lookups: AtomicU64,
    /// Lookups that found the document at the authority (no resubmission).
    pub lookups_found: AtomicU64,
    /// Status queries.
    pub polls: AtomicU64,
    /// Verdicts recorded.
    pub decided: AtomicU64,
    /// Failed gateway calls.
    pub failures: AtomicU64,
    /// Steps whose lease was lost before they were recorded.
    pub leases_lost: AtomicU64,
}

struct Ctx {
    store: Storage,
    gateway: Arc<dyn TaxGateway>,
    cfg: PoolConfig,
    metrics: Option<Arc<Metrics>>,
    stats: Arc<PoolStats>,
    /// The backoff's jitter, fixed (a deterministic caller); `None`: random.
    fixed_jitter: Option<u64>,
}

/// A running pool of workers.
#[derive(Debug)]
pub struct WorkerPool {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    stats: Arc<PoolStats>,
}

impl WorkerPool {
    /// Starts `cfg.workers` workers on `store` with `gateway`.
    pub fn spawn(
        store: Storage,
        gateway: Arc<dyn TaxGateway>,
        cfg: PoolConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> WorkerPool {
        let mut suffix = [0u8; 4];
        OsRandom::new().fill_bytes(&mut suffix);
        let name = format!("{}-{}", cfg.name, hex::encode(suffix));
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(PoolStats::default());
        let ctx = Arc::new(Ctx {
            store,
            gateway,
            cfg: PoolConfig { name, ..cfg },
            metrics,
            stats: stats.clone(),
            fixed_jitter: None,
        });
        let tasks = (0..ctx.cfg.workers.max(1))
            .map(|n| tokio::spawn(run(ctx.clone(), n, stopped.clone())))
            .collect();
        tracing::info!(workers = ctx.cfg.workers.max(1), pool = %ctx.cfg.name, authority = ctx.gateway.authority(), "tax-authority outbox workers started");
        WorkerPool { stop, tasks, stats }
    }

    /// What the pool did so far.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Stops after each worker finishes its current step.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Stops at once, wherever the workers are (their leases stay until they
    /// expire, as after a crash).
    pub fn abort(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One worker's turn on the caller's task, without a pool: claims at most
/// one due document under `owner`'s lease, takes it one step through
/// `gateway` and records the outcome, with `jitter` as the backoff's
/// jitter. For a deterministic caller (the simulation drives the outbox
/// between its steps); the stats are the turn's. `Ok(false)`: nothing due
/// (or a store gated after a restore).
pub async fn step_once(
    store: Storage,
    gateway: Arc<dyn TaxGateway>,
    cfg: PoolConfig,
    owner: &str,
    jitter: u64,
) -> Result<(bool, Arc<PoolStats>), StorageError> {
    let stats = Arc::new(PoolStats::default());
    let ctx = Ctx {
        store,
        gateway,
        cfg,
        metrics: None,
        stats: stats.clone(),
        fixed_jitter: Some(jitter),
    };
    if ctx.store.restore_any_gated().await? {
        return Ok((false, stats));
    }
    let docs = ctx
        .store
        .outbox_claim(
            owner.to_owned(),
            ctx.cfg.lease_ms,
            ctx.cfg.policy.horizon_ms(),
            1,
        )
        .await?;
    let any = !docs.is_empty();
    for d in docs {
        stats.claimed.fetch_add(1, Ordering::Relaxed);
        ctx.process(owner, d).await;
    }
    Ok((any, stats))
}

fn jitter() -> u64 {
    let mut b = [0u8; 8];
    OsRandom::new().fill_bytes(&mut b);
    u64::from_le_bytes(b)
}

async fn run(ctx: Arc<Ctx>, n: usize, mut stopped: watch::Receiver<bool>) {
    let owner = format!("{}/{n}", ctx.cfg.name);
    loop {
        if *stopped.borrow() {
            return;
        }
        // After a restore, no verdict may become a hub event before the
        // registers have returned the hub events the hub lost (the chains
        // would fork): the outbox waits while a store is gated.
        let gated = matches!(ctx.store.restore_any_gated().await, Ok(true));
        let claimed = if gated {
            Ok(Vec::new())
        } else {
            ctx.store
                .outbox_claim(
                    owner.clone(),
                    ctx.cfg.lease_ms,
                    ctx.cfg.policy.horizon_ms(),
                    1,
                )
                .await
        };
        let idle = match claimed {
            Ok(docs) if docs.is_empty() => true,
            Ok(docs) => {
                for d in docs {
                    ctx.stats.claimed.fetch_add(1, Ordering::Relaxed);
                    ctx.process(&owner, d).await;
                }
                false
            }
            Err(StorageError::Closed) => return,
            Err(StorageError::Overloaded) => true,
            Err(e) => {
                tracing::warn!(error = %e, "outbox claim failed");
                true
            }
        };
        if idle {
            let pause = ctx.cfg.idle_poll_ms.max(1);
            let pause = pause / 2 + jitter() % (pause / 2 + 1);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(pause)) => {}
                _ = stopped.changed() => {}
            }
        }
    }
}

impl Ctx {
    fn count(&self, call: &str, result: &str) {
        if let Some(m) = &self.metrics {
            m.outbox_call(call, result);
        }
    }

    fn failed(&self, call: &str, e: &crate::taxgw::GatewayError) -> Outcome {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        self.count(call, if e.in_doubt() { "in_doubt" } else { "failed" });
        tracing::debug!(call, error = %e, in_doubt = e.in_doubt(), "tax authority call failed");
        Outcome::Failed {
            error: e.to_string(),
            in_doubt: e.in_doubt(),
        }
    }

    async fn submit(&self, doc: &Claimed) -> Outcome {
        self.stats.submissions.fetch_add(1, Ordering::Relaxed);
        let outcome = match self.gateway.submit(doc).await {
            Ok(Submitted::Tracked(t)) => {
                self.count("submit", "tracked");
                Outcome::Tracked { track_id: t }
            }
            Ok(Submitted::Decided(v)) => {
                self.count("submit", "decided");
                Outcome::Decided(v)
            }
            Err(e) => self.failed("submit", &e),
        };
        self.confirm_rejection(doc, outcome).await
    }

    /// Before a rejection is recorded, the number is looked up again: a
    /// submission whose answer was lost may have been accepted, and the
    /// authority rejects a second arrival of a number it already holds
    /// (`dgii_emulator` module doc). What it holds for the number wins
    /// unless that is a rejection too; a failed lookup is retried later.
    async fn confirm_rejection(&self, doc: &Claimed, outcome: Outcome) -> Outcome {
        match &outcome {
            Outcome::Decided(v) if v.status == outbox::FinalStatus::Rejected => {}
            _ => return outcome,
        }
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        match self.gateway.lookup(doc).await {
            Ok(Some(Submitted::Decided(found)))
                if found.status != outbox::FinalStatus::Rejected =>
            {
                self.stats.lookups_found.fetch_add(1, Ordering::Relaxed);
                self.count("lookup", "found");
                tracing::info!(document = %doc.doc_key, "a rejection was of a second arrival: the first one's verdict is kept");
                Outcome::Decided(found)
            }
            Ok(Some(Submitted::Tracked(t))) if doc.track_id.as_deref() != Some(t.as_str()) => {
                self.stats.lookups_found.fetch_add(1, Ordering::Relaxed);
                self.count("lookup", "found");
                Outcome::Tracked { track_id: t }
            }
            Ok(_) => {
                self.count("lookup", "confirmed");
                outcome
            }
            Err(e) => self.failed("lookup", &e),
        }
    }

    /// Asks the authority what it holds for a document whose submission may
    /// have arrived (in doubt); submits only when it holds nothing.
    async fn lookup_then_submit(&self, doc: &Claimed) -> Outcome {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        match self.gateway.lookup(doc).await {
            Ok(Some(Submitted::Decided(v))) if outbox::stale_rejection(doc, &v) => {
                self.count("lookup", "stale");
                tracing::info!(document = %doc.doc_key, "the lookup found the rejection of the summary head office replaced; the correction is sent");
                self.submit(doc).await
            }
            Ok(Some(found)) => {
                self.stats.lookups_found.fetch_add(1, Ordering::Relaxed);
                self.count("lookup", "found");
                match found {
                    Submitted::Tracked(t) => Outcome::Tracked { track_id: t },
                    Submitted::Decided(v) => Outcome::Decided(v),
                }
            }
            Ok(None) => {
                self.count("lookup", "absent");
                self.submit(doc).await
            }
            Err(e) => self.failed("lookup", &e),
        }
    }

    /// One step for a claimed document, then its outcome recorded.
    async fn process(&self, owner: &str, mut doc: Claimed) {
        let outcome = match outbox::step(&doc) {
            Step::Prepare => {
                let src = match self.store.outbox_source(doc.clone()).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(document = %doc.doc_key, error = %e, "cannot read a queued document's source");
                        return;
                    }
                };
                match self.gateway.build(&src) {
                    Ok(p) => {
                        match self
                            .store
                            .outbox_prepare(doc.clone(), owner.to_owned(), p.clone())
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => {
                                self.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(document = %doc.doc_key, error = %e, "storing a document's bytes failed; retried after the lease");
                                return;
                            }
                        }
                        doc.prepared = Some(p);
                        // Queued in doubt (after a restore of the hub, the
                        // lost copy may have sent it): ask first.
                        let ask_first = doc.in_doubt;
                        doc.in_doubt = true;
                        if ask_first {
                            self.lookup_then_submit(&doc).await
                        } else {
                            self.submit(&doc).await
                        }
                    }
                    Err(BuildError::Invalid(reason)) => {
                        self.count("build", "invalid");
                        match self
                            .store
                            .outbox_refuse(doc.clone(), owner.to_owned(), reason)
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => {
                                self.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                tracing::warn!(document = %doc.doc_key, error = %e, "recording a refused document failed; retried after the lease");
                            }
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::error!(document = %doc.doc_key, error = %e, "fiscal document cannot be built");
                        self.count("build", "failed");
                        Outcome::Failed {
                            error: format!("cannot build the document: {e}"),
                            in_doubt: false,
                        }
                    }
                }
            }
            Step::Submit => {
                match self
                    .store
                    .outbox_mark_in_doubt(doc.doc_id, owner.to_owned())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        self.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(document = %doc.doc_key, error = %e, "marking a document in doubt failed");
                        return;
                    }
                }
                doc.in_doubt = true;
                self.submit(&doc).await
            }
            Step::Lookup => self.lookup_then_submit(&doc).await,
            Step::Poll => {
                self.stats.polls.fetch_add(1, Ordering::Relaxed);
                let track = doc.track_id.clone().unwrap_or_default();
                match self.gateway.status(&doc, &track).await {
                    Ok(StatusAnswer::InProcess) => {
                        self.count("status", "in_process");
                        Outcome::InProcess
                    }
                    Ok(StatusAnswer::Final(v)) => {
                        self.count("status", "decided");
                        self.confirm_rejection(&doc, Outcome::Decided(v)).await
                    }
                    Ok(StatusAnswer::NotFound) => {
                        self.count("status", "not_found");
                        Outcome::Failed {
                            error: format!("the tax authority does not know tracking id {track}"),
                            in_doubt: false,
                        }
                    }
                    Err(e) => self.failed("status", &e),
                }
            }
        };
        self.record(owner, doc, outcome).await;
    }

    /// Records an outcome, retrying a full writer queue a bounded number of
    /// times; if it still fails the lease expires and another worker takes
    /// the document over (asking the authority first: it is in doubt).
    async fn record(&self, owner: &str, doc: Claimed, outcome: Outcome) {
        const TRIES: u32 = 8;
        for attempt in 0..TRIES {
            match self
                .store
                .outbox_record(
                    doc.clone(),
                    owner.to_owned(),
                    outcome.clone(),
                    self.cfg.policy,
                    self.fixed_jitter.unwrap_or_else(jitter),
                    self.gateway.authority(),
                )
                .await
            {
                Ok(r) if r.lease_lost => {
                    self.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(r) => {
                    if r.state.is_final() {
                        self.stats.decided.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                Err(StorageError::Overloaded) => {
                    tokio::time::sleep(Duration::from_millis(50u64 << attempt.min(6))).await;
                }
                Err(e) => {
                    tracing::error!(document = %doc.doc_key, error = %e, "recording a tax authority answer failed; the lease will expire and the document be retried");
                    return;
                }
            }
        }
        tracing::error!(document = %doc.doc_key, "the writer stayed overloaded; the lease will expire and the document be retried");
    }
}
