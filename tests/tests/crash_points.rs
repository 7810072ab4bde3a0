//! The crash-point sweep of the node: the real `caja-node` binary sells in
//! a loop and aborts (`std::process::abort`, as a kill or a power cut would
//! stop it) at every write point of a sale — `CAJA_CRASH_AT=<point>:<n>`,
//! see `caja_node::crashpoint` — at several hits of each point, i.e. across
//! many sales. After each crash the register is opened again and must hold
//! every sale the cashier was told was done, and nothing half-applied: the
//! chain verifies, each journal sale has its projection row, its op record
//! and its print job, projections equal a rebuild, the fiscal block moved by
//! exactly the sales that used it (numbers contiguous, none twice), the
//! stock quota went down by exactly what they sold; and it sells on.
//!
//! The register starts from a real enrollment with a real hub (a fiscal
//! block of 400 numbers and a stock quota of 400 units), copied fresh for
//! each crash.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use caja_node::crashpoint;
use caja_node::register::Register;
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::kind::EventBody;
use caja_tests::procs::{HubProcess, NodeProcess};
use caja_tests::sweep::{
    accepted_entries, assert_sales_whole, audit_verifies_and_stop, copy_dir, copy_tree, counts,
    node_ok, prepare, reopened, sell, sell_n, sells_on, sync_until_quiet, synced, Synced, ARROZ,
};

#[test]
fn a_crash_at_every_write_point_of_a_sale_loses_nothing_acknowledged_and_leaves_nothing_half_applied(
) {
    let bin = caja_tests::procs::binary("caja-node").expect("caja-node binary");
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let template = prepare(tmp.path());
    let db_name = "caja-node.sqlite3";
    let start = counts(&template.join(db_name), 0);
    let template_next = start.block_next;
    let mut crashes = 0;
    let mut sales_checked = 0;
    for point in crashpoint::POINTS {
        // Hits spread over many sales; a checkpoint comes every 100 events.
        let nths: &[u64] = if *point == "journal:checkpoint" {
            &[1, 2]
        } else {
            &[1, 2, 9, 61]
        };
        for &nth in nths {
            let data = tmp
                .path()
                .join(format!("run-{}-{nth}", point.replace(':', "_")));
            copy_dir(&template, &data);
            let (acked, status) = sell(&bin, &data, 300, Some(&format!("{point}:{nth}")));
            assert_eq!(
                status.signal(),
                Some(6),
                "{point}:{nth}: the process aborted there ({status:?})"
            );
            crashes += 1;
            // Restart: the register opens (start-up chain check) and verifies.
            let what = format!("{point}:{nth}");
            let c = reopened(&data, &what, &acked, template_next);
            // A crash after COMMIT loses the answer, not the sale.
            let expected = acked.len() as i64 + i64::from(*point == "op:committed");
            assert_eq!(
                c.journal_sales - start.journal_sales,
                expected,
                "{what}: sales in the journal"
            );
            assert_sales_whole(&c, &start, &what);
            // It sells on, with the next number.
            sells_on(&bin, &data, &c, &what);
            sales_checked += acked.len();
            let _ = std::fs::remove_dir_all(&data);
        }
    }
    println!(
        "crash-point sweep: {crashes} crashes at {} points, {sales_checked} acknowledged sales checked",
        crashpoint::POINTS.len()
    );
    assert!(sales_checked > 0);
}

// ---------------------------------------------------------------------------
// The sync round's sweep.

const SYNC_TOKEN: &str = "caja-crash-sweep-admin-token-0123";
/// Own events to push: two batches of the node's 500.
const OWN_SALES: u32 = 520;
/// Another register's events to pull: two pages of the node's 500.
const PEER_SALES: u32 = 520;

