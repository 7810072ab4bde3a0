//! Deterministic simulation of the whole system, in the spirit of
//! TigerBeetle's VOPR: one `u64` seed drives N registers (the real node
//! library over real SQLite files) and one hub (the real hub library and its
//! HTTP handlers over a real SQLite file, without a socket; or, with
//! [`HubDb::Postgres`], several instances of it on one PostgreSQL database,
//! each request to one drawn from the seed) through a random
//! schedule of cashier operations, head-office changes and faults, then
//! checks DESIGN.md's invariants.
//!
//! A run has two phases. **Safety**: operations and faults (partitions,
//! lost, duplicated, delayed and reordered requests, register and hub
//! crashes, clock jumps, restores from old backups, UI retries); cheap
//! invariants are checked after every step and the hub's accounting every
//! few steps. **Liveness**: every fault healed, no new operations; the
//! registers keep syncing and everything must converge within a bounded
//! number of steps; then every invariant is checked in full ([`check`]).
//!
//! Same seed ⇒ same run: time is the simulation's (every clock is a
//! `ManualClock` it moves), every random choice comes from `SeededRandom`s
//! drawn from the seed (the world's dice, each register's and the hub's
//! random sources, the network's fault dice), and the one step loop is
//! single-threaded — the hub's writer thread and its read pool only ever
//! serve one request at a time. The trace's running hash proves it
//! (`tests/tests/simulation.rs` runs seeds twice). Not replayed: SQLite's
//! file layout (page order, WAL size) and thread timing, which no decision
//! reads.

pub mod check;
pub mod ecf;
pub mod faults;
pub mod hub;
pub mod net;
pub mod pay;
pub mod tally;
pub mod trace;
pub mod workload;
pub mod world;

use std::fmt;
use std::path::PathBuf;

use caja_shared::entropy::RandomSource;
use faults::{Fault, FaultCounts};
use net::{lock, NetFaults};
use trace::Trace;
use world::World;

/// A failure inside a run (the message of the broken invariant or the
/// unexpected error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError(pub String);

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SimError {}

/// The size and fault rates of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Registers, over every store (register `i` sells for store
    /// `i % stores`).
    pub registers: usize,
    /// Stores (each with its own hub chain, stock and registers; one fiscal
    /// series serves them all, in blocks per register).
    pub stores: usize,
    /// Steps of the safety phase.
    pub safety_steps: u64,
    /// Most steps the liveness phase may take to converge.
    pub liveness_steps: u64,
    /// Numbers in the fiscal series.
    pub fiscal_series_size: u64,
    /// Network faults of the safety phase.
    pub net: NetFaults,
    /// Per-mille chance of a fault step at each safety step.
    pub fault_rate: u64,
    /// Print every trace line (replaying one seed).
    pub echo: bool,
    /// The hub's database and how many hub instances serve it.
    pub hub_db: HubDb,
}

/// Where the simulated hub keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HubDb {
    /// One hub over its SQLite file (the default run).
    #[default]
    Sqlite,
    /// `instances` hubs (each its own `AppState`: writer thread, read pool,
    /// audit sequencer) on one PostgreSQL database of the process-wide test
    /// server (`caja_hub::testpg::shared`), a database per run copied from
    /// the opened store's; each request goes to an instance drawn from the
    /// seed.
    Postgres {
        /// Hub instances.
        instances: usize,
    },
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            registers: 3,
            stores: 2,
            safety_steps: 45,
            liveness_steps: 150,
            fiscal_series_size: 10_000,
            net: NetFaults {
                drop_request: 40,
                drop_answer: 40,
                duplicate: 40,
                delay: 40,
            },
            fault_rate: 200,
            echo: false,
            hub_db: HubDb::Sqlite,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Steps, both phases.
    pub steps: u64,
    /// Steps the liveness phase took to converge.
    pub liveness_steps: u64,
    /// Operations acknowledged.
    pub acked: u64,
    /// Requests the hub handled.
    pub requests: u64,
    /// Of those, per hub instance.
    pub instance_requests: Vec<u64>,
    /// Faults injected.
    pub faults: FaultCounts,
    /// The workload's actions beyond sales, per kind.
    pub work: tally::WorkCounts,
    /// Invariant checks passed.
    pub checks: u64,
    /// The trace's final hash.
    pub trace_hash: String,
}

