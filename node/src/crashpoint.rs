//! Crash points for the crash-point sweeps (`tests/tests/crash_points.rs`):
//! named places on the write path of an operation ([`POINTS`]) and between
//! the transactions of a sync round ([`SYNC_POINTS`]) where the process can
//! be made to abort, as a power cut or a kill there would stop it.
//!
//! `CAJA_CRASH_AT=<point>:<n>` makes the `n`-th time this process reaches
//! `<point>` call [`std::process::abort`] (no destructor runs, no
//! transaction is committed or rolled back by us: SQLite finds what it
//! finds at the next open). Without the variable nothing can trigger: the
//! first call reads it once, every later call is one atomic load. A value
//! that does not parse is ignored (this is a test hook, not configuration).
//!
//! Only with the `crashpoints` feature (the crash-point sweep builds the
//! binary with it). Without it — every release build — [`hit`] is an empty
//! function and the variable is never read: a shipped register cannot be
//! made to abort this way.

#[cfg(any(test, feature = "crashpoints"))]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "crashpoints")]
use std::sync::OnceLock;

/// The environment variable that arms one crash point.
pub const ENV: &str = "CAJA_CRASH_AT";

/// Set (to anything), a database opened by this process cannot grow: a full
/// disk for the disk-fault tests (see `db::Db::open`). Read only with the
/// `crashpoints` feature.
pub const DISK_FULL_ENV: &str = "CAJA_NODE_DISK_FULL";

/// A disk fault for every database this process opens, through the
/// fault-injecting SQLite VFS (`caja_faultvfs`): `<op>:<errno>:<n>[:<count>]`,
/// e.g. `write:eio:40`, `write:enospc:40`, `sync:eio:3` — the `n`-th write or
/// fsync from the first open (or from when [`FAULT_GATE_ENV`]'s file
/// exists) and every later one (or `count` of them) fail. Read only with
/// the `crashpoints` feature.
pub const FAULT_ENV: &str = "CAJA_NODE_FAULT_AT";

/// A file whose existence gates [`FAULT_ENV`]'s fault: calls count and fail
/// only while it exists (a test breaks and mends the disk of a running
/// process).
pub const FAULT_GATE_ENV: &str = "CAJA_NODE_FAULT_GATE";

