//! The SQL store's incremental conflict detection (added candidates,
//! re-decided stale prices, widened subjects) against the pure model, over
//! histories with voids, debt payments, price changes and resolutions applied
//! in random causal orders: the conflict rows and the projections must be the
//! same whatever the order (DESIGN invariant 5), and equal to the model's.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use caja_shared::entropy::{RandomSource, SeededRandom};

use std::borrow::Cow;

use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use caja_shared::ids::EventId;

use super::events::insert_event;
use super::index::SqlIndex;
use crate::ingest::{self, Candidate, PushedEvent};
use crate::projection::tests::conflicts::history;
use crate::projection::tests::STORE;
use crate::projection::{Origin, Projections};
use crate::storage::connect::open_connection;
use crate::storage::db::{params, Conn};
use crate::storage::facts::load::load_projections;
use crate::storage::tx_cache::TxCache;

const HUB_DEVICE: &str = "01935f4e-8a00-7000-8000-0000000000b1";

type Rows = BTreeMap<String, (String, String, BTreeSet<String>)>;

fn conflict_rows(conn: &Conn) -> Rows {
    let mut out = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT conflict_id, reason, subject FROM conflicts")
        .unwrap();
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, reason, subject) in rows {
        let events = crate::storage::conflicts::candidates(conn, &id)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        out.insert(id, (reason, subject, events));
    }
    out
}

/// Applies the history through the SQL causal gate in an order picked by
/// `order_seed`; returns the conflict rows and the projections' digest.
fn apply(chains: &[Vec<(Event, Origin)>], order_seed: u64) -> (Rows, Hash256, Projections) {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_connection(&dir.path().join("x.db")).unwrap();
    apply_on(&conn, chains, order_seed)
}

/// [`apply`] on a given (empty) database.
fn apply_on(
    conn: &Conn,
    chains: &[Vec<(Event, Origin)>],
    order_seed: u64,
) -> (Rows, Hash256, Projections) {
    crate::storage::migrate::migrate(conn).unwrap();
    conn.execute(
        "INSERT INTO stores (store_id, name, time_zone, hub_device, created_at_ms)
         VALUES ($1, 's', 'America/Santo_Domingo', $2, 0)",
        params![STORE, HUB_DEVICE],
    )
    .unwrap();
    let mut rng = SeededRandom::new(order_seed);
    let mut queues: Vec<VecDeque<&(Event, Origin)>> =
        chains.iter().map(|c| c.iter().collect()).collect();
    let mut previous: HashMap<EventId, EventId> = HashMap::new();
    for c in chains {
        for pair in c.windows(2) {
            previous.insert(pair[1].0.id(), pair[0].0.id());
        }
    }
    let mut tx = TxCache::new(conn.dialect());
    let mut now = 1_763_880_000_000;
    loop {
        let live: Vec<usize> = (0..queues.len())
            .filter(|i| !queues[*i].is_empty())
            .collect();
        if live.is_empty() {
            break;
        }
        let q = live[usize::try_from(rng.next_u64() % live.len() as u64).unwrap()];
        let (e, origin) = queues[q].pop_front().unwrap();
        now += 1;
        conn.begin_write().unwrap();
        tx.begin();
        {
            let t = conn;
            let mut index = SqlIndex::new(t, now, &mut tx);
            let row = insert_event(t, e, now).unwrap();
            index.known.insert(
                e.id(),
                (
                    row,
                    Cow::Owned(PushedEvent {
                        event: e.clone(),
                        body: e.body().unwrap(),
                    }),
                    *origin,
                ),
            );
            ingest::admit(
                &mut index,
                &Candidate {
                    id: e.id(),
                    deps: &e.envelope().deps,
                    previous: previous.get(&e.id()).copied(),
                },
            )
            .unwrap();
        }
        conn.commit().unwrap();
    }
    let held: i64 = conn
        .query_row("SELECT COUNT(*) FROM held", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 0);
    // (`digest` also covers when each conflict was detected: arrival order.)
    let p = load_projections(conn).unwrap();
    (conflict_rows(conn), p.digest(), p)
}

#[test]
fn the_sql_store_finds_the_conflicts_of_the_set_in_any_order() {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for seed in [1u64, 2, 3] {
        let chains = history(seed, 90);
        let (rows_a, digest_a, p) = apply(&chains, seed * 11);
        let (rows_b, digest_b, _) = apply(&chains, seed * 13 + 5);
        assert_eq!(rows_a, rows_b, "seed {seed}");
        assert_eq!(digest_a, digest_b, "seed {seed}");
        // The rows are the pure model's conflicts over the same facts.
        let model: Rows = p
            .conflicts()
            .into_iter()
            .map(|c| {
                (
                    c.conflict_id.to_string(),
                    (
                        c.reason.as_str().to_owned(),
                        c.subject.key(),
                        c.events.iter().map(ToString::to_string).collect(),
                    ),
                )
            })
            .collect();
        assert_eq!(rows_a, model, "seed {seed}");
        let reasons: BTreeSet<&str> = rows_a.values().map(|r| r.0.as_str()).collect();
        assert!(reasons.contains("payment_on_voided_debt"), "{reasons:?}");
        assert!(reasons.contains("stale_price"), "{reasons:?}");
        seen.extend(rows_a.values().map(|r| r.0.clone()));
    }
    // Over the seeds: returns (by line and without the original) and store
    // credit spent at several registers were exercised too.
    for want in [
        "over_return",
        "store_credit_overdrawn",
        "return_original_unknown",
    ] {
        assert!(seen.contains(want), "no {want} in {seen:?}");
    }
}