/// A failed run: its seed, what broke, and the end of its trace.
#[derive(Debug, Clone)]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// The step it broke at.
    pub step: u64,
    /// What broke.
    pub message: String,
    /// The last trace lines.
    pub tail: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation seed {} failed at step {}: {}",
            self.seed, self.step, self.message
        )?;
        writeln!(f, "last trace lines:")?;
        for l in &self.tail {
            writeln!(f, "  {l}")?;
        }
        write!(
            f,
            "replay: SEED={} cargo test -p caja-tests --test simulation replay_seed -- --nocapture",
            self.seed
        )
    }
}

/// Where runs keep their files: tmpfs when there is one (fsync is free,
/// what SQLite was handed survives a simulated crash either way).
pub fn scratch_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// The opened store every run of `cfg`'s size starts from, built once per
/// process from a fixed seed (the opening is the same in every run; what
/// happens after it is the seed's).
fn snapshot(cfg: SimConfig) -> Result<std::sync::Arc<world::Snapshot>, SimError> {
    type Cache =
        std::collections::HashMap<(usize, usize, u64, HubDb), std::sync::Arc<world::Snapshot>>;
    static CACHE: std::sync::OnceLock<std::sync::Mutex<Cache>> = std::sync::OnceLock::new();
    let key = (
        cfg.registers,
        cfg.stores,
        cfg.fiscal_series_size,
        cfg.hub_db,
    );
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(s) = cache.get(&key) {
        return Ok(s.clone());
    }
    let dir = tempfile::Builder::new()
        .prefix("caja-sim-opening-")
        .tempdir_in(scratch_root())
        .map_err(|e| SimError(format!("temp dir: {e}")))?;
    let mut w = World::new(0, cfg, dir.path(), Trace::new(false))?;
    w.open_store()?;
    w.shutdown();
    let snap = std::sync::Arc::new(w.snapshot(dir));
    cache.insert(key, snap.clone());
    Ok(snap)
}

/// The opened store of `cfg`'s size copied into `root`, with clocks and
/// random sources from `seed`, ready for a test to drive by hand (the
/// fuzz tests push hostile bodies at its hub).
pub fn open_world(seed: u64, cfg: SimConfig, root: &std::path::Path) -> Result<World, SimError> {
    let snap = snapshot(cfg)?;
    World::resume(seed, cfg, root, Trace::new(cfg.echo), &snap)
}

/// Runs one seed; any failure (a broken invariant, an unexpected error, a
/// panic) comes back with the seed and the trace's tail.
pub fn run(seed: u64, cfg: SimConfig) -> Result<RunReport, SimFailure> {
    run_with(seed, cfg, None)
}

/// A scenario written by hand instead of the safety phase's dice: it drives
/// the world ([`settle`], [`workload::sell`], the world's fault methods) and
/// asserts the path it takes; then, as in every run, healing, convergence
/// and every invariant.
pub type Script = Box<dyn FnOnce(&mut World) -> Result<(), SimError>>;

/// Runs `script` on the opened store of `cfg`'s size, then heals and checks
/// like [`run`].
pub fn run_scripted(seed: u64, cfg: SimConfig, script: Script) -> Result<RunReport, SimFailure> {
    run_with(seed, cfg, Some(script))
}

/// Steps with no operation and no fault (delayed requests delivered, every
/// due register syncing) until `done` holds, at most `limit` steps; the
/// steps it took.
pub fn settle(
    w: &mut World,
    limit: u64,
    mut done: impl FnMut(&World) -> Result<bool, SimError>,
) -> Result<u64, SimError> {
    for i in 0..limit {
        if done(w)? {
            return Ok(i);
        }
        step(w, false)?;
    }
    if done(w)? {
        return Ok(limit);
    }
    Err(SimError(format!(
        "scenario: not settled within {limit} steps"
    )))
}

