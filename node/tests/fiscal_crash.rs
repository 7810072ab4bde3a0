//! Real processes, real SQLite files: a fiscal register (`fiscal_documents =
//! ["B02"]`, one granted block) sells in a loop and is SIGKILLed at random
//! moments. After every restart the numbers on its sales are exactly
//! 1, 2, …, k — no gap that is not accounted, none used twice — and the
//! block's next number is k + 1 (DESIGN invariant 2 at the register).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::ids::{GrantId, RequestId};
use caja_shared::kind::{EventBody, FiscalRangeGranted};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_caja-node");

fn ok(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("caja-node runs");
    assert!(
        out.status.success(),
        "caja-node {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn import(data: &Path, name: &str, page: &serde_json::Value) {
    let file = data.with_extension(name);
    std::fs::write(&file, serde_json::to_vec(page).expect("json")).expect("write page");
    ok(
        data,
        &["hub", "import", "--file", file.to_str().expect("utf8")],
    );
}

/// A register with the catalog and one block B02 1..=BLOCK granted to it.
fn fiscal_register(data: &Path, block: u64) {
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
    std::fs::write(
        data.join("config.toml"),
        "fiscal_documents = [\"B02\"]\nfiscal_block_size = 100\nfiscal_low_water = 10\n",
    )
    .expect("config");
    let (catalog, cp) = catalog_chain();
    import(
        data,
        "catalog.json",
        &caja_node::testkit::page_json(&catalog, &cp),
    );
    let db = rusqlite::Connection::open(data.join("caja-node.sqlite3")).expect("db");
    let device: String = db
        .query_row("SELECT device_id FROM device", [], |r| r.get(0))
        .expect("device");
    let mut rng = SeededRandom::new(7);
    let request = RequestId::new_v7(START_MS, &mut rng).expect("id");
    // What the sync engine records before it asks the hub.
    caja_node::fiscal::record_request(&db, request, "B02", block, START_MS).expect("request");
    drop(db);
    let last = catalog.last().expect("catalog");
    let (events, cp) = caja_node::testkit::hub_chain_page(
        &hub_key(),
        &"hub-1".parse().expect("key id"),
        STORE.parse().expect("store"),
        HUB_CHAIN.parse().expect("chain"),
        last.seq().get() + 1,
        last.hash(),
        START_MS,
        vec![EventBody::FiscalRangeGranted(FiscalRangeGranted {
            grant_id: GrantId::new_v7(START_MS, &mut rng).expect("id"),
            device: device.parse().expect("device"),
            request_id: request,
            series: "B02".into(),
            digits: 8,
            first: 1,
            last: block,
            expires_ms: 4_102_444_800_000, // 2100-01-01
            valid_until: "2099-12-31".into(),
        })],
        &mut rng,
    )
    .expect("grant");
    import(
        data,
        "grant.json",
        &caja_node::testkit::page_json(&events, &cp.expect("checkpoint")),
    );
    ok(
        data,
        &["shift", "open", "--cashier", "ana", "--float", "5000"],
    );
}

fn numbers(data: &Path) -> (Vec<u64>, i64) {
    let db = rusqlite::Connection::open(data.join("caja-node.sqlite3")).expect("db");
    let mut stmt = db
        .prepare("SELECT fiscal_number FROM sales ORDER BY seq")
        .expect("prepare");
    let ns: Vec<u64> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|n| n.expect("row")[3..].parse().expect("number"))
        .collect();
    let next: i64 = db
        .query_row("SELECT next FROM fiscal_blocks", [], |r| r.get(0))
        .expect("block");
    (ns, next)
}

#[test]
fn sigkill_mid_sale_never_skips_or_reuses_a_fiscal_number() {
    let rounds: u64 = std::env::var("CAJA_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut rng = SeededRandom::new(0xf15c);
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    let block = 100_000;
    fiscal_register(&data, block);
    let mut acked = Vec::new();
    for round in 0..rounds {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--json", "sell", "--item", "ARROZ:1", "--cash", "100", "--repeat", "1000000",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        let run_for = Duration::from_millis(20 + rng.next_u64() % 250);
        let started = Instant::now();
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        for l in reader.join().expect("reader") {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) {
                acked.push(
                    v["fiscal_number"]
                        .as_str()
                        .expect("fiscal number")
                        .to_owned(),
                );
            }
        }
        let (ns, next) = numbers(&data);
        let want: Vec<u64> = (1..=ns.len() as u64).collect();
        assert_eq!(
            ns, want,
            "round {round}: numbers are 1..=k, no gap, no reuse"
        );
        assert_eq!(
            next,
            ns.len() as i64 + 1,
            "round {round}: the block's next follows the last sale"
        );
        for n in &acked {
            let n: u64 = n[3..].parse().expect("number");
            assert!(
                ns.contains(&n),
                "round {round}: acknowledged {n} is missing"
            );
        }
    }
    assert!(!acked.is_empty(), "the seller never acknowledged a sale");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&data, &["--json", "rebuild"])).expect("json");
    assert_eq!(v["equal"], serde_json::json!(true));
    // The status shows what is left.
    let st: serde_json::Value =
        serde_json::from_str(&ok(&data, &["--json", "fiscal", "status"])).expect("json");
    assert_eq!(st[0]["series"], "B02");
    assert_eq!(
        st[0]["left"].as_u64().expect("left"),
        block - numbers(&data).0.len() as u64
    );
}
