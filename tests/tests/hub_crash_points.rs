//! The hub's causal-gate crash points, swept with the real `caja-hub`: a
//! push whose events wait for another register's sale (held), then that
//! register's push (which releases them). The hub is aborted
//! (`CAJA_HUB_CRASH_AT=<point>:<n>`, see `caja_hub::crashpoint`) at every
//! hit of `hub:held` and `hub:released` in those pushes, and before and after
//! each of their commits; it restarts unarmed, the registers push again what
//! they were not answered for, and the end state must equal the
//! uninterrupted run's: every event stored once with its hash and applied
//! once, nothing held, one `event_accepted` audit entry per event, and an
//! audit export that verifies.
//!
//! The registers here are the hub's test workload (`caja_hub::workload`,
//! real enrollments and signed requests over HTTP): a register voiding
//! another register's sale is how an event gets held. The outbox's points
//! (`hub:outbox_claimed`, `hub:outbox_recorded`) are not swept here.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use caja_hub::workload::{Register, Workload};
use caja_node::system::{OsRandom, SystemClock};
use caja_shared::checkpoint::Checkpoint;
use caja_shared::clock::Clock;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{DeviceId, KeyId, StoreId};
use caja_shared::key::DeviceKey;
use caja_shared::kind::{EventBody, SaleVoided};
use caja_shared::request::SignedHeaders;
use caja_tests::procs::HubProcess;
use caja_tests::sweep::{copy_tree, http};

const TOKEN: &str = "caja-hub-crash-sweep-admin-token-01";

fn enroll(hub: &HubProcess, store: &str) -> Register {
    let token = hub.admin(&["create-token", store, "caja"]).expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let body = serde_json::json!({ "token": token }).to_string();
    let (status, _, v) = http(
        &hub.url,
        "POST",
        "/v1/devices/enroll",
        &[("Content-Type", "application/json".into())],
        body.as_bytes(),
    )
    .expect("enroll answered");
    assert_eq!(status, 200, "{v}");
    let device: DeviceId = v["device"].as_str().expect("device").parse().expect("id");
    let key = DeviceKey::from_hex(v["key"].as_str().expect("key")).expect("key");
    let key_id: KeyId = v["key_id"].as_str().expect("key id").parse().expect("id");
    Register::new(device, key, key_id)
}

/// A signed push of `events` by `reg`; `None` if the hub died first.
fn push(url: &str, reg: &Register, events: &[Event]) -> Option<(u16, serde_json::Value)> {
    let last = events.last().expect("events");
    let cp = Checkpoint::sign(
        &reg.key,
        reg.key_id.clone(),
        reg.device,
        last.seq(),
        last.hash(),
    );
    let body = caja_shared::push::push_body(reg.device, events, &[], &cp, 0).expect("body");
    let h = SignedHeaders::sign(
        &reg.key,
        reg.device,
        reg.key_id.clone(),
        "POST",
        "/v1/sync/push",
        &body,
        SystemClock.now_ms(),
        &mut OsRandom::new().expect("rng"),
    );
    let mut headers: Vec<(&str, String)> = h.pairs().to_vec();
    headers.push(("Content-Type", "application/json".into()));
    http(url, "POST", "/v1/sync/push", &headers, &body).map(|(s, _, v)| (s, v))
}

/// What the hub holds for the two registers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    events: i64,
    applied_once: i64,
    held: i64,
    accepted_entries: i64,
    /// The events' ids in the order the hub applied them.
    apply_order: Vec<String>,
}

fn state(hub: &HubProcess, regs: &[&Register; 2]) -> State {
    let h = hub.db().expect("hub db");
    let devices: Vec<String> = regs.iter().map(|r| r.device.to_string()).collect();
    let one = |sql: &str| -> i64 {
        h.query_row(sql, rusqlite::params![devices[0], devices[1]], |r| r.get(0))
            .expect(sql)
    };
    State {
        events: one("SELECT count(*) FROM events WHERE device_id IN (?1, ?2)"),
        applied_once: one(
            "SELECT count(*) FROM events e WHERE e.device_id IN (?1, ?2) AND (SELECT count(*) FROM applied a WHERE a.event_row = e.id) = 1",
        ),
        held: one("SELECT count(*) FROM held h JOIN events e ON e.id = h.event_row WHERE e.device_id IN (?1, ?2)"),
        accepted_entries: one(
            "SELECT count(*) FROM audit_log WHERE kind = 'event_accepted' AND (instr(CAST(entry AS TEXT), ?1) > 0 OR instr(CAST(entry AS TEXT), ?2) > 0)",
        ),
        apply_order: order(&h, &devices),
    }
}

/// The events of `devices` in the order the hub applied them.
fn order(h: &rusqlite::Connection, devices: &[String]) -> Vec<String> {
    let mut st = h
            .prepare(
                "SELECT e.event_id FROM applied a JOIN events e ON e.id = a.event_row WHERE e.device_id IN (?1, ?2) ORDER BY a.applied_seq",
            )
            .expect("prepare");
    let ids = st
        .query_map(rusqlite::params![devices[0], devices[1]], |r| r.get(0))
        .expect("query")
        .map(|v| v.expect("row"))
        .collect::<Vec<String>>();
    ids
}

