//! The hub's default resource caps (`caja_hub::caps`) against a real
//! register's catch-up: 10,000 events sold while cut off from a real hub,
//! then the link heals and one sync round pushes them all — the register's
//! own byte-bounded batches, back to back, at full speed — and a second
//! register of the store pulls them: never a 429, never a 413.

use caja_node::journal::Journal;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::engine::{SyncEngine, SyncSettings};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{Hub, Till};
use caja_tests::proxy::Mode;

#[test]
fn a_10000_event_backlog_syncs_in_one_round_with_the_default_caps() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start(&tmp.path().join("hub")).unwrap();
    let store = hub.create_store("Colmado").unwrap();
    hub.load_catalog(&testkit::sample_catalog_bodies()).unwrap();
    let mut t = Till::enroll(&hub, store, "caja-1", tmp.path(), SyncSettings::default()).unwrap();
    let mut peer =
        Till::enroll(&hub, store, "caja-2", tmp.path(), SyncSettings::default()).unwrap();
    t.sync.round().unwrap();
    peer.sync.round().unwrap();
    let mut rng = OsRandom::new().unwrap();
    t.register
        .open_shift(
            OpId::new_v7(SystemClock.now_ms(), &mut rng).unwrap(),
            "ana",
            Money(0),
        )
        .unwrap();
    t.set_network(Mode::Down);
    let sale = SaleRequest {
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
    };
    while Journal::unsynced(t.register.conn()).unwrap() < 10_000 {
        t.register
            .sell(OpId::new_v7(SystemClock.now_ms(), &mut rng).unwrap(), &sale)
            .unwrap();
    }
    let backlog = Journal::unsynced(t.register.conn()).unwrap();
    let mut direct = SyncEngine::open(
        &t.data,
        &hub.url,
        SystemClock,
        OsRandom::new().unwrap(),
        SyncSettings::default(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let report = direct.round().expect("one round, no 429");
    assert_eq!(report.pushed, backlog);
    assert_eq!(Journal::unsynced(t.register.conn()).unwrap(), 0);
    let pushed = started.elapsed();
    let report = peer.sync.round().expect("the peer pulls it all, no 429");
    assert!(report.peer_events >= backlog, "{report:?}");
    eprintln!(
        "{backlog} events pushed in {pushed:?}; pulled by the peer in {:?}",
        started.elapsed() - pushed
    );
}
