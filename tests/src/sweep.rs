//! Helpers the crash-point and disk-fault sweeps share
//! (`tests/tests/crash_points.rs`, `tests/tests/disk_faults.rs`): a
//! register's template data directory (enrolled with a real hub, a fiscal
//! block of 400 numbers, a stock quota, an open shift), copies of it, the
//! real `caja-node sell --repeat` with an environment, what its database
//! holds, and syncing until quiet.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use caja_node::crashpoint;
use caja_node::sync::engine::SyncSettings;
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::ids::OpId;
use caja_shared::money::{Money, QtyMilli};

use crate::cluster::{Hub, Till};
use crate::procs::{HubProcess, NodeProcess};
use caja_node::journal::Journal;

/// The tracked product every template sells.
pub const ARROZ: &str = "7501234567890";

/// A one-line sale of one kilo of [`ARROZ`], paid RD$1,000 in cash: the
/// request the in-process disk-fault sweeps sell.
pub fn arroz_cash_sale() -> caja_node::sale::SaleRequest {
    use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
    SaleRequest {
        lines: vec![LineRequest {
            code: ARROZ.into(),
            qty_milli: 1000,
            discount: None,
            unit_price: None,
        }],
        payments: vec![PaymentRequest {
            method: caja_shared::kind::PaymentMethod::Cash,
            amount: 100_000,
            reference: None,
        }],
        discount: None,
        customer: None,
    }
}

/// A fresh operation id.
pub fn op() -> OpId {
    OpId::new_v7(SystemClock.now_ms(), &mut OsRandom::new().expect("rng")).expect("op")
}

/// A register (its data directory) with a fiscal block, a stock quota and an open shift; its
/// data directory is the template every crash starts from.
pub fn prepare(tmp: &Path) -> std::path::PathBuf {
    let hub = Hub::start(&tmp.join("hub")).expect("hub");
    let store = hub.create_store("Colmado").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    hub.post(
        "/v1/admin/fiscal/series",
        &serde_json::json!({"prefix":"B02","digits":8,"first":1,"last":1000,"valid_until":"2099-12-31"}),
    )
    .expect("series");
    let mut back =
        Till::enroll(&hub, store, "almacen", tmp, SyncSettings::default()).expect("enroll");
    back.sync.round().expect("catalog");
    back.register
        .receive_stock(op(), ARROZ, QtyMilli(1_000_000), Some("inventario"))
        .expect("stock");
    back.sync.round().expect("push stock");
    let mut t = Till::enroll(&hub, store, "caja-1", tmp, SyncSettings::default()).expect("enroll");
    t.configure(
        "fiscal_documents = [\"B02\"]\nfiscal_document = \"B02\"\nfiscal_block_size = 400\nfiscal_low_water = 1\nstock_quotas = true\nescrow_low_milli = 1000\nescrow_target_milli = 400000",
        SyncSettings::default(),
    )
    .expect("configure");
    t.sync.round().expect("block and quota");
    t.register.open_shift(op(), "ana", Money(0)).expect("shift");
    let data = t.data.root().to_path_buf();
    let st = t.register.status().expect("status");
    assert!(
        st.fiscal.iter().any(|s| s.series == "B02" && s.left >= 400),
        "a block of 400: {:?}",
        st.fiscal
    );
    drop(t);
    drop(back);
    drop(hub);
    data
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// What the database says, for comparing before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub journal_sales: i64,
    pub sales: i64,
    pub sale_ops: i64,
    pub print_jobs: i64,
    pub block_next: i64,
    pub block_first_next: i64,
    pub quota_left: i64,
    pub numbers: Vec<i64>,
}

