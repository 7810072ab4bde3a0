//! WAL checkpoints of the SQLite hub, off the writer thread: the writer's
//! connection runs without SQLite's automatic checkpoint (its WAL hook is
//! ours: it only counts the frames each commit leaves in the WAL), and a
//! thread with a connection of its own (`caja-hub-ckpt`) copies them into
//! the database file with `PRAGMA wal_checkpoint(PASSIVE)` once
//! [`WalPolicy::checkpoint_pages`] frames wait, and when the writer has
//! been idle for a second.
//!
//! Invariants. A checkpoint copies only frames of committed transactions
//! and SQLite keeps them in the WAL until the copy is synced, so a crash or
//! a failed write or fsync at any point of a checkpoint loses nothing a
//! commit acknowledged (WAL recovery at the next open). The WAL is bounded:
//! a passive checkpoint beside a writer that never pauses cannot rewind the
//! WAL (SQLite restarts it only when every frame is copied before the next
//! write transaction begins), so when a commit leaves
//! [`WalPolicy::limit_pages`] frames or more, the writer, after answering
//! its batch, completes the checkpoint itself (copying only what the thread
//! has not copied yet); the next write then starts the WAL over. A reader
//! holding an old snapshot may keep frames from being copied: the writer
//! then tries again after [`WalPolicy::checkpoint_pages`] more frames,
//! never at every commit. One checkpoint runs at a time (the thread's or
//! the writer's). [`Checkpointer::stop`] ends the thread after a last pass;
//! dropping it ends the thread without one.
//!
//! With [`WalPolicy::thread`] off, the writer runs every checkpoint itself,
//! after answering the batch that passed the threshold: the database's I/O
//! is then one thread's, in a fixed order, which the deterministic
//! simulation needs (its `hub_disk` fault fails the n-th write or fsync of
//! the hub's files). Under the fault-injecting VFS of test builds the
//! thread's connection goes through the shim like every other, so a failing
//! disk fails a checkpoint as it fails a commit (`storage::checkpointer_tests`).
//!
//! Kernel: imports only the SQL facade and the connection opener.

use crate::storage::db::Conn;
use rusqlite::wal::CheckpointMode;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// When the writer has committed nothing for this long, the thread copies
/// whatever frames wait, so an idle hub's WAL is checkpointed.
const IDLE: Duration = Duration::from_secs(1);

/// The longest wait after a failed checkpoint before the next try.
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// When and where the WAL is checkpointed (`wal_checkpoint_pages`,
/// `wal_limit_pages` and `wal_checkpoint_thread` of the hub's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPolicy {
    /// Frames waiting to be copied that start a checkpoint (SQLite's own
    /// automatic checkpoint uses 1,000).
    pub checkpoint_pages: u32,
    /// Frames in the WAL after a commit from which the writer completes the
    /// checkpoint itself (the WAL's bound, give or take one batch).
    pub limit_pages: u32,
    /// Checkpoints on a thread of their own (`false`: the writer runs them
    /// after answering its batch, one thread's I/O in a fixed order).
    pub thread: bool,
}

impl WalPolicy {
    /// The defaults: a pass per 1,000 frames, run by the writer after
    /// answering its batch (the thread measured slower on a 2-core machine:
    /// `docs/performance.md`); with the thread, the writer steps in at
    /// 16,000 frames (64 MiB of 4 KiB pages).
    pub const DEFAULT: WalPolicy = WalPolicy {
        checkpoint_pages: 1_000,
        limit_pages: 16_000,
        thread: false,
    };
}

impl Default for WalPolicy {
    fn default() -> WalPolicy {
        WalPolicy::DEFAULT
    }
}

