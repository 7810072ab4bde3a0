//! A hub that stops serving its audit log after a register verified a head is
//! as suspect as one whose log was rewritten: a rolled-back or hostile hub
//! could otherwise skip the consistency proof by answering "404 not found".
//!
//! Between the register and a real hub sits a small real HTTP server of this
//! test: it forwards every request to the hub, except the audit-log paths it
//! is told to refuse, which it answers itself with a chosen status.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::engine::{SyncEngine, SyncError, SyncSettings};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{op_id, Hub, Till};

/// What the interposed server refuses, and with which status (0: nothing).
#[derive(Debug, Default)]
struct Refusal {
    status: AtomicU16,
    prefix: Mutex<String>,
    refused: AtomicU16,
    stop: AtomicBool,
}

/// The small HTTP server between the register and the hub.
#[derive(Debug)]
struct Interposer {
    addr: SocketAddr,
    refusal: Arc<Refusal>,
}

impl Interposer {
    fn start(upstream: SocketAddr) -> Interposer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let refusal = Arc::new(Refusal::default());
        let r = refusal.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if r.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let r = r.clone();
                std::thread::spawn(move || serve(conn, upstream, &r));
            }
        });
        Interposer { addr, refusal }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `status` to every request whose path starts with `prefix`.
    fn refuse(&self, prefix: &str, status: u16) {
        *self.refusal.prefix.lock().expect("lock") = prefix.to_owned();
        self.refusal.status.store(status, Ordering::SeqCst);
    }

    fn refused(&self) -> u16 {
        self.refusal.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Interposer {
    fn drop(&mut self) {
        self.refusal.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// One connection: the request head decides; refused requests get a DESIGN
/// error body, the rest are piped to the hub both ways.
fn serve(mut client: TcpStream, upstream: SocketAddr, r: &Refusal) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
    let status = r.status.load(Ordering::SeqCst);
    let prefix = r.prefix.lock().expect("lock").clone();
    if status != 0 && !prefix.is_empty() && path.starts_with(&prefix) {
        r.refused.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            "{{\"error\":\"http_{status}\",\"message\":\"refused by the test\",\"field\":null}}"
        );
        let answer = format!(
            "HTTP/1.1 {status} Refused\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(answer.as_bytes());
        return;
    }
    let Ok(mut hub) = TcpStream::connect(upstream) else {
        return;
    };
    if hub.write_all(&head).is_err() {
        return;
    }
    let (Ok(mut c2), Ok(mut h2)) = (client.try_clone(), hub.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut h2);
        let _ = h2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut hub, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
}

fn sale() -> SaleRequest {
    SaleRequest {
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
    }
}

fn settings() -> SyncSettings {
    SyncSettings {
        timeout_ms: 5_000,
        keep_alive: false,
        ..SyncSettings::default()
    }
}

fn sign_head(hub: &Hub) -> u64 {
    let v = hub.rt.block_on(hub.admin.sign_tree_head()).expect("sign");
    v["tree_size"].as_u64().expect("tree_size")
}

/// A hub, a register that sold and verified a signed head covering its
/// sales, and the interposer in front of the hub, through which the register
/// syncs from now on.
fn setup(tmp: &std::path::Path) -> (Hub, Till, Interposer, u64) {
    let hub = Hub::start(&tmp.join("hub")).expect("hub");
    let store = hub.create_store("Colmado").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut t = Till::enroll(&hub, store, "caja-1", tmp, settings()).expect("enroll");
    t.sync.round().expect("first round");
    t.register
        .open_shift(op_id(), "ana", Money(0))
        .expect("shift");
    t.register.sell(op_id(), &sale()).expect("sale");
    t.sync.round().expect("push");
    let size = sign_head(&hub);
    let interposer = Interposer::start(hub.addr().expect("addr"));
    t.sync = SyncEngine::open(
        &t.data,
        &interposer.url(),
        SystemClock,
        OsRandom::new().expect("rng"),
        settings(),
    )
    .expect("sync through the interposer");
    t.sync.round().expect("verify the head");
    let log = t.register.status().expect("status").sync.hub_log;
    assert_eq!((log.trust.as_str(), log.tree_size), ("ok", Some(size)));
    (hub, t, interposer, size)
}

fn assert_critical(t: &mut Till, words: &str) {
    match t.sync.round() {
        Err(SyncError::HubLogRewritten(why)) => assert!(why.contains(words), "{why}"),
        other => panic!("expected the hub to be distrusted, got {other:?}"),
    }
    let status = t.register.status().expect("status");
    assert_eq!(status.sync.hub_log.trust, "critical");
    let text = caja_node::messages::status(&status);
    assert!(text.contains("CRÍTICO"), "{text}");
    // It sticks: the hub answering again does not undo it.
    assert!(matches!(t.sync.round(), Err(SyncError::HubLogRewritten(_))));
}

#[test]
fn a_404_for_the_signed_head_after_one_was_verified_is_critical() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut t, interposer, _) = setup(tmp.path());
    let hub_events = t.register.status().expect("status").hub_events;
    interposer.refuse("/v1/audit/sth", 404);
    // New hub data waits behind the check: it must not be applied.
    let mut price = testkit::sample_catalog_bodies();
    price.truncate(1);
    hub.load_catalog(&price).expect("catalog");
    assert_critical(&mut t, "refused its signed tree head");
    assert!(interposer.refused() >= 1);
    interposer.refuse("", 0);
    assert!(t.sync.round().is_err(), "critical sticks");
    assert_eq!(
        t.register.status().expect("status").hub_events,
        hub_events,
        "no hub data applied from a hub that withdrew its log"
    );
}

#[test]
fn any_refusal_of_the_head_is_critical_but_overload_and_failures_are_not() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_hub, mut t, interposer, size) = setup(tmp.path());
    for status in [503, 500, 429] {
        interposer.refuse("/v1/audit/sth", status);
        match t.sync.round() {
            Err(SyncError::Hub(e)) => assert!(e.is_transient(), "{status}: {e}"),
            other => panic!("{status}: expected an ordinary failure, got {other:?}"),
        }
        let log = t.register.status().expect("status").sync.hub_log;
        assert_eq!((log.trust.as_str(), log.tree_size), ("ok", Some(size)));
    }
    interposer.refuse("/v1/audit/sth", 410);
    assert_critical(&mut t, "refused its signed tree head");
}

#[test]
fn a_refused_consistency_proof_is_critical() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, mut t, interposer, size) = setup(tmp.path());
    t.register.sell(op_id(), &sale()).expect("sale");
    t.sync.round().expect("push");
    let grown = sign_head(&hub);
    assert!(grown > size);
    interposer.refuse("/v1/audit/consistency", 404);
    assert_critical(&mut t, "refused the consistency proof");
}

#[test]
fn a_hub_without_an_audit_log_leaves_a_new_register_unverified() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub")).expect("hub");
    let store = hub.create_store("Colmado").expect("store");
    let mut t = Till::enroll(&hub, store, "caja-1", tmp.path(), settings()).expect("enroll");
    let interposer = Interposer::start(hub.addr().expect("addr"));
    interposer.refuse("/v1/audit/sth", 404);
    t.sync = SyncEngine::open(
        &t.data,
        &interposer.url(),
        SystemClock,
        OsRandom::new().expect("rng"),
        settings(),
    )
    .expect("sync");
    t.sync
        .round()
        .expect("a hub from before the audit log syncs");
    assert_eq!(
        t.register.status().expect("status").sync.hub_log.trust,
        "unverified"
    );
}
