//! Node benchmarks.
//!
//! - `node-sales`: durable 3-line sales with a cash payment through
//!   `Register::sell` (one `BEGIN IMMEDIATE` transaction each: validation,
//!   journal append, projections, op id; `synchronous=FULL`), against raw
//!   single-row inserts of the same size into a table on a connection with the
//!   same pragmas, each its own transaction. Goal: ≥ 0.7×.
//! - `node-verify`: `Journal::verify` of an N-event journal (re-hash every event,
//!   check seq/prev/hash and the index columns) against a baseline that reads the
//!   same rows and SHA-256s them. Goal: ≥ 0.8×. Verification runs in a child
//!   process so its peak RSS is its own.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use caja_node::datadir::{init, DataDir, InitParams};
use caja_node::db::Db;
use caja_node::journal::Journal;
use caja_node::keyfile;
use caja_node::register::Register;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::ids::{DeviceId, OpId, StoreId};
use caja_shared::key::HubSigningKey;
use caja_shared::kind::{PaymentMethod, StockReceived};
use caja_shared::money::{Money, QtyMilli};

use crate::rss::peak_rss_kib;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = (sorted.len() - 1) * p / 100;
    sorted[i]
}

fn per_sec(n: u64, d: Duration) -> u64 {
    let us = d.as_micros().max(1);
    u64::try_from(u128::from(n) * 1_000_000 / us).unwrap_or(u64::MAX)
}

/// Ratio as "0.83" without floats: hundredths, rounded down.
pub fn ratio(feature: u64, baseline: u64) -> String {
    let h = feature.saturating_mul(100) / baseline.max(1);
    format!("{}.{:02}", h / 100, h % 100)
}

fn new_register(root: &Path) -> anyhow::Result<Register<SystemClock, OsRandom>> {
    let dir = DataDir::new(root.join("node"));
    let hub = HubSigningKey::generate(&mut OsRandom::new()?);
    let store: StoreId = "01935f4e-8a00-7000-8000-000000000001".parse()?;
    let chain: DeviceId = "01935f4e-8a00-7000-8000-0000000000b0".parse()?;
    init(
        &dir,
        &InitParams {
            store,
            device: None,
            hub_public_key: Some(hub.public_key()),
        },
        &SystemClock,
        &mut OsRandom::new()?,
    )?;
    let mut reg = Register::open(&dir, SystemClock, OsRandom::new()?)?;
    let (events, cp) = testkit::hub_chain_page(
        &hub,
        &"hub-1".parse()?,
        store,
        chain,
        1,
        Hash256::ZERO,
        SystemClock.now_ms(),
        testkit::sample_catalog_bodies(),
        &mut SeededRandom::new(1),
    )?;
    reg.import_hub_events(&events, &cp.context("checkpoint")?)?;
    Ok(reg)
}

/// Durable sales per second against raw durable inserts.
pub fn sales(n: u64) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut reg = new_register(tmp.path())?;
    let mut rng = OsRandom::new()?;
    reg.open_shift(
        OpId::new_v7(SystemClock.now_ms(), &mut rng)?,
        "bench",
        Money(0),
    )?;
    let sale = SaleRequest {
        lines: vec![
            LineRequest {
                code: "ARROZ".into(),
                qty_milli: 2000,
                discount: None,
                unit_price: None,
            },
            LineRequest {
                code: "2000000000017".into(),
                qty_milli: 455,
                discount: None,
                unit_price: None,
            },
            LineRequest {
                code: "7460000000011".into(),
                qty_milli: 1000,
                discount: None,
                unit_price: None,
            },
        ],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 100_000,
            reference: None,
        }],
        discount: None,
        customer: None,
    };
    // The size of a sale event, for the baseline rows.
    let probe = reg.sell(OpId::new_v7(SystemClock.now_ms(), &mut rng)?, &sale)?;
    let event_len = Journal::event(reg.conn(), probe.seq)?
        .map(|e| e.canonical_bytes().len())
        .unwrap_or(800);

    // Baseline: raw single-row inserts, same file system, same pragmas.
    let base_path = tmp.path().join("baseline.sqlite3");
    let base = rusqlite::Connection::open(&base_path)?;
    caja_node::db::configure(&base, &base_path)?;
    base.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")?;
    let payload = vec![b'x'; event_len];
    // Interleave baseline and feature in rounds, so a noisy neighbour slows both.
    let rounds = 10u64;
    let chunk = (n / rounds).max(1);
    let mut base_lat = Vec::with_capacity(usize::try_from(n)?);
    let mut lat = Vec::with_capacity(usize::try_from(n)?);
    let (mut base_total, mut total) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t0 = Instant::now();
        for _ in 0..chunk {
            let s = Instant::now();
            base.execute("INSERT INTO t (payload) VALUES (?1)", [&payload])?;
            base_lat.push(s.elapsed());
        }
        base_total += t0.elapsed();
        let t0 = Instant::now();
        for _ in 0..chunk {
            let op = OpId::new_v7(SystemClock.now_ms(), &mut rng)?;
            let s = Instant::now();
            reg.sell(op, &sale)?;
            lat.push(s.elapsed());
        }
        total += t0.elapsed();
    }
    let n = chunk * rounds;
    base_lat.sort();
    lat.sort();
    let (b, f) = (per_sec(n, base_total), per_sec(n, total));
    println!(
        "node-sales: {n} durable 3-line sales (event {event_len} bytes), WAL + synchronous=FULL"
    );
    println!(
        "  baseline raw single-row inserts: {b:>7}/s  p50 {:>6} µs  p99 {:>6} µs",
        percentile(&base_lat, 50).as_micros(),
        percentile(&base_lat, 99).as_micros()
    );
    println!(
        "  caja-node sales:                 {f:>7}/s  p50 {:>6} µs  p99 {:>6} µs",
        percentile(&lat, 50).as_micros(),
        percentile(&lat, 99).as_micros()
    );
    println!(
        "  ratio sales/raw: {} (goal ≥ 0.70: {})",
        ratio(f, b),
        crate::verdict(u128::from(f) * 100 >= u128::from(b) * 70)
    );
    Ok(())
}

