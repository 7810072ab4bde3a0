//! SQL of the audit log's Merkle tree (`audit_tree`) and its signed tree heads
//! (`audit_sth`), migration `0004_audit_tree.sql`; the tree math is the pure
//! [`crate::audit_tree`].
//!
//! - Every audit entry's leaf, and the subtrees it completes, are stored by
//!   [`append_leaf`] in the transaction that writes the entry (called from the
//!   one function that writes `audit_log`).
//! - Roots and proofs read O(log n) rows by primary key ([`SqlNodes`]).
//! - At start-up [`startup`] hashes every entry again, streamed in constant
//!   memory, and compares the root with the stored tree; when they differ
//!   (`audit_log` or `audit_tree` was edited outside the hub) it rebuilds the
//!   tree from the entries, raises an `audit_tree_rebuilt` alert and logs an
//!   error. The hub then signs what `audit_log` really holds, so a register
//!   holding an older head sees the rewrite as a failed consistency proof.
//! - Signed tree heads are made by [`sign_head`] (at start-up, periodically and
//!   on demand) and kept append-only.

use super::db::{params, Conn, OptionalExtension, Value};
use caja_shared::digest::Hash256;
use caja_shared::key::HubSigningKey;
use caja_shared::merkle::{self, SignedTreeHead, TreeHead};

use crate::audit_tree::{self, Frontier, NodeSource, TreeError};
use crate::hubchain::hub_key_id;
use crate::storage::error::Answer;
use crate::storage::error::StorageError;
use crate::wire::ApiError;

/// Reads `audit_tree` rows by id.
#[derive(Debug)]
pub struct SqlNodes<'c> {
    conn: &'c Conn,
}

impl<'c> SqlNodes<'c> {
    /// Nodes of the tree stored in `conn`.
    pub fn new(conn: &'c Conn) -> SqlNodes<'c> {
        SqlNodes { conn }
    }
}

impl NodeSource for SqlNodes<'_> {
    type Error = StorageError;

    fn node(&mut self, level: u32, index: u64) -> Result<Hash256, StorageError> {
        let id = audit_tree::node_id(level, index);
        let bytes: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM audit_tree WHERE node = $1")?
            .query_row([sql_int(id)], |r| r.get(0))
            .optional()?;
        let bytes = bytes.ok_or_else(|| {
            StorageError::Corrupt(format!(
                "the audit tree lacks node (level {level}, index {index})"
            ))
        })?;
        hash_of(&bytes)
    }
}

fn tree_error(e: TreeError<StorageError>) -> StorageError {
    match e {
        TreeError::Storage(s) => s,
        TreeError::Merkle(m) => StorageError::Corrupt(format!("audit tree: {m}")),
    }
}

fn hash_of(bytes: &[u8]) -> Result<Hash256, StorageError> {
    <[u8; 32]>::try_from(bytes)
        .map(Hash256)
        .map_err(|_| StorageError::Corrupt("an audit tree hash is not 32 bytes".into()))
}

/// A u64 below 2^63 as an SQLite integer (ids and sizes stay below 2^54).
fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Stores leaf `index` (the entry just written to `audit_log` at `idx = index`)
/// and the subtrees it completes. Runs inside the writer's transaction.
pub fn append_leaf(conn: &Conn, index: u64, leaf: Hash256) -> Result<(), StorageError> {
    let mut source = SqlNodes::new(conn);
    // The tree must end exactly where the log does: leaf `index - 1` exists
    // (for an odd index `append` reads it anyway) and leaf `index` does not
    // (the primary key refuses it).
    if index > 0 && index % 2 == 0 {
        source.node(0, index - 1)?;
    }
    let nodes = audit_tree::append(&mut source, index, leaf).map_err(tree_error)?;
    let mut insert = conn.prepare_cached("INSERT INTO audit_tree (node, hash) VALUES ($1, $2)")?;
    for n in nodes {
        insert.execute(params![sql_int(n.id), n.hash.as_bytes().as_slice()])?;
    }
    Ok(())
}

