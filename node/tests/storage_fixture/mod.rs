//! Fixtures shared by the node's storage-layer tests (`storage_*.rs`): a real
//! SQLite file in a temp directory, a device row, a fixed device key and
//! deterministic time and randomness.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use caja_node::db::Db;
use caja_node::journal::{self, DeviceRecord, Journal};
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::key::DeviceKey;
use caja_shared::kind::{EventBody, ShiftOpened, StockReceived};
use caja_shared::money::{Money, QtyMilli};
use rusqlite::Connection;
use tempfile::TempDir;

/// 2025-11-23T06:40:00Z.
pub const T0_MS: i64 = 1_763_880_000_000;
/// HLC drift bound used by the tests.
pub const MAX_DRIFT_MS: i64 = 60_000;

pub fn key() -> DeviceKey {
    DeviceKey::from_bytes([7; 32])
}

pub fn device_record() -> DeviceRecord {
    DeviceRecord {
        store: "01935f4e-8a00-7000-8000-000000000001".parse().expect("id"),
        device: "01935f4e-8a00-7000-8000-0000000000d1".parse().expect("id"),
        key_id: "k1".parse().expect("key id"),
        hub_public_key: None,
        created_at_ms: T0_MS,
        restored_from_backup: false,
    }
}

/// A varied body for the `i`-th test event.
pub fn body(i: u64) -> EventBody {
    if i % 50 == 0 {
        EventBody::ShiftOpened(ShiftOpened {
            shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
            cashier: "ana".into(),
            opening_float: Money(500_000),
            staff_id: None,
        })
    } else {
        EventBody::StockReceived(StockReceived {
            product: format!("SKU-{}", i % 7).parse().expect("sku"),
            qty_milli: QtyMilli(i64::try_from(i).expect("small") * 1_000 + 250),
            reference: (i % 3 == 0).then(|| format!("factura ñ {i}")),
        })
    }
}

/// A node database with a device row and an open journal.
pub struct Fixture {
    pub dir: TempDir,
    pub path: PathBuf,
    pub db: Db,
    pub writer: Writer,
}

/// The journal and what appends need, apart from the database so that a
/// transaction on `db` and an append through `writer` can be borrowed at once.
pub struct Writer {
    pub journal: Journal,
    pub rng: SeededRandom,
    pub now_ms: i64,
    pub appended: u64,
}

impl Writer {
    /// Appends one event inside `tx`; the clock moves 1 ms every other event
    /// (so some events share a millisecond).
    pub fn append_in(&mut self, tx: &rusqlite::Transaction<'_>) -> Event {
        self.appended += 1;
        if self.appended % 2 == 0 {
            self.now_ms += 1;
        }
        self.journal
            .append(tx, body(self.appended), vec![], &mut self.rng, self.now_ms)
            .expect("append")
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("node.sqlite3");
        let mut db = Db::open(&path).expect("open db");
        {
            let tx = db.write_tx().expect("tx");
            journal::insert_device(&tx, &device_record()).expect("device row");
            tx.commit().expect("commit");
        }
        let journal = Journal::open(db.conn(), key(), MAX_DRIFT_MS).expect("journal");
        Fixture {
            dir,
            path,
            db,
            writer: Writer {
                journal,
                rng: SeededRandom::new(42),
                now_ms: T0_MS,
                appended: 0,
            },
        }
    }

    /// Appends `n` events, each in its own committed transaction.
    pub fn append(&mut self, n: u64) -> Vec<Event> {
        (0..n)
            .map(|_| {
                let tx = self.db.write_tx().expect("tx");
                let e = self.writer.append_in(&tx);
                tx.commit().expect("commit");
                e
            })
            .collect()
    }

    /// A plain SQLite connection to the same file: no pragmas, no foreign
    /// keys, like the sqlite3 shell.
    pub fn raw(&self) -> Connection {
        raw(&self.path)
    }
}

pub fn raw(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("raw open");
    // The sqlite3 shell's default (the bundled library defaults to ON).
    conn.pragma_update(None, "foreign_keys", false)
        .expect("foreign keys off");
    conn
}

/// What someone with the sqlite3 shell does first.
pub fn drop_triggers(conn: &Connection) {
    conn.execute_batch(
        "DROP TRIGGER journal_no_update;
         DROP TRIGGER journal_no_delete;
         DROP TRIGGER journal_insert_is_next;
         DROP TRIGGER journal_insert_links_prev;
         DROP TRIGGER checkpoints_no_update;
         DROP TRIGGER checkpoints_no_delete;
         DROP TRIGGER checkpoints_insert_is_new;",
    )
    .expect("drop triggers");
}

/// Every row of a table, as text, for before/after comparisons.
pub fn dump(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
        .expect("prepare");
    let cols = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            let mut line = Vec::with_capacity(cols);
            for i in 0..cols {
                line.push(format!("{:?}", r.get_ref(i)?));
            }
            Ok(line.join("|"))
        })
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}