/// Verify an N-event journal against reading and hashing the same rows.
pub fn verify(n: u64) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    // CAJA_BENCH_KEEP=1 keeps the journal for profiling the child by hand.
    let tmp_path = if std::env::var_os("CAJA_BENCH_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("keeping {}", kept.display());
        kept
    } else {
        tmp.path().to_path_buf()
    };
    let tmp = TmpRoot(tmp_path);
    let reg = new_register(tmp.path())?;
    // Build the journal fast: many events per transaction (durability is not
    // what is measured here).
    let dir = DataDir::new(tmp.path().join("node"));
    drop(reg);
    let mut db = Db::open(dir.db_path())?;
    let key = keyfile::read_key_file(&dir.key_path())?;
    let mut journal = Journal::open(db.conn(), key, 300_000)?;
    let mut rng = SeededRandom::new(7);
    let built = Instant::now();
    let mut done = 0u64;
    while done < n {
        let tx = db.write_tx()?;
        let batch = (n - done).min(20_000);
        for _ in 0..batch {
            journal.append(
                &tx,
                StockReceived {
                    product: "7501234567890".parse()?,
                    qty_milli: QtyMilli(1000),
                    reference: Some("bench".into()),
                }
                .into(),
                vec![],
                &mut rng,
                SystemClock.now_ms(),
            )?;
        }
        tx.commit()?;
        done += batch;
    }
    drop(db);
    println!(
        "node-verify: journal of {n} events built in {} s",
        built.elapsed().as_secs()
    );

    // Baseline and feature alternate for a few rounds; each keeps its best
    // (least disturbed) time, so a busy neighbour does not decide the ratio.
    let exe = std::env::current_exe()?;
    let (mut base, mut feat) = (Duration::MAX, Duration::MAX);
    let mut acc = 0u8;
    let mut child = String::new();
    for _ in 0..3 {
        let conn = rusqlite::Connection::open(dir.db_path())?;
        let t0 = Instant::now();
        let mut stmt = conn.prepare("SELECT bytes FROM journal ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let bytes = row.get_ref(0)?.as_blob()?;
            acc ^= Hash256::of(bytes).0[0];
        }
        base = base.min(t0.elapsed());
        drop(rows);
        drop(stmt);
        drop(conn);
        // Feature, in a child process so its peak RSS is measured alone.
        let t0 = Instant::now();
        let out = Command::new(&exe)
            .args([
                "node-verify-child",
                dir.root().to_str().context("utf8 path")?,
            ])
            .output()?;
        feat = feat.min(t0.elapsed());
        anyhow::ensure!(
            out.status.success(),
            "verify child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        child = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    let (b, f) = (per_sec(n, base), per_sec(n, feat));
    println!(
        "  baseline read + SHA-256:  {b:>8} events/s ({} ms) [{acc}]",
        base.as_millis()
    );
    println!(
        "  caja-node verify (child): {f:>8} events/s ({} ms, process start included)",
        feat.as_millis()
    );
    println!(
        "  ratio verify/baseline: {} (goal ≥ 0.80: {})",
        ratio(f, b),
        crate::verdict(u128::from(f) * 100 >= u128::from(b) * 80)
    );
    print!("  {child}");
    Ok(())
}

/// Where a benchmark keeps its files.
struct TmpRoot(std::path::PathBuf);

impl TmpRoot {
    fn path(&self) -> &Path {
        &self.0
    }
}

/// The child of `node-verify`: verifies the whole journal, prints peak RSS.
pub fn verify_child(root: Option<&str>) -> anyhow::Result<()> {
    let dir = DataDir::new(root.context("data dir argument")?);
    let db = Db::open(dir.db_path())?;
    let key = keyfile::read_key_file(&dir.key_path())?;
    let head = Journal::verify(db.conn(), &key, None, |_, _| {})?;
    println!(
        "verified {} events; peak RSS of the verifying process {} KiB",
        head.seq,
        peak_rss_kib().map_or("unknown".into(), |k| k.to_string())
    );
    Ok(())
}
