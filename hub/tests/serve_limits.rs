//! The serve loop's limits, each tried on a real hub socket: headers that
//! never finish are cut at `header_timeout_ms`; a body that never finishes
//! gets 503 `timeout` at `body_timeout_ms`; connections beyond
//! `max_connections_per_ip` from one address, or `max_connections` in all,
//! are closed on arrival while other addresses are served; bodies still
//! arriving hold no concurrency permit.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr_of(hub: &TestHub) -> SocketAddr {
    hub.url.trim_start_matches("http://").parse().unwrap()
}

async fn connect_from(source: &str, hub: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
    sock.connect(hub).await.unwrap()
}

/// Reads until the hub closes or `limit` passes: what arrived, and whether
/// the connection was closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

async fn health_from(source: &str, hub: &TestHub) -> u16 {
    let c = reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        // One connection per call, closed after it: a slot is not held.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    c.get(format!("{}/v1/health", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn unfinished_headers_are_cut_and_unfinished_bodies_answered_503() {
    let hub = TestHub::start_with(caja_hub::config::HubConfig {
        header_timeout_ms: 400,
        body_timeout_ms: 400,
        request_timeout_ms: 5_000,
        ..test_config()
    })
    .await;
    let addr = addr_of(&hub);
    // Slowloris: the headers never end.
    let mut s = connect_from("127.0.0.2", addr).await;
    s.write_all(b"POST /v1/sync/push HTTP/1.1\r\nHost: hub\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        closed,
        "headers never finished but the connection stayed open"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!got.contains("200 OK"), "{got}");

    // A keep-alive connection idle past the header timeout is closed too.
    let mut idle = connect_from("127.0.0.2", addr).await;
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection stays open");

    // Slow body: headers done, 8 MB announced, one byte sent.
    let mut s = connect_from("127.0.0.2", addr).await;
    s.write_all(
        b"POST /v1/sync/push HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n{",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("\"error\":\"timeout\""), "{got}");
    assert!(got.to_ascii_lowercase().contains("retry-after: 1"), "{got}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A body over the limit is refused from its Content-Length, unread.
    let mut s = connect_from("127.0.0.2", addr).await;
    s.write_all(b"POST /v1/sync/push HTTP/1.1\r\nHost: hub\r\nContent-Length: 99000000\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    // Meanwhile the hub serves.
    assert_eq!(health_from("127.0.0.1", &hub).await, 200);
}

#[tokio::test]
async fn connections_are_capped_per_address_and_overall() {
    let hub = TestHub::start_with(caja_hub::config::HubConfig {
        max_connections: 6,
        max_connections_per_ip: 4,
        header_timeout_ms: 20_000,
        ..test_config()
    })
    .await;
    let addr = addr_of(&hub);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.2", addr).await);
    }
    // Give the hub the moment to accept them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The fifth from the same address is closed at once.
    let mut fifth = connect_from("127.0.0.2", addr).await;
    let (_, closed) = read_until_closed(&mut fifth, Duration::from_secs(3)).await;
    assert!(closed, "a fifth connection from one address stayed open");
    // Another address is served.
    assert_eq!(health_from("127.0.0.3", &hub).await, 200);
    // Six held in all (four + two): a seventh, from anywhere, is closed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    held.push(connect_from("127.0.0.3", addr).await);
    held.push(connect_from("127.0.0.3", addr).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut seventh = connect_from("127.0.0.4", addr).await;
    let (_, closed) = read_until_closed(&mut seventh, Duration::from_secs(3)).await;
    assert!(closed, "a connection over max_connections stayed open");
    // Closing one frees its slot.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(health_from("127.0.0.4", &hub).await, 200);
}

#[tokio::test]
async fn bodies_still_arriving_hold_no_concurrency_permit() {
    let hub = TestHub::start_with(caja_hub::config::HubConfig {
        max_concurrent_requests: 2,
        body_timeout_ms: 20_000,
        request_timeout_ms: 20_000,
        ..test_config()
    })
    .await;
    let addr = addr_of(&hub);
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.2", addr).await;
        s.write_all(b"POST /v1/sync/push HTTP/1.1\r\nHost: hub\r\nContent-Length: 100000\r\n\r\n{")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Four bodies trickling, two permits: the register is still served.
    for _ in 0..3 {
        assert_eq!(health_from("127.0.0.1", &hub).await, 200);
    }
    drop(slow);
}

#[tokio::test]
async fn bodies_in_arrival_are_bounded_in_bytes_per_address() {
    let hub = TestHub::start_with(caja_hub::config::HubConfig {
        body_limit_bytes: 10_000,
        max_buffered_body_bytes_per_ip: 20_000,
        max_buffered_body_bytes: 30_000,
        body_timeout_ms: 20_000,
        request_timeout_ms: 20_000,
        ..test_config()
    })
    .await;
    let addr = addr_of(&hub);
    let stalled = |source: &'static str| async move {
        let mut s = connect_from(source, addr).await;
        s.write_all(b"POST /v1/sync/push HTTP/1.1\r\nHost: hub\r\nContent-Length: 10000\r\n\r\n")
            .await
            .unwrap();
        s.write_all(&[b' '; 9_000]).await.unwrap();
        s
    };
    let held = vec![stalled("127.0.0.2").await, stalled("127.0.0.2").await];
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A third nearly whole body from the same address: refused at once.
    let mut third = stalled("127.0.0.2").await;
    let (got, _) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 429"), "{got}");
    assert!(got.contains("too many request bodies"), "{got}");
    // Another address is served, body and all.
    let c = reqwest::Client::builder()
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = c
        .post(format!("{}/v1/admin/stores", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "name": "Colmado" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(held);
}
