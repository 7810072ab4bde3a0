//! Fiscal numbers end to end with a real hub and real registers over loopback
//! HTTP: blocks prefetched while online, sold through offline across block
//! boundaries, refused when used up, voided, released and regranted, a
//! register restored from an old backup that never reuses a number, a register
//! written off whose numbers are never issued again; then the hub's report
//! accounts for every number with no duplicate.

use std::collections::{BTreeMap, BTreeSet};

use caja_node::error::{OpError, Refusal};
use caja_node::register::{Document, Register};
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::engine::SyncEngine;
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, op_id, Hub, Till};
use caja_tests::proxy::Mode;
use serde_json::json;

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

const FISCAL: &str = "fiscal_documents = [\"B02\", \"B01\"]\nfiscal_document = \"B02\"\nfiscal_block_size = 10\nfiscal_low_water = 4";

fn setup(tmp: &std::path::Path, last: u64, tills: usize) -> (Hub, Vec<Till>) {
    let hub = Hub::start(&tmp.join("hub")).expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    hub.post(
        "/v1/admin/fiscal/series",
        &json!({"prefix":"B02","digits":8,"first":1,"last":last,"valid_until":"2099-12-31"}),
    )
    .expect("series B02");
    hub.post(
        "/v1/admin/fiscal/series",
        &json!({"prefix":"B01","digits":8,"first":1,"last":40,"valid_until":"2099-12-31"}),
    )
    .expect("series B01");
    let tills = (1..=tills)
        .map(|i| {
            let mut t = Till::enroll(&hub, store, &format!("caja-{i}"), tmp, fast_sync_settings())
                .expect("enroll");
            t.configure(FISCAL, fast_sync_settings())
                .expect("configure");
            t.register
                .open_shift(op_id(), "ana", Money(0))
                .expect("shift");
            t
        })
        .collect();
    (hub, tills)
}

fn left(t: &Till, series: &str) -> u64 {
    t.register
        .status()
        .expect("status")
        .fiscal
        .iter()
        .find(|s| s.series == series)
        .map_or(0, |s| s.left)
}

