//! `hub-ingest-pg`: events/s through the hub's real HTTP push endpoint with
//! the store on PostgreSQL, with one hub instance and with three instances on
//! one database, against raw inserts of the same rows into PostgreSQL, in the
//! same run.
//!
//! Feature: a throwaway PostgreSQL server (`caja_hub::testpg`: `fsync=on`,
//! loopback), a fresh database per side, `caja-hub` instances started in this
//! process (each its own store: writer thread, read pool, connections — what
//! a separate process has, short of its address space), sharing the hub key.
//! The workload of `hub-ingest` (`caja_hub::workload`, pre-signed batches
//! pushed in order, every register at once) over [`STORES`] stores: register
//! `r` belongs to store `r % 3` and, with three instances, pushes to the
//! instance of its store (store affinity, as a load balancer routing by
//! store would). Writes are serialized per store (and per fiscal series and
//! number bucket; the audit log through one sequencer), so three stores on
//! three instances ingest at once: this measures what instances add.
//!
//! Baseline: the same event rows inserted into the hub's own `events` table
//! on a fresh database of the same server, 1000 rows per transaction (one
//! prepared statement, one round trip per row), by one thread.

use std::time::Duration;

use anyhow::Context;
use caja_hub::config::HubConfig;
use caja_hub::ratelimit::RateLimit;
use caja_hub::storage::Database;
use caja_hub::system::{OsRandom, SystemClock};

use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use caja_hub::admin_client::{install_crypto_provider, AdminClient};
use caja_hub::workload::{Register, Workload};
use caja_shared::checkpoint::Checkpoint;
use caja_shared::clock::Clock;
use caja_shared::event::Event;
use caja_shared::ids::StoreId;
use caja_shared::request::SignedHeaders;

use crate::hub_ingest::{rate, raw_inserts, Row, TOKEN};

/// Stores the registers belong to (both sides).
pub const STORES: usize = 3;

/// Goal: one instance at least this many thousandths of the raw rate.
pub const GOAL_ONE_MILLI: u64 = 350;
/// Goal: three instances at least this many thousandths of one.
pub const GOAL_THREE_MILLI: u64 = 1500;

/// What one run measured (events per second, best round of each side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Events pushed per side.
    pub events: usize,
    /// One instance.
    pub one_per_s: u64,
    /// Three instances.
    pub three_per_s: u64,
    /// Raw inserts.
    pub raw_per_s: u64,
}

/// The shape of a run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Registers pushing at once.
    pub devices: usize,
    /// Events per push.
    pub batch: usize,
    /// Events per register (a multiple of `batch`).
    pub per_device: usize,
}

impl Shape {
    /// `events` in total (rounded up) from 20 registers in batches of 500,
    /// as `hub-ingest`.
    pub fn for_events(events: u64) -> anyhow::Result<Shape> {
        let (devices, batch) = (20, 500);
        Ok(Shape {
            devices,
            batch,
            per_device: usize::try_from(events)?.div_ceil(devices * batch) * batch,
        })
    }
}

