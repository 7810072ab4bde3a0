//! Replacing a register's hardware, with the real binaries (a `caja-hub`
//! process, `caja-node` commands), the two ways docs/backup-restore.md
//! describes:
//! 1. its backup restored on the new machine as the same device, re-keyed by
//!    head office (`caja-hub admin rotate --no-grace`, `caja-node rekey`):
//!    the sale it never synced reaches the hub, and its old key is refused;
//! 2. nothing recoverable: the old device written off (its numbers never
//!    issued again, its key refused) and a new register enrolled, whose
//!    numbers are new.

use std::path::Path;
use std::process::Command;

use caja_shared::kind::EventBody;
use caja_tests::cluster::ADMIN_TOKEN;
use caja_tests::procs::{binary, free_port, HubProcess, NodeProcess};
use serde_json::{json, Value};

const FISCAL: &str =
    "fiscal_documents = [\"B02\"]\nfiscal_document = \"B02\"\nfiscal_block_size = 10\nfiscal_low_water = 4\n";

fn catalog_file(path: &Path) {
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
    std::fs::write(
        path,
        json!({ "items": items, "prices": prices }).to_string(),
    )
    .expect("catalog file");
}

/// `caja-hub fiscal --url <hub> <args…>`; its JSON answer.
fn fiscal_cli(hub: &HubProcess, args: &[&str]) -> Value {
    let out = Command::new(binary("caja-hub").expect("caja-hub"))
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["fiscal", "--url", &hub.url])
        .args(args)
        .output()
        .expect("caja-hub runs");
    assert!(
        out.status.success(),
        "caja-hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn setup(tmp: &Path) -> (HubProcess, String) {
    let port = free_port().expect("port");
    let hub = HubProcess::init_and_serve(&tmp.join("hub"), port, ADMIN_TOKEN).expect("hub");
    let store = hub.admin(&["create-store", "Colmado"]).expect("store")["store"]
        .as_str()
        .expect("store")
        .to_owned();
    let catalog = tmp.join("catalog.json");
    catalog_file(&catalog);
    hub.admin(&["load-catalog", catalog.to_str().expect("path")])
        .expect("catalog");
    fiscal_cli(
        &hub,
        &[
            "load-series",
            "--prefix",
            "B02",
            "--digits",
            "8",
            "--first",
            "1",
            "--last",
            "1000",
            "--valid-until",
            "2099-12-31",
        ],
    );
    (hub, store)
}

fn register(hub: &HubProcess, store: &str, dir: &Path) -> (NodeProcess, String) {
    let token = hub.admin(&["create-token", store, "caja"]).expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let node = NodeProcess::new(dir);
    let device = node
        .json(&["enroll", "--hub", &hub.url, "--token", &token])
        .expect("enroll")["device"]
        .as_str()
        .expect("device")
        .to_owned();
    let config = dir.join("config.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(FISCAL);
    std::fs::write(&config, text).expect("config");
    node.json(&["sync"]).expect("first sync");
    node.json(&["shift", "open", "--cashier", "ana", "--float", "0"])
        .expect("shift");
    (node, device)
}

fn sell(node: &NodeProcess) -> String {
    node.json(&["sell", "--item", "ARROZ", "--cash", "100.00"])
        .expect("sale")["fiscal_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn hub_holds(hub: &HubProcess, device: &str) -> i64 {
    hub.db()
        .expect("db")
        .query_row(
            "SELECT COUNT(*) FROM events WHERE device_id = ?1",
            [device],
            |r| r.get(0),
        )
        .expect("count")
}

fn journal_head(node: &NodeProcess) -> i64 {
    node.db()
        .expect("db")
        .query_row("SELECT coalesce(max(seq), 0) FROM journal", [], |r| {
            r.get(0)
        })
        .expect("head")
}

#[test]
fn a_register_restored_on_new_hardware_and_rekeyed_keeps_its_unsynced_sale() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, store) = setup(tmp.path());
    let (old, device) = register(&hub, &store, &tmp.path().join("old"));
    sell(&old);
    old.json(&["sync"]).expect("sync");
    // A sale the hub never sees, then the timer's backup into a directory.
    let unsynced = sell(&old);
    let usb = tmp.path().join("usb");
    std::fs::create_dir(&usb).expect("usb dir");
    let backup = old
        .json(&["backup", "--out", usb.to_str().expect("path")])
        .expect("backup")["backup"]
        .as_str()
        .expect("backup path")
        .to_owned();
    assert!(backup.starts_with(usb.to_str().expect("path")), "{backup}");
    let old_head = journal_head(&old);

    // The old machine dies. The new one gets the backup, the configuration,
    // and a key from head office.
    let new_dir = tmp.path().join("new");
    std::fs::create_dir(&new_dir).expect("new dir");
    std::fs::copy(old.dir.join("config.toml"), new_dir.join("config.toml")).expect("config");
    let new = NodeProcess::new(&new_dir);
    new.json(&["restore", "--from", &backup]).expect("restore");
    let rotated = hub
        .admin(&["rotate", &device, "--no-grace"])
        .expect("rotate");
    let key_file = tmp.path().join("new.key");
    std::fs::write(&key_file, rotated["key"].as_str().expect("key")).expect("key file");
    let rekeyed = new
        .json(&[
            "rekey",
            "--key-id",
            rotated["key_id"].as_str().expect("key id"),
            "--key-file",
            key_file.to_str().expect("path"),
        ])
        .expect("rekey");
    assert_eq!(rekeyed["device"], device.as_str());
    new.json(&["sync"]).expect("sync with the new key");
    assert_eq!(
        hub_holds(&hub, &device),
        old_head,
        "the unsynced sale survived"
    );
    let number = sell(&new);
    assert_ne!(number, unsynced, "no fiscal number used twice");
    new.json(&["sync"]).expect("sync");
    assert_eq!(hub_holds(&hub, &device), old_head + 1);
    // The old key is refused.
    let refused = old.output(&["sync"]).expect("old sync");
    assert!(!refused.status.success());
}

#[test]
fn a_dead_register_written_off_is_replaced_by_a_new_enrollment() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, store) = setup(tmp.path());
    let (old, old_device) = register(&hub, &store, &tmp.path().join("old"));
    let used = sell(&old);
    old.json(&["sync"]).expect("sync");
    fiscal_cli(
        &hub,
        &["write-off", &old_device, "--reason", "disco dañado"],
    );
    let (new, new_device) = register(&hub, &store, &tmp.path().join("new"));
    assert_ne!(new_device, old_device);
    let number = sell(&new);
    assert!(!number.is_empty() && number != used, "{number} vs {used}");
    new.json(&["sync"]).expect("sync");
    assert_eq!(hub_holds(&hub, &new_device), journal_head(&new));
    let refused = old.output(&["sync"]).expect("old sync");
    assert!(
        !refused.status.success(),
        "a written-off register is refused"
    );
    // Every number of the series is accounted for, none twice.
    let report = fiscal_cli(&hub, &["report", "--series", "B02"]);
    let text = report.to_string();
    assert!(text.contains("written_off"), "{text}");
}
