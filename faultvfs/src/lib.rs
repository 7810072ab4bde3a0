//! A fault-injecting SQLite VFS for tests: a shim over the process's default
//! VFS (`unix` on Linux) that forwards every call, except that chosen
//! `xWrite` and `xSync` calls fail as a failing disk makes them fail — a
//! write with EIO (`SQLITE_IOERR_WRITE`) or ENOSPC (`SQLITE_FULL`), an fsync
//! with EIO (`SQLITE_IOERR_FSYNC`). A failed write is torn: its first half
//! reaches the file, as a device that fails mid-request leaves it. A failed
//! fsync does not call the real one: what was written may or may not be on
//! the disk afterwards (it is in the page cache), which is what Linux
//! promises after an fsync error.
//!
//! A fault is armed with [`arm`] (or [`arm_from_env`] in the `caja-node` and
//! `caja-hub` binaries, from `CAJA_NODE_FAULT_AT` / `CAJA_HUB_FAULT_AT`),
//! written `<op>:<errno>:<n>[:<count>]`: `write:eio:5` makes the 5th write
//! after arming and every later one fail (a disk gone bad); `:<count>` limits
//! it to that many (a transient fault). A fault may be limited to the files
//! under a path (the simulator arms one hub's database among many) and to the
//! time a gate file exists (a test breaks the disk of a running process, and
//! mends it by removing the file); only calls that match count towards `n`.
//!
//! Invariants: nothing changes until [`install`] registers the shim as the
//! default VFS (every connection opened after that goes through it); with no
//! fault armed a call costs one atomic load more than SQLite's own. This
//! crate is a dependency of `caja-node` and `caja-hub` only under their
//! test-only features (`crashpoints`, `testkit`), so a release build never
//! contains it (`tests/tests/workspace.rs`). It links the workspace's one
//! `libsqlite3-sys`, the one rusqlite's `bundled` feature builds.

use std::ffi::{c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use libsqlite3_sys as ffi;

/// The name the shim is registered under (it is also the default VFS).
pub const VFS_NAME: &str = "caja-fault";

/// The fault kinds a sweep goes through, as written in a fault's spec.
pub const KINDS: &[&str] = &["write:eio", "write:enospc", "sync:eio"];

/// Which file operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `xWrite`: a page, a WAL frame, a journal header.
    Write,
    /// `xSync`: the fsync at a commit or a checkpoint.
    Sync,
}

/// How it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// An I/O error (EIO).
    Eio,
    /// No space left on the device (ENOSPC); an fsync reports it as an
    /// I/O error, as SQLite's `unix` VFS does.
    Enospc,
}

/// One armed fault: the `nth` matching call of `op` and, for `count` calls
/// (every later one when `None`), fail with `errno`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The operation.
    pub op: Op,
    /// The error.
    pub errno: Errno,
    /// The first failing call, counted from 1 among the matching ones.
    pub nth: u64,
    /// How many calls fail from there; `None`: all of them.
    pub count: Option<u64>,
}

impl Fault {
    /// Parses `<op>:<errno>:<n>[:<count>]` (`write:eio:5`, `sync:eio:1:1`);
    /// the error names what is wrong.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let parts: Vec<&str> = spec.trim().split(':').collect();
        let (op, errno, nth, count) = match parts.as_slice() {
            [op, errno, nth] => (*op, *errno, *nth, None),
            [op, errno, nth, count] => (*op, *errno, *nth, Some(*count)),
            _ => return Err(format!("fault {spec:?}: not <op>:<errno>:<n>[:<count>]")),
        };
        let op = match op {
            "write" => Op::Write,
            "sync" => Op::Sync,
            other => return Err(format!("fault {spec:?}: op {other:?} is not write or sync")),
        };
        let errno = match errno {
            "eio" => Errno::Eio,
            "enospc" => Errno::Enospc,
            other => {
                return Err(format!(
                    "fault {spec:?}: errno {other:?} is not eio or enospc"
                ))
            }
        };
        let positive = |what: &str, v: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("fault {spec:?}: {what} {v:?} is not a count from 1"))
        };
        Ok(Fault {
            op,
            errno,
            nth: positive("n", nth)?,
            count: count.map(|c| positive("count", c)).transpose()?,
        })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            Op::Write => "write",
            Op::Sync => "sync",
        };
        let errno = match self.errno {
            Errno::Eio => "eio",
            Errno::Enospc => "enospc",
        };
        write!(f, "{op}:{errno}:{}", self.nth)?;
        if let Some(c) = self.count {
            write!(f, ":{c}")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Rule {
    id: u64,
    fault: Fault,
    prefix: Option<String>,
    gate: Option<PathBuf>,
    seen: u64,
}

static RULES: Mutex<Vec<Rule>> = Mutex::new(Vec::new());
/// Whether any rule is armed: the one load an unarmed call pays.
static ANY: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static INJECTED: AtomicU64 = AtomicU64::new(0);
/// The VFS the shim forwards to (the default before [`install`]).
static REAL: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());