fn run_with(seed: u64, cfg: SimConfig, script: Option<Script>) -> Result<RunReport, SimFailure> {
    let trace = Trace::new(cfg.echo);
    let step = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failure = |message: String, trace: &Trace, step: u64| SimFailure {
        seed,
        step,
        message,
        tail: trace.tail(),
    };
    let tmp = tempfile::Builder::new()
        .prefix("caja-sim-")
        .tempdir_in(scratch_root())
        .map_err(|e| failure(format!("temp dir: {e}"), &trace, 0))?;
    let t2 = trace.clone();
    let s2 = step.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        run_in(seed, cfg, tmp.path(), t2, &s2, script)
    }));
    let at = step.load(std::sync::atomic::Ordering::Relaxed);
    match outcome {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(failure(e.0, &trace, at)),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".into());
            Err(failure(format!("panic: {msg}"), &trace, at))
        }
    }
}

fn run_in(
    seed: u64,
    cfg: SimConfig,
    root: &std::path::Path,
    trace: Trace,
    step_out: &std::sync::atomic::AtomicU64,
    script: Option<Script>,
) -> Result<RunReport, SimError> {
    let snap = snapshot(cfg)?;
    let mut w = World::resume(seed, cfg, root, trace.clone(), &snap)?;
    w.log(format!(
        "seed {seed}: {} registers in {} stores",
        cfg.registers,
        w.stores.len()
    ));
    if let Some(script) = script {
        w.log("scripted scenario");
        let done = script(&mut w);
        step_out.store(w.step, std::sync::atomic::Ordering::Relaxed);
        done?;
    } else {
        lock(&w.net).faults = cfg.net;
        for _ in 0..cfg.safety_steps {
            step(&mut w, true)?;
            step_out.store(w.step, std::sync::atomic::Ordering::Relaxed);
        }
    }
    heal(&mut w)?;
    let started = w.step;
    let mut converged = false;
    let mut why = String::new();
    let budget = cfg.liveness_steps;
    let mut taken = 0;
    while taken < budget {
        step(&mut w, false)?;
        taken += 1;
        step_out.store(w.step, std::sync::atomic::Ordering::Relaxed);
        match check::converged(&w)? {
            None => {
                converged = true;
                break;
            }
            Some(reason) => why = reason,
        }
    }
    let liveness_steps = w.step - started;
    if !converged {
        return Err(SimError(format!(
            "liveness: no convergence within {budget} steps after healing: {why}"
        )));
    }
    w.log(format!("converged after {liveness_steps} liveness steps"));
    check::complete(&mut w)?;
    let n = lock(&w.net);
    let report = RunReport {
        seed,
        steps: w.step,
        liveness_steps,
        acked: w.acked.len() as u64,
        requests: n.delivered,
        instance_requests: n.hub.served().to_vec(),
        faults: n.counts.clone(),
        work: w.work.clone(),
        checks: w.checks,
        trace_hash: trace.hash().to_hex(),
    };
    Ok(report)
}

/// One step: time moves; in the safety phase maybe a fault and one or two
/// operations; every register whose next round is due syncs; checks.
fn step(w: &mut World, safety: bool) -> Result<(), SimError> {
    w.step += 1;
    let dt = w.rand_range(100, 2_500);
    w.advance(dt);
    if w.hub_down_steps > 0 {
        w.hub_down_steps -= 1;
        if w.hub_down_steps == 0 {
            reopen_hub(w)?;
        }
    }
    if safety {
        if w.chance(w.cfg.fault_rate) {
            workload::fault(w)?;
        }
        for _ in 0..=w.pick(2) {
            workload::action(w)?;
        }
        if w.chance(30) && lock(&w.net).hub.is_up() {
            lock(&w.net).hub.sign_head()?;
            w.log("hub: tree head signed");
        }
    } else {
        let n = lock(&w.net).in_flight();
        lock(&w.net).release_delayed(n);
    }
    for i in 0..w.regs.len() {
        if w.regs[i].next_sync_ms <= w.now_ms {
            // Sometimes the register dies inside the round, at a point drawn
            // from every point between its transactions.
            let crash_at = (safety && w.chance(ROUND_CRASH_PER_MILLE)).then(|| {
                let points = caja_node::crashpoint::SYNC_POINTS;
                points[w.pick(points.len())]
            });
            sync_tick(w, i, crash_at)?;
        }
    }
    ecf::outbox_pass(w)?;
    check::every_step(w)?;
    if w.step % 20 == 0 {
        check::periodic(w)?;
    }
    Ok(())
}

