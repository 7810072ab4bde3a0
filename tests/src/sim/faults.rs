//! The faults the simulator injects, counted per kind for the run's summary,
//! and the disk faults: the hub's ([`hub_disk_fault`]) and a register's
//! inside its sync round ([`register_disk_fault`]).

use std::collections::BTreeMap;
use std::fmt;

use super::net::lock;
use super::world::{first_words, World};
use super::SimError;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A request from a register cut off from the hub.
    PartitionedRequest,
    /// A partition started.
    Partition,
    /// A request lost before the hub.
    DropRequest,
    /// An answer lost after the hub acted.
    DropAnswer,
    /// A request delivered twice.
    Duplicate,
    /// A request delayed (delivered later, reordered).
    Delay,
    /// A request to a hub that was down.
    HubDownRequest,
    /// A register process crashed and was reopened from its files.
    RegisterCrash,
    /// A register crashed inside a sync round, between two of its
    /// transactions (a crash point of `caja_node::crashpoint::SYNC_POINTS`).
    RoundCrash,
    /// The hub crashed (down for a while) and restarted from its files.
    HubCrash,
    /// A register's clock jumped (±10 min).
    ClockJump,
    /// A register restored from an older backup.
    Restore,
    /// An operation retried by the UI with the same op id.
    OpRetry,
    /// A register's disk full for a few operations (SQLite `SQLITE_FULL`):
    /// refused with the disk sentence, nothing half-applied, room again after.
    DiskFull,
    /// The hub's disk failed for one register's sync round: writes or
    /// fsyncs of its database failing with EIO or ENOSPC (the
    /// `caja_faultvfs` shim), answered 503, nothing half-kept; the disk
    /// works again after the round.
    HubDisk,
    /// A register's disk failed inside one of its sync rounds: writes or
    /// fsyncs of its database files failing with EIO or ENOSPC (the
    /// `caja_faultvfs` shim, armed for its data directory) from a chosen
    /// call until the round ends. The round fails with the disk error or
    /// ends; nothing half-applied, and the next rounds converge.
    RegisterDisk,
}

impl Fault {
    /// Every kind, in order.
    pub const ALL: [Fault; 16] = [
        Fault::Partition,
        Fault::PartitionedRequest,
        Fault::DropRequest,
        Fault::DropAnswer,
        Fault::Duplicate,
        Fault::Delay,
        Fault::HubDownRequest,
        Fault::RegisterCrash,
        Fault::RoundCrash,
        Fault::HubCrash,
        Fault::ClockJump,
        Fault::Restore,
        Fault::OpRetry,
        Fault::DiskFull,
        Fault::HubDisk,
        Fault::RegisterDisk,
    ];

    /// Whether the simulation can inject it into a hub on `db`: the hub's
    /// disk faults come from a VFS shim under its SQLite files, so not on
    /// PostgreSQL.
    pub fn applies(self, db: super::HubDb) -> bool {
        !(self == Fault::HubDisk && matches!(db, super::HubDb::Postgres { .. }))
    }

    /// Its name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Fault::PartitionedRequest => "partitioned_request",
            Fault::Partition => "partition",
            Fault::DropRequest => "drop_request",
            Fault::DropAnswer => "drop_answer",
            Fault::Duplicate => "duplicate",
            Fault::Delay => "delay_reorder",
            Fault::HubDownRequest => "hub_down_request",
            Fault::RegisterCrash => "register_crash",
            Fault::RoundCrash => "round_crash",
            Fault::HubCrash => "hub_crash",
            Fault::ClockJump => "clock_jump",
            Fault::Restore => "restore_backup",
            Fault::OpRetry => "op_retry",
            Fault::DiskFull => "disk_full",
            Fault::HubDisk => "hub_disk",
            Fault::RegisterDisk => "register_disk",
        }
    }
}

/// Faults injected, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts(BTreeMap<Fault, u64>);

impl FaultCounts {
    /// Counts one fault.
    pub fn add(&mut self, f: Fault) {
        *self.0.entry(f).or_insert(0) += 1;
    }

    /// Adds another run's counts.
    pub fn merge(&mut self, other: &FaultCounts) {
        for (f, n) in &other.0 {
            *self.0.entry(*f).or_insert(0) += n;
        }
    }

    /// Faults of one kind.
    pub fn get(&self, f: Fault) -> u64 {
        self.0.get(&f).copied().unwrap_or(0)
    }

