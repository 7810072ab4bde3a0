//! The checkpointer against a real store on a real SQLite file: the WAL
//! stays bounded with the thread, with the writer stepping in at the limit,
//! and without the thread; a disk fault that hits a checkpoint loses
//! nothing acknowledged and the checkpointer goes on after it.

use crate::ratelimit::RateLimit;
use crate::storage::checkpointer::{CheckpointStats, WalPolicy};
use crate::storage::db::Database;
use crate::storage::writer::{Storage, StorageConfig};
use crate::system::{OsRandom, SystemClock};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A row of this size is five 4 KiB pages of overflow: every commit of
/// one row writes about six frames.
const ROW_BYTES: usize = 5 * 4000;

fn store(path: &Path, wal: WalPolicy) -> Storage {
    let cfg = StorageConfig {
        database: Database::Sqlite(path.to_path_buf()),
        queue_capacity: 64,
        max_batch_jobs: 8,
        read_connections: 1,
        key_grace_ms: 0,
        rate_limit: RateLimit {
            burst: 10,
            per_minute: 10,
        },
        caps: crate::caps::Caps::DEFAULT,
    };
    let s = Storage::open_with_wal(cfg, wal, Arc::new(SystemClock), Box::new(OsRandom::new()))
        .expect("store");
    rt().block_on(s.write(|conn, _| {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS ckpt_rows (n INTEGER PRIMARY KEY, b BLOB)")?;
        Ok(())
    }))
    .expect("table");
    // The migrations' frames out of the WAL, so the test counts its own.
    let c = rusqlite::Connection::open(path).expect("open");
    let start = std::time::Instant::now();
    while c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("checkpoint")
        != 0
    {
        assert!(start.elapsed() < Duration::from_secs(10), "truncated");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(c);
    s.testkit_checkpoints().expect("SQLite").testkit_reset_max();
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Writes rows `from..to`, one acknowledged job each, in order.
fn write_rows(s: &Storage, from: i64, to: i64) {
    let rt = rt();
    for n in from..to {
        rt.block_on(s.write(move |conn, _| {
            conn.execute(
                "INSERT INTO ckpt_rows (n, b) VALUES ($1, $2)",
                crate::sql_params![n, vec![u8::try_from(n % 251).unwrap_or(0); ROW_BYTES]],
            )?;
            Ok(())
        }))
        .expect("acknowledged");
    }
}

/// The rows a fresh connection finds (after WAL recovery), each whole,
/// and the database's integrity.
fn rows_found(path: &Path) -> i64 {
    let c = rusqlite::Connection::open(path).expect("reopen");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(ok, "ok", "the database is whole");
    let bad: i64 = c
        .query_row(
            "SELECT count(*) FROM ckpt_rows WHERE length(b) != ?1 OR substr(b, 1, 1) != substr(b, ?1, 1)",
            [i64::try_from(ROW_BYTES).unwrap_or(0)],
            |r| r.get(0),
        )
        .expect("rows");
    assert_eq!(bad, 0, "every row whole");
    c.query_row("SELECT count(*) FROM ckpt_rows", [], |r| r.get(0))
        .expect("count")
}

fn stats(s: &Storage) -> CheckpointStats {
    s.wal_checkpoints().expect("SQLite")
}

#[test]
fn the_thread_checkpoints_beside_the_writer_and_the_wal_stays_bounded() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("hub.db");
    let wal = WalPolicy {
        checkpoint_pages: 60,
        limit_pages: 10_000,
        thread: true,
    };
    let s = store(&path, wal);
    write_rows(&s, 0, 300);
    assert!(
        s.testkit_checkpoints()
            .expect("SQLite")
            .testkit_wait_copied(Duration::from_secs(10)),
        "the thread copied every committed frame"
    );
    write_rows(&s, 300, 320);
    let st = stats(&s);
    s.shutdown();
    // ~1,900 frames committed; the thread copied them in passes, the WAL
    // started over, and the writer never had to step in.
    assert!(st.frames_committed > 1_500, "{st:?}");
    assert!(st.thread_passes >= 3, "{st:?}");
    assert!(st.restarts >= 1, "{st:?}");
    assert_eq!(st.writer_passes, 0, "{st:?}");
    assert_eq!(rows_found(&path), 320);
}

#[test]
fn past_the_limit_the_writer_completes_the_checkpoint_itself() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("hub.db");
    let wal = WalPolicy {
        checkpoint_pages: 50,
        limit_pages: 200,
        thread: true,
    };
    let s = store(&path, wal);
    // The thread is held: only the writer can bound the WAL.
    s.testkit_checkpoints().expect("SQLite").testkit_hold(true);
    let before = stats(&s);
    write_rows(&s, 0, 300);
    let mut st = stats(&s);
    st.thread_passes -= before.thread_passes;
    st.writer_passes -= before.writer_passes;
    st.restarts -= before.restarts;
    s.testkit_checkpoints().expect("SQLite").testkit_hold(false);
    s.shutdown();
    assert!(st.frames_committed > 1_500, "{st:?}");
    assert_eq!(st.thread_passes, 0, "{st:?}");
    assert!(st.writer_passes >= 5, "{st:?}");
    assert!(st.restarts >= 5, "{st:?}");
    // The limit, give or take one commit (a job writes 7 to 13 frames).
    assert!(st.wal_frames_max < 200 + 16, "{st:?}");
    assert_eq!(rows_found(&path), 300);
}

