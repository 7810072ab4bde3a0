//! Restore epochs (DESIGN "Hub restore (disaster recovery)"): recording a
//! restore (offline, `caja-hub restore`), the per-store gate, the hub events
//! registers return (`POST /v1/sync/hub-events`), their reports, head
//! office's acknowledgement and overrides, and the SQLite online backup.
//!
//! Invariant: a store whose registers have not all reported in the current
//! epoch gets no new hub-chain event and no grant from the callers that
//! check [`gate`] (fiscal blocks, stock quotas, catalog, resolutions), unless
//! head office overrode it; so a block granted after the backup comes back
//! from the registers before any number is granted again. Every restore,
//! acknowledgement and override is an audit entry.
//!
//! Feature module: imports the kernel and the ingest layer.

use std::borrow::Cow;
use std::path::Path;

use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, EventId, StoreId};
use caja_shared::key::HubSigningKey;
use caja_shared::merkle::{SignedTreeHead, TreeHead};
use serde::Serialize;

use crate::audit::{self, AuditKind};
use crate::hubchain::hub_key_id;
use crate::ingest::{self, Candidate};
use crate::projection::Origin;
use crate::restore::{restore_pending, HubEventsBatch};
use crate::storage::audit_log::append_audit;
use crate::storage::audit_tree;
use crate::storage::codec::{corrupt, parse, u};
use crate::storage::db::{params, Conn, Database, OptionalExtension};
use crate::storage::device_auth::DeviceCtx;
use crate::storage::error::{Answer, StorageError};
use crate::storage::ingest::events::insert_event;
use crate::storage::ingest::index::SqlIndex;
use crate::storage::tx_cache::TxCache;
use crate::storage::writer::Env;
use crate::wire::ApiError;

/// One restore of this hub's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreInfo {
    /// The epoch it started (1 for the first restore).
    pub epoch: u64,
    /// When `caja-hub restore` ran (hub clock, UTC ms).
    pub restored_at_ms: i64,
    /// The audit tree's size it restarted from.
    pub tree_size: u64,
    /// That tree's root.
    pub root: Hash256,
    /// A head over `tree_size` and `root` signed with the hub key.
    pub sth: serde_json::Value,
    /// When head office acknowledged the discontinuity.
    pub acked_at_ms: Option<i64>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
}

/// A store's gate in the current epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreGate {
    /// The store.
    pub store: StoreId,
    /// Registers (not revoked) that have reported.
    pub reported: Vec<DeviceId>,
    /// Registers (not revoked) still to report.
    pub waiting: Vec<DeviceId>,
    /// Head office lifted the gate.
    pub overridden: bool,
    /// Whether new hub events and grants wait.
    pub gated: bool,
}

/// The hub's restore state for head office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreStatus {
    /// The current epoch (0: never restored).
    pub epoch: u64,
    /// The latest restore.
    pub restore: Option<RestoreInfo>,
    /// Each store's gate.
    pub stores: Vec<StoreGate>,
}

/// The answer of `POST /v1/sync/hub-events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubEventsAck {
    /// Hub events newly stored.
    pub accepted: u64,
    /// Hub events the hub already held (same hash).
    pub duplicates: u64,
    /// The store's hub chain head after this call.
    pub hub_seq: u64,
    /// The highest seq of the caller's own chain the hub holds.
    pub acked_seq: u64,
    /// Whether this call recorded the caller's report in the epoch.
    pub reported: bool,
    /// The current epoch.
    pub restore_epoch: u64,
    /// The latest restore (its signed head), when there was one.
    pub restored: Option<RestoreInfo>,
}

/// The current restore epoch (0 when this database was never restored).
pub fn current_epoch(conn: &Conn) -> Result<u64, StorageError> {
    let e: Option<i64> = conn
        .prepare_cached("SELECT MAX(epoch) FROM restore_epochs")?
        .query_row([], |r| r.get(0))?;
    Ok(e.map_or(0, u))
}

/// The current epoch and whether head office acknowledged it (at start).
pub fn epoch_state(conn: &Conn) -> Result<(u64, bool), StorageError> {
    Ok(latest(conn)?.map_or((0, true), |r| (r.epoch, r.acked_at_ms.is_some())))
}

