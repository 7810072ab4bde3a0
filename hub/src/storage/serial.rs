//! How write transactions are serialized on PostgreSQL, where several hub
//! instances write one database (DESIGN "Sync protocol": one lock, or per
//! store for hub chains, per series for fiscal blocks, audit entries
//! sequenced by one sequencer).
//!
//! Every writer job says what it must be serialized with ([`Serial`]):
//! - [`Serial::All`] (the default): the writers' lock
//!   ([`super::db::WRITER_LOCK`]) exclusive — serialized with every other
//!   write of every instance, as before finer locks existed.
//! - [`Serial::Keys`]: the writers' lock *shared* plus one exclusive
//!   transaction lock per key: a store ([`LockKey::store`]: its hub chain,
//!   devices, stock and escrow), a fiscal series ([`LockKey::series`]: block
//!   grants), a bucket of 1,024 fiscal numbers ([`LockKey::fiscal_numbers`]:
//!   a duplicate number pushed by two stores at once is seen by the second).
//!   Jobs with disjoint keys run at once on different instances.
//!
//! Deadlock freedom: a transaction *waits* for locks only while it holds
//! none, and then takes them in one order (the writers' lock first, then the
//! keys sorted); a job batched behind others only *tries* its locks
//! (`pg_try_advisory_xact_lock`), and when one is taken elsewhere the writer
//! commits the batch so far and begins a new transaction for it
//! ([`acquire`] answers `false`). The audit log is not locked here: entries
//! are staged and sequenced ([`super::audit_log`]).
//!
//! Kernel: SQLite ignores all of this (one writer thread, `BEGIN IMMEDIATE`).

use std::collections::BTreeSet;

use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, StoreId};
use caja_shared::kind::EventBody;

use crate::ingest::PushedEvent;
use crate::storage::codec::parse;
use crate::storage::db::{Conn, DbError, Dialect, OptionalExtension, WRITER_LOCK};
use crate::storage::error::StorageError;

/// Namespace (first key of the two-integer advisory lock) of store locks.
const NS_STORE: i32 = 0x6361_0001;
/// Namespace of fiscal series locks.
const NS_SERIES: i32 = 0x6361_0002;
/// Namespace of fiscal number buckets.
const NS_FISCAL_NUMBERS: i32 = 0x6361_0003;
/// Fiscal numbers per bucket lock: a register's block is a run of numbers,
/// so a push locks one or two buckets, and two stores' blocks share a
/// bucket only at their edges.
const FISCAL_BUCKET: u64 = 1024;

/// What a job is serialized with, read before it runs (reads only).
pub(crate) type Plan = Box<dyn FnOnce(&Conn) -> Result<Serial, StorageError> + Send>;

/// One exclusive transaction lock (the two-integer advisory lock space, so it
/// never collides with [`WRITER_LOCK`]). A hash collision only serializes
/// more than needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LockKey {
    ns: i32,
    key: i32,
}

fn hash32(parts: &[&[u8]]) -> i32 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(&u32::try_from(p.len()).unwrap_or(u32::MAX).to_be_bytes());
        bytes.extend_from_slice(p);
    }
    let h = Hash256::of(&bytes);
    let b = h.as_bytes();
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl LockKey {
    /// A store: its hub chain, its registers' chains, stock and escrow.
    pub(crate) fn store(store: StoreId) -> LockKey {
        LockKey {
            ns: NS_STORE,
            key: hash32(&[store.to_string().as_bytes()]),
        }
    }

    /// A fiscal series (by prefix): its block grants, whichever store asks.
    pub(crate) fn series(prefix: &str) -> LockKey {
        LockKey {
            ns: NS_SERIES,
            key: hash32(&[prefix.as_bytes()]),
        }
    }

    /// The bucket of fiscal numbers holding `number` of `series`.
    pub(crate) fn fiscal_numbers(series: &str, number: &str) -> LockKey {
        let digits = number.strip_prefix(series).unwrap_or(number);
        let key = match digits.parse::<u64>() {
            Ok(n) => hash32(&[series.as_bytes(), &(n / FISCAL_BUCKET).to_be_bytes()]),
            Err(_) => hash32(&[series.as_bytes(), number.as_bytes()]),
        };
        LockKey {
            ns: NS_FISCAL_NUMBERS,
            key,
        }
    }
}

