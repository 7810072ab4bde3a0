//! The register's WAL checkpointer: SQLite's checkpoints taken off the thread
//! that commits sales. Without it every connection checkpoints by itself when
//! its commit leaves the WAL at 1,000 pages or more, so about one sale in
//! seventy copied the WAL into the database file and fsynced it before the
//! cashier saw "done".
//!
//! With it, the committing connection's automatic checkpoint is replaced by a
//! WAL hook that only looks at the WAL's size after each commit; a thread
//! with its own connection runs `PRAGMA wal_checkpoint(PASSIVE)` (which never
//! waits for the writer nor blocks it) once [`CheckpointPolicy::start_pages`]
//! frames are not yet copied, and when the register has been idle for
//! [`CheckpointPolicy::idle_ms`] with frames left to copy. SQLite starts the
//! WAL from its beginning again only when a write transaction begins on a WAL
//! whose frames are all copied, which a writer that never pauses does not
//! give the thread; so at [`CheckpointPolicy::hard_pages`] the committing
//! connection runs a passive checkpoint itself, as SQLite's automatic one
//! did (after the rest of a pass the thread is in), copying only what the
//! thread has not copied yet, and its next transaction starts the WAL over.
//!
//! Invariants: durability is unchanged — a checkpoint copies committed frames
//! only, with the thread's connection at `synchronous=FULL` (the database
//! file is fsynced before SQLite counts a frame as copied), and a commit is
//! acknowledged after its own WAL fsync exactly as before; a checkpoint's
//! failure never fails the commit it follows (SQLite's own automatic
//! checkpoint is silent the same way; the frames stay in the WAL, which stays
//! authoritative, and are copied by a later checkpoint). The WAL is bounded
//! by `hard_pages` plus a commit or two as long as no reader holds an old
//! snapshot (a reader bounds SQLite's automatic checkpoint the same way). The
//! thread stops and is joined when the checkpointer is stopped or dropped.

use std::os::raw::c_int;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

/// SQLite's own automatic checkpoint threshold, restored on a connection
/// whose checkpointer stops.
pub const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 1_000;

/// When checkpoints run, in WAL frames (one frame is one page image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Frames written and not yet copied into the database that wake the
    /// thread.
    pub start_pages: u32,
    /// WAL frames at which the committing connection checkpoints itself
    /// (the hard bound of the WAL).
    pub hard_pages: u32,
    /// After this long without a commit, the thread copies what is left
    /// (a register between customers); 0 turns the idle pass off.
    pub idle_ms: u64,
}

impl Default for CheckpointPolicy {
    /// A pass every ~500 frames (about 35 sales), the WAL bounded at 4,000
    /// frames (16 MiB of 4 KiB pages; the writer checkpoints itself about
    /// once in 270 sales, copying only the frames since the thread's last
    /// pass), idle after a quarter second.
    fn default() -> Self {
        CheckpointPolicy {
            start_pages: 500,
            hard_pages: 4_000,
            idle_ms: 250,
        }
    }
}

/// What a checkpointer did, for benchmarks, tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Commits seen by the WAL hook.
    pub commits: u64,
    /// Checkpoints run by the thread (idle passes included).
    pub thread_checkpoints: u64,
    /// Of those, run because the register was idle.
    pub idle_checkpoints: u64,
    /// Checkpoints the committing connection ran at the hard bound.
    pub writer_checkpoints: u64,
    /// Checkpoints that found another one running (SQLite's `SQLITE_BUSY`;
    /// nothing copied, retried later).
    pub busy: u64,
    /// Checkpoints that failed otherwise (a disk error): the frames stay in
    /// the WAL and a later checkpoint copies them.
    pub failed: u64,
    /// The largest WAL, in frames, seen after a commit.
    pub max_wal_pages: u32,
}

#[derive(Debug, Default)]
struct State {
    stats: CheckpointStats,
    /// Frames in the WAL after the last commit or checkpoint seen.
    wal_pages: u32,
    /// Frames of those already copied into the database.
    copied: u32,
    /// The thread is asked for a pass.
    wake: bool,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    /// Held for the length of a checkpoint by the thread or the writer, so
    /// the writer at the hard bound waits for the rest of the thread's pass
    /// instead of finding SQLite's checkpoint lock taken.
    pass: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under the lock is a few integer stores: a panic
        // elsewhere cannot leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the outcome of one checkpoint.
    fn record(&self, r: &rusqlite::Result<(c_int, c_int)>, by: By) {
        let mut st = self.lock();
        match r {
            Ok((log, copied)) => {
                match by {
                    By::Thread { idle } => {
                        st.stats.thread_checkpoints += 1;
                        st.stats.idle_checkpoints += u64::from(idle);
                    }
                    By::Writer => st.stats.writer_checkpoints += 1,
                }
                st.wal_pages = u32::try_from(*log).unwrap_or(0);
                st.copied = u32::try_from(*copied).unwrap_or(0);
            }
            Err(e) if is_busy(e) => st.stats.busy += 1,
            Err(_) => st.stats.failed += 1,
        }
    }
}