/// The latest restore, if any.
pub(crate) fn latest(conn: &Conn) -> Result<Option<RestoreInfo>, StorageError> {
    let row = conn
        .prepare_cached(
            "SELECT epoch, restored_at_ms, tree_size, root, sth_at_ms, sth_key_id, sth_signature, acked_at_ms, acked_by
             FROM restore_epochs ORDER BY epoch DESC LIMIT 1",
        )?
        .query_row([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })
        .optional()?;
    let Some((epoch, at, size, root, sth_at, key_id, sig, acked_at_ms, acked_by)) = row else {
        return Ok(None);
    };
    Ok(Some(RestoreInfo {
        epoch: u(epoch),
        restored_at_ms: at,
        tree_size: u(size),
        root: parse(&root)?,
        sth: serde_json::json!({
            "tree_size": size,
            "root": root,
            "at_ms": sth_at,
            "key_id": key_id,
            "signature": sig,
        }),
        acked_at_ms,
        acked_by,
    }))
}

/// Records a restore on a database just copied from a backup (offline, in
/// one transaction): the next epoch, a head over the tree as it is signed
/// with `key`, the `restored` audit entry, every undecided outbox document
/// marked in doubt (the authority is asked before anything is sent again),
/// and a new signed head that includes the entry.
pub fn record_restore(
    conn: &Conn,
    key: &HubSigningKey,
    now_ms: i64,
) -> Result<RestoreInfo, StorageError> {
    conn.write_tx(|conn| {
        let (size, root) = audit_tree::current_head(conn)?;
        let epoch = current_epoch(conn)? + 1;
        let head = TreeHead {
            tree_size: size,
            root,
            at_ms: now_ms,
            key_id: hub_key_id(&key.public_key()),
        };
        let sth = SignedTreeHead::sign(&head, key)
            .map_err(|e| corrupt(format!("cannot sign the restored head: {e}")))?;
        let sql_epoch = i64::try_from(epoch).map_err(corrupt)?;
        let sql_size = i64::try_from(size).map_err(corrupt)?;
        conn.execute(
            "INSERT INTO restore_epochs (epoch, restored_at_ms, tree_size, root, sth_at_ms, sth_key_id, sth_signature) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            params![
                sql_epoch,
                now_ms,
                sql_size,
                root.to_hex(),
                sth.at_ms,
                sth.key_id.as_str(),
                sth.signature.to_hex()
            ],
        )?;
        let mut tx = TxCache::new(conn.dialect());
        append_audit(
            conn,
            &mut tx,
            AuditKind::Restored,
            now_ms,
            None,
            audit::data([
                ("epoch", audit::n(sql_epoch)),
                ("tree_size", audit::n(sql_size)),
                ("root", audit::s(root)),
            ]),
        )?;
        conn.execute(
            "UPDATE tax_outbox SET in_doubt = 1 WHERE state IN ('pending', 'submitted')",
            params![],
        )?;
        audit_tree::sign_head(conn, key, now_ms, true)?;
        latest(conn)?.ok_or_else(|| corrupt("the restore row vanished"))
    })
}

fn gate_of(conn: &Conn, epoch: u64, store: StoreId) -> Result<StoreGate, StorageError> {
    let e = i64::try_from(epoch).map_err(corrupt)?;
    let overridden = conn
        .prepare_cached("SELECT 1 FROM restore_overrides WHERE epoch = $1 AND store_id = $2")?
        .exists(params![e, store.to_string()])?;
    let mut stmt = conn.prepare_cached(
        "SELECT d.device_id, EXISTS (SELECT 1 FROM restore_reports r WHERE r.epoch = $1 AND r.device_id = d.device_id)
         FROM devices d WHERE d.store_id = $2 AND d.revoked_at_ms IS NULL ORDER BY d.device_id",
    )?;
    let mut rows = stmt.query(params![e, store.to_string()])?;
    let (mut reported, mut waiting) = (Vec::new(), Vec::new());
    while let Some(r) = rows.next()? {
        let device: DeviceId = parse(&r.get::<_, String>(0)?)?;
        if r.get::<_, bool>(1)? {
            reported.push(device);
        } else {
            waiting.push(device);
        }
    }
    Ok(StoreGate {
        store,
        gated: epoch > 0 && !overridden && !waiting.is_empty(),
        reported,
        waiting,
        overridden,
    })
}

/// `Some(503 restore_pending)` while `store` waits for its registers after a
/// restore (see the module doc); `None` when it may grant and append.
pub(crate) fn gate(conn: &Conn, store: StoreId) -> Result<Option<ApiError>, StorageError> {
    let epoch = current_epoch(conn)?;
    if epoch == 0 {
        return Ok(None);
    }
    let g = gate_of(conn, epoch, store)?;
    Ok(g.gated.then(|| restore_pending(store, g.waiting.len())))
}

