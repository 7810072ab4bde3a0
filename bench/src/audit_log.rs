//! `audit-log`: the hub's persisted RFC 9162 tree at N entries (default 20 000;
//! `--entries 1000000` for the goal's size).
//!
//! Appends, in the same run and on the same entry bytes (realistic
//! `event_accepted` entries, ~330 bytes):
//! - baseline: raw SHA-256 of each entry, in memory;
//! - the `audit_log` row alone (what the hub wrote per entry before the tree);
//! - feature: the row and the tree (`storage::audit_tree::append_leaf`: leaf hash,
//!   completed subtrees, their rows), in 1000-entry transactions with
//!   `synchronous=FULL`, as the hub's writer does.
//!
//! Then, at N: the start-up check (every entry hashed again, streamed), inclusion
//! and consistency proofs from SQLite (size and latency, 1000 random requests
//! each, goal <= 1 ms, inclusion <= 20 hashes and consistency <= 40 at 1M), their
//! verification, and `audit export` + `audit verify` of the whole log.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caja_hub::audit::{self, AuditEntry, AuditKind};
use caja_hub::audit_export;
use caja_hub::config::HubConfig;
use caja_hub::storage::Conn;
use caja_hub::storage::{self, audit_tree};
use caja_hub::system::{OsRandom, SystemClock};
use caja_shared::digest::Hash256;
use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::merkle;

const TX: usize = 1000;
const SAMPLES: usize = 1000;

fn per_sec(n: u64, d: Duration) -> u64 {
    let us = d.as_micros().max(1);
    u64::try_from(u128::from(n) * 1_000_000 / us).unwrap_or(u64::MAX)
}

fn ratio(feature: u64, baseline: u64) -> String {
    let h = feature.saturating_mul(1000) / baseline.max(1);
    format!("{}.{:03}", h / 1000, h % 1000)
}

/// `event_accepted` entries as the hub writes them.
fn entries(n: u64) -> Vec<Vec<u8>> {
    let mut rng = SeededRandom::new(9);
    let store = "01935f4e-8a00-7000-8000-000000000001".parse().ok();
    (0..n)
        .map(|i| {
            let id = format!(
                "01935f4e-8a00-7{:03x}-8{:03x}-{:012x}",
                rng.next_u64() & 0xfff,
                rng.next_u64() & 0xfff,
                rng.next_u64() & 0xffff_ffff_ffff
            );
            let mut hash = [0u8; 32];
            rng.fill_bytes(&mut hash);
            AuditEntry {
                index: i,
                kind: AuditKind::EventAccepted,
                at_ms: 1_763_880_000_000 + i64::try_from(i).unwrap_or(0),
                store,
                data: audit::data([
                    ("device", audit::s("01935f4e-8a00-7000-8000-0000000000b1")),
                    ("seq", audit::n(i + 1)),
                    ("event_id", audit::s(id)),
                    ("hash", audit::s(Hash256(hash))),
                    ("kind", audit::s("SaleCreated")),
                ]),
            }
            .canonical_bytes()
        })
        .collect()
}

fn insert_rows(conn: &Conn, from: usize, bytes: &[Vec<u8>], tree: bool) -> anyhow::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO audit_log (idx, kind, at_ms, store_id, entry, leaf_hash) VALUES ($1, 'event_accepted', 0, NULL, $2, $3)",
    )?;
    for (k, b) in bytes.iter().enumerate() {
        let index = u64::try_from(from + k)?;
        let leaf = merkle::leaf_hash(b);
        stmt.execute(caja_hub::sql_params![
            i64::try_from(index)?,
            b,
            leaf.to_hex()
        ])?;
        if tree {
            audit_tree::append_leaf(conn, index, leaf)?;
        }
    }
    Ok(())
}

/// One `TX`-entry transaction; returns the time taken.
fn append_chunk(
    conn: &Conn,
    from: usize,
    chunk: &[Vec<u8>],
    tree: bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    conn.write_tx(|tx| insert_rows(tx, from, chunk, tree))?;
    Ok(started.elapsed())
}

