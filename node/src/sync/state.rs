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
