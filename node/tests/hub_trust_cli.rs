//! The hub's audit-log trust as the cashier's CLI shows it: unverified before
//! any sync, critical (in Spanish, with the reason) once a sync found a
//! rewritten log, and `caja-node hub trust-log` to start over after support
//! looked into it.

use std::process::Command;

use caja_node::datadir::DataDir;

#[test]
fn status_shows_the_hub_log_trust_and_trust_log_resets_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("caja-1");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_caja-node"))
            .env("CAJA_NODE_DATA_DIR", &data)
            .args(args)
            .output()
            .expect("caja-node runs")
    };
    let store = "01935f4e-8a00-7000-8000-000000000001";
    assert!(run(&["init", "--store", store]).status.success());
    let status = |json: bool| {
        let out = if json {
            run(&["--json", "status"])
        } else {
            run(&["status"])
        };
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf8")
    };
    let v: serde_json::Value = serde_json::from_str(&status(true)).expect("json");
    assert_eq!(v["sync"]["hub_log"]["trust"], "unverified");
    assert!(status(false).contains("sin verificar"));

    // What the sync engine writes when the hub's log no longer extends the
    // head the register saw.
    let db = rusqlite::Connection::open(DataDir::new(data.clone()).db_path()).expect("db");
    db.execute(
        "UPDATE hub_audit SET tree_size = 40, root = ?1, trust = 'critical', problem = 'history was rewritten', problem_ms = 1 WHERE id = 1",
        ["a".repeat(64)],
    )
    .expect("mark critical");
    let text = status(false);
    assert!(text.contains("CRÍTICO"), "{text}");
    assert!(text.contains("history was rewritten"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&status(true)).expect("json");
    assert_eq!(v["sync"]["hub_log"]["trust"], "critical");
    assert_eq!(v["sync"]["hub_log"]["tree_size"], 40);

    let out = run(&["--json", "hub", "trust-log"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["hub_log"], "unverified");
    let v: serde_json::Value = serde_json::from_str(&status(true)).expect("json");
    assert_eq!(v["sync"]["hub_log"]["trust"], "unverified");
    assert!(v["sync"]["hub_log"]["tree_size"].is_null());
}
