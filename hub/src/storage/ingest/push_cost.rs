//! What a push costs the writer in statements (on PostgreSQL: round trips),
//! counted with [`Conn::statements`] on the benchmark's workload: four
//! registers of one store pushing batches of 500 events of a cashier's day,
//! cross-register references two rounds back, each push its own write
//! transaction (`BEGIN` and `COMMIT` counted). The counts are load-independent:
//! they pin the batched ingest (a regression to per-row statements fails
//! here) and `docs/performance.md` quotes them.
//!
//! Invariant: measures only; the ingest's correctness is pinned by the sync,
//! conflict and simulation tests.

use caja_shared::clock::{Clock, ManualClock};
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use std::sync::Arc;

use super::push::push;
use crate::auth::SignedRequest;
use crate::ingest;
use crate::storage::connect::open_connection;
use crate::storage::db::{Conn, Database};
use crate::storage::devices::{create_token, enroll};
use crate::storage::stores::create_store;
use crate::storage::tx_cache::TxCache;
use crate::storage::writer::{Env, StorageConfig};

/// Registers, batches per register and events per batch.
const REGISTERS: usize = 4;
const ROUNDS: usize = 3;
const BATCH: usize = 500;

/// Most statements a push of [`BATCH`] events may take, per event, in
/// thousandths: the batched ingest takes about 1.30 (2.06 while each
/// projection row was written alone, a debt's three reads and a voided
/// sale's two ran apart, and a conflict's events were inserted one by one;
/// 3.02 while each sale's
/// duplicate-fiscal-number count and returns look-up ran alone, before they
/// were read ahead; 11.2 when an event's row, its `applied` row, its audit
/// entry and tree nodes were each written alone, and a sale's price history
/// was read again for every sale).
const MOST_MILLI_PER_EVENT: u64 = 1_450;

/// Pushes the workload through [`push`] on `conn`; returns the statements
/// of every push (the first round's are left out: they enroll nothing but
/// open shifts, as the benchmark's warm-up does).
fn measure(conn: &Conn, database: Database) -> Vec<u64> {
    crate::storage::migrate::migrate(conn).unwrap();
    let clock = Arc::new(ManualClock::new(1_763_880_000_000));
    let mut env = Env {
        clock: clock.clone(),
        rng: Box::new(SeededRandom::new(1)),
        cfg: StorageConfig {
            database: database.clone(),
            queue_capacity: 1,
            max_batch_jobs: 1,
            read_connections: 1,
            key_grace_ms: 1,
            rate_limit: crate::ratelimit::RateLimit {
                burst: 100_000,
                per_minute: 1_000_000,
            },
            caps: crate::caps::Caps::default(),
        },
        tx: TxCache::new(database.dialect()),
    };
    env.cfg.caps.push_rate_limit = crate::ratelimit::RateLimit {
        burst: 1_000_000_000,
        per_minute: 1_000_000_000,
    };
    conn.begin_write().unwrap();
    let st = create_store(conn, &mut env, "s", "tz").unwrap();
    let mut registers = Vec::new();
    for i in 0..REGISTERS {
        let (tok, _) = create_token(conn, &mut env, st.store, &format!("d{i}"), 1_000_000)
            .unwrap()
            .unwrap();
        let e = enroll(conn, &mut env, &tok).unwrap().unwrap();
        registers.push(crate::workload::Register::new(
            e.device,
            e.key.clone(),
            e.key_id.clone(),
        ));
    }
    conn.commit().unwrap();
    let mut w = crate::workload::Workload::new(5, st.store, registers);
    let mut counts = Vec::new();
    for round in 0..ROUNDS {
        w.settle_lagged(2);
        for r in 0..REGISTERS {
            let evs: Vec<Event> = (0..BATCH).map(|_| w.next(r, clock.now_ms())).collect();
            let reg = &w.registers[r];
            let last = evs.last().unwrap();
            let cp = caja_shared::checkpoint::Checkpoint::sign(
                &reg.key,
                reg.key_id.clone(),
                reg.device,
                last.seq(),
                last.hash(),
            );
            let body = caja_shared::push::push_body(reg.device, &evs, &[], &cp, 0).unwrap();
            let h = caja_shared::request::SignedHeaders::sign(
                &reg.key,
                reg.device,
                reg.key_id.clone(),
                "POST",
                "/v1/sync/push",
                &body,
                clock.now_ms(),
                &mut SeededRandom::new(u64::try_from(clock.now_ms()).unwrap()),
            );
            let req = SignedRequest {
                method: "POST".into(),
                path_and_query: "/v1/sync/push".into(),
                headers: crate::auth::AuthHeaders {
                    device: h.device,
                    key_id: h.key_id,
                    timestamp_ms: h.timestamp_ms,
                    nonce: h.nonce,
                    signature: h.signature.to_hex(),
                },
                body: body.clone().into(),
            };
            let record = crate::storage::device_auth::load_device(conn, reg.device).unwrap();
            let req = crate::auth::admit(req, record.as_ref(), clock.now_ms()).unwrap();
            let parsed = ingest::parse_push(&body, 1000);
            let before = conn.statements();
            env.tx.begin();
            conn.begin_write().unwrap();
            let out = push(conn, &mut env, &req, &parsed).unwrap().unwrap();
            conn.commit().unwrap();
            assert_eq!(out.accepted, BATCH);
            if round > 0 {
                counts.push(conn.statements() - before);
            }
            clock.advance(10);
        }
    }
    counts
}