    /// Every fault.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Fault::ALL
            .iter()
            .map(|k| format!("{}={}", k.name(), self.get(*k)))
            .collect();
        write!(f, "{}", parts.join(" "))
    }
}

/// The hub's disk fails under one sync round of register `reg`: one kind of
/// `caja_faultvfs::KINDS` from the `n`-th write or fsync of the hub's
/// database files (1 ≤ n ≤ 8, so it lands at different places of the
/// round's transactions), until the round ends; then the disk works again.
/// The round may only fail with the hub's answer (a 503): a database error
/// at the register fails the run. The checker then finds the hub and the
/// registers converged with nothing half-kept, as after any step.
pub fn hub_disk_fault(w: &mut World, reg: usize) -> Result<(), SimError> {
    let dir = {
        let net = lock(&w.net);
        // The shim sits under the hub's SQLite files; a hub on PostgreSQL
        // has none (not a fault of that variant: `Fault::applies`).
        if !net.hub.is_up() || net.hub.is_postgres() {
            return Ok(());
        }
        net.hub.dir().to_path_buf()
    };
    round_on_failing_disk(w, reg, &dir, 8, Fault::HubDisk)
}

/// Register `reg`'s disk fails inside one of its sync rounds: one kind of
/// `caja_faultvfs::KINDS` from the `n`-th write or fsync of the files under
/// its data directory (1 ≤ n ≤ 12: before, inside and after the round's
/// commits: push acknowledgement, pull pages, top-ups), until the round
/// ends; then the disk works again. The round may fail only with that disk
/// error (somewhere in its error's chain) or the hub's answer; any other
/// error fails the run. The next rounds run as usual, where a database error
/// fails the run: a register whose round a disk fault broke must go on
/// without a restart. The checker then finds nothing half-applied and the
/// registers converged, as after any step.
pub fn register_disk_fault(w: &mut World, reg: usize) -> Result<(), SimError> {
    let dir = w.regs[reg].data.root().to_path_buf();
    round_on_failing_disk(w, reg, &dir, 12, Fault::RegisterDisk)
}

/// One sync round of register `reg` with the disk under `dir` failing from
/// a call in `1..=max_n` (counted as `kind`), then disarmed. The round may
/// fail with the hub's answer, and for [`Fault::RegisterDisk`] with the
/// register's own disk error; any other error fails the run.
fn round_on_failing_disk(
    w: &mut World,
    reg: usize,
    dir: &std::path::Path,
    max_n: usize,
    kind: Fault,
) -> Result<(), SimError> {
    if w.regs[reg].sync.is_none() {
        return Ok(());
    }
    let op = caja_faultvfs::KINDS[w.pick(caja_faultvfs::KINDS.len())];
    let spec = format!("{op}:{}", 1 + w.pick(max_n));
    let fault = caja_faultvfs::Fault::parse(&spec).map_err(SimError)?;
    let armed = caja_faultvfs::arm(fault, Some(dir), None).map_err(SimError)?;
    lock(&w.net).counts.add(kind);
    let Some(sync) = w.regs[reg].sync.as_mut() else {
        armed.disarm();
        return Ok(());
    };
    let (result, _) = sync.tick();
    let seen = armed.seen();
    armed.disarm();
    let whose = if kind == Fault::HubDisk {
        "the hub's disk"
    } else {
        "its disk"
    };
    match result {
        Ok(r) => w.log(format!(
            "r{reg} sync with {whose} failing ({spec}, {seen} calls): pushed {} hub {} peers {}",
            r.pushed, r.hub_events, r.peer_events
        )),
        Err(caja_node::sync::engine::SyncError::Hub(e)) => w.log(format!(
            "r{reg} sync with {whose} failing ({spec}): {}",
            first_words(&e.to_string())
        )),
        Err(e) if kind == Fault::RegisterDisk && disk_fault_in(&e) => w.log(format!(
            "r{reg} sync failed on its disk ({spec}, {seen} calls): {}",
            first_words(&e.to_string())
        )),
        Err(e) => {
            return Err(SimError(format!(
                "r{reg} sync with {whose} failing ({spec}): {e}"
            )))
        }
    }
    Ok(())
}

/// Whether SQLite's disk error (`SQLITE_FULL`, `SQLITE_IOERR*`) is in `e`'s
/// chain.
fn disk_fault_in(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = e.downcast_ref::<rusqlite::Error>() {
            if matches!(
                f.code,
                rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure
            ) {
                return true;
            }
        }
        cur = e.source();
    }
    false
}