/// Every fiscal number on the register's own sales, in journal order.
fn numbers_of(t: &Till) -> Vec<String> {
    let mut stmt = t
        .register
        .conn()
        .prepare("SELECT fiscal_number FROM sales WHERE device = ?1 AND fiscal_number IS NOT NULL ORDER BY seq")
        .expect("prepare");
    stmt.query_map([t.register.device().device.to_string()], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn report(hub: &Hub, series: &str) -> serde_json::Value {
    hub.get(&format!("/v1/admin/fiscal/report?series={series}"))
        .expect("report")["reports"][0]
        .clone()
}

#[test]
fn three_registers_sell_through_block_boundaries_offline_and_every_number_is_accounted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut tills) = setup(tmp.path(), 100, 3);
    // Online: the first round fetches a block of each series.
    for t in &mut tills {
        let r = t.sync.round().expect("round");
        assert_eq!(r.fiscal_blocks, 2, "one block of B02 and one of B01");
        assert_eq!(left(t, "B02"), 10);
    }
    // Selling 7 brings B02 below the low-water mark (4): the next round
    // prefetches a second block.
    for t in &mut tills {
        let mut last = None;
        for _ in 0..7 {
            last = Some(t.register.sell(op_id(), &sale()).expect("sale"));
        }
        assert_eq!(left(t, "B02"), 3);
        // Below the low-water mark the cashier is warned with the sale.
        let last = last.expect("a sale");
        assert_eq!(last.fiscal_low, Some(3));
        assert!(caja_node::messages::sale_done(&last).contains("quedan 3 números fiscales"));
        let r = t.sync.round().expect("round");
        assert_eq!(r.fiscal_blocks, 1);
        assert_eq!(left(t, "B02"), 13);
    }
    // Offline: each register sells through the boundary of its two blocks and
    // is refused once both are used up; a refusal changes nothing.
    for t in &mut tills {
        t.set_network(Mode::Down);
        for _ in 0..13 {
            t.register.sell(op_id(), &sale()).expect("offline sale");
        }
        let before = caja_node::projection::digest(t.register.conn()).expect("digest");
        let head = caja_node::journal::Journal::head(t.register.conn()).expect("head");
        let refused = t.register.sell(op_id(), &sale());
        assert!(
            matches!(&refused, Err(OpError::Refused(Refusal::FiscalExhausted(s))) if s == "B02"),
            "{refused:?}"
        );
        assert_eq!(
            caja_node::projection::digest(t.register.conn()).expect("digest"),
            before
        );
        assert_eq!(
            caja_node::journal::Journal::head(t.register.conn()).expect("head"),
            head
        );
        // A tax-credit invoice needs a valid buyer id, and has its own series.
        let b01 = Document {
            series: Some("B01".into()),
            buyer_tax_id: None,
            buyer_name: None,
        };
        assert!(matches!(
            t.register.sell_as(op_id(), &sale(), &b01),
            Err(OpError::Refused(Refusal::BuyerTaxIdRequired(_)))
        ));
        let bad = Document {
            series: Some("B01".into()),
            buyer_tax_id: Some("101850042".into()),
            buyer_name: None,
        };
        assert!(matches!(
            t.register.sell_as(op_id(), &sale(), &bad),
            Err(OpError::Refused(Refusal::Invalid {
                field: "buyer_tax_id",
                ..
            }))
        ));
        let good = Document {
            series: Some("B01".into()),
            buyer_tax_id: Some("1-01-85004-3".into()),
            buyer_name: None,
        };
        let r = t
            .register
            .sell_as(op_id(), &sale(), &good)
            .expect("B01 sale");
        assert!(r
            .fiscal_number
            .as_deref()
            .is_some_and(|n| n.starts_with("B01")));
    }
    // One void keeps its number (never reused).
    let first_sale: String = tills[0]
        .register
        .conn()
        .query_row("SELECT sale_id FROM sales ORDER BY seq LIMIT 1", [], |r| {
            r.get(0)
        })
        .expect("sale");
    tills[0]
        .register
        .void(op_id(), first_sale.parse().expect("id"), "cliente desistió")
        .expect("void");
    // Reconnect: push everything, prefetch again until the series runs out.
    for t in &mut tills {
        t.set_network(Mode::Up);
        t.sync.round().expect("round");
    }
    // One register gives back what it holds; another gets those numbers.
    let released = tills[2].register.release_fiscal(op_id()).expect("release");
    assert!(!released.is_empty());
    for t in &mut tills {
        t.sync.round().expect("round");
    }
    // Every number any register used, exactly once.
    let mut all = BTreeSet::new();
    let mut count = 0;
    for t in &tills {
        for n in numbers_of(t) {
            assert!(all.insert(n.clone()), "{n} used twice");
            count += 1;
        }
    }
    assert_eq!(count, 3 * (20 + 1));
    let rep = report(&hub, "B02");
    assert_eq!(rep["duplicates"], 0, "{rep}");
    assert_eq!(rep["anomalies"].as_array().map(Vec::len), Some(0), "{rep}");
    let totals: BTreeMap<String, u64> = rep["totals"]
        .as_object()
        .expect("totals")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("n")))
        .collect();
    assert_eq!(totals.values().sum::<u64>(), 100, "{totals:?}");
    assert_eq!(totals["used"] + totals["voided"], 60);
    assert_eq!(totals["voided"], 1);
    let rep01 = report(&hub, "B01");
    assert_eq!(rep01["totals"]["used"], 3);
    let health = hub.get("/v1/health").expect("health");
    assert_eq!(health["fiscal"]["duplicates"], 0);
}