/// The sweep's template: a stopped hub with a store and two enrolled
/// registers, and the two pushes (the second register's void of the first's
/// sale and a later sale, then the first's shift and sale).
fn prepare(tmp: &Path, port: u16) -> (HubProcess, [Register; 2], Vec<Event>, Vec<Event>) {
    let mut hub = HubProcess::init_and_serve(&tmp.join("hub"), port, TOKEN).expect("hub");
    let store = hub.admin(&["create-store", "Colmado"]).expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    let regs = vec![enroll(&hub, &store), enroll(&hub, &store)];
    hub.terminate().expect("stop hub");
    let store: StoreId = store.parse().expect("store id");
    let now = SystemClock.now_ms();
    let mut w = Workload::new(7, store, regs);
    let first = vec![w.next_sale(0, now), w.next_sale(0, now)];
    let EventBody::SaleCreated(sale) = first[1].body().expect("body") else {
        panic!("not a sale")
    };
    let void = w.registers[1].append(
        store,
        EventBody::SaleVoided(SaleVoided {
            sale_id: sale.sale_id,
            reason: "error".into(),
            approval: None,
            approved_by: None,
        }),
        vec![first[1].id()],
        now,
        &mut SeededRandom::new(8),
    );
    let later = w.next_sale(1, now);
    let second = vec![void, later];
    let regs = [w.registers[0].clone(), w.registers[1].clone()];
    (hub, regs, first, second)
}

/// The hub's points this sweep crashes at, with the hits: each hold and
/// release, and the commits of the two pushes (the first push's commit is
/// the writer's first after start-up).
const SWEPT: &[(&str, &[u64])] = &[
    ("hub:held", &[1, 2]),
    ("hub:released", &[1, 2]),
    ("hub:before_commit", &[1, 2]),
    ("hub:committed", &[1, 2]),
];

#[test]
fn a_hub_killed_while_holding_or_releasing_events_applies_each_once_in_causal_order() {
    let tmp = tempfile::tempdir_in(caja_tests::sim::scratch_root()).expect("tmp");
    let port = caja_tests::procs::free_port().expect("port");
    let (mut hub, regs, first, second) = prepare(tmp.path(), port);
    let root = tmp.path().to_path_buf();
    let mut run = |name: &str, crash: Option<&str>| -> (State, Option<std::process::ExitStatus>) {
        let dir = root.join(format!("run-{name}"));
        copy_tree(&root.join("hub"), &dir.join("hub"));
        hub.dir = dir.join("hub");
        if let Some(c) = crash {
            hub.serve_env = vec![(caja_hub::crashpoint::ENV.to_owned(), c.to_owned())];
        }
        hub.serve().expect("serve");
        hub.serve_env.clear();
        // The held push, then the releasing one; answered or not.
        let held = push(&hub.url, &regs[1], &second);
        let released = held.as_ref().and_then(|_| push(&hub.url, &regs[0], &first));
        let status = hub
            .wait_exit(std::time::Duration::from_millis(if crash.is_some() {
                2000
            } else {
                0
            }))
            .expect("wait");
        if status.is_some() {
            // Restarted; each register pushes again (a register resends
            // what it was not answered for, and what it was: duplicates).
            hub.serve().expect("restart");
            let again = push(&hub.url, &regs[1], &second).expect("answered");
            assert_eq!(again.0, 200, "{name}: {:?}", again.1);
            let again = push(&hub.url, &regs[0], &first).expect("answered");
            assert_eq!(again.0, 200, "{name}: {:?}", again.1);
        } else {
            let (s, v) = held.expect("answered");
            assert_eq!(s, 200, "{name}: {v}");
            assert_eq!(
                v["held"].as_array().map(Vec::len),
                Some(2),
                "{name}: held: {v}"
            );
            let (s, v) = released.expect("answered");
            assert_eq!(
                (s, v["held"].as_array().map(Vec::len)),
                (200, Some(0)),
                "{name}: {v}"
            );
        }
        let got = state(&hub, &[&regs[0], &regs[1]]);
        let export = dir.join("audit");
        caja_hub::audit_export::export(&hub.dir, &export, SystemClock.now_ms())
            .unwrap_or_else(|e| panic!("{name}: audit export: {e}"));
        caja_hub::audit_export::verify(&export)
            .unwrap_or_else(|e| panic!("{name}: the audit log verifies: {e}"));
        hub.terminate().expect("stop hub");
        let _ = std::fs::remove_dir_all(&dir);
        (got, status)
    };
    let (expected, _) = run("baseline", None);
    let causal: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|e| e.id().to_string())
        .collect();
    assert_eq!(
        expected,
        State {
            events: 4,
            applied_once: 4,
            held: 0,
            accepted_entries: 4,
            apply_order: causal,
        },
        "baseline: the sale before its void"
    );
    let mut crashes = 0;
    for (point, nths) in SWEPT {
        assert!(caja_hub::crashpoint::POINTS.contains(point), "{point}");
        for &nth in *nths {
            let name = format!("{}-{nth}", point.replace(':', "_"));
            let (got, status) = run(&name, Some(&format!("{point}:{nth}")));
            assert_eq!(
                status.and_then(|s| s.signal()),
                Some(6),
                "{point}:{nth}: the hub aborted there ({status:?})"
            );
            crashes += 1;
            assert_eq!(
                got, expected,
                "{point}:{nth}: after the restart and the retries"
            );
        }
    }
    println!(
        "hub causal-gate crash sweep: {crashes} crashes at {} points, each ending at {expected:?}",
        SWEPT.len()
    );
}