/// What the checkpoints did since the store opened: load-independent
/// counts for the benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Checkpoints the thread ran (that found frames to copy).
    pub thread_passes: u64,
    /// Checkpoints the writer ran (past the limit, or every one without the
    /// thread).
    pub writer_passes: u64,
    /// Checkpoints that failed (a disk fault, a busy lock); retried later.
    pub failures: u64,
    /// Times the WAL started over from its first frame.
    pub restarts: u64,
    /// The most frames the WAL held after a commit.
    pub wal_frames_max: u64,
    /// Frames committed to the WAL (estimated across restarts).
    pub frames_committed: u64,
}

/// What the writer's WAL hook and the checkpoints share.
#[derive(Debug, Default)]
struct State {
    /// Frames in the WAL after the last commit.
    last_pages: u64,
    /// The WAL header's checkpoint sequence number after the last commit
    /// (SQLite bumps it each time the WAL starts over).
    wal_seq: Option<u32>,
    /// The last checkpoint copied every frame: the next commit may have
    /// started the WAL over.
    expect_restart: bool,
    /// Frames committed since the store opened.
    committed: u64,
    /// `committed` when the last successful checkpoint began.
    checked: u64,
    /// Frames the last checkpoint could not copy (a reader's snapshot).
    leftover: u64,
    /// `committed` when the writer last checkpointed past the limit.
    forced_at: Option<u64>,
    /// The thread was told to stop.
    stop: bool,
    /// The thread runs no checkpoint (test support).
    hold: bool,
    restarts: u64,
    wal_frames_max: u64,
}

impl State {
    fn pending(&self) -> u64 {
        self.committed.saturating_sub(self.checked) + self.leftover
    }
}

#[derive(Debug)]
struct Shared {
    policy: WalPolicy,
    /// The WAL file (`<database>-wal`), whose header the hook reads.
    wal_path: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
    /// One checkpoint at a time (the thread's or the writer's).
    pass: Mutex<()>,
    /// Set by the WAL hook: the writer checkpoints after its batch.
    writer_due: AtomicBool,
    thread_passes: AtomicU64,
    writer_passes: AtomicU64,
    failures: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few counters, consistent after any statement.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The WAL hook: a commit left `pages` frames in the WAL, whose header
    /// holds the checkpoint sequence number `seq` (when it could be read).
    fn committed(&self, pages: u64, seq: Option<u32>) {
        let wake = {
            let mut s = self.state();
            let restarted = match (seq, s.wal_seq) {
                (Some(now), Some(before)) => now != before,
                _ => pages < s.last_pages || s.expect_restart,
            };
            if seq.is_some() {
                s.wal_seq = seq;
            }
            let new = if restarted {
                pages
            } else {
                pages.saturating_sub(s.last_pages)
            };
            if restarted {
                s.restarts += 1;
                s.forced_at = None;
            }
            s.expect_restart = false;
            s.last_pages = pages;
            s.committed += new;
            s.wal_frames_max = s.wal_frames_max.max(pages);
            let ck = u64::from(self.policy.checkpoint_pages);
            if self.policy.thread {
                let over = pages >= u64::from(self.policy.limit_pages)
                    && s.forced_at.is_none_or(|at| s.committed - at >= ck);
                if over {
                    self.writer_due.store(true, Ordering::Relaxed);
                }
                s.pending() >= ck
            } else {
                if s.pending() >= ck {
                    self.writer_due.store(true, Ordering::Relaxed);
                }
                false
            }
        };
        if wake {
            self.wake.notify_one();
        }
    }

