//! `sync-backlog`: end-to-end time to sync a register's backlog to the hub
//! after a partition heals — a real hub on loopback HTTP and a real register,
//! each with its own SQLite files.
//!
//! The issue asks for PouchDB → pouchdb-server replicating the same documents
//! beside it as the baseline; that peer is not built yet, so this prints the
//! Caja side alone and says so.

use std::time::Instant;

use anyhow::Context;
use caja_node::journal::Journal;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::engine::SyncSettings;
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{Hub, Till};
use caja_tests::proxy::Mode;

/// Sells `n` events' worth offline, heals, and times the sync.
pub fn run(n: u64) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let hub = Hub::start(&tmp.path().join("hub"))?;
    let store = hub.create_store("Colmado")?;
    hub.load_catalog(&testkit::sample_catalog_bodies())?;
    let mut t = Till::enroll(&hub, store, "caja-1", tmp.path(), SyncSettings::default())?;
    t.sync.round()?;
    let mut rng = OsRandom::new()?;
    t.register.open_shift(
        OpId::new_v7(SystemClock.now_ms(), &mut rng)?,
        "bench",
        Money(0),
    )?;
    t.set_network(Mode::Down);
    let sale = SaleRequest {
        lines: vec![LineRequest {
            code: "ARROZ".into(),
            qty_milli: 1000,
            discount: None,
        }],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 10_000,
            reference: None,
        }],
        discount: None,
        customer: None,
    };
    let offline = Instant::now();
    while Journal::unsynced(t.register.conn())? < n {
        t.register
            .sell(OpId::new_v7(SystemClock.now_ms(), &mut rng)?, &sale)?;
    }
    let backlog = Journal::unsynced(t.register.conn())?;
    println!(
        "sync-backlog: {backlog} events sold offline in {} ms",
        offline.elapsed().as_millis()
    );
    t.set_network(Mode::Up);
    let t0 = Instant::now();
    let report = t.sync.round().context("sync after the partition heals")?;
    let took = t0.elapsed();
    anyhow::ensure!(Journal::unsynced(t.register.conn())? == 0, "backlog left");
    let per_s = u128::from(backlog) * 1_000_000 / took.as_micros().max(1);
    println!(
        "  caja-node → caja-hub: {} pushed in {} ms = {per_s} events/s (batches of 500, one transaction each at the hub)",
        report.pushed,
        took.as_millis()
    );
    println!("  PouchDB → pouchdb-server baseline: not built yet (issue #6), no ratio printed");
    Ok(())
}