fn check(dialect: &str, counts: &[u64]) {
    let total: u64 = counts.iter().sum();
    let events = u64::try_from(counts.len() * BATCH).unwrap();
    let milli = total * 1000 / events;
    println!(
        "{dialect}: statements per push of {BATCH} events: {counts:?}; per event {}.{:03}",
        milli / 1000,
        milli % 1000
    );
    assert!(
        milli <= MOST_MILLI_PER_EVENT,
        "{dialect}: {milli} statements per thousand events, at most {MOST_MILLI_PER_EVENT}"
    );
}

#[test]
fn a_push_takes_few_statements_per_event_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let conn = open_connection(&path).unwrap();
    let counts = measure(&conn, Database::Sqlite(path));
    check("sqlite", &counts);
}

/// Also, when the test server runs with
/// `CAJA_TESTPG_SETTINGS=shared_preload_libraries=pg_stat_statements`, prints
/// where a push's round trips and server time go, statement by statement
/// (run with `--nocapture`).
#[test]
fn a_push_takes_few_round_trips_per_event_on_postgres() {
    let Some(url) = crate::testpg::fresh_database() else {
        return;
    };
    let conn = Conn::connect_postgres(&url).unwrap();
    let stats =
        std::env::var("CAJA_TESTPG_SETTINGS").is_ok_and(|s| s.contains("pg_stat_statements"));
    if stats {
        conn.execute_batch(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
        )
        .unwrap();
    }
    let counts = measure(&conn, Database::Postgres(url));
    check("postgres", &counts);
    if stats {
        print_server_time(&conn);
    }
}

/// The staged audit entries moved by one sequencer round, then the
/// statements by server time (`pg_stat_statements`).
fn print_server_time(conn: &Conn) {
    conn.begin_write().unwrap();
    let moved = crate::storage::audit_log::integrate_staged(conn, 1).unwrap();
    conn.commit().unwrap();
    println!("sequenced {moved} staged entries");
    let mut stmt = conn
        .prepare(
            "SELECT calls, CAST(total_exec_time * 1000 AS BIGINT), rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 150)
             FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC LIMIT 60",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    println!("calls\ttime_us\trows\tquery");
    while let Some(r) = rows.next().unwrap() {
        let (calls, us, n, q): (i64, i64, i64, String) = (
            r.get(0).unwrap(),
            r.get(1).unwrap(),
            r.get(2).unwrap(),
            r.get(3).unwrap(),
        );
        println!("{calls}\t{us}\t{n}\t{q}");
    }
}