/// What a writer job is serialized with on PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Serial {
    /// Every other write (the writers' lock, exclusive).
    All,
    /// Writes holding one of these keys (and the writers' lock shared).
    Keys(BTreeSet<LockKey>),
}

impl Serial {
    /// Serialized with the writes of these keys only.
    pub(crate) fn keys(keys: impl IntoIterator<Item = LockKey>) -> Serial {
        Serial::Keys(keys.into_iter().collect())
    }
}

/// The locks the current transaction holds (reset at every `BEGIN`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Held {
    /// The writers' lock: `Some(true)` exclusive, `Some(false)` shared.
    writers: Option<bool>,
    keys: BTreeSet<LockKey>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.writers.is_none() && self.keys.is_empty()
    }

    /// Whether a job serialized by keys holds `store`'s lock (true for a
    /// job holding the writers' lock exclusive, and when nothing is held:
    /// SQLite, or a caller that took the locks itself).
    pub(crate) fn covers_store(&self, store: StoreId) -> bool {
        self.writers != Some(false) || self.keys.contains(&LockKey::store(store))
    }
}

/// Takes what `serial` needs in the open transaction. `Ok(false)`: a lock is
/// held by another transaction and this one already holds locks: commit
/// what was done and call again in a new transaction (where it waits).
/// Always `Ok(true)` on SQLite.
pub(crate) fn acquire(conn: &Conn, held: &mut Held, serial: &Serial) -> Result<bool, DbError> {
    if conn.dialect() == Dialect::Sqlite || held.writers == Some(true) {
        return Ok(true);
    }
    let (exclusive, keys): (bool, Vec<LockKey>) = match serial {
        Serial::All => (true, Vec::new()),
        Serial::Keys(k) => (
            false,
            k.iter()
                .filter(|k| !held.keys.contains(k))
                .copied()
                .collect(),
        ),
    };
    let writers_needed = match held.writers {
        None => true,
        Some(shared_only) => exclusive && !shared_only,
    };
    if !writers_needed && keys.is_empty() {
        return Ok(true);
    }
    let writers_fn = |try_: bool| {
        format!(
            "pg{}_advisory_xact_lock{}({WRITER_LOCK})",
            if try_ { "_try" } else { "" },
            if exclusive { "" } else { "_shared" }
        )
    };
    if held.is_empty() {
        // Nothing held: wait, in the one order (see the module doc).
        let mut sql = format!("SELECT {};", writers_fn(false));
        for k in &keys {
            sql.push_str(&format!(
                "SELECT pg_advisory_xact_lock({}, {});",
                k.ns, k.key
            ));
        }
        conn.execute_batch(&sql)?;
    } else {
        let mut parts = Vec::new();
        if writers_needed {
            parts.push(writers_fn(true));
        }
        for k in &keys {
            parts.push(format!("pg_try_advisory_xact_lock({}, {})", k.ns, k.key));
        }
        let all: bool =
            conn.query_row(&format!("SELECT {}", parts.join(" AND ")), [], |r| r.get(0))?;
        if !all {
            return Ok(false);
        }
    }
    if writers_needed {
        held.writers = Some(exclusive);
    }
    held.keys.extend(keys);
    Ok(true)
}

/// The plan of a job acting for `device`: its store's lock plus `extra`
/// (every write when the device is unknown: it is refused anyway).
pub(crate) fn for_device(device: DeviceId, extra: BTreeSet<LockKey>) -> Plan {
    Box::new(move |conn: &Conn| {
        let store: Option<String> = conn
            .prepare_cached("SELECT store_id FROM devices WHERE device_id = $1")?
            .query_row([device.to_string()], |r| r.get(0))
            .optional()?;
        Ok(match store {
            Some(s) => {
                let mut keys = extra;
                keys.insert(LockKey::store(parse(&s)?));
                Serial::Keys(keys)
            }
            None => Serial::All,
        })
    })
}