struct Latency {
    /// One per request (`SAMPLES` of them).
    times: Vec<Duration>,
    max_hashes: usize,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            times: Vec::with_capacity(SAMPLES),
            max_hashes: 0,
        }
    }
    fn add(&mut self, d: Duration, hashes: usize) {
        self.times.push(d);
        self.max_hashes = self.max_hashes.max(hashes);
    }
    fn mean_us(&self) -> u128 {
        let total: Duration = self.times.iter().sum();
        total.as_micros() / self.times.len().max(1) as u128
    }
    /// The `per_mille`-th fastest time.
    fn quantile(&self, per_mille: usize) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        let i = (sorted.len() * per_mille / 1000).min(sorted.len().saturating_sub(1));
        sorted.get(i).copied().unwrap_or_default()
    }
    fn line(&self) -> String {
        format!(
            "mean {} µs, p50 {:.0?}, p99 {:.0?}, max {:.2?}",
            self.mean_us(),
            self.quantile(500),
            self.quantile(990),
            self.quantile(1000)
        )
    }
}

/// Proof sizes found, for the CI run's assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Levels of the tree (ceil(log2(n))).
    pub levels: usize,
    /// Longest inclusion proof seen.
    pub inclusion_max_hashes: usize,
    /// Longest consistency proof seen.
    pub consistency_max_hashes: usize,
}

