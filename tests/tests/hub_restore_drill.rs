//! The hub restore drill (DESIGN "Hub restore (disaster recovery)"): a real
//! `caja-hub` process with three registers is backed up while it serves
//! (`caja-hub backup --out --secrets-out`); work goes on (sales, a price
//! change, fiscal blocks, a conflict resolved by head office, a sale never
//! synced); the hub's data directory is deleted and restored from the backup
//! and the secrets bundle (`caja-hub restore --secrets`) onto an empty
//! directory. After one sync round of each register every register event and
//! every hub event is at the hub exactly once, no fiscal number is granted
//! twice (the blocks granted after the backup come back from the registers
//! before any new grant: the store is gated until then), the registers keep
//! trusting the hub's audit log across the signed `restored` entry and show
//! the restore as a warning until head office acknowledges it.
//!
//! The registers work through the node library (`Register`, `SyncEngine`: the
//! code `caja-node` runs) with their own SQLite files, over real loopback
//! HTTP through a proxy each; the round that follows the restore is the real
//! `caja-node sync` binary on each register's data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use caja_hub::admin_client::{install_crypto_provider, AdminClient};
use caja_node::datadir::{Adopted, DataDir};
use caja_node::register::{CustomerRequest, Register};
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::client::HubClient;
use caja_node::sync::engine::SyncEngine;
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::kind::{EventBody, PaymentMethod};
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, op_id, Till, ADMIN_TOKEN};
use caja_tests::procs::{binary, free_port, HubProcess, NodeProcess};
use caja_tests::proxy::{Mode, Proxy};
use serde_json::{json, Value};

const ARROZ: &str = "7501234567890";
const FISCAL: &str =
    "fiscal_documents = [\"B02\"]\nfiscal_document = \"B02\"\nfiscal_block_size = 10\nfiscal_low_water = 4";

/// The admin API of the hub process (a client of its own runtime).
struct Api {
    rt: tokio::runtime::Runtime,
    admin: AdminClient,
}

impl Api {
    fn new(url: &str) -> Api {
        install_crypto_provider();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Api {
            rt,
            admin: AdminClient::new(url, ADMIN_TOKEN).expect("admin client"),
        }
    }
    fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.rt
            .block_on(self.admin.post(path, body))
            .map_err(|e| e.to_string())
    }
    fn get(&self, path: &str) -> Value {
        self.rt.block_on(self.admin.get(path)).expect("admin get")
    }
    fn catalog(&self, body: &Value) -> Result<Value, String> {
        self.rt
            .block_on(self.admin.load_catalog(body))
            .map_err(|e| e.to_string())
    }
}

fn catalog_body() -> Value {
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
    json!({ "items": items, "prices": prices })
}

fn enroll(hub: &HubProcess, store: &str, name: &str, root: &Path) -> Till {
    let port: u16 = hub
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("hub port");
    let proxy = Proxy::start(([127, 0, 0, 1], port).into()).expect("proxy");
    let token = hub.admin(&["create-token", store, name]).expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let client = HubClient::new(&proxy.url(), 10_000).expect("client");
    let e = client.enroll(&token).expect("enroll");
    let data = DataDir::new(root.join(name));
    caja_node::datadir::adopt_enrollment(
        &data,
        &Adopted {
            store: e.store,
            device: e.device,
            key_id: e.key_id.clone(),
            key: e.key.clone(),
            hub_public_key: e.hub_key,
            hub_url: proxy.url(),
        },
        caja_shared::clock::Clock::now_ms(&SystemClock),
    )
    .expect("adopt");
    let register = Register::open(&data, SystemClock, OsRandom::new().expect("rng")).expect("open");
    let sync = SyncEngine::open(
        &data,
        &proxy.url(),
        SystemClock,
        OsRandom::new().expect("rng"),
        fast_sync_settings(),
    )
    .expect("sync");
    let mut t = Till {
        name: name.to_owned(),
        data,
        register,
        sync,
        proxy,
    };
    t.configure(FISCAL, fast_sync_settings())
        .expect("configure");
    t
}

