//! `caja-bench`: every measurement runs a baseline and the feature side by side,
//! in the same process and run, and prints both and their ratio. Absolute numbers
//! depend on the machine; the ratios are what to compare.
//!
//! ```text
//! cargo run --release -p caja-bench -- node-sales [--sales N]
//! cargo run --release -p caja-bench -- node-verify [--events N]
//! cargo run --release -p caja-bench -- hub-ingest [--events N]
//! cargo run --release -p caja-bench -- hub-ingest-pg [--events N] [--rounds R]   (default 20000, 1; PostgreSQL, 1 and 3 instances)
//! cargo run --release -p caja-bench -- sync-backlog [--events N]   # and PouchDB → pouchdb-server (bench/peers)
//! cargo run --release -p caja-bench -- audit-log [--entries N]   (default 20000; the goal's size is 1000000)
//! cargo run --release -p caja-bench -- outbox [--documents N] [--workers W]   (default 2000, 4)
//! cargo run --release -p caja-bench -- all
//! ```

mod audit_log;

/// The word a benchmark prints after its goal: `met` or `missed`.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

mod hub_ingest;
mod hub_ingest_pg;
mod node;
mod node_sales;
mod outbox;
mod rss;
mod sync_backlog;

fn arg_value(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            Ok(v.parse()?)
        }
        None => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("all");
    match cmd {
        "node-sales" => {
            let n = arg_value(&args, "--sales", 2_000)?;
            node_sales::sales(n)?;
            node_sales::ecf_sales((n / 4).max(20)).map(|_| ())
        }
        "node-verify" => node::verify(arg_value(&args, "--events", 1_000_000)?, true).map(|_| ()),
        // Internal: the child process whose peak RSS `node-verify` reports.
        "node-verify-child" => node::verify_child(args.get(1).map(String::as_str)),
        "audit-log" => audit_log::run(arg_value(&args, "--entries", 20_000)?).map(|_| ()),
        "sync-backlog" => {
            sync_backlog::run(arg_value(&args, "--events", 10_000)?, true).map(|_| ())
        }
        "outbox" => outbox::run(
            arg_value(&args, "--documents", 2_000)?,
            usize::try_from(arg_value(&args, "--workers", 4)?)?,
        )
        .map(|_| ()),
        "hub-ingest" => hub_ingest::run(
            arg_value(&args, "--events", 100_000)?,
            arg_value(&args, "--rounds", 2)?,
        )
        .map(|_| ()),
        "hub-ingest-pg" => hub_ingest_pg::run(
            hub_ingest_pg::Shape::for_events(arg_value(&args, "--events", 20_000)?)?,
            arg_value(&args, "--rounds", 1)?,
        )
        .map(|_| ()),
        // Internal: the hub child process whose peak RSS `hub-ingest` reports.
        "hub-ingest-serve" => hub_ingest::serve_child(args.get(1).map(String::as_str)),
        "all" => {
            let n = arg_value(&args, "--sales", 2_000)?;
            node_sales::sales(n)?;
            node_sales::ecf_sales((n / 4).max(20))?;
            node::verify(arg_value(&args, "--events", 1_000_000)?, true)?;
            hub_ingest::run(100_000, 2)?;
            hub_ingest_pg::run(hub_ingest_pg::Shape::for_events(20_000)?, 1)?;
            sync_backlog::run(10_000, true)?;
            audit_log::run(arg_value(&args, "--entries", 20_000)?)?;
            outbox::run(2_000, 4).map(|_| ())
        }
        other => {
            anyhow::bail!("unknown benchmark {other:?}: node-sales, node-verify, hub-ingest, hub-ingest-pg, sync-backlog, audit-log, outbox, all")
        }
    }
}
