//! The sync engine's state rows: `sync_status` (pull cursor, hub chain,
//! quarantine, the last round's outcome) and `hub_audit` (the last hub tree
//! head verified and the trust in it), read and written here only.
//!
//! Invariant: plain row access, one statement per function; no protocol, no
//! decision (the engine and the audit check decide what to write).

use rusqlite::{params, Connection, OptionalExtension};

/// The clock skew saved by the last round.
pub fn saved_skew_ms(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT skew_ms FROM sync_status WHERE id = 1", [], |r| {
        r.get(0)
    })
}

/// Marks this register quarantined by the hub, with the hub's message.
pub fn set_quarantined(conn: &Connection, message: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sync_status SET quarantined = 1, last_error = ?1 WHERE id = 1",
        [message],
    )?;
    Ok(())
}

/// Where the next pull starts.
pub fn pull_cursor(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT pull_cursor FROM sync_status WHERE id = 1",
        [],
        |r| r.get(0),
    )
}

/// Saves where the next pull starts.
pub fn set_pull_cursor(conn: &Connection, next: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sync_status SET pull_cursor = ?1 WHERE id = 1",
        [next],
    )?;
    Ok(())
}

/// Saves the device that signs the store's hub chain.
pub fn set_hub_chain(conn: &Connection, hub_device: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sync_status SET hub_chain = ?1 WHERE id = 1",
        [hub_device],
    )?;
    Ok(())
}

/// The outcome of one round, as `status` shows it.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// Whether the round succeeded.
    pub ok: bool,
    /// The circuit breaker's state name.
    pub circuit: &'a str,
    /// The clock skew estimate.
    pub skew_ms: i64,
    /// When, UTC ms.
    pub now_ms: i64,
    /// What went wrong, if anything.
    pub error: Option<&'a str>,
}

/// Records the outcome of a round.
pub fn record_round(conn: &Connection, r: &Round<'_>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sync_status SET online = ?1, circuit = ?2, skew_ms = ?3, last_attempt_ms = ?4,
            last_success_ms = CASE WHEN ?1 = 1 THEN ?4 ELSE last_success_ms END,
            last_error = ?5
         WHERE id = 1",
        params![i64::from(r.ok), r.circuit, r.skew_ms, r.now_ms, r.error],
    )?;
    Ok(())
}

/// The `sync_status` row as `status` reads it.
#[derive(Debug, Clone)]
pub struct StatusRow {
    /// The last round succeeded.
    pub online: bool,
    /// The circuit breaker's state name.
    pub circuit: String,
    /// The clock skew estimate.
    pub skew_ms: i64,
    /// The last successful round, UTC ms.
    pub last_success_ms: Option<i64>,
    /// The last error.
    pub last_error: Option<String>,
    /// The hub quarantined this register.
    pub quarantined: bool,
}

/// Reads the `sync_status` row.
pub fn status_row(conn: &Connection) -> rusqlite::Result<StatusRow> {
    conn.query_row(
        "SELECT online, circuit, skew_ms, last_success_ms, last_error, quarantined FROM sync_status WHERE id = 1",
        [],
        |r| {
            Ok(StatusRow {
                online: r.get::<_, i64>(0)? == 1,
                circuit: r.get(1)?,
                skew_ms: r.get(2)?,
                last_success_ms: r.get(3)?,
                last_error: r.get(4)?,
                quarantined: r.get::<_, i64>(5)? == 1,
            })
        },
    )
}

/// The `hub_audit` row: trust, tree size, root, verified at, problem.
pub type AuditRow = (
    String,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// Reads the stored trust in the hub's audit log.
pub fn hub_audit(conn: &Connection) -> rusqlite::Result<AuditRow> {
    conn.query_row(
        "SELECT trust, tree_size, root, verified_ms, problem FROM hub_audit WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
}

/// Forgets the verified head and any problem: trust starts over.
pub fn reset_hub_audit(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hub_audit SET tree_size = NULL, root = NULL, at_ms = NULL, key_id = NULL,
             signature = NULL, verified_ms = NULL, trust = 'unverified', problem = NULL,
             problem_ms = NULL
         WHERE id = 1",
        [],
    )?;
    Ok(())
}

/// The last verified tree's size and root, as stored.
pub fn verified_head(conn: &Connection) -> rusqlite::Result<Option<(Option<i64>, Option<String>)>> {
    conn.query_row(
        "SELECT tree_size, root FROM hub_audit WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// A verified signed tree head.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedHead<'a> {
    /// Tree size.
    pub tree_size: i64,
    /// Root (hex).
    pub root: &'a str,
    /// When the hub signed it, UTC ms.
    pub at_ms: i64,
    /// The hub key's id.
    pub key_id: &'a str,
    /// The signature (hex).
    pub signature: &'a str,
    /// When the register verified it, UTC ms.
    pub verified_ms: i64,
}

/// Saves a verified head: the hub's log is trusted up to it.
pub fn trust_head(conn: &Connection, h: &VerifiedHead<'_>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hub_audit SET tree_size = ?1, root = ?2, at_ms = ?3, key_id = ?4,
             signature = ?5, verified_ms = ?6, trust = 'ok', problem = NULL, problem_ms = NULL
         WHERE id = 1",
        params![
            h.tree_size,
            h.root,
            h.at_ms,
            h.key_id,
            h.signature,
            h.verified_ms
        ],
    )?;
    Ok(())
}

/// Marks the hub's log `critical`, with why.
pub fn distrust(conn: &Connection, problem: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hub_audit SET trust = 'critical', problem = ?1, problem_ms = ?2 WHERE id = 1",
        params![problem, now_ms],
    )?;
    Ok(())
}