/// [`append_leaf`] for the consecutive leaves `first`, `first + 1`, …: the
/// nodes are computed over the ones this call adds (read from the table
/// only when older) and stored with multi-row statements.
pub fn append_leaves(conn: &Conn, first: u64, leaves: &[Hash256]) -> Result<(), StorageError> {
    struct Overlay<'c> {
        sql: SqlNodes<'c>,
        added: std::collections::HashMap<u64, Hash256>,
    }
    impl NodeSource for Overlay<'_> {
        type Error = StorageError;
        fn node(&mut self, level: u32, index: u64) -> Result<Hash256, StorageError> {
            match self.added.get(&audit_tree::node_id(level, index)) {
                Some(h) => Ok(*h),
                None => self.sql.node(level, index),
            }
        }
    }
    let mut source = Overlay {
        sql: SqlNodes::new(conn),
        added: std::collections::HashMap::new(),
    };
    if first > 0 && first % 2 == 0 {
        source.node(0, first - 1)?;
    }
    let mut rows = Vec::new();
    for (i, leaf) in (first..).zip(leaves) {
        for n in audit_tree::append(&mut source, i, *leaf).map_err(tree_error)? {
            source.added.insert(n.id, n.hash);
            rows.push(vec![
                Value::Int(sql_int(n.id)),
                Value::Blob(n.hash.as_bytes().to_vec()),
            ]);
        }
    }
    crate::storage::multirow::insert(conn, "INSERT INTO audit_tree (node, hash)", 2, "", rows)?;
    Ok(())
}

/// Number of leaves in the stored tree.
pub fn tree_size(conn: &Conn) -> Result<u64, StorageError> {
    let max: Option<i64> = conn
        .prepare_cached("SELECT MAX(node) FROM audit_tree")?
        .query_row([], |r| r.get(0))?;
    Ok(audit_tree::size_from_max_id(
        max.map(|m| u64::try_from(m).unwrap_or(0)),
    ))
}

/// The stored tree's size and root.
pub fn current_head(conn: &Conn) -> Result<(u64, Hash256), StorageError> {
    let size = tree_size(conn)?;
    let root = audit_tree::root(&mut SqlNodes::new(conn), size).map_err(tree_error)?;
    Ok((size, root))
}