/// The same histories on PostgreSQL (the ported statements of returns,
/// unknown originals, store credit, voids and price changes): the same
/// conflict rows and projections as on SQLite.
#[test]
fn on_postgres_the_sql_store_finds_the_same_conflicts_as_on_sqlite() {
    for seed in [1u64, 2] {
        let Some(url) = crate::testpg::fresh_database() else {
            return;
        };
        let chains = history(seed, 90);
        let (rows_sqlite, digest_sqlite, _) = apply(&chains, seed * 11);
        let conn = Conn::connect_postgres(&url).unwrap();
        let (rows_pg, digest_pg, _) = apply_on(&conn, &chains, seed * 13 + 5);
        assert_eq!(rows_pg, rows_sqlite, "seed {seed}");
        assert_eq!(digest_pg, digest_sqlite, "seed {seed}");
        let reasons: BTreeSet<&str> = rows_pg.values().map(|r| r.0.as_str()).collect();
        assert!(!reasons.is_empty(), "seed {seed}");
    }
}

/// A rebuild applies every event in one job, so its price-history cache
/// sees sales before and after each price change: it must find the same
/// conflicts and projections as live ingest, one event per job, found.
#[test]
fn a_rebuild_in_one_job_finds_what_live_ingest_found() {
    for seed in [1u64, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("x.db")).unwrap();
        let chains = history(seed, 90);
        let (rows, digest, _) = apply_on(&conn, &chains, seed * 7);
        assert!(
            rows.values().any(|r| r.0 == "stale_price"),
            "seed {seed}: no stale price to re-decide"
        );
        super::rebuild::rebuild(&conn).unwrap();
        assert_eq!(conflict_rows(&conn), rows, "seed {seed}");
        assert_eq!(
            load_projections(&conn).unwrap().digest(),
            digest,
            "seed {seed}"
        );
    }
}

/// [`apply_on`] with several events per job, as a push applies them: each
/// job stores its events, reads their fiscal-number and returns look-ups
/// ahead ([`super::read_ahead`]) and admits them in order.
fn apply_in_jobs(conn: &Conn, chains: &[Vec<(Event, Origin)>], order_seed: u64) -> (Rows, Hash256) {
    crate::storage::migrate::migrate(conn).unwrap();
    conn.execute(
        "INSERT INTO stores (store_id, name, time_zone, hub_device, created_at_ms)
         VALUES ($1, 's', 'America/Santo_Domingo', $2, 0)",
        params![STORE, HUB_DEVICE],
    )
    .unwrap();
    let mut rng = SeededRandom::new(order_seed);
    let mut queues: Vec<VecDeque<&(Event, Origin)>> =
        chains.iter().map(|c| c.iter().collect()).collect();
    let mut previous: HashMap<EventId, EventId> = HashMap::new();
    for c in chains {
        for pair in c.windows(2) {
            previous.insert(pair[1].0.id(), pair[0].0.id());
        }
    }
    let mut tx = TxCache::new(conn.dialect());
    let mut now = 1_763_880_000_000;
    loop {
        let mut job: Vec<&(Event, Origin)> = Vec::new();
        let size = 1 + rng.next_u64() % 24;
        for _ in 0..size {
            let live: Vec<usize> = (0..queues.len())
                .filter(|i| !queues[*i].is_empty())
                .collect();
            if live.is_empty() {
                break;
            }
            let q = live[usize::try_from(rng.next_u64() % live.len() as u64).unwrap()];
            job.push(queues[q].pop_front().unwrap());
        }
        if job.is_empty() {
            break;
        }
        now += 1;
        conn.begin_write().unwrap();
        tx.begin();
        {
            let mut index = SqlIndex::new(conn, now, &mut tx);
            let pushed: Vec<PushedEvent> = job
                .iter()
                .map(|(e, _)| PushedEvent {
                    event: e.clone(),
                    body: e.body().unwrap(),
                })
                .collect();
            for ((e, origin), p) in job.iter().zip(&pushed) {
                let row = insert_event(conn, e, now).unwrap();
                index
                    .known
                    .insert(e.id(), (row, Cow::Owned(p.clone()), *origin));
            }
            let refs: Vec<&PushedEvent> = pushed.iter().collect();
            index.ahead = Some(super::read_ahead::ReadAhead::read(conn, &refs).unwrap());
            for (e, _) in &job {
                ingest::admit(
                    &mut index,
                    &Candidate {
                        id: e.id(),
                        deps: &e.envelope().deps,
                        previous: previous.get(&e.id()).copied(),
                    },
                )
                .unwrap();
            }
        }
        conn.commit().unwrap();
    }
    let p = load_projections(conn).unwrap();
    (conflict_rows(conn), p.digest())
}

/// Jobs of many events with their look-ups read ahead find the conflicts
/// and projections of one event per job (and the pure model's): duplicate
/// fiscal numbers within a job and across jobs, returns without the
/// original named by a sale's id or fiscal number before or after it.
#[test]
fn jobs_with_look_ups_read_ahead_find_what_one_event_per_job_finds() {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (seed, chains) in [
        (1u64, history(1, 90)),
        (2, history(2, 90)),
        (3, crate::projection::tests::history(11, 600)),
    ] {
        let (rows_one, digest_one, _) = apply(&chains, seed * 11);
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("x.db")).unwrap();
        let (rows_jobs, digest_jobs) = apply_in_jobs(&conn, &chains, seed * 11);
        assert_eq!(rows_jobs, rows_one, "seed {seed}");
        assert_eq!(digest_jobs, digest_one, "seed {seed}");
        seen.extend(rows_jobs.values().map(|r| r.0.clone()));
    }
    for want in ["duplicate_fiscal_number", "return_original_unknown"] {
        assert!(seen.contains(want), "no {want} in {seen:?}");
    }
}
