//! `hub-ingest-pg`: events/s through the hub's real HTTP push endpoint with
//! the store on PostgreSQL, with one hub instance and with three instances on
//! one database, against raw inserts of the same rows into PostgreSQL, in the
//! same run.
//!
//! Feature: a throwaway PostgreSQL server (`caja_hub::testpg`: `fsync=on`,
//! loopback), a fresh database per side, `caja-hub` instances started in this
//! process (each its own store: writer thread, read pool, connections — what
//! a separate process has, short of its address space), sharing the hub key.
//! The same workload as `hub-ingest` (`caja_hub::workload`, pre-signed
//! batches pushed in order, every register at once); with three instances,
//! register `r` pushes to instance `r % 3`, so events held for another
//! register's events are released by whichever instance applies those.
//! Every write transaction of every instance takes the writers' advisory
//! lock, so instances add availability, not write throughput: this measures
//! what they cost.
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

use crate::hub_ingest::{feature, rate, raw_inserts, Row, TOKEN};

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
        "hub-ingest-pg: {total} events from {} registers in pre-signed batches of {} on PostgreSQL (best of {rounds})",
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
        let out = feature(&urls, shape.devices, shape.batch, shape.per_device).await;
        for h in hubs {
            h.stop().await?;
        }
        out
    })
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