    /// One passive checkpoint on `conn`; `Err` names why it failed.
    fn checkpoint(&self, conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
        let _one = self
            .pass
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let began = self.state().committed;
        let result = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
        let mut s = self.state();
        match result {
            Ok((log, copied)) => {
                let (log, copied) = (
                    u64::try_from(log).unwrap_or(0),
                    u64::try_from(copied).unwrap_or(0),
                );
                s.checked = s.checked.max(began);
                s.leftover = log.saturating_sub(copied);
                // Every frame copied and none committed since: the next
                // write starts the WAL over (for when its header is unread).
                if log > 0 && log == copied && s.last_pages == log {
                    s.expect_restart = true;
                }
                Ok(())
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// The WAL's checkpoints for one SQLite database: the writer's side
/// ([`Checkpointer::attach`], [`Checkpointer::after_batch`]) and the thread.
#[derive(Debug)]
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the checkpoints of the database at `path` (the thread only if
    /// the policy asks for it; its connection is opened on the thread, so a
    /// database that cannot be opened fails the writer's open instead).
    pub fn start(path: &Path, policy: WalPolicy) -> Result<Checkpointer, std::io::Error> {
        let policy = WalPolicy {
            checkpoint_pages: policy.checkpoint_pages.max(1),
            limit_pages: policy.limit_pages.max(policy.checkpoint_pages.max(1)),
            thread: policy.thread,
        };
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let shared = Arc::new(Shared {
            policy,
            wal_path: PathBuf::from(wal_path),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            pass: Mutex::new(()),
            writer_due: AtomicBool::new(false),
            thread_passes: AtomicU64::new(0),
            writer_passes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        let thread = if policy.thread {
            let s = shared.clone();
            let path = path.to_path_buf();
            Some(
                std::thread::Builder::new()
                    .name("caja-hub-ckpt".into())
                    .spawn(move || run(&s, &path))?,
            )
        } else {
            None
        };
        Ok(Checkpointer {
            shared,
            thread: Mutex::new(thread),
        })
    }

    /// Makes `conn` (the writer's) report its commits here instead of
    /// checkpointing by itself: SQLite's automatic checkpoint is replaced by
    /// this hook (a connection has one WAL hook).
    pub fn attach(&self, conn: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let s = self.shared.clone();
        let mut wal: Option<std::fs::File> = None;
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            s.committed(
                u64::try_from(pages).unwrap_or(0),
                wal_seq(&s.wal_path, &mut wal),
            );
            Ok(())
        }))
    }

    /// Opens a read-write connection to the database at `path` with the
    /// hub's pragmas and [`Checkpointer::attach`]ed: the writer's (and a
    /// benchmark's baseline writer's).
    pub fn open_writer(&self, path: &Path) -> Result<Conn, rusqlite::Error> {
        let mut conn = crate::storage::connect::sqlite_connection(path)?;
        self.attach(&mut conn)?;
        Ok(Conn::from_sqlite(conn))
    }

    /// On the writer, after its batch was answered: completes the
    /// checkpoint when the last commit passed the limit (or, without the
    /// thread, the threshold). A failure is logged and counted; the frames
    /// stay in the WAL and are copied by a later checkpoint.
    pub fn after_batch(&self, conn: &Conn) {
        if !self.shared.writer_due.swap(false, Ordering::Relaxed) {
            return;
        }
        let Some(sqlite) = conn.sqlite() else {
            return;
        };
        {
            let mut s = self.shared.state();
            s.forced_at = Some(s.committed);
        }
        self.shared.writer_passes.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.shared.checkpoint(sqlite) {
            tracing::warn!(error = %e, "the writer's WAL checkpoint failed; retried later");
        }
    }

    /// What the checkpoints did so far.
    pub fn stats(&self) -> CheckpointStats {
        let s = self.shared.state();
        CheckpointStats {
            thread_passes: self.shared.thread_passes.load(Ordering::Relaxed),
            writer_passes: self.shared.writer_passes.load(Ordering::Relaxed),
            failures: self.shared.failures.load(Ordering::Relaxed),
            restarts: s.restarts,
            wal_frames_max: s.wal_frames_max,
            frames_committed: s.committed,
        }
    }

    /// Stops the thread after a last checkpoint of what waits, and waits
    /// for it (call after the writer stopped).
    pub fn stop(&self) {
        self.end(true);
    }

    fn end(&self, last_pass: bool) {
        {
            let mut s = self.shared.state();
            s.stop = true;
            if !last_pass {
                s.leftover = 0;
                s.checked = s.committed;
            }
        }
        self.shared.wake.notify_all();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Test support: forgets the largest WAL seen so far (after a test's
    /// setup, e.g. the migrations).
    #[cfg(any(test, feature = "testkit"))]
    pub fn testkit_reset_max(&self) {
        self.shared.state().wal_frames_max = 0;
    }

    /// Test support: the thread runs no checkpoint while `hold` is true
    /// (the writer's own, past the limit, still run).
    #[cfg(any(test, feature = "testkit"))]
    pub fn testkit_hold(&self, hold: bool) {
        self.shared.state().hold = hold;
        self.shared.wake.notify_all();
    }

    /// Test support: waits until the thread's checkpoints have copied what
    /// was committed before the call (or `timeout` passes); whether they did.
    #[cfg(any(test, feature = "testkit"))]
    pub fn testkit_wait_copied(&self, timeout: Duration) -> bool {
        let target = self.shared.state().committed;
        let start = std::time::Instant::now();
        loop {
            {
                let s = self.shared.state();
                if s.checked >= target && s.leftover == 0 {
                    return true;
                }
            }
            self.shared.wake.notify_one();
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.end(false);
    }
}

/// The thread: waits for frames to copy (or the writer to go idle), copies
/// them, and backs off after a failure.
fn run(shared: &Shared, path: &Path) {
    let mut conn: Option<rusqlite::Connection> = None;
    let mut backoff = Duration::ZERO;
    loop {
        let stop = {
            let mut s = shared.state();
            let mut deadline = std::time::Instant::now() + backoff.max(IDLE);
            loop {
                if s.stop {
                    break;
                }
                let now = std::time::Instant::now();
                if s.hold {
                    deadline = deadline.max(now + IDLE);
                } else if now >= deadline
                    || (backoff.is_zero()
                        && s.pending() >= u64::from(shared.policy.checkpoint_pages))
                {
                    break;
                }
                s = shared
                    .wake
                    .wait_timeout(s, deadline.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if s.pending() == 0 && !s.stop {
                backoff = Duration::ZERO;
                continue;
            }
            s.stop
        };
        if stop && shared.state().pending() == 0 {
            return;
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match checkpoint_connection(path) {
                Ok(c) => c,
                Err(e) => {
                    shared.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "the WAL checkpointer cannot open the database");
                    if stop {
                        return;
                    }
                    backoff = next_backoff(backoff);
                    continue;
                }
            },
        };
        shared.thread_passes.fetch_add(1, Ordering::Relaxed);
        match shared.checkpoint(&c) {
            Ok(()) => {
                backoff = Duration::ZERO;
                conn = Some(c);
            }
            Err(e) => {
                // What reached the disk is unknown: a new connection next
                // time (the frames are still in the WAL).
                tracing::warn!(error = %e, "a WAL checkpoint failed; retried later");
                backoff = next_backoff(backoff);
            }
        }
        if stop {
            return;
        }
    }
}

/// The checkpoint sequence number in the WAL's header (bytes 12–15, big
/// endian; SQLite's "WAL File Format"), read after a commit: it changes
/// exactly when the WAL started over. A read only; `None` if it fails.
fn wal_seq(path: &Path, file: &mut Option<std::fs::File>) -> Option<u32> {
    use std::os::unix::fs::FileExt;
    if file.is_none() {
        *file = std::fs::File::open(path).ok();
    }
    let mut b = [0u8; 4];
    match file.as_ref()?.read_exact_at(&mut b, 12) {
        Ok(()) => Some(u32::from_be_bytes(b)),
        Err(_) => {
            *file = None;
            None
        }
    }
}

fn next_backoff(b: Duration) -> Duration {
    (b * 2).clamp(Duration::from_millis(50), BACKOFF_CAP)
}

/// The thread's connection: the hub's pragmas (through the same opener as
/// every other, so a test build's fault-injecting VFS is under it too).
fn checkpoint_connection(path: &Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    crate::storage::connect::sqlite_connection(path)
}