/// [`for_device`] when the device's store is already known (read when the
/// request was admitted; a device never moves to another store): no read
/// before the job. The job checks the store it finds against the lock
/// ([`Held::covers_store`]).
pub(crate) fn for_device_in(
    device: DeviceId,
    store: Option<StoreId>,
    extra: BTreeSet<LockKey>,
) -> Plan {
    match store {
        Some(store) => Box::new(move |_: &Conn| {
            let mut keys = extra;
            keys.insert(LockKey::store(store));
            Ok(Serial::Keys(keys))
        }),
        None => for_device(device, extra),
    }
}

/// The fiscal-number buckets a push's events name (sales' numbers, returns'
/// credit notes): a number used twice by two stores at once is then seen by
/// the second transaction, which raises the duplicate.
pub(crate) fn fiscal_keys(events: &[PushedEvent]) -> BTreeSet<LockKey> {
    let mut keys = BTreeSet::new();
    for e in events {
        let f = match &e.body {
            EventBody::SaleCreated(s) => s.fiscal.as_ref(),
            EventBody::SaleReturned(r) => r.credit_note.as_ref(),
            _ => None,
        };
        if let Some(f) = f {
            keys.insert(LockKey::fiscal_numbers(&f.series, &f.number));
        }
    }
    keys
}

/// `BEGIN` of the writer's transaction: `BEGIN IMMEDIATE` on SQLite; a
/// plain `BEGIN` on PostgreSQL (each job then takes its locks).
pub(crate) fn begin(conn: &Conn, held: &mut Held) -> Result<(), DbError> {
    *held = Held::default();
    conn.begin_unlocked()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fiscal_numbers_of_one_block_share_a_bucket_and_keys_sort_stably() {
        let a = LockKey::fiscal_numbers("B02", "B0200000001");
        assert_eq!(a, LockKey::fiscal_numbers("B02", "B0200001023"));
        assert_ne!(a, LockKey::fiscal_numbers("B02", "B0200001024"));
        assert_ne!(LockKey::series("B02"), LockKey::series("B01"));
        let s: StoreId = "01935f4e-8a00-7000-8000-0000000000a1".parse().unwrap();
        assert_eq!(LockKey::store(s), LockKey::store(s));
        let serial = Serial::keys([LockKey::series("B02"), LockKey::store(s)]);
        let Serial::Keys(k) = serial else { panic!() };
        assert_eq!(k.len(), 2);
    }

    #[test]
    fn a_job_locked_by_keys_covers_only_the_stores_it_locked() {
        let a: StoreId = "01935f4e-8a00-7000-8000-0000000000a1".parse().unwrap();
        let b: StoreId = "01935f4e-8a00-7000-8000-0000000000a2".parse().unwrap();
        let by_keys = Held {
            writers: Some(false),
            keys: [LockKey::store(a)].into_iter().collect(),
        };
        assert!(by_keys.covers_store(a));
        assert!(
            !by_keys.covers_store(b),
            "another store's push must not run"
        );
        let all = Held {
            writers: Some(true),
            keys: BTreeSet::new(),
        };
        assert!(all.covers_store(b));
        assert!(
            Held::default().covers_store(b),
            "SQLite, or locks taken by the caller"
        );
        // A plan from the admitted store reads nothing and locks that store.
        let plan = for_device_in(
            "01935f4e-8a00-7000-8000-0000000000d1".parse().unwrap(),
            Some(a),
            BTreeSet::new(),
        );
        let conn = Conn::from_sqlite(rusqlite::Connection::open_in_memory().unwrap());
        let before = conn.statements();
        assert_eq!(plan(&conn).unwrap(), Serial::keys([LockKey::store(a)]));
        assert_eq!(conn.statements(), before);
    }
}
