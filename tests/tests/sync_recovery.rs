//! Recovery paths of sync against a real hub: a register restored from an old
//! backup recovers its own events before making a new one (it never forks), and
//! a flapping link keeps the breaker from flapping or storming the hub.

use std::time::{Duration, Instant};

use caja_node::error::{OpError, Refusal};
use caja_node::journal::Journal;
use caja_node::register::Register;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::backoff::BackoffPolicy;
use caja_node::sync::breaker::{BreakerPolicy, BreakerState};
use caja_node::sync::engine::{SyncEngine, SyncSettings};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{Hub, Till};
use caja_tests::proxy::Mode;

fn settings() -> SyncSettings {
    SyncSettings {
        timeout_ms: 2_000,
        interval_ms: 20,
        backoff: BackoffPolicy {
            base_ms: 20,
            cap_ms: 200,
        },
        breaker: BreakerPolicy {
            failures_to_open: 3,
            open_wait_ms: 300,
            open_jitter_ms: 200,
            successes_to_close: 3,
        },
        keep_alive: false,
        ..SyncSettings::default()
    }
}

fn op() -> OpId {
    OpId::new_v7(SystemClock.now_ms(), &mut OsRandom::new().expect("rng")).expect("op")
}

fn sale() -> SaleRequest {
    SaleRequest {
        lines: vec![LineRequest {
            code: "ARROZ".into(),
            qty_milli: 1000,
            discount: None,
            unit_price: None,
        }],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 10_000,
            reference: None,
        }],
        discount: None,
        customer: None,
    }
}

fn one_till(tmp: &std::path::Path) -> (Hub, Till) {
    let hub = Hub::start(&tmp.join("hub")).expect("hub");
    let store = hub.create_store("Colmado").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut t = Till::enroll(&hub, store, "caja-1", tmp, settings()).expect("enroll");
    t.sync.round().expect("catalog");
    t.register.open_shift(op(), "ana", Money(0)).expect("shift");
    (hub, t)
}