/// Runs the benchmark at `n` entries.
pub fn run(n: u64) -> anyhow::Result<Summary> {
    if n < 2 {
        bail!("--entries must be at least 2");
    }
    let tmp = tempfile::tempdir()?;
    println!("audit-log: {n} entries");
    let t = Instant::now();
    let all = entries(n);
    let bytes: usize = all.iter().map(Vec::len).sum();
    println!(
        "  generated in {:.2?} ({} bytes per entry on average)",
        t.elapsed(),
        bytes / all.len()
    );

    // Baseline: SHA-256 of the same bytes.
    let started = Instant::now();
    let mut acc = 0u8;
    for e in &all {
        acc ^= Hash256::of(e).0[0];
    }
    let sha = started.elapsed();
    std::hint::black_box(acc);

    // The row alone on a database of the hub's schema, and the feature (the
    // row and the tree) in a real hub data directory, transaction by
    // transaction in turn so that machine noise hits both.
    let rows_only = storage::open_offline(&storage::Database::Sqlite(tmp.path().join("rows.db")))?;
    let hub_dir = tmp.path().join("hub");
    caja_hub::datadir::init(
        &hub_dir,
        HubConfig::default(),
        &mut OsRandom::new(),
        &SystemClock,
    )?;
    let conn = storage::open_offline(&caja_hub::datadir::database(&hub_dir)?)?;
    let (mut rows, mut tree) = (Duration::ZERO, Duration::ZERO);
    for (c, chunk) in all.chunks(TX).enumerate() {
        rows += append_chunk(&rows_only, c * TX, chunk, false)?;
        tree += append_chunk(&conn, c * TX, chunk, true)?;
    }
    drop(rows_only);

    let sha_rate = per_sec(n, sha);
    let rows_rate = per_sec(n, rows);
    let tree_rate = per_sec(n, tree);
    println!("  appends (transactions of {TX}, synchronous=FULL, interleaved):");
    println!("    baseline, raw SHA-256 of the entry bytes:    {sha_rate:>10} entries/s");
    println!("    audit_log row only (before the tree):        {rows_rate:>10} entries/s");
    println!("    audit_log row + persisted Merkle tree:       {tree_rate:>10} entries/s");
    println!(
        "    ratio tree/raw SHA-256: {}x; ratio tree/row only: {}x",
        ratio(tree_rate, sha_rate),
        ratio(tree_rate, rows_rate)
    );
    let tree_rows: i64 = conn.query_row("SELECT COUNT(*) FROM audit_tree", [], |r| r.get(0))?;
    println!(
        "    tree rows: {tree_rows} ({} per entry)",
        ratio(u64::try_from(tree_rows)?, n)
    );

    // Start-up check of the whole log.
    let key = caja_hub::datadir::load_key(&hub_dir)?;
    let started = Instant::now();
    let check = audit_tree::startup(&conn, &key, 1_763_880_000_000)?;
    let startup = started.elapsed();
    if check.rebuilt || check.sth.tree_size != n {
        bail!("start-up check: {check:?}");
    }
    println!(
        "  start-up check (every entry hashed again, streamed): {startup:.2?} ({} entries/s)",
        per_sec(n, startup)
    );
    let (size, root) = audit_tree::current_head(&conn)?;
    if size != n || root != check.sth.root {
        bail!("head {size} {root} differs from the check's");
    }

    // Proofs at size n.
    let mut rng = SeededRandom::new(42);
    let mut inc = Latency::new();
    let mut inc_verify = Duration::ZERO;
    for _ in 0..SAMPLES {
        let index = rng.next_u64() % n;
        let started = Instant::now();
        let a = audit_tree::inclusion(&conn, index, n)?
            .map_err(|e| anyhow::anyhow!("inclusion {index}: {}", e.message))?;
        inc.add(started.elapsed(), a.proof.len());
        let started = Instant::now();
        merkle::verify_inclusion(&a.leaf_hash, index, n, &a.proof, &root)
            .with_context(|| format!("inclusion proof of {index}"))?;
        inc_verify += started.elapsed();
    }
    let mut cons = Latency::new();
    let mut cons_verify = Duration::ZERO;
    for k in 0..SAMPLES {
        // Half from a random older size to now (what a register asks), half
        // between two random sizes.
        let second = if k % 2 == 0 {
            n
        } else {
            2 + rng.next_u64() % (n - 1)
        };
        let first = 1 + rng.next_u64() % (second - 1);
        let started = Instant::now();
        let proof = audit_tree::consistency(&conn, first, second)?
            .map_err(|e| anyhow::anyhow!("consistency {first} {second}: {}", e.message))?;
        cons.add(started.elapsed(), proof.len());
        let r1 = caja_hub::audit_tree::root(&mut audit_tree::SqlNodes::new(&conn), first)
            .map_err(|e| anyhow::anyhow!("root {first}: {e}"))?;
        let r2 = caja_hub::audit_tree::root(&mut audit_tree::SqlNodes::new(&conn), second)
            .map_err(|e| anyhow::anyhow!("root {second}: {e}"))?;
        let started = Instant::now();
        merkle::verify_consistency(first, second, &r1, &r2, &proof)
            .with_context(|| format!("consistency {first}..{second}"))?;
        cons_verify += started.elapsed();
    }
    let levels = usize::try_from(64 - (n - 1).leading_zeros())?;
    println!("  proofs from SQLite at {n} entries ({SAMPLES} random requests each):");
    println!(
        "    inclusion:   {}, at most {} hashes (goal <= 1 ms, <= {levels}); verify mean {} µs",
        inc.line(),
        inc.max_hashes,
        inc_verify.as_micros() / (SAMPLES as u128)
    );
    println!(
        "    consistency: {}, at most {} hashes (goal <= 1 ms, <= {}); verify mean {} µs",
        cons.line(),
        cons.max_hashes,
        2 * levels,
        cons_verify.as_micros() / (SAMPLES as u128)
    );
    let within = inc.max_hashes <= levels
        && cons.max_hashes <= 2 * levels
        && inc.quantile(990) <= Duration::from_millis(1)
        && cons.quantile(990) <= Duration::from_millis(1);
    println!("    goals (p99 <= 1 ms, sizes): {}", crate::verdict(within));
    drop(conn);

    // Export and verify of the whole log.
    let out = tmp.path().join("export");
    let started = Instant::now();
    let exported = audit_export::export(&hub_dir, &out, 1_763_880_000_001)?;
    let export = started.elapsed();
    let started = Instant::now();
    let verified = audit_export::verify(&out)?;
    let verify = started.elapsed();
    if verified.entries != n || exported.sth.root != root {
        bail!("export/verify disagree with the tree");
    }
    let file = std::fs::metadata(out.join(audit_export::ENTRIES_FILE))?.len();
    println!(
        "  audit export: {export:.2?} ({file} bytes of entries.jsonl); audit verify: {verify:.2?} ({} entries/s)",
        per_sec(n, verify)
    );
    Ok(Summary {
        levels,
        inclusion_max_hashes: inc.max_hashes,
        consistency_max_hashes: cons.max_hashes,
    })
}

#[cfg(test)]
mod tests {
    /// The short run CI makes (`cargo test` runs it; a debug build, so only the
    /// proof sizes are asserted, not the latencies).
    #[test]
    fn a_short_run_meets_the_proof_size_goals() {
        let s = super::run(20_000).expect("runs");
        assert_eq!(s.levels, 15);
        assert!(s.inclusion_max_hashes <= s.levels, "{s:?}");
        assert!(s.consistency_max_hashes <= 2 * s.levels, "{s:?}");
        assert!(s.inclusion_max_hashes >= s.levels - 1, "{s:?}");
    }
}
