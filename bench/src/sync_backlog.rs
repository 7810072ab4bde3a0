//! `sync-backlog`: end-to-end time to sync a register's backlog to the hub
//! after a partition heals — a real hub on loopback HTTP and a real register,
//! each with its own SQLite files — beside the baseline the goal names: the
//! same documents replicated by PouchDB (LevelDB on disk) to a pouchdb-server
//! (a separate Node.js process, LevelDB on disk) with `db.replicate.to()`.
//!
//! The baseline lives in `bench/peers/` (`install.sh` puts pouchdb and
//! pouchdb-server from the npm registry into `bench/peers/node_modules`,
//! `replicate.js` runs it). Without Node.js or npm, or when the install fails,
//! the Caja side is printed alone with the reason; the benchmark never fails
//! for the baseline's sake.
//!
//! What each side makes durable: Caja's hub commits every push with SQLite
//! `synchronous=FULL` (fsync of the WAL) before answering, and the register
//! commits its acknowledged seq the same way; PouchDB's LevelDB writes are not
//! fsynced (leveldown without `sync: true`) on either side.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use caja_node::journal::Journal;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::engine::{SyncEngine, SyncSettings};
use caja_node::system::{OsRandom, SystemClock};
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{Hub, Till};
use caja_tests::proxy::Mode;

use crate::node::ratio;

/// The goal: Caja at least this many times PouchDB's rate.
const GOAL_TIMES: u64 = 10;

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Events synced.
    pub events: u64,
    /// Caja events per second, pushes pipelined.
    pub caja_per_s: u64,
    /// Caja events per second, one push at a time.
    pub serial_per_s: u64,
    /// PouchDB documents per second (`None` when its baseline was skipped).
    pub pouchdb_per_s: Option<u64>,
}

/// Sells `n` events' worth offline, heals, and times the sync; then replicates
/// the same events with PouchDB unless `with_pouchdb` is false (under `cargo
/// test`, which must not install it from npm).
pub fn run(n: u64, with_pouchdb: bool) -> anyhow::Result<Summary> {
    let tmp = tempfile::tempdir()?;
    let hub = Hub::start(&tmp.path().join("hub"))?;
    let store = hub.create_store("Colmado")?;
    hub.load_catalog(&testkit::sample_catalog_bodies())?;
    // Three registers with the same backlog: the pipelined one (the
    // default) syncs between two that sync one push at a time, so a change
    // of load on the machine hits both sides.
    let (serial_till, _, serial_backlog) = offline_till(&hub, store, "caja-1", tmp.path(), n)?;
    let (t, before, backlog) = offline_till(&hub, store, "caja-2", tmp.path(), n)?;
    let (serial_after, _, _) = offline_till(&hub, store, "caja-3", tmp.path(), n)?;
    // The same documents for the baseline, as the journal holds them.
    let docs = tmp.path().join("events.jsonl");
    let written = write_events(t.register.conn(), before, &docs)?;
    anyhow::ensure!(written == backlog, "exported {written} of {backlog} events");

    // The link heals. The register talks to the hub directly, as PouchDB
    // talks to pouchdb-server: the test proxy that made the partition is not
    // part of what is measured.
    let (_, first_took) = sync_direct(&serial_till, &hub, 0)?;
    let window = SyncSettings::default().push_window;
    let (pushed, took) = sync_direct(&t, &hub, window)?;
    let (_, last_took) = sync_direct(&serial_after, &hub, 0)?;
    let serial_took = (first_took + last_took) / 2;
    let serial =
        u64::try_from(u128::from(serial_backlog) * 1_000_000 / serial_took.as_micros().max(1))?;
    let caja = u64::try_from(u128::from(backlog) * 1_000_000 / took.as_micros().max(1))?;
    println!(
        "  caja-node → caja-hub, one push at a time: {serial_backlog} events in {} ms = {serial} events/s (mean of {} ms before and {} ms after the pipelined one)",
        serial_took.as_millis(),
        first_took.as_millis(),
        last_took.as_millis()
    );
    println!(
        "  caja-node → caja-hub, pipelined (push_window {window}): {pushed} events in {} ms = {caja} events/s (batches of 500; hub fsyncs each batch, register fsyncs each ack); pipelined/one at a time {}",
        took.as_millis(),
        ratio(caja, serial)
    );
    // Where the time goes, roughly: the register's own share of a push is
    // reading its batches back from the journal (each event parsed and
    // re-hashed); the rest is the request, the hub's ingest and the ack commit.
    let r0 = Instant::now();
    let mut read = 0;
    let mut after = before;
    loop {
        let events = Journal::events_after(t.register.conn(), after, 500)?;
        let Some(e) = events.last() else { break };
        after = e.seq().get();
        read += events.len();
    }
    println!(
        "    of which the register reading its {read} events back in batches: {} ms",
        r0.elapsed().as_millis()
    );
    drop(t);
    drop(serial_till);
    drop(serial_after);
    drop(hub);

    let mut pouchdb_per_s = None;
    let baseline = if with_pouchdb {
        pouchdb(&docs, &tmp.path().join("pouchdb"))
    } else {
        Err(anyhow::anyhow!("not run (cargo test)"))
    };
    match baseline {
        Ok(p) => {
            println!(
                "  PouchDB → pouchdb-server:  {} docs in {} ms = {} docs/s (pouchdb {}, pouchdb-server {}, Node.js {}, batch_size {}; LevelDB, no fsync)",
                p["docs"], p["ms"], p["docs_per_s"], p["pouchdb"].as_str().unwrap_or("?"),
                p["pouchdb_server"].as_str().unwrap_or("?"), p["node"].as_str().unwrap_or("?"),
                p["batch_size"]
            );
            let base = p["docs_per_s"].as_u64().context("docs_per_s")?;
            pouchdb_per_s = Some(base);
            let verdict = crate::verdict(caja >= base.saturating_mul(GOAL_TIMES));
            println!(
                "  ratio Caja / PouchDB: {}x (goal ≥ {GOAL_TIMES}x: {verdict})",
                ratio(caja, base)
            );
        }
        Err(why) => println!("  PouchDB → pouchdb-server baseline skipped: {why:#}"),
    }
    Ok(Summary {
        events: backlog,
        caja_per_s: caja,
        serial_per_s: serial,
        pouchdb_per_s,
    })
}

