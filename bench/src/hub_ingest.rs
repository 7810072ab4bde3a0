//! `hub-ingest`: events/s through the hub's real HTTP push endpoint against raw
//! SQLite inserts of the same rows, in the same run.
//!
//! Feature: a `caja-hub` service in a child process (so its peak RSS is its
//! own), 20 enrolled registers, each pushing its pre-signed batches of 500
//! events in order, the 20 concurrently. The events are a cashier's day
//! (`caja_hub::workload`: shifts, sales, voids, fiado, stock, customers);
//! references to other registers' events point two rounds back. Timed from the first request to the
//! last acknowledgement; every event is authenticated, validated, stored,
//! audited, gated and projected (`synchronous=FULL`).
//!
//! Baseline: the same event rows inserted into the hub's own `events` table
//! (same schema and pragmas) in 1000-row transactions by one thread, twice:
//! with SQLite's automatic checkpoints on that thread, and with the hub's
//! WAL checkpointer (`caja_hub::storage::checkpointer`, the hub's default
//! policy). The faster of the two is the baseline.
//!
//! Load-independent counts printed beside the rates: the WAL checkpoints
//! each side ran (on the checkpointer's thread, on the writer), the frames
//! committed and the largest WAL after a commit. `CAJA_HUB_WAL_*` variables
//! reach the hub child (`CAJA_HUB_WAL_CHECKPOINT_THREAD=true`: the
//! checkpoints on their own thread; by default the writer runs them after
//! answering its batch).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caja_hub::admin_client::{install_crypto_provider, AdminClient};
use caja_hub::config::HubConfig;
use caja_hub::ratelimit::RateLimit;
use caja_hub::storage::checkpointer::{CheckpointStats, Checkpointer};
use caja_hub::system::{OsRandom, SystemClock};
use caja_hub::workload::{Register, Workload};
use caja_shared::checkpoint::Checkpoint;
use caja_shared::clock::Clock;
use caja_shared::event::Event;
use caja_shared::ids::StoreId;
use caja_shared::request::SignedHeaders;

use crate::rss::peak_rss_kib;

pub(crate) const TOKEN: &str = "bench-admin-token-0123456789abcdef";

/// Goal: the hub at least this many thousandths of the raw rate.
pub const GOAL_MILLI: u64 = 500;

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Events pushed.
    pub events: usize,
    /// Raw inserts per second (best round).
    pub raw_per_s: u64,
    /// Hub ingest per second (best round).
    pub hub_per_s: u64,
    /// Whether the goal was met.
    pub met: bool,
}

/// Runs the measurement with `events` in total (rounded up to a multiple of
/// 20 × 500), `rounds` times, each round on a fresh hub and a fresh raw
/// database; reports the best time of each side (the machine is shared, so the
/// best round is the least disturbed one) and the highest hub peak RSS.
pub fn run(events: u64, rounds: u64) -> anyhow::Result<Summary> {
    run_shape(
        crate::hub_ingest_pg::Shape::for_events(events)?,
        rounds,
        true,
    )
}

