//! Crash points of the hub's write path, for the hub crash-point sweep
//! (`tests/tests/hub_crash_points.rs`): named places inside a writer
//! transaction ([`POINTS`]) where the `caja-hub` process can be made to
//! abort, as a kill or a power cut there would stop it.
//!
//! `CAJA_HUB_CRASH_AT=<point>:<n>` makes the `n`-th time this process
//! reaches `<point>` call [`std::process::abort`]: no destructor runs, the
//! open transaction is neither committed nor rolled back by us, SQLite finds
//! what it finds at the next open. Invariant: without the `testkit` feature
//! (every release build) [`hit`] is an empty function and the variable is
//! never read, so a shipped hub cannot be made to abort this way. A value
//! that does not parse is ignored (a test hook, not configuration).

#[cfg(any(test, feature = "testkit"))]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "testkit")]
use std::sync::OnceLock;

/// The environment variable that arms one hub crash point.
pub const ENV: &str = "CAJA_HUB_CRASH_AT";

/// A disk fault for every database this process opens, through the
/// fault-injecting SQLite VFS (`caja_faultvfs`): `<op>:<errno>:<n>[:<count>]`,
/// e.g. `write:eio:40`, `sync:eio:1` — the `n`-th write or fsync (counted
/// while [`FAULT_GATE_ENV`]'s file exists, if it is set) and every later one
/// (or `count` of them) fail. Read only with the `testkit` feature.
pub const FAULT_ENV: &str = "CAJA_HUB_FAULT_AT";

/// A file whose existence gates [`FAULT_ENV`]'s fault: a test breaks the
/// running hub's disk by creating it and mends it by removing it.
pub const FAULT_GATE_ENV: &str = "CAJA_HUB_FAULT_GATE";

/// Installs the fault-injecting VFS and arms [`FAULT_ENV`] (once per
/// process; every SQLite open calls it). A spec that does not parse stops
/// the process with exit code 2.
#[cfg(feature = "testkit")]
pub fn arm_disk_faults() {
    // The shim goes under every connection of a test build, armed or not,
    // so a test (the simulator) can arm it later for one hub's files.
    if let Err(e) = caja_faultvfs::install() {
        eprintln!("the fault-injecting VFS: {e}");
        std::process::exit(2);
    }
    match caja_faultvfs::arm_from_env(FAULT_ENV, FAULT_GATE_ENV) {
        Ok(Some(f)) => eprintln!("{FAULT_ENV}: armed {f}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}

/// Without `testkit`: nothing ([`FAULT_ENV`] is not read).
#[cfg(not(feature = "testkit"))]
#[inline(always)]
pub fn arm_disk_faults() {}

/// Every crash point of the hub, roughly in the order a push and the
/// grants of a sync round reach them.
pub const POINTS: &[&str] = &[
    // Push: a pushed event's row inserted, before its audit entry.
    "hub:event_stored",
    // Any audit entry appended (with its Merkle leaf), same transaction.
    "hub:audit_appended",
    // Push: an event offered to the causal gate (applied or held).
    "hub:event_admitted",
    // Push: the device's checkpoint and backlog written, before the answer.
    "hub:push_recorded",
    // Causal gate: an event held for a missing dependency.
    "hub:held",
    // Causal gate: held events released by the one just applied.
    "hub:released",
    // A fiscal block granted (hub-chain event written), before the answer
    // is recorded for replay.
    "hub:fiscal_granted",
    // A stock quota granted, before the answer is recorded for replay.
    "hub:escrow_granted",
    // The e-CF outbox: documents leased to a sender.
    "hub:outbox_claimed",
    // The e-CF outbox: the tax authority's answer recorded for a document.
    "hub:outbox_recorded",
    // The writer: every job of the batch ran, before `COMMIT`.
    "hub:before_commit",
    // The writer: `COMMIT` returned, before anyone is answered.
    "hub:committed",
];

#[cfg(any(test, feature = "testkit"))]
#[derive(Debug)]
struct Armed {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

#[cfg(feature = "testkit")]
static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

#[cfg(any(test, feature = "testkit"))]
fn parse(v: &str) -> Option<Armed> {
    let (point, nth) = v.trim().rsplit_once(':')?;
    let nth: u64 = nth.parse().ok().filter(|n| *n >= 1)?;
    POINTS.contains(&point).then(|| Armed {
        point: point.to_owned(),
        nth,
        hits: AtomicU64::new(0),
    })
}

/// Reached `point`: aborts the process if it is the armed one's `n`-th hit.
#[cfg(feature = "testkit")]
pub fn hit(point: &'static str) {
    let armed = ARMED.get_or_init(|| std::env::var(ENV).ok().and_then(|v| parse(&v)));
    if let Some(a) = armed {
        if a.point == point && a.hits.fetch_add(1, Ordering::SeqCst) + 1 == a.nth {
            eprintln!("{ENV}: aborting at {point} (hit {})", a.nth);
            std::process::abort();
        }
    }
}

/// Reached `point`: nothing happens (built without `testkit`;
/// `CAJA_HUB_CRASH_AT` is not read).
#[cfg(not(feature = "testkit"))]
#[inline(always)]
pub fn hit(_point: &'static str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_points_and_positive_counts_arm() {
        assert!(
            parse("hub:committed:3").is_some_and(|a| a.point == "hub:committed"
                && a.nth == 3
                && a.hits.load(Ordering::SeqCst) == 0)
        );
        assert!(parse("hub:event_stored:1").is_some());
        assert!(parse("hub:committed:0").is_none());
        assert!(parse("sync:pull_page:1").is_none());
        assert!(parse("hub:committed").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn unarmed_points_do_nothing() {
        // The test process has no CAJA_HUB_CRASH_AT: every point is a no-op.
        for p in POINTS {
            hit(p);
        }
    }
}