fn sell(t: &mut Till, n: usize) {
    for _ in 0..n {
        t.register
            .sell(
                op_id(),
                &SaleRequest {
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
                },
            )
            .unwrap_or_else(|e| panic!("{} sale: {e}", t.name));
    }
}

fn round(t: &mut Till) -> caja_node::sync::engine::RoundReport {
    t.sync
        .round()
        .unwrap_or_else(|e| panic!("{} sync: {e}", t.name))
}

/// One sync round of the real `caja-node` binary on the register's data
/// directory (through its proxy: the hub URL in its config), then the
/// in-process register and engine reopened on what the binary wrote.
fn binary_round(t: &mut Till) {
    NodeProcess::new(t.data.root())
        .json(&["sync"])
        .unwrap_or_else(|e| panic!("{}: caja-node sync: {e}", t.name));
    t.reopen(fast_sync_settings())
        .unwrap_or_else(|e| panic!("{} reopen: {e}", t.name));
}

/// Every event the hub holds: (device, seq) → hash.
fn hub_events(hub: &HubProcess) -> BTreeMap<(String, i64), String> {
    let db = hub.db().expect("hub db");
    let mut stmt = db
        .prepare("SELECT device_id, seq, hash FROM events")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .expect("rows");
    let mut out = BTreeMap::new();
    for r in rows {
        let (k, v) = r.expect("row");
        assert!(out.insert(k, v).is_none(), "an event twice at the hub");
    }
    out
}

/// A register's own journal: (device, seq) → hash.
fn journal(t: &Till) -> BTreeMap<(String, i64), String> {
    let device = t.register.device().device.to_string();
    let mut stmt = t
        .register
        .conn()
        .prepare("SELECT seq, bytes FROM journal ORDER BY seq")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .expect("rows");
    rows.map(|r| {
        let (seq, bytes) = r.expect("row");
        let e = caja_shared::event::Event::from_json(&bytes).expect("event");
        ((device.clone(), seq), e.hash().to_hex())
    })
    .collect()
}

/// Every fiscal block granted in the hub chains: (first, last, device).
fn grants(hub: &HubProcess) -> Vec<(u64, u64, String)> {
    let db = hub.db().expect("hub db");
    let mut stmt = db
        .prepare("SELECT bytes FROM events WHERE kind = 'FiscalRangeGranted' ORDER BY id")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .expect("rows");
    rows.map(|b| {
        let v: Value = serde_json::from_slice(&b.expect("row")).expect("json");
        let body = &v["body"];
        (
            body["first"].as_u64().expect("first"),
            body["last"].as_u64().expect("last"),
            body["device"].as_str().expect("device").to_owned(),
        )
    })
    .collect()
}

