//! "Node killed mid-push and hub killed mid-ingest, in turn → exactly
//! once after restart", with the real binaries: `caja-hub serve` on a loopback
//! port and `caja-node run` (the register's sync engine) on their own data
//! directories, a backlog of sales made with `caja-node sell --repeat`, and
//! SIGKILLs of one process, then the other, while batches of 500 events are on
//! their way.
//!
//! After every kill: the hub holds either exactly what the register had
//! acknowledged or that plus the whole batch in flight (never part of a push,
//! never less than acknowledged). While one side is down the cashier keeps
//! selling. At the end: every register event is at the hub exactly once, with
//! the register's hashes, applied, none held, one audit entry each; the
//! register's acknowledged seq is its head; `caja-hub rebuild` and
//! `caja-node rebuild` find the projections equal to a rebuild; the journal
//! verifies; the hub's sales are the register's sales.
//!
//! Four kills by default (10–15 s in debug). `CAJA_SOAK=1` runs twenty, with a
//! larger backlog.

use std::path::Path;
use std::time::{Duration, Instant};

use caja_node::journal::Journal;
use caja_node::testkit;
use caja_shared::kind::EventBody;
use caja_tests::procs::{free_port, HubProcess, NodeProcess};

const ADMIN_TOKEN: &str = "caja-kill-test-admin-token-01234";
/// The node's push batch (`SyncSettings::default().push_batch`).
const BATCH: u64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Node,
    Hub,
}

struct Plan {
    kills: usize,
    initial: u64,
    /// Unsynced events wanted at the start of every round.
    backlog: u64,
    deadline: Duration,
}

fn plan() -> Plan {
    if std::env::var("CAJA_SOAK").is_ok_and(|v| v == "1") {
        Plan {
            kills: 20,
            initial: 2500,
            backlog: 2500,
            deadline: Duration::from_secs(300),
        }
    } else {
        Plan {
            kills: 4,
            initial: 1800,
            backlog: 1800,
            deadline: Duration::from_secs(120),
        }
    }
}

/// The data directories: on tmpfs when the machine has one. A SIGKILL loses
/// nothing the kernel was given, on tmpfs as on disk, so what this test checks
/// does not depend on fsync; tmpfs keeps the backlog quick to sell on a busy
/// machine. (Power cuts are `synchronous=FULL`'s job, not this test's.) A
/// small /dev/shm (64 MiB in a default Docker container) is not used.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let avail_kib = std::process::Command::new("df")
        .args(["--output=avail", "-k"])
        .arg(shm)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.lines().nth(1).and_then(|l| l.trim().parse::<u64>().ok()))
        .unwrap_or(0);
    if avail_kib >= 1024 * 1024 {
        if let Ok(t) = tempfile::Builder::new()
            .prefix("caja-kill-")
            .tempdir_in(shm)
        {
            return t;
        }
    }
    tempfile::tempdir().expect("tmp")
}

fn catalog_file(path: &Path) {
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
    let body = serde_json::json!({ "items": items, "prices": prices });
    std::fs::write(path, body.to_string()).expect("catalog file");
}

/// What the hub holds of `device`.
fn hub_count(hub: &HubProcess, device: &str) -> u64 {
    let n: i64 = hub
        .db()
        .expect("hub db")
        .query_row(
            "SELECT COUNT(*) FROM events WHERE device_id = ?1",
            [device],
            |r| r.get(0),
        )
        .expect("hub count");
    u64::try_from(n).expect("count")
}

/// Watches the hub's highest stored seq of one register on one connection.
struct HubPoll {
    db: rusqlite::Connection,
    device: String,
}

impl HubPoll {
    fn new(hub: &HubProcess, device: &str) -> HubPoll {
        HubPoll {
            db: hub.db().expect("hub db"),
            device: device.to_owned(),
        }
    }