/// [`run`] with a given shape; `child`: the hub in a child process (its peak
/// RSS its own) or, under `cargo test`, in this process.
pub fn run_shape(
    shape: crate::hub_ingest_pg::Shape,
    rounds: u64,
    child: bool,
) -> anyhow::Result<Summary> {
    let (devices, batch, per_device) = (shape.devices, shape.batch, shape.per_device);
    let total = per_device * devices;
    let mut best_feature = Duration::MAX;
    let mut best_raw = Duration::MAX;
    let mut peak_rss_kib = 0u64;
    for round in 0..rounds.max(1) {
        let r = round_once(shape, child)?;
        println!(
            "  round {}: hub {:.2?}, raw {:.2?} (its own checkpoints) / {:.2?} (the checkpointer), hub peak RSS {} KiB",
            round + 1,
            r.feature,
            r.raw_auto,
            r.raw_ckpt.0,
            r.rss.map_or("unknown".into(), |k| k.to_string())
        );
        println!("    hub WAL: {}", wal_line(r.wal.as_ref()));
        println!(
            "    raw WAL with the checkpointer: {}",
            wal_line(Some(&r.raw_ckpt.1))
        );
        best_feature = best_feature.min(r.feature);
        best_raw = best_raw.min(r.raw_auto).min(r.raw_ckpt.0);
        peak_rss_kib = peak_rss_kib.max(r.rss.unwrap_or(0));
    }
    let feature_rate = rate(total, best_feature);
    let raw_rate = rate(total, best_raw);
    let milli = feature_rate * 1000 / raw_rate.max(1);
    let met = milli >= GOAL_MILLI;
    println!("hub-ingest: {total} events from {devices} registers in pre-signed batches of {batch} (best of {rounds})");
    println!("  raw SQLite inserts, 1000-row transactions:               {raw_rate:>8} events/s");
    println!(
        "  hub HTTP push (auth, checks, audit, gate, projections):  {feature_rate:>8} events/s"
    );
    println!(
        "  ratio hub/raw: {}.{:03}x (goal >= 0.50x: {})",
        milli / 1000,
        milli % 1000,
        crate::verdict(met)
    );
    println!("  hub peak RSS: {peak_rss_kib} KiB");
    Ok(Summary {
        events: total,
        raw_per_s: raw_rate,
        hub_per_s: feature_rate,
        met,
    })
}

/// The WAL counts of one side, in one line.
fn wal_line(s: Option<&CheckpointStats>) -> String {
    match s {
        Some(s) => format!(
            "checkpoints {} on the thread, {} on the writer ({} failed), frames committed {}, largest WAL {} frames, started over {} times",
            s.thread_passes, s.writer_passes, s.failures, s.frames_committed, s.wal_frames_max, s.restarts
        ),
        None => "unknown".into(),
    }
}

/// What one round measured.
struct Round {
    feature: Duration,
    raw_auto: Duration,
    raw_ckpt: (Duration, CheckpointStats),
    rss: Option<u64>,
    wal: Option<CheckpointStats>,
}

/// One round: a fresh hub (a child process, or in this process), the HTTP
/// ingest, then the raw inserts (both ways).
fn round_once(shape: crate::hub_ingest_pg::Shape, child_process: bool) -> anyhow::Result<Round> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("hub");
    let cfg = HubConfig {
        listen: "127.0.0.1:0".parse()?,
        admin_token: TOKEN.into(),
        rate_limit: RateLimit {
            burst: 100_000,
            per_minute: 1_000_000,
        },
        ..HubConfig::default()
    };
    caja_hub::datadir::init(&dir, cfg.clone(), &mut OsRandom::new(), &SystemClock)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (devices, batch, per_device) = (shape.devices, shape.batch, shape.per_device);
    let (elapsed, rows, rss, wal) = if child_process {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("hub-ingest-serve")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the hub child")?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let first = lines.next().context("hub child said nothing")??;
        let Some(addr) = first.strip_prefix("listening ") else {
            bail!("unexpected hub child output {first:?}");
        };
        let url = format!("http://{addr}");
        let (elapsed, rows) = rt.block_on(feature(&[url], devices, batch, per_device))?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        writeln!(stdin, "stop")?;
        let wal_line = lines.next().context("hub child did not report its WAL")??;
        let rss_line = lines.next().context("hub child did not report its RSS")??;
        child.wait()?;
        let rss = rss_line
            .strip_prefix("peak_rss_kib ")
            .and_then(|k| k.parse().ok());
        (elapsed, rows, rss, parse_wal(&wal_line))
    } else {
        let (elapsed, rows, wal) = rt.block_on(async {
            let hub = caja_hub::server::start(&dir, cfg).await?;
            let out = feature(&[hub.url()], devices, batch, per_device).await;
            let wal = hub.storage().wal_checkpoints();
            hub.stop().await?;
            out.map(|(e, r)| (e, r, wal))
        })?;
        (elapsed, rows, None, wal)
    };
    let raw_auto = raw_inserts(
        &caja_hub::storage::Database::Sqlite(tmp.path().join("raw.db")),
        &rows,
    )?;
    let policy = HubConfig::default().wal_policy();
    let raw_ckpt = raw_inserts_checkpointed(&tmp.path().join("raw-ckpt.db"), &rows, policy)?;
    Ok(Round {
        feature: elapsed,
        raw_auto,
        raw_ckpt,
        rss,
        wal,
    })
}