/// A register of `store` that sold `n` events' worth while cut off from
/// the hub; with its acknowledged seq before and its backlog.
fn offline_till(
    hub: &Hub,
    store: caja_shared::ids::StoreId,
    name: &str,
    root: &Path,
    n: u64,
) -> anyhow::Result<(Till, u64, u64)> {
    let mut t = Till::enroll(hub, store, name, root, SyncSettings::default())?;
    t.sync.round()?;
    let before = Journal::acked_seq(t.register.conn())?;
    let mut rng = OsRandom::new()?;
    t.register.open_shift(
        OpId::new_v7(SystemClock.now_ms(), &mut rng)?,
        "bench",
        Money(0),
    )?;
    t.set_network(Mode::Down);
    let sale = SaleRequest {
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
    };
    let offline = Instant::now();
    while Journal::unsynced(t.register.conn())? < n {
        t.register
            .sell(OpId::new_v7(SystemClock.now_ms(), &mut rng)?, &sale)?;
    }
    let backlog = Journal::unsynced(t.register.conn())?;
    println!(
        "sync-backlog: {name}: {backlog} events sold offline in {} ms",
        offline.elapsed().as_millis()
    );
    Ok((t, before, backlog))
}

/// Syncs `t` straight to the hub with `window` pushes in flight; the events
/// pushed and the time taken.
fn sync_direct(t: &Till, hub: &Hub, window: usize) -> anyhow::Result<(u64, std::time::Duration)> {
    let mut direct = SyncEngine::open(
        &t.data,
        &hub.url,
        SystemClock,
        OsRandom::new()?,
        SyncSettings {
            push_window: window,
            ..SyncSettings::default()
        },
    )?;
    let t0 = Instant::now();
    let report = direct.round().context("sync after the partition heals")?;
    let took = t0.elapsed();
    anyhow::ensure!(Journal::unsynced(t.register.conn())? == 0, "backlog left");
    Ok((report.pushed, took))
}

/// Writes the journal's events after `after` as JSON lines (canonical bytes).
fn write_events(conn: &rusqlite::Connection, after: u64, path: &Path) -> anyhow::Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut last = after;
    let mut written = 0;
    loop {
        let events = Journal::events_after(conn, last, 1000)?;
        let Some(e) = events.last() else { break };
        last = e.seq().get();
        for e in &events {
            out.write_all(e.canonical_bytes())?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(written)
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// Installs the baseline if needed and runs it; its JSON line.
fn pouchdb(docs: &Path, work: &Path) -> anyhow::Result<serde_json::Value> {
    let peers = peers_dir();
    let node = Command::new("node").arg("--version").output();
    anyhow::ensure!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "Node.js (`node`) is not available on this machine"
    );
    if !peers
        .join("node_modules/pouchdb-server/package.json")
        .exists()
        || !peers.join("node_modules/pouchdb/package.json").exists()
    {
        println!("  installing the PouchDB baseline (bench/peers/install.sh, npm registry)…");
        let status = Command::new("sh")
            .arg(peers.join("install.sh"))
            .status()
            .context("running bench/peers/install.sh")?;
        anyhow::ensure!(status.success(), "bench/peers/install.sh failed ({status})");
    }
    let out = Command::new("node")
        .arg(peers.join("replicate.js"))
        .arg("--docs")
        .arg(docs)
        .arg("--work")
        .arg(work)
        .output()
        .context("running bench/peers/replicate.js")?;
    anyhow::ensure!(
        out.status.success(),
        "replicate.js failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let line = String::from_utf8(out.stdout)?;
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("replicate.js printed {line:?}"))?;
    anyhow::ensure!(
        v["docs"].as_u64() == Some(u64::try_from(count_lines(docs)?)?),
        "replicate.js replicated {} documents",
        v["docs"]
    );
    Ok(v)
}

fn count_lines(path: &Path) -> anyhow::Result<usize> {
    Ok(std::fs::read(path)?.iter().filter(|b| **b == b'\n').count())
}

#[cfg(test)]
mod tests {
    /// A short run under `cargo test`: a 300-event backlog syncs to a real
    /// hub (the PouchDB baseline is left out: no npm under test).
    #[test]
    fn a_short_backlog_syncs_completely() {
        let s = super::run(300, false).expect("runs");
        assert!(s.events >= 300 && s.caja_per_s > 0, "{s:?}");
    }
}
