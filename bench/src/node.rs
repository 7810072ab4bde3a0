//! Node benchmarks (`node-sales` is in `node_sales`).
//!
//! - `node-verify`: `Journal::verify` of an N-event journal (re-hash every event,
//!   check seq/prev/hash and the index columns) against a baseline that reads the
//!   same rows and SHA-256s them. Goal: ≥ 0.8×. Verification runs in a child
//!   process so its peak RSS is its own.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use caja_node::datadir::DataDir;
use caja_node::db::Db;
use caja_node::journal::Journal;
use caja_node::keyfile;
use caja_node::system::SystemClock;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::kind::StockReceived;
use caja_shared::money::QtyMilli;

use crate::rss::peak_rss_kib;

pub(crate) fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = (sorted.len() - 1) * p / 100;
    sorted[i]
}

pub(crate) fn per_sec(n: u64, d: Duration) -> u64 {
    let us = d.as_micros().max(1);
    u64::try_from(u128::from(n) * 1_000_000 / us).unwrap_or(u64::MAX)
}

/// Ratio as "0.83" without floats: hundredths, rounded down.
pub fn ratio(feature: u64, baseline: u64) -> String {
    let h = feature.saturating_mul(100) / baseline.max(1);
    format!("{}.{:02}", h / 100, h % 100)
}

/// What one `node-verify` run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Events in the journal.
    pub events: u64,
    /// Baseline events per second.
    pub base_per_s: u64,
    /// Verify events per second.
    pub verify_per_s: u64,
    /// Whether the goal was met.
    pub met: bool,
}

/// Goal: verify at least this many hundredths of the baseline's rate.
pub const VERIFY_GOAL_HUNDREDTHS: u64 = 80;

/// Verify an N-event journal against reading and hashing the same rows;
/// `child`: verify in a child process (peak RSS its own) or, under `cargo
/// test` where this executable is the test harness, in this process.
pub fn verify(n: u64, child: bool) -> anyhow::Result<VerifySummary> {
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
    let reg = crate::node_sales::new_register(tmp.path(), "", None)?;
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
    let (mut base, mut feat, mut one) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut acc = 0u8;
    let mut child_said = String::new();
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
        // Every check on the reading thread, as verify ran before its
        // checks moved to a second thread (in this process).
        {
            let t0 = Instant::now();
            let db = Db::open(dir.db_path())?;
            let key = keyfile::read_key_file(&dir.key_path())?;
            Journal::verify_on_one_thread(db.conn(), &key, None, |_, _| {})?;
            one = one.min(t0.elapsed());
        }
        // Feature, in a child process so its peak RSS is measured alone.
        let t0 = Instant::now();
        if child {
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
            child_said = String::from_utf8_lossy(&out.stdout).into_owned();
        } else {
            let db = Db::open(dir.db_path())?;
            let key = keyfile::read_key_file(&dir.key_path())?;
            let head = Journal::verify(db.conn(), &key, None, |_, _| {})?;
            feat = feat.min(t0.elapsed());
            child_said = format!("verified {} events in this process\n", head.seq);
        }
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
    let met = u128::from(f) * 100 >= u128::from(b) * u128::from(VERIFY_GOAL_HUNDREDTHS);
    println!(
        "  ratio verify/baseline: {} (goal ≥ 0.80: {})",
        ratio(f, b),
        crate::verdict(met)
    );
    print!("  {child_said}");
    let o = per_sec(n, one);
    println!(
        "  verify with every check on one thread (in this process): {o:>8} events/s, ratio {}",
        ratio(o, b)
    );
    Ok(VerifySummary {
        events: n,
        base_per_s: b,
        verify_per_s: f,
        met,
    })
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

#[cfg(test)]
mod tests {
    /// A short run under `cargo test`: both sides verify the same journal.
    #[test]
    fn a_short_verify_run_measures_both_sides() {
        let s = super::verify(2_000, false).expect("runs");
        assert_eq!(s.events, 2_000);
        assert!(s.base_per_s > 0 && s.verify_per_s > 0, "{s:?}");
    }
}