pub fn counts(db: &Path, template_next: i64) -> Counts {
    let c = rusqlite::Connection::open(db).expect("open");
    let one = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).expect(sql) };
    let mut numbers: Vec<i64> = c
        .prepare("SELECT fiscal_number FROM sales WHERE fiscal_number IS NOT NULL")
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|n| {
            n.expect("row")
                .trim_start_matches("B02")
                .parse::<i64>()
                .expect("number")
        })
        .collect();
    numbers.sort_unstable();
    Counts {
        journal_sales: one("SELECT count(*) FROM journal WHERE kind = 'SaleCreated'"),
        sales: one("SELECT count(*) FROM sales"),
        sale_ops: one("SELECT count(*) FROM ops WHERE kind = 'sell'"),
        print_jobs: one("SELECT count(*) FROM print_jobs WHERE kind = 'original'"),
        block_next: one("SELECT max(next) FROM fiscal_blocks"),
        block_first_next: template_next,
        quota_left: c
            .query_row(
                "SELECT left_milli FROM escrow_quota WHERE product = ?1",
                [ARROZ],
                |r| r.get(0),
            )
            .expect("quota"),
        numbers,
    }
}

/// The real `caja-node sell --repeat <repeat>` (ARROZ and a weighed
/// line, cash) on `data`, with a crash point armed if `crash` is given; the
/// sale ids it printed (each told to the cashier as done) and its status.
pub fn sell(
    bin: &Path,
    data: &Path,
    repeat: u32,
    crash: Option<&str>,
) -> (Vec<String>, std::process::ExitStatus) {
    let env: Vec<(&str, &str)> = crash.map(|c| (crashpoint::ENV, c)).into_iter().collect();
    let (acked, status, _) = sell_with(bin, data, repeat, &env);
    (acked, status)
}

