//! A real hub and three real registers over loopback HTTP, each behind its own
//! TCP proxy. Registers sell; one is cut off for part of the run; the network
//! heals; then every register event is at the hub exactly once (same hashes),
//! hub projections equal a rebuild, and every register's view of the others
//! converges.

use caja_node::journal::Journal;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::backoff::BackoffPolicy;
use caja_node::sync::breaker::{BreakerPolicy, BreakerState};
use caja_node::sync::engine::SyncSettings;
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{Hub, Till};
use caja_tests::proxy::Mode;

fn settings() -> SyncSettings {
    SyncSettings {
        timeout_ms: 3_000,
        interval_ms: 50,
        backoff: BackoffPolicy {
            base_ms: 20,
            cap_ms: 200,
        },
        breaker: BreakerPolicy {
            failures_to_open: 3,
            open_wait_ms: 100,
            open_jitter_ms: 100,
            successes_to_close: 3,
        },
        keep_alive: false,
        ..SyncSettings::default()
    }
}

fn op(rng: &mut SeededRandom) -> OpId {
    OpId::new_v7(caja_node::system::SystemClock.now_ms(), rng).expect("op id")
}

fn sell_something(t: &mut Till, rng: &mut SeededRandom) {
    let items = [
        ("ARROZ", 1000),
        ("2000000000017", 455),
        ("7460000000011", 2000),
    ];
    let (code, qty) = items[usize::try_from(rng.next_u64() % 3).expect("small")];
    let req = SaleRequest {
        lines: vec![LineRequest {
            code: code.into(),
            qty_milli: qty,
            discount: None,
            unit_price: None,
        }],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 100_000,
            reference: None,
        }],
        discount: None,
        customer: None,
    };
    let id = op(rng);
    t.register
        .sell(id, &req)
        .expect("an offline sale never needs the hub");
}

fn setup(tmp: &std::path::Path) -> (Hub, Vec<Till>) {
    let hub = Hub::start(&tmp.join("hub")).expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let tills: Vec<Till> = (1..=3)
        .map(|i| Till::enroll(&hub, store, &format!("caja-{i}"), tmp, settings()).expect("enroll"))
        .collect();
    (hub, tills)
}

#[test]
fn three_registers_partition_heal_and_converge_exactly_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut hub, mut tills) = setup(tmp.path());
    let mut rng = SeededRandom::new(2026);
    for t in &mut tills {
        let r = t.sync.round().expect("first sync");
        assert_eq!(
            r.hub_events, 10,
            "{}: the catalog arrives as verified hub events",
            t.name
        );
        let id = op(&mut rng);
        t.register
            .open_shift(id, "ana", Money(500_000))
            .expect("shift");
    }
    for round in 0..24 {
        if round == 6 {
            tills[1].set_network(Mode::Down);
        }
        if round == 18 {
            tills[1].set_network(Mode::Up);
        }
        for t in &mut tills {
            for _ in 0..=(rng.next_u64() % 2) {
                sell_something(t, &mut rng);
            }
            let _ = t.sync.tick();
        }
    }
    assert!(tills[1].proxy.refused() > 0, "the partition was real");
    // Heal: the breakers close after 3 successes each (half-open probes after a
    // jittered wait), then every register also sees the others' last events.
    for _ in 0..100 {
        for t in &mut tills {
            let _ = t.sync.tick();
        }
        if tills
            .iter()
            .all(|t| t.sync.breaker().state() == BreakerState::Closed { failures: 0 })
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for _ in 0..2 {
        for t in &mut tills {
            t.sync.round().expect("sync after heal");
        }
    }
    let hub_db = hub.db().expect("hub db");
    for t in &tills {
        let conn = t.register.conn();
        let head = Journal::head(conn).expect("head");
        assert_eq!(
            Journal::acked_seq(conn).expect("acked"),
            head.seq,
            "{}: all acknowledged",
            t.name
        );
        let device = t.register.device().device.to_string();
        // Exactly once, byte for byte: the hub holds each seq once with our hash.
        let mut stmt = hub_db
            .prepare("SELECT seq, hash FROM events WHERE device_id = ?1 ORDER BY seq")
            .expect("query");
        let at_hub: Vec<(u64, String)> = stmt
            .query_map([&device], |r| {
                Ok((r.get::<_, i64>(0)?.unsigned_abs(), r.get(1)?))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            at_hub.len() as u64,
            head.seq,
            "{}: events at the hub",
            t.name
        );
        for (seq, hash) in &at_hub {
            let mine = Journal::event(conn, *seq).expect("read").expect("present");
            assert_eq!(&mine.hash().to_hex(), hash, "{} seq {seq}", t.name);
        }
        // Every other register's chain is here, whole.
        for u in tills.iter().filter(|u| u.name != t.name) {
            let theirs = Journal::head(u.register.conn()).expect("head").seq;
            let held: i64 = conn
                .query_row(
                    "SELECT count(*) FROM peer_events WHERE device = ?1",
                    [u.register.device().device.to_string()],
                    |r| r.get(0),
                )
                .expect("count");
            assert_eq!(
                held.unsigned_abs(),
                theirs,
                "{} sees all of {}",
                t.name,
                u.name
            );
        }
    }
    for t in &mut tills {
        let (live, rebuilt) = t.register.rebuild().expect("node rebuild");
        assert_eq!(
            live, rebuilt,
            "{}: projections equal a rebuild with peers",
            t.name
        );
        assert_eq!(
            t.sync.breaker().state(),
            BreakerState::Closed { failures: 0 }
        );
    }
    // Hub projections equal a rebuild from its event store.
    drop(hub_db);
    hub.stop().expect("stop");
    let conn = caja_hub::storage::open_connection(&hub.dir.join(caja_hub::datadir::DB_FILE))
        .expect("open");
    let live = caja_hub::storage::digest(&conn).expect("digest");
    caja_hub::storage::rebuild(&conn).expect("rebuild");
    assert_eq!(caja_hub::storage::digest(&conn).expect("digest"), live);
}

#[test]
fn replayed_and_late_requests_change_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut tills) = setup(tmp.path());
    let mut rng = SeededRandom::new(7);
    let t = &mut tills[0];
    t.sync.round().expect("first sync");
    let id = op(&mut rng);
    t.register.open_shift(id, "ana", Money(0)).expect("shift");
    t.set_network(Mode::Replay);
    for _ in 0..5 {
        for _ in 0..3 {
            sell_something(t, &mut rng);
        }
        t.sync.round().expect("sync through a replaying proxy");
    }
    // Let the late copies arrive.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(t.proxy.replays() >= 5, "requests were delivered twice");
    let head = Journal::head(t.register.conn()).expect("head").seq;
    let at_hub: i64 = hub
        .db()
        .expect("db")
        .query_row(
            "SELECT count(*) FROM events WHERE device_id = ?1",
            [t.register.device().device.to_string()],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        at_hub.unsigned_abs(),
        head,
        "exactly once despite duplicate deliveries"
    );
}