#[test]
fn without_the_thread_the_writer_checkpoints_at_the_threshold() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("hub.db");
    let wal = WalPolicy {
        checkpoint_pages: 100,
        limit_pages: 100,
        thread: false,
    };
    let s = store(&path, wal);
    write_rows(&s, 0, 200);
    let st = stats(&s);
    s.shutdown();
    assert_eq!(st.thread_passes, 0, "{st:?}");
    assert!(st.writer_passes >= 8, "{st:?}");
    assert!(st.wal_frames_max < 100 + 16, "{st:?}");
    assert_eq!(rows_found(&path), 200);
}

/// A disk fault under the thread's checkpoint (each kind, one call): the
/// pass fails, nothing acknowledged is lost (a fresh connection finds every
/// row whole, before and after the checkpoint is redone), and the thread
/// copies everything on a later pass.
#[test]
fn a_disk_fault_in_a_checkpoint_loses_nothing_and_the_thread_goes_on() {
    for kind in caja_faultvfs::KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("hub.db");
        let wal = WalPolicy {
            checkpoint_pages: 1_000_000,
            limit_pages: 1_000_000,
            thread: true,
        };
        let s = store(&path, wal);
        let ck = s.testkit_checkpoints().expect("SQLite");
        ck.testkit_hold(true);
        write_rows(&s, 0, 40);
        // Only the thread writes the files from here: the writer is idle.
        let fault = caja_faultvfs::Fault::parse(&format!("{kind}:1:1")).expect("spec");
        let armed = caja_faultvfs::arm(fault, Some(dir.path()), None).expect("arm");
        ck.testkit_hold(false);
        let copied = ck.testkit_wait_copied(Duration::from_secs(20));
        let seen = armed.seen();
        armed.disarm();
        let st = stats(&s);
        assert!(seen >= 1, "{kind}: the checkpoint reached the fault");
        assert_eq!(st.failures, 1, "{kind}: one pass failed: {st:?}");
        assert!(copied, "{kind}: a later pass copied everything: {st:?}");
        assert!(st.thread_passes >= 2, "{kind}: {st:?}");
        write_rows(&s, 40, 45);
        s.shutdown();
        assert_eq!(rows_found(&path), 45, "{kind}");
    }
}

/// The same fault, and the hub dies before any later pass (no clean
/// stop): the failed checkpoint's torn page or unsynced copy is redone
/// from the WAL at the next open.
#[test]
fn a_checkpoint_that_failed_is_redone_from_the_wal_after_a_crash() {
    for kind in caja_faultvfs::KINDS {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("hub.db");
        let wal = WalPolicy {
            checkpoint_pages: 1_000_000,
            limit_pages: 1_000_000,
            thread: true,
        };
        let s = store(&path, wal);
        let ck = s.testkit_checkpoints().expect("SQLite");
        ck.testkit_hold(true);
        write_rows(&s, 0, 40);
        let fault = caja_faultvfs::Fault::parse(&format!("{kind}:1")).expect("spec");
        let armed = caja_faultvfs::arm(fault, Some(dir.path()), None).expect("arm");
        ck.testkit_hold(false);
        let start = std::time::Instant::now();
        while stats(&s).failures == 0 {
            assert!(start.elapsed() < Duration::from_secs(20), "{kind}: no pass");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Every later pass fails too until the process is gone.
        drop(s);
        armed.disarm();
        assert_eq!(rows_found(&path), 40, "{kind}");
        let c = rusqlite::Connection::open(&path).expect("reopen");
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        drop(c);
        assert_eq!(rows_found(&path), 40, "{kind}: after the checkpoint redone");
    }
}