fn reopen_hub(w: &mut World) -> Result<(), SimError> {
    let seed = w.rng.next_u64();
    lock(&w.net).hub.open(seed)?;
    w.log("hub restarted from its files");
    Ok(())
}

/// Per-mille chance that a register's sync round in the safety phase is
/// armed to crash at one of the round's crash points (it crashes only if
/// the round reaches that point).
const ROUND_CRASH_PER_MILLE: u64 = 40;

/// One sync round through the engine's breaker; the next is due after the
/// wait it asks for. With `crash_at`, the register dies if the round reaches
/// that point: its objects are dropped mid-round and opened again from its
/// files.
fn sync_tick(w: &mut World, i: usize, crash_at: Option<&'static str>) -> Result<(), SimError> {
    let Some(sync) = w.regs[i].sync.as_mut() else {
        return Ok(());
    };
    if let Some(p) = crash_at {
        caja_node::crashpoint::arm_in_thread(p, 1);
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync.tick()));
    caja_node::crashpoint::disarm_in_thread();
    let (result, wait_ms) = match outcome {
        Ok(r) => r,
        Err(payload) => {
            let Some(caja_node::crashpoint::Crashed(point)) = payload
                .downcast_ref::<caja_node::crashpoint::Crashed>()
                .copied()
            else {
                std::panic::resume_unwind(payload);
            };
            w.regs[i].ops = None;
            w.regs[i].sync = None;
            lock(&w.net).counts.add(Fault::RoundCrash);
            w.log(format!(
                "r{i} crashed inside its sync round at {point} and restarts"
            ));
            w.open_register(i)?;
            return Ok(());
        }
    };
    w.regs[i].next_sync_ms = w.now_ms + i64::try_from(wait_ms).unwrap_or(i64::MAX / 4);
    match result {
        Ok(r) => w.log(format!(
            "r{i} sync: recovered {} pushed {} dup {} held {} hub {} peers {} blocks {} quotas {}",
            r.recovered,
            r.pushed,
            r.duplicates,
            r.held,
            r.hub_events,
            r.peer_events,
            r.fiscal_blocks,
            r.quotas
        )),
        Err(e) => {
            w.log(format!(
                "r{i} sync failed: {}",
                world::first_words(&e.to_string())
            ));
            // Only the link may fail a round: the hub's answers (through
            // the breaker). A database error at the register is a bug here
            // (no disk fault is injected), not a transient state to retry.
            if !matches!(e, caja_node::sync::engine::SyncError::Hub(_)) {
                return Err(SimError(format!("r{i} sync: {e}")));
            }
        }
    }
    Ok(())
}

/// The end of the safety phase: every link up, no more network faults, the
/// hub up, clocks as they are (skew stays; the system must live with it).
fn heal(w: &mut World) -> Result<(), SimError> {
    {
        let mut n = lock(&w.net);
        n.faults = NetFaults::NONE;
        for p in &mut n.partitioned {
            *p = false;
        }
    }
    if w.hub_down_steps > 0 {
        w.hub_down_steps = 0;
        reopen_hub(w)?;
    }
    if let Some(e) = &w.ecf {
        e.heal()?;
    }
    w.log("healed: network up, no faults, hub up, DGII answering");
    Ok(())
}