/// [`sell`] with `env` added (a crash point, a disk fault); also what it
/// wrote besides the sales (its other stdout lines, then stderr).
pub fn sell_with(
    bin: &Path,
    data: &Path,
    repeat: u32,
    env: &[(&str, &str)],
) -> (Vec<String>, std::process::ExitStatus, String) {
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir")
        .arg(data)
        .args([
            "--json",
            "sell",
            "--item",
            "ARROZ",
            "--item",
            "2000000000017:0.455",
            "--cash",
            "1000",
            "--repeat",
            &repeat.to_string(),
        ])
        .env_remove(crashpoint::ENV)
        .env_remove(crashpoint::FAULT_ENV)
        .env_remove(crashpoint::FAULT_GATE_ENV)
        .env_remove("CAJA_NODE_HUB_URL")
        .env_remove("CAJA_NODE_PRINTER")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn caja-node");
    let out = child.stdout.take().expect("stdout");
    let mut err = String::new();
    let mut acked = Vec::new();
    for l in BufReader::new(out).lines().map_while(Result::ok) {
        match serde_json::from_str::<serde_json::Value>(&l)
            .ok()
            .and_then(|v| v["sale_id"].as_str().map(str::to_owned))
        {
            Some(id) => acked.push(id),
            None => {
                err.push_str(&l);
                err.push('\n');
            }
        }
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let status = child.wait().expect("wait");
    (acked, status, err)
}

/// After a crash or a disk fault (`what` names it): the register of `data`
/// opens again (its start-up chain check), its chain verifies, its
/// projections equal a rebuild, and every sale in `acked` (each told to the
/// cashier as done) is there once. Then what its database holds.
pub fn reopened(data: &Path, what: &str, acked: &[String], template_next: i64) -> Counts {
    let dir = caja_node::datadir::DataDir::new(data);
    let key = caja_node::keyfile::read_key_file(&dir.key_path()).expect("key");
    let mut reg = caja_node::register::Register::open(
        &dir,
        caja_node::system::SystemClock,
        OsRandom::new().expect("rng"),
    )
    .unwrap_or_else(|e| panic!("{what}: reopens: {e}"));
    Journal::verify(reg.conn(), &key, None, |_, _| {})
        .unwrap_or_else(|e| panic!("{what}: the chain verifies: {e}"));
    let (live, rebuilt) = reg.rebuild().expect("rebuild");
    assert_eq!(live, rebuilt, "{what}: projections equal a rebuild");
    for id in acked {
        let n: i64 = reg
            .conn()
            .query_row("SELECT count(*) FROM sales WHERE sale_id = ?1", [id], |r| {
                r.get(0)
            })
            .expect("query");
        assert_eq!(n, 1, "{what}: acknowledged sale {id} is there once");
    }
    drop(reg);
    counts(&dir.db_path(), template_next)
}

/// Every sale the journal gained since `start` is whole: its projection
/// row, its op record, its print job, one fiscal number of the block each
/// (contiguous from the template's next, none twice), and the stock quota
/// went down by what they sold. Returns how many there are.
pub fn assert_sales_whole(c: &Counts, start: &Counts, what: &str) -> i64 {
    let template_next = c.block_first_next;
    let sold = c.journal_sales - start.journal_sales;
    assert_eq!(c.sales - start.sales, sold, "{what}: projection rows");
    assert_eq!(c.sale_ops - start.sale_ops, sold, "{what}: op records");
    assert_eq!(c.print_jobs - start.print_jobs, sold, "{what}: print jobs");
    assert_eq!(
        c.block_next - template_next,
        sold,
        "{what}: the fiscal block moved by the sales that used it"
    );
    let used: Vec<i64> = (template_next..template_next + sold).collect();
    let mine: Vec<i64> = c
        .numbers
        .iter()
        .copied()
        .filter(|n| *n >= template_next)
        .collect();
    assert_eq!(mine, used, "{what}: numbers contiguous, none twice");
    assert_eq!(
        c.quota_left,
        start.quota_left - 1000 * sold,
        "{what}: the quota went down by what was sold"
    );
    sold
}

/// The register of `data` sells two more (a working disk, no crash point),
/// with the next two numbers of its block.
pub fn sells_on(bin: &Path, data: &Path, before: &Counts, what: &str) {
    let (more, status) = sell(bin, data, 2, None);
    assert!(
        status.success() && more.len() == 2,
        "{what}: sells again ({status:?}, {} sales)",
        more.len()
    );
    let db = caja_node::datadir::DataDir::new(data).db_path();
    assert_eq!(
        counts(&db, before.block_first_next).block_next,
        before.block_next + 2,
        "{what}: with the next numbers"
    );
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

pub fn node_ok(node: &NodeProcess, args: &[&str]) -> serde_json::Value {
    node.json(args)
        .unwrap_or_else(|e| panic!("caja-node {args:?}: {e}"))
}

pub fn sell_n(node: &NodeProcess, item: &str, n: u32) {
    let out = node
        .output(&[
            "sell",
            "--item",
            item,
            "--cash",
            "1000",
            "--repeat",
            &n.to_string(),
        ])
        .expect("sell");
    assert!(
        out.status.success(),
        "sell --repeat {n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Syncs until a round moves nothing (at most five rounds).
pub fn sync_until_quiet(node: &NodeProcess, what: &str) {
    for _ in 0..5 {
        let v = node
            .json(&["sync"])
            .unwrap_or_else(|e| panic!("{what}: sync after the crash: {e}"));
        if v["pushed"] == 0 && v["hub_events"] == 0 && v["peer_events"] == 0 && v["recovered"] == 0
        {
            return;
        }
    }
    panic!("{what}: sync never settled");
}

/// What a register and the hub hold after a sync round finished, for
/// comparing a crashed-and-resumed round with one that was not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub head: u64,
    pub acked: u64,
    pub at_hub: u64,
    pub hub_chain: u64,
    pub hub_events_at_node: u64,
    pub peer_events_at_node: u64,
    pub fiscal_ranges: u64,
    pub escrow_grants: u64,
}

pub fn synced(hub: &HubProcess, node: &NodeProcess, device: &str, peer: &str) -> Synced {
    let n = node.db().expect("node db");
    let h = hub.db().expect("hub db");
    let one = |c: &rusqlite::Connection, sql: &str, p: &str| -> u64 {
        let v: i64 = c.query_row(sql, [p], |r| r.get(0)).expect(sql);
        u64::try_from(v).expect("count")
    };
    let head = Journal::head(&n).expect("head").seq;
    let acked = Journal::acked_seq(&n).expect("acked");
    // Every event of the register at the hub once, with its hash, applied.
    for seq in 1..=head {
        let mine = Journal::event(&n, seq)
            .expect("event")
            .expect("in the journal");
        let (hash, applied): (String, i64) = h
            .query_row(
                "SELECT e.hash, (SELECT count(*) FROM applied a WHERE a.event_row = e.id) FROM events e WHERE e.device_id = ?1 AND e.seq = ?2",
                rusqlite::params![device, i64::try_from(seq).expect("seq")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("seq {seq} at the hub: {e}"));
        assert_eq!(
            hash,
            mine.hash().to_hex(),
            "seq {seq}: the hub holds the register's bytes"
        );
        assert_eq!(applied, 1, "seq {seq} applied once");
    }
    let held = one(&h, "SELECT count(*) FROM held WHERE ?1 = ?1", "");
    assert_eq!(held, 0, "nothing held at the hub");
    let hub_device: String = h
        .query_row("SELECT hub_device FROM stores", [], |r| r.get(0))
        .expect("hub device");
    Synced {
        head,
        acked,
        at_hub: one(&h, "SELECT count(*) FROM events WHERE device_id = ?1", device),
        hub_chain: one(&h, "SELECT count(*) FROM events WHERE device_id = ?1", &hub_device),
        hub_events_at_node: one(&n, "SELECT count(*) FROM hub_events WHERE ?1 = ?1", ""),
        peer_events_at_node: one(&n, "SELECT count(*) FROM peer_events WHERE device = ?1", peer),
        fiscal_ranges: one(
            &h,
            "SELECT count(*) FROM events WHERE kind = 'FiscalRangeGranted' AND instr(CAST(bytes AS TEXT), ?1) > 0",
            device,
        ),
        escrow_grants: one(
            &h,
            "SELECT count(*) FROM events WHERE kind = 'EscrowGranted' AND instr(CAST(bytes AS TEXT), ?1) > 0",
            device,
        ),
    }
}

/// The end of a sweep's run (`name`): the hub's audit log, exported into
/// `dir/audit`, verifies; the hub stops; `dir` is removed.
pub fn audit_verifies_and_stop(hub: &mut HubProcess, dir: &Path, name: &str) {
    let export = dir.join("audit");
    caja_hub::audit_export::export(&hub.dir, &export, SystemClock.now_ms())
        .unwrap_or_else(|e| panic!("{name}: audit export: {e}"));
    caja_hub::audit_export::verify(&export)
        .unwrap_or_else(|e| panic!("{name}: the audit log verifies: {e}"));
    hub.terminate().expect("stop hub");
    let _ = std::fs::remove_dir_all(dir);
}

/// Event-accepted audit entries naming `device` in the hub's log.
pub fn accepted_entries(hub: &HubProcess, device: &str) -> u64 {
    let v: i64 = hub
        .db()
        .expect("hub db")
        .query_row(
            "SELECT count(*) FROM audit_log WHERE kind = ?1 AND instr(CAST(entry AS TEXT), ?2) > 0",
            rusqlite::params![caja_hub::audit::AuditKind::EventAccepted.as_str(), device],
            |r| r.get(0),
        )
        .expect("audit count");
    u64::try_from(v).expect("count")
}

/// One plain HTTP/1.1 request to `url` (`http://host:port`): the status, the
/// `Retry-After` header and the JSON body (`null` if none). `None` when the
/// connection failed or closed without an answer (a hub that died).
pub fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<(u16, Option<String>, serde_json::Value)> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let retry_after = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("retry-after")
            .then(|| v.trim().to_owned())
    });
    Some((
        status,
        retry_after,
        serde_json::from_str(body).unwrap_or_default(),
    ))
}
