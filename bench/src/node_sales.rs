//! `node-sales`: durable sales through `Register::sell` against raw durable
//! inserts, in the same run, plus what does not depend on the machine's load:
//! pages written (WAL frames) and SQL statements run per sale commit.
//!
//! - Plain sale: a 3-line cash sale on a register whose default document
//!   needs no signature (one `BEGIN IMMEDIATE` transaction each: validation,
//!   journal append, projections, receipt job, op id; `synchronous=FULL`)
//!   against raw single-row inserts of the same size into a table on a
//!   connection with the same pragmas, each its own transaction. Goals:
//!   ≥ 0.70× the raw rate and p99 ≤ 3× the raw p99.
//! - e-CF sale (`E32`, signed on the register with the test PKI's RSA
//!   certificate, made with `openssl`): the same sale against a raw insert
//!   plus the same RSA signatures (the sale's own documents, re-signed with
//!   the same key). Goal ≥ 0.70×. Skipped with a printed reason when
//!   `openssl` is missing.
//!
//! Both sides run with the register's WAL checkpointer (`checkpointer`, the
//! same thresholds), so neither copies the WAL into its database on the
//! timed commits but at the WAL's hard bound; each prints the checkpoints it
//! ran. The raw inserts are also timed with SQLite's automatic checkpoint,
//! interleaved with the others, and the faster raw side is the baseline:
//! the checkpoint thread slows a writer that never pauses on this disk.
//!
//! Pages per commit: the WAL is emptied, automatic checkpoints are switched
//! off for a counted stretch of commits, and `PRAGMA wal_checkpoint` reports
//! the frames written (one frame = one page image). Statements: SQLite's
//! statement trace (`trace_v2`), counting top-level statements and trigger
//! programs apart.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use caja_node::checkpointer::{CheckpointPolicy, CheckpointStats, Checkpointer};
use caja_node::datadir::{init, DataDir, InitParams};
use caja_node::journal::Journal;
use caja_node::register::{Document, Register};
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::ids::{DeviceId, GrantId, OpId, RequestId, StoreId};
use caja_shared::key::HubSigningKey;
use caja_shared::kind::{EventBody, FiscalRangeGranted, PaymentMethod};
use caja_shared::money::Money;
use rusqlite::trace::{TraceEvent, TraceEventCodes};

use crate::node::{per_sec, percentile, ratio};

/// Goal: sales at least this many hundredths of the baseline's rate.
pub const GOAL_RATIO_HUNDREDTHS: u64 = 70;
/// Goal: the sale's p99 at most this many times the raw p99.
pub const GOAL_P99_TIMES: u128 = 3;
/// Commits counted for pages and statements.
const COUNTED: u64 = 50;

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Sales timed.
    pub sales: u64,
    /// Raw inserts per second.
    pub raw_per_s: u64,
    /// Sales per second.
    pub sale_per_s: u64,
    /// Raw p99 (µs).
    pub raw_p99_us: u128,
    /// Sale p99 (µs).
    pub sale_p99_us: u128,
    /// WAL frames per raw insert commit, in hundredths.
    pub raw_pages_x100: u64,
    /// WAL frames per sale commit, in hundredths.
    pub sale_pages_x100: u64,
    /// Top-level SQL statements per sale.
    pub statements_x100: u64,
    /// Trigger programs run per sale.
    pub trigger_runs_x100: u64,
    /// What the baseline's checkpointer did (timed part).
    pub raw_checkpoints: CheckpointStats,
    /// What the register's checkpointer did (timed part).
    pub sale_checkpoints: CheckpointStats,
    /// Whether both goals were met.
    pub met: bool,
}

/// The 3-line cash sale every side measures.
pub fn three_line_sale() -> SaleRequest {
    let line = |code: &str, qty_milli| LineRequest {
        code: code.into(),
        qty_milli,
        discount: None,
        unit_price: None,
    };
    SaleRequest {
        lines: vec![
            line("ARROZ", 2000),
            line("2000000000017", 455),
            line("7460000000011", 1000),
        ],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 100_000,
            reference: None,
        }],
        discount: None,
        customer: None,
    }
}

type Reg = Register<SystemClock, OsRandom>;