fn assert_disjoint(blocks: &[(u64, u64, String)]) {
    let mut sorted = blocks.to_vec();
    sorted.sort();
    for w in sorted.windows(2) {
        assert!(
            w[0].1 < w[1].0,
            "fiscal numbers granted twice: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
}

fn hub_cli(args: &[&str]) -> String {
    let out = Command::new(binary("caja-hub").expect("caja-hub"))
        .args(args)
        .output()
        .expect("caja-hub runs");
    assert!(
        out.status.success(),
        "caja-hub {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_hub_restored_from_a_backup_loses_nothing_and_grants_no_number_twice() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_dir = tmp.path().join("hub");
    let port = free_port().expect("port");
    let mut hub = HubProcess::init_and_serve(&hub_dir, port, ADMIN_TOKEN).expect("hub");
    let api = Api::new(&hub.url);
    let store = hub
        .admin(&["create-store", "Colmado La Esquina"])
        .expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    api.catalog(&catalog_body()).expect("catalog");
    api.post(
        "/v1/admin/fiscal/series",
        &json!({"prefix":"B02","digits":8,"first":1,"last":100000,"valid_until":"2099-12-31"}),
    )
    .expect("series");
    let mut tills: Vec<Till> = ["caja-1", "caja-2", "caja-3"]
        .iter()
        .map(|n| enroll(&hub, &store, n, tmp.path()))
        .collect();
    for t in &mut tills {
        assert_eq!(round(t).fiscal_blocks, 1);
        t.register
            .open_shift(op_id(), "ana", Money(0))
            .expect("shift");
        sell(t, 2);
        round(t);
    }

    // The backup, taken while the hub serves, and the secrets bundle kept
    // apart.
    let backup = tmp.path().join("hub-backup.db");
    let secrets = tmp.path().join("hub-secrets.json");
    let printed = hub_cli(&[
        "backup",
        "--data-dir",
        hub_dir.to_str().expect("path"),
        "--out",
        backup.to_str().expect("path"),
        "--secrets-out",
        secrets.to_str().expect("path"),
    ]);
    assert!(printed.contains("backup written"), "{printed}");
    assert!(hub_dir.join("backup-stamp").exists());
    let at_backup = grants(&hub);

    // Work goes on: a price change, sales bringing every register below its
    // low-water mark (a new block each), a conflict head office resolves.
    api.catalog(&json!({"prices":[{"product": ARROZ, "unit_price": 7000}]}))
        .expect("price change");
    for t in &mut tills {
        sell(t, 7);
        assert_eq!(round(t).fiscal_blocks, 1, "{}", t.name);
    }
    let customer = tills[0]
        .register
        .upsert_customer(
            op_id(),
            &CustomerRequest {
                customer_id: None,
                name: "Doña Carmen".into(),
                phone: None,
                tax_id: None,
                credit_limit: 1_000_000,
            },
        )
        .expect("customer")
        .customer_id;
    let fiado = tills[0]
        .register
        .sell(
            op_id(),
            &SaleRequest {
                lines: vec![LineRequest {
                    code: "ARROZ".into(),
                    qty_milli: 2000,
                    discount: None,
                    unit_price: None,
                }],
                payments: vec![PaymentRequest {
                    method: PaymentMethod::Fiado,
                    amount: 14_000,
                    reference: None,
                }],
                discount: None,
                customer: Some(customer),
            },
        )
        .expect("fiado sale");
    round(&mut tills[0]);
    round(&mut tills[1]);
    tills[1].set_network(Mode::Down);
    tills[0]
        .register
        .void(op_id(), fiado.sale_id, "devolvió todo")
        .expect("void");
    round(&mut tills[0]);
    tills[1]
        .register
        .pay_debt(op_id(), customer, Money(5_000), PaymentMethod::Cash)
        .expect("offline payment");
    tills[1].set_network(Mode::Up);
    round(&mut tills[1]);
    let open = api.get("/v1/admin/conflicts?state=open");
    let conflict = &open["conflicts"][0];
    assert_eq!(conflict["reason"], "payment_on_voided_debt", "{open}");
    let winner = conflict["candidates"][0]
        .as_str()
        .expect("candidate")
        .to_owned();
    api.post(
        &format!(
            "/v1/admin/conflicts/{}/resolve",
            conflict["conflict_id"].as_str().expect("id")
        ),
        &json!({"winner": winner, "note": "se mantiene la anulación", "by": "maria"}),
    )
    .expect("resolve");
    for t in &mut tills {
        round(t);
    }
    // A sale the hub never sees before it is lost.
    tills[2].set_network(Mode::Down);
    sell(&mut tills[2], 1);
    let before = hub_events(&hub);
    let after_backup: Vec<_> = grants(&hub)
        .into_iter()
        .filter(|g| !at_backup.contains(g))
        .collect();
    assert_eq!(
        after_backup.len(),
        3,
        "one block per register after the backup"
    );

    // The hub's disk is lost; it comes back from the backup and the secrets.
    hub.kill().expect("kill hub");
    std::fs::remove_dir_all(&hub_dir).expect("lose the data directory");
    let printed = hub_cli(&[
        "restore",
        backup.to_str().expect("path"),
        "--data-dir",
        hub_dir.to_str().expect("path"),
        "--secrets",
        secrets.to_str().expect("path"),
    ]);
    assert!(printed.contains("restored: epoch 1"), "{printed}");
    hub.serve().expect("restored hub serves");
    // A new client: the old one's pooled connections died with the process.
    let api = Api::new(&hub.url);
    let lost: Vec<_> = before
        .keys()
        .filter(|k| !hub_events(&hub).contains_key(*k))
        .cloned()
        .collect();
    assert!(!lost.is_empty(), "the backup must be older than the work");

    // Gated: no new hub event for the store until its registers reported.
    let status = api.get("/v1/admin/restore");
    assert_eq!(status["epoch"], 1, "{status}");
    assert_eq!(status["stores"][0]["gated"], true, "{status}");
    assert_eq!(
        status["stores"][0]["waiting"].as_array().map(Vec::len),
        Some(3)
    );
    let refused = api
        .catalog(&json!({"prices":[{"product": ARROZ, "unit_price": 7100}]}))
        .expect_err("a price change waits for the registers");
    assert!(refused.contains("restore_pending"), "{refused}");

    // One sync round of each register, by the real `caja-node` binary.
    tills[2].set_network(Mode::Up);
    for t in &mut tills {
        binary_round(t);
    }
    let status = api.get("/v1/admin/restore");
    assert_eq!(status["stores"][0]["gated"], false, "{status}");

    // Every register event and every hub event is at the hub, once.
    let after = hub_events(&hub);
    for (k, hash) in &before {
        assert_eq!(after.get(k), Some(hash), "event {k:?} missing or different");
    }
    for t in &tills {
        for (k, hash) in journal(t) {
            assert_eq!(after.get(&k), Some(&hash), "{} event {k:?}", t.name);
        }
    }
    let extra: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(extra.len(), 1, "only the unsynced sale is new: {extra:?}");

    // The blocks granted after the backup came back; a new grant continues
    // after them.
    for g in &after_backup {
        assert!(grants(&hub).contains(g), "block {g:?} recovered");
    }
    sell(&mut tills[0], 8);
    assert_eq!(round(&mut tills[0]).fiscal_blocks, 1);
    let all = grants(&hub);
    assert_eq!(all.len(), at_backup.len() + after_backup.len() + 1);
    assert_disjoint(&all);
    let open = api.get("/v1/admin/conflicts?state=open");
    assert_eq!(
        open["conflicts"].as_array().map(Vec::len),
        Some(0),
        "{open}"
    );

    // The registers trust the log across the restore and warn until head
    // office acknowledges it.
    for t in &mut tills {
        let s = caja_node::sync::engine::status(t.register.conn()).expect("status");
        assert_eq!(s.hub_log.trust, "ok", "{}: {:?}", t.name, s.hub_log);
        let r = s.hub_restore.expect("restore followed");
        assert_eq!((r.epoch, r.acknowledged), (1, false), "{}", t.name);
    }
    let acked = hub
        .admin(&["restore", "ack", "--by", "maria"])
        .expect("ack");
    assert_eq!(acked["acked_by"], "maria", "{acked}");
    for t in &mut tills {
        round(t);
        let s = caja_node::sync::engine::status(t.register.conn()).expect("status");
        assert!(s.hub_restore.expect("restore").acknowledged, "{}", t.name);
        assert_eq!(s.hub_log.trust, "ok");
    }
    let entries: BTreeSet<String> = {
        let db = hub.db().expect("db");
        let mut stmt = db.prepare("SELECT kind FROM audit_log").expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("rows");
        rows.collect::<Result<_, _>>().expect("kinds")
    };
    for kind in ["restored", "hub_event_recovered", "restore_acknowledged"] {
        assert!(entries.contains(kind), "audit entry {kind}");
    }
}