/// Arms [`FAULT_ENV`] (once per process; the first database open calls
/// it). A spec that does not parse stops the process with exit code 2: a
/// test that mistyped it must not run unarmed.
#[cfg(feature = "crashpoints")]
pub fn arm_disk_faults() {
    match caja_faultvfs::arm_from_env(FAULT_ENV, FAULT_GATE_ENV) {
        Ok(Some(f)) => eprintln!("{FAULT_ENV}: armed {f}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}

/// Whether a disk fault of the disk-fault tests is armed in this process's
/// environment ([`FAULT_ENV`] or [`DISK_FULL_ENV`]); always `false` without
/// the `crashpoints` feature.
pub fn disk_faults_armed() -> bool {
    #[cfg(feature = "crashpoints")]
    {
        std::env::var_os(FAULT_ENV).is_some() || std::env::var_os(DISK_FULL_ENV).is_some()
    }
    #[cfg(not(feature = "crashpoints"))]
    {
        false
    }
}

/// Every crash point, in the order a sale reaches them.
pub const POINTS: &[&str] = &[
    // `BEGIN IMMEDIATE` done, nothing written.
    "op:begun",
    // A tracked line's stock quota taken (escrow_quota written).
    "escrow:taken",
    // An event built, before its journal row.
    "journal:before_insert",
    // The journal row written.
    "journal:inserted",
    // A periodic checkpoint written (every 100 events).
    "journal:checkpoint",
    // The event applied to the projections (the fiscal number moved).
    "projection:applied",
    // The receipt's print job queued.
    "print:enqueued",
    // The client operation id recorded, before `COMMIT`.
    "op:recorded",
    // `COMMIT` returned, before the cashier is answered.
    "op:committed",
];

/// Every crash point of a sync round, in the order a round reaches them:
/// each between two of its transactions (or between a request the hub acted
/// on and the transaction that records its answer).
pub const SYNC_POINTS: &[&str] = &[
    // A push batch's acknowledgement (and checkpoint) committed.
    "sync:push_acked",
    // The hub's signed tree head verified and stored.
    "sync:hub_head_stored",
    // A pull page (hub chain and peer events, the cursor) committed.
    "sync:pull_page",
    // A fiscal block request recorded, before it is sent.
    "sync:fiscal_requested",
    // The hub granted a fiscal block, before the grant is pulled.
    "sync:fiscal_granted",
    // A stock quota request recorded, before it is sent.
    "sync:escrow_requested",
    // The hub's quota answer recorded, before the grants are pulled.
    "sync:escrow_answered",
];

#[cfg(any(test, feature = "crashpoints"))]
#[derive(Debug)]
struct Armed {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

#[cfg(feature = "crashpoints")]
static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

#[cfg(any(test, feature = "crashpoints"))]
fn parse(v: &str) -> Option<Armed> {
    let (point, nth) = v.trim().rsplit_once(':')?;
    let nth: u64 = nth.parse().ok().filter(|n| *n >= 1)?;
    (POINTS.contains(&point) || SYNC_POINTS.contains(&point)).then(|| Armed {
        point: point.to_owned(),
        nth,
        hits: AtomicU64::new(0),
    })
}

/// What unwinds out of a crash point armed in one thread
/// ([`arm_in_thread`]): the point. Raised with
/// [`std::panic::resume_unwind`], so no panic hook prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crashed(pub &'static str);

#[cfg(feature = "crashpoints")]
thread_local! {
    static IN_THREAD: std::cell::Cell<Option<(&'static str, u64)>> =
        const { std::cell::Cell::new(None) };
}

/// Arms `point` in this thread only: its `nth` hit unwinds with
/// [`Crashed`] instead of aborting the process (the simulator, which runs
/// many registers in one process, drops the crashed register's objects and
/// opens it again from its files; an open transaction rolls back as a
/// crash would lose it).
#[cfg(feature = "crashpoints")]
pub fn arm_in_thread(point: &'static str, nth: u64) {
    IN_THREAD.with(|c| c.set(Some((point, nth.max(1)))));
}

/// Disarms what [`arm_in_thread`] armed in this thread.
#[cfg(feature = "crashpoints")]
pub fn disarm_in_thread() {
    IN_THREAD.with(|c| c.set(None));
}

/// Reached `point`: unwinds or aborts if it is the armed one's `n`-th hit.
#[cfg(feature = "crashpoints")]
pub fn hit(point: &'static str) {
    let here = IN_THREAD.with(|c| match c.get() {
        Some((p, n)) if p == point => {
            c.set(if n <= 1 { None } else { Some((p, n - 1)) });
            n <= 1
        }
        _ => false,
    });
    if here {
        std::panic::resume_unwind(Box::new(Crashed(point)));
    }
    let armed = ARMED.get_or_init(|| std::env::var(ENV).ok().and_then(|v| parse(&v)));
    if let Some(a) = armed {
        if a.point == point && a.hits.fetch_add(1, Ordering::SeqCst) + 1 == a.nth {
            eprintln!("{ENV}: aborting at {point} (hit {})", a.nth);
            std::process::abort();
        }
    }
}

/// Reached `point`: nothing happens (built without the `crashpoints`
/// feature; `CAJA_CRASH_AT` is not read).
#[cfg(not(feature = "crashpoints"))]
#[inline(always)]
pub fn hit(_point: &'static str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_points_and_positive_counts_arm() {
        assert!(
            parse("op:committed:3").is_some_and(|a| a.point == "op:committed"
                && a.nth == 3
                && a.hits.load(Ordering::SeqCst) == 0)
        );
        assert!(parse("journal:inserted:1").is_some());
        assert!(parse("sync:pull_page:2").is_some());
        assert!(parse("journal:inserted:0").is_none());
        assert!(parse("nowhere:1").is_none());
        assert!(parse("op:committed").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn unarmed_points_do_nothing() {
        // The test process has no CAJA_CRASH_AT: every point is a no-op.
        for p in POINTS.iter().chain(SYNC_POINTS) {
            hit(p);
        }
    }
}
