//! Drawer openings recorded apart from their receipts (`drawer_openings`: the
//! real-time pulse, or the key when the printer was unreachable) on their way
//! into the journal as `SaleDrawerOpened` events, so head office sees them.
//!
//! Invariant: an opening is journaled at most once (its row's `seq` is set in
//! the event's own transaction, and checked again there), and never while its
//! job is being printed (a pulse is claimed before it is sent and withdrawn
//! if it cannot be; only a settled row is an opening).

use caja_hardware::queue::{JobId, JobKind};
use caja_shared::kind::DrawerHow;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Failure, OpError};

/// An opening not in the journal yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unjournaled {
    /// Its print job.
    pub job: JobId,
    /// The sale, return or no-sale opening the job is keyed by.
    pub document: String,
    /// The job's kind (a return's slip is a refund's drawer).
    pub kind: JobKind,
    /// Pulse or key.
    pub how: DrawerHow,
    /// When it was recorded.
    pub opened_ms: i64,
}

fn bad(what: &str) -> OpError {
    OpError::Failed(Failure::Receipt(format!(
        "drawer opening row: unreadable {what}"
    )))
}

fn key(job: JobId) -> Result<i64, OpError> {
    i64::try_from(job.0).map_err(|_| bad("job id"))
}

/// The settled openings not yet journaled, oldest first.
pub fn unjournaled(conn: &Connection) -> Result<Vec<Unjournaled>, OpError> {
    let rows: Vec<(i64, String, String, String, i64)> = conn
        .prepare_cached(
            "SELECT d.job_id, d.sale_id, j.kind, d.how, d.opened_ms
             FROM drawer_openings d JOIN print_jobs j ON j.job_id = d.job_id
             WHERE d.seq IS NULL AND j.state != 'printing' ORDER BY d.job_id",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(job, document, kind, how, opened_ms)| {
            Ok(Unjournaled {
                job: JobId(u64::try_from(job).map_err(|_| bad("job id"))?),
                document,
                kind: JobKind::parse(&kind).ok_or_else(|| bad("kind"))?,
                how: DrawerHow::parse(&how).ok_or_else(|| bad("how"))?,
                opened_ms,
            })
        })
        .collect()
}

/// Whether `job`'s opening is still settled and unjournaled (read again in
/// the event's transaction).
pub fn still_unjournaled(conn: &Connection, job: JobId) -> Result<bool, OpError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM drawer_openings d JOIN print_jobs j ON j.job_id = d.job_id
             WHERE d.job_id = ?1 AND d.seq IS NULL AND j.state != 'printing'",
        )?
        .query_row([key(job)?], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records the journal seq of `job`'s opening.
pub fn mark(conn: &Connection, job: JobId, seq: u64) -> Result<(), OpError> {
    let seq = i64::try_from(seq).map_err(|_| bad("seq"))?;
    conn.prepare_cached("UPDATE drawer_openings SET seq = ?2 WHERE job_id = ?1 AND seq IS NULL")?
        .execute(params![key(job)?, seq])?;
    Ok(())
}

/// The journal seq of the event the opening belongs to: the sale's
/// `SaleCreated`, the return's `SaleReturned`, or the no-sale
/// `DrawerOpened`.
pub fn document_seq(
    conn: &Connection,
    kind: JobKind,
    document: &str,
) -> Result<Option<i64>, OpError> {
    let sql = match kind {
        JobKind::Return => "SELECT seq FROM return_slips WHERE return_id = ?1",
        JobKind::Drawer => "SELECT seq FROM drawer_opens WHERE movement_id = ?1",
        _ => "SELECT seq FROM sales WHERE sale_id = ?1",
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([document], |r| r.get(0))
        .optional()?)
}