/// A register with the sample catalog, `config` written before it opens,
/// and, when `series` is given, a fiscal block of `block` numbers of it.
pub fn new_register(root: &Path, config: &str, series: Option<(&str, u64)>) -> anyhow::Result<Reg> {
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
    std::fs::write(dir.root().join("config.toml"), config)?;
    let mut reg = Register::open(&dir, SystemClock, OsRandom::new()?)?;
    let now = SystemClock.now_ms();
    let mut bodies = testkit::sample_catalog_bodies();
    let mut rng = SeededRandom::new(1);
    if let Some((series, block)) = series {
        let request: RequestId = "019aaf70-0000-7000-8000-000000000001".parse()?;
        caja_node::fiscal::record_request(reg.conn(), request, series, block, now)?;
        bodies.push(EventBody::FiscalRangeGranted(FiscalRangeGranted {
            grant_id: GrantId::new_v7(now, &mut rng)?,
            device: reg.device().device,
            request_id: request,
            series: series.into(),
            digits: 10,
            first: 1,
            last: block,
            expires_ms: now + 30 * 86_400_000,
            valid_until: "2030-12-31".into(),
        }));
    }
    let (events, cp) = testkit::hub_chain_page(
        &hub,
        &"hub-1".parse()?,
        store,
        chain,
        1,
        Hash256::ZERO,
        now,
        bodies,
        &mut rng,
    )?;
    reg.import_hub_events(&events, &cp.context("checkpoint")?)?;
    Ok(reg)
}

/// Frames in the WAL now (after a passive checkpoint attempt, which copies
/// but does not reset).
fn wal_frames(conn: &rusqlite::Connection) -> anyhow::Result<u64> {
    let log: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?;
    Ok(u64::try_from(log.max(0))?)
}

/// Empties the WAL and switches automatic checkpoints off on `conn` (the
/// connection that will commit: the setting is per connection); returns the
/// frame count to subtract.
fn count_pages_from(conn: &rusqlite::Connection) -> anyhow::Result<u64> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    wal_frames(conn)
}

/// The frames written since [`count_pages_from`], in hundredths per each of
/// `k` commits; automatic checkpoints back on.
fn pages_counted(conn: &rusqlite::Connection, before: u64, k: u64) -> anyhow::Result<u64> {
    let frames = wal_frames(conn)?.saturating_sub(before);
    conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(frames * 100 / k.max(1))
}

/// Which b-tree (table or index, `dbstat`'s name) each WAL frame written
/// since frame `before` belongs to, in hundredths of a frame per each of `k`
/// commits, most written first. Reads the WAL file's frame headers (page
/// number at bytes 0..4 of each 24-byte header); a page no b-tree holds any
/// more (freed, or a pointer-map page) counts as `(free)`. Call before
/// [`pages_counted`], which empties the WAL.
fn pages_by_btree(
    conn: &rusqlite::Connection,
    before: u64,
    k: u64,
) -> anyhow::Result<Vec<(String, u64)>> {
    let path = conn.path().context("database path")?;
    let wal = std::fs::read(format!("{path}-wal"))?;
    anyhow::ensure!(wal.len() >= 32, "WAL shorter than its header");
    let page_size = usize::try_from(u32::from_be_bytes(wal[8..12].try_into()?))?;
    let mut owner = std::collections::HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT pageno, name FROM dbstat")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            owner.insert(r.get::<_, i64>(0)?, r.get::<_, String>(1)?);
        }
    }
    let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let frame = 24 + page_size;
    let first = 32 + usize::try_from(before)? * frame;
    let mut at = first;
    while at + frame <= wal.len() {
        let page = i64::from(u32::from_be_bytes(wal[at..at + 4].try_into()?));
        let name = owner.get(&page).cloned().unwrap_or_else(|| "(free)".into());
        *counts.entry(name).or_default() += 1;
        at += frame;
    }
    let mut out: Vec<(String, u64)> = counts
        .into_iter()
        .map(|(name, n)| (name, n * 100 / k.max(1)))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// Counts the statements (and trigger programs) `k` calls of `op` run on