/// Whether any store is gated (the outbox waits; webhooks are refused).
pub(crate) fn any_gated(conn: &Conn) -> Result<bool, StorageError> {
    let epoch = current_epoch(conn)?;
    if epoch == 0 {
        return Ok(false);
    }
    let ids: Vec<String> = conn
        .prepare_cached("SELECT store_id FROM stores ORDER BY store_id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        if gate_of(conn, epoch, parse(&id)?)?.gated {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Head office's view: the latest restore and each store's gate.
pub(crate) fn status(conn: &Conn) -> Result<RestoreStatus, StorageError> {
    let epoch = current_epoch(conn)?;
    let mut stores = Vec::new();
    if epoch > 0 {
        let ids: Vec<String> = conn
            .prepare_cached("SELECT store_id FROM stores ORDER BY store_id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            stores.push(gate_of(conn, epoch, parse(&id)?)?);
        }
    }
    Ok(RestoreStatus {
        epoch,
        restore: latest(conn)?,
        stores,
    })
}

fn own_acked(conn: &Conn, device: DeviceId) -> Result<u64, StorageError> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM events WHERE device_id = $1")?
        .query_row([device.to_string()], |r| r.get(0))?;
    Ok(n.map_or(0, u))
}

/// `POST /v1/sync/hub-events` for an authenticated register `who`: every
/// check first (its store's hub chain; events already held must have the
/// same hash; the first new one must continue the stored head), so a
/// rejection stores nothing; then each new event is stored, audited and
/// offered to the causal gate like a hub event of its own (held while a
/// register event it depends on has not come back yet). With `own_seq`,
/// records the register's report once the hub holds its chain that far.
pub(crate) fn hub_events(
    conn: &Conn,
    env: &mut Env,
    who: DeviceCtx,
    batch: &HubEventsBatch,
) -> Result<Answer<HubEventsAck>, StorageError> {
    let now = env.now_ms();
    let hub: Option<String> = conn
        .prepare_cached("SELECT hub_device FROM stores WHERE store_id = $1")?
        .query_row([who.store.to_string()], |r| r.get(0))
        .optional()?;
    let hub: DeviceId = parse(&hub.ok_or_else(|| corrupt("the device's store vanished"))?)?;
    let head: Option<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT seq, hash, event_id FROM events WHERE device_id = $1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([hub.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (head_seq, mut head_hash, mut previous) = match head {
        None => (0, Hash256::ZERO, None),
        Some((s, h, id)) => (u(s), parse::<Hash256>(&h)?, Some(parse::<EventId>(&id)?)),
    };
    let mut duplicates = 0;
    let mut fresh = Vec::new();
    for (i, pe) in batch.events.iter().enumerate() {
        let e = &pe.event;
        if e.envelope().device != hub {
            return Ok(Err(ApiError::forbidden(
                "wrong_store",
                format!("events[{i}] is not of this store's hub chain"),
            )));
        }
        let n = e.seq().get();
        if n <= head_seq {
            let held: Option<String> = conn
                .prepare_cached("SELECT hash FROM events WHERE device_id = $1 AND seq = $2")?
                .query_row(
                    params![hub.to_string(), i64::try_from(n).map_err(corrupt)?],
                    |r| r.get(0),
                )
                .optional()?;
            if held.as_deref() != Some(e.hash().to_hex().as_str()) {
                return Ok(Err(ApiError::new(
                    409,
                    "chain_mismatch",
                    format!("events[{i}] differs from the hub event held at seq {n}"),
                )));
            }
            duplicates += 1;
            continue;
        }
        if fresh.is_empty() && (n != head_seq + 1 || e.envelope().prev != head_hash) {
            return Ok(Err(ApiError::seq_gap(head_seq + 1)));
        }
        fresh.push(pe);
    }
    let mut index = SqlIndex::new(conn, now, &mut env.tx);
    for pe in &fresh {
        let e = &pe.event;
        let row = insert_event(conn, e, now)?;
        index
            .known
            .insert(e.id(), (row, Cow::Owned((*pe).clone()), Origin::Hub));
        append_audit(
            conn,
            index.tx,
            AuditKind::HubEventRecovered,
            now,
            Some(who.store),
            audit::data([
                ("device", audit::s(hub)),
                ("seq", audit::n(e.seq().get())),
                ("event_id", audit::s(e.id())),
                ("hash", audit::s(e.hash())),
                ("kind", audit::s(pe.body.kind().as_str())),
                ("returned_by", audit::s(who.device)),
            ]),
        )?;
        ingest::admit(
            &mut index,
            &Candidate {
                id: e.id(),
                deps: &e.envelope().deps,
                previous,
            },
        )?;
        previous = Some(e.id());
        head_hash = e.hash();
    }
    drop(index);
    let _ = head_hash;
    let epoch = current_epoch(conn)?;
    let acked_seq = own_acked(conn, who.device)?;
    let mut reported = false;
    if let Some(own) = batch.own_seq {
        if epoch > 0 && acked_seq >= own {
            conn.prepare_cached(
                "INSERT INTO restore_reports (epoch, device_id, store_id, reported_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                i64::try_from(epoch).map_err(corrupt)?,
                who.device.to_string(),
                who.store.to_string(),
                now
            ])?;
            reported = true;
        }
    }
    Ok(Ok(HubEventsAck {
        accepted: fresh.len() as u64,
        duplicates,
        hub_seq: head_seq + fresh.len() as u64,
        acked_seq,
        reported,
        restore_epoch: epoch,
        restored: latest(conn)?,
    }))
}

/// Head office acknowledges the latest restore's discontinuity (audited);
/// registers stop showing it as a warning.
pub(crate) fn acknowledge(
    conn: &Conn,
    env: &mut Env,
    by: &str,
    note: &str,
) -> Result<Answer<RestoreInfo>, StorageError> {
    let now = env.now_ms();
    let epoch = current_epoch(conn)?;
    if epoch == 0 {
        return Ok(Err(ApiError::not_found("this hub was never restored")));
    }
    let e = i64::try_from(epoch).map_err(corrupt)?;
    conn.execute(
        "UPDATE restore_epochs SET acked_at_ms = $1, acked_by = $2 WHERE epoch = $3",
        params![now, by, e],
    )?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::RestoreAcknowledged,
        now,
        None,
        audit::data([
            ("epoch", audit::n(e)),
            ("by", audit::s(by)),
            ("note", audit::s(note)),
        ]),
    )?;
    Ok(Ok(
        latest(conn)?.ok_or_else(|| corrupt("restore row vanished"))?
    ))
}

/// Head office lifts a store's gate before all its registers reported
/// (audited, naming the registers still waiting).
pub(crate) fn override_store(
    conn: &Conn,
    env: &mut Env,
    store: StoreId,
    by: &str,
    note: &str,
) -> Result<Answer<StoreGate>, StorageError> {
    let now = env.now_ms();
    let epoch = current_epoch(conn)?;
    if epoch == 0 {
        return Ok(Err(ApiError::not_found("this hub was never restored")));
    }
    if !crate::storage::stores::store_exists(conn, store)? {
        return Ok(Err(ApiError::not_found(format!("no store {store}"))));
    }
    let before = gate_of(conn, epoch, store)?;
    let e = i64::try_from(epoch).map_err(corrupt)?;
    conn.execute(
        "INSERT INTO restore_overrides (epoch, store_id, at_ms, by_whom, note) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        params![e, store.to_string(), now, by, note],
    )?;
    let waiting: Vec<String> = before.waiting.iter().map(ToString::to_string).collect();
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::RestoreOverridden,
        now,
        Some(store),
        audit::data([
            ("epoch", audit::n(e)),
            ("by", audit::s(by)),
            ("note", audit::s(note)),
            ("waiting", audit::s(waiting.join(","))),
        ]),
    )?;
    Ok(Ok(gate_of(conn, epoch, store)?))
}

/// Why a backup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The hub runs on PostgreSQL: its own tools back it up.
    #[error("the hub database is PostgreSQL: back it up with pg_basebackup and WAL archiving (docs/backup-restore.md)")]
    Postgres,
    /// The target exists already.
    #[error("{0} exists already: choose a new file")]
    Exists(String),
    /// SQLite failed.
    #[error("backup failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// An online, consistent copy of an SQLite hub database (`VACUUM INTO`
/// reads one snapshot while the hub goes on writing; WAL readers never block
/// the writer). Returns the copy's audit tree size.
pub fn backup_sqlite(database: &Database, out: &Path) -> Result<u64, BackupError> {
    let Database::Sqlite(path) = database else {
        return Err(BackupError::Postgres);
    };
    if out.exists() {
        return Err(BackupError::Exists(out.display().to_string()));
    }
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute("VACUUM INTO ?1", [out.to_string_lossy().as_ref()])?;
    let copy = rusqlite::Connection::open_with_flags(
        out,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let n: i64 = copy.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))?;
    Ok(u(n))
}