/// Runs the measurement; `None` when no PostgreSQL is installed (a loud skip
/// line, or a failure when `CAJA_REQUIRE_EXTERNAL=1`, from `testpg`).
pub fn run(shape: Shape, rounds: u64) -> anyhow::Result<Option<Summary>> {
    if caja_hub::testpg::shared().is_none() {
        println!("hub-ingest-pg: SKIPPED — no PostgreSQL server binaries (set CAJA_PG_BIN)");
        return Ok(None);
    }
    let total = shape.devices * shape.per_device;
    let (mut one, mut three, mut raw) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for round in 0..rounds.max(1) {
        let (t1, rows) = instances(1, shape)?;
        let (t3, _) = instances(3, shape)?;
        let db = caja_hub::testpg::fresh_database().context("PostgreSQL")?;
        let tr = raw_inserts(&Database::Postgres(db), &rows)?;
        println!(
            "  round {}: 1 instance {t1:.2?}, 3 instances {t3:.2?}, raw {tr:.2?}",
            round + 1
        );
        one = one.min(t1);
        three = three.min(t3);
        raw = raw.min(tr);
    }
    let s = Summary {
        events: total,
        one_per_s: rate(total, one),
        three_per_s: rate(total, three),
        raw_per_s: rate(total, raw),
    };
    println!(
        "hub-ingest-pg: {total} events from {} registers of {STORES} stores in pre-signed batches of {} on PostgreSQL (best of {rounds})",
        shape.devices, shape.batch
    );
    println!(
        "  raw PostgreSQL inserts, 1000-row transactions:          {:>8} events/s",
        s.raw_per_s
    );
    println!(
        "  hub HTTP push, 1 instance:                              {:>8} events/s",
        s.one_per_s
    );
    println!(
        "  hub HTTP push, 3 instances on one database:             {:>8} events/s",
        s.three_per_s
    );
    println!(
        "  ratio 1 instance/raw:   {} (goal >= 0.350x: {})",
        ratio(s.one_per_s, s.raw_per_s),
        crate::verdict(s.one_per_s * 1000 >= s.raw_per_s * GOAL_ONE_MILLI)
    );
    println!(
        "  ratio 3 instances/raw:  {}",
        ratio(s.three_per_s, s.raw_per_s)
    );
    println!(
        "  ratio 3 instances/1:    {} (goal >= 1.500x: {})",
        ratio(s.three_per_s, s.one_per_s),
        crate::verdict(s.three_per_s * 1000 >= s.one_per_s * GOAL_THREE_MILLI)
    );
    Ok(Some(s))
}

fn ratio(a: u64, b: u64) -> String {
    let milli = a * 1000 / b.max(1);
    format!("{}.{:03}x", milli / 1000, milli % 1000)
}

/// One side: `n` instances on a fresh database, the workload pushed through
/// them; returns the time and the rows.
fn instances(n: usize, shape: Shape) -> anyhow::Result<(Duration, Vec<Row>)> {
    let db = caja_hub::testpg::fresh_database().context("PostgreSQL")?;
    let tmp = tempfile::tempdir()?;
    let cfg = HubConfig {
        listen: "127.0.0.1:0".parse()?,
        admin_token: TOKEN.into(),
        rate_limit: RateLimit {
            burst: 100_000,
            per_minute: 1_000_000,
        },
        database: db,
        ..HubConfig::default()
    };
    let dirs: Vec<std::path::PathBuf> =
        (0..n).map(|i| tmp.path().join(format!("hub{i}"))).collect();
    caja_hub::datadir::init(&dirs[0], cfg.clone(), &mut OsRandom::new(), &SystemClock)?;
    // The other instances: the same key and configuration.
    for dir in &dirs[1..] {
        std::fs::create_dir_all(dir)?;
        for f in [caja_hub::datadir::KEY_FILE, caja_hub::config::CONFIG_FILE] {
            std::fs::copy(dirs[0].join(f), dir.join(f))?;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut hubs = Vec::new();
        for dir in &dirs {
            hubs.push(caja_hub::server::start(dir, cfg.clone()).await?);
        }
        let urls: Vec<String> = hubs.iter().map(caja_hub::server::RunningHub::url).collect();
        let out = feature_stores(&urls, shape.devices, shape.batch, shape.per_device).await;
        for h in hubs {
            h.stop().await?;
        }
        out
    })
}

/// A pre-signed push.
struct Prepared {
    body: Vec<u8>,
    headers: SignedHeaders,
}

fn push_body(reg: &Register, events: &[Event]) -> anyhow::Result<Vec<u8>> {
    let last = events.last().context("empty batch")?;
    let cp = Checkpoint::sign(
        &reg.key,
        reg.key_id.clone(),
        reg.device,
        last.seq(),
        last.hash(),
    );
    Ok(caja_shared::push::push_body(
        reg.device,
        events,
        &[],
        &cp,
        0,
    )?)
}