fn rules() -> MutexGuard<'static, Vec<Rule>> {
    // A panic while holding the lock cannot leave the list half-changed.
    RULES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An armed fault; [`Armed::disarm`] takes it out (dropping it does not).
#[derive(Debug)]
pub struct Armed {
    id: u64,
}

impl Armed {
    /// Takes the fault out: the disk works again.
    pub fn disarm(&self) {
        let mut r = rules();
        r.retain(|rule| rule.id != self.id);
        ANY.store(!r.is_empty(), Ordering::SeqCst);
    }

    /// How many matching calls the fault has seen so far.
    pub fn seen(&self) -> u64 {
        rules()
            .iter()
            .find(|r| r.id == self.id)
            .map_or(0, |r| r.seen)
    }
}

/// Registers the shim as the default VFS (once per process; later calls
/// answer the first one's result). Connections opened before keep the VFS
/// they were opened with.
pub fn install() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(register).clone()
}

fn register() -> Result<(), String> {
    // SAFETY: `sqlite3_vfs_find(NULL)` initializes the library if needed and
    // returns the default VFS, a static object of the SQLite library that
    // lives as long as the process, or NULL; we only read it here.
    let real = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
    if real.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    // SAFETY: `real` is non-NULL and points to the live default VFS (above);
    // `sqlite3_vfs` is plain data (`Copy`), so this copies its fields.
    let mut mine: ffi::sqlite3_vfs = unsafe { *real };
    let real_size = usize::try_from(mine.szOsFile).map_err(|_| "negative szOsFile")?;
    mine.szOsFile = c_int::try_from(std::mem::size_of::<FaultFile>() + real_size)
        .map_err(|_| "szOsFile overflows")?;
    mine.zName = c"caja-fault".as_ptr();
    mine.pNext = std::ptr::null_mut();
    // Every other method (and `pAppData`, `mxPathname`) is the real VFS's:
    // they get our VFS object, which carries the same fields they read.
    mine.xOpen = Some(x_open);
    REAL.store(real, Ordering::SeqCst);
    let mine: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(mine));
    // SAFETY: `mine` is leaked, so it outlives every connection as SQLite
    // requires of a registered VFS; its `xOpen` is ours and every other
    // method is the real VFS's, called with an object holding the same
    // fields; `REAL` is set before any connection can reach `x_open`.
    let rc = unsafe { ffi::sqlite3_vfs_register(mine, 1) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(format!("sqlite3_vfs_register failed: {rc}"))
    }
}

/// Installs the shim and arms `fault` for the files whose path starts with
/// `under` (all files when `None`) while `gate` exists (always when `None`).
pub fn arm(fault: Fault, under: Option<&Path>, gate: Option<&Path>) -> Result<Armed, String> {
    install()?;
    let prefix = under.map(|p| {
        // SQLite opens files by their full, symlink-resolved path; a
        // directory's files are those under `dir/` (not `dir2/`).
        let mut s = std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .to_string_lossy()
            .into_owned();
        if p.is_dir() && !s.ends_with('/') {
            s.push('/');
        }
        s
    });
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    let mut r = rules();
    r.push(Rule {
        id,
        fault,
        prefix,
        gate: gate.map(Path::to_path_buf),
        seen: 0,
    });
    ANY.store(true, Ordering::SeqCst);
    Ok(Armed { id })
}