/// A hub (stopped) and a register with 520 unsynced sales, running low on
/// fiscal numbers and on its quota of ARROZ, while another register pushed
/// 520 sales it has not pulled; the template every crash starts from.
fn prepare_sync(tmp: &Path, port: u16) -> (HubProcess, PathBuf, String, String) {
    let mut hub = HubProcess::init_and_serve(&tmp.join("hub"), port, SYNC_TOKEN).expect("hub");
    let store = hub.admin(&["create-store", "Colmado"]).expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    let mut items = Vec::new();
    let mut prices = Vec::new();
    for b in testkit::sample_catalog_bodies() {
        let v = b.to_value().expect("catalog body").to_serde();
        match b {
            EventBody::CatalogItemUpserted(_) => items.push(v),
            EventBody::PriceSet(_) => prices.push(v),
            _ => {}
        }
    }
    let catalog = tmp.join("catalog.json");
    std::fs::write(
        &catalog,
        serde_json::json!({ "items": items, "prices": prices }).to_string(),
    )
    .expect("catalog file");
    hub.admin(&["load-catalog", catalog.to_str().expect("path")])
        .expect("catalog");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    caja_hub::admin_client::install_crypto_provider();
    let admin = caja_hub::admin_client::AdminClient::new(&hub.url, SYNC_TOKEN).expect("admin");
    rt.block_on(admin.post(
        "/v1/admin/fiscal/series",
        &serde_json::json!({"prefix":"B02","digits":8,"first":1,"last":5000,"valid_until":"2099-12-31"}),
    ))
    .expect("series");
    let token = |name: &str| {
        hub.admin(&["create-token", &store, name]).expect("token")["token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    // The peer: stock received, then sales the crashing register will pull.
    let peer = NodeProcess::new(&tmp.join("caja-2"));
    let peer_device = node_ok(
        &peer,
        &["enroll", "--hub", &hub.url, "--token", &token("caja 2")],
    )["device"]
        .as_str()
        .expect("device")
        .to_owned();
    node_ok(&peer, &["sync"]);
    node_ok(
        &peer,
        &["stock", "receive", "--product", ARROZ, "--qty", "100000"],
    );
    node_ok(
        &peer,
        &["shift", "open", "--cashier", "luis", "--float", "0"],
    );
    node_ok(&peer, &["sync"]);
    // The crashing register: a block of 600 numbers (low water 100) and a
    // quota of ARROZ (low water 20 units).
    let node = NodeProcess::new(&tmp.join("caja-1"));
    let device = node_ok(
        &node,
        &["enroll", "--hub", &hub.url, "--token", &token("caja 1")],
    )["device"]
        .as_str()
        .expect("device")
        .to_owned();
    let config = tmp.join("caja-1").join(caja_node::config::CONFIG_FILE_NAME);
    let mut text = std::fs::read_to_string(&config).unwrap_or_default();
    text.push_str("\nfiscal_documents = [\"B02\"]\nfiscal_document = \"B02\"\nfiscal_block_size = 600\nfiscal_low_water = 100\nstock_quotas = true\nescrow_low_milli = 20000\nescrow_target_milli = 60000\n");
    std::fs::write(&config, text).expect("config");
    node_ok(&node, &["sync"]);
    node_ok(
        &node,
        &["shift", "open", "--cashier", "ana", "--float", "0"],
    );
    sell_n(&node, "ARROZ", 50);
    sell_n(&node, "2000000000017:0.455", OWN_SALES - 50);
    sell_n(&peer, "2000000000017:0.250", PEER_SALES);
    node_ok(&peer, &["sync"]);
    hub.terminate().expect("stop hub");
    (hub, tmp.to_path_buf(), device, peer_device)
}

#[test]
fn a_crash_between_the_transactions_of_a_sync_round_converges_on_the_next_with_nothing_lost_or_twice(
) {
    let bin = caja_tests::procs::binary("caja-node").expect("caja-node binary");
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let port = caja_tests::procs::free_port().expect("port");
    let (mut hub, root, device, peer) = prepare_sync(tmp.path(), port);
    let template_hub = root.join("hub");
    let template_node = root.join("caja-1");
    // The same round without a crash: what every crashed one must end at.
    let mut run = |name: &str, crash: Option<&str>| -> (Synced, Option<std::process::ExitStatus>) {
        let dir = root.join(format!("run-{name}"));
        copy_tree(&template_hub, &dir.join("hub"));
        copy_tree(&template_node, &dir.join("caja-1"));
        hub.dir = dir.join("hub");
        hub.serve().expect("hub serves the copy");
        let node = NodeProcess::new(&dir.join("caja-1"));
        let mut status = None;
        if let Some(c) = crash {
            let out = Command::new(&bin)
                .arg("--data-dir")
                .arg(dir.join("caja-1"))
                .args(["--json", "sync"])
                .env(crashpoint::ENV, c)
                .env_remove("CAJA_NODE_HUB_URL")
                .env_remove("CAJA_NODE_PRINTER")
                .output()
                .expect("caja-node sync");
            status = Some(out.status);
        }
        sync_until_quiet(&node, name);
        let verified = node.output(&["verify"]).expect("verify");
        assert!(verified.status.success(), "{name}: the journal verifies");
        let s = synced(&hub, &node, &device, &peer);
        hub.terminate().expect("stop hub");
        let data = caja_node::datadir::DataDir::new(dir.join("caja-1"));
        let mut reg = Register::open(&data, SystemClock, OsRandom::new().expect("rng"))
            .unwrap_or_else(|e| panic!("{name}: reopens: {e}"));
        let (live, rebuilt) = reg.rebuild().expect("rebuild");
        assert_eq!(live, rebuilt, "{name}: projections equal a rebuild");
        drop(reg);
        let _ = std::fs::remove_dir_all(&dir);
        (s, status)
    };
    let (expected, _) = run("baseline", None);
    assert_eq!(expected.acked, expected.head, "baseline: all acknowledged");
    assert_eq!(expected.at_hub, expected.head);
    assert!(expected.head > u64::from(OWN_SALES), "two push batches");
    assert!(
        expected.peer_events_at_node > u64::from(PEER_SALES),
        "two pull pages"
    );
    assert_eq!(expected.hub_events_at_node, expected.hub_chain);
    assert!(expected.fiscal_ranges >= 2, "a top-up block: {expected:?}");
    assert!(expected.escrow_grants >= 2, "a top-up quota: {expected:?}");
    let mut crashes = 0;
    for point in crashpoint::SYNC_POINTS {
        // Between the two push batches and the two pull pages too.
        let nths: &[u64] = if matches!(*point, "sync:push_acked" | "sync:pull_page") {
            &[1, 2]
        } else {
            &[1]
        };
        for &nth in nths {
            let name = format!("{}-{nth}", point.replace(':', "_"));
            let (got, status) = run(&name, Some(&format!("{point}:{nth}")));
            assert_eq!(
                status.and_then(|s| s.signal()),
                Some(6),
                "{point}:{nth}: the round aborted there ({status:?})"
            );
            crashes += 1;
            assert_eq!(
                got, expected,
                "{point}:{nth}: after the crash the next rounds end where an uninterrupted one does"
            );
        }
    }
    println!(
        "sync crash-point sweep: {crashes} crashes at {} points, each resumed to {expected:?}",
        crashpoint::SYNC_POINTS.len()
    );
}

/// The hub's crash points the sweep reaches with the sync template, each at
/// these hits; an empty list means every hit a round reaches (each writer
/// transaction of the round, before and after its `COMMIT`). The rest —
/// `hub:held`, `hub:released`, the outbox's — need held events or e-CF
/// documents the template does not make.
const HUB_SWEPT: &[(&str, &[u64])] = &[
    ("hub:event_stored", &[1, 300]),
    ("hub:audit_appended", &[1, 510]),
    ("hub:event_admitted", &[1]),
    ("hub:push_recorded", &[2]),
    ("hub:fiscal_granted", &[1]),
    ("hub:escrow_granted", &[1]),
    ("hub:before_commit", &[]),
    ("hub:committed", &[]),
];

/// A placeholder for a run whose crash point was never reached.
fn expected_none() -> Synced {
    Synced {
        head: 0,
        acked: 0,
        at_hub: 0,
        hub_chain: 0,
        hub_events_at_node: 0,
        peer_events_at_node: 0,
        fiscal_ranges: 0,
        escrow_grants: 0,
    }
}

#[test]
fn a_hub_killed_inside_its_write_transactions_loses_nothing_acknowledged_and_grants_nothing_twice()
{
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let port = caja_tests::procs::free_port().expect("port");
    let (mut hub, root, device, peer) = prepare_sync(tmp.path(), port);
    let template_hub = root.join("hub");
    let template_node = root.join("caja-1");
    let mut run =
        |name: &str, crash: Option<&str>| -> (Synced, u64, Option<std::process::ExitStatus>) {
            let dir = root.join(format!("hub-run-{name}"));
            copy_tree(&template_hub, &dir.join("hub"));
            copy_tree(&template_node, &dir.join("caja-1"));
            hub.dir = dir.join("hub");
            let node = NodeProcess::new(&dir.join("caja-1"));
            let mut status = None;
            if let Some(c) = crash {
                hub.serve_env = vec![(caja_hub::crashpoint::ENV.to_owned(), c.to_owned())];
                hub.serve().expect("hub serves the copy, armed");
                // The round fails where the hub died (or ends if it did not).
                let _ = node.output(&["sync"]).expect("caja-node sync");
                status = hub
                    .wait_exit(std::time::Duration::from_secs(5))
                    .expect("wait");
                hub.serve_env.clear();
                if status.is_none() {
                    // The round never reached the point: no crash to check.
                    hub.terminate().expect("stop hub");
                    let _ = std::fs::remove_dir_all(&dir);
                    return (expected_none(), 0, None);
                }
            }
            hub.serve().expect("hub serves the copy");
            sync_until_quiet(&node, name);
            let verified = node.output(&["verify"]).expect("verify");
            assert!(verified.status.success(), "{name}: the journal verifies");
            let s = synced(&hub, &node, &device, &peer);
            let accepted = accepted_entries(&hub, &device);
            audit_verifies_and_stop(&mut hub, &dir, name);
            (s, accepted, status)
        };
    let (expected, accepted, _) = run("baseline", None);
    assert_eq!(expected.acked, expected.head, "baseline: all acknowledged");
    assert_eq!(accepted, expected.head, "one audit entry per event");
    assert!(expected.fiscal_ranges >= 2, "a top-up block: {expected:?}");
    assert!(expected.escrow_grants >= 2, "a top-up quota: {expected:?}");
    let mut crashes = 0;
    for (point, nths) in HUB_SWEPT {
        assert!(caja_hub::crashpoint::POINTS.contains(point), "{point}");
        let every: Vec<u64> = (1..=40).collect();
        let all = nths.is_empty();
        for &nth in if all { &every[..] } else { nths } {
            let name = format!("{}-{nth}", point.replace(':', "_"));
            let (got, got_accepted, status) = run(&name, Some(&format!("{point}:{nth}")));
            if all && nth > 1 && status.is_none() {
                break;
            }
            assert_eq!(
                status.and_then(|s| s.signal()),
                Some(6),
                "{point}:{nth}: the hub aborted there ({status:?})"
            );
            crashes += 1;
            assert_eq!(
                got, expected,
                "{point}:{nth}: after the hub's crash and restart the rounds end where an uninterrupted one does"
            );
            assert_eq!(
                got_accepted, accepted,
                "{point}:{nth}: each event accepted once in the audit log"
            );
        }
    }
    println!(
        "hub crash-point sweep: {crashes} crashes at {} points, each resumed to {expected:?}",
        HUB_SWEPT.len()
    );
}

#[test]
fn a_register_whose_disk_is_full_refuses_in_spanish_keeps_its_confirmed_sales_and_sells_again() {
    let bin = caja_tests::procs::binary("caja-node").expect("caja-node binary");
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let template = prepare(tmp.path());
    let data = tmp.path().join("disk");
    copy_dir(&template, &data);
    let db = caja_node::datadir::DataDir::new(&data).db_path();
    let (before, status) = sell(&bin, &data, 5, None);
    assert!(status.success() && before.len() == 5, "{status:?}");
    // No free pages left over from migrations that rebuilt tables: without
    // this, a loaded run once sold ~400 sales into them and ran out of
    // fiscal numbers before the disk "filled".
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
        .expect("vacuum");
    drop(conn);
    // The disk fills up: `caja-node sell` with the seam armed.
    let out = Command::new(&bin)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--json", "sell", "--item", "ARROZ", "--cash", "1000", "--repeat", "3000",
        ])
        .env(caja_node::crashpoint::DISK_FULL_ENV, "1")
        .env_remove(crashpoint::ENV)
        .env_remove("CAJA_NODE_HUB_URL")
        .env_remove("CAJA_NODE_PRINTER")
        .output()
        .expect("caja-node sell");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "a full disk stops the sales: {text}");
    let sentence = caja_node::messages::disk_fault();
    assert!(
        text.contains(&sentence),
        "the cashier reads why: {}",
        text.lines().last().unwrap_or_default()
    );
    let during = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["sale_id"].is_string())
        .count();
    assert!(during < 3000, "the disk filled up");
    let c = counts(&db, 0);
    let confirmed = i64::try_from(before.len() + during).expect("n");
    assert_eq!(
        (c.journal_sales, c.sales, c.sale_ops, c.print_jobs),
        (confirmed, confirmed, confirmed, confirmed),
        "every confirmed sale kept, none half-applied"
    );
    // Room again: it sells, and the journal verifies.
    let (after, status) = sell(&bin, &data, 2, None);
    assert!(status.success() && after.len() == 2, "{status:?}");
    let verified = Command::new(&bin)
        .arg("--data-dir")
        .arg(&data)
        .args(["--json", "verify"])
        .output()
        .expect("verify");
    assert!(verified.status.success(), "the journal verifies");
    assert_eq!(counts(&db, 0).journal_sales, confirmed + 2);
}