#[test]
fn a_restored_register_never_reuses_a_number_and_a_written_off_one_never_issues_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut tills) = setup(tmp.path(), 200, 2);
    let mut t = tills.remove(0);
    let mut other = tills.remove(0);
    t.sync.round().expect("round");
    for _ in 0..2 {
        t.register.sell(op_id(), &sale()).expect("sale");
    }
    let backup = tmp.path().join("old.backup");
    caja_node::datadir::backup(&t.data, &backup).expect("backup");
    // After the backup: more sales, some pushed, and the block still has numbers.
    for _ in 0..3 {
        t.register.sell(op_id(), &sale()).expect("sale");
    }
    t.sync.round().expect("round");
    let used_before: BTreeSet<String> = numbers_of(&t).into_iter().collect();
    assert_eq!(used_before.len(), 5);
    assert!(left(&t, "B02") > 0);

    // The disk dies; the old backup is restored.
    caja_node::datadir::restore(&t.data, &backup, SystemClock.now_ms()).expect("restore");
    t.register = Register::open(&t.data, SystemClock, OsRandom::new().expect("rng")).expect("open");
    t.sync = SyncEngine::open(
        &t.data,
        &t.proxy.url(),
        SystemClock,
        OsRandom::new().expect("rng"),
        fast_sync_settings(),
    )
    .expect("sync");
    assert!(matches!(
        t.register.sell(op_id(), &sale()),
        Err(OpError::Refused(Refusal::RestoredNeedsSync))
    ));
    // Sync recovers its own chain, forgets the blocks it held and asks anew.
    let r = t.sync.round().expect("recovery");
    assert_eq!(r.recovered, 3);
    assert!(r.fiscal_blocks >= 1);
    for _ in 0..4 {
        let s = t.register.sell(op_id(), &sale()).expect("sells again");
        let n = s.fiscal_number.expect("fiscal");
        assert!(!used_before.contains(&n), "{n} reused after restore");
        let num: u64 = n[3..].parse().expect("number");
        assert!(num > 10, "{n} comes from a block held before the restore");
    }
    t.sync.round().expect("push");
    let rep = report(&hub, "B02");
    assert_eq!(rep["duplicates"], 0, "{rep}");
    // The pre-restore block's rest stays outstanding on this register (a lost
    // copy may have printed some): head office writes it off.
    assert!(rep["totals"]["outstanding"].as_u64().expect("n") >= 5);

    // Writing the other register off: it is refused, its numbers never issued.
    other.sync.round().expect("round");
    other.register.sell(op_id(), &sale()).expect("sale");
    let w = hub
        .post(
            &format!(
                "/v1/admin/devices/{}/write-off",
                other.register.device().device
            ),
            &json!({"reason": "robada"}),
        )
        .expect("write off");
    let lost = w["fiscal_numbers_written_off"].as_u64().expect("n");
    // Its B02 and B01 blocks (the sale it made was never pushed: as far as
    // the hub knows its number is unused, and it is never issued again).
    assert_eq!(lost, 20, "{w}");
    assert!(
        other.sync.round().is_err(),
        "a written-off register is refused"
    );
    let rep = report(&hub, "B02");
    assert_eq!(rep["totals"]["written_off"], 10, "{rep}");
    // New blocks for the survivor never include the written-off numbers.
    let written_off: Vec<(u64, u64)> = rep["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter(|r| r["status"] == "written_off")
        .map(|r| {
            let n = |k: &str| r[k].as_str().expect("n")[3..].parse::<u64>().expect("n");
            (n("first"), n("last"))
        })
        .collect();
    for _ in 0..30 {
        if let Ok(s) = t.register.sell(op_id(), &sale()) {
            let n: u64 = s.fiscal_number.expect("fiscal")[3..].parse().expect("n");
            assert!(
                written_off.iter().all(|(a, b)| n < *a || n > *b),
                "{n} was written off"
            );
        }
        t.sync.round().expect("round");
    }
    let rep = report(&hub, "B02");
    assert_eq!(rep["duplicates"], 0, "{rep}");
    let (live, rebuilt) = t.register.rebuild().expect("rebuild");
    assert_eq!(live, rebuilt);
}

/// The register's own top-up stays under the hub's cap on fiscal numbers
/// outstanding per device and series: it asks `fiscal_block_size` (at most
/// 1,000, the hub's largest block) only while fewer than `fiscal_low_water`
/// (at most the block size) are left, so right after a grant it holds fewer
/// than two blocks; the cap leaves room for an expired block not yet
/// released besides.
#[test]
fn the_registers_top_up_stays_under_the_hubs_outstanding_cap() {
    let load = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), text).unwrap();
        caja_node::config::NodeConfig::load(dir.path(), |_| None)
    };
    let widest =
        load("fiscal_documents = [\"B02\"]\nfiscal_block_size = 1000\nfiscal_low_water = 1000\n")
            .unwrap();
    assert!(load("fiscal_documents = [\"B02\"]\nfiscal_block_size = 1001\n").is_err());
    assert!(
        load("fiscal_documents = [\"B02\"]\nfiscal_block_size = 10\nfiscal_low_water = 11\n")
            .is_err()
    );
    assert_eq!(widest.fiscal_block_size, caja_hub::fiscal::MAX_BLOCK);
    let held_after_a_grant = (widest.fiscal_low_water - 1) + widest.fiscal_block_size;
    let cap = caja_hub::config::HubConfig::default().max_outstanding_fiscal;
    assert!(
        held_after_a_grant + widest.fiscal_block_size <= cap,
        "{held_after_a_grant} + an unreleased block > {cap}"
    );
}
