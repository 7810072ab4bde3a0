//! Slow and many clients against the real `caja-hub` with its default
//! limits: from 127.0.0.2, about a thousand connections that never finish
//! their headers (slowloris) or announce an 8 MB push body and send a byte
//! now and then (slow body), reconnecting whenever the hub closes them,
//! while a register on 127.0.0.1 syncs a backlog with `caja-node sync`. Its
//! sync must finish, within twice the time the same backlog took without the
//! flood. (Before the hub had its own serve loop, the slow bodies held every
//! concurrency permit and the register got 429 for as long as they stayed.)

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caja_node::testkit;
use caja_shared::kind::EventBody;
use caja_tests::procs::{free_port, HubProcess, NodeProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_TOKEN: &str = "caja-flood-test-admin-token-0123";
/// Attacker connections kept trying at once (half slowloris, half slow body).
const ATTACKERS: usize = 1000;
/// Sales in each measured backlog.
const BACKLOG: u64 = 1000;

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

fn sell(node: &NodeProcess, n: u64) {
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
}

/// `caja-node sync`, timed; panics with its output when it fails.
fn timed_sync(node: &NodeProcess, what: &str) -> Duration {
    let started = Instant::now();
    let out = node.output(&["sync"]).expect("sync");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{what}: caja-node sync failed ({}) after {took:?}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// What the flood saw.
#[derive(Debug, Default)]
struct FloodStats {
    /// Connections the hub accepted.
    connected: AtomicU64,
    /// Connections open right now that the hub has not closed for 1 s.
    holding: AtomicU64,
    /// Connections the hub closed (or answered) at once.
    cut: AtomicU64,
    /// Answers the hub sent to an attacker (a timeout's 503).
    answered: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum Attack {
    /// Headers started, never finished.
    Slowloris,
    /// `Content-Length: 8000000`, one byte now and then.
    SlowBody,
}

/// One attacker: connects from 127.0.0.2, trickles, reconnects when cut.
async fn attacker(
    hub: std::net::SocketAddr,
    attack: Attack,
    stop: Arc<AtomicBool>,
    stats: Arc<FloodStats>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
            return;
        };
        if sock.bind("127.0.0.2:0".parse().expect("addr")).is_err() {
            return;
        }
        let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), sock.connect(hub)).await
        else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        stats.connected.fetch_add(1, Ordering::Relaxed);
        let opening: &[u8] = match attack {
            Attack::Slowloris => b"POST /v1/sync/push HTTP/1.1\r\nHost: hub\r\n",
            Attack::SlowBody => {
                b"POST /v1/sync/push HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n{"
            }
        };
        if s.write_all(opening).await.is_err() {
            stats.cut.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let since = Instant::now();
        let mut holding = false;
        let mut buf = [0u8; 512];
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            tokio::select! {
                r = s.read(&mut buf) => {
                    match r {
                        Ok(k) if k > 0 => { stats.answered.fetch_add(1, Ordering::Relaxed); }
                        _ => {}
                    }
                    if since.elapsed() < Duration::from_secs(1) {
                        stats.cut.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                () = tokio::time::sleep(Duration::from_millis(900)) => {
                    if !holding && since.elapsed() >= Duration::from_secs(1) {
                        holding = true;
                        stats.holding.fetch_add(1, Ordering::Relaxed);
                    }
                    let trickle: Vec<u8> = match attack {
                        Attack::Slowloris => format!("X-Pad-{n}: 1\r\n").into_bytes(),
                        Attack::SlowBody => b" ".to_vec(),
                    };
                    if s.write_all(&trickle).await.is_err() {
                        break;
                    }
                }
            }
        }
        if holding {
            stats.holding.fetch_sub(1, Ordering::Relaxed);
        }
        // An attacker comes back, but not in a tight loop (that would only
        // measure this machine's two cores).
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

/// The flood on a thread of its own (one core at most).
struct Flood {
    stop: Arc<AtomicBool>,
    stats: Arc<FloodStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(hub: std::net::SocketAddr) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(FloodStats::default());
        let (s, st) = (stop.clone(), stats.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for i in 0..ATTACKERS {
                    let attack = if i % 2 == 0 {
                        Attack::Slowloris
                    } else {
                        Attack::SlowBody
                    };
                    tasks.push(tokio::spawn(attacker(hub, attack, s.clone(), st.clone())));
                    if i % 50 == 49 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        });
        Flood {
            stop,
            stats,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Arc<FloodStats> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.stats.clone()
    }
}

#[test]
fn a_slowloris_and_slow_body_flood_from_one_address_does_not_delay_a_registers_sync() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port().expect("port");
    let hub = HubProcess::init_and_serve(&tmp.path().join("hub"), port, ADMIN_TOKEN).expect("hub");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
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
    let node = NodeProcess::new(&tmp.path().join("caja-1"));
    node.json(&["enroll", "--hub", &hub.url, "--token", &token])
        .expect("enroll");
    node.json(&["sync"]).expect("first sync brings the catalog");
    node.json(&["shift", "open", "--cashier", "ana", "--float", "0"])
        .expect("shift");

    // Without the flood.
    sell(&node, BACKLOG);
    let calm = timed_sync(&node, "without the flood");

    // The same backlog again, under the flood.
    sell(&node, BACKLOG);
    let flood = Flood::start(addr);
    let until = Instant::now() + Duration::from_secs(30);
    while flood.stats.holding.load(Ordering::Relaxed) < 32 {
        assert!(
            Instant::now() < until,
            "the flood never held connections: {:?}",
            flood.stats
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let holding_before = flood.stats.holding.load(Ordering::Relaxed);
    let flooded = timed_sync(&node, "under the flood");
    let holding_after = flood.stats.holding.load(Ordering::Relaxed);
    let stats = flood.stop();
    eprintln!(
        "sync of {BACKLOG} sales: {calm:?} without the flood, {flooded:?} under it; \
         attacker connections held {holding_before}..{holding_after}, {stats:?}"
    );
    // The flood was real: many connections accepted, dozens held open (up to
    // the per-address cap) while the register synced, the rest cut.
    assert!(
        stats.connected.load(Ordering::Relaxed) >= ATTACKERS as u64,
        "{stats:?}"
    );
    assert!(holding_after >= 32, "{stats:?}");
    assert!(stats.cut.load(Ordering::Relaxed) > 0, "{stats:?}");
    assert!(
        flooded <= calm * 2,
        "the register's sync took {flooded:?} under the flood, over twice its {calm:?} without"
    );
    // Everything arrived.
    let db = hub.db().expect("hub db");
    let device_events: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events e JOIN devices d ON d.device_id = e.device_id",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(
        device_events >= i64::try_from(2 * BACKLOG).expect("n"),
        "{device_events}"
    );
}
