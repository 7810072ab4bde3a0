//! Disk faults under the real binaries: the fault-injecting SQLite VFS
//! (`caja_faultvfs`) armed in `caja-node` (`CAJA_NODE_FAULT_AT`) and
//! `caja-hub` (`CAJA_HUB_FAULT_AT`) makes the `n`-th write or fsync and every
//! later one fail with EIO or ENOSPC — a disk gone bad — for each kind of
//! [`caja_faultvfs::KINDS`] at a range of `n`.
//!
//! - The register: `caja-node sell --repeat` stops with the Spanish sentence
//!   for a disk fault; every sale it printed is there once, nothing is
//!   half-applied (journal, sale rows, op records, print jobs, fiscal numbers
//!   and stock quota agree), the chain verifies, projections equal a rebuild,
//!   and with a working disk it sells on. A failed fsync may leave its sale
//!   on the disk (told "failed", found after the restart): allowed, never
//!   half of it. In one process, the register refuses while the disk fails
//!   and sells again once it works, without a restart.
//! - A sync round: `caja-node sync` with the fault ends with an exit code;
//!   the rounds after it (a working disk) end where an undisturbed one does.
//! - The hub: a running `caja-hub serve` whose disk fails answers
//!   `503 storage_unavailable` with `Retry-After`; the register's round fails
//!   and nothing of it is half-kept; once the disk works, the same running
//!   hub takes the rounds, and the end state equals an undisturbed round's
//!   (every event once, applied once, one audit entry each, the audit log
//!   verifies, `PRAGMA integrity_check` is `ok`).
//!
//! `CAJA_DISK_FAULT_SWEEP=long` sweeps more points (minutes); the default
//! takes seconds.

use std::path::Path;

use caja_node::crashpoint;
use caja_node::journal::Journal;
use caja_node::register::Register;
use caja_node::system::{OsRandom, SystemClock};
use caja_shared::kind::EventBody;
use caja_tests::procs::{HubProcess, NodeProcess};
use caja_tests::sweep::{
    accepted_entries, assert_sales_whole, audit_verifies_and_stop, copy_dir, copy_tree, counts,
    node_ok, op, prepare, reopened, sell_n, sell_with, sells_on, sync_until_quiet, synced, Synced,
};

fn long() -> bool {
    std::env::var("CAJA_DISK_FAULT_SWEEP").is_ok_and(|v| v == "long")
}

/// The points (`n`) of the register's sweep: the first writes (the open and
/// the first sale), within a sale's commit, and many sales in (a WAL
/// checkpoint comes every thousand pages).
fn node_points() -> Vec<u64> {
    if long() {
        vec![
            1, 2, 3, 4, 5, 7, 9, 13, 20, 31, 47, 70, 105, 160, 240, 360, 540, 810, 1200, 1800,
            2700, 4000,
        ]
    } else {
        vec![1, 4, 31, 240, 1800]
    }
}

#[test]
fn a_register_whose_disk_fails_refuses_in_spanish_keeps_every_confirmed_sale_and_sells_again() {
    let bin = caja_tests::procs::binary("caja-node").expect("caja-node binary");
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let template = prepare(tmp.path());
    let db_name = "caja-node.sqlite3";
    let start = counts(&template.join(db_name), 0);
    let template_next = start.block_next;
    let sentence = caja_node::messages::disk_fault();
    let mut summary = Vec::new();
    for kind in caja_faultvfs::KINDS {
        let (mut faulted, mut fsync_kept, mut acked_total) = (0, 0, 0);
        for n in node_points() {
            let spec = format!("{kind}:{n}");
            let data = tmp.path().join(format!("run-{}", spec.replace(':', "_")));
            copy_dir(&template, &data);
            let (acked, status, stderr) =
                sell_with(&bin, &data, 300, &[(crashpoint::FAULT_ENV, &spec)]);
            assert!(
                stderr.contains(&format!("armed {spec}")),
                "{spec}: the fault was armed: {stderr}"
            );
            if status.success() {
                // 300 sales never reached the n-th call: nothing to check.
                assert_eq!(acked.len(), 300, "{spec}");
                let _ = std::fs::remove_dir_all(&data);
                continue;
            }
            faulted += 1;
            assert!(
                stderr.contains(&sentence),
                "{spec}: the cashier reads why ({status:?}): {stderr}"
            );
            // Restart with a working disk: it opens and verifies.
            let c = reopened(&data, &spec, &acked, template_next);
            let sold = c.journal_sales - start.journal_sales;
            let told = i64::try_from(acked.len()).expect("n");
            // A failed write never commits; a failed fsync may have.
            if kind.starts_with("sync") && sold == told + 1 {
                fsync_kept += 1;
            } else {
                assert_eq!(sold, told, "{spec}: sales in the journal");
            }
            assert_sales_whole(&c, &start, &spec);
            // A working disk: it sells on, with the next numbers.
            sells_on(&bin, &data, &c, &spec);
            acked_total += acked.len();
            let _ = std::fs::remove_dir_all(&data);
        }
        assert!(
            faulted * 2 >= node_points().len(),
            "{kind}: most points reached ({faulted})"
        );
        summary.push(format!(
            "{kind}: {faulted} faults, {acked_total} confirmed sales checked, {fsync_kept} failed fsyncs found committed"
        ));
    }
    println!("register disk-fault sweep: {}", summary.join("; "));
}