/// The child's `wal …` line: the six counts of [`CheckpointStats`].
fn wal_text(s: Option<CheckpointStats>) -> String {
    match s {
        Some(s) => format!(
            "wal {} {} {} {} {} {}",
            s.thread_passes,
            s.writer_passes,
            s.failures,
            s.restarts,
            s.wal_frames_max,
            s.frames_committed
        ),
        None => "wal unknown".into(),
    }
}

fn parse_wal(line: &str) -> Option<CheckpointStats> {
    let v: Vec<u64> = line
        .strip_prefix("wal ")?
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match v.as_slice() {
        [t, w, f, r, m, c] => Some(CheckpointStats {
            thread_passes: *t,
            writer_passes: *w,
            failures: *f,
            restarts: *r,
            wal_frames_max: *m,
            frames_committed: *c,
        }),
        _ => None,
    }
}

pub(crate) fn rate(events: usize, d: Duration) -> u64 {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    u64::try_from(events).unwrap_or(0) * 1_000_000 / micros
}

/// One request, ready to send: body and headers signed in advance.
struct Prepared {
    body: Vec<u8>,
    headers: SignedHeaders,
}

pub(crate) type Row = (Event, i64);

/// The measured side: `devices` registers enrolled at `urls[0]`, each
/// pushing its pre-signed batches of `batch` events in order to instance
/// `urls[r % n]`, all registers at once; timed from the first request to the
/// last acknowledgement. Returns the time and the rows for the baseline.
pub(crate) async fn feature(
    urls: &[String],
    devices: usize,
    batch: usize,
    per_device: usize,
) -> anyhow::Result<(Duration, Vec<Row>)> {
    install_crypto_provider();
    let url = urls.first().context("no hub")?;
    let admin = AdminClient::new(url, TOKEN)?;
    let http = reqwest::Client::new();
    let store: StoreId = admin.create_store("bench", None).await?["store"]
        .as_str()
        .context("no store id")?
        .parse()?;
    let mut registers = Vec::new();
    for i in 0..devices {
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
        registers.push(Register::new(
            v["device"].as_str().context("device")?.parse()?,
            caja_shared::key::DeviceKey::from_hex(v["key"].as_str().context("key")?)?,
            v["key_id"].as_str().context("key id")?.parse()?,
        ));
    }
    // Build and sign everything before the clock starts.
    let mut w = Workload::new(5, store, registers);
    let now = SystemClock.now_ms();
    let mut rows = Vec::new();
    let mut per_register: Vec<Vec<Prepared>> = (0..devices).map(|_| Vec::new()).collect();
    for _ in 0..per_device / batch {
        // Cross-register references (a void of another register's sale, a
        // payment on a debt opened elsewhere) go to events at least two
        // rounds old, already pushed: what a chain of stores sees when its
        // links are up. (Registers run at their own pace, so a one-round lag
        // still makes the run's hold count vary from run to run.)
        w.settle_lagged(2);
        for (r, out) in per_register.iter_mut().enumerate() {
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
            out.push(Prepared { body, headers });
        }
    }
    let http = Arc::new(http);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (r, batches) in per_register.into_iter().enumerate() {
        let http = http.clone();
        let url = urls[r % urls.len()].clone();
        tasks.push(tokio::spawn(async move {
            for p in batches {
                let mut req = http.post(format!("{url}/v1/sync/push")).body(p.body);
                for (k, v) in p.headers.pairs() {
                    req = req.header(k, v);
                }
                let resp = req.send().await?;
                // Pre-signed requests cannot be retried (their nonce is spent);
                // the hub's default queues are far larger than 20 registers.
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
        let metric = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name).filter(|_| !l.starts_with('#')))
                .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
        };
        println!(
            "  {}writer busy {} ms of {} ms; events held for dependencies then released: {}",
            if urls.len() > 1 {
                format!("instance {}: ", i + 1)
            } else {
                String::new()
            },
            metric("caja_hub_writer_busy_milliseconds"),
            elapsed.as_millis(),
            metric("caja_hub_events_held_total"),
        );
    }
    Ok((elapsed, rows))
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

/// The baseline: the same rows into the hub's `events` table, 1000 per
/// transaction, same pragmas (WAL, `synchronous=FULL`).
pub(crate) fn raw_inserts(
    database: &caja_hub::storage::Database,
    rows: &[Row],
) -> anyhow::Result<Duration> {
    let conn = caja_hub::storage::open_offline(database)?;
    let started = Instant::now();
    for chunk in rows.chunks(1000) {
        insert_chunk(&conn, chunk)?;
    }
    Ok(started.elapsed())
}

/// One transaction of the baseline: `chunk` into `events`.
fn insert_chunk(conn: &caja_hub::storage::Conn, chunk: &[Row]) -> anyhow::Result<()> {
    {
        conn.write_tx(|tx| -> anyhow::Result<()> {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (event_id, store_id, device_id, seq, hash, prev, kind, hlc_ms, hlc_n, bytes, received_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )?;
            for (e, received) in chunk {
                let env = e.envelope();
                stmt.execute(caja_hub::sql_params![
                    env.event_id.to_string(),
                    env.store.to_string(),
                    env.device.to_string(),
                    i64::try_from(env.seq.get())?,
                    e.hash().to_hex(),
                    env.prev.to_hex(),
                    env.kind.as_str(),
                    env.hlc.ms(),
                    i64::from(env.hlc.n()),
                    e.canonical_bytes(),
                    received
                ])?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// [`raw_inserts`] with the hub's WAL checkpointer under the inserting
/// connection (`policy`: the hub's thresholds): its time and what the
/// checkpoints did.
pub(crate) fn raw_inserts_checkpointed(
    path: &std::path::Path,
    rows: &[Row],
    policy: caja_hub::storage::WalPolicy,
) -> anyhow::Result<(Duration, CheckpointStats)> {
    drop(caja_hub::storage::open_offline(
        &caja_hub::storage::Database::Sqlite(path.to_path_buf()),
    )?);
    let ck = Checkpointer::start(path, policy)?;
    let conn = ck.open_writer(path)?;
    let started = Instant::now();
    for chunk in rows.chunks(1000) {
        insert_chunk(&conn, chunk)?;
        ck.after_batch(&conn);
    }
    let elapsed = started.elapsed();
    let stats = ck.stats();
    drop(conn);
    ck.stop();
    Ok((elapsed, stats))
}

/// The child process: serves the hub of `dir` until a line arrives on stdin,
/// then reports its WAL checkpoints and its own peak RSS. The `CAJA_HUB_*`
/// variables of its environment apply (e.g. `CAJA_HUB_WAL_CHECKPOINT_THREAD`).
pub fn serve_child(dir: Option<&str>) -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(dir.context("hub-ingest-serve needs a data dir")?);
    let cfg = HubConfig::load(&dir, |k| std::env::var(k).ok())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let hub = caja_hub::server::start(&dir, cfg).await?;
        println!("listening {}", hub.addr);
        std::io::stdout().flush()?;
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await?;
        let wal = hub.storage().wal_checkpoints();
        hub.stop().await?;
        println!("{}", wal_text(wal));
        anyhow::Ok(())
    })?;
    println!(
        "peak_rss_kib {}",
        peak_rss_kib().map_or("unknown".into(), |k| k.to_string())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A short run under `cargo test` (debug build, in this process): every
    /// push answered 200 and both sides measured.
    #[test]
    fn a_short_run_pushes_every_event() {
        let shape = crate::hub_ingest_pg::Shape {
            devices: 4,
            batch: 50,
            per_device: 100,
        };
        let s = super::run_shape(shape, 1, false).expect("runs");
        assert_eq!(s.events, 400);
        assert!(s.raw_per_s > 0 && s.hub_per_s > 0, "{s:?}");
    }
}