/// The measured side: [`STORES`] stores, `devices` registers enrolled at
/// `urls[0]` (register `r` in store `r % STORES`), each pushing its
/// pre-signed batches in order to the instance of its store, all at once;
/// timed from the first request to the last acknowledgement.
async fn feature_stores(
    urls: &[String],
    devices: usize,
    batch: usize,
    per_device: usize,
) -> anyhow::Result<(Duration, Vec<Row>)> {
    install_crypto_provider();
    let url = urls.first().context("no hub")?;
    let admin = AdminClient::new(url, TOKEN)?;
    let http = reqwest::Client::new();
    let mut stores: Vec<StoreId> = Vec::new();
    for s in 0..STORES {
        stores.push(
            admin.create_store(&format!("bench {s}"), None).await?["store"]
                .as_str()
                .context("no store id")?
                .parse()?,
        );
    }
    // Per store: its registers (global index, register).
    let mut members: Vec<Vec<(usize, Register)>> = vec![Vec::new(); STORES];
    for i in 0..devices {
        let store = stores[i % STORES];
        let t = admin
            .create_token(&store.to_string(), &format!("caja {i}"), None)
            .await?;
        let v: serde_json::Value = http
            .post(format!("{url}/v1/devices/enroll"))
            .json(&serde_json::json!({ "token": t["token"] }))
            .send()
            .await?
            .json()
            .await?;
        members[i % STORES].push((
            i,
            Register::new(
                v["device"].as_str().context("device")?.parse()?,
                caja_shared::key::DeviceKey::from_hex(v["key"].as_str().context("key")?)?,
                v["key_id"].as_str().context("key id")?.parse()?,
            ),
        ));
    }
    let now = SystemClock.now_ms();
    let mut rows = Vec::new();
    let mut per_register: Vec<(usize, Vec<Prepared>)> = Vec::new();
    for (s, regs) in members.into_iter().enumerate() {
        let ids: Vec<usize> = regs.iter().map(|(i, _)| *i).collect();
        let mut w = Workload::new(
            5 + s as u64,
            stores[s],
            regs.into_iter().map(|r| r.1).collect(),
        );
        let mut out: Vec<Vec<Prepared>> = ids.iter().map(|_| Vec::new()).collect();
        for _ in 0..per_device / batch {
            // Cross-register references point two rounds back (`hub-ingest`).
            w.settle_lagged(2);
            for (r, o) in out.iter_mut().enumerate() {
                let events: Vec<Event> = (0..batch).map(|_| w.next(r, now)).collect();
                let reg = &w.registers[r];
                let body = push_body(reg, &events)?;
                let headers = SignedHeaders::sign(
                    &reg.key,
                    reg.device,
                    reg.key_id.clone(),
                    "POST",
                    "/v1/sync/push",
                    &body,
                    now,
                    &mut OsRandom::new(),
                );
                rows.extend(events.into_iter().map(|e| (e, now)));
                o.push(Prepared { body, headers });
            }
        }
        per_register.extend(out.into_iter().map(|p| (s, p)));
    }
    let http = Arc::new(http);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (s, batches) in per_register {
        let http = http.clone();
        let url = urls[s % urls.len()].clone();
        tasks.push(tokio::spawn(async move {
            for p in batches {
                let mut req = http.post(format!("{url}/v1/sync/push")).body(p.body);
                for (k, v) in p.headers.pairs() {
                    req = req.header(k, v);
                }
                let resp = req.send().await?;
                // Pre-signed requests cannot be retried (their nonce is spent).
                if resp.status().as_u16() != 200 {
                    bail!("push answered {}: {}", resp.status(), resp.text().await?);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    for (i, url) in urls.iter().enumerate() {
        let metrics = http
            .get(format!("{url}/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .text()
            .await?;
        let busy = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("caja_hub_writer_busy_milliseconds")
                    .filter(|_| !l.starts_with('#'))
            })
            .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned());
        println!(
            "  instance {} of {}: writer busy {busy} ms of {} ms",
            i + 1,
            urls.len(),
            elapsed.as_millis()
        );
    }
    Ok((elapsed, rows))
}

#[cfg(test)]
mod tests {
    /// A short run under `cargo test` (debug build, a few seconds): every
    /// side finishes and pushes every event (each push answered 200).
    #[test]
    fn a_short_run_pushes_every_event_through_one_and_three_instances() {
        let shape = super::Shape {
            devices: 6,
            batch: 50,
            per_device: 100,
        };
        let Some(s) = super::run(shape, 1).expect("runs") else {
            return;
        };
        assert_eq!(s.events, 600);
        assert!(
            s.one_per_s > 0 && s.three_per_s > 0 && s.raw_per_s > 0,
            "{s:?}"
        );
    }
}