/// Arms the fault written in the environment variable `spec_var` (if set)
/// for every file of this process, gated by the file named in `gate_var` (if
/// set). Once per variable; a later call answers `None`. A spec that does
/// not parse is an error (a test that mistyped it must not pass unarmed).
pub fn arm_from_env(spec_var: &str, gate_var: &str) -> Result<Option<Fault>, String> {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let Ok(spec) = std::env::var(spec_var) else {
        return Ok(None);
    };
    {
        let mut seen = SEEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.iter().any(|v| v == spec_var) {
            return Ok(None);
        }
        seen.push(spec_var.to_owned());
    }
    let fault = Fault::parse(&spec).map_err(|e| format!("{spec_var}: {e}"))?;
    let gate = std::env::var_os(gate_var).map(PathBuf::from);
    arm(fault.clone(), None, gate.as_deref())?;
    Ok(Some(fault))
}

/// How many calls have failed on purpose in this process.
pub fn injected() -> u64 {
    INJECTED.load(Ordering::SeqCst)
}

/// Whether this call of `op` on the file at `path` fails, and how.
fn inject(op: Op, path: &str) -> Option<Errno> {
    if !ANY.load(Ordering::Relaxed) {
        return None;
    }
    let mut r = rules();
    for rule in r.iter_mut() {
        if rule.fault.op != op
            || rule.prefix.as_ref().is_some_and(|p| !path.starts_with(p))
            || rule.gate.as_ref().is_some_and(|g| !g.exists())
        {
            continue;
        }
        rule.seen += 1;
        let first = rule.fault.nth;
        if rule.seen >= first
            && rule
                .fault
                .count
                .is_none_or(|c| rule.seen < first.saturating_add(c))
        {
            INJECTED.fetch_add(1, Ordering::SeqCst);
            return Some(rule.fault.errno);
        }
    }
    None
}

/// A file opened through the shim: SQLite's base struct (our methods), the
/// path (for [`arm`]'s `under`), and the real VFS's file, which lives in the
/// same allocation right after this struct (`szOsFile` covers both).
#[repr(C)]
struct FaultFile {
    base: ffi::sqlite3_file,
    path: *mut String,
    real: *mut ffi::sqlite3_file,
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real_vfs = REAL.load(Ordering::SeqCst);
    let ff = file.cast::<FaultFile>();
    // SAFETY: SQLite passes `szOsFile` bytes at `file`, aligned for any
    // struct of pointers: a `FaultFile` followed by the real VFS's file
    // (`register` sized it so), so both pointers stay inside the block.
    // `real_vfs` is the live default VFS (set before registering). `name` is
    // NULL or a NUL-terminated path SQLite keeps alive while the file is
    // open; we copy it. On failure our `pMethods` stays NULL, so SQLite will
    // not call our methods on this block.
    unsafe {
        let real = file
            .cast::<u8>()
            .add(std::mem::size_of::<FaultFile>())
            .cast::<ffi::sqlite3_file>();
        (*ff).base.pMethods = std::ptr::null();
        (*ff).path = std::ptr::null_mut();
        (*ff).real = real;
        (*real).pMethods = std::ptr::null();
        let Some(open) = (*real_vfs).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = open(real_vfs, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
            // A real file that failed but set its methods must be closed,
            // and SQLite will not do it through ours.
            if !(*real).pMethods.is_null() {
                if let Some(close) = (*(*real).pMethods).xClose {
                    close(real);
                }
            }
            return if rc == ffi::SQLITE_OK {
                ffi::SQLITE_CANTOPEN
            } else {
                rc
            };
        }
        let path = if name.is_null() {
            String::new()
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        };
        (*ff).path = Box::into_raw(Box::new(path));
        (*ff).base.pMethods = &IO_METHODS;
        rc
    }
}

/// The path a file was opened with.
///
/// # Safety
/// `f` is a file [`x_open`] opened and not yet closed.
unsafe fn path_of<'a>(f: *mut ffi::sqlite3_file) -> &'a str {
    // SAFETY: per this function's contract `f` is a live `FaultFile`, whose
    // `path` is NULL or the `Box<String>` `x_open` made, freed only in
    // `x_close`.
    unsafe {
        let p = (*f.cast::<FaultFile>()).path;
        if p.is_null() {
            ""
        } else {
            (*p).as_str()
        }
    }
}

