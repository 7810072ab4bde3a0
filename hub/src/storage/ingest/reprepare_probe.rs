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
    for chunk in src.split("prepare_cached(").skip(1) {
        let Some(start) = chunk.find('"') else {
            continue;
        };
        let rest = &chunk[start + 1..];
        let Some(end) = rest.find("\")").or_else(|| rest.find("\",")) else {
            continue;
        };
        let sql = rest[..end].replace("\\n", "\n");
        if sql.contains('{') {
            continue;
        }
        if let Ok(mut stmt) = conn.prepare_cached(&sql) {
            let (rp, runs) = stmt.sqlite_status().unwrap();
            assert!(rp <= 5, "re-prepared {rp} times in {runs} steps: {sql}");
            n += 1;
        }
    }
    assert!(n > 30, "only {n} statements found in the source");
}