/// the register's connection, in hundredths per call.
fn statements_per_op(
    reg: &mut Reg,
    k: u64,
    mut op: impl FnMut(&mut Reg) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, u64)> {
    let top = Arc::new(AtomicU64::new(0));
    let trig = Arc::new(AtomicU64::new(0));
    let (t, g) = (top.clone(), trig.clone());
    // CAJA_BENCH_TRACE=1 prints every statement of the counted operations.
    let show = std::env::var_os("CAJA_BENCH_TRACE").is_some();
    reg.conn_mut()
        .trace_v2(
            TraceEventCodes::SQLITE_TRACE_STMT,
            Some(move |e: TraceEvent<'_>| {
                if let TraceEvent::Stmt(_, sql) = e {
                    if show {
                        eprintln!(
                            "  sql: {}",
                            sql.split_whitespace().collect::<Vec<_>>().join(" ")
                        );
                    }
                    if sql.starts_with("--") {
                        g.fetch_add(1, Ordering::Relaxed);
                    } else {
                        t.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }),
        )
        .context("trace")?;
    for _ in 0..k {
        op(reg)?;
    }
    reg.conn_mut()
        .trace_v2(TraceEventCodes::empty(), None::<fn(TraceEvent<'_>)>)?;
    Ok((
        top.load(Ordering::Relaxed) * 100 / k.max(1),
        trig.load(Ordering::Relaxed) * 100 / k.max(1),
    ))
}

fn hundredths(x: u64) -> String {
    format!("{}.{:02}", x / 100, x % 100)
}

fn op_id(rng: &mut OsRandom) -> anyhow::Result<OpId> {
    Ok(OpId::new_v7(SystemClock.now_ms(), rng)?)
}

/// Durable plain sales per second against raw durable inserts; `n` sales.
pub fn sales(n: u64) -> anyhow::Result<Summary> {
    let tmp = tempfile::tempdir()?;
    let mut reg = new_register(tmp.path(), "", None)?;
    let mut rng = OsRandom::new()?;
    reg.open_shift(op_id(&mut rng)?, "bench", Money(0))?;
    let sale = three_line_sale();
    // The size of a sale event, for the baseline rows.
    let probe = reg.sell(op_id(&mut rng)?, &sale)?;
    let event_len = Journal::event(reg.conn(), probe.seq)?
        .map(|e| e.canonical_bytes().len())
        .unwrap_or(800);

    // Baseline: raw single-row inserts, same file system, same pragmas,
    // and the same WAL checkpointer with the same thresholds as the
    // register's.
    let base_path = tmp.path().join("baseline.sqlite3");
    let mut base = rusqlite::Connection::open(&base_path)?;
    caja_node::db::configure(&base, &base_path)?;
    base.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")?;
    let mut policy = CheckpointPolicy::default();
    // CAJA_BENCH_CHECKPOINT=start,hard: other thresholds, for tuning.
    if let Some(v) = std::env::var_os("CAJA_BENCH_CHECKPOINT") {
        let v = v.to_string_lossy().into_owned();
        let (a, b) = v
            .split_once(',')
            .context("CAJA_BENCH_CHECKPOINT: start,hard")?;
        policy.start_pages = a.trim().parse().context("CAJA_BENCH_CHECKPOINT start")?;
        policy.hard_pages = b.trim().parse().context("CAJA_BENCH_CHECKPOINT hard")?;
    }
    // CAJA_BENCH_NO_CHECKPOINTER=1: both sides with SQLite's automatic
    // checkpoint instead (the comparison before the checkpointer).
    let threaded = std::env::var_os("CAJA_BENCH_NO_CHECKPOINTER").is_none();
    let base_ckpt = if threaded {
        anyhow::ensure!(
            reg.start_checkpointer(policy)?,
            "the register's checkpointer did not start"
        );
        let own = caja_node::db::open_for_checkpoints(&base_path)?;
        Some(Checkpointer::start(&mut base, own, policy)?)
    } else {
        println!("node-sales: both sides with SQLite's automatic checkpoint (CAJA_BENCH_NO_CHECKPOINTER)");
        None
    };
    // The same raw inserts with SQLite's automatic checkpoint, timed beside
    // them: the faster of the two raw sides is the baseline (a checkpoint
    // thread can slow a writer that never pauses: its copies and fsyncs
    // compete with the WAL's).
    let auto_path = tmp.path().join("baseline-auto.sqlite3");
    let auto = rusqlite::Connection::open(&auto_path)?;
    caja_node::db::configure(&auto, &auto_path)?;
    auto.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")?;
    let payload = vec![b'x'; event_len];
    let raw = |base: &rusqlite::Connection| -> anyhow::Result<()> {
        base.execute("INSERT INTO t (payload) VALUES (?1)", [&payload])?;
        Ok(())
    };
    // Interleave baseline and feature in rounds, so a noisy neighbour slows both.
    let rounds = 10u64;
    let chunk = (n / rounds).max(1);
    let mut base_lat = Vec::with_capacity(usize::try_from(n)?);
    let mut auto_lat = Vec::with_capacity(usize::try_from(n)?);
    let mut lat = Vec::with_capacity(usize::try_from(n)?);
    let (mut base_total, mut auto_total, mut total) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t0 = Instant::now();
        for _ in 0..chunk {
            let s = Instant::now();
            raw(&base)?;
            base_lat.push(s.elapsed());
        }
        base_total += t0.elapsed();
        if threaded {
            let t0 = Instant::now();
            for _ in 0..chunk {
                let s = Instant::now();
                raw(&auto)?;
                auto_lat.push(s.elapsed());
            }
            auto_total += t0.elapsed();
        }
        let t0 = Instant::now();
        for _ in 0..chunk {
            let op = op_id(&mut rng)?;
            let s = Instant::now();
            reg.sell(op, &sale)?;
            lat.push(s.elapsed());
        }
        total += t0.elapsed();
    }
    let n = chunk * rounds;
    base_lat.sort();
    auto_lat.sort();
    lat.sort();
    let auto_rate = threaded.then(|| per_sec(n, auto_total));
    let auto_won = auto_rate.is_some_and(|a| a > per_sec(n, base_total));
    if let Some(a) = auto_rate {
        println!(
            "  raw inserts, checkpointer: {:>7}/s  p99 {:>6} µs; SQLite's automatic checkpoint: {a:>7}/s  p99 {:>6} µs; the baseline is the faster: {}",
            per_sec(n, base_total),
            percentile(&base_lat, 99).as_micros(),
            percentile(&auto_lat, 99).as_micros(),
            if auto_won { "automatic" } else { "checkpointer" }
        );
    }
    if auto_won {
        base_total = auto_total;
        base_lat = std::mem::take(&mut auto_lat);
    }
    // Counting pages needs a WAL no thread checkpoints: both stop here.
    let raw_checkpoints = base_ckpt.map(|c| c.stop(&mut base)).unwrap_or_default();
    let sale_checkpoints = reg.stop_checkpointer().unwrap_or_default();
    let before = count_pages_from(&base)?;
    for _ in 0..COUNTED {
        raw(&base)?;
    }
    let raw_pages = pages_counted(&base, before, COUNTED)?;
    let mut sell_once = |reg: &mut Reg| -> anyhow::Result<()> {
        let op = op_id(&mut rng)?;
        reg.sell(op, &sale)?;
        Ok(())
    };
    let (statements, triggers) = statements_per_op(&mut reg, COUNTED, &mut sell_once)?;
    let before = count_pages_from(reg.conn())?;
    for _ in 0..COUNTED {
        sell_once(&mut reg)?;
    }
    // Diagnostic only: a build of SQLite without `dbstat` says so and goes on.
    let by_btree = pages_by_btree(reg.conn(), before, COUNTED)
        .unwrap_or_else(|e| vec![(format!("(unavailable: {e})"), 0)]);
    let sale_pages = pages_counted(reg.conn(), before, COUNTED)?;
    let (b, f) = (per_sec(n, base_total), per_sec(n, total));
    let (bp99, fp99) = (
        percentile(&base_lat, 99).as_micros(),
        percentile(&lat, 99).as_micros(),
    );
    let rate_met = u128::from(f) * 100 >= u128::from(b) * u128::from(GOAL_RATIO_HUNDREDTHS);
    let p99_met = fp99 <= bp99 * GOAL_P99_TIMES;
    println!(
        "node-sales: {n} durable 3-line sales (event {event_len} bytes), WAL + synchronous=FULL"
    );
    println!(
        "  baseline raw single-row inserts: {b:>7}/s  p50 {:>6} µs  p99 {bp99:>6} µs  pages/commit {}",
        percentile(&base_lat, 50).as_micros(),
        hundredths(raw_pages)
    );
    println!(
        "  caja-node sales:                 {f:>7}/s  p50 {:>6} µs  p99 {fp99:>6} µs  pages/commit {}",
        percentile(&lat, 50).as_micros(),
        hundredths(sale_pages)
    );
    println!(
        "  pages per sale commit by b-tree: {}",
        by_btree
            .iter()
            .map(|(name, n)| format!("{name} {}", hundredths(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ckpt = |c: &CheckpointStats| {
        format!(
            "{} on its thread ({} idle), {} by the committing connection at {} WAL pages, {} busy, {} failed; WAL at most {} pages",
            c.thread_checkpoints,
            c.idle_checkpoints,
            c.writer_checkpoints,
            policy.hard_pages,
            c.busy,
            c.failed,
            c.max_wal_pages
        )
    };
    println!(
        "  checkpoints, baseline: {} (pass every {} pages)",
        ckpt(&raw_checkpoints),
        policy.start_pages
    );
    println!("  checkpoints, sales:    {}", ckpt(&sale_checkpoints));
    println!(
        "  statements per sale: {} top-level, {} trigger programs (load-independent)",
        hundredths(statements),
        hundredths(triggers)
    );
    println!(
        "  ratio sales/raw: {} (goal ≥ 0.70: {})",
        ratio(f, b),
        crate::verdict(rate_met)
    );
    println!(
        "  p99 sales/raw: {} (goal ≤ {GOAL_P99_TIMES}.00: {})",
        ratio(u64::try_from(fp99)?, u64::try_from(bp99)?),
        crate::verdict(p99_met)
    );
    Ok(Summary {
        sales: n,
        raw_per_s: b,
        sale_per_s: f,
        raw_p99_us: bp99,
        sale_p99_us: fp99,
        raw_pages_x100: raw_pages,
        sale_pages_x100: sale_pages,
        statements_x100: statements,
        trigger_runs_x100: triggers,
        raw_checkpoints,
        sale_checkpoints,
        met: rate_met && p99_met,
    })
}

/// What the e-CF run measured (`None` when skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcfSummary {
    /// Sales timed.
    pub sales: u64,
    /// Signatures per sale.
    pub signatures: u64,
    /// Raw insert + signatures per second.
    pub raw_per_s: u64,
    /// e-CF sales per second.
    pub sale_per_s: u64,
    /// Whether the goal was met.
    pub met: bool,
}

/// The unsigned document a signed one was made from: Caja appends the
/// `Signature` element as the root's last child.
fn unsigned_of(signed: &[u8]) -> anyhow::Result<Vec<u8>> {
    let s = std::str::from_utf8(signed)?;
    let start = s.find("<Signature").context("no Signature")?;
    let end = s.rfind("</Signature>").context("no Signature end")? + "</Signature>".len();
    Ok(format!("{}{}", &s[..start], &s[end..]).into_bytes())
}

/// Time spent per phase, summed over the timed sales.
#[derive(Default)]
struct Phases {
    /// The baseline's signatures.
    base_sign: Duration,
    /// The baseline's insert.
    base_insert: Duration,
    /// A plain sale (no signature) on a register of its own.
    plain: Duration,
    /// The register's issuer signing (and checking) the sale's documents
    /// alone, outside any transaction.
    issue: Duration,
}

/// e-CF sales (`E32`) against a raw insert plus the same RSA signatures.
pub fn ecf_sales(n: u64) -> anyhow::Result<Option<EcfSummary>> {
    let Some(pki) = caja_tests::pki::Pki::get() else {
        println!("node-sales e-CF: SKIPPED — no `openssl` to make the test certificate");
        return Ok(None);
    };
    let rnc = caja_tests::pki::SIGNER_RNC;
    let tmp = tempfile::tempdir()?;
    let config = format!(
        "fiscal_documents = [\"E32\"]\nstore_rnc = \"{rnc}\"\n\n[ecf]\nenvironment = \"testecf\"\nrnc = \"{rnc}\"\nlegal_name = \"Colmado La Esquina SRL\"\naddress = \"C/ Duarte 12, Santiago\"\n"
    );
    // The certificate goes in before the register opens (it loads it then).
    let dir = DataDir::new(tmp.path().join("node"));
    std::fs::create_dir_all(dir.root())?;
    let p12 = caja_tests::pki::Pki::read(&pki.leaf_p12);
    let install = |dir: &DataDir| {
        caja_node::fiscal::certificate::install(
            dir,
            &pki.leaf_p12,
            &p12,
            caja_tests::pki::P12_PASSWORD,
            SystemClock.now_ms(),
        )
    };
    let block = n + COUNTED + 20;
    let mut reg = new_register(tmp.path(), &config, Some(("E32", block)))?;
    install(&dir)?;
    drop(reg);
    reg = Register::open(&dir, SystemClock, OsRandom::new()?)?;
    let mut rng = OsRandom::new()?;
    reg.open_shift(op_id(&mut rng)?, "bench", Money(0))?;
    let sale = three_line_sale();
    let doc = Document {
        series: Some("E32".into()),
        ..Document::default()
    };
    let probe = reg.sell_as(op_id(&mut rng)?, &sale, &doc)?;
    let event_len = Journal::event(reg.conn(), probe.seq)?
        .map(|e| e.canonical_bytes().len())
        .unwrap_or(800);
    let docs: Vec<Vec<u8>> = caja_node::ecf::store::all(reg.conn())?
        .into_iter()
        .map(|d| unsigned_of(&d.3))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!docs.is_empty(), "the e-CF sale stored no document");
    let docs_len: usize = caja_node::ecf::store::all(reg.conn())?
        .iter()
        .map(|d| d.3.len())
        .sum();
    let creds = caja_shared::ecf::certificate::Credentials::from_pkcs12(
        &p12,
        caja_tests::pki::P12_PASSWORD,
    )?;
    let signer =
        caja_shared::ecf::xmldsig::Signer::new(creds.key_pkcs8(), creds.cert_der().to_vec())?;

    // For the phases: the probe's sale signed again by the same issuer
    // alone, and plain sales on a register of their own.
    let probe_body = match Journal::event(reg.conn(), probe.seq)?
        .context("the probe sale's event")?
        .body()?
    {
        caja_shared::kind::EventBody::SaleCreated(s) => s,
        other => anyhow::bail!("the probe's event is not a sale: {other:?}"),
    };
    let node_config = caja_node::config::NodeConfig::load(dir.root(), |_| None)?;
    let issuer = caja_node::ecf::configured::load(&dir, &node_config)
        .map_err(|e| anyhow::anyhow!("issuer: {e}"))?;
    let valid_until = probe_body
        .fiscal
        .as_ref()
        .and_then(|f| f.valid_until.clone());
    let plain_tmp = tempfile::tempdir()?;
    let mut plain = new_register(plain_tmp.path(), "", None)?;
    plain.open_shift(op_id(&mut rng)?, "bench", Money(0))?;

    let base_path = tmp.path().join("baseline.sqlite3");
    let base = rusqlite::Connection::open(&base_path)?;
    caja_node::db::configure(&base, &base_path)?;
    base.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")?;
    let payload = vec![b'x'; event_len];
    let rounds = 5u64;
    let chunk = (n / rounds).max(1);
    let (mut base_total, mut total) = (Duration::ZERO, Duration::ZERO);
    let mut phase = Phases::default();
    for _ in 0..rounds {
        let t0 = Instant::now();
        for _ in 0..chunk {
            let s = Instant::now();
            for d in &docs {
                std::hint::black_box(caja_shared::ecf::xmldsig::sign(d, &signer)?);
            }
            phase.base_sign += s.elapsed();
            let s = Instant::now();
            base.execute("INSERT INTO t (payload) VALUES (?1)", [&payload])?;
            phase.base_insert += s.elapsed();
        }
        base_total += t0.elapsed();
        let t0 = Instant::now();
        for _ in 0..chunk {
            reg.sell_as(op_id(&mut rng)?, &sale, &doc)?;
        }
        total += t0.elapsed();
        // Phases, timed apart from both sides' totals.
        for _ in 0..chunk {
            let s = Instant::now();
            plain.sell(op_id(&mut rng)?, &sale)?;
            phase.plain += s.elapsed();
            let at = SystemClock.now_ms();
            let s = Instant::now();
            std::hint::black_box(
                issuer
                    .issue_sale(
                        &probe_body,
                        &caja_node::ecf::Signing {
                            issued_ms: at,
                            signed_at_ms: at,
                            series_valid_until: valid_until.as_deref(),
                            buyer_name: None,
                        },
                    )
                    .map_err(|e| anyhow::anyhow!("issue: {e:?}"))?,
            );
            phase.issue += s.elapsed();
        }
    }
    let n = chunk * rounds;
    let counted = COUNTED.min(n);
    let before = count_pages_from(reg.conn())?;
    for _ in 0..counted {
        reg.sell_as(op_id(&mut rng)?, &sale, &doc)?;
    }
    let by_btree = pages_by_btree(reg.conn(), before, counted)
        .unwrap_or_else(|e| vec![(format!("(unavailable: {e})"), 0)]);
    let pages = pages_counted(reg.conn(), before, counted)?;
    let (b, f) = (per_sec(n, base_total), per_sec(n, total));
    let met = u128::from(f) * 100 >= u128::from(b) * u128::from(GOAL_RATIO_HUNDREDTHS);
    let signatures = u64::try_from(docs.len())?;
    println!(
        "node-sales e-CF: {n} durable 3-line E32 sales, {signatures} RSA signature(s) each, pages/commit {}",
        hundredths(pages)
    );
    println!(
        "  pages per e-CF sale commit by b-tree: {}",
        by_btree
            .iter()
            .map(|(name, n)| format!("{name} {}", hundredths(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  signed bytes per sale: {}", docs_len);
    println!("  baseline raw insert + the same signatures: {b:>6}/s");
    println!("  caja-node e-CF sales:                      {f:>6}/s");
    println!(
        "  ratio e-CF sales/(raw + signatures): {} (goal ≥ 0.70: {})",
        ratio(f, b),
        crate::verdict(met)
    );
    let us = |d: Duration| d.as_micros() / u128::from(n.max(1));
    let sale_us = total.as_micros() / u128::from(n.max(1));
    println!(
        "  µs per sale: baseline {} (signatures {}, insert {}); e-CF sale {sale_us}: \
         a plain sale alone {}, the issuer alone (both documents signed and checked) {}, \
         the rest (sale − plain − issuer: the e-CF's rows and event, the bigger commit, \
         less what runs beside) {}",
        base_total.as_micros() / u128::from(n.max(1)),
        us(phase.base_sign),
        us(phase.base_insert),
        us(phase.plain),
        us(phase.issue),
        i128::try_from(sale_us)? - i128::try_from(us(phase.plain) + us(phase.issue))?,
    );
    Ok(Some(EcfSummary {
        sales: n,
        signatures,
        raw_per_s: b,
        sale_per_s: f,
        met,
    }))
}

#[cfg(test)]
mod tests {
    /// A short run under `cargo test`: every side runs, the counts are
    /// sane (a sale writes more pages than a one-row insert, and runs
    /// statements), nothing fails.
    #[test]
    fn a_short_run_measures_both_sides_and_counts_pages_and_statements() {
        let s = super::sales(40).expect("runs");
        assert_eq!(s.sales, 40);
        assert!(s.raw_per_s > 0 && s.sale_per_s > 0, "{s:?}");
        assert!(s.raw_pages_x100 >= 100, "{s:?}");
        assert!(s.sale_pages_x100 > s.raw_pages_x100, "{s:?}");
        assert!(s.statements_x100 >= 100, "{s:?}");
        // Both sides' checkpointers saw every timed commit.
        assert_eq!(s.raw_checkpoints.commits, 40, "{s:?}");
        assert_eq!(s.sale_checkpoints.commits, 40, "{s:?}");
        if let Some(e) = super::ecf_sales(10).expect("e-CF runs") {
            assert_eq!(e.sales, 10);
            assert!(
                e.signatures >= 1 && e.sale_per_s > 0 && e.raw_per_s > 0,
                "{e:?}"
            );
        }
    }
}