/// Trust in the hub's audit log, as `caja-node status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HubLogStatus {
    /// `unverified` (no head checked yet), `ok` or `critical`.
    pub trust: String,
    /// Size of the last verified tree.
    pub tree_size: Option<u64>,
    /// Its root.
    pub root: Option<String>,
    /// When it was verified, UTC ms.
    pub verified_ms: Option<i64>,
    /// What made the hub `critical`.
    pub problem: Option<String>,
}

/// Reads the stored trust state.
pub fn hub_log_status(conn: &Connection) -> Result<HubLogStatus, rusqlite::Error> {
    let (trust, tree_size, root, verified_ms, problem) = hub_audit(conn)?;
    Ok(HubLogStatus {
        trust,
        tree_size: tree_size.and_then(|n| u64::try_from(n).ok()),
        root,
        verified_ms,
        problem,
    })
}

/// Clears a `critical` mark after a person has looked into it (the hub was
/// restored or re-keyed on purpose): the next round starts over from the hub's
/// current head. The journal is not touched.
pub fn reset_hub_trust(conn: &Connection) -> Result<(), rusqlite::Error> {
    reset_hub_audit(conn)
}

// — RESTORE —

/// The hub restore this register last followed (`hub_restore`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HubRestore {
    /// The hub's restore epoch.
    pub epoch: u64,
    /// When this register followed it (pushed back what the hub lacked).
    pub followed_ms: i64,
    /// The audit tree size the hub restarted from.
    pub tree_size: Option<u64>,
    /// Its root.
    pub root: Option<String>,
    /// Whether head office acknowledged the restore (until then: a warning).
    pub acknowledged: bool,
}

/// The restore epoch followed last; `None` before any.
pub fn hub_restore(conn: &Connection) -> rusqlite::Result<Option<HubRestore>> {
    conn.query_row(
        "SELECT epoch, followed_ms, tree_size, root, acknowledged FROM hub_restore WHERE id = 1",
        [],
        |r| {
            Ok(HubRestore {
                epoch: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                followed_ms: r.get(1)?,
                tree_size: r
                    .get::<_, Option<i64>>(2)?
                    .and_then(|n| u64::try_from(n).ok()),
                root: r.get(3)?,
                acknowledged: r.get::<_, i64>(4)? == 1,
            })
        },
    )
    .optional()
}

/// Records that this register followed restore `epoch` (not yet acknowledged).
pub fn set_hub_restore(
    conn: &Connection,
    epoch: u64,
    now_ms: i64,
    tree_size: Option<u64>,
    root: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO hub_restore (id, epoch, followed_ms, tree_size, root, acknowledged)
         VALUES (1, ?1, ?2, ?3, ?4, 0)
         ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, followed_ms = excluded.followed_ms,
             tree_size = excluded.tree_size, root = excluded.root, acknowledged = 0",
        params![
            i64::try_from(epoch).unwrap_or(i64::MAX),
            now_ms,
            tree_size.and_then(|n| i64::try_from(n).ok()),
            root
        ],
    )?;
    Ok(())
}

/// Marks restore `epoch` acknowledged by head office.
pub fn acknowledge_hub_restore(conn: &Connection, epoch: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hub_restore SET acknowledged = 1 WHERE id = 1 AND epoch = ?1",
        [i64::try_from(epoch).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}

/// Keeps the hub checkpoint of hub-chain seq `seq` (verified), unless one of
/// a later seq is kept already.
pub fn keep_hub_checkpoint(conn: &Connection, seq: u64, checkpoint: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO hub_checkpoint_held (id, seq, checkpoint) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, checkpoint = excluded.checkpoint
         WHERE excluded.seq >= hub_checkpoint_held.seq",
        params![i64::try_from(seq).unwrap_or(i64::MAX), checkpoint],
    )?;
    Ok(())
}

/// The kept hub checkpoint: its seq and JSON.
pub fn held_hub_checkpoint(conn: &Connection) -> rusqlite::Result<Option<(u64, String)>> {
    conn.query_row(
        "SELECT seq, checkpoint FROM hub_checkpoint_held WHERE id = 1",
        [],
        |r| Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?)),
    )
    .optional()
}

/// The stored bytes of the hub events after `seq` up to `through`, in order.
pub fn hub_events_between(
    conn: &Connection,
    seq: u64,
    through: u64,
) -> rusqlite::Result<Vec<Vec<u8>>> {
    let mut stmt =
        conn.prepare("SELECT bytes FROM hub_events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq")?;
    let rows = stmt.query_map(
        params![
            i64::try_from(seq).unwrap_or(i64::MAX),
            i64::try_from(through).unwrap_or(i64::MAX)
        ],
        |r| r.get(0),
    )?;
    rows.collect()
}

/// The highest hub-chain seq held.
pub fn hub_events_head(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM hub_events", [], |r| {
        Ok(u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0))
    })
}

/// Sets the hub's acknowledged seq back to `seq`: a restored hub lacks what
/// it had acknowledged after its backup, so it is pushed again. Never beyond
/// the stored value.
pub fn rewind_acked_seq(conn: &Connection, seq: u64, now_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE sync_state SET acked_seq = ?1, updated_at_ms = ?2 WHERE id = 1 AND acked_seq > ?1",
        params![i64::try_from(seq).unwrap_or(i64::MAX), now_ms],
    )
}
