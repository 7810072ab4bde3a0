//! The migrator and the database settings on real files.

mod storage_fixture;

use std::time::{Duration, Instant};

use caja_node::db::{Db, DbError, BUSY_TIMEOUT_MS};
use caja_node::migrate::{self, MigrateError, Migration, MIGRATIONS, SCHEMA_VERSION};
use storage_fixture::raw;

fn versions(conn: &rusqlite::Connection) -> Vec<(u32, String)> {
    conn.prepare("SELECT version, name FROM schema_version ORDER BY version")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn tables(conn: &rusqlite::Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn a_fresh_database_is_migrated_to_the_current_version() {
    let dir = tempfile::tempdir().expect("dir");
    let db = Db::open(dir.path().join("n.sqlite3")).expect("open");
    assert_eq!(
        db.migration(),
        migrate::MigrationReport {
            from: 0,
            to: SCHEMA_VERSION
        }
    );
    let expected: Vec<(u32, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect();
    assert_eq!(versions(db.conn()), expected);
    assert_eq!(versions(db.conn())[0], (1, "journal".to_owned()));
    let tables = tables(db.conn());
    for t in [
        "checkpoints",
        "device",
        "journal",
        "ops",
        "schema_version",
        "sync_state",
    ] {
        assert!(
            tables.contains(&t.to_owned()),
            "{t} missing from {tables:?}"
        );
    }
}

#[test]
fn reopening_applies_nothing_again() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("n.sqlite3");
    drop(Db::open(&path).expect("first"));
    let db = Db::open(&path).expect("second");
    assert_eq!(
        db.migration(),
        migrate::MigrationReport {
            from: SCHEMA_VERSION,
            to: SCHEMA_VERSION
        }
    );
    assert_eq!(versions(db.conn()).len(), MIGRATIONS.len());
}

#[test]
fn a_database_from_a_newer_caja_node_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("n.sqlite3");
    // A newer binary's migration list: ours plus a version 2.
    let future = Migration {
        version: SCHEMA_VERSION + 1,
        name: "future",
        sql: "CREATE TABLE future_things (id INTEGER PRIMARY KEY) STRICT;",
    };
    let mut newer: Vec<Migration> = MIGRATIONS.to_vec();
    newer.push(future);
    {
        let mut conn = raw(&path);
        migrate::migrate_with(&mut conn, &newer).expect("newer binary migrates");
    }
    let logical = |path: &std::path::Path| {
        let conn = raw(path);
        (
            storage_fixture::dump(&conn, "sqlite_schema"),
            storage_fixture::dump(&conn, "schema_version"),
        )
    };
    let before = logical(&path);
    let err = Db::open(&path).expect_err("must refuse");
    match &err {
        DbError::Migrate {
            path: p,
            source: MigrateError::TooNew { found, known },
        } => {
            assert_eq!(p, &path);
            assert_eq!((*found, *known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!(
            "schema version {}, newer than the {} this caja-node knows",
            SCHEMA_VERSION + 1,
            SCHEMA_VERSION
        )),
        "{message}"
    );
    assert!(logical(&path) == before, "refusal changes nothing");
}

#[test]
fn an_edited_migration_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("n.sqlite3");
    drop(Db::open(&path).expect("open"));
    raw(&path)
        .execute(
            "UPDATE schema_version SET checksum = ?1 WHERE version = 1",
            [caja_shared::digest::Hash256::of(b"other sql").to_hex()],
        )
        .expect("edit");
    let err = Db::open(&path).expect_err("refused");
    assert!(
        matches!(
            err,
            DbError::Migrate {
                source: MigrateError::Mismatch { version: 1, .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_failing_migration_leaves_the_previous_version_intact() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("n.sqlite3");
    drop(Db::open(&path).expect("open"));
    let broken = Migration {
        version: SCHEMA_VERSION + 1,
        name: "broken",
        sql:
            "CREATE TABLE half_done (id INTEGER PRIMARY KEY); INSERT INTO no_such_table VALUES (1);",
    };
    let mut list: Vec<Migration> = MIGRATIONS.to_vec();
    list.push(broken);
    let mut conn = raw(&path);
    let err = migrate::migrate_with(&mut conn, &list).expect_err("fails");
    assert!(
        matches!(err, MigrateError::Apply { version, .. } if version == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert_eq!(
        migrate::current_version(&conn).expect("read"),
        SCHEMA_VERSION
    );
    assert!(!tables(&conn).contains(&"half_done".to_owned()));
}

#[test]
fn processes_opening_a_fresh_database_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("n.sqlite3");
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || Db::open(&path).map(|db| db.migration().to))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread").expect("open"), SCHEMA_VERSION);
    }
    assert_eq!(versions(&raw(&path)).len(), MIGRATIONS.len());
}

#[test]
fn connections_run_in_wal_with_full_sync_foreign_keys_and_a_busy_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let db = Db::open(dir.path().join("n.sqlite3")).expect("open");
    let get = |p: &str| -> String {
        db.conn()
            .pragma_query_value(None, p, |r| {
                r.get::<_, rusqlite::types::Value>(0).map(|v| match v {
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    other => format!("{other:?}"),
                })
            })
            .expect("pragma")
    };
    assert_eq!(get("journal_mode"), "wal");
    assert_eq!(get("synchronous"), "2");
    assert_eq!(get("foreign_keys"), "1");
    assert_eq!(get("busy_timeout"), BUSY_TIMEOUT_MS.to_string());
}

#[test]
fn an_unopenable_path_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("missing-dir").join("n.sqlite3");
    let err = Db::open(&path).expect_err("no such directory");
    assert!(matches!(err, DbError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_second_writer_waits_for_the_first_instead_of_failing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("n.sqlite3");
    let mut a = Db::open(&path).expect("a");
    let tx = a.write_tx().expect("a holds the write lock");
    tx.execute("UPDATE sync_state SET updated_at_ms = 1", [])
        .expect("write");
    let path_b = path.clone();
    let b = std::thread::spawn(move || {
        let mut b = Db::open(&path_b).expect("b opens while a writes");
        let started = Instant::now();
        let tx = b.write_tx().expect("b gets the lock once a commits");
        tx.execute("UPDATE sync_state SET updated_at_ms = 2", [])
            .expect("write");
        tx.commit().expect("commit");
        started.elapsed()
    });
    std::thread::sleep(Duration::from_millis(300));
    tx.commit().expect("a commits");
    let waited = b.join().expect("thread");
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    let v: i64 = a
        .conn()
        .query_row("SELECT updated_at_ms FROM sync_state", [], |r| r.get(0))
        .expect("read");
    assert_eq!(v, 2);
}