#[test]
fn a_register_restored_from_an_old_backup_recovers_before_selling() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut t) = one_till(tmp.path());
    for _ in 0..2 {
        t.register.sell(op(), &sale()).expect("sale");
    }
    let backup = tmp.path().join("old.backup");
    let backed_up = caja_node::datadir::backup(&t.data, &backup).expect("backup");
    for _ in 0..3 {
        t.register.sell(op(), &sale()).expect("sale");
    }
    t.sync.round().expect("sync");
    let hub_head = Journal::head(t.register.conn()).expect("head");
    assert_eq!(hub_head.seq, backed_up + 3);

    // The machine dies; the old backup is restored.
    caja_node::datadir::restore(&t.data, &backup, SystemClock.now_ms()).expect("restore");
    t.register = Register::open(&t.data, SystemClock, OsRandom::new().expect("rng")).expect("open");
    t.sync = SyncEngine::open(
        &t.data,
        &t.proxy.url(),
        SystemClock,
        OsRandom::new().expect("rng"),
        settings(),
    )
    .expect("sync");
    assert_eq!(
        Journal::head(t.register.conn()).expect("head").seq,
        backed_up
    );
    assert!(matches!(
        t.register.sell(op(), &sale()),
        Err(OpError::Refused(Refusal::RestoredNeedsSync))
    ));

    assert!(t.register.status().expect("status").restored_from_backup);

    // Sync fetches what the hub holds of its chain, verified, and only then sells.
    let r = t.sync.round().expect("recovery");
    assert_eq!(r.recovered, 3);
    // Regression (found by the simulation, seed 8): the register's status
    // read the mark cached when it was opened, so a register whose sync
    // engine had finished the recovery still showed "restored".
    assert!(
        !t.register.status().expect("status").restored_from_backup,
        "the status follows the database, not the record read at open"
    );
    let head = Journal::head(t.register.conn()).expect("head");
    assert_eq!(
        head, hub_head,
        "the recovered chain is the hub's, hash for hash"
    );
    let next = t.register.sell(op(), &sale()).expect("sells again");
    assert_eq!(next.seq, hub_head.seq + 1);
    t.sync.round().expect("push after recovery");
    let (n, quarantined): (i64, i64) = hub
        .db()
        .expect("db")
        .query_row(
            "SELECT (SELECT count(*) FROM events WHERE device_id = ?1),
                    (SELECT count(*) FROM devices WHERE device_id = ?1 AND quarantined_at_ms IS NOT NULL)",
            [t.register.device().device.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!(n.unsigned_abs(), hub_head.seq + 1, "no fork, nothing twice");
    assert_eq!(quarantined, 0);
    let (live, rebuilt) = t.register.rebuild().expect("rebuild");
    assert_eq!(live, rebuilt);
}

/// Regression (found by the simulation, seed 26): a backup taken while the
/// register was offline holds sales the hub never received. Restored, the
/// register recovered nothing from the hub and marked its whole journal as
/// acknowledged, so those sales were never pushed. They must reach the hub.
#[test]
fn regression_seed_26_a_backup_taken_offline_pushes_what_the_hub_never_had() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut t) = one_till(tmp.path());
    t.register.sell(op(), &sale()).expect("sale");
    t.sync.round().expect("sync");
    let synced = Journal::head(t.register.conn()).expect("head").seq;
    t.set_network(Mode::Down);
    for _ in 0..3 {
        t.register.sell(op(), &sale()).expect("an offline sale");
    }
    let backup = tmp.path().join("offline.backup");
    let backed_up = caja_node::datadir::backup(&t.data, &backup).expect("backup");
    assert_eq!(backed_up, synced + 3);

    // The machine dies; the backup is restored; the network is back.
    caja_node::datadir::restore(&t.data, &backup, SystemClock.now_ms()).expect("restore");
    t.set_network(Mode::Up);
    t.reopen(settings()).expect("reopen");
    let r = t.sync.round().expect("recovery and push");
    assert_eq!(r.recovered, 0, "the hub had nothing more");
    assert_eq!(r.pushed, 3, "the three offline sales of the backup");
    let at_hub: i64 = hub
        .db()
        .expect("db")
        .query_row(
            "SELECT count(*) FROM events WHERE device_id = ?1",
            [t.register.device().device.to_string()],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(at_hub.unsigned_abs(), backed_up);
    assert_eq!(
        Journal::acked_seq(t.register.conn()).expect("acked"),
        backed_up
    );
    assert!(!t.register.status().expect("status").restored_from_backup);
}

#[test]
fn a_flapping_link_keeps_the_breaker_open_without_a_request_storm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_hub, mut t) = one_till(tmp.path());
    t.register.sell(op(), &sale()).expect("sale");
    // Down for 3 failures' worth, then flapping: up 60 ms, down 240 ms.
    t.set_network(Mode::Down);
    let before = t.proxy.connections() + t.proxy.refused();
    let mut was_open = false;
    let started = Instant::now();
    let mut up = false;
    let mut last_flip = Instant::now();
    while started.elapsed() < Duration::from_millis(3_000) {
        let period = if up { 60 } else { 240 };
        if last_flip.elapsed() >= Duration::from_millis(period) {
            up = !up;
            t.set_network(if up { Mode::Up } else { Mode::Down });
            last_flip = Instant::now();
        }
        let (_, wait) = t.sync.tick();
        if matches!(t.sync.breaker().state(), BreakerState::Open { .. }) {
            was_open = true;
        }
        std::thread::sleep(Duration::from_millis(wait.min(20)));
    }
    let attempts = t.proxy.connections() + t.proxy.refused() - before;
    assert!(was_open, "the breaker opened on a dead link");
    // A closed breaker ticking every 20 ms would try ~150 rounds (several
    // requests each); the open breaker allows a probe per 300–500 ms wait.
    assert!(
        attempts < 80,
        "request storm: {attempts} connection attempts in 3 s"
    );
    // Once the link is steady, three successes close it and the sale arrives.
    t.set_network(Mode::Up);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.sync.breaker().state() != (BreakerState::Closed { failures: 0 }) {
        assert!(
            Instant::now() < deadline,
            "breaker never closed on a steady link"
        );
        let (_, wait) = t.sync.tick();
        std::thread::sleep(Duration::from_millis(wait.min(50)));
    }
    let conn = t.register.conn();
    assert_eq!(
        Journal::acked_seq(conn).expect("acked"),
        Journal::head(conn).expect("head").seq
    );
}
