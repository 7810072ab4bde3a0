//! Pipelined pushes against a real hub over loopback HTTP: the second push
//! of a round reaches the hub while the first is lost on the way (a proxy
//! holds the first connection, forwards the second, then cuts the first).
//! The later batch must not be applied before the lost one — the hub finds
//! the gap and stores nothing of it (409 `seq_gap`) — and the round still
//! ends with every event at the hub exactly once, in order, acknowledged.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use caja_node::journal::Journal;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::engine::{SyncEngine, SyncSettings};
use caja_node::system::{OsRandom, SystemClock};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, op_id, Hub, Till};

/// What the proxy saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// The status line the hub answered the second connection with.
    second_status: Mutex<Option<String>>,
    second_answered: AtomicBool,
}

/// A proxy that loses the first connection's request (held until the second
/// connection has been answered, then cut) and forwards every other one.
fn hold_first_proxy(upstream: SocketAddr) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let i = s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            thread::spawn(move || {
                if i == 0 {
                    hold_then_cut(client, &s);
                } else {
                    forward(client, upstream, i == 1, &s);
                }
            });
        }
    });
    (url, seen)
}

fn hold_then_cut(mut client: TcpStream, seen: &Seen) {
    let mut buf = [0u8; 4096];
    let _ = client.set_read_timeout(Some(Duration::from_millis(50)));
    let until = Instant::now() + Duration::from_secs(20);
    while !seen.second_answered.load(Ordering::SeqCst) && Instant::now() < until {
        // Swallow the request; never forward it.
        let _ = client.read(&mut buf);
    }
    let _ = client.shutdown(Shutdown::Both);
}

fn forward(client: TcpStream, upstream: SocketAddr, second: bool, seen: &Seen) {
    let Ok(hub) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut c_read, mut h_write) = (
        client.try_clone().expect("clone"),
        hub.try_clone().expect("clone"),
    );
    thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 || h_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = h_write.shutdown(Shutdown::Write);
    });
    let (mut h_read, mut c_write) = (hub, client);
    let mut buf = [0u8; 16384];
    let mut first = true;
    while let Ok(n) = h_read.read(&mut buf) {
        if n == 0 || c_write.write_all(&buf[..n]).is_err() {
            break;
        }
        if second && first {
            let head = String::from_utf8_lossy(&buf[..n.min(12)]).into_owned();
            *seen.second_status.lock().expect("lock") = Some(head);
            seen.second_answered.store(true, Ordering::SeqCst);
        }
        first = false;
    }
    let _ = c_write.shutdown(Shutdown::Both);
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

#[test]
fn a_push_after_a_lost_one_is_never_applied_before_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub")).expect("hub");
    let store = hub.create_store("Colmado").expect("store");
    hub.load_catalog(&caja_node::testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut t =
        Till::enroll(&hub, store, "caja-1", tmp.path(), fast_sync_settings()).expect("till");
    t.sync.round().expect("first round");
    t.register
        .open_shift(op_id(), "ana", Money(0))
        .expect("shift");
    for _ in 0..150 {
        t.register.sell(op_id(), &sale()).expect("sale");
    }
    let head = Journal::head(t.register.conn()).expect("head").seq;
    let acked = Journal::acked_seq(t.register.conn()).expect("acked");
    assert!(head - acked > 100, "a backlog of several batches");

    let (url, seen) = hold_first_proxy(hub.addr().expect("hub addr"));
    let settings = SyncSettings {
        push_batch: 50,
        push_window: 2,
        // One connection per request, so the proxy sees each push apart.
        keep_alive: false,
        ..fast_sync_settings()
    };
    let mut engine = SyncEngine::open(
        &t.data,
        &url,
        SystemClock,
        OsRandom::new().expect("rng"),
        settings,
    )
    .expect("engine");
    let report = engine
        .round()
        .expect("the round recovers from the lost push");

    // The second push reached the hub while the first was lost: refused
    // whole, nothing of it stored before its predecessor.
    let status = seen.second_status.lock().expect("lock").clone();
    assert_eq!(
        status.as_deref(),
        Some("HTTP/1.1 409"),
        "the batch after the lost one must meet the hub's gap check"
    );
    // Then everything arrived, once, in order, and is acknowledged.
    let device = t.register.device().device.to_string();
    let hub_db = hub.db().expect("hub db");
    let seqs: Vec<i64> = hub_db
        .prepare("SELECT seq FROM events WHERE device_id = ?1 ORDER BY seq")
        .expect("prepare")
        .query_map([&device], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let want: Vec<i64> = (1..=i64::try_from(head).expect("head")).collect();
    assert_eq!(seqs, want, "every event at the hub exactly once");
    assert_eq!(Journal::acked_seq(t.register.conn()).expect("acked"), head);
    assert_eq!(report.pushed, head - acked, "{report:?}");
}

#[test]
fn pipelined_pushes_sync_a_backlog_like_one_at_a_time() {
    // The default (one push at the hub, the next ready) and three at once
    // (pushes overtaking each other at the hub, sent again).
    for window in [1, 3] {
        sync_backlog_with(window);
    }
}

fn sync_backlog_with(window: usize) {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub")).expect("hub");
    let store = hub.create_store("Colmado").expect("store");
    hub.load_catalog(&caja_node::testkit::sample_catalog_bodies())
        .expect("catalog");
    let settings = SyncSettings {
        push_batch: 20,
        push_window: window,
        ..fast_sync_settings()
    };
    let mut t = Till::enroll(&hub, store, "caja-1", tmp.path(), settings).expect("till");
    t.sync.round().expect("first round");
    t.register
        .open_shift(op_id(), "ana", Money(0))
        .expect("shift");
    for _ in 0..130 {
        t.register.sell(op_id(), &sale()).expect("sale");
    }
    let report = t.sync.round().expect("round");
    let head = Journal::head(t.register.conn()).expect("head").seq;
    assert_eq!(Journal::acked_seq(t.register.conn()).expect("acked"), head);
    assert!(report.pushed >= 130, "{report:?}");
    let device = t.register.device().device.to_string();
    let n: i64 = hub
        .db()
        .expect("hub db")
        .query_row(
            "SELECT count(DISTINCT seq) FROM events WHERE device_id = ?1",
            [&device],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(u64::try_from(n).expect("count"), head);
}
