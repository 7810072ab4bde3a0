//! Real processes, real SQLite files: a `caja-node` child sells in a loop and
//! prints each acknowledged sale; the test SIGKILLs it at random moments, restarts
//! and checks that every acknowledged sale is in the journal, the chain verifies
//! and projections equal a rebuild (DESIGN invariant 1, first half).
//!
//! Rounds: `CAJA_CRASH_ROUNDS` (default 12; the soak runs more).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caja_shared::entropy::{RandomSource, SeededRandom};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_caja-node");

fn node(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("caja-node runs")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = node(data, args);
    assert!(
        out.status.success(),
        "caja-node {args:?} failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Writes the test catalog as a pull page file and imports it with the CLI.
pub fn import_catalog(data: &Path) {
    let (events, cp) = catalog_chain();
    let page = caja_node::testkit::page_json(&events, &cp);
    let file = data.with_extension("page.json");
    std::fs::write(&file, serde_json::to_vec(&page).expect("json")).expect("write page");
    ok(
        data,
        &["hub", "import", "--file", file.to_str().expect("utf8 path")],
    );
}

fn init_register(data: &Path) {
    ok(
        data,
        &[
            "init",
            "--store",
            STORE,
            "--hub-key",
            &hub_key().public_key().to_hex(),
        ],
    );
    import_catalog(data);
    ok(
        data,
        &["shift", "open", "--cashier", "ana", "--float", "5000"],
    );
}

fn spawn_seller(data: &Path) -> Child {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--json",
            "sell",
            "--item",
            "ARROZ:2",
            "--item",
            "2000000000017:0.455",
            "--cash",
            "400",
            "--repeat",
            "1000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn seller")
}

#[test]
fn sigkill_mid_sale_loses_no_acknowledged_sale() {
    let rounds: u64 = std::env::var("CAJA_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let seed = std::env::var("CAJA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xc0ffee_u64);
    eprintln!("crash test: {rounds} rounds, seed {seed} (CAJA_CRASH_SEED replays the kill times)");
    let mut rng = SeededRandom::new(seed);
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_register(&data);
    let mut acked: Vec<String> = Vec::new();
    for round in 0..rounds {
        let mut child = spawn_seller(&data);
        let stdout = child.stdout.take().expect("stdout");
        // Let it sell for a random 20–300 ms, reading acknowledgements as they come.
        let run_for = Duration::from_millis(20 + rng.next_u64() % 280);
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        let started = Instant::now();
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let lines = reader.join().expect("reader");
        let before = acked.len();
        for l in lines {
            // A line cut by the kill is not an acknowledgement.
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) {
                let id = v["sale_id"].as_str().expect("sale_id").to_owned();
                acked.push(id);
            }
        }
        eprintln!("round {round}: {} sales acknowledged", acked.len() - before);
        // Restart: the chain verifies and every acknowledged sale is there.
        let v: serde_json::Value =
            serde_json::from_str(&ok(&data, &["--json", "verify"])).expect("json");
        assert_eq!(v["ok"], serde_json::json!(true));
        let db = rusqlite::Connection::open(data.join("caja-node.sqlite3")).expect("open");
        for id in &acked {
            let n: i64 = db
                .query_row("SELECT count(*) FROM sales WHERE sale_id = ?1", [id], |r| {
                    r.get(0)
                })
                .expect("query");
            assert_eq!(
                n, 1,
                "round {round}: acknowledged sale {id} is missing (seed {seed})"
            );
        }
        let journal_sales: i64 = db
            .query_row(
                "SELECT count(*) FROM journal WHERE kind = 'SaleCreated'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert!(usize::try_from(journal_sales).expect("count") >= acked.len());
        drop(db);
        let r: serde_json::Value =
            serde_json::from_str(&ok(&data, &["--json", "rebuild"])).expect("json");
        assert_eq!(
            r["equal"],
            serde_json::json!(true),
            "round {round}: projections differ from a rebuild"
        );
    }
    assert!(!acked.is_empty(), "the seller never acknowledged a sale");
}

#[test]
fn a_tampered_journal_is_named_by_verify_and_refuses_to_sell() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_register(&data);
    for _ in 0..5 {
        ok(&data, &["sell", "--item", "ARROZ", "--cash", "65"]);
    }
    {
        let db = rusqlite::Connection::open(data.join("caja-node.sqlite3")).expect("open");
        db.execute_batch("DROP TRIGGER journal_no_update;")
            .expect("drop trigger");
        let bytes: Vec<u8> = db
            .query_row("SELECT bytes FROM journal WHERE seq = 4", [], |r| r.get(0))
            .expect("row");
        let edited = String::from_utf8(bytes)
            .expect("utf8")
            .replace("\"total\":6500", "\"total\":650");
        db.execute(
            "UPDATE journal SET bytes = ?1 WHERE seq = 4",
            [edited.as_bytes()],
        )
        .expect("edit");
    }
    let out = node(&data, &["verify"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "verify must fail with the tamper code"
    );
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("#4"),
        "the message must name the first bad seq: {msg}"
    );
    let out = node(&data, &["sell", "--item", "ARROZ", "--cash", "65"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "a broken register must refuse to sell"
    );
    let out = node(&data, &["--json", "verify"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(v["error"], serde_json::json!("journal_broken"));
}

#[test]
fn a_backup_taken_while_selling_restores_and_is_marked() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_register(&data);
    let mut child = spawn_seller(&data);
    std::thread::sleep(Duration::from_millis(150));
    let backup = dir.path().join("backup.sqlite3");
    let b: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &["--json", "backup", "--out", backup.to_str().expect("path")],
    ))
    .expect("json");
    child.kill().expect("kill");
    child.wait().expect("wait");
    let backed_up = b["head_seq"].as_u64().expect("head_seq");
    assert!(backed_up >= 2);
    // Restoring the backup gives a verifiable register marked as restored.
    ok(
        &data,
        &["restore", "--from", backup.to_str().expect("path")],
    );
    let s: serde_json::Value =
        serde_json::from_str(&ok(&data, &["--json", "status"])).expect("json");
    assert_eq!(s["head_seq"].as_u64(), Some(backed_up));
    assert_eq!(s["restored_from_backup"], serde_json::json!(true));
    let v: serde_json::Value =
        serde_json::from_str(&ok(&data, &["--json", "verify"])).expect("json");
    assert_eq!(v["ok"], serde_json::json!(true));
    // Until it has synced, the restored register makes no new event.
    let out = node(&data, &["sell", "--item", "ARROZ", "--cash", "65"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("respaldo"));
    // A file that is not a Caja backup is refused, and changes nothing.
    let out = node(
        &data,
        &[
            "restore",
            "--from",
            data.join("caja-node.sqlite3").to_str().expect("path"),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
}