/// Forwards one I/O method to the real file unchanged.
macro_rules! forward {
    ($name:ident, $method:ident, ($($arg:ident : $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite calls a method only on a file whose `pMethods`
            // is `IO_METHODS`, which `x_open` sets only after the real open
            // succeeded: `f` is a live `FaultFile`, `real` its open real
            // file, and the arguments are SQLite's, passed through as the
            // real method expects them.
            unsafe {
                let real = (*f.cast::<FaultFile>()).real;
                match (*(*real).pMethods).$method {
                    Some(m) => m(real $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

forward!(x_read, xRead, (buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64), ffi::SQLITE_IOERR_READ);
forward!(x_truncate, xTruncate, (size: ffi::sqlite3_int64), ffi::SQLITE_IOERR_TRUNCATE);
forward!(x_file_size, xFileSize, (size: *mut ffi::sqlite3_int64), ffi::SQLITE_IOERR_FSTAT);
forward!(x_lock, xLock, (level: c_int), ffi::SQLITE_IOERR_LOCK);
forward!(x_unlock, xUnlock, (level: c_int), ffi::SQLITE_IOERR_UNLOCK);
forward!(x_check_reserved_lock, xCheckReservedLock, (out: *mut c_int), ffi::SQLITE_IOERR_CHECKRESERVEDLOCK);
forward!(x_file_control, xFileControl, (op: c_int, arg: *mut c_void), ffi::SQLITE_NOTFOUND);
forward!(x_sector_size, xSectorSize, (), 4096);
forward!(x_device_characteristics, xDeviceCharacteristics, (), 0);
forward!(x_shm_map, xShmMap, (region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void), ffi::SQLITE_IOERR_SHMMAP);
forward!(x_shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int), ffi::SQLITE_IOERR_SHMLOCK);
forward!(x_shm_unmap, xShmUnmap, (delete: c_int), ffi::SQLITE_OK);
forward!(x_fetch, xFetch, (offset: ffi::sqlite3_int64, amount: c_int, out: *mut *mut c_void), ffi::SQLITE_OK);
forward!(x_unfetch, xUnfetch, (offset: ffi::sqlite3_int64, page: *mut c_void), ffi::SQLITE_OK);

unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
    // SAFETY: as in `forward!`: `f` is a live `FaultFile` with an open real
    // file.
    unsafe {
        let real = (*f.cast::<FaultFile>()).real;
        if let Some(m) = (*(*real).pMethods).xShmBarrier {
            m(real);
        }
    }
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as in `forward!`; SQLite calls `xClose` once, last, so the
    // path's box (made by `x_open`) is freed exactly once, here.
    unsafe {
        let ff = f.cast::<FaultFile>();
        let real = (*ff).real;
        let rc = match (*(*real).pMethods).xClose {
            Some(close) => close(real),
            None => ffi::SQLITE_OK,
        };
        if !(*ff).path.is_null() {
            drop(Box::from_raw((*ff).path));
            (*ff).path = std::ptr::null_mut();
        }
        rc
    }
}

unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: as in `forward!`; `buf` holds `amount` bytes (SQLite's
    // contract), so its first half is readable too; `path_of`'s contract is
    // this method's.
    unsafe {
        let real = (*f.cast::<FaultFile>()).real;
        let Some(write) = (*(*real).pMethods).xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        match inject(Op::Write, path_of(f)) {
            None => write(real, buf, amount, offset),
            Some(errno) => {
                // Torn: the first half reaches the file.
                let half = amount / 2;
                if half > 0 {
                    let _ = write(real, buf, half, offset);
                }
                match errno {
                    Errno::Eio => ffi::SQLITE_IOERR_WRITE,
                    Errno::Enospc => ffi::SQLITE_FULL,
                }
            }
        }
    }
}

unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: as in `forward!`; `path_of`'s contract is this method's.
    unsafe {
        let real = (*f.cast::<FaultFile>()).real;
        if inject(Op::Sync, path_of(f)).is_some() {
            // The real fsync is not called: whether the data is on the disk
            // is unknown, as after a real fsync error.
            return ffi::SQLITE_IOERR_FSYNC;
        }
        match (*(*real).pMethods).xSync {
            Some(sync) => sync(real, flags),
            None => ffi::SQLITE_IOERR_FSYNC,
        }
    }
}

/// The shim's I/O methods (version 3, as the `unix` VFS's).
static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        let f = Fault::parse("write:eio:5").expect("parses");
        assert_eq!(
            f,
            Fault {
                op: Op::Write,
                errno: Errno::Eio,
                nth: 5,
                count: None
            }
        );
        assert_eq!(f.to_string(), "write:eio:5");
        assert_eq!(
            Fault::parse("sync:enospc:1:2").expect("parses").to_string(),
            "sync:enospc:1:2"
        );
        for bad in [
            "",
            "write:eio",
            "write:eio:0",
            "read:eio:1",
            "write:eperm:1",
            "write:eio:1:0",
            "write:eio:x",
        ] {
            assert!(Fault::parse(bad).is_err(), "{bad:?} refused");
        }
        for k in KINDS {
            assert!(Fault::parse(&format!("{k}:1")).is_ok(), "{k}");
        }
    }

    fn open(path: &Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).expect("open");
        c.pragma_update(None, "journal_mode", "WAL").expect("wal");
        c.pragma_update(None, "synchronous", "FULL").expect("sync");
        c.execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .expect("table");
        c
    }

    fn rows(c: &rusqlite::Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    fn code(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
        match e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
            _ => None,
        }
    }

    /// One test for the process-wide shim, so armed faults of one case
    /// cannot reach another's files (each also limits itself to its dir).
    #[test]
    fn armed_writes_and_syncs_fail_only_where_armed_and_the_database_recovers() {
        install().expect("installed");
        let dir = tempfile::tempdir().expect("tmp");
        let other = tempfile::tempdir().expect("tmp");
        for (kind, wanted) in [
            ("write:eio", rusqlite::ErrorCode::SystemIoFailure),
            ("write:enospc", rusqlite::ErrorCode::DiskFull),
            ("sync:eio", rusqlite::ErrorCode::SystemIoFailure),
        ] {
            let db = dir.path().join(format!("{}.db", kind.replace(':', "_")));
            let c = open(&db);
            let bystander = open(&other.path().join(format!("{}.db", kind.replace(':', "_"))));
            c.execute("INSERT INTO t (v) VALUES ('kept')", [])
                .expect("insert");
            let before = injected();
            let armed = arm(
                Fault::parse(&format!("{kind}:1")).expect("spec"),
                Some(dir.path()),
                None,
            )
            .expect("armed");
            let err = c
                .execute("INSERT INTO t (v) VALUES ('lost')", [])
                .expect_err("the disk fails");
            assert_eq!(code(&err), Some(wanted), "{kind}: {err}");
            assert!(injected() > before, "{kind}: counted");
            // Another database of the process is not under the fault.
            bystander
                .execute("INSERT INTO t (v) VALUES ('elsewhere')", [])
                .expect("another directory writes");
            // Still broken, then mended: the failed row is not there, the
            // connection writes again.
            assert!(c.execute("INSERT INTO t (v) VALUES ('lost')", []).is_err());
            armed.disarm();
            c.execute("INSERT INTO t (v) VALUES ('after')", [])
                .expect("mended");
            drop(c);
            let c = open(&db);
            let vs: Vec<String> = c
                .prepare("SELECT v FROM t ORDER BY id")
                .expect("prepare")
                .query_map([], |r| r.get(0))
                .expect("query")
                .map(|v| v.expect("row"))
                .collect();
            // A failed fsync may leave its transaction on the disk: the
            // WAL frames were written. A failed write never does.
            if kind.starts_with("write") {
                assert_eq!(vs, ["kept", "after"], "{kind}");
            } else {
                assert!(
                    vs.first().map(String::as_str) == Some("kept")
                        && vs.last().map(String::as_str) == Some("after"),
                    "{kind}: {vs:?}"
                );
            }
            let ok: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("check");
            assert_eq!(ok, "ok", "{kind}");
            assert_eq!(rows(&bystander), 1, "{kind}: the bystander wrote");
        }
        // A transient fault (one call) and a gate file.
        let db = dir.path().join("gate.db");
        let c = open(&db);
        let gate = dir.path().join("broken");
        let armed = arm(
            Fault::parse("write:eio:1:1").expect("spec"),
            Some(dir.path()),
            Some(&gate),
        )
        .expect("armed");
        c.execute("INSERT INTO t (v) VALUES ('a')", [])
            .expect("gate closed: works");
        std::fs::write(&gate, b"").expect("gate");
        assert!(
            c.execute("INSERT INTO t (v) VALUES ('b')", []).is_err(),
            "one failure"
        );
        c.execute("INSERT INTO t (v) VALUES ('c')", [])
            .expect("then works again");
        assert!(armed.seen() >= 2, "counted only while the gate exists");
        armed.disarm();
        assert_eq!(rows(&c), 2);
    }
}