/// Why a checkpointer could not start.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The thread's connection or the WAL hook could not be set up.
    #[error("cannot set up the WAL checkpointer: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The thread could not start.
    #[error("cannot start the WAL checkpointer's thread: {0}")]
    Thread(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy)]
enum By {
    Thread { idle: bool },
    Writer,
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A running checkpointer: the WAL hook on the committing connection and the
/// thread. [`Checkpointer::stop`] (or dropping it) stops and joins the thread.
#[derive(Debug)]
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    policy: CheckpointPolicy,
}

impl Checkpointer {
    /// Starts checkpointing for `conn` (the connection that commits) with
    /// `own`, a second connection to the same database with the same
    /// settings (`db::open_for_checkpoints`), which the thread takes:
    /// replaces `conn`'s automatic checkpoint by the WAL hook and starts
    /// the thread. `hard_pages` is raised to `start_pages` if below it.
    pub fn start(
        conn: &mut Connection,
        own: Connection,
        policy: CheckpointPolicy,
    ) -> Result<Checkpointer, CheckpointError> {
        let policy = CheckpointPolicy {
            start_pages: policy.start_pages.max(1),
            hard_pages: policy.hard_pages.max(policy.start_pages.max(1)),
            idle_ms: policy.idle_ms,
        };
        // This connection writes nothing but checkpoints.
        own.pragma_update(None, "wal_autocheckpoint", 0)?;
        let shared = Arc::new(Shared::default());
        let hook_shared = shared.clone();
        conn.wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
            after_commit(&hook_shared, policy, wal, pages);
            // Never an error: the commit is done whatever a checkpoint does.
            Ok(())
        }))?;
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("caja-checkpoint".into())
            .spawn(move || run(&own, &thread_shared, policy));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                // No thread: the connection checkpoints by itself again.
                restore_autocheckpoint(conn);
                return Err(e.into());
            }
        };
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
            policy,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> CheckpointPolicy {
        self.policy
    }

    /// What it did so far.
    pub fn stats(&self) -> CheckpointStats {
        self.shared.lock().stats
    }

    /// Asks the thread for a pass now (tests and diagnostics).
    pub fn request(&self) {
        let mut st = self.shared.lock();
        st.wake = true;
        self.shared.cv.notify_one();
    }

    /// Stops and joins the thread, gives `conn` (the connection it was
    /// started for) SQLite's automatic checkpoint back, and answers what it
    /// did.
    pub fn stop(mut self, conn: &mut Connection) -> CheckpointStats {
        restore_autocheckpoint(conn);
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        {
            let mut st = self.shared.lock();
            st.stop = true;
            self.shared.cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            // The thread only runs checkpoints; a panic there has nothing
            // to hand on.
            let _ = t.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Removes the WAL hook from `conn` and turns SQLite's automatic checkpoint
/// back on (which installs SQLite's own hook).
fn restore_autocheckpoint(conn: &mut Connection) {
    // Best effort: failing to, the connection keeps a hook whose thread is
    // gone, which still checkpoints at the hard bound.
    let _ = conn.wal_hook(None::<fn(&mut Wal, c_int) -> rusqlite::Result<()>>);
    let _ = conn.pragma_update(None, "wal_autocheckpoint", SQLITE_AUTOCHECKPOINT_PAGES);
}

/// The WAL hook: runs on the committing thread after each commit, with the
/// WAL's size in frames.
fn after_commit(shared: &Shared, policy: CheckpointPolicy, wal: &mut Wal, pages: c_int) {
    let pages = u32::try_from(pages).unwrap_or(0);
    let hard = {
        let mut st = shared.lock();
        st.stats.commits += 1;
        if pages < st.wal_pages {
            // The WAL started over: nothing of it is copied yet.
            st.copied = 0;
        }
        st.wal_pages = pages;
        st.stats.max_wal_pages = st.stats.max_wal_pages.max(pages);
        let hard = pages >= policy.hard_pages;
        if !hard && !st.wake && pages.saturating_sub(st.copied) >= policy.start_pages {
            st.wake = true;
            shared.cv.notify_one();
        }
        hard
    };
    if hard {
        let _pass = shared.pass.lock().unwrap_or_else(PoisonError::into_inner);
        let r = wal.checkpoint_v2(CheckpointMode::PASSIVE);
        shared.record(&r, By::Writer);
    }
}

/// The thread: waits for a request, the start threshold or idleness, and
/// runs a passive checkpoint.
fn run(conn: &Connection, shared: &Shared, policy: CheckpointPolicy) {
    loop {
        let idle = {
            let mut st = shared.lock();
            loop {
                if st.stop {
                    return;
                }
                if st.wake {
                    st.wake = false;
                    break false;
                }
                if policy.idle_ms == 0 {
                    st = shared.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
                let commits = st.stats.commits;
                let (g, t) = shared
                    .cv
                    .wait_timeout(st, Duration::from_millis(policy.idle_ms))
                    .unwrap_or_else(PoisonError::into_inner);
                st = g;
                if t.timed_out()
                    && !st.stop
                    && !st.wake
                    && st.stats.commits == commits
                    && st.wal_pages > st.copied
                {
                    break true;
                }
            }
        };
        let r = {
            let _pass = shared.pass.lock().unwrap_or_else(PoisonError::into_inner);
            conn.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE)
        };
        shared.record(&r, By::Thread { idle });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn settings(conn: &Connection) {
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .expect("settings");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
    }

    fn own(path: &Path) -> Connection {
        let c = Connection::open(path).expect("open");
        settings(&c);
        c
    }

    fn wal_db(dir: &Path) -> (Connection, PathBuf) {
        let path = dir.join("t.sqlite3");
        let conn = Connection::open(&path).expect("open");
        settings(&conn);
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
            .expect("table");
        (conn, path)
    }

    fn insert(conn: &Connection) {
        // About three pages per commit: a row of 9 KiB overflows.
        conn.execute("INSERT INTO t (payload) VALUES (?1)", [vec![7u8; 9_000]])
            .expect("insert");
    }

    fn wal_file_pages(path: &Path) -> u64 {
        let len = std::fs::metadata(format!("{}-wal", path.display()))
            .map(|m| m.len())
            .unwrap_or(0);
        len.saturating_sub(32) / (4096 + 24)
    }

    /// A writer that never pauses: the thread copies the WAL in passes, the
    /// writer checkpoints itself at the hard bound, and the WAL (the file
    /// too) never grows past the bound and one commit.
    #[test]
    fn the_wal_stays_bounded_under_a_writer_that_never_pauses() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut conn, path) = wal_db(dir.path());
        let policy = CheckpointPolicy {
            start_pages: 40,
            hard_pages: 200,
            idle_ms: 0,
        };
        let c = Checkpointer::start(&mut conn, own(&path), policy).expect("starts");
        for _ in 0..600 {
            insert(&conn);
        }
        let stats = c.stop(&mut conn);
        assert_eq!(stats.commits, 600, "{stats:?}");
        assert_eq!(stats.failed, 0, "{stats:?}");
        assert!(
            stats.thread_checkpoints >= 1,
            "the thread copied: {stats:?}"
        );
        assert!(stats.writer_checkpoints >= 1, "the bound held: {stats:?}");
        // The bound, and a few commits of ~4 frames (the writer's own
        // checkpoint waits for the thread's pass; SQLite may still find a
        // read lock held at the restart, retried at the next commit).
        let slack = 20;
        assert!(
            stats.max_wal_pages <= policy.hard_pages + slack,
            "WAL bounded: {stats:?}"
        );
        assert!(
            wal_file_pages(&path) <= u64::from(policy.hard_pages + slack),
            "WAL file bounded: {} pages",
            wal_file_pages(&path)
        );
        // The automatic checkpoint is back on the connection.
        let auto: i64 = conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .expect("pragma");
        assert_eq!(auto, i64::from(SQLITE_AUTOCHECKPOINT_PAGES));
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 600);
    }

    /// Between customers the thread copies what is left, so the next
    /// commit starts the WAL over; dropping the checkpointer joins its
    /// thread.
    #[test]
    fn an_idle_register_gets_its_wal_copied_and_started_over() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut conn, path) = wal_db(dir.path());
        let policy = CheckpointPolicy {
            start_pages: 10_000,
            hard_pages: 10_000,
            idle_ms: 20,
        };
        let c = Checkpointer::start(&mut conn, own(&path), policy).expect("starts");
        for _ in 0..20 {
            insert(&conn);
        }
        let t0 = std::time::Instant::now();
        // An idle pass after the last insert (under load a slow commit may
        // have given the thread an idle moment between two inserts).
        let all_copied = |c: &Checkpointer| {
            let st = c.shared.lock();
            st.stats.idle_checkpoints > 0 && st.stats.commits == 20 && st.copied == st.wal_pages
        };
        while !all_copied(&c) {
            assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", c.stats());
            std::thread::sleep(Duration::from_millis(5));
        }
        let before = c.stats().max_wal_pages;
        insert(&conn);
        let copied = c.shared.lock().wal_pages;
        assert!(
            copied < before,
            "the WAL started over: {copied} frames after {before}"
        );
        assert_eq!(c.stats().writer_checkpoints, 0);
        drop(c);
    }
}