#[test]
fn a_register_refuses_while_its_disk_fails_and_sells_again_once_it_works_without_a_restart() {
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let template = prepare(tmp.path());
    let data = tmp.path().join("live");
    copy_dir(&template, &data);
    let dir = caja_node::datadir::DataDir::new(&data);
    // Connections opened from now on go through the shim.
    caja_faultvfs::install().expect("the fault VFS");
    let mut reg = Register::open(&dir, SystemClock, OsRandom::new().expect("rng")).expect("opens");
    let sell = |reg: &mut Register<SystemClock, OsRandom>| {
        let req = caja_tests::sweep::arroz_cash_sale();
        reg.sell(op(), &req)
    };
    sell(&mut reg).expect("sells");
    let before = counts(&dir.db_path(), 0);
    for kind in caja_faultvfs::KINDS {
        let gate = tmp
            .path()
            .join(format!("broken-{}", kind.replace(':', "_")));
        let armed = caja_faultvfs::arm(
            caja_faultvfs::Fault::parse(&format!("{kind}:1")).expect("spec"),
            Some(&data),
            Some(&gate),
        )
        .expect("armed");
        std::fs::write(&gate, b"").expect("the disk fails");
        for _ in 0..3 {
            let e = sell(&mut reg).expect_err("refused while the disk fails");
            assert!(e.is_disk_fault(), "{kind}: a disk fault: {e}");
            assert_eq!(
                caja_node::messages::error(&e),
                caja_node::messages::disk_fault(),
                "{kind}: the cashier reads why"
            );
        }
        std::fs::remove_file(&gate).expect("the disk works");
        armed.disarm();
        sell(&mut reg).unwrap_or_else(|e| panic!("{kind}: sells again: {e}"));
    }
    drop(reg);
    let after = counts(&dir.db_path(), 0);
    // One sale per kind after the fault; a failed fsync may have kept its
    // sale too (whole).
    let sold = after.journal_sales - before.journal_sales;
    assert!(
        (3..=3 + 3 * 3).contains(&sold),
        "sales after the faults: {sold}"
    );
    assert_eq!(
        (after.sales - before.sales, after.sale_ops - before.sale_ops),
        (sold, sold),
        "nothing half-applied"
    );
    let key = caja_node::keyfile::read_key_file(&dir.key_path()).expect("key");
    let reg = Register::open(&dir, SystemClock, OsRandom::new().expect("rng")).expect("reopens");
    Journal::verify(reg.conn(), &key, None, |_, _| {}).expect("the chain verifies");
}

// ---------------------------------------------------------------------------
// The hub.

const TOKEN: &str = "caja-disk-fault-admin-token-0123";
const SALES: u32 = 150;

