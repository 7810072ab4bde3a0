//! Statements SQLite re-prepares at each new binding cost a parse per call (a
//! partial index or a join planned against table sizes did so): this pins that
//! none of the push path's statements is re-prepared more than a few times.
//!
//! The statements checked are every `prepare_cached` of the storage layer
//! (see `storage_sources`).

use caja_shared::event::Event;

use super::push::push;
use crate::auth::SignedRequest;
use crate::ingest;
use crate::storage::connect::open_connection;
use crate::storage::db::Value;
use crate::storage::devices::{create_token, enroll};
use crate::storage::stores::create_store;
use crate::storage::tx_cache::TxCache;
use crate::storage::writer::Env;
use crate::storage::writer::StorageConfig;
use caja_shared::clock::{Clock, ManualClock};
use caja_shared::entropy::SeededRandom;
use std::sync::Arc;

/// The source of every file of the storage layer, read at test time: every
/// statement of the layer is checked (one not run by the push path is never
/// re-prepared), and a file added later is covered without a list to keep.
fn storage_sources() -> String {
    fn walk(dir: &std::path::Path, out: &mut String) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = String::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/storage"),
        &mut out,
    );
    out
}

#[test]
fn hot_statements_are_not_reprepared_at_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let conn = open_connection(&path).unwrap();
    crate::storage::migrate::migrate(&conn).unwrap();
    let clock = Arc::new(ManualClock::new(1_763_880_000_000));
    let mut env = Env {
        clock: clock.clone(),
        rng: Box::new(SeededRandom::new(1)),
        cfg: StorageConfig {
            database: crate::storage::db::Database::Sqlite(path.clone()),
            queue_capacity: 1,
            max_batch_jobs: 1,
            read_connections: 1,
            key_grace_ms: 1,
            rate_limit: crate::ratelimit::RateLimit {
                burst: 1000,
                per_minute: 100000,
            },
            caps: crate::caps::Caps::default(),
        },
        tx: TxCache::default(),
    };
    conn.execute_batch("BEGIN").unwrap();
    let st = create_store(&conn, &mut env, "s", "tz").unwrap();
    let (tok, _) = create_token(&conn, &mut env, st.store, "d", 1_000_000)
        .unwrap()
        .unwrap();
    let e = enroll(&conn, &mut env, &tok).unwrap().unwrap();
    let reg = crate::workload::Register::new(e.device, e.key.clone(), e.key_id.clone());
    let mut w = crate::workload::Workload::new(3, st.store, vec![reg]);
    for _ in 0..4 {
        let evs: Vec<Event> = (0..50).map(|_| w.next(0, clock.now_ms())).collect();
        let r = &w.registers[0];
        let last = evs.last().unwrap();
        let cp = caja_shared::checkpoint::Checkpoint::sign(
            &r.key,
            r.key_id.clone(),
            r.device,
            last.seq(),
            last.hash(),
        );
        let body = caja_shared::push::push_body(r.device, &evs, &[], &cp, 0).unwrap();
        let h = caja_shared::request::SignedHeaders::sign(
            &r.key,
            r.device,
            r.key_id.clone(),
            "POST",
            "/p",
            &body,
            clock.now_ms(),
            &mut SeededRandom::new(u64::try_from(clock.now_ms()).unwrap()),
        );
        let req = SignedRequest {
            method: "POST".into(),
            path_and_query: "/p".into(),
            headers: crate::auth::AuthHeaders {
                device: h.device,
                key_id: h.key_id,
                timestamp_ms: h.timestamp_ms,
                nonce: h.nonce,
                signature: h.signature.to_hex(),
            },
            body: body.clone().into(),
        };
        let record = crate::storage::device_auth::load_device(&conn, r.device).unwrap();
        let req = crate::auth::admit(req, record.as_ref(), clock.now_ms()).unwrap();
        let parsed = ingest::parse_push(&body, 1000);
        let out = push(&conn, &mut env, &req, &parsed).unwrap().unwrap();
        assert_eq!(out.accepted, 50);
        clock.advance(10);
    }
    let src = storage_sources();
    let mut n = 0;
    let mut through_rows = 0;
    for (sql, via_rows) in statements(&src) {
        if let Ok(mut stmt) = conn.prepare_cached(&sql) {
            let (rp, runs) = stmt.sqlite_status().unwrap();
            assert!(rp <= 5, "re-prepared {rp} times in {runs} steps: {sql}");
            n += 1;
            through_rows += usize::from(via_rows);
        }
    }
    assert!(n > 30, "only {n} statements found in the source");
    assert!(
        through_rows > 20,
        "only {through_rows} statements run through facts::table::rows found"
    );
}

/// The fact families' reads (`facts::table::rows`) run few times in a
/// short push, so each is run here ten times with new text bindings, the
/// way the push path binds ids: none may be re-prepared at every binding
/// (the voids of a debt's sale, a join, was: SQLite weighed its bound id).
#[test]
fn fact_reads_are_not_reprepared_at_each_new_binding() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_connection(&dir.path().join("x.db")).unwrap();
    crate::storage::migrate::migrate(&conn).unwrap();
    let mut n = 0;
    for (sql, _) in statements(&storage_sources())
        .into_iter()
        .filter(|(_, via_rows)| *via_rows)
    {
        let arity = (1..=9)
            .take_while(|i| sql.contains(&format!("${i}")))
            .count();
        for round in 0..10 {
            let values: Vec<Value> = (0..arity)
                .map(|i| Value::Text(format!("id-{round}-{i}")))
                .collect();
            let mut stmt = conn.prepare_cached(&sql).unwrap();
            let mut rs = stmt.query(values).unwrap();
            while rs.next().unwrap().is_some() {}
        }
        let (rp, _) = conn.prepare_cached(&sql).unwrap().sqlite_status().unwrap();
        assert!(rp <= 1, "re-prepared {rp} times in 10 bindings: {sql}");
        n += 1;
    }
    assert!(n > 20, "only {n} fact reads found in the source");
}

/// The SQL literals of the layer's cached statements: the first string
/// argument of every `prepare_cached(…)`, and the SQL of every
/// `rows(conn, "…", …)` (the fact families' reads, cached by
/// `facts::table::rows`), with whether it came from the latter. Text built
/// with `format!` (holding `{`) is left out.
fn statements(src: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for chunk in src.split("prepare_cached(").skip(1) {
        let Some(start) = chunk.find('"') else {
            continue;
        };
        if let Some(sql) = literal(&chunk[start + 1..]) {
            out.push((sql, false));
        }
    }
    for chunk in src.split("rows(").skip(1) {
        let Some(rest) = chunk.trim_start().strip_prefix("conn,") else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some(sql) = literal(rest) {
            out.push((sql, true));
        }
    }
    out
}

/// The string literal `rest` starts inside of, up to its closing `")` or
/// `",`; `None` for text built with `format!`.
fn literal(rest: &str) -> Option<String> {
    let end = rest.find("\")").or_else(|| rest.find("\","))?;
    let sql = rest[..end].replace("\\n", "\n");
    (!sql.contains('{')).then_some(sql)
}
