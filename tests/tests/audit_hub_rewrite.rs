//! A hub that rewrites its audit log is caught by the registers (DESIGN "Audit
//! log v1", invariant 7): each register keeps the last signed tree head it
//! verified and checks at every sync that the hub's new head extends it. After
//! someone edits the hub's database, the register marks the hub critical,
//! applies no more hub data, and keeps selling.

use caja_node::error::OpError;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::engine::{SyncError, SyncSettings};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use caja_shared::merkle;
use caja_shared::money::Money;
use caja_tests::cluster::{Hub, Till};

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

fn settings() -> SyncSettings {
    SyncSettings {
        timeout_ms: 5_000,
        keep_alive: false,
        ..SyncSettings::default()
    }
}

/// Head office asks the hub for a fresh signed tree head (as the periodic
/// signer would do within a minute).
fn sign_head(hub: &Hub) -> u64 {
    let v = hub.rt.block_on(hub.admin.sign_tree_head()).expect("sign");
    v["tree_size"].as_u64().expect("tree_size")
}

/// A hub, a store with the sample catalog, one register that synced, sold and
/// verified a signed head covering all of it.
fn setup(tmp: &std::path::Path) -> (Hub, Till, u64) {
    let hub = Hub::start(&tmp.join("hub")).expect("hub");
    let store = hub.create_store("Colmado").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut t = Till::enroll(&hub, store, "caja-1", tmp, settings()).expect("enroll");
    t.sync.round().expect("first round");
    assert_eq!(
        t.register.status().expect("status").sync.hub_log.trust,
        "ok"
    );
    t.register.open_shift(op(), "ana", Money(0)).expect("shift");
    for _ in 0..3 {
        t.register.sell(op(), &sale()).expect("sale");
    }
    t.sync.round().expect("push the sales");
    let size = sign_head(&hub);
    t.sync.round().expect("verify the head");
    let log = t.register.status().expect("status").sync.hub_log;
    assert_eq!((log.trust.as_str(), log.tree_size), ("ok", Some(size)));
    // The log grows and the register follows it with consistency proofs.
    t.register.sell(op(), &sale()).expect("sale");
    t.sync.round().expect("push");
    let grown = sign_head(&hub);
    assert!(grown > size);
    t.sync.round().expect("consistent growth");
    let log = t.register.status().expect("status").sync.hub_log;
    assert_eq!((log.trust.as_str(), log.tree_size), ("ok", Some(grown)));
    (hub, t, grown)
}

fn assert_critical(t: &mut Till, words: &str) {
    match t.sync.round() {
        Err(SyncError::HubLogRewritten(why)) => assert!(why.contains(words), "{why}"),
        other => panic!("expected a rewritten hub log, got {other:?}"),
    }
    let status = t.register.status().expect("status");
    assert_eq!(status.sync.hub_log.trust, "critical");
    assert!(status
        .sync
        .hub_log
        .problem
        .as_deref()
        .is_some_and(|p| p.contains(words)));
    let text = caja_node::messages::status(&status);
    assert!(text.contains("CRÍTICO"), "{text}");
}

#[test]
fn a_register_detects_a_hub_whose_audit_log_was_edited_and_keeps_selling() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut hub, mut t, _) = setup(tmp.path());
    hub.stop().expect("stop");
    {
        let db = hub.db().expect("db");
        db.execute_batch("DROP TRIGGER audit_log_no_update;")
            .expect("drop trigger");
        let entry: Vec<u8> = db
            .query_row("SELECT entry FROM audit_log WHERE idx = 2", [], |r| {
                r.get(0)
            })
            .expect("entry");
        let forged =
            String::from_utf8(entry)
                .expect("utf8")
                .replacen("\"at_ms\":", "\"at_ms\":1", 1);
        db.execute(
            "UPDATE audit_log SET entry = ?1, leaf_hash = ?2 WHERE idx = 2",
            rusqlite::params![
                forged.as_bytes(),
                merkle::leaf_hash(forged.as_bytes()).to_hex()
            ],
        )
        .expect("edit");
    }
    hub.restart().expect("restart");
    let hub_events = t.register.status().expect("status").hub_events;
    assert_critical(&mut t, "rewritten");

    // Critical sticks: later rounds still refuse, and new hub data (a price
    // change) is not applied.
    let mut price = testkit::sample_catalog_bodies();
    price.truncate(1);
    hub.load_catalog(&price).expect("catalog");
    assert!(matches!(t.sync.round(), Err(SyncError::HubLogRewritten(_))));
    assert_eq!(t.register.status().expect("status").hub_events, hub_events);
    // Selling goes on, and the sales still reach the hub.
    let sold: Result<_, OpError> = t.register.sell(op(), &sale());
    sold.expect("selling is never blocked");
    assert!(t.sync.round().is_err());
    assert_eq!(t.register.status().expect("status").unsynced, 0);

    // Once support has looked into it, the register is told to trust the
    // hub's current log again: it verifies from there and applies hub data.
    caja_node::sync::engine::reset_hub_trust(t.register.conn()).expect("reset");
    t.sync.round().expect("trusted again");
    let status = t.register.status().expect("status");
    assert_eq!(status.sync.hub_log.trust, "ok");
    assert!(status.hub_events > hub_events, "the price change arrived");
}

#[test]
fn network_trouble_is_not_a_rewritten_log_and_a_head_under_another_key_is() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut t, size) = setup(tmp.path());
    t.set_network(caja_tests::proxy::Mode::Down);
    assert!(matches!(t.sync.round(), Err(SyncError::Hub(_))));
    assert_eq!(
        t.register.status().expect("status").sync.hub_log.trust,
        "ok"
    );
    t.set_network(caja_tests::proxy::Mode::Up);
    t.sync.round().expect("back online");

    // A register told another hub key (as if the hub's answers came from
    // someone else's key) refuses the head.
    let other = caja_shared::key::HubSigningKey::from_seed([5; 32]).public_key();
    t.register
        .conn()
        .execute("UPDATE device SET hub_public_key = ?1", [other.to_hex()])
        .expect("swap key");
    t.sync = caja_node::sync::engine::SyncEngine::open(
        &t.data,
        &t.proxy.url(),
        SystemClock,
        OsRandom::new().expect("rng"),
        settings(),
    )
    .expect("reopen");
    assert_critical(&mut t, "does not verify");
    assert_eq!(
        t.register.status().expect("status").sync.hub_log.tree_size,
        Some(size),
        "the last good head is kept"
    );
    drop(hub);
}

#[test]
fn a_register_detects_a_hub_whose_audit_log_lost_entries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut hub, mut t, size) = setup(tmp.path());
    hub.stop().expect("stop");
    {
        let db = hub.db().expect("db");
        db.execute_batch("DROP TRIGGER audit_log_no_delete;")
            .expect("drop trigger");
        db.execute(
            "DELETE FROM audit_log WHERE idx >= ?1",
            [i64::try_from(size).expect("size") - 3],
        )
        .expect("delete");
    }
    hub.restart().expect("restart");
    assert_critical(&mut t, "shrank");
}