/// The most recent signed tree head, if any.
pub fn latest_sth(conn: &Conn) -> Result<Option<SignedTreeHead>, StorageError> {
    let row = conn
        .prepare_cached(
            "SELECT tree_size, root, at_ms, key_id, signature FROM audit_sth ORDER BY sth_id DESC LIMIT 1",
        )?
        .query_row([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .optional()?;
    let Some((size, root, at_ms, key_id, signature)) = row else {
        return Ok(None);
    };
    let corrupt = |what: &str, e: String| StorageError::Corrupt(format!("audit_sth {what}: {e}"));
    Ok(Some(SignedTreeHead {
        at_ms,
        key_id: key_id
            .parse()
            .map_err(|e| corrupt("key_id", format!("{e}")))?,
        root: root.parse().map_err(|e| corrupt("root", format!("{e}")))?,
        signature: signature
            .parse()
            .map_err(|e| corrupt("signature", format!("{e}")))?,
        tree_size: u64::try_from(size).map_err(|e| corrupt("tree_size", e.to_string()))?,
    }))
}

/// Signs the current tree with the hub's key and records the head. Unless
/// `force`, the latest head is returned as is when the tree has not changed
/// since. `at_ms` never goes back from one head to the next.
pub fn sign_head(
    conn: &Conn,
    key: &HubSigningKey,
    now_ms: i64,
    force: bool,
) -> Result<SignedTreeHead, StorageError> {
    let (size, root) = current_head(conn)?;
    let latest = latest_sth(conn)?;
    if let Some(l) = &latest {
        if !force && l.tree_size == size && l.root == root {
            return Ok(l.clone());
        }
    }
    let head = TreeHead {
        tree_size: size,
        root,
        at_ms: latest.map_or(now_ms, |l| now_ms.max(l.at_ms)),
        key_id: hub_key_id(&key.public_key()),
    };
    let sth = SignedTreeHead::sign(&head, key)
        .map_err(|e| StorageError::Corrupt(format!("cannot sign the tree head: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO audit_sth (tree_size, root, at_ms, key_id, signature) VALUES ($1, $2, $3, $4, $5)",
    )?
    .execute(params![
        sql_int(sth.tree_size),
        sth.root.to_hex(),
        sth.at_ms,
        sth.key_id.as_str(),
        sth.signature.to_hex()
    ])?;
    Ok(sth)
}

/// What the start-up check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupCheck {
    /// Entries in `audit_log`.
    pub entries: u64,
    /// Whether the stored tree differed from the entries and was rebuilt
    /// (not counting the first build of a database from before the tree).
    pub rebuilt: bool,
    /// Entries whose stored `leaf_hash` column differs from the hash of their
    /// bytes (the bytes win).
    pub stale_leaf_hashes: u64,
    /// The head signed (or kept) after the check.
    pub sth: SignedTreeHead,
}

/// Streams `audit_log` in index order, handing each entry's index and bytes to
/// `f`, up to `limit` entries. A gap in the indexes is corruption.
pub fn for_each_entry(
    conn: &Conn,
    limit: u64,
    mut f: impl FnMut(u64, &[u8], &str) -> Result<(), StorageError>,
) -> Result<u64, StorageError> {
    let mut expected = 0u64;
    conn.for_each(
        "SELECT idx, entry, leaf_hash FROM audit_log WHERE idx < $1 ORDER BY idx",
        [sql_int(limit)],
        |r| -> Result<(), StorageError> {
            let idx: i64 = r.get(0)?;
            if u64::try_from(idx).ok() != Some(expected) {
                return Err(StorageError::Corrupt(format!(
                    "audit_log has no entry {expected} (the next row is {idx}): entries were deleted"
                )));
            }
            let bad = |what: &str| StorageError::Corrupt(format!("audit_log entry {expected}: {what}"));
            let bytes = match r.value(1)? {
                Value::Blob(b) => b.as_slice(),
                Value::Text(t) => t.as_bytes(),
                _ => return Err(bad("entry is not bytes")),
            };
            let Value::Text(leaf_hex) = r.value(2)? else {
                return Err(bad("leaf_hash is not text"));
            };
            f(expected, bytes, leaf_hex)?;
            expected += 1;
            Ok(())
        },
    )?;
    Ok(expected)
}

/// The hub's start-up check of its audit log (see the module doc), then a signed
/// head of the tree if it changed since the last one. Runs before the writer
/// starts, in a write transaction (on PostgreSQL under the writers' lock, so
/// instances starting together check one after the other).
pub fn startup(
    conn: &Conn,
    key: &HubSigningKey,
    now_ms: i64,
) -> Result<StartupCheck, StorageError> {
    conn.write_tx(|tx| startup_in(tx, key, now_ms))
}

fn startup_in(tx: &Conn, key: &HubSigningKey, now_ms: i64) -> Result<StartupCheck, StorageError> {
    let mut frontier = Frontier::new();
    let mut stale = 0u64;
    let entries = for_each_entry(tx, u64::MAX >> 1, |_, bytes, leaf_hex| {
        let leaf = merkle::leaf_hash(bytes);
        if leaf.to_hex() != leaf_hex {
            stale += 1;
        }
        frontier.push(leaf);
        Ok(())
    })?;
    let stored_rows: i64 = tx.query_row("SELECT COUNT(*) FROM audit_tree", [], |r| r.get(0))?;
    let expected_rows = 2 * entries - u64::from(entries.count_ones());
    let stored_size = tree_size(tx)?;
    let stored_root =
        if stored_size == entries && u64::try_from(stored_rows).ok() == Some(expected_rows) {
            audit_tree::root(&mut SqlNodes::new(tx), stored_size).ok()
        } else {
            None
        };
    // A database from before the tree (migration 0002 just ran): no tree and
    // no head yet. Building it is an upgrade, not a repair.
    let first_build = stored_rows == 0 && entries > 0 && latest_sth(tx)?.is_none();
    let rebuilt = stored_root != Some(frontier.root()) && !first_build;
    if first_build {
        tracing::info!(entries, "building the audit log's Merkle tree");
    } else if rebuilt {
        tracing::error!(
            entries,
            stored_size,
            stale_leaf_hashes = stale,
            "the audit tree does not match the audit log's entries: it was edited outside the hub; rebuilding it from the entries"
        );
    }
    if rebuilt || first_build {
        tx.execute("DELETE FROM audit_tree", [])?;
        let mut again = Frontier::new();
        let mut nodes = Vec::new();
        for_each_entry(tx, entries, |_, bytes, _| {
            for n in again.push(merkle::leaf_hash(bytes)) {
                nodes.push((sql_int(n.id), n.hash));
                if nodes.len() >= 1024 {
                    insert_nodes(tx, &mut nodes)?;
                }
            }
            Ok(())
        })?;
        insert_nodes(tx, &mut nodes)?;
    }
    if rebuilt {
        tx.execute(
            "INSERT INTO alerts (kind, store_id, device_id, at_ms, message) VALUES ('audit_tree_rebuilt', NULL, NULL, $1, $2)",
            params![
                now_ms,
                format!(
                    "the audit log's Merkle tree did not match its {entries} entries and was rebuilt from them: the database was edited outside the hub; registers that saw an earlier tree head will report a rewritten log"
                )
            ],
        )?;
    } else if stale > 0 {
        tracing::warn!(
            stale_leaf_hashes = stale,
            "audit_log rows have a leaf_hash that differs from their bytes"
        );
    }
    let sth = sign_head(tx, key, now_ms, false)?;
    Ok(StartupCheck {
        entries,
        rebuilt,
        stale_leaf_hashes: stale,
        sth,
    })
}

fn insert_nodes(tx: &Conn, nodes: &mut Vec<(i64, Hash256)>) -> Result<(), StorageError> {
    let mut insert = tx.prepare_cached("INSERT INTO audit_tree (node, hash) VALUES ($1, $2)")?;
    for (id, hash) in nodes.drain(..) {
        insert.execute(params![id, hash.as_bytes().as_slice()])?;
    }
    Ok(())
}

/// An inclusion proof with its entry, for `GET /v1/audit/inclusion`.
#[derive(Debug, Clone)]
pub struct InclusionAnswer {
    /// The entry's canonical bytes.
    pub entry: Vec<u8>,
    /// Its leaf hash (from the tree).
    pub leaf_hash: Hash256,
    /// The audit path.
    pub proof: Vec<Hash256>,
}

fn size_fits(conn: &Conn, field: &str, size: u64) -> Result<Answer<()>, StorageError> {
    let current = tree_size(conn)?;
    if size > current {
        return Ok(Err(ApiError::invalid(
            field,
            format!("the audit log has {current} entries"),
        )));
    }
    Ok(Ok(()))
}

/// Inclusion proof of entry `index` in the tree of the first `size` entries.
pub fn inclusion(
    conn: &Conn,
    index: u64,
    size: u64,
) -> Result<Answer<InclusionAnswer>, StorageError> {
    if let Err(e) = size_fits(conn, "tree_size", size)? {
        return Ok(Err(e));
    }
    if index >= size {
        return Ok(Err(ApiError::invalid(
            "index",
            format!("must be below tree_size ({size})"),
        )));
    }
    let mut nodes = SqlNodes::new(conn);
    let proof = audit_tree::inclusion_proof(&mut nodes, index, size).map_err(tree_error)?;
    let leaf_hash = nodes.node(0, index)?;
    let entry: Vec<u8> = conn
        .prepare_cached("SELECT entry FROM audit_log WHERE idx = $1")?
        .query_row([sql_int(index)], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StorageError::Corrupt(format!("audit_log has no entry {index}")))?;
    Ok(Ok(InclusionAnswer {
        entry,
        leaf_hash,
        proof,
    }))
}

/// Consistency proof between the trees of the first `first` and `second`
/// entries.
pub fn consistency(
    conn: &Conn,
    first: u64,
    second: u64,
) -> Result<Answer<Vec<Hash256>>, StorageError> {
    if let Err(e) = size_fits(conn, "second", second)? {
        return Ok(Err(e));
    }
    if first > second {
        return Ok(Err(ApiError::invalid(
            "first",
            "must not be larger than second",
        )));
    }
    audit_tree::consistency_proof(&mut SqlNodes::new(conn), first, second)
        .map(Ok)
        .map_err(tree_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn db() -> Conn {
        let conn = Conn::from_sqlite(rusqlite::Connection::open_in_memory().unwrap());
        super::super::migrate::migrate(&conn).unwrap();
        conn
    }

    fn entry(i: u64) -> Vec<u8> {
        format!(r#"{{"at_ms":{i},"data":{{}},"index":{i},"kind":"test","store":null}}"#)
            .into_bytes()
    }

    /// Writes entries 0..n to audit_log and the tree, as the writer does.
    fn fill(conn: &Conn, from: u64, to: u64) -> Vec<Hash256> {
        let mut leaves = Vec::new();
        for i in from..to {
            let bytes = entry(i);
            let leaf = merkle::leaf_hash(&bytes);
            conn.execute(
                "INSERT INTO audit_log (idx, kind, at_ms, store_id, entry, leaf_hash) VALUES ($1, 'test', 0, NULL, $2, $3)",
                params![sql_int(i), bytes, leaf.to_hex()],
            )
            .unwrap();
            append_leaf(conn, i, leaf).unwrap();
            leaves.push(leaf);
        }
        leaves
    }

    fn key() -> HubSigningKey {
        HubSigningKey::from_seed([9; 32])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn sqlite_tree_equals_the_in_memory_tree(
            size in 1u64..300,
            picks in proptest::collection::vec((any::<u64>(), any::<u64>()), 1..6),
        ) {
            let conn = db();
            let all = fill(&conn, 0, size);
            prop_assert_eq!(tree_size(&conn).unwrap(), size);
            prop_assert_eq!(current_head(&conn).unwrap(), (size, merkle::root(&all)));
            for (a, b) in picks {
                let second = 1 + b % size;
                let first = a % (second + 1);
                let index = a % second;
                let prefix = &all[..usize::try_from(second).unwrap()];
                let inc = inclusion(&conn, index, second).unwrap().unwrap();
                prop_assert_eq!(&inc.proof, &merkle::inclusion_proof(prefix, index).unwrap());
                prop_assert_eq!(inc.leaf_hash, merkle::leaf_hash(&inc.entry));
                let proof = consistency(&conn, first, second).unwrap().unwrap();
                prop_assert_eq!(&proof, &merkle::consistency_proof(prefix, first).unwrap());
            }
        }
    }

    #[test]
    fn requests_beyond_the_tree_are_rejected_naming_the_field() {
        let conn = db();
        fill(&conn, 0, 5);
        let e = inclusion(&conn, 1, 6).unwrap().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("tree_size"));
        let e = inclusion(&conn, 5, 5).unwrap().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("index"));
        let e = consistency(&conn, 2, 6).unwrap().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("second"));
        let e = consistency(&conn, 4, 3).unwrap().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("first"));
        assert_eq!(consistency(&conn, 0, 5).unwrap().unwrap(), vec![]);
    }

    #[test]
    fn appends_must_continue_the_tree_exactly() {
        let conn = db();
        fill(&conn, 0, 5);
        let leaf = merkle::leaf_hash(b"x");
        for index in [6, 7, 8] {
            assert!(
                matches!(
                    append_leaf(&conn, index, leaf),
                    Err(StorageError::Corrupt(_))
                ),
                "{index}"
            );
        }
        assert!(append_leaf(&conn, 4, leaf).is_err(), "leaf 4 exists");
        assert_eq!(tree_size(&conn).unwrap(), 5);
        append_leaf(&conn, 5, leaf).unwrap();
        assert_eq!(tree_size(&conn).unwrap(), 6);
    }

    #[test]
    fn heads_are_signed_only_when_the_tree_changed_unless_forced() {
        let conn = db();
        let empty = sign_head(&conn, &key(), 100, false).unwrap();
        assert_eq!(empty.tree_size, 0);
        assert_eq!(empty.root, merkle::root(&[]));
        let all = fill(&conn, 0, 3);
        let a = sign_head(&conn, &key(), 200, false).unwrap();
        assert_eq!((a.tree_size, a.root, a.at_ms), (3, merkle::root(&all), 200));
        a.verify(&key().public_key()).unwrap();
        assert_eq!(sign_head(&conn, &key(), 300, false).unwrap(), a);
        // Forced: a fresh signature; the clock going back does not move at_ms back.
        let b = sign_head(&conn, &key(), 150, true).unwrap();
        assert_eq!(b.at_ms, 200);
        assert_eq!(latest_sth(&conn).unwrap(), Some(b));
        assert!(conn.execute("DELETE FROM audit_sth", []).is_err());
        assert!(conn.execute("UPDATE audit_sth SET at_ms = 0", []).is_err());
    }

    #[test]
    fn startup_keeps_a_clean_tree_and_rebuilds_an_edited_one_with_an_alert() {
        let conn = db();
        let all = fill(&conn, 0, 11);
        let clean = startup(&conn, &key(), 1_000).unwrap();
        assert!(!clean.rebuilt);
        assert_eq!(clean.entries, 11);
        assert_eq!(clean.sth.root, merkle::root(&all));

        // Someone with the database file edits entry 4 (and drops the triggers
        // that forbid it).
        conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
            .unwrap();
        let forged = br#"{"at_ms":4,"data":{"forged":true},"index":4,"kind":"test","store":null}"#;
        conn.execute(
            "UPDATE audit_log SET entry = $1 WHERE idx = 4",
            [&forged[..]],
        )
        .unwrap();
        let check = startup(&conn, &key(), 2_000).unwrap();
        assert!(check.rebuilt);
        assert_eq!(check.stale_leaf_hashes, 1);
        let mut expected = all.clone();
        expected[4] = merkle::leaf_hash(forged);
        assert_eq!(check.sth.root, merkle::root(&expected));
        assert_eq!(check.sth.tree_size, 11);
        let alerts: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM alerts WHERE kind = 'audit_tree_rebuilt'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(alerts, 1);
        // The tree now serves proofs of the edited log.
        let inc = inclusion(&conn, 4, 11).unwrap().unwrap();
        merkle::verify_inclusion(&inc.leaf_hash, 4, 11, &inc.proof, &check.sth.root).unwrap();

        // Trailing entries deleted: the tree shrinks to the log.
        conn.execute("DELETE FROM audit_log WHERE idx >= 9", [])
            .unwrap();
        let shrunk = startup(&conn, &key(), 3_000).unwrap();
        assert!(shrunk.rebuilt);
        assert_eq!(shrunk.sth.tree_size, 9);
        assert_eq!(tree_size(&conn).unwrap(), 9);

        // A hole in the log is refused, naming the missing index.
        conn.execute("DELETE FROM audit_log WHERE idx = 2", [])
            .unwrap();
        let err = startup(&conn, &key(), 4_000).unwrap_err();
        assert!(err.to_string().contains("no entry 2"), "{err}");
    }

    #[test]
    fn a_database_from_before_the_tree_gets_it_built_without_an_alert() {
        let conn = db();
        let all = fill(&conn, 0, 9);
        conn.execute("DELETE FROM audit_tree", []).unwrap();
        let check = startup(&conn, &key(), 1).unwrap();
        assert!(!check.rebuilt);
        assert_eq!(
            (check.sth.tree_size, check.sth.root),
            (9, merkle::root(&all))
        );
        let alerts: i64 = conn
            .query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(alerts, 0);
        // Once a head was signed, a missing tree is a repair again.
        conn.execute("DELETE FROM audit_tree", []).unwrap();
        assert!(startup(&conn, &key(), 2).unwrap().rebuilt);
    }

    #[test]
    fn startup_rebuilds_a_missing_tree_without_changing_its_root() {
        let conn = db();
        let all = fill(&conn, 0, 20);
        conn.execute("DELETE FROM audit_tree WHERE node % 4 = 1", [])
            .unwrap();
        let check = startup(&conn, &key(), 1).unwrap();
        assert!(check.rebuilt);
        assert_eq!(check.sth.root, merkle::root(&all));
        let more = fill(&conn, 20, 33);
        let full: Vec<Hash256> = all.into_iter().chain(more).collect();
        assert_eq!(current_head(&conn).unwrap(), (33, merkle::root(&full)));
    }
}