    fn seq(&self) -> u64 {
        let n: i64 = self
            .db
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE device_id = ?1",
                [&self.device],
                |r| r.get(0),
            )
            .expect("hub max seq");
        u64::try_from(n).expect("seq")
    }

    /// Waits until the hub stores a seq beyond `from`; the seq and when.
    fn wait_change(&self, from: u64, limit: Duration) -> (u64, Instant) {
        let until = Instant::now() + limit;
        loop {
            let now = self.seq();
            if now > from {
                return (now, Instant::now());
            }
            assert!(Instant::now() < until, "no batch stored after seq {from}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The register's head and acknowledged seq.
fn node_state(node: &NodeProcess) -> (u64, u64) {
    let db = node.db().expect("node db");
    let head = Journal::head(&db).expect("head").seq;
    let acked = Journal::acked_seq(&db).expect("acked");
    (head, acked)
}

fn sell(node: &NodeProcess, n: u64) {
    if n == 0 {
        return;
    }
    let out = node
        .output(&[
            "sell",
            "--item",
            "ARROZ",
            "--cash",
            "100.00",
            "--repeat",
            &n.to_string(),
        ])
        .expect("sell");
    assert!(
        out.status.success(),
        "sell --repeat {n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sold = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"sale_id\""))
        .count();
    assert_eq!(sold as u64, n, "every sale acknowledged");
}

/// Waits until `f` holds, or panics with `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the hub's count for `device` stays the same for `quiet`.
fn settled(hub: &HubProcess, device: &str, quiet: Duration, limit: Duration) -> u64 {
    let until = Instant::now() + limit;
    let mut last = hub_count(hub, device);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = hub_count(hub, device);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
        assert!(Instant::now() < until, "the hub never settled");
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[test]
fn node_and_hub_killed_in_turn_mid_push_store_every_event_exactly_once() {
    let started = Instant::now();
    let plan = plan();
    let tmp = scratch();
    let port = free_port().expect("port");
    let mut hub =
        HubProcess::init_and_serve(&tmp.path().join("hub"), port, ADMIN_TOKEN).expect("hub");
    let store = hub
        .admin(&["create-store", "Colmado La Esquina"])
        .expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    let catalog = tmp.path().join("catalog.json");
    catalog_file(&catalog);
    hub.admin(&["load-catalog", catalog.to_str().expect("path")])
        .expect("catalog");
    let token = hub
        .admin(&["create-token", &store, "caja 1"])
        .expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let mut node = NodeProcess::new(&tmp.path().join("caja-1"));
    let enrolled = node
        .json(&["enroll", "--hub", &hub.url, "--token", &token])
        .expect("enroll");
    let device = enrolled["device"].as_str().expect("device").to_owned();
    node.json(&["sync"]).expect("first sync brings the catalog");
    node.json(&["shift", "open", "--cashier", "ana", "--float", "0"])
        .expect("shift");
    let log = tmp.path().join("caja-node-run.log");

    // The backlog, sold with no sync running.
    sell(&node, plan.initial);
    let setup = started.elapsed();

    let victims: Vec<Victim> = (0..plan.kills)
        .map(|i| {
            if i % 2 == 0 {
                Victim::Node
            } else {
                Victim::Hub
            }
        })
        .collect();
    // Where inside a batch to kill, in eighths of one batch's time after the
    // hub stored the previous one; 0 kills the moment the hub has committed a
    // batch: the register before it records the answer, or the hub before it
    // sends it.
    let node_eighths = [0u32, 4, 0, 6, 0, 2, 0, 7];
    let hub_eighths = [4u32, 0, 6, 1, 0, 3, 7, 2];
    let mut outcomes = Vec::new();
    let mut stored_ack_lost = 0;
    let mut not_stored = 0;
    let mut batch = Duration::ZERO;
    node.start_run(&log).expect("run");
    let poll = HubPoll::new(&hub, &device);
    for (round, victim) in victims.iter().enumerate() {
        // Pushing is under way: two batches of this round stored, the time
        // between them measured, the third on its way.
        let from = poll.seq();
        let (first, t1) = poll.wait_change(from, plan.deadline);
        let (_, t2) = poll.wait_change(first, plan.deadline);
        batch = t2 - t1;
        let eighth = match victim {
            Victim::Node => node_eighths[round / 2 % node_eighths.len()],
            Victim::Hub => hub_eighths[round / 2 % hub_eighths.len()],
        };
        std::thread::sleep(batch * eighth / 8);
        match victim {
            Victim::Node => node.kill_run().expect("kill node"),
            Victim::Hub => hub.kill().expect("kill hub"),
        }
        // What the hub holds now against what the register knows.
        let stored = match victim {
            // The dead register's last request may still be finishing at the hub.
            Victim::Node => settled(
                &hub,
                &device,
                batch.max(Duration::from_millis(300)),
                plan.deadline,
            ),
            Victim::Hub => {
                // The register may be committing an answer it just received.
                std::thread::sleep(Duration::from_millis(100));
                hub_count(&hub, &device)
            }
        };
        let (head, acked) = node_state(&node);
        let in_flight = BATCH.min(head - acked);
        assert!(
            in_flight > 0,
            "round {round}: the backlog ran out before the kill (head {head}); the test proved nothing"
        );
        assert!(
            stored >= acked,
            "round {round}: the register holds an acknowledgement of seq {acked} but the hub stores {stored}"
        );
        assert!(
            stored == acked || stored == acked + in_flight,
            "round {round} ({victim:?} killed): the hub stores {stored}, the register acked {acked}: part of a {in_flight}-event push"
        );
        if stored == acked {
            not_stored += 1;
        } else {
            stored_ack_lost += 1;
        }
        outcomes.push(format!(
            "{victim:?} killed {eighth}/8 of a batch (~{} ms) after a commit: hub {stored}, acked {acked}, head {head}",
            batch.as_millis()
        ));
        // The cashier keeps selling while one side is down.
        sell(&node, plan.backlog.saturating_sub(head - stored));
        match victim {
            Victim::Node => node.start_run(&log).expect("restart node"),
            Victim::Hub => hub.serve().expect("restart hub"),
        }
    }

    // Everything reaches the hub.
    let (head, _) = node_state(&node);
    wait_for(
        plan.deadline,
        "the register to be fully acknowledged",
        || node_state(&node).1 == head,
    );
    node.kill_run().expect("stop node");
    let last = node.json(&["sync"]).expect("a last sync round");
    assert_eq!(last["pushed"], 0, "nothing left to push: {last}");
    let sync_time = started.elapsed() - setup;

    // Exactly once, with the register's hashes, in the register's order.
    let (head, acked) = node_state(&node);
    assert_eq!(acked, head, "the register's acked seq is its head");
    let ndb = node.db().expect("node db");
    let mine: Vec<(i64, String)> = ndb
        .prepare("SELECT seq, hash FROM journal ORDER BY seq")
        .expect("sql")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let hdb = hub.db().expect("hub db");
    let theirs: Vec<(i64, String)> = hdb
        .prepare("SELECT seq, hash FROM events WHERE device_id = ?1 ORDER BY seq")
        .expect("sql")
        .query_map([&device], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(mine.len() as u64, head);
    assert_eq!(
        theirs.len(),
        mine.len(),
        "as many events at the hub as in the journal"
    );
    assert!(
        theirs == mine,
        "the hub's (seq, hash) of the register differ from its journal"
    );
    let count = |sql: &str| -> i64 { hdb.query_row(sql, [&device], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT COUNT(*) FROM applied WHERE device_id = ?1"),
        i64::try_from(head).expect("head"),
        "every event applied once"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM held h JOIN events e ON e.id = h.event_row WHERE e.device_id = ?1"),
        0,
        "nothing held"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM audit_log WHERE kind = 'event_accepted' AND instr(entry, ?1) > 0"
        ),
        i64::try_from(head).expect("head"),
        "one audit entry per event, never two"
    );
    let sales: i64 = ndb
        .query_row("SELECT COUNT(*) FROM sales", [], |r| r.get(0))
        .expect("node sales");
    assert_eq!(
        count("SELECT COUNT(*) FROM p_sales WHERE device_id = ?1"),
        sales,
        "the hub's sales are the register's"
    );
    let quarantined = hub.admin(&["quarantined"]).expect("quarantined");
    assert!(
        !quarantined.to_string().contains(&device),
        "the register was quarantined: {quarantined}"
    );
    drop(hdb);

    // Projections equal a rebuild, at the hub and at the register.
    assert_eq!(hub.terminate().expect("stop hub"), Some(0), "graceful stop");
    let (before, after) = hub.rebuild().expect("hub rebuild");
    assert_eq!(before, after, "hub projections differ from a rebuild");
    let rebuilt = node.json(&["rebuild"]).expect("node rebuild");
    assert_eq!(
        rebuilt["before"], rebuilt["after"],
        "register projections: {rebuilt}"
    );
    let verified = node.output(&["verify"]).expect("verify");
    assert!(
        verified.status.success(),
        "the journal verifies: {}",
        String::from_utf8_lossy(&verified.stdout)
    );

    eprintln!(
        "{} events ({sales} sales) exactly once after {} kills ({} hub starts, {} `caja-node run` starts): \
         {stored_ack_lost} with the batch stored and its answer lost, {not_stored} with it not stored; \
         the last batch took ~{} ms; setup {} ms, kills and sync {} ms\n  {}\nrun log tail:\n{}",
        head,
        plan.kills,
        hub.starts,
        node.starts,
        batch.as_millis(),
        setup.as_millis(),
        sync_time.as_millis(),
        outcomes.join("\n  "),
        tail(&log)
    );
}