/// A stopped hub and a register with [`SALES`] unsynced sales: the template
/// of every run; the register's device id.
fn prepare_hub(tmp: &Path, port: u16) -> (HubProcess, String) {
    let mut hub = HubProcess::init_and_serve(&tmp.join("hub"), port, TOKEN).expect("hub");
    let store = hub.admin(&["create-store", "Colmado"]).expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    let mut items = Vec::new();
    let mut prices = Vec::new();
    for b in caja_node::testkit::sample_catalog_bodies() {
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
    let token = hub
        .admin(&["create-token", &store, "caja 1"])
        .expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let node = NodeProcess::new(&tmp.join("caja-1"));
    let device = node_ok(&node, &["enroll", "--hub", &hub.url, "--token", &token])["device"]
        .as_str()
        .expect("device")
        .to_owned();
    node_ok(&node, &["sync"]);
    node_ok(
        &node,
        &["shift", "open", "--cashier", "ana", "--float", "0"],
    );
    sell_n(&node, "2000000000017:0.455", SALES);
    // New prices at the hub: hub-chain events the next round pulls.
    for p in &mut prices {
        let c = p["unit_price"].as_i64().expect("unit_price");
        p["unit_price"] = (c + 100).into();
    }
    std::fs::write(
        &catalog,
        serde_json::json!({ "items": [], "prices": prices }).to_string(),
    )
    .expect("price file");
    hub.admin(&["load-catalog", catalog.to_str().expect("path")])
        .expect("new prices");
    hub.terminate().expect("stop hub");
    (hub, device)
}

/// `POST /v1/admin/stores`: the status, `Retry-After` and the body.
fn create_store(url: &str, name: &str) -> (u16, Option<String>, serde_json::Value) {
    let body = serde_json::json!({ "name": name }).to_string();
    caja_tests::sweep::http(
        url,
        "POST",
        "/v1/admin/stores",
        &[
            ("Authorization", format!("Bearer {TOKEN}")),
            ("Content-Type", "application/json".into()),
        ],
        body.as_bytes(),
    )
    .expect("the hub answers")
}

fn hub_points() -> Vec<u64> {
    if long() {
        vec![1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]
    } else {
        vec![1, 4]
    }
}

#[test]
fn a_hub_whose_disk_fails_answers_503_keeps_nothing_half_written_and_recovers_when_the_disk_does() {
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let port = caja_tests::procs::free_port().expect("port");
    let (mut hub, device) = prepare_hub(tmp.path(), port);
    let root = tmp.path().to_path_buf();
    let gate = root.join("disk-broken");
    let mut run = |name: &str, fault: Option<&str>| -> (Synced, u64, bool) {
        let dir = root.join(format!("run-{name}"));
        copy_tree(&root.join("hub"), &dir.join("hub"));
        copy_tree(&root.join("caja-1"), &dir.join("caja-1"));
        hub.dir = dir.join("hub");
        let node = NodeProcess::new(&dir.join("caja-1"));
        let mut reached = false;
        if let Some(spec) = fault {
            hub.serve_env = vec![
                (caja_hub::crashpoint::FAULT_ENV.to_owned(), spec.to_owned()),
                (
                    caja_hub::crashpoint::FAULT_GATE_ENV.to_owned(),
                    gate.to_string_lossy().into_owned(),
                ),
            ];
            hub.serve().expect("hub serves the copy, armed");
            hub.serve_env.clear();
            // The disk fails under the running hub.
            std::fs::write(&gate, b"").expect("gate");
            let round = node.output(&["sync"]).expect("caja-node sync");
            let (status, retry_after, body) = create_store(&hub.url, "Durante la falla");
            reached = !round.status.success() || status == 503;
            if reached {
                assert_eq!(
                    (status, retry_after.as_deref(), body["error"].as_str()),
                    (503, Some("10"), Some("storage_unavailable")),
                    "{name}: a write while the disk fails: {body}"
                );
            } else {
                assert!((200..300).contains(&status), "{name}: {status} {body}");
            }
            assert!(hub.is_running(), "{name}: the hub runs on");
            // The disk works again, under the same process.
            std::fs::remove_file(&gate).expect("mend");
        } else {
            hub.serve().expect("hub serves the copy");
        }
        sync_until_quiet(&node, name);
        let verified = node.output(&["verify"]).expect("verify");
        assert!(verified.status.success(), "{name}: the journal verifies");
        let s = synced(&hub, &node, &device, "");
        let accepted = accepted_entries(&hub, &device);
        let h = hub.db().expect("hub db");
        let ok: String = h
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(ok, "ok", "{name}: the hub's database is whole");
        let stores: i64 = h
            .query_row(
                "SELECT count(*) FROM stores WHERE name = 'Durante la falla'",
                [],
                |r| r.get(0),
            )
            .expect("stores");
        assert_eq!(
            stores,
            i64::from(fault.is_some() && !reached),
            "{name}: a store refused with 503 was not kept"
        );
        drop(h);
        audit_verifies_and_stop(&mut hub, &dir, name);
        (s, accepted, reached)
    };
    let (expected, accepted, _) = run("baseline", None);
    assert_eq!(expected.acked, expected.head, "baseline: all acknowledged");
    assert!(expected.head > u64::from(SALES));
    assert_eq!(accepted, expected.head, "one audit entry per event");
    let mut summary = Vec::new();
    for kind in caja_faultvfs::KINDS {
        let mut faulted = 0;
        for n in hub_points() {
            let spec = format!("{kind}:{n}");
            let (got, got_accepted, reached) = run(&spec.replace(':', "_"), Some(&spec));
            faulted += u32::from(reached);
            assert_eq!(
                got, expected,
                "{spec}: after the disk works the rounds end where an undisturbed one does"
            );
            assert_eq!(
                got_accepted, accepted,
                "{spec}: each event accepted once in the audit log"
            );
        }
        assert!(faulted >= 1, "{kind}: reached at least once");
        summary.push(format!("{kind}: {faulted} of {}", hub_points().len()));
    }
    println!("hub disk-fault sweep: {}", summary.join("; "));
}

/// The register's points inside a sync round for a fault `kind`: its writes
/// (the push's acknowledgement, the hub head, the pull page) or its fsyncs
/// (one per commit, a handful per round).
fn round_points(kind: &str) -> Vec<u64> {
    match (kind.starts_with("sync"), long()) {
        (true, false) => vec![1, 2, 3],
        (true, true) => (1..=8).collect(),
        (false, false) => vec![1, 5, 14, 24],
        (false, true) => vec![1, 2, 3, 4, 6, 9, 12, 14, 16, 18, 20, 24, 28],
    }
}

#[test]
fn a_register_whose_disk_fails_inside_a_sync_round_converges_once_it_works() {
    let bin = caja_tests::procs::binary("caja-node").expect("caja-node binary");
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let port = caja_tests::procs::free_port().expect("port");
    let (mut hub, device) = prepare_hub(tmp.path(), port);
    let root = tmp.path().to_path_buf();
    let mut run = |name: &str, fault: Option<&str>| -> (Synced, u64, bool) {
        let dir = root.join(format!("round-{name}"));
        copy_tree(&root.join("hub"), &dir.join("hub"));
        copy_tree(&root.join("caja-1"), &dir.join("caja-1"));
        hub.dir = dir.join("hub");
        hub.serve().expect("hub serves the copy");
        let node = NodeProcess::new(&dir.join("caja-1"));
        let mut reached = false;
        if let Some(spec) = fault {
            let out = std::process::Command::new(&bin)
                .arg("--data-dir")
                .arg(dir.join("caja-1"))
                .args(["--json", "sync"])
                .env(crashpoint::FAULT_ENV, spec)
                .env_remove(crashpoint::FAULT_GATE_ENV)
                .env_remove("CAJA_NODE_HUB_URL")
                .env_remove("CAJA_NODE_PRINTER")
                .output()
                .expect("caja-node sync");
            reached = !out.status.success();
            assert!(
                out.status.code().is_some(),
                "{name}: the round ends with an exit code, not a signal ({:?})",
                out.status
            );
        }
        // The disk works again: the next rounds finish the work.
        sync_until_quiet(&node, name);
        let verified = node.output(&["verify"]).expect("verify");
        assert!(verified.status.success(), "{name}: the journal verifies");
        let s = synced(&hub, &node, &device, "");
        let accepted = accepted_entries(&hub, &device);
        hub.terminate().expect("stop hub");
        let data = caja_node::datadir::DataDir::new(dir.join("caja-1"));
        let mut reg = Register::open(&data, SystemClock, OsRandom::new().expect("rng"))
            .unwrap_or_else(|e| panic!("{name}: reopens: {e}"));
        let (live, rebuilt) = reg.rebuild().expect("rebuild");
        assert_eq!(live, rebuilt, "{name}: projections equal a rebuild");
        drop(reg);
        let _ = std::fs::remove_dir_all(&dir);
        (s, accepted, reached)
    };
    let (expected, accepted, _) = run("baseline", None);
    assert_eq!(expected.acked, expected.head, "baseline: all acknowledged");
    let mut summary = Vec::new();
    for kind in caja_faultvfs::KINDS {
        let mut faulted = 0;
        for n in round_points(kind) {
            let spec = format!("{kind}:{n}");
            let (got, got_accepted, reached) = run(&spec.replace(':', "_"), Some(&spec));
            faulted += u32::from(reached);
            assert_eq!(
                got, expected,
                "{spec}: the rounds after the fault end where an undisturbed one does"
            );
            assert_eq!(got_accepted, accepted, "{spec}: each event accepted once");
        }
        assert!(faulted >= 1, "{kind}: reached at least once");
        summary.push(format!("{kind}: {faulted} of {}", round_points(kind).len()));
    }
    println!(
        "register sync-round disk-fault sweep: {}",
        summary.join("; ")
    );
}

/// A disk fault inside the checkpointer's checkpoint (the register's WAL
/// checkpoints on their own thread, `caja_node::checkpointer`): the write
/// into the database file fails torn; a process killed right then (its
/// files copied as they are) opens with every acknowledged sale whole and
/// an intact database, and the live register's checkpointer copies the WAL
/// at its next pass once the disk works. The sweeps above run the selling
/// loop with the checkpointer off (a fault armed: `Db::start_checkpointer`),
/// so their n-th write stays the same write in every run.
#[test]
fn a_disk_fault_in_the_checkpointers_pass_loses_no_acknowledged_sale() {
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let template = prepare(tmp.path());
    let data = tmp.path().join("live");
    copy_dir(&template, &data);
    let dir = caja_node::datadir::DataDir::new(&data);
    caja_faultvfs::install().expect("the fault VFS");
    let mut reg = Register::open(&dir, SystemClock, OsRandom::new().expect("rng")).expect("opens");
    // Passes only when asked: the test decides when the thread checkpoints.
    let policy = caja_node::checkpointer::CheckpointPolicy {
        start_pages: 1_000_000,
        hard_pages: 1_000_000,
        idle_ms: 0,
    };
    assert!(reg.start_checkpointer(policy).expect("starts"));
    let sell = |reg: &mut Register<SystemClock, OsRandom>| {
        let req = caja_tests::sweep::arroz_cash_sale();
        reg.sell(op(), &req).expect("sells")
    };
    let before = counts(&dir.db_path(), 0);
    for _ in 0..40 {
        sell(&mut reg);
    }
    let wait =
        |reg: &Register<SystemClock, OsRandom>, what: &str, done: &dyn Fn(u64, u64) -> bool| {
            let t0 = std::time::Instant::now();
            loop {
                let s = reg.checkpoint_stats().expect("running");
                if done(s.thread_checkpoints, s.failed) {
                    return s;
                }
                assert!(t0.elapsed().as_secs() < 20, "{what}: {s:?}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
    let armed = caja_faultvfs::arm(
        caja_faultvfs::Fault::parse("write:eio:1").expect("spec"),
        Some(&data),
        None,
    )
    .expect("armed");
    reg.request_checkpoint();
    let s = wait(&reg, "the pass failed", &|_, failed| failed >= 1);
    assert_eq!(s.thread_checkpoints, 0, "{s:?}");
    assert!(armed.seen() >= 1, "the fault hit the checkpoint's write");
    // The files as a kill now leaves them: the database file with a torn
    // page, the WAL whole.
    let killed = tmp.path().join("killed");
    std::fs::create_dir_all(&killed).expect("dir");
    for suffix in ["", "-wal"] {
        let from = format!("{}{suffix}", dir.db_path().display());
        let to = killed.join(format!("caja-node.sqlite3{suffix}"));
        std::fs::copy(&from, &to).expect("copy");
    }
    armed.disarm();
    let after = counts(&killed.join("caja-node.sqlite3"), 0);
    assert_eq!(
        (
            after.journal_sales - before.journal_sales,
            after.sales - before.sales,
            after.sale_ops - before.sale_ops,
            after.print_jobs - before.print_jobs,
        ),
        (40, 40, 40, 40),
        "every acknowledged sale, whole"
    );
    let c = rusqlite::Connection::open(killed.join("caja-node.sqlite3")).expect("open copy");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(ok, "ok");
    // The disk works again: the next pass copies the WAL.
    reg.request_checkpoint();
    wait(&reg, "a later pass copied", &|passes, _| passes >= 1);
    sell(&mut reg);
    let s = reg.stop_checkpointer().expect("stats");
    assert!(s.failed >= 1 && s.thread_checkpoints >= 1, "{s:?}");
    drop(reg);
    let key = caja_node::keyfile::read_key_file(&dir.key_path()).expect("key");
    let reg = Register::open(&dir, SystemClock, OsRandom::new().expect("rng")).expect("reopens");
    Journal::verify(reg.conn(), &key, None, |_, _| {}).expect("the chain verifies");
    assert_eq!(counts(&dir.db_path(), 0).sales - before.sales, 41);
}
